"""The notebook progress widget (anywidget); imported only when a widget is asked for."""

from __future__ import annotations

import math
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import anywidget
import traitlets

from workbench.ui._format import _count
from workbench.ui._throttle import Throttle

__all__ = ["ProgressWidget"]

_HERE = pathlib.Path(__file__).parent
ESM_PATH = _HERE / "progress.js"
CSS_PATH = _HERE / "progress.css"


class ProgressWidget(anywidget.AnyWidget):
    """Live progress of a Ray Tune search in a notebook: bar, trial counts, best so far.

    Feed it with :meth:`update` from any thread (Tune's driver thread does);
    trait changes are sent to the frontend at most every ``min_interval``
    seconds, one message per update. A summary whose status is not
    ``RUNNING`` and :meth:`close` always go through.

    Parameters
    ----------
    min_interval : float
        Minimum seconds between two frontend updates (default 0.2: at most 5/s).
    clock : callable
        Monotonic clock in seconds; injectable for tests.
    **kwargs
        Initial trait values (``experiment="demo"``...).

    Notes
    -----
    :meth:`close` ends the *progress* (flushes the final state) and keeps the
    widget on screen; it does not tear down the comm the way
    ``ipywidgets.Widget.close`` does. Call :meth:`dispose` for that.

    Examples
    --------
    >>> w = ProgressWidget()                                       # doctest: +SKIP
    >>> w.update({"experiment": "demo", "total": 8, "done": 3, "status": "RUNNING"})  # doctest: +SKIP
    >>> w.done                                                     # doctest: +SKIP
    3
    """

    _esm = ESM_PATH
    _css = CSS_PATH

    experiment = traitlets.Unicode("").tag(sync=True)
    total = traitlets.Int(None, allow_none=True).tag(sync=True)
    done = traitlets.Int(0).tag(sync=True)
    running = traitlets.Int(0).tag(sync=True)
    errored = traitlets.Int(0).tag(sync=True)
    pending = traitlets.Int(0).tag(sync=True)
    best_metric = traitlets.Unicode("").tag(sync=True)
    best_value = traitlets.Float(None, allow_none=True).tag(sync=True)
    best_trial = traitlets.Unicode("").tag(sync=True)
    elapsed_s = traitlets.Float(0.0).tag(sync=True)
    status = traitlets.Unicode("RUNNING").tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)  # e.g. "waiting for a node of type gpu_worker"

    def __init__(
        self,
        *,
        min_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._finished = False
        self._last_summary: Mapping[str, Any] | None = None
        self._throttle: Throttle[Mapping[str, Any]] = Throttle(
            self._apply, min_interval=min_interval, trailing=True, clock=clock
        )

    def update(self, summary: Mapping[str, Any]) -> None:
        """Show ``summary`` (a Tune progress dict); a non-``RUNNING`` status is final."""
        if self._finished:
            return
        summary = dict(summary)
        self._last_summary = summary
        final = str(summary.get("status") or "RUNNING") != "RUNNING"
        self._throttle.submit(summary, force=final)
        if final:
            self._finish()

    def close(self) -> None:
        """Show the last summary received, stop updating, keep the widget displayed; idempotent."""
        # getattr: ipywidgets' __del__ calls close() even on a widget whose __init__ failed.
        if getattr(self, "_finished", True):
            return
        if self._last_summary is not None:
            self._throttle.submit(self._last_summary, force=True)
        self._finish()

    def dispose(self) -> None:
        """Stop updating and close the widget's comm (removes it from the page)."""
        self.close()
        super().close()

    def _finish(self) -> None:
        self._finished = True
        self._throttle.stop()

    def _apply(self, summary: Mapping[str, Any]) -> None:
        best = summary.get("best")
        values: dict[str, Any] = {
            "experiment": str(summary.get("experiment") or ""),
            "total": _opt_int(summary.get("total")),
            "done": _int(summary.get("done")),
            "running": _int(summary.get("running")),
            "errored": _int(summary.get("errored")),
            "pending": _int(summary.get("pending")),
            "elapsed_s": _float(summary.get("elapsed_s")) or 0.0,
            "status": str(summary.get("status") or "RUNNING"),
            "note": str(summary.get("note") or ""),
        }
        if isinstance(best, Mapping) and best:
            values["best_metric"] = str(best.get("metric") or "")
            values["best_value"] = _float(best.get("value"))
            values["best_trial"] = str(best.get("trial_id") or "")
        else:
            values.update(best_metric="", best_value=None, best_trial="")
        # One comm message for all the changes of this update.
        with self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)


def _int(value: Any) -> int:
    return max(0, _count(value or 0) or 0)


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    # JSON (the comm) has no NaN/inf: send "no value" instead.
    return v if math.isfinite(v) else None
