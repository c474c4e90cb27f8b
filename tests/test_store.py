"""Lineage store: migrations, transactions, entities, concurrency."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from tests._factories import make_experiment
from workbench.exceptions import NotFoundError, WorkbenchError
from workbench.lineage import Store
from workbench.lineage._schema import MIGRATIONS


def test_connection_settings(tmp_path):
    s = Store(tmp_path / "l.db")
    conn = s._db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert s.applied_migrations() == [name for name, _ in MIGRATIONS]
    s.close()


def test_migrations_apply_once(tmp_path):
    Store(tmp_path / "l.db").close()
    s = Store(tmp_path / "l.db")
    assert s.migrate() == []
    assert s.applied_migrations() == [name for name, _ in MIGRATIONS]


def test_refuses_store_from_newer_version(tmp_path):
    s = Store(tmp_path / "l.db")
    s._db.conn.execute("INSERT INTO _migrations (name, applied_at) VALUES ('9999_future', 'x')")
    s.close()
    with pytest.raises(WorkbenchError, match="newer workbench"):
        Store(tmp_path / "l.db")


def test_transaction_rolls_back_everything(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.datasets.ensure("a")
            store.datasets.ensure("b")
            raise RuntimeError("boom")
    assert store._db.rows("SELECT * FROM datasets") == []


def test_foreign_keys_enforced(store):
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction():
            store._db.conn.execute(
                "INSERT INTO trials (experiment_id, trial_id, config_json, status, started_at) VALUES (999, 't', '{}', 'X', 'now')"
            )


def _dataset_kwargs(h: str) -> dict:
    return dict(
        content_hash=h,
        artifact_hash="a" * 64,
        source="x",
        n_rows=1,
        n_cols=1,
        schema={"a": "Int64"},
        target=None,
        validation=[],
    )


def test_dataset_versions_are_content_addressed(store):
    v1, created = store.datasets.add_version("d", **_dataset_kwargs("h1"))
    again, created_again = store.datasets.add_version("d", **_dataset_kwargs("h1"))
    v2, _ = store.datasets.add_version(
        "d",
        **_dataset_kwargs("h2"),
    )
    assert (v1["version"], created) == (1, True)
    assert (again["id"], created_again) == (v1["id"], False)
    assert v2["version"] == 2
    assert store.datasets.get_version("d")["version"] == 2
    with pytest.raises(NotFoundError, match="ingest it first"):
        store.datasets.get_version("d", 7)


def _version(store, model="m"):
    return store.models.add_version(
        model,
        task="classification",
        artifact_hash="b" * 64,
        params={},
        metrics={"f1": 0.9},
        signature={},
        experiment_id=None,
        trial_id=None,
        dataset_version_id=None,
    )


def test_model_versions_aliases_and_history(store):
    v1, v2 = _version(store), _version(store)
    assert (v1["version"], v2["version"]) == (1, 2)
    store.models.set_alias("m", "champion", 1, actor="alice", reason="first")
    store.models.set_alias("m", "champion", 2, actor="bob", reason="better")
    assert store.models.get_version("m", "champion")["version"] == 2
    assert store.models.get_version("m", "2")["aliases"] == ["champion"]
    hist = store.models.list_alias_history("m")
    assert [(h["version"], h["previous_version"], h["actor"]) for h in hist] == [
        (1, None, "alice"),
        (2, 1, "bob"),
    ]
    with pytest.raises(NotFoundError, match="versions: 1, 2"):
        store.models.get_version("m", 9)
    with pytest.raises(NotFoundError, match="known models: m"):
        store.models.get_version("nope", 1)


def test_traffic_requests_feedback_and_which_version_served(store):
    v1 = _version(store)
    store.deployments.add("svc", model="m", route_prefix="/svc", status="running")
    store.deployments.record_traffic("svc", {1: 1.0}, actor="ci", reason="initial")
    n = store.deployments.record_requests(
        [
            {
                "request_id": f"r{i}",
                "deployment": "svc",
                "model_version_id": v1["id"],
                "features": [{"x": i}],
                "prediction": ["a"],
                "latency_ms": 1.5,
                "status_code": 200,
            }
            for i in range(5)
        ]
    )
    assert n == 5
    assert (
        store.deployments.record_requests(
            [{"request_id": "r0", "deployment": "svc", "features": [], "latency_ms": 1}]
        )
        == 0
    )
    row = store._db.row(
        "SELECT v.version, r.at FROM request_logs r JOIN model_versions v ON v.id = r.model_version_id WHERE request_id = 'r3'"
    )
    assert row["version"] == 1
    store.monitors.record_labels({"r1": ["a"], "r2": ["b"]})
    assert [r["request_id"] for r in store.monitors.list_labeled_requests("svc")] == ["r1", "r2"]
    with pytest.raises(NotFoundError, match="never logged"):
        store.monitors.record_labels({"unknown": ["a"]})
    assert store.deployments.list_traffic("svc")[0]["weights"] == {"1": 1.0}
    assert store.edges(src=("model_version", v1["id"]))[0]["relation"] == "deployed_to"
    actions = [a["action"] for a in store.audit_log()]
    assert "traffic.change" in actions and "model_version.register" in actions


def test_trial_events_batch_upsert(store):
    exp = make_experiment(store)
    store.experiments.record_trial_events(
        exp, [{"trial_id": "t1", "config": {"a": 1}, "status": "RUNNING"}], [("t1", 1, {"f1": 0.5})]
    )
    store.experiments.record_trial_events(
        exp,
        [{"trial_id": "t1", "status": "TERMINATED", "metrics": {"f1": 0.7}, "duration_s": 2.0}],
        [("t1", 2, {"f1": 0.7})],
    )
    (t,) = store.experiments.list_trials(exp)
    assert (t["status"], t["config"], t["metrics"], t["duration_s"]) == (
        "TERMINATED",
        {"a": 1},
        {"f1": 0.7},
        2.0,
    )
    assert [(m["step"], m["value"]) for m in store.experiments.list_trial_metrics(exp, "t1")] == [
        (1, 0.5),
        (2, 0.7),
    ]


def _writer(path: str, worker: int, n: int) -> None:
    s = Store(path)
    for i in range(n):
        with s.transaction():
            count = s._db.row("SELECT COUNT(*) AS c FROM datasets")["c"]
            s.datasets.ensure(f"w{worker}-{i}-{count}")
    s.close()


def test_concurrent_writers_never_fail_with_locked(tmp_path):
    """Read-then-write transactions from 4 processes at once: BEGIN IMMEDIATE makes them queue, not fail."""
    path = str(tmp_path / "l.db")
    Store(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert Store(path)._db.row("SELECT COUNT(*) AS c FROM datasets")["c"] == 100


def test_drift_results_limit_keeps_the_latest_windows_in_order(store):
    dv, _ = store.datasets.add_version("d", **_dataset_kwargs("h1"))
    _version(store)
    store.deployments.add("dep", model="m", route_prefix="/dep", status="running")
    store.monitors.add(
        "mon", deployment="dep", kind="data_drift", reference_dataset_version_id=dv["id"], config={}
    )
    ids = [
        store.monitors.record_window(
            "mon",
            first_request_log_id=i * 10 + 1,
            last_request_log_id=i * 10 + 10,
            n=10,
            is_drift=i % 2 == 1,
            score=0.5,
            threshold=0.05,
            detail={},
        )
        for i in range(7)
    ]
    assert [r["id"] for r in store.monitors.list_windows("mon")] == ids
    assert [r["id"] for r in store.monitors.list_windows("mon", limit=3)] == ids[-3:]
    assert [r["id"] for r in store.monitors.list_windows("mon", drift_only=True, limit=2)] == [
        ids[3],
        ids[5],
    ]
    assert [r["id"] for r in store.monitors.list_windows("mon", limit=100)] == ids
    with pytest.raises(ValueError, match="positive integer"):
        store.monitors.list_windows("mon", limit=0)
