"""Static checks that keep the layering and style honest: import-linter contracts, ruff, and the
rule that only ``workbench.lineage`` speaks SQL and adapters call stage methods only."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGE = ROOT / "workbench"
EXTENSION = ROOT / "extensions" / "jupyterlab_workbench" / "jupyterlab_workbench"


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


# ----------------------------------------------------- SQL in lineage only; adapters over stages
#: A SQL statement in a string: upper-case keywords, as every query of the store is written.
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b[\s\S]*?\b(FROM|INTO|SET)\b")
#: Calls that reach the database core: the store's private query helpers and its ``Database``.
QUERY_CALLS = {"query", "query_one"}
#: Modules whose SQL is sent to the user's own database, never to the lineage store: a SQL source
#: builds the statement it reads a table or query with (its keywords are written in lower case, but
#: the exemption is what says it is allowed).
USER_DATABASE_SQL = {"workbench.datasets._sql"}


def check_source(source: str, *, module: str, adapter: bool) -> list[str]:
    """What ``source`` (the text of module ``module``) breaks, one line per finding.

    Everywhere outside ``workbench.lineage``: a SQL statement in a string, a ``.query(`` or
    ``.query_one(`` call, or a ``._db`` attribute. In an adapter (CLI, demo, widgets, server
    extension) also: an import of ``workbench.lineage`` in any form, or a ``.store`` attribute
    (an adapter calls stage methods, never the repositories behind them).
    """
    tree = ast.parse(source)
    found: list[str] = []
    package = module.rsplit(".", 1)[0] if "." in module else ""
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL.search(node.value) and module not in USER_DATABASE_SQL:
                found.append(f"{module}:{line}: SQL statement {node.value.strip()[:60]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in QUERY_CALLS:
                found.append(f"{module}:{line}: .{node.func.attr}( call")
        if isinstance(node, ast.Attribute) and node.attr == "_db":
            found.append(f"{module}:{line}: ._db (the store's database core)")
        if not adapter:
            continue
        if isinstance(node, ast.Attribute) and node.attr == "store":
            found.append(f"{module}:{line}: .store (call a stage method instead)")
        lineage = [
            n
            for n in _imported(node, package)
            if n == "workbench.lineage" or n.startswith("workbench.lineage.")
        ]
        if lineage:
            found.append(f"{module}:{line}: imports {lineage[0]}")
    return found


def _imported(node: ast.AST, package: str) -> Iterator[str]:
    """The modules an import statement names (``from a import b`` names ``a`` and ``a.b``)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            base = ".".join([*parts, *([base] if base else [])])
        yield base
        yield from (f"{base}.{alias.name}" for alias in node.names)


def _modules() -> Iterator[tuple[Path, str, bool]]:
    """Every module the rule covers: ``(path, dotted name, is an adapter)``."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.parts[:2] == ("workbench", "lineage"):
            continue
        adapter = rel.parts[1] in ("cli", "demo", "ui")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield path, name, adapter
    for path in sorted(EXTENSION.rglob("*.py")):
        rel = path.relative_to(EXTENSION.parent).with_suffix("")
        if "tests" in rel.parts:
            continue
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield path, name, True


def test_the_rule_covers_the_adapters_and_the_stages():
    covered = {name: adapter for _, name, adapter in _modules()}
    for adapter in ("workbench.cli", "workbench.demo", "workbench.ui._widgets",
                    "workbench.ui._state", "jupyterlab_workbench.handlers"):  # fmt: skip
        assert covered.get(adapter) is True, adapter
    for stage in ("workbench.api", "workbench.serving._serving", "workbench.automation._engine"):
        assert covered.get(stage) is False, stage
    assert not any(name.startswith("workbench.lineage") for name in covered)


def test_sql_stays_in_lineage_and_adapters_call_stage_methods_only():
    found = [
        f
        for path, name, adapter in _modules()
        for f in check_source(path.read_text(), module=name, adapter=adapter)
    ]
    assert not found, "\n".join(found)


BAD_STAGE = """
import workbench.lineage
rows = store.deployments._db.rows("SELECT * FROM request_logs WHERE id > ?", [0])
n = store.query_one("select count(*) from x")
store.query(f"UPDATE monitors SET state_json = '{state}' WHERE id = 1")
"""

BAD_ADAPTER = """
import workbench.lineage as wl
from workbench.lineage._db import default_actor
from workbench import lineage
from ..lineage import Store
def rows(bench):
    return bench.store.models.list_versions()
"""


def test_the_checker_reports_each_kind_of_breach():
    stage = check_source(BAD_STAGE, module="workbench.serving._x", adapter=False)
    assert any("SQL statement 'SELECT * FROM request_logs" in f for f in stage), stage
    assert any('SQL statement "UPDATE monitors SET' in f for f in stage), stage
    assert any(".query_one( call" in f for f in stage) and any(".query( call" in f for f in stage)
    assert any("._db" in f for f in stage), stage
    assert not any("imports" in f for f in stage)  # a stage may use the store
    assert not any("select count" in f for f in stage)  # SQL keywords are matched in upper case

    adapter = check_source(BAD_ADAPTER, module="workbench.ui._x", adapter=True)
    imports = [f for f in adapter if "imports workbench.lineage" in f]
    assert [f.split(":")[1] for f in imports] == ["2", "3", "4", "5"], adapter
    assert any(f.endswith(".store (call a stage method instead)") for f in adapter), adapter


def test_the_checker_passes_stage_calls():
    good = '''
from workbench.exceptions import NotFoundError
def rows(bench):
    """Selects the rows from the registry: prose is not SQL."""
    return [d["name"] for d in bench.deployments()] + bench.registry.list("m")
'''
    assert check_source(good, module="workbench.cli", adapter=True) == []
