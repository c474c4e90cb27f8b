"""Joining an existing cluster by address: workbench uses it and never stops it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests._processes import end_ray_start
from workbench.runtime import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PROBE = """
import sys
from workbench import Workbench
bench = Workbench(sys.argv[1], address=sys.argv[2])
conn = bench.connect()
import ray
print("STARTED_HERE", conn.started_here, "CPUS", ray.cluster_resources().get("CPU"))
bench.close()
"""


def test_address_joins_and_close_leaves_the_cluster_running(tmp_path):
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_MODE", None)
    # A token-authenticated cluster, as Ray 2.60 recommends. The token is Ray's default file
    # (~/.ray/auth_token, which every local ray.init already creates); the client has the token
    # but not RAY_AUTH_MODE: workbench must cope. Made here only when missing (the command,
    # which also makes it only then, cost 6-12 s of imports here).
    if not (Path.home() / ".ray" / "auth_token").exists():
        subprocess.run(
            [str(ray_bin), "get-auth-token", "--generate"],
            env=env,
            capture_output=True,
            check=True,
            timeout=60,
        )
    head_env = {**env, "RAY_AUTH_MODE": "token"}
    # SIGTERM ends the head at once instead of first draining its node (up to 30 s by default)
    head_env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    # Ray's Unix sockets live under the temp dir and must stay under 108 bytes: pytest's tmp_path is too deep.
    temp_dir = tempfile.mkdtemp(prefix="wbray-", dir="/tmp")

    def start_head(port: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                str(ray_bin),
                "start",
                "--head",
                f"--port={port}",
                "--num-cpus=1",
                "--include-dashboard=false",
                f"--temp-dir={temp_dir}",
                "--block",
            ],
            env=head_env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "head.err").open("w"),
            start_new_session=True,
        )

    # free_port() can lose its port to another process before Ray binds it (other Ray clusters on
    # a busy machine): a head that exits at once is started again on a new port, at most 3 times.
    for _attempt in range(3):
        head = start_head(port)
        deadline = time.monotonic() + 60
        while head.poll() is None and time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        if head.poll() is None:
            break
        port = free_port()
    address = f"127.0.0.1:{port}"
    try:
        outputs = []
        for _ in range(2):  # the second run proves the first one's close() left the cluster up
            deadline = time.monotonic() + 120
            while True:
                if head.poll() is not None:  # fail now, not after the probes time out
                    err = (tmp_path / "head.err").read_text()[-2000:]
                    raise AssertionError(f"`ray start --head` exited with {head.returncode}: {err}")
                out = subprocess.run(
                    [sys.executable, "-c", PROBE, str(tmp_path / "home"), address],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
                if out.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(2)  # the head may still be starting
            assert out.returncode == 0, out.stderr[-2000:]
            outputs.append(out.stdout)
        assert all("STARTED_HERE False CPUS 1.0" in o for o in outputs), outputs
        assert head.poll() is None, "workbench stopped a cluster it did not start"
    finally:
        end_ray_start(head)  # our own cluster
        shutil.rmtree(temp_dir, ignore_errors=True)
