"""Validation: classification and regression metrics, their direction, champion-versus-challenger on the same holdout, label-free estimates under shift."""

from workbench.evaluation._cv import cv_summary
from workbench.evaluation._estimation import (
    ESTIMABLE_METRICS,
    PerformanceEstimate,
    expected_calibration_error,
    importance_weighted_estimate,
    importance_weights,
)
from workbench.evaluation._evaluate import Evaluation, evaluate, prediction_metrics
from workbench.evaluation._fairness import fairness_gaps, fairness_report
from workbench.evaluation._metrics import (
    LOWER_IS_BETTER,
    METRICS,
    PROBA_METRICS,
    REGRESSION_METRICS,
    Comparison,
    compare,
    gain,
    lower_is_better,
    metric_mode,
    regression_score,
    score,
    task_metrics,
)
from workbench.evaluation._predictions import Predictions, same_label
from workbench.evaluation._report import render_report
from workbench.evaluation._significance import mcnemar, paired_bootstrap, paired_bootstrap_many

__all__ = [
    "METRICS",
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
    "Predictions",
    "same_label",
    "PROBA_METRICS",
    "Evaluation",
    "evaluate",
    "prediction_metrics",
    "cv_summary",
    "paired_bootstrap",
    "paired_bootstrap_many",
    "mcnemar",
    "render_report",
    "fairness_report",
    "fairness_gaps",
    "ESTIMABLE_METRICS",
    "PerformanceEstimate",
    "importance_weights",
    "importance_weighted_estimate",
    "expected_calibration_error",
]
