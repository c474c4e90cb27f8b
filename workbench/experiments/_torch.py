"""A PyTorch tabular MLP as a Tune trainable for ``Experiments.search(..., trainable=...)``.

Examples
--------
>>> from workbench.experiments import torch_mlp_space, torch_mlp_trainable
>>> result = wb.experiments.search(                                   # doctest: +SKIP
...     train, name="mlp", trainable=torch_mlp_trainable,
...     space=torch_mlp_space(epochs=10), max_steps=10, scheduler="asha")

The trial fits the same preprocessing as the scikit-learn path
(``workbench.features.build_preprocessor``) on its training split only, holds
out a stratified, seeded validation split, trains with ``torch.manual_seed``
and reports once per epoch (validation accuracy/precision/recall/F1, training
and validation loss, the device) with a checkpoint of the model and optimizer,
from which a paused or cloned trial (HyperBand, PBT) resumes. The device comes
from torch (``cuda`` when ``torch.cuda.is_available()``), never from Ray.

Only the standard library is imported at module level: torch, numpy, pandas,
scikit-learn and Ray load inside the functions, so ``import workbench`` stays
light and this module can be shipped to a machine without polars.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["torch_mlp_trainable", "torch_mlp_space", "parse_hidden", "train_torch_mlp"]

VAL_FRACTION = 0.2
_STATE = "state.pt"
_META = "meta.json"


def parse_hidden(value: Any) -> tuple[int, ...]:
    """Hidden layer sizes from a config value: ``"64-32"``, ``64``, ``[64, 32]`` or ``""`` (no hidden layer).

    The space uses strings so the recorded config (stored as JSON) reruns as it is.

    Examples
    --------
    >>> parse_hidden("64-32"), parse_hidden(16), parse_hidden([8, 4]), parse_hidden("")
    ((64, 32), (16,), (8, 4), ())
    """
    if isinstance(value, str):
        return tuple(int(p) for p in value.replace(",", "-").split("-") if p.strip())
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def torch_mlp_space(epochs: int = 10) -> dict[str, Any]:
    """A Tune search space for ``torch_mlp_trainable``; pass ``max_steps=epochs`` to the search.

    Its ``"family": "torch_mlp"`` names the model family in every recorded config, so
    ``register_best`` refits the best trial as a ``TorchMLPClassifier`` (a space of your own
    needs the same key to be registered).
    """
    from ray import tune

    return {
        "family": "torch_mlp",  # recorded with each trial: register_best refits this family
        "hidden": tune.choice(["32", "64-32", "128-64"]),
        "lr": tune.loguniform(1e-3, 3e-2),
        "weight_decay": tune.loguniform(1e-6, 1e-3),
        "batch_size": tune.choice([32, 64]),
        "epochs": epochs,
    }


def _prepare(data: dict[str, Any], seed: int) -> dict[str, Any]:
    """Stratified seeded train/validation split; preprocessing fitted on the training split only."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from workbench.exceptions import ConfigError
    from workbench.features import build_preprocessor

    if data.get("task") == "regression":
        raise ConfigError(
            "the torch MLP is a classifier (cross-entropy over class codes) and this target is "
            "numeric (task 'regression'); search a scikit-learn regression family instead "
            "(experiments.search(..., task='regression') without trainable=)"
        )
    X, y = data["X"], np.asarray(data["y"], dtype=np.int64)
    X_tr, X_va, y_tr, y_va = train_test_split(
        X, y, test_size=data.get("val_fraction", VAL_FRACTION), stratify=y, random_state=seed
    )
    pre = build_preprocessor(data["kinds"])
    X_tr = np.asarray(pre.fit_transform(X_tr), dtype=np.float32)
    X_va = np.asarray(pre.transform(X_va), dtype=np.float32)
    classes = data.get("classes")
    n_classes = len(classes) if classes else int(y.max()) + 1
    return {
        "X_tr": X_tr,
        "y_tr": y_tr,
        "X_va": X_va,
        "y_va": y_va,
        "n_classes": n_classes,
        "preprocessor": pre,
    }


def _build_model(n_in: int, hidden: tuple[int, ...], n_out: int) -> Any:
    from torch import nn

    layers: list[Any] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def _device() -> Any:
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _train_epochs(
    config: dict[str, Any],
    prepared: dict[str, Any],
    *,
    seed: int,
    device: Any,
    state: dict[str, Any] | None = None,
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Train from ``state`` (or from a seeded initialisation) and yield ``(metrics, state)`` per epoch.

    Pure of Ray. Each epoch shuffles with its own generator seeded from
    ``(seed, epoch)``, and ``state`` holds the optimizer's moments, so a run
    resumed from a checkpoint takes the same steps as one that never stopped.
    """
    import torch

    from workbench.evaluation import score

    torch.manual_seed(seed)
    hidden = parse_hidden(config.get("hidden", "64-32"))
    model = _build_model(prepared["X_tr"].shape[1], hidden, prepared["n_classes"]).to(device)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=float(config.get("lr", 1e-2)),
        weight_decay=float(config.get("weight_decay", 0.0)),
    )
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["epoch"])
        for group in opt.param_groups:  # PBT may resume a donor's state with a mutated config
            group["lr"] = float(config.get("lr", group["lr"]))
            group["weight_decay"] = float(config.get("weight_decay", group["weight_decay"]))
    X_tr = torch.as_tensor(prepared["X_tr"], device=device)
    y_tr = torch.as_tensor(prepared["y_tr"], device=device)
    X_va = torch.as_tensor(prepared["X_va"], device=device)
    y_va = prepared["y_va"]
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = int(config.get("batch_size", 32))
    n = len(y_tr)
    for epoch in range(start, int(config.get("epochs", 10))):
        model.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        order = order.to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            loss = loss_fn(model(X_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        model.eval()
        with torch.no_grad():
            logits = model(X_va)
            val_loss = float(loss_fn(logits, torch.as_tensor(y_va, device=device)))
            preds = logits.argmax(dim=1).cpu().numpy()
        metrics: dict[str, Any] = score(y_va, preds)
        metrics.update(
            loss=float(total) / n, val_loss=val_loss, epoch=epoch + 1, device=str(device)
        )
        yield (
            metrics,
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1},
        )


def _seed(config: dict[str, Any], data: dict[str, Any]) -> int:
    return int(config.get("seed", data.get("seed", 0)))


@contextmanager
def _trial_threads(device: Any) -> Iterator[None]:
    """One torch thread on a CPU device, as every trial trains (so a refit or a run without Ray
    gives the numbers the search reported); the caller's thread count is restored after."""
    import torch

    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_torch_mlp(
    config: dict[str, Any],
    data: dict[str, Any],
    *,
    on_epoch: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train one config without Ray (same split, seed and steps as a trial); per-epoch metrics."""

    seed = _seed(config, data)
    device = _device()
    history = []
    with _trial_threads(device):
        for metrics, state in _train_epochs(config, _prepare(data, seed), seed=seed, device=device):
            history.append(metrics)
            if on_epoch is not None:
                on_epoch(metrics, state)
    return history


def torch_mlp_trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
    """One Tune trial: train the MLP of ``config`` on ``data`` (as ``Experiments.search`` passes it).

    Reports once per epoch with a checkpoint (``state.pt``: model and optimizer
    state dicts and the epoch; ``meta.json``: the epoch and device) and resumes
    from ``ray.tune.get_checkpoint()`` when Tune restarts a paused or cloned trial.
    """
    import torch
    from ray import tune

    seed = _seed(config, data)
    device = _device()
    if device.type == "cpu":
        torch.set_num_threads(1)
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(Path(d) / _STATE, map_location=device, weights_only=True)
    prepared = _prepare(data, seed)
    for metrics, new_state in _train_epochs(
        config, prepared, seed=seed, device=device, state=state
    ):
        with tempfile.TemporaryDirectory() as d:
            torch.save(new_state, Path(d) / _STATE)
            meta = {"epoch": new_state["epoch"], "device": str(device)}
            (Path(d) / _META).write_text(json.dumps(meta))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
