"""Preprocessing and feature engineering: fitted once, saved with the model, replayed at serving."""

from workbench.features._pipeline import (
    build_preprocessor,
    coerce_records,
    feature_kinds,
    to_pandas,
)

__all__ = ["build_preprocessor", "feature_kinds", "to_pandas", "coerce_records"]
