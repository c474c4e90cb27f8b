"""Windows over logged requests: by count of records, or by time (tumbling, aligned to UTC).

Pure functions of the rows the store returns (``id``, ``at`` and payload), so
they are tested without a store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from workbench._numbers import is_int_text, parse_float
from workbench.exceptions import ConfigError

__all__ = ["WindowSpec", "parse_window", "Window", "split_windows"]

_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class WindowSpec:
    """``kind`` is ``"count"`` (``size`` records) or ``"time"`` (``size`` seconds)."""

    kind: str
    size: float

    def describe(self) -> str:
        return f"{int(self.size)} records" if self.kind == "count" else f"{self.size:g} s"


def parse_window(window: int | str | timedelta) -> WindowSpec:
    """``100`` → 100 records; ``"15min"``, ``"1h"``, ``"30s"``, ``"1d"`` or a ``timedelta`` → time.

    Examples
    --------
    >>> parse_window(500)
    WindowSpec(kind='count', size=500)
    >>> parse_window("15min")
    WindowSpec(kind='time', size=900)
    """
    if isinstance(window, bool):
        raise ConfigError("window must be a number of records or a duration such as '15min'")
    if isinstance(window, timedelta):
        seconds = window.total_seconds()
        if seconds <= 0:
            raise ConfigError("a time window must be longer than zero")
        return WindowSpec("time", seconds)
    if isinstance(window, int):
        if not 0 < window < 10**9:
            raise ConfigError(f"a count window holds 1 to 999999999 records, not {window}")
        return WindowSpec("count", window)
    if isinstance(window, str) and len(window) <= 40:
        text = window.strip().lower()
        if is_int_text(text) and text[0] not in "+-":
            return parse_window(int(text))
        m = re.fullmatch(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)\s*(s|sec|min|m|h|d)", text)
        if m and parse_float(m.group(1)) > 0:
            seconds = parse_float(m.group(1)) * _UNITS[m.group(2)]
            return WindowSpec("time", int(seconds) if seconds.is_integer() else seconds)
    shown = window[:40] + "…" if isinstance(window, str) and len(window) > 40 else window
    raise ConfigError(
        f"window {shown!r} is neither a number of records (100) nor a duration ('30s', '15min', '1h', '1d')"
    )


@dataclass
class Window:
    """Consecutive requests tested together; ``start``/``end`` are set for time windows."""

    requests: list[dict[str, Any]]
    records: list[Any]
    start: str | None = None
    end: str | None = None

    @property
    def first_id(self) -> int:
        return int(self.requests[0]["id"])

    @property
    def last_id(self) -> int:
        return int(self.requests[-1]["id"])


def _epoch(at: str) -> float:
    dt = datetime.fromisoformat(at)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


def split_windows(
    rows: Sequence[dict[str, Any]],
    spec: WindowSpec,
    *,
    records_of: Callable[[dict[str, Any]], list[Any]],
    now: float | None = None,
    grace_s: float = 5.0,
) -> list[Window]:
    """Complete windows among ``rows`` (in log order); the rest waits for more requests or time.

    Count windows close once they hold ``size`` records (a request is never
    split, so a window may hold a few more). Time windows are
    ``[k·size, (k+1)·size)`` in UTC and close ``grace_s`` after their end (the
    request log is written in batches); a request logged after its window was
    tested joins the next open window instead of being dropped. Time windows
    without any request produce nothing.
    """
    out: list[Window] = []
    if spec.kind == "count":
        reqs: list[dict[str, Any]] = []
        recs: list[Any] = []
        for row in rows:
            reqs.append(row)
            recs.extend(records_of(row))
            if len(recs) >= spec.size:
                out.append(Window(reqs, recs))
                reqs, recs = [], []
        return out
    now = datetime.now(UTC).timestamp() if now is None else now
    groups: list[tuple[int, list[dict[str, Any]], list[Any]]] = []
    for row in rows:
        k = math.floor(_epoch(row["at"]) / spec.size)
        if groups and k <= groups[-1][0]:  # same window, or logged late: joins the open window
            groups[-1][1].append(row)
            groups[-1][2].extend(records_of(row))
        else:
            groups.append((k, [row], list(records_of(row))))
    for k, reqs, recs in groups:
        if (k + 1) * spec.size + grace_s > now:
            break  # this window is still open, and so is every later one
        out.append(Window(reqs, recs, _iso(k * spec.size), _iso((k + 1) * spec.size)))
    return out
