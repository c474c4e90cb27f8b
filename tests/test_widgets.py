"""The notebook widgets (workbench.ui): state built from the stages' read views over a real store,
throttling, actions through the public API.

Unit tests use a real SQLite store behind the real stage objects; the tests marked ``ray`` run a real search
(stop button, state after a restart) and a real Serve deployment (sliders,
rollback) in the session's Ray. What the browser draws is checked in
tests/browser/test_widgets_browser.py.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time

import pytest

from tests._factories import make_experiment
from workbench.exceptions import ConfigError, NotFoundError


def _wait(pred, timeout=10.0, interval=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def _experiments(store):
    """The ``Experiments`` stage on ``store``: its read views need nothing else (no Ray, no data)."""
    from workbench.experiments import Experiments

    return Experiments(store, None, None, connect=None)


def _trials(store, eid, n, *, seed=0, running=0):
    rng = random.Random(seed)
    trials, metrics = [], []
    for i in range(n):
        tid = f"t{i:04d}"
        f1 = rng.random()
        status = (
            "RUNNING" if i >= n - running else rng.choice(["TERMINATED"] * 8 + ["ERROR", "STOPPED"])
        )
        trials.append(
            {
                "trial_id": tid,
                "config": {
                    "family": rng.choice(["random_forest", "logistic"]),
                    "C": 10 ** rng.uniform(-3, 2),
                    "depth": rng.randint(1, 10),
                },
                "status": status,
                "metrics": {"f1": f1, "accuracy": f1 * 0.9},
                "duration_s": 1.0 + i / 100,
                "ended_at": None
                if status == "RUNNING"
                else f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}",
            }
        )
        metrics += [(tid, step, {"f1": f1 * (step + 1) / 3}) for step in range(3)]
    store.experiments.record_trial_events(eid, trials, metrics)
    return trials


# ------------------------------------------------------------------ experiment state
def test_experiment_state_has_compact_rows_curves_and_best_so_far(store):
    from workbench.ui import ExperimentWidget

    eid = make_experiment(store, name="demo")
    trials = _trials(store, eid, 30, running=2)
    w = ExperimentWidget(_experiments(store), eid, autostart=False)
    w.refresh(force=True)
    assert w.kind == "experiment" and w.experiment["name"] == "demo"
    assert w.columns[:4] == ["trial_id", "status", "f1", "duration_s"]
    assert {"config.C", "config.depth", "config.family", "metrics.accuracy"} <= set(w.columns)
    assert len(w.rows) == 30 and all(len(r) == len(w.columns) for r in w.rows)
    by_id = {r[0]: r for r in w.rows}
    for t in trials:
        assert by_id[t["trial_id"]][2] == pytest.approx(t["metrics"]["f1"])
        assert by_id[t["trial_id"]][1] == t["status"]
    best = max(trials, key=lambda t: t["metrics"]["f1"])
    assert w.best["trial_id"] == best["trial_id"] and w.best["value"] == pytest.approx(
        best["metrics"]["f1"]
    )
    # Best so far only grows (mode max) and counts only finished trials.
    values = [p[1] for p in w.best_curve]
    assert values == sorted(values)
    assert len(w.best_curve) == sum(t["status"] != "RUNNING" for t in trials)
    assert w.curves["t0000"] == [
        [0.0, pytest.approx(trials[0]["metrics"]["f1"] / 3)],
        [1.0, pytest.approx(trials[0]["metrics"]["f1"] * 2 / 3)],
        [2.0, pytest.approx(trials[0]["metrics"]["f1"])],
    ]
    assert w.experiment["counts"]["RUNNING"] == 2
    assert not w.can_stop, "no search handle: no stop button"
    json.dumps(w.get_state())  # everything synced is JSON


def test_experiment_min_mode_and_nan_metrics(store):
    from workbench.ui import ExperimentWidget

    eid = make_experiment(store, name="reg", metric="rmse", mode="min", num_samples=3)
    store.experiments.record_trial_events(
        eid,
        [
            {
                "trial_id": "a",
                "status": "TERMINATED",
                "metrics": {"rmse": 3.0},
                "ended_at": "2026-01-01T00:00:01",
            },
            {
                "trial_id": "b",
                "status": "TERMINATED",
                "metrics": {"rmse": 1.5},
                "ended_at": "2026-01-01T00:00:02",
            },
            {
                "trial_id": "c",
                "status": "ERROR",
                "metrics": {"rmse": float("nan")},
                "ended_at": "2026-01-01T00:00:03",
            },
        ],
    )
    w = ExperimentWidget(_experiments(store), eid, autostart=False)
    w.refresh(force=True)
    assert w.best["trial_id"] == "b"
    assert [p[1] for p in w.best_curve] == [3.0, 1.5]
    assert {r[0]: r[2] for r in w.rows}["c"] is None  # NaN cannot cross the JSON comm


def test_unknown_experiment_fails_at_once(store):
    from workbench.ui import ExperimentWidget

    with pytest.raises(NotFoundError, match="experiment 99"):
        ExperimentWidget(_experiments(store), 99, autostart=False)


def test_a_thousand_trials_refresh_cheaply_and_finished_curves_are_read_once(store):
    from workbench.ui import ExperimentWidget

    eid = make_experiment(store, name="big")
    _trials(store, eid, 1000)
    w = ExperimentWidget(_experiments(store), eid, autostart=False, min_interval=0)
    calls = []
    original = store.experiments.list_trial_metrics
    store.experiments.list_trial_metrics = lambda *a, **k: calls.append(a) or original(*a, **k)
    t0 = time.perf_counter()
    w.refresh(force=True)
    first_ms = (time.perf_counter() - t0) * 1000
    assert len(calls) == 1000 and len(w.rows) == 1000
    calls.clear()
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        w.refresh(force=True)
        timings.append((time.perf_counter() - t0) * 1000)
    assert calls == [], "curves of finished trials are cached"
    # One update of 1,000 trials: the store read runs on the poller thread, the push (what the
    # kernel's comm sees) is the small part. Generous bounds for a loaded 2-core machine.
    assert min(timings) < 250, timings
    assert w.stats["push_ms"] < 50, w.stats
    print(
        f"\n1,000 trials: first refresh {first_ms:.1f} ms, later {min(timings):.1f}-{max(timings):.1f} ms, push {w.stats['push_ms']:.2f} ms"
    )


def test_updates_are_throttled_to_a_few_per_second(store):
    from workbench.ui import ExperimentWidget

    eid = make_experiment(store)
    _trials(store, eid, 5, running=5)
    w = ExperimentWidget(_experiments(store), eid, autostart=False, min_interval=0.25)
    sent = []
    w.observe(lambda ch: sent.append(time.monotonic()), names=["rows"])
    t0 = time.monotonic()
    for i in range(40):  # 40 changes within ~0.4 s
        store.experiments.record_trial_events(
            eid, [{"trial_id": "t0000", "metrics": {"f1": i / 100}}]
        )
        w.refresh()
        time.sleep(0.01)
    assert _wait(lambda: not w._throttle.has_pending, 2)
    elapsed = time.monotonic() - t0
    assert 2 <= len(sent) <= elapsed / 0.25 + 2, (len(sent), elapsed)
    assert all(b - a >= 0.2 for a, b in zip(sent, sent[1:], strict=False)), sent
    # The trailing push carries the latest value: the display is never left stale.
    assert {r[0]: r[2] for r in w.rows}["t0000"] == pytest.approx(0.39)


def test_poller_thread_pushes_new_trials_and_stops_when_the_experiment_ends(store):
    from workbench.ui import ExperimentWidget

    eid = make_experiment(store)
    w = ExperimentWidget(_experiments(store), eid, poll_interval=0.05, min_interval=0.05)
    try:
        assert w.polling
        _trials(store, eid, 3, running=3)
        assert _wait(lambda: len(w.rows) == 3, 5)
        store.experiments.set_finished(eid, status="TERMINATED", best_trial_id="t0001")
        assert _wait(lambda: not w.polling, 5), "polling ends once the experiment has ended"
        assert w.experiment["status"] == "TERMINATED"
    finally:
        w.close()


def test_stop_without_a_running_search_says_what_to_do(store):
    from workbench.ui import ExperimentWidget

    eid = make_experiment(store)
    w = ExperimentWidget(_experiments(store), eid, autostart=False)
    with pytest.raises(ConfigError, match="resume"):
        w.act("stop")
    with pytest.raises(ConfigError, match="no action 'explode'"):
        w.act("explode")


def test_experiment_rows_show_the_cv_interval_of_the_metric_when_folds_were_recorded(store):
    from workbench.evaluation import cv_summary
    from workbench.ui import ExperimentWidget

    eid = make_experiment(store, name="cv")
    _trials(store, eid, 3)
    folds = [{"f1": 0.80}, {"f1": 0.84}, {"f1": 0.88}]
    store.evaluations.record_folds(eid, "t0001", folds)
    w = ExperimentWidget(_experiments(store), eid, autostart=False)
    w.refresh(force=True)
    assert w.columns[:5] == ["trial_id", "status", "f1", "duration_s", "cv f1"]
    rows = {r[0]: r for r in json.loads(w.rows_json)}
    s = cv_summary(folds)["f1"]
    assert rows["t0001"][4] == f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"
    assert rows["t0001"][4] == "0.840 [0.741, 0.939]"  # t(0.975, 2) = 4.303, std 0.04
    assert rows["t0000"][4] is None  # no folds recorded: no interval
    # without any fold the table keeps its columns
    other = make_experiment(store, name="plain")
    _trials(store, other, 2)
    w2 = ExperimentWidget(_experiments(store), other, autostart=False)
    w2.refresh(force=True)
    assert "cv f1" not in w2.columns


# ------------------------------------------------------------------ registry
@pytest.fixture
def bench(tmp_path):
    """A Workbench whose store holds one dataset version and three versions of model ``cancer``."""
    from workbench import Workbench

    bench = Workbench(tmp_path)
    store = bench.store
    dv, _ = store.datasets.add_version(
        "cancer",
        content_hash="c" * 64,
        artifact_hash="a" * 64,
        source="x.csv",
        n_rows=569,
        n_cols=31,
        schema={},
        target="diagnosis",
        validation=[],
    )
    for i, f1 in enumerate([0.95, 0.97, 0.93], start=1):
        store.models.add_version(
            "cancer",
            task="classification",
            artifact_hash=f"{i}" * 64,
            params={"C": i},
            metrics={"f1": f1, "accuracy": f1 - 0.01},
            # version 3 was trained with a feature spec: its bundle's generated columns
            signature={"feature_names": ["radius", "radius_missing", "texture"]} if i == 3 else {},
            experiment_id=None,
            trial_id=None,
            dataset_version_id=dv["id"],
        )
    store.models.set_alias("cancer", "champion", 1, actor="tester", reason="first")
    yield bench
    bench.close()


@pytest.fixture
def registry(bench):
    return bench.registry


def test_registry_state_lists_versions_metrics_data_and_aliases(registry):
    from workbench.ui import RegistryWidget

    w = RegistryWidget(registry, "cancer", autostart=False, highlight=2)
    w.refresh(force=True)
    assert [v["version"] for v in w.versions] == [1, 2, 3]
    assert w.versions[1]["metrics"] == {"f1": 0.97, "accuracy": pytest.approx(0.96)}
    assert w.versions[0]["dataset"] == "cancer v1"
    assert w.metric_names == ["f1", "accuracy"] or w.metric_names == ["accuracy", "f1"]
    assert w.aliases == {"champion": 1}
    assert w.data_versions[0]["label"] == "cancer v1" and w.data_versions[0]["rows"] == 569
    assert w.rollback == {"champion": None}, "champion never moved: nothing to roll back to"
    assert w.versions[2]["feature_names"] == ["radius", "radius_missing", "texture"]
    assert w.versions[0]["feature_names"] == []  # a version from before feature specs
    with pytest.raises(NotFoundError, match="known models: cancer"):
        RegistryWidget(registry, "nope", autostart=False)


def test_promote_needs_confirmation_then_moves_the_alias_and_audits_it(registry):
    from workbench.ui import RegistryWidget

    w = RegistryWidget(registry, "cancer", autostart=False, actor="alice (widget)")
    with pytest.raises(ConfigError, match="confirm=True"):
        w.act("promote", version=2)
    assert registry.get("cancer", "champion").version == 1
    w.act("promote", version=2, confirm=True, reason="better f1")
    assert registry.get("cancer", "champion").version == 2
    last = registry.history("cancer")[-1]
    assert (last["version"], last["previous_version"], last["actor"], last["reason"]) == (
        2,
        1,
        "alice (widget)",
        "better f1",
    )
    audit = registry.store.audit_log(5)
    assert any(a["action"] == "alias.set" and a["actor"] == "alice (widget)" for a in audit)
    assert w.aliases == {"champion": 2} and w.rollback == {"champion": 1}  # refreshed after acting

    with pytest.raises(ConfigError, match="confirm=True"):
        w.act("rollback")
    w.act("rollback", confirm=True)
    assert registry.get("cancer", "champion").version == 1
    assert registry.history("cancer")[-1]["reason"].startswith("rolled back from version 2")


def test_a_click_arrives_as_a_custom_message_and_runs_off_the_kernel_thread(registry):
    from workbench.ui import RegistryWidget

    w = RegistryWidget(registry, "cancer", autostart=False)
    threads = []
    original = registry.set_alias
    registry.set_alias = lambda *a, **k: (
        threads.append(__import__("threading").current_thread().name) or original(*a, **k)
    )
    t0 = time.perf_counter()
    w._on_custom_msg(w, {"action": "promote", "params": {"version": 3, "confirm": True}}, [])
    handler_ms = (time.perf_counter() - t0) * 1000
    assert handler_ms < 100, f"the kernel-thread handler took {handler_ms:.1f} ms"
    assert _wait(lambda: registry.get("cancer", "champion").version == 3, 5)
    assert threads and threads[0].startswith("workbench-registry-action")
    assert _wait(lambda: w.notice.get("text") == "champion is now version 3", 5), w.notice
    # A failing action shows its error in the widget instead of raising in the kernel.
    w._on_custom_msg(w, {"action": "promote", "params": {"version": 9, "confirm": True}}, [])
    assert _wait(lambda: w.notice.get("level") == "error", 5)
    assert "no version 9" in w.notice["text"]
    w._on_custom_msg(w, "garbage", [])  # ignored, no exception in the kernel


# ------------------------------------------------------------------ deployment state (no Ray)
@pytest.fixture
def deployed(bench):
    store = bench.store
    store.deployments.add("cancer", model="cancer", route_prefix="/cancer", status="running")
    store.deployments.record_traffic("cancer", {1: 1.0}, actor="t", reason="deploy", kind="deploy")
    store.deployments.record_traffic(
        "cancer",
        {1: 0.9, 2: 0.1},
        actor="t",
        reason="canary step 1/3",
        kind="canary",
        detail={"step": 1, "steps": 3, "champion": 1, "challenger": 2, "evidence": {}},
    )
    from workbench.lineage import utcnow

    rows = [
        {
            "request_id": f"r{i}",
            "deployment": "cancer",
            "model_version_id": 1,
            "features": {},
            "latency_ms": float(i),
            "status_code": 500 if i % 10 == 0 else 200,
            "at": utcnow(),
        }
        for i in range(1, 41)
    ]
    store.deployments.record_requests(rows)
    return bench


def test_deployment_state_from_the_store(deployed):
    from workbench.ui import DeploymentWidget

    w = DeploymentWidget(
        deployed.serving, "cancer", autostart=False, bucket_s=60
    )  # store-only read views: no Serve call
    w.refresh(force=True)
    assert w.weights == {"1": 0.9, "2": 0.1}
    assert w.versions == [1, 2, 3]
    assert [c["kind"] for c in w.history] == ["deploy", "canary"]
    assert w.canary["step"] == 1 and w.canary["steps"] == 3 and w.canary["active"] is True
    assert w.canary["share"] == pytest.approx(0.1)
    assert sum(p["n"] for p in w.requests) == 40
    errors = sum(p["error_rate"] * p["n"] for p in w.requests)
    assert errors == pytest.approx(4)
    assert w.deployment["totals"]["n"] == 40
    # Incremental: the next refresh reads only new log rows.
    cursor = w._series.cursor
    w.refresh(force=True)
    assert w._series.cursor == cursor and sum(p["n"] for p in w.requests) == 40


def test_bad_slider_weights_are_refused_with_a_clear_error(deployed):
    from workbench.ui import DeploymentWidget

    # serving.set_traffic refuses them before Serve is touched (no Ray runs in this test)
    w = DeploymentWidget(deployed.serving, "cancer", autostart=False)
    with pytest.raises(ConfigError, match="positive weight"):
        w.act("set_traffic", weights={"1": 0, "2": 0})
    with pytest.raises(ConfigError, match="version numbers"):
        w.act("set_traffic", weights={"one": 1})
    with pytest.raises(ConfigError, match="finite and >= 0"):
        w.act("set_traffic", weights={"1": -1, "2": 2})
    with pytest.raises(ConfigError, match="confirm=True"):
        w.act("rollback")


# ------------------------------------------------------------------ monitor and lineage
@pytest.fixture
def monitored(deployed):
    store = deployed.store
    dv = store.datasets.get_version("cancer")
    store.monitors.add(
        "cancer-drift",
        deployment="cancer",
        kind="data_drift",
        reference_dataset_version_id=dv["id"],
        config={"p_val": 0.05, "correction": "bonferroni", "features": ["a", "b"]},
    )
    ids = []
    for i, (drift, pa) in enumerate([(False, 0.6), (False, 0.3), (True, 1e-6)]):
        ids.append(
            store.monitors.record_window(
                "cancer-drift",
                first_request_log_id=i * 10 + 1,
                last_request_log_id=i * 10 + 10,
                n=10,
                is_drift=drift,
                score=pa,
                threshold=0.025,
                detail={
                    "verdict": "drift" if drift else "ok",
                    "most_shifted": [{"feature": "a", "p_val": pa}, {"feature": "b", "p_val": 0.9}],
                },
            )
        )
    store.monitors.record_alert(
        dedup_key="k",
        severity="warning",
        title="data drift on cancer: a",
        detail={},
        cooldown_s=0,
        monitor="cancer-drift",
        drift_result_id=ids[-1],
    )
    job = store.retraining.claim_job(
        "drift:1", policy="p", status="PENDING_APPROVAL", drift_result_id=ids[-1]
    )
    return deployed, ids, job


def test_monitor_state_has_p_values_alerts_and_retraining(monitored):
    from workbench.ui import MonitorWidget

    bench, ids, job = monitored
    w = MonitorWidget(bench.monitoring, "cancer-drift", autostart=False)
    w.refresh(force=True)
    assert w.features == ["a", "b"]
    assert [x["is_drift"] for x in w.windows] == [False, False, True]
    assert w.windows[2]["p_values"] == {"a": 1e-6, "b": 0.9}
    assert (
        w.alerts[0]["title"].startswith("data drift") and w.alerts[0]["drift_result_id"] == ids[-1]
    )
    assert len(w.jobs) == 1 and w.jobs[0]["id"] == job and w.jobs[0]["status"] == "PENDING_APPROVAL"
    assert not w.can_approve
    with pytest.raises(ConfigError, match="automation"):
        w.act("approve", job_id=job, confirm=True)


def test_monitor_approve_goes_through_automation(monitored):
    from workbench.ui import MonitorWidget

    bench, _, job = monitored
    answered = []

    class FakeAutomation:  # records the call; the real Automation is exercised in test_automation_*
        def approve(self, job_id, *, actor, reason):
            answered.append(("approve", job_id, actor))
            return {"id": job_id}

        def reject(self, job_id, *, actor, reason):
            answered.append(("reject", job_id, actor))
            return {"id": job_id}

    w = MonitorWidget(
        bench.monitoring, "cancer-drift", automation=FakeAutomation(), autostart=False, actor="bob"
    )
    assert w.can_approve
    with pytest.raises(ConfigError, match="confirm=True"):
        w.act("approve", job_id=job)
    w.act("reject", job_id=job, confirm=True)
    assert answered == [("reject", job, "bob")]


def test_lineage_graph_and_node_records(monitored):
    from workbench.ui import LineageWidget

    bench, ids, job = monitored
    mv = bench.registry.get("cancer", 1)
    w = LineageWidget(bench, "model_version", mv.id, autostart=False)
    w.refresh(force=True)
    keys = {n["key"] for n in w.nodes}
    assert w.root == f"model_version:{mv.id}"
    assert {
        f"model_version:{mv.id}",
        "deployment:1",
        "monitor:1",
        f"drift_result:{ids[-1]}",
        f"retrain_job:{job}",
    } <= keys
    assert f"drift_result:{ids[0]}" not in keys, (
        "windows without drift that caused nothing are left out"
    )
    assert all(e["src"] in keys and e["dst"] in keys for e in w.edges)
    for key in sorted(keys):
        w.selected = key  # what a click in the browser does
        assert w.record["type"] == key.split(":")[0] and w.record["description"], key
        json.dumps(w.record)
    shorts = {n["key"]: n["short"] for n in w.nodes}
    assert shorts[f"model_version:{mv.id}"] == "cancer v1 [champion]"
    assert shorts[f"drift_result:{ids[-1]}"] == "DRIFT on 10 requests"
    w.selected = f"model_version:{mv.id}"
    assert w.record["record"]["version"] == 1 and "cancer v1" in w.record["description"]


# ------------------------------------------------------------------ display hooks and packaging
def test_displays_only_in_a_kernel(monkeypatch, registry):
    import IPython

    from workbench.ui import register_displays

    assert register_displays() is False
    mv = registry.get("cancer", 1)
    assert mv.__dict__["_registry"] is registry
    assert mv == registry.get("cancer", 1) and "_registry" not in repr(mv)

    class ZMQInteractiveShell:  # stands in for ipykernel's shell
        def __init__(self):
            from IPython.core.formatters import DisplayFormatter

            self.display_formatter = DisplayFormatter()

    shell = ZMQInteractiveShell()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    assert register_displays() is True
    bundle, _ = shell.display_formatter.format(mv)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    from workbench.registry import ModelVersion

    plain = ModelVersion.from_row({**registry.store.models.get_version("cancer", 1)})
    bundle, _ = shell.display_formatter.format(plain)  # not from a registry: the plain repr
    assert "application/vnd.jupyter.widget-view+json" not in bundle


def test_plain_python_imports_no_widget_library():
    code = (
        "import sys, workbench, workbench.api, workbench.ui;"
        "from workbench.experiments import SearchHandle;"
        "heavy = [m for m in ('anywidget', 'ipywidgets', 'IPython', 'ray') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_es_module_and_css_ship_as_package_data():
    import tomllib
    from pathlib import Path

    from workbench.ui._widgets import CSS_PATH, ESM_PATH

    assert ESM_PATH.is_file() and CSS_PATH.is_file()
    patterns = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["workbench"]
    assert "ui/*.js" in patterns and "ui/*.css" in patterns
    text = ESM_PATH.read_text()
    assert (
        "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    )
    assert "import " not in text.split("export default")[0].replace("import(", ""), (
        "no imports: anywidget loads one file"
    )


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_es_module_loads_and_exports_render():
    from workbench.ui._widgets import ESM_PATH

    code = (
        f"import('{ESM_PATH.resolve().as_uri()}').then(m => console.log(typeof m.default.render))"
    )
    out = subprocess.run(["node", "-e", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "function"


# ------------------------------------------------------------------ real Ray: a search, a deployment
@pytest.mark.ray
def test_stop_button_ends_a_running_search_and_a_new_process_sees_the_same_widget(cancer_bench):
    from ray import tune

    from workbench.ui import ExperimentWidget

    bench, dv = cancer_bench

    def slow(config, data):  # defined here: Ray pickles it by value
        import time as t

        from ray import tune as rt

        for step in range(1, 41):
            rt.report({"score": config["x"] * step})
            t.sleep(0.25)

    handle = bench.experiments.start_search(
        dv, name="widget-stop", space={"x": tune.grid_search([1, 2, 3, 4])}, trainable=slow,
        metric="score", mode="max", num_samples=1, max_steps=40, progress=None,
    )  # fmt: skip
    w = bench.widgets.experiment(handle, poll_interval=0.2, actor="carol (widget)")
    try:
        assert isinstance(w, ExperimentWidget) and w._handle is handle
        assert _wait(lambda: w.can_stop and any(r[1] == "RUNNING" for r in w.rows), 60), w.rows
        assert _wait(lambda: any(len(c) >= 2 for c in w.curves.values()), 30), "live curves"
        # The click: a custom message; the kernel-thread handler returns at once.
        t0 = time.perf_counter()
        w._on_custom_msg(w, {"action": "stop"}, [])
        assert (time.perf_counter() - t0) < 0.02
        handle.wait(timeout_s=60)
        assert handle.state() == "STOPPED"
        assert bench.store.experiments.get(handle.experiment_id)["status"] == "STOPPED"
        stops = [a for a in bench.store.audit_log(50) if a["action"] == "experiment.stop"]
        assert (
            stops
            and stops[0]["entity_id"] == handle.experiment_id
            and stops[0]["actor"] == "carol (widget)"
        )
        assert _wait(lambda: not w.polling, 10), "polling ends with the search"
        assert w.stop_requested and not w.can_stop
        assert w.experiment["status"] == "STOPPED"
        assert {r[1] for r in w.rows} <= {"TERMINATED", "STOPPED"}
        here = {
            k: w.get_state()[k]
            for k in ("experiment", "columns", "rows_json", "curves_json", "best", "best_curve")
        }
    finally:
        w.close()

    # "After a kernel restart": a fresh process builds the widget from the store alone.
    code = (
        "import json, sys\n"
        "from workbench import Workbench\n"
        "from workbench.ui import ExperimentWidget\n"
        "w = ExperimentWidget(Workbench(sys.argv[1]).experiments, int(sys.argv[2]), autostart=False)\n"
        "w.refresh(force=True)\n"
        "s = w.get_state()\n"
        "print(json.dumps({k: s[k] for k in ('experiment', 'columns', 'rows_json', 'curves_json', 'best', 'best_curve')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(bench.settings.home), str(handle.experiment_id)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    there = json.loads(out.stdout)
    assert there == json.loads(json.dumps(here))
    assert len(json.loads(there["rows_json"])) == 4 and there["best"]["trial_id"]


@pytest.fixture(scope="module")
def serve_widgets(tmp_path_factory, serve_apps):
    from _serve_env import cancer_bundle, close_env, serve_env

    bundle, records = cancer_bundle()
    env = serve_env(tmp_path_factory, "wcancer", [bundle, bundle], apps=serve_apps)
    env.store.models.set_alias("wcancer", "champion", 1, actor="tester", reason="first")
    env.info = env.serving.deploy("wcancer", 1, name="wcancer", actor="tester")
    env.records = records
    try:
        yield env
    finally:
        close_env(env)


@pytest.mark.ray
def test_sliders_reconfigure_the_live_router_and_rollback_restores_it(serve_widgets):
    from workbench.ui import DeploymentWidget

    env = serve_widgets
    w = DeploymentWidget(env.serving, "wcancer", poll_interval=0.2, actor="dave (widget)")
    try:
        for _ in range(10):
            env.serving.predict("wcancer", env.records[:2])
        env.serving.flush_logs("wcancer")
        assert _wait(lambda: sum(p["n"] for p in w.requests) >= 10, 10), w.requests
        assert w.weights == {"1": 1.0}
        # A slider released in the browser: weights as the page sends them (string keys, 0..1).
        fut = w.submit("set_traffic", weights={"1": 0.7, "2": 0.3})
        served = fut.result(timeout=120)
        assert served == {1: pytest.approx(0.7), 2: pytest.approx(0.3)}
        live = env.serving.health("wcancer")["versions"]  # what the router serves now
        assert {v: x["weight"] for v, x in live.items()} == {
            "1": pytest.approx(0.7),
            "2": pytest.approx(0.3),
        }
        change = env.store.deployments.list_traffic("wcancer")[-1]
        assert (change["actor"], change["kind"]) == ("dave (widget)", "set")
        assert any(
            a["action"] == "traffic.change" and a["actor"] == "dave (widget)"
            for a in env.store.audit_log(20)
        )
        assert _wait(lambda: w.weights == {"1": 0.7, "2": 0.3}, 10)
        assert w.notice["level"] == "ok" and "v1 70%" in w.notice["text"]
        # Rollback asks first, then sends everything back to the last version that held 100%.
        with pytest.raises(ConfigError, match="confirm=True"):
            w.act("rollback")
        w.submit("rollback", confirm=True).result(timeout=120)
        assert env.serving.status("wcancer")["weights"] == {1: 1.0, 2: 0.0}
        last = env.store.deployments.list_traffic("wcancer")[-1]
        assert (last["kind"], last["actor"]) == ("rollback", "dave (widget)")
        assert _wait(lambda: w.weights.get("1") == 1.0, 10)
        assert [c["kind"] for c in w.history][-2:] == ["set", "rollback"]
    finally:
        w.close()


def test_a_running_trial_shows_its_latest_reported_value(store):
    from workbench.ui import ExperimentWidget

    eid = make_experiment(store)
    store.experiments.record_trial_events(
        eid,
        [{"trial_id": "r", "status": "RUNNING"}],
        [("r", 1, {"f1": 0.5}), ("r", 2, {"f1": 0.7})],
    )
    w = ExperimentWidget(_experiments(store), eid, autostart=False)
    w.refresh(force=True)
    assert w.rows[0][2] == 0.7 and w.best["trial_id"] == "r"
    assert w.best_curve == [], "best so far counts finished trials only"


@pytest.mark.ray
def test_what_deploy_returns_is_a_dict_that_displays_the_deployment_widget(
    serve_widgets, monkeypatch
):
    import copy
    import pickle

    import IPython

    info = serve_widgets.info
    assert isinstance(info, dict) and info["name"] == "wcancer" and info["status"] == "running"
    assert info._repr_mimebundle_() is None  # plain Python: the dict's repr
    assert type(pickle.loads(pickle.dumps(info))) is dict and copy.copy(info) == info

    class ZMQInteractiveShell:  # stands in for ipykernel's shell
        pass

    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    bundle = info._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle  # (data, metadata) is allowed too
    assert "application/vnd.jupyter.widget-view+json" in data


def test_bench_widgets_read_through_a_second_connection_and_act_through_the_bench(monitored):
    bench, _, job = monitored
    widgets = bench.widgets
    reg = widgets.registry("cancer", autostart=False)
    dep = widgets.deployment("cancer", autostart=False)
    mon = widgets.monitor("cancer-drift", autostart=False)
    lin = widgets.lineage("cancer", 1, autostart=False)
    reader = widgets.reader
    assert reader.store is not bench.store and reader.settings == bench.settings
    assert reg._view is reader.registry and reg._registry is bench.registry
    assert dep._view is reader.serving and dep._serving is bench.serving
    assert mon._monitoring is reader.monitoring and mon._automation is bench.automation
    assert lin._lineage is reader
    for w in (reg, dep, mon, lin):
        w.refresh(force=True)
    assert [j["id"] for j in mon.jobs] == [job] and dep.weights == {"1": 0.9, "2": 0.1}
    reg.act("promote", version=2, confirm=True)  # written through bench, read back through reader
    assert bench.registry.get("cancer", "champion").version == 2 and reg.aliases["champion"] == 2
    bench.close()  # the widgets on screen keep reading
    assert reg.refresh(force=True)["aliases"]["champion"] == 2
    widgets.close()
    assert widgets._reader is None


# ------------------------------------------------------------------ dataset versions, reports, diffs
@pytest.fixture
def cities(tmp_path):
    """A Workbench with three versions of dataset ``cities``: v2 changes rows, v3 fails a warning."""
    import polars as pl

    from workbench import Workbench
    from workbench.datasets import Checks, Column

    bench = Workbench(tmp_path / "cities")
    old = pl.DataFrame(
        {"id": [1, 2, 3, 4], "x": [1.0, 2.0, 3.0, None], "city": ["a", "b", "a", None]}
    )
    new = pl.DataFrame(
        {"id": [4, 3, 2, 5], "x": [None, 3.5, 2.0, 9.0], "city": ["b", "a", "b", "c"]}
    )
    bench.datasets.ingest(old, name="cities")
    bench.datasets.ingest(new, name="cities")
    bench.datasets.ingest(
        new.with_columns(x=pl.col("x") * 2),
        name="cities",
        checks=Checks(columns={"x": Column(max=10, severity="warn")}),
    )
    yield bench
    bench.close()


def test_dataset_widget_shows_versions_reports_and_the_last_two_diffed(cities):
    from workbench.ui import DatasetWidget

    w = DatasetWidget(cities.datasets, "cities", autostart=False)
    w.refresh(force=True)
    assert w.kind == "dataset" and w.dataset_name == "cities"
    assert [(v["version"], v["rows"], v["cols"]) for v in w.versions] == [
        (1, 4, 3),
        (2, 4, 3),
        (3, 4, 3),
    ]
    assert [(v["errors"], v["warnings"]) for v in w.versions] == [(0, 0), (0, 0), (0, 1)]
    # the latest version's report, its failed warning first, every key present
    assert w.selected == 3
    first = w.report[0]
    assert (first["check"], first["column"], first["passed"], first["severity"]) == (
        "range",
        "x",
        False,
        "warn",
    )
    assert first["failing"] == 1 and first["examples"] and all(r["passed"] for r in w.report[1:])
    assert all(
        {"check", "column", "passed", "severity", "failing", "examples", "detail"} <= set(r)
        for r in w.report
    )
    # the last two versions, whole rows: every x doubled except the null
    assert w.compare == {"a": 2, "b": 3, "key": []}
    assert (w.diff["a"], w.diff["b"], w.diff["added"], w.diff["removed"]) == (
        "cities@2",
        "cities@3",
        3,
        3,
    )
    assert w.diff["text"].startswith("cities@2 -> cities@3")
    json.dumps(w.get_state())  # everything synced is JSON


def test_dataset_widget_diffs_the_chosen_pair_by_key_off_the_kernel_thread(cities):
    from workbench.ui import DatasetWidget

    w = DatasetWidget(cities.datasets, "cities", autostart=False)
    w.refresh(force=True)
    w._on_custom_msg(w, {"action": "diff", "params": {"a": 1, "b": 2, "key": "id"}}, [])
    assert _wait(lambda: w.diff.get("a") == "cities@1", 10), w.diff
    assert w.compare == {"a": 1, "b": 2, "key": ["id"]}
    d = w.diff
    assert (d["added"], d["removed"], d["changed"], d["unchanged"]) == (1, 1, 2, 1)
    assert d["changed_columns"] == {"x": 1, "city": 1}
    assert {"key": {"id": 4}, "changes": {"city": [None, "b"]}} in d["changed_examples"]
    assert _wait(lambda: w.notice.get("text", "").startswith("cities@1 -> cities@2"), 5), w.notice
    # the same pair again is not diffed again
    calls = []
    original = cities.datasets.diff
    cities.datasets.diff = lambda *a, **k: calls.append(a) or original(*a, **k)
    w.act("diff", a=1, b=2, key=["id"])
    w.refresh(force=True)
    assert calls == []
    # a key that is not unique: the diff pane says why, nothing raised in the kernel
    w.act("diff", a=1, b=2, key="city")
    assert "is not unique in cities@1" in w.diff["error"] and "diff without key=" in w.diff["error"]
    w.act("diff", a=1, b=9)
    assert "cities version 9 does not exist" in w.diff["error"]


def test_dataset_widget_shows_the_report_of_the_clicked_version(cities):
    from workbench.ui import DatasetWidget

    w = DatasetWidget(cities.datasets, "cities", autostart=False, compare=(1, 3), key="id")
    w.refresh(force=True)
    assert w.compare == {"a": 1, "b": 3, "key": ["id"]} and w.diff["changed"] == 3
    w.selected = 1  # what a click on the row of v1 sets, from the browser
    assert _wait(lambda: w.report_version == 1 and w.selected == 1, 5), w.report
    assert all(r["passed"] for r in w.report)
    assert len(w.report) == len(cities.datasets.get("cities", 1).validation)
    with pytest.raises(NotFoundError, match="ingest it first"):
        DatasetWidget(cities.datasets, "nope", autostart=False)


def test_dataset_widget_with_one_version_has_nothing_to_diff(cities):
    import polars as pl

    from workbench.ui import DatasetWidget

    cities.datasets.ingest(pl.DataFrame({"v": [1]}), name="single")
    w = cities.widgets.dataset("single", autostart=False)
    assert w._datasets is cities.widgets.reader.datasets
    w.refresh(force=True)
    assert isinstance(w, DatasetWidget)
    assert w.compare == {} and w.diff == {} and [v["version"] for v in w.versions] == [1]


# A DOM just big enough for widgets.js (no jsdom here): elements with children, text, attributes
# and click listeners; the model's traits come from the real widget's synced state.
_NODE_DOM = r"""
class Node {
  constructor(tag) { this.tag = tag; this.children = []; this.attrs = {}; this.listeners = {};
    this.className = ""; this._text = ""; this.value = ""; }
  set textContent(t) { this._text = String(t); this.children = []; }
  get textContent() { return this._text + this.children.map((c) => typeof c === "string" ? c : c.textContent).join(" "); }
  setAttribute(k, v) { this.attrs[k] = v; if (k === "value") this.value = v; }
  addEventListener(ev, fn) { (this.listeners[ev] ||= []).push(fn); }
  append(...cs) { this.children.push(...cs); }
  replaceChildren(...cs) { this.children = []; this.append(...cs); }
  remove() {}
  click() { for (const fn of this.listeners.click || []) fn({}); }
  find(pred) { if (pred(this)) return this;
    for (const c of this.children) { if (typeof c !== "string") { const f = c.find(pred); if (f) return f; } }
    return null; }
}
globalThis.document = { createElement: (t) => new Node(t), createElementNS: (_, t) => new Node(t), activeElement: null };
globalThis.requestAnimationFrame = (f) => f();
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_dataset_renderer_draws_the_synced_state_and_sends_compare(cities, tmp_path):
    from workbench.ui import DatasetWidget
    from workbench.ui._widgets import ESM_PATH

    w = DatasetWidget(cities.datasets, "cities", autostart=False, compare=(1, 2), key="id")
    w.refresh(force=True)
    state = {k: v for k, v in w.get_state().items() if not isinstance(v, bytes | memoryview)}
    script = tmp_path / "render.mjs"
    script.write_text(
        _NODE_DOM
        + f"const state = {json.dumps(state)};\n"
        + r"""
const handlers = {}; const sent = [];
const model = { get: (k) => state[k], set: (k, v) => { state[k] = v; (handlers[`change:${k}`] || []).forEach((f) => f()); },
  save_changes: () => {}, on: (ev, fn) => { (handlers[ev] ||= []).push(fn); }, off: () => {}, send: (m) => sent.push(m) };
const el = new Node("div");
const mod = await import(process.argv[2]);
mod.default.render({ model, el });
const text = el.textContent;
const row = el.find((n) => n.attrs && n.attrs["data-version"] === "1");
row.click();
el.find((n) => n.attrs && n.attrs["data-action"] === "diff").click();
console.log(JSON.stringify({ text, selected: state.selected, sent }));
"""
    )
    out = subprocess.run(
        ["node", str(script), ESM_PATH.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    text = got["text"]
    for part in (
        "dataset cities",
        "3 versions",
        "validation report of v3: 5 of 6 checks passed",  # the warning failed
        "FAIL",
        "cities@1 → cities@2: rows 4 → 4 (+1 added, −1 removed, ~2 changed, 1 unchanged; by key id)",
        "changed columns (rows): x (1), city (1)",
        "column statistics (a → b)",
    ):
        assert part in text, (part, text[:2000])
    assert got["selected"] == 1, "a click on a version row sets the synced selected trait"
    assert got["sent"] == [{"action": "diff", "params": {"a": 1, "b": 2, "key": "id"}}]


def _evaluate_version(registry, version, *, gate=None, fairness=None):
    mv = registry.get("cancer", version)
    return registry.store.evaluations.add(
        mv.id,
        holdout_version_id=mv.dataset_version_id,
        metrics={"f1": 0.91, "roc_auc": 0.97},
        details={"task": "classification", "n": 171},
        cv={"f1": {"mean": 0.9, "std": 0.02, "ci_low": 0.875, "ci_high": 0.925, "n_folds": 5}},
        gate=gate,
        fairness=fairness,
    )


def test_registry_widget_shows_evaluations_and_opens_the_stored_report(registry):
    from workbench.ui import RegistryWidget

    gate = {
        "passed": False,
        "metric": "f1",
        "champion": 0.9,
        "challenger": 0.91,
        "margin": 0.0,
        "reason": "not enough evidence",
        "test": "paired_bootstrap",
        "n": 171,
        "interval": [-0.01, 0.03],
        "p_value": 0.2,
        "evidence": "not enough evidence",
        "regressions": {},
    }
    fairness = {
        "sensitive_features": ["sex"],
        "overall": {"f1": 0.91},
        "by_group": {"sex": {"f": {"f1": 0.95, "count": 80}, "m": {"f1": 0.87, "count": 91}}},
        "gaps": {"sex": {"f1_difference": 0.08, "demographic_parity_difference": 0.1}},
        "notes": ["sex=f has 80 rows (< 100)"],
    }
    _evaluate_version(registry, 2, gate=gate, fairness=fairness)
    w = RegistryWidget(registry, "cancer", autostart=False)
    w.refresh(force=True)
    assert set(w.evaluations) == {"2"}, "only evaluated versions have a summary"
    ev = w.evaluations["2"]
    metrics = {m["name"]: m for m in ev["metrics"]}
    assert metrics["roc_auc"]["value"] == 0.97 and metrics["roc_auc"]["cv"] is None
    assert metrics["f1"]["cv"] == {"mean": 0.9, "ci_low": 0.875, "ci_high": 0.925, "n_folds": 5}
    assert isinstance(metrics["f1"]["cv"]["n_folds"], int)
    assert ev["holdout"] == "cancer v1" and ev["n"] == 171 and not ev["has_report"]
    assert ev["gate"]["passed"] is False and ev["gate"]["interval"] == [-0.01, 0.03]
    assert ev["gate"]["evidence"] == "not enough evidence"
    assert ev["fairness"]["metrics"] == ["f1"]
    assert [(g["group"], g["count"], g["values"]["f1"]) for g in ev["fairness"]["groups"]] == [
        ("f", 80, 0.95),
        ("m", 91, 0.87),
    ]
    assert ev["fairness"]["gaps"]["sex"]["f1_difference"] == 0.08
    assert ev["fairness"]["notes"] == ["sex=f has 80 rows (< 100)"]
    json.dumps(w.get_state())

    w.act("report", version=2)
    assert w.report_version == 2 and w.report_html == registry.report("cancer", 2)
    assert 'id="gate-verdict"' in w.report_html and "group-bars-sex" in w.report_html
    assert w.evaluations["2"]["has_report"], "refreshed after the action: the report is stored"
    with pytest.raises(NotFoundError, match="no recorded evaluation"):
        w.act("report", version=1)


def test_buttons_the_user_may_not_press_are_disabled_and_refused_with_nothing_changed(bench):
    """With roles on, a viewer's registry widget disables Promote/Roll back (the reason is the
    tooltip) and a promote sent anyway is refused by the library: the alias does not move."""
    from workbench._identity import acting_as

    registry = bench.registry
    assert bench.widgets.registry("cancer", autostart=False).denied == {}  # open home
    bench.access.grant("vic", "viewer")
    with acting_as("vic"):
        w = bench.widgets.registry("cancer", autostart=False)
        assert w.denied == {"promote": "vic (viewer) may not promote: it needs the approver role"}
        before = (registry.history("cancer"), registry.store.audit_log(1000))
        w._on_custom_msg(w, {"action": "promote", "params": {"version": 2, "confirm": True}}, [])
        assert _wait(lambda: w.notice.get("level") == "error", 5), w.notice
    assert "needs the 'approver' role" in w.notice["text"]
    assert registry.get("cancer", "champion").version == 1
    assert (registry.history("cancer"), registry.store.audit_log(1000)) == before
