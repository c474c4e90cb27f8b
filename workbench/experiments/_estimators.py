"""scikit-learn model families, their default search spaces, and the fit used by trials and registration."""

from __future__ import annotations

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
) -> dict[str, Any]:
    """A Tune search space over model families; each trial samples every parameter, its family uses its own."""
    from ray import tune

    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown model family {unknown}; choose from {sorted(FAMILIES)}")
    return {
        "family": tune.grid_search(list(families)),
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


def cross_validate(
    config: dict[str, Any], X: pd.DataFrame, y: Any, kinds: dict[str, str], *, folds: int, seed: int
) -> dict[str, float]:
    """Mean metrics over stratified folds; the pipeline is refitted inside each fold (no leakage)."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    per_fold = []
    for train_idx, test_idx in splitter.split(X, y):
        pipe = make_pipeline(config, kinds, seed=seed)
        pipe.fit(X.iloc[train_idx], y[train_idx])
        per_fold.append(score(y[test_idx], pipe.predict(X.iloc[test_idx])))
    return {k: float(np.mean([m[k] for m in per_fold])) for k in METRICS}
