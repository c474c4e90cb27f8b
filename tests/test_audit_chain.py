"""The audit log is a hash chain: triggers refuse edits, and verify names the first edited, deleted
or reordered entry even when someone edits the file through a second connection with the triggers
dropped."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.lineage import Store
from workbench.lineage._audit import GENESIS, entry_hash


def _store(tmp_path, n=5, **kw):
    s = Store(tmp_path / "lineage.db", **kw)
    for i in range(n):
        s.audit("note", "model_version", i, {"i": i, "text": "é"}, actor="ada")
    return s


def _raw(store):
    """A second connection to the same file with the append-only triggers dropped."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_log_append_only_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_log_append_only_delete")
    return conn


def test_entries_are_chained_and_verify(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_AUDIT_KEY", raising=False)
    s = _store(tmp_path)
    rows = s.query("SELECT * FROM audit_log ORDER BY id")
    assert rows[0]["prev_hash"] == GENESIS
    for a, b in zip(rows, rows[1:], strict=False):
        assert b["prev_hash"] == a["hash"]
    assert all(r["hash"].startswith("sha256:") for r in rows)
    result = s.verify_audit()
    assert result.ok and result.checked == 5 and result.first_bad_id is None
    assert result.head == (5, rows[-1]["hash"]) and not result.keyed
    head = json.loads(Path(s.path + ".audit-head").read_text().strip())
    assert head == {"id": 5, "hash": rows[-1]["hash"]}


def test_triggers_refuse_update_and_delete(tmp_path):
    s = _store(tmp_path, 2)
    conn = sqlite3.connect(s.path)
    for sql in (
        "UPDATE audit_log SET actor = 'eve' WHERE id = 1",
        "DELETE FROM audit_log WHERE id = 2",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()
    assert [r["actor"] for r in s.audit_log()] == ["ada", "ada"]
    assert s.verify_audit().ok


@pytest.mark.parametrize(
    "attack, first_bad, words",
    [
        ("UPDATE audit_log SET actor = 'eve' WHERE id = 3", 3, "entry 3 was edited"),
        ("UPDATE audit_log SET detail_json = '{\"i\": 9}' WHERE id = 2", 2, "entry 2 was edited"),
        ("DELETE FROM audit_log WHERE id = 3", 3, "entry 3 is missing (deleted)"),
        ("DELETE FROM audit_log WHERE id IN (2, 3)", 2, "entries 2–3 are missing (deleted)"),
        ("DELETE FROM audit_log WHERE id = 1", 1, "entry 1 is missing (deleted)"),
        (
            "UPDATE audit_log SET id = -1 WHERE id = 3; UPDATE audit_log SET id = 3 WHERE id = 4;"
            " UPDATE audit_log SET id = 4 WHERE id = -1",
            3,
            "entries 3 and 4 are out of order",
        ),
        (
            "INSERT INTO audit_log (id, actor, action, entity_type, entity_id, detail_json, at)"
            " VALUES (6, 'eve', 'x', 'y', NULL, '{}', '2026')",
            6,
            "entry 6 has no hash",
        ),
        ("DELETE FROM audit_log WHERE id = 5", 5, "entries 5–5 are missing (deleted from the end)"),
    ],
)
def test_raw_edits_are_named(tmp_path, attack, first_bad, words):
    s = _store(tmp_path)
    conn = _raw(s)
    conn.executescript(attack)
    conn.close()
    result = s.verify_audit()
    assert not result.ok
    assert result.first_bad_id == first_bad, result.problem
    assert words in result.problem


def test_a_rehashed_edit_is_named_by_the_next_link(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_AUDIT_KEY", raising=False)
    s = _store(tmp_path)
    conn = _raw(s)
    row = dict(
        zip(
            ["id", "actor", "action", "entity_type", "entity_id", "detail_json", "at", "prev_hash"],
            conn.execute(
                "SELECT id, actor, action, entity_type, entity_id, detail_json, at, prev_hash FROM audit_log WHERE id = 2"
            ).fetchone(),
            strict=True,
        )
    )
    row["actor"] = "eve"
    conn.execute(
        "UPDATE audit_log SET actor = 'eve', hash = ? WHERE id = 2", (entry_hash(row, None),)
    )
    conn.close()
    result = s.verify_audit()
    assert result.first_bad_id == 2 and "entry 2 was edited" in result.problem


def test_keyed_chain_cannot_be_recomputed_without_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_AUDIT_KEY", "k" * 32)
    s = _store(tmp_path, 3)
    assert s.verify_audit().ok and s.verify_audit().keyed
    rows = s.query("SELECT * FROM audit_log ORDER BY id")
    assert all(r["hash"].startswith("hmac-sha256:") for r in rows)
    # an attacker without the key rewrites entry 3 and rehashes it with plain SHA-256
    conn = _raw(s)
    row = {**rows[2], "actor": "eve"}
    conn.execute(
        "UPDATE audit_log SET actor = 'eve', hash = ? WHERE id = 3", (entry_hash(row, None),)
    )
    conn.close()
    result = s.verify_audit()
    assert result.first_bad_id == 3 and "not keyed" in result.problem
    # a forged HMAC with a wrong key is an edit
    conn = _raw(s)
    conn.execute("UPDATE audit_log SET hash = ? WHERE id = 3", (entry_hash(row, b"wrong"),))
    conn.close()
    assert s.verify_audit().first_bad_id == 3
    monkeypatch.delenv("WORKBENCH_AUDIT_KEY")
    unkeyed = s.verify_audit()
    assert not unkeyed.ok and "WORKBENCH_AUDIT_KEY" in unkeyed.problem


def test_legacy_entries_are_chained_once_and_later_unhashed_rows_are_not_adopted(tmp_path):
    path = tmp_path / "lineage.db"
    s = Store(path)
    s.close()
    conn = sqlite3.connect(path, isolation_level=None)
    for i in range(3):  # as a workbench before the chain wrote them
        conn.execute(
            "INSERT INTO audit_log (actor, action, entity_type, entity_id, detail_json, at) VALUES ('old', 'a', 't', ?, '{}', '2025')",
            (i,),
        )
    conn.close()
    s = Store(path)
    assert s.verify_audit().ok and s.verify_audit().checked == 3
    s.audit("new", "t", 1)
    s.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO audit_log (actor, action, entity_type, entity_id, detail_json, at) VALUES ('eve', 'a', 't', 1, '{}', '2025')"
    )
    conn.close()
    s = Store(path)  # reopening does not chain the planted row
    result = s.verify_audit()
    assert result.first_bad_id == 5 and "no hash" in result.problem


_APPEND = """
import sys
from pathlib import Path
from workbench.lineage import Store
s = Store(sys.argv[1])
for i in range(25):
    s.audit("proc", "t", i, {"pid": sys.argv[2]})
"""


def test_concurrent_processes_form_one_chain(tmp_path):
    s = _store(tmp_path, 1)
    procs = [subprocess.Popen([sys.executable, "-c", _APPEND, s.path, str(k)]) for k in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    result = s.verify_audit()
    assert result.ok and result.checked == 101, result.problem


def test_entries_verify_whatever_types_the_caller_passed(tmp_path):
    s = Store(tmp_path / "lineage.db")
    s.audit("note", "model_version", "5")  # stored as 5 by the column's affinity
    s.audit("note", "model_version", 6.0, {"x": 1.5, "y": [None, True]})
    s.audit("note", "model_version", None, {"when": object()})  # detail dumped with str()
    assert s.verify_audit().ok, s.verify_audit().problem
