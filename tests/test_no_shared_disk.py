"""The whole lifecycle on a real two-node cluster whose worker cannot see the driver's files.

One cluster for the module (``tests._nodes.no_shared_disk_cluster``): a head started with
``ray start --head --num-cpus=0`` and its job server, and a worker (2 CPUs) started in its own
mount namespace with a tmpfs over the folder holding the driver's ``WORKBENCH_HOME``; token
authentication on. Every node's environment holds ``WORKBENCH_STORAGE=s3://…`` and the
credentials and endpoint of the loopback S3 server (moto's ``ThreadedMotoServer``), set before
``ray start``, as on a real cluster. The head has no CPU, so every trial, replica and job trial
can only run on the worker; the lineage store stays on the head (the driver's machine view).

The pytest process may hold the session's own Ray, so each driver runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare"),
]

BUCKET = "wb-no-shared-disk"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_server):
    """The module's cluster (see the module docstring); its storage is a fresh prefix in a bucket
    of the session's loopback S3 server."""
    import pyarrow.fs as pafs

    from tests._nodes import no_shared_disk_cluster, node_env

    prefix = f"nsd-{time.time_ns()}"
    storage = f"s3://{BUCKET}/{prefix}"
    s3 = {
        "AWS_ACCESS_KEY_ID": "testing-key",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never wait on a metadata service here
        "AWS_ENDPOINT_URL": s3_server.url,
    }
    fs, _ = pafs.FileSystem.from_uri(
        f"s3://testing-key:testing-secret@{BUCKET}?endpoint_override={s3_server.endpoint}&scheme=http"
        "&allow_bucket_creation=true"
    )
    fs.create_dir(BUCKET)
    logs = tmp_path_factory.mktemp("nodes")
    env = node_env({**s3, "WORKBENCH_STORAGE": storage})
    with no_shared_disk_cluster(logs, env=env, worker_cpus=2) as c:
        print(f"\ncluster start (head + hidden worker, 2 alive nodes): {c.start_s:.1f}s")
        yield c


def _run(script: str, args: list[str], env: dict[str, str], cwd: Path, timeout_s: float) -> str:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out.stdout


PROBE = """
import sys
from workbench import Workbench
from workbench.exceptions import ConfigError

home, address, shared = sys.argv[1], sys.argv[2], sys.argv[3]
import time
t0 = time.perf_counter()
bench = Workbench(home, address=address)
try:
    bench.connect()
    print("CONNECTED")
except ConfigError as exc:
    print("REFUSED", exc)
print("CHECK_S", round(time.perf_counter() - t0, 2))
bench.close()
with Workbench(home + "-2", address=address, storage="file://" + shared) as bench:
    bench.connect()
    print("SHARED_OK", bench.settings.artifacts_root)
"""


def test_a_node_that_cannot_see_the_home_refuses_local_storage(cluster, tmp_path):
    """The embedded default (no storage set in the driver's environment) is refused naming the
    worker, which cannot see WORKBENCH_HOME; ``file://`` of a folder both nodes see is accepted."""
    env = {k: v for k, v in cluster.env.items() if k != "WORKBENCH_STORAGE"}
    shared = Path(tempfile.mkdtemp(prefix="wbshared-", dir="/tmp"))
    try:
        args = [str(cluster.hidden / "refusal-home"), cluster.address, str(shared)]
        out = _run(PROBE, args, env, tmp_path, timeout_s=300)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert "REFUSED this Ray cluster has 2 alive nodes" in out, out
    assert "not seen from node" in out and "WORKBENCH_STORAGE=s3://" in out
    assert f"SHARED_OK file://{shared}/artifacts" in out
    print("\n" + out)


LIFECYCLE = r"""
import json, sys, time
from pathlib import Path

out_path, home, address, serve_port = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
dashboard = sys.argv[5]  # the state API's address (several clusters run on this machine)
out = {"t": {}}
T0 = time.monotonic()


def save():
    out_path.write_text(json.dumps(out, default=str))


def since(t0):
    return round(time.monotonic() - t0, 2)


import httpx
import pyarrow.fs as pafs
import ray
from ray import tune
from ray.util.state import list_actors

from workbench import Workbench
from workbench.automation import DriftTrigger, Gate, LoopPolicy
from workbench.datasets import write_breast_cancer_csv
from workbench.experiments import torch_mlp_trainable
from workbench.status import TERMINAL

bench = Workbench(home, address=address, serve_port=serve_port)
try:
    bench.connect()
    out["driver_node"] = ray.get_runtime_context().get_node_id()
    out["nodes"] = {n["NodeID"]: n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]}
    out["storage"] = bench.status()["storage"]

    # ingest and split: the dataset is an object on S3
    csv = write_breast_cancer_csv(home / "bc.csv")
    dv = bench.datasets.ingest(csv, name="bc", target="diagnosis")
    parts = bench.datasets.split(dv, {"train": 0.7, "holdout": 0.3}, seed=0)
    train, holdout = parts["train"], parts["holdout"]

    # a PBT search of the torch trainable: 2 trials, each checkpointing every epoch, to S3
    t0 = time.monotonic()
    space = {"family": "torch_mlp", "hidden": "32", "lr": tune.loguniform(3e-3, 3e-2),
             "weight_decay": 1e-4, "batch_size": 64, "epochs": 2}
    result = bench.experiments.search(
        train, name="nsd-pbt", trainable=torch_mlp_trainable, space=space, max_steps=2,
        num_samples=2, scheduler="pbt", resources={"cpu": 1}, progress=None,
    )
    out["t"]["search"] = since(t0)
    out["trials"] = [{"status": t["status"], "trial_id": t["trial_id"],
                      "checkpoint_path": t["checkpoint_path"]}
                     for t in bench.experiments.trials(result.experiment_id)]
    out["tune_path"] = bench.experiments.get(result.experiment_id)["tune_path"]
    out["trial_actor_nodes"] = [a.node_id for a in list_actors(address=dashboard,
        filters=[("class_name", "=", "ImplicitFunc")], detail=True, limit=1000)]
    fs, base = pafs.FileSystem.from_uri(bench.settings.tune_root)
    keys = [i.path for i in fs.get_file_info(pafs.FileSelector(base, recursive=True))]
    out["checkpoint_objects"] = sorted(k for k in keys if "/checkpoint_" in k and k.endswith("meta.json"))

    # register, deploy one router replica (it can only run on the worker), predict over HTTP
    # the champion is the torch search's best, refit as the torch_mlp family; the retraining
    # job below registers its own search's best (v2)
    mv = bench.register_best(result, model="bc", train=train, holdout=holdout, alias="champion")
    out["registered_family"] = mv.params["family"]
    out["registered"] = mv.version
    t0 = time.monotonic()
    info = bench.serving.deploy("bc", "champion", name="bc", num_replicas=1)
    out["t"]["deploy"] = since(t0)
    out["replica_nodes"] = [a.node_id for a in list_actors(address=dashboard,
        filters=[("state", "=", "ALIVE")], detail=True, limit=1000)
        if a.class_name.startswith("ServeReplica:bc")]
    out["recorder_nodes"] = [a.node_id for a in list_actors(address=dashboard,
        filters=[("state", "=", "ALIVE"), ("class_name", "=", "Recorder")], detail=True)]
    rows = bench.datasets.load(holdout).drop("diagnosis").to_dicts()
    url = info["url"].rstrip("/") + "/predict"
    t0 = time.monotonic()
    first = httpx.post(url, json={"records": rows[:5]}, timeout=60)
    out["t"]["first_answer"] = since(t0)
    local = bench.registry.load("bc", mv.version).predict_records(rows[:5])
    out["first"] = {"status": first.status_code, "body": first.json(), "local": local}

    # shifted requests (every feature x5 + 100), logged through the recorder on the head
    shifted = [{k: v * 5 + 100 for k, v in r.items()} for r in rows[5:35]]
    codes = [httpx.post(url, json={"records": shifted[i:i + 10]}, timeout=60).status_code
             for i in range(0, 30, 10)]
    out["shifted_codes"] = codes
    out["flush"] = bench.serving.flush_logs("bc")
    out["requests"] = [{"status_code": r["status_code"], "model_version": r["model_version"],
                        "n": len(r["features"])} for r in bench.serving.requests("bc")]

    # a drift check over the logged window (scipy's tests: no 9 s alibi import)
    monitor = bench.monitoring.drift_monitor("bc", name="bc-drift", window=30, backend="scipy")
    out["drift"] = [{"is_drift": r["is_drift"], "n": r["n"], "id": r["id"]} for r in monitor.check()]

    # the drift event becomes one retraining job, run as a Ray Job (entrypoint on the head,
    # its trial on the worker), reconciled into the store
    bench.automation.add_policy(LoopPolicy(
        name="bc", model="bc", deployment="bc", train="bc-train", holdout="bc-holdout",
        triggers=[DriftTrigger("bc-drift", windows=1)], cooldown_s=0, canary=False,
        num_samples=1, run_as="ray_job",
        gate=Gate("f1", margin=-1.0, guarded=("recall",), tolerance=1.0),
        # no labels here: what is tested is where the job runs and what it reads, not triage
        # or a post-change snapshot (tests/test_triage.py, tests/test_own_holdout.py)
        triage=False, since_change=False,
    ))
    t0 = time.monotonic()
    tick = bench.automation.tick(check=False)
    out["tick_ran"] = tick["ran"]
    (job,) = bench.automation.jobs("bc")
    while job["status"] not in TERMINAL and time.monotonic() - t0 < 300:
        time.sleep(1)
        bench.automation.tick(run=False, check=False)  # reconciles Ray's status into the store
        job = bench.automation.job(job["id"])
    out["t"]["job"] = since(t0)
    out["job"] = {k: job[k] for k in ("id", "status", "decision", "ray_job_id", "event_key",
                                       "drift_result_id", "experiment_id")}
    out["job_error"] = job["detail"].get("error")
    out["job_steps"] = [(s["step"], s["status"]) for s in bench.automation.steps(job["id"])]
    from workbench.automation._jobs import RayJobs
    jobs = RayJobs.of(bench.stages)
    deadline = time.monotonic() + 60  # the entrypoint records its decision, then exits
    while (status := jobs.state(job["ray_job_id"]).status) not in ("SUCCEEDED", "FAILED", "STOPPED", None) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    out["ray_status"] = status
    out["job_logs_tail"] = bench.automation.logs(job["id"])[-1500:]
    out["job_trials"] = [t["status"] for t in bench.experiments.trials(job["experiment_id"])] \
        if job["experiment_id"] else []
    out["champion"] = bench.registry.get("bc", "champion").version
    # the job switched the live deployment: the replica on the worker loaded v2 from S3
    after = httpx.post(url, json={"records": rows[:5]}, timeout=60)
    bench.serving.flush_logs("bc")
    out["after_job"] = {
        "status": after.status_code,
        "body": after.json(),
        "local": bench.registry.load("bc", out["champion"]).predict_records(rows[:5]),
        "logged_version": bench.serving.requests("bc")[-1]["model_version"],
    }
    out["t"]["total"] = since(T0)
finally:
    save()
    try:
        bench.serving.undeploy("bc")
    except Exception as exc:
        out["undeploy_error"] = repr(exc)
    bench.close()
    save()
"""


def test_the_whole_lifecycle_on_a_cluster_with_no_shared_disk(cluster, tmp_path):
    """Ingest, a PBT search of the torch trainable whose trials checkpoint to S3 and run on the
    worker, register, deploy a replica on the worker, predict over HTTP (Serve's proxy on the
    head), request logs in the store, a drift check, and a retraining job run as a Ray Job."""
    from workbench.runtime import free_port

    home = cluster.hidden / "home"  # the worker sees an empty tmpfs here
    out_path = tmp_path / "out.json"
    args = [str(out_path), str(home), cluster.address, str(free_port()), cluster.dashboard_url]
    try:
        _run(LIFECYCLE, args, cluster.env, tmp_path, timeout_s=900)
    finally:
        out = json.loads(out_path.read_text()) if out_path.exists() else {}
        print("\n" + json.dumps(out.get("t"), indent=None))
    nodes = out["nodes"]
    (worker,) = [n for n in nodes if n != out["driver_node"]]
    assert nodes[out["driver_node"]] == 0 and nodes[worker] == 2  # the head has no CPU
    assert out["storage"].startswith(f"s3://{BUCKET}/")
    assert not (home / "artifacts").exists() and not (home / "tune").exists()

    # the search: both trials ended, on the worker, with checkpoints on S3
    assert [t["status"] for t in out["trials"]] == ["TERMINATED", "TERMINATED"], out["trials"]
    assert out["trial_actor_nodes"] and set(out["trial_actor_nodes"]) == {worker}
    assert out["tune_path"].startswith(f"s3://{BUCKET}/")
    trial_dirs = {k.split("/checkpoint_")[0].rsplit("/", 1)[-1] for k in out["checkpoint_objects"]}
    assert len(out["checkpoint_objects"]) >= 2 and len(trial_dirs) == 2, out["checkpoint_objects"]

    # serving: the replica on the worker, the recorder beside the store on the head, and the
    # worker's artifact cache in its own tmpfs (nothing of it on the driver's disk)
    assert out["replica_nodes"] == [worker]
    assert out["recorder_nodes"] == [out["driver_node"]]
    assert not (cluster.hidden / "worker-cache").exists()
    assert out["registered_family"] == "torch_mlp"  # register_best refit the torch best
    first = out["first"]
    assert first["status"] == 200 and first["body"]["predictions"] == first["local"]
    assert out["shifted_codes"] == [200, 200, 200]
    requests = out["requests"]
    assert [r["n"] for r in requests] == [5, 10, 10, 10], requests
    assert {(r["status_code"], r["model_version"]) for r in requests} == {(200, 1)}

    # the drift check found the shift; its event became one Ray Job that ran to a decision
    (drift,) = out["drift"]
    assert drift["is_drift"] and drift["n"] == 35  # 5 + 30 records: requests are never split
    job = out["job"]
    assert job["drift_result_id"] == drift["id"]
    assert job["status"] == "PROMOTED", (out["job_error"], out["job_steps"], out["job_logs_tail"])
    assert job["ray_job_id"] == job["event_key"] == f"bc:drift:{drift['id']}"
    assert out["tick_ran"][0]["ray_job_id"] == job["ray_job_id"]
    assert out["ray_status"] == "SUCCEEDED"
    assert (
        out["job_steps"][0] == ["ray_job", "submitted"] and ["promotion", "ok"] in out["job_steps"]
    )
    assert out["job_trials"] == ["TERMINATED"] and out["champion"] == 2
    after = out["after_job"]
    assert after["status"] == 200 and after["body"]["predictions"] == after["local"]
    assert after["logged_version"] == 2
    assert "undeploy_error" not in out
    t = out["t"]
    print(
        f"no shared disk: cluster start {cluster.start_s:.1f}s, search {t['search']}s, "
        f"deploy {t['deploy']}s, first answer {t['first_answer']}s, Ray Job {t['job']}s, "
        f"driver total {t['total']}s"
    )
