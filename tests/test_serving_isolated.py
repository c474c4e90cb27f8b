"""Isolated model versions (``deploy(..., isolate=True)``): a crashed version replica loses no request.

The unit tests drive :func:`call_version` with a stand-in handle (pure retry
logic). The integration test runs a real local Serve: the champion version as
its own deployment with two replicas behind the router, four client threads
POSTing over HTTP with no retries of their own, and one version replica killed
with ``ray.kill`` (no graceful shutdown) while the load runs. Every request
must succeed: the router re-sends a request whose replica died to a live one.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from workbench.exceptions import InvalidRequestError

NAME = "isolated"


# --------------------------------------------------------------- retry logic (pure)


class _Call:
    def __init__(self, outcome):
        self._outcome = outcome

    def __await__(self):
        async def run():
            if isinstance(self._outcome, BaseException):
                raise self._outcome
            return self._outcome

        return run().__await__()


class _Handle:
    """Answers ``predict.remote`` with the next outcome of a script."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0
        self.predict = self

    def remote(self, records):
        self.calls += 1
        return _Call(self.outcomes.pop(0))


def _died():
    from ray.exceptions import ActorDiedError

    return ActorDiedError()


def test_a_request_whose_replica_died_is_sent_again():
    from workbench.serving._isolated import call_version

    seen = []
    handle = _Handle(_died(), ("ok", [1]))
    out = asyncio.run(call_version(handle, [{"x": 1}], version=1, on_retry=seen.append))
    assert out == [1] and handle.calls == 2 and len(seen) == 1


def test_model_errors_are_not_retried_and_keep_their_meaning():
    from workbench.serving._isolated import ModelVersionError, call_version

    handle = _Handle(("invalid", "row 0: missing feature 'x'", "x"))
    with pytest.raises(InvalidRequestError, match="missing feature") as info:
        asyncio.run(call_version(handle, [{}], version=2))
    assert info.value.field == "x" and handle.calls == 1

    handle = _Handle(("error", "ValueError: bad model"))
    with pytest.raises(ModelVersionError, match="model version 2 failed: ValueError: bad model"):
        asyncio.run(call_version(handle, [{}], version=2))
    assert handle.calls == 1

    handle = _Handle(RuntimeError("serialization broke"))  # not a dead replica: no retry
    with pytest.raises(ModelVersionError, match="serialization broke"):
        asyncio.run(call_version(handle, [{}], version=2))
    assert handle.calls == 1


def test_a_replica_that_keeps_dying_ends_in_a_clear_error():
    from workbench.serving._isolated import RETRY_ATTEMPTS, ModelVersionError, call_version

    handle = _Handle(*[_died() for _ in range(RETRY_ATTEMPTS)])
    with pytest.raises(ModelVersionError, match="every one of .* attempts met a dead replica"):
        asyncio.run(call_version(handle, [{}], version=1))
    assert handle.calls == RETRY_ATTEMPTS


# ------------------------------------------------------------- real Serve over HTTP


@pytest.fixture(scope="module")
def env(serve_apps, tmp_path_factory):
    from tests._serve_env import champion_env

    with champion_env(
        tmp_path_factory, NAME, versions=2, reason="isolation test", apps=serve_apps
    ) as env:
        yield env


def _version_replicas(want: int, tries: int = 60) -> dict[str, dict]:
    from ray import serve

    handle = serve.get_deployment_handle("version-1", app_name=NAME)
    seen: dict[str, dict] = {}
    for _ in range(tries):
        ident = handle.identity.remote().result(timeout_s=30)
        seen[ident["actor"]] = ident
        if len(seen) >= want:
            break
    return seen


def _running(deployment: str) -> int:
    from ray import serve

    app = serve.status().applications.get(NAME)
    if app is None or deployment not in app.deployments:
        return 0
    return int(app.deployments[deployment].replica_states.get("RUNNING", 0))


@pytest.mark.ray
def test_killing_a_version_replica_under_load_fails_no_request(env):
    import httpx
    import ray

    from tests.test_serving_reliability import Load, _wait_gone

    info = env.serving.deploy(
        NAME, "champion", name=NAME, isolate=True, num_replicas=2, num_cpus=0.25
    )
    url = info["url"]
    health = env.serving.health(NAME)
    assert health["isolate"] is True
    assert health["versions"]["1"]["deployment"] == "version-1"
    # the router still validates: a bad record is a 422 naming the field, through the isolated path
    bad = httpx.post(url + "/predict", json={"records": [{"nope": 1}]}, timeout=30)
    assert bad.status_code == 422, bad.text
    before = _version_replicas(2)
    assert len(before) == 2, "both version replicas answer before the kill"
    victim = before[sorted(before)[0]]
    retries_before = env.serving.health(NAME)["retries"]

    with Load(url, env.records) as load:
        load.wait_for(100)
        t_kill = time.monotonic()
        ray.kill(ray.get_actor(victim["actor"], namespace="serve"), no_restart=True)
        assert _wait_gone(victim["pid"]), "the killed replica's process is still there"
        deadline = t_kill + 60
        replaced = False
        while time.monotonic() < deadline and not replaced:
            if _running("version-1") == 2:
                now = _version_replicas(2, tries=20)
                replaced = victim["actor"] not in now and len(now) == 2
            time.sleep(0.25)
        assert replaced, "Serve did not replace the killed version replica within 60 s"
        load.wait_for(100)

    failed = load.failures()
    retries = env.serving.health(NAME)["retries"] - retries_before
    print(
        f"\n{len(load.results)} requests, {len(failed)} failed, {retries} re-sent by the router "
        f"after the kill; replacement running {time.monotonic() - t_kill:.1f}s after it"
    )
    assert failed == [], failed[:5]
    assert len(load.results) > 200


@pytest.mark.ray
def test_traffic_changes_add_and_remove_isolated_version_deployments(env):
    import httpx
    from ray import serve

    env.serving.deploy(NAME, 1, name=NAME, isolate=True, num_replicas=1, num_cpus=0.25)
    t0 = time.monotonic()
    weights = env.serving.set_traffic(NAME, {1: 0.5, 2: 0.5}, actor="tester", reason="split")
    took = time.monotonic() - t0
    assert weights == {1: 0.5, 2: 0.5}
    health = env.serving.health(NAME)
    assert {v: h["deployment"] for v, h in health["versions"].items()} == {
        "1": "version-1",
        "2": "version-2",
    }
    answered = {1: 0, 2: 0}
    with httpx.Client(base_url=env.serving.url(NAME), timeout=30) as client:
        for rec in (env.records * 10)[:200]:
            resp = client.post("/predict", json={"records": [rec]})
            assert resp.status_code == 200, resp.text
            answered[resp.json()["model_version"]] += 1
    assert 60 <= answered[1] <= 140 and answered[1] + answered[2] == 200, answered
    env.serving.set_traffic(NAME, {1: 1.0}, actor="tester", reason="back to one")
    deadline = time.monotonic() + 60
    while "version-2" in serve.status().applications[NAME].deployments:
        assert time.monotonic() < deadline, "version-2's deployment was never removed"
        time.sleep(0.25)
    print(f"\nadding an isolated version took {took:.1f}s; split {answered}")
    env.serving.undeploy(NAME)
