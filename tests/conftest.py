"""Shared fixtures: an in-memory store for unit tests, one real local Ray per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def store():
    from workbench.lineage import Store

    s = Store(":memory:")
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh WORKBENCH_HOME for one test."""
    path = tmp_path / "wbhome"
    monkeypatch.setenv("WORKBENCH_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def ray_cluster():
    """A private local Ray (2 CPUs) for the whole test session, shut down at the end."""
    from workbench.runtime import connect

    conn = connect(num_cpus=2, object_store_memory=256 * 1024**2)
    assert conn.started_here, "tests must not join a Ray cluster they did not start"
    yield conn
    try:
        from ray import serve

        serve.shutdown()
    except Exception:
        pass
    conn.shutdown()


@pytest.fixture
def serve_cleanup(ray_cluster):
    """For tests that start Ray Serve in the session's cluster: shut Serve down afterwards, so the next
    module can start it on its own port (Serve's HTTP options are fixed while it runs)."""
    yield
    from ray import serve

    serve.shutdown()


@pytest.fixture(scope="module")
def cancer_bench(tmp_path_factory, ray_cluster):
    """A Workbench (one per test module) holding scikit-learn's breast-cancer data as version ``bc@1``."""
    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv

    home = tmp_path_factory.mktemp("wb")
    bench = Workbench(home)
    dv = bench.datasets.ingest(
        write_breast_cancer_csv(home / "bc.csv"), name="bc", target="diagnosis"
    )
    yield bench, dv
    bench.store.close()
