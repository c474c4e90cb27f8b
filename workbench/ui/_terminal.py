"""Progress line for terminals and CI logs, and the do-nothing display."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TextIO, runtime_checkable

from workbench.ui._format import format_progress_line
from workbench.ui._throttle import Throttle

__all__ = ["ProgressDisplay", "TerminalProgress", "NullProgress"]


@runtime_checkable
class ProgressDisplay(Protocol):
    """What a Tune progress callback needs from a display: ``update`` and ``close``."""

    def update(self, summary: Mapping[str, Any]) -> None:
        """Show ``summary``; may be called from Tune's driver thread."""

    def close(self) -> None:
        """Show the last summary received and stop; idempotent."""


class NullProgress:
    """A display that shows nothing (``make_progress(None)`` / ``"off"``).

    Examples
    --------
    >>> NullProgress().update({"done": 1})
    """

    def update(self, summary: Mapping[str, Any]) -> None:
        """Ignore ``summary``."""

    def close(self) -> None:
        """Do nothing."""


class TerminalProgress:
    """One progress line on a terminal; one line per finished trial in logs.

    On a TTY the line is rewritten in place with ``\\r``, at most every
    ``min_interval`` seconds (a held-back update is written by a timer once the
    interval has passed); a summary whose status is not ``RUNNING`` and
    :meth:`close` always write. On anything else (a file, a CI log) a new line
    is printed only when ``done`` changes (the first summary counts as a
    change), plus one final line, so logs stay short.

    Parameters
    ----------
    stream : text stream, optional
        Where to write; ``sys.stderr`` (looked up at construction) by default.
    min_interval : float
        Minimum seconds between two TTY redraws (default 0.25: at most 4/s).
    width : int, optional
        Line width; by default the terminal width on a TTY, 120 otherwise.
    isatty : bool, optional
        Override the TTY detection (``stream.isatty()``).
    clock : callable
        Monotonic clock in seconds; injectable for tests.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = TerminalProgress(out)
    >>> p.update({"experiment": "demo", "total": 2, "done": 0, "status": "RUNNING"})
    >>> p.close()
    >>> len(out.getvalue().splitlines())
    2
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        min_interval: float = 0.25,
        width: int | None = None,
        isatty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.width = width
        if isatty is None:
            try:
                isatty = bool(self.stream.isatty())
            except (AttributeError, ValueError):  # closed or file-like without isatty
                isatty = False
        self.isatty = isatty
        self._lock = threading.RLock()
        self._last_summary: Mapping[str, Any] | None = None
        self._last_done: int | None = None
        self._last_note: str | None = None
        self._last_len = 0
        self._closed = False
        self._throttle: Throttle[Mapping[str, Any]] = Throttle(
            self._draw, min_interval=min_interval, trailing=True, clock=clock
        )

    def update(self, summary: Mapping[str, Any]) -> None:
        """Show ``summary`` (a Tune progress dict); a non-``RUNNING`` status is final."""
        with self._lock:
            if self._closed:
                return
            summary = dict(summary)
            self._last_summary = summary
            final = str(summary.get("status") or "RUNNING") != "RUNNING"
            if self.isatty:
                self._throttle.submit(summary, force=final)
            elif final:
                self._write_line(summary)
            else:
                done = summary.get("done")
                note = summary.get("note")
                if done != self._last_done or note != getattr(self, "_last_note", None):
                    self._last_done = done
                    self._last_note = note
                    self._write_line(summary)
            if final:
                self._finish()

    def close(self) -> None:
        """Write the last summary received (if not yet final) and end the line; idempotent."""
        with self._lock:
            if self._closed:
                return
            if self._last_summary is not None:
                if self.isatty:
                    self._throttle.submit(self._last_summary, force=True)
                else:
                    self._write_line(self._last_summary)
            self._finish()

    def _finish(self) -> None:
        self._closed = True
        self._throttle.stop()
        if self.isatty and self._last_len:
            self._write("\n")

    def _line_width(self) -> int:
        if self.width is not None:
            return self.width
        if self.isatty:
            # One column short: writing the last column makes some terminals wrap.
            return max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        return 120

    def _draw(self, summary: Mapping[str, Any]) -> None:
        # Called by the throttle under its own lock, possibly from its timer thread;
        # taking self._lock here would invert the lock order of update() and deadlock.
        line = format_progress_line(summary, width=self._line_width())
        # Pad with spaces so a shorter line fully covers the previous one.
        pad = " " * max(0, self._last_len - len(line))
        self._last_len = len(line)
        self._write("\r" + line + pad)

    def _write_line(self, summary: Mapping[str, Any]) -> None:
        self._write(format_progress_line(summary, width=self._line_width()) + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (ValueError, OSError):  # stream closed under us (interpreter exit): drop progress
            pass
