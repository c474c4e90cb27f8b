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
        "family",
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


def test_the_torch_family_refits_a_trial_as_a_picklable_sklearn_classifier():
    import pickle

    import numpy as np
    from sklearn.base import clone

    from workbench.exceptions import ConfigError
    from workbench.experiments._estimators import (
        estimator_class,
        family_params,
        family_task,
        make_pipeline,
    )
    from workbench.experiments._torch import _prepare, train_torch_mlp

    assert family_task("torch_mlp") == "classification"
    config = {"family": "torch_mlp", "hidden": "8", "lr": 1e-2, "weight_decay": 1e-4,
              "batch_size": 64, "epochs": 2}  # fmt: skip
    assert family_params(config) == {k: v for k, v in config.items() if k != "family"}
    data = _sklearn_data()
    history = train_torch_mlp(config, data)
    pipe = make_pipeline(config, data["kinds"], seed=0)
    assert [name for name, _ in pipe.steps] == ["model"]  # it preprocesses its split, as a trial
    pipe.fit(data["X"], data["y"])
    assert pipe[-1].history_ == history  # the same split, seed and steps as the trial
    assert list(pipe[-1].classes_) == [0, 1] and pipe[-1].device_ == "cpu"
    # string labels: classes_ holds them, predictions are labels
    labels = np.array(data["classes"])[data["y"]]
    pipe.fit(data["X"], labels)
    clf = pipe[-1]
    assert list(clf.classes_) == ["benign", "malignant"]
    proba = clf.predict_proba(data["X"])
    assert proba.shape == (len(labels), 2) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (clf.predict(data["X"]) == clf.classes_[proba.argmax(axis=1)]).all()
    assert (pipe.predict(data["X"]) == labels).mean() > 0.85
    copy_ = pickle.loads(pickle.dumps(pipe))
    assert (copy_.predict(data["X"]) == pipe.predict(data["X"])).all()
    assert all(t.device.type == "cpu" for t in copy_[-1].module_.state_dict().values())
    twin = clone(clf).set_params(random_state=1)
    assert twin.get_params()["hidden"] == "8" and not hasattr(twin, "module_")
    assert twin.fit(data["X"], data["y"]).history_ != history

    # a config naming no family, or an unknown one, says what to pass
    with pytest.raises(ConfigError, match="'family': 'torch_mlp'"):
        estimator_class(None)
    with pytest.raises(ConfigError, match="unknown model family 'torch'"):
        family_task("torch")
    # the torch MLP is a classifier: a regression target is refused, not turned into classes
    with pytest.raises(ConfigError, match="regression family"):
        clf.fit(data["X"], data["X"]["mean_radius"].to_numpy())
    with pytest.raises(ConfigError, match="task='regression'"):
        _prepare({**data, "task": "regression"}, 0)


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


@pytest.fixture(scope="module")
def served_bench(serve_apps, tmp_path_factory):
    """A Workbench on the session's Serve with breast-cancer data split into train and holdout."""
    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv
    from workbench.serving._recorder import kill_recorder

    home = tmp_path_factory.mktemp("torch-serve") / "wbhome"
    bench = Workbench(home, serve_port=serve_apps.port)
    dv = bench.datasets.ingest(
        write_breast_cancer_csv(home / "bc.csv"), name="bc", target="diagnosis"
    )
    parts = bench.datasets.split(dv, {"train": 0.7, "holdout": 0.3}, seed=0)
    try:
        yield bench, parts["train"], parts["holdout"]
    finally:
        bench.close()
        serve_apps.delete()
        kill_recorder(bench.settings.db_path)


@pytest.mark.ray
def test_a_torch_search_best_is_registered_served_over_http_and_refused_without_family(
    served_bench,
):
    import httpx

    from workbench.exceptions import ConfigError
    from workbench.experiments import torch_mlp_space, torch_mlp_trainable

    bench, train, holdout = served_bench
    space = {**torch_mlp_space(epochs=2), "hidden": "8"}
    result = bench.experiments.search(
        train, name="torch-best", trainable=torch_mlp_trainable, space=space, max_steps=2,
        num_samples=2, progress=None,
    )  # fmt: skip
    assert result.best_config["family"] == "torch_mlp"
    mv = bench.register_best(
        result, model="bc-torch", train=train, holdout=holdout, alias="champion"
    )
    assert (mv.experiment_id, mv.trial_id) == (result.experiment_id, result.best_trial_id)
    assert mv.params["family"] == "torch_mlp" and mv.params["lr"] == result.best_config["lr"]
    bundle = bench.registry.load("bc-torch", mv.version)
    # the refit on the searched data with the search's seed is the best trial, epoch for epoch
    final = bundle.pipeline[-1].history_[-1]
    for name in ("f1", "accuracy", "val_loss"):
        assert final[name] == pytest.approx(result.best_metrics[name], abs=1e-6)
    assert mv.metrics == bench.experiments.evaluate(bundle, holdout)
    assert set(mv.metrics) >= {"accuracy", "precision", "recall", "f1"}
    assert mv.metrics["f1"] > 0.8
    print(f"torch best: search f1 {result.best_metrics['f1']:.4f}, holdout {mv.metrics}")

    info = bench.serving.deploy("bc-torch", "champion", name="bc-torch")
    rows = bench.datasets.load(holdout).drop("diagnosis").to_dicts()[:40]
    resp = httpx.post(info["url"].rstrip("/") + "/predict", json={"records": rows}, timeout=60)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["predictions"] == bundle.predict_records(rows)
    assert body["model_version"] == mv.version
    bench.serving.undeploy("bc-torch")

    # a torch config recorded without a family is refused with what to pass, never KeyError
    bare = {k: v for k, v in result.best_config.items() if k != "family"}
    with pytest.raises(ConfigError, match="'family': 'torch_mlp'"):
        bench.experiments.fit_bundle(train, bare)
