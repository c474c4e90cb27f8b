"""scikit-learn model families, their default search spaces, and the fit used by trials and registration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from workbench.evaluation import METRICS, score
from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FAMILIES",
    "METRICS",
    "default_search_space",
    "make_estimator",
    "family_params",
    "make_pipeline",
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
}


def default_search_space(
    families: tuple[str, ...] = ("logistic_regression", "random_forest"),
    *,
    search_alg: Any = "random",
) -> dict[str, Any]:
    """A Tune search space over model families; each trial samples every parameter, its family uses its own.

    ``search_alg`` shapes the space: ``"random"`` (default) crosses a
    ``grid_search`` over the families with random parameter domains;
    ``"grid"`` is a ``grid_search`` over the families with fixed, sensible
    parameters (for a richer grid, pass your own space of ``grid_search``
    values); ``"optuna"``, ``"hyperopt"`` or a ``Searcher`` instance get a
    ``tune.choice`` over the families, because those searchers do not accept
    ``grid_search``.
    """
    from ray import tune

    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown model family {unknown}; choose from {sorted(FAMILIES)}")
    if search_alg == "grid":
        return {
            "family": tune.grid_search(list(families)),
            "C": 1.0,
            "n_estimators": 100,
            "max_depth": 6,
            "learning_rate": 0.1,
        }
    family = (
        tune.grid_search(list(families)) if search_alg == "random" else tune.choice(list(families))
    )
    return {
        "family": family,
        "C": tune.loguniform(1e-2, 1e2),
        "n_estimators": tune.randint(20, 120),
        "max_depth": tune.randint(2, 10),
        "learning_rate": tune.loguniform(1e-2, 3e-1),
    }


def family_params(config: dict[str, Any]) -> dict[str, Any]:
    """The estimator parameters a config sets for its family (other sampled keys are ignored)."""
    family = config.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; choose from {sorted(FAMILIES)}")
    mapping = FAMILIES[family][1]
    return {param: config[key] for key, param in mapping.items() if key in config}


def make_estimator(config: dict[str, Any], *, seed: int) -> Any:
    import importlib

    path, _ = FAMILIES[config["family"]]
    module, _, cls_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), cls_name)
    params = family_params(config)
    if "random_state" in cls().get_params():
        params["random_state"] = seed
    if config["family"] == "logistic_regression":
        params["max_iter"] = 2000
    return cls(**params)


def make_pipeline(config: dict[str, Any], kinds: dict[str, str], *, seed: int) -> Any:
    """Preprocessing (fitted on the training fold only) followed by the configured estimator."""
    from sklearn.pipeline import Pipeline

    from workbench.features import build_preprocessor

    return Pipeline(
        [("preprocess", build_preprocessor(kinds)), ("model", make_estimator(config, seed=seed))]
    )


def fold_scores(
    config: dict[str, Any],
    X: pd.DataFrame,
    y: Any,
    kinds: dict[str, str],
    *,
    folds: int,
    seed: int,
    start: int = 0,
) -> Iterator[dict[str, float]]:
    """Metrics of each stratified fold in turn, from fold ``start`` on; the pipeline is refitted inside
    each fold (no leakage). The split depends only on ``seed``, so a resumed trial sees the same folds."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for i, (train_idx, test_idx) in enumerate(splitter.split(X, y)):
        if i < start:
            continue
        pipe = make_pipeline(config, kinds, seed=seed)
        pipe.fit(X.iloc[train_idx], y[train_idx])
        yield score(y[test_idx], pipe.predict(X.iloc[test_idx]))


def mean_scores(per_fold: list[dict[str, float]]) -> dict[str, float]:
    import numpy as np

    return {k: float(np.mean([m[k] for m in per_fold])) for k in METRICS}


def cross_validate(
    config: dict[str, Any], X: pd.DataFrame, y: Any, kinds: dict[str, str], *, folds: int, seed: int
) -> dict[str, float]:
    """Mean metrics over stratified folds; the pipeline is refitted inside each fold (no leakage)."""
    return mean_scores(list(fold_scores(config, X, y, kinds, folds=folds, seed=seed)))
