"""What a model version's artifact holds: the fitted preprocessing + estimator pipeline and its signature."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from workbench.features import coerce_records
from workbench.registry._fast import CompiledPipeline, compile_pipeline

__all__ = ["ModelBundle", "allow_version_mismatch", "check_versions", "training_packages"]

_ALLOW: ContextVar[bool] = ContextVar("allow_version_mismatch", default=False)


@dataclass
class ModelBundle:
    """A fitted sklearn ``Pipeline`` (preprocess → model) with the signature it was trained on.

    The same object is used to evaluate the model and to serve it, so the
    preprocessing applied at serving time is exactly the one fitted at training.

    Attributes
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``preprocess`` (the fitted :func:`~workbench.features.build_preprocessor`) and
        ``model``.
    features : dict
        Feature name → kind (``number``, ``string``, ``boolean``, ``datetime``), in input order.
    target : str
        Name of the label column.
    classes : list
        Label values, indexed by the estimator's integer classes (empty for regression). They
        keep the target's type (ints, floats, booleans or strings: what a served model answers)
        in natural order (2 before 10); models trained before that hold strings.
    task : str
        ``classification`` or ``regression``.
    params : dict
        The configuration it was fitted with (family, estimator parameters, seed, and the
        ``features`` spec when one was given).
    feature_spec : dict or None
        The :class:`~workbench.features.FeatureSpec` (as its dict) of the ``preprocess`` step;
        None for the default pipeline.
    feature_names : list of str
        The columns the fitted preprocessing generates (what the estimator sees), read from
        the pipeline when not given; empty for a model that preprocesses by itself.
    packages : dict
        Versions it was trained under (``python``, ``scikit-learn``, ``numpy``, and ``torch``
        when the model uses it), recorded when not given. Unpickling the bundle compares them to
        the installed ones: another minor/patch version warns (VersionMismatchWarning), another
        major version raises VersionMismatchError unless :func:`allow_version_mismatch` is on.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> from sklearn.pipeline import Pipeline
    >>> from workbench.features import build_preprocessor
    >>> kinds = {"x": "number", "c": "string"}
    >>> X = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    >>> pipe = Pipeline([("preprocess", build_preprocessor(kinds)), ("model", LinearRegression())])
    >>> bundle = ModelBundle(pipe.fit(X, [1.0, 2.0, 3.0]), kinds, "y", [], task="regression")
    >>> bundle.feature_names
    ['x', 'c_a', 'c_b']
    """

    pipeline: Any
    features: dict[str, str]
    target: str
    classes: list[Any]
    task: str = "classification"
    params: dict[str, Any] = field(default_factory=dict)
    feature_spec: dict[str, Any] | None = None
    feature_names: list[str] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.feature_names:
            self.feature_names = _generated_names(self.pipeline)
        if not self.packages:
            self.packages = training_packages(self.pipeline)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # bundles pickled before feature specs existed lack the two attributes
        state.setdefault("feature_spec", None)
        if not state.get("feature_names"):
            state["feature_names"] = _generated_names(state.get("pipeline"))
        # bundles pickled before versions were recorded have none: nothing to compare
        state.setdefault("packages", {})
        check_versions(state["packages"], what="this model bundle")
        self.__dict__.update(state)

    @property
    def probabilities_missing(self) -> str | None:
        """Why this model gives no class probabilities (a regressor, an estimator without
        ``predict_proba`` such as an SVC fitted without ``probability=True``), or None when it
        gives them."""
        if self.task == "regression":
            return "it is a regression model: it predicts numbers, not classes"
        if not hasattr(self.pipeline, "predict_proba"):
            model = getattr(self.pipeline, "steps", [(None, self.pipeline)])[-1][1]
            return (
                f"its estimator ({type(model).__name__}) has no predict_proba (an SVC needs "
                "probability=True)"
            )
        return None

    def predict_proba_frame(self, frame: Any) -> tuple[list[Any], list[list[float]]]:
        """Labels (as :meth:`predict_frame` gives them) and class probabilities for a pandas
        frame of features.

        The probabilities have one row per input row and one column per class, in the order of
        :attr:`classes`; each row sums to 1. The preprocessing runs once for both. Raises
        InvalidRequestError (field ``probabilities``) for a model without them;
        :attr:`probabilities_missing` says why.

        Examples
        --------
        >>> labels, proba = bundle.predict_proba_frame(X)         # doctest: +SKIP
        >>> labels[0], dict(zip(bundle.classes, proba[0]))        # doctest: +SKIP
        (1, {0: 0.08, 1: 0.92})
        """
        self._require_probabilities()
        steps = getattr(self.pipeline, "steps", None)
        model, features = self.pipeline, frame
        if steps:
            model = steps[-1][1]
            if len(steps) > 1:  # preprocess once for predict and predict_proba
                features = self.pipeline[:-1].transform(frame)
        return self._labels_and_probabilities(model, features)

    def _require_probabilities(self) -> None:
        from workbench.exceptions import InvalidRequestError

        why = self.probabilities_missing
        if why is not None:
            raise InvalidRequestError(
                f"this model has no class probabilities: {why}; ask for predictions only",
                field="probabilities",
            )

    def _labels_and_probabilities(
        self, model: Any, features: Any
    ) -> tuple[list[Any], list[list[float]]]:
        """The estimator's labels and class probabilities (in :attr:`classes` order) for its input."""
        import numpy as np

        labels = [self.classes[int(i)] for i in model.predict(features)]
        proba = np.asarray(model.predict_proba(features), dtype=float)
        # the estimator's classes are the integer codes of self.classes; a code it never saw in
        # training (absent from classes_) has probability 0
        codes = [int(c) for c in getattr(model, "classes_", range(proba.shape[1]))]
        if codes != list(range(len(self.classes))):
            full = np.zeros((proba.shape[0], len(self.classes)))
            full[:, codes] = proba
            proba = full
        return labels, proba.tolist()

    def predict_proba_records(
        self, records: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Any], list[list[float]]]:
        """Validate JSON-like records against the signature; their labels and class
        probabilities (as :meth:`predict_proba_frame` gives them, through :attr:`compiled` when
        there is one; raises InvalidRequestError)."""
        if self.compiled is None:
            return self.predict_proba_frame(
                coerce_records(records, self.features, allow_missing=True)
            )
        features = self.compiled.transform(records)
        self._require_probabilities()
        return self._labels_and_probabilities(self.compiled.estimator, features)

    @property
    def signature(self) -> dict[str, Any]:
        """What the registry records: input features and kinds, target, classes, task, the
        generated feature names and the package versions it was trained under."""
        return {
            "features": dict(self.features),
            "target": self.target,
            "classes": list(self.classes),
            "task": self.task,
            "feature_names": list(self.feature_names),
            "packages": dict(self.packages),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("compiled", None)  # rebuilt from the pipeline after loading
        return state

    @functools.cached_property
    def compiled(self) -> CompiledPipeline | None:
        """The pipeline compiled once for JSON records (:mod:`workbench.registry._fast`: records
        straight to a numpy array, no pandas frame), or None when a step cannot be replayed."""
        return compile_pipeline(self.pipeline, self.features)

    def predict_frame(self, frame: Any) -> list[Any]:
        """Predict for a pandas frame of features; returns label values (floats for regression)."""
        return self._labels(self.pipeline.predict(frame))

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Validate JSON-like records against the signature and predict (raises InvalidRequestError).

        Runs :attr:`compiled` when there is one, else the reference path (:meth:`predict_frame`
        on :func:`~workbench.features.coerce_records`); both give the same predictions.
        """
        if self.compiled is None:
            return self.predict_frame(coerce_records(records, self.features, allow_missing=True))
        return self._labels(self.compiled.predict(records))

    def _labels(self, out: Any) -> list[Any]:
        """The estimator's output as label values (floats for regression)."""
        if self.task == "regression":
            return [float(v) for v in out]
        return [self.classes[int(i)] for i in out]


def _generated_names(pipeline: Any) -> list[str]:
    """The fitted preprocessing's output names, or [] (no ``preprocess`` step, not fitted)."""
    from workbench.exceptions import ConfigError
    from workbench.features import feature_names

    steps = getattr(pipeline, "named_steps", None)
    if steps is None or "preprocess" not in steps:
        return []
    try:
        return feature_names(pipeline)
    except (ConfigError, AttributeError, ValueError, TypeError):
        return []  # a user step without get_feature_names_out


def training_packages(pipeline: Any) -> dict[str, str]:
    """The versions a bundle of ``pipeline`` is trained under: python, scikit-learn, numpy, and
    torch when a step's class comes from torch or workbench's torch estimator.

    Examples
    --------
    >>> sorted(training_packages(None))
    ['numpy', 'python', 'scikit-learn']
    """
    import platform

    from workbench.registry._loader import installed_versions

    names = ["scikit-learn", "numpy"]
    steps = pipeline.get_params(deep=True).values() if hasattr(pipeline, "get_params") else ()
    if any(type(v).__module__.startswith(("torch", "workbench.experiments._torch")) for v in steps):
        names.append("torch")
    return {"python": platform.python_version(), **installed_versions(names)}


@functools.lru_cache(maxsize=32)
def _installed(names: tuple[str, ...]) -> dict[str, str]:
    # every unpickled bundle asks (a serving replica, each Ray Data actor): metadata lookups cost
    # ~3 ms, and what is installed does not change under a running process
    from workbench.registry._loader import installed_versions

    return installed_versions(names)


@contextmanager
def allow_version_mismatch(allow: bool = True) -> Iterator[None]:
    """Within the block, bundles trained under another major version load (with a warning)
    instead of raising VersionMismatchError.

    Examples
    --------
    >>> with allow_version_mismatch():                           # doctest: +SKIP
    ...     bundle = bench.registry.load("cancer", "champion")
    """
    token = _ALLOW.set(allow)
    try:
        yield
    finally:
        _ALLOW.reset(token)


def check_versions(trained: Mapping[str, str], *, what: str = "this model bundle") -> None:
    """Warn (VersionMismatchWarning) when ``trained`` differs from the installed versions in
    minor/patch; raise VersionMismatchError across a major version, naming both versions and
    what to install, unless :func:`allow_version_mismatch` or WORKBENCH_ALLOW_VERSION_MISMATCH=1
    allows it."""
    from workbench.exceptions import VersionMismatchError, VersionMismatchWarning
    from workbench.registry._loader import (
        _allowed,
        mismatch_message,
        version_problems,
    )

    if not trained:
        return
    minor, major = version_problems(trained, _installed(tuple(sorted(trained))))
    if major and not (_ALLOW.get() or _allowed()):
        raise VersionMismatchError(mismatch_message(major, trained, what))
    if minor or major:
        warnings.warn(
            f"{what}: {'; '.join(minor + major)}; its predictions may differ. Install the "
            "training versions to reproduce them exactly.",
            VersionMismatchWarning,
            stacklevel=2,
        )
