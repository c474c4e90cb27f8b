"""The PyTorch MLP trainable: pure training steps, and searches with it on a real local Ray (2 CPUs)."""

from __future__ import annotations

import copy

import pytest

EPOCHS = 4


@pytest.fixture(scope="module")
def bench_with_data(cancer_bench):
    return cancer_bench


def _sklearn_data(seed: int = 0) -> dict:
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    X = pd.DataFrame(raw.data, columns=[c.replace(" ", "_") for c in raw.feature_names])
    return {
        "X": X,
        "y": raw.target,
        "kinds": dict.fromkeys(X.columns, "number"),
        "classes": ["malignant", "benign"],
        "seed": seed,
    }


def _epochs(bench, exp_id, trial_id) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for m in bench.store.experiments.list_trial_metrics(exp_id, trial_id):
        out.setdefault(m["step"], {})[m["name"]] = m["value"]
    return out


def test_training_steps_without_ray_are_seeded_and_resume_exactly():
    from workbench.experiments import torch_mlp_space
    from workbench.experiments._torch import (
        _device,
        _prepare,
        _train_epochs,
        parse_hidden,
        train_torch_mlp,
    )

    assert parse_hidden("128-64") == (128, 64) and parse_hidden([8]) == (8,)
    assert set(torch_mlp_space(epochs=3)) == {
        "hidden",
        "lr",
        "weight_decay",
        "batch_size",
        "epochs",
    }
    data = _sklearn_data()
    config = {"hidden": "32", "lr": 1e-2, "weight_decay": 1e-4, "batch_size": 64, "epochs": 3}
    states: list[dict] = []
    history = train_torch_mlp(config, data, on_epoch=lambda m, s: states.append(copy.deepcopy(s)))
    assert [m["epoch"] for m in history] == [1, 2, 3] and history[-1]["device"] == "cpu"
    assert history[-1]["f1"] > 0.85
    assert train_torch_mlp(config, data) == history  # same seed, same numbers
    assert train_torch_mlp(config, {**data, "seed": 1}) != history
    # resuming from the epoch-1 state takes the same steps as the uninterrupted run
    resumed = list(
        _train_epochs(config, _prepare(data, 0), seed=0, device=_device(), state=states[0])
    )
    assert [m for m, _ in resumed] == history[1:]


@pytest.mark.ray
def test_search_with_the_torch_trainable_records_every_epoch(bench_with_data):
    from ray import tune

    from workbench.experiments import torch_mlp_space, torch_mlp_trainable

    bench, dv = bench_with_data
    space = {**torch_mlp_space(epochs=EPOCHS), "lr": tune.loguniform(3e-3, 3e-2)}
    result = bench.experiments.search(
        dv,
        name="torch-mlp",
        trainable=torch_mlp_trainable,
        space=space,
        max_steps=EPOCHS,
        num_samples=2,
        progress=None,
    )
    trials = bench.experiments.trials(result.experiment_id)
    assert len(trials) == 2 and all(t["status"] == "TERMINATED" for t in trials)
    for t in trials:
        epochs = _epochs(bench, result.experiment_id, t["trial_id"])
        assert sorted(epochs) == list(range(1, EPOCHS + 1))
        assert [epochs[s]["epoch"] for s in sorted(epochs)] == list(range(1, EPOCHS + 1))
        assert {"accuracy", "precision", "recall", "f1", "loss", "val_loss"} <= set(epochs[1])
    assert result.best_metrics["f1"] > 0.85
    print(f"torch search best F1 {result.best_metrics['f1']:.4f} config {result.best_config}")

    # one checkpoint per reported epoch, each holding the model state and its epoch
    import json

    exp_dir = bench.settings.home / "tune" / f"exp-{result.experiment_id}-torch-mlp"
    metas = sorted(exp_dir.glob("*/checkpoint_*/meta.json"))
    assert len(metas) == 2 * EPOCHS
    assert sorted(json.loads(p.read_text())["epoch"] for p in metas) == sorted(
        list(range(1, EPOCHS + 1)) * 2
    )
    assert all((p.parent / "state.pt").stat().st_size > 0 for p in metas)
    assert {json.loads(p.read_text())["device"] for p in metas} == {"cpu"}

    # reproducible from the record: rerun the best trial's stored config with the same seed
    best = next(t for t in trials if t["trial_id"] == result.best_trial_id)
    rerun = bench.experiments.search(
        dv,
        name="torch-mlp-rerun",
        trainable=torch_mlp_trainable,
        space=dict(best["config"]),
        max_steps=EPOCHS,
        num_samples=1,
        progress=None,
    )
    assert rerun.best_metrics["f1"] == pytest.approx(result.best_metrics["f1"], abs=1e-6)
    assert rerun.best_metrics["val_loss"] == pytest.approx(
        result.best_metrics["val_loss"], abs=1e-6
    )


@pytest.mark.ray
def test_asha_stops_a_torch_trial_that_cannot_learn(bench_with_data):
    from ray import tune

    from workbench.experiments import torch_mlp_trainable

    bench, dv = bench_with_data
    epochs = 6
    result = bench.experiments.search(
        dv,
        name="torch-asha",
        trainable=torch_mlp_trainable,
        space={
            "hidden": "32",
            "lr": tune.grid_search([1e-2, 5e-3, 1e-7]),  # the hopeless one comes last
            "weight_decay": 1e-4,
            "batch_size": 64,
            "epochs": epochs,
        },
        max_steps=epochs,
        num_samples=1,
        scheduler="asha",
        max_concurrent_trials=1,
        progress=None,
    )
    trials = {t["config"]["lr"]: t for t in bench.experiments.trials(result.experiment_id)}
    steps = {
        lr: max(_epochs(bench, result.experiment_id, t["trial_id"])) for lr, t in trials.items()
    }
    print(f"ASHA epochs per lr: {steps}")
    # which good trial ASHA lets finish depends on which reached a rung first (Tune does not
    # promise the grid's launch order); one of them runs every epoch, the hopeless one does not
    assert all(1 <= s <= epochs for s in steps.values()) and max(steps.values()) == epochs
    assert steps[1e-7] < epochs
    assert result.best_config["lr"] != 1e-7
