"""Static checks that keep the layering and style honest: import-linter contracts, ruff."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool if (BIN / tool).exists() else shutil.which(tool)
    if exe is None:
        pytest.fail(f"{tool} is not installed; run `make test` (it installs the dev extras)")
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_import_contracts_hold():
    out = _run("lint-imports")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_lint_and_format():
    lint = _run("ruff", "check", "workbench", "tests", "bench")
    assert lint.returncode == 0, lint.stdout
    fmt = _run("ruff", "format", "--check", "workbench", "tests", "bench")
    assert fmt.returncode == 0, fmt.stdout
