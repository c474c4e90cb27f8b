"""Metrics and the champion/challenger decision (pure, no Ray)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workbench.exceptions import ConfigError

__all__ = ["METRICS", "score", "compare", "Comparison"]

METRICS = ("accuracy", "precision", "recall", "f1")


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
    """Champion-versus-challenger verdict on one metric."""

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
    """The challenger wins when its ``metric`` is no worse than the champion's minus ``tolerance``.

    Both sets of metrics must come from the same holdout.

    Examples
    --------
    >>> compare({"f1": 0.90}, {"f1": 0.91}).challenger_wins
    True
    >>> compare({"f1": 0.90}, {"f1": 0.85}, tolerance=0.01).challenger_wins
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
        challenger_wins=b >= a - tolerance,
    )
