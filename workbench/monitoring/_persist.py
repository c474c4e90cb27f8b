"""Save and load fitted detectors, so a restarted monitor tests with exactly the detector it had.

A saved detector is a directory: ``workbench-detector.json`` (class, options,
format) plus the backend's own files (alibi-detect's ``save_detector`` output
for its batch detectors; ``.npy`` arrays for ours and for the online
thresholds). Monitors keep it as one content-addressed artifact (a tar of that
directory, made byte-for-byte reproducible), recorded in the monitor's
configuration: loading verifies the SHA-256 and never refits behind the
user's back.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from workbench.exceptions import ConfigError

__all__ = ["save_detector", "load_detector", "detector_to_bytes", "detector_from_bytes"]

FORMAT = 1
MANIFEST = "workbench-detector.json"


def _classes() -> dict[str, type]:
    from workbench.monitoring import _detectors, _online

    return {
        cls.__name__: cls
        for cls in (
            _detectors.AlibiTabularDrift,
            _detectors.ScipyKSDrift,
            _detectors.AlibiMMDDrift,
            _detectors.ScipyMMDDrift,
            _online.AlibiCVMDriftOnline,
            _online.ScipyCVMDriftOnline,
        )
    }


def save_detector(detector: Any, path: str | Path) -> Path:
    """Write a fitted detector to the directory ``path`` (created; must be empty or absent).

    Examples
    --------
    >>> save_detector(det, "detector/")            # doctest: +SKIP
    >>> load_detector("detector/").test(x)          # doctest: +SKIP
    """
    name = type(detector).__name__
    if name not in _classes():
        raise ConfigError(f"cannot save a {name}; only workbench detectors are saved this way")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise ConfigError(f"{path} is not empty; save a detector into a new directory")
    detector._save(path)
    manifest = {"class": name, "params": detector.params(), "format": FORMAT}
    (path / MANIFEST).write_text(json.dumps(manifest, sort_keys=True))
    return path


def load_detector(path: str | Path) -> Any:
    """Load a detector written by :func:`save_detector`; it gives the same results as before."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} holds no saved workbench detector ({MANIFEST} missing)") from exc
    if manifest.get("format") != FORMAT:
        raise ConfigError(
            f"{path} was saved in detector format {manifest.get('format')}; this workbench reads "
            f"format {FORMAT}. Refit the monitor with Monitoring.refit(name)."
        )
    cls = _classes().get(manifest["class"])
    if cls is None:
        raise ConfigError(f"{path} holds an unknown detector class {manifest['class']!r}")
    return cls._load(path, manifest["params"])  # type: ignore[attr-defined]


def detector_to_bytes(detector: Any) -> bytes:
    """The saved directory as a reproducible tar (sorted names, zero times and owners)."""
    with tempfile.TemporaryDirectory(prefix="wb-detector-") as tmp:
        root = save_detector(detector, Path(tmp) / "d")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for file in sorted(p for p in root.rglob("*") if p.is_file()):
                data = file.read_bytes()
                info = tarfile.TarInfo(file.relative_to(root).as_posix())
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def detector_from_bytes(data: bytes) -> Any:
    with tempfile.TemporaryDirectory(prefix="wb-detector-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(tmp, filter="data")
        return load_detector(tmp)
