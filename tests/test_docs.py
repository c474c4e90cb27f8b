"""The docs are part of the product: every command and public name is documented, and the README's
set-up is exactly the two commands."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = (
    "datasets",
    "features",
    "experiments",
    "evaluation",
    "governance",
    "registry",
    "serving",
    "monitoring",
    "automation",
    "lineage",
    "runtime",
    "ui",
    "stages",
    "status",
)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_a_docstring_and_all(stage):
    mod = importlib.import_module(f"workbench.{stage}")
    assert mod.__doc__ and mod.__doc__.strip()
    assert isinstance(mod.__all__, list) and mod.__all__


def test_every_cli_command_is_documented():
    from workbench.cli import cli

    text = (ROOT / "docs" / "cli.md").read_text()
    for name in cli.commands:
        assert f"`workbench {name}" in text, f"docs/cli.md does not document `workbench {name}`"


@pytest.mark.parametrize("stage", STAGES)
def test_every_public_name_is_documented(stage):
    text = (ROOT / "docs" / "api.md").read_text()
    mod = importlib.import_module(f"workbench.{stage}")
    line = next((ln for ln in text.splitlines() if ln.startswith(f"- `workbench.{stage}`")), "")
    missing = [n for n in mod.__all__ if f"`{n}`" not in line]
    assert not missing, f"docs/api.md does not list {missing} under workbench.{stage}"


def test_readme_gives_the_two_commands_and_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to missing {target}"


def test_readme_quickstart_is_at_most_ten_lines_of_code():
    """(It runs as written, in a kernel: tests/test_notebooks.py.)"""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = [ln for ln in block.strip().splitlines() if ln.strip()]
    assert len(code) <= 10
    compile("\n".join(code), "README quickstart", "exec")
