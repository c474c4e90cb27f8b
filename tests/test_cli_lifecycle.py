"""The lifecycle through the `workbench` command: ingest → search → register → gate → promote →
deploy → traffic → rollback → canary, then monitors, policies, jobs and the scheduler, each through
click's runner on a real store, Ray and Serve (one tiny search and one deployment for the module),
plus end-to-end subprocess runs of the installed `workbench` script and the docs check."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from workbench.cli import cli

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = Path(sys.executable).parent / "workbench"


@pytest.fixture(scope="module")
def flow(tmp_path_factory, ray_cluster, serve_apps):
    """A home with bc@1, experiment 1 (one trial), versions 1 and 2 of model bc (v1 champion)."""
    from workbench.datasets import write_breast_cancer_csv

    home = tmp_path_factory.mktemp("cli")
    csv = write_breast_cancer_csv(home / "bc.csv")
    space = home / "space.yaml"
    space.write_text("family: logistic_regression\nC: {grid_search: [1.0]}\n")
    old = os.environ.get("WORKBENCH_SERVE_PORT")
    os.environ["WORKBENCH_SERVE_PORT"] = str(serve_apps.port)

    def run(*args: str) -> click.testing.Result:
        return CliRunner().invoke(cli, ["--home", str(home), *args])

    ingest = run("datasets", "ingest", str(csv), "--name", "bc", "--target", "diagnosis", "--json")
    assert ingest.exit_code == 0, ingest.output
    t0 = time.perf_counter()
    found = run("search", "bc", "--space", str(space), "--num-samples", "1", "--folds", "2")
    search_s = time.perf_counter() - t0
    assert found.exit_code == 0, found.output
    for alias in ("--alias=champion", None):
        reg = run(
            "register", "1", "--model", "bc", "--train", "bc", "--holdout", "bc", "--json",
            *([alias] if alias else []),
        )  # fmt: skip
        assert reg.exit_code == 0, reg.output
    yield run, home, csv, found, search_s
    if old is None:
        os.environ.pop("WORKBENCH_SERVE_PORT", None)
    else:
        os.environ["WORKBENCH_SERVE_PORT"] = old


def test_ingest_validate_and_refusals(flow, tmp_path):
    run, home, csv, *_ = flow
    again = run("datasets", "ingest", str(csv), "--name", "bc", "--target", "diagnosis", "--json")
    assert again.exit_code == 0 and json.loads(again.output)["created"] is False
    bad = tmp_path / "bad.csv"
    bad.write_text("x,diagnosis\n1,a\n2,\n3,b\n")
    checked = run("datasets", "validate", str(bad), "--target", "diagnosis", "--json")
    assert checked.exit_code == 1, checked.output
    assert json.loads(checked.output)["passed"] is False
    refused = run("datasets", "ingest", str(bad), "--name", "bad", "--target", "diagnosis")
    assert refused.exit_code == 1 and "nothing was recorded" in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1
    listed = run("datasets", "list", "--json")
    assert [d["name"] for d in json.loads(listed.output)] == ["bc"]  # nothing of "bad"
    ok = run("datasets", "validate", str(csv), "--target", "diagnosis")
    assert ok.exit_code == 0, ok.output


def test_search_registered_and_versions(flow, tmp_path):
    run, _, _, found, search_s = flow
    assert "experiment 1 finished: best trial" in found.output
    models = json.loads(run("models", "bc", "--json").output)
    assert [m["version"] for m in models] == [1, 2]
    assert "champion" in models[0]["aliases"]
    assert search_s < 120
    listed = tmp_path / "list.yaml"
    listed.write_text("[1, 2]\n")
    assert run("search", "bc", "--space", str(listed)).exit_code == 2
    assert run("search", "bc", "--space", str(tmp_path / "missing.yaml")).exit_code == 2
    assert run("search", "nope").exit_code == 3
    assert run("register", "1", "-m", "bc", "--train", "nope", "--holdout", "bc").exit_code == 3
    assert len(json.loads(run("runs", "--json").output)) == 1  # no experiment recorded
    assert [m["version"] for m in json.loads(run("models", "bc", "--json").output)] == [1, 2]


def test_gate_exit_codes(flow):
    run, *_ = flow
    # v2 is v1 refit from the same trial: a tie passes a zero margin, not a 0.01 one
    passed = run("gate", "bc@2", "--against", "champion", "--json")
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.output)["passed"] is True
    failed = run("gate", "bc@2", "--against", "champion", "--margin", "0.01")
    assert failed.exit_code == 1 and failed.output.startswith("FAILED"), failed.output
    assert run("gate", "bc@9").exit_code == 3
    assert run("gate", "bc").exit_code == 2  # no version: usage
    assert run("gate", "bc@2", "--test", "mcnemar").exit_code == 4  # mcnemar needs accuracy


def test_promote_and_not_found(flow):
    run, *_ = flow
    out = run("promote", "bc@2", "--alias", "staging", "--json")
    assert out.exit_code == 0 and json.loads(out.output)["version"] == 2
    missing = run("promote", "bc@7")
    assert missing.exit_code == 3 and "Traceback" not in missing.output
    models = json.loads(run("models", "bc", "--json").output)
    assert "staging" in models[1]["aliases"] and "champion" in models[0]["aliases"]


def test_deploy_traffic_rollback_canary(flow):
    run, home, *_ = flow
    out = run("deploy", "bc@1", "--name", "bccli", "--num-cpus", "0.1", "--json")
    assert out.exit_code == 0, out.output
    split = run("traffic", "bccli", "1=0.5", "2=0.5", "--json")
    assert split.exit_code == 0, split.output
    assert json.loads(split.output) == {"1": 0.5, "2": 0.5}
    for bad in (["1=x"], ["1"], ["0=1"], ["1=0.5", "2=2.9e999"]):
        refused = run("traffic", "bccli", *bad)
        assert refused.exit_code == 2, (bad, refused.output)
    assert run("traffic", "nope", "1=1").exit_code == 3
    deps = json.loads(run("deployments", "--json").output)
    assert deps[0]["weights"] == {"1": 0.5, "2": 0.5}  # the refusals changed nothing
    back = run("rollback", "bccli", "--to", "1", "--json")
    assert back.exit_code == 0 and json.loads(back.output)["1"] == 1.0, back.output

    from workbench.api import Workbench

    bench = Workbench(home)
    records = [
        dict(r)
        for r in bench.datasets.load(bench.datasets.get("bc")).drop("diagnosis").head(3).to_dicts()
    ]
    stop = threading.Event()

    def clients() -> None:
        while not stop.is_set():
            try:
                bench.serving.predict("bccli", records)
            except Exception:
                pass
            time.sleep(0.05)

    sender = threading.Thread(target=clients, daemon=True)
    sender.start()
    try:
        rolled = run(
            "canary", "bccli", "2", "--steps", "1.0", "--min-requests", "5", "--poll-s", "1",
            "--max-rounds", "30", "--json",
        )  # fmt: skip
    finally:
        stop.set()
        sender.join(10)
        bench.close()
    assert rolled.exit_code == 0, rolled.output
    result = json.loads(rolled.output)
    assert result["state"] == "completed" and result["weights"]["2"] == 1.0


def _records(bench):
    return bench.datasets.load(bench.datasets.get("bc")).drop("diagnosis").head(3).to_dicts()


def _send(home, n):
    """``n`` requests of the same 3 rows to bccli, their logs flushed to the store."""
    from workbench.api import Workbench

    with Workbench(home) as bench:
        records = _records(bench)
        for _ in range(n):
            bench.serving.predict("bccli", records)
        bench.serving.flush_logs("bccli")


def test_monitors_policies_jobs_scheduler(flow):
    run, *_ = flow
    added = run("monitors", "add", "drift", "bccli", "--window", "50", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["name"] == "bccli-drift"
    assert run("monitors", "add", "drift", "bccli", "--window", "5").exit_code == 4
    listed = json.loads(run("monitors", "list", "--json").output)
    assert [m["name"] for m in listed] == ["bccli-drift"]
    # the same 3 rows over and over: against the training data that is drift, a finding (exit 1);
    # a second check has no new complete window (exit 0)
    _send(flow[1], 20)
    checked = run("monitors", "check", "bccli-drift", "--json")
    assert checked.exit_code == 1, checked.output
    verdicts = [w["verdict"] for w in json.loads(checked.output)["bccli-drift"]]
    assert verdicts and set(verdicts) == {"drift"}
    again = run("monitors", "check", "--json")
    assert again.exit_code == 0 and json.loads(again.output) == {"bccli-drift": []}, again.output
    assert run("monitors", "check", "nope").exit_code == 3

    policy = run(
        "policies", "add", "bcloop", "-m", "bc", "-d", "bccli", "--train", "bc", "--holdout",
        "bc", "--drift", "bccli-drift", "--approval", "--json",
    )  # fmt: skip
    assert policy.exit_code == 0, policy.output
    rows = json.loads(run("policies", "list", "--json").output)
    assert [(p["name"], bool(p["enabled"])) for p in rows] == [("bcloop", True)]
    assert run("policies", "disable", "bcloop").exit_code == 0
    rows = json.loads(run("policies", "list", "--json").output)
    assert [bool(p["enabled"]) for p in rows] == [False]
    assert run("policies", "disable", "nope").exit_code == 3

    assert json.loads(run("jobs", "list", "--json").output) == []
    assert run("jobs", "approve", "99").exit_code == 3
    assert run("jobs", "reject", "0").exit_code == 2

    status = run("scheduler", "status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["running"] is False
    assert run("scheduler", "stop").output.strip() == "no scheduler was running"


def test_end_to_end_subprocess(flow, tmp_path):
    """The installed script: ingest, then gate exits 1 on a demanding margin and 0 without."""
    _, home, csv, *_ = flow
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

    def wb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(WORKBENCH), "--home", str(home), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    ingest = wb("datasets", "ingest", str(csv), "--name", "bc2", "--target", "diagnosis", "--json")
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["name"] == "bc2"
    no = wb("gate", "bc@2", "--margin", "0.01", "--holdout", "bc2")
    assert no.returncode == 1 and no.stdout.startswith("FAILED"), no.stdout + no.stderr
    yes = wb("gate", "bc@2", "--holdout", "bc2", "--json")
    assert yes.returncode == 0 and json.loads(yes.stdout)["passed"] is True
    missing = wb("register", "42", "-m", "bc", "--train", "bc", "--holdout", "bc")
    assert missing.returncode == 3 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().count("\n") == 0, missing.stderr


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, command in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        if isinstance(command, click.Group):
            out += _commands(command, full + " ")
        else:
            out.append(full)
    return out


def test_every_command_is_documented_with_its_exit_codes():
    text = (ROOT / "docs" / "cli.md").read_text()

    rows = "\n".join(line for line in text.splitlines() if line.startswith("| `workbench "))

    def documented(command: str) -> bool:
        # a row's `workbench datasets ingest ...`, or `/ `ingest ...` later in that row
        return any(f"{p}{command}{end}" in rows for p in ("`workbench ", "/ `") for end in " `")

    missing = [c for c in _commands(cli) if not documented(c)]
    assert not missing, f"docs/cli.md does not document: {missing}"
    assert "## Exit codes" in text
    for code in range(6):
        assert re.search(rf"^\| `{code}` \|", text, re.M), f"exit code {code} not in the table"


@pytest.mark.slow
def test_search_no_wait_returns_the_experiment_id_and_the_search_goes_on(tmp_path):
    """`search --no-wait` prints the recorded experiment id and exits; the detached process (its
    own private Ray) finishes the search, recorded in the store."""
    from workbench.datasets import write_breast_cancer_csv

    home = tmp_path / "wb"
    csv = write_breast_cancer_csv(tmp_path / "bc.csv")
    (tmp_path / "space.yaml").write_text("family: logistic_regression\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

    def wb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(WORKBENCH), "--home", str(home), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )

    assert (
        wb("datasets", "ingest", str(csv), "--name", "bc", "--target", "diagnosis").returncode == 0
    )
    started = wb(
        "search", "bc", "--space", "space.yaml", "--num-samples", "1", "--folds", "2",
        "--no-wait", "--log", "s.log", "--json",
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    out = json.loads(started.stdout)
    assert out["experiment_id"] == 1 and Path(out["log"]).is_absolute()
    from workbench.api import Workbench

    deadline = time.monotonic() + 180
    status = None
    log = Path(out["log"])
    while time.monotonic() < deadline:
        # polled through the library (a `workbench runs` process per poll cost ~1 s of CPU)
        with Workbench(home) as bench:
            status = bench.experiments.list()[0]["status"]
        # the detached process records the end, then writes its last log line: wait for both
        if status not in ("RUNNING", "PENDING") and (
            status != "TERMINATED" or "experiment 1 finished" in log.read_text()
        ):
            break
        time.sleep(1)
    assert status == "TERMINATED", Path(out["log"]).read_text()
    assert "experiment 1 finished" in Path(out["log"]).read_text()
    assert json.loads(wb("runs", "--json").stdout)[0]["status"] == "TERMINATED"


def test_a_viewer_is_refused_with_exit_5_and_nothing_changes(flow, monkeypatch):
    """Roles on (the OS user becomes admin), then as viewer 'vic': every changing command exits 5
    and the store reads the same afterwards. Runs last: it turns roles on for the module's home."""
    run, home, csv, *_ = flow
    before = [
        run(*cmd, "--json").output for cmd in (["models"], ["deployments"], ["policies", "list"])
    ]
    assert run("access", "grant", "vic", "viewer").exit_code == 0
    monkeypatch.setenv("JUPYTERHUB_USER", "vic")
    attempts = [
        ["datasets", "ingest", str(csv), "--name", "vic", "--target", "diagnosis"],
        ["register", "1", "-m", "bc", "--train", "bc", "--holdout", "bc"],
        ["promote", "bc@2"],
        ["traffic", "bccli", "1=0.5", "2=0.5"],
        ["rollback", "bccli", "--to", "1"],
        ["policies", "add", "p", "-m", "bc", "-d", "bccli", "--train", "bc", "--holdout", "bc"],
        ["policies", "disable", "bcloop"],
        ["monitors", "add", "drift", "bccli", "--name", "vic-drift"],
    ]
    through = [a for a in attempts if run(*a).exit_code != 5]
    assert through == [], through
    monkeypatch.delenv("JUPYTERHUB_USER")
    after = [
        run(*cmd, "--json").output for cmd in (["models"], ["deployments"], ["policies", "list"])
    ]
    assert after == before
    assert [d["name"] for d in json.loads(run("datasets", "list", "--json").output)] == [
        "bc",
        "bc2",
    ]
    assert [m["name"] for m in json.loads(run("monitors", "list", "--json").output)] == [
        "bccli-drift"
    ]


def test_a_space_file_takes_the_project_files_sampling_domains(tmp_path):
    """`search --space FILE`: constants, Tune's own {grid_search: [...]} and the project file's
    domains (loguniform, randint, choice, grid...) become Tune's param_space; a list is refused."""
    from ray import tune

    from workbench.cli._lifecycle import _space

    path = tmp_path / "space.yaml"
    path.write_text(
        "family: logistic_regression\nC: {loguniform: [0.01, 10]}\nmax_iter: {randint: [100, 300]}\n"
        "solver: {choice: [lbfgs, liblinear]}\ntol: {grid: [0.001, 0.0001]}\n"
        "class_weight: {grid_search: [null, balanced]}\n"
    )
    space = _space(str(path))
    assert space["family"] == "logistic_regression"
    assert (
        isinstance(space["C"], tune.search.sample.Float)
        and repr(space["C"]) == "loguniform(0.01, 10)"
    )
    assert space["C"].lower == 0.01 and space["C"].upper == 10
    assert isinstance(space["max_iter"], tune.search.sample.Integer)
    assert space["solver"].categories == ["lbfgs", "liblinear"]
    assert space["tol"] == {"grid_search": [0.001, 0.0001]}
    assert space["class_weight"] == {"grid_search": [None, "balanced"]}
    path.write_text("- C\n")
    with pytest.raises(click.BadParameter, match="must hold a mapping"):
        _space(str(path))
