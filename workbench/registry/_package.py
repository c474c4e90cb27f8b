"""Portable model packages: an MLflow pyfunc model directory or a Ray Serve container build context.

Both hold the registered artifact's bytes unchanged (``model/bundle.pkl``, SHA-256 in
``model/workbench.json``), the standalone loader (:mod:`workbench.registry._loader`, copied as
``workbench_model.py``) and the workbench feature steps the pickle names, so neither needs
workbench installed; requirements pin exactly the versions installed here of every distribution
the pickle and the loader import, and of what those require.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import platform
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path
from typing import Any

from workbench.exceptions import ConfigError
from workbench.registry import _loader

__all__ = ["write_package", "FORMATS", "MLFLOW_VERSION"]

FORMATS = ("mlflow", "container")
# The MLflow the package is written for and tested with (the Makefile's MLFLOW_SKINNY).
MLFLOW_VERSION = "3.17.2"
_KINDS = {"number": "double", "string": "string", "boolean": "boolean", "datetime": "datetime"}


def _pickle_modules(data: bytes) -> set[str]:
    """Every module whose classes or functions the pickle names (read by unpickling it here,
    where it loads: opcodes alone miss names the pickle memoizes)."""
    modules: set[str] = set()

    class _Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            modules.add(module)
            return super().find_class(module, name)

    _Recorder(io.BytesIO(data)).load()
    return modules


def _closure(names: set[str]) -> dict[str, str]:
    """Installed version of each distribution in ``names`` and of everything it requires."""
    out: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in out:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        out[key] = dist.version
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            marker = req.split(";", 1)
            if len(marker) == 2 and not _marker_holds(marker[1]):
                continue
            todo.append(re.split(r"[\s<>=!~\[(;]", marker[0].strip(), maxsplit=1)[0])
    return out


def _marker_holds(marker: str) -> bool:
    try:
        from packaging.markers import Marker
    except ImportError:  # pragma: no cover - packaging ships with pip's venvs
        return True
    return Marker(marker).evaluate()


def _requirements(data: bytes) -> dict[str, str]:
    modules = _pickle_modules(data)
    wb = sorted(m for m in modules if m.split(".")[0] == "workbench")
    unknown = [m for m in wb if m not in _loader.VENDORED and m != "workbench.registry._bundle"]
    if unknown:
        raise ConfigError(
            f"this model's pickle uses {', '.join(unknown)}, which needs workbench itself; a "
            "standalone package supports scikit-learn pipelines with workbench's feature steps. "
            "Serve it with bench.deploy(...) instead."
        )
    roots = {m.split(".")[0] for m in modules} - {"workbench", "builtins", "copyreg"}
    roots -= set(sys.stdlib_module_names)
    owners = packages_distributions()
    dists = {"pandas", "numpy", "scikit-learn"}  # the loader's frame and the steps' imports
    for root in roots:
        if root not in owners:
            raise ConfigError(
                f"this model's pickle uses module {root!r}, which no installed distribution "
                "provides (a notebook-defined class?); move it into an installed package and "
                "register the model again."
            )
        dists.update(owners[root])
    return dict(sorted(_closure(dists).items()))


def _mlmodel(signature: Mapping[str, Any], example: dict[str, Any], pins_python: str) -> str:
    inputs = [
        {"type": _KINDS.get(kind, "string"), "name": name, "required": True}
        for name, kind in signature["features"].items()
    ]
    classes = signature.get("classes") or []
    out_type = "double" if signature.get("task") == "regression" else "string"
    if classes and all(isinstance(c, bool) for c in classes):
        out_type = "boolean"
    elif classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        out_type = "long"
    elif classes and all(isinstance(c, int | float) and not isinstance(c, bool) for c in classes):
        out_type = "double"
    lines = [
        "flavors:",
        "  python_function:",
        "    code: code",
        "    data: model",
        "    env:",
        "      conda: conda.yaml",
        "      virtualenv: python_env.yaml",
        "    loader_module: workbench_model",
        f"    python_version: {pins_python}",
        f"mlflow_version: {MLFLOW_VERSION}",
        f"model_uuid: {uuid.uuid4().hex}",
        "saved_input_example_info:",
        "  artifact_path: input_example.json",
        "  pandas_orient: split",
        "  type: dataframe",
        "signature:",
        f"  inputs: {json.dumps(json.dumps(inputs))}",
        f"  outputs: {json.dumps(json.dumps([{'type': out_type, 'required': True}]))}",
        f"  params: {_params(signature)}",
        f"utc_time_created: '{datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'",
    ]
    return "\n".join(lines) + "\n"


def _params(signature: Mapping[str, Any]) -> str:
    """The MLmodel signature's params: ``predict_method`` (``predict`` or ``predict_proba``,
    MLflow's scikit-learn convention) for a classifier, null for a regressor."""
    if signature.get("task") == "regression" or not signature.get("classes"):
        return "null"
    spec = [{"name": "predict_method", "type": "string", "default": "predict", "shape": None}]
    return json.dumps(json.dumps(spec))


def _python_env(python: str, requirements: str) -> str:
    return (
        f"python: {python}\nbuild_dependencies:\n- pip\n- setuptools\n- wheel\n"
        f"dependencies:\n- -r {requirements}\n"
    )


def _conda(python: str, pins: Mapping[str, str]) -> str:
    body = "".join(f"  - {k}=={v}\n" for k, v in pins.items())
    return f"channels:\n- conda-forge\ndependencies:\n- python={python}\n- pip\n- pip:\n{body}name: mlflow-env\n"


_SERVE_APP = '''"""Ray Serve app for the exported model: POST a JSON list of records, or {"records": [...]}
with "probabilities": true for a classifier's class probabilities (as workbench's /predict)."""

from pathlib import Path

import pandas as pd
from ray import serve
from starlette.requests import Request

import workbench_model

MODEL_DIR = Path(__file__).resolve().parent / "model"


def predict_records(bundle, records):
    """Predictions for JSON-like records, as the model's signature orders the features."""
    frame = pd.DataFrame.from_records(records, columns=list(bundle.features))
    return bundle.predict(frame)


@serve.deployment
class Model:
    def __init__(self):
        self.bundle = workbench_model.load(MODEL_DIR)

    async def __call__(self, request: Request):
        body = await request.json()
        records = body.get("records") if isinstance(body, dict) else body
        answer = {"predictions": predict_records(self.bundle, records)}
        if isinstance(body, dict) and body.get("probabilities") is True:
            frame = pd.DataFrame.from_records(records, columns=list(self.bundle.features))
            answer["classes"] = list(self.bundle.classes)
            answer["probabilities"] = self.bundle.predict_proba(frame).to_numpy().tolist()
        return answer


app = Model.bind()
'''

_DOCKERFILE = """FROM {image}
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV PYTHONPATH=/app
EXPOSE 8000
CMD ["serve", "run", "config.yaml"]
"""

_CONFIG = """# serve run config.yaml  (or: serve deploy config.yaml against a running cluster)
http_options:
  host: 0.0.0.0
  port: 8000
applications:
- name: {name}
  route_prefix: /
  import_path: serve_app:app
  deployments:
  - name: Model
    num_replicas: 1
"""

_README = """# {title}: a Ray Serve build context exported by workbench

Build and run (Docker):

    docker build -t {tag} .
    docker run --rm -p 8000:8000 {tag}
    curl -s -X POST localhost:8000/ -H 'content-type: application/json' -d @input_example.json

Without Docker, in a fresh virtual environment with Python {python} and ray[serve]=={ray}:

    pip install -r requirements.txt 'ray[serve]=={ray}'
    serve run config.yaml

`model/bundle.pkl` is the registered artifact (SHA-256 in `model/workbench.json`);
`workbench_model.py` loads it without workbench and refuses it across a major version of
scikit-learn/numpy (set WORKBENCH_ALLOW_VERSION_MISMATCH=1 to override).
"""


def write_package(
    data: bytes,
    path: str | os.PathLike[str],
    *,
    manifest: Mapping[str, Any],
    format: str = "mlflow",
    overwrite: bool = False,
    example: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``data`` (a model bundle's verified pickle) as a package at ``path``.

    ``manifest`` holds ``model``, ``version``, ``sha256``, ``signature`` and ``packages``;
    ``example`` a few input records. The package is built in a temporary sibling folder and
    moved into place, so a failure leaves nothing at ``path``. Raises ConfigError for an unknown
    format, an existing non-empty ``path`` without ``overwrite=True``, or a pickle that needs
    workbench itself.

    Examples
    --------
    >>> bench.registry.export("cancer", "champion", "cancer-mlflow")   # doctest: +SKIP
    PosixPath('cancer-mlflow')
    """
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}.")
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise ConfigError(
            f"{target} exists and is not empty; choose another path or pass overwrite=True."
        )
    pins = _requirements(data)
    python = platform.python_version()
    signature = manifest["signature"]
    example = example or [{name: None for name in signature["features"]}]
    columns = list(signature["features"])
    example_json = {"columns": columns, "data": [[r.get(c) for c in columns] for r in example]}
    requirements = "".join(f"{k}=={v}\n" for k, v in pins.items())

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        code = tmp / ("code" if format == "mlflow" else ".")
        code.mkdir(exist_ok=True)
        model = tmp / "model"
        model.mkdir()
        (model / "bundle.pkl").write_bytes(data)
        meta = {**manifest, "format": format, "python": python, "requirements": pins}
        (model / "workbench.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        shutil.copyfile(_loader.__file__, code / "workbench_model.py")
        for module, name in _loader.VENDORED.items():
            source = Path(importlib.import_module(module).__file__ or "")
            shutil.copyfile(source, code / f"{name}.py")
        (tmp / "requirements.txt").write_text(requirements)
        (tmp / "input_example.json").write_text(json.dumps(example_json, default=str) + "\n")
        if format == "mlflow":
            (tmp / "MLmodel").write_text(_mlmodel(signature, example_json, python))
            (tmp / "python_env.yaml").write_text(_python_env(python, "requirements.txt"))
            (tmp / "conda.yaml").write_text(_conda(python, pins))
        else:
            ray_version = _closure({"ray"}).get("ray") or "latest"
            major, minor = sys.version_info[:2]
            image = f"rayproject/ray:{ray_version}-py{major}{minor}"
            name = re.sub(r"[^a-z0-9-]+", "-", str(manifest["model"]).lower()).strip("-")
            (tmp / "Dockerfile").write_text(_DOCKERFILE.format(image=image))
            (tmp / "config.yaml").write_text(_CONFIG.format(name=name or "model"))
            (tmp / "serve_app.py").write_text(_SERVE_APP)
            (tmp / "README.md").write_text(
                _README.format(
                    title=f"{manifest['model']}@{manifest['version']}",
                    tag=f"{name or 'model'}:{manifest['version']}",
                    python=python,
                    ray=ray_version,
                )
            )
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
