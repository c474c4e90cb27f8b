"""The feature steps scikit-learn lacks: each learns its state in ``fit`` and replays it in ``transform``.

Every step here follows scikit-learn's contract (``__init__`` stores arguments, learned state ends
in ``_``, ``get_feature_names_out`` names the output columns) so it clones, pickles with the model
bundle and reports its generated names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "CappedKFold",
    "DatetimeParts",
    "HashedTfidf",
    "Interactions",
    "IsolationScore",
    "MissingFlags",
    "ModelSelect",
    "MutualInfoSelect",
    "OutlierClipper",
    "Ratios",
    "UserStep",
    "as_text",
    "mutual_info",
]

DATETIME_PARTS = ("year", "month", "day", "weekday", "hour")
# Period of each part that has a cycle, and the value the cycle starts at.
_CYCLES = {"month": (12.0, 1.0), "weekday": (7.0, 0.0), "hour": (24.0, 0.0)}


def _names_in(step: Any, input_features: Sequence[str] | None) -> list[str]:
    if input_features is not None:
        return [str(c) for c in input_features]
    names = getattr(step, "feature_names_in_", None)
    if names is not None:
        return [str(c) for c in names]
    return [f"x{i}" for i in range(step.n_features_in_)]


def _remember_input(step: Any, X: Any) -> None:
    step.n_features_in_ = int(np.shape(X)[1])
    if hasattr(X, "columns"):
        step.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)


def _floats(X: Any) -> np.ndarray:
    """Numbers as a float matrix, ``None``/``pd.NA`` as NaN."""
    if hasattr(X, "to_numpy"):
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(X, dtype=np.float64).reshape(np.shape(X)[0], -1)


def _medians(X: np.ndarray) -> np.ndarray:
    """Column medians ignoring NaN; an all-missing column gets 0."""
    out = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        col = X[:, j][~np.isnan(X[:, j])]
        if col.size:
            out[j] = float(np.median(col))
    return out


def _fill(X: np.ndarray, values: np.ndarray) -> np.ndarray:
    X = X.copy()
    rows, cols = np.where(np.isnan(X))
    X[rows, cols] = values[cols]
    return X


def as_text(X: Any) -> np.ndarray:
    """Category values as strings, nulls kept as NaN (so ``True`` and a ``"missing"`` fill mix).

    Examples
    --------
    >>> as_text([[True], [None]]).ravel().tolist()
    ['True', nan]
    """
    import pandas as pd

    x = np.asarray(X, dtype=object).reshape(np.shape(X)[0], -1).copy()
    null = np.asarray(pd.isna(pd.DataFrame(x)), dtype=bool)
    x[~null] = [str(v) for v in x[~null]]
    x[null] = np.nan
    return x


class CappedKFold:
    """Seeded shuffled K-fold that uses fewer folds (at least 2) when there are fewer rows.

    The target encoder's cross-fitting splitter: scikit-learn's KFold refuses a training fold
    of under ``n_splits`` rows, which small datasets' CV folds reach.

    Examples
    --------
    >>> len(list(CappedKFold(5).split(list(range(3)))))
    3
    """

    def __init__(self, n_splits: int = 5, *, random_state: int = 0):
        self.n_splits = n_splits
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits if X is None else max(2, min(self.n_splits, len(X)))

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        from sklearn.model_selection import KFold

        folds = KFold(self.get_n_splits(X), shuffle=True, random_state=self.random_state)
        return folds.split(X, y, groups)


class OutlierClipper(TransformerMixin, BaseEstimator):
    """Clip numbers to bounds learned at fit: Tukey's IQR fences or two quantiles.

    ``output="values"`` gives the clipped values (NaN stays NaN, for the imputer after it);
    ``output="flags"`` gives one ``<col>_clipped`` column, 1.0 where the value lay outside.

    Examples
    --------
    >>> import numpy as np
    >>> c = OutlierClipper(method="quantile", quantiles=(0.0, 0.5)).fit(np.array([[1.0], [2.0], [3.0]]))
    >>> c.transform(np.array([[0.0], [9.0]])).ravel().tolist()
    [1.0, 2.0]
    """

    def __init__(
        self,
        method: str = "iqr",
        *,
        factor: float = 1.5,
        quantiles: tuple[float, float] = (0.01, 0.99),
        output: str = "values",
    ):
        self.method = method
        self.factor = factor
        self.quantiles = quantiles
        self.output = output

    def fit(self, X: Any, y: Any = None) -> OutlierClipper:
        _remember_input(self, X)
        x = _floats(X)
        low = np.full(x.shape[1], -np.inf)
        high = np.full(x.shape[1], np.inf)
        for j in range(x.shape[1]):
            col = x[:, j][~np.isnan(x[:, j])]
            if not col.size:
                continue
            if self.method == "iqr":
                q1, q3 = np.quantile(col, [0.25, 0.75])
                low[j], high[j] = q1 - self.factor * (q3 - q1), q3 + self.factor * (q3 - q1)
            elif self.method == "quantile":
                low[j], high[j] = np.quantile(col, list(self.quantiles))
            else:
                raise ValueError(f"method must be 'iqr' or 'quantile', got {self.method!r}")
        self.lower_, self.upper_ = low, high
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "lower_")
        x = _floats(X)
        if self.output == "flags":
            with np.errstate(invalid="ignore"):
                return ((x < self.lower_) | (x > self.upper_)).astype(np.float64)
        return np.clip(x, self.lower_, self.upper_)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = _names_in(self, input_features)
        if self.output == "flags":
            names = [f"{c}_clipped" for c in names]
        return np.asarray(names, dtype=object)


class MissingFlags(TransformerMixin, BaseEstimator):
    """``<col>_missing`` (1.0 where the value is null, NaN or NaT) for each column that had nulls at fit.

    Columns complete in training get no flag, so the output width is fixed at fit.

    Examples
    --------
    >>> import numpy as np
    >>> f = MissingFlags().fit(np.array([[1.0, np.nan], [2.0, 3.0]]))
    >>> f.get_feature_names_out(["a", "b"]).tolist(), f.transform(np.array([[np.nan, np.nan]])).tolist()
    (['b_missing'], [[1.0]])
    """

    @staticmethod
    def _null(X: Any) -> np.ndarray:
        import pandas as pd

        return np.asarray(pd.isna(pd.DataFrame(X)), dtype=bool)

    def fit(self, X: Any, y: Any = None) -> MissingFlags:
        _remember_input(self, X)
        self.columns_ = np.flatnonzero(self._null(X).any(axis=0))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return self._null(X)[:, self.columns_].astype(np.float64)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = _names_in(self, input_features)
        return np.asarray([f"{names[j]}_missing" for j in self.columns_], dtype=object)


class IsolationScore(TransformerMixin, BaseEstimator):
    """One ``isolation_score`` column: an IsolationForest's anomaly score (higher is stranger).

    Nulls are filled with the training medians before scoring.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.zeros((50, 1)), [[100.0]]]
    >>> s = IsolationScore(n_estimators=20).fit(x).transform(np.array([[0.0], [100.0]])).ravel()
    >>> bool(s[1] > s[0])
    True
    """

    def __init__(self, n_estimators: int = 100, random_state: int = 0):
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> IsolationScore:
        from sklearn.ensemble import IsolationForest

        _remember_input(self, X)
        x = _floats(X)
        self.medians_ = _medians(x)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state
        ).fit(_fill(x, self.medians_))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "forest_")
        x = _fill(_floats(X), self.medians_)
        return -self.forest_.score_samples(x).reshape(-1, 1)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return np.asarray(["isolation_score"], dtype=object)


class Interactions(TransformerMixin, BaseEstimator):
    """Pairwise products ``a*b`` of the input columns (nulls filled with training medians).

    ``max_features`` caps the number of products (pairs in column order).

    Examples
    --------
    >>> import numpy as np
    >>> t = Interactions().fit(np.array([[1.0, 2.0, 3.0]]))
    >>> t.transform(np.array([[1.0, 2.0, 3.0]])).tolist(), t.get_feature_names_out(["a", "b", "c"]).tolist()
    ([[2.0, 3.0, 6.0]], ['a*b', 'a*c', 'b*c'])
    """

    def __init__(self, max_features: int = 20):
        self.max_features = max_features

    def fit(self, X: Any, y: Any = None) -> Interactions:
        from itertools import combinations

        _remember_input(self, X)
        x = _floats(X)
        self.medians_ = _medians(x)
        self.pairs_ = list(combinations(range(x.shape[1]), 2))[: self.max_features]
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "pairs_")
        x = _fill(_floats(X), self.medians_)
        out = np.empty((x.shape[0], len(self.pairs_)))
        for k, (i, j) in enumerate(self.pairs_):
            out[:, k] = x[:, i] * x[:, j]
        return out

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = _names_in(self, input_features)
        return np.asarray([f"{names[i]}*{names[j]}" for i, j in self.pairs_], dtype=object)


class Ratios(TransformerMixin, BaseEstimator):
    """Ratios ``a/b`` of listed column pairs; a null or zero denominator gives the training median.

    ``pairs`` are (numerator, denominator) positions in the input columns.

    Examples
    --------
    >>> import numpy as np
    >>> r = Ratios(pairs=[(0, 1)]).fit(np.array([[2.0, 1.0], [6.0, 2.0], [1.0, 1.0]]))
    >>> r.transform(np.array([[8.0, 4.0], [5.0, 0.0]])).ravel().tolist()
    [2.0, 2.0]
    """

    def __init__(self, pairs: Sequence[tuple[int, int]] = ()):
        self.pairs = pairs

    def _raw(self, x: np.ndarray) -> np.ndarray:
        out = np.full((x.shape[0], len(self.pairs)), np.nan)
        for k, (i, j) in enumerate(self.pairs):
            num, den = x[:, i], x[:, j]
            ok = ~np.isnan(num) & ~np.isnan(den) & (den != 0)
            out[ok, k] = num[ok] / den[ok]
        return out

    def fit(self, X: Any, y: Any = None) -> Ratios:
        _remember_input(self, X)
        self.medians_ = _medians(self._raw(_floats(X)))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "medians_")
        return _fill(self._raw(_floats(X)), self.medians_)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = _names_in(self, input_features)
        return np.asarray([f"{names[i]}/{names[j]}" for i, j in self.pairs], dtype=object)


def _as_datetime64(values: Any) -> np.ndarray:
    """One column as naive ``datetime64[ns]``: aware values in UTC, strings parsed, the rest NaT."""
    import pandas as pd

    s = pd.Series(values).reset_index(drop=True)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return s.to_numpy(dtype="datetime64[ns]")
    out = []
    for v in s:
        try:
            t = pd.Timestamp(v) if v is not None else pd.NaT
        except (TypeError, ValueError):
            t = pd.NaT
        if t is not pd.NaT and t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        out.append(np.datetime64("NaT") if t is pd.NaT else t.to_datetime64())
    return np.array(out, dtype="datetime64[ns]")


def _calendar(t: np.ndarray, part: str) -> np.ndarray:
    """A calendar part of naive datetimes by numpy unit arithmetic (NaT gives NaN)."""
    days = t.astype("datetime64[D]")
    if part == "year":
        value = t.astype("datetime64[Y]").astype(np.int64) + 1970
    elif part == "month":
        value = t.astype("datetime64[M]").astype(np.int64) % 12 + 1
    elif part == "day":
        value = (days - t.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    elif part == "weekday":
        value = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    else:
        value = (t.astype("datetime64[h]") - days.astype("datetime64[h]")).astype(np.int64)
    out = value.astype(np.float64)
    out[np.isnat(t)] = np.nan
    return out


class DatetimeParts(TransformerMixin, BaseEstimator):
    """Calendar parts of datetime columns, with sin/cos of the cyclical ones.

    For each column: ``<col>_<part>`` for each of ``parts`` (year, month, day, weekday with
    Monday 0, hour), then ``<col>_<part>_sin``/``_cos`` for month, weekday and hour when
    ``cyclical``. A null or unparseable value takes the training median of each part
    (:class:`MissingFlags` flags it). Time-zone-aware values are read in UTC.

    Examples
    --------
    >>> import pandas as pd
    >>> d = DatetimeParts(parts=("month",)).fit(pd.DataFrame({"t": pd.to_datetime(["2024-01-15"])}))
    >>> d.get_feature_names_out().tolist()
    ['t_month', 't_month_sin', 't_month_cos']
    >>> [round(v, 6) for v in d.transform(pd.DataFrame({"t": ["2024-04-01T08:00:00"]}))[0]]
    [4.0, 1.0, 0.0]
    """

    def __init__(
        self,
        parts: Sequence[str] = DATETIME_PARTS,
        *,
        cyclical: bool = True,
    ):
        self.parts = parts
        self.cyclical = cyclical

    def _parts(self, X: Any) -> np.ndarray:
        import pandas as pd

        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
        cols = []
        for c in frame.columns:
            t = _as_datetime64(frame[c])
            cols += [_calendar(t, p) for p in self.parts]
        return np.column_stack(cols) if cols else np.empty((len(frame), 0))

    def fit(self, X: Any, y: Any = None) -> DatetimeParts:
        unknown = [p for p in self.parts if p not in DATETIME_PARTS]
        if unknown:
            raise ValueError(f"unknown datetime parts {unknown}; choose from {DATETIME_PARTS}")
        _remember_input(self, X)
        self.medians_ = _medians(self._parts(X))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "medians_")
        parts = _fill(self._parts(X), self.medians_)
        k = len(self.parts)
        blocks = []
        for c in range(self.n_features_in_):
            block = parts[:, c * k : (c + 1) * k]
            blocks.append(block)
            if self.cyclical:
                for j, p in enumerate(self.parts):
                    if p in _CYCLES:
                        period, start = _CYCLES[p]
                        angle = 2 * math.pi * (block[:, j] - start) / period
                        blocks.append(np.column_stack([np.sin(angle), np.cos(angle)]))
        return np.column_stack(blocks) if blocks else np.empty((len(parts), 0))

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = _names_in(self, input_features)
        out = []
        for c in names:
            out += [f"{c}_{p}" for p in self.parts]
            if self.cyclical:
                for p in self.parts:
                    if p in _CYCLES:
                        out += [f"{c}_{p}_sin", f"{c}_{p}_cos"]
        return np.asarray(out, dtype=object)


class HashedTfidf(TransformerMixin, BaseEstimator):
    """One text column as ``n_features`` hashed TF-IDF weights (``<col>_tfidf_<i>``, dense).

    Hashing needs no vocabulary, so unseen words at serving land in the same columns; the IDF
    weights are learned at fit. Nulls are empty text.

    Examples
    --------
    >>> import pandas as pd
    >>> t = HashedTfidf(n_features=8).fit(pd.DataFrame({"note": ["red car", "blue car", None]}))
    >>> t.transform(pd.DataFrame({"note": ["green car"]})).shape
    (1, 8)
    """

    def __init__(self, n_features: int = 64):
        self.n_features = n_features

    @staticmethod
    def _text(X: Any) -> list[str]:
        import pandas as pd

        col = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else pd.Series(np.asarray(X).ravel())
        return [
            "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in col
        ]

    def fit(self, X: Any, y: Any = None) -> HashedTfidf:
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer

        _remember_input(self, X)
        if self.n_features_in_ != 1:
            raise ValueError("HashedTfidf takes one text column; add one step per column")
        self.hasher_ = HashingVectorizer(
            n_features=self.n_features, alternate_sign=False, norm=None
        )
        self.tfidf_ = TfidfTransformer().fit(self.hasher_.transform(self._text(X)))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "tfidf_")
        return self.tfidf_.transform(self.hasher_.transform(self._text(X))).toarray()

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        (name,) = _names_in(self, input_features)
        return np.asarray([f"{name}_tfidf_{i}" for i in range(self.n_features)], dtype=object)


def _is_classification(y: Any) -> bool:
    from sklearn.utils.multiclass import type_of_target

    return type_of_target(y) in ("binary", "multiclass")


def mutual_info(X: Any, y: Any) -> np.ndarray:
    """Mutual information of each column with ``y`` (classification or regression, by ``y``), seeded.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.c_[np.arange(40) % 2, np.zeros(40)]
    >>> mi = mutual_info(x, np.arange(40) % 2)
    >>> bool(mi[0] > mi[1])
    True
    """
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    if y is None:
        raise ValueError("mutual-information selection needs the target: fit it with y")
    score = mutual_info_classif if _is_classification(y) else mutual_info_regression
    return score(X, y, random_state=0)


class _Selector(TransformerMixin, BaseEstimator):
    """Base of the selection steps: ``fit`` sets ``selector_`` (a fitted scikit-learn selector
    over the float matrix); transforming, the kept columns and their names are shared."""

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "selector_")
        return np.asarray(self.selector_.transform(_floats(X)))

    def get_support(self) -> np.ndarray:
        check_is_fitted(self, "selector_")
        return self.selector_.get_support()

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = np.asarray(_names_in(self, input_features), dtype=object)
        return names[self.get_support()]


class MutualInfoSelect(_Selector):
    """Keep the ``k`` columns of highest mutual information with the target (all when fewer).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.c_[np.zeros(40), np.arange(40) % 2]
    >>> MutualInfoSelect(k=1).fit(x, np.arange(40) % 2).get_feature_names_out(["a", "b"]).tolist()
    ['b']
    """

    def __init__(self, k: int = 20):
        self.k = k

    def fit(self, X: Any, y: Any = None) -> MutualInfoSelect:
        from sklearn.feature_selection import SelectKBest

        _remember_input(self, X)
        k = min(int(self.k), self.n_features_in_)
        self.selector_ = SelectKBest(mutual_info, k=k).fit(_floats(X), y)
        return self


class ModelSelect(_Selector):
    """Keep the columns a model finds useful (``SelectFromModel``), the model chosen by the target.

    ``model="linear"``: an L1 logistic regression (classes) or a Lasso (numbers);
    ``model="tree"``: extra trees. ``max_features`` caps how many are kept.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 3))
    >>> s = ModelSelect(model="tree").fit(x, (x[:, 1] > 0).astype(int))
    >>> s.get_feature_names_out(["a", "b", "c"]).tolist()
    ['b']
    """

    def __init__(self, model: str = "linear", *, max_features: int | None = None):
        self.model = model
        self.max_features = max_features

    def fit(self, X: Any, y: Any = None) -> ModelSelect:
        from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor
        from sklearn.feature_selection import SelectFromModel
        from sklearn.linear_model import Lasso, LogisticRegression

        if y is None:
            raise ValueError("model-based selection needs the target: fit it with y")
        _remember_input(self, X)
        classify = _is_classification(y)
        if self.model == "linear":
            est: Any = (
                LogisticRegression(l1_ratio=1.0, solver="liblinear", C=0.5, random_state=0)
                if classify
                else Lasso(alpha=0.01, random_state=0)
            )
        elif self.model == "tree":
            cls = ExtraTreesClassifier if classify else ExtraTreesRegressor
            est = cls(n_estimators=50, random_state=0)
        else:
            raise ValueError(f"model must be 'linear' or 'tree', got {self.model!r}")
        self.selector_ = SelectFromModel(est, max_features=self.max_features).fit(_floats(X), y)
        return self


class UserStep(TransformerMixin, BaseEstimator):
    """A user's scikit-learn transformer in the pipeline, fitted once like the others.

    When the transformer cannot name its output columns, they are called ``<name>_<i>``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> s = UserStep(FunctionTransformer(np.abs), name="abs").fit(np.array([[-1.0, 2.0]]))
    >>> s.transform(np.array([[-3.0, 4.0]])).tolist(), s.get_feature_names_out(["a", "b"]).tolist()
    ([[3.0, 4.0]], ['abs_0', 'abs_1'])
    """

    def __init__(self, transformer: Any, *, name: str = "step"):
        self.transformer = transformer
        self.name = name

    def fit(self, X: Any, y: Any = None) -> UserStep:
        _remember_input(self, X)
        self.transformer_ = clone(self.transformer)
        out = self.transformer_.fit_transform(X, y)
        self.n_features_out_ = int(np.shape(out)[1])
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        _remember_input(self, X)
        self.transformer_ = clone(self.transformer)
        out = self.transformer_.fit_transform(X, y, **fit_params)
        self.n_features_out_ = int(np.shape(out)[1])
        return _dense(out)

    def transform(self, X: Any) -> Any:
        check_is_fitted(self, "transformer_")
        return _dense(self.transformer_.transform(X))

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "transformer_")
        try:
            names = self.transformer_.get_feature_names_out(_names_in(self, input_features))
            if len(names) == self.n_features_out_:
                return np.asarray([str(n) for n in names], dtype=object)
        except (AttributeError, TypeError, ValueError):
            pass
        return np.asarray([f"{self.name}_{i}" for i in range(self.n_features_out_)], dtype=object)


def _dense(out: Any) -> Any:
    return out.toarray() if hasattr(out, "toarray") else out
