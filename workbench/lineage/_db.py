"""The database core under every repository: one SQLite connection, transactions, migrations,
the audit log and lineage edges. Repositories are the only users of its query helpers."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench._identity import default_actor
from workbench.exceptions import NotFoundError, WorkbenchError
from workbench.lineage._audit import (
    GENESIS,
    AuditVerification,
    HeadFile,
    audit_key,
    entry_hash,
    read_head,
    verify_chain,
)
from workbench.lineage._schema import MIGRATIONS

log = logging.getLogger(__name__)

__all__ = ["Database", "Repository", "utcnow", "default_actor", "dumps", "as_list", "is_sha256_hex"]

BUSY_TIMEOUT_MS = 30_000

Params = Sequence[Any] | dict[str, Any]


def utcnow() -> str:
    """Current UTC time as an ISO-8601 string with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def is_sha256_hex(value: Any) -> bool:
    """Whether ``value`` is a SHA-256 hex digest as the store keeps them (64 lowercase hex
    characters, nothing else): artifact ids, API key hashes.

    Examples
    --------
    >>> is_sha256_hex("ab" * 32), is_sha256_hex("../" + "a" * 61), is_sha256_hex("a" * 64 + "\\n")
    (True, False, False)
    """
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def dumps(value: Any) -> str:
    """JSON for a ``*_json`` column: sorted keys, anything else as text."""
    return json.dumps(value, sort_keys=True, default=str)


def as_list(value: Any) -> list[Any]:
    """A request-log cell holds one record (a single request), a list (a batch) or null (a failed
    request): always a list, empty for null."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    """Decode every ``*_json`` column of a row into Python values (key without the suffix)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_json"):
            out[key[:-5]] = json.loads(value) if value is not None else None
        else:
            out[key] = value
    return out


def _entity_id(value: Any) -> int | None:
    """An audit entry's entity id as the INTEGER column keeps it (``"5"`` and ``5.0`` are 5)."""
    if value is None:
        return None
    try:
        number = int(value)
        if number == float(value):
            return number
    except (TypeError, ValueError, OverflowError):
        pass
    raise WorkbenchError(
        f"an audit entry's entity id must be an integer id or None, not {value!r}."
    )


class Database:
    """One SQLite file: WAL, foreign keys, a busy timeout, ``BEGIN IMMEDIATE`` write transactions.

    Measured here: plain ``BEGIN`` with 4–8 writer processes failed 53–88% of
    read-then-write transactions with "database is locked"; ``BEGIN IMMEDIATE``
    failed none. One ``Database`` may be shared between threads of a process.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float | None = None):
        self.path = str(path)
        self.busy_timeout_s = (
            BUSY_TIMEOUT_MS / 1000 if busy_timeout_s is None else float(busy_timeout_s)
        )
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_s,
            isolation_level=None,  # we open transactions ourselves
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        self.conn = conn
        import sqlite_utils  # imports pandas and pyarrow when they are installed: ~0.75 s, so not at module import

        self._sqlite = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._depth = 0
        self._head: tuple[int, str] | None = None  # the audit entry to record as head after COMMIT
        self._reader: sqlite3.Connection | None = None
        self._head_file: HeadFile | None = None
        #: where the audit head is kept (None in memory): ``$WORKBENCH_AUDIT_HEAD``, else beside the file
        self.head_path = (
            None
            if self.path == ":memory:"
            else os.environ.get("WORKBENCH_AUDIT_HEAD") or self.path + ".audit-head"
        )
        self.migrate()
        self._chain_legacy_entries()

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
            if self._head_file is not None:
                self._head_file.close()
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction opened with ``BEGIN IMMEDIATE``; nested calls join the outer one.

        Whatever fails (the body, or the ``COMMIT`` itself: a full disk) is rolled back, so the
        connection is never left inside a transaction. A full disk, or another process holding
        the write lock longer than the busy timeout, raises :class:`WorkbenchError` saying so;
        nothing of the transaction was recorded.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._store_error(exc) from exc
            self._depth = 1
            self._head = None
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                self._head = None
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._store_error(exc) from exc
                raise
            finally:
                self._depth = 0
            head, self._head = self._head, None
            if head is not None and self.head_path:
                try:
                    if self._head_file is None:
                        self._head_file = HeadFile(self.head_path)
                    self._head_file.advance(*head)
                except OSError as exc:  # the entry is committed; only the tail check is weaker
                    log.warning("could not record the audit head at %s: %s", self.head_path, exc)

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # SQLite may have rolled back already (a full disk)
                log.warning("ROLLBACK of %s failed: %s", self.path, exc)

    def _store_error(self, exc: sqlite3.OperationalError) -> Exception:
        text = str(exc)
        if "full" in text:
            return WorkbenchError(
                f"the lineage store {self.path} is full ({text}); nothing of this change was recorded. "
                "Free disk space (or raise the quota) and run it again."
            )
        if "disk I/O error" in text:
            return WorkbenchError(
                f"the lineage store {self.path} could not be written ({text}: a full disk, a file "
                "size limit or a failing disk); nothing of this change was recorded. Free disk space "
                "or check the disk, and run it again."
            )
        if "locked" in text or "busy" in text:
            return WorkbenchError(
                f"the lineage store {self.path} stayed locked by another process for {self.busy_timeout_s:g} s "
                f"({text}); nothing of this change was recorded. Wait for the other writer (a long "
                "search, another notebook) to finish and run it again."
            )
        return exc

    # ----------------------------------------------------- query helpers (repositories only)
    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Rows as dicts with ``*_json`` columns decoded."""
        with self._lock:
            return [_decode(r) for r in self._sqlite.query(sql, params)]

    def row(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Params = ()) -> Any:
        with self._lock:
            found = self.conn.execute(sql, params).fetchone()
        return None if found is None else found[0]

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        with self._lock:
            return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> sqlite3.Cursor:
        with self._lock:
            return self.conn.executemany(sql, rows)

    def insert(self, table: str, row: dict[str, Any]) -> int:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cur = self.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(row.values()))
        return int(cur.lastrowid or 0)

    # -------------------------------------------------------------- migrations
    def migrate(self) -> list[str]:
        """Apply pending migrations in order, in one transaction; safe when several processes open at once."""
        applied_now: list[str] = []
        with self.transaction():
            self.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)"
            )
            done = {r["name"] for r in self.rows("SELECT name FROM _migrations")}
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
                    self.execute(statement)
                self.insert("_migrations", {"name": name, "applied_at": utcnow()})
                applied_now.append(name)
        return applied_now

    def applied_migrations(self) -> list[str]:
        return [r["name"] for r in self.rows("SELECT name FROM _migrations ORDER BY id")]

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
        """Append an entry linked to the one before it (see :mod:`workbench.lineage._audit`);
        the previous hash is read inside the same ``BEGIN IMMEDIATE`` transaction, so several
        processes appending at once still form one chain."""
        key = audit_key()
        with self.transaction():
            last = self.row("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            prev = self.scalar(
                "SELECT hash FROM audit_log WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1"
            )
            row = {
                "id": (last["id"] if last else 0) + 1,
                # hashed as SQLite stores them, so verify recomputes the same bytes
                "actor": str(actor or default_actor()),
                "action": str(action),
                "entity_type": str(entity_type),
                "entity_id": _entity_id(entity_id),
                "detail_json": dumps(detail or {}),
                "at": utcnow(),
                "prev_hash": prev or GENESIS,
            }
            row["hash"] = entry_hash(row, key)
            new_id = self.insert("audit_log", row)
            self._head = (new_id, row["hash"])
            return new_id

    def _chain_legacy_entries(self) -> None:
        """Hash the entries written before the chain existed, once: only while no entry has a
        hash yet, so a row inserted later without one is never adopted (verify names it)."""
        if self.scalar("SELECT 1 FROM audit_log WHERE hash IS NOT NULL LIMIT 1"):
            return
        if not self.scalar("SELECT 1 FROM audit_log WHERE hash IS NULL LIMIT 1"):
            return
        key = audit_key()
        with self.transaction():
            if self.scalar("SELECT 1 FROM audit_log WHERE hash IS NOT NULL LIMIT 1"):
                return  # another process chained them first
            prev = GENESIS
            for raw in self.conn.execute(
                "SELECT id, actor, action, entity_type, entity_id, detail_json, at FROM audit_log ORDER BY id"
            ).fetchall():
                row = dict(
                    zip(
                        ("id", "actor", "action", "entity_type", "entity_id", "detail_json", "at"),
                        raw,
                        strict=True,
                    )
                )
                row["prev_hash"] = prev
                digest = entry_hash(row, key)
                self.execute(
                    "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                    (prev, digest, row["id"]),
                )
                prev = digest
                self._head = (row["id"], digest)

    def verify_audit(self) -> AuditVerification:
        """Check the whole chain and the recorded head; see :func:`~workbench.lineage._audit.verify_chain`."""
        rows = self.rows(
            "SELECT id, actor, action, entity_type, entity_id, detail_json, at, prev_hash, hash "
            "FROM audit_log ORDER BY id"
        )
        return verify_chain(rows, audit_key(), read_head(self.head_path))

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query, on a second connection opened ``mode=ro`` with
        ``PRAGMA query_only = ON``: an ``UPDATE``, ``DELETE``, ``DROP`` or ``PRAGMA`` write fails."""
        with self._lock:
            if self._reader is None:
                if self.path == ":memory:":
                    raise WorkbenchError(
                        "query() needs a store on a file; an in-memory store has no second connection."
                    )
                reader = sqlite3.connect(
                    f"file:{Path(self.path).resolve()}?mode=ro",
                    uri=True,
                    timeout=self.busy_timeout_s,
                    check_same_thread=False,
                )
                reader.execute("PRAGMA query_only = ON")
                reader.row_factory = sqlite3.Row
                self._reader = reader
            try:
                cur = self._reader.execute(sql, params)
                return [dict(r) for r in cur.fetchall()]
            except sqlite3.Error as exc:
                raise WorkbenchError(
                    f"query refused or failed: {exc}. query() runs read-only SELECTs; change the "
                    "store through its repositories."
                ) from exc
            finally:
                if self._reader.in_transaction:
                    self._reader.execute("ROLLBACK")

    def link(self, src_type: str, src_id: int, relation: str, dst_type: str, dst_id: int) -> None:
        """Record a typed lineage edge ``src --relation--> dst`` (idempotent)."""
        with self.transaction():
            self.execute(
                "INSERT OR IGNORE INTO lineage_edges (src_type, src_id, relation, dst_type, dst_id, at) VALUES (?, ?, ?, ?, ?, ?)",
                (src_type, src_id, relation, dst_type, dst_id, utcnow()),
            )


class Repository:
    """Base of the per-family repositories: they share one :class:`Database`."""

    def __init__(self, db: Database):
        self._db = db

    def _one(self, sql: str, params: Params, *, missing: str) -> dict[str, Any]:
        """The one row ``sql`` finds, or :class:`NotFoundError` with ``missing`` (what to do next)."""
        row = self._db.row(sql, params)
        if row is None:
            raise NotFoundError(missing)
        return row

    def _record(
        self,
        table: str,
        row: dict[str, Any],
        *,
        node: str,
        links: Sequence[tuple[str, int | None, str]] = (),
        audit: str | None = None,
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> int:
        """Insert ``row``, link each ``(src_type, src_id, relation)`` to it as lineage node ``node``
        (ids that are None are skipped) and audit ``audit`` on it, in one transaction."""
        with self._db.transaction():
            new_id = self._db.insert(table, row)
            for src_type, src_id, relation in links:
                if src_id is not None:
                    self._db.link(src_type, src_id, relation, node, new_id)
            if audit:
                self._db.audit(audit, node, new_id, detail, actor=actor)
            return new_id


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements: a ``;`` ends one only where SQLite says the
    statement is complete (a trigger's ``BEGIN … END`` holds several)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        raise WorkbenchError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")
    return statements
