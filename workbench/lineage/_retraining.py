"""Retraining: policies, jobs (one per event), their steps, and the scheduler's state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.lineage._db import Repository, dumps, utcnow
from workbench.status import TERMINAL

__all__ = ["RetrainingRepository"]


# What each id column of a job links to in the lineage graph.
_JOB_LINKS = {
    "new_dataset_version_id": ("produced", "dataset_version"),
    "experiment_id": ("ran", "experiment"),
    "challenger_version_id": ("produced", "model_version"),
}


def _marks(items: Sequence[Any]) -> str:
    return ", ".join("?" for _ in items)


class RetrainingRepository(Repository):
    """``automation_policies``, ``retrain_jobs``, ``retrain_steps`` and ``automation_state``."""

    # ----------------------------------------------------------------- policies
    def set_policy(self, name: str, config: dict[str, Any], *, enabled: bool = True) -> None:
        """Save policy ``name`` (insert or replace its config and whether it is enabled)."""
        with self._db.transaction():
            now = utcnow()
            self._db.execute(
                "INSERT INTO automation_policies (name, config_json, enabled, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET config_json = excluded.config_json, "
                "enabled = excluded.enabled, updated_at = excluded.updated_at",
                (name, dumps(config), int(enabled), now, now),
            )
            self._db.audit(
                "policy.save", "automation_policy", None, {"name": name, "enabled": enabled}
            )

    def get_policy(self, name: str) -> dict[str, Any]:
        return self._one(
            "SELECT * FROM automation_policies WHERE name = ?",
            [name],
            missing=f"retraining policy {name!r} does not exist; add it with bench.automation.add_policy(...).",
        )

    def list_policies(self, *, enabled_only: bool = False) -> list[dict[str, Any]]:
        where = " WHERE enabled = 1" if enabled_only else ""
        return self._db.rows(f"SELECT * FROM automation_policies{where} ORDER BY name")

    def set_policy_state(self, name: str, state: dict[str, Any]) -> None:
        with self._db.transaction():
            self._db.execute(
                "UPDATE automation_policies SET state_json = ?, updated_at = ? WHERE name = ?",
                (dumps(state), utcnow(), name),
            )

    # --------------------------------------------------------------------- jobs
    def claim_job(
        self,
        event_key: str,
        *,
        policy: str,
        status: str,
        drift_result_id: int | None = None,
        approval: str | None = None,
        decision: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int | None:
        """Create the one retrain job of ``event_key``; None if one exists already.

        The UNIQUE index on ``event_key`` makes this hold across processes,
        actor restarts and concurrent schedulers, not just in one memory.
        """
        db = self._db
        with db.transaction():
            now = utcnow()
            cur = db.execute(
                "INSERT OR IGNORE INTO retrain_jobs (drift_result_id, status, detail_json, started_at, "
                "event_key, policy, approval, decision, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    drift_result_id,
                    status,
                    dumps(detail or {}),
                    now,
                    event_key,
                    policy,
                    approval,
                    decision,
                    now if status in TERMINAL else None,
                ),
            )
            if cur.rowcount != 1:
                return None
            job_id = int(cur.lastrowid or 0)
            if drift_result_id is not None:
                db.link("drift_result", drift_result_id, "triggered", "retrain_job", job_id)
            db.audit(
                "retrain.schedule",
                "retrain_job",
                job_id,
                {"event_key": event_key, "policy": policy, "status": status, "decision": decision},
                actor="automation",
            )
            return job_id

    def set_job(self, job_id: int, **fields: Any) -> None:
        """Update columns of a job (``detail`` as JSON); ids it now names become lineage edges."""
        db = self._db
        with db.transaction():
            if "detail" in fields:
                fields["detail_json"] = dumps(fields.pop("detail"))
            if fields.get("status") in TERMINAL:
                fields.setdefault("ended_at", utcnow())
            sets = ", ".join(f"{k} = ?" for k in fields)
            db.execute(f"UPDATE retrain_jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])
            for key, (relation, dst_type) in _JOB_LINKS.items():
                if fields.get(key) is not None:
                    db.link("retrain_job", job_id, relation, dst_type, fields[key])
            db.audit(
                "retrain.update",
                "retrain_job",
                job_id,
                {k: v for k, v in fields.items() if k != "detail_json"},
                actor="automation",
            )

    def set_job_status(
        self, job_id: int, *, from_status: Sequence[str], to_status: str, **fields: Any
    ) -> bool:
        """Move a job to ``to_status`` only if it is in one of ``from_status`` (atomic); True if it moved."""
        db = self._db
        with db.transaction():
            sets = ", ".join(f"{k} = ?" for k in ("status", *fields))
            cur = db.execute(
                f"UPDATE retrain_jobs SET {sets} WHERE id = ? AND status IN ({_marks(from_status)})",
                [to_status, *fields.values(), job_id, *from_status],
            )
            if cur.rowcount != 1:
                return False
            db.audit(
                "retrain.transition",
                "retrain_job",
                job_id,
                {"from": list(from_status), "to": to_status, **fields},
                actor=str(fields.get("runner") or "automation"),
            )
            return True

    def get_job(self, job_id: int) -> dict[str, Any]:
        return self._one(
            "SELECT * FROM retrain_jobs WHERE id = ?",
            [job_id],
            missing=f"retrain job {job_id} does not exist; list them with bench.automation.jobs().",
        )

    def find_job(self, event_key: str) -> dict[str, Any] | None:
        """The job of an event, or None if the event has none yet."""
        return self._db.row("SELECT * FROM retrain_jobs WHERE event_key = ?", [event_key])

    def list_jobs(
        self,
        *,
        policy: str | None = None,
        statuses: Sequence[str] = (),
        with_policy: bool = False,
        runner_prefix: str | None = None,
        ray_jobs: bool = False,
    ) -> list[dict[str, Any]]:
        """Jobs, oldest first: of one ``policy``, in some ``statuses``, only those made by a policy
        (``with_policy``), run by a runner whose name starts with ``runner_prefix``, or only those
        submitted as Ray Jobs (``ray_jobs``: a ``ray_job_id`` is recorded)."""
        sql, params = "SELECT * FROM retrain_jobs WHERE 1", []
        if ray_jobs:
            sql += " AND ray_job_id IS NOT NULL"
        if policy is not None:
            sql += " AND policy = ?"
            params.append(policy)
        if with_policy:
            sql += " AND policy IS NOT NULL"
        if statuses:
            sql += f" AND status IN ({_marks(statuses)})"
            params += list(statuses)
        if runner_prefix is not None:
            sql += " AND substr(runner, 1, ?) = ?"
            params += [len(runner_prefix), runner_prefix]
        return self._db.rows(sql + " ORDER BY id", params)

    def count_jobs(self) -> dict[str, int]:
        """How many jobs made by a policy are in each status."""
        rows = self._db.rows(
            "SELECT status, COUNT(*) AS n FROM retrain_jobs WHERE policy IS NOT NULL GROUP BY status"
        )
        return {r["status"]: int(r["n"]) for r in rows}

    # -------------------------------------------------------------------- steps
    def record_step(
        self, job_id: int, step: str, status: str, detail: dict[str, Any] | None = None
    ) -> int:
        """One step of a retraining (snapshot, validation, search, ...), linked to its job."""
        return self._record(
            "retrain_steps",
            {
                "job_id": job_id,
                "step": step,
                "status": status,
                "detail_json": dumps(detail or {}),
                "at": utcnow(),
            },
            node="retrain_step",
            links=[("retrain_job", job_id, "step")],
        )

    def list_steps(self, job_id: int) -> list[dict[str, Any]]:
        return self._db.rows("SELECT * FROM retrain_steps WHERE job_id = ? ORDER BY id", [job_id])

    # ---------------------------------------------------------- scheduler state
    def set_scheduler_state(self, key: str, value: dict[str, Any]) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO automation_state (key, value_json, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json, updated_at = excluded.updated_at",
                (key, dumps(value), utcnow()),
            )

    def get_scheduler_state(self, key: str) -> dict[str, Any] | None:
        row = self._db.row("SELECT * FROM automation_state WHERE key = ?", [key])
        return None if row is None else row["value"]
