"""Pick the right progress display for where the code runs."""

from __future__ import annotations

import sys
from typing import Any

from workbench.exceptions import ConfigError
from workbench.ui._terminal import NullProgress, ProgressDisplay, TerminalProgress

__all__ = ["make_progress", "in_notebook_kernel"]

_MODES = ("auto", "widget", "terminal", "off")


def in_notebook_kernel() -> bool:
    """Whether this process is a Jupyter kernel (the IPython shell is a ``ZMQInteractiveShell``).

    IPython is not imported to find out: if nothing imported it yet, this is
    not a kernel.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # a half-initialised IPython: treat as no kernel
        return False
    if shell is None:
        return False
    # Subclasses count too (Colab's shell derives from ZMQInteractiveShell).
    return any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def make_progress(mode: str | None = "auto", **kwargs: Any) -> ProgressDisplay:
    """Return a progress display for a Tune search, suited to where the code runs.

    Parameters
    ----------
    mode : {"auto", "widget", "terminal", "off"} or None
        ``"auto"``: a :class:`~workbench.ui.ProgressWidget`, displayed at once,
        inside a Jupyter kernel, a :class:`~workbench.ui.TerminalProgress` on
        ``sys.stderr`` otherwise. ``"widget"``/``"terminal"`` force one.
        ``None`` or ``"off"``: a :class:`~workbench.ui.NullProgress`.
    **kwargs
        Passed to the display's constructor (``min_interval=``, ``stream=``...).

    Returns
    -------
    ProgressDisplay
        An object with ``update(summary)`` and ``close()``.

    Raises
    ------
    ConfigError
        If ``mode`` is not one of the values above.

    Examples
    --------
    >>> progress = make_progress("off")
    >>> progress.update({"done": 1}); progress.close()
    """
    if mode is None or mode == "off":
        return NullProgress()
    if mode not in _MODES:
        raise ConfigError(
            f"unknown progress mode {mode!r}: use one of {', '.join(_MODES)} or None."
        )
    if mode == "widget" or (mode == "auto" and in_notebook_kernel()):
        from IPython.display import display

        from workbench.ui._progress_widget import ProgressWidget

        widget = ProgressWidget(**kwargs)
        display(widget)
        return widget
    return TerminalProgress(**kwargs)
