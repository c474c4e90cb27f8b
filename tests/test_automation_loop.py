"""The store-driven loop: one job per event (UNIQUE in the store), cooldown/budget, approval, a full
warm-started retraining with every step in the lineage, and the detached scheduler actor surviving a kill."""

from __future__ import annotations

import time

import pytest

from tests._factories import champion_bench
from workbench.automation import Budget, DriftTrigger, Gate, LoopPolicy


def _drift(store, monitor, flags):
    ids = []
    for f in flags:
        ids.append(
            store.monitors.record_window(
                monitor,
                first_request_log_id=0,
                last_request_log_id=0,
                n=10,
                is_drift=f,
                score=0.001 if f else 0.5,
                threshold=0.05,
                detail={},
            )
        )
    return ids


@pytest.fixture
def loop_bench(home):
    """A Workbench with a champion (logistic regression on bc-train), a deployment row and a monitor; no Ray."""
    bench = champion_bench(home)
    yield bench
    bench.close()


def policy(**kw):
    base = dict(
        name="bc",
        model="bc",
        deployment="bc",
        train="bc-train",
        holdout="bc-holdout",
        triggers=[DriftTrigger("bc-drift", windows=2)],
        cooldown_s=0,
        canary=False,
        num_samples=1,
        # the drift windows here are records with no requests behind them: nothing to triage or
        # to start a post-change snapshot from (tests/test_triage.py, test_own_holdout.py do)
        triage=False,
        since_change=False,
    )
    return LoopPolicy(**{**base, **kw})


def test_one_job_per_event_enforced_by_the_store(loop_bench):
    import sqlite3

    from workbench.lineage import Store

    bench = loop_bench
    bench.automation.add_policy(policy())
    ids = _drift(bench.store, "bc-drift", [True, False, True, True, True, True])
    out = bench.automation.tick(run=False)
    jobs = bench.automation.jobs("bc")
    assert out["created"] == [j["id"] for j in jobs] and len(jobs) == 2
    assert [j["drift_result_id"] for j in jobs] == [ids[3], ids[5]]
    assert all(j["status"] == "SCHEDULED" for j in jobs)
    # a second tick, and another process on the same file, create nothing more
    assert bench.automation.tick(run=False)["created"] == []
    other = Store(bench.settings.db_path)
    assert other.retraining.claim_job(jobs[0]["event_key"], policy="bc", status="SCHEDULED") is None
    with pytest.raises(
        sqlite3.IntegrityError
    ):  # the guarantee is the UNIQUE index, not our pre-check
        with other.transaction():
            other._db.conn.execute(
                "INSERT INTO retrain_jobs (status, started_at, event_key) VALUES ('X', 'now', ?)",
                [jobs[0]["event_key"]],
            )
    other.close()
    # the drift event links to its job in the lineage
    assert {
        (e["src_type"], e["relation"])
        for e in bench.store.edges(dst=("retrain_job", jobs[0]["id"]))
    } == {("drift_result", "triggered")}


def test_cooldown_and_budget_skip_and_are_recorded(loop_bench):
    bench = loop_bench
    bench.automation.add_policy(
        policy(triggers=[DriftTrigger("bc-drift", windows=1)], cooldown_s=3600)
    )
    _drift(bench.store, "bc-drift", [True, True, True])
    bench.automation.tick(run=False)
    jobs = bench.automation.jobs("bc")
    assert [j["status"] for j in jobs] == ["SCHEDULED", "SKIPPED", "SKIPPED"]
    assert jobs[1]["decision"] == "cooldown" and jobs[1]["ended_at"]
    bench.automation.add_policy(
        policy(
            name="bc2", triggers=[DriftTrigger("bc-drift", windows=1)], budget=Budget(max_per_day=2)
        )
    )
    bench.automation.tick(run=False)
    assert [j["status"] for j in bench.automation.jobs("bc2")] == [
        "SCHEDULED",
        "SCHEDULED",
        "SKIPPED",
    ]
    assert bench.automation.jobs("bc2")[2]["decision"] == "budget"


def test_approval_from_python(loop_bench):
    from workbench.exceptions import WorkbenchError

    bench = loop_bench
    bench.automation.add_policy(
        policy(triggers=[DriftTrigger("bc-drift", windows=1)], approval=True)
    )
    _drift(bench.store, "bc-drift", [True, True])
    bench.automation.tick(run=False)
    a, b = bench.automation.pending()
    assert a["approval"] == "PENDING"
    # pending jobs never run on their own
    assert bench.automation.tick()["ran"] == []
    rejected = bench.automation.reject(b["id"], actor="alice", reason="not now")
    assert rejected["status"] == "REJECTED" and rejected["decision"] == "not_approved"
    assert bench.automation.approve(a["id"], actor="alice")["status"] == "APPROVED"
    with pytest.raises(WorkbenchError):
        bench.automation.approve(b["id"])
    actions = {(r["action"], r["actor"]) for r in bench.store.audit_log(50)}
    assert {("retrain.approve", "alice"), ("retrain.reject", "alice")} <= actions


@pytest.mark.ray
@pytest.mark.slow
def test_full_retraining_is_warm_started_gated_and_in_the_lineage(loop_bench, ray_cluster):
    bench = loop_bench
    bench.automation.add_policy(
        policy(
            gate=Gate("f1", margin=-1.0, guarded=("recall",), tolerance=1.0),
            snapshot="sliding",
            window=200,
        )
    )
    drift_ids = _drift(bench.store, "bc-drift", [True, True])
    out = bench.automation.tick()
    (job,) = bench.automation.jobs("bc")
    assert out["ran"][0]["job_id"] == job["id"] and job["status"] == "PROMOTED", job
    steps = [s["step"] for s in bench.automation.steps(job["id"])]
    assert steps == [
        "snapshot",
        "validation",
        "search",
        "evaluation",
        "gate",
        "registration",
        "promotion",
    ]
    search = bench.automation.steps(job["id"])[2]["detail"]
    assert {"family": "logistic_regression", "C": 1.0}.items() <= search["warm_start"].items()
    exp = bench.store.experiments.get(job["experiment_id"])
    trials = bench.store.experiments.list_trials(exp["id"])
    assert exp["search_alg"] == "BasicVariantGenerator"
    assert any(t["config"].get("C") == 1.0 for t in trials)  # the champion's config was a trial
    assert all(t["config"]["family"] == "logistic_regression" for t in trials)
    snap = bench.datasets.by_id(job["new_dataset_version_id"])
    assert snap.name == "bc-train" and snap.n_rows == 200  # sliding window
    assert bench.registry.get("bc", "champion").version == 2
    assert job["compute_s"] > 0
    # every step hangs off the job, the job off the drift event
    text = bench.lineage_text("bc", "champion")
    for s in steps:
        assert f"step {s} of retrain job #{job['id']}" in text
    assert f"drift result #{drift_ids[1]}" in text
    # a finished job never runs again
    assert (
        bench.automation.tick()["ran"] == []
        and bench.automation.jobs("bc")[0]["status"] == "PROMOTED"
    )


@pytest.mark.ray
def test_detached_scheduler_survives_a_kill_without_duplicates(loop_bench, ray_cluster):
    import ray

    bench = loop_bench
    bench.automation.add_policy(
        policy(triggers=[DriftTrigger("bc-drift", windows=1)], approval=True)
    )
    ns = f"wb-test-{time.monotonic_ns()}"
    handle = bench.automation.start_scheduler(interval_s=0.5, namespace=ns)
    try:
        _drift(bench.store, "bc-drift", [True, True])
        deadline = time.monotonic() + 60
        while len(bench.automation.jobs("bc")) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert len(bench.automation.jobs("bc")) == 2
        first = bench.automation.scheduler_status(namespace=ns)
        assert first["running"] and first["stored"]["state"] == "running"
        # same name, get_if_exists: a second start finds the running actor
        assert (
            bench.automation.start_scheduler(interval_s=0.5, namespace=ns)._actor_id
            == handle._actor_id
        )
        ray.kill(handle)
        handle = bench.automation.start_scheduler(interval_s=0.5, namespace=ns)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = bench.automation.scheduler_status(namespace=ns)
            if (
                st["actor"]["incarnation"] != first["actor"]["incarnation"]
                and st["actor"]["ticks"] >= 3
            ):
                break
            time.sleep(0.3)
        assert st["actor"]["ticks"] >= 3
        assert len(bench.automation.jobs("bc")) == 2  # the old events produced no second job
        _drift(bench.store, "bc-drift", [True])
        deadline = time.monotonic() + 60
        while len(bench.automation.jobs("bc")) < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
        jobs = bench.automation.jobs("bc")
        assert len(jobs) == 3 and len({j["event_key"] for j in jobs}) == 3
        assert bench.automation.stop_scheduler(namespace=ns)
        assert bench.store.retraining.get_scheduler_state("scheduler")["state"] == "stopped"
    finally:
        try:
            ray.kill(ray.get_actor("workbench-scheduler", namespace=ns))
        except ValueError:
            pass
    assert not bench.automation.scheduler_status(namespace=ns)["running"]


def test_a_cron_trigger_through_tick_makes_one_job_per_fire_time(loop_bench):
    """The schedule trigger end to end through the store: no job until a fire time passes, one job
    per fire time however often the engine ticks, and missed fire times collapse into one job."""
    from datetime import UTC, datetime

    from workbench.automation import ScheduleTrigger

    bench = loop_bench
    bench.automation.add_policy(policy(triggers=[ScheduleTrigger("0 * * * *")]))

    def at(hh, mm):
        return datetime(2026, 11, 27, hh, mm, tzinfo=UTC).timestamp()

    def keys():
        return [j["event_key"] for j in bench.automation.jobs("bc")]

    assert bench.automation.tick(run=False, now=at(10, 30))["created"] == []  # first look
    assert bench.automation.tick(run=False, now=at(10, 50))["created"] == []  # no fire yet
    assert len(bench.automation.tick(run=False, now=at(11, 10))["created"]) == 1
    assert bench.automation.tick(run=False, now=at(11, 15))["created"] == []  # same hour again
    assert bench.automation.tick(run=False, now=at(11, 15))["created"] == []
    assert len(bench.automation.tick(run=False, now=at(13, 40))["created"]) == 1  # 12:00, 13:00
    assert len(keys()) == 2 and keys()[0].endswith("11:00:00+00:00")
    assert keys()[1].endswith("13:00:00+00:00")
    assert {j["status"] for j in bench.automation.jobs("bc")} == {"SCHEDULED"}


@pytest.mark.ray
def test_a_compute_budget_caps_the_search_and_stops_the_next_job(
    loop_bench, ray_cluster, monkeypatch, request
):
    """Budget(max_compute_s=15): the first job's search gets the 15 s that are left (Tune's
    time_budget_s cuts a 1,500-trial search), its run is recorded as compute; the second job,
    admitted at the same moment, is stopped when it comes to run, and a later event is refused."""
    from workbench.runtime import parked_trials, release_parked_trials

    bench = loop_bench
    # The budget starts with the search, cold trial processes included: on a contended 2-core
    # machine (CI's other worker busy; 8 busy loops here) starting them took the whole 15 s and
    # no trial finished. A first search leaves its two trial actors parked for the job's search,
    # so what the budget cuts is trials, not process starts.
    monkeypatch.setenv("WORKBENCH_WARM_TRIALS_S", "600")
    bench.experiments.search(bench.parts["train"], name="warm-up", num_samples=2, progress=None)
    assert parked_trials() == 2
    request.addfinalizer(release_parked_trials)
    bench.automation.add_policy(
        policy(
            triggers=[DriftTrigger("bc-drift", windows=1)],
            budget=Budget(max_compute_s=15.0),
            num_samples=1500,
            gate=Gate("f1", margin=-1.0, tolerance=1.0),
        )
    )
    _drift(bench.store, "bc-drift", [True, True])
    created = bench.automation.tick(run=False, check=False)["created"]
    assert len(created) == 2  # nothing used yet: both admitted
    bench.automation.tick(check=False)
    first, second = bench.automation.jobs("bc")
    assert first["status"] == "PROMOTED", first["detail"].get("error")
    assert first["detail"]["budget"]["search_budget_s"] == 15.0
    assert first["detail"]["budget"]["compute_used_24h_s"] == 0.0
    exp = bench.store.experiments.get(first["experiment_id"])
    assert exp["search_space"]["_options"]["time_budget_s"] == 15.0
    assert (
        1 <= len(bench.store.experiments.list_trials(exp["id"])) < 1500
    )  # the budget ended the search
    search = first["detail"]["search"]
    assert search["time_budget_s"] == 15.0 and search["search_s"] >= 15.0
    assert first["compute_s"] >= search["search_s"]

    assert (second["status"], second["decision"]) == ("SKIPPED", "budget") and second["ended_at"]
    assert second["detail"]["admission"].startswith("budget: ")
    assert second["detail"]["budget"]["compute_used_24h_s"] == pytest.approx(
        first["compute_s"], abs=1e-3
    )
    assert [(s["step"], s["status"]) for s in bench.automation.steps(second["id"])] == [
        ("budget", "refused")
    ]
    assert second["experiment_id"] is None and bench.registry.get("bc", "champion").version == 2
    # a new event while the day's compute is spent: refused at admission, with the reason
    _drift(bench.store, "bc-drift", [True])
    (new,) = bench.automation.tick(check=False)["created"]
    refused = bench.store.retraining.get_job(new)
    assert (refused["status"], refused["decision"]) == ("SKIPPED", "budget")
    assert "compute in 24h" in refused["detail"]["admission"]
    print(
        f"\nbudget: search cut at {search['search_s']:.1f}s after "
        f"{len(bench.store.experiments.list_trials(exp['id']))} trials; job {first['compute_s']:.1f}s; next job refused"
    )


def test_a_window_tested_against_an_old_reference_does_not_retrain(loop_bench):
    """Two drifting windows checked in one tick make two jobs; once the first job's promotion moves
    the monitor's reference, the second window's evidence is stale: its job ends SKIPPED, unrun."""
    bench = loop_bench
    bench.automation.add_policy(policy(triggers=[DriftTrigger("bc-drift", windows=1)]))
    ref = bench.store.monitors.get("bc-drift")["reference_dataset_version_id"]
    ids = []
    for tested in (ref, ref + 100):  # the second was tested against a reference since left
        ids.append(
            bench.store.monitors.record_window(
                "bc-drift",
                first_request_log_id=0,
                last_request_log_id=0,
                n=10,
                is_drift=True,
                score=0.001,
                threshold=0.05,
                detail={"reference_dataset_version_id": tested},
            )
        )
    bench.automation.tick(run=False, check=False)
    fresh, old = bench.automation.jobs("bc")
    from workbench.automation._engine import Engine

    out = Engine(bench.stages).run_job(old["id"])
    assert out["status"] == "SKIPPED" and out["decision"] == "stale"
    job = bench.store.retraining.get_job(old["id"])
    assert (job["status"], job["decision"]) == ("SKIPPED", "stale") and job["ended_at"]
    assert f"#{ref + 100}" in job["detail"]["admission"] and f"#{ref}" in job["detail"]["admission"]
    assert [(s["step"], s["status"]) for s in bench.automation.steps(old["id"])] == [
        ("trigger", "stale")
    ]
    assert Engine(bench.stages)._stale(fresh) is None  # tested against the current reference


def test_a_performance_window_of_a_version_no_longer_served_does_not_retrain(loop_bench):
    """A degraded performance window whose labelled requests only the old champion answered
    (``by_version``) says nothing about the version promoted since: its job ends SKIPPED,
    unrun; a window the current champion answered part of stays live evidence."""
    from workbench.automation import PerformanceTrigger
    from workbench.automation._engine import Engine

    bench = loop_bench
    bench.store.monitors.add(
        "bc-perf",
        deployment="bc",
        kind="performance",
        config={},
        reference_dataset_version_id=bench.parts["train"].id,
    )
    bench.automation.add_policy(
        policy(triggers=[PerformanceTrigger("accuracy", monitor="bc-perf")])
    )
    v2 = bench.registry.register(
        "bc", bench.registry.load("bc", 1), metrics={"accuracy": bench.accuracy}
    )
    bench.registry.set_alias("bc", "champion", v2.version)
    for served in ({"1": {"n": 40, "accuracy": 0.5}}, {"1": {"n": 20}, "2": {"n": 20}}):
        bench.store.monitors.record_window(
            "bc-perf",
            first_request_log_id=0,
            last_request_log_id=0,
            n=40,
            is_drift=True,
            score=0.5,
            threshold=0.9,
            detail={"verdict": "degraded", "by_version": served},
        )
    bench.automation.tick(run=False, check=False)
    old, mixed = bench.automation.jobs("bc")
    out = Engine(bench.stages).run_job(old["id"])
    assert (out["status"], out["decision"]) == ("SKIPPED", "stale"), out
    job = bench.store.retraining.get_job(old["id"])
    assert "measured v1; the champion is v2 now" in job["detail"]["admission"]
    policy_obj = LoopPolicy.from_dict(mixed["detail"]["policy"])
    assert Engine(bench.stages)._stale(mixed, policy_obj) is None


DRIVER = """
import sys

import ray

from workbench.api import Workbench

bench = Workbench(sys.argv[1], address=sys.argv[2])
handle = bench.automation.start_scheduler(interval_s=0.5, namespace=sys.argv[3])
print(ray.get(handle.status.remote(), timeout=60)["incarnation"])
bench.close()
"""


@pytest.mark.ray
def test_the_scheduler_outlives_the_driver_that_started_it(loop_bench, ray_cluster):
    """A driver process (a notebook kernel, a script) starts the scheduler and exits; the detached
    actor keeps ticking in the cluster and turns the next drift event into a job."""
    import os
    import subprocess
    import sys

    import ray

    bench = loop_bench
    bench.automation.add_policy(
        policy(triggers=[DriftTrigger("bc-drift", windows=1)], approval=True)
    )
    ns = f"wb-driver-{time.monotonic_ns()}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    try:
        out = subprocess.run(
            [sys.executable, "-c", DRIVER, str(bench.settings.home), ray_cluster.address, ns],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        incarnation = out.stdout.strip().splitlines()[-1]
        assert incarnation.startswith("scheduler:")
        # the driver is gone; a drift event now still becomes a job, made by its scheduler
        _drift(bench.store, "bc-drift", [True])
        deadline = time.monotonic() + 60
        while not bench.automation.jobs("bc") and time.monotonic() < deadline:
            time.sleep(0.3)
        (job,) = bench.automation.jobs("bc")
        assert job["status"] == "PENDING_APPROVAL"
        status = bench.automation.scheduler_status(namespace=ns)
        assert status["running"] and status["actor"]["incarnation"] == incarnation
        assert status["stored"]["incarnation"] == incarnation and status["actor"]["ticks"] >= 1
        assert bench.automation.stop_scheduler(namespace=ns)
    finally:
        try:
            ray.kill(ray.get_actor("workbench-scheduler", namespace=ns))
        except ValueError:
            pass


def test_a_window_recorded_twice_by_two_checkers_is_one_event(loop_bench):
    """A notebook's tick() and the scheduler's may check a monitor at the same moment and both record
    the same window of requests; the copy is not a second event, so there is one job."""
    bench = loop_bench
    bench.automation.add_policy(policy(triggers=[DriftTrigger("bc-drift", windows=1)]))
    for first, last in ((1, 100), (1, 100), (101, 200)):
        bench.store.monitors.record_window(
            "bc-drift",
            first_request_log_id=first,
            last_request_log_id=last,
            n=100,
            is_drift=True,
            score=0.001,
            threshold=0.05,
            detail={},
        )
    results = bench.store.monitors.list_windows("bc-drift")
    bench.automation.tick(run=False, check=False)
    jobs = bench.automation.jobs("bc")
    assert [j["drift_result_id"] for j in jobs] == [results[0]["id"], results[2]["id"]]
