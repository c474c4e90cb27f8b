"""The environment a search ran in, recorded so a reproduction can say what differs now.

:func:`capture_environment` is what ``Experiments.search`` records in
``experiments.environment_json`` when a search starts; :func:`environment_differences` compares
a record with now, one ``{"what", "then", "now"}`` per difference. The bulky parts (the lock of
every installed distribution, the uncommitted diff, the notebook's cells) are content-addressed
artifacts; the record keeps their hashes.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.lineage import sha256_bytes

if TYPE_CHECKING:
    from workbench.lineage import ArtifactStore

__all__ = ["capture_environment", "environment_differences", "package_lock", "DIFF_CAP_BYTES"]

#: the most of ``git diff HEAD`` kept as an artifact (its full hash is recorded either way)
DIFF_CAP_BYTES = 1024 * 1024
_GIT_TIMEOUT_S = 5


def package_lock() -> list[str]:
    """``name==version`` of every installed distribution, sorted by normalised name, one per name.

    Examples
    --------
    >>> any(line.startswith("numpy==") for line in package_lock())
    True
    """
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        # A wheel's ``<name>-<version>.dist-info`` folder names both (the wheel spec): reading
        # them there takes 1 ms for 266 packages where parsing every METADATA file took 0.29 s
        # of CPU, on each search. Other layouts (egg-info, no version in the name) are parsed.
        folder = getattr(dist, "_path", None)
        named = _DIST_INFO.fullmatch(folder.name) if folder is not None else None
        if named:
            name, version = named.group(1), named.group(2)
        else:
            name = dist.metadata["Name"] if dist.metadata else None
            version = dist.version
        if not name:
            continue
        key = name.lower().replace("_", "-").replace(".", "-")
        seen.setdefault(key, f"{key}=={version}")
    return [seen[k] for k in sorted(seen)]


_DIST_INFO = re.compile(r"([^-]+)-([^-]+)\.dist-info")


def _git(args: list[str], cwd: Path) -> bytes | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT_S, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _git_state(artifacts: ArtifactStore, cwd: Path) -> dict[str, Any] | None:
    """Commit and uncommitted diff (tracked files, against HEAD) of the repository at ``cwd``."""
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return None
    diff = _git(["diff", "HEAD", "--no-ext-diff", "--no-color"], cwd) or b""
    state: dict[str, Any] = {
        "commit": commit.decode().strip(),
        "dirty": bool(diff),
        "diff_sha256": sha256_bytes(diff) if diff else None,
        "diff_bytes": len(diff),
        "diff_artifact": None,
        "diff_truncated": len(diff) > DIFF_CAP_BYTES,
    }
    if diff:
        state["diff_artifact"] = artifacts.put_bytes(diff[:DIFF_CAP_BYTES])
    return state


def _notebook(artifacts: ArtifactStore) -> dict[str, Any] | None:
    """The notebook's path and the source of the cells that ran, when inside an IPython kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    ns = getattr(shell, "user_ns", {}) or {}
    path = os.environ.get("JPY_SESSION_NAME") or ns.get("__session__")
    cells = [c for c in ns.get("In", []) if isinstance(c, str) and c.strip()]
    blob = json.dumps(cells).encode()
    return {
        "path": str(path) if path else None,
        "n_cells": len(cells),
        "cells_sha256": sha256_bytes(blob),
        "cells_artifact": artifacts.put_bytes(blob),
    }


def _ray_version() -> str | None:
    ray = sys.modules.get("ray")
    if ray is not None:
        return getattr(ray, "__version__", None)
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


def _platform() -> dict[str, Any]:
    libc, libc_version = platform.libc_ver()
    return {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "libc": f"{libc} {libc_version}".strip() or None,
    }


def capture_environment(
    artifacts: ArtifactStore, *, cwd: str | Path | None = None, lock: list[str] | None = None
) -> dict[str, Any]:
    """What a search runs on: Python, platform, a lock of every installed distribution (an
    artifact), the git commit and uncommitted diff of ``cwd``'s repository (an artifact, at most
    :data:`DIFF_CAP_BYTES`), the notebook and its cells when in an IPython kernel, Ray's version.

    Examples
    --------
    >>> env = capture_environment(bench.artifacts)                # doctest: +SKIP
    >>> env["python"]["version"], env["packages"]["count"]        # doctest: +SKIP
    ('3.11.9', 212)
    """
    lock = package_lock() if lock is None else lock
    text = "\n".join(lock).encode() + b"\n"
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": _platform(),
        "packages": {
            "count": len(lock),
            "lock_sha256": sha256_bytes(text),
            "lock_artifact": artifacts.put_bytes(text),
        },
        "git": _git_state(artifacts, Path(cwd or os.getcwd())),
        "notebook": _notebook(artifacts),
        "ray": _ray_version(),
    }


def _lock_of(artifacts: ArtifactStore, packages: dict[str, Any] | None) -> dict[str, str] | None:
    if not packages or not packages.get("lock_artifact"):
        return None
    text = artifacts.get_bytes(packages["lock_artifact"]).decode()
    return dict(line.split("==", 1) for line in text.splitlines() if "==" in line)


def _cells(artifacts: ArtifactStore, notebook: dict[str, Any]) -> list[str] | None:
    digest = notebook.get("cells_artifact")
    return json.loads(artifacts.get_bytes(digest)) if digest else ([] if not notebook else None)


def environment_differences(
    then: dict[str, Any] | None, now: dict[str, Any], artifacts: ArtifactStore
) -> list[dict[str, Any]]:
    """Every difference between a recorded environment and ``now``: ``{"what", "then", "now"}``
    for Python, each platform field, each package whose version changed (or that was added or
    removed: ``None`` on the side it is missing from), the git commit, the uncommitted diff, the
    notebook's path and cells, and Ray. An empty list: nothing differs.

    Examples
    --------
    >>> environment_differences(then, capture_environment(bench.artifacts), bench.artifacts)  # doctest: +SKIP
    [{'what': 'package scikit-learn', 'then': '1.5.2', 'now': '1.6.0'}]
    """
    if not then:
        return [{"what": "environment", "then": None, "now": "not recorded for this search"}]
    out: list[dict[str, Any]] = []

    def differ(what: str, a: Any, b: Any) -> None:
        if a != b:
            out.append({"what": what, "then": a, "now": b})

    for key in ("implementation", "version"):
        differ(f"python {key}", then.get("python", {}).get(key), now["python"].get(key))
    for key in ("system", "release", "machine", "libc"):
        differ(f"platform {key}", then.get("platform", {}).get(key), now["platform"].get(key))
    before = then.get("packages") or {}
    if before.get("lock_sha256") != now["packages"]["lock_sha256"]:
        old, new = _lock_of(artifacts, before), _lock_of(artifacts, now["packages"])
        if old is None or new is None:
            differ("packages", before.get("lock_sha256"), now["packages"]["lock_sha256"])
        else:
            for name in sorted(set(old) | set(new)):
                differ(f"package {name}", old.get(name), new.get(name))
    git_then, git_now = then.get("git") or {}, now.get("git") or {}
    differ("git commit", git_then.get("commit"), git_now.get("commit"))
    differ("uncommitted diff", git_then.get("diff_sha256"), git_now.get("diff_sha256"))
    nb_then, nb_now = then.get("notebook") or {}, now.get("notebook") or {}
    differ("notebook", nb_then.get("path"), nb_now.get("path"))
    if nb_then.get("cells_sha256") != nb_now.get("cells_sha256"):
        cells_then, cells_now = _cells(artifacts, nb_then), _cells(artifacts, nb_now)
        # a kernel that ran the same cells again, and more since, ran what the search ran
        if cells_then is None or cells_now[: len(cells_then)] != cells_then:
            first = next(
                (
                    i
                    for i, c in enumerate(cells_then or [])
                    if i >= len(cells_now) or c != cells_now[i]
                ),
                0,
            )
            out.append(
                {
                    "what": "notebook cells",
                    "then": f"{len(cells_then or [])} cells",
                    "now": f"{len(cells_now)} cells, differing from cell {first + 1}",
                }
            )
    differ("ray", then.get("ray"), now.get("ray"))
    return out
