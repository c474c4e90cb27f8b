"""Build the preprocessing step and turn tables or JSON records into model input, identically everywhere."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError, InvalidRequestError
from workbench.features._spec import BOOLEAN, DATETIME, NUMBER, STRING, FeatureSpec

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    from sklearn.base import TransformerMixin

__all__ = [
    "feature_kinds",
    "build_preprocessor",
    "feature_names",
    "to_pandas",
    "coerce_records",
    "record_columns",
    "columns_frame",
]


def feature_kinds(schema: Mapping[str, str], target: str | None) -> dict[str, str]:
    """Map a dataset schema (column → polars dtype name) to feature kinds: number, string,
    boolean or datetime (``Date`` and ``Datetime`` columns).

    Examples
    --------
    >>> feature_kinds({"age": "Int64", "city": "String", "y": "String"}, "y")
    {'age': 'number', 'city': 'string'}
    >>> feature_kinds({"at": "Datetime(time_unit='us', time_zone=None)", "day": "Date"}, None)
    {'at': 'datetime', 'day': 'datetime'}
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
        elif d == "date" or d.startswith("datetime"):
            kinds[col] = DATETIME
        else:
            kinds[col] = STRING
    return kinds


def build_preprocessor(
    kinds: Mapping[str, str], spec: FeatureSpec | Mapping[str, Any] | None = None
) -> TransformerMixin:
    """The preprocessing step of a model: a scikit-learn transformer fitted once on training rows.

    With ``spec=None``, the default pipeline (a ``ColumnTransformer``): numbers median-imputed
    and standard-scaled; strings and booleans most-frequent-imputed and one-hot encoded
    (unknown categories at serving encode to all zeros); datetime columns as calendar parts
    with sin/cos of month, weekday and hour, scaled. With a :class:`FeatureSpec` (or its dict),
    a ``Pipeline`` of that column step, then the spec's user steps, its feature selection and
    its late user steps. Output column names: :func:`feature_names`.

    Raises
    ------
    ConfigError
        The spec names a column that is not a feature, or not of the kind its option needs.

    Examples
    --------
    >>> import pandas as pd
    >>> kinds = {"age": "number", "city": "string"}
    >>> X = pd.DataFrame({"age": [30.0, None, 50.0], "city": ["oslo", "rome", "oslo"]})
    >>> pre = build_preprocessor(kinds, FeatureSpec(missing_indicator=True)).fit(X)
    >>> feature_names(pre)
    ['age', 'age_missing', 'city_oslo', 'city_rome']
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if spec is None:
        return ColumnTransformer(
            _default_columns(kinds), remainder="drop", verbose_feature_names_out=False
        )
    spec = FeatureSpec.from_dict(spec)
    columns = ColumnTransformer(
        _spec_columns(kinds, spec), remainder="drop", verbose_feature_names_out=False
    )
    steps: list[tuple[str, Any]] = [("columns", columns)]
    steps += _user_steps(spec, "after_preprocess")
    selector = _selector(spec)
    if selector is not None:
        steps.append(("select", selector))
    steps += _user_steps(spec, "after_select")
    return Pipeline(steps)


def _default_columns(kinds: Mapping[str, str]) -> list[tuple[str, Any, list[str]]]:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from workbench.features._steps import DatetimeParts

    numeric = [c for c, k in kinds.items() if k == NUMBER]
    categorical = [c for c, k in kinds.items() if k not in (NUMBER, DATETIME)]
    datetimes = [c for c, k in kinds.items() if k == DATETIME]
    transformers: list[tuple[str, Any, list[str]]] = []
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
    if datetimes:
        transformers.append(
            (
                "datetime",
                Pipeline([("parts", DatetimeParts()), ("scale", StandardScaler())]),
                datetimes,
            )
        )
    return transformers


def _require(kinds: Mapping[str, str], option: str, columns: Sequence[str], allowed: set[str]):
    for col in columns:
        if col not in kinds:
            raise ConfigError(
                f"FeatureSpec {option} names {col!r}, which is not a feature; the features are "
                f"{list(kinds)}"
            )
        if kinds[col] not in allowed:
            raise ConfigError(
                f"FeatureSpec {option} needs {' or '.join(sorted(allowed))} columns; {col!r} is "
                f"a {kinds[col]}"
            )


def _scaler(spec: FeatureSpec) -> Any:
    from sklearn.preprocessing import RobustScaler, StandardScaler

    return (
        {"standard": StandardScaler, "robust": RobustScaler}[spec.scale]()
        if spec.scale != "none"
        else None
    )


def _chain(*steps: tuple[str, Any]) -> Any:
    from sklearn.pipeline import Pipeline

    kept = [(n, s) for n, s in steps if s is not None]
    return Pipeline(kept) if len(kept) != 1 else kept[0][1]


def _encoder(method: str, spec: FeatureSpec) -> Any:
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

    if method == "onehot":
        if spec.min_frequency is None:
            return OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        floor = spec.min_frequency if spec.min_frequency < 1 else int(spec.min_frequency)
        return OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=floor, sparse_output=False
        )
    if method == "ordinal":
        return OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    from workbench.features._steps import CappedKFold

    # TargetEncoder cross-fits in fit_transform (each training row encoded by the other folds)
    # and encodes serving rows, and unseen categories, with the full-data means. Seeded folds
    # (its own default shuffles unseeded); plain K-fold because it also splits a regression target.
    return TargetEncoder(cv=CappedKFold(5))


def _spec_columns(kinds: Mapping[str, str], spec: FeatureSpec) -> list[tuple[str, Any, Any]]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer

    from workbench.features._steps import (
        DatetimeParts,
        HashedTfidf,
        Interactions,
        IsolationScore,
        MissingFlags,
        OutlierClipper,
        Ratios,
        as_text,
    )

    _require(kinds, "text", spec.text, {STRING})
    _require(kinds, "column_encode", list(spec.column_encode), {STRING, BOOLEAN})
    _require(kinds, "ratios", [c for pair in spec.ratios for c in pair], {NUMBER})
    if not isinstance(spec.interactions, bool):
        _require(kinds, "interactions", spec.interactions, {NUMBER})
    numeric = [c for c, k in kinds.items() if k == NUMBER]
    datetimes = [c for c, k in kinds.items() if k == DATETIME]
    text = list(spec.text)
    categorical = [c for c, k in kinds.items() if k in (STRING, BOOLEAN) and c not in text]
    out: list[tuple[str, Any, Any]] = []

    def clipper(output: str) -> Any:
        if spec.outliers is None:
            return None
        return OutlierClipper(
            spec.outliers, factor=spec.iqr_factor, quantiles=spec.clip_quantiles, output=output
        )

    if numeric:
        imputer = SimpleImputer(
            strategy=spec.impute, fill_value=spec.fill_value if spec.impute == "constant" else None
        )
        numbers = _chain(("clip", clipper("values")), ("impute", imputer), ("scale", _scaler(spec)))
        out.append(("numeric", numbers, numeric))
        if spec.missing_indicator:
            out.append(("numeric_missing", MissingFlags(), numeric))
        if spec.outliers is not None and spec.outlier_flags:
            out.append(("numeric_clipped", clipper("flags"), numeric))
        if spec.isolation_forest:
            out.append(("isolation", IsolationScore(), numeric))
    pairs = numeric if spec.interactions is True else list(spec.interactions or ())
    if len(pairs) >= 2:
        products = Interactions(max_features=spec.max_interactions)
        out.append(("interactions", _chain(("make", products), ("scale", _scaler(spec))), pairs))
    if spec.ratios:
        used = list(dict.fromkeys(c for pair in spec.ratios for c in pair))
        ratios = Ratios(pairs=[(used.index(a), used.index(b)) for a, b in spec.ratios])
        out.append(("ratios", _chain(("make", ratios), ("scale", _scaler(spec))), used))
    methods = {c: spec.column_encode.get(c, spec.encode) for c in categorical}
    for method in ENCODINGS:
        cols = [c for c in categorical if methods[c] == method]
        if not cols:
            continue
        if spec.categorical_impute == "most_frequent":
            as_str, impute = None, SimpleImputer(strategy="most_frequent")
        else:
            # booleans become "True"/"False" so they sort beside the "missing" category
            as_str = FunctionTransformer(as_text, feature_names_out="one-to-one")
            impute = SimpleImputer(strategy="constant", fill_value="missing")
        name = "categorical" if method == spec.encode else f"categorical_{method}"
        encode = _encoder(method, spec)
        out.append((name, _chain(("text", as_str), ("impute", impute), ("encode", encode)), cols))
    if datetimes:
        parts = DatetimeParts(spec.datetime_parts, cyclical=spec.cyclical)
        out.append(("datetime", _chain(("parts", parts), ("scale", _scaler(spec))), datetimes))
        if spec.missing_indicator:
            out.append(("datetime_missing", MissingFlags(), datetimes))
    for col in text:
        out.append((f"text_{col}", HashedTfidf(n_features=spec.text_features), [col]))
    if not out:
        raise ConfigError("the spec leaves no feature column; the model needs at least one")
    return out


ENCODINGS = ("onehot", "ordinal", "target")


def _selector(spec: FeatureSpec) -> Any:
    from sklearn.feature_selection import VarianceThreshold

    from workbench.features._steps import ModelSelect, MutualInfoSelect

    if spec.select == "variance":
        return VarianceThreshold(spec.variance_threshold)
    if spec.select == "mutual_info":
        return MutualInfoSelect(k=spec.select_k)
    if spec.select == "model":
        return ModelSelect(spec.select_model, max_features=spec.select_k)
    return None


def _user_steps(spec: FeatureSpec, position: str) -> list[tuple[str, Any]]:
    from sklearn.base import clone

    from workbench.features._spec import resolve_step
    from workbench.features._steps import UserStep

    return [
        (
            f"user_{s['name']}",
            UserStep(clone(resolve_step(s["step"], s["kwargs"])), name=s["name"]),
        )
        for s in spec.steps
        if s["position"] == position
    ]


def feature_names(preprocessor: Any) -> list[str]:
    """The names of the columns a fitted preprocessor (or a model pipeline holding one) outputs.

    Raises
    ------
    ConfigError
        The preprocessor is not fitted yet.

    Examples
    --------
    >>> import pandas as pd
    >>> pre = build_preprocessor({"t": "datetime"}).fit(pd.DataFrame({"t": pd.to_datetime(["2024-05-01"])}))
    >>> feature_names(pre)[:3]
    ['t_year', 't_month', 't_day']
    """
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline

    step = preprocessor
    if isinstance(step, Pipeline) and "preprocess" in step.named_steps:
        step = step.named_steps["preprocess"]
    try:
        return [str(n) for n in step.get_feature_names_out()]
    except NotFittedError as exc:
        raise ConfigError(
            "fit the preprocessor (or the model pipeline) before asking its feature names"
        ) from exc


def to_pandas(df: pl.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Select the feature columns of a polars frame, in signature order, as the pandas frame sklearn expects.

    Numbers become float64, datetimes naive ``datetime64[ns]`` (aware ones in UTC), the rest
    objects with NaN for null.
    """
    import numpy as np

    out = df.select(list(kinds)).to_pandas()
    for col, kind in kinds.items():
        if kind == NUMBER:
            out[col] = out[col].astype("float64")
        elif kind == DATETIME:
            out[col] = _naive_utc(out[col])
        else:
            out[col] = out[col].astype(object).where(out[col].notna(), np.nan)
    return out


def _naive_utc(column: pd.Series) -> pd.Series:
    """Datetimes as naive ``datetime64[ns]``, aware ones in UTC (what serving records become)."""
    import pandas as pd

    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.to_datetime(column).astype("datetime64[ns]")


def coerce_records(
    records: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], *, allow_missing: bool = False
) -> pd.DataFrame:
    """Validate JSON records against the feature kinds and build the model's input frame.

    Raises :class:`InvalidRequestError` naming the first offending field:
    a missing or unknown feature, a wrong type, a non-finite number, or a datetime that is not
    an ISO-8601 string (aware values are converted to UTC, as training reads them).
    ``None`` is accepted for a feature (it is imputed) when ``allow_missing``.
    """
    return columns_frame(record_columns(records, kinds, allow_missing=allow_missing), kinds)


def record_columns(
    records: Sequence[Mapping[str, Any]], kinds: Mapping[str, str], *, allow_missing: bool = False
) -> dict[str, list[Any]]:
    """Validate JSON records against the feature kinds (the checks of :func:`coerce_records`) and
    return their values column by column, in signature order: numbers as floats, datetimes as
    naive datetimes, strings and booleans as they came, NaN for a null."""
    import numpy as np

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
            elif kind == DATETIME:
                columns[col].append(_parse_datetime(value, i, col))
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
    return columns


def columns_frame(columns: Mapping[str, list[Any]], kinds: Mapping[str, str]) -> pd.DataFrame:
    """The model's input frame of :func:`record_columns`' output (the dtypes training gives)."""
    import pandas as pd

    frame = pd.DataFrame(dict(columns), columns=list(kinds))
    for col, kind in kinds.items():
        if kind == NUMBER:
            frame[col] = frame[col].astype("float64")
        elif kind == DATETIME:
            frame[col] = pd.to_datetime(pd.Series(columns[col], dtype=object)).astype(
                "datetime64[ns]"
            )
        else:
            frame[col] = frame[col].astype(object)
    return frame


def _parse_datetime(value: Any, i: int, col: str) -> Any:
    """An ISO-8601 string as a naive datetime (aware ones converted to UTC, as training reads them)."""
    from datetime import UTC, datetime

    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            when = None
        if when is not None:
            return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when
    raise InvalidRequestError(
        f"record {i}: feature {col!r} must be an ISO-8601 date or date-time string such as "
        f"'2024-05-01T13:30:00', got {type(value).__name__} {value!r}",
        field=col,
    )
