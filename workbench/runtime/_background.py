"""Work that runs on a thread of this process while the notebook goes on: a ``concurrent.futures.Future``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["BackgroundHandle"]

T = TypeVar("T")


class BackgroundHandle(Future[T], Generic[T]):
    """A ``Future`` whose work runs on its own thread of this process, started at once.

    Everything a ``Future`` offers works (``done()``, ``result(timeout)``,
    ``exception()``, ``add_done_callback``, ``concurrent.futures.wait``);
    :meth:`wait` is ``result`` with a timeout error that says what to do next,
    and :attr:`elapsed_s` how long the work has run. The thread is not a daemon:
    a script that exits right after starting the work still records its outcome.
    Subclasses add their domain's view (a search's trials, a deployment's replicas).

    Examples
    --------
    >>> job = BackgroundHandle("sum", lambda: sum(range(10)))
    >>> job.wait(timeout_s=10)
    45
    >>> job.done(), job.running()
    (True, False)
    """

    def __init__(self, name: str, work: Callable[[], T], *, thread_name: str | None = None):
        super().__init__()
        self.name = name
        self._started = time.monotonic()
        self._ended: float | None = None
        self.set_running_or_notify_cancel()  # running from here on: cancel() cannot drop the work
        threading.Thread(
            target=self._main, args=(work,), name=thread_name or f"workbench-{name}", daemon=False
        ).start()

    def _main(self, work: Callable[[], T]) -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to whoever waits
            self._ended = time.monotonic()
            self.set_exception(exc)
        else:
            self._ended = time.monotonic()
            self.set_result(result)

    @property
    def elapsed_s(self) -> float:
        """Seconds since the work started, up to its end once it has ended."""
        end = self._ended if self._ended is not None else time.monotonic()
        return end - self._started

    def error(self) -> BaseException | None:
        """The work's exception once it has failed; ``None`` while it runs or after it succeeded."""
        return self.exception(timeout=0) if self.done() else None

    def wait(self, timeout_s: float | None = None) -> T:
        """Block until the work ends; return its result or raise its exception.

        Raises
        ------
        TimeoutError
            Still running after ``timeout_s`` seconds (the work goes on).
        """
        try:
            return self.result(timeout_s)
        except TimeoutError:
            if self.done():
                raise  # the work itself raised a TimeoutError
            raise TimeoutError(self._still_running(timeout_s)) from None

    def _still_running(self, timeout_s: float | None) -> str:
        """The message of :meth:`wait`'s timeout; subclasses say what to call next."""
        return f"{self.name!r} is still running after {timeout_s} s; call wait() again later"
