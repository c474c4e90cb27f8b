"""Importance-weighted performance estimation (issue 16 item 1): the estimator on synthetic
covariate shifts whose true accuracy or error on the shifted distribution is known by
construction, and label-free triage through it on real components (a champion registered with
its holdout evaluation, requests logged without labels, one drifting window, ``tick(check=False)``,
no Ray) for a classifier without probabilities, a miscalibrated one and a regressor.

The synthetic stream: ``x`` and ``z`` standard normal, a group ``g`` of ``a`` or ``b``; the label
is ``x > 0`` in group ``a`` and ``x < 0`` in group ``b``. A linear model cannot flip its slope by
group, so trained on 10 % ``b`` it is right on ``a`` and wrong on ``b``: a shift to 70 % ``b``
drops its accuracy to 0.3 (harmful), a shift of ``x`` alone leaves it at 0.9 (harmless). The
regression twin: ``y = 2x`` plus noise of s.d. 0.2 in ``a`` and 2.0 in ``b``.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from tests._factories import deploy_with_drift_monitor, drift_window, log_requests, triage_policy
from workbench.automation import Gate
from workbench.evaluation import (
    expected_calibration_error,
    importance_weighted_estimate,
    importance_weights,
)
from workbench.exceptions import ConfigError

FEATURES = ["x", "z", "g"]


def _phi(v: float) -> float:
    return 0.5 * (1 + math.erf(v / math.sqrt(2)))


def _records(xs):
    return [{"x": float(v)} for v in xs]


# ----------------------------------------------------------------------------- the estimator
def test_a_shift_into_the_region_the_model_gets_wrong_is_estimated_within_its_interval():
    """Right wherever x < 1: accuracy Phi(1) = 0.841 on N(0, 1), Phi(0) = 0.5 on N(1, 1)."""
    rng = np.random.default_rng(3)
    xr, xs = rng.normal(0, 1, 3000), rng.normal(1, 1, 1000)
    est = importance_weighted_estimate(_records(xr), _records(xs), xr < 1)
    assert est.baseline == pytest.approx(_phi(1), abs=0.02)
    assert est.interval[0] < 0.5 < est.interval[1], est
    assert est.interval[0] <= est.estimate <= est.interval[1]
    assert abs(est.estimate - 0.5) < 0.04 and est.interval[1] < est.baseline - 0.2
    assert 200 < est.effective_n < 3000 and est.n_reference == 3000 and est.n_served == 1000
    assert est.domain_auc > 0.7


def test_mae_and_rmse_follow_the_residuals_to_the_shifted_distribution():
    """Residual e = x: on N(1, 1) the MAE is E|x| = 1.167 and the RMSE sqrt(E x^2) = sqrt(2)."""
    rng = np.random.default_rng(4)
    xr, xs = rng.normal(0, 1, 3000), rng.normal(1, 1, 1000)
    mae_truth = math.sqrt(2 / math.pi) * math.exp(-0.5) + (1 - 2 * _phi(-1))
    for metric, truth, reference in (
        ("mae", mae_truth, math.sqrt(2 / math.pi)),
        ("rmse", math.sqrt(2), 1.0),
    ):
        est = importance_weighted_estimate(_records(xr), _records(xs), xr, metric=metric)
        assert est.baseline == pytest.approx(reference, abs=0.05), (metric, est)
        assert est.interval[0] < truth < est.interval[1], (metric, truth, est)
        assert abs(est.estimate - truth) < 0.1


def test_a_categorical_shift_is_weighted_through_its_one_hot_columns():
    """Right on group a, wrong on b: 20 % b on the reference (0.8), 70 % b served (0.3)."""
    rng = np.random.default_rng(5)

    def rows(n, share_b):
        g = np.where(rng.random(n) < share_b, "b", "a")
        return [{"g": str(v), "z": float(w)} for v, w in zip(g, rng.normal(0, 1, n), strict=True)]

    ref, served = rows(1000, 0.2), rows(500, 0.7)
    right = [r["g"] == "a" for r in ref]
    est = importance_weighted_estimate(ref, pl.DataFrame(served), right)
    assert est.interval[0] < 0.3 < est.interval[1], est
    assert abs(est.estimate - 0.3) < 0.05 and est.n_served == 500


def test_without_a_shift_the_estimate_is_the_unweighted_metric():
    rng = np.random.default_rng(6)
    xr, xs = rng.normal(0, 1, 1000), rng.normal(0, 1, 500)
    right = xr < 1
    est = importance_weighted_estimate(_records(xr), _records(xs), right)
    assert est.baseline == pytest.approx(right.mean())
    # a fresh sample of the same distribution differs by its own sampling noise (its mean x is
    # 0.08 above the reference's, its accuracy 0.804): the weights barely move (strong
    # regularization chosen), the estimate stays within 0.02 and its interval holds the baseline
    assert abs(est.estimate - est.baseline) < 0.02, est
    assert est.interval[0] < est.baseline < est.interval[1]
    assert est.effective_n > 0.98 * 1000 and 0.4 < est.domain_auc < 0.6
    # the reference rows served again: nothing to reweight
    same = importance_weighted_estimate(_records(xr), _records(xr), right)
    assert abs(same.estimate - same.baseline) < 0.002 and same.effective_n > 0.99 * 1000


def test_the_interval_covers_the_truth_in_most_replications():
    """Nominal 95 % (the bootstrap holds the weights fixed, so a little less is expected): over
    40 seeded replications of the N(0, 1) -> N(1, 1) shift with 600 reference rows, the interval
    covers the true 0.5 at least 80 % of the time."""
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        xr, xs = rng.normal(0, 1, 600), rng.normal(1, 1, 300)
        est = importance_weighted_estimate(
            _records(xr), _records(xs), xr < 1, n_boot=400, seed=seed
        )
        covered += est.interval[0] <= 0.5 <= est.interval[1]
    assert covered >= 32, covered


def test_weights_are_capped_at_the_square_root_of_the_reference_rows():
    """Served rows far out (N(4, 1)): a few reference rows would carry everything; the cap
    (truncated importance sampling) holds each at most sqrt(n_ref) = 20 times the mean weight."""
    rng = np.random.default_rng(7)
    xr, xs = rng.normal(0, 1, 400), rng.normal(4, 1, 200)
    w, info = importance_weights(_records(xr), _records(xs))
    assert info["clipped"] > 0 and info["max_weight"] == pytest.approx(20.0)
    assert w.mean() == pytest.approx(1.0) and w.max() == pytest.approx(20.0)
    est = importance_weighted_estimate(_records(xr), _records(xs), xr < 1)
    # before the cap the served rows are worth 10 of the 400 reference rows; the capped weights
    # (9 rows at the cap) are worth 31, at a bias that shows: 0.07 for a truth of Phi(-3) =
    # 0.001. Triage judges by the uncapped figure (at least triage_min_labels rows)
    assert est.effective_n < 15 and 20 < est.capped_effective_n < 40 and est.clipped > 0, est


def test_refusals_say_what_to_pass():
    ref = _records([0.0, 1.0, 2.0])
    with pytest.raises(ConfigError, match="covers"):
        importance_weighted_estimate(ref, ref, [1, 1, 0], metric="roc_auc")
    with pytest.raises(ConfigError, match="one per reference row"):
        importance_weighted_estimate(ref, ref, [1, 0])
    with pytest.raises(ConfigError, match="share no column"):
        importance_weighted_estimate(ref, [{"y": 1.0}] * 3, [1, 1, 0])


def test_expected_calibration_error_is_the_confidence_accuracy_gap():
    rng = np.random.default_rng(8)
    conf = rng.uniform(0.5, 1.0, 20000)
    calibrated = rng.random(20000) < conf
    assert expected_calibration_error(conf, calibrated) < 0.01
    overconfident = rng.random(20000) < conf - 0.2
    assert expected_calibration_error(conf, overconfident) == pytest.approx(0.2, abs=0.02)


# ----------------------------------------------------------------------------- triage
def _stream(n, *, share_b, seed, mean=0.0, task="classification"):
    rng = np.random.default_rng(seed)
    x, z = rng.normal(mean, 1.0, n), rng.normal(0, 1, n)
    g = np.where(rng.random(n) < share_b, "b", "a")
    if task == "classification":
        y = np.where(np.where(g == "a", x > 0, x < 0), "yes", "no")
    else:
        y = 2 * x + np.where(g == "a", 0.2, 2.0) * rng.normal(0, 1, n)
    return pl.DataFrame({"x": x, "z": z, "g": g, "y": y})


def _bench(home, config, *, task="classification", gate=None):
    """A champion of ``config`` on 600 rows of the stream (10 % b), registered with its
    evaluation on the 400 held-out rows (the reference of label-free triage), deployment ``bc``,
    monitor ``bc-drift`` and a triage policy."""
    from workbench.api import Workbench

    bench = Workbench(home)
    dv = bench.datasets.ingest(
        _stream(1000, share_b=0.1, seed=0, task=task), name="syn", target="y"
    )
    parts = bench.datasets.split(
        dv, {"train": 0.6, "holdout": 0.4}, seed=0, stratify=task == "classification"
    )
    bundle = bench.experiments.fit_bundle(parts["train"], config)
    metrics = bench.experiments.evaluate(bundle, parts["holdout"])
    mv = bench.registry.register(
        "bc", bundle, metrics=metrics, dataset_version_id=parts["train"].id
    )
    bench.store.evaluations.add(mv.id, holdout_version_id=parts["holdout"].id, metrics=metrics)
    bench.registry.set_alias("bc", "champion", mv.version)
    deploy_with_drift_monitor(bench, parts["train"])
    bench.automation.add_policy(
        triage_policy(train="syn-train", **({"gate": gate} if gate else {}))
    )
    bench.bundle, bench.metrics = bundle, metrics
    return bench


def _serve(bench, frame):
    """Log ``frame``'s rows as requests without labels and one drifting window over them."""
    rows = frame.to_dicts()
    log_requests(bench, rows, target="y", labels=False)
    drift_window(bench, first=1, n=len(rows))
    bench.automation.tick(check=False)
    (job,) = bench.automation.jobs("bc")
    return job, bench.automation.steps(job["id"])[0]


def _truth(bench, frame):
    predicted = bench.bundle.predict_records(frame.select(FEATURES).to_dicts())
    if bench.bundle.task == "regression":
        return float(np.sqrt(np.mean((frame["y"].to_numpy() - np.array(predicted)) ** 2)))
    return float(np.mean([a == b for a, b in zip(predicted, frame["y"].to_list(), strict=True)]))


@pytest.fixture
def svc(home):
    bench = _bench(home, {"family": "sklearn.svm.LinearSVC"})
    assert bench.bundle.probabilities_missing is not None  # no CBPE for this one
    yield bench
    bench.close()


def test_a_classifier_without_probabilities_is_triaged_by_importance_weighting(svc):
    served = _stream(300, share_b=0.7, seed=5)
    truth = _truth(svc, served)  # about 0.3: the model is wrong on group b
    job, step = _serve(svc, served)
    d = step["detail"]
    assert step["step"] == "triage" and step["status"] == "harmful", d
    assert d["method"] == "iw" and d["metric"] == "accuracy" and d["labels"] == 0
    assert d["interval"][0] <= truth <= d["interval"][1], (truth, d)
    assert d["interval"][1] < d["baseline"] - 0.05 and d["baseline"] > 0.85
    assert d["effective_n"] >= 30 and d["n"] == 300
    assert d["reason"].startswith("iw: estimated accuracy")
    assert job["status"] == "WAITING_FOR_DATA"  # past the triage, on to the retraining


def test_a_shift_the_classifier_without_probabilities_handles_is_harmless(svc):
    served = _stream(300, share_b=0.1, mean=1.0, seed=6)  # x moves, the groups do not
    job, step = _serve(svc, served)
    d = step["detail"]
    assert d["method"] == "iw" and d["harmful"] is False, d
    assert d["interval"][0] <= _truth(svc, served) <= d["interval"][1]
    assert job["status"] == "SKIPPED" and job["decision"] == "harmless_shift"


def test_a_miscalibrated_classifier_is_triaged_by_importance_weighting_not_cbpe(home):
    """Logistic regression on the stream is right 0.9 of the time at a spread of confidences
    that do not match it (ECE ~0.13 on its holdout): CBPE's premise fails, IW decides."""
    bench = _bench(home, {"family": "logistic_regression", "C": 1.0})
    try:
        served = _stream(300, share_b=0.7, seed=5)
        job, step = _serve(bench, served)
        d = step["detail"]
        assert d["ece"] > 0.05 and d["method"] == "iw" and d["harmful"] is True, d
        assert set(d["cbpe"]) == {"estimate", "baseline"}  # the estimate it replaced
        assert d["interval"][0] <= _truth(bench, served) <= d["interval"][1]
        assert job["status"] == "WAITING_FOR_DATA"
    finally:
        bench.close()


@pytest.fixture
def ridge(home):
    bench = _bench(home, {"family": "ridge"}, task="regression", gate=Gate("rmse", margin=-1.0))
    yield bench
    bench.close()


def test_a_regressor_whose_error_grows_under_the_shift_is_harmful(ridge):
    served = _stream(300, share_b=0.7, seed=5, task="regression")
    truth = _truth(ridge, served)  # about 1.7: most rows in the noisy group
    job, step = _serve(ridge, served)
    d = step["detail"]
    assert d["method"] == "iw" and d["metric"] == "rmse" and d["harmful"] is True, d
    assert d["baseline"] == pytest.approx(ridge.metrics["rmse"], rel=1e-3)
    assert d["interval"][0] <= truth <= d["interval"][1], (truth, d)
    assert d["interval"][0] > d["baseline"] * 1.05  # lower is better: harm is an increase
    assert "estimated rmse" in d["reason"] and "over" in d["reason"]
    assert job["status"] == "WAITING_FOR_DATA"


def test_a_shift_the_regressor_handles_is_harmless(ridge):
    served = _stream(300, share_b=0.1, mean=1.0, seed=6, task="regression")
    job, step = _serve(ridge, served)
    d = step["detail"]
    assert d["method"] == "iw" and d["harmful"] is False, d
    assert d["interval"][0] <= _truth(ridge, served) <= d["interval"][1]
    assert job["status"] == "SKIPPED" and job["decision"] == "harmless_shift"


def test_served_rows_outside_the_reference_cannot_be_shown_harmless(svc):
    served = _stream(100, share_b=0.1, mean=6.0, seed=7)  # x far past every reference row
    job, step = _serve(svc, served)
    d = step["detail"]
    assert d["method"] == "iw" and d["effective_n"] < 30 and d["harmful"] is True, d
    assert d["capped_effective_n"] > d["effective_n"]
    assert "cannot be ruled out" in d["reason"]
    assert job["status"] == "WAITING_FOR_DATA"
