"""Ending the Ray processes a test started itself, by pid (never `ray stop`)."""

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
