"""Tune searches: tracking callback (hooks called directly) and a real search on a local Ray."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

from tests._factories import make_experiment
from workbench.exceptions import ConfigError


class _Display:
    def __init__(self):
        self.updates = []

    def update(self, summary):
        self.updates.append(summary)


def _trial(tid, status="RUNNING", last=None, error=None):
    return SimpleNamespace(
        trial_id=tid,
        config={"family": "random_forest", "C": 1.0},
        status=status,
        last_result=last or {},
        get_error=lambda: error,
    )


def test_tracking_callback_records_and_batches(tmp_path):
    from workbench.experiments._tracking import TrackingCallback
    from workbench.lineage import Store

    store = Store(tmp_path / "l.db")
    exp = make_experiment(store)
    display = _Display()
    cb = TrackingCallback(
        str(tmp_path / "l.db"), exp, metric="f1", mode="max", total=2, name="e", display=display
    )
    t1, t2 = _trial("t1"), _trial("t2")
    cb.on_trial_start(0, [t1, t2], t1)
    cb.on_trial_start(0, [t1, t2], t2)
    cb.on_trial_result(
        0, [t1, t2], t1, {"f1": 0.8, "training_iteration": 1, "done": False, "pid": 7}
    )
    assert store.experiments.list_trials(exp) == []  # buffered until the step ends
    cb.on_step_end(0, [t1, t2])
    assert {t["trial_id"]: t["status"] for t in store.experiments.list_trials(exp)} == {
        "t1": "RUNNING",
        "t2": "RUNNING",
    }
    t1.last_result = {"f1": 0.8, "training_iteration": 1}
    t1.status = "TERMINATED"
    cb.on_trial_complete(1, [t1, t2], t1)
    t2.status = "ERROR"
    t2.get_error = lambda: ValueError("bad hyperparameter")
    cb.on_trial_error(1, [t1, t2], t2)
    cb.on_experiment_end([t1, t2])
    rows = {t["trial_id"]: t for t in store.experiments.list_trials(exp)}
    assert rows["t1"]["status"] == "TERMINATED" and rows["t1"]["metrics"] == {"f1": 0.8}
    assert rows["t1"]["duration_s"] is not None
    assert rows["t2"]["status"] == "ERROR" and "bad hyperparameter" in rows["t2"]["error"]
    assert [(m["name"], m["value"]) for m in store.experiments.list_trial_metrics(exp, "t1")] == [
        ("f1", 0.8)
    ]  # pid/done dropped
    assert display.updates[-1]["done"] == 2 and display.updates[-1]["errored"] == 1
    assert display.updates[-1]["best"]["trial_id"] == "t1"

    # Tune pickles callbacks with its experiment state: the connection and display must not travel
    clone = pickle.loads(pickle.dumps(cb))
    assert clone.display is None and clone._store is None
    restored = TrackingCallback(
        str(tmp_path / "l.db"), -1, metric="f1", mode="max", total=2, name="e"
    )
    restored.set_state(cb.get_state())
    assert restored.experiment_id == exp and restored._best["value"] == 0.8


@pytest.fixture(scope="module")
def bench_with_data(cancer_bench):
    bench, dv = cancer_bench
    return bench, bench.datasets.split(dv, {"train": 0.75, "holdout": 0.25})


@pytest.mark.ray
def test_bad_arguments_fail_before_any_trial(bench_with_data):
    bench, parts = bench_with_data
    before = len(bench.experiments.list())
    with pytest.raises(ConfigError, match="'auc' is never reported"):
        bench.experiments.search(parts["train"], name="x", metric="auc", progress=None)
    with pytest.raises(ConfigError, match="unknown model family"):
        from workbench.experiments import default_search_space

        default_search_space(("svm_of_dreams",))
    assert len(bench.experiments.list()) == before


@pytest.mark.ray
def test_search_records_every_trial_and_is_reproducible(bench_with_data):
    bench, parts = bench_with_data
    first = bench.experiments.search(
        parts["train"], name="bc", num_samples=4, seed=7, progress=None
    )
    trials = bench.experiments.trials(first.experiment_id)
    assert len(trials) == 8
    assert {t["config"]["family"] for t in trials} == {"logistic_regression", "random_forest"}
    assert all(
        t["status"] == "TERMINATED" and t["duration_s"] > 0 and 0.8 < t["metrics"]["f1"] <= 1
        for t in trials
    )
    exp = bench.store.experiments.get(first.experiment_id)
    assert exp["status"] == "TERMINATED" and exp["best_trial_id"] == first.best_trial_id
    assert (
        exp["packages"]["ray"].startswith("2.60") and exp["dataset_version_id"] == parts["train"].id
    )
    best_row = next(t for t in trials if t["trial_id"] == first.best_trial_id)
    assert best_row["metrics"]["f1"] == pytest.approx(max(t["metrics"]["f1"] for t in trials))
    # same seed → same configs and metrics
    again = bench.experiments.search(
        parts["train"], name="bc", num_samples=4, seed=7, progress=None
    )
    key = lambda rows: sorted((r["config"]["family"], round(r["metrics"]["f1"], 10)) for r in rows)  # noqa: E731
    assert key(bench.experiments.trials(again.experiment_id)) == key(trials)
    # the best config refitted and scored on the holdout
    bundle = bench.experiments.fit_bundle(parts["train"], first.best_config)
    holdout = bench.experiments.evaluate(bundle, parts["holdout"])
    assert holdout["accuracy"] > 0.9 and set(holdout) == {
        *("accuracy", "precision", "recall", "f1"),
        *("roc_auc", "pr_auc", "log_loss", "brier"),
    }


def test_best_so_far_compares_each_trials_latest_value(tmp_path):
    from workbench.experiments._tracking import TrackingCallback

    cb = TrackingCallback(str(tmp_path / "l.db"), 1, metric="f1", mode="max", total=2, name="e")
    t1, t2 = _trial("t1"), _trial("t2")
    cb.on_trial_result(0, [t1, t2], t1, {"f1": 0.9, "training_iteration": 1})  # a lucky first fold
    cb.on_trial_result(0, [t1, t2], t2, {"f1": 0.8, "training_iteration": 1})
    assert cb.summary([t1, t2], "RUNNING")["best"]["trial_id"] == "t1"
    cb.on_trial_result(
        0, [t1, t2], t1, {"f1": 0.7, "training_iteration": 2}
    )  # its mean settles lower
    best = cb.summary([t1, t2], "RUNNING")["best"]
    assert (best["trial_id"], best["value"]) == ("t2", 0.8)
    restored = TrackingCallback(
        str(tmp_path / "l.db"), -1, metric="f1", mode="max", total=2, name="e"
    )
    restored.set_state(cb.get_state())
    restored.on_trial_result(0, [t1, t2], t2, {"f1": 0.6, "training_iteration": 2})
    assert restored.summary([t1, t2], "RUNNING")["best"]["trial_id"] == "t1"


def test_the_background_forms_take_exactly_the_blocking_forms_arguments():
    """``start_search``/``start_auto``/``start_resume`` return a SearchHandle, the others block: no flag
    chooses the return type, and a wrong argument fails before anything is set up."""
    import inspect
    from concurrent.futures import Future

    from workbench.experiments import Experiments, SearchHandle

    for blocking in ("search", "auto", "resume"):
        sig = inspect.signature(getattr(Experiments, blocking))
        assert "wait" not in sig.parameters and sig.return_annotation == "SearchResult"
        start = inspect.signature(getattr(Experiments, f"start_{blocking}"))
        assert start.return_annotation == "SearchHandle"
    assert inspect.signature(Experiments.resume).parameters == (
        inspect.signature(Experiments.start_resume).parameters
    )

    def unreachable(*args, **kwargs):
        raise AssertionError("a wrong argument must fail before Ray is touched")

    experiments = Experiments(None, None, None, connect=unreachable)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wait"):
        experiments.start_search(None, name="x", wait=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="num_sample"):
        experiments.start_auto(None, name="x", num_sample=3)  # type: ignore[arg-type]
    assert issubclass(SearchHandle, Future)
