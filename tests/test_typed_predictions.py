"""Predictions keep the target's type, and classifiers give their class probabilities.

Models are trained the real way (``Experiments.fit_bundle`` on an ingested dataset version) on
an integer target (classes 1, 2, 10: 2 must sort before 10), a boolean one, a string one and a
numeric regression target. Units check the class rule, the bundle's probabilities against
``pipeline.predict_proba``, the v2 tensors through tritonclient's own parser, the portable
package's loader and a model registered before classes kept their type. Then the four models
are deployed on the session's Serve and asked over real HTTP, JSON and v2.
"""

from __future__ import annotations

import io
import json
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from workbench.exceptions import ConfigError, InvalidRequestError

N = 240


def _frame(target: str):
    """Two numeric features and a target column ``y`` that depends on them."""
    import polars as pl

    rng = np.random.default_rng(7)
    x, z = rng.normal(size=N), rng.normal(size=N)
    if target == "int":
        y: list = np.where(x + z > 1.0, 10, np.where(x > 0, 2, 1)).tolist()
    elif target == "bool":
        y = (x - z > 0).tolist()
    elif target == "str":
        y = np.where(x > 0.3, "yes", np.where(z > 0, "maybe", "no")).tolist()
    else:
        y = (2.5 * x - z + rng.normal(scale=0.1, size=N)).tolist()
    return pl.DataFrame({"x": x, "z": z, "y": y})


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One bundle per target type, trained through the workbench's own training path."""
    from workbench import Workbench

    bench = Workbench(tmp_path_factory.mktemp("typed") / "wbhome")
    out = {}
    try:
        for target in ("int", "bool", "str", "float"):
            frame = _frame(target)
            dv = bench.datasets.ingest(frame, name=f"t-{target}", target="y")
            family = "ridge" if target == "float" else "logistic_regression"
            bundle = bench.experiments.fit_bundle(dv, {"family": family})
            records = frame.select("x", "z").to_dicts()
            out[target] = SimpleNamespace(
                bundle=bundle, records=records, labels=frame["y"].to_list(), dv=dv
            )
        out["bench"] = bench
        yield out
    finally:
        bench.store.close()


def _accuracy(preds, labels) -> float:
    """What a client computes: the share of answers equal to its labels."""
    return sum(p == y for p, y in zip(preds, labels, strict=True)) / len(labels)


def _true_accuracy(m) -> float:
    """The model's accuracy from the estimator's own codes, with no label mapping involved."""
    from workbench.features import to_pandas

    codes = m.bundle.pipeline.predict(to_pandas(_frame_of(m), m.bundle.features))
    index = {c: i for i, c in enumerate(m.bundle.classes)}
    return float(np.mean(codes == np.array([index[v] for v in m.labels])))


def _frame_of(m):
    import polars as pl

    return pl.DataFrame(m.records)


# ------------------------------------------------------------------------------ the class rule


def test_classes_keep_their_type_in_natural_order():
    from workbench.experiments._experiments import encode_classes

    assert encode_classes([10, 2, 1, 2]) == ([1, 2, 10], [2, 1, 0, 1])
    assert encode_classes([True, False]) == ([False, True], [1, 0])
    assert encode_classes(["b", "a", "b"]) == (["a", "b"], [1, 0, 1])
    assert encode_classes([2.5, 1.0]) == ([1.0, 2.5], [1, 0])
    classes, _ = encode_classes(list(np.array([3, 1], dtype=np.int64)))
    assert classes == [1, 3] and all(type(c) is int for c in classes)  # numpy → Python
    flags, _ = encode_classes(list(np.array([True, False])))
    assert flags == [False, True] and all(type(c) is bool for c in flags)
    # a mix of kinds (an object column of numbers and text): every class is its text, as before
    assert encode_classes([10, "2", 1]) == (["1", "10", "2"], [1, 2, 0])


def test_training_data_classes_follow_the_target(models):
    assert models["int"].bundle.classes == [1, 2, 10]
    assert all(type(c) is int for c in models["int"].bundle.classes)
    assert models["bool"].bundle.classes == [False, True]
    assert models["str"].bundle.classes == ["maybe", "no", "yes"]
    assert models["float"].bundle.task == "regression" and models["float"].bundle.classes == []
    assert models["int"].bundle.signature["classes"] == [1, 2, 10]
    json.dumps(models["int"].bundle.signature)  # JSON-safe, as the registry stores it


def test_a_missing_label_is_refused_naming_the_count(models):
    import polars as pl

    bench = models["bench"]
    frame = pl.DataFrame({"x": [0.1, 0.2, 0.3, 0.4], "y": [1, None, 2, None]})
    from workbench.datasets import Checks

    lenient = Checks(target="y", severity={"target_nulls": "warn"})  # ingest flags, not refuses
    dv = bench.datasets.ingest(frame, name="t-missing", target="y", checks=lenient)
    with pytest.raises(ConfigError, match="2 missing label"):
        bench.experiments.training_data(dv, task="classification")


# ------------------------------------------------------------------- the bundle's answers


@pytest.mark.parametrize("target", ["int", "bool", "str"])
def test_predictions_equal_the_labels_they_were_trained_on(models, target):
    m = models[target]
    preds = m.bundle.predict_records(m.records)
    kind = {"int": int, "bool": bool, "str": str}[target]
    assert all(type(p) is kind for p in preds)
    true = _true_accuracy(m)
    assert 0.6 < true < 1.0  # a real model, neither trivial nor perfect
    assert _accuracy(preds, m.labels) == pytest.approx(true)


@pytest.mark.parametrize("target", ["int", "bool", "str"])
def test_probabilities_match_predict_proba_and_sum_to_one(models, target):
    from workbench.features import to_pandas

    m = models[target]
    X = to_pandas(_frame_of(m), m.bundle.features)
    labels, proba = m.bundle.predict_proba_frame(X)
    assert labels == m.bundle.predict_frame(X)
    assert np.asarray(proba).shape == (N, len(m.bundle.classes))
    np.testing.assert_allclose(np.sum(proba, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(proba, m.bundle.pipeline.predict_proba(X), rtol=0, atol=1e-12)
    # the most probable class is the label (logistic regression predicts the argmax)
    assert [m.bundle.classes[i] for i in np.argmax(proba, axis=1)] == labels
    assert m.bundle.predict_proba_records(m.records[:5]) == (labels[:5], proba[:5])


def test_a_regressor_has_no_probabilities_and_says_why(models):
    bundle = models["float"].bundle
    assert "regression" in (bundle.probabilities_missing or "")
    with pytest.raises(InvalidRequestError, match="no class probabilities: it is a regression"):
        bundle.predict_proba_records(models["float"].records[:2])
    assert models["int"].bundle.probabilities_missing is None


def test_an_estimator_without_predict_proba_says_so(models):
    from sklearn.svm import SVC

    from workbench.features import to_pandas

    m = models["int"]
    pipe = m.bundle.pipeline
    svc = type(pipe)([pipe.steps[0], ("model", SVC())])
    svc.fit(
        to_pandas(_frame_of(m), m.bundle.features),
        pipe.predict(to_pandas(_frame_of(m), m.bundle.features)),
    )
    from workbench.registry import ModelBundle

    bundle = ModelBundle(svc, m.bundle.features, "y", m.bundle.classes)
    assert (
        "SVC" in bundle.probabilities_missing and "probability=True" in bundle.probabilities_missing
    )
    with pytest.raises(InvalidRequestError) as err:
        bundle.predict_proba_records(m.records[:1])
    assert err.value.field == "probabilities"


def test_a_bundle_registered_with_string_classes_still_answers_strings(models):
    """Models trained before classes kept their type hold "1", "10", "2": unpickled, they
    answer those strings as before, in JSON and v2, and their probabilities follow them."""
    from workbench.evaluation import same_label
    from workbench.registry import ModelBundle
    from workbench.serving._v2 import output_datatype

    m = models["int"]
    old = ModelBundle(m.bundle.pipeline, m.bundle.features, "y", ["1", "2", "10"])
    old = pickle.loads(pickle.dumps(old))
    preds = old.predict_records(m.records)
    assert set(preds) <= {"1", "2", "10"} and output_datatype(old) == "BYTES"
    assert [same_label(p, y) for p, y in zip(preds, m.labels, strict=True)] == [
        p == y for p, y in zip(m.bundle.predict_records(m.records), m.labels, strict=True)
    ]
    labels, proba = old.predict_proba_records(m.records[:3])
    assert labels == preds[:3] and proba == m.bundle.predict_proba_records(m.records[:3])[1]


def test_the_portable_package_keeps_types_and_gives_probabilities(models):
    """What an exported package (MLflow pyfunc or the container) loads, without workbench."""
    from workbench.features import to_pandas
    from workbench.registry import _loader
    from workbench.registry._package import _mlmodel

    for target in ("int", "bool", "float"):
        m = models[target]
        portable = _loader._Unpickler(io.BytesIO(pickle.dumps(m.bundle))).load()
        X = to_pandas(_frame_of(m), m.bundle.features)
        assert portable.predict(X) == m.bundle.predict_frame(X)
        mlmodel = _mlmodel(m.bundle.signature, {}, "3.11")
        if target == "float":
            assert "params: null" in mlmodel
            with pytest.raises(ValueError, match="regression model"):
                portable.predict_proba(X)
            continue
        assert {"int": "long", "bool": "boolean"}[target] in mlmodel and "predict_method" in mlmodel
        frame = portable.predict(X, params={"predict_method": "predict_proba"})
        assert list(frame.columns) == m.bundle.classes
        np.testing.assert_allclose(frame.to_numpy(), m.bundle.pipeline.predict_proba(X))


_MLFLOW_SCRIPT = """
import json, sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
frame = pd.read_json(sys.argv[2], orient="split")
proba = model.predict(frame, params={"predict_method": "predict_proba"})
assert not any(m.split(".")[0] == "workbench" for m in sys.modules), "needed workbench"
print(json.dumps({"labels": model.predict(frame), "columns": list(proba.columns),
                  "proba": proba.to_numpy().tolist()}))
"""


@pytest.mark.slow
def test_mlflow_pyfunc_answers_ints_and_probabilities(models, tmp_path):
    """The exported MLflow model, loaded by real mlflow-skinny (installed as test_packages does)."""
    import hashlib
    import subprocess
    import sys
    from pathlib import Path

    from workbench.features import to_pandas
    from workbench.registry._package import MLFLOW_VERSION, write_package

    target = Path(__file__).resolve().parents[1] / "bench" / ".deps" / "packages-mlflow"
    if not (target / ".installed").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(target)]
            + [f"mlflow-skinny=={MLFLOW_VERSION}"],
            check=True,
            timeout=600,
        )
        (target / ".installed").touch()
    m = models["int"]
    data = pickle.dumps(m.bundle)
    manifest = {
        "model": "t-int",
        "version": 1,
        "sha256": hashlib.sha256(data).hexdigest(),
        "signature": m.bundle.signature,
        "packages": m.bundle.packages,
    }
    out = write_package(data, tmp_path / "mlflow-model", manifest=manifest)
    X = to_pandas(_frame_of(m), m.bundle.features).iloc[:25]
    rows = tmp_path / "rows.json"
    X.to_json(rows, orient="split", index=False)
    run = subprocess.run(
        [sys.executable, "-c", _MLFLOW_SCRIPT, str(out), str(rows)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["labels"] == m.bundle.predict_frame(X) and all(type(v) is int for v in got["labels"])
    assert got["columns"] == [1, 2, 10]
    np.testing.assert_allclose(got["proba"], m.bundle.pipeline.predict_proba(X), atol=1e-12)


# ------------------------------------------------------------------------- v2 tensors


@pytest.mark.parametrize("binary", [True, False])
def test_v2_probabilities_decode_with_tritonclient(binary):
    from tritonclient.http import InferResult

    from workbench.serving._v2 import encode_infer

    body, headers = encode_infer(
        model_name="m",
        version=1,
        request_id="r1",
        client_id=None,
        predictions=[10, 2],
        warnings=[],
        datatype="INT64",
        binary=binary,
        outputs={"prediction": binary, "probabilities": binary, "classes": False},
        probabilities=[[0.1, 0.2, 0.7], [0.2, 0.5, 0.3]],
        classes=[1, 2, 10],
    )
    result = InferResult.from_response_body(
        body, header_length=headers.get("inference-header-content-length")
    )
    assert result.as_numpy("prediction").tolist() == [10, 2]
    proba = result.as_numpy("probabilities")
    assert proba.shape == (2, 3) and proba.tolist() == [[0.1, 0.2, 0.7], [0.2, 0.5, 0.3]]
    assert result.as_numpy("classes").tolist() == [1, 2, 10]


def test_v2_outputs_are_checked_by_name():
    from workbench.serving._v2 import decode_infer

    kinds = {"x": "number"}
    base = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}

    def decode(outputs):
        body = json.dumps({**base, "outputs": outputs}).encode()
        return decode_infer(body, {}, kinds, max_body_bytes=1 << 20)

    req = decode([{"name": "probabilities", "parameters": {"binary_data": True}}])
    assert req.outputs == {"probabilities": True} and req.binary_output is False
    assert (
        decode_infer(json.dumps(base).encode(), {}, kinds, max_body_bytes=1 << 20).outputs is None
    )
    with pytest.raises(InvalidRequestError, match="named twice"):
        decode([{"name": "prediction"}, {"name": "prediction"}])
    with pytest.raises(InvalidRequestError, match="unknown output 'proba'.*'probabilities'"):
        decode([{"name": "proba"}])


def test_isolated_versions_answer_probabilities(models):
    """An isolated version's replica (``ModelServer``) and the router's call to it."""
    import asyncio

    from workbench.serving._isolated import ModelServer, call_version

    m = models["int"]
    server = ModelServer.func_or_class()
    server._bundle = m.bundle
    answer = server.predict_proba(m.records[:4])
    assert answer[0] == "ok" and answer[1] == list(m.bundle.predict_proba_records(m.records[:4]))
    regress = ModelServer.func_or_class()
    regress._bundle = models["float"].bundle
    assert regress.predict_proba(models["float"].records[:1])[:3:2] == ("invalid", "probabilities")

    class Handle:  # what Serve's DeploymentHandle does with .remote: call the replica's method
        def __getattr__(self, method):
            async def call(records):
                return getattr(server, method)(records)

            return SimpleNamespace(remote=call)

    preds, proba = asyncio.run(
        call_version(Handle(), m.records[:4], version=1, method="predict_proba")
    )
    assert (preds, proba) == m.bundle.predict_proba_records(m.records[:4])


# ----------------------------------------------------------------------- over real HTTP

TOKEN = "wb-" + "5e7a" * 8


@pytest.fixture(scope="module")
def served(models, serve_apps, tmp_path_factory):
    """The four models deployed on the session's Serve, one app each, with a bearer token."""
    import httpx
    from _serve_env import close_env, register_bundles, serve_env

    env = serve_env(tmp_path_factory, "t-int", [models["int"].bundle], apps=serve_apps, token=TOKEN)
    for target in ("bool", "str", "float"):
        register_bundles(env.store, env.artifacts, f"t-{target}", [models[target].bundle])
    env.urls = {}
    try:
        for target in ("int", "bool", "str", "float"):
            env.urls[target] = env.serving.deploy(f"t-{target}", 1, actor="tester")["url"]
        env.client = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})
        yield env
    finally:
        if hasattr(env, "client"):
            env.client.close()
        close_env(env)


def _v2_body(records, outputs=None):
    body = {
        "inputs": [
            {
                "name": f,
                "shape": [len(records)],
                "datatype": "FP64",
                "data": [r[f] for r in records],
            }
            for f in ("x", "z")
        ]
    }
    if outputs is not None:
        body["outputs"] = [{"name": o} for o in outputs]
    return body


@pytest.mark.ray
@pytest.mark.parametrize("target", ["int", "bool", "str"])
def test_http_json_answers_the_labels_type(served, models, target):
    m = models[target]
    resp = served.client.post(served.urls[target] + "/predict", json={"records": m.records})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert set(out) == {"predictions", "model_version", "request_id"}  # as before: no extras
    kind = {"int": int, "bool": bool, "str": str}[target]
    assert all(type(p) is kind for p in out["predictions"])
    assert out["predictions"] == m.bundle.predict_records(m.records)
    assert _accuracy(out["predictions"], m.labels) == pytest.approx(_true_accuracy(m))

    asked = served.serving.predict(f"t-{target}", m.records[:20], probabilities=True)
    assert asked["predictions"] == out["predictions"][:20]
    assert asked["classes"] == m.bundle.classes
    proba = np.asarray(asked["probabilities"])
    assert proba.shape == (20, len(m.bundle.classes))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    from workbench.features import to_pandas

    X = to_pandas(_frame_of(m), m.bundle.features).iloc[:20]
    np.testing.assert_allclose(proba, m.bundle.pipeline.predict_proba(X), atol=1e-12)


@pytest.mark.ray
def test_http_v2_answers_typed_tensors_and_probabilities(served, models):
    import tritonclient.http as triton

    m = models["int"]
    url = served.urls["int"]
    meta = served.client.get(url + "/v2/models/t-int").json()
    assert meta["outputs"] == [
        {"name": "prediction", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
        {"name": "classes", "datatype": "INT64", "shape": [3]},
    ]
    plain = served.client.post(url + "/v2/models/t-int/infer", json=_v2_body(m.records))
    assert plain.status_code == 200, plain.text
    (pred,) = plain.json()["outputs"]  # no outputs named: the prediction alone, as before
    assert pred["datatype"] == "INT64" and pred["data"] == m.bundle.predict_records(m.records)
    assert _accuracy(pred["data"], m.labels) == pytest.approx(_true_accuracy(m))

    resp = served.client.post(
        url + "/v2/models/t-int/infer",
        json=_v2_body(m.records[:10], ["prediction", "probabilities", "classes"]),
    )
    assert resp.status_code == 200, resp.text
    outs = {o["name"]: o for o in resp.json()["outputs"]}
    assert outs["classes"]["data"] == [1, 2, 10]
    assert outs["probabilities"]["shape"] == [10, 3]
    _, expected = m.bundle.predict_proba_records(m.records[:10])
    np.testing.assert_allclose(
        np.reshape(outs["probabilities"]["data"], (10, 3)), expected, atol=1e-12
    )

    # tritonclient, binary tensors both ways
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        inputs = []
        for f in ("x", "z"):
            t = triton.InferInput(f, [10], "FP64")
            t.set_data_from_numpy(np.array([r[f] for r in m.records[:10]]))
            inputs.append(t)
        result = client.infer(
            "t-int",
            inputs,
            outputs=[triton.InferRequestedOutput(n) for n in ("prediction", "probabilities")],
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert result.as_numpy("prediction").tolist() == m.bundle.predict_records(m.records[:10])
        np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-12)
    finally:
        client.close()


@pytest.mark.ray
def test_http_v2_bool_and_string_models(served, models):
    for target, datatype in (("bool", "BOOL"), ("str", "BYTES")):
        m = models[target]
        resp = served.client.post(
            served.urls[target] + f"/v2/models/t-{target}/infer", json=_v2_body(m.records[:30])
        )
        assert resp.status_code == 200, resp.text
        (out,) = resp.json()["outputs"]
        assert out["datatype"] == datatype
        assert out["data"] == m.bundle.predict_records(m.records[:30])


@pytest.mark.ray
def test_http_a_regressor_has_no_probabilities(served, models):
    m = models["float"]
    url = served.urls["float"]
    out = served.serving.predict("t-float", m.records[:3])
    assert all(type(p) is float for p in out["predictions"]) and "probabilities" not in out
    resp = served.client.post(
        url + "/predict", json={"records": m.records[:3], "probabilities": True}
    )
    assert resp.status_code == 422 and resp.json()["field"] == "probabilities"
    assert "regression model" in resp.json()["error"]
    with pytest.raises(InvalidRequestError, match="regression model"):
        served.serving.predict("t-float", m.records[:3], probabilities=True)
    meta = served.client.get(url + "/v2/models/t-float").json()
    assert [o["name"] for o in meta["outputs"]] == ["prediction"]
    resp = served.client.post(
        url + "/v2/models/t-float/infer", json=_v2_body(m.records[:3], ["probabilities"])
    )
    assert resp.status_code == 400 and "regression model" in resp.json()["error"]
