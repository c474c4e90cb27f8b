"""Validation: classification metrics and champion-versus-challenger comparison on the same holdout."""

from workbench.evaluation._metrics import METRICS, Comparison, compare, score

__all__ = ["METRICS", "score", "compare", "Comparison"]
