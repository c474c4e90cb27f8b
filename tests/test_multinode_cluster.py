"""A multi-node Ray cluster (``ray.cluster_utils.Cluster``) with a fake-GPU node: GPU trials land there.

The pytest process already holds the session's in-process Ray, and a
``Cluster`` needs a driver of its own, so the cluster, the Workbench and the
searches run in a subprocess script. Its Ray temp dir (``RAY_TMPDIR``) is a
short private folder under /tmp (Unix socket paths must stay under 108 bytes),
which also keeps the cluster's address file away from /tmp/ray and lets the
test find the cluster's daemons (gcs_server, raylets...) by command line. Ray
workers rename themselves ``ray::...``, so the script also records the pids
and start times of all its descendants before it shuts the cluster down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import psutil
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 2

SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import sys
    import time
    from pathlib import Path

    import psutil

    home, out_path, marks, epochs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    out = {}


    def spy(config, data):
        # Where did Ray put this trial, and what did it give it? Written per trial id (every node of a
        # cluster_utils Cluster has the same IP, so node ids tell the nodes apart).
        import ray
        import torch
        from ray import tune

        from workbench.experiments import torch_mlp_trainable

        record = {
            "node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "torch_cuda": torch.cuda.is_available(),
        }
        (marks / f"{tune.get_context().get_trial_id()}.json").write_text(json.dumps(record))
        torch_mlp_trainable(config, data)


    from ray.cluster_utils import Cluster

    cluster = Cluster()
    try:
        t0 = time.monotonic()
        cluster.add_node(num_cpus=1, num_gpus=0, include_dashboard=False)  # head: no GPU
        gpu_node = cluster.add_node(num_cpus=2, num_gpus=1, resources={"fake_gpu_node": 1})
        cluster.wait_for_nodes()
        out["cluster_start_s"] = time.monotonic() - t0

        import ray
        import torch

        from workbench import Workbench
        from workbench.datasets import write_breast_cancer_csv
        from workbench.exceptions import ConfigError
        from workbench.experiments import torch_mlp_space

        from workbench.runtime import free_port

        wb = Workbench(home, address=cluster.address, serve_port=free_port())
        conn = wb.connect()
        out["started_here"] = conn.started_here
        out["driver_cuda"] = torch.cuda.is_available()
        out["gpu_node_id"] = gpu_node.node_id
        out["nodes"] = [
            {"node_id": n["NodeID"], "ip": n["NodeManagerAddress"], "resources": n["Resources"]}
            for n in ray.nodes()
            if n["Alive"]
        ]
        dv = wb.datasets.ingest(write_breast_cancer_csv(Path(home) / "bc.csv"), name="bc", target="diagnosis")

        # Out of range: refused at once with ConfigError, nothing recorded, no trial started.
        refused = {}
        for label, resources in {"gpu": {"gpu": 2}, "cpu_per_node": {"cpu": 3}}.items():
            t = time.monotonic()
            try:
                wb.experiments.search(
                    dv, name=f"too-big-{label}", resources=resources, num_samples=1, progress=None
                )
            except ConfigError as exc:
                refused[label] = {"error": str(exc), "seconds": time.monotonic() - t}
            except BaseException as exc:
                refused[label] = {"wrong": repr(exc), "seconds": time.monotonic() - t}
            else:
                refused[label] = {"wrong": "no error", "seconds": time.monotonic() - t}
        out["refused"] = refused
        out["experiments_after_refusals"] = len(wb.experiments.list())

        t = time.monotonic()
        result = wb.experiments.search(
            dv,
            name="gpu-mlp",
            trainable=spy,
            space={**torch_mlp_space(epochs=epochs), "hidden": "32", "batch_size": 64},
            metric="f1",
            max_steps=epochs,
            num_samples=2,
            resources={"cpu": 1, "gpu": 0.5},
            progress=None,
        )
        out["search_s"] = time.monotonic() - t
        out["experiment_id"] = result.experiment_id
        out["trials"] = wb.experiments.trials(result.experiment_id)
        out["meta"] = {}
        for row in out["trials"]:
            meta = Path(row["checkpoint_path"] or "/nonexistent") / "meta.json"
            out["meta"][row["trial_id"]] = json.loads(meta.read_text()) if meta.exists() else None
        out["marks"] = {p.stem: json.loads(p.read_text()) for p in marks.glob("*.json")}

        # Serving: a version that asks for a GPU share runs on the GPU node, behind a CPU router.
        import urllib.request

        from ray import serve

        bundle = wb.experiments.fit_bundle(dv, {"family": "logistic_regression", "C": 1.0})
        wb.registry.register("bc", bundle, metrics={})
        t = time.monotonic()
        dep = wb.serving.deploy("bc", 1, isolate=True, num_cpus=0.5, num_gpus=0.5, timeout_s=120)
        out["deploy_s"] = time.monotonic() - t
        ident = serve.get_deployment_handle("version-1", app_name="bc").identity.remote().result()
        out["served_by"] = {"node_id": ident["node_id"], "gpu_ids": ident["gpu_ids"]}
        out["serve_status"] = wb.serving.status("bc")["serve"]
        record = wb.datasets.load(dv).drop("diagnosis").head(2).to_dicts()
        req = urllib.request.Request(
            dep["url"] + "/predict",
            data=json.dumps({"records": record}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            out["predict"] = {"status": resp.status, "body": json.loads(resp.read())}
        wb.serving.undeploy("bc")
        serve.shutdown()
        wb.close()
    finally:
        import ray

        ray.shutdown()  # the driver first: Cluster refuses to remove the node it is attached to
        me = psutil.Process()
        out["descendants"] = [(p.pid, p.create_time()) for p in me.children(recursive=True)]
        t = time.monotonic()
        cluster.shutdown()
        out["shutdown_s"] = time.monotonic() - t
        out_path.write_text(json.dumps(out, default=str))
    """
)


def _ray_processes(temp_dir: str, recorded: list) -> list[psutil.Process]:
    """Live processes the script started: its recorded descendants (same pid and start time),
    and anything whose command line names the cluster's private temp dir."""
    alive = {}
    for pid, created in recorded:
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 1e-3 and p.status() != psutil.STATUS_ZOMBIE:
                alive[pid] = p
        except psutil.NoSuchProcess:
            pass
    for p in psutil.process_iter(["cmdline"]):
        try:
            if temp_dir in " ".join(p.info["cmdline"] or ()) and p.pid != os.getpid():
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive[p.pid] = p
        except psutil.Error:
            pass
    return list(alive.values())


def test_gpu_trials_run_on_the_fake_gpu_node_and_oversized_requests_fail_fast(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="wbmn-", dir="/tmp")
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "multinode.py"
    script.write_text(SCRIPT)
    out_path = tmp_path / "out.json"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": temp_dir}
    env.pop("RAY_ADDRESS", None)
    # Keep Ray 2.60's token authentication on for the cluster (and its client), as a real one would run.
    env["RAY_AUTH_MODE"] = "token"
    out: dict = {}
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                str(tmp_path / "home"),
                str(out_path),
                str(marks),
                str(EPOCHS),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        elapsed = time.monotonic() - t0
        if out_path.exists():
            out = json.loads(out_path.read_text())
    finally:
        # Nothing the script started may outlive it; give processes a moment to exit after shutdown,
        # then end the survivors (ours, by pid) and fail.
        deadline = time.monotonic() + 15
        while (left := _ray_processes(temp_dir, out.get("descendants", []))) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        survivors = []
        for p in left:
            try:
                survivors.append(f"{p.pid} {' '.join(p.cmdline()[:2])}")
                p.kill()
            except psutil.Error:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not survivors, f"Ray processes outlived the cluster's shutdown: {survivors}"
    print(
        f"multinode: total {elapsed:.1f}s, cluster start {out['cluster_start_s']:.1f}s, "
        f"search {out['search_s']:.1f}s, shutdown {out['shutdown_s']:.1f}s"
    )

    assert out["started_here"] is False  # joined by address: workbench does not own this cluster
    gpu_node = out["gpu_node_id"]
    by_id = {n["node_id"]: n for n in out["nodes"]}
    assert len(by_id) == 2 and by_id[gpu_node]["resources"].get("GPU") == 1.0
    assert [n for n in by_id if by_id[n]["resources"].get("GPU")] == [gpu_node]

    # Out of range: a clear ConfigError naming the resource, before any trial or record.
    gpu_refusal = out["refused"]["gpu"]
    assert "error" in gpu_refusal, gpu_refusal
    assert "gpu=2" in gpu_refusal["error"] and "1 GPU" in gpu_refusal["error"], gpu_refusal
    assert gpu_refusal["seconds"] < 10, gpu_refusal
    # 3 CPUs exist in total (1 + 2) but no single node has them: a trial cannot span nodes.
    cpu_refusal = out["refused"]["cpu_per_node"]
    assert "error" in cpu_refusal, cpu_refusal
    assert "cpu=3" in cpu_refusal["error"] and "largest Ray node has 2" in cpu_refusal["error"]
    assert cpu_refusal["seconds"] < 10, cpu_refusal
    assert out["experiments_after_refusals"] == 0

    # Every trial ran on the fake-GPU node with a GPU id from Ray; torch picked its own device.
    trials = out["trials"]
    assert len(trials) == 2 and {t["status"] for t in trials} == {"TERMINATED"}, trials
    assert set(out["marks"]) == {t["trial_id"] for t in trials}
    for trial_id, mark in out["marks"].items():
        assert mark["node_id"] == gpu_node, (trial_id, mark, out["nodes"])
        assert mark["gpu_ids"] == ["0"] and mark["cuda_visible_devices"] == "0", mark
        device = "cuda" if mark["torch_cuda"] else "cpu"
        assert out["meta"][trial_id] == {"epoch": EPOCHS, "device": device}, out["meta"]
    if not out["driver_cuda"]:  # this machine: a fake GPU, so torch must not have tried CUDA
        assert {m["torch_cuda"] for m in out["marks"].values()} == {False}
        assert {m["device"] for m in out["meta"].values()} == {"cpu"}

    # What workbench recorded for each trial (columns of migration 0002_trial_placement).
    node_ip = by_id[gpu_node]["ip"]
    for t in trials:
        assert t["resources"] == {"CPU": 1.0, "GPU": 0.5}, t
        assert t["node"] == node_ip, t
        assert t["attempts"] == 1 and t["stopped_early"] == 0, t
        assert t["metrics"]["epoch"] == EPOCHS and 0.5 < t["metrics"]["f1"] <= 1.0, t

    # An isolated version with num_gpus=0.5 was placed on the GPU node with GPU 0, and answered.
    assert out["served_by"] == {"node_id": gpu_node, "gpu_ids": ["0"]}, out["served_by"]
    assert out["predict"]["status"] == 200 and out["predict"]["body"]["model_version"] == 1
    assert len(out["predict"]["body"]["predictions"]) == 2
    print(f"isolated GPU version deployed in {out['deploy_s']:.1f}s")
