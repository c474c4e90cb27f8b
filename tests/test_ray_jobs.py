"""Retraining as Ray Jobs: on a Ray head of this module's own (the session's Ray runs no dashboard,
so no job server), a drift event becomes one Ray Job whose entrypoint runs the pipeline and records
its decision; Ray's status is reconciled into the store; the scheduler actor runs one end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from tests._factories import champion_bench
from tests._nodes import start_head as _start_head
from tests._processes import end_ray_start
from tests.test_automation_loop import _drift, policy
from workbench.automation import DriftTrigger, Gate, LoopPolicy
from workbench.exceptions import ConfigError, WorkbenchError

WAIT_S = 300  # one job: a Ray Job start, imports, a 1-trial search, a refit (~20-60 s seen here)
PASS = Gate("f1", margin=-1.0, guarded=("recall",), tolerance=1.0)


# ------------------------------------------------------------------ no cluster
def test_run_as_is_validated_and_decided_by_the_cluster(home, monkeypatch):
    from workbench.automation._jobs import resolve_run_as
    from workbench.stages import Stages

    with pytest.raises(ConfigError, match="'inline', 'ray_job', or None"):
        policy(run_as="ray-job")
    with pytest.raises(ConfigError, match="job_num_cpus"):
        policy(job_num_cpus=-1)
    p = policy()
    assert p.run_as is None and LoopPolicy.from_dict(p.to_dict()) == p
    old = p.to_dict()
    for k in ("run_as", "job_num_cpus", "job_package"):  # a policy stored before these fields
        old.pop(k)
    assert LoopPolicy.from_dict(old) == p
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    stages = Stages.open(home)
    try:
        # the embedded default (no address: a private local Ray) runs jobs inline
        assert resolve_run_as(p, stages) == "inline"
        assert resolve_run_as(policy(run_as="ray_job"), stages) == "ray_job"
    finally:
        stages.close()


@pytest.fixture
def jobs_bench(home):
    """test_automation_loop's ``loop_bench`` (champion, deployment row, monitor), no Ray."""
    bench = _bench_on(None, home)
    yield bench
    bench.close()


@pytest.mark.ray
def test_a_ray_job_without_a_job_server_fails_with_the_next_action(
    jobs_bench, monkeypatch, ray_cluster
):
    """run_as='ray_job' on the session's private local Ray, which runs no job server (its GCS still
    records 127.0.0.1:8265, where another test's cluster may listen): the job ends FAILED, saying
    what to set; nothing else is recorded."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    bench = jobs_bench
    bench.automation.add_policy(policy(name="nojs", run_as="ray_job"))
    _drift(bench.store, "bc-drift", [True, True])
    from workbench.automation._jobs import dashboard_url

    assert dashboard_url(bench.stages) is None
    out = bench.automation.tick(check=False)
    (job,) = bench.automation.jobs("nojs")
    assert out["ran"][0]["status"] == "FAILED"
    assert (job["status"], job["decision"]) == ("FAILED", "submit_failed")
    assert "run_as='inline'" in job["detail"]["error"] and job["ray_job_id"] is None
    assert [(s["step"], s["status"]) for s in bench.automation.steps(job["id"])] == [
        ("ray_job", "failed")
    ]
    assert (
        job["new_dataset_version_id"] is None and bench.registry.get("bc", "champion").version == 1
    )
    with pytest.raises(WorkbenchError, match="did not run as a Ray Job"):
        bench.automation.logs(job["id"])


# ---------------------------------------------------------- a head of our own


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A head of this module's own (see :func:`_start_head`), ended by its pid; ``(gcs, url)``."""
    temp_dir = tempfile.mkdtemp(prefix="wbjobs-", dir="/tmp")  # Unix sockets: short paths
    head = None
    try:
        head, gcs, url = _start_head(tmp_path_factory.mktemp("head"), temp_dir)
        yield gcs, url
    finally:
        if head is not None:
            end_ray_start(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def head_bench(ray_head, monkeypatch):
    """The module's head, its job server named by Ray's own ``RAY_API_SERVER_ADDRESS``.

    This process may have imported Ray before it knew of a token-authenticated cluster (Ray
    reads ``RAY_AUTH_MODE`` at import), and then cannot read the job server's address from the
    head's GCS: seen here as ``InvalidAuthToken``. The scheduler actor, a worker of the cluster,
    finds the address in the GCS (test_the_scheduler_actor_runs_...)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", ray_head[1])
    return ray_head


def _bench_on(address, home):
    """A Workbench on ``address`` holding what test_automation_loop's ``loop_bench`` holds."""
    return champion_bench(home, address=address)


def _wait_terminal(bench, job_id, timeout_s=WAIT_S):
    from workbench.status import TERMINAL

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bench.automation.tick(run=False, check=False)  # reconciles Ray's status into the store
        job = bench.automation.job(job_id)
        if job["status"] in TERMINAL:
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s}s")


def _ray_status(jobs, sid, timeout_s=60):
    """Ray's terminal status of ``sid``: the entrypoint records its decision, then exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = jobs.state(sid).status
        if status in ("SUCCEEDED", "FAILED", "STOPPED", None):
            return status
        time.sleep(0.5)
    return status


def _submit_raw(jobs, **kw):
    """A plain submission (not a retrain job's), retried while the head answers "No available
    agent to submit job, please try again later" (seen here even after a first job ran)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return jobs.client.submit_job(**kw)
        except RuntimeError as exc:
            if "try again later" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def _unique(name):
    """Submission ids are event keys, which hold the policy's name: one name per test run, since
    every test's store starts at drift result #1 on the same cluster."""
    return f"{name}-{time.monotonic_ns() % 10**9}"


@pytest.mark.ray
@pytest.mark.slow
def test_a_drift_event_runs_as_one_ray_job_to_a_recorded_decision(head_bench, home):
    from workbench.automation._jobs import RayJobs

    gcs, url = head_bench
    bench = _bench_on(gcs, home)
    try:
        name = _unique("rj")
        bench.automation.add_policy(policy(name=name, run_as="ray_job", gate=PASS))
        drift_ids = _drift(bench.store, "bc-drift", [True, True])
        t0 = time.monotonic()
        out = bench.automation.tick(check=False)
        submit_s = time.monotonic() - t0
        (job,) = bench.automation.jobs(name)
        sid = job["event_key"]
        assert out["ran"] == [
            {"job_id": job["id"], "status": "RUNNING", "ray_job_id": sid, "submitted": True}
        ]
        assert job["ray_job_id"] == sid == f"{name}:drift:{drift_ids[1]}"
        assert job["runner"] == f"ray_job:{sid}"
        job = _wait_terminal(bench, job["id"])
        run_s = time.monotonic() - t0
        assert job["status"] == "PROMOTED", job["detail"].get("error")
        jobs = RayJobs(url)
        assert _ray_status(jobs, sid) == "SUCCEEDED"
        steps = [(s["step"], s["status"]) for s in bench.automation.steps(job["id"])]
        assert steps == [
            ("ray_job", "submitted"),
            ("snapshot", "ok"),
            ("validation", "passed"),
            ("search", "ok"),
            ("evaluation", "ok"),
            ("gate", "passed"),
            ("registration", "ok"),
            ("promotion", "ok"),
        ]
        assert bench.registry.get("bc", "champion").version == 2 and job["compute_s"] > 0
        # the Ray job id is on the job and in the lineage text
        text = bench.lineage_text("bc", "champion")
        assert f"step ray_job of retrain job #{job['id']}: submitted (Ray job {sid}" in text
        assert bench.lineage_record("retrain_job", job["id"])["record"]["ray_job_id"] == sid
        # the job's logs come from Ray: the entrypoint printed its outcome
        logs = bench.automation.logs(job["id"])
        assert f'"job_id": {job["id"]}' in logs and '"status": "PROMOTED"' in logs
        # the job ran the package shipped in its runtime_env, not the checkout's copy
        (where,) = [ln for ln in logs.splitlines() if ln.startswith("workbench ")]
        assert "runtime_resources" in where and "/work/main" not in where, where

        # the same event key twice -> one Ray job: the store makes no second job, and a second
        # submission of the key is recognised and starts nothing
        assert bench.automation.tick(check=False)["ran"] == []
        again = jobs.submit(sid, home=home, job_id=job["id"], num_cpus=0, package=True)
        assert again is False
        assert jobs.list_ids().count(sid) == 1
        assert bench.automation.job(job["id"])["status"] == "PROMOTED"
        print(f"\nray job: submit (tick, package upload) {submit_s:.1f}s; to PROMOTED {run_s:.1f}s")
    finally:
        bench.close()


@pytest.mark.ray
@pytest.mark.slow
def test_a_ray_job_on_a_bad_training_dataset_ends_failed_with_nothing_half_recorded(
    head_bench, home
):
    from workbench.automation._jobs import RayJobs

    gcs, url = head_bench
    bench = _bench_on(gcs, home)
    try:
        name = _unique("bad")
        bench.automation.add_policy(policy(name=name, run_as="ray_job", gate=PASS))
        train = bench.datasets.get("bc-train")
        path = bench.stages.artifacts.path_for(train.artifact_hash)
        path.chmod(0o644)
        path.write_bytes(b"not the parquet file that was recorded")
        versions = len(bench.store.datasets.list_versions())
        _drift(bench.store, "bc-drift", [True, True])
        bench.automation.tick(check=False)
        (job,) = bench.automation.jobs(name)
        job = _wait_terminal(bench, job["id"])
        assert job["status"] == "FAILED"
        assert (
            "bc-train" in job["detail"]["error"]
            or "SHA-256" in job["detail"]["error"]
            or ("hash" in job["detail"]["error"])
        ), job["detail"]["error"]
        assert _ray_status(RayJobs(url), job["ray_job_id"]) == "FAILED"  # the entrypoint exited 1
        assert [(s["step"], s["status"]) for s in bench.automation.steps(job["id"])] == [
            ("ray_job", "submitted"),
            ("error", "failed"),
        ]
        assert job["new_dataset_version_id"] is None and job["experiment_id"] is None
        assert len(bench.store.datasets.list_versions()) == versions
        assert bench.registry.get("bc", "champion").version == 1
        assert len(bench.registry.list("bc")) == 1
    finally:
        bench.close()


@pytest.mark.ray
def test_ray_status_is_reconciled_crashed_stopped_and_unknown_jobs(head_bench, home):
    """A Ray job that dies before recording anything ends our job FAILED with Ray's message; one
    stopped in Ray ends INTERRUPTED/ray_job_stopped; a submission Ray never heard of is marked
    INTERRUPTED/ray_job_lost and never submitted again."""
    from workbench.automation._jobs import RayJobs
    from workbench.status import JobStatus

    gcs, url = head_bench
    bench = _bench_on(gcs, home)
    try:
        name = _unique("rec")
        bench.automation.add_policy(
            policy(name=name, run_as="ray_job", triggers=[DriftTrigger("bc-drift", windows=1)])
        )
        _drift(bench.store, "bc-drift", [True, True, True])
        bench.automation.tick(run=False, check=False)
        crashed, lost, stopped = bench.automation.jobs(name)
        store = bench.store.retraining
        for j in (crashed, lost, stopped):
            assert store.set_job_status(
                j["id"], from_status=("SCHEDULED",), to_status=JobStatus.RUNNING
            )
        # the crash: a Ray job under the first key whose entrypoint dies at once
        jobs = RayJobs(url)
        _submit_raw(
            jobs,
            entrypoint="python -c \"import sys; print('boom'); sys.exit(3)\"",
            submission_id=crashed["event_key"],
        )
        # the stop: a Ray job under the third key that would run for minutes, stopped in Ray
        _submit_raw(
            jobs,
            entrypoint='python -c "import time; time.sleep(300)"',
            submission_id=stopped["event_key"],
        )
        for j in (crashed, lost, stopped):  # lost: never submitted
            store.set_job(j["id"], ray_job_id=j["event_key"])
        assert _ray_status(jobs, crashed["event_key"], timeout_s=120) == "FAILED"
        deadline = time.monotonic() + 60
        while jobs.state(stopped["event_key"]).status == "PENDING" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert bench.automation.tick(check=False)["reconciled"] == [
            {"job_id": crashed["id"], "status": "FAILED", "decision": "ray_job_failed"},
            {"job_id": lost["id"], "status": "INTERRUPTED", "decision": "ray_job_lost"},
        ]  # the running one is left alone
        assert bench.automation.job(stopped["id"])["status"] == "RUNNING"
        jobs.client.stop_job(stopped["event_key"])
        assert _ray_status(jobs, stopped["event_key"]) == "STOPPED"
        out = bench.automation.tick(check=False)
        assert out["reconciled"] == [
            {"job_id": stopped["id"], "status": "INTERRUPTED", "decision": "ray_job_stopped"}
        ]
        c, g = bench.automation.job(crashed["id"]), bench.automation.job(lost["id"])
        assert (c["status"], c["decision"]) == ("FAILED", "ray_job_failed")
        assert "exit code 3" in c["detail"]["error"] or "3" in c["detail"]["error"]
        assert "boom" in c["detail"]["error"]  # the log tail
        assert (g["status"], g["decision"]) == ("INTERRUPTED", "ray_job_lost")
        assert "no longer knows" in g["detail"]["error"] and g["ended_at"]
        assert [(s["step"], s["status"]) for s in bench.automation.steps(g["id"])] == [
            ("ray_job", "lost")
        ]
        # nothing reruns: another tick changes nothing, and Ray still has no job under that key
        again = bench.automation.tick(check=False)
        assert again["ran"] == [] and again["reconciled"] == []
        assert lost["event_key"] not in jobs.list_ids()
        with pytest.raises(WorkbenchError, match="no longer knows"):
            bench.automation.logs(g["id"])
        print(f"\nreconciled: {c['detail']['error'][:200]!r}")
    finally:
        bench.close()


@pytest.mark.ray
@pytest.mark.slow
def test_a_job_whose_head_restarted_is_marked_lost_not_rerun(
    head_bench, tmp_path, home, monkeypatch
):
    """A real restart: a Ray job in flight on a head that is then ended; while no job server
    answers, the job stays RUNNING (unknown is not lost); on the new head, which has no record of
    it, the job is marked INTERRUPTED/ray_job_lost and nothing is submitted again. The new head is
    the module's (a head that never ran the job, at another address, as a restarted head is to
    its clients); starting a third one cost 10-20 s here."""
    from workbench.automation._jobs import RayJobs
    from workbench.status import JobStatus

    _gcs_b, url_b = head_bench
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # Ray's job client takes this over the address it is given: unset while head A warms up
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS")
    temp_a = tempfile.mkdtemp(prefix="wbjobs-a-", dir="/tmp")
    (tmp_path / "a").mkdir()
    t0 = time.monotonic()
    head_a, gcs, url_a = _start_head(tmp_path / "a", temp_a)
    head_up_s = time.monotonic() - t0
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", url_a)
    bench = _bench_on(gcs, home)
    try:
        name = _unique("restart")
        bench.automation.add_policy(
            policy(name=name, run_as="ray_job", triggers=[DriftTrigger("bc-drift", windows=1)])
        )
        _drift(bench.store, "bc-drift", [True])
        bench.automation.tick(run=False, check=False)
        (job,) = bench.automation.jobs(name)
        sid = job["event_key"]
        assert bench.store.retraining.set_job_status(
            job["id"], from_status=("SCHEDULED",), to_status=JobStatus.RUNNING
        )
        _submit_raw(
            RayJobs(url_a), entrypoint='python -c "import time; time.sleep(300)"', submission_id=sid
        )
        bench.store.retraining.set_job(job["id"], ray_job_id=sid)
        assert bench.automation.tick(check=False)["reconciled"] == []  # in flight
        t = time.monotonic()
        end_ray_start(head_a)
        head_a = None
        end_s = time.monotonic() - t
        down = bench.automation.tick(check=False)
        assert "error" in down["reconciled"], down["reconciled"]
        assert bench.automation.job(job["id"])["status"] == "RUNNING"
        monkeypatch.setenv("RAY_API_SERVER_ADDRESS", url_b)
        out = bench.automation.tick(check=False)
        assert out["reconciled"] == [
            {"job_id": job["id"], "status": "INTERRUPTED", "decision": "ray_job_lost"}
        ]
        assert out["ran"] == [] and sid not in RayJobs(url_b).list_ids()
        assert bench.automation.tick(check=False)["reconciled"] == []
        print(
            f"\nhead A up in {head_up_s:.1f}s, ended in {end_s:.1f}s; head down: "
            f"{down['reconciled']['error'][:160]!r}"
        )
    finally:
        bench.close()
        if head_a is not None:
            end_ray_start(head_a)
        shutil.rmtree(temp_a, ignore_errors=True)


SCHEDULER = """
import json, sys, time

from workbench.api import Workbench

home, address, ns, name, wait_s = sys.argv[1:6]
bench = Workbench(home, address=address)
handle = bench.automation.start_scheduler(interval_s=1.0, namespace=ns)
t0 = time.monotonic()
job = None
terminal = {"PROMOTED", "ROLLED_BACK", "REJECTED", "FAILED", "SKIPPED", "INTERRUPTED"}
while time.monotonic() - t0 < float(wait_s):
    jobs = bench.automation.jobs(name)
    if jobs and jobs[0]["status"] in terminal:
        job = jobs[0]
        break
    time.sleep(1)
status = bench.automation.scheduler_status(namespace=ns)
stopped = bench.automation.stop_scheduler(namespace=ns)
print(json.dumps({"job": job, "status": status, "stopped": stopped, "s": time.monotonic() - t0},
                 default=str))
bench.close()
"""


@pytest.mark.ray
@pytest.mark.slow
def test_the_scheduler_actor_runs_a_retraining_ray_job_end_toend_ray_start(head_bench, home):
    """The detached scheduler, started by a driver joined to the cluster, turns a drift event into
    a job, submits it as a Ray Job by default (run_as=None on a cluster with a job server), and the
    job runs to its decision, recorded in the store."""
    gcs, url = head_bench
    bench = _bench_on(gcs, home)
    name = _unique("sched")
    try:
        bench.automation.add_policy(policy(name=name, gate=PASS))  # run_as left to the cluster
        _drift(bench.store, "bc-drift", [True, True])
    finally:
        bench.close()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_API_SERVER_ADDRESS", None)  # the actor finds the job server from the GCS
    ns = f"wb-jobs-{time.monotonic_ns()}"
    out = subprocess.run(
        [sys.executable, "-c", SCHEDULER, str(home), gcs, ns, name, str(WAIT_S)],
        capture_output=True,
        text=True,
        timeout=WAIT_S + 120,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    job = res["job"]
    assert job is not None, res
    assert job["status"] == "PROMOTED", job
    assert job["ray_job_id"] == job["event_key"] and job["runner"] == f"ray_job:{job['event_key']}"
    assert res["stopped"] and res["status"]["actor"]["last_error"] is None
    bench = _bench_on_existing(home, gcs)
    try:
        steps = [s["step"] for s in bench.automation.steps(job["id"])]
        assert steps[0] == "ray_job" and steps[-1] == "promotion"
        assert bench.registry.get("bc", "champion").version == 2
    finally:
        bench.close()
    print(f"\nscheduler: event -> PROMOTED through a Ray Job in {res['s']:.1f}s")


def _bench_on_existing(home, address):
    from workbench.api import Workbench

    return Workbench(home, address=address)


@pytest.mark.ray
def test_the_scheduler_on_the_embedded_local_ray_runs_jobs_inline(ray_cluster, home, monkeypatch):
    """The scheduler actor joins its cluster by address, so run_as=None asks for a job server:
    the session's local Ray (dashboard off) records 127.0.0.1:8265 in its GCS where nothing
    listens, and jobs there stay inline; a policy that insists on ray_job is not overridden."""
    from workbench.automation._jobs import dashboard_url, resolve_run_as
    from workbench.stages import Stages

    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    stages = Stages.open(home, address=ray_cluster.address)  # what the actor opens
    try:
        assert dashboard_url(stages) is not None  # the GCS's record, with no server behind it
        assert resolve_run_as(policy(), stages) == "inline"
        assert resolve_run_as(policy(run_as="ray_job"), stages) == "ray_job"
    finally:
        stages.close()


def test_the_job_gets_the_submitters_storage_over_the_environment(monkeypatch):
    """Workbench(storage=...) reaches the job's process even where WORKBENCH_STORAGE is unset or
    names another root (the entrypoint's Workbench resolves its storage from that variable)."""
    from workbench.automation._jobs import runtime_env

    monkeypatch.delenv("WORKBENCH_STORAGE", raising=False)
    monkeypatch.setenv("WORKBENCH_HOME", "/srv/wb")
    assert runtime_env(package=False) == {"env_vars": {"WORKBENCH_HOME": "/srv/wb"}}
    env = runtime_env(package=False, storage="s3://bucket/wb")
    assert env["env_vars"] == {"WORKBENCH_HOME": "/srv/wb", "WORKBENCH_STORAGE": "s3://bucket/wb"}
    monkeypatch.setenv("WORKBENCH_STORAGE", "file:///elsewhere")
    assert runtime_env(package=False, storage="s3://bucket/wb")["env_vars"][
        "WORKBENCH_STORAGE"
    ] == ("s3://bucket/wb")
