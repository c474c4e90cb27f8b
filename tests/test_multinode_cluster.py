"""A multi-node Ray cluster (``ray.cluster_utils.Cluster``) in one subprocess script, in two parts.

GPU placement: a head with 1 CPU and no GPU, and a fake-GPU node (2 CPUs, 1 GPU): GPU trials and
an isolated GPU version land there, and requests no node can take are refused at once.

Actor pinning: the scheduler actor and the request-log recorder run on the store's node, wherever
CPU is free. The GPU node is swapped for a plain node of 4 CPUs (Ray keeps CPU-only work off GPU
nodes); the driver's node (the head) has its 1 CPU kept busy by a task. Both actors are created
through the public API (``bench.automation.start_scheduler``, and the recorder as
``bench.serving.deploy`` makes it); both must land on the driver's node, and a second driver on
that node must find the same actors. As a control, the same actors without the pin are created
too: where Ray puts them on its own says whether the pin decided anything.

One cluster serves both parts (a cluster start, its driver's imports and its shutdown cost ~15 s
here); each part records its own results and crash, and each test reads only its part's.

The pytest process already holds the session's in-process Ray, and a ``Cluster`` needs a driver
of its own, hence the subprocess. Its Ray temp dir (``RAY_TMPDIR``) is a short private folder
under /tmp (Unix socket paths must stay under 108 bytes), which also keeps the cluster's address
file away from /tmp/ray and lets the test find the cluster's daemons (gcs_server, raylets...) by
command line. Ray workers rename themselves ``ray::...``, so the script also records the pids and
start times of all its descendants before it shuts the cluster down.
"""

from __future__ import annotations

import tempfile
import textwrap

import pytest

from tests._processes import run_cluster_script

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 2

SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import sys
    import time
    import traceback
    from pathlib import Path

    import psutil

    gpu_home, pin_home, storage, out_path, marks, epochs = sys.argv[1:7]
    out_path, marks, epochs = Path(out_path), Path(marks), int(epochs)
    out = {"gpu": {}, "pinning": {}}
    gpu_descendants = []


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



    def gpu_part(cluster, gpu_node, home, out):
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


    def pinning_part(cluster, other, home, storage, out):
        import ray
        from ray._private import state

        from workbench import Workbench
        from workbench.serving._recorder import (
            Recorder,
            get_or_create_recorder,
            recorder_name,
            store_node_id,
        )

        def node_of(handle):
            ray.get(handle.__ray_ready__.remote(), timeout=120)
            return state.actors(actor_id=handle._actor_id.hex())["Address"]["NodeID"]

        wb = Workbench(home, address=cluster.address, storage=storage)
        wb.connect()
        driver_node = ray.get_runtime_context().get_node_id()
        out["driver_node"], out["other_node"] = driver_node, other.node_id

        @ray.remote(num_cpus=1)
        def hold(seconds):
            time.sleep(seconds)
            return ray.get_runtime_context().get_node_id()

        # The driver's node is full: its only CPU is taken for the rest of the test.
        busy = hold.options(
            scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                node_id=driver_node, soft=False
            )
        ).remote(120)
        deadline = time.monotonic() + 60
        while ray.available_resources().get("CPU", 0) > 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        out["free_cpu"] = {
            n["NodeID"]: state.available_resources_per_node().get(n["NodeID"], {}).get("CPU", 0)
            for n in ray.nodes()
            if n["Alive"]
        }

        # Control: the same actors as the workbench makes, without the pin.
        from workbench.automation._scheduler import SchedulerActor

        control = []
        for i in range(4):
            cls = ray.remote(num_cpus=0, max_concurrency=4)(SchedulerActor)
            a = cls.options(name=f"control-{i}", namespace="pin-test", lifetime="detached").remote(
                home, 3600.0, address=cluster.address
            )
            r = Recorder.options(name=f"control-rec-{i}", namespace="pin-test").remote(
                str(Path(home) / "control.db")
            )
            control += [node_of(a), node_of(r)]
            ray.kill(a)
            ray.kill(r)
        out["control_nodes"] = control

        db = str(wb.settings.db_path)
        sched = wb.automation.start_scheduler(interval_s=3600)
        rec = get_or_create_recorder(db, detached=True)
        out["scheduler_node"], out["recorder_node"] = node_of(sched), node_of(rec)
        out["ids"] = [sched._actor_id.hex(), rec._actor_id.hex()]
        # Placed afresh a few more times: unpinned, each lands on the other node about half the time.
        again = []
        for _ in range(3):
            wb.automation.stop_scheduler()
            again.append(node_of(wb.automation.start_scheduler(interval_s=3600)))
            ray.kill(rec, no_restart=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    ray.get_actor(recorder_name(db), namespace="workbench")
                except ValueError:
                    break
                time.sleep(0.2)
            rec = get_or_create_recorder(db, detached=True)
            again.append(node_of(rec))
        out["replaced_nodes"] = again
        out["ids"] = [wb.automation._scheduler_handle(None)._actor_id.hex(), rec._actor_id.hex()]

        # Any process of the cluster, on any node, is told the same store node.
        @ray.remote(num_cpus=1)
        def ask(path):
            return ray.get_runtime_context().get_node_id(), store_node_id(path)

        out["asked_from_other_node"] = ray.get(
            ask.options(
                scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                    node_id=other.node_id, soft=False
                )
            ).remote(db),
            timeout=120,
        )
        wb.close()
        ray.shutdown()

        # A later driver on the same node: the same two actors.
        wb2 = Workbench(home, address=cluster.address, storage=storage)
        wb2.connect()
        sched2 = wb2.automation.start_scheduler(interval_s=3600)
        rec2 = get_or_create_recorder(str(wb2.settings.db_path), detached=True)
        out["second_driver_node"] = ray.get_runtime_context().get_node_id()
        out["ids_again"] = [sched2._actor_id.hex(), rec2._actor_id.hex()]
        out["nodes_again"] = [node_of(sched2), node_of(rec2)]
        wb2.automation.stop_scheduler()
        ray.kill(rec2)
        wb2.close()


    from ray.cluster_utils import Cluster

    cluster = Cluster()
    try:
        t0 = time.monotonic()
        cluster.add_node(num_cpus=1, num_gpus=0, include_dashboard=False)  # head: no GPU
        gpu_node = cluster.add_node(num_cpus=2, num_gpus=1, resources={"fake_gpu_node": 1})
        cluster.wait_for_nodes()
        out["cluster_start_s"] = time.monotonic() - t0
        try:
            gpu_part(cluster, gpu_node, gpu_home, out["gpu"])
        except BaseException:
            out["gpu"]["crash"] = traceback.format_exc()
        out["gpu_part_s"] = time.monotonic() - t0

        # The pinning part wants a plain second node: Ray keeps CPU-only work off a GPU node
        # (its scheduler_avoid_gpu_nodes), so unpinned actors would not go to the GPU node and
        # the control would say nothing.
        import ray

        ray.shutdown()
        # what the GPU node ran is checked at the end too, with what the rest of the test ran
        gpu_descendants = [(p.pid, p.create_time()) for p in psutil.Process().children(recursive=True)]
        t = time.monotonic()
        cluster.remove_node(gpu_node)
        other = cluster.add_node(num_cpus=4)
        cluster.wait_for_nodes()
        out["node_swap_s"] = time.monotonic() - t
        try:
            pinning_part(cluster, other, pin_home, storage, out["pinning"])
        except BaseException:
            out["pinning"]["crash"] = traceback.format_exc()
        out["pinning_part_s"] = time.monotonic() - t
    except BaseException:
        out["crash"] = traceback.format_exc()
    finally:
        import ray

        ray.shutdown()  # the driver first: Cluster refuses to remove the node it is attached to
        out["descendants"] = [(p.pid, p.create_time()) for p in psutil.Process().children(recursive=True)]
        out["descendants"] += gpu_descendants
        t = time.monotonic()
        cluster.shutdown()
        out["shutdown_s"] = time.monotonic() - t
        out_path.write_text(json.dumps(out, default=str))
    """
)


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """Run the script once for the module: ``(process, out, survivors, seconds)``."""
    tmp_path = tmp_path_factory.mktemp("multinode")
    temp_dir = tempfile.mkdtemp(prefix="wbmn-", dir="/tmp")
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "multinode.py"
    script.write_text(SCRIPT)
    out_path = tmp_path / "out.json"
    # every node of this cluster shares this machine's disk: the pinning part names one shared
    # folder as the storage, as a cluster with a shared mount would (tests/test_storage.py covers
    # the refusals); the GPU part leaves it to the storage check, which finds the disk shared
    (tmp_path / "shared").mkdir()
    storage = f"file://{tmp_path / 'shared'}"
    proc, out, survivors, elapsed = run_cluster_script(
        [
            str(script),
            str(tmp_path / "home"),
            str(tmp_path / "pin-home"),
            storage,
            str(out_path),
            str(marks),
            str(EPOCHS),
        ],
        unset=("WORKBENCH_STORAGE",),
        temp_dir=temp_dir,
        out_path=out_path,
    )
    print(
        f"multinode: total {elapsed:.1f}s, cluster start {out.get('cluster_start_s', 0):.1f}s, "
        f"GPU part done at {out.get('gpu_part_s', 0):.1f}s, node swap {out.get('node_swap_s', 0):.1f}s, "
        f"pinning part {out.get('pinning_part_s', 0):.1f}s, shutdown {out.get('shutdown_s', 0):.1f}s"
    )
    return proc, out, survivors, elapsed


def _part(cluster_run, part: str) -> dict:
    proc, out, survivors, _ = cluster_run
    assert proc.returncode == 0 and "crash" not in out, (out.get("crash"), proc.stderr[-4000:])
    assert not survivors, f"Ray processes outlived the cluster's shutdown: {survivors}"
    assert "crash" not in out[part], (out[part]["crash"], proc.stderr[-3000:])
    return out[part]


def test_gpu_trials_run_on_the_fake_gpu_node_and_oversized_requests_fail_fast(cluster_run):
    out = _part(cluster_run, "gpu")
    print(f"multinode: search {out['search_s']:.1f}s")

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


def test_scheduler_and_recorder_are_pinned_to_the_drivers_node(cluster_run):
    out = _part(cluster_run, "pinning")
    driver, other = out["driver_node"], out["other_node"]
    moved = sum(n == other for n in out["control_nodes"])
    print(f"pinning: unpinned control actors on the other node: {moved} of 8")

    # The other node has more free CPU than the driver's (whose only CPU is busy).
    assert out["free_cpu"][other] == 4 and out["free_cpu"][driver] == 0, out["free_cpu"]
    # Unpinned, the same actors go to either node: the setup can tell a pin from luck.
    assert other in out["control_nodes"], out["control_nodes"]
    # Both actors run on the driver's node, the one holding the store, each time they are placed.
    assert out["scheduler_node"] == driver and out["recorder_node"] == driver, out
    assert out["replaced_nodes"] == [driver] * 6, out["replaced_nodes"]
    # A process on the other node is told the store's node, not its own.
    assert out["asked_from_other_node"] == [other, driver], out["asked_from_other_node"]
    # A later driver on the same node finds the same actors, still there.
    assert out["second_driver_node"] == driver
    assert out["ids_again"] == out["ids"] and out["nodes_again"] == [driver, driver], out
