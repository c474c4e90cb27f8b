"""Running the Ray processes a test starts itself and ending them by pid (never `ray stop`)."""

from __future__ import annotations

import os
import signal
import subprocess


def end_ray_start(proc: subprocess.Popen, wait_s: float = 60) -> None:
    """End a ``ray start --block`` the test started with ``start_new_session=True``.

    On SIGTERM it stops its processes in order (~2 s). A SIGTERM to the whole process group
    instead kills the GCS with the raylet, which then waits ~30 s to reconnect; whatever is left
    after the wait is killed by the process group.
    """
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def script_processes(temp_dir: str, recorded: list) -> list:
    """Live processes a driver script started: its recorded descendants (``[pid, create_time]``
    pairs: same pid and start time), and anything whose command line names the cluster's private
    temp dir."""
    import psutil

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


def run_cluster_script(
    args: list[str],
    *,
    temp_dir: str,
    out_path,
    env: dict | None = None,
    unset: tuple[str, ...] = (),
    timeout_s: float = 420,
) -> tuple[subprocess.CompletedProcess, dict, list[str], float]:
    """Run a driver script (``[sys.executable, script, *args]``) that builds a
    ``ray.cluster_utils.Cluster`` under ``temp_dir`` (its ``RAY_TMPDIR``) and writes JSON to
    ``out_path`` (``descendants``: the processes it started); then end whatever of it is left.

    The script gets this process's environment without ``RAY_ADDRESS`` (and ``unset``), with
    ``RAY_TMPDIR=temp_dir``, no usage stats, Ray 2.60's token authentication on (as a real
    cluster runs), and ``env`` on top.

    ``(process, out, survivors, seconds)``: survivors are the processes still alive 15 s after the
    script ended, each killed by pid (a test fails on them); ``temp_dir`` is removed.
    """
    import json
    import shutil
    import sys
    import time

    env = {
        **{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", *unset)},
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": temp_dir,
        "RAY_AUTH_MODE": "token",
        **(env or {}),
    }
    out: dict = {}
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout_s
        )
        elapsed = time.monotonic() - t0
        if out_path.exists():
            out = json.loads(out_path.read_text())
    finally:
        # give processes a moment to exit after the cluster's shutdown, then end the survivors
        deadline = time.monotonic() + 15
        while (left := script_processes(temp_dir, out.get("descendants", []))) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        survivors = []
        for p in left:  # ours: ended by pid
            try:
                survivors.append(f"{p.pid} {' '.join(p.cmdline()[:2])}")
                p.kill()
            except Exception:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)
    return proc, out, survivors, elapsed
