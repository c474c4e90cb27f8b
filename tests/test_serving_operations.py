"""Operating a deployment: replicas and autoscaling, CPUs/GPUs per replica, request batching,
a bounded request log that never slows requests, and deploying without blocking the notebook.

The unit tests drive the real ``Router`` class in-process (its Serve decorator
unwrapped) and the pure option checks; the Ray tests deploy on a real local
Serve and talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from concurrent.futures import Future
from types import SimpleNamespace

import pytest

from tests._serve_env import starlette_request
from workbench.exceptions import ConfigError, InvalidRequestError
from workbench.registry import ModelBundle

SHA = "ab" * 32


class CountingBundle(ModelBundle):
    """Answers ``x * 10`` per row and counts its calls; rows with ``x < 0`` are invalid (422)."""

    calls: list[int] = []  # rows per predict_records call, in this process

    def predict_records(self, records):
        CountingBundle.calls.append(len(records))
        for i, r in enumerate(records):
            if r["x"] < 0:
                raise InvalidRequestError(f"record {i}: x must be >= 0", field="x")
        return [r["x"] * 10 for r in records]


CountingBundle.__qualname__ = "CountingBundle"  # pickled by reference from this module


def _config(**extra):
    return {
        "deployment": "d",
        "db_path": "/tmp/x/lineage.db",
        "artifacts_dir": "/tmp/x/artifacts",
        "versions": {"1": {"artifact": SHA, "model_version_id": 1, "weight": 1}},
        **extra,
    }


# ------------------------------------------------------------------ option checks (pure)


def test_scaling_defaults_match_what_the_router_ran_with_before():
    from workbench.serving._scaling import deployment_options, scaling_options

    opts = scaling_options({})
    assert opts == {
        "num_replicas": 1,
        "autoscaling_config": None,
        "num_cpus": 0.5,
        "num_gpus": 0.0,
        "max_ongoing_requests": 16,
        "max_batch_size": None,
        "batch_wait_timeout_s": 0.01,
        "isolate": False,
        "router_replicas": 1,
    }
    assert deployment_options(opts) == {
        "num_replicas": 1,
        "max_ongoing_requests": 16,
        "ray_actor_options": {"num_cpus": 0.5},
    }
    assert scaling_options({"max_batch_size": 1})["max_batch_size"] is None  # 1 = no batching


def test_isolated_versions_take_the_replicas_and_the_router_stays_light():
    from workbench.serving._scaling import deployment_options, router_options, scaling_options

    opts = scaling_options({"isolate": True, "num_replicas": 3, "num_gpus": 0.5})
    # the versions get what the user asked for...
    assert deployment_options(opts)["num_replicas"] == 3
    assert deployment_options(opts)["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.5}
    # ...the router forwards: its own replica count, a quarter CPU, no GPU, room for 3 replicas' requests
    assert router_options(opts) == {
        "num_replicas": 1,
        "ray_actor_options": {"num_cpus": 0.25},
        "max_ongoing_requests": 48,
    }
    assert (
        router_options(scaling_options({"isolate": True, "router_replicas": 2}))["num_replicas"]
        == 2
    )
    # without isolate the router is the model server: same options as before
    plain = scaling_options({"num_replicas": 2})
    assert router_options(plain) == deployment_options(plain)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"isolate": "yes"}, "isolate must be True or False"),
        ({"isolate": True, "max_batch_size": 4}, "not available with isolate=True"),
        ({"isolate": True, "router_replicas": 0}, "router_replicas must be an integer >= 1"),
    ],
)
def test_isolate_options_are_checked_before_serve(bad, match):
    from workbench.exceptions import ConfigError
    from workbench.serving._scaling import scaling_options

    with pytest.raises(ConfigError, match=match):
        scaling_options(bad)


@pytest.mark.parametrize(
    "opts, needle",
    [
        ({"num_replicas": 0}, "num_replicas must be >= 1"),
        ({"num_replicas": 1.5}, "num_replicas must be >= 1"),
        ({"num_replicas": 2, "autoscaling_config": {"max_replicas": 3}}, "not both"),
        ({"autoscaling_config": []}, "autoscaling_config must be a mapping"),
        ({"autoscaling_config": {"min_replicas": 3, "max_replicas": 2}}, "min_replicas <="),
        ({"num_cpus": -1}, "num_cpus"),
        ({"num_gpus": "one"}, "num_gpus"),
        ({"max_ongoing_requests": 0}, "max_ongoing_requests"),
        ({"max_batch_size": 0}, "max_batch_size must be None"),
        ({"max_batch_size": 32}, "exceeds max_ongoing_requests"),
        ({"max_batch_size": 4, "batch_wait_timeout_s": -0.1}, "batch_wait_timeout_s"),
        ({"batch_wait_timeout_s": 60}, "batch_wait_timeout_s"),
    ],
)
def test_scaling_options_name_what_is_wrong(opts, needle):
    from workbench.serving._scaling import scaling_options

    with pytest.raises(ConfigError, match=needle):
        scaling_options(opts)


def test_build_app_passes_replicas_resources_and_batching_to_serve():
    from workbench.serving._router import build_app

    dep = build_app(
        _config(num_replicas=3, num_cpus=0.25, num_gpus=0.5, max_ongoing_requests=32)
    )._bound_deployment
    assert dep.num_replicas == 3
    assert dep.ray_actor_options["num_cpus"] == 0.25 and dep.ray_actor_options["num_gpus"] == 0.5
    assert dep.max_ongoing_requests == 32

    auto = build_app(
        _config(
            autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 3},
            max_batch_size=8,
            batch_wait_timeout_s=0.02,
        )
    )._bound_deployment
    cfg = auto._deployment_config.autoscaling_config
    assert (cfg.min_replicas, cfg.max_replicas, cfg.target_ongoing_requests) == (1, 4, 3)
    # batching travels in user_config, so reconfigure() applies it in place
    assert auto.user_config["max_batch_size"] == 8
    assert auto.user_config["batch_wait_timeout_s"] == 0.02


def test_build_app_turns_serves_own_refusal_into_a_config_error():
    from workbench.serving._router import build_app

    with pytest.raises(ConfigError, match="Ray Serve refused"):
        build_app(_config(autoscaling_config={"max_replicas": 2, "target_ongoing_requests": -1}))


# ------------------------------------------------------------------ the router in-process


@pytest.fixture
def local(tmp_path):
    """An in-process router over a real artifact store holding one CountingBundle as version 1."""
    from ray import serve  # noqa: F401  (the router module needs Serve's decorator)

    from workbench.lineage import ArtifactStore
    from workbench.serving._router import Router

    class LocalRouter(Router.func_or_class):
        def __del__(self):  # Serve awaits the async __del__; nothing to flush here
            pass

    arts = ArtifactStore(tmp_path / "artifacts")
    sha = arts.put_object(
        CountingBundle(pipeline=None, features={"x": "number"}, target="y", classes=[])
    )
    router = LocalRouter()

    def configure(**extra):
        router.reconfigure(
            {
                "deployment": "d",
                "db_path": str(tmp_path / "lineage.db"),
                "artifacts_dir": str(tmp_path / "artifacts"),
                "versions": {"1": {"artifact": sha, "model_version_id": 101, "weight": 1.0}},
                **extra,
            }
        )
        CountingBundle.calls.clear()  # warm-up calls do not count
        return router.health()

    return SimpleNamespace(router=router, configure=configure)


@pytest.fixture
def replica_context(monkeypatch):
    """What Serve's batch queue reads from the replica it runs in (it checks max_ongoing_requests)."""
    from ray import serve

    ctx = SimpleNamespace(
        _deployment_config=SimpleNamespace(max_ongoing_requests=16),
        replica_id=SimpleNamespace(unique_id="local"),
    )
    monkeypatch.setattr(serve, "get_replica_context", lambda: ctx)


async def _predict(router, xs):
    resp = await router._predict(starlette_request({"records": [{"x": x} for x in xs]}))
    return resp.status_code, json.loads(resp.body)


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(local, replica_context):
    health = local.configure(max_batch_size=4, batch_wait_timeout_s=0.5)
    assert health["batching"]["max_batch_size"] == 4

    async def burst():
        # 8 requests of 1..3 rows arrive together: two batches of 4, one model call each
        return await asyncio.gather(
            *[_predict(local.router, [float(i)] * (1 + i % 3)) for i in range(8)]
        )

    answers = asyncio.run(burst())
    for i, (status, body) in enumerate(answers):
        assert status == 200, body
        assert body["predictions"] == [i * 10.0] * (1 + i % 3)
    batching = local.router.health()["batching"]
    assert batching["sizes"] == {"4": 2} and batching["batches"] == 2
    assert CountingBundle.calls == [
        sum(1 + i % 3 for i in range(4)),
        sum(1 + i % 3 for i in (4, 5, 6, 7)),
    ]


def test_an_invalid_request_in_a_batch_fails_alone(local, replica_context):
    local.configure(max_batch_size=3, batch_wait_timeout_s=0.5)

    async def burst():
        return await asyncio.gather(*[_predict(local.router, [x]) for x in (1.0, -1.0, 2.0)])

    (s1, b1), (s2, b2), (s3, b3) = asyncio.run(burst())
    assert (s1, b1["predictions"]) == (200, [10.0])
    assert s2 == 422 and b2["field"] == "x"
    assert (s3, b3["predictions"]) == (200, [20.0])
    # the joint call failed, then each request was predicted on its own
    assert CountingBundle.calls == [3, 1, 1, 1]


def test_without_batching_each_request_calls_the_model_once(local):
    health = local.configure()
    assert health["batching"] == {
        "max_batch_size": None,
        "batch_wait_timeout_s": 0.01,
        "batches": 0,
        "sizes": {},
    }

    async def burst():
        return await asyncio.gather(*[_predict(local.router, [float(i)]) for i in range(5)])

    assert all(status == 200 for status, _ in asyncio.run(burst()))
    assert CountingBundle.calls == [1] * 5
    assert local.router.health()["batching"]["batches"] == 0


def test_batching_is_switched_by_reconfigure_in_place(local, replica_context):
    local.configure(max_batch_size=2, batch_wait_timeout_s=0.5)

    async def burst(n):
        return await asyncio.gather(*[_predict(local.router, [1.0]) for _ in range(n)])

    asyncio.run(burst(2))
    assert CountingBundle.calls == [2]
    local.configure()  # batching off again, same replica
    asyncio.run(burst(2))
    assert CountingBundle.calls == [1, 1]


class _StuckRecorder:
    """A recorder whose writes never finish (a store locked for good, a hung actor)."""

    def __init__(self):
        self.batches = []
        self.write = SimpleNamespace(remote=self._remote)

    def _remote(self, rows):
        self.batches.append(len(rows))
        return asyncio.get_running_loop().create_future()  # never resolved


def test_request_log_is_bounded_and_counts_what_it_drops(local):
    local.configure()
    router = local.router
    router._buffer = deque(maxlen=5)  # LOG_BUFFER_ROWS is 10,000; same code path

    async def run():
        return [await _predict(router, [1.0]) for _ in range(50)]

    answers = asyncio.run(run())
    assert all(status == 200 for status, _ in answers)
    log = router.health()["log"]
    assert log["buffered"] == 5 and log["dropped"] == 45
    # the newest rows are kept: the last five request ids answered
    kept = [row["request_id"] for row in router._buffer]
    assert kept == [body["request_id"] for _, body in answers[-5:]]


def test_a_stuck_recorder_never_holds_up_a_request(local):
    """Requests go through the full HTTP entry point with the flusher running against a recorder
    that never answers: every request completes, rows wait in flight, none is lost or dropped."""
    local.configure()
    router = local.router
    stuck = _StuckRecorder()
    router._recorder = stuck

    async def run():
        answers = []
        for _ in range(3):
            for _ in range(70):  # > FLUSH_ROWS: wakes the flusher
                resp = await router(starlette_request({"records": [{"x": 1.0}]}))
                answers.append(resp.status_code)
            await asyncio.sleep(0.3)  # > FLUSH_INTERVAL_S: the flusher ships what is buffered
        return answers, len(router._inflight)

    answers, inflight = asyncio.run(run())
    assert answers == [200] * 210
    # every row was handed to the recorder; each of its writes is still waiting, none held a request
    assert sum(stuck.batches) == 210 and inflight == len(stuck.batches) >= 3
    log = router.health()["log"]
    assert log == {"buffered": 0, "written": 0, "lost": 0, "dropped": 0}


# ------------------------------------------------------------------ deploy without blocking


class _FakeServing:
    def __init__(self):
        self.calls = 0

    def status(self, name):
        self.calls += 1
        return {"serve": {"status": "DEPLOYING", "deployments": {"Router": {"replicas": {}}}}}


def test_deploy_progress_reports_and_hands_back_the_result():
    from workbench.serving._progress import DeployProgress

    gate = threading.Event()

    def finish():
        assert gate.wait(20)
        return {"name": "d", "status": "running"}

    progress = DeployProgress(_FakeServing(), "d", finish)
    try:
        assert isinstance(progress, Future) and not progress.done()
        st = progress.status()
        assert st["phase"] == "deploying" and st["serve"]["status"] == "DEPLOYING"
        with pytest.raises(TimeoutError, match="still coming up"):
            progress.wait(timeout_s=0.05)
    finally:
        gate.set()
    assert progress.wait(timeout_s=20) == {"name": "d", "status": "running"}
    assert progress.done() and progress.status()["phase"] == "running"
    assert "running" in repr(progress)


def test_deploy_progress_raises_the_deployments_error_on_wait():
    from workbench.exceptions import DeploymentError
    from workbench.serving._progress import DeployProgress

    def finish():
        raise DeploymentError("no CPUs for the replica")

    progress = DeployProgress(_FakeServing(), "d", finish)
    with pytest.raises(DeploymentError, match="no CPUs"):
        progress.wait(timeout_s=20)
    st = progress.status()
    assert st["phase"] == "failed" and "no CPUs" in st["error"]


# ------------------------------------------------------------------ on a real Serve

NAME = "ops"


@pytest.fixture(scope="module")
def served(serve_apps, tmp_path_factory):
    from tests._serve_env import cancer_bundle, close_env, serve_env

    bundle, records = cancer_bundle()
    env = serve_env(tmp_path_factory, NAME, [bundle], apps=serve_apps)
    env.records = records
    try:
        yield env
    finally:
        close_env(env)


def _replica_healths(url, want, *, tries=60):
    """GET /health until ``want`` distinct replicas answered; their latest health by replica id."""
    import httpx

    seen = {}
    with httpx.Client(timeout=30) as client:
        for _ in range(tries):
            h = client.get(url + "/health").json()
            seen[h["replica"]["id"]] = h
            if len(seen) >= want:
                break
    return seen


@pytest.mark.ray
def test_deploy_without_waiting_then_two_replicas_batch_concurrent_requests(served):
    import httpx

    serving = served.serving
    t0 = time.monotonic()
    progress = serving.start_deploy(
        NAME,
        1,
        name=NAME,
        num_replicas=2,
        num_cpus=0.25,
        max_batch_size=4,
        batch_wait_timeout_s=0.05,
    )
    returned_s = time.monotonic() - t0
    assert serving.store.deployments.get(NAME)["status"] in ("deploying", "running")
    assert progress.name == NAME and progress.url.endswith("/" + NAME)
    st = progress.status()  # observable while Serve brings it up
    assert st["phase"] in ("deploying", "running") and "serve" in st
    info = progress.wait(timeout_s=180)  # what a blocking deploy returns
    ready_s = time.monotonic() - t0
    assert progress.done() and progress.status()["phase"] == "running"
    assert info["status"] == "running" and info["weights"] == {1: 1.0}
    assert info["url"] == progress.url
    status = serving.status(NAME)
    assert status["ready"] and status["status"] == "running"
    assert status["serve"]["deployments"]["Router"]["replicas"] == {"RUNNING": 2}
    # the traffic record was written by the background thread
    assert serving.traffic(NAME) == {1: 1.0}
    print(
        f"start_deploy returned in {returned_s:.2f}s, first status {st}; ready after {ready_s:.1f}s"
    )

    # 8 concurrent clients, 12 requests each: the replicas gather them into batches
    sent, errors = [], []

    def client(i):
        with httpx.Client(base_url=info["url"], timeout=60) as c:
            for j in range(12):
                rec = served.records[(i * 12 + j) % len(served.records)]
                r = c.post("/predict", json={"records": [rec]})
                (sent if r.status_code == 200 else errors).append(r.status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(sent) == 96
    healths = _replica_healths(info["url"], 2)
    assert len(healths) == 2, "both replicas answer /health"
    sizes = {}
    for h in healths.values():
        assert h["batching"]["max_batch_size"] == 4
        for size, count in h["batching"]["sizes"].items():
            sizes[int(size)] = sizes.get(int(size), 0) + count
    # every request went through a batch, and some batches held more than one request
    assert sum(size * count for size, count in sizes.items()) == 96
    assert max(sizes) > 1, sizes
    print(f"batch sizes seen across 2 replicas: {dict(sorted(sizes.items()))}")

    # a traffic change keeps the replica count and batching (they live in user_config)
    serving.set_traffic(NAME, {1: 1.0}, reason="same weights, new revision")
    # set_traffic returned: every replica runs the new config, not just the one that answered first
    revisions = {h["revision"] for h in _replica_healths(info["url"], 2).values()}
    assert len(revisions) == 1, revisions
    h = serving.health(NAME)
    assert h["batching"]["max_batch_size"] == 4
    assert serving.status(NAME)["serve"]["deployments"]["Router"]["replicas"] == {"RUNNING": 2}
    serving.undeploy(NAME)


@pytest.mark.ray
def test_a_bad_option_fails_before_serve_is_touched(served):
    with pytest.raises(ConfigError, match="not both"):
        served.serving.deploy(
            NAME, 1, name="ops-bad", num_replicas=2, autoscaling_config={"max_replicas": 2}
        )
    from workbench.exceptions import NotFoundError

    with pytest.raises(NotFoundError):
        served.store.deployments.get("ops-bad")


@pytest.mark.ray
# metrics_interval_s is deprecated in favour of env vars read when Ray starts; here it only makes
# Serve's autoscaler react in seconds (test time 68 s -> 32 s), which is all this test needs.
@pytest.mark.filterwarnings("ignore:The `metrics_interval_s` field:DeprecationWarning")
def test_serve_autoscaling_adds_a_replica_under_load_and_removes_it_after(served):
    """Serve's own autoscaler, configured through deploy(): 1 replica idle, 2 under load, 1 again."""
    import httpx

    serving = served.serving
    info = serving.deploy(
        NAME,
        1,
        name=NAME,
        num_cpus=0.25,
        max_ongoing_requests=4,
        autoscaling_config={
            "min_replicas": 1,
            "max_replicas": 2,
            "target_ongoing_requests": 1,
            "upscale_delay_s": 0.5,
            "downscale_delay_s": 3,
            # replicas report load every 0.5 s, averaged over 2 s (defaults: 10 s over 30 s)
            "metrics_interval_s": 0.5,
            "look_back_period_s": 2,
        },
    )

    def running():
        return serving.status(NAME)["serve"]["deployments"]["Router"]["replicas"].get("RUNNING", 0)

    assert running() == 1
    stop, codes = threading.Event(), []

    def client(i):
        deadline = time.monotonic() + 90  # bounded whatever happens
        with httpx.Client(base_url=info["url"], timeout=60) as c:
            while not stop.is_set() and time.monotonic() < deadline:
                rec = served.records[i % len(served.records)]
                codes.append(c.post("/predict", json={"records": [rec] * 20}).status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        while running() < 2 and time.monotonic() - t0 < 60:
            time.sleep(0.25)
        up_s = time.monotonic() - t0
        assert running() == 2, "Serve did not add a replica under 6 busy clients within 60 s"
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    t1 = time.monotonic()
    while running() > 1 and time.monotonic() - t1 < 90:
        time.sleep(0.5)
    down_s = time.monotonic() - t1
    assert running() == 1, "Serve did not remove the idle replica within 90 s"
    assert codes and set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    print(
        f"\n2 replicas {up_s:.1f}s into the load, back to 1 {down_s:.1f}s after it; {len(codes)} requests"
    )
    serving.undeploy(NAME)
