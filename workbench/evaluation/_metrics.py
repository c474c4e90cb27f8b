"""Metrics, their direction (which are lower-is-better) and the champion/challenger decision (pure, no Ray)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.exceptions import ConfigError

__all__ = [
    "METRICS",
    "PROBA_METRICS",
    "REGRESSION_METRICS",
    "LOWER_IS_BETTER",
    "lower_is_better",
    "metric_mode",
    "gain",
    "score",
    "regression_score",
    "task_metrics",
    "compare",
    "Comparison",
]

METRICS = ("accuracy", "precision", "recall", "f1")
#: classification metrics computed from class probabilities (only for an estimator that gives them)
PROBA_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")
REGRESSION_METRICS = ("r2", "rmse", "mae", "mape")
#: the metrics where a smaller value is better; every other metric is higher-is-better
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape", "log_loss", "brier"})


def lower_is_better(metric: str) -> bool:
    """Whether a smaller ``metric`` is better (errors, losses).

    Examples
    --------
    >>> lower_is_better("rmse"), lower_is_better("f1")
    (True, False)
    """
    return metric in LOWER_IS_BETTER


def metric_mode(metric: str) -> str:
    """``"min"`` or ``"max"``: the direction of ``metric`` in Ray Tune's vocabulary."""
    return "min" if lower_is_better(metric) else "max"


def gain(metric: str, champion: float, challenger: float) -> float:
    """How much better ``challenger`` is than ``champion`` on ``metric``; negative when worse.

    Examples
    --------
    >>> gain("f1", 0.90, 0.92) > 0, gain("rmse", 1.0, 1.2) < 0
    (True, True)
    """
    return champion - challenger if lower_is_better(metric) else challenger - champion


def task_metrics(task: str, *, proba: bool = False) -> tuple[str, ...]:
    """The metric names computed for a task from predicted labels (values); with ``proba=True``
    also those a classifier's class probabilities give (:data:`PROBA_METRICS`), which the
    built-in trainable reports for an estimator with ``predict_proba``.

    Examples
    --------
    >>> task_metrics("regression")
    ('r2', 'rmse', 'mae', 'mape')
    >>> "roc_auc" in task_metrics("classification", proba=True)
    True
    """
    if task == "classification":
        return METRICS + PROBA_METRICS if proba else METRICS
    if task == "regression":
        return REGRESSION_METRICS
    raise ConfigError(f"task must be 'classification' or 'regression', got {task!r}")


def regression_score(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """R², root-mean-square error, mean absolute error and mean absolute percentage error.

    MAPE is the mean of ``|y - ŷ| / |y|`` over the rows whose true value is not 0 (a zero target
    has no relative error); it is left out when every true value is 0. It is a fraction, not
    a percentage: 0.05 means 5 %.

    Examples
    --------
    >>> regression_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
    0.3333333333333333
    >>> round(regression_score([0.0, 2.0, 4.0], [1.0, 2.0, 5.0])["mape"], 6)  # the 0 row is skipped
    0.125
    """
    import numpy as np
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    out = {
        "r2": float(r2_score(y_true, y_pred)),
        "rmse": float(mean_squared_error(y_true, y_pred) ** 0.5),
        "mae": float(mean_absolute_error(y_true, y_pred)),
    }
    yt, yp = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    nonzero = yt != 0
    if nonzero.any():
        out["mape"] = float(np.mean(np.abs(yt[nonzero] - yp[nonzero]) / np.abs(yt[nonzero])))
    return out


def score(y_true: Sequence[Any], y_pred: Sequence[Any]) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1.

    Examples
    --------
    >>> score(["a", "b", "a"], ["a", "b", "b"])["accuracy"]
    0.6666666666666666
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


@dataclass(frozen=True)
class Comparison:
    """Champion-versus-challenger verdict on one metric; ``delta`` is challenger minus champion
    (negative is better for a lower-is-better metric)."""

    metric: str
    champion: float
    challenger: float
    tolerance: float
    challenger_wins: bool

    @property
    def delta(self) -> float:
        return self.challenger - self.champion

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "champion": self.champion,
            "challenger": self.challenger,
            "delta": self.delta,
            "tolerance": self.tolerance,
            "challenger_wins": self.challenger_wins,
        }


def compare(
    champion: Mapping[str, float],
    challenger: Mapping[str, float],
    *,
    metric: str = "f1",
    tolerance: float = 0.0,
) -> Comparison:
    """The challenger wins when it is no more than ``tolerance`` worse than the champion on
    ``metric``, in the metric's direction (:func:`lower_is_better`).

    Both sets of metrics must come from the same holdout.

    Examples
    --------
    >>> compare({"f1": 0.90}, {"f1": 0.91}).challenger_wins
    True
    >>> compare({"f1": 0.90}, {"f1": 0.85}, tolerance=0.01).challenger_wins
    False
    >>> compare({"rmse": 1.0}, {"rmse": 1.2}, metric="rmse").challenger_wins
    False
    """
    if metric not in champion or metric not in challenger:
        raise ConfigError(
            f"metric {metric!r} is missing from the metrics compared ({sorted(champion)})"
        )
    if tolerance < 0:
        raise ConfigError("tolerance must be >= 0")
    a, b = float(champion[metric]), float(challenger[metric])
    return Comparison(
        metric=metric,
        champion=a,
        challenger=b,
        tolerance=tolerance,
        challenger_wins=gain(metric, a, b) >= -tolerance,
    )
