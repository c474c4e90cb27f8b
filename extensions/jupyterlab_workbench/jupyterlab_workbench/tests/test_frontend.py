"""The TypeScript side: the panel model's unit tests (node --test) and the committed build's freshness."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[2]
TYPESCRIPT = "typescript@5.5.4"  # the version package-lock.json pins


def _tsc() -> Path:
    """tsc from a full `npm ci` if one was done (make labextension), else a one-package install."""
    full = EXT / "node_modules" / ".bin" / "tsc"
    if full.exists():
        return full
    small = EXT / ".tsc" / "node_modules" / ".bin" / "tsc"
    if not small.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            pytest.fail(
                "node and npm are needed for the panel model tests (Debian: apt-get install nodejs npm)"
            )
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(EXT / ".tsc"),
                "--no-save",
                "--no-package-lock",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                TYPESCRIPT,
            ],
            check=True,
            timeout=600,
        )
    return small


def test_panel_model_unit_tests_pass_under_node():
    subprocess.run(
        [str(_tsc()), "-p", str(EXT / "tsconfig.test.json")], check=True, cwd=EXT, timeout=300
    )
    out = subprocess.run(
        ["node", "--test", "test/"], cwd=EXT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "# fail 0" in out.stdout and "# pass 0" not in out.stdout, out.stdout[-2000:]


def test_labextension_is_built_from_these_sources():
    out = subprocess.run(
        [sys.executable, str(EXT / "labextension_stamp.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_the_installed_labextension_is_the_committed_one():
    """`make` installs the prebuilt labextension into the environment; it must be this build."""
    import json

    from jupyterlab_workbench import _jupyter_labextension_paths

    built = EXT / "jupyterlab_workbench" / "labextension"
    dest = (
        Path(sys.prefix)
        / "share"
        / "jupyter"
        / "labextensions"
        / _jupyter_labextension_paths()[0]["dest"]
    )
    assert (dest / "package.json").exists(), (
        f"{dest} is missing: install extensions/jupyterlab_workbench (make does)"
    )
    ours = json.loads((built / "package.json").read_text())["jupyterlab"]["_build"]["load"]
    installed = json.loads((dest / "package.json").read_text())["jupyterlab"]["_build"]["load"]
    assert installed == ours, (
        "the installed labextension is stale: reinstall extensions/jupyterlab_workbench"
    )
