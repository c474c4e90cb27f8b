"""A search running in the background: live status, best so far, ``wait()`` and ``stop()``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.runtime import BackgroundHandle

if TYPE_CHECKING:
    from workbench.experiments._experiments import Experiments, SearchResult
    from workbench.experiments._stopper import StopFlag
    from workbench.experiments._tracking import TrackingCallback

__all__ = ["SearchHandle"]


class SearchHandle(BackgroundHandle["SearchResult"]):
    """A search started with ``Experiments.start_search``: it runs in a background thread of this process.

    A ``concurrent.futures.Future`` of the
    :class:`~workbench.experiments.SearchResult` (see
    :class:`~workbench.runtime.BackgroundHandle`). The notebook stays
    responsive; trials are recorded exactly as in a blocking search.
    ``status()`` and ``best()`` read what the tracking callback has seen so
    far; ``wait()`` returns the result (or raises the search's error);
    ``stop()`` asks Tune to end the search: running trials are stopped and
    recorded as ``STOPPED``, finished ones are kept and the best of them is
    returned by ``wait()``.
    """

    def __init__(
        self,
        *,
        experiment_id: int,
        name: str,
        callback: TrackingCallback,
        stop_flag: StopFlag,
        run: Callable[[], SearchResult],
        experiments: Experiments | None = None,
    ):
        self.experiment_id = experiment_id
        self._experiments = experiments  # what the widget reads through
        self._callback = callback
        self._stop_flag = stop_flag
        super().__init__(name, run, thread_name=f"workbench-search-{experiment_id}")

    # ---------------------------------------------------------------- status
    def state(self) -> str:
        """``RUNNING``, ``STOPPING``, ``TERMINATED``, ``STOPPED`` or ``ERROR``."""
        if not self.done():
            return "STOPPING" if self._stop_flag.requested else "RUNNING"
        if self.error() is not None:
            return "ERROR"
        return "STOPPED" if self._stop_flag.requested else "TERMINATED"

    def status(self) -> dict[str, Any]:
        """Live counts of trials by status, best so far and elapsed seconds."""
        counts = Counter(dict(self._callback._status).values())
        error = self.error()
        return {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "state": self.state(),
            "total": self._callback.total,
            "trials": dict(counts),
            "best": self.best(),
            "elapsed_s": round(self.elapsed_s, 3),
            "error": None if error is None else str(error),
            # e.g. "waiting for a node of type gpu_worker" while an autoscaler adds one
            "waiting": getattr(self._callback, "waiting", None),
        }

    def best(self) -> dict[str, Any] | None:
        """The best trial so far: ``{"trial_id", "metric", "value", "config"}`` (latest values)."""
        best = self._callback._best
        return None if best is None else dict(best)

    # --------------------------------------------------------------- control
    def stop(self) -> None:
        """Ask the search to end (returns at once; ``wait()`` for the result)."""
        self._stop_flag.request()

    def _still_running(self, timeout_s: float | None) -> str:
        return (
            f"search {self.name!r} (experiment {self.experiment_id}) is still running "
            f"after {timeout_s} s; call wait() again or stop() it"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        """In a notebook kernel, show the live experiment widget (with a working stop button)."""
        from workbench.ui import in_notebook_kernel

        if not in_notebook_kernel():
            return None  # plain Python: IPython falls back to __repr__
        widget = getattr(self, "_widget", None)
        if widget is None and self._experiments is not None:
            from workbench.ui import ExperimentWidget

            widget = self._widget = ExperimentWidget(
                self._experiments, self.experiment_id, handle=self
            )
        if widget is None:
            return None  # built by hand, without its Experiments: the plain repr
        return widget._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self) -> str:
        return f"SearchHandle(experiment_id={self.experiment_id}, name={self.name!r}, state={self.state()!r})"
