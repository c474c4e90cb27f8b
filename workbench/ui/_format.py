"""Pure formatting of a Tune progress summary into one short line (no I/O, no Ray)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from workbench._numbers import parse_int

__all__ = ["format_progress_line", "format_value", "format_elapsed"]

_ELLIPSIS = "..."


def format_value(value: Any) -> str:
    """Format a metric value compactly: 4 decimals in the usual range, else 4 significant digits.

    Examples
    --------
    >>> format_value(0.97123)
    '0.9712'
    >>> format_value(1.5e-06)
    '1.5e-06'
    """
    if value is None:
        return "-"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.4f}"
    return f"{v:.4g}"


def format_elapsed(seconds: Any) -> str:
    """Format elapsed seconds as ``12.3s``, ``2m05s`` or ``1h02m``.

    Examples
    --------
    >>> format_elapsed(125)
    '2m05s'
    """
    try:
        s = max(0.0, float(seconds or 0.0))
    except (TypeError, ValueError):
        return "-"
    if math.isnan(s) or math.isinf(s):
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        m, sec = divmod(int(s), 60)
        return f"{m}m{sec:02d}s"
    h, rem = divmod(int(s), 3600)
    return f"{h}h{rem // 60:02d}m"


def _int(summary: Mapping[str, Any], key: str) -> int:
    return max(0, _count(summary.get(key) or 0) or 0)


def _count(value: Any) -> int | None:
    """A whole number from a summary (``3``, ``3.0``, ``"3"``), else ``None``: never ``True``,
    ``2.9``, ``'²'``, ``inf`` or 10**30 (a count shown must be one that was meant).

    >>> [_count(v) for v in (3, 3.0, "3", True, 2.9, "²", float("inf"), 10**30)]
    [3, 3, 3, None, None, None, None, None]
    """
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    try:
        return parse_int(value)
    except ValueError:
        return None


def _bar(done: int, total: int, cells: int) -> str:
    filled = cells if total <= 0 else min(cells, (done * cells) // total)
    return "[" + "#" * filled + "-" * (cells - filled) + "]"


def format_progress_line(
    summary: Mapping[str, Any], width: int = 100, *, bar_cells: int = 10
) -> str:
    """Render a progress summary as one line of at most ``width`` characters.

    Parameters
    ----------
    summary : Mapping
        The dict a Tune progress callback produces: ``experiment``, ``total``
        (may be ``None``), ``done``, ``running``, ``errored``, ``pending``,
        ``best`` (``{"trial_id", "metric", "value", "config"}`` or ``None``),
        ``elapsed_s``, ``status`` and ``note`` (shown last, e.g. ``waiting for a
        node of type gpu_worker``). Missing keys are treated as empty.
    width : int
        Maximum length of the returned line. The bar is dropped first when the
        line is too long, then the line is cut and ends with ``...``.
    bar_cells : int
        Number of cells of the ``[###---]`` bar (only drawn when ``total`` is known).

    Returns
    -------
    str
        A single line without newline or carriage return. A status other than
        ``RUNNING`` is appended (``TERMINATED``, ``ERROR``).

    Examples
    --------
    >>> format_progress_line({"experiment": "demo", "total": 8, "done": 5, "running": 2,
    ...     "errored": 0, "best": {"trial_id": "abc", "metric": "f1", "value": 0.97123},
    ...     "elapsed_s": 12.34, "status": "RUNNING"})
    'experiment demo  [######----] 5/8 trials  running 2  errors 0  best f1=0.9712 (trial abc)  12.3s'
    """
    # Trial ids and experiment names come from users and Tune: keep the line single.
    name = " ".join(str(summary.get("experiment") or "?").split())
    done = _int(summary, "done")
    running = _int(summary, "running")
    errored = _int(summary, "errored")
    raw_total = summary.get("total")
    total = _count(raw_total) if raw_total is not None else None

    count = f"{done}/{total} trials" if total is not None else f"{done} trials"
    best = summary.get("best")
    if isinstance(best, Mapping) and best:
        metric = " ".join(str(best.get("metric") or "metric").split())
        trial = " ".join(str(best.get("trial_id") or "?").split())
        best_text = f"best {metric}={format_value(best.get('value'))} (trial {trial})"
    else:
        best_text = "best -"
    tail = [
        f"running {running}",
        f"errors {errored}",
        best_text,
        format_elapsed(summary.get("elapsed_s")),
    ]
    status = str(summary.get("status") or "RUNNING")
    if status != "RUNNING":
        tail.append(status)
    note = " ".join(str(summary.get("note") or "").split())
    if note:  # e.g. "waiting for a node of type gpu_worker" while an autoscaler adds one
        tail.append(note)

    head = f"experiment {name}"
    with_bar = (
        "  ".join([head, f"{_bar(done, total, bar_cells)} {count}", *tail])
        if total is not None
        else None
    )
    without_bar = "  ".join([head, count, *tail])
    width = max(int(width), len(_ELLIPSIS) + 1)
    if with_bar is not None and len(with_bar) <= width:
        return with_bar
    if len(without_bar) <= width:
        return without_bar
    return without_bar[: width - len(_ELLIPSIS)] + _ELLIPSIS
