"""Leading- and trailing-edge throttle shared by the terminal and widget displays."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Throttle"]

T = TypeVar("T")


class Throttle(Generic[T]):
    """Pass items to ``emit`` at most once per ``min_interval`` seconds.

    The first item goes through at once. Items arriving sooner are kept (only
    the latest) and, with ``trailing=True``, emitted by a timer when the
    interval has passed, so the display never stays stale when updates stop.
    ``force=True`` and :meth:`flush` bypass the interval; that is how the final
    summary always gets through. ``emit`` runs under a lock, so it is never
    called from two threads at once and items are never emitted out of order.

    Parameters
    ----------
    emit : callable
        Called with one item.
    min_interval : float
        Minimum seconds between two emits (``0`` disables throttling).
    trailing : bool
        Emit a held-back item from a timer thread once the interval has passed.
    clock : callable
        Monotonic clock in seconds; injectable for tests.
    """

    def __init__(
        self,
        emit: Callable[[T], None],
        *,
        min_interval: float,
        trailing: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit = emit
        self.min_interval = float(min_interval)
        self.trailing = trailing
        self.clock = clock
        self._lock = threading.RLock()
        self._last: float | None = None
        self._pending: T | None = None
        self._has_pending = False
        self._timer: threading.Timer | None = None
        self._stopped = False

    @property
    def has_pending(self) -> bool:
        """Whether an item is held back, waiting for the interval to pass."""
        return self._has_pending

    def submit(self, item: T, *, force: bool = False) -> bool:
        """Emit ``item`` now if allowed (or forced), else hold it back; return whether it was emitted."""
        with self._lock:
            if self._stopped:
                return False
            now = self.clock()
            if force or self._last is None or now - self._last >= self.min_interval:
                self._emit_locked(item, now)
                return True
            self._pending, self._has_pending = item, True
            if self.trailing and self._timer is None:
                delay = max(0.0, self.min_interval - (now - self._last))
                self._timer = threading.Timer(delay, self._on_timer)
                self._timer.daemon = True
                self._timer.start()
            return False

    def flush(self) -> bool:
        """Emit the held-back item, if any, regardless of the interval; return whether one was emitted."""
        with self._lock:
            if self._stopped or not self._has_pending:
                return False
            self._emit_locked(self._pending, self.clock())  # type: ignore[arg-type]
            return True

    def stop(self) -> None:
        """Cancel the timer and drop anything held back; later submits are ignored."""
        with self._lock:
            self._stopped = True
            self._cancel_timer()
            self._pending, self._has_pending = None, False

    def _emit_locked(self, item: T, now: float) -> None:
        self._cancel_timer()
        self._pending, self._has_pending = None, False
        self._last = now
        self.emit(item)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            if not self._stopped and self._has_pending:
                self._emit_locked(self._pending, self.clock())  # type: ignore[arg-type]
