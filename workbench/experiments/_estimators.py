"""Model families (scikit-learn's and the torch MLP), their default search spaces, and the fit used
by trials and registration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from workbench.evaluation import regression_score, score
from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FAMILIES",
    "TASK_FAMILIES",
    "estimator_class",
    "allow_import",
    "allowed_imports",
    "check_import_path",
    "check_config_imports",
    "family_task",
    "default_search_space",
    "make_estimator",
    "family_params",
    "make_pipeline",
    "feature_choices",
    "cross_validate",
    "fold_scores",
    "mean_scores",
]

# family → (import path, {config key: estimator parameter})
FAMILIES: dict[str, tuple[str, dict[str, str]]] = {
    "logistic_regression": ("sklearn.linear_model.LogisticRegression", {"C": "C"}),
    "random_forest": (
        "sklearn.ensemble.RandomForestClassifier",
        {"n_estimators": "n_estimators", "max_depth": "max_depth"},
    ),
    "gradient_boosting": (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"learning_rate": "learning_rate", "max_depth": "max_depth"},
    ),
    "ridge": ("sklearn.linear_model.Ridge", {"alpha": "alpha"}),
    "random_forest_regressor": (
        "sklearn.ensemble.RandomForestRegressor",
        {"n_estimators": "n_estimators", "max_depth": "max_depth"},
    ),
    "gradient_boosting_regressor": (
        "sklearn.ensemble.HistGradientBoostingRegressor",
        {"learning_rate": "learning_rate", "max_depth": "max_depth"},
    ),
    # the best of a torch_mlp_trainable search (torch_mlp_space names this family); torch loads
    # only when the estimator fits or predicts
    "torch_mlp": (
        "workbench.experiments._torch_estimator.TorchMLPClassifier",
        {
            "hidden": "hidden",
            "lr": "lr",
            "weight_decay": "weight_decay",
            "batch_size": "batch_size",
            "epochs": "epochs",
            "seed": "random_state",  # a trial seeds itself from its config's seed when it has one
        },
    ),
}
# the families each task searches by default (automatic mode searches all of them)
TASK_FAMILIES: dict[str, tuple[str, ...]] = {
    "classification": ("logistic_regression", "random_forest", "gradient_boosting"),
    "regression": ("ridge", "random_forest_regressor", "gradient_boosting_regressor"),
}


# Import paths a recorded row (a trial's config, a feature step, a trainable's qualname) may name:
# a row is data, and importing what it names runs that module's code. Workbench's own families
# and trainables, scikit-learn's estimators and transformers, and what the caller allows.
# Importing any module of scikit-learn (or of workbench.features) runs only that installed code.
_ALLOWED_PREFIXES = ("sklearn.", "workbench.features.")
# workbench's own trainables, by the path a search records for them
_OWN_TRAINABLES = ("workbench.experiments._torch.torch_mlp_trainable",)
_allowed: set[str] = set()
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def allow_import(target: Any) -> str:
    """Let recorded rows name ``target`` (a class, function or ``"module.qualname"`` path) for
    import in this process, beyond workbench's own families and trainables and scikit-learn's
    classes; returns the path allowed.

    A search given ``estimator=cls`` or ``trainable=fn`` allows them itself; a later process that
    reproduces or resumes a row naming them allows them again with this call.

    Examples
    --------
    >>> allow_import("sklearn.svm.SVC")
    'sklearn.svm.SVC'
    """
    path = target if isinstance(target, str) else _path_of(target)
    if not _is_path(path) or "<locals>" in path or path.startswith("__main__."):
        raise ConfigError(
            f"{target!r} cannot be allowed for import: give a class or function defined at the top "
            "level of an importable module, or its 'module.qualname' path"
        )
    _allowed.add(path)
    return path


def allowed_imports() -> list[str]:
    """The paths :func:`allow_import` allowed in this process (sent to Tune's trials with a search)."""
    return sorted(_allowed)


def _path_of(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"


def _is_path(path: Any) -> bool:
    parts = path.split(".") if isinstance(path, str) else []
    return len(parts) >= 2 and all(_IDENTIFIER.fullmatch(p) for p in parts)


def check_import_path(path: Any, *, what: str) -> str:
    """``path`` when a recorded row may name it for import, else ``ConfigError`` before anything is
    imported: ``os.system``, a planted module, anything outside workbench's own code and
    scikit-learn that :func:`allow_import` did not allow.

    Examples
    --------
    >>> check_import_path("os.system", what="model family")
    Traceback (most recent call last):
    ...
    workbench.exceptions.ConfigError: model family 'os.system' is not on the import allow-list ...
    """
    if not _is_path(path):
        raise ConfigError(f"{what} {path!r} is not an import path 'module.name'")
    own = {p for p, _ in FAMILIES.values()} | set(_OWN_TRAINABLES)
    if path in _allowed or path in own or path.startswith(_ALLOWED_PREFIXES):
        return path
    raise ConfigError(
        f"{what} {path!r} is not on the import allow-list (workbench's own families and "
        "trainables, scikit-learn, and what workbench.experiments.allow_import allowed); nothing "
        f"was imported. If you trust it, call workbench.experiments.allow_import({path!r}) first"
    )


def check_config_imports(config: Any) -> None:
    """Check every import path a recorded trial config names (its ``family`` and its feature
    spec's ``steps``) against the allow-list, before any of them is imported."""
    if not isinstance(config, dict):
        raise ConfigError(f"a trial config must be a dict, got {type(config).__name__}")
    family = config.get("family")
    if isinstance(family, str) and family not in FAMILIES:
        check_import_path(family, what="model family")
    features = config.get("features")
    steps = features.get("steps", ()) if isinstance(features, dict) else ()
    for step in steps if isinstance(steps, list | tuple) else [steps]:
        target = step.get("step") if isinstance(step, dict) else step
        if isinstance(target, str):
            check_import_path(target, what="feature step")


def estimator_class(family: Any) -> type:
    """The scikit-learn estimator class a config's ``family`` names: a family of :data:`FAMILIES`,
    an import path such as ``"sklearn.svm.SVC"``, or the class itself."""
    import importlib

    if isinstance(family, type):
        cls = family
    elif isinstance(family, str) and family in FAMILIES:
        module, _, name = FAMILIES[family][0].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    elif isinstance(family, str) and "." in family:
        check_import_path(family, what="model family")
        module, _, name = family.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            raise ConfigError(
                f"unknown estimator {family!r}: no class {name!r} in module {module!r}"
            ) from None
    elif family is None:
        raise ConfigError(
            "the config names no model family: give it a 'family' key, one of "
            f"{sorted(FAMILIES)} or a scikit-learn import path such as 'sklearn.svm.SVC'; a "
            "torch_mlp_trainable search records it when its space has 'family': 'torch_mlp' "
            "(torch_mlp_space() does)"
        )
    else:
        raise ConfigError(
            f"unknown model family {family!r}; choose from {sorted(FAMILIES)}, or give a "
            "scikit-learn estimator class or import path such as 'sklearn.svm.SVC'"
        )
    if not (isinstance(cls, type) and hasattr(cls, "fit") and hasattr(cls, "get_params")):
        raise ConfigError(
            f"{family!r} is not a scikit-learn estimator (it needs fit and get_params)"
        )
    return cls


def family_task(family: Any) -> str:
    """``classification`` or ``regression``, from the estimator's scikit-learn estimator type.

    A family of :data:`TASK_FAMILIES` is answered from that table without importing its class:
    a search checks its families in the driver before the first trial starts, and importing
    scikit-learn there cost 1.0 s of CPU (1.5-2 s on a busy 2-core machine) on the way to a cold
    search's first result, while the trials import it again in their own processes
    (``tests/test_family_task.py`` checks the table against each estimator's own type).
    """
    if isinstance(family, str):
        for task, families in TASK_FAMILIES.items():
            if family in families:
                return task
    cls = estimator_class(family)
    kind = getattr(cls, "_estimator_type", None)
    if kind is None:
        try:
            kind = cls().__sklearn_tags__().estimator_type
        except Exception:  # an estimator that cannot be built without arguments
            kind = None
    if kind == "classifier":
        return "classification"
    if kind == "regressor":
        return "regression"
    raise ConfigError(f"{family!r} is neither a classifier nor a regressor")


def default_search_space(
    families: tuple[str, ...] | None = None,
    *,
    search_alg: Any = "random",
    task: str = "classification",
) -> dict[str, Any]:
    """A Tune search space over model families; each trial samples every parameter, its family uses its own.

    ``families`` defaults to logistic regression and random forest for
    classification, ridge and random forest for regression. ``search_alg``
    shapes the space: ``"random"`` (default) crosses a ``grid_search`` over
    the families with random parameter domains; ``"grid"`` is a
    ``grid_search`` over the families with fixed, sensible parameters (for a
    richer grid, pass your own space of ``grid_search`` values);
    ``"optuna"``, ``"hyperopt"`` or a ``Searcher`` instance get a
    ``tune.choice`` over the families, because those searchers do not accept
    ``grid_search``.
    """
    from ray import tune

    if families is None:
        families = TASK_FAMILIES[task][:2] if task in TASK_FAMILIES else ()
        if not families:
            raise ConfigError(f"task must be 'classification' or 'regression', got {task!r}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown model family {unknown}; choose from {sorted(FAMILIES)}")
    if search_alg == "grid":
        return {
            "family": tune.grid_search(list(families)),
            "C": 1.0,
            "alpha": 1.0,
            "n_estimators": 100,
            "max_depth": 6,
            "learning_rate": 0.1,
        }
    family = (
        tune.grid_search(list(families)) if search_alg == "random" else tune.choice(list(families))
    )
    space = {
        "family": family,
        "C": tune.loguniform(1e-2, 1e2),
        "alpha": tune.loguniform(1e-3, 1e2),
        "n_estimators": tune.randint(20, 120),
        "max_depth": tune.randint(2, 10),
        "learning_rate": tune.loguniform(1e-2, 3e-1),
    }
    # keep only parameters some chosen family uses (C for logistic regression, alpha for ridge...)
    used = {key for f in families for key in FAMILIES[f][1]}
    return {k: v for k, v in space.items() if k == "family" or k in used}


def family_params(config: dict[str, Any]) -> dict[str, Any]:
    """The estimator parameters a config sets for its family (other sampled keys are ignored).

    A named family maps config keys to its parameters; an estimator given by
    class or import path takes every config key that is one of its parameters.
    """
    family = config.get("family")
    if isinstance(family, str) and family in FAMILIES:
        mapping = FAMILIES[family][1]
        return {param: config[key] for key, param in mapping.items() if key in config}
    accepted = estimator_class(family)().get_params()
    return {k: v for k, v in config.items() if k != "family" and k in accepted}


def make_estimator(config: dict[str, Any], *, seed: int) -> Any:
    cls = estimator_class(config.get("family"))
    params = family_params(config)
    defaults = cls().get_params()
    if "random_state" in defaults and "random_state" not in params:
        params["random_state"] = seed
    if config.get("family") == "logistic_regression":
        params["max_iter"] = 2000
    return cls(**params)


def make_pipeline(config: dict[str, Any], kinds: dict[str, str], *, seed: int) -> Any:
    """Preprocessing (fitted on the training fold only) followed by the configured estimator.

    The preprocessing is ``build_preprocessor(kinds, config["features"])``: a trial config's
    ``features`` (a :class:`~workbench.features.FeatureSpec` dict) chooses it, and without one
    it is the default pipeline. An estimator with a ``kinds`` parameter (the torch MLP)
    preprocesses by itself, as its trials do (fitted on its own training split), so it gets the
    feature kinds instead of a ``preprocess`` step, and takes no feature spec.

    Examples
    --------
    >>> pipe = make_pipeline(
    ...     {"family": "ridge", "features": {"scale": "robust"}}, {"x": "number"}, seed=0
    ... )
    >>> [name for name, _ in pipe.steps]
    ['preprocess', 'model']
    """
    from sklearn.pipeline import Pipeline

    from workbench.features import build_preprocessor

    estimator = make_estimator(config, seed=seed)
    spec = config.get("features")
    if "kinds" in estimator.get_params():
        if spec is not None:
            raise ConfigError(
                f"model family {config.get('family')!r} preprocesses its inputs itself (the "
                "default pipeline) and takes no feature spec; drop 'features' from its config "
                "or search a scikit-learn family"
            )
        return Pipeline([("model", estimator.set_params(kinds=dict(kinds)))])
    return Pipeline([("preprocess", build_preprocessor(kinds, spec)), ("model", estimator)])


def feature_choices(kinds: dict[str, str], sample: Any = None) -> dict[str, dict[str, Any]]:
    """The preprocessing variants an automatic feature search chooses from, as FeatureSpec dicts.

    Whole specs, so the choice is one categorical value of the search space (searchers
    that need flat spaces take it as it is): ``default`` (today's pipeline), ``baseline``
    (:meth:`FeatureSpec.baseline` of the kinds and ``sample`` rows: missing flags, rare
    categories pooled, text hashed), ``robust`` (baseline with robust scaling and IQR clipping
    with outlier flags), ``interactions`` (baseline with pairwise products of the numbers,
    at most 20; only with two numbers or more) and ``selected`` (baseline with
    mutual-information selection of about the best half of its columns, at least 10).

    Examples
    --------
    >>> sorted(feature_choices({"x": "number", "z": "number", "c": "string"}))
    ['baseline', 'default', 'interactions', 'robust', 'selected']
    >>> feature_choices({"x": "number"})["robust"]["outliers"]
    'iqr'
    """
    from dataclasses import replace

    from workbench.features import FeatureSpec

    base = FeatureSpec.baseline(kinds, sample)
    numbers = sum(1 for k in kinds.values() if k == "number")
    # a generous estimate of the baseline's width: the k of the selection step
    width = numbers * 2 + sum(8 for k in kinds.values() if k != "number")
    variants = {
        "default": FeatureSpec(),
        "baseline": base,
        "robust": replace(base, scale="robust", outliers="iqr", outlier_flags=True),
        "interactions": replace(base, interactions=True),
        "selected": replace(base, select="mutual_info", select_k=max(10, width // 2)),
    }
    if numbers < 2:
        del variants["interactions"]
    return {name: spec.to_dict() for name, spec in variants.items()}


def fold_scores(
    config: dict[str, Any],
    X: pd.DataFrame,
    y: Any,
    kinds: dict[str, str],
    *,
    folds: int,
    seed: int,
    start: int = 0,
    task: str = "classification",
) -> Iterator[dict[str, float]]:
    """Metrics of each fold in turn (stratified for classification), from fold ``start`` on; the
    pipeline is refitted inside each fold (no leakage). The split depends only on ``seed``, so a
    resumed trial sees the same folds.

    A classifier with ``predict_proba`` also reports the probability metrics of
    :data:`workbench.evaluation.PROBA_METRICS` (ROC-AUC, PR-AUC, log-loss, Brier score), so a
    search can rank trials by ``metric="roc_auc"``; a regressor reports R², RMSE, MAE and MAPE.
    """
    import os

    from sklearn.model_selection import KFold, StratifiedKFold

    from workbench.evaluation import Predictions, prediction_metrics

    # private switch for bench/metrics_overhead.py only: today's four label metrics, no probabilities
    basic = os.environ.get("WORKBENCH_FOLD_METRICS") == "basic"
    if task == "regression":
        splitter: Any = KFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (train_idx, test_idx) in enumerate(splitter.split(X, y)):
        if i < start:
            continue
        pipe = make_pipeline(config, kinds, seed=seed)
        pipe.fit(X.iloc[train_idx], y[train_idx])
        X_test, y_test = X.iloc[test_idx], y[test_idx]
        if task == "regression":
            yield regression_score(y_test, pipe.predict(X_test))
            continue
        # preprocess the fold's rows once for both predict and predict_proba
        model = pipe.steps[-1][1]
        features = pipe[:-1].transform(X_test) if len(pipe.steps) > 1 else X_test
        proba = None if basic else _predict_proba(model, features)
        if proba is None:
            yield score(y_test, model.predict(features))
            continue
        yield prediction_metrics(
            Predictions.of(
                "classification",
                y_test,
                model.predict(features),
                classes=model.classes_,
                proba=proba,
            )
        )


def _predict_proba(model: Any, X: Any) -> Any:
    """Class probabilities, or None for an estimator without them (an SVC without
    ``probability=True``)."""
    if not hasattr(model, "predict_proba"):
        return None
    try:
        return model.predict_proba(X)
    except (AttributeError, NotImplementedError):
        return None


def mean_scores(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over the folds that report it.

    Examples
    --------
    >>> mean_scores([{"f1": 0.5, "roc_auc": 0.9}, {"f1": 1.0}])
    {'f1': 0.75, 'roc_auc': 0.9}
    """
    import numpy as np

    names: dict[str, None] = {}
    for m in per_fold:
        names.update(dict.fromkeys(m))
    return {k: float(np.mean([m[k] for m in per_fold if k in m])) for k in names}


def cross_validate(
    config: dict[str, Any],
    X: pd.DataFrame,
    y: Any,
    kinds: dict[str, str],
    *,
    folds: int,
    seed: int,
    task: str = "classification",
) -> dict[str, float]:
    """Mean metrics over the folds; the pipeline is refitted inside each fold (no leakage)."""
    return mean_scores(list(fold_scores(config, X, y, kinds, folds=folds, seed=seed, task=task)))
