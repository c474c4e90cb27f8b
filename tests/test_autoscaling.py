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

One cluster and one driver serve both cluster tests (a cluster, its driver and their end cost
20-40 s here): the search phase, then, once the autoscaler has removed the idle worker (idle
after 6 s, as in Ray's own fake-cluster template), the deploy phase, on a cluster with no CPU
again. Each phase records its own results, crash and stderr; each test reads only its phase's.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests._processes import end_ray_start
from workbench.runtime import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

WORKER_TYPE = "cpu_worker"

SCRIPT = textwrap.dedent(
    """
    import json
    import logging
    import sys
    import time
    import urllib.request
    from pathlib import Path

    logging.basicConfig(level=logging.WARNING)
    home, address, out_path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    out = {"search": {}, "deploy": {}, "marks": {}}
    T0 = time.monotonic()


    def mark(name):
        out["marks"][name] = round(time.monotonic() - T0, 1)


    def standing_request():
        # what request_resources told the (v1) autoscaler: the KV key its monitor reads
        from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
        return None if raw is None else json.loads(raw)


    def alive_nodes():
        import ray

        return [
            {"node_id": n["NodeID"], "cpu": n["Resources"].get("CPU", 0)} for n in ray.nodes() if n["Alive"]
        ]


    def search(wb, dv, out):
        from ray import tune

        from workbench.exceptions import ConfigError

        out["nodes_before"] = alive_nodes()
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
        out["request_while_waiting"] = standing_request()
        seen, first_running = [], None
        deadline = time.monotonic() + 180
        while not handle.done() and time.monotonic() < deadline:
            st = handle.status()
            if not seen or seen[-1] != st["waiting"]:
                seen.append(st["waiting"])
            if first_running is None and st["trials"].get("RUNNING"):
                first_running = time.monotonic() - t
                # the node the autoscaler added, while it runs the trials (idle, it goes: below)
                out["nodes_while_running"] = alive_nodes()
            time.sleep(0.2)
        out["waiting_seen"] = seen
        out["first_trial_running_s"] = first_running
        out["done_in_time"] = handle.done()
        if not handle.done():
            handle.stop()
        result = handle.wait(timeout_s=60)
        out["search_s"] = time.monotonic() - t
        out["final_waiting"] = handle.status()["waiting"]
        out["request_after"] = standing_request()
        out["trials"] = [
            {"status": r["status"], "resources": r["resources"], "node": r["node"]}
            for r in wb.experiments.trials(result.experiment_id)
        ]
        # The request withdrawn, the idle worker is removed (idle_timeout_minutes), which also
        # leaves the deploy below a cluster without CPU, as a fresh one.
        t = time.monotonic()
        while len(alive_nodes()) > 1 and time.monotonic() - t < 90:
            time.sleep(0.5)
        out["nodes_after_idle"] = alive_nodes()
        out["idle_removal_s"] = time.monotonic() - t


    def deploy(wb, dv, out):
        import ray

        from workbench.exceptions import ConfigError

        bundle = wb.experiments.fit_bundle(dv, {"family": "logistic_regression", "C": 1.0})
        wb.registry.register("bc", bundle, metrics={})

        # Replicas bigger than every node type: refused before Serve starts or anything is recorded.
        t = time.monotonic()
        try:
            wb.serving.deploy("bc", 1, num_cpus=3, timeout_s=60)
        except ConfigError as exc:
            out["refused"] = {"error": str(exc), "seconds": time.monotonic() - t}
        except BaseException as exc:
            out["refused"] = {"wrong": repr(exc)}
        else:
            out["refused"] = {"wrong": "no error"}
        out["deployments_after_refusal"] = len(wb.store.deployments.list())
        out["nodes_before"] = [n["cpu"] for n in alive_nodes()]

        # One CPU per replica, no node has a CPU yet: asked of the autoscaler, then served.
        t = time.monotonic()
        dep = wb.serving.deploy("bc", 1, num_cpus=1, timeout_s=180)
        out["deploy_s"] = time.monotonic() - t
        out["request_after_deploy"] = standing_request()
        record = wb.datasets.load(dv).drop("diagnosis").head(2).to_dicts()
        req = urllib.request.Request(
            dep["url"] + "/predict",
            data=json.dumps({"records": record}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            out["predict"] = {"status": resp.status, "body": json.loads(resp.read())}
        out["nodes_after"] = [n["cpu"] for n in alive_nodes()]
        wb.serving.undeploy("bc")
        from ray import serve

        serve.shutdown()


    wb = None
    try:
        from workbench import Workbench
        from workbench.datasets import write_breast_cancer_csv
        from workbench.runtime import free_port

        mark("imported")
        wb = Workbench(home, address=address, serve_port=free_port())
        wb.connect()
        mark("connected")
        dv = wb.datasets.ingest(write_breast_cancer_csv(Path(home) / "bc.csv"), name="bc", target="diagnosis")
        # Two phases on one cluster, each on a cluster with no CPU yet; each records its own crash.
        for phase, run in (("search", search), ("deploy", deploy)):
            print(f"=== phase {phase} ===", file=sys.stderr, flush=True)  # splits the stderr
            try:
                run(wb, dv, out[phase])
            except BaseException:
                import traceback

                out[phase]["crash"] = traceback.format_exc()
            mark(phase)
    except BaseException:
        import traceback

        out["crash"] = traceback.format_exc()
    finally:
        if wb is not None:
            wb.close()
        out_path.write_text(json.dumps(out, default=str))
    """
)


def _cluster_config(port: int) -> dict:
    """The autoscaling config: what ``AutoscalingCluster`` generates from Ray's template, spelled out."""
    return {
        "cluster_name": "wb-fake-autoscaling",
        "max_workers": 1,
        # an idle worker goes 6 s after the last request for it is withdrawn (Ray's default: 5 min),
        # so the deploy phase starts on a cluster without CPU, as the search did
        "idle_timeout_minutes": 0.1,
        "upscaling_speed": 1.0,
        "provider": {
            "type": "external",
            "module": "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
            "gcs_address": f"127.0.0.1:{port}",
            # as Ray's fake_multi_node/example.yaml: every fake node has the head's IP, so the
            # autoscaler must tell nodes apart by id (else the head's use keeps a worker "busy"
            # and an idle one is never removed: seen here), and it has no SSH updater to run
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
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


def _run_on_fake_cluster(
    tmp_path: Path, script_text: str
) -> tuple[subprocess.CompletedProcess, dict, float]:
    """Start the fake autoscaling cluster, run ``script_text`` (home, address, out path) as its
    driver, end the cluster and every process left under its temp dir; (process, out, seconds)."""
    ray_bin = Path(sys.executable).with_name("ray")
    # Unix socket paths must stay under 108 bytes: pytest's tmp_path is too deep.
    temp_dir = tempfile.mkdtemp(prefix="wbas-", dir="/tmp")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env["RAY_AUTH_MODE"] = "token"  # Ray 2.60 turns token authentication on for `ray start`
    # every node of this cluster shares this machine's disk: name one shared folder as the storage,
    # as a cluster with a shared mount would (tests/test_storage.py covers the refusals)
    (tmp_path / "shared").mkdir()
    env["WORKBENCH_STORAGE"] = f"file://{tmp_path / 'shared'}"
    head_env = {**env, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    # On SIGTERM, `ray start --block` first drains its node for up to this long (Ray's default:
    # 30 s, and this head's drain never finished: its end took 33.6 s here); 0 ends it at once.
    head_env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    head = None
    out: dict = {}
    t_head = time.monotonic()
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
        head_up_s = time.monotonic() - t_head

        script = tmp_path / "driver.py"
        script.write_text(script_text)
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
            timeout=420,
        )
        elapsed = time.monotonic() - t0
        if out_path.exists():
            out = json.loads(out_path.read_text())
            out["head_up_s"] = head_up_s
    finally:
        t_end = time.monotonic()
        if head is not None:
            end_ray_start(head)
        t_head_end = time.monotonic()
        # The fake worker node's raylet is the monitor's child and outlives it: ours, ended by pid.
        _end(_ours(temp_dir), grace_s=10)
        left = _ours(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    print(
        f"fake cluster: ended in {time.monotonic() - t_end:.1f}s (head {t_head_end - t_end:.1f}s)"
    )
    assert not left, [p.pid for p in left]
    return proc, out, elapsed


@pytest.fixture(scope="module")
def fake_cluster_run(tmp_path_factory):
    """One fake autoscaling cluster, one driver: the search phase, the idle worker's removal, then
    the deploy phase (each starts with no CPU in the cluster); ``(process, out, seconds)``."""
    return _run_on_fake_cluster(tmp_path_factory.mktemp("autoscaling"), SCRIPT)


def _phase(fake_cluster_run, phase: str) -> tuple[dict, str]:
    """One phase's results and the driver's stderr while it ran."""
    proc, out, _ = fake_cluster_run
    assert proc.returncode == 0 and "crash" not in out, (out.get("crash"), proc.stderr[-3000:])
    assert "crash" not in out[phase], (out[phase]["crash"], proc.stderr[-3000:])
    stderr = proc.stderr.split(f"=== phase {phase} ===", 1)[1].split("=== phase ", 1)[0]
    return out[phase], stderr


def test_search_waits_for_the_autoscaler_and_oversized_requests_fail_fast(fake_cluster_run):
    out, stderr = _phase(fake_cluster_run, "search")
    print(
        f"autoscaling: head up in {fake_cluster_run[1].get('head_up_s', 0):.1f}s, driver "
        f"{fake_cluster_run[2]:.1f}s (marks {fake_cluster_run[1]['marks']}), "
        f"search started in {out['start_s']:.1f}s, first trial running after "
        f"{out['first_trial_running_s']}s, search {out['search_s']:.1f}s, idle worker removed in "
        f"{out['idle_removal_s']:.1f}s"
    )

    # Before: the head alone, with no CPU for any trial.
    assert [n["cpu"] for n in out["nodes_before"]] == [0], out["nodes_before"]

    # Bigger than every node type: a ConfigError at once naming the largest type and what it has.
    refused = out["refused"]
    assert "error" in refused, refused
    assert f"'{WORKER_TYPE}'" in refused["error"] and "CPU=2" in refused["error"], refused
    assert "each trial asks for CPU=4" in refused["error"], refused
    assert refused["seconds"] < 10, refused
    assert out["experiments_after_refusal"] == 0

    # Fits the worker type: not refused; the handle (and the progress line) said what it waited
    # for until a trial started, then the autoscaler's node ran both trials.
    note = f"waiting for a node of type {WORKER_TYPE}"
    assert out["waiting_seen"][0] == note, out["waiting_seen"]
    assert out["waiting_seen"][-1] is None, out["waiting_seen"]
    assert out["final_waiting"] is None
    assert note in stderr, stderr[-3000:]
    # one bundle per trial that can run at once, asked of the autoscaler; withdrawn at the end
    assert out["request_while_waiting"] == [{"CPU": 1.0}, {"CPU": 1.0}], out
    assert out["request_after"] == [], out
    assert out["done_in_time"], out
    assert len(out["trials"]) == 2 and {t["status"] for t in out["trials"]} == {"TERMINATED"}, out
    assert all(t["resources"] == {"CPU": 1.0} for t in out["trials"]), out["trials"]
    running = out["nodes_while_running"]
    workers = [n for n in running if n["cpu"] == 2]
    assert len(running) == 2 and len(workers) == 1, running
    # withdrawn, the request no longer holds the idle worker: the autoscaler removes it
    assert [n["cpu"] for n in out["nodes_after_idle"]] == [0], out["nodes_after_idle"]


def test_replicas_wait_for_the_autoscaler_and_oversized_replicas_fail_fast(fake_cluster_run):
    out, stderr = _phase(fake_cluster_run, "deploy")
    print(f"autoscaling deploy: deploy {out['deploy_s']:.1f}s")

    refused = out["refused"]
    assert "error" in refused, refused
    assert "each replica asks for CPU=3" in refused["error"], refused
    assert f"'{WORKER_TYPE}'" in refused["error"] and "CPU=2" in refused["error"], refused
    assert refused["seconds"] < 10, refused
    assert out["deployments_after_refusal"] == 0

    assert out["nodes_before"] == [0], out["nodes_before"]
    assert f"waiting for a node of type {WORKER_TYPE}" in stderr, stderr[-3000:]
    assert out["predict"]["status"] == 200 and out["predict"]["body"]["model_version"] == 1
    assert sorted(out["nodes_after"]) == [0, 2], out["nodes_after"]
    assert out["request_after_deploy"] == [], out  # withdrawn once the replica holds its node


# ----------------------------------------------------------------- pure logic (no cluster)


def test_the_refusal_names_the_largest_node_type_an_autoscaler_can_add(monkeypatch):
    from workbench.exceptions import ConfigError
    from workbench.runtime import _autoscaler

    types = {
        "small": {"resources": {"CPU": 2}, "max_workers": 4},
        "gpu_worker": {"resources": {"CPU": 8, "GPU": 1}, "max_workers": 2},
        "big_but_off": {"resources": {"CPU": 64, "GPU": 8}, "max_workers": 0},
    }
    monkeypatch.setattr(_autoscaler, "autoscaler_node_types", lambda: types)
    with pytest.raises(ConfigError) as err:
        _autoscaler.ask_autoscaler({"GPU": 2.0}, what="trial")
    text = str(err.value)
    assert "each trial asks for GPU=2" in text
    # a type with max_workers 0 can never be added: the largest addable one is named
    assert "'gpu_worker', has CPU=8, GPU=1" in text and "big_but_off" not in text
    monkeypatch.setattr(_autoscaler, "autoscaler_node_types", lambda: None)
    assert _autoscaler.ask_autoscaler({"GPU": 2.0}) is None  # no autoscaler: the caller decides


def test_node_types_are_read_from_the_local_monitors_config(tmp_path, monkeypatch):
    import psutil

    from workbench.runtime import _autoscaler

    config = tmp_path / "autoscaling.yaml"
    config.write_text(
        "max_workers: 3\nhead_node_type: head\navailable_node_types:\n"
        "  head: {resources: {CPU: 0}, max_workers: 0}\n"
        "  cpu_worker: {resources: {CPU: 4}, min_workers: 0}\n"
        "  gpu_worker: {resources: {CPU: 8, GPU: 1}, max_workers: 1}\n"
    )

    class Monitor:
        def __init__(self, pid):
            self.pid = pid

        def cmdline(self):
            return [
                "python",
                "/x/ray/autoscaler/_private/monitor.py",
                f"--autoscaling-config={config}",
            ]

    monkeypatch.setattr(psutil, "Process", Monitor)
    assert _autoscaler._types_from_monitor(123) == {
        "cpu_worker": {"resources": {"CPU": 4}, "max_workers": 3},  # the cluster-wide max
        "gpu_worker": {"resources": {"CPU": 8, "GPU": 1}, "max_workers": 1},
    }
    # a pid that is some other process of this host: not the monitor, nothing read
    monkeypatch.setattr(Monitor, "cmdline", lambda self: ["python", "jupyter-lab"])
    assert _autoscaler._types_from_monitor(123) == {}


def test_the_progress_line_and_widget_show_the_wait():
    from workbench.ui._format import format_progress_line

    summary = {"experiment": "s", "total": 2, "done": 0, "status": "RUNNING"}
    line = format_progress_line({**summary, "note": "waiting for a node of type cpu_worker"})
    assert line.endswith("waiting for a node of type cpu_worker"), line
    assert "waiting" not in format_progress_line(summary)

    from workbench.ui import ProgressWidget

    w = ProgressWidget(min_interval=0)
    w.update({**summary, "note": "waiting for a node of type cpu_worker"})
    assert w.note == "waiting for a node of type cpu_worker"
    w.update({**summary, "running": 1})  # the first trial started: the callback drops the note
    assert w.note == ""


def test_terminal_progress_writes_a_line_when_the_wait_ends():
    import io

    from workbench.ui import TerminalProgress

    stream = io.StringIO()
    bar = TerminalProgress(stream, isatty=False)
    summary = {"experiment": "s", "total": 2, "done": 0, "status": "RUNNING"}
    bar.update({**summary, "note": "waiting for a node of type cpu_worker"})
    bar.update({**summary, "note": "waiting for a node of type cpu_worker"})
    bar.update({**summary, "running": 1})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith("cpu_worker") and "waiting" not in lines[1], lines


def test_the_experiment_widget_shows_the_wait_of_a_running_search(store):
    from tests._factories import make_experiment
    from tests.test_widgets import _experiments
    from workbench.ui import ExperimentWidget

    class Handle:  # the part of a SearchHandle the widget reads
        waiting: str | None = "waiting for a node of type cpu_worker"
        finished = False

        def done(self):
            return self.finished

        def state(self):
            return "TERMINATED" if self.finished else "RUNNING"

        def status(self):
            return {"waiting": self.waiting}

        def stop(self):
            pass

    eid = make_experiment(store, name="scale-up")
    handle = Handle()
    w = ExperimentWidget(_experiments(store), eid, handle=handle, autostart=False)
    w.refresh(force=True)
    assert w.waiting == "waiting for a node of type cpu_worker"
    handle.waiting = None  # the first trial started
    w.refresh(force=True)
    assert w.waiting == ""
