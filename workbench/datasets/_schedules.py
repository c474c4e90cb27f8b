"""Scheduled ingestion: a source re-read on a cron timetable, one recorded run per fire time.

A schedule is a row of the lineage store: the source's spec (never a secret: a password or token is
named by the environment variable that holds it), the cron expression (UTC), the target and the
checks, and a cursor (the moment the next fire time is counted from). Whoever ticks
(:meth:`Datasets.run_due_schedules`: the scheduler actor every interval, or a notebook) reads the
schedules, claims each due fire time in the store (one run per schedule and fire time, however
many processes tick) and ingests. Nothing lives in process memory, so a restarted scheduler goes
on where the store says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workbench._cron import CronSchedule
from workbench.datasets._checks import Checks
from workbench.datasets._sources import Source, as_source, source_from_spec
from workbench.exceptions import ConfigError
from workbench.lineage import mask_uri

if TYPE_CHECKING:
    from pathlib import Path

    import polars as pl

    from workbench.datasets._datasets import Datasets

__all__ = ["IngestionSchedule", "schedule_source", "run_due", "mask_text"]

#: the longest error message a failed run keeps
_MAX_ERROR = 2000
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


@dataclass(frozen=True)
class IngestionSchedule:
    """A stored ingestion schedule of one dataset.

    Attributes
    ----------
    name : str
        The dataset each run ingests into (one schedule per dataset).
    cron : str
        5-field cron expression, in UTC.
    source : dict
        The source's spec (``Source.to_spec()``: no secrets), read back with ``source_from_spec``.
    target : str or None
        The label column passed to ``ingest``.
    checks : dict or None
        ``Checks.to_dict()`` of the checks each run validates with.
    enabled : bool
        Whether the scheduler runs it.
    cursor : str
        ISO-8601 UTC moment the next fire time is counted from (the last claimed fire time).

    Examples
    --------
    >>> s = IngestionSchedule("sales", "0 * * * *", {"kind": "files", "path": "/data/sales.csv"},
    ...                       None, None, True, "2026-01-01T10:30:00+00:00", "", "")
    >>> s.next_fire.isoformat()
    '2026-01-01T11:00:00+00:00'
    >>> s.due(datetime(2026, 1, 1, 13, 5, tzinfo=UTC)).isoformat()   # 11:00, 12:00, 13:00: one run
    '2026-01-01T13:00:00+00:00'
    """

    name: str
    cron: str
    source: dict[str, Any]
    target: str | None
    checks: dict[str, Any] | None
    enabled: bool
    cursor: str
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> IngestionSchedule:
        return cls(
            name=row["name"],
            cron=row["cron"],
            source=row["source_spec"],
            target=row["target"],
            checks=row["checks"],
            enabled=bool(row["enabled"]),
            cursor=row["cursor"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @property
    def next_fire(self) -> datetime:
        """The first fire time after the cursor: the next run (due at once when it is past)."""
        return CronSchedule(self.cron).next_after(datetime.fromisoformat(self.cursor))

    def due(self, now: datetime) -> datetime | None:
        """The fire time to run at ``now``: the latest in ``(cursor, now]`` (missed fires collapse
        into one run), else None."""
        return CronSchedule(self.cron).last_fire(datetime.fromisoformat(self.cursor), now)


def mask_text(text: str) -> str:
    """``text`` with the credentials of every URI in it masked (:func:`workbench.lineage.mask_uri`).

    Examples
    --------
    >>> mask_text("could not reach postgresql://app:hunter2@db:5432/sales: timeout")
    'could not reach postgresql://***@db:5432/sales: timeout'
    """
    return _URI.sub(lambda m: mask_uri(m.group(0)), text)


def _checks_dict(checks: Checks | None) -> dict[str, Any] | None:
    return None if checks is None else dict(checks.to_dict())


def _checks_from(data: dict[str, Any] | None) -> Checks | None:
    return None if data is None else Checks.from_dict(data)


def _utc(when: datetime | float | None) -> datetime:
    if when is None:
        return datetime.now(UTC)
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ConfigError(
                f"{when!r} has no time zone; pass an aware datetime (schedules are in UTC)."
            )
        return when.astimezone(UTC)
    return datetime.fromtimestamp(float(when), UTC)


def schedule_source(
    datasets: Datasets,
    source: str | Path | pl.DataFrame | Source,
    *,
    name: str,
    cron: str,
    target: str | None = None,
    checks: Checks | None = None,
    enabled: bool = True,
    since: datetime | float | None = None,
) -> IngestionSchedule:
    """Store (or replace) the ingestion schedule of ``name``; see :meth:`Datasets.schedule`."""
    CronSchedule(cron).next_after(datetime.now(UTC))  # a bad or never-firing cron fails here
    src = as_source(source)
    spec = src.to_spec()  # a frame refuses: its rows cannot be re-read later
    source_from_spec(spec)  # what the scheduler will do: fail now if the spec does not read back
    stored_checks = _checks_dict(checks)
    cursor = None if since is None else _utc(since).isoformat(timespec="microseconds")
    row = datasets.store.ingestion.set_schedule(
        name,
        cron=cron,
        source_spec=spec,
        target=target,
        checks=stored_checks,
        enabled=enabled,
        cursor=cursor,
    )
    return IngestionSchedule.from_row(row)


def run_due(
    datasets: Datasets, *, now: datetime | float | None = None, runner: str = "notebook"
) -> list[dict[str, Any]]:
    """Run every enabled schedule whose cron fired since its cursor; see :meth:`Datasets.run_due_schedules`."""
    at = _utc(now)
    repo = datasets.store.ingestion
    runs = []
    for row in repo.list_schedules(enabled_only=True):
        sched = IngestionSchedule.from_row(row)
        try:
            fire = sched.due(at)
        except ConfigError as exc:  # a cron that never fires: nothing to run, the others go on
            runs.append({"schedule": sched.name, "status": "failed", "error": str(exc)})
            continue
        if fire is None:
            continue
        run_id = repo.claim_run(sched.name, fire.isoformat(), runner=runner)
        if run_id is None:
            continue  # another process (or an earlier tick) has this fire
        runs.append(_run(datasets, sched, run_id))
    return runs


def _run(datasets: Datasets, sched: IngestionSchedule, run_id: int) -> dict[str, Any]:
    """Ingest one claimed fire; any error ends the run ``failed`` (masked message), nothing recorded.

    The cursor already moved to this fire time when it was claimed, so a failed run is tried
    again at the next fire time, not on every tick.
    """
    repo = datasets.store.ingestion
    try:
        dv = datasets.ingest(
            source_from_spec(sched.source),
            name=sched.name,
            target=sched.target,
            checks=_checks_from(sched.checks),
        )
    except Exception as exc:  # one broken source must not stop the scheduler
        error = mask_text(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR]
        row = repo.finish_run(run_id, status="failed", error=error)
    else:
        row = repo.finish_run(
            run_id,
            status="recorded" if dv.created else "unchanged",
            dataset_version_id=dv.id,
            detail={"version": dv.version, "n_rows": dv.n_rows, "source": dv.source},
        )
    return run_record(row)


def run_record(row: dict[str, Any]) -> dict[str, Any]:
    """One run as ``ingestion_runs`` returns it: id, schedule, fire_time, status, started, ended,
    dataset_version_id, version, error, runner."""
    detail = row.get("detail") or {}
    return {
        "id": row["id"],
        "schedule": row["schedule"],
        "fire_time": row["fire_time"],
        "status": row["status"],
        "started": row["started_at"],
        "ended": row["ended_at"],
        "dataset_version_id": row["dataset_version_id"],
        "version": detail.get("version"),
        "error": row["error"],
        "runner": row["runner"],
    }
