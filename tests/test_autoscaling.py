"""A search on a cluster whose autoscaler must add a node first: asked for, waited on, run.

The cluster is Ray's own fake autoscaling cluster, assembled the way
``ray.cluster_utils.AutoscalingCluster`` does it (a real head started with
``ray start --head --autoscaling-config=...`` and ``RAY_FAKE_CLUSTER=1``, a real
autoscaler monitor, and ``FakeMultiNodeProvider``, which starts a real raylet
for each node it "launches"), but not through that class: its ``start()`` and
``shutdown()`` run ``ray stop --force``, which kills every Ray process on the
machine, and the config template it loads (``fake_multi_node/example.yaml``)
is missing from the 2.60 wheel. The provider is named as an ``external``
module, whose defaults Ray keeps in code.

Shaped like ``cluster/workbench-cluster.yaml``: a head with ``CPU: 0`` and a
worker type that starts at 0 and can add one node of 2 CPUs. The head is
``ray start --block`` (ended with SIGTERM, which stops its processes in
order); the driver runs in a subprocess script (the pytest process may hold
the session's own Ray); whatever is left under the cluster's private temp dir
afterwards (the fake worker's raylet outlives the monitor) is ended by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from workbench.runtime import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

WORKER_TYPE = "cpu_worker"

SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    import time
    from pathlib import Path

    home, address, out_path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    out = {}
    try:
        import ray
        from ray import tune

        from workbench import Workbench
        from workbench.datasets import write_breast_cancer_csv
        from workbench.exceptions import ConfigError

        wb = Workbench(home, address=address)
        wb.connect()
        out["nodes_before"] = [
            {"node_id": n["NodeID"], "cpu": n["Resources"].get("CPU", 0)} for n in ray.nodes() if n["Alive"]
        ]
        dv = wb.datasets.ingest(write_breast_cancer_csv(Path(home) / "bc.csv"), name="bc", target="diagnosis")

        # Bigger than every node type: refused at once, nothing recorded.
        t = time.monotonic()
        try:
            wb.experiments.search(dv, name="too-big", resources={"cpu": 4}, num_samples=1, progress=None)
        except ConfigError as exc:
            out["refused"] = {"error": str(exc), "seconds": time.monotonic() - t}
        except BaseException as exc:
            out["refused"] = {"wrong": repr(exc)}
        else:
            out["refused"] = {"wrong": "no error"}
        out["experiments_after_refusal"] = len(wb.experiments.list())

        # Fits the worker type, which has no node yet: asked for, shown as waiting, then run.
        t = time.monotonic()
        handle = wb.experiments.start_search(
            dv,
            name="scale-up",
            space={"family": "logistic_regression", "C": tune.grid_search([0.5, 1.0])},
            num_samples=1,
            folds=2,
            resources={"cpu": 1},
            progress="terminal",
        )
        out["start_s"] = time.monotonic() - t
        seen, first_running = [], None
        deadline = time.monotonic() + 180
        while not handle.done() and time.monotonic() < deadline:
            st = handle.status()
            if not seen or seen[-1] != st["waiting"]:
                seen.append(st["waiting"])
            if first_running is None and st["trials"].get("RUNNING"):
                first_running = time.monotonic() - t
            time.sleep(0.2)
        out["waiting_seen"] = seen
        out["first_trial_running_s"] = first_running
        out["done_in_time"] = handle.done()
        if not handle.done():
            handle.stop()
        result = handle.wait(timeout_s=60)
        out["search_s"] = time.monotonic() - t
        out["final_waiting"] = handle.status()["waiting"]
        out["trials"] = [
            {"status": r["status"], "resources": r["resources"], "node": r["node"]}
            for r in wb.experiments.trials(result.experiment_id)
        ]
        out["nodes_after"] = [
            {"node_id": n["NodeID"], "cpu": n["Resources"].get("CPU", 0), "ip": n["NodeManagerAddress"]}
            for n in ray.nodes()
            if n["Alive"]
        ]
        wb.close()
    except BaseException as exc:
        import traceback

        out["crash"] = traceback.format_exc()
    finally:
        out_path.write_text(json.dumps(out, default=str))
    """
)


def _cluster_config(port: int) -> dict:
    """The autoscaling config: what ``AutoscalingCluster`` generates, with the defaults spelled out."""
    return {
        "cluster_name": "wb-fake-autoscaling",
        "max_workers": 1,
        "idle_timeout_minutes": 5,
        "upscaling_speed": 1.0,
        "provider": {
            "type": "external",
            "module": "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
            "gcs_address": f"127.0.0.1:{port}",
        },
        "auth": {},
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            WORKER_TYPE: {
                "resources": {"CPU": 2, "object_store_memory": 150 * 1024**2},
                "node_config": {},
                "min_workers": 0,
                "max_workers": 1,
            },
        },
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


def _ours(temp_dir: str) -> list[psutil.Process]:
    """Live processes whose command line names the cluster's private temp dir."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if temp_dir in " ".join(p.info["cmdline"] or ()) and p.pid != os.getpid():
                if p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
        except psutil.Error:
            pass
    return found


def _end(procs: list[psutil.Process], grace_s: float) -> None:
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def test_search_waits_for_the_autoscaler_and_oversized_requests_fail_fast(tmp_path):
    ray_bin = Path(sys.executable).with_name("ray")
    # Unix socket paths must stay under 108 bytes: pytest's tmp_path is too deep.
    temp_dir = tempfile.mkdtemp(prefix="wbas-", dir="/tmp")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env["RAY_AUTH_MODE"] = "token"  # Ray 2.60 turns token authentication on for `ray start`
    # the fake nodes share this machine's disk: say so (a multi-node cluster refuses the embedded
    # local artifacts folder otherwise)
    (tmp_path / "shared").mkdir()
    env["WORKBENCH_STORAGE"] = f"file://{tmp_path / 'shared'}"
    head_env = {**env, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    head = None
    out: dict = {}
    try:
        for _attempt in range(3):  # a free port may be taken before Ray binds it: try another
            port = free_port()
            config = Path(temp_dir) / "autoscaling.json"
            config.write_text(json.dumps(_cluster_config(port)))
            head = subprocess.Popen(
                [
                    str(ray_bin),
                    "start",
                    "--head",
                    f"--port={port}",
                    "--num-cpus=0",
                    f"--object-store-memory={150 * 1024**2}",
                    "--include-dashboard=false",
                    f"--temp-dir={temp_dir}",
                    f"--autoscaling-config={config}",
                    "--block",
                ],
                env=head_env,
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / "head.err").open("w"),
                start_new_session=True,
            )
            deadline = time.monotonic() + 60
            while head.poll() is None and time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.5)
            if head.poll() is None:
                break
        assert head.poll() is None, (tmp_path / "head.err").read_text()[-2000:]

        script = tmp_path / "autoscaling.py"
        script.write_text(SCRIPT)
        out_path = tmp_path / "out.json"
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                str(script),
                str(tmp_path / "home"),
                f"127.0.0.1:{port}",
                str(out_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        elapsed = time.monotonic() - t0
        if out_path.exists():
            out = json.loads(out_path.read_text())
    finally:
        if head is not None:
            head.send_signal(signal.SIGTERM)  # `ray start --block` stops its processes in order
            try:
                head.wait(60)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(head.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # The fake worker node's raylet is the monitor's child and outlives it: ours, ended by pid.
        _end(_ours(temp_dir), grace_s=10)
        left = _ours(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert proc.returncode == 0 and "crash" not in out, (out.get("crash"), proc.stderr[-3000:])
    assert not left, [p.pid for p in left]
    print(
        f"autoscaling: total {elapsed:.1f}s, search started in {out['start_s']:.1f}s, first trial "
        f"running after {out['first_trial_running_s']}s, search {out['search_s']:.1f}s"
    )

    # Before: the head alone, with no CPU for any trial.
    assert [n["cpu"] for n in out["nodes_before"]] == [0], out["nodes_before"]

    # Bigger than every node type: a ConfigError at once naming the largest type and what it has.
    refused = out["refused"]
    assert "error" in refused, refused
    assert f"'{WORKER_TYPE}'" in refused["error"] and "CPU=2" in refused["error"], refused
    assert "cpu=4" in refused["error"], refused
    assert refused["seconds"] < 10, refused
    assert out["experiments_after_refusal"] == 0

    # Fits the worker type: not refused; the handle (and the progress line) said what it waited
    # for until a trial started, then the autoscaler's node ran both trials.
    note = f"waiting for a node of type {WORKER_TYPE}"
    assert out["waiting_seen"][0] == note, out["waiting_seen"]
    assert out["waiting_seen"][-1] is None, out["waiting_seen"]
    assert out["final_waiting"] is None
    assert note in proc.stderr, proc.stderr[-3000:]
    assert out["done_in_time"], out
    assert len(out["trials"]) == 2 and {t["status"] for t in out["trials"]} == {"TERMINATED"}, out
    assert all(t["resources"] == {"CPU": 1.0} for t in out["trials"]), out["trials"]
    workers = [n for n in out["nodes_after"] if n["cpu"] == 2]
    assert len(out["nodes_after"]) == 2 and len(workers) == 1, out["nodes_after"]
