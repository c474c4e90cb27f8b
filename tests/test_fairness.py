"""Fairness figures: per-group metrics and gaps on models whose disparity is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.evaluation import Predictions, fairness_gaps, fairness_report
from workbench.exceptions import ConfigError


def _grouped(n: int, *, flip_b: float, seed: int = 0) -> Predictions:
    """Binary labels 'n'/'y' at a 50 % base rate in two equal groups; the model is right on group a
    and, on group b, predicts 'n' for a share ``flip_b`` of the rows that are really 'y'.

    By construction: selection rate a = 0.5, b = 0.5 * (1 - flip_b); so the demographic-parity
    difference is 0.5 * flip_b, its ratio 1 - flip_b, and the true-positive-rate gap (the
    equalized-odds difference: the false-positive rates are 0 in both) flip_b, up to the exact
    counts drawn, which the test computes.
    """
    rng = np.random.default_rng(seed)
    group = np.repeat(["a", "b"], n // 2)
    truth = np.where(rng.random(n) < 0.5, "y", "n")
    pred = truth.copy()
    in_b_pos = np.flatnonzero((group == "b") & (truth == "y"))
    flipped = rng.choice(in_b_pos, size=round(flip_b * len(in_b_pos)), replace=False)
    pred[flipped] = "n"
    return Predictions.of("classification", truth, pred, classes=["n", "y"], sensitive={"g": group})


def _rate(mask):
    return float(np.mean(mask))


def test_gaps_of_a_model_unfair_to_one_group_equal_the_construction():
    p = _grouped(4_000, flip_b=0.4)
    r = fairness_report(p)
    a, b = p.sensitive["g"] == "a", p.sensitive["g"] == "b"
    sel_a, sel_b = _rate(p.y_pred[a] == "y"), _rate(p.y_pred[b] == "y")
    tpr_b = _rate(p.y_pred[b & (p.y_true == "y")] == "y")
    gaps = r["gaps"]["g"]
    assert gaps["demographic_parity_difference"] == pytest.approx(abs(sel_a - sel_b))
    assert gaps["demographic_parity_ratio"] == pytest.approx(min(sel_a, sel_b) / max(sel_a, sel_b))
    assert gaps["equalized_odds_difference"] == pytest.approx(1.0 - tpr_b)  # a's TPR is 1, FPRs 0
    assert tpr_b == pytest.approx(0.6, abs=0.01)  # the flip rate asked for
    groups = r["by_group"]["g"]
    assert groups["a"]["accuracy"] == 1.0 and groups["b"]["accuracy"] < 0.85
    assert groups["a"]["count"] == groups["b"]["count"] == 2_000
    assert groups["b"]["selection_rate"] == pytest.approx(sel_b)
    assert gaps["accuracy_difference"] == pytest.approx(1.0 - groups["b"]["accuracy"])
    assert r["overall"]["accuracy"] == pytest.approx(_rate(p.y_true == p.y_pred))
    assert r["notes"] == []  # large groups, each with both classes: nothing to warn about


def test_a_fair_model_has_gaps_near_zero_and_the_worst_gap_is_kept():
    fair = fairness_gaps(_grouped(4_000, flip_b=0.0))
    assert fair["demographic_parity_difference"] < 0.05
    assert fair["demographic_parity_ratio"] > 0.9
    assert fair["equalized_odds_difference"] == 0.0
    unfair = fairness_gaps(_grouped(4_000, flip_b=0.5))
    assert unfair["demographic_parity_difference"] > 0.2
    assert unfair["demographic_parity_ratio"] < 0.6


def test_figures_equal_fairlearn_called_directly():
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )
    from sklearn.metrics import recall_score

    rng = np.random.default_rng(3)
    n = 600
    truth = rng.choice(["n", "y"], n)
    pred = np.where(rng.random(n) < 0.7, truth, rng.choice(["n", "y"], n))
    race = rng.choice(["p", "q", "r"], n, p=[0.5, 0.3, 0.2])
    p = Predictions.of("classification", truth, pred, classes=["n", "y"], sensitive={"race": race})
    r = fairness_report(p)
    t, q = (truth == "y").astype(int), (pred == "y").astype(int)
    gaps = r["gaps"]["race"]
    assert gaps["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(t, q, sensitive_features=race)
    )
    assert gaps["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(t, q, sensitive_features=race)
    )
    assert gaps["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(t, q, sensitive_features=race)
    )
    frame = MetricFrame(
        metrics=lambda a, b: recall_score(a, b, average="macro"),
        y_true=truth,
        y_pred=pred,
        sensitive_features=race,
    )
    for g in ("p", "q", "r"):
        assert r["by_group"]["race"][g]["recall"] == pytest.approx(frame.by_group[g])
        assert r["by_group"]["race"][g]["count"] == int(np.sum(race == g))


def test_several_features_multiclass_regression_and_json():
    rng = np.random.default_rng(5)
    n = 300
    truth = rng.choice(["a", "b", "c"], n)
    pred = np.where(rng.random(n) < 0.8, truth, "a")
    p = Predictions.of(
        "classification",
        truth,
        pred,
        classes=["a", "b", "c"],
        sensitive={"sex": rng.choice(["f", "m"], n), "age": rng.choice(["<40", "40+"], n)},
    )
    r = fairness_report(p)
    assert r["sensitive_features"] == ["sex", "age"] and set(r["gaps"]) == {"sex", "age"}
    assert "selection_rate" not in r["by_group"]["sex"]["f"]  # no single positive class
    worst = fairness_gaps(p)
    assert worst["demographic_parity_difference"] == max(
        r["gaps"][f]["demographic_parity_difference"] for f in ("sex", "age")
    )
    # more classes: each class one-vs-rest through fairlearn, the worst kept
    from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference

    sex = p.sensitive["sex"]
    ovr = [((truth == c).astype(int), (pred == c).astype(int)) for c in ("a", "b", "c")]
    assert r["gaps"]["sex"]["equalized_odds_difference"] == pytest.approx(
        max(equalized_odds_difference(t, q, sensitive_features=sex) for t, q in ovr)
    )
    assert r["gaps"]["sex"]["demographic_parity_ratio"] == pytest.approx(
        min(demographic_parity_ratio(t, q, sensitive_features=sex) for t, q in ovr)
    )
    json.dumps(r, allow_nan=False)  # plain floats, no numpy types, no NaN

    y = rng.normal(size=n)
    group = np.where(np.arange(n) < n // 2, "x", "z")
    noisy = y + np.where(group == "z", rng.normal(scale=1.0, size=n), 0.0)
    reg = fairness_report(Predictions.of("regression", y, noisy, sensitive={"site": group}))
    assert reg["by_group"]["site"]["x"]["rmse"] == pytest.approx(0.0)
    assert reg["gaps"]["site"]["rmse_difference"] == pytest.approx(
        reg["by_group"]["site"]["z"]["rmse"]
    )
    assert "demographic_parity_difference" not in reg["gaps"]["site"]


def test_a_group_without_positives_is_reported_not_a_crash_and_bad_calls_say_what_to_do():
    truth = np.array(["y", "n", "y", "n", "n", "n"])
    pred = np.array(["y", "n", "n", "n", "y", "n"])
    group = np.array(["a", "a", "a", "b", "b", "b"])  # b has no 'y' row: its TPR is undefined
    p = Predictions.of("classification", truth, pred, classes=["n", "y"], sensitive={"g": group})
    r = fairness_report(p)
    assert r["by_group"]["g"]["b"]["count"] == 3
    json.dumps(r, allow_nan=False)
    # the TPR gap needs two groups with positives: only the FPR gap (a 0/1, b 1/3) is left, where
    # fairlearn counts b's undefined TPR as 0 and reports a's TPR 1/2 as the gap
    from fairlearn.metrics import equalized_odds_difference

    t, q = (truth == "y").astype(int), (pred == "y").astype(int)
    assert equalized_odds_difference(t, q, sensitive_features=group) == pytest.approx(0.5)
    assert r["gaps"]["g"]["equalized_odds_difference"] == pytest.approx(1 / 3)
    assert any("group b of g has no 'y' rows" in n for n in r["notes"])
    assert any("group a of g has 3 rows" in n for n in r["notes"])
    assert not any("rows (fewer" in n for n in fairness_report(p, min_group_size=3)["notes"])
    # nobody predicted positive: the ratio is 0/0, None in the report, absent from the worst gaps
    never = Predictions.of(
        "classification", truth, ["n"] * 6, classes=["n", "y"], sensitive={"g": group}
    )
    assert fairness_report(never)["gaps"]["g"]["demographic_parity_ratio"] is None
    assert "demographic_parity_ratio" not in fairness_gaps(never)
    assert fairness_gaps(never)["demographic_parity_difference"] == 0.0
    with pytest.raises(ConfigError, match="sensitive_features"):
        fairness_report(Predictions.of("classification", truth, pred, classes=["n", "y"]))
    with pytest.raises(ConfigError, match="choose from"):
        fairness_report(
            Predictions.of(
                "classification", truth, pred, classes=["n", "y"], sensitive={"g": group}
            ),
            metrics=["vibes"],
        )
