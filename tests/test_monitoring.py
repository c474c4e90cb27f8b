"""Drift detection: false-alarm rate and power measured statistically, and the monitor's windows over the store."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.datasets import Datasets
from workbench.exceptions import ConfigError
from workbench.lineage import ArtifactStore, Store
from workbench.monitoring import Monitoring, make_detector

BACKENDS = ["alibi", "scipy"]


def _windows(rng, n_windows, shift=0.0):
    for _ in range(n_windows):
        x = rng.normal(size=(100, 5))
        x[:, 2] += shift
        yield x


@pytest.mark.parametrize("backend", BACKENDS)
def test_false_alarm_rate_and_power(backend):
    rng = np.random.default_rng(0)
    det = make_detector(backend, p_val=0.05).fit(rng.normal(size=(1000, 5)), categorical=[])
    alarms = sum(det.test(x)["data"]["is_drift"] for x in _windows(rng, 60))
    detected = sum(det.test(x)["data"]["is_drift"] for x in _windows(rng, 30, shift=0.6))
    # Bonferroni keeps the family-wise false-alarm rate at or below 5%: P(>=7 of 60 | p=0.05) < 4%
    assert alarms <= 6, f"{alarms}/60 false alarms"
    assert detected >= 27, f"only {detected}/30 shifted windows detected"


@pytest.mark.parametrize("backend", BACKENDS)
def test_categorical_shift_detected(backend):
    rng = np.random.default_rng(1)
    ref = np.column_stack(
        [rng.normal(size=600), rng.choice([0, 1, 2], size=600, p=[0.6, 0.3, 0.1])]
    )
    det = make_detector(backend).fit(ref, categorical=[1])
    same = np.column_stack(
        [rng.normal(size=200), rng.choice([0, 1, 2], size=200, p=[0.6, 0.3, 0.1])]
    )
    moved = np.column_stack(
        [rng.normal(size=200), rng.choice([0, 1, 2], size=200, p=[0.1, 0.3, 0.6])]
    )
    assert not det.test(same)["data"]["is_drift"]
    assert det.test(moved)["data"]["is_drift"]


def test_results_follow_data_meta_shape():
    det = make_detector("scipy").fit(np.zeros((10, 2)) + np.arange(10)[:, None], categorical=[])
    out = det.test(np.arange(20).reshape(10, 2).astype(float))
    assert set(out) == {"data", "meta"} and set(out["data"]) >= {"is_drift", "p_val", "threshold"}
    with pytest.raises(ConfigError, match="unknown drift backend"):
        make_detector("magic")


def test_monitor_windows_over_logged_requests(tmp_path):
    store = Store(tmp_path / "l.db")
    datasets = Datasets(store, ArtifactStore(tmp_path / "a"))
    rng = np.random.default_rng(2)
    ref = pl.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500), "y": ["x"] * 500})
    dv = datasets.ingest(ref, name="ref", target="y")
    store.models.add_version(
        "m",
        task="classification",
        artifact_hash="c" * 64,
        params={},
        metrics={},
        signature={},
        experiment_id=None,
        trial_id=None,
        dataset_version_id=dv.id,
    )
    store.deployments.add("svc", model="m", route_prefix="/svc", status="running")

    def log(rows, start):
        store.deployments.record_requests(
            [
                {
                    "request_id": f"r{start + i}",
                    "deployment": "svc",
                    "features": [r],
                    "prediction": ["x"],
                    "latency_ms": 1.0,
                }
                for i, r in enumerate(rows)
            ]
        )

    log([{"a": float(a), "b": float(b)} for a, b in rng.normal(size=(120, 2))], 0)
    mon = Monitoring(store, datasets).drift_monitor(
        "svc", reference=dv, window=50, p_val=0.05, backend="alibi"
    )
    first = mon.check()
    assert [r["is_drift"] for r in first] == [
        False,
        False,
    ]  # 120 requests → two full windows, 20 wait
    log([{"a": float(a) + 1.0, "b": float(b)} for a, b in rng.normal(size=(80, 2))], 1000)
    second = mon.check()
    assert len(second) == 2 and second[-1]["is_drift"]
    assert second[-1]["most_shifted"][0][0] == "a"
    assert mon.check() == []  # nothing tested twice
    drift = store.monitors.list_windows("svc-drift", drift_only=True)
    assert drift and store.edges(dst=("drift_result", drift[0]["id"]))[0]["src_type"] == "monitor"
    assert store.audit_log()[0]["action"] in {"drift.detected", "monitor.upsert"}


def test_a_datetime_feature_is_left_out_by_default_and_compared_as_epoch_seconds_when_named(
    tmp_path,
):
    from datetime import UTC, datetime, timedelta

    from workbench.monitoring._encode import Encoder

    store = Store(tmp_path / "lineage.db")
    datasets = Datasets(store, ArtifactStore(tmp_path / "artifacts"))
    start = datetime(2024, 1, 1)
    frame = pl.DataFrame(
        {
            "x": np.arange(50, dtype=float),
            "when": [start + timedelta(hours=i) for i in range(50)],
            "y": ["a", "b"] * 25,
        }
    )
    dv = datasets.ingest(frame, name="ref", target="y")
    assert Monitoring._kinds(dv, None) == {"x": "number"}  # a timestamp always "drifts"
    kinds = Monitoring._kinds(dv, ["x", "when"])
    assert kinds == {"x": "number", "when": "datetime"}
    enc = Encoder.fit(frame.drop("y").to_dicts(), kinds)
    assert enc.categorical == [] and "when" not in enc.categories
    logged = [
        {"x": 1.0, "when": "2024-01-01T02:00:00"},
        {"x": 2.0, "when": "2024-01-01T03:00:00+01:00"},  # the same instant as 02:00 UTC
    ]
    out = enc.encode(logged, min_rows=1)
    epoch = datetime(2024, 1, 1, 2, tzinfo=UTC).timestamp()
    assert out.x[:, 1].tolist() == [epoch, epoch]
    bad = enc.encode([{"x": 1.0, "when": "tomorrow"}], min_rows=1)
    assert bad.verdict == "schema mismatch" and "ISO-8601" in bad.reason
    store.close()
