"""Build the preprocessing step and turn tables or JSON records into model input, identically everywhere."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.exceptions import InvalidRequestError

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    from sklearn.compose import ColumnTransformer

__all__ = ["feature_kinds", "build_preprocessor", "to_pandas", "coerce_records"]

NUMBER, STRING, BOOLEAN = "number", "string", "boolean"


def feature_kinds(schema: Mapping[str, str], target: str | None) -> dict[str, str]:
    """Map a dataset schema (column → polars dtype name) to feature kinds: number, string or boolean.

    Examples
    --------
    >>> feature_kinds({"age": "Int64", "city": "String", "y": "String"}, "y")
    {'age': 'number', 'city': 'string'}
    """
    kinds: dict[str, str] = {}
    for col, dtype in schema.items():
        if col == target:
            continue
        d = dtype.lower()
        if d.startswith(("int", "uint", "float", "decimal")):
            kinds[col] = NUMBER
        elif d.startswith("bool"):
            kinds[col] = BOOLEAN
        else:
            kinds[col] = STRING
    return kinds


def build_preprocessor(kinds: Mapping[str, str]) -> ColumnTransformer:
    """Impute and scale numbers; impute and one-hot encode strings and booleans.

    Unknown categories at serving time encode to all zeros instead of failing.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c, k in kinds.items() if k == NUMBER]
    categorical = [c for c, k in kinds.items() if k != NUMBER]
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def to_pandas(df: pl.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Select the feature columns of a polars frame, in signature order, as the pandas frame sklearn expects."""
    import numpy as np

    out = df.select(list(kinds)).to_pandas()
    for col, kind in kinds.items():
        if kind == NUMBER:
            out[col] = out[col].astype("float64")
        else:
            out[col] = out[col].astype(object).where(out[col].notna(), np.nan)
    return out


def coerce_records(
    records: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], *, allow_missing: bool = False
) -> pd.DataFrame:
    """Validate JSON records against the feature kinds and build the model's input frame.

    Raises :class:`InvalidRequestError` naming the first offending field:
    a missing or unknown feature, a wrong type, or a non-finite number.
    ``None`` is accepted for a feature (it is imputed) when ``allow_missing``.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(records, Sequence) or isinstance(records, str | bytes) or not records:
        raise InvalidRequestError(
            'send a non-empty list of records, e.g. {"records": [{...}]}', field="records"
        )
    columns: dict[str, list[Any]] = {c: [] for c in kinds}
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise InvalidRequestError(f"record {i} is not a JSON object", field="records")
        extra = set(rec) - set(kinds)
        if extra:
            name = sorted(extra)[0]
            raise InvalidRequestError(
                f"record {i}: unknown feature {name!r}; expected {list(kinds)}", field=name
            )
        for col, kind in kinds.items():
            if col not in rec:
                raise InvalidRequestError(f"record {i}: missing feature {col!r}", field=col)
            value = rec[col]
            if value is None:
                if not allow_missing:
                    raise InvalidRequestError(f"record {i}: feature {col!r} is null", field=col)
                columns[col].append(np.nan)
                continue
            if kind == NUMBER:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidRequestError(
                        f"record {i}: feature {col!r} must be a number, got {type(value).__name__} {value!r}",
                        field=col,
                    )
                if not math.isfinite(value):
                    raise InvalidRequestError(
                        f"record {i}: feature {col!r} must be finite, got {value!r}", field=col
                    )
                columns[col].append(float(value))
            elif kind == BOOLEAN:
                if not isinstance(value, bool):
                    raise InvalidRequestError(
                        f"record {i}: feature {col!r} must be true or false, got {value!r}",
                        field=col,
                    )
                columns[col].append(value)
            else:
                if not isinstance(value, str):
                    raise InvalidRequestError(
                        f"record {i}: feature {col!r} must be a string, got {type(value).__name__} {value!r}",
                        field=col,
                    )
                columns[col].append(value)
    frame = pd.DataFrame(columns, columns=list(kinds))
    for col, kind in kinds.items():
        frame[col] = frame[col].astype("float64") if kind == NUMBER else frame[col].astype(object)
    return frame
