"""What every stage runs on: the Ray connection, background work as futures, and plain-value helpers."""

from workbench.runtime._background import BackgroundHandle
from workbench.runtime._ray import RayConnection, connect, free_port
from workbench.runtime._values import jsonable, percentile
from workbench.runtime._warm_trials import parked_trials, release_parked_trials, warm_trials

__all__ = [
    "RayConnection",
    "connect",
    "free_port",
    "BackgroundHandle",
    "jsonable",
    "percentile",
    "warm_trials",
    "parked_trials",
    "release_parked_trials",
]
