"""The audit log's hash chain: how an entry is hashed, where the head is kept, and how the chain
is verified. Pure functions over rows; :class:`~workbench.lineage._db.Database` writes with them.

Each entry's ``hash`` covers the canonical JSON (sorted keys, no spaces, ASCII) of its ``id``,
``actor``, ``action``, ``entity_type``, ``entity_id``, ``detail`` (the decoded ``detail_json``),
``at`` and ``prev_hash`` (the previous entry's ``hash``; :data:`GENESIS` for the first). With a
key (``$WORKBENCH_AUDIT_KEY``, or the file named by ``$WORKBENCH_AUDIT_KEY_FILE``: keep it outside
the home) it is an HMAC-SHA256 and written ``hmac-sha256:<hex>``; without one a SHA-256 written
``sha256:<hex>``. Anyone who can write the file can recompute an unkeyed chain; nobody without
the key can recompute a keyed one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.exceptions import ConfigError

__all__ = ["AuditVerification", "GENESIS", "audit_key", "entry_hash", "verify_chain"]

#: ``prev_hash`` of the first entry.
GENESIS = "0" * 64
_FIELDS = ("id", "actor", "action", "entity_type", "entity_id", "at", "prev_hash")


def audit_key() -> bytes | None:
    """The HMAC key: ``$WORKBENCH_AUDIT_KEY`` (text), else the bytes of ``$WORKBENCH_AUDIT_KEY_FILE``
    (surrounding whitespace stripped), else None (plain SHA-256)."""
    text = os.environ.get("WORKBENCH_AUDIT_KEY")
    if text:
        return text.encode("utf-8")
    path = os.environ.get("WORKBENCH_AUDIT_KEY_FILE")
    if not path:
        return None
    try:
        key = Path(path).expanduser().read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            f"WORKBENCH_AUDIT_KEY_FILE={path} cannot be read ({exc.strerror}); point it at a readable "
            "file holding the audit key, or unset it."
        ) from exc
    if not key:
        raise ConfigError(
            f"WORKBENCH_AUDIT_KEY_FILE={path} is empty; write a key into it (e.g. `openssl rand -hex 32`)."
        )
    return key


def _canonical(row: dict[str, Any]) -> bytes:
    body = {k: row[k] for k in _FIELDS}
    detail = row.get("detail_json")
    body["detail"] = json.loads(detail) if isinstance(detail, str) else row.get("detail")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(row: dict[str, Any], key: bytes | None) -> str:
    """The hash an audit row must carry (``hmac-sha256:…`` with ``key``, else ``sha256:…``).

    Examples
    --------
    >>> row = {"id": 1, "actor": "ada", "action": "a", "entity_type": "t", "entity_id": None,
    ...        "detail_json": "{}", "at": "2026-01-01T00:00:00+00:00", "prev_hash": GENESIS}
    >>> entry_hash(row, None)[:7], entry_hash(row, b"k")[:12]
    ('sha256:', 'hmac-sha256:')
    """
    data = _canonical(row)
    if key is None:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditVerification:
    """What :meth:`Store.verify_audit` found.

    ``ok`` is True when every entry was checked and matches; ``checked`` counts the entries
    looked at before the first problem (all of them when ok); ``first_bad_id`` names the first
    edited, missing or misplaced entry (None when ok, or when the problem is not one entry);
    ``problem`` says it in words; ``keyed`` is True when the chain was checked with an HMAC key;
    ``head`` is the last entry's ``(id, hash)`` (keep it elsewhere to detect a cut-off tail).
    """

    ok: bool
    checked: int
    first_bad_id: int | None
    problem: str
    keyed: bool
    head: tuple[int, str] | None

    def __bool__(self) -> bool:
        return self.ok


def verify_chain(
    rows: list[dict[str, Any]], key: bytes | None, head: dict[str, Any] | None = None
) -> AuditVerification:
    """Walk ``rows`` (every audit row, in id order) and report the first problem.

    ``head`` is the head recorded outside the database (``{"id", "hash"}``), if any: an entry it
    names that is gone or changed is a deleted or rewritten tail.
    """
    keyed = key is not None
    by_hash = {r["hash"]: r["id"] for r in rows if r.get("hash")}
    last = rows[-1] if rows else None
    head_pair = (int(last["id"]), str(last["hash"])) if last and last.get("hash") else None

    def bad(n: int, first: int | None, problem: str) -> AuditVerification:
        return AuditVerification(False, n, first, problem, keyed, head_pair)

    expected_prev, prev_id, seen_keyed = GENESIS, 0, False
    for n, row in enumerate(rows):
        rid = int(row["id"])
        stored = row.get("hash")
        if not stored:
            return bad(
                n,
                rid,
                f"entry {rid} has no hash: it was written outside workbench (directly in SQL, or by a workbench older than the audit chain)",
            )
        if row.get("prev_hash") != expected_prev:
            target = by_hash.get(row.get("prev_hash"))
            if target is not None and target > rid:
                return bad(n, rid, f"entries {rid} and {target} are out of order")
            if rid != prev_id + 1:
                gone = (
                    f"entry {prev_id + 1} is"
                    if rid == prev_id + 2
                    else f"entries {prev_id + 1}–{rid - 1} are"
                )
                return bad(n, prev_id + 1, f"{gone} missing (deleted)")
            if prev_id:
                return bad(
                    n,
                    prev_id,
                    f"entry {prev_id} was edited (its hash was recomputed, but entry {rid} still links to the old one)",
                )
            return bad(n, rid, f"entry {rid} was edited (it does not link to the start of the log)")
        if stored.startswith("hmac-sha256:"):
            seen_keyed = True
            if key is None:
                return bad(
                    n,
                    None,
                    f"entries from {rid} on are keyed (HMAC); set WORKBENCH_AUDIT_KEY or WORKBENCH_AUDIT_KEY_FILE to verify them",
                )
        elif seen_keyed and key is not None:
            return bad(
                n,
                rid,
                f"entry {rid} is not keyed although an earlier entry is: it was rewritten without the key (or written while the key was unset)",
            )
        want = entry_hash(row, key if stored.startswith("hmac-sha256:") else None)
        if not hmac.compare_digest(want, stored):
            return bad(n, rid, f"entry {rid} was edited")
        expected_prev, prev_id = stored, rid
    if head:
        hid, hhash = int(head["id"]), str(head["hash"])
        if hid > prev_id:
            first = prev_id + 1
            return bad(
                len(rows),
                first,
                f"entries {first}–{hid} are missing (deleted from the end): the head file records entry {hid}, the log ends at {prev_id or 'nothing'}",
            )
        match = next((r for r in rows if int(r["id"]) == hid), None)
        if match is None or match.get("hash") != hhash:
            return bad(
                len(rows),
                hid,
                f"the log was rewritten up to entry {hid}: its hash is not the one the head file records",
            )
    return AuditVerification(True, len(rows), None, "", keyed, head_pair)


def _parse_head(data: bytes) -> dict[str, Any] | None:
    try:
        head = json.loads(data.decode().strip() or "null")
    except ValueError:
        return None
    return head if isinstance(head, dict) and "id" in head and "hash" in head else None


def read_head(path: str | None) -> dict[str, Any] | None:
    """The head recorded at ``path`` (``{"id", "hash"}``), or None when there is none."""
    if not path:
        return None
    try:
        return _parse_head(Path(path).read_bytes())
    except OSError:
        return None


class HeadFile:
    """The head ``(id, hash)`` of the log, kept in a small file outside the database.

    One open descriptor, overwritten in place under an exclusive ``flock`` (about 0.1 ms; a
    temporary file and a rename cost 2 ms per entry here), moved forward only: two processes
    committing at once never move it back. Not fsynced: after a power cut it may be torn or older,
    which weakens the tail check but never makes a good log look tampered (a torn head is ignored).
    """

    _SIZE = 256

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None

    def advance(self, entry_id: int, digest: str) -> None:
        import fcntl

        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            current = _parse_head(os.pread(self._fd, self._SIZE, 0))
            if current is not None and int(current["id"]) >= entry_id:
                return
            record = json.dumps({"id": entry_id, "hash": digest}).encode()
            os.pwrite(self._fd, record.ljust(self._SIZE), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
