"""Live progress displays for Tune searches: a terminal line, a notebook widget, or nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
]

if TYPE_CHECKING:
    from workbench.ui._widget import ProgressWidget


def __getattr__(name: str) -> Any:
    # anywidget/ipywidgets take ~0.3 s to import: load them only when the widget is used.
    if name == "ProgressWidget":
        from workbench.ui._widget import ProgressWidget

        return ProgressWidget
    raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
