"""Automatic mode (classification and regression), estimators by import path, and reproducing a
trial from its record alone, on a real local Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.exceptions import ConfigError
from workbench.experiments._experiments import infer_task


def test_task_is_inferred_from_the_target():
    assert infer_task(["M", "B", "M"]) == "classification"
    assert infer_task([0, 1, 1, 0]) == "classification"
    assert infer_task([1.5, 2.0, 3.25]) == "regression"
    assert infer_task(list(range(100))) == "regression"  # many distinct integers
    assert infer_task([True, False]) == "classification"


@pytest.fixture(scope="module")
def diabetes(cancer_bench, tmp_path_factory):
    """scikit-learn's bundled diabetes data (442 rows, 10 features, a numeric target)."""
    import polars as pl
    from sklearn.datasets import load_diabetes

    bench, _ = cancer_bench
    raw = load_diabetes(as_frame=True).frame.rename(columns={"target": "progression"})
    path = tmp_path_factory.mktemp("diabetes") / "diabetes.csv"
    pl.from_pandas(raw).write_csv(path)
    return bench.datasets.ingest(path, name="diabetes", target="progression")


@pytest.mark.ray
def test_auto_mode_searches_every_regression_family_and_registers_a_regressor(
    cancer_bench, diabetes
):
    bench, _ = cancer_bench
    result = bench.experiments.auto(diabetes, name="auto-reg", num_samples=1, progress=None)
    exp = bench.store.experiments.get(result.experiment_id)
    options = exp["search_space"]["_options"]
    assert exp["metric"] == "r2" and exp["mode"] == "max" and exp["scheduler"] == "asha"
    assert options["task"] == "regression" and options["folds"] == 5  # 442 rows ≤ 2,000
    trials = bench.experiments.trials(result.experiment_id)
    assert sorted(t["config"]["family"] for t in trials) == [
        "gradient_boosting_regressor",
        "random_forest_regressor",
        "ridge",
    ]
    assert set(result.best_metrics) == {"r2", "rmse", "mae", "mape"}
    assert 0.3 < result.best_metrics["r2"] < 1 and result.best_metrics["rmse"] > 0
    bundle = bench.experiments.fit_bundle(diabetes, result.best_config)
    assert bundle.task == "regression" and bundle.classes == []
    holdout = bench.experiments.evaluate(bundle, diabetes)
    assert set(holdout) == {"r2", "rmse", "mae", "mape"} and holdout["r2"] > 0.3
    preds = bundle.predict_records([{k: 0.0 for k in bundle.features}])
    assert isinstance(preds[0], float)
    # every finished trial reproduces from its record alone, to the last bit
    for t in trials:
        again = bench.experiments.reproduce(result.experiment_id, t["trial_id"])
        assert again["match"] and again["max_abs_diff"] == 0.0, again


@pytest.mark.ray
def test_auto_mode_for_classification_and_an_estimator_by_import_path(cancer_bench):
    from ray import tune

    bench, dv = cancer_bench
    auto = bench.experiments.auto(
        dv, name="auto-clf", num_samples=1, progress=None, metric="roc_auc"
    )
    families = sorted(t["config"]["family"] for t in bench.experiments.trials(auto.experiment_id))
    assert families == ["gradient_boosting", "logistic_regression", "random_forest"]
    record = bench.experiments.get(auto.experiment_id)
    assert (record["metric"], record["mode"]) == ("roc_auc", "max")  # ranked by ROC-AUC
    best = max(bench.experiments.trials(auto.experiment_id), key=lambda t: t["metrics"]["roc_auc"])
    assert auto.best_trial_id == best["trial_id"] and auto.best_metrics["roc_auc"] > 0.95
    assert auto.best_metrics["f1"] > 0.9

    svc = bench.experiments.search(
        dv, name="svc", estimator="sklearn.svm.SVC",
        space={"C": tune.loguniform(0.1, 10.0), "kernel": tune.grid_search(["rbf", "linear"])},
        num_samples=1, progress=None,
    )  # fmt: skip
    trials = bench.experiments.trials(svc.experiment_id)
    assert {t["config"]["family"] for t in trials} == {"sklearn.svm._classes.SVC"}
    assert {t["config"]["kernel"] for t in trials} == {"rbf", "linear"}
    assert svc.best_metrics["f1"] > 0.9
    for t in trials:  # the parameters reached the estimator: kernels give different scores
        assert bench.experiments.reproduce(svc.experiment_id, t["trial_id"])["match"]
    assert len({round(t["metrics"]["f1"], 6) for t in trials}) == 2
    # the CLI gives the same verdict, in a process of its own (no Ray needed)
    cli = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "--home", str(bench.settings.home), "reproduce",
         str(svc.experiment_id), svc.best_trial_id],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "max |difference| 0: match" in cli.stdout and "recorded" in cli.stdout
    bundle = bench.experiments.fit_bundle(dv, svc.best_config)
    assert type(bundle.pipeline.named_steps["model"]).__name__ == "SVC"
    assert bundle.pipeline.named_steps["model"].kernel == svc.best_config["kernel"]


@pytest.mark.ray
def test_bad_estimators_tasks_and_metrics_fail_before_anything_is_recorded(cancer_bench, diabetes):
    bench, dv = cancer_bench
    before = len(bench.experiments.list())
    with pytest.raises(ConfigError, match="no class 'SVX' in module 'sklearn.svm'"):
        bench.experiments.search(dv, name="x", estimator="sklearn.svm.SVX", progress=None)
    with pytest.raises(ConfigError, match="is not a scikit-learn estimator"):
        bench.experiments.search(dv, name="x", estimator="json.JSONDecoder", progress=None)
    with pytest.raises(
        ConfigError, match="'ridge' is for regression, but this search is classification"
    ):
        bench.experiments.search(dv, name="x", space={"family": "ridge"}, progress=None)
    with pytest.raises(ConfigError, match="'rmse' is never reported for classification"):
        bench.experiments.search(dv, name="x", metric="rmse", progress=None)
    with pytest.raises(ConfigError, match="needs a numeric target"):
        bench.experiments.search(dv, name="x", task="regression", progress=None)
    with pytest.raises(ConfigError, match="'logistic_regression' is for classification"):
        bench.experiments.search(
            diabetes, name="x", space={"family": "logistic_regression"}, progress=None
        )
    assert len(bench.experiments.list()) == before
