"""Open Inference Protocol v2 on a workbench deployment, checked with the real ``tritonclient[http]``.

Units first: the request bytes tritonclient builds decode into the right
records, and our responses decode with tritonclient's own parser. Then one
deployment (breast cancer, 30 FP64 inputs, a BYTES label) with a bearer
token: its v2 routes and every missing or wrong token on a router in-process
(``LocalRouter``), then on the session's Serve over real HTTP tritonclient,
a 401, and a search of the Ray logs and the store for the token.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from workbench.exceptions import InvalidRequestError
from workbench.serving._v2 import decode_infer, encode_infer, model_metadata

KINDS = {"x": "number", "colour": "string", "flag": "boolean"}
ROWS = [
    {"x": 1.5, "colour": "red", "flag": True},
    {"x": -2.0, "colour": "grün", "flag": False},
]


def _triton_inputs(binary: bool):
    import tritonclient.http as triton

    x = triton.InferInput("x", [2], "FP64").set_data_from_numpy(
        np.array([1.5, -2.0]), binary_data=binary
    )
    colour = triton.InferInput("colour", [2], "BYTES").set_data_from_numpy(
        np.array([b"red", "grün".encode()], dtype=object), binary_data=binary
    )
    flag = triton.InferInput("flag", [2], "BOOL").set_data_from_numpy(
        np.array([True, False]), binary_data=binary
    )
    return [x, colour, flag]


def _triton_request(inputs, outputs=None, **kwargs):
    from tritonclient.http._utils import _get_inference_request

    body, json_size = _get_inference_request(
        inputs=inputs,
        request_id=kwargs.get("request_id", ""),
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=kwargs.get("parameters"),
    )
    headers = {} if json_size is None else {"inference-header-content-length": str(json_size)}
    return body, headers


@pytest.mark.parametrize("binary", [True, False])
def test_what_tritonclient_sends_decodes_to_records(binary):
    body, headers = _triton_request(
        _triton_inputs(binary), request_id="abc", parameters={"key": "user-7"}
    )
    req = decode_infer(body, headers, KINDS, max_body_bytes=1 << 20)
    assert req.records == ROWS
    assert req.client_id == "abc" and req.key == "user-7"
    assert req.binary_output is True  # tritonclient asks for binary outputs when none are named


def test_requested_json_output_and_gzip_body():
    import tritonclient.http as triton

    out = triton.InferRequestedOutput("prediction", binary_data=False)
    body, headers = _triton_request(_triton_inputs(True), outputs=[out])
    req = decode_infer(
        gzip.compress(body), {**headers, "content-encoding": "gzip"}, KINDS, max_body_bytes=1 << 20
    )
    assert req.records == ROWS and req.binary_output is False


def test_a_gzip_bomb_is_413_not_a_memory_blowup():
    from workbench.serving._codecs import HTTPError

    bomb = gzip.compress(b" " * (8 << 20))  # 8 MiB of spaces in ~8 KiB
    with pytest.raises(HTTPError) as err:
        decode_infer(bomb, {"content-encoding": "gzip"}, KINDS, max_body_bytes=1 << 20)
    assert err.value.status == 413


@pytest.mark.parametrize(
    "mutate, field, needle",
    [
        (lambda b: b.update(inputs=b["inputs"][:2]), "flag", "missing input 'flag'"),
        (lambda b: b.update(model_name="m"), "model_name", "unknown field 'model_name'"),
        (lambda b: b["inputs"][0].update(datatype="BYTES"), "x", "feature 'x' is a number"),
        (lambda b: b["inputs"][2].update(datatype="INT8"), "flag", "send BOOL"),
        (lambda b: b["inputs"][1].update(shape=[2, 2]), "colour", "shape [N] or [N, 1]"),
        (lambda b: b["inputs"][1].update(shape=[3]), "colour", "has shape [3] but 2 values"),
        (lambda b: b["inputs"][1].update(shape=["2"]), "colour", "non-negative integers"),
        (lambda b: b["inputs"][0].pop("data"), "x", "has no 'data'"),
        (lambda b: b["inputs"].append(dict(b["inputs"][0])), "x", "given twice"),
        (lambda b: b.update(outputs=[{"name": "proba"}]), "outputs", "unknown output 'proba'"),
        (
            lambda b: b["inputs"][0].update(parameters={"shared_memory_region": "r"}),
            "x",
            "shared-memory",
        ),
        (lambda b: b.update(parameters={"key": 7}), "key", "must be a string"),
    ],
)
def test_json_infer_errors_name_the_input(mutate, field, needle):
    body, _ = _triton_request(_triton_inputs(False))
    request = json.loads(body)
    mutate(request)
    with pytest.raises(InvalidRequestError) as err:
        decode_infer(json.dumps(request).encode(), {}, KINDS, max_body_bytes=1 << 20)
    assert err.value.field == field and needle in str(err.value), str(err.value)


def test_binary_errors_name_the_input():
    body, headers = _triton_request(_triton_inputs(True))
    size = int(headers["inference-header-content-length"])
    with pytest.raises(InvalidRequestError, match="runs past the end"):
        decode_infer(body[:-3], headers, KINDS, max_body_bytes=1 << 20)
    with pytest.raises(InvalidRequestError, match="follow the tensors"):
        decode_infer(body + b"xx", headers, KINDS, max_body_bytes=1 << 20)
    with pytest.raises(InvalidRequestError, match="within the body"):
        decode_infer(
            body,
            {"inference-header-content-length": str(len(body) + 1)},
            KINDS,
            max_body_bytes=1 << 20,
        )
    # The colour tensor's second string is not UTF-8.
    bad = body.replace("grün".encode(), b"gr\xff\xfen")
    with pytest.raises(InvalidRequestError, match="row 1 is not valid UTF-8") as err:
        decode_infer(bad, headers, KINDS, max_body_bytes=1 << 20)
    assert err.value.field == "colour" and size > 0


@pytest.mark.parametrize(
    "datatype, predictions", [("BYTES", ["benign", "malignant"]), ("FP64", [1.5, None])]
)
@pytest.mark.parametrize("binary", [True, False])
def test_responses_decode_with_tritonclient(datatype, predictions, binary):
    from tritonclient.http import InferResult

    body, headers = encode_infer(
        model_name="m",
        version=3,
        request_id="r1",
        client_id=None,
        predictions=predictions,
        warnings=[{"row": 1, "message": "the model predicted NaN; returned as null"}]
        if None in predictions
        else [],
        datatype=datatype,
        binary=binary,
    )
    result = InferResult.from_response_body(
        body, header_length=headers.get("inference-header-content-length")
    )
    got = result.as_numpy("prediction")
    if datatype == "BYTES":
        assert [v.decode() if isinstance(v, bytes) else v for v in got] == predictions
    else:
        assert got[0] == 1.5 and np.isnan(got[1])
        assert "row 1" in result.get_response()["parameters"]["warnings"]
    response = result.get_response()
    assert response["model_version"] == "3" and response["id"] == "r1"


def test_metadata_lists_one_tensor_per_feature():
    from types import SimpleNamespace as NS

    bundle = NS(features=KINDS, task="classification", classes=["a", "b"], pipeline=object())
    routing = NS(weights={1: 0.9, 2: 0.1}, versions={1: NS(bundle=bundle), 2: NS(bundle=bundle)})
    meta = model_metadata("m", routing)
    assert meta["versions"] == ["1", "2"]
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP64", "shape": [-1]},
        {"name": "colour", "datatype": "BYTES", "shape": [-1]},
        {"name": "flag", "datatype": "BOOL", "shape": [-1]},
    ]
    assert meta["outputs"] == [{"name": "prediction", "datatype": "BYTES", "shape": [-1]}]


# ----------------------------------------------------------------------- on Serve

NAME = "cancer"
TOKEN = "wb-" + "7c1d" * 8  # what a user would put in WORKBENCH_SERVE_TOKEN
WRONG = "wb-" + "0bad" * 8
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def auth():
    """A fresh header dict per call: tritonclient.infer adds its own headers to the dict it is given."""
    return dict(AUTH)


@pytest.fixture(scope="module")
def env(serve_apps, tmp_path_factory):
    import httpx
    from _serve_env import cancer_bundle, close_env, serve_env

    bundle, records = cancer_bundle()
    ns = serve_env(tmp_path_factory, NAME, [bundle], apps=serve_apps, token=TOKEN)
    ns.info = ns.serving.deploy(NAME, 1, actor="tester")
    ns.bundle, ns.records = bundle, records
    ns.client = httpx.Client(base_url=ns.info["url"], timeout=30)
    try:
        yield ns
    finally:
        ns.client.close()
        close_env(ns)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The module's deployment (same model, same token) as a router in-process."""
    from _serve_env import LocalRouter, cancer_bundle

    from workbench.serving._auth import token_digest

    bundle, records = cancer_bundle()
    router = LocalRouter(
        tmp_path_factory.mktemp("local-v2"),
        [bundle],
        deployment=NAME,
        token_sha256=token_digest(TOKEN),
    )
    return SimpleNamespace(router=router, records=records)


@pytest.fixture
def triton(env):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(f"127.0.0.1:{env.port}/{NAME}")
    yield client
    client.close()


def _inputs(records, *, binary=True):
    import tritonclient.http as triton

    out = []
    for feature in records[0]:
        t = triton.InferInput(feature, [len(records)], "FP64")
        t.set_data_from_numpy(np.array([r[feature] for r in records]), binary_data=binary)
        out.append(t)
    return out


@pytest.mark.ray
def test_tritonclient_health_metadata_and_infer(env, triton):
    import tritonclient.http as tc

    assert triton.is_server_live() and triton.is_server_ready()  # probes need no token
    assert triton.is_model_ready(NAME, headers=auth())
    assert triton.is_model_ready(NAME, "1", headers=auth())
    assert not triton.is_model_ready(NAME, "9", headers=auth())
    assert triton.get_server_metadata(headers=auth())["extensions"] == ["binary_tensor_data"]
    meta = triton.get_model_metadata(NAME, headers=auth())
    assert meta["name"] == NAME and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == list(env.bundle.features)
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"] == [
        {"name": "prediction", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
        {"name": "classes", "datatype": "BYTES", "shape": [2]},
    ]

    batch = env.records[:5]
    expected = env.bundle.predict_records(batch)
    result = triton.infer(
        NAME, _inputs(batch), headers=auth(), request_id="t-1"
    )  # binary both ways
    assert [v.decode() for v in result.as_numpy("prediction")] == expected
    response = result.get_response()
    assert response["model_name"] == NAME and response["model_version"] == "1"
    assert response["id"] == "t-1" and len(response["parameters"]["request_id"]) == 32

    as_json = triton.infer(
        NAME,
        _inputs(batch, binary=False),
        outputs=[tc.InferRequestedOutput("prediction", binary_data=False)],
        headers=auth(),
        request_compression_algorithm="gzip",
    )
    assert list(as_json.as_numpy("prediction")) == expected


@pytest.mark.ray
def test_tritonclient_sees_v2_errors(env, triton):
    import tritonclient.http as tc

    with pytest.raises(tc.InferenceServerException) as err:
        triton.infer(NAME, _inputs(env.records[:2])[1:], headers=auth())
    assert err.value.status() == "400" and "missing input 'mean radius'" in err.value.message()
    with pytest.raises(tc.InferenceServerException) as err:
        triton.infer("no-such-model", _inputs(env.records[:1]), headers=auth())
    assert err.value.status() == "404" and "unknown model 'no-such-model'" in err.value.message()
    with pytest.raises(tc.InferenceServerException) as err:
        triton.infer(NAME, _inputs(env.records[:1]))  # no token
    assert err.value.status() == "401"
    with pytest.raises(tc.InferenceServerException) as err:
        triton.get_model_metadata(NAME, headers={"Authorization": f"Bearer {WRONG}"})
    assert err.value.status() == "401" and WRONG not in err.value.message()


@pytest.mark.ray
def test_plain_http_json_infer_as_in_the_docs(env):
    record = env.records[0]
    body = {
        "id": "doc-1",
        "inputs": [
            {"name": f, "shape": [1], "datatype": "FP64", "data": [v]} for f, v in record.items()
        ],
    }
    resp = env.client.post(f"/v2/models/{NAME}/infer", json=body, headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    out = resp.json()
    assert out["id"] == "doc-1" and out["model_name"] == NAME and out["model_version"] == "1"
    assert out["outputs"] == [
        {
            "name": "prediction",
            "datatype": "BYTES",
            "shape": [1],
            "data": env.bundle.predict_records([record]),
        }
    ]
    assert resp.headers["workbench-request-id"] == out["parameters"]["request_id"]


@pytest.mark.parametrize(
    "method, path, status, needle",
    [
        ("GET", f"/v2/models/{NAME}/infer", 405, "use POST"),
        ("POST", f"/v2/models/{NAME}", 405, "use GET"),
        ("GET", "/v2/models/other", 404, "unknown model 'other'"),
        ("GET", f"/v2/models/{NAME}/versions/9", 404, "no loaded version '9'"),
        ("POST", f"/v2/models/{NAME}/versions/1/infer", 400, "pinned version"),
        ("GET", "/v2/nothing", 404, "no v2 route"),
    ],
)
def test_v2_routes_answer_in_the_v2_error_format(local, method, path, status, needle):
    resp = local.router.request(method, path, headers=AUTH, json={} if method == "POST" else None)
    assert resp.status_code == status, resp.text
    assert list(resp.json()) == ["error"] and needle in resp.json()["error"]


@pytest.mark.parametrize(
    "path, method",
    [
        ("/predict", "POST"),
        ("/health", "GET"),
        (f"/v2/models/{NAME}/infer", "POST"),
        ("/v2", "GET"),
    ],
)
@pytest.mark.parametrize(
    "header",
    [None, f"Bearer {WRONG}", f"Basic {TOKEN}", TOKEN],
    ids=["no-header", "wrong-token", "basic-scheme", "no-scheme"],  # test ids hold no token
)
def test_missing_or_wrong_token_is_401_and_the_body_never_holds_a_token(
    local, path, method, header
):
    headers = {} if header is None else {"Authorization": header}
    body = {"records": local.records[:1]} if path == "/predict" else {"inputs": []}
    resp = local.router.request(
        method, path, headers=headers, json=body if method == "POST" else None
    )
    assert resp.status_code == 401, resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in resp.text and WRONG not in resp.text
    assert "bearer" in resp.json()["error"].lower()
    if path.startswith("/v2"):
        assert list(resp.json()) == ["error"]
    else:
        assert resp.json()["field"] == "authorization"


@pytest.mark.ray
def test_the_token_reaches_neither_logs_nor_the_store(env):
    import ray

    # Requests that carry the token (and a wrong one) through every path, then flush the logs.
    out = env.serving.predict(NAME, env.records[:2])  # the deployer sends the token itself
    assert out["predictions"] == env.bundle.predict_records(env.records[:2])
    denied = env.client.post(
        "/predict", json={"records": env.records[:1]}, headers={"Authorization": f"Bearer {WRONG}"}
    )
    assert denied.status_code == 401
    env.client.post("/predict", json={"records": [{"x": 1}]}, headers=AUTH)  # a 422
    env.serving.flush_logs(NAME)

    rows = env.store.deployments.list_requests(NAME, ok_only=False)
    assert denied.headers["workbench-request-id"] not in {r["request_id"] for r in rows}, (
        "401s are counted, not logged"
    )
    assert {200, 422} <= {r["status_code"] for r in rows} and 401 not in {
        r["status_code"] for r in rows
    }
    dump = json.dumps(rows, default=str)
    assert TOKEN not in dump and WRONG not in dump
    config = env.serving._handle(NAME).config.remote().result(timeout_s=30)
    assert TOKEN not in json.dumps(config) and config["token_sha256"]
    for suffix in ("", "-wal"):
        path = Path(str(env.settings.db_path) + suffix)
        if path.exists():
            data = path.read_bytes()
            assert TOKEN.encode() not in data and WRONG.encode() not in data, path

    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    files = [p for p in logs.rglob("*") if p.is_file()]
    serve_logs = [p for p in files if "serve" in p.parts]
    assert serve_logs, f"no Serve logs under {logs}"
    access = b"".join(p.read_bytes() for p in serve_logs if "replica" in p.name)
    assert b"/predict" in access or b"POST" in access, "replica access logs were not written"
    leaked = [
        str(p)
        for p in files
        if TOKEN.encode() in p.read_bytes() or WRONG.encode() in p.read_bytes()
    ]
    assert not leaked, f"the token appears in {leaked}"
    assert os.environ.get("WORKBENCH_SERVE_TOKEN") != TOKEN  # nothing set it behind our back
