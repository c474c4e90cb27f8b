"""Monitors over a real SQLite request log: verdicts, bad input, windows, restarts, promotions, labels,
operational figures, the online detector, and alerts delivered to a local HTTP receiver."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from workbench.automation import Automation, DriftTrigger, LoopPolicy
from workbench.datasets import Datasets
from workbench.exceptions import ConfigError
from workbench.lineage import ArtifactStore, Store
from workbench.monitoring import (
    Alerts,
    CallbackSink,
    Monitoring,
    NotebookSink,
    WebhookSink,
    parse_window,
)

BACKENDS = ["alibi", "scipy"]
CITIES = ["lyon", "oslo", "rome"]


def _frame(rng, n, *, shift=0.0, cities=(0.5, 0.3, 0.2)):
    x1 = rng.normal(size=n) + shift
    x2 = rng.normal(size=n)
    return pl.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "city": rng.choice(CITIES, size=n, p=list(cities)).tolist(),
            "y": np.where(x1 + 0.3 * rng.normal(size=n) > 0, "pos", "neg").tolist(),
        }
    )


def _bundle(frame):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from workbench.features import build_preprocessor
    from workbench.registry import ModelBundle

    kinds = {"x1": "number", "x2": "number", "city": "string"}
    X = frame.select(list(kinds)).to_pandas()
    y = (frame["y"] == "pos").to_numpy().astype(int)
    pipe = Pipeline(
        [("preprocess", build_preprocessor(kinds)), ("model", LogisticRegression())]
    ).fit(X, y)
    return ModelBundle(pipeline=pipe, features=kinds, target="y", classes=["neg", "pos"])


class Env:
    """A store with dataset ref@1, model m v1 trained on it, deployment svc serving v1 at 100%."""

    def __init__(self, tmp_path, sinks=None):
        from workbench.registry import ModelRegistry

        self.tmp_path = tmp_path
        self.store = Store(tmp_path / "lineage.db")
        self.artifacts = ArtifactStore(tmp_path / "artifacts")
        self.datasets = Datasets(self.store, self.artifacts)
        self.rng = np.random.default_rng(7)
        self.train = self.datasets.ingest(_frame(self.rng, 800), name="ref", target="y")
        self.bundle = _bundle(self.datasets.load(self.train))
        self.registry = ModelRegistry(self.store, self.artifacts)
        self.registry.register(
            "m",
            self.bundle,
            metrics={"f1": 0.9, "accuracy": 0.9},
            dataset_version_id=self.train.id,
        )
        self.store.deployments.add("svc", model="m", route_prefix="/svc", status="running")
        self.store.deployments.record_traffic("svc", {1: 1.0})
        self.received: list[dict] = []
        sinks = [CallbackSink(self.received.append)] if sinks is None else sinks
        self.monitoring = self.restart(sinks)
        self.n = 0

    def restart(self, sinks=()):
        """A new Monitoring on the same files, as after a kernel restart."""
        return Monitoring(self.store, self.datasets, alerting=Alerts(self.store, sinks=list(sinks)))

    def log(self, records, *, at=None, status=200, latency=5.0, version=1, predict=True):
        """One request per record; returns the request ids."""
        mv = self.store.models.get_version("m", version)["id"]
        rows, ids = [], []
        for rec in records:
            self.n += 1
            rid = f"r{self.n}"
            ids.append(rid)
            pred = None
            if predict and status == 200:
                pred = self.bundle.predict_records([rec])
            rows.append(
                {
                    "request_id": rid,
                    "deployment": "svc",
                    "model_version_id": mv,
                    "features": [rec] if status == 200 else None,
                    "prediction": pred,
                    "latency_ms": latency,
                    "status_code": status,
                    "at": at,
                }
            )
        self.store.deployments.record_requests(rows)
        return ids

    def rows(self, n, **kwargs):
        return _frame(self.rng, n, **kwargs).drop("y").to_dicts()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.store.close()


def test_both_backends_give_the_same_verdicts_on_the_same_requests(env):
    mons = {
        b: env.monitoring.drift_monitor("svc", name=f"d-{b}", window=200, backend=b)
        for b in BACKENDS
    }
    env.log(env.rows(400))
    env.log(env.rows(200, shift=0.6))
    env.log(env.rows(200, cities=(0.2, 0.3, 0.5)))
    out = {b: m.check() for b, m in mons.items()}
    for b in BACKENDS:
        assert [r["verdict"] for r in out[b]] == ["ok", "ok", "drift", "drift"], b
        assert out[b][2]["most_shifted"][0][0] == "x1"
        assert out[b][3]["most_shifted"][0][0] == "city"
    np.testing.assert_allclose(
        [r["p_val_min"] for r in out["alibi"]], [r["p_val_min"] for r in out["scipy"]], rtol=1e-5
    )
    assert mons["alibi"].check() == []  # nothing tested twice
    # two drift windows per monitor, one alert each: the second folds into the first (cooldown)
    assert len(env.received) == 2 and {a["severity"] for a in env.received} == {"warning"}
    assert [a["count"] for a in env.store.monitors.list_alerts("d-scipy")] == [2]
    # lineage: the monitor observed the result, the result raised the alert
    drift = env.store.monitors.list_windows("d-scipy", drift_only=True)[0]
    kinds = {
        (e["src_type"], e["relation"], e["dst_type"])
        for e in env.store.edges(src=("drift_result", drift["id"]))
    }
    assert ("drift_result", "raised", "alert") in kinds


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_gets_a_recorded_verdict_never_a_crash_or_a_retraining(env, backend):
    mon = env.monitoring.drift_monitor("svc", window=100, backend=backend, min_rows=50)
    good = env.rows(100)
    nan_heavy = [dict(r, x2=None) if i % 3 else r for i, r in enumerate(env.rows(100))]
    unseen = [dict(r, city="paris") if i < 7 else r for i, r in enumerate(env.rows(100))]
    missing = [{k: v for k, v in r.items() if k != "x2"} for r in env.rows(100)]
    text = [dict(r, x1="twelve") if i == 3 else r for i, r in enumerate(env.rows(100))]
    not_objects = [[1.0, 2.0, "lyon"]] * 100
    # logged as answered (say, by a client path that skipped validation): the monitor must cope
    for batch in (good, nan_heavy, unseen, missing, text, not_objects):
        env.log(batch, predict=False)

    # a policy retraining on this monitor's drift: its tick checks the windows and makes no job
    policy = LoopPolicy(
        "svc",
        model="m",
        deployment="svc",
        train="t",
        holdout="h",
        triggers=[DriftTrigger(mon.name)],
    )
    env.store.retraining.set_policy(policy.name, policy.to_dict())
    automation = Automation(SimpleNamespace(store=env.store, monitoring=env.monitoring))
    out = automation.tick(run=False)
    assert len(out["checked"][mon.name]) == 6 and out["created"] == []
    assert env.store.retraining.list_jobs() == []

    results = env.store.monitors.list_windows(mon.name)
    verdicts = [r["detail"]["verdict"] for r in results]
    assert verdicts == [
        "ok",
        "insufficient data",
        "schema mismatch",
        "schema mismatch",
        "schema mismatch",
        "schema mismatch",
    ]
    assert not any(r["is_drift"] for r in results)
    reasons = [r["detail"].get("reason", "") for r in results]
    assert "34 complete record(s) of 100" in reasons[1] and "'x2': 66" in reasons[1]
    assert "'paris'" in reasons[2] and "'city'" in reasons[2]
    assert "'x2' (absent from 100 of 100 records)" in reasons[3]
    assert "'x1' holds text ('twelve')" in reasons[4]
    assert "not objects" in reasons[5]
    bad = [a for a in env.store.audit_log(200) if a["action"] == "monitor.bad_input"]
    assert len(bad) == 5
    # schema mismatches are warnings (delivered once, then folded in); insufficient data is info
    # (stored, not pushed at the default min_severity "warning")
    alerts = {a["severity"]: a for a in env.store.monitors.list_alerts(mon.name)}
    assert alerts["warning"]["count"] == 4 and alerts["info"]["count"] == 1
    assert [a["severity"] for a in env.received] == ["warning"]


def test_time_windows_close_after_their_end_and_late_rows_join_the_next(env):
    mon = env.monitoring.drift_monitor("svc", window="1min", backend="scipy", min_rows=20)
    assert parse_window("1min").size == 60
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)

    def at(minute, second):
        return (base + timedelta(minutes=minute, seconds=second)).isoformat()

    for i, rec in enumerate(env.rows(60)):
        env.log([rec], at=at(0, i))  # minute 0: 60 records
    for i, rec in enumerate(env.rows(10)):
        env.log([rec], at=at(1, i))  # minute 1: only 10 records
    env.log(env.rows(40), at=at(3, 5))  # minute 3
    env.log(env.rows(5), at=at(0, 30))  # logged late, stamped in minute 0: joins minute 3
    env.log(env.rows(30), at=datetime.now(UTC).isoformat())  # the open window: waits
    out = mon.check()
    # (windows of 60 null records: the tests ran, whatever they found)
    assert [r["verdict"] == "insufficient data" for r in out] == [False, True, False]
    assert [r["n"] for r in out] == [60, 10, 45]
    windows = [r["detail"]["window"] for r in env.store.monitors.list_windows(mon.name)]
    assert windows[0]["start"].startswith(base.isoformat()[:16]) and windows[2]["kind"] == "time"
    assert mon.check() == []  # the open window is still open


def test_window_specs():
    assert parse_window(250) == parse_window("250") and parse_window(250).kind == "count"
    assert parse_window(timedelta(hours=1)).size == 3600 == parse_window("1h").size
    assert parse_window("30s").describe() == "30 s" and parse_window("2d").size == 172800
    for bad in ("soon", "0min", True, -1.5, "15 parsecs"):
        with pytest.raises(ConfigError, match="window"):
            parse_window(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_restart_loads_the_saved_detector_and_never_refits_silently(env, backend):
    mon = env.monitoring.drift_monitor("svc", name="d", window=150, backend=backend)
    env.log(env.rows(150))
    first = mon.check()
    artifact = mon.config["detector_artifact"]
    again = env.restart().get("d")
    assert type(again.detector) is type(mon.detector)
    x = again.encoder.encode(env.rows(300, shift=0.2), min_rows=1).x
    assert again.detector.test(x)["data"] == mon.detector.test(x)["data"]
    env.log(env.rows(150, shift=0.6))
    assert [r["verdict"] for r in first + again.check()] == ["ok", "drift"]
    fits = [a["action"] for a in env.store.audit_log(200) if a["action"].startswith("monitor.")]
    assert fits.count("monitor.fit") == 1 and "monitor.refit" not in fits

    env.artifacts.path_for(artifact).unlink()  # the saved detector is lost
    with pytest.raises(ConfigError, match=r"not refitted.*refit"):
        env.restart().get("d")
    refitted = env.monitoring.refit("d")
    assert refitted.config["detector_artifact"] == artifact  # same data, same bytes
    assert "monitor.refit" in [a["action"] for a in env.store.audit_log(10)]


def test_a_monitor_of_the_first_api_is_refitted_only_when_asked(env):
    """Monitors recorded before detectors were saved (config without a detector artifact)."""
    env.store.monitors.add(
        "old",
        deployment="svc",
        kind="data_drift",
        reference_dataset_version_id=env.train.id,
        config={"window": 100, "p_val": 0.05, "backend": "scipy"},
    )
    with pytest.raises(ConfigError, match=r"refit\('old'\)"):
        env.monitoring.get("old")
    mon = env.monitoring.refit("old")
    assert mon.window == 100 and mon.config["detector"] == "tabular"
    env.log(env.rows(100))
    assert [r["verdict"] for r in env.monitoring.get("old").check()] == ["ok"]


def test_reference_moves_to_the_new_version_after_a_promotion(env):
    mon = env.monitoring.drift_monitor("svc", window=200, backend="scipy")
    assert mon.config["follow_deployment"] and mon.reference_id == env.train.id
    env.log(env.rows(200, shift=1.0))
    assert [r["verdict"] for r in mon.check()] == ["drift"]
    # retrained on the shifted data, version 2 is promoted to 100%
    new_train = env.datasets.ingest(_frame(env.rng, 800, shift=1.0), name="ref2", target="y")
    env.registry.register("m", env.bundle, metrics={"f1": 0.9}, dataset_version_id=new_train.id)
    env.store.deployments.record_traffic("svc", {2: 1.0})
    env.log(env.rows(200, shift=1.0), version=2)
    assert [r["verdict"] for r in mon.check()] == ["ok"]
    assert env.store.monitors.get(mon.name)["reference_dataset_version_id"] == new_train.id
    moved = [a for a in env.store.audit_log(50) if a["action"] == "monitor.reference_moved"]
    assert moved and moved[0]["detail"]["from_dataset_version_id"] == env.train.id


@pytest.mark.parametrize("backend", BACKENDS)
def test_prediction_drift(env, backend):
    # one null window at 1% (at 5% this draw happens to give p = 0.048)
    mon = env.monitoring.prediction_monitor("svc", window=200, backend=backend, p_val=0.01)
    assert mon.kinds == {"prediction": "string"}
    env.log(env.rows(200))
    env.log(env.rows(200, shift=1.0))  # many more "pos" predictions
    out = mon.check()
    assert [r["verdict"] for r in out] == ["ok", "drift"]
    assert out[1]["most_shifted"][0][0] == "prediction" and out[1]["p_val_min"] < 1e-4


def test_performance_from_labels_joined_by_request_id(env):
    mon = env.monitoring.performance_monitor("svc", window=100, metric="accuracy", tolerance=0.05)
    assert mon.config["bound"] == pytest.approx(0.85)
    ids_a = env.log(env.rows(100))
    ids_b = env.log(env.rows(100))
    preds = {
        r["request_id"]: r["prediction"][0] for r in env.store.deployments.list_requests("svc")
    }
    flip = {"pos": "neg", "neg": "pos"}
    # the second batch's labels arrive first: windows follow label arrival
    env.monitoring.record_labels(
        {rid: flip[preds[rid]] if i % 2 else preds[rid] for i, rid in enumerate(ids_b)}
    )
    assert mon.check()[0]["verdict"] == "degraded"
    env.monitoring.record_labels({rid: preds[rid] for rid in ids_a[:60]})
    assert mon.check() == []  # 60 labels: the window is not full yet
    env.monitoring.record_labels({rid: preds[rid] for rid in ids_a[60:]})
    (ok,) = mon.check()
    assert ok["verdict"] == "ok" and ok["value"] == 1.0 and ok["by_version"]["1"]["n"] == 100
    degraded = env.store.monitors.list_windows(mon.name, drift_only=True)
    assert len(degraded) == 1 and degraded[0]["score"] == pytest.approx(0.5)
    assert [a["severity"] for a in env.received] == ["critical"]


def test_the_performance_floor_follows_the_promoted_version(env):
    """The floor came from v1's holdout accuracy (0.9 - 0.05); v2, registered at 0.7 and promoted
    to 100%, is judged against 0.65 from then on (audited), and the label cursor is kept: 75%
    right on v2's requests is ok, not degraded against v1's 0.85."""
    mon = env.monitoring.performance_monitor("svc", window=100, metric="accuracy", tolerance=0.05)
    assert (mon.config["bound"], mon.config["model_version"]) == (pytest.approx(0.85), 1)
    ids = env.log(env.rows(100))
    env.monitoring.record_labels(
        {rid: p for rid, p in zip(ids, _predictions(env, ids), strict=True)}
    )
    assert [r["verdict"] for r in mon.check()] == ["ok"]
    env.registry.register(
        "m", env.bundle, metrics={"accuracy": 0.7}, dataset_version_id=env.train.id
    )
    env.store.deployments.record_traffic("svc", {2: 1.0})
    ids = env.log(env.rows(100), version=2)
    flip = {"pos": "neg", "neg": "pos"}
    preds = _predictions(env, ids)
    env.monitoring.record_labels(
        {
            rid: flip[p] if i % 4 == 0 else p
            for i, (rid, p) in enumerate(zip(ids, preds, strict=True))
        }
    )
    (window,) = mon.check()
    assert window["verdict"] == "ok" and window["value"] == pytest.approx(0.75), window
    assert window["bound"] == pytest.approx(0.65) and window["by_version"]["2"]["n"] == 100
    record = env.store.monitors.get(mon.name)["config"]
    assert (record["bound"], record["baseline"], record["model_version"]) == (
        pytest.approx(0.65),
        0.7,
        2,
    )
    (moved,) = [a for a in env.store.audit_log(50) if a["action"] == "monitor.bound_moved"]
    assert moved["detail"]["from"]["bound"] == pytest.approx(0.85)
    fixed = env.monitoring.performance_monitor("svc", name="fixed", min_value=0.8)
    assert fixed.config["follow_deployment"] is False  # an explicit floor stays


def _predictions(env, ids):
    preds = {
        r["request_id"]: r["prediction"][0] for r in env.store.deployments.list_requests("svc")
    }
    return [preds[rid] for rid in ids]


def test_performance_per_group_flags_the_group_it_fails_while_the_average_holds(env):
    mon = env.monitoring.performance_monitor(
        "svc", window=200, metric="accuracy", min_value=0.7, group_by="city", min_group_rows=20
    )
    ids = env.log(env.rows(200))
    requests = env.store.deployments.list_requests("svc")
    city = {r["request_id"]: r["features"][0]["city"] for r in requests}
    pred = {r["request_id"]: r["prediction"][0] for r in requests}
    flip = {"pos": "neg", "neg": "pos"}
    # every label right except Rome's (about 20 % of the rows): wrong there every time
    env.monitoring.record_labels(
        {rid: flip[pred[rid]] if city[rid] == "rome" else pred[rid] for rid in ids}
    )
    (window,) = mon.check()
    rome = sum(c == "rome" for c in city.values())
    assert window["value"] == pytest.approx(1 - rome / 200) and window["value"] > 0.7
    assert window["by_group"]["rome"] == {"n": rome, "accuracy": 0.0, "judged": rome >= 20}
    assert window["by_group"]["lyon"]["accuracy"] == 1.0
    assert window["verdict"] == "degraded" and window["failing_groups"] == ["rome"]
    (alert,) = env.received
    assert "city=rome 0.000" in alert["title"] and alert["severity"] == "critical"
    stored = env.store.monitors.list_windows(mon.name)[-1]
    assert stored["detail"]["by_group"]["oslo"]["n"] == sum(c == "oslo" for c in city.values())
    with pytest.raises(ConfigError, match="not a feature"):
        env.monitoring.performance_monitor("svc", name="p2", min_value=0.5, group_by="sex")


def test_performance_per_group_of_a_regressor_leaves_a_one_record_group_unjudged(env):
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    from workbench.features import build_preprocessor
    from workbench.registry import ModelBundle, ModelRegistry

    frame = _frame(env.rng, 300).with_columns(y=pl.col("x1") * 2.0)
    dv = env.datasets.ingest(frame, name="reg-ref", target="y")
    kinds = {"x1": "number", "x2": "number", "city": "string"}
    pipe = Pipeline([("preprocess", build_preprocessor(kinds)), ("model", LinearRegression())])
    bundle = ModelBundle(
        pipe.fit(frame.select(list(kinds)).to_pandas(), frame["y"].to_numpy()),
        kinds,
        "y",
        [],
        task="regression",
    )
    ModelRegistry(env.store, env.artifacts).register(
        "r", bundle, metrics={"rmse": 0.1}, dataset_version_id=dv.id
    )
    env.store.deployments.add("reg", model="r", route_prefix="/reg", status="running")
    env.store.deployments.record_traffic("reg", {1: 1.0})
    mon = env.monitoring.performance_monitor(
        "reg", window=41, metric="r2", min_value=0.5, group_by="city", min_group_rows=5
    )
    # 40 records from lyon and oslo, one from rome: rome's R² is undefined, not a crash or NaN
    records = [{**r, "city": "lyon" if i % 2 else "oslo"} for i, r in enumerate(env.rows(40))]
    records.append({**env.rows(1)[0], "city": "rome"})
    mv = env.store.models.get_version("r", 1)["id"]
    env.store.deployments.record_requests(
        [
            {
                "request_id": f"g{i}",
                "deployment": "reg",
                "model_version_id": mv,
                "features": [rec],
                "prediction": bundle.predict_records([rec]),
                "latency_ms": 1.0,
                "status_code": 200,
            }
            for i, rec in enumerate(records)
        ]
    )
    # lyon's truth is the model's prediction; oslo's is unrelated noise: its R² is far below 0.5
    env.monitoring.record_labels(
        {
            f"g{i}": float(bundle.predict_records([rec])[0])
            + (0.0 if rec["city"] != "oslo" else float(env.rng.normal(scale=5.0)))
            for i, rec in enumerate(records)
        }
    )
    (window,) = mon.check()
    groups = window["by_group"]
    assert groups["rome"] == {"n": 1, "r2": None, "judged": False}
    assert groups["lyon"]["r2"] == pytest.approx(1.0) and groups["lyon"]["judged"]
    assert groups["oslo"]["r2"] < 0.5 and window["failing_groups"] == ["oslo"]
    assert window["verdict"] == "degraded"
    json.dumps(env.store.monitors.list_windows(mon.name)[-1]["detail"], allow_nan=False)


def test_operational_latency_errors_throughput(env):
    mon = env.monitoring.operational_monitor(
        "svc", window=50, max_p99_ms=100.0, max_error_rate=0.05, min_rows=20
    )
    start = datetime.now(UTC) - timedelta(seconds=30)
    for i, rec in enumerate(env.rows(50)):  # 50 requests over 4.9 s
        env.log(
            [rec], latency=5.0, predict=False, at=(start + timedelta(seconds=i / 10)).isoformat()
        )
    env.log(env.rows(40), latency=5.0, predict=False)
    env.log(env.rows(5), latency=400.0, predict=False)
    env.log(env.rows(5), status=500, predict=False)
    out = mon.check()
    assert [r["verdict"] for r in out] == ["ok", "breach"]
    assert out[0]["p50_ms"] == 5.0 and out[0]["error_rate"] == 0.0
    assert out[0]["throughput_rps"] == pytest.approx(50 / 4.9)
    assert out[1]["error_rate"] == pytest.approx(0.1) and out[1]["p99_ms"] > 100
    assert not any(r["is_drift"] for r in out)  # operational trouble is not drift
    assert [a["severity"] for a in env.received] == ["critical"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_online_monitor_alarms_on_a_shift_and_resumes_after_a_restart(env, backend):
    opts = dict(ert=500, window_sizes=[10, 40], n_bootstraps=2000, n_ref=400, backend=backend)
    whole = env.monitoring.online_monitor("svc", name="whole", **opts)
    split = env.monitoring.online_monitor("svc", name="split", **opts)
    env.log(env.rows(100))
    shifted = env.log(env.rows(150, shift=2.0))
    ids = {r["request_id"]: r["id"] for r in env.store.deployments.list_requests("svc")}
    first_shifted = ids[shifted[0]]
    all_at_once = whole.check()
    part = split.check()
    env.log(env.rows(60, shift=2.0))
    all_at_once += whole.check()
    part += env.restart().get("split").check()  # a new process continues the saved run
    assert [r["run_length"] for r in part] == [r["run_length"] for r in all_at_once]
    alarms = env.store.monitors.list_windows("whole", drift_only=True)
    after = [a for a in alarms if a["last_request_log_id"] >= first_shifted]
    assert after and after[0]["last_request_log_id"] < first_shifted + 40  # found within 40
    assert after[0]["detail"]["most_shifted"][0]["feature"] == "x1"


def test_online_monitor_refuses_categorical_only_and_skips_bad_records(env):
    with pytest.raises(ConfigError, match="numeric"):
        env.monitoring.online_monitor("svc", features=["city"], backend="scipy")
    mon = env.monitoring.online_monitor(
        "svc", ert=100, window_sizes=[5, 10], n_bootstraps=500, backend="scipy"
    )
    env.log([{"x1": "oops", "x2": 1.0, "city": "lyon"}], predict=False)
    env.log([{"x1": None, "x2": 1.0, "city": "lyon"}] + env.rows(3), predict=False)
    (out,) = mon.check()
    assert out["verdict"] == "schema mismatch" and "'x1' holds text" in out["reason"]
    assert env.store.monitors.get(mon.name)["state"]["incomplete_skipped"] == 1


# ----------------------------------------------------------------------------- alerts
class _Receiver:
    """A local HTTP receiver on 127.0.0.1 that records what it is sent."""

    def __init__(self, status=200):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webhook_delivery_dedup_and_cooldown(tmp_path, receiver):
    store = Store(tmp_path / "l.db")
    alerts = Alerts(store, sinks=[WebhookSink(receiver.url, timeout_s=5)])
    first = alerts.emit(title="p99 high", severity="critical", dedup_key="k", cooldown_s=60)
    dup = alerts.emit(title="p99 high", severity="critical", dedup_key="k", cooldown_s=60)
    assert first["deliver"] and not dup["deliver"] and dup["count"] == 2
    assert first["deliveries"] == {"webhook": "queued"}  # sent in the background
    assert alerts.flush(10)
    assert store.monitors.list_alerts()[0]["deliveries"] == {"webhook": "ok"}
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["headers"]["Content-Type"] == "application/json"
    assert got["headers"]["X-Workbench-Alert"] == "k"
    assert got["body"]["source"] == "workbench" and got["body"]["alert"]["severity"] == "critical"
    # after the cooldown the persisting condition is delivered again, as a new alert
    alerts.emit(title="p99 high", severity="critical", dedup_key="short", cooldown_s=0.2)
    alerts.emit(title="p99 high", severity="critical", dedup_key="short", cooldown_s=0.2)
    time.sleep(0.3)
    alerts.emit(title="p99 high", severity="critical", dedup_key="short", cooldown_s=0.2)
    assert alerts.flush(10)
    assert [a["count"] for a in store.monitors.list_alerts() if a["dedup_key"] == "short"] == [1, 2]
    assert len(receiver.received) == 3
    store.close()


def test_a_broken_webhook_is_recorded_not_raised(tmp_path):
    store = Store(tmp_path / "l.db")
    refused = WebhookSink(f"http://127.0.0.1:{_closed_port()}/x", retries=1, backoff_s=0.01)
    not_found = _Receiver(status=404)
    try:
        sinks = [refused, WebhookSink(not_found.url, retries=3, backoff_s=0.01)]
        sinks[1].name = "webhook-404"
        alerts = Alerts(store, sinks=sinks)
        alerts.emit(title="t", severity="warning", dedup_key="b")
        assert alerts.flush(10)
        out = store.monitors.list_alerts()[0]
        assert out["deliveries"]["webhook"].startswith("failed: ConnectionError")
        assert "404" in out["deliveries"]["webhook-404"]
        assert len(not_found.received) == 1  # a 4xx is not retried
    finally:
        not_found.close()
    with pytest.raises(ConfigError, match="http"):
        WebhookSink("ftp://example")
    store.close()


def test_monitor_alerts_reach_the_webhook_log_and_notebook(tmp_path, receiver, caplog):
    from workbench.monitoring import LogSink

    notebook = NotebookSink()
    env = Env(tmp_path, sinks=[LogSink(), notebook])
    mon = env.monitoring.drift_monitor(
        "svc",
        window=200,
        backend="scipy",
        alerts={"webhook_url": receiver.url, "cooldown_s": 0, "min_severity": "warning"},
    )
    env.log(env.rows(200, shift=1.0))
    env.log(env.rows(200, shift=1.0))
    with caplog.at_level("WARNING", logger="workbench.alerts"):
        assert [r["verdict"] for r in mon.check()] == ["drift", "drift"]
    assert env.monitoring.alerting.flush(10)
    assert len(receiver.received) == 2  # cooldown 0: every window is its own alert
    alert = receiver.received[0]["body"]["alert"]
    assert alert["monitor"] == mon.name and alert["detail"]["deployment"] == "svc"
    assert alert["title"].startswith("data drift on svc: x1")
    assert len(notebook.recent) == 2 and "data drift on svc" in caplog.text
    stored = env.monitoring.alerts(mon.name)
    assert all(a["deliveries"] == {"log": "ok", "notebook": "ok", "webhook": "ok"} for a in stored)
    with pytest.raises(ConfigError, match="unknown alert settings"):
        env.monitoring.drift_monitor("svc", alerts={"cooldown": 5})
    env.store.close()
