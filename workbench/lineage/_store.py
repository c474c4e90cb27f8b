"""The SQLite lineage store: the only place in workbench that writes SQL."""

from __future__ import annotations

import getpass
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from workbench.exceptions import NotFoundError, WorkbenchError
from workbench.lineage._schema import MIGRATIONS

__all__ = ["Store", "utcnow", "default_actor"]

BUSY_TIMEOUT_MS = 30_000


def utcnow() -> str:
    """Current UTC time as an ISO-8601 string with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _loads(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """Decode every ``*_json`` column of a row into Python values (key without the suffix)."""
    if row is None:
        return None
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_json"):
            out[key[:-5]] = json.loads(value) if value is not None else None
        else:
            out[key] = value
    return out


class Store:
    """Lineage store on one SQLite file.

    Every connection runs in WAL mode with foreign keys on and a busy timeout;
    every write transaction starts with ``BEGIN IMMEDIATE`` so concurrent
    writers queue instead of failing with "database is locked". One ``Store``
    may be shared between threads of a process.

    Examples
    --------
    >>> store = Store(":memory:")
    >>> store.get_or_create_dataset("iris")["name"]
    'iris'
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we open transactions ourselves
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._depth = 0
        self.migrate()

    # ------------------------------------------------------------------ basics
    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction opened with ``BEGIN IMMEDIATE``; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            self.db.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.db
            except BaseException:
                if self.db.conn.in_transaction:
                    self.db.conn.execute("ROLLBACK")
                raise
            else:
                self.db.conn.execute("COMMIT")
            finally:
                self._depth = 0

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only query and return rows as dicts with ``*_json`` columns decoded."""
        with self._lock:
            return [_loads(r) for r in self.db.query(sql, params)]  # type: ignore[misc]

    def query_one(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cur = self.db.conn.execute(
            f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values())
        )
        return int(cur.lastrowid or 0)

    # -------------------------------------------------------------- migrations
    def migrate(self) -> list[str]:
        """Apply pending migrations in order, in one transaction; safe when several processes open at once."""
        applied_now: list[str] = []
        with self.transaction():
            self.db.conn.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
            )
            done = {r[0] for r in self.db.conn.execute("SELECT name FROM _migrations")}
            known = [name for name, _ in MIGRATIONS]
            unknown = done - set(known)
            if unknown:
                raise WorkbenchError(
                    f"{self.path} was written by a newer workbench (migrations {sorted(unknown)}); upgrade workbench to open it."
                )
            for name, sql in MIGRATIONS:
                if name in done:
                    continue
                for statement in _split_sql(sql):
                    self.db.conn.execute(statement)
                self._insert("_migrations", {"name": name, "applied_at": utcnow()})
                applied_now.append(name)
        return applied_now

    def applied_migrations(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM _migrations ORDER BY id")]

    # ------------------------------------------------------------ audit, edges
    def audit(
        self,
        action: str,
        entity_type: str,
        entity_id: int | None,
        detail: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> int:
        with self.transaction():
            return self._insert(
                "audit_log",
                {
                    "actor": actor or default_actor(),
                    "action": action,
                    "entity_type": entity_type,
                    "entity_id": entity_id,
                    "detail_json": _dumps(detail or {}),
                    "at": utcnow(),
                },
            )

    def link(self, src_type: str, src_id: int, relation: str, dst_type: str, dst_id: int) -> None:
        """Record a typed lineage edge ``src --relation--> dst`` (idempotent)."""
        with self.transaction():
            self.db.conn.execute(
                "INSERT OR IGNORE INTO lineage_edges (src_type, src_id, relation, dst_type, dst_id, at) VALUES (?, ?, ?, ?, ?, ?)",
                (src_type, src_id, relation, dst_type, dst_id, utcnow()),
            )

    def edges(
        self, *, src: tuple[str, int] | None = None, dst: tuple[str, int] | None = None
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if src:
            where.append("src_type = ? AND src_id = ?")
            params += list(src)
        if dst:
            where.append("dst_type = ? AND dst_id = ?")
            params += list(dst)
        clause = " AND ".join(where) or "1"
        return self.query(f"SELECT * FROM lineage_edges WHERE {clause} ORDER BY id", params)

    # ---------------------------------------------------------------- datasets
    def get_or_create_dataset(self, name: str) -> dict[str, Any]:
        with self.transaction():
            row = self.query_one("SELECT * FROM datasets WHERE name = ?", [name])
            if row:
                return row
            new_id = self._insert("datasets", {"name": name, "created_at": utcnow()})
            return {"id": new_id, "name": name}

    def add_dataset_version(
        self,
        name: str,
        *,
        content_hash: str,
        artifact_hash: str,
        source: str,
        n_rows: int,
        n_cols: int,
        schema: dict[str, str],
        target: str | None,
        validation: list[dict[str, Any]],
        parent_id: int | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Record a dataset version; returns ``(row, created)``. The same content is never recorded twice."""
        with self.transaction():
            ds = self.get_or_create_dataset(name)
            existing = self.query_one(
                "SELECT * FROM dataset_versions WHERE dataset_id = ? AND content_hash = ?",
                [ds["id"], content_hash],
            )
            if existing:
                return self._dataset_version_row(existing["id"]), False
            (version,) = self.db.conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM dataset_versions WHERE dataset_id = ?",
                [ds["id"]],
            ).fetchone()
            new_id = self._insert(
                "dataset_versions",
                {
                    "dataset_id": ds["id"],
                    "version": version,
                    "content_hash": content_hash,
                    "artifact_hash": artifact_hash,
                    "source": source,
                    "n_rows": n_rows,
                    "n_cols": n_cols,
                    "schema_json": _dumps(schema),
                    "target": target,
                    "validation_json": _dumps(validation),
                    "parent_id": parent_id,
                    "created_at": utcnow(),
                },
            )
            if parent_id is not None:
                self.link("dataset_version", parent_id, "derived", "dataset_version", new_id)
            self.audit(
                "dataset_version.create",
                "dataset_version",
                new_id,
                {"name": name, "version": version},
            )
            return self._dataset_version_row(new_id), True

    def _dataset_version_row(self, dv_id: int) -> dict[str, Any]:
        row = self.query_one(
            "SELECT v.*, d.name AS dataset FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE v.id = ?",
            [dv_id],
        )
        if row is None:
            raise NotFoundError(
                f"dataset version id {dv_id} does not exist; list them with `workbench datasets`."
            )
        return row

    def get_dataset_version(self, name: str, version: int | None = None) -> dict[str, Any]:
        sql = "SELECT v.id FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE d.name = ?"
        params: list[Any] = [name]
        if version is None:
            sql += " ORDER BY v.version DESC LIMIT 1"
        else:
            sql += " AND v.version = ?"
            params.append(version)
        row = self.query_one(sql, params)
        if row is None:
            what = f"{name}" + (f" version {version}" if version is not None else "")
            raise NotFoundError(
                f"dataset {what} does not exist; ingest it first with wb.datasets.ingest(...)."
            )
        return self._dataset_version_row(row["id"])

    def dataset_version_by_id(self, dv_id: int) -> dict[str, Any]:
        return self._dataset_version_row(dv_id)

    def list_dataset_versions(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT v.*, d.name AS dataset FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id ORDER BY v.id"
        )

    # ------------------------------------------------------------- experiments
    def create_experiment(
        self,
        *,
        name: str,
        dataset_version_id: int | None,
        metric: str,
        mode: str,
        num_samples: int,
        search_space: dict[str, Any],
        search_alg: str,
        scheduler: str,
        seed: int | None,
        code_version: dict[str, Any],
        packages: dict[str, str],
    ) -> int:
        with self.transaction():
            exp_id = self._insert(
                "experiments",
                {
                    "name": name,
                    "status": "RUNNING",
                    "dataset_version_id": dataset_version_id,
                    "metric": metric,
                    "mode": mode,
                    "num_samples": num_samples,
                    "search_space_json": _dumps(search_space),
                    "search_alg": search_alg,
                    "scheduler": scheduler,
                    "seed": seed,
                    "code_version_json": _dumps(code_version),
                    "packages_json": _dumps(packages),
                    "started_at": utcnow(),
                },
            )
            if dataset_version_id is not None:
                self.link("dataset_version", dataset_version_id, "used_by", "experiment", exp_id)
            self.audit("experiment.start", "experiment", exp_id, {"name": name})
            return exp_id

    def set_experiment_tune_path(self, experiment_id: int, path: str) -> None:
        """Where Tune keeps the experiment's state (what ``Tuner.restore`` resumes from)."""
        with self.transaction():
            self.db.conn.execute(
                "UPDATE experiments SET tune_path = ? WHERE id = ?", (path, experiment_id)
            )

    def begin_resume(self, experiment_id: int) -> list[str]:
        """Mark an interrupted experiment RUNNING again and its unfinished trials INTERRUPTED.

        Trials that had not ended (RUNNING, PENDING, PAUSED) when the driver died
        get status ``INTERRUPTED`` and one more attempt; finished ones are left
        as they are. Returns the interrupted trial ids (also in the audit log).
        """
        with self.transaction():
            conn = self.db.conn
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT trial_id FROM trials WHERE experiment_id = ? AND status NOT IN "
                    "('TERMINATED', 'ERROR', 'STOPPED') ORDER BY id",
                    (experiment_id,),
                )
            ]
            conn.executemany(
                "UPDATE trials SET status = 'INTERRUPTED', attempts = attempts + 1 "
                "WHERE experiment_id = ? AND trial_id = ?",
                [(experiment_id, i) for i in ids],
            )
            conn.execute(
                "UPDATE experiments SET status = 'RUNNING', resumes = resumes + 1, ended_at = NULL, "
                "error = NULL WHERE id = ?",
                (experiment_id,),
            )
            self.audit("experiment.resume", "experiment", experiment_id, {"interrupted": ids})
            return ids

    def finish_experiment(
        self,
        experiment_id: int,
        *,
        status: str,
        best_trial_id: str | None = None,
        error: str | None = None,
    ) -> None:
        with self.transaction():
            self.db.conn.execute(
                "UPDATE experiments SET status = ?, best_trial_id = ?, error = ?, ended_at = ? WHERE id = ?",
                (status, best_trial_id, error, utcnow(), experiment_id),
            )
            self.audit("experiment.finish", "experiment", experiment_id, {"status": status})

    def get_experiment(self, experiment_id: int) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM experiments WHERE id = ?", [experiment_id])
        if row is None:
            raise NotFoundError(
                f"experiment {experiment_id} does not exist; list them with `workbench runs`."
            )
        return row

    def list_experiments(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT e.*, (SELECT COUNT(*) FROM trials t WHERE t.experiment_id = e.id) AS n_trials FROM experiments e ORDER BY e.id"
        )

    def write_trial_events(
        self,
        experiment_id: int,
        trials: Iterable[dict[str, Any]],
        metrics: Iterable[tuple[str, int, dict[str, float]]] = (),
    ) -> None:
        """Upsert trial rows and append per-step metrics, all in one transaction.

        ``trials`` items carry ``trial_id`` and any of ``config``, ``status``,
        ``metrics``, ``error``, ``started_at``, ``ended_at``, ``duration_s``,
        ``resources``, ``node``, ``attempts``, ``stopped_early``, ``checkpoint_path``
        (``retry=True`` adds one to the stored attempts);
        ``metrics`` items are ``(trial_id, step, {name: value})``.
        """
        with self.transaction():
            conn = self.db.conn
            for t in trials:
                row = conn.execute(
                    "SELECT id FROM trials WHERE experiment_id = ? AND trial_id = ?",
                    (experiment_id, t["trial_id"]),
                ).fetchone()
                fields = {
                    "config_json": _dumps(t["config"]) if "config" in t else None,
                    "status": t.get("status"),
                    "metrics_json": _dumps(t["metrics"]) if "metrics" in t else None,
                    "error": t.get("error"),
                    "started_at": t.get("started_at"),
                    "ended_at": t.get("ended_at"),
                    "duration_s": t.get("duration_s"),
                    "resources_json": _dumps(t["resources"]) if "resources" in t else None,
                    "node": t.get("node"),
                    "attempts": t.get("attempts"),
                    "stopped_early": int(t["stopped_early"]) if "stopped_early" in t else None,
                    "checkpoint_path": t.get("checkpoint_path"),
                }
                fields = {k: v for k, v in fields.items() if v is not None}
                if row is None:
                    fields.setdefault("config_json", "{}")
                    fields.setdefault("status", "PENDING")
                    fields.setdefault("started_at", utcnow())
                    self._insert(
                        "trials",
                        {"experiment_id": experiment_id, "trial_id": t["trial_id"], **fields},
                    )
                elif fields:
                    sets = ", ".join(f"{k} = ?" for k in fields)
                    conn.execute(
                        f"UPDATE trials SET {sets} WHERE id = ?", [*fields.values(), row[0]]
                    )
                if row is not None and t.get("retry"):
                    conn.execute(
                        "UPDATE trials SET attempts = attempts + 1 WHERE id = ?", (row[0],)
                    )
            rows = []
            for trial_id, step, values in metrics:
                (pk,) = conn.execute(
                    "SELECT id FROM trials WHERE experiment_id = ? AND trial_id = ?",
                    (experiment_id, trial_id),
                ).fetchone()
                rows += [(pk, step, k, float(v)) for k, v in values.items()]
            conn.executemany(
                "INSERT OR REPLACE INTO trial_metrics (trial_pk, step, name, value) VALUES (?, ?, ?, ?)",
                rows,
            )

    def list_trials(self, experiment_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT t.*, e.name AS experiment FROM trials t JOIN experiments e ON e.id = t.experiment_id"
        params: list[Any] = []
        if experiment_id is not None:
            sql += " WHERE t.experiment_id = ?"
            params.append(experiment_id)
        return self.query(sql + " ORDER BY t.id", params)

    def trial_metrics(self, experiment_id: int, trial_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT m.step, m.name, m.value FROM trial_metrics m JOIN trials t ON t.id = m.trial_pk "
            "WHERE t.experiment_id = ? AND t.trial_id = ? ORDER BY m.step, m.name",
            [experiment_id, trial_id],
        )

    # ------------------------------------------------------------------ models
    def get_or_create_model(self, name: str, *, task: str) -> dict[str, Any]:
        with self.transaction():
            row = self.query_one("SELECT * FROM models WHERE name = ?", [name])
            if row:
                return row
            new_id = self._insert("models", {"name": name, "task": task, "created_at": utcnow()})
            return {"id": new_id, "name": name, "task": task}

    def add_model_version(
        self,
        model: str,
        *,
        task: str,
        artifact_hash: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        signature: dict[str, Any],
        experiment_id: int | None,
        trial_id: str | None,
        dataset_version_id: int | None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        with self.transaction():
            m = self.get_or_create_model(model, task=task)
            (version,) = self.db.conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = ?",
                [m["id"]],
            ).fetchone()
            mv_id = self._insert(
                "model_versions",
                {
                    "model_id": m["id"],
                    "version": version,
                    "artifact_hash": artifact_hash,
                    "experiment_id": experiment_id,
                    "trial_id": trial_id,
                    "dataset_version_id": dataset_version_id,
                    "params_json": _dumps(params),
                    "metrics_json": _dumps(metrics),
                    "signature_json": _dumps(signature),
                    "created_at": utcnow(),
                },
            )
            if experiment_id is not None:
                self.link("experiment", experiment_id, "produced", "model_version", mv_id)
            if dataset_version_id is not None:
                self.link("dataset_version", dataset_version_id, "trained", "model_version", mv_id)
            self.audit(
                "model_version.register",
                "model_version",
                mv_id,
                {"model": model, "version": version},
                actor=actor,
            )
            return self.model_version_by_id(mv_id)

    def model_version_by_id(self, mv_id: int) -> dict[str, Any]:
        row = self.query_one(
            "SELECT v.*, m.name AS model, m.task AS task FROM model_versions v JOIN models m ON m.id = v.model_id WHERE v.id = ?",
            [mv_id],
        )
        if row is None:
            raise NotFoundError(
                f"model version id {mv_id} does not exist; list them with `workbench models`."
            )
        row["aliases"] = [
            r["alias"]
            for r in self.query(
                "SELECT alias FROM aliases WHERE model_version_id = ? ORDER BY alias", [mv_id]
            )
        ]
        return row

    def get_model_version(self, model: str, ref: int | str) -> dict[str, Any]:
        """Look a version up by number (``3``, ``"3"``) or alias (``"champion"``)."""
        m = self.query_one("SELECT * FROM models WHERE name = ?", [model])
        if m is None:
            known = (
                ", ".join(r["name"] for r in self.query("SELECT name FROM models ORDER BY name"))
                or "none yet"
            )
            raise NotFoundError(
                f"model {model!r} does not exist (known models: {known}); register one first."
            )
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            row = self.query_one(
                "SELECT id FROM model_versions WHERE model_id = ? AND version = ?",
                [m["id"], int(ref)],
            )
        else:
            row = self.query_one(
                "SELECT model_version_id AS id FROM aliases WHERE model_id = ? AND alias = ?",
                [m["id"], ref],
            )
        if row is None:
            versions = [
                str(r["version"])
                for r in self.query(
                    "SELECT version FROM model_versions WHERE model_id = ? ORDER BY version",
                    [m["id"]],
                )
            ]
            aliases = [
                r["alias"]
                for r in self.query(
                    "SELECT alias FROM aliases WHERE model_id = ? ORDER BY alias", [m["id"]]
                )
            ]
            raise NotFoundError(
                f"model {model!r} has no version {ref!r}; versions: {', '.join(versions) or 'none'}; "
                f"aliases: {', '.join(aliases) or 'none'}. Run `workbench models` to list them."
            )
        return self.model_version_by_id(row["id"])

    def set_alias(
        self, model: str, alias: str, version: int, *, actor: str | None = None, reason: str = ""
    ) -> None:
        with self.transaction():
            mv = self.get_model_version(model, version)
            prev = self.query_one(
                "SELECT model_version_id FROM aliases WHERE model_id = ? AND alias = ?",
                [mv["model_id"], alias],
            )
            self.db.conn.execute(
                "INSERT INTO aliases (model_id, alias, model_version_id) VALUES (?, ?, ?) "
                "ON CONFLICT (model_id, alias) DO UPDATE SET model_version_id = excluded.model_version_id",
                (mv["model_id"], alias, mv["id"]),
            )
            self._insert(
                "alias_history",
                {
                    "model_id": mv["model_id"],
                    "alias": alias,
                    "model_version_id": mv["id"],
                    "previous_version_id": prev["model_version_id"] if prev else None,
                    "actor": actor or default_actor(),
                    "reason": reason,
                    "at": utcnow(),
                },
            )
            self.audit(
                "alias.set",
                "model_version",
                mv["id"],
                {"alias": alias, "reason": reason},
                actor=actor,
            )

    def alias_history(self, model: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT h.alias, h.actor, h.reason, h.at, v.version, pv.version AS previous_version FROM alias_history h "
            "JOIN models m ON m.id = h.model_id LEFT JOIN model_versions v ON v.id = h.model_version_id "
            "LEFT JOIN model_versions pv ON pv.id = h.previous_version_id WHERE m.name = ? ORDER BY h.id",
            [model],
        )

    def list_model_versions(self, model: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT v.id FROM model_versions v JOIN models m ON m.id = v.model_id"
        params: list[Any] = []
        if model:
            sql += " WHERE m.name = ?"
            params.append(model)
        return [
            self.model_version_by_id(r["id"])
            for r in self.query(sql + " ORDER BY m.name, v.version", params)
        ]

    # ------------------------------------------------------------- deployments
    def upsert_deployment(
        self, name: str, *, model: str, route_prefix: str, status: str
    ) -> dict[str, Any]:
        with self.transaction():
            m = self.query_one("SELECT id FROM models WHERE name = ?", [model])
            if m is None:
                raise NotFoundError(
                    f"model {model!r} does not exist; register a version before deploying it."
                )
            now = utcnow()
            self.db.conn.execute(
                "INSERT INTO deployments (name, model_id, route_prefix, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET model_id = excluded.model_id, route_prefix = excluded.route_prefix, "
                "status = excluded.status, updated_at = excluded.updated_at",
                (name, m["id"], route_prefix, status, now, now),
            )
            dep = self.get_deployment(name)
            self.audit(
                "deployment.upsert",
                "deployment",
                dep["id"],
                {"status": status, "route_prefix": route_prefix},
            )
            return dep

    def set_deployment_status(self, name: str, status: str) -> None:
        with self.transaction():
            dep = self.get_deployment(name)
            self.db.conn.execute(
                "UPDATE deployments SET status = ?, updated_at = ? WHERE id = ?",
                (status, utcnow(), dep["id"]),
            )
            self.audit("deployment.status", "deployment", dep["id"], {"status": status})

    def get_deployment(self, name: str) -> dict[str, Any]:
        row = self.query_one(
            "SELECT d.*, m.name AS model FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.name = ?",
            [name],
        )
        if row is None:
            raise NotFoundError(
                f"deployment {name!r} does not exist; list them with `workbench deployments`."
            )
        return row

    def list_deployments(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT d.*, m.name AS model FROM deployments d JOIN models m ON m.id = d.model_id ORDER BY d.id"
        )

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
        with self.transaction():
            dep = self.get_deployment(deployment)
            as_text = {str(k): float(v) for k, v in weights.items()}
            change_id = self._insert(
                "traffic_changes",
                {
                    "deployment_id": dep["id"],
                    "weights_json": _dumps(as_text),
                    "actor": actor or default_actor(),
                    "reason": reason,
                    "kind": kind,
                    "detail_json": _dumps(detail or {}),
                    "at": utcnow(),
                },
            )
            self.db.conn.execute(
                "UPDATE deployments SET weights_json = ?, updated_at = ? WHERE id = ?",
                (_dumps(as_text), utcnow(), dep["id"]),
            )
            for version, weight in weights.items():
                if weight > 0:
                    mv = self.get_model_version(dep["model"], int(version))
                    self.link("model_version", mv["id"], "deployed_to", "deployment", dep["id"])
            self.audit(
                "traffic.change",
                "deployment",
                dep["id"],
                {"weights": as_text, "reason": reason, "kind": kind},
                actor=actor,
            )
            return change_id

    def traffic_history(self, deployment: str) -> list[dict[str, Any]]:
        dep = self.get_deployment(deployment)
        return self.query(
            "SELECT * FROM traffic_changes WHERE deployment_id = ? ORDER BY id", [dep["id"]]
        )

    def traffic_at(self, deployment: str, at: str) -> dict[str, Any] | None:
        """The traffic change in force at time ``at`` (ISO-8601 UTC), or ``None`` before the first.

        A change is in force from its ``at`` (recorded once the router serves
        it) until the next one's. ``transition`` is true when ``at`` falls
        between the next change being requested (``detail.requested_at``) and
        it being served: then either state may have answered.
        """
        dep = self.get_deployment(deployment)
        row = self.query_one(
            "SELECT * FROM traffic_changes WHERE deployment_id = ? AND at <= ? ORDER BY at DESC, id DESC LIMIT 1",
            [dep["id"], at],
        )
        if row is None:
            return None
        nxt = self.query_one(
            "SELECT * FROM traffic_changes WHERE deployment_id = ? AND id > ? ORDER BY id LIMIT 1",
            [dep["id"], row["id"]],
        )
        requested = ((nxt or {}).get("detail") or {}).get("requested_at")
        row["transition"] = bool(requested and requested <= at)
        return row

    def which_version(self, deployment: str, request_id: str) -> dict[str, Any]:
        """Which model version answered request ``request_id``, when, and the traffic state then.

        Returns the request-log row (``model_version``, ``at``, ``status_code``,
        ``latency_ms``...) with ``traffic``: the change in force when it was
        answered (see :meth:`traffic_at`), and ``shadow``: the shadow's answer
        to it when the request was mirrored.
        """
        dep = self.get_deployment(deployment)
        row = self.query_one(
            "SELECT r.*, v.version AS model_version FROM request_logs r LEFT JOIN model_versions v "
            "ON v.id = r.model_version_id WHERE r.deployment_id = ? AND r.request_id = ?",
            [dep["id"], request_id],
        )
        if row is None:
            raise NotFoundError(
                f"request {request_id!r} of deployment {deployment!r} is not in the request log; "
                "logs reach the store within a second (serving.flush_logs(name) waits for them)."
            )
        row["traffic"] = self.traffic_at(deployment, row["at"])
        row["shadow"] = self.query_one(
            "SELECT s.*, v.version AS shadow_version FROM shadow_logs s JOIN model_versions v "
            "ON v.id = s.shadow_version_id WHERE s.request_id = ?",
            [request_id],
        )
        return row

    def log_shadow(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append shadow answers (one per mirrored request) in one transaction; duplicates are ignored."""
        if not rows:
            return 0
        with self.transaction():
            deployments = {
                r["name"]: r["id"] for r in self.query("SELECT id, name FROM deployments")
            }
            values = [
                (
                    r["request_id"],
                    deployments[r["deployment"]],
                    r.get("primary_version_id"),
                    r["shadow_version_id"],
                    _dumps(r.get("primary_prediction")),
                    _dumps(r.get("shadow_prediction")),
                    None if r.get("agree") is None else int(bool(r["agree"])),
                    r.get("primary_latency_ms"),
                    r.get("shadow_latency_ms"),
                    r.get("error"),
                    r.get("at") or utcnow(),
                )
                for r in rows
                if r["deployment"] in deployments
            ]
            cur = self.db.conn.executemany(
                "INSERT OR IGNORE INTO shadow_logs (request_id, deployment_id, primary_version_id, shadow_version_id, "
                "primary_prediction_json, shadow_prediction_json, agree, primary_latency_ms, shadow_latency_ms, error, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return cur.rowcount

    def shadow_logs(
        self, deployment: str, *, since: str | None = None, shadow_version: int | None = None
    ) -> list[dict[str, Any]]:
        """Shadow answers of a deployment, oldest first, with version numbers of both sides."""
        dep = self.get_deployment(deployment)
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
        return self.query(sql + " ORDER BY s.id", params)

    # ---------------------------------------------------------------- requests
    def log_requests(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append a batch of request log rows in one transaction; duplicates (same request id) are ignored."""
        if not rows:
            return 0
        with self.transaction():
            deployments = {
                r["name"]: r["id"] for r in self.query("SELECT id, name FROM deployments")
            }
            values = []
            for r in rows:
                dep_id = deployments.get(r["deployment"])
                if dep_id is None:
                    continue  # deployment deleted meanwhile; nothing to attach the log to
                values.append(
                    (
                        r["request_id"],
                        dep_id,
                        r.get("model_version_id"),
                        _dumps(r["features"]),
                        _dumps(r.get("prediction")),
                        float(r["latency_ms"]),
                        int(r.get("status_code", 200)),
                        r.get("error"),
                        r.get("at") or utcnow(),
                    )
                )
            cur = self.db.conn.executemany(
                "INSERT OR IGNORE INTO request_logs (request_id, deployment_id, model_version_id, features_json, "
                "prediction_json, latency_ms, status_code, error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return cur.rowcount

    def requests_after(
        self, deployment: str, after_id: int = 0, *, limit: int | None = None, ok_only: bool = True
    ) -> list[dict[str, Any]]:
        dep = self.get_deployment(deployment)
        sql = "SELECT r.*, v.version AS model_version FROM request_logs r LEFT JOIN model_versions v ON v.id = r.model_version_id WHERE r.deployment_id = ? AND r.id > ?"
        if ok_only:
            sql += " AND r.status_code = 200"
        sql += " ORDER BY r.id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, [dep["id"], after_id])

    def request_stats(
        self, deployment: str, *, since: str | None = None, model_version_id: int | None = None
    ) -> dict[str, Any]:
        dep = self.get_deployment(deployment)
        sql = "SELECT COUNT(*) AS n, SUM(status_code >= 500) AS errors, AVG(latency_ms) AS mean_latency_ms FROM request_logs WHERE deployment_id = ?"
        params: list[Any] = [dep["id"]]
        if since:
            sql += " AND at >= ?"
            params.append(since)
        if model_version_id is not None:
            sql += " AND model_version_id = ?"
            params.append(model_version_id)
        row = self.query_one(sql, params) or {}
        return {
            "n": row.get("n") or 0,
            "errors": row.get("errors") or 0,
            "mean_latency_ms": row.get("mean_latency_ms"),
        }

    def add_feedback(self, labels: dict[str, Any]) -> int:
        """Record ground-truth labels for logged requests (``{request_id: label}``)."""
        with self.transaction():
            known = (
                {
                    r["request_id"]
                    for r in self.query(
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
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO feedback (request_id, label_json, at) VALUES (?, ?, ?)",
                [(rid, _dumps(label), now) for rid, label in labels.items()],
            )
            return len(labels)

    def labeled_requests(self, deployment: str, *, after_id: int = 0) -> list[dict[str, Any]]:
        dep = self.get_deployment(deployment)
        return self.query(
            "SELECT r.id, r.request_id, r.features_json, r.prediction_json, f.label_json FROM request_logs r "
            "JOIN feedback f ON f.request_id = r.request_id WHERE r.deployment_id = ? AND r.id > ? ORDER BY r.id",
            [dep["id"], after_id],
        )

    def labeled_predictions(
        self, deployment: str, *, model_version_id: int, since: str | None = None
    ) -> list[dict[str, Any]]:
        """Answered requests of one version that have ground truth: ``prediction`` and ``label``."""
        dep = self.get_deployment(deployment)
        sql = (
            "SELECT r.request_id, r.prediction_json, f.label_json, r.at FROM request_logs r "
            "JOIN feedback f ON f.request_id = r.request_id "
            "WHERE r.deployment_id = ? AND r.model_version_id = ? AND r.status_code = 200"
        )
        params: list[Any] = [dep["id"], model_version_id]
        if since:
            sql += " AND r.at >= ?"
            params.append(since)
        return self.query(sql + " ORDER BY r.id", params)

    # ---------------------------------------------------------------- monitors
    def create_monitor(
        self,
        name: str,
        *,
        deployment: str,
        kind: str,
        reference_dataset_version_id: int,
        config: dict[str, Any],
    ) -> dict[str, Any]:
        with self.transaction():
            dep = self.get_deployment(deployment)
            existing = self.query_one("SELECT * FROM monitors WHERE name = ?", [name])
            if existing:
                self.db.conn.execute(
                    "UPDATE monitors SET reference_dataset_version_id = ?, config_json = ?, kind = ? WHERE id = ?",
                    (reference_dataset_version_id, _dumps(config), kind, existing["id"]),
                )
                mon_id = existing["id"]
            else:
                mon_id = self._insert(
                    "monitors",
                    {
                        "name": name,
                        "deployment_id": dep["id"],
                        "kind": kind,
                        "reference_dataset_version_id": reference_dataset_version_id,
                        "config_json": _dumps(config),
                        "created_at": utcnow(),
                    },
                )
            self.link(
                "dataset_version", reference_dataset_version_id, "reference_of", "monitor", mon_id
            )
            self.link("deployment", dep["id"], "monitored_by", "monitor", mon_id)
            self.audit("monitor.upsert", "monitor", mon_id, {"kind": kind})
            return self.get_monitor(name)

    def get_monitor(self, name: str) -> dict[str, Any]:
        row = self.query_one(
            "SELECT m.*, d.name AS deployment FROM monitors m JOIN deployments d ON d.id = m.deployment_id WHERE m.name = ?",
            [name],
        )
        if row is None:
            raise NotFoundError(
                f"monitor {name!r} does not exist; create it with wb.monitoring.drift_monitor(...)."
            )
        return row

    def add_drift_result(
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
    ) -> int:
        """Record one window's drift test and advance the monitor past it, atomically."""
        with self.transaction():
            mon = self.get_monitor(monitor)
            result_id = self._insert(
                "drift_results",
                {
                    "monitor_id": mon["id"],
                    "first_request_log_id": first_request_log_id,
                    "last_request_log_id": last_request_log_id,
                    "n": n,
                    "is_drift": int(is_drift),
                    "score": score,
                    "threshold": threshold,
                    "detail_json": _dumps(detail),
                    "at": utcnow(),
                },
            )
            self.db.conn.execute(
                "UPDATE monitors SET last_request_log_id = MAX(last_request_log_id, ?) WHERE id = ?",
                (last_request_log_id, mon["id"]),
            )
            self.link("monitor", mon["id"], "observed", "drift_result", result_id)
            if is_drift:
                self.audit(
                    "drift.detected",
                    "drift_result",
                    result_id,
                    {"monitor": monitor, "score": score},
                    actor="monitor",
                )
            return result_id

    def drift_results(
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
            return self.query(sql + " ORDER BY r.id", params)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer or None; got {limit!r}.")
        rows = self.query(sql + " ORDER BY r.id DESC LIMIT ?", [*params, limit])
        return rows[::-1]

    # -------------------------------------------------------------- retraining
    def create_retrain_job(
        self, *, drift_result_id: int | None, detail: dict[str, Any] | None = None
    ) -> int:
        with self.transaction():
            job_id = self._insert(
                "retrain_jobs",
                {
                    "drift_result_id": drift_result_id,
                    "status": "SCHEDULED",
                    "detail_json": _dumps(detail or {}),
                    "started_at": utcnow(),
                },
            )
            if drift_result_id is not None:
                self.link("drift_result", drift_result_id, "triggered", "retrain_job", job_id)
            self.audit(
                "retrain.schedule",
                "retrain_job",
                job_id,
                {"drift_result_id": drift_result_id},
                actor="automation",
            )
            return job_id

    def update_retrain_job(self, job_id: int, **fields: Any) -> None:
        with self.transaction():
            if "detail" in fields:
                fields["detail_json"] = _dumps(fields.pop("detail"))
            if fields.get("status") in {"PROMOTED", "ROLLED_BACK", "REJECTED", "FAILED"}:
                fields.setdefault("ended_at", utcnow())
            sets = ", ".join(f"{k} = ?" for k in fields)
            self.db.conn.execute(
                f"UPDATE retrain_jobs SET {sets} WHERE id = ?", [*fields.values(), job_id]
            )
            links = {
                "new_dataset_version_id": ("retrain_job", "produced", "dataset_version"),
                "experiment_id": ("retrain_job", "ran", "experiment"),
                "challenger_version_id": ("retrain_job", "produced", "model_version"),
            }
            for key, (src_type, rel, dst_type) in links.items():
                if fields.get(key) is not None:
                    self.link(src_type, job_id, rel, dst_type, fields[key])
            self.audit(
                "retrain.update",
                "retrain_job",
                job_id,
                {k: v for k, v in fields.items() if k != "detail_json"},
                actor="automation",
            )

    def get_retrain_job(self, job_id: int) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM retrain_jobs WHERE id = ?", [job_id])
        if row is None:
            raise NotFoundError(f"retrain job {job_id} does not exist.")
        return row

    def list_retrain_jobs(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM retrain_jobs ORDER BY id")

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", [limit])

    # ---------------------------------------------- monitoring: windows, labels, alerts (0004)
    # Added with migration 0004_monitoring_alerts for workbench.monitoring.
    def set_monitor_state(
        self, name: str, state: dict[str, Any], *, last_request_log_id: int | None = None
    ) -> None:
        """Save a monitor's running state (online detector, label cursor) and, optionally, its position."""
        with self.transaction():
            mon = self.get_monitor(name)
            self.db.conn.execute(
                "UPDATE monitors SET state_json = ?, last_request_log_id = MAX(last_request_log_id, ?) WHERE id = ?",
                (_dumps(state), int(last_request_log_id or 0), mon["id"]),
            )

    def record_monitor_window(
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
        """One window's result, the monitor's new position and state, and an audit entry for bad input, atomically."""
        with self.transaction():
            result_id = self.add_drift_result(
                monitor,
                first_request_log_id=first_request_log_id,
                last_request_log_id=last_request_log_id,
                n=n,
                is_drift=is_drift,
                score=score,
                threshold=threshold,
                detail=detail,
            )
            verdict = detail.get("verdict")
            if verdict in ("insufficient data", "schema mismatch"):
                self.audit(
                    "monitor.bad_input",
                    "drift_result",
                    result_id,
                    {"monitor": monitor, "verdict": verdict, "reason": detail.get("reason")},
                    actor="monitor",
                )
            if state is not None:
                self.set_monitor_state(monitor, state)
            return result_id

    def labeled_after(
        self, deployment: str, after: int = 0, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Labelled requests in the order their labels arrived (``label_seq``), after ``after``.

        A label recorded again for the same request gets a new ``label_seq``.
        """
        dep = self.get_deployment(deployment)
        sql = (
            "SELECT f.rowid AS label_seq, f.label_json, f.at AS labeled_at, r.id, r.request_id, "
            "r.model_version_id, v.version AS model_version, r.prediction_json, r.status_code, r.at "
            "FROM feedback f JOIN request_logs r ON r.request_id = f.request_id "
            "LEFT JOIN model_versions v ON v.id = r.model_version_id "
            "WHERE r.deployment_id = ? AND f.rowid > ? ORDER BY f.rowid"
        )
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self.query(sql, [dep["id"], int(after)])

    def raise_alert(
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
        from datetime import timedelta

        with self.transaction():
            now = utcnow()
            cutoff = (datetime.now(UTC) - timedelta(seconds=max(cooldown_s, 0.0))).isoformat(
                timespec="microseconds"
            )
            last = self.query_one(
                "SELECT * FROM alerts WHERE dedup_key = ? ORDER BY id DESC LIMIT 1", [dedup_key]
            )
            if last is not None and cooldown_s > 0 and last["first_at"] >= cutoff:
                self.db.conn.execute(
                    "UPDATE alerts SET count = count + 1, last_at = ? WHERE id = ?",
                    (now, last["id"]),
                )
                row = self.query_one("SELECT * FROM alerts WHERE id = ?", [last["id"]]) or {}
                return {**row, "deliver": False}
            mon_id = self.get_monitor(monitor)["id"] if monitor else None
            alert_id = self._insert(
                "alerts",
                {
                    "monitor_id": mon_id,
                    "drift_result_id": drift_result_id,
                    "dedup_key": dedup_key,
                    "severity": severity,
                    "title": title,
                    "detail_json": _dumps(detail),
                    "count": 1,
                    "first_at": now,
                    "last_at": now,
                },
            )
            if drift_result_id is not None:
                self.link("drift_result", drift_result_id, "raised", "alert", alert_id)
            self.audit(
                "alert.raise",
                "alert",
                alert_id,
                {"severity": severity, "title": title, "dedup_key": dedup_key},
                actor="monitor",
            )
            row = self.query_one("SELECT * FROM alerts WHERE id = ?", [alert_id]) or {}
            return {**row, "deliver": True}

    def record_alert_delivery(self, alert_id: int, deliveries: dict[str, Any]) -> None:
        """Store how each channel took an alert (``{"log": "ok", "webhook": "failed: ..."}``)."""
        with self.transaction():
            self.db.conn.execute(
                "UPDATE alerts SET deliveries_json = ? WHERE id = ?", (_dumps(deliveries), alert_id)
            )

    def alerts(
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
        return self.query(sql + " ORDER BY a.id DESC LIMIT ?", [*params, int(limit)])

    # ------------------------------------------ end of monitoring block (0004)

    # ------------------------------------------ automation: policies, jobs, steps (0005)
    # Added with migration 0005_automation for workbench.automation.
    def save_policy(self, name: str, config: dict[str, Any], *, enabled: bool = True) -> None:
        with self.transaction():
            now = utcnow()
            self.db.conn.execute(
                "INSERT INTO automation_policies (name, config_json, enabled, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET config_json = excluded.config_json, "
                "enabled = excluded.enabled, updated_at = excluded.updated_at",
                (name, _dumps(config), int(enabled), now, now),
            )
            self.audit("policy.save", "automation_policy", None, {"name": name, "enabled": enabled})

    def get_policy(self, name: str) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM automation_policies WHERE name = ?", [name])
        if row is None:
            raise NotFoundError(
                f"retraining policy {name!r} does not exist; add it with add_policy()."
            )
        return row

    def list_policies(self, *, enabled_only: bool = False) -> list[dict[str, Any]]:
        where = " WHERE enabled = 1" if enabled_only else ""
        return self.query(f"SELECT * FROM automation_policies{where} ORDER BY name")

    def set_policy_state(self, name: str, state: dict[str, Any]) -> None:
        with self.transaction():
            self.db.conn.execute(
                "UPDATE automation_policies SET state_json = ?, updated_at = ? WHERE name = ?",
                (_dumps(state), utcnow(), name),
            )

    def claim_retrain_job(
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
        with self.transaction():
            now = utcnow()
            cur = self.db.conn.execute(
                "INSERT OR IGNORE INTO retrain_jobs (drift_result_id, status, detail_json, started_at, "
                "event_key, policy, approval, decision, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    drift_result_id,
                    status,
                    _dumps(detail or {}),
                    now,
                    event_key,
                    policy,
                    approval,
                    decision,
                    now if status in {"SKIPPED", "REJECTED", "FAILED"} else None,
                ),
            )
            if cur.rowcount != 1:
                return None
            job_id = int(cur.lastrowid or 0)
            if drift_result_id is not None:
                self.link("drift_result", drift_result_id, "triggered", "retrain_job", job_id)
            self.audit(
                "retrain.schedule",
                "retrain_job",
                job_id,
                {"event_key": event_key, "policy": policy, "status": status, "decision": decision},
                actor="automation",
            )
            return job_id

    def transition_retrain_job(
        self, job_id: int, *, from_status: Sequence[str], to_status: str, **fields: Any
    ) -> bool:
        """Move a job to ``to_status`` only if it is in one of ``from_status`` (atomic); True if it moved."""
        with self.transaction():
            marks = ", ".join("?" for _ in from_status)
            sets = ", ".join(f"{k} = ?" for k in ("status", *fields))
            cur = self.db.conn.execute(
                f"UPDATE retrain_jobs SET {sets} WHERE id = ? AND status IN ({marks})",
                [to_status, *fields.values(), job_id, *from_status],
            )
            if cur.rowcount != 1:
                return False
            self.audit(
                "retrain.transition",
                "retrain_job",
                job_id,
                {"from": list(from_status), "to": to_status, **fields},
                actor=str(fields.get("runner") or "automation"),
            )
            return True

    def record_retrain_step(
        self, job_id: int, step: str, status: str, detail: dict[str, Any] | None = None
    ) -> int:
        """One step of a retraining (snapshot, validation, search, ...), linked to its job."""
        with self.transaction():
            step_id = self._insert(
                "retrain_steps",
                {
                    "job_id": job_id,
                    "step": step,
                    "status": status,
                    "detail_json": _dumps(detail or {}),
                    "at": utcnow(),
                },
            )
            self.link("retrain_job", job_id, "step", "retrain_step", step_id)
            return step_id

    def retrain_steps(self, job_id: int) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM retrain_steps WHERE job_id = ? ORDER BY id", [job_id])

    def policy_jobs(self, policy: str) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM retrain_jobs WHERE policy = ? ORDER BY id", [policy])

    def set_automation_state(self, key: str, value: dict[str, Any]) -> None:
        with self.transaction():
            self.db.conn.execute(
                "INSERT INTO automation_state (key, value_json, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json, updated_at = excluded.updated_at",
                (key, _dumps(value), utcnow()),
            )

    def get_automation_state(self, key: str) -> dict[str, Any] | None:
        row = self.query_one("SELECT * FROM automation_state WHERE key = ?", [key])
        return None if row is None else row["value"]

    # ------------------------------------------ end of automation block (0005)


def _split_sql(script: str) -> list[str]:
    """Split a migration script on ``;`` (our migrations hold no literal semicolons)."""
    return [s.strip() for s in script.split(";") if s.strip()]
