"""Real Ray nodes for tests and benchmarks: ``ray start`` heads and workers, every one ended by its pid.

- :func:`start_head`: ``ray start --head`` with every port chosen free (the job agent's default
  52365 collides between heads on one machine), optionally its dashboard (Ray's job server).
- :func:`start_hidden_worker`: a worker node in its own mount namespace with a tmpfs over a
  folder, so it cannot see the files the driver keeps there (as a node of another machine).
- :func:`wait_for_nodes`: until the cluster has N alive nodes.
- :func:`no_shared_disk_cluster`: the three together, a head with no CPUs and one hidden worker.

The pytest process may hold the session's own Ray, so nothing here connects to these clusters
in-process: a check that needs a driver runs in a subprocess.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests._processes import end_ray_start
from workbench.runtime import free_port

RAY_BIN = str(Path(sys.executable).with_name("ray"))


def node_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a ``ray start``: no address of another cluster, no usage
    stats, this venv's ``python`` first on ``PATH`` (a Ray Job's entrypoint runs ``python``), and
    no drain on SIGTERM (``ray start --block`` otherwise drains its node for up to 30 s before it
    ends: Ray's ``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S``)."""
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        env.pop(k, None)
    env.update(extra or {})
    return env


def ensure_auth_token(env: Mapping[str, str]) -> None:
    """``ray get-auth-token --generate``: this machine's token (``~/.ray/auth_token``), made if absent."""
    subprocess.run(
        [RAY_BIN, "get-auth-token", "--generate"],
        env=dict(env),
        capture_output=True,
        check=True,
        timeout=60,
    )


def _agent_ports() -> list[str]:
    """Ports a node otherwise takes at fixed defaults, shared by every node of this machine."""
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


def _popen(cmd: list[str], env: Mapping[str, str], logs: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=dict(env),
        cwd=logs,  # not the checkout: `python -m` would import workbench from the cwd
        stdout=subprocess.DEVNULL,
        stderr=(logs / f"{name}.err").open("w"),
        start_new_session=True,  # end_ray_start kills what is left by the process group
    )


def _tail(logs: Path, name: str) -> str:
    try:
        return (logs / f"{name}.err").read_text()[-2000:]
    except OSError:
        return ""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=2) as r:
            return r.status == 200
    except urllib.error.HTTPError:
        return True  # it answers (401: token authentication, Ray 2.60's default)
    except OSError:
        return False


def _listens(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_head(
    logs: Path,
    temp_dir: str,
    *,
    num_cpus: float = 2,
    dashboard: bool = True,
    env: Mapping[str, str] | None = None,
    wait_for_jobs: bool = True,
) -> tuple[subprocess.Popen, str, str | None]:
    """``ray start --head`` on loopback; ``(process, gcs_address, dashboard_url or None)``.

    With ``dashboard`` (Ray's job server) it returns once the dashboard answers and, with
    ``wait_for_jobs``, once its job agent has run a job (:func:`wait_for_job_server`); without,
    once the GCS port listens. ``env`` defaults to :func:`node_env`. Ports are chosen free; a port
    taken between the choice and Ray's bind is retried with others.
    """
    env = dict(env) if env is not None else node_env()
    for _attempt in range(3):
        port, dash = free_port(), free_port()
        cmd = [RAY_BIN, "start", "--head", f"--port={port}", f"--num-cpus={num_cpus:g}"]
        if dashboard:
            cmd += [
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash}",
            ]
        else:
            cmd += ["--include-dashboard=false"]
        cmd += [
            *_agent_ports(),
            f"--ray-client-server-port={free_port()}",
            f"--temp-dir={temp_dir}",
            "--block",
        ]
        head = _popen(cmd, env, logs, "head")
        url = f"http://127.0.0.1:{dash}" if dashboard else None
        deadline = time.monotonic() + 90
        up = False
        while head.poll() is None and time.monotonic() < deadline:
            up = _answers(url) if url else _listens(port)
            if up:
                break
            time.sleep(0.5)
        if up:
            break
        end_ray_start(head)
    else:
        raise AssertionError(f"ray start --head did not come up: {_tail(logs, 'head')}")
    if url and wait_for_jobs:
        wait_for_job_server(url)
    return head, f"127.0.0.1:{port}", url


def wait_for_job_server(url: str, timeout_s: float = 240) -> float:
    """Until the head's job agent has run one job; the seconds it took.

    The job agent registers after the dashboard answers ("No available agent to submit job"
    until then): seen here from seconds to over a minute with the other engineers' tests running.
    """
    from workbench.automation._jobs import RayJobs

    t0 = time.monotonic()
    client = RayJobs(url).client
    warm = None
    while warm is None and time.monotonic() - t0 < timeout_s * 0.75:
        try:
            warm = client.submit_job(entrypoint="python -c pass", submission_id="warm-up")
        except Exception:
            time.sleep(1)
    while warm and time.monotonic() - t0 < timeout_s:
        if str(client.get_job_status(warm)) in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(0.5)
    seconds = time.monotonic() - t0
    print(f"\nhead: job server took a job {seconds:.1f}s after its dashboard answered")
    return seconds


def start_hidden_worker(
    address: str,
    hidden_dir: str | os.PathLike[str],
    *,
    num_cpus: float,
    env: Mapping[str, str],
    logs: Path,
) -> subprocess.Popen:
    """``ray start --address=…`` in its own mount namespace, with an empty tmpfs over
    ``hidden_dir``: the worker's processes (trials, replicas, actors) see nothing the driver
    keeps there. Needs root. Ended with :func:`tests._processes.end_ray_start` (``unshare`` and
    ``sh`` exec into ``ray start``, so the pid is its)."""
    hidden = shlex.quote(str(hidden_dir))
    start = shlex.join(
        [
            RAY_BIN,
            "start",
            f"--address={address}",
            f"--num-cpus={num_cpus:g}",
            *_agent_ports(),
            "--block",
        ]
    )
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
    return _popen([*cmd, f"mount -t tmpfs tmpfs {hidden} && exec {start}"], env, logs, "worker")


WAIT_NODES = """
import sys, time
import ray
address, n, timeout_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ray.init(address=address, log_to_driver=False)
deadline = time.monotonic() + timeout_s
alive = 0
while time.monotonic() < deadline:
    alive = sum(1 for node in ray.nodes() if node["Alive"])
    if alive >= n:
        break
    time.sleep(0.5)
print("ALIVE", alive)
"""


def wait_for_nodes(
    address: str,
    n: int,
    *,
    env: Mapping[str, str],
    timeout_s: float = 150,
    watch: Mapping[str, subprocess.Popen] = {},  # noqa: B006 (read only)
    logs: Path | None = None,
) -> float:
    """Until the cluster at ``address`` has ``n`` alive nodes (one driver in a subprocess, polling);
    the seconds it took. A process of ``watch`` that exits fails it with its log's tail."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", WAIT_NODES, address, str(n), str(timeout_s)],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while proc.poll() is None:
            for name, p in watch.items():
                if p.poll() is not None:
                    tail = _tail(logs, name) if logs else ""
                    raise AssertionError(f"{name} exited ({p.returncode}): {tail}")
            if time.monotonic() - t0 > timeout_s + 60:
                raise AssertionError(f"no answer about {address}'s nodes in {timeout_s + 60:.0f}s")
            time.sleep(0.5)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if f"ALIVE {n}" not in out:
        raise AssertionError(
            f"{n} nodes were not alive within {timeout_s:.0f}s: {out} {err[-2000:]}"
        )
    return time.monotonic() - t0


@dataclass
class NoSharedDisk:
    """A running :func:`no_shared_disk_cluster`: ``hidden`` is the folder the worker cannot see
    (put the driver's ``WORKBENCH_HOME`` under it); ``env`` is a driver's environment for it."""

    address: str
    dashboard_url: str
    hidden: Path
    env: dict[str, str]
    start_s: float
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)


@contextmanager
def no_shared_disk_cluster(
    logs: Path, *, env: Mapping[str, str] | None = None, worker_cpus: float = 2
) -> Iterator[NoSharedDisk]:
    """A head with ``--num-cpus=0`` and its job server, and one worker (``worker_cpus``) in its own
    mount namespace that cannot see a fresh folder under /tmp (:attr:`NoSharedDisk.hidden`);
    token authentication on. ``env`` (default :func:`node_env`) is every node's environment, so
    storage settings and credentials in it reach each node's trials, replicas and actors. The
    worker's artifact cache is its own (in its tmpfs), not the machine's shared default.
    Both nodes are ended by their pids on exit, and the folders removed."""
    env = node_env() if env is None else dict(env)
    ensure_auth_token(env)
    env["RAY_AUTH_MODE"] = "token"
    hidden = Path(tempfile.mkdtemp(prefix="wbhide-", dir="/tmp"))
    temp_dir = tempfile.mkdtemp(prefix="wbnsd-", dir="/tmp")  # Unix sockets: short paths
    procs: dict[str, subprocess.Popen] = {}
    t0 = time.monotonic()
    try:
        head, address, url = start_head(logs, temp_dir, num_cpus=0, env=env, wait_for_jobs=False)
        procs["head"] = head
        worker_env = {**env, "WORKBENCH_CACHE": str(hidden / "worker-cache")}  # in its tmpfs
        procs["worker"] = start_hidden_worker(
            address, hidden, num_cpus=worker_cpus, env=worker_env, logs=logs
        )
        assert url is not None
        wait_for_job_server(url)
        wait_for_nodes(address, 2, env=env, watch=procs, logs=logs)
        yield NoSharedDisk(
            address=address,
            dashboard_url=url,
            hidden=hidden,
            env=env,
            start_s=time.monotonic() - t0,
            procs=procs,
        )
    finally:
        for name in ("worker", "head"):  # the worker first: a raylet without its GCS waits
            if name in procs:
                end_ray_start(procs[name])
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(hidden, ignore_errors=True)
