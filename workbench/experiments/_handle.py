"""A search running in the background: live status, best so far, ``wait()`` and ``stop()``."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.experiments._search import Experiments, SearchResult
    from workbench.experiments._stopper import StopFlag
    from workbench.experiments._tracking import TrackingCallback

__all__ = ["SearchHandle"]


class SearchHandle:
    """A search started with ``wait=False``: it runs in a background thread of this process.

    The notebook stays responsive; trials are recorded exactly as in a
    blocking search. ``status()`` and ``best()`` read what the tracking
    callback has seen so far; ``wait()`` returns the
    :class:`~workbench.experiments.SearchResult` (or raises the search's
    error); ``stop()`` asks Tune to end the search: running trials are
    stopped and recorded as ``STOPPED``, finished ones are kept and the best
    of them is returned by ``wait()``.
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
        self.name = name
        self._callback = callback
        self._stop_flag = stop_flag
        self._result: SearchResult | None = None
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        self._thread = threading.Thread(
            target=self._main, args=(run,), name=f"workbench-search-{experiment_id}", daemon=False
        )
        self._thread.start()

    def _main(self, run: Callable[[], SearchResult]) -> None:
        try:
            self._result = run()
        except BaseException as exc:  # handed to the caller of wait()
            self._error = exc
        finally:
            self._ended = time.monotonic()

    # ---------------------------------------------------------------- status
    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def state(self) -> str:
        """``RUNNING``, ``STOPPING``, ``TERMINATED``, ``STOPPED`` or ``ERROR``."""
        if not self.done:
            return "STOPPING" if self._stop_flag.requested else "RUNNING"
        if self._error is not None:
            return "ERROR"
        return "STOPPED" if self._stop_flag.requested else "TERMINATED"

    def status(self) -> dict[str, Any]:
        """Live counts of trials by status, best so far and elapsed seconds."""
        counts = Counter(dict(self._callback._status).values())
        end = self._ended if self._ended is not None else time.monotonic()
        return {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "state": self.state(),
            "total": self._callback.total,
            "trials": dict(counts),
            "best": self.best(),
            "elapsed_s": round(end - self._started, 3),
            "error": None if self._error is None else str(self._error),
        }

    def best(self) -> dict[str, Any] | None:
        """The best trial so far: ``{"trial_id", "metric", "value", "config"}`` (latest values)."""
        best = self._callback._best
        return None if best is None else dict(best)

    # --------------------------------------------------------------- control
    def wait(self, timeout: float | None = None) -> SearchResult:
        """Block until the search ends; return its result or raise its error.

        Raises ``TimeoutError`` if it is still running after ``timeout`` seconds
        (the search goes on).
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(
                f"search {self.name!r} (experiment {self.experiment_id}) is still running "
                f"after {timeout} s; call wait() again or stop() it"
            )
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def stop(self) -> None:
        """Ask the search to end (returns at once; ``wait()`` for the result)."""
        self._stop_flag.request()

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
