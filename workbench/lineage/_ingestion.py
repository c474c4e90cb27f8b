"""Scheduled ingestion: the stored schedules (source spec, cron, cursor) and one run per fire time."""

from __future__ import annotations

from typing import Any

from workbench.lineage._db import Repository, dumps, utcnow

__all__ = ["IngestionRepository"]

#: what a run may end as (``running`` until it does)
RUN_STATUSES = ("running", "recorded", "unchanged", "failed")


class IngestionRepository(Repository):
    """``ingestion_schedules`` (one per dataset name) and ``ingestion_runs`` (one per schedule and
    fire time: the UNIQUE ``(schedule, fire_time)`` key is what keeps two schedulers from running
    the same fire twice)."""

    # ---------------------------------------------------------------- schedules
    def set_schedule(
        self,
        name: str,
        *,
        cron: str,
        source_spec: dict[str, Any],
        target: str | None,
        checks: dict[str, Any] | None,
        enabled: bool,
        cursor: str | None,
    ) -> dict[str, Any]:
        """Save the schedule of dataset ``name`` (insert or replace); returns its row.

        ``cursor`` is the moment fire times are counted from (the next run is the first fire time
        after it); None keeps the cursor of an existing enabled schedule, and starts a new or
        disabled one now, so re-running a notebook cell neither loses nor repeats a fire.
        """
        db = self._db
        with db.transaction():
            now = utcnow()
            old = db.row("SELECT * FROM ingestion_schedules WHERE name = ?", [name])
            if cursor is None:
                cursor = old["cursor"] if old and old["enabled"] else now
            db.execute(
                "INSERT INTO ingestion_schedules (name, cron, source_spec_json, target, checks_json, "
                "enabled, cursor, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, "
                "source_spec_json = excluded.source_spec_json, target = excluded.target, "
                "checks_json = excluded.checks_json, enabled = excluded.enabled, "
                "cursor = excluded.cursor, updated_at = excluded.updated_at",
                (
                    name,
                    cron,
                    dumps(source_spec),
                    target,
                    None if checks is None else dumps(checks),
                    int(enabled),
                    cursor,
                    now,
                    now,
                ),
            )
            db.audit(
                "ingestion.schedule",
                "ingestion_schedule",
                None,
                {"name": name, "cron": cron, "source": source_spec, "enabled": enabled},
            )
            return self.get_schedule(name)

    def get_schedule(self, name: str) -> dict[str, Any]:
        return self._one(
            "SELECT * FROM ingestion_schedules WHERE name = ?",
            [name],
            missing=f"dataset {name!r} has no ingestion schedule; add one with "
            "bench.datasets.schedule(source, name=..., cron=...).",
        )

    def list_schedules(self, *, enabled_only: bool = False) -> list[dict[str, Any]]:
        where = " WHERE enabled = 1" if enabled_only else ""
        return self._db.rows(f"SELECT * FROM ingestion_schedules{where} ORDER BY name")

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Enable or disable a schedule; enabling starts its cursor now (missed fires are not run)."""
        db = self._db
        with db.transaction():
            row = self.get_schedule(name)
            now = utcnow()
            cursor = now if enabled and not row["enabled"] else row["cursor"]
            db.execute(
                "UPDATE ingestion_schedules SET enabled = ?, cursor = ?, updated_at = ? WHERE name = ?",
                (int(enabled), cursor, now, name),
            )
            db.audit(
                "ingestion.enable" if enabled else "ingestion.disable",
                "ingestion_schedule",
                None,
                {"name": name},
            )
            return self.get_schedule(name)

    # --------------------------------------------------------------------- runs
    def claim_run(self, name: str, fire_time: str, *, runner: str) -> int | None:
        """Create the one run of schedule ``name`` at ``fire_time`` and move its cursor there;
        None if that fire was claimed already (by this process or another)."""
        db = self._db
        with db.transaction():
            now = utcnow()
            cur = db.execute(
                "INSERT OR IGNORE INTO ingestion_runs (schedule, fire_time, status, runner, started_at) "
                "VALUES (?, ?, 'running', ?, ?)",
                (name, fire_time, runner, now),
            )
            if cur.rowcount != 1:
                return None
            # the cursor only moves forward: a process with an older fire time in hand cannot
            # move it back (fire times are ISO-8601 in UTC, which sort as text)
            db.execute(
                "UPDATE ingestion_schedules SET cursor = ? WHERE name = ? AND cursor < ?",
                (fire_time, name, fire_time),
            )
            return int(cur.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        dataset_version_id: int | None = None,
        error: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """End a run as ``recorded``, ``unchanged`` or ``failed``; returns its row."""
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"an ingestion run ends as one of {RUN_STATUSES[1:]}, not {status!r}")
        db = self._db
        with db.transaction():
            db.execute(
                "UPDATE ingestion_runs SET status = ?, ended_at = ?, dataset_version_id = ?, "
                "error = ?, detail_json = ? WHERE id = ?",
                (status, utcnow(), dataset_version_id, error, dumps(detail or {}), run_id),
            )
            row = self.get_run(run_id)
            if dataset_version_id is not None and status == "recorded":
                db.audit(
                    "ingestion.run",
                    "dataset_version",
                    dataset_version_id,
                    {"schedule": row["schedule"], "fire_time": row["fire_time"], "run": run_id},
                    actor=row["runner"],
                )
            return row

    def interrupt_runs(self, runner_prefix: str, *, keep: str) -> list[int]:
        """Runs left ``running`` by an earlier incarnation of a runner (``runner_prefix``, not
        ``keep``) end ``failed`` as interrupted; their fire time is not run again (the next one is)."""
        db = self._db
        with db.transaction():
            ids = [
                int(r["id"])
                for r in db.rows(
                    "SELECT id FROM ingestion_runs WHERE status = 'running' "
                    "AND substr(runner, 1, ?) = ? AND runner != ?",
                    [len(runner_prefix), runner_prefix, keep],
                )
            ]
            for run_id in ids:
                db.execute(
                    "UPDATE ingestion_runs SET status = 'failed', ended_at = ?, error = ? "
                    "WHERE id = ? AND status = 'running'",
                    (
                        utcnow(),
                        f"interrupted: its runner stopped before the run ended ({keep} started "
                        "after it); the next fire time runs again",
                        run_id,
                    ),
                )
            return ids

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._one(
            "SELECT * FROM ingestion_runs WHERE id = ?",
            [run_id],
            missing=f"ingestion run {run_id} does not exist; list them with bench.datasets.ingestion_runs().",
        )

    def list_runs(self, name: str | None = None) -> list[dict[str, Any]]:
        """Runs of one schedule (or all), oldest first."""
        if name is None:
            return self._db.rows("SELECT * FROM ingestion_runs ORDER BY id")
        return self._db.rows("SELECT * FROM ingestion_runs WHERE schedule = ? ORDER BY id", [name])
