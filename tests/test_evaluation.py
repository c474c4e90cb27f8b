"""Metrics and champion/challenger decisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.evaluation import LOWER_IS_BETTER, compare, gain, lower_is_better, metric_mode, score
from workbench.exceptions import ConfigError


def test_score_matches_hand_computation():
    m = score(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert m["accuracy"] == 0.75
    # class a: p=1, r=.5, f1=2/3; class b: p=2/3, r=1, f1=.8
    assert m["precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx((2 / 3 + 0.8) / 2)


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 0.2))
def test_compare_rule(a, b, tol):
    """f1 is higher-is-better: the challenger wins when it is at most ``tol`` below the champion."""
    c = compare({"f1": a}, {"f1": b}, tolerance=tol)
    assert c.challenger_wins == (b >= a - tol)
    assert c.delta == pytest.approx(b - a)


def test_compare_rejects_unknown_metric():
    with pytest.raises(ConfigError, match="missing"):
        compare({"f1": 1}, {"f1": 1}, metric="auc")


@given(st.floats(0, 10), st.floats(0, 10), st.floats(0, 0.2))
def test_compare_rule_for_a_lower_is_better_metric(a, b, tol):
    c = compare({"rmse": a}, {"rmse": b}, metric="rmse", tolerance=tol)
    assert c.challenger_wins == (b <= a + tol)
    assert c.delta == pytest.approx(b - a)


def test_with_rmse_a_worse_challenger_loses_through_compare_and_the_gate():
    """One direction for both deciders: a larger rmse is worse, in ``compare`` and in ``Gate``."""
    from workbench.automation import Gate

    champion = {"rmse": 1.0, "r2": 0.80}
    worse = {"rmse": 1.2, "r2": 0.70}
    better = {"rmse": 0.8, "r2": 0.85}
    assert not compare(champion, worse, metric="rmse").challenger_wins
    assert compare(champion, better, metric="rmse").challenger_wins
    assert not Gate("rmse").judge(champion, worse).passed
    assert Gate("rmse").judge(champion, better).passed
    verdict = Gate("rmse", margin=0.1).judge(champion, better)
    assert verdict.passed and "gain +0.2000" in verdict.reason
    # a guarded lower-is-better metric regresses when it grows
    v = Gate("r2", guarded=("rmse",), tolerance=0.1).judge(champion, {"r2": 0.9, "rmse": 1.5})
    assert not v.passed and v.regressions["rmse"]["loss"] == pytest.approx(0.5)


def test_metric_direction_has_one_owner():
    assert LOWER_IS_BETTER == {"rmse", "mae", "mape", "log_loss", "brier"}
    assert [metric_mode(m) for m in ("f1", "accuracy", "r2", "rmse", "mae")] == [
        "max",
        "max",
        "max",
        "min",
        "min",
    ]
    assert lower_is_better("log_loss") and not lower_is_better("recall")
    assert gain("mae", 2.0, 1.5) == pytest.approx(0.5) and gain("f1", 0.9, 0.8) == pytest.approx(
        -0.1
    )
