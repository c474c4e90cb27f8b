"""notebooks/governance.ipynb executed top to bottom in a real kernel (no Ray), its outcomes
asserted against what it printed and against its store reopened here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._notebooks import error_outputs, execute_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "governance.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("governance-notebook")
    nb, text = execute_notebook(NOTEBOOK, folder, {"WORKBENCH_ACCESS": ""})
    return nb, text, folder


def test_it_runs_without_errors_and_removes_its_scratch_folder(executed):
    nb, out, _ = executed
    assert not error_outputs(nb), error_outputs(nb)
    assert "scratch removed: True" in out


def test_refusals_name_the_role_and_record_nothing(executed):
    _, out, _ = executed
    assert "vic may not ingest: it needs the 'editor' role" in out
    assert "ada may not promote: it needs the 'approver' role" in out
    assert out.count("nothing recorded: True") == 2 and "nothing recorded: False" not in out
    assert "cy cannot act as 'dee'" in out
    assert (
        "ada requested loans version 1, so ada may not promote it: the four-eyes rule is on" in out
    )
    assert "champion: loans v1 ('champion',)" in out


def test_the_store_holds_what_the_notebook_says(executed):
    from workbench import Workbench

    _, out, folder = executed
    with Workbench(folder / ".workbench") as bench:
        grants = {(g["user"], g["role"]) for g in bench.access.grants()}
        assert {("ada", "editor"), ("ada", "approver"), ("vic", "viewer")} <= grants
        assert bench.access.four_eyes
        promote = next(e for e in bench.audit_log(100) if e["action"] == "alias.set")
        # the promotion by cy, whose actor the notebook then rewrote behind the store's back
        assert promote["actor"] == "mallory" and "reviewed by cy" in str(promote["detail"])
        intents = [e for e in bench.audit_log(100) if e["action"] == "intent"]
        assert {e["detail"]["call"] for e in intents} >= {
            "Datasets.ingest",
            "ModelRegistry.register",
            "ModelRegistry.set_alias",
        }
        # the notebook edited the promotion's entry behind the store's back: still detected
        result = bench.audit.verify()
    edited = int(re.search(r"\(edited (\d+)\)", out)[1])
    assert not result.ok and result.first_bad_id == edited
    assert f"ok=False first_bad_id={edited} (edited {edited}): entry {edited} was edited" in out
    assert "audit_log is append-only: an entry cannot be changed" in out
    assert "query refused" in out


def test_the_exported_package_lists_an_mlflow_model(executed):
    _, out, _ = executed
    assert (
        "['MLmodel', 'code', 'conda.yaml', 'input_example.json', 'model', 'python_env.yaml', 'requirements.txt']"
        in out
    )
