"""Validation: classification and regression metrics, champion-versus-challenger on the same holdout."""

from workbench.evaluation._metrics import (
    METRICS,
    REGRESSION_METRICS,
    Comparison,
    compare,
    regression_score,
    score,
    task_metrics,
)

__all__ = [
    "METRICS",
    "REGRESSION_METRICS",
    "score",
    "regression_score",
    "task_metrics",
    "compare",
    "Comparison",
]
