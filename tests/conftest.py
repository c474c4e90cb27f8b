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


# How `make test` shares the suite between its two workers (``-n 2 --dist loadfile
# --no-loadscope-reorder``): each file is one unit of work, run by one worker from start to end
# (module fixtures stay in one process), and the units are handed out longest first, so the last
# minutes are not one worker alone with a long module. The modules that start Ray clusters of their
# own (``ray start`` heads and workers, the fake autoscaler) are one unit: two such clusters
# starting at once on 2 cores is what made "The current node timed out during startup".
# (xdist's own ``--dist loadgroup`` cannot do this with pytest 9: it renames ``item._nodeid``,
# which pytest 9 no longer reads, so marked tests were spread over both workers.)
# Seconds per module are from the junit report of a full run on 2 cores (bafad10); a module not
# listed counts MODULE_DEFAULT_S. Refresh them when a module grows or shrinks a lot.
CLUSTER_MODULES = frozenset(
    {
        "test_no_shared_disk.py",
        "test_ray_jobs.py",
        "test_multinode_cluster.py",
        "test_autoscaling.py",
        "test_node_failure.py",
        "test_external_cluster.py",
    }
)
MODULE_SECONDS = {
    "test_no_shared_disk.py": 120,
    "test_search_options.py": 80,
    "test_ray_jobs.py": 78,
    "test_loop_integration.py": 72,
    "test_multinode_cluster.py": 68,
    "test_storage.py": 66,
    "test_pipeline_template.py": 60,
    "test_panel_browser.py": 59,
    "test_serving_isolated.py": 59,
    "test_cli_lifecycle.py": 55,
    "test_widgets_browser.py": 52,
    "test_autoscaling.py": 52,
    "test_automation_canary.py": 47,
    "test_serving_strategies.py": 47,
    "test_node_failure.py": 47,
    "test_serving.py": 46,
    "test_torch_trainable.py": 43,
    "test_project_file.py": 40,
    "test_serving_operations.py": 40,
    "test_monitoring_stats.py": 40,
    "test_monitoring_monitors.py": 37,
    "test_automation_loop.py": 35,
    "test_serve_config.py": 35,
    "test_panel_actions_browser.py": 35,
    "test_packages.py": 33,
    "test_features_notebook.py": 30,
    "test_experiments.py": 29,
    "test_experiment_resume.py": 27,
    "test_serving_reliability.py": 25,
    "test_evaluation_notebook.py": 23,
    "test_external_cluster.py": 17,
}
MODULE_DEFAULT_S = 5


def work_unit(path: str) -> tuple[str, float]:
    """The unit of work a test file (a path, or a test id starting with one) belongs to, and its
    expected seconds."""
    from pathlib import PurePath

    name = PurePath(str(path).split("::", 1)[0]).name
    if name in CLUSTER_MODULES:
        return "ray-clusters", sum(MODULE_SECONDS.get(m, MODULE_DEFAULT_S) for m in CLUSTER_MODULES)
    return str(path).split("::", 1)[0], MODULE_SECONDS.get(name, MODULE_DEFAULT_S)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Longest units first: a stable sort, so a module's tests keep their order, together."""
    units: dict[str, float] = {}
    for item in items:
        unit, seconds = work_unit(item.nodeid)
        units.setdefault(unit, seconds)
    order = {u: i for i, u in enumerate(sorted(units, key=lambda u: -units[u]))}
    items.sort(key=lambda item: order[work_unit(item.nodeid)[0]])


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the cluster modules as one unit (:func:`work_unit`)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByWorkUnit(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)[0]

    return ByWorkUnit(config, log)


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
