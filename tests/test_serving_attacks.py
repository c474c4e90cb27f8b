"""Attacks on a real Serve endpoint over loopback HTTP: each gets a safe status and leaves no trace.

One deployment for the module. Every case asserts the status code AND what the store holds
afterwards: no request-log row carrying the attack's content or a model version, traffic
unchanged. The named API-key cases run last (a key turns authentication on for the endpoint).
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.ray

NAME = "attacked"
ATTACKS: list[str] = []  # every attack tried, for the count in the docs


@pytest.fixture(scope="module")
def env(serve_apps, tmp_path_factory):
    from tests._serve_env import cancer_bundle, champion_env, register_bundles

    with champion_env(
        tmp_path_factory, NAME, versions=2, reason="attack tests", apps=serve_apps
    ) as env:
        bundle, _ = cancer_bundle()
        register_bundles(env.store, env.artifacts, "other-model", [bundle])
        env.serving.deploy(NAME, 1)
        env.url = f"http://127.0.0.1:{env.port}/{NAME}"
        yield env


def _rows(env):
    env.serving.flush_logs(NAME)
    return env.store.deployments.list_requests(NAME, ok_only=False)


def _traffic(env):
    return [r["id"] for r in env.store.deployments.list_traffic(NAME)]


def _raw(port: int, head: bytes, body: bytes = b"", *, timeout: float = 15.0) -> int:
    """Send raw bytes on a fresh connection; the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def _assert_no_trace(env, before_rows, before_traffic, *, allow_summaries=True):
    """Nothing but bounded summaries was logged since ``before_rows``; traffic unchanged."""
    new = [r for r in _rows(env) if r["id"] > before_rows]
    for r in new:
        assert allow_summaries, new
        assert 400 <= r["status_code"] < 500, r
        assert r["model_version_id"] is None and not r["features"] and not r["prediction"], r
        assert len(r["error"] or "") <= 400, r
    assert _traffic(env) == before_traffic
    return new


def _last_id(env):
    rows = _rows(env)
    return rows[-1]["id"] if rows else 0


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_a_post_that_is_not_json_is_415_and_not_processed(env, content_type):
    import httpx

    ATTACKS.append(f"content-type {content_type}")
    before, traffic = _last_id(env), _traffic(env)
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps({"records": [env.records[0]]})
    resp = httpx.post(env.url + "/predict", content=body, headers=headers)
    assert resp.status_code == 415, resp.text
    assert "application/json" in resp.json()["error"]
    _assert_no_trace(env, before, traffic)


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io", "10.0.0.1"]
)
def test_another_host_is_421_dns_rebinding(env, host):
    import httpx

    ATTACKS.append(f"host {host}")
    before, traffic = _last_id(env), _traffic(env)
    for method, path in (("GET", "/health"), ("POST", "/predict")):
        resp = httpx.request(
            method, env.url + path, json={"records": [env.records[0]]}, headers={"host": host}
        )
        assert resp.status_code == 421, (path, resp.text)
    _assert_no_trace(env, before, traffic, allow_summaries=False)
    for ok in (f"127.0.0.1:{env.port}", f"localhost:{env.port}"):
        assert httpx.get(env.url + "/health", headers={"host": ok}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000,
        b'{"records": [' + b'{"a": ' * 960 + b"1" + b"}" * 960 + b"]}",
        b'{"records": [{"mean radius": "' + b"x" * 100_000 + b'"}]}',
        b'{"records": ' + b"[" * 40 + b"]" * 40 + b"}",
        b'{"records": [' + b"0," * 100_000 + b"0]}",
    ],
    ids=["200k-brackets", "960-deep-record", "100k-string", "40-deep", "100k-values"],
)
def test_deep_or_huge_json_is_400_fast_and_not_logged_raw(env, body):
    import httpx

    ATTACKS.append(f"json {body[:20]!r}")
    before, traffic = _last_id(env), _traffic(env)
    t0 = time.perf_counter()
    resp = httpx.post(
        env.url + "/predict", content=body, headers={"content-type": "application/json"}
    )
    took = time.perf_counter() - t0
    assert resp.status_code in (400, 422), resp.text
    assert took < 2.0, took
    new = _assert_no_trace(env, before, traffic)
    assert len(new) == 1 and new[0]["status_code"] == resp.status_code


def test_poison_among_50_good_requests_keeps_all_50(env):
    import httpx

    ATTACKS.append("poison rows mixed with good ones")
    before = _last_id(env)
    poison = b'{"records": [' + b'{"a": ' * 960 + b"1" + b"}" * 960 + b"]}"
    statuses: list[int] = []
    lock = threading.Lock()

    def good(i):
        with httpx.Client(timeout=60) as c:
            r = c.post(env.url + "/predict", json={"records": [env.records[i]]})
        with lock:
            statuses.append(r.status_code)

    def bad():
        with httpx.Client(timeout=60) as c:
            c.post(
                env.url + "/predict", content=poison, headers={"content-type": "application/json"}
            )

    threads = [threading.Thread(target=good, args=(i,)) for i in range(50)]
    threads += [threading.Thread(target=bad) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses.count(200) == 50
    new = [r for r in _rows(env) if r["id"] > before]
    ok = [r for r in new if r["status_code"] == 200]
    assert len(ok) == 50 and all(r["features"] and r["model_version_id"] for r in ok)
    assert all(r["model_version_id"] is None for r in new if r["status_code"] != 200)


def test_huge_declared_length_is_413_before_reading(env):
    ATTACKS.append("content-length 2 GiB")
    before, traffic = _last_id(env), _traffic(env)
    head = (
        f"POST /{NAME}/predict HTTP/1.1\r\nHost: 127.0.0.1:{env.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n"
    ).encode()
    t0 = time.perf_counter()
    assert _raw(env.port, head, b'{"records": [') == 413
    assert time.perf_counter() - t0 < 5
    _assert_no_trace(env, before, traffic)


@pytest.mark.parametrize("length", ["²", "2.9", "1" + "0" * 30, "true", "-1"])
def test_a_malformed_content_length_is_400_never_500(env, length):
    ATTACKS.append(f"content-length {length}")
    before, traffic = _last_id(env), _traffic(env)
    head = (
        f"POST /{NAME}/predict HTTP/1.1\r\nHost: 127.0.0.1:{env.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()
    status = _raw(env.port, head, b"{}")
    assert 400 <= status < 500 and status != 421, status
    _assert_no_trace(env, before, traffic)


def test_chunked_body_over_the_cap_is_413(env):
    ATTACKS.append("chunked 2 MiB")
    before, traffic = _last_id(env), _traffic(env)
    head = (
        f"POST /{NAME}/predict HTTP/1.1\r\nHost: 127.0.0.1:{env.port}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"[" + b" " * (64 * 1024 - 1)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(32)) + b"0\r\n\r\n"
    try:
        status = _raw(env.port, head, body)
    except (ConnectionResetError, BrokenPipeError):  # answered 413 and closed mid-upload
        status = 413
    assert status == 413
    _assert_no_trace(env, before, traffic)


def test_gzip_bomb_is_refused_and_never_inflated(env):
    import httpx

    ATTACKS.append("gzip bomb /predict")
    ATTACKS.append("gzip bomb v2 infer")
    before, traffic = _last_id(env), _traffic(env)
    bomb = gzip.compress(b"[" + b" " * (64 << 20) + b"]")  # 64 MiB of JSON in ~64 KiB
    assert len(bomb) < 200_000
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    assert httpx.post(env.url + "/predict", content=bomb, headers=headers).status_code == 415
    v2 = f"{env.url}/v2/models/{NAME}/infer"
    assert httpx.post(v2, content=bomb, headers=headers).status_code == 413
    _assert_no_trace(env, before, traffic)


@pytest.mark.parametrize(
    "tensor",
    [
        {"shape": [3], "datatype": "FP64", "data": [1.0]},
        {"shape": [10**30], "datatype": "FP64", "data": [1.0]},
        {"shape": ["²"], "datatype": "FP64", "data": [1.0]},
        {"shape": [2.9], "datatype": "FP64", "data": [1.0]},
        {"shape": [True], "datatype": "FP64", "data": [1.0]},
        {"shape": [1], "datatype": "FP1024", "data": [1.0]},
        {"shape": [1], "datatype": "BYTES", "data": [[[[1]]]]},
    ],
)
def test_v2_shape_and_datatype_abuse_is_4xx_never_500(env, tensor):
    import httpx

    ATTACKS.append(f"v2 {tensor['shape']!r} {tensor['datatype']}")
    before, traffic = _last_id(env), _traffic(env)
    features = list(env.records[0])
    inputs = [
        {"name": f, "shape": [1], "datatype": "FP64", "data": [env.records[0][f]]}
        for f in features[1:]
    ]
    inputs.insert(0, {"name": features[0], **tensor})
    resp = httpx.post(f"{env.url}/v2/models/{NAME}/infer", json={"inputs": inputs})
    assert resp.status_code in (400, 422), resp.text
    assert resp.json()["error"]
    _assert_no_trace(env, before, traffic)


@pytest.mark.parametrize("weights", [{"²": 1.0}, {10**30: 1.0}, {"2.9": 1.0}, {True: 1.0}])
def test_traffic_keys_are_parsed_strictly(env, weights):
    from workbench.exceptions import WorkbenchError

    ATTACKS.append(f"traffic key {list(weights)[0]!r}")
    traffic = _traffic(env)
    with pytest.raises((WorkbenchError, ValueError)):
        env.serving.set_traffic(NAME, weights)
    assert _traffic(env) == traffic


def test_slow_uploads_do_not_stall_the_replica(env):
    import httpx

    ATTACKS.append("8 slow uploads")
    socks = []
    head = (
        f"POST /{NAME}/predict HTTP/1.1\r\nHost: 127.0.0.1:{env.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    try:
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", env.port), timeout=30)
            s.sendall(head + b'{"records": [')
            socks.append(s)
        time.sleep(0.5)
        with httpx.Client(timeout=10) as c:
            for i in range(5):
                t0 = time.perf_counter()
                r = c.post(env.url + "/predict", json={"records": [env.records[i]]})
                assert r.status_code == 200 and time.perf_counter() - t0 < 3
    finally:
        for s in socks:
            s.close()


def test_a_client_cannot_pick_its_version_while_a_canary_runs(env):
    import httpx

    ATTACKS.append("sticky key during a canary")
    env.serving.apply_traffic(
        NAME, {1: 0.5, 2: 0.5}, actor="tester", reason="attack: canary", kind="canary"
    )
    try:
        before = _last_id(env)
        seen = set()
        with httpx.Client(timeout=30) as c:
            for i in range(24):
                r = c.post(
                    env.url + "/predict",
                    json={"records": [env.records[i]], "key": "pin-me"},
                    headers={"x-workbench-key": "pin-me"},
                )
                assert r.status_code == 200
                seen.add(r.json()["model_version"])
            bad = c.post(env.url + "/predict", json={"records": [{"x": 1}]})
            assert bad.status_code == 422
        assert seen == {1, 2}  # a sticky key would pin one version (chance of this: 2 in 2**24)
        new = [r for r in _rows(env) if r["id"] > before]
        rejected = [r for r in new if r["status_code"] != 200]
        assert len(rejected) == 1 and rejected[0]["model_version_id"] is None  # not the canary's
    finally:
        env.serving.set_traffic(NAME, {1: 1.0}, actor="tester", reason="attack: canary over")


def test_redeploying_another_model_under_the_name_is_refused(env):
    from workbench.exceptions import DeploymentError

    ATTACKS.append("redeploy another model")
    traffic = _traffic(env)
    with pytest.raises(DeploymentError, match="undeploy it first"):
        env.serving.deploy("other-model", 1, name=NAME)
    assert _traffic(env) == traffic
    assert env.store.deployments.get(NAME)["model"] == NAME


def test_named_api_keys_scopes_names_and_revocation(env):
    import httpx

    from workbench.serving._auth import token_digest

    ATTACKS.extend(["no key", "wrong key", "health key on predict", "revoked key"])
    predict = env.serving.create_api_key("ci", scopes=("predict",))
    probe = env.serving.create_api_key("probe", scopes=("health",))
    listed = env.serving.api_keys()
    assert [k["name"] for k in listed] == ["ci", "probe"]
    assert not any(
        predict in json.dumps(k) or token_digest(predict) in json.dumps(k) for k in listed
    )
    before, traffic = _last_id(env), _traffic(env)
    body = {"records": [env.records[0]]}

    def post(key):
        h = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(env.url + "/predict", json=body, headers=h).status_code

    assert post(None) == 401
    assert post("wbk_" + "x" * 43) == 401
    assert post(probe) == 403
    assert (
        httpx.get(env.url + "/health", headers={"authorization": f"Bearer {probe}"}).status_code
        == 200
    )
    _assert_no_trace(env, before, traffic, allow_summaries=False)
    assert post(predict) == 200
    rows = [r for r in _rows(env) if r["id"] > before]
    assert [(r["status_code"], r["api_key"]) for r in rows] == [(200, "ci")]
    t0 = time.perf_counter()
    env.serving.revoke_api_key("ci")
    revoke_s = time.perf_counter() - t0
    assert post(predict) == 401
    assert revoke_s < 10
    health = env.serving.health(NAME)
    assert health["refused"]["401"] >= 3 and health["refused"]["403"] == 1
    print(f"attacks tried: {len(ATTACKS)}; revoke took effect in {revoke_s:.2f} s")
