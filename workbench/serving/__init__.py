"""Serving: Ray Serve deployments of model versions with weighted traffic, canaries, rollback and request logging."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.serving.traffic import canary_schedule, choose, normalize, sticky_choice

__all__ = [
    "Serving",
    "DeployProgress",
    "TrafficControl",
    "TrafficUpdate",
    "CanaryRollout",
    "BlueGreen",
    "Shadow",
    "BundleScorer",
    "build_app",
    "normalize",
    "choose",
    "sticky_choice",
    "canary_schedule",
]

if TYPE_CHECKING:
    from workbench.serving._batch import BundleScorer
    from workbench.serving._blue_green import BlueGreen
    from workbench.serving._canary import CanaryRollout
    from workbench.serving._control import TrafficControl, TrafficUpdate
    from workbench.serving._progress import DeployProgress
    from workbench.serving._router import build_app
    from workbench.serving._serving import Serving
    from workbench.serving._shadow import Shadow

# Ray and starlette load only when one of these is used, so `import workbench` stays fast.
_LAZY = {
    "Serving": "workbench.serving._serving",
    "DeployProgress": "workbench.serving._progress",
    "TrafficControl": "workbench.serving._control",
    "TrafficUpdate": "workbench.serving._control",
    "CanaryRollout": "workbench.serving._canary",
    "BlueGreen": "workbench.serving._blue_green",
    "Shadow": "workbench.serving._shadow",
    "BundleScorer": "workbench.serving._batch",
    "build_app": "workbench.serving._router",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.serving' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
