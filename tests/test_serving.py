"""Serving on a real local Ray Serve over real HTTP: deploy, validate, split, log, canary, rollback.

One deployment on the session's Serve for the whole module; each test sets the
traffic it needs, so the tests also exercise in-place reconfiguration over and
over. The bad-input and route cases run on the same router in-process
(``LocalRouter``); over HTTP, the logging test sends a bad request too.
"""

from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.ray

NAME = "cancer"


def _bundle(C: float, *, broken: bool = False):
    from sklearn.linear_model import LogisticRegression

    from tests._serve_env import cancer_bundle

    return cancer_bundle(LogisticRegression(C=C, max_iter=1000), broken=broken)


@pytest.fixture(scope="module")
def env(serve_apps, tmp_path_factory):
    import httpx

    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store
    from workbench.serving import Serving
    from workbench.serving._recorder import kill_recorder

    settings = Settings.from_env(tmp_path_factory.mktemp("serving") / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    bundles, records = {}, None
    for version, (C, broken) in enumerate([(1.0, False), (0.002, False), (1.0, True)], start=1):
        bundle, records = _bundle(C, broken=broken)
        digest = artifacts.put_object(bundle)
        row = store.models.add_version(
            "cancer",
            task="classification",
            artifact_hash=digest,
            params={"C": C, "broken": broken},
            metrics={},
            signature=bundle.signature,
            experiment_id=None,
            trial_id=None,
            dataset_version_id=None,
        )
        assert row["version"] == version
        bundles[version] = bundle
    store.models.set_alias("cancer", "champion", 1, actor="tester", reason="first")

    port = serve_apps.port
    serving = Serving(store, artifacts, settings, http_port=port)
    t0 = time.perf_counter()
    info = serving.deploy(
        "cancer", "champion", name=NAME, actor="tester", reason="initial deployment"
    )
    deploy_s = time.perf_counter() - t0
    client = httpx.Client(base_url=info["url"], timeout=30)
    ns = SimpleNamespace(
        serving=serving,
        store=store,
        artifacts=artifacts,
        settings=settings,
        bundles=bundles,
        records=records,
        info=info,
        client=client,
        port=port,
        deploy_s=deploy_s,
        sent={},  # request_id -> (status, model_version, body sent)
    )
    try:
        yield ns
    finally:
        client.close()
        serving.close()
        serve_apps.delete()
        kill_recorder(settings.db_path)
        store.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """Version 1 of the module's model as a router in-process (``.router``, ``.records``, ``.bundle``)."""
    from tests._serve_env import LocalRouter

    bundle, records = _bundle(1.0)
    router = LocalRouter(tmp_path_factory.mktemp("local-cancer"), [bundle], deployment=NAME)
    return SimpleNamespace(router=router, records=records, bundle=bundle)


def post(env, body=None, *, content=None, key=None):
    """POST to /predict, remember the request id the server gave, return (status, json)."""
    if body is not None and key is not None:
        body = {**body, "key": key}
    if content is None:
        resp = env.client.post("/predict", json=body)
    else:
        resp = env.client.post(
            "/predict", content=content, headers={"content-type": "application/json"}
        )
    payload = resp.json()
    assert "request_id" in payload, payload
    env.sent[payload["request_id"]] = (resp.status_code, payload.get("model_version"), body)
    return resp.status_code, payload


def health(env):
    resp = env.client.get("/health")
    assert resp.status_code == 200, resp.text
    return resp.json()


# --------------------------------------------------------------------------- tests
def test_deploy_serves_real_predictions_over_http(env):
    assert env.info["url"] == f"http://127.0.0.1:{env.port}/{NAME}"
    assert env.info["weights"] == {1: 1.0}
    h = health(env)
    assert h["status"] == "ok" and h["deployment"] == NAME
    assert set(h["versions"]) == {"1"}
    assert (
        h["versions"]["1"]["artifact"] == env.store.models.get_version("cancer", 1)["artifact_hash"]
    )

    batch = env.records[:5]
    status, payload = post(env, {"records": batch})
    assert status == 200, payload
    assert payload["model_version"] == 1
    assert payload["predictions"] == env.bundles[1].predict_records(batch)
    assert set(payload["predictions"]) <= {"malignant", "benign"}

    columns = {c: [r[c] for r in batch] for c in batch[0]}
    status, by_columns = post(env, {"columns": columns})
    assert status == 200 and by_columns["predictions"] == payload["predictions"]
    assert by_columns["request_id"] != payload["request_id"]

    dep = env.store.deployments.get(NAME)
    assert dep["status"] == "running" and dep["route_prefix"] == f"/{NAME}"
    first = env.store.deployments.list_traffic(NAME)[0]
    assert first["weights"] == {"1": 1.0} and first["actor"] == "tester"
    assert first["reason"] == "initial deployment"
    live = env.serving.status(NAME)
    assert live["serve"]["status"] == "RUNNING" and live["weights"] == {1: 1.0}
    print(f"\ndeploy took {env.deploy_s:.1f}s")


def _too_big(records):
    one = json.dumps(records[0])
    return {"records": [records[0]] * (2 * (1 << 20) // len(one))}


@pytest.mark.parametrize(
    "case, make, status, field",
    [
        (
            "missing feature",
            lambda r: {"records": [{k: v for k, v in r[0].items() if k != "mean radius"}]},
            422,
            "mean radius",
        ),
        ("wrong type", lambda r: {"records": [{**r[0], "worst area": "huge"}]}, 422, "worst area"),
        ("unknown feature", lambda r: {"records": [{**r[0], "colour": 3}]}, 422, "colour"),
        ("empty records", lambda r: {"records": []}, 422, "records"),
        ("records not a list", lambda r: {"records": r[0]}, 422, "records"),
        ("no records or columns", lambda r: {"rows": [r[0]]}, 422, "rows"),
        (
            "ragged columns",
            lambda r: {"columns": {"mean radius": [1.0, 2.0], "mean texture": [1.0]}},
            422,
            "mean texture",
        ),
        ("key not a string", lambda r: {"records": [r[0]], "key": 7}, 422, "key"),
        ("body not JSON", lambda r: b"{records: nope", 400, "body"),
        ("body a JSON list", lambda r: b"[1, 2]", 400, "body"),
        ("oversized body", _too_big, 413, "body"),
    ],
)
def test_bad_input_is_4xx_naming_the_field_and_server_keeps_answering(
    local, case, make, status, field
):
    body = make(local.records)
    if isinstance(body, bytes):
        resp = local.router.post("/predict", content=body)
    else:
        resp = local.router.post("/predict", json=body)
    payload = resp.json()
    assert resp.status_code == status, (case, payload)
    assert payload["field"] == field, (case, payload)
    assert payload["error"] and isinstance(payload["error"], str)
    assert payload["request_id"]
    good = local.router.post("/predict", json={"records": local.records[:1]})
    assert good.status_code == 200, good.text
    assert good.json()["predictions"] == local.bundle.predict_records(local.records[:1])


def test_routes_other_than_predict_and_health(local):
    assert local.router.get("/nope").status_code == 404
    assert "predict" in local.router.get("/nope").json()["error"]
    assert local.router.get("/predict").status_code == 405
    assert local.router.post("/health").status_code == 405
    assert local.router.get("/health").json()["deployment"] == NAME


def test_weights_split_traffic_in_place_without_restarting_the_replica(env):
    env.serving.set_traffic(NAME, {1: 1.0}, actor="tester", reason="reset")
    before = health(env)
    weights = env.serving.set_traffic(
        NAME, {1: 1, 2: 1}, actor="tester", reason="A/B test v1 vs v2"
    )
    assert weights == {1: 0.5, 2: 0.5}
    after = health(env)
    assert after["replica"] == before["replica"], "a weight change must not restart the replica"
    assert after["reconfigures"] > before["reconfigures"]
    assert {k: v["weight"] for k, v in after["versions"].items()} == {"1": 0.5, "2": 0.5}

    n, seen, answers = 200, {1: 0, 2: 0}, []
    t0 = time.perf_counter()
    for i in range(n):
        answers.append(post(env, {"records": [env.records[i % len(env.records)]]}))
    rate = n / (time.perf_counter() - t0)
    for i, (status, payload) in enumerate(answers):
        assert status == 200, payload
        v = payload["model_version"]
        seen[v] += 1
        assert payload["predictions"] == env.bundles[v].predict_records(
            [env.records[i % len(env.records)]]
        )
    print(f"\n{n} sequential requests over HTTP, two versions: {rate:.0f} req/s; split {seen}")
    sd = math.sqrt(n * 0.25)
    for v in (1, 2):
        assert abs(seen[v] - n / 2) < 5 * sd, seen

    from workbench.serving import sticky_choice

    for i in range(20):
        key = f"user-{i}"
        _, a = post(env, {"records": [env.records[i]]}, key=key)
        _, b = post(env, {"records": [env.records[i + 1]]}, key=key)
        assert a["model_version"] == b["model_version"] == sticky_choice(weights, key)
    assert health(env)["replica"] == before["replica"]


def test_unknown_version_is_rejected_before_serve_is_touched(env):
    from workbench.exceptions import ConfigError, NotFoundError

    before = health(env)
    with pytest.raises(NotFoundError, match="no version 99"):
        env.serving.set_traffic(NAME, {1: 0.5, 99: 0.5}, actor="tester", reason="typo")
    with pytest.raises(ConfigError, match="positive weight"):
        env.serving.set_traffic(NAME, {1: 0, 2: 0}, actor="tester", reason="all zero")
    after = health(env)
    assert (
        after["versions"] == before["versions"] and after["reconfigures"] == before["reconfigures"]
    )
    assert env.store.deployments.list_traffic(NAME)[-1]["reason"] not in ("typo", "all zero")


def test_every_request_reaches_the_store_with_version_and_latency(env):
    env.serving.set_traffic(NAME, {1: 0.5, 2: 0.5}, actor="tester", reason="logging check")
    for i in range(30):
        post(env, {"records": env.records[i : i + 2]})
    post(env, {"records": [{"mean radius": "x"}]})
    counters = env.serving.flush_logs(NAME)
    assert counters["buffered"] == 0 and counters["lost"] == 0 and counters["dropped"] == 0

    rows = {r["request_id"]: r for r in env.store.deployments.list_requests(NAME, ok_only=False)}
    missing = set(env.sent) - set(rows)
    assert not missing, f"{len(missing)} of {len(env.sent)} requests were not logged"
    ids = {v: env.store.models.get_version("cancer", v)["id"] for v in (1, 2, 3)}
    for request_id, (status, version, body) in env.sent.items():
        row = rows[request_id]
        assert row["status_code"] == status
        assert row["latency_ms"] > 0
        if version is not None and not 400 <= status < 500:  # a rejected request: no version
            assert row["model_version_id"] == ids[version] and row["model_version"] == version
        elif 400 <= status < 500:
            assert row["model_version_id"] is None and not row["features"]
        if status == 200:
            records = body["records"] if "records" in body else None
            if records is not None:
                assert row["features"] == records
            assert row["prediction"] and row["error"] is None
        else:
            assert row["error"]
    ok = env.store.deployments.list_requests(NAME)
    lat = sorted(r["latency_ms"] for r in ok)
    print(
        f"\nserver-side latency over {len(lat)} ok requests: p50 {lat[len(lat) // 2]:.2f} ms, max {lat[-1]:.1f} ms"
    )
    assert all(r["status_code"] == 200 for r in ok) and len(ok) == sum(
        s == 200 for s, _, _ in env.sent.values()
    )


def _drive(env, version, n, *, limit=2000):
    """Send requests until ``version`` has answered ``n`` of them (bounded); returns status counts."""
    served, statuses, sent = 0, {}, 0
    while served < n:
        assert sent < limit, f"version {version} answered {served}/{n} after {sent} requests"
        status, payload = post(env, {"records": [env.records[sent % len(env.records)]]})
        sent += 1
        statuses[status] = statuses.get(status, 0) + 1
        served += payload.get("model_version") == version
    return statuses


def test_healthy_canary_goes_10_50_100_and_completes(env):
    from workbench.serving import CanaryRollout

    env.serving.set_traffic(NAME, {1: 1.0}, actor="tester", reason="before canary")
    canary = CanaryRollout(
        env.serving, NAME, champion=1, challenger=2, min_requests=20, actor="canary-bot"
    )
    assert canary.start() == {1: 0.9, 2: 0.1}
    assert canary.advance() == "waiting"

    shares = []
    for expected in ("advanced", "advanced", "completed"):
        shares.append(health(env)["versions"]["2"]["weight"])
        assert set(_drive(env, 2, 20)) == {200}
        analysis = canary.analyze()
        assert analysis["versions"][2]["requests"] >= 20
        assert analysis["versions"][2]["error_rate"] == 0.0
        assert analysis["versions"][2]["p50_ms"] <= analysis["versions"][2]["p99_ms"]
        assert canary.advance() == expected
    assert shares == [0.1, 0.5, 1.0]
    assert canary.advance() == "completed"
    assert env.serving.traffic(NAME) == {1: 0.0, 2: 1.0}
    reasons = [r["reason"] for r in env.store.deployments.list_traffic(NAME)[-3:]]
    assert all(r.startswith("canary step") for r in reasons), reasons
    assert all(r["actor"] == "canary-bot" for r in env.store.deployments.list_traffic(NAME)[-3:])
    assert any(a["action"] == "canary.completed" for a in env.store.audit_log(20))


def test_broken_challenger_answers_500_and_the_canary_rolls_back(env):
    from workbench.serving import CanaryRollout

    env.serving.set_traffic(NAME, {1: 1.0}, actor="tester", reason="before broken canary")
    before = health(env)
    canary = CanaryRollout(
        env.serving, NAME, champion=1, challenger=3, min_requests=20, actor="canary-bot"
    )
    canary.start()
    statuses = _drive(env, 3, 1)
    assert statuses.get(500) == 1 and set(statuses) <= {200, 500}
    failure = next(rid for rid, (s, v, _) in reversed(env.sent.items()) if s == 500)
    assert env.sent[failure][1] == 3
    # The model raised inside the replica; it answered 500 and the same process keeps serving.
    assert health(env)["replica"] == before["replica"]
    assert 200 in _drive(env, 1, 3)

    assert canary.advance() == "rolled_back"
    assert env.serving.traffic(NAME) == {1: 1.0, 3: 0.0}
    last = env.store.deployments.list_traffic(NAME)[-1]
    assert (
        last["actor"] == "canary-bot" and "error rate" in last["reason"] and "v3" in last["reason"]
    )
    for _ in range(20):
        status, payload = post(env, {"records": env.records[:1]})
        assert status == 200 and payload["model_version"] == 1
    env.serving.flush_logs(NAME)
    errors = [
        r
        for r in env.store.deployments.list_requests(NAME, ok_only=False)
        if r["status_code"] == 500
    ]
    assert errors and all(
        r["model_version"] == 3 and "model version 3 failed" in r["error"] for r in errors
    )
    assert canary.advance() == "rolled_back"


def test_rollback_restores_the_previous_main_version(env):
    env.serving.set_traffic(NAME, {1: 1.0}, actor="tester", reason="v1 only")
    env.serving.set_traffic(NAME, {1: 0.2, 2: 0.8}, actor="tester", reason="mostly v2")
    weights = env.serving.rollback(NAME, actor="oncall", reason="v2 looks off")
    assert weights == {1: 1.0, 2: 0.0}
    assert {k: v["weight"] for k, v in health(env)["versions"].items()} == {"1": 1.0, "2": 0.0}
    for i in range(20):
        status, payload = post(env, {"records": [env.records[i]]})
        assert status == 200 and payload["model_version"] == 1
    last = env.store.deployments.list_traffic(NAME)[-1]
    assert last["actor"] == "oncall" and last["reason"].startswith(
        "v2 looks off: 100% to version 1"
    )

    assert env.serving.rollback(NAME, to_version=2, actor="oncall") == {1: 0.0, 2: 1.0}
    from workbench.exceptions import NotFoundError

    with pytest.raises(NotFoundError):
        env.serving.rollback(NAME, to_version=42)


def test_traffic_history_records_every_change_with_actor_and_reason(env):
    history = env.store.deployments.list_traffic(NAME)
    assert len(history) >= 12
    assert history[0]["reason"] == "initial deployment"
    for row in history:
        assert row["actor"] and row["reason"]
        w = {int(k): v for k, v in row["weights"].items()}
        assert math.isclose(sum(w.values()), 1.0)
    actions = [a["action"] for a in env.store.audit_log(500)]
    assert actions.count("traffic.change") == len(history)
    dep_id = env.store.deployments.get(NAME)["id"]
    deployed = {
        e["src_id"]
        for e in env.store.edges(dst=("deployment", dep_id))
        if e["relation"] == "deployed_to"
    }
    assert {env.store.models.get_version("cancer", v)["id"] for v in (1, 2, 3)} <= deployed


def test_second_app_on_the_same_port_and_undeploy(env):
    info = env.serving.deploy(
        "cancer", 2, name="cancer-blue", actor="tester", reason="blue-green standby"
    )
    assert info["url"] == f"http://127.0.0.1:{env.port}/cancer-blue"
    out = env.serving.predict("cancer-blue", env.records[:3])
    assert out["model_version"] == 2 and out["predictions"] == env.bundles[2].predict_records(
        env.records[:3]
    )
    from workbench.exceptions import InvalidRequestError

    with pytest.raises(InvalidRequestError) as err:
        env.serving.predict("cancer-blue", [{"mean radius": 1.0}])
    assert err.value.field
    assert health(env)["deployment"] == NAME  # the first app is untouched

    env.serving.undeploy("cancer-blue", actor="tester")
    assert env.store.deployments.get("cancer-blue")["status"] == "deleted"
    assert env.client.get(f"http://127.0.0.1:{env.port}/cancer-blue/health").status_code == 404
    logged = env.store.deployments.list_requests("cancer-blue", ok_only=False)
    assert [r["status_code"] for r in logged] == [200, 422]
