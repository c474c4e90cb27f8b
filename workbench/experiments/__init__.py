"""Training and hyperparameter search on Ray Tune, every trial recorded."""

from workbench.experiments._compare import (
    compare_trials,
    metric_curves,
    plot_metric_curves,
    plot_parallel_coordinates,
    trial_columns,
)
from workbench.experiments._estimators import (
    FAMILIES,
    allow_import,
    default_search_space,
    feature_choices,
)
from workbench.experiments._experiments import (
    Experiments,
    SearchResult,
    code_version,
    package_versions,
)
from workbench.experiments._handle import SearchHandle
from workbench.experiments._options import SCHEDULERS, SEARCH_ALGS
from workbench.experiments._torch import torch_mlp_space, torch_mlp_trainable

__all__ = [
    "Experiments",
    "SearchResult",
    "SearchHandle",
    "FAMILIES",
    "allow_import",
    "default_search_space",
    "feature_choices",
    "code_version",
    "package_versions",
    "SEARCH_ALGS",
    "SCHEDULERS",
    "torch_mlp_trainable",
    "torch_mlp_space",
    "compare_trials",
    "trial_columns",
    "metric_curves",
    "plot_parallel_coordinates",
    "plot_metric_curves",
]
