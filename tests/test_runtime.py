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


def test_import_workbench_is_light():
    """``import workbench`` (and the CLI) loads none of the heavy libraries; which modules are
    loaded is checked, not seconds, so a busy machine cannot fail it."""
    import subprocess
    import sys

    heavy = (
        "ray",
        "torch",
        "alibi_detect",
        "sklearn",
        "polars",
        "pandas",
        "pyarrow",
        "sqlite_utils",
    )
    code = (
        "import sys; import workbench, workbench.api, workbench.cli; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import workbench pulled in {out.stdout.strip()}"


# ------------------------------------------------------------------ background work as a Future
def test_background_handle_is_a_future_that_says_what_to_do_on_timeout():
    import threading
    from concurrent.futures import Future
    from concurrent.futures import wait as wait_all

    from workbench.runtime import BackgroundHandle

    gate = threading.Event()
    job = BackgroundHandle("sum", lambda: gate.wait(20) and 42)
    assert isinstance(job, Future) and job.running() and not job.done()
    assert job.cancel() is False  # running work is never dropped
    with pytest.raises(TimeoutError, match="'sum' is still running after 0.01 s"):
        job.wait(timeout_s=0.01)
    assert job.error() is None
    gate.set()
    assert job.wait(timeout_s=20) == 42 and job.result() == 42
    assert wait_all([job], timeout=1).done == {job}
    assert job.done() and not job.running() and job.elapsed_s >= 0
    ended = job.elapsed_s
    assert job.elapsed_s == ended  # the clock stops with the work


def test_background_handle_hands_back_the_works_own_error_even_a_timeout():
    from workbench.exceptions import DeploymentError
    from workbench.runtime import BackgroundHandle

    def fail():
        raise DeploymentError("no CPUs for the replica")

    job = BackgroundHandle("d", fail)
    with pytest.raises(DeploymentError, match="no CPUs"):
        job.wait(timeout_s=20)
    assert isinstance(job.error(), DeploymentError)

    def slow_call():
        raise TimeoutError("the work's own timeout")

    job = BackgroundHandle("t", slow_call)
    with pytest.raises(TimeoutError, match="the work's own timeout"):
        job.wait(timeout_s=20)


# ------------------------------------------------------------------ plain values
def test_jsonable_turns_numpy_tuples_keys_and_dataclasses_into_json_types():
    import dataclasses
    import json
    from datetime import datetime

    import numpy as np

    from workbench.runtime import jsonable

    @dataclasses.dataclass
    class Point:
        x: float
        tags: tuple[str, ...]

    value = {
        1: np.int64(3),
        "f": np.float32(0.5),
        "s": np.str_("benign"),
        "b": np.bool_(True),
        "arr": np.array([[1, 2], [3, 4]]),
        "t": (np.float64(1.5), [np.int8(2)]),
        "p": Point(1.0, ("a",)),
        "nan": float("nan"),
        "when": datetime(2025, 1, 31),
    }
    got = jsonable(value, default=str)
    assert got == {
        "1": 3,
        "f": 0.5,
        "s": "benign",
        "b": True,
        "arr": [[1, 2], [3, 4]],
        "t": [1.5, [2]],
        "p": {"x": 1.0, "tags": ["a"]},
        "nan": got["nan"],
        "when": "2025-01-31 00:00:00",
    }
    assert got["nan"] != got["nan"]  # kept unless finite=True
    assert [type(got[k]) for k in ("1", "f", "s", "b")] == [int, float, str, bool]
    assert jsonable([float("inf"), np.float64("nan")], finite=True) == [None, None]
    assert jsonable(object, default=repr) == "<class 'object'>"
    marker = object()
    assert jsonable(marker) is marker  # no default: left for the caller's encoder
    json.dumps(jsonable(value, default=str, finite=True), allow_nan=False)


def test_percentile_is_nearest_rank():
    from workbench.runtime import percentile

    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile(values, 95) == 95.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0 and percentile([7.0], 0) == 7.0
    assert percentile([], 50) is None


def test_ray_workers_do_not_compile_jsonschemas_iri_grammar():
    """Every Ray worker, actor and kernel imports ray, and ray imports jsonschema; with
    rfc3987-syntax installed that import compiles a Lark grammar (1.7 s of CPU each time).
    ``make`` removes it from the venv (Makefile, SLOW_IMPORTS)."""
    import subprocess
    import sys

    code = "import sys, ray; print('rfc3987_syntax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", (
        "rfc3987-syntax is back in the venv: `.venv/bin/python -m pip uninstall -y rfc3987-syntax` "
        "(the Makefile's set-up does it after every install)"
    )
