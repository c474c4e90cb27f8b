"""Attacks on the store, the artifact store and the home, each asserting the safe outcome and that
nothing was recorded or changed: read-only query, full disk inside a write and on COMMIT, a held
write lock, a process killed inside a transaction, unsafe homes, swapped/edited/planted version
rows, traversal-shaped hashes and names, tampered artifacts."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from workbench.config import secure_home
from workbench.exceptions import (
    ArtifactCorruptError,
    ConfigError,
    NotFoundError,
    TamperedError,
    UnsafeHomeError,
    WorkbenchError,
)
from workbench.lineage import ArtifactStore, Store


def _counts(store):
    return store.query(
        "SELECT (SELECT COUNT(*) FROM audit_log) AS audit, (SELECT COUNT(*) FROM model_versions) AS versions, "
        "(SELECT COUNT(*) FROM models) AS models"
    )[0]


# ----------------------------------------------------------------------- read-only query
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET actor = 'eve'",
        "DELETE FROM model_versions",
        "DROP TABLE audit_log",
        "INSERT INTO audit_log (actor, action, entity_type, detail_json, at) VALUES ('e','a','t','{}','x')",
        "PRAGMA query_only = OFF",
        "ATTACH DATABASE '/tmp/x.db' AS x",
    ],
)
def test_query_is_read_only(tmp_path, sql):
    s = Store(tmp_path / "lineage.db")
    s.audit("note", "t", 1, actor="ada")
    before = _counts(s)
    try:
        s.query(sql)
        s.query("UPDATE audit_log SET actor = 'eve'")  # after a PRAGMA it must still refuse
    except WorkbenchError as exc:
        assert "read-only" in str(exc) or "refused" in str(exc)
    else:
        pytest.fail(f"{sql!r} was accepted")
    assert _counts(s) == before and s.audit_log()[0]["actor"] == "ada"
    assert s.query("SELECT actor FROM audit_log") == [{"actor": "ada"}]
    assert s.verify_audit().ok


# ------------------------------------------------------------------------- disk full
def test_disk_full_inside_a_write_rolls_back(tmp_path):
    s = Store(tmp_path / "lineage.db")
    s.audit("before", "t", 1)
    pages = s._db.scalar("PRAGMA page_count")
    s._db.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(WorkbenchError, match="full.*nothing of this change was recorded"):
        s.audit("huge", "t", 2, {"blob": "x" * 200_000})
    assert not s._db.conn.in_transaction
    s._db.conn.execute("PRAGMA max_page_count = 1073741823")
    s.audit("after", "t", 3)
    assert [r["action"] for r in s.audit_log()] == ["after", "before"]
    assert s.verify_audit().ok


_FULL_ON_COMMIT = r"""
import os, resource, signal, sys
from workbench.lineage import Store
s = Store(sys.argv[1])
s.audit("before", "t", 1)
wal = sys.argv[1] + "-wal"
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = max(os.path.getsize(sys.argv[1]), os.path.getsize(wal))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
body_done = False
try:
    with s.transaction():
        s.audit("huge", "t", 2, {"blob": "x" * 400_000})  # fits the page cache: fails on COMMIT
        body_done = True
except Exception as exc:
    print("ERR", type(exc).__name__, exc)
print("BODY_DONE", body_done)
print("IN_TX", s._db.conn.in_transaction)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
s.audit("after", "t", 3)
print("ACTIONS", [r["action"] for r in s.audit_log()])
"""


def test_disk_full_on_commit_rolls_back(tmp_path):
    path = str(tmp_path / "lineage.db")
    out = subprocess.run(
        [sys.executable, "-c", _FULL_ON_COMMIT, path], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        "ERR WorkbenchError" in out.stdout and "nothing of this change was recorded" in out.stdout
    ), out.stdout
    assert "BODY_DONE True" in out.stdout  # the write itself succeeded: COMMIT failed
    assert "IN_TX False" in out.stdout
    assert "ACTIONS ['after', 'before']" in out.stdout
    s = Store(path)
    assert [r["action"] for r in s.audit_log()] == ["after", "before"]
    assert s.verify_audit().ok


# ------------------------------------------------------------- lock held, process killed
_HOLD = r"""
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO audit_log (actor, action, entity_type, detail_json, at) VALUES ('x','held','t','{}','now')")
print("LOCKED", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_held_write_lock_is_a_clear_error_after_the_timeout(tmp_path):
    s = Store(tmp_path / "lineage.db", busy_timeout_s=0.5)
    s.audit("before", "t", 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, s.path, "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        t0 = time.monotonic()
        with pytest.raises(WorkbenchError, match="locked by another process for 0.5 s"):
            s.audit("blocked", "t", 2)
        assert 0.4 < time.monotonic() - t0 < 5
        assert not s._db.conn.in_transaction
    finally:
        holder.kill()
        holder.wait()
    s.audit("after", "t", 3)
    assert [r["action"] for r in s.audit_log()] == ["after", "before"]
    assert s.verify_audit().ok


def test_a_process_killed_inside_a_transaction_leaves_nothing(tmp_path):
    s = Store(tmp_path / "lineage.db")
    s.audit("before", "t", 1)
    s.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "lineage.db"), "60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "LOCKED"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    s = Store(tmp_path / "lineage.db", busy_timeout_s=2)
    assert [r["action"] for r in s.audit_log()] == ["before"]
    s.audit("after", "t", 2)
    assert s.verify_audit().ok and s.verify_audit().checked == 2


# ------------------------------------------------------------------------------- home
def test_home_is_created_0700_and_artifacts_are_private(tmp_path, monkeypatch):
    from workbench.stages import Stages

    home = tmp_path / "a" / "wbhome"
    stages = Stages.open(home)
    try:
        assert oct(home.stat().st_mode & 0o777) == "0o700"
        digest = stages.artifacts.put_bytes(b"personal data")
        blob = stages.artifacts.path_for(digest)
        assert oct(blob.stat().st_mode & 0o777) == "0o400"
        assert oct(blob.parent.stat().st_mode & 0o777) == "0o700"
        assert oct((home / "artifacts").stat().st_mode & 0o777) == "0o700"
    finally:
        stages.close()


@pytest.mark.parametrize(
    "mode, words", [(0o770, "chmod 700"), (0o707, "chmod 700"), (0o777, "chmod 700")]
)
def test_group_or_world_writable_home_is_refused(tmp_path, mode, words):
    from workbench.stages import Stages

    home = tmp_path / "wbhome"
    home.mkdir()
    os.chmod(home, mode)
    with pytest.raises(UnsafeHomeError, match=words):
        Stages.open(home)
    assert list(home.iterdir()) == []  # nothing was created in it


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_home_owned_by_another_user_is_refused(tmp_path):
    from workbench.stages import Stages

    home = tmp_path / "wbhome"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    with pytest.raises(UnsafeHomeError, match="owned by uid 65534.*chown -R 0"):
        Stages.open(home)
    assert list(home.iterdir()) == []


def test_a_readable_existing_home_is_accepted(tmp_path, caplog):
    home = tmp_path / "wbhome"
    home.mkdir()
    os.chmod(home, 0o755)
    assert secure_home(home) == home
    assert "chmod 700" in caplog.text
    assert oct(home.stat().st_mode & 0o777) == "0o755"  # left as it was


# ----------------------------------------------------------------- rows and artifacts
@pytest.fixture
def registry(tmp_path, monkeypatch):
    import pandas as pd
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    from workbench.features import build_preprocessor
    from workbench.registry import ModelBundle, ModelRegistry

    monkeypatch.delenv("WORKBENCH_AUDIT_KEY", raising=False)
    store = Store(tmp_path / "lineage.db")
    reg = ModelRegistry(store, ArtifactStore(tmp_path / "artifacts"))
    kinds = {"x": "number"}
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    for slope in (1.0, 10.0):
        pipe = Pipeline([("preprocess", build_preprocessor(kinds)), ("model", LinearRegression())])
        bundle = ModelBundle(
            pipe.fit(X, [slope, 2 * slope, 3 * slope]), kinds, "y", [], task="regression"
        )
        reg.register("m", bundle, metrics={})
    yield reg
    store.close()


def _raw_exec(store, sql, params=()):
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute(sql, params)
    conn.close()


def test_registered_versions_load(registry):
    assert registry.load("m", 1).predict_records([{"x": 4.0}]) is not None
    row = registry.store.query("SELECT row_digest FROM model_versions WHERE version = 1")[0]
    assert row["row_digest"].startswith("sha256:")


def test_swapped_artifact_hashes_are_refused(registry):
    a, b = (registry.get("m", v).artifact_hash for v in (1, 2))
    _raw_exec(
        registry.store,
        "UPDATE model_versions SET artifact_hash = CASE version WHEN 1 THEN ? ELSE ? END",
        (b, a),
    )
    for v in (1, 2):
        with pytest.raises(TamperedError, match="swapped"):
            registry.load("m", v)
    with pytest.raises(TamperedError):
        registry.store.models.get_version("m", 1)  # serving reads the same way


def test_an_edited_row_is_refused(registry):
    _raw_exec(
        registry.store, "UPDATE model_versions SET params_json = '{\"evil\": 1}' WHERE version = 2"
    )
    with pytest.raises(TamperedError):
        registry.load("m", 2)
    registry.load("m", 1)  # the other version is untouched


def test_a_planted_blob_and_row_is_refused(registry):
    import pickle

    planted = registry.artifacts.put_bytes(
        pickle.dumps({"not": "a bundle"})
    )  # written outside register
    mid = registry.store.query("SELECT model_id FROM model_versions LIMIT 1")[0]["model_id"]
    _raw_exec(
        registry.store,
        "INSERT INTO model_versions (model_id, version, artifact_hash, params_json, metrics_json, signature_json, created_at) "
        "VALUES (?, 3, ?, '{}', '{}', '{}', '2099-01-01')",
        (mid, planted),
    )
    with pytest.raises(TamperedError, match="written outside workbench"):
        registry.load("m", 3)


def test_a_keyed_binding_cannot_be_forged_without_the_key(registry, monkeypatch):
    from workbench.lineage._models import row_digest

    monkeypatch.setenv("WORKBENCH_AUDIT_KEY", "secret-key")
    mv = registry.register("m", registry.load("m", 1), metrics={})
    row = registry.store.models.get_version("m", mv.version)
    other = registry.get("m", 2).artifact_hash
    forged = row_digest({**row, "artifact_hash": other}, None)  # the attacker knows no key
    _raw_exec(
        registry.store,
        "UPDATE model_versions SET artifact_hash = ?, row_digest = ? WHERE id = ?",
        (other, forged, mv.id),
    )
    with pytest.raises(TamperedError, match="without the audit key"):
        registry.load("m", mv.version)


def test_a_tampered_artifact_is_not_loaded(registry):
    path = registry.artifacts.path_for(registry.get("m", 1).artifact_hash)
    os.chmod(path, 0o600)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactCorruptError):
        registry.load("m", 1)


@pytest.mark.parametrize(
    "digest", ["../../etc/passwd", "/etc/passwd", "a" * 63 + "\x00", "A" * 64, "../" + "a" * 61]
)
def test_traversal_shaped_hashes_are_refused_before_any_file_access(registry, digest, monkeypatch):
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    with pytest.raises(NotFoundError, match="not a SHA-256"):
        registry.artifacts.get_bytes(digest)
    with pytest.raises(ConfigError, match="not a SHA-256"):
        registry.store.models.add_version(
            "m",
            task="regression",
            artifact_hash=digest,
            params={},
            metrics={},
            signature={},
            experiment_id=None,
            trial_id=None,
            dataset_version_id=None,
        )
    assert opened == []
    assert _counts(registry.store)["versions"] == 2


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "a/b", "a\\b", "x\x00y", ".hidden", "", " pad"]
)
def test_path_shaped_model_names_are_refused(registry, name):
    before = _counts(registry.store)
    with pytest.raises(ConfigError, match="cannot name a model"):
        registry.register(name, registry.load("m", 1), metrics={})
    after = _counts(registry.store)  # the guard's intent entry is the only new record
    assert (after["versions"], after["models"]) == (before["versions"], before["models"])
    assert not registry.store.query(
        "SELECT 1 FROM audit_log WHERE action = 'model_version.register' AND id > ?",
        [before["audit"]],
    )


def test_a_commit_refused_by_sqlite_is_rolled_back(tmp_path):
    """A deferred foreign-key violation fails the COMMIT and, unlike a full disk, SQLite keeps the
    transaction open: the store must roll it back itself, or every later write fails."""
    s = Store(tmp_path / "lineage.db")
    s.audit("before", "t", 1)
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        with s.transaction():
            s._db.execute("PRAGMA defer_foreign_keys = ON")
            s.audit("doomed", "t", 2)
            s._db.execute(
                "INSERT INTO aliases (model_id, alias, model_version_id) VALUES (999, 'x', 999)"
            )
    assert not s._db.conn.in_transaction
    s.audit("after", "t", 3)
    assert [r["action"] for r in s.audit_log()] == ["after", "before"]
    assert s.query("SELECT COUNT(*) AS n FROM aliases") == [{"n": 0}]
    assert s.verify_audit().ok
