"""Shared fixtures: an in-memory store for unit tests, one real local Ray per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_configure(config):
    """Start each run with an empty folder of browser screenshots, so they are this run's. Only the
    process that runs the session clears it: under pytest-xdist (`make test`) the workers share it."""
    if hasattr(config, "workerinput"):
        return
    import shutil

    from tests.browser._lab import ARTIFACTS

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir()


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


@pytest.fixture(scope="session")
def serve_port(ray_cluster):
    """Ray Serve in the session's cluster, started once on a free loopback port; its port.

    Serve's HTTP options are fixed while it runs and a start costs 20-40 s, so every module
    shares this one instance: a module deploys apps of its own and they are deleted when it ends
    (:func:`serve_apps`). Only the tests on a Ray cluster of their own (multi-node, external)
    start a Serve of their own there.
    """
    from ray import serve

    from workbench.runtime import free_port

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()


@pytest.fixture(scope="module")
def serve_apps(serve_port):
    """The session's Serve for one test module: ``.port``; the apps still running when the module
    ends are deleted (modules run one after another, so they are this module's)."""
    from tests._serve_env import ServeApps

    apps = ServeApps(serve_port)
    yield apps
    apps.delete()


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


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 HTTP API on loopback (moto's ``ThreadedMotoServer``) for the session: ``.endpoint``
    (``127.0.0.1:PORT``), ``.url``; stopped at the end. Tests set their credentials themselves."""
    from types import SimpleNamespace

    from moto.server import ThreadedMotoServer

    from workbench.runtime import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield SimpleNamespace(endpoint=f"127.0.0.1:{port}", url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
