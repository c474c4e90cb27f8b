"""A search ranked by roc_auc records every fold of every trial; trials() and compare_trials carry
each trial's CV summary; a registered version has its evaluation row (metrics, details, cv) in
the store, read back through the registry. One 2-trial search on the breast-cancer data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from workbench.evaluation import PROBA_METRICS, cv_summary
from workbench.exceptions import ConfigError, ExperimentError


def test_tracking_callback_records_each_trials_folds(tmp_path):
    """Through the callback's hooks, no Ray: the latest ``_folds`` list of a trial is what the
    store holds after the step (a resumed trial reporting its folds again replaces them), and
    the list is neither a per-step metric nor a final one."""
    from types import SimpleNamespace

    from tests._factories import make_experiment
    from workbench.experiments._tracking import FOLDS_KEY, TrackingCallback
    from workbench.lineage import Store

    store = Store(tmp_path / "l.db")
    exp = make_experiment(store)
    cb = TrackingCallback(str(tmp_path / "l.db"), exp, metric="f1", mode="max", total=1, name="e")
    t = SimpleNamespace(trial_id="t1", config={}, status="RUNNING", last_result={})
    cb.on_trial_start(0, [t], t)
    f0, f1 = {"f1": 0.8, "roc_auc": 0.9}, {"f1": 0.9, "roc_auc": 0.95}
    cb.on_trial_result(0, [t], t, {"f1": 0.8, "training_iteration": 1, FOLDS_KEY: [f0]})
    assert store.evaluations.list_folds(exp) == []  # buffered until the step ends
    cb.on_step_end(0, [t])
    assert [f["metrics"] for f in store.evaluations.list_folds(exp, "t1")] == [f0]
    # the built-in trainable sends them as JSON text (Tune's TensorBoard logger warns on a list)
    t.last_result = {"f1": 0.85, "training_iteration": 2, FOLDS_KEY: json.dumps([f0, f1])}
    cb.on_trial_result(1, [t], t, t.last_result)
    cb.on_trial_complete(1, [t], t)
    assert [f["metrics"] for f in store.evaluations.list_folds(exp, "t1")] == [f0, f1]
    row = store.experiments.list_trials(exp)[0]
    assert row["metrics"] == {"f1": 0.85}
    steps = store.experiments.list_trial_metrics(exp, "t1")
    assert {m["name"] for m in steps} == {"f1"}
    store.close()


@pytest.fixture(scope="module")
def searched(cancer_bench):
    from ray import tune

    bench, dv = cancer_bench
    parts = bench.datasets.split(dv, {"train": 0.7, "holdout": 0.3})
    result = bench.experiments.search(
        parts["train"],
        name="bc-auc",
        space={"family": "logistic_regression", "C": tune.grid_search([0.05, 1.0])},
        metric="roc_auc",
        num_samples=1,
        folds=3,
        progress=None,
    )
    return bench, parts, result


@pytest.mark.ray
def test_search_by_roc_auc_records_folds_and_cv(searched):
    bench, _, result = searched
    exp = bench.store.experiments.get(result.experiment_id)
    assert exp["metric"] == "roc_auc" and exp["mode"] == "max"
    assert set(result.best_metrics) >= {"f1", *PROBA_METRICS}
    folds = bench.store.evaluations.list_folds(result.experiment_id)
    trials = bench.experiments.trials(result.experiment_id)
    assert [t["cv"] for t in result.trials] == [t["cv"] for t in trials]
    assert len(trials) == 2 and len(folds) == 6  # 2 trials x 3 folds, one row each
    for t in trials:
        mine = [f["metrics"] for f in folds if f["trial_id"] == t["trial_id"]]
        assert [f["fold"] for f in folds if f["trial_id"] == t["trial_id"]] == [0, 1, 2]
        # the trial's reported metric is the running mean; the folds average to it
        assert t["metrics"]["roc_auc"] == pytest.approx(np.mean([m["roc_auc"] for m in mine]))
        assert t["cv"] == cv_summary(mine)
        cv = t["cv"]["roc_auc"]
        # not clipped to [0, 1]: a t-interval over 3 folds near 1 may pass it
        assert cv["n_folds"] == 3 and cv["ci_low"] < cv["mean"] < cv["ci_high"]
        assert cv["mean"] == pytest.approx(t["metrics"]["roc_auc"])
    # the fold metrics are not mixed into the per-step metrics table
    names = {
        m["name"] for m in bench.experiments.metrics(result.experiment_id, trials[0]["trial_id"])
    }
    assert "roc_auc" in names and not any(n.startswith("_fold") for n in names)
    # compare_trials: flat cv columns, usable in where/sort
    rows = bench.compare_trials(result.experiment_id, sort="-cv.roc_auc.mean")
    assert rows[0]["cv.roc_auc.mean"] >= rows[1]["cv.roc_auc.mean"]
    assert {"cv.f1.ci_low", "cv.f1.ci_high", "cv.log_loss.std"} <= set(rows[0])
    low = min(r["cv.roc_auc.ci_low"] for r in rows)
    assert len(bench.compare_trials(result.experiment_id, where=f"cv.roc_auc.ci_low>{low}")) == 1


@pytest.mark.ray
def test_registered_version_has_its_evaluation(searched):
    bench, parts, result = searched
    mv = bench.register_best(
        result, model="bc-eval", train=parts["train"], holdout=parts["holdout"], alias="champion"
    )
    ev = bench.registry.evaluation("bc-eval")
    assert ev is not None and ev["model_version_id"] == mv.id
    assert ev["holdout_version_id"] == parts["holdout"].id
    assert ev["metrics"] == pytest.approx(mv.metrics) and "roc_auc" in ev["metrics"]
    # the recorded ROC-AUC is the holdout's, recomputed here from the bundle
    bundle = bench.registry.load("bc-eval")
    preds = bench.experiments.predict(bundle, parts["holdout"])
    pos = preds.proba[:, preds.classes.index(preds.classes[1])]
    assert ev["metrics"]["roc_auc"] == pytest.approx(
        roc_auc_score(preds.y_true == preds.classes[1], pos)
    )
    assert sum(map(sum, ev["details"]["confusion"]["matrix"])) == parts["holdout"].n_rows
    assert ev["details"]["roc"][preds.classes[1]]["auc"] == ev["metrics"]["roc_auc"]
    # cv: the best trial's folds
    best = next(
        t
        for t in bench.experiments.trials(result.experiment_id)
        if t["trial_id"] == result.best_trial_id
    )
    assert (
        ev["cv"] == best["cv"]
    )  # the same folds, the same summary (JSON round trip of floats is exact)
    assert ev["gate"] is None and ev["fairness"] is None
    assert [e["id"] for e in bench.registry.evaluations("bc-eval", mv.version)] == [ev["id"]]
    # holdout metrics are evaluate()'s superset of today's four
    assert bench.experiments.evaluate(bundle, parts["holdout"]) == pytest.approx(ev["metrics"])
    # the retraining canary's roc_auc replays logged records through this bundle: the same
    # probabilities as on the holdout rows
    from workbench.automation._engine import _version_scores

    records = bench.datasets.load(parts["holdout"]).drop(parts["holdout"].target).to_dicts()[:25]
    classes, proba = _version_scores(bench.stages, "bc-eval")(mv.version, records)
    assert classes == preds.classes and np.allclose(proba, preds.proba[:25])


@pytest.mark.ray
def test_a_version_registered_without_evaluation_has_none(searched):
    bench, parts, result = searched
    bundle = bench.experiments.fit_bundle(parts["train"], result.best_config)
    mv = bench.registry.register("bc-bare", bundle, metrics={"f1": 0.9})
    assert bench.registry.evaluation("bc-bare", mv.version) is None
    assert bench.registry.evaluations("bc-bare", mv.version) == []


@pytest.mark.ray
def test_probability_metric_refused_for_a_family_without_probabilities(searched):
    bench, parts, _ = searched
    with pytest.raises(ConfigError, match="needs class probabilities"):
        bench.experiments.search(
            parts["train"],
            name="x",
            space={"family": "sklearn.svm.LinearSVC"},
            metric="roc_auc",
            progress=None,
        )


@pytest.mark.ray
def test_a_candidate_registered_with_its_gate_verdict(searched):
    from workbench.automation import Gate

    bench, parts, result = searched
    candidate = bench.stages.refit_best(result, train=parts["train"], holdout=parts["holdout"])
    assert candidate.metrics == candidate.evaluation.metrics
    assert candidate.predictions.n == parts["holdout"].n_rows and candidate.fairness is None
    verdict = Gate("roc_auc").judge({"roc_auc": 0.5}, candidate.metrics)
    mv = bench.stages.register_candidate(candidate, model="bc-gated", gate=verdict)
    ev = bench.registry.evaluation("bc-gated", mv.version)
    assert ev["gate"]["passed"] is True and ev["gate"]["metric"] == "roc_auc"
    assert ev["gate"]["challenger"] == pytest.approx(candidate.metrics["roc_auc"])


def _has_fairness() -> bool:
    import workbench.evaluation as ev

    return hasattr(ev, "fairness_report")


@pytest.mark.ray
@pytest.mark.skipif(
    not _has_fairness(), reason="workbench.evaluation.fairness_report (part C) not there yet"
)
def test_sensitive_features_give_the_evaluation_its_fairness_report(searched):
    import polars as pl

    bench, parts, result = searched
    df = bench.datasets.load(parts["train"])
    groups = pl.when(pl.col(df.columns[0]) > pl.col(df.columns[0]).median()).then(pl.lit("high"))
    df = df.with_columns(groups.otherwise(pl.lit("low")).alias("group"))
    dv = bench.datasets.ingest(df, name="bc-groups", target=parts["train"].target)
    split = bench.datasets.split(dv, {"train": 0.7, "holdout": 0.3})
    mv = bench.register_best(
        result,
        model="bc-fair",
        train=split["train"],
        holdout=split["holdout"],
        sensitive_features=["group"],
    )
    ev = bench.registry.evaluation("bc-fair", mv.version)
    fairness = ev["fairness"]
    assert fairness["sensitive_features"] == ["group"]
    counts = {g: v["count"] for g, v in fairness["by_group"]["group"].items()}
    assert set(counts) == {"high", "low"} and sum(counts.values()) == split["holdout"].n_rows
    assert "demographic_parity_difference" in fairness["gaps"]["group"]


def test_a_trial_recorded_before_the_probability_metrics_still_reproduces(tmp_path):
    """An older workbench recorded only accuracy/precision/recall/F1 per trial; reproduce()
    compares on what the trial recorded (no Ray: the trial's own fold code, in this process)."""
    import polars as pl
    from sklearn.datasets import load_breast_cancer

    from workbench import Workbench
    from workbench.experiments._estimators import fold_scores, mean_scores

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = pl.from_pandas(X.iloc[:150, :4]).with_columns(
        pl.Series("y", y.iloc[:150].astype(str).to_list())
    )
    bench = Workbench(tmp_path)
    try:
        dv = bench.datasets.ingest(frame, name="c", target="y")
        exp = bench.store.experiments.add(
            name="old", dataset_version_id=dv.id, metric="f1", mode="max", num_samples=1,
            search_space={"_options": {"folds": 3, "task": "classification"}},
            search_alg="random", scheduler="FIFO", seed=0, code_version={}, packages={},
        )  # fmt: skip
        config = {"family": "logistic_regression", "C": 1.0}
        data = bench.experiments.training_data(dv, task="classification")
        full = mean_scores(
            list(fold_scores(config, data["X"], data["y"], data["kinds"], folds=3, seed=0))
        )
        assert "roc_auc" in full  # what a trial reports now
        old = {k: full[k] for k in ("accuracy", "precision", "recall", "f1")}
        bench.store.experiments.record_trial_events(
            exp,
            [{"trial_id": "t1", "config": config, "status": "TERMINATED", "metrics": old}],
            [("t1", 3, old)],
        )
        again = bench.experiments.reproduce(exp, "t1")
        assert again["match"] and set(again["recorded"]) == set(old) == set(again["reproduced"])
        bench.store.experiments.record_trial_events(
            exp, [{"trial_id": "t2", "config": config, "status": "ERROR", "metrics": {}}]
        )
        with pytest.raises(ExperimentError, match="no final metrics"):
            bench.experiments.reproduce(exp, "t2")
    finally:
        bench.close()
