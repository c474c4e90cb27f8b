"""The stages' read views that the adapters (CLI, widgets, JupyterLab handlers) call instead of the
store: what each returns, on a real SQLite store, without Ray."""

from __future__ import annotations

import json

import pytest

from tests._factories import make_experiment
from workbench.exceptions import NotFoundError


@pytest.fixture
def bench(tmp_path):
    """A Workbench holding: dataset ``cancer`` (2 versions), model ``cancer`` v1-v2 trained on v1 and
    v3 on a dataset version that is gone from the lineage, deployment ``cancer`` with two traffic
    changes and 5 logged requests (one failed), monitor ``cancer-drift`` with two windows (the
    second a drift that triggered a retrain job), and a second monitor with a drift of its own."""
    from workbench import Workbench
    from workbench.lineage import utcnow

    bench = Workbench(tmp_path)
    store = bench.store
    dvs = [
        store.datasets.add_version(
            "cancer", content_hash=c * 64, artifact_hash="a" * 64, source="x.csv", n_rows=10 + i,
            n_cols=3, schema={"a": "Float64"}, target="y", validation=[],
        )[0]
        for i, c in enumerate("cd")
    ]  # fmt: skip
    for i in (1, 2, 3):
        store.models.add_version(
            "cancer", task="classification", artifact_hash=f"{i}" * 64, params={}, metrics={"f1": 0.9},
            signature={}, experiment_id=None, trial_id=None,
            dataset_version_id=dvs[0]["id"] if i < 3 else None,
        )  # fmt: skip
    store.deployments.add("cancer", model="cancer", route_prefix="/cancer", status="running")
    store.deployments.record_traffic("cancer", {1: 1.0}, actor="t", reason="deploy", kind="deploy")
    store.deployments.record_traffic(
        "cancer", {1: 0.75, 2: 0.25}, actor="t", reason="canary 1/2", kind="canary",
        detail={"step": 1, "steps": 2, "evidence": {"raw": [1, 2, 3]}},
    )  # fmt: skip
    store.deployments.record_requests(
        [
            {"request_id": f"r{i}", "deployment": "cancer", "model_version_id": 1,
             "features": {"a": i}, "prediction": "x", "latency_ms": float(i),
             "status_code": 500 if i == 3 else 200, "at": utcnow()}
            for i in range(1, 6)
        ]
    )  # fmt: skip
    windows = {}
    for mon in ("cancer-drift", "other"):
        store.monitors.add(
            mon, deployment="cancer", kind="data_drift",
            reference_dataset_version_id=dvs[0]["id"], config={"p_val": 0.05},
        )  # fmt: skip
        store.monitors.set_state(mon, {"online": [0.1] * 50})
        windows[mon] = [
            store.monitors.record_window(
                mon,
                first_request_log_id=i,
                last_request_log_id=i,
                n=1,
                is_drift=bool(i),
                score=0.5 - 0.49 * i,
                threshold=0.05,
                detail={},
            )  # fmt: skip
            for i in (0, 1)
        ]
    jobs = {
        mon: store.retraining.claim_job(
            f"drift:{mon}", policy="p", status="PENDING_APPROVAL", drift_result_id=windows[mon][1]
        )
        for mon in windows
    }
    bench.fixture = {"dvs": dvs, "windows": windows, "jobs": jobs}
    yield bench
    bench.close()


# ------------------------------------------------------------------ experiments
def test_experiment_record_metrics_and_the_audit_of_a_stop(bench):
    eid = make_experiment(bench.store, name="e1")
    bench.store.experiments.record_trial_events(
        eid, [{"trial_id": "t1", "status": "RUNNING"}], [("t1", s, {"f1": s / 10}) for s in (1, 2)]
    )
    assert bench.experiments.get(eid)["name"] == "e1"
    assert bench.experiments.get(eid)["n_trials"] == 1
    assert [(m["step"], m["value"]) for m in bench.experiments.metrics(eid, "t1")] == [
        (1, 0.1),
        (2, 0.2),
    ]
    assert bench.experiments.metrics(eid, "nope") == []
    entry = bench.experiments.record_stop(eid, reason="enough", actor="erin", via="cli")
    audit = bench.audit_log(1)[0]
    assert (audit["id"], audit["action"], audit["entity_id"], audit["actor"]) == (
        entry,
        "experiment.stop",
        eid,
        "erin",
    )
    assert audit["detail"] == {"reason": "enough", "via": "cli"}
    with pytest.raises(NotFoundError, match="workbench runs"):
        bench.experiments.get(99)


# ------------------------------------------------------------------ registry
def test_data_versions_are_those_of_the_datasets_the_model_was_trained_on(bench):
    rows = bench.registry.data_versions("cancer")
    assert [(r["dataset"], r["version"], r["n_rows"]) for r in rows] == [
        ("cancer", 1, 10),
        ("cancer", 2, 11),
    ]
    assert set(rows[0]) == {
        "id", "dataset", "version", "n_rows", "n_cols", "content_hash", "created_at", "parent_id"
    }  # fmt: skip
    assert bench.registry.data_versions("unknown") == []


# ------------------------------------------------------------------ serving (store only)
def test_serving_record_history_stats_and_requests_need_no_ray(bench):
    record = bench.serving.record("cancer")
    assert record["weights"] == {1: 0.75, 2: 0.25} and record["versions"] == [1, 2, 3]
    assert (record["model"], record["route_prefix"], record["status"]) == (
        "cancer",
        "/cancer",
        "running",
    )
    history = bench.serving.traffic_history("cancer")
    assert [(c["kind"], c["weights"]) for c in history] == [
        ("deploy", {1: 1.0}),
        ("canary", {1: 0.75, 2: 0.25}),
    ]
    assert history[1]["detail"] == {"step": 1, "steps": 2}, "the canary's raw evidence stays out"
    assert bench.serving.request_stats("cancer") == {
        "n": 5,
        "errors": 1,
        "mean_latency_ms": pytest.approx(3.0),
    }
    first = bench.serving.requests("cancer", limit=2)
    assert [r["request_id"] for r in first] == ["r1", "r2"]
    assert first[0]["features"] == [{"a": 1}] and first[0]["model_version"] == 1
    rest = bench.serving.requests("cancer", after_id=first[-1]["id"])
    assert [r["request_id"] for r in rest] == ["r3", "r4", "r5"]
    assert [r["request_id"] for r in bench.serving.requests("cancer", ok_only=True)] == [
        "r1", "r2", "r4", "r5"
    ]  # fmt: skip
    json.dumps(first)
    with pytest.raises(NotFoundError, match="ghost"):
        bench.serving.record("ghost")


# ------------------------------------------------------------------ monitoring and automation
def test_monitor_records_leave_the_running_state_out(bench):
    listed = bench.monitoring.list()
    assert [m["name"] for m in listed] == ["cancer-drift", "other"]
    assert all("state" not in m for m in listed)
    record = bench.monitoring.record("cancer-drift")
    assert record == listed[0]
    assert (record["deployment"], record["kind"], record["config"]) == (
        "cancer",
        "data_drift",
        {"p_val": 0.05},
    )
    json.dumps(listed)
    # the state is still there for the monitor itself
    assert bench.store.monitors.get("cancer-drift")["state"] == {"online": [0.1] * 50}
    with pytest.raises(NotFoundError, match="drift_monitor"):
        bench.monitoring.record("nope")


def test_retrain_jobs_of_a_monitor_are_those_its_drift_triggered(bench):
    fx = bench.fixture
    jobs = bench.monitoring.retrain_jobs("cancer-drift")
    assert [(j["id"], j["drift_result_id"], j["status"]) for j in jobs] == [
        (fx["jobs"]["cancer-drift"], fx["windows"]["cancer-drift"][1], "PENDING_APPROVAL")
    ]
    assert [j["id"] for j in bench.monitoring.retrain_jobs("other")] == [fx["jobs"]["other"]]
    assert bench.automation.job(fx["jobs"]["other"])["policy"] == "p"
    with pytest.raises(NotFoundError, match="automation.jobs"):
        bench.automation.job(999)


# ------------------------------------------------------------------ workbench: lineage, reopen
def test_lineage_graph_is_json_safe_and_records_are_shaped_for_display(bench):
    mv = bench.registry.get("cancer", 1)
    graph = bench.lineage_graph("model_version", mv.id)
    assert graph["root"] == f"model_version:{mv.id}"
    keys = [n["key"] for n in graph["nodes"]]
    assert keys == sorted(keys, key=lambda k: (k.split(":")[0], int(k.split(":")[1])))
    assert {"deployment:1", f"dataset_version:{bench.fixture['dvs'][0]['id']}"} <= set(keys)
    assert all(e["src"] in keys and e["dst"] in keys for e in graph["edges"])
    json.dumps(graph)
    dv = bench.lineage_record("dataset_version", bench.fixture["dvs"][0]["id"])
    assert dv["description"].startswith("dataset cancer v1") and "schema" not in dv["record"]
    eid = make_experiment(bench.store, name="e2")
    exp = bench.lineage_record("experiment", eid)
    assert "packages" not in exp["record"] and exp["record"]["name"] == "e2"
    assert bench.lineage_record("alert", 12345)["record"] == {}
    assert bench.lineage_record("gizmo", 1) == {
        "type": "gizmo",
        "id": 1,
        "description": "gizmo #1",
        "record": {},
    }
    with pytest.raises(NotFoundError):
        bench.lineage_record("model_version", 999)


def test_reopen_gives_a_second_connection_on_the_same_home(bench):
    other = bench.reopen()
    try:
        assert other is not bench and other.store is not bench.store
        assert other.settings == bench.settings
        assert (other.address, other.serve_port) == (bench.address, bench.serve_port)
        bench.registry.set_alias("cancer", "staging", 2, reason="seen by the other connection")
        assert other.registry.get("cancer", "staging").version == 2
    finally:
        other.close()
    assert bench.registry.get("cancer", "staging").version == 2  # this one stays open


def test_default_actor_lives_below_every_stage():
    import getpass

    from workbench._identity import default_actor

    try:
        expected = getpass.getuser()
    except Exception:
        expected = "unknown"
    assert default_actor() == expected
