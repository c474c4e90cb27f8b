"""The composition root: every stage of a Workbench shares one Ray connection, to its ``address``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workbench.runtime import free_port

# Serving's first call is this process's first Ray call; then what the process is connected to.
PROBE = """
import json, sys

import ray

from workbench import Workbench
from workbench.exceptions import DeploymentError

bench = Workbench(sys.argv[1], address=sys.argv[2] or None, serve_port=int(sys.argv[3]))
try:
    bench.serving.health("nothing-deployed")
except DeploymentError:
    pass
seen = {"gcs": ray.get_runtime_context().gcs_address, "started_here": bench.connect().started_here}
bench.close()
seen["initialized_after_close"] = ray.is_initialized()
print(json.dumps(seen))
"""


def _probe(home, address: str | None, serve_port: int | None = None) -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(home), address or "", str(serve_port or free_port())],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_stages_open_without_ray_and_wire_each_stage_once(tmp_path):
    from workbench.api import Workbench

    with Workbench(tmp_path / "home", address="127.0.0.1:1", serve_port=8123) as bench:
        stages = bench.stages
        assert bench.store is stages.store and bench.datasets is stages.datasets
        assert bench.registry is stages.registry and bench.monitoring is stages.monitoring
        assert bench.experiments is stages.experiments and bench.settings is stages.settings
        assert bench.automation.stages is stages
        assert "serving" not in vars(stages)  # built on first use, not when the home is opened
        assert bench.serving is stages.serving and bench.serving.http_port == 8123
        assert (bench.address, stages.address) == ("127.0.0.1:1", "127.0.0.1:1")
        assert stages._ray is None  # nothing above connected to Ray


@pytest.mark.ray
def test_serving_joins_the_workbench_address(tmp_path, ray_cluster, serve_apps):
    """``Workbench(address=X).serving`` as the process's first Ray call joins X, not a Ray of its own;
    in this process too, serving connects through the workbench's one connection, which ``close()``
    releases without stopping a cluster it did not start."""
    import ray

    from workbench.api import Workbench
    from workbench.exceptions import DeploymentError

    seen = _probe(tmp_path / "home", ray_cluster.address, serve_apps.port)
    assert seen["gcs"] == ray_cluster.address and seen["started_here"] is False
    assert ray.cluster_resources()["CPU"] == 2  # close() left the cluster it joined running

    bench = Workbench(tmp_path / "home", address=ray_cluster.address)
    with pytest.raises(DeploymentError, match="nothing-deployed"):
        bench.serving.health("nothing-deployed")  # the session's Serve answers: nothing deployed
    conn = bench.stages._ray
    assert conn is not None and conn.address == ray_cluster.address and not conn.started_here
    bench.close()
    assert bench.stages._ray is None and ray.is_initialized()


@pytest.mark.ray
@pytest.mark.slow
def test_close_stops_the_ray_that_serving_started(tmp_path):
    """Without an address serving's first call starts a private Ray; ``close()`` stops it."""
    seen = _probe(tmp_path / "home", None)
    assert seen["started_here"] is True and seen["initialized_after_close"] is False
