"""Notebook and terminal displays: Tune progress, and live widgets for experiments, registry, deployments, monitors, lineage, datasets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.ui._display import register_displays
from workbench.ui._factory import in_notebook_kernel, make_progress
from workbench.ui._format import format_progress_line
from workbench.ui._terminal import NullProgress, ProgressDisplay, TerminalProgress

__all__ = [
    "ProgressDisplay",
    "TerminalProgress",
    "ProgressWidget",
    "NullProgress",
    "make_progress",
    "in_notebook_kernel",
    "format_progress_line",
    "register_displays",
    "ExperimentWidget",
    "RegistryWidget",
    "DeploymentWidget",
    "MonitorWidget",
    "LineageWidget",
    "DatasetWidget",
    "Widgets",
]

if TYPE_CHECKING:
    from workbench.ui._progress_widget import ProgressWidget
    from workbench.ui._widgets import (
        DatasetWidget,
        DeploymentWidget,
        ExperimentWidget,
        LineageWidget,
        MonitorWidget,
        RegistryWidget,
        Widgets,
    )


def __getattr__(name: str) -> Any:
    # anywidget/ipywidgets take ~0.3 s to import: load them only when the widget is used.
    if name == "ProgressWidget":
        from workbench.ui._progress_widget import ProgressWidget

        return ProgressWidget
    # names of __all__ bound above never get here: the rest are the live widgets
    if name in __all__:
        from workbench.ui import _widgets

        return getattr(_widgets, name)
    raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
