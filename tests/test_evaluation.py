"""Metrics and champion/challenger decisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.evaluation import compare, score
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
    c = compare({"f1": a}, {"f1": b}, tolerance=tol)
    assert c.challenger_wins == (b >= a - tol)
    assert c.delta == pytest.approx(b - a)


def test_compare_rejects_unknown_metric():
    with pytest.raises(ConfigError, match="missing"):
        compare({"f1": 1}, {"f1": 1}, metric="auc")
