"""Preprocessing and feature engineering: fitted once, saved with the model, replayed at serving."""

from workbench.features._pipeline import (
    build_preprocessor,
    coerce_records,
    columns_frame,
    feature_kinds,
    feature_names,
    record_columns,
    to_pandas,
)
from workbench.features._spec import FeatureSpec

__all__ = [
    "FeatureSpec",
    "build_preprocessor",
    "feature_kinds",
    "feature_names",
    "to_pandas",
    "coerce_records",
    "record_columns",
    "columns_frame",
]
