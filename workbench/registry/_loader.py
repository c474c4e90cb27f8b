"""Load an exported model package without workbench: the bundle's pickle, read by a small unpickler.

This module imports nothing from workbench on purpose: :mod:`workbench.registry._package` copies
it verbatim into every exported package (as ``workbench_model.py``), where only the pinned
packages are installed. It is also the one owner of the version rule (:func:`version_problems`),
which :class:`~workbench.registry.ModelBundle` applies when a bundle is unpickled inside workbench.

Examples
--------
>>> version_problems({"numpy": "1.26.4"}, {"numpy": "1.26.4"})
([], [])
>>> version_problems({"numpy": "1.25.0"}, {"numpy": "1.26.4"})[0]
['numpy trained with 1.25.0, installed 1.26.4']
>>> version_problems({"numpy": "2.0.1"}, {"numpy": "1.26.4"})[1]
['numpy trained with 2.0.1, installed 1.26.4']
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["version_problems", "installed_versions", "load", "PortableBundle", "_load_pyfunc"]

ALLOW_ENV = "WORKBENCH_ALLOW_VERSION_MISMATCH"
# workbench modules a bundle's pickle may name; an export copies each beside this loader under
# the name it maps to, so the package needs no workbench install.
VENDORED = {"workbench.features._steps": "workbench_steps"}


def _release(version: str) -> str:
    return version.split("+", 1)[0]  # "2.13.0+cpu" is torch 2.13.0 built for CPU


def _major(version: str) -> int | None:
    m = re.match(r"\s*(\d+)", version)
    return int(m.group(1)) if m else None


def installed_versions(names: Any) -> dict[str, str]:
    """The installed version of each distribution in ``names`` that is installed."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def version_problems(
    trained: Mapping[str, str], installed: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Compare the versions a bundle was trained with to the installed ones.

    Returns ``(minor, major)``: one line per package that differs only in minor/patch version
    (warn) and one per package whose major version differs (refuse). ``python`` and packages
    not installed are not compared.
    """
    minor: list[str] = []
    major: list[str] = []
    for name, then in trained.items():
        now = installed.get(name)
        if name == "python" or now is None or _release(then) == _release(now):
            continue
        line = f"{name} trained with {then}, installed {now}"
        (major if _major(then) != _major(now) else minor).append(line)
    return minor, major


class VersionMismatch(RuntimeError):
    """Raised by the standalone loader across a major version (workbench raises its own
    VersionMismatchError)."""


def mismatch_message(major: list[str], trained: Mapping[str, str], what: str) -> str:
    pins = " ".join(f"'{line.split()[0]}=={trained[line.split()[0]]}'" for line in major)
    return (
        f"{what} was trained under another major version: {'; '.join(major)}. Its pickled "
        f"estimators may not load or may predict differently. Install the training versions "
        f"(pip install {pins}), or, at your own risk, load with allow_version_mismatch=True "
        f"(or set {ALLOW_ENV}=1)."
    )


def _allowed() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


class PortableBundle:
    """What a workbench ``ModelBundle`` pickle becomes outside workbench: the fitted pipeline and
    its signature, with the same prediction rule (class indices mapped to labels)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def predict(self, model_input: Any, params: Any = None) -> Any:
        """Predict for a pandas frame holding (at least) the signature's features: the labels
        (of the target's type), or, with ``params={"predict_method": "predict_proba"}`` (MLflow's
        scikit-learn convention), :meth:`predict_proba`'s frame."""
        if (params or {}).get("predict_method", "predict") == "predict_proba":
            return self.predict_proba(model_input)
        frame = model_input[list(self.features)]
        out = self.pipeline.predict(frame)
        if self.task == "regression":
            return [float(v) for v in out]
        return [self.classes[int(i)] for i in out]

    def predict_proba(self, model_input: Any) -> Any:
        """Class probabilities for a pandas frame: a frame with one column per class, named by
        the class labels in their order, one row per input row (each row sums to 1). A
        regression model has none (ValueError)."""
        import numpy as np
        import pandas as pd

        if self.task == "regression" or not hasattr(self.pipeline, "predict_proba"):
            raise ValueError(
                "this model has no class probabilities: "
                + (
                    "it is a regression model"
                    if self.task == "regression"
                    else "its estimator has no predict_proba"
                )
                + "; call predict"
            )
        proba = np.asarray(self.pipeline.predict_proba(model_input[list(self.features)]))
        # the estimator's classes are the integer codes of self.classes
        codes = [int(c) for c in getattr(self.pipeline, "classes_", range(proba.shape[1]))]
        full = np.zeros((proba.shape[0], len(self.classes)))
        full[:, codes] = proba
        return pd.DataFrame(full, columns=list(self.classes), index=model_input.index)


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "workbench.registry._bundle" and name == "ModelBundle":
            return PortableBundle
        if module in VENDORED:
            return getattr(importlib.import_module(VENDORED[module]), name)
        return super().find_class(module, name)


def load(path: str | os.PathLike[str], *, allow_version_mismatch: bool = False) -> PortableBundle:
    """Load ``path`` (the package's ``model`` folder: ``bundle.pkl`` and ``workbench.json``),
    checking the installed versions against those the bundle was trained with first."""
    folder = Path(path)
    manifest = json.loads((folder / "workbench.json").read_text())
    data = (folder / "bundle.pkl").read_bytes()  # integrity first, then versions
    if manifest.get("sha256") and hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise pickle.UnpicklingError(
            f"{folder / 'bundle.pkl'} does not match the SHA-256 in workbench.json; it was not "
            "loaded. Export the model again."
        )
    trained = manifest.get("packages") or {}
    minor, major = version_problems(trained, installed_versions(trained))
    what = f"model {manifest.get('model')}@{manifest.get('version')}"
    if major and not (allow_version_mismatch or _allowed()):
        raise VersionMismatch(mismatch_message(major, trained, what))
    if minor or major:
        warnings.warn(f"{what}: {'; '.join(minor + major)}", stacklevel=2)
    return _Unpickler(io.BytesIO(data)).load()


def _load_pyfunc(data_path: str) -> PortableBundle:
    """MLflow's ``python_function`` loader_module entry point."""
    return load(data_path)
