"""A model pipeline compiled once at load: JSON records straight to a numpy array, no pandas frame.

The reference path, :meth:`ModelBundle.predict_frame` on :func:`~workbench.features.coerce_records`,
builds a pandas frame per request and runs the fitted ``ColumnTransformer`` on it; for one record
of a 30-feature logistic regression that is ~7 ms around ~0.1 ms of arithmetic.
:func:`compile_pipeline` reads the fitted steps once and replays what they compute on numpy
arrays:

- the records are validated with the same checks (:func:`~workbench.features.record_columns`);
- column steps made of ``SimpleImputer``, ``StandardScaler``, ``RobustScaler`` and
  ``OneHotEncoder`` (unknown categories ignored, nothing dropped, dense) are fused into array
  operations; any other column step (datetime parts, target encoding, user steps...) runs its own
  ``transform`` on a frame of just its columns, as the ``ColumnTransformer`` would call it;
- the steps after the column step (user steps, feature selection) and the estimator run exactly
  as the scikit-learn ``Pipeline`` runs them, on the column step's numpy output.

The arithmetic is the fitted steps' own, in the same order, so the array is the pipeline's bit for
bit (``tests/test_fast_predict.py`` compares both on thousands of random records with nulls,
unseen categories and out-of-range values). A pipeline with a step it cannot replay (a column
step with ``set_output(transform="pandas")``, a sparse output, a passthrough remainder) is not
compiled: :func:`compile_pipeline` returns None and the reference path serves it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from workbench.features import columns_frame, record_columns
from workbench.features._spec import NUMBER

__all__ = ["CompiledPipeline", "compile_pipeline"]

Op = Callable[[np.ndarray], np.ndarray]


class _NotCompilable(Exception):
    """A step the compiled path does not replay; the reference path serves the pipeline."""


class CompiledPipeline:
    """What a fitted model pipeline computes, from validated records to the estimator's output.

    Built by :func:`compile_pipeline`; ``transform`` is the estimator's input array, ``predict``
    and ``predict_proba`` the estimator's own methods on it.
    """

    def __init__(
        self,
        kinds: Mapping[str, str],
        branches: list[tuple[list[str], list[Op] | Any]],
        after: list[Any],
        estimator: Any,
    ) -> None:
        self.kinds = dict(kinds)
        self._branches = branches
        self._after = after
        self.estimator = estimator

    def transform(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The array the estimator sees for these records (raises InvalidRequestError)."""
        columns = record_columns(records, self.kinds, allow_missing=True)
        parts = []
        for cols, step in self._branches:
            if isinstance(step, list):
                x = _matrix(columns, cols, self.kinds)
                for op in step:
                    x = op(x)
            else:  # the step's own transform, on the frame the ColumnTransformer would give it
                x = step.transform(columns_frame({c: columns[c] for c in cols}, _kinds(self, cols)))
                if hasattr(x, "toarray"):
                    x = x.toarray()
            parts.append(x)
        out = np.hstack(parts)
        for step in self._after:
            out = step.transform(out)
        return out

    def predict(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.estimator.predict(self.transform(records))

    def predict_proba(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.estimator.predict_proba(self.transform(records))


def _kinds(compiled: CompiledPipeline, cols: list[str]) -> dict[str, str]:
    return {c: compiled.kinds[c] for c in cols}


def _matrix(columns: Mapping[str, list[Any]], cols: list[str], kinds: Mapping[str, str]) -> Any:
    """The 2-D array a column step's first transformer gets from the frame's columns: float64 for
    numbers (as the frame's float64 columns convert), objects otherwise."""
    if all(kinds[c] == NUMBER for c in cols):
        return np.array([columns[c] for c in cols], dtype=np.float64).T
    n = len(columns[cols[0]])
    out = np.empty((n, len(cols)), dtype=object)
    for j, c in enumerate(cols):
        out[:, j] = columns[c]
    return out


def compile_pipeline(pipeline: Any, kinds: Mapping[str, str]) -> CompiledPipeline | None:
    """The fitted ``Pipeline`` (preprocessing → estimator) compiled for records of ``kinds``, or
    None when one of its steps cannot be replayed (the reference path then serves it)."""
    try:
        return _compile(pipeline, kinds)
    except _NotCompilable:
        return None


def _compile(pipeline: Any, kinds: Mapping[str, str]) -> CompiledPipeline:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) < 2:
        raise _NotCompilable
    steps = _flatten(pipeline.steps[:-1])
    estimator = pipeline.steps[-1][1]
    if not steps or not isinstance(steps[0], ColumnTransformer):
        raise _NotCompilable
    columns = steps[0]
    _default_output(columns)
    if getattr(columns, "sparse_output_", False):
        raise _NotCompilable
    branches: list[tuple[list[str], list[Op] | Any]] = []
    for _name, step, cols in columns.transformers_:
        if isinstance(step, str):
            if step == "drop":
                continue
            raise _NotCompilable  # passthrough keeps the frame's dtypes: not replayed
        if not isinstance(cols, list | tuple) or not all(c in kinds for c in cols):
            raise _NotCompilable
        if not cols:
            continue
        _default_output(step)
        try:
            branches.append((list(cols), _fused(step)))
        except _NotCompilable:
            branches.append((list(cols), step))
    if not branches:
        raise _NotCompilable
    for step in steps[1:]:
        _default_output(step)
    return CompiledPipeline(kinds, branches, steps[1:], estimator)


def _flatten(steps: list[tuple[str, Any]]) -> list[Any]:
    from sklearn.pipeline import Pipeline

    out: list[Any] = []
    for _, step in steps:
        if step is None or step == "passthrough":
            continue
        out += _flatten(step.steps) if isinstance(step, Pipeline) else [step]
    return out


def _default_output(step: Any) -> None:
    """Refuse a step that outputs frames (``set_output``): the compiled path passes arrays."""
    from sklearn.pipeline import Pipeline

    for s in _flatten(step.steps) if isinstance(step, Pipeline) else [step]:
        config = getattr(s, "_sklearn_output_config", {}) or {}
        if config.get("transform", "default") != "default":
            raise _NotCompilable


def _fused(step: Any) -> list[Op]:
    """A column step (one transformer or a Pipeline of them) as array operations."""
    from sklearn.pipeline import Pipeline

    parts = _flatten(step.steps) if isinstance(step, Pipeline) else [step]
    if not parts:
        raise _NotCompilable
    return [_op(p) for p in parts]


def _op(step: Any) -> Op:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, RobustScaler, StandardScaler

    kind = type(step)
    if kind is SimpleImputer:
        return _imputer(step)
    if kind is StandardScaler:
        return _affine(
            step.mean_ if step.with_mean else None, step.scale_ if step.with_std else None
        )
    if kind is RobustScaler:
        return _affine(
            step.center_ if step.with_centering else None,
            step.scale_ if step.with_scaling else None,
        )
    if kind is OneHotEncoder:
        return _one_hot(step)
    raise _NotCompilable


def _is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _imputer(step: Any) -> Op:
    stats = step.statistics_
    if step.add_indicator or not _is_nan(step.missing_values):
        raise _NotCompilable
    if any(_is_nan(v) for v in stats.tolist()):
        raise _NotCompilable  # an all-missing training column is dropped: not replayed

    def impute(x: np.ndarray) -> np.ndarray:
        if x.dtype == object:
            out = x.copy()
            for j, fill in enumerate(stats.tolist()):
                column = out[:, j]
                for i, v in enumerate(column):
                    if _is_nan(v):
                        column[i] = fill
            return out
        return np.where(np.isnan(x), stats, x)

    return impute


def _affine(center: Any, scale: Any) -> Op:
    """``(x - center) / scale``, each part only when the scaler applies it (its own order)."""

    def apply(x: np.ndarray) -> np.ndarray:
        out = np.array(x, dtype=np.float64)
        if center is not None:
            out -= center
        if scale is not None:
            out /= scale
        return out

    return apply


def _one_hot(step: Any) -> Op:
    if (
        step.handle_unknown != "ignore"
        or step.drop_idx_ is not None
        or getattr(step, "_infrequent_enabled", False)
        or step.sparse_output
    ):
        raise _NotCompilable
    lookups = []
    for categories in step.categories_:
        values = categories.tolist()
        if any(_is_nan(v) for v in values):
            raise _NotCompilable  # NaN as a category follows sklearn's own NaN matching
        lookups.append({v: k for k, v in enumerate(values)})
    offsets = np.cumsum([0] + [len(t) for t in lookups])
    dtype = step.dtype

    def encode(x: np.ndarray) -> np.ndarray:
        out = np.zeros((x.shape[0], int(offsets[-1])), dtype=dtype)
        for j, table in enumerate(lookups):
            base = int(offsets[j])
            for i, v in enumerate(x[:, j].tolist()):
                k = table.get(v)
                if k is not None:  # an unknown category encodes to all zeros
                    out[i, base + k] = 1
        return out

    return encode
