"""The triage of a retraining (``LoopPolicy(triage=True)``) in the monitor's read view, the one the
monitor widget and the side panel's monitors tab show: each retrain job and each alert (through the
job its drift window started) carries the estimate, its interval, the baseline and one line of
text. The jobs are made by the real engine (no Ray), as in tests/test_triage.py: a covariate shift
that leaves accuracy unchanged (harmless, the job ends SKIPPED) and a concept drift (labels
flipped: harmful, the job goes on and waits for held-out rows)."""

from __future__ import annotations

import pytest

from tests._factories import (
    champion_bench,
    drift_window,
    flipped_labels,
    log_requests,
    shifted_by_selection,
    triage_policy,
)
from workbench.ui._state import alerts_view, monitor_state, triage_view

TARGET = "diagnosis"


@pytest.fixture
def bench(home):
    bench = champion_bench(home)
    bench.automation.add_policy(triage_policy())
    yield bench
    bench.close()


def _drift(bench, rows):
    """Serve ``rows`` with their labels, record one drifting window and its alert, and let the
    engine file and run the job; returns the job, its triage step and the alert's id."""
    log_requests(bench, rows)
    rid = drift_window(bench, first=1, n=len(rows))
    bench.store.monitors.record_alert(
        dedup_key="bc-drift:drift",
        severity="warning",
        title="data drift on bc",
        detail={},
        cooldown_s=0,
        monitor="bc-drift",
        drift_result_id=rid,
    )
    bench.automation.tick(check=False)
    (job,) = bench.automation.jobs("bc")
    step = bench.automation.steps(job["id"])[0]
    assert step["step"] == "triage", step
    (alert,) = bench.monitoring.alerts("bc-drift")
    return job, step["detail"], alert["id"]


def _expected(d):
    lo, hi = d["interval"]
    return (
        f"{'harmful' if d['harmful'] else 'harmless'} shift: accuracy est. {d['estimate']:.2f} "
        f"({lo:.2f}–{hi:.2f}) vs {d['baseline']:.2f} baseline, labels n={d['n']}"
    )


def test_a_harmless_triage_is_beside_its_job_and_its_alert(bench):
    job, d, alert_id = _drift(bench, shifted_by_selection(bench.rows))
    assert job["status"] == "SKIPPED" and job["decision"] == "harmless_shift", job
    state = monitor_state(bench.monitoring, "bc-drift")
    (row,) = state["jobs"]
    triage = row["triage"]
    assert triage == {
        "method": "labels",
        "metric": "accuracy",
        "estimate": d["estimate"],
        "baseline": d["baseline"],
        "interval": d["interval"],
        "harmful": False,
        "n": 114,
        "effective_n": None,
        "reason": d["reason"],
        "verdict": _expected(d),
    }, triage
    assert triage["verdict"].startswith("harmless shift: accuracy est. 0.9"), triage
    (alert,) = state["alerts"]
    assert alert["id"] == alert_id and alert["triage"] == triage
    assert alert["job"] == {"id": job["id"], "status": "SKIPPED", "decision": "harmless_shift"}
    # the panel's list (all monitors) is the same view
    assert alerts_view(bench.monitoring) == state["alerts"]


def test_a_harmful_triage_is_beside_its_job_and_its_alert(bench):
    job, d, _ = _drift(bench, flipped_labels(bench.rows[:100]))
    assert job["status"] == "WAITING_FOR_DATA" and d["harmful"] is True, (job, d)
    state = monitor_state(bench.monitoring, "bc-drift")
    (alert,) = state["alerts"]
    triage = alert["triage"]
    assert triage["harmful"] is True and triage["method"] == "labels" and triage["n"] == 100
    assert triage["verdict"] == _expected(d), triage
    assert triage["estimate"] < 0.2 and triage["verdict"].startswith(
        "harmful shift: accuracy est. 0."
    )
    assert alert["job"]["status"] == "WAITING_FOR_DATA" and alert["job"]["id"] == job["id"]
    assert state["jobs"][0]["triage"] == triage


def test_an_alert_without_a_job_and_a_job_without_triage_show_none(bench):
    rid = drift_window(bench, first=1, n=10)
    bench.store.monitors.record_alert(
        dedup_key="x", severity="warning", title="t", detail={}, cooldown_s=0, monitor="bc-drift"
    )
    bench.store.retraining.claim_job(
        "drift:x", policy="bc", status="PENDING_APPROVAL", drift_result_id=rid
    )
    state = monitor_state(bench.monitoring, "bc-drift")
    assert [a["job"] for a in state["alerts"]] == [None]
    assert [a["triage"] for a in state["alerts"]] == [None]
    assert [j["triage"] for j in state["jobs"]] == [None]


def test_triage_view_of_label_free_estimates_and_of_nothing():
    cbpe = {"method": "cbpe", "estimate": 0.7149, "baseline": 0.9512, "interval": None}
    view = triage_view({**cbpe, "harmful": True, "n": 57, "labels": 0, "reason": "cbpe: ..."})
    assert view == {
        **cbpe,
        "metric": "accuracy",
        "harmful": True,
        "n": 57,
        "effective_n": None,
        "reason": "cbpe: ...",
        "verdict": "harmful shift: accuracy est. 0.71 vs 0.95 baseline, cbpe (no labels) n=57",
    }
    # importance weighting of a regressor's error: its metric, and how many rows the weights leave
    iw = {"method": "iw", "metric": "rmse", "estimate": 2.314, "baseline": 2.291, "n": 80}
    view = triage_view({**iw, "interval": [1.9, 2.7], "effective_n": 44.37, "harmful": False})
    assert view["verdict"] == (
        "harmless shift: rmse est. 2.31 (1.90–2.70) vs 2.29 baseline,"
        " importance-weighted (no labels) n=80, effective n=44.4"
    ), view
    assert triage_view(None) is None and triage_view({}) is None
