"""Turn logged records into the numeric matrix a detector tests, or into a verdict saying why not.

A window the detectors cannot test honestly never reaches them: missing
features, text in a numeric feature, non-finite numbers or categories the
reference never had give ``"schema mismatch"``; too few complete records give
``"insufficient data"``. Both are recorded like any other result, with
``is_drift`` false, so bad input can never start a retraining.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "VERDICTS",
    "OK",
    "DRIFT",
    "INSUFFICIENT",
    "SCHEMA_MISMATCH",
    "DEGRADED",
    "BREACH",
    "Encoder",
    "EncodedWindow",
]

# Verdicts of a window. "drift"/"degraded"/"breach" are findings; the last two of the first four
# are bad input: recorded, alerted on, never a reason to retrain.
OK = "ok"
DRIFT = "drift"
DEGRADED = "degraded"  # performance monitors: a metric fell below its floor
BREACH = "breach"  # operational monitors: latency, error rate or throughput out of bounds
INSUFFICIENT = "insufficient data"
SCHEMA_MISMATCH = "schema mismatch"

VERDICTS = (OK, DRIFT, DEGRADED, BREACH, INSUFFICIENT, SCHEMA_MISMATCH)

NUMBER = "number"
#: a date/time feature: compared as seconds since the epoch (UTC), a number like any other
DATETIME = "datetime"
_MISSING = object()


def _epoch_seconds(value: Any) -> float:
    """Seconds since 1970-01-01 UTC of a logged ISO-8601 string or a date/datetime read from the
    reference (naive values are UTC, as training reads them); NaN for a missing value."""
    from datetime import UTC, date, datetime

    if value is None:
        return math.nan
    if isinstance(value, str):
        value = datetime.fromisoformat(value)  # ValueError: not a date, reported by the caller
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    raise TypeError(f"{type(value).__name__} is not a date")


def _cat_key(value: Any) -> str:
    """Categories compare as text, so ``True`` logged as JSON and read from Parquet meet."""
    return str(value)


@dataclass
class EncodedWindow:
    """A window ready for a detector (``x``), or the verdict that stops it (``verdict``)."""

    x: np.ndarray | None
    n_records: int
    n_complete: int
    verdict: str | None = None
    reason: str = ""
    problems: dict[str, Any] = field(default_factory=dict)


class Encoder:
    """Feature kinds and the reference's categories; turns records into a float matrix.

    Numbers stay floats (``None``/NaN mean missing); a categorical feature
    becomes the index of its value in the reference's sorted categories.

    Examples
    --------
    >>> enc = Encoder.fit([{"a": 1.0, "c": "x"}, {"a": 2.0, "c": "y"}], {"a": "number", "c": "string"})
    >>> enc.encode([{"a": 3.0, "c": "y"}], min_rows=1).x.tolist()
    [[3.0, 1.0]]
    >>> enc.encode([{"a": 3.0, "c": "z"}], min_rows=1).verdict
    'schema mismatch'
    """

    def __init__(self, kinds: Mapping[str, str], categories: Mapping[str, Sequence[str]]):
        self.kinds = dict(kinds)
        self.categories = {k: list(v) for k, v in categories.items()}
        self._codes = {k: {c: i for i, c in enumerate(v)} for k, v in self.categories.items()}

    @classmethod
    def fit(cls, rows: Sequence[Mapping[str, Any]], kinds: Mapping[str, str]) -> Encoder:
        categories = {
            col: sorted({_cat_key(r[col]) for r in rows if r.get(col) is not None})
            for col, kind in kinds.items()
            if kind not in (NUMBER, DATETIME)
        }
        return cls(kinds, categories)

    @property
    def features(self) -> list[str]:
        return list(self.kinds)

    @property
    def categorical(self) -> list[int]:
        return [j for j, kind in enumerate(self.kinds.values()) if kind not in (NUMBER, DATETIME)]

    def to_json(self) -> dict[str, Any]:
        return {"kinds": self.kinds, "categories": self.categories}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Encoder:
        return cls(data["kinds"], data["categories"])

    def encode(self, rows: Sequence[Mapping[str, Any]], *, min_rows: int) -> EncodedWindow:
        """Encode ``rows``; records with a missing value are left out (complete cases only)."""
        n = len(rows)
        not_objects = sum(1 for r in rows if not isinstance(r, Mapping))
        if not_objects:
            return EncodedWindow(
                None,
                n,
                0,
                SCHEMA_MISMATCH,
                f"{not_objects} of {n} logged records are not objects of feature values.",
                problems={"not_objects": not_objects},
            )
        x = np.empty((n, len(self.kinds)), dtype=np.float64)
        problems: dict[str, Any] = {}
        absent: dict[str, int] = {}
        bad: dict[str, str] = {}
        unseen: dict[str, dict[str, Any]] = {}
        for j, (col, kind) in enumerate(self.kinds.items()):
            values = [r.get(col, _MISSING) for r in rows]
            n_absent = sum(1 for v in values if v is _MISSING)
            if n_absent:
                absent[col] = n_absent
                continue
            if kind == DATETIME:
                try:
                    x[:, j] = [_epoch_seconds(v) for v in values]
                except (TypeError, ValueError) as exc:
                    bad[col] = f"holds values that are not ISO-8601 dates ({exc})"
                continue
            if kind == NUMBER:
                text = next((v for v in values if isinstance(v, str)), None)
                if text is not None:
                    bad[col] = f"holds text ({text[:40]!r}) where the reference has numbers"
                    continue
                try:
                    column = np.array(values, dtype=np.float64)
                except (TypeError, ValueError) as exc:
                    bad[col] = f"holds values that are not numbers ({exc})"
                    continue
                if np.isinf(column).any():
                    bad[col] = "holds an infinite value"
                    continue
                x[:, j] = column
            else:
                codes = self._codes[col]
                column = np.empty(n, dtype=np.float64)
                new: dict[str, int] = {}
                for i, v in enumerate(values):
                    if v is None or (isinstance(v, float) and math.isnan(v)):
                        column[i] = np.nan
                        continue
                    code = codes.get(_cat_key(v))
                    if code is None:
                        key = _cat_key(v)
                        new[key] = new.get(key, 0) + 1
                        column[i] = np.nan
                    else:
                        column[i] = code
                if new:
                    unseen[col] = {
                        "values": sorted(new)[:10],
                        "records": sum(new.values()),
                    }
                x[:, j] = column
        if absent or bad or unseen:
            parts = []
            if absent:
                problems["missing_features"] = absent
                parts.append(
                    "missing feature(s) "
                    + ", ".join(
                        f"{c!r} (absent from {k} of {n} records)" for c, k in absent.items()
                    )
                )
            if bad:
                problems["bad_values"] = bad
                parts.append("; ".join(f"{c!r} {why}" for c, why in bad.items()))
            if unseen:
                problems["unseen_categories"] = unseen
                parts.append(
                    "categories the reference never had: "
                    + ", ".join(
                        f"{c!r} {u['values']} in {u['records']} records" for c, u in unseen.items()
                    )
                )
            return EncodedWindow(
                None, n, 0, SCHEMA_MISMATCH, "; ".join(parts) + ".", problems=problems
            )
        complete = ~np.isnan(x).any(axis=1) if n else np.zeros(0, dtype=bool)
        n_complete = int(complete.sum())
        missing = {
            col: int(np.isnan(x[:, j]).sum())
            for j, col in enumerate(self.kinds)
            if n and np.isnan(x[:, j]).any()
        }
        if missing:
            problems["missing_values"] = missing
        if n_complete < min_rows:
            why = f"{n_complete} complete record(s) of {n}; at least {min_rows} are needed"
            if missing:
                why += " (missing values in " + ", ".join(f"{c!r}: {k}" for c, k in missing.items())
                why += ")"
            return EncodedWindow(None, n, n_complete, INSUFFICIENT, why + ".", problems=problems)
        return EncodedWindow(x[complete] if missing else x, n, n_complete, problems=problems)

    def encode_reference(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The reference matrix (complete records only); every category is known by construction."""
        out = self.encode(rows, min_rows=1)
        if out.x is None:
            from workbench.exceptions import ConfigError

            raise ConfigError(f"the reference data cannot be used: {out.reason}")
        return out.x
