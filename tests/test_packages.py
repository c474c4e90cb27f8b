"""Portable model packages (MLflow pyfunc, Ray Serve build context) and version-checked loading.

The install tests are real: mlflow-skinny goes into a git-ignored folder outside the venv
(bench/.deps/packages-mlflow, reused across runs) and the container's requirements into a fresh
venv (pip's cache makes reruns fast); each then loads the package in a subprocess and must give
the registry bundle's predictions exactly.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from workbench.exceptions import (
    ArtifactCorruptError,
    ConfigError,
    VersionMismatchError,
    VersionMismatchWarning,
)
from workbench.features import build_preprocessor
from workbench.lineage import ArtifactStore, Store
from workbench.registry import ModelBundle, ModelRegistry, allow_version_mismatch

ROOT = Path(__file__).resolve().parents[1]
DEPS = ROOT / "bench" / ".deps"
KINDS = {"x": "number", "c": "string", "t": "datetime"}


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "c": rng.choice(["a", "b", "c"], size=n),
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        }
    )


def _bundle() -> ModelBundle:
    X = _frame(300, 0)
    y = (X["x"] + (X["c"] == "b") + X["t"].dt.month / 12 > 0.8).astype(int)  # label indices
    pipe = Pipeline([("preprocess", build_preprocessor(KINDS)), ("model", LogisticRegression())])
    return ModelBundle(pipe.fit(X, y), KINDS, "y", ["no", "yes"])


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    store = Store(":memory:")
    registry = ModelRegistry(store, ArtifactStore(tmp_path_factory.mktemp("artifacts")))
    registry.register("churn", _bundle(), metrics={"accuracy": 0.9})
    yield registry
    store.close()


@pytest.fixture(scope="module")
def rows():
    frame = _frame(50, 1)
    return frame, [
        {"x": float(r.x), "c": r.c, "t": r.t.isoformat()} for r in frame.itertuples(index=False)
    ]


# ------------------------------------------------------------------ version checks


def test_bundle_records_training_versions(reg):
    import sklearn

    mv = reg.get("churn", 1)
    assert mv.signature["packages"]["scikit-learn"] == sklearn.__version__
    assert mv.signature["packages"]["numpy"] == np.__version__
    assert "torch" not in mv.signature["packages"]


def _with_versions(bundle: ModelBundle, **versions: str) -> bytes:
    bundle.packages = {**bundle.packages, **versions}
    return pickle.dumps(bundle)


def test_minor_mismatch_warns_naming_both_versions(reg):
    import sklearn

    data = _with_versions(reg.load("churn", 1), **{"scikit-learn": "1.0.2"})
    with pytest.warns(VersionMismatchWarning) as caught:
        bundle = pickle.loads(data)
    text = str(caught[-1].message)
    assert "scikit-learn trained with 1.0.2" in text and f"installed {sklearn.__version__}" in text
    assert bundle.predict_frame(_frame(3, 2))  # it loaded and predicts


def test_major_mismatch_refuses_with_what_to_install(reg):
    data = _with_versions(reg.load("churn", 1), numpy="3.0.1")
    with pytest.raises(VersionMismatchError) as err:
        pickle.loads(data)
    msg = str(err.value)
    assert f"numpy trained with 3.0.1, installed {np.__version__}" in msg
    assert "pip install 'numpy==3.0.1'" in msg and "allow_version_mismatch=True" in msg
    with allow_version_mismatch(), pytest.warns(VersionMismatchWarning, match="numpy"):
        assert pickle.loads(data).predict_frame(_frame(3, 2))
    with pytest.raises(VersionMismatchError):  # the override ends with the block
        pickle.loads(data)


def test_same_versions_load_silently(reg):
    data = pickle.dumps(reg.load("churn", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(data)


# ------------------------------------------------------------------ export refusals


def test_export_refuses_non_empty_path_and_unknown_format(reg, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="overwrite=True"):
        reg.export("churn", 1, busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(ConfigError, match="mlflow, container"):
        reg.export("churn", 1, tmp_path / "x", format="onnx")
    assert not (tmp_path / "x").exists()
    out = reg.export("churn", 1, busy, overwrite=True)
    assert (out / "MLmodel").is_file() and not (out / "keep.txt").exists()


def test_export_of_corrupt_artifact_writes_nothing(tmp_path):
    store = Store(":memory:")
    artifacts = ArtifactStore(tmp_path / "artifacts")
    registry = ModelRegistry(store, artifacts)
    mv = registry.register("m", _bundle(), metrics={})
    path = artifacts.path_for(mv.artifact_hash)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactCorruptError):
        registry.export("m", 1, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []
    store.close()


def test_mlflow_package_layout(reg, tmp_path):
    import sklearn

    out = reg.export("churn", 1, tmp_path / "pkg")
    reqs = (out / "requirements.txt").read_text().splitlines()
    assert f"scikit-learn=={sklearn.__version__}" in reqs and f"numpy=={np.__version__}" in reqs
    assert all("==" in r for r in reqs) and not any(r.startswith("workbench") for r in reqs)
    mlmodel = (out / "MLmodel").read_text()
    assert "loader_module: workbench_model" in mlmodel and "python_function" in mlmodel
    assert f"python: {sys.version.split()[0]}" in (out / "python_env.yaml").read_text()
    meta = json.loads((out / "model" / "workbench.json").read_text())
    assert meta["sha256"] == reg.get("churn", 1).artifact_hash
    assert (out / "code" / "workbench_steps.py").is_file()


# ------------------------------------------------------------------ real installs


def _expected(reg, frame):
    return reg.load("churn", 1).predict_frame(frame)


_PREDICT = """
import json, sys
import pandas as pd
frame = pd.read_json(sys.argv[2], orient="split")
frame["t"] = pd.to_datetime(frame["t"])
{load}
assert not any(m.split(".")[0] == "workbench" for m in sys.modules), "needed workbench"
print(json.dumps(list(map(str, preds))))
"""


@pytest.mark.slow
def test_mlflow_pyfunc_predicts_like_the_bundle(reg, rows, tmp_path):
    frame, _ = rows
    target = DEPS / "packages-mlflow"
    from workbench.registry._package import MLFLOW_VERSION

    if not (target / ".installed").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(target)]
            + [f"mlflow-skinny=={MLFLOW_VERSION}"],
            check=True,
            timeout=600,
        )
        (target / ".installed").touch()
    out = reg.export("churn", 1, tmp_path / "mlflow-model")
    data = tmp_path / "rows.json"
    frame.to_json(data, orient="split", index=False, date_format="iso")
    script = _PREDICT.format(
        load="import mlflow.pyfunc\npreds = mlflow.pyfunc.load_model(sys.argv[1]).predict(frame)"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", script, str(out), str(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [
        str(v) for v in _expected(reg, frame)
    ]


@pytest.mark.slow
def test_container_requirements_install_in_a_fresh_venv_and_predict(reg, rows, tmp_path):
    frame, records = rows
    out = reg.export("churn", 1, tmp_path / "ctx", format="container")
    dockerfile = (out / "Dockerfile").read_text()
    import ray

    major, minor = sys.version_info[:2]
    assert dockerfile.startswith(f"FROM rayproject/ray:{ray.__version__}-py{major}{minor}\n")
    assert "import_path: serve_app:app" in (out / "config.yaml").read_text()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    subprocess.run(
        [py, "-m", "pip", "install", "-q", "-r", str(out / "requirements.txt")],
        check=True,
        timeout=600,
    )
    data = tmp_path / "rows.json"
    frame.to_json(data, orient="split", index=False, date_format="iso")
    script = _PREDICT.format(
        load="sys.path.insert(0, sys.argv[1])\nimport workbench_model\n"
        "preds = workbench_model.load(sys.argv[1] + '/model').predict(frame)"
    )
    run = subprocess.run(
        [py, "-I", "-c", script, str(out), str(data)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [
        str(v) for v in _expected(reg, frame)
    ]
    # workbench is not importable there: the package stands alone
    probe = subprocess.run([py, "-I", "-c", "import workbench"], capture_output=True, timeout=60)
    assert probe.returncode != 0
    # the Serve app module (ray is in the image, not in requirements.txt: use this venv's ray)
    app = (
        "import json, sys\nsys.path.insert(0, sys.argv[1])\nimport serve_app\n"
        "from ray.serve import Application\nassert isinstance(serve_app.app, Application)\n"
        "bundle = serve_app.workbench_model.load(serve_app.MODEL_DIR)\n"
        "print(json.dumps(serve_app.predict_records(bundle, json.loads(sys.argv[2]))))"
    )
    run = subprocess.run(
        [sys.executable, "-c", app, str(out), json.dumps(records)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == reg.load("churn", 1).predict_records(
        records
    )


def test_registry_load_refuses_a_bundle_trained_under_another_major(tmp_path):
    store = Store(":memory:")
    registry = ModelRegistry(store, ArtifactStore(tmp_path / "artifacts"))
    bundle = _bundle()
    bundle.packages = {**bundle.packages, "scikit-learn": "0.24.2"}
    registry.register("old", bundle, metrics={})
    with pytest.raises(VersionMismatchError, match="pip install 'scikit-learn==0.24.2'"):
        registry.load("old", 1)
    with allow_version_mismatch(), pytest.warns(VersionMismatchWarning):
        assert registry.load("old", 1).predict_frame(_frame(2, 3))
    assert [str(v) for v in registry.list("old")] == ["old@1"]  # nothing changed
    store.close()


def test_package_loader_refuses_tampering_and_a_major_mismatch(reg, tmp_path, monkeypatch):
    from workbench.registry import _loader

    out = reg.export("churn", 1, tmp_path / "pkg")
    monkeypatch.syspath_prepend(str(out / "code"))  # where MLflow puts code/ (workbench_steps)
    frame = _frame(5, 4)
    assert _loader.load(out / "model").predict(frame) == _expected(reg, frame)
    meta_path = out / "model" / "workbench.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "packages": {**meta["packages"], "numpy": "0.9"}}))
    with pytest.raises(_loader.VersionMismatch, match="numpy trained with 0.9"):
        _loader.load(out / "model")
    monkeypatch.setenv(_loader.ALLOW_ENV, "1")
    with pytest.warns(UserWarning, match="numpy trained with 0.9"):
        _loader.load(out / "model")
    pkl = out / "model" / "bundle.pkl"
    pkl.write_bytes(pkl.read_bytes().replace(b"yes", b"YES") + b"\x00")
    with pytest.raises(pickle.UnpicklingError, match="SHA-256"):
        _loader.load(out / "model")
