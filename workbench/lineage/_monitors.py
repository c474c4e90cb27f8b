"""Monitors: their windows (drift results) and running state, alerts, and ground-truth labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workbench.exceptions import NotFoundError
from workbench.lineage._db import Database, Repository, as_list, dumps, utcnow
from workbench.lineage._deployments import DeploymentRepository, request_cells

__all__ = ["MonitorRepository"]

_MONITOR = (
    "SELECT m.*, d.name AS deployment FROM monitors m JOIN deployments d ON d.id = m.deployment_id"
)

# Window verdicts that say the input was unusable (recorded, audited, never a drift).
_BAD_INPUT = ("insufficient data", "schema mismatch")


def _label_cells(row: dict[str, Any]) -> dict[str, Any]:
    row = request_cells(row)
    if "label" in row:
        row["label"] = as_list(row["label"])
    return row


class MonitorRepository(Repository):
    """``monitors``, ``drift_results``, ``alerts`` and ``feedback`` (labels of logged requests)."""

    def __init__(self, db: Database, deployments: DeploymentRepository):
        super().__init__(db)
        self._deployments = deployments

    def add(
        self,
        name: str,
        *,
        deployment: str,
        kind: str,
        reference_dataset_version_id: int,
        config: dict[str, Any],
    ) -> dict[str, Any]:
        """Record monitor ``name``, or replace the reference and config of the one recorded."""
        db = self._db
        with db.transaction():
            dep = self._deployments.get(deployment)
            existing = db.row("SELECT id FROM monitors WHERE name = ?", [name])
            if existing:
                db.execute(
                    "UPDATE monitors SET reference_dataset_version_id = ?, config_json = ?, kind = ? WHERE id = ?",
                    (reference_dataset_version_id, dumps(config), kind, existing["id"]),
                )
                mon_id = existing["id"]
            else:
                mon_id = db.insert(
                    "monitors",
                    {
                        "name": name,
                        "deployment_id": dep["id"],
                        "kind": kind,
                        "reference_dataset_version_id": reference_dataset_version_id,
                        "config_json": dumps(config),
                        "created_at": utcnow(),
                    },
                )  # linked below: a replaced reference gets its edge too
            db.link(
                "dataset_version", reference_dataset_version_id, "reference_of", "monitor", mon_id
            )
            db.link("deployment", dep["id"], "monitored_by", "monitor", mon_id)
            db.audit("monitor.upsert", "monitor", mon_id, {"kind": kind})
            return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        return self._one(
            _MONITOR + " WHERE m.name = ?",
            [name],
            missing=f"monitor {name!r} does not exist; create it with bench.monitoring.drift_monitor(...).",
        )

    def list(self, deployment: str | None = None) -> list[dict[str, Any]]:
        """Every monitor (of one deployment), in the order they were created."""
        if deployment:
            return self._db.rows(_MONITOR + " WHERE d.name = ? ORDER BY m.id", [deployment])
        return self._db.rows(_MONITOR + " ORDER BY m.id")

    def set_state(
        self, name: str, state: dict[str, Any], *, last_request_log_id: int | None = None
    ) -> None:
        """Save a monitor's running state (online detector, label cursor) and, optionally, its position."""
        with self._db.transaction():
            mon = self.get(name)
            self._db.execute(
                "UPDATE monitors SET state_json = ?, last_request_log_id = MAX(last_request_log_id, ?) WHERE id = ?",
                (dumps(state), int(last_request_log_id or 0), mon["id"]),
            )

    # ------------------------------------------------------------------ windows
    def record_window(
        self,
        monitor: str,
        *,
        first_request_log_id: int,
        last_request_log_id: int,
        n: int,
        is_drift: bool,
        score: float | None,
        threshold: float,
        detail: dict[str, Any],
        state: dict[str, Any] | None = None,
    ) -> int:
        """One window's result, the monitor's new position (and ``state``), atomically.

        A drift and a window of unusable input (``detail["verdict"]`` "insufficient
        data" or "schema mismatch") each get an audit entry.
        """
        db = self._db
        with db.transaction():
            mon = self.get(monitor)
            result_id = self._record(
                "drift_results",
                {
                    "monitor_id": mon["id"],
                    "first_request_log_id": first_request_log_id,
                    "last_request_log_id": last_request_log_id,
                    "n": n,
                    "is_drift": int(is_drift),
                    "score": score,
                    "threshold": threshold,
                    "detail_json": dumps(detail),
                    "at": utcnow(),
                },
                node="drift_result",
                links=[("monitor", mon["id"], "observed")],
            )
            db.execute(
                "UPDATE monitors SET last_request_log_id = MAX(last_request_log_id, ?) WHERE id = ?",
                (last_request_log_id, mon["id"]),
            )
            if is_drift:
                db.audit(
                    "drift.detected",
                    "drift_result",
                    result_id,
                    {"monitor": monitor, "score": score},
                    actor="monitor",
                )
            verdict = detail.get("verdict")
            if verdict in _BAD_INPUT:
                db.audit(
                    "monitor.bad_input",
                    "drift_result",
                    result_id,
                    {"monitor": monitor, "verdict": verdict, "reason": detail.get("reason")},
                    actor="monitor",
                )
            if state is not None:
                self.set_state(monitor, state)
            return result_id

    def get_window(self, result_id: int) -> dict[str, Any] | None:
        """One window with its monitor's ``monitor`` name, ``kind`` and current
        ``reference_dataset_version_id`` (as ``monitor_reference_id``); None if unknown."""
        return self._db.row(
            "SELECT r.*, m.name AS monitor, m.kind AS kind, "
            "m.reference_dataset_version_id AS monitor_reference_id "
            "FROM drift_results r JOIN monitors m ON m.id = r.monitor_id WHERE r.id = ?",
            [result_id],
        )

    def list_windows(
        self, monitor: str | None = None, *, drift_only: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Monitor windows in the order they were recorded; with ``limit``, only the latest ones."""
        sql = "SELECT r.*, m.name AS monitor FROM drift_results r JOIN monitors m ON m.id = r.monitor_id WHERE 1"
        params: list[Any] = []
        if monitor:
            sql += " AND m.name = ?"
            params.append(monitor)
        if drift_only:
            sql += " AND r.is_drift = 1"
        if limit is None:
            return self._db.rows(sql + " ORDER BY r.id", params)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer or None; got {limit!r}.")
        rows = self._db.rows(sql + " ORDER BY r.id DESC LIMIT ?", [*params, limit])
        return rows[::-1]

    # ------------------------------------------------------------------- alerts
    def record_alert(
        self,
        *,
        dedup_key: str,
        severity: str,
        title: str,
        detail: dict[str, Any],
        cooldown_s: float,
        monitor: str | None = None,
        drift_result_id: int | None = None,
    ) -> dict[str, Any]:
        """Record an alert, or fold it into the last one with the same key raised within ``cooldown_s``.

        Returns the alert row with ``deliver``: true for a new alert (send it),
        false for a duplicate (its ``count`` and ``last_at`` were updated).
        """
        db = self._db
        with db.transaction():
            now = utcnow()
            cutoff = (datetime.now(UTC) - timedelta(seconds=max(cooldown_s, 0.0))).isoformat(
                timespec="microseconds"
            )
            last = db.row(
                "SELECT * FROM alerts WHERE dedup_key = ? ORDER BY id DESC LIMIT 1", [dedup_key]
            )
            if last is not None and cooldown_s > 0 and last["first_at"] >= cutoff:
                db.execute(
                    "UPDATE alerts SET count = count + 1, last_at = ? WHERE id = ?",
                    (now, last["id"]),
                )
                row = db.row("SELECT * FROM alerts WHERE id = ?", [last["id"]]) or {}
                return {**row, "deliver": False}
            mon_id = self.get(monitor)["id"] if monitor else None
            alert_id = self._record(
                "alerts",
                {
                    "monitor_id": mon_id,
                    "drift_result_id": drift_result_id,
                    "dedup_key": dedup_key,
                    "severity": severity,
                    "title": title,
                    "detail_json": dumps(detail),
                    "count": 1,
                    "first_at": now,
                    "last_at": now,
                },
                node="alert",
                links=[("drift_result", drift_result_id, "raised")],
                audit="alert.raise",
                detail={"severity": severity, "title": title, "dedup_key": dedup_key},
                actor="monitor",
            )
            row = db.row("SELECT * FROM alerts WHERE id = ?", [alert_id]) or {}
            return {**row, "deliver": True}

    def set_alert_delivery(self, alert_id: int, deliveries: dict[str, Any]) -> None:
        """Store how each channel took an alert (``{"log": "ok", "webhook": "failed: ..."}``)."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE alerts SET deliveries_json = ? WHERE id = ?", (dumps(deliveries), alert_id)
            )

    def list_alerts(
        self, monitor: str | None = None, *, severity: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Alerts, newest first, with the monitor's name."""
        sql = "SELECT a.*, m.name AS monitor FROM alerts a LEFT JOIN monitors m ON m.id = a.monitor_id WHERE 1"
        params: list[Any] = []
        if monitor:
            sql += " AND m.name = ?"
            params.append(monitor)
        if severity:
            sql += " AND a.severity = ?"
            params.append(severity)
        return self._db.rows(sql + " ORDER BY a.id DESC LIMIT ?", [*params, int(limit)])

    # ------------------------------------------------------------------- labels
    def record_labels(self, labels: dict[str, Any]) -> int:
        """Record ground-truth labels for logged requests (``{request_id: label}``)."""
        db = self._db
        with db.transaction():
            known = (
                {
                    r["request_id"]
                    for r in db.rows(
                        f"SELECT request_id FROM request_logs WHERE request_id IN ({', '.join('?' for _ in labels)})",
                        list(labels),
                    )
                }
                if labels
                else set()
            )
            missing = set(labels) - known
            if missing:
                raise NotFoundError(
                    f"{len(missing)} request id(s) were never logged (e.g. {sorted(missing)[0]!r}); "
                    "labels can only be attached to logged requests."
                )
            now = utcnow()
            db.executemany(
                "INSERT OR REPLACE INTO feedback (request_id, label_json, at) VALUES (?, ?, ?)",
                [(rid, dumps(label), now) for rid, label in labels.items()],
            )
            return len(labels)

    def list_labeled_requests(self, deployment: str, *, after_id: int = 0) -> list[dict[str, Any]]:
        """Logged requests that have labels, after request-log row ``after_id``, oldest first."""
        dep = self._deployments.get(deployment)
        rows = self._db.rows(
            "SELECT r.id, r.request_id, r.features_json, r.prediction_json, f.label_json FROM request_logs r "
            "JOIN feedback f ON f.request_id = r.request_id WHERE r.deployment_id = ? AND r.id > ? ORDER BY r.id",
            [dep["id"], after_id],
        )
        return [_label_cells(r) for r in rows]

    def list_labels_after(
        self, deployment: str, after: int = 0, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Labelled requests (``prediction``, ``label`` and ``features``, each a list with one entry
        per record) in the order their labels arrived (``label_seq``), after ``after``.

        A label recorded again for the same request gets a new ``label_seq``.
        """
        dep = self._deployments.get(deployment)
        sql = (
            "SELECT f.rowid AS label_seq, f.label_json, f.at AS labeled_at, r.id, r.request_id, "
            "r.model_version_id, v.version AS model_version, r.prediction_json, r.features_json, "
            "r.status_code, r.at "
            "FROM feedback f JOIN request_logs r ON r.request_id = f.request_id "
            "LEFT JOIN model_versions v ON v.id = r.model_version_id "
            "WHERE r.deployment_id = ? AND f.rowid > ? ORDER BY f.rowid"
        )
        params: list[Any] = [dep["id"], int(after)]
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_label_cells(r) for r in self._db.rows(sql, params)]

    def list_labeled_predictions(
        self, deployment: str, *, model_version_id: int, since: str | None = None
    ) -> list[dict[str, Any]]:
        """Answered requests of one version that have ground truth: ``prediction``, ``label`` and
        the input ``features`` (each a list with one entry per record)."""
        dep = self._deployments.get(deployment)
        sql = (
            "SELECT r.request_id, r.prediction_json, f.label_json, r.features_json, r.at "
            "FROM request_logs r "
            "JOIN feedback f ON f.request_id = r.request_id "
            "WHERE r.deployment_id = ? AND r.model_version_id = ? AND r.status_code = 200"
        )
        params: list[Any] = [dep["id"], model_version_id]
        if since:
            sql += " AND r.at >= ?"
            params.append(since)
        return [_label_cells(r) for r in self._db.rows(sql + " ORDER BY r.id", params)]
