"""Ray connection rules: local by default, never stop a Ray we did not start."""

from __future__ import annotations

import pytest


@pytest.mark.ray
def test_second_connection_shares_and_does_not_own(ray_cluster):
    import ray

    from workbench.runtime import connect

    other = connect()
    assert ray_cluster.started_here and ray_cluster.local
    assert not other.started_here and other.local
    other.shutdown()  # a non-owner's shutdown must leave Ray running
    assert ray.is_initialized()
    assert ray.cluster_resources()["CPU"] == 2


def test_import_workbench_is_fast_and_light():
    import subprocess
    import sys

    code = (
        "import sys, time; t = time.perf_counter(); import workbench, workbench.api, workbench.cli; "
        "d = time.perf_counter() - t; heavy = [m for m in ('ray', 'torch', 'alibi_detect', 'sklearn', 'polars') if m in sys.modules]; "
        "print(d, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split(maxsplit=1)
    seconds, heavy = float(out[0]), out[1].strip()
    assert heavy == "[]", f"import workbench pulled in {heavy}"
    assert seconds < 1.0
