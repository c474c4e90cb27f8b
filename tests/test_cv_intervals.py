"""cv_summary's 95% interval covers the true value at about the nominal rate.

The setup makes the true value well defined: a fixed classifier (a known rule whose labels are
flipped with probability ``q``, so its true accuracy is ``1 - q``) is scored on ``k`` folds that
are independent test sets drawn from the population. Over many repeated draws the Student-t
interval over the folds must cover ``1 - q`` in about 95% of them; a binomial test on the count of
covering draws decides, and the same check on the normal (z) interval, too narrow for 5 folds,
shows the test has the power to fail. Pure: no Ray.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from workbench.evaluation import cv_summary

DRAWS = 2000
FOLDS = 5
ROWS = 120  # per fold
Q = 0.2  # label noise: the rule's true accuracy is 0.8
TRUE_ACCURACY = 1 - Q


def _fold_accuracies(rng: np.random.Generator) -> list[float]:
    """One 'cross-validation': the fixed rule x > 0 scored on FOLDS fresh test sets."""
    out = []
    for _ in range(FOLDS):
        x = rng.normal(size=ROWS)
        label = (x > 0) ^ (rng.random(ROWS) < Q)  # the true label, flipped with probability Q
        out.append(float(np.mean((x > 0) == label)))
    return out


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(20261207)
    return [cv_summary([{"accuracy": a} for a in _fold_accuracies(rng)]) for _ in range(DRAWS)]


def test_the_interval_covers_the_true_accuracy_at_the_nominal_rate(draws):
    covered = sum(
        d["accuracy"]["ci_low"] <= TRUE_ACCURACY <= d["accuracy"]["ci_high"] for d in draws
    )
    # two-sided binomial test of "coverage is 0.95"; at 2,000 draws a coverage of 0.93 or 0.97
    # is rejected, so a wrong quantile or a wrong standard error fails here
    assert binomtest(covered, DRAWS, 0.95).pvalue > 0.001, covered / DRAWS
    assert all(d["accuracy"]["n_folds"] == FOLDS for d in draws)


def test_a_normal_interval_over_five_folds_undercovers(draws):
    """The check above can fail: the z interval (1.96 instead of t(0.975, 4) = 2.78) is rejected."""
    covered = 0
    for d in draws:
        s = d["accuracy"]
        half = 1.96 * s["std"] / math.sqrt(FOLDS)
        covered += s["mean"] - half <= TRUE_ACCURACY <= s["mean"] + half
    assert covered / DRAWS < 0.92
    assert binomtest(covered, DRAWS, 0.95).pvalue < 0.001


def test_the_interval_width_matches_the_sampling_spread(draws):
    """The mean half-width is t · σ/√k up to the bias of the sample std, with σ the known
    binomial spread of one fold's accuracy."""
    sigma = math.sqrt(Q * (1 - Q) / ROWS)
    half = np.mean([(d["accuracy"]["ci_high"] - d["accuracy"]["ci_low"]) / 2 for d in draws])
    expected = 2.776 * sigma / math.sqrt(FOLDS) * 0.94  # E[s] = c4(5) σ, c4(5) = 0.940
    assert half == pytest.approx(expected, rel=0.05)


def test_summary_shape_and_edge_cases():
    s = cv_summary([{"f1": 0.8, "roc_auc": 0.9}, {"f1": 0.9, "roc_auc": 0.95}, {"f1": 1.0}])
    assert s["f1"]["mean"] == pytest.approx(0.9) and s["f1"]["std"] == pytest.approx(0.1)
    assert s["f1"]["ci_low"] == pytest.approx(0.9 - 4.302653 * 0.1 / math.sqrt(3))
    assert s["roc_auc"]["n_folds"] == 2  # summarised over the folds that report it
    one = cv_summary([{"f1": 0.7}])["f1"]
    assert one == {"mean": 0.7, "std": None, "ci_low": None, "ci_high": None, "n_folds": 1}
    assert cv_summary([]) == {}
    assert cv_summary([{"f1": float("nan")}, {"f1": 0.5}])["f1"]["n_folds"] == 1
