"""Bad input against the model's signature: every bad request is a precise 4xx, nothing crashes a replica,
and a NaN prediction is never a 500.

Unit tests of the policy functions first; then two deployments of the same mixed-type model (a
number, a string, a boolean): ``mixed`` rejects NaN/inf and takes bodies up to 64 KiB,
``mixed-impute`` treats NaN/inf as missing. The request cases run on both as routers in-process
(``LocalRouter``: the real router, its codecs and validation, in milliseconds); ``mixed`` on the
session's Serve answers the cases that prove the wiring end to end over HTTP (both options reach
the replica, which survives a burst of bad requests; tritonclient's binary tensors; the request
log).
"""

from __future__ import annotations

import json
import math
import warnings as _warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from workbench.exceptions import ConfigError, InvalidRequestError
from workbench.serving._validation import (
    apply_non_finite_policy,
    sanitize_predictions,
    validation_options,
)

# ----------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    "value, shown", [(float("nan"), "NaN"), (float("inf"), "Infinity"), (-math.inf, "-Infinity")]
)
def test_non_finite_is_rejected_naming_row_and_feature(value, shown):
    records = [{"x": 1.0, "c": "a"}, {"x": value, "c": "b"}]
    with pytest.raises(InvalidRequestError) as err:
        apply_non_finite_policy(records, "reject")
    assert err.value.field == "x"
    assert str(err.value).startswith(f"record 1: feature 'x' is {shown}")
    assert 'non_finite="impute"' in str(err.value)


def test_impute_turns_non_finite_into_missing_and_leaves_the_rest():
    records = [{"x": float("nan"), "c": "a"}, {"x": 2.0, "c": "b"}, "not a record"]
    out = apply_non_finite_policy(records, "impute")
    assert out == [{"x": None, "c": "a"}, {"x": 2.0, "c": "b"}, "not a record"]
    assert math.isnan(records[0]["x"])  # the caller's records are not modified


def test_integers_beyond_float_range_are_rejected_under_both_policies():
    for policy in ("reject", "impute"):
        with pytest.raises(InvalidRequestError, match="beyond the range") as err:
            apply_non_finite_policy([{"x": 10**400}], policy)
        assert err.value.field == "x"
    assert apply_non_finite_policy([{"x": 10**300}]) == [{"x": 10**300}]


def test_validation_options_name_the_bad_option():
    assert validation_options({"max_body_bytes": None})["max_body_bytes"] == 1 << 20
    with pytest.raises(ConfigError, match="non_finite"):
        validation_options({"non_finite": "drop"})
    for bad in (0, -1, True, 1.5, "1024", 2 << 30):
        with pytest.raises(ConfigError, match="max_body_bytes"):
            validation_options({"max_body_bytes": bad})


def test_non_finite_predictions_become_null_with_a_warning_per_row():
    import numpy as np

    preds = [
        np.float64(1.5),
        np.float64("nan"),
        float("-inf"),
        "benign",
        np.int64(3),
        [1.0, math.nan],
    ]
    out, warns = sanitize_predictions(preds)
    assert out == [1.5, None, None, "benign", 3, [1.0, None]]
    assert [w["row"] for w in warns] == [1, 2, 5]
    assert "NaN" in warns[0]["message"] and "-Infinity" in warns[1]["message"]
    json.dumps(out, allow_nan=False)  # what starlette does: must not raise


def test_json_codec_decodes_records_and_columns_and_applies_the_policy():
    from workbench.serving._codecs import JSONCodec

    body = b'{"columns": {"x": [1.0, NaN], "c": ["a", "b"]}, "key": "u1"}'
    records, key = JSONCodec(non_finite="impute").decode(body, {}, None)
    assert records == [{"x": 1.0, "c": "a"}, {"x": None, "c": "b"}] and key == "u1"
    with pytest.raises(InvalidRequestError, match="record 1: feature 'x' is NaN"):
        JSONCodec().decode(body, {}, None)
    with pytest.raises(InvalidRequestError, match="nests too deeply") as err:
        JSONCodec().decode(b"[" * 200_000, {}, None)
    assert err.value.field == "body"


def test_json_codec_answers_500_instead_of_raising_on_unencodable_payloads():
    from workbench.serving._codecs import JSONCodec

    resp = JSONCodec().respond(200, {"predictions": [float("nan")], "request_id": "r1"})
    assert resp.status_code == 500
    assert json.loads(resp.body)["request_id"] == "r1"


# ------------------------------------------------------- in-process routers and Serve

MODEL = "mixed"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """``mixed`` and ``mixed-impute`` as routers in-process (``.mixed``, ``.impute``)."""
    from types import SimpleNamespace

    from _serve_env import LocalRouter, mixed_bundle

    bundle, records = mixed_bundle()
    root = tmp_path_factory.mktemp("local-mixed")
    return SimpleNamespace(
        mixed=LocalRouter(root, [bundle], deployment="mixed", max_body_bytes=LIMIT),
        impute=LocalRouter(root, [bundle], deployment="mixed-impute", non_finite="impute"),
        bundle=bundle,
        records=records,
    )


def local_post(local, body, *, app="mixed", raw=False):
    """POST ``/predict`` to one of the in-process routers; (status, json)."""
    router = local.impute if app == "mixed-impute" else local.mixed
    if raw:
        resp = router.post("/predict", content=body)
    else:
        resp = router.post("/predict", json=body)
    return resp.status_code, resp.json()


@pytest.fixture(scope="module")
def env(serve_apps, tmp_path_factory):
    import httpx
    from _serve_env import close_env, mixed_bundle, serve_env

    bundle, records = mixed_bundle()
    ns = serve_env(tmp_path_factory, MODEL, [bundle], apps=serve_apps)
    ns.serving.deploy(MODEL, 1, name="mixed", max_body_bytes=LIMIT, actor="tester")
    ns.bundle, ns.records = bundle, records
    ns.client = httpx.Client(base_url=f"http://127.0.0.1:{ns.port}", timeout=30)
    try:
        yield ns
    finally:
        ns.client.close()
        close_env(ns)


def post(env, body, *, app="mixed", raw=False):
    if raw:
        resp = env.client.post(
            f"/{app}/predict", content=body, headers={"content-type": "application/json"}
        )
    else:
        resp = env.client.post(f"/{app}/predict", json=body)
    return resp.status_code, resp.json()


def _local(env, records):
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore", RuntimeWarning)  # log of a negative: the NaN we test for
        return env.bundle.predict_records(records)


GOOD = {"x": 7.5, "colour": "red", "flag": True}
HUGE = b'{"records": [{"x": 1' + b"0" * 400 + b', "colour": "red", "flag": true}]}'


@pytest.mark.parametrize(
    "case, body, status, field, needle",
    [
        (
            "missing",
            {"records": [{"x": 1.0, "colour": "red"}]},
            422,
            "flag",
            "missing feature 'flag'",
        ),
        ("extra", {"records": [{**GOOD, "size": 3}]}, 422, "size", "unknown feature 'size'"),
        ("number as text", {"records": [{**GOOD, "x": "7.5"}]}, 422, "x", "must be a number"),
        ("bool for number", {"records": [{**GOOD, "x": True}]}, 422, "x", "must be a number"),
        (
            "number for string",
            {"records": [{**GOOD, "colour": 3}]},
            422,
            "colour",
            "must be a string",
        ),
        ("text for bool", {"records": [{**GOOD, "flag": "yes"}]}, 422, "flag", "true or false"),
        ("row 2", {"records": [GOOD, GOOD, {**GOOD, "flag": 1}]}, 422, "flag", "record 2:"),
        ("NaN", b'{"records": [{"x": NaN, "colour": "red", "flag": true}]}', 422, "x", "is NaN"),
        (
            "inf",
            b'{"records": [{"x": Infinity, "colour": "a", "flag": true}]}',
            422,
            "x",
            "is Infinity",
        ),
        ("huge int", HUGE, 422, "x", "beyond the range of a 64-bit float"),
        ("empty records", {"records": []}, 422, "records", "non-empty"),
        (
            "empty columns",
            {"columns": {"x": [], "colour": [], "flag": []}},
            422,
            "columns",
            "no values",
        ),
        (
            "columnar wrong type",
            {"columns": {"x": [1.0, "b"], "colour": ["a", "b"], "flag": [True, False]}},
            422,
            "x",
            "record 1: feature 'x' must be a number",
        ),
        (
            "ragged columns",
            {"columns": {"x": [1.0, 2.0], "colour": ["a"], "flag": [True, False]}},
            422,
            "colour",
            "equally long",
        ),
        ("not JSON", b"{records: nope", 400, "body", "not valid JSON"),
        ("deep nesting", b"[" * 30_000 + b"]" * 30_000, 400, "body", "nests too deeply"),
        ("too large", {"records": [GOOD] * 2000}, 413, "body", str(LIMIT)),
    ],
)
def test_every_bad_request_is_a_precise_4xx(local, case, body, status, field, needle):
    got, payload = local_post(local, body, raw=isinstance(body, bytes))
    assert got == status, (case, payload)
    assert payload["field"] == field, (case, payload)
    assert needle in payload["error"], (case, payload)
    assert payload["request_id"]


def test_columns_and_records_give_the_same_predictions(local):
    batch = local.records[:4]
    columns = {f: [r[f] for r in batch] for f in ("x", "colour", "flag")}
    s1, by_rows = local_post(local, {"records": batch})
    s2, by_cols = local_post(local, {"columns": columns})
    assert s1 == s2 == 200
    assert by_rows["predictions"] == by_cols["predictions"] == _local(local, batch)
    assert "warnings" not in by_rows


@pytest.mark.ray
def test_impute_policy_treats_nan_as_missing(env, local):
    body = b'{"records": [{"x": NaN, "colour": "red", "flag": true}, {"x": 7.5, "colour": "red", "flag": true}]}'
    imputed = _local(env, [{**GOOD, "x": None}, GOOD])
    status, payload = local_post(local, body, app="mixed-impute", raw=True)
    assert status == 200 and payload["predictions"] == imputed, payload
    assert local_post(local, body, raw=True)[0] == 422  # the default policy still rejects it
    # deploy(non_finite="impute") reaches the replica (a reconfigure in place), and back
    assert post(env, body, raw=True)[0] == 422
    env.serving.deploy(
        MODEL, 1, name="mixed", non_finite="impute", max_body_bytes=LIMIT, actor="tester"
    )
    try:
        status, payload = post(env, body, raw=True)
        assert status == 200 and payload["predictions"] == imputed, payload
    finally:
        env.serving.deploy(MODEL, 1, name="mixed", max_body_bytes=LIMIT, actor="tester")
    assert post(env, body, raw=True)[0] == 422


@pytest.mark.ray
def test_a_nan_prediction_is_null_with_a_warning_never_a_500(env):
    records = [GOOD, {**GOOD, "x": -1e6}, GOOD]
    expected = _local(env, records)
    assert math.isnan(expected[1]) and not math.isnan(expected[0])
    status, payload = post(env, {"records": records})
    assert status == 200, payload
    assert payload["predictions"] == [expected[0], None, expected[2]]
    assert payload["warnings"] == [
        {"row": 1, "message": "the model predicted NaN; returned as null"}
    ]
    # The v2 route says the same: null in JSON, NaN in binary, the rows in parameters.warnings.
    tensors = [
        {"name": "x", "datatype": "FP64", "shape": [3], "data": [r["x"] for r in records]},
        {
            "name": "colour",
            "datatype": "BYTES",
            "shape": [3],
            "data": [r["colour"] for r in records],
        },
        {"name": "flag", "datatype": "BOOL", "shape": [3], "data": [r["flag"] for r in records]},
    ]
    resp = env.client.post("/mixed/v2/models/mixed/infer", json={"inputs": tensors})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["outputs"][0]["data"] == [expected[0], None, expected[2]]
    assert out["outputs"][0]["datatype"] == "FP64"
    assert "row 1" in out["parameters"]["warnings"]


@pytest.mark.ray
def test_tritonclient_binary_bytes_and_bool_tensors(env):
    import numpy as np
    import tritonclient.http as triton

    records = [GOOD, {**GOOD, "x": -1e6}, {"x": 6.0, "colour": "blue", "flag": False}]
    expected = _local(env, records)
    client = triton.InferenceServerClient(f"127.0.0.1:{env.port}/mixed")
    try:
        x = triton.InferInput("x", [3], "FP64")
        x.set_data_from_numpy(np.array([r["x"] for r in records], dtype=np.float64))
        colour = triton.InferInput("colour", [3], "BYTES")
        colour.set_data_from_numpy(np.array([r["colour"].encode() for r in records], dtype=object))
        flag = triton.InferInput("flag", [3], "BOOL")
        flag.set_data_from_numpy(np.array([r["flag"] for r in records], dtype=bool))
        result = client.infer("mixed", [x, colour, flag])  # binary in, binary out
        got = result.as_numpy("prediction")
        assert got.dtype == np.float64 and got.shape == (3,)
        assert got[0] == expected[0] and got[2] == expected[2] and math.isnan(got[1])
        assert "row 1" in result.get_response()["parameters"]["warnings"]

        bad = triton.InferInput("x", [3], "FP64")
        bad.set_data_from_numpy(np.array([1.0, np.nan, 2.0]))
        with pytest.raises(triton.InferenceServerException) as err:
            client.infer("mixed", [bad, colour, flag])
        assert err.value.status() == "400" and "record 1: feature 'x' is NaN" in err.value.message()
    finally:
        client.close()


def _v2(env, body, *, app="mixed", headers=None):
    resp = env.client.post(f"/{app}/v2/models/{app}/infer", json=body, headers=headers)
    return resp.status_code, resp.json()


def _local_v2(local, body):
    resp = local.mixed.post("/v2/models/mixed/infer", json=body)
    return resp.status_code, resp.json()


def _t(name, datatype, shape, data):
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


OK_TENSORS = [
    _t("x", "FP64", [1], [7.5]),
    _t("colour", "BYTES", [1], ["red"]),
    _t("flag", "BOOL", [1], [True]),
]


@pytest.mark.parametrize(
    "case, inputs, needle",
    [
        ("missing input", OK_TENSORS[:2], "missing input 'flag'"),
        ("unknown input", [*OK_TENSORS, _t("size", "FP64", [1], [1.0])], "unknown input 'size'"),
        (
            "text for a number",
            [_t("x", "BYTES", [1], ["7"]), *OK_TENSORS[1:]],
            "feature 'x' is a number",
        ),
        ("number for a bool", [*OK_TENSORS[:2], _t("flag", "FP64", [1], [1.0])], "send BOOL"),
        (
            "shape vs data",
            [_t("x", "FP64", [2], [7.5]), *OK_TENSORS[1:]],
            "has shape [2] but 1 values",
        ),
        (
            "2-d input",
            [_t("x", "FP64", [1, 2], [7.5, 1.0]), *OK_TENSORS[1:]],
            "shape [N] or [N, 1]",
        ),
        (
            "rows differ",
            [_t("x", "FP64", [2], [7.5, 8.0]), *OK_TENSORS[1:]],
            "every input must hold the same rows",
        ),
        (
            "empty batch",
            [_t("x", "FP64", [0], []), _t("colour", "BYTES", [0], []), _t("flag", "BOOL", [0], [])],
            "empty batch",
        ),
        ("bad value", [_t("x", "FP64", [1], ["a"]), *OK_TENSORS[1:]], "must be a number"),
        ("no inputs", [], "'inputs' must be a non-empty list"),
    ],
)
def test_v2_bad_requests_are_400_in_the_v2_error_format(local, case, inputs, needle):
    status, payload = _local_v2(local, {"inputs": inputs})
    assert status == 400, (case, payload)
    assert list(payload) == ["error"] and needle in payload["error"], (case, payload)


@pytest.mark.ray
def test_v2_size_limit_and_ok_request(env):
    status, payload = _v2(env, {"inputs": OK_TENSORS, "id": "req-7"})
    assert status == 200 and payload["id"] == "req-7", payload
    assert payload["outputs"][0]["data"] == _local(env, [GOOD])
    big = [_t("x", "FP64", [20_000], [7.5] * 20_000), *OK_TENSORS[1:]]
    status, payload = _v2(env, {"inputs": big})
    assert status == 413 and list(payload) == ["error"] and str(LIMIT) in payload["error"]


@pytest.mark.ray
def test_a_burst_of_bad_requests_leaves_the_same_replica_answering(env):
    before = env.client.get("/mixed/health").json()["replica"]
    bad_bodies = [
        b"{records: nope",
        b"[" * 100_000,
        b'{"records": [{"x": NaN, "colour": "a", "flag": true}]}',
        HUGE,
        json.dumps({"records": [{"x": [1, 2], "colour": {}, "flag": None}]}).encode(),
        json.dumps({"records": [GOOD] * 2000}).encode(),
        json.dumps({"columns": {"x": None}}).encode(),
        b"\xff\xfe\x00garbage",
        b"",
    ]
    v2_bodies = [
        b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1], "data": []}]}',
        b'{"inputs": "x"}',
        b"not json at all",
    ]

    def send(i):
        if i % 4 == 3:
            r = env.client.post(
                "/mixed/v2/models/mixed/infer", content=v2_bodies[i % len(v2_bodies)]
            )
        else:
            r = env.client.post("/mixed/predict", content=bad_bodies[i % len(bad_bodies)])
        return r.status_code

    with ThreadPoolExecutor(max_workers=4) as pool:  # 60 requests, at most 4 in flight
        statuses = list(pool.map(send, range(60), timeout=120))
    assert all(400 <= s < 500 for s in statuses), sorted(set(statuses))
    status, payload = post(env, {"records": [GOOD]})
    assert status == 200 and payload["predictions"] == _local(env, [GOOD])
    after = env.client.get("/mixed/health").json()["replica"]
    assert after == before, "a bad request must not restart or replace the replica"


@pytest.mark.ray
def test_rejections_and_nan_predictions_reach_the_request_log(env):
    sent = {
        post(env, b"{nope", raw=True)[1]["request_id"]: 400,
        post(env, {"records": [GOOD] * 2000})[1]["request_id"]: 413,
        post(env, {"records": [{**GOOD, "x": "a"}]})[1]["request_id"]: 422,
        post(env, {"records": [{**GOOD, "x": -1e6}]})[1]["request_id"]: 200,
    }
    env.serving.flush_logs("mixed")
    rows = {r["request_id"]: r for r in env.store.deployments.list_requests("mixed", ok_only=False)}
    for request_id, status in sent.items():
        row = rows[request_id]
        assert row["status_code"] == status
        assert (row["error"] is None) == (status == 200), row
    nan_row = next(rows[r] for r, s in sent.items() if s == 200)
    assert nan_row["prediction"] == [None], "a NaN prediction is logged as null, not NaN"
