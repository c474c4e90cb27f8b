"""Deployments: their traffic changes, the request log and the shadow log."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from workbench.lineage._db import Database, Repository, as_list, default_actor, dumps, utcnow
from workbench.lineage._models import ModelRepository

__all__ = ["DeploymentRepository"]

log = logging.getLogger(__name__)

_DEPLOYMENT = "SELECT d.*, m.name AS model FROM deployments d JOIN models m ON m.id = d.model_id"


def request_cells(row: dict[str, Any]) -> dict[str, Any]:
    """``features`` and ``prediction`` of a request-log row always as lists (one entry per record)."""
    for key in ("features", "prediction"):
        if key in row:
            row[key] = as_list(row[key])
    return row


class DeploymentRepository(Repository):
    """``deployments``, ``traffic_changes``, ``request_logs`` and ``shadow_logs``."""

    def __init__(self, db: Database, models: ModelRepository):
        super().__init__(db)
        self._models = models

    def add(self, name: str, *, model: str, route_prefix: str, status: str) -> dict[str, Any]:
        """Record deployment ``name`` of ``model``, or update the one recorded under that name."""
        db = self._db
        with db.transaction():
            m = self._one(
                "SELECT id FROM models WHERE name = ?",
                [model],
                missing=f"model {model!r} does not exist; register a version before deploying it.",
            )
            now = utcnow()
            db.execute(
                "INSERT INTO deployments (name, model_id, route_prefix, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET model_id = excluded.model_id, route_prefix = excluded.route_prefix, "
                "status = excluded.status, updated_at = excluded.updated_at",
                (name, m["id"], route_prefix, status, now, now),
            )
            dep = self.get(name)
            db.audit(
                "deployment.upsert",
                "deployment",
                dep["id"],
                {"status": status, "route_prefix": route_prefix},
            )
            return dep

    def set_status(self, name: str, status: str) -> None:
        with self._db.transaction():
            dep = self.get(name)
            self._db.execute(
                "UPDATE deployments SET status = ?, updated_at = ? WHERE id = ?",
                (status, utcnow(), dep["id"]),
            )
            self._db.audit("deployment.status", "deployment", dep["id"], {"status": status})

    def get(self, name: str) -> dict[str, Any]:
        return self._one(
            _DEPLOYMENT + " WHERE d.name = ?",
            [name],
            missing=f"deployment {name!r} does not exist; list them with `workbench deployments`.",
        )

    def list(self) -> list[dict[str, Any]]:
        return self._db.rows(_DEPLOYMENT + " ORDER BY d.id")

    def _ids_by_name(self) -> dict[str, int]:
        """Row id of every deployment by name: what a batch of log rows is attached by."""
        return {r["name"]: r["id"] for r in self._db.rows("SELECT id, name FROM deployments")}

    # ------------------------------------------------------------------ traffic
    def record_traffic(
        self,
        deployment: str,
        weights: dict[int, float],
        *,
        actor: str | None = None,
        reason: str = "",
        kind: str = "set",
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Record a traffic change (``{model_version_number: weight}``) for a deployment.

        ``kind`` names the strategy step (``deploy``, ``set``, ``canary``,
        ``rollback``, ``blue_green.stage``, ``blue_green.switch``, ``retire``,
        ``shadow``); ``detail`` holds its evidence (a canary's analysis, the
        version rolled back from, a shadow's share...).
        """
        db = self._db
        with db.transaction():
            dep = self.get(deployment)
            as_text = {str(k): float(v) for k, v in weights.items()}
            change_id = db.insert(
                "traffic_changes",
                {
                    "deployment_id": dep["id"],
                    "weights_json": dumps(as_text),
                    "actor": actor or default_actor(),
                    "reason": reason,
                    "kind": kind,
                    "detail_json": dumps(detail or {}),
                    "at": utcnow(),
                },
            )
            db.execute(
                "UPDATE deployments SET weights_json = ?, updated_at = ? WHERE id = ?",
                (dumps(as_text), utcnow(), dep["id"]),
            )
            for version, weight in weights.items():
                if weight > 0:
                    mv = self._models.get_version(dep["model"], int(version))
                    db.link("model_version", mv["id"], "deployed_to", "deployment", dep["id"])
            db.audit(
                "traffic.change",
                "deployment",
                dep["id"],
                {"weights": as_text, "reason": reason, "kind": kind},
                actor=actor,
            )
            return change_id

    def list_traffic(self, deployment: str) -> list[dict[str, Any]]:
        """Every traffic change of a deployment, oldest first."""
        dep = self.get(deployment)
        return self._db.rows(
            "SELECT * FROM traffic_changes WHERE deployment_id = ? ORDER BY id", [dep["id"]]
        )

    def get_traffic_at(self, deployment: str, at: str) -> dict[str, Any] | None:
        """The traffic change in force at time ``at`` (ISO-8601 UTC), or ``None`` before the first.

        A change is in force from its ``at`` (recorded once the router serves
        it) until the next one's. ``transition`` is true when ``at`` falls
        between the next change being requested (``detail.requested_at``) and
        it being served: then either state may have answered.
        """
        dep = self.get(deployment)
        row = self._db.row(
            "SELECT * FROM traffic_changes WHERE deployment_id = ? AND at <= ? ORDER BY at DESC, id DESC LIMIT 1",
            [dep["id"], at],
        )
        if row is None:
            return None
        nxt = self._db.row(
            "SELECT * FROM traffic_changes WHERE deployment_id = ? AND id > ? ORDER BY id LIMIT 1",
            [dep["id"], row["id"]],
        )
        requested = ((nxt or {}).get("detail") or {}).get("requested_at")
        row["transition"] = bool(requested and requested <= at)
        return row

    # --------------------------------------------------------------- request log
    def record_requests(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append a batch of request log rows in one transaction; duplicates (same request id) are ignored.

        Each row is serialised on its own: a row that cannot be (a cyclic or too deeply nested
        value, a missing field) is skipped alone and the others of the batch are kept.
        ``api_key`` is the name of the API key the request came with, if any.
        """
        if not rows:
            return 0
        values = []
        skipped = 0
        for r in rows:
            try:
                values.append(
                    (
                        r["request_id"],
                        r["deployment"],
                        r.get("model_version_id"),
                        dumps(r.get("features")),
                        dumps(r.get("prediction")),
                        float(r["latency_ms"]),
                        int(r.get("status_code", 200)),
                        None if r.get("error") is None else str(r["error"])[:2000],
                        r.get("at") or utcnow(),
                        r.get("api_key"),
                    )
                )
            except (KeyError, TypeError, ValueError, RecursionError):
                skipped += 1
        if skipped:
            log.warning("request log: %d row(s) could not be serialised and were skipped", skipped)
        db = self._db
        with db.transaction():
            deployments = self._ids_by_name()
            attached = [
                (v[0], deployments[v[1]], *v[2:]) for v in values if v[1] in deployments
            ]  # a deployment deleted meanwhile: nothing to attach its rows to
            cur = db.executemany(
                "INSERT OR IGNORE INTO request_logs (request_id, deployment_id, model_version_id, features_json, "
                "prediction_json, latency_ms, status_code, error, at, api_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                attached,
            )
            return cur.rowcount

    def get_request(self, deployment: str, request_id: str) -> dict[str, Any]:
        """Which model version answered request ``request_id``, when, and the traffic state then.

        Returns the request-log row (``model_version``, ``at``, ``status_code``,
        ``latency_ms``...) with ``traffic``: the change in force when it was
        answered (see :meth:`get_traffic_at`), and ``shadow``: the shadow's answer
        to it when the request was mirrored.
        """
        dep = self.get(deployment)
        row = self._one(
            "SELECT r.*, v.version AS model_version FROM request_logs r LEFT JOIN model_versions v "
            "ON v.id = r.model_version_id WHERE r.deployment_id = ? AND r.request_id = ?",
            [dep["id"], request_id],
            missing=f"request {request_id!r} of deployment {deployment!r} is not in the request log; "
            "logs reach the store within a second (serving.flush_logs(name) waits for them).",
        )
        row["traffic"] = self.get_traffic_at(deployment, row["at"])
        row["shadow"] = self._db.row(
            "SELECT s.*, v.version AS shadow_version FROM shadow_logs s JOIN model_versions v "
            "ON v.id = s.shadow_version_id WHERE s.request_id = ?",
            [request_id],
        )
        return request_cells(row)

    def list_requests(
        self, deployment: str, after_id: int = 0, *, limit: int | None = None, ok_only: bool = True
    ) -> list[dict[str, Any]]:
        """Logged requests after row ``after_id``, oldest first (answered ones only by default)."""
        dep = self.get(deployment)
        sql = "SELECT r.*, v.version AS model_version FROM request_logs r LEFT JOIN model_versions v ON v.id = r.model_version_id WHERE r.deployment_id = ? AND r.id > ?"
        if ok_only:
            sql += " AND r.status_code = 200"
        sql += " ORDER BY r.id"
        params: list[Any] = [dep["id"], after_id]
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [request_cells(r) for r in self._db.rows(sql, params)]

    def list_recent_features(self, deployment: str, *, limit: int) -> list[dict[str, Any]]:
        """Feature records of the newest answered requests, newest first, at most ``limit``."""
        dep = self.get(deployment)
        rows = self._db.rows(
            "SELECT features_json FROM request_logs WHERE deployment_id = ? AND status_code = 200 "
            "ORDER BY id DESC LIMIT ?",
            [dep["id"], int(limit)],
        )
        records = [rec for r in rows for rec in as_list(r["features"]) if isinstance(rec, dict)]
        return records[:limit]

    def list_latencies(self, deployment: str, *, model_version_id: int, since: str) -> list[float]:
        """Ascending latencies (ms) of one version's requests since ``since``."""
        dep = self.get(deployment)
        rows = self._db.rows(
            "SELECT latency_ms FROM request_logs WHERE deployment_id = ? AND model_version_id = ? AND at >= ? "
            "ORDER BY latency_ms",
            [dep["id"], model_version_id, since],
        )
        return [float(r["latency_ms"]) for r in rows]

    def get_request_stats(
        self, deployment: str, *, since: str | None = None, model_version_id: int | None = None
    ) -> dict[str, Any]:
        """``n``, ``errors`` (status ≥ 500) and ``mean_latency_ms`` of logged requests."""
        dep = self.get(deployment)
        sql = "SELECT COUNT(*) AS n, SUM(status_code >= 500) AS errors, AVG(latency_ms) AS mean_latency_ms FROM request_logs WHERE deployment_id = ?"
        params: list[Any] = [dep["id"]]
        if since:
            sql += " AND at >= ?"
            params.append(since)
        if model_version_id is not None:
            sql += " AND model_version_id = ?"
            params.append(model_version_id)
        row = self._db.row(sql, params) or {}
        return {
            "n": row.get("n") or 0,
            "errors": row.get("errors") or 0,
            "mean_latency_ms": row.get("mean_latency_ms"),
        }

    # ---------------------------------------------------------------- shadow log
    def record_shadow(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append shadow answers (one per mirrored request) in one transaction; duplicates are ignored."""
        if not rows:
            return 0
        db = self._db
        with db.transaction():
            deployments = self._ids_by_name()
            values = [
                (
                    r["request_id"],
                    deployments[r["deployment"]],
                    r.get("primary_version_id"),
                    r["shadow_version_id"],
                    dumps(r.get("primary_prediction")),
                    dumps(r.get("shadow_prediction")),
                    None if r.get("agree") is None else int(bool(r["agree"])),
                    r.get("primary_latency_ms"),
                    r.get("shadow_latency_ms"),
                    r.get("error"),
                    r.get("at") or utcnow(),
                )
                for r in rows
                if r["deployment"] in deployments
            ]
            cur = db.executemany(
                "INSERT OR IGNORE INTO shadow_logs (request_id, deployment_id, primary_version_id, shadow_version_id, "
                "primary_prediction_json, shadow_prediction_json, agree, primary_latency_ms, shadow_latency_ms, error, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return cur.rowcount

    def list_shadow(
        self, deployment: str, *, since: str | None = None, shadow_version: int | None = None
    ) -> list[dict[str, Any]]:
        """Shadow answers of a deployment, oldest first, with version numbers of both sides."""
        dep = self.get(deployment)
        sql = (
            "SELECT s.*, pv.version AS primary_version, sv.version AS shadow_version FROM shadow_logs s "
            "LEFT JOIN model_versions pv ON pv.id = s.primary_version_id "
            "JOIN model_versions sv ON sv.id = s.shadow_version_id WHERE s.deployment_id = ?"
        )
        params: list[Any] = [dep["id"]]
        if since:
            sql += " AND s.at >= ?"
            params.append(since)
        if shadow_version is not None:
            sql += " AND sv.version = ?"
            params.append(int(shadow_version))
        return self._db.rows(sql + " ORDER BY s.id", params)
