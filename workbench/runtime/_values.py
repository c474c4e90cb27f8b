"""Plain values every stage needs alike: JSON-ready data and nearest-rank percentiles."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["jsonable", "percentile"]

_PLAIN = (str, int, float, bool, type(None))


def jsonable(
    value: Any, *, default: Callable[[Any], Any] | None = None, finite: bool = False
) -> Any:
    """``value`` made of JSON's types: what a store column, an HTTP body or a router config can hold.

    numpy scalars become Python numbers (``.item()``), arrays and tuples lists,
    mapping keys strings, dataclasses dicts, recursively. Anything else goes
    through ``default`` (``repr``, ``str``...) or, without one, stays as it is.
    With ``finite``, NaN and the infinities become ``None`` (JSON has neither).

    Examples
    --------
    >>> import numpy as np
    >>> jsonable({"C": np.float64(0.5), "layers": (64, 32), 1: np.int64(3)})
    {'C': 0.5, 'layers': [64, 32], '1': 3}
    >>> jsonable([float("nan"), object], default=repr, finite=True)
    [None, "<class 'object'>"]
    """
    if type(value) in _PLAIN:  # the common case first: this runs on every prediction
        if finite and type(value) is float and not math.isfinite(value):
            return None
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, default=default, finite=finite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, default=default, finite=finite) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), default=default, finite=finite)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy scalar or array
        return jsonable(value.tolist(), default=default, finite=finite)
    if isinstance(value, _PLAIN):  # a subclass (an IntEnum...): JSON takes it as its base type
        return None if finite and isinstance(value, float) and not math.isfinite(value) else value
    return value if default is None else default(value)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of an ascending list; ``None`` when it is empty.

    Always one of the values (no interpolation): the p99 of 10 latencies is the
    slowest one.

    Examples
    --------
    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    >>> percentile([], 50) is None
    True
    """
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
