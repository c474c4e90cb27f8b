"""FeatureSpec: the preprocessing choices of one model, as a validated, JSON-able value."""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

__all__ = ["FeatureSpec", "DATETIME_PARTS"]

NUMBER, STRING, BOOLEAN, DATETIME = "number", "string", "boolean", "datetime"
DATETIME_PARTS = ("year", "month", "day", "weekday", "hour")
IMPUTE = ("median", "mean", "constant", "most_frequent")
CATEGORICAL_IMPUTE = ("most_frequent", "missing")
SCALE = ("standard", "robust", "none")
ENCODE = ("onehot", "ordinal", "target")
OUTLIERS = (None, "iqr", "quantile")
SELECT = (None, "variance", "mutual_info", "model")
SELECT_MODELS = ("linear", "tree")
POSITIONS = ("after_preprocess", "after_select")

# FeatureSpec.baseline: a string column is text when most values are distinct and long.
_TEXT_MIN_LENGTH = 30
_TEXT_MIN_DISTINCT = 0.5
# ... and target-encoded (instead of one-hot) past this many distinct values.
_HIGH_CARDINALITY = 50


def _choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise ConfigError(f"FeatureSpec {name}={value!r} is not one of {list(allowed)}")


def _import_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_step(step: Any, kwargs: Mapping[str, Any] | None = None) -> Any:
    """A user step as an (unfitted) transformer: an instance as given, an import path instantiated.

    Raises
    ------
    ConfigError
        The path does not import, its object cannot be built with ``kwargs``, or it is not a
        transformer (no ``fit`` and ``transform``).

    Examples
    --------
    >>> resolve_step("sklearn.preprocessing.PolynomialFeatures", {"degree": 2})
    PolynomialFeatures()
    """
    if isinstance(step, str):
        module, _, attr = step.rpartition(".")
        try:
            target = getattr(importlib.import_module(module), attr) if module else None
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(
                f"feature step {step!r} does not import ({exc}); give a full import path such as "
                "'sklearn.preprocessing.PolynomialFeatures' of an installed package"
            ) from exc
        if target is None:
            raise ConfigError(
                f"feature step {step!r} does not import; give a full import path such as "
                "'sklearn.preprocessing.PolynomialFeatures'"
            )
        try:
            step = target(**dict(kwargs or {}))
        except TypeError as exc:
            raise ConfigError(
                f"feature step {step!r} cannot be built with {kwargs}: {exc}"
            ) from exc
    elif kwargs:
        raise ConfigError("kwargs go with an import path; set them on the transformer instance")
    if not (hasattr(step, "fit") and hasattr(step, "transform")):
        raise ConfigError(
            f"feature step {step!r} is not a scikit-learn transformer (it needs fit and transform)"
        )
    return step


def _normalize_step(item: Any, index: int) -> dict[str, Any]:
    if isinstance(item, Mapping):
        unknown = set(item) - {"step", "kwargs", "name", "position"}
        if unknown or "step" not in item:
            raise ConfigError(
                f"feature step {index} must be a transformer, an import path or a dict with keys "
                f"step, kwargs, name, position; got keys {sorted(item)}"
            )
        step, kwargs = item["step"], dict(item.get("kwargs") or {})
        name, position = item.get("name"), item.get("position", "after_preprocess")
    else:
        step, kwargs, name, position = item, {}, None, "after_preprocess"
    _choice(f"steps[{index}].position", position, POSITIONS)
    resolve_step(step, kwargs)  # fails now, naming the path, rather than at fit
    if name is None:
        tail = step.rpartition(".")[2] if isinstance(step, str) else type(step).__name__
        name = tail.lower()
    return {"step": step, "kwargs": kwargs, "name": str(name), "position": position}


@dataclass(frozen=True)
class FeatureSpec:
    """The preprocessing of one model: imputation, scaling, encoding, outliers, generated
    features, selection and user steps. ``FeatureSpec()`` is the default pipeline.

    Every field is keyword-only; see ``docs/features.md`` for each. Invalid values raise
    :class:`~workbench.exceptions.ConfigError` naming the option and the allowed values.

    Examples
    --------
    >>> spec = FeatureSpec(impute="mean", missing_indicator=True, encode="target")
    >>> FeatureSpec.from_dict(spec.to_dict()) == spec
    True
    >>> FeatureSpec(scale="minmax")
    Traceback (most recent call last):
    ...
    workbench.exceptions.ConfigError: FeatureSpec scale='minmax' is not one of ['standard', 'robust', 'none']
    """

    impute: str = "median"
    fill_value: float = 0.0
    missing_indicator: bool = False
    scale: str = "standard"
    encode: str = "onehot"
    min_frequency: float | None = None
    categorical_impute: str = "most_frequent"
    column_encode: Mapping[str, str] = field(default_factory=dict)
    outliers: str | None = None
    iqr_factor: float = 1.5
    clip_quantiles: tuple[float, float] = (0.01, 0.99)
    outlier_flags: bool = False
    isolation_forest: bool = False
    datetime_parts: tuple[str, ...] = DATETIME_PARTS
    cyclical: bool = True
    interactions: bool | tuple[str, ...] = False
    max_interactions: int = 20
    ratios: tuple[tuple[str, str], ...] = ()
    text: tuple[str, ...] = ()
    text_features: int = 64
    select: str | None = None
    variance_threshold: float = 0.0
    select_k: int = 20
    select_model: str = "linear"
    steps: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        _choice("impute", self.impute, IMPUTE)
        _choice("categorical_impute", self.categorical_impute, CATEGORICAL_IMPUTE)
        _choice("scale", self.scale, SCALE)
        _choice("encode", self.encode, ENCODE)
        _choice("outliers", self.outliers, OUTLIERS)
        _choice("select", self.select, SELECT)
        _choice("select_model", self.select_model, SELECT_MODELS)
        for col, enc in dict(self.column_encode).items():
            _choice(f"column_encode[{col!r}]", enc, ENCODE)
        for p in self.datetime_parts:
            _choice("datetime_parts item", p, DATETIME_PARTS)
        if self.min_frequency is not None and not self.min_frequency > 0:
            raise ConfigError(
                "FeatureSpec min_frequency is a count (>= 1) or a fraction in (0, 1); "
                f"got {self.min_frequency!r}"
            )
        low, high = self.clip_quantiles
        if not 0.0 <= low < high <= 1.0:
            raise ConfigError(
                f"FeatureSpec clip_quantiles must be (low, high) with 0 <= low < high <= 1, got "
                f"{self.clip_quantiles!r}"
            )
        for name in ("max_interactions", "text_features", "select_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"FeatureSpec {name} must be a positive integer, got {value!r}")
        ratios = tuple(tuple(pair) for pair in self.ratios)
        if any(len(pair) != 2 for pair in ratios):
            raise ConfigError(
                f"FeatureSpec ratios are (numerator, denominator) column pairs, got {self.ratios!r}"
            )
        interactions = self.interactions
        if not isinstance(interactions, bool):
            if isinstance(interactions, str):
                raise ConfigError(
                    "FeatureSpec interactions is True (all numeric columns), False, or a list of "
                    f"column names; got {interactions!r}"
                )
            interactions = tuple(interactions)
        steps = tuple(_normalize_step(s, i) for i, s in enumerate(self.steps))
        names = [s["name"] for s in steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"feature steps {dupes} share a name; give each a distinct name=")
        set_ = object.__setattr__
        set_(self, "column_encode", dict(self.column_encode))
        set_(self, "clip_quantiles", (float(low), float(high)))
        set_(self, "datetime_parts", tuple(self.datetime_parts))
        set_(self, "interactions", interactions)
        set_(self, "ratios", ratios)
        set_(self, "text", tuple(self.text))
        set_(self, "steps", steps)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data (tuples as lists; a user step instance as its import path
        and parameters).

        Raises
        ------
        ConfigError
            A user step instance has parameters that are not JSON (pass it as an import path
            with JSON kwargs instead).
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "steps":
                value = [self._step_dict(s) for s in value]
            elif f.name == "ratios":
                value = [list(p) for p in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @staticmethod
    def _step_dict(step: Mapping[str, Any]) -> dict[str, Any]:
        obj, kwargs = step["step"], dict(step["kwargs"])
        if not isinstance(obj, str):
            kwargs = obj.get_params(deep=False) if hasattr(obj, "get_params") else None
            obj = _import_path(obj)
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError):
            raise ConfigError(
                f"feature step {step['name']!r} ({obj}) has parameters that are not JSON; give it "
                "as an import path with JSON kwargs to store or search it"
            ) from None
        return {"step": obj, "kwargs": kwargs, "name": step["name"], "position": step["position"]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild a spec from :meth:`to_dict`'s data (or a hand-written dict of some options).

        Raises
        ------
        ConfigError
            An unknown option (the message lists the known ones) or an invalid value.
        """
        if isinstance(data, FeatureSpec):
            return data
        if not isinstance(data, Mapping):
            raise ConfigError(f"a feature spec is a dict of options, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown FeatureSpec option(s) {unknown}; the options are {known}")
        return cls(**dict(data))

    @classmethod
    def baseline(
        cls, kinds: Mapping[str, str], sample: pl.DataFrame | pd.DataFrame | None = None
    ) -> FeatureSpec:
        """A sensible spec for these column kinds, looking at ``sample`` rows when given.

        One-hot with a 1% frequency floor (rare categories pool into one column); median
        imputation with ``<col>_missing`` flags (only columns with nulls in training get one);
        datetime parts with cyclical encodings. With a sample, a string column whose values are
        mostly distinct and long (30+ characters on average) is text (hashed TF-IDF), another
        with more than 50 distinct values is target-encoded, and missing flags are kept only
        when some number is null.

        Examples
        --------
        >>> import polars as pl
        >>> df = pl.DataFrame({"x": [1.0, 2.0], "note": ["a long free-text note number %d ..." % i for i in range(2)]})
        >>> spec = FeatureSpec.baseline({"x": "number", "note": "string"}, df)
        >>> spec.text, spec.missing_indicator
        (('note',), False)
        """
        text: list[str] = []
        column_encode: dict[str, str] = {}
        indicator = True
        if sample is not None:
            import polars as pl

            frame = sample if isinstance(sample, pl.DataFrame) else pl.from_pandas(sample)
            numeric = [c for c, k in kinds.items() if k == NUMBER and c in frame.columns]
            indicator = any(frame[c].null_count() > 0 for c in numeric)
            for col, kind in kinds.items():
                if kind != STRING or col not in frame.columns:
                    continue
                values = frame[col].drop_nulls().cast(pl.String)
                if not len(values):
                    continue
                distinct = values.n_unique()
                mean_length = float(values.str.len_chars().mean() or 0.0)
                if distinct / len(values) >= _TEXT_MIN_DISTINCT and mean_length >= _TEXT_MIN_LENGTH:
                    text.append(col)
                elif distinct > _HIGH_CARDINALITY:
                    column_encode[col] = "target"
        return cls(
            missing_indicator=indicator,
            min_frequency=0.01,
            column_encode=column_encode,
            text=tuple(text),
        )
