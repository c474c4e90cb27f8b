"""The CI/CD template (docs/templates/pipeline.sh and github-actions.yml) run for real: the steps the
workflow lists, in its order, each as ``pipeline.sh STEP`` in a subprocess calling the installed
`workbench` command on a fresh home, the session's Ray (RAY_ADDRESS) and Serve. Three runs share
the home: the first has no champion (its version is deployed and promoted without a gate), the
second searches a worse space and its gate exits 1 (nothing deployed or promoted), the third
passes the gate, goes through a canary on live HTTP traffic and is promoted. The "test" step is
skipped (it would run the suite from inside it)."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "templates" / "pipeline.sh"
WORKFLOW = ROOT / "docs" / "templates" / "github-actions.yml"
BIN = Path(sys.executable).parent


def _workflow_steps() -> list[str]:
    """The pipeline.sh steps the GitHub Actions job runs, in order."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    out = []
    for step in doc["jobs"]["pipeline"]["steps"]:
        found = re.findall(r"docs/templates/pipeline\.sh\s+(\w+)", step.get("run", ""))
        out += found
    return out


def _script_steps() -> list[str]:
    done = subprocess.run(
        ["bash", str(SCRIPT), "steps"], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.split()


def test_the_workflow_runs_the_script_steps_in_order():
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc["name"] and "pipeline" in doc["jobs"]
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert "push" in triggers and "workflow_dispatch" in triggers
    steps = doc["jobs"]["pipeline"]["steps"]
    assert all("run" in s or "uses" in s for s in steps)
    assert _workflow_steps() == _script_steps()
    assert _script_steps() == ["test", "ingest", "search", "register", "gate", "canary", "promote"]
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert os.access(SCRIPT, os.X_OK)
    # every env input the workflow sets is one the script reads
    for key in doc["env"]:
        if key not in ("RAY_USAGE_STATS_ENABLED", "WORKBENCH_SERVE_PORT"):
            assert f"${{{key}:=" in text, key


def test_an_unknown_step_is_a_usage_error():
    done = subprocess.run(["bash", str(SCRIPT), "deploy"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown step 'deploy'; steps: test ingest" in done.stderr


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, ray_cluster, serve_apps):
    """``run(space[, steps], **env) -> [(step, CompletedProcess)]``: the workflow's steps (but
    "test") on one home, stopping at the first that exits non-zero as a CI job does; ``wb(...)``,
    a `workbench ... --json` answer; and the home."""
    from workbench.datasets import write_breast_cancer_csv

    d = tmp_path_factory.mktemp("pipeline")
    with open(write_breast_cancer_csv(d / "all.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    random.Random(0).shuffle(rows)
    for name, part in (("train.csv", rows[:369]), ("holdout.csv", rows[369:])):
        with open(d / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(part)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST")},
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "WORKBENCH_HOME": str(d / "home"),
        "DATA": str(d / "train.csv"),
        "HOLDOUT_DATA": str(d / "holdout.csv"),
        "TARGET": "diagnosis",
        "MODEL": "bc",
        "DEPLOYMENT": "bcpipe",
        "NUM_SAMPLES": "1",  # once through each space's 1-value grid: 1 trial, 1 trial actor
        "FOLDS": "2",
        "DEPLOY_CPUS": "0.1",
        "CANARY_STEPS": "0.5,1.0",
        "CANARY_MIN_REQUESTS": "5",
        "CANARY_POLL_S": "1",
        "CANARY_MAX_ROUNDS": "30",
        "RAY_ADDRESS": ray_cluster.address,
        "WORKBENCH_SERVE_PORT": str(serve_apps.port),
    }
    steps = [s for s in _workflow_steps() if s != "test"]

    def run(
        space: str, only: list[str] | None = None, **extra: str
    ) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
        (d / "space.yaml").write_text(space)
        out = []
        for step in only or steps:
            t0 = time.perf_counter()
            done = subprocess.run(
                ["bash", str(SCRIPT), step],
                env={**env, "SPACE": str(d / "space.yaml"), **extra},
                cwd=d,
                capture_output=True,
                text=True,
                timeout=240,
            )
            out.append((step, done))
            # with -s: each step's decision lines and its time
            print(f"[{step}] rc={done.returncode} {time.perf_counter() - t0:.1f}s")
            print(done.stdout + done.stderr, end="")
            if done.returncode != 0:
                break
        return out

    def wb(*args: str) -> object:
        done = subprocess.run(
            [str(BIN / "workbench"), *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(done.stdout)

    return run, wb, d / "home"


GOOD = "family: logistic_regression\nC: {grid_search: [1.0]}\n"
# so strongly regularised that it trails C=1 by far on the same holdout rows
WORSE = "family: logistic_regression\nC: {grid_search: [0.0001]}\n"


def _said(result: list[tuple[str, subprocess.CompletedProcess[str]]]) -> str:
    return "\n".join(f"[{s}] rc={p.returncode}\n{p.stdout}{p.stderr}" for s, p in result)


def _champion(wb) -> int | None:
    found = [m["version"] for m in wb("models", "bc") if "champion" in m["aliases"]]
    return found[0] if found else None


@pytest.mark.ray
def test_the_first_run_deploys_and_promotes_without_a_gate(pipeline):
    run, wb, _ = pipeline
    result = run(GOOD)
    said = _said(result)
    assert [s for s, _ in result] == ["ingest", "search", "register", "gate", "canary", "promote"]
    assert all(p.returncode == 0 for _, p in result), said
    out = dict((s, p.stdout) for s, p in result)
    assert "bc@1 recorded (369 rows)" in out["ingest"] and "holdout bc-holdout@1" in out["ingest"]
    assert "experiment 1: 1 trials" in out["search"]
    assert "registered bc@1 on the holdout" in out["register"], said
    assert "no champion yet: bc@1 will be the first" in out["gate"], said
    assert "first deployment bcpipe: bc@1 serves 100%" in out["canary"], said
    assert "promoted: bc@champion -> version 1" in out["promote"], said
    assert _champion(wb) == 1
    assert [(d["name"], d["weights"]) for d in wb("deployments")] == [("bcpipe", {"1": 1.0})]


@pytest.mark.ray
def test_a_worse_challenger_is_blocked_by_the_gate(pipeline):
    run, wb, _ = pipeline
    result = run(WORSE)
    said = _said(result)
    assert [s for s, _ in result] == ["ingest", "search", "register", "gate"], said
    gate = result[-1][1]
    assert gate.returncode == 1, said
    assert "pipeline gate: FAILED:" in gate.stdout, said
    assert "blocked: bc@2 is not deployed; champion stays bc@1" in gate.stderr, said
    assert "unchanged" in result[0][1].stdout  # the same data: no new dataset version
    versions = {m["version"]: m["aliases"] for m in wb("models", "bc")}
    assert versions == {1: ["champion"], 2: []}, versions
    assert [d["weights"] for d in wb("deployments")] == [{"1": 1.0}]  # nothing reached traffic


@pytest.mark.ray
def test_a_challenger_as_good_goes_through_the_canary_and_is_promoted(pipeline):
    """The first run's space again: the same best trial refit, a tie, which a zero margin passes."""
    run, wb, _ = pipeline
    result = run(GOOD)
    said = _said(result)
    assert all(p.returncode == 0 for _, p in result), said
    out = dict((s, p.stdout) for s, p in result)
    assert "PASSED against bc@1" in out["gate"], said
    assert "canary of bc@3 on bcpipe (steps 0.5,1.0)" in out["canary"], said
    assert "pipeline canary: completed" in out["canary"], said
    assert "promoted: bc@champion -> version 3" in out["promote"], said
    assert _champion(wb) == 3
    (weights,) = [d["weights"] for d in wb("deployments")]
    assert weights["3"] == 1.0 and sum(weights.values()) == 1.0, weights


@pytest.mark.ray
def test_a_canary_that_does_not_finish_is_rolled_back_and_not_promoted(pipeline):
    """The canary and promote steps alone, handed (through the state file the steps share) the
    blocked v2 as if its gate had passed; no traffic flows and one round is allowed, so the canary
    is rolled back and the promote step exits 1 with the champion's traffic restored."""
    run, wb, home = pipeline
    state = home / "pipeline.state"
    state.write_text("EXPERIMENT=2\nCHALLENGER=2\nCHAMPION=3\nGATE=passed\n")
    result = run(
        GOOD, ["canary", "promote"], SMOKE_TRAFFIC="0", CANARY_MAX_ROUNDS="1", CANARY_POLL_S="0"
    )
    said = _said(result)
    (_, canary), (_, promote) = result
    assert canary.returncode == 0 and "rolled_back" in canary.stdout, said
    assert "CANARY=rolled_back" in state.read_text()
    assert promote.returncode == 1, said
    assert "rolled back: bcpipe serves bc@3; bc@2 not promoted" in promote.stderr, said
    assert _champion(wb) == 3
    (weights,) = [d["weights"] for d in wb("deployments")]
    assert weights["3"] == 1.0 and weights.get("2", 0.0) == 0.0, weights


# ------------------------------------------------------------------ the quickstart (issue 15, 4)
# The README's quickstart and notebooks/quickstart.ipynb run as written in a kernel
# (tests/test_notebooks.py, tests/test_loop_integration.py): what is left is the commands it names.
def test_the_readme_names_only_existing_commands():
    """Every `workbench X` the README shows is a command (docs/cli.md documents each one)."""
    from workbench.cli import cli

    readme = (ROOT / "README.md").read_text()
    used = re.findall(r"^\.venv/bin/workbench ([a-z-]+)", readme, re.M)
    used += re.findall(r"`workbench ([a-z-]+)", readme)
    assert len(used) >= 5, used
    assert sorted(set(used) - set(cli.commands)) == []
