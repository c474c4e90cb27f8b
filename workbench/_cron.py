"""5-field cron schedules in UTC, for whatever runs on a timetable (retraining triggers, scheduled
ingestion); pure, so every layer may use it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workbench.exceptions import ConfigError

__all__ = ["CronSchedule"]

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 6))


def _parse_field(text: str, lo: int, hi: int, name: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ConfigError(f"cron {name}: bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()):
                raise ConfigError(f"cron {name}: bad range {part!r}")
            start, end = int(a), int(b)
        elif part.isdigit():
            start = end = int(part)
            if step != 1:
                end = hi
        else:
            raise ConfigError(f"cron {name}: cannot read {part!r} (use *, N, N-M, */S, lists)")
        top = 7 if name == "weekday" else hi  # 7 is Sunday too
        if not (lo <= start <= end <= top):
            raise ConfigError(f"cron {name}: {part!r} is outside {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(v % 7 if name == "weekday" else v for v in values)


@dataclass(frozen=True)
class CronSchedule:
    """A 5-field cron expression (minute hour day month weekday; ``*``, ``N``, ``N-M``, ``*/S``, lists), in UTC.

    As in Vixie cron, when both day-of-month and day-of-week are restricted a
    time matches if either does.

    Examples
    --------
    >>> s = CronSchedule("0 3 * * 1-5")
    >>> s.next_after(datetime(2025, 1, 3, 4, 0, tzinfo=UTC)).isoformat()   # a Friday
    '2025-01-06T03:00:00+00:00'
    """

    expr: str

    def __post_init__(self) -> None:
        parts = self.expr.split()
        if len(parts) != 5:
            raise ConfigError(
                f"a cron schedule has 5 fields (minute hour day month weekday), got {self.expr!r}"
            )
        fields = tuple(
            _parse_field(p, lo, hi, name) for p, (name, lo, hi) in zip(parts, _FIELDS, strict=True)
        )
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_stars", (parts[2] == "*", parts[4] == "*"))

    @property
    def fields(self) -> tuple[frozenset[int], ...]:
        return self._fields  # type: ignore[attr-defined,no-any-return]

    def matches(self, t: datetime) -> bool:
        minute, hour, day, month, weekday = self.fields
        dom_star, dow_star = self._stars  # type: ignore[attr-defined]
        dom_ok, dow_ok = t.day in day, (t.isoweekday() % 7) in weekday
        day_ok = (dom_ok or dow_ok) if not (dom_star or dow_star) else (dom_ok and dow_ok)
        return t.minute in minute and t.hour in hour and t.month in month and day_ok

    def next_after(self, t: datetime) -> datetime:
        """The first matching minute strictly after ``t``."""
        t = t.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        minute, hour, *_ = self.fields
        end = t + timedelta(days=366 * 4 + 1)
        while t < end:
            if t.hour not in hour:
                t = (t + timedelta(hours=1)).replace(minute=0)
                continue
            if self.matches(t):
                return t
            t += timedelta(minutes=1)
        raise ConfigError(f"cron schedule {self.expr!r} never fires")

    def last_fire(self, since: datetime, now: datetime) -> datetime | None:
        """The latest fire time in ``(since, now]`` (missed fires collapse into one), else None."""
        last = None
        t = since
        while True:
            nxt = self.next_after(t)
            if nxt > now:
                return last
            last, t = nxt, nxt
