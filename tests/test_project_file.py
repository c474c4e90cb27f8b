"""workbench.yaml: load with line numbers, plan/apply idempotently against a real store (one tiny
real Ray Tune search), export a store back to a file whose plan is empty; CLI through click's
runner and one subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench.project import ProjectFileError, apply, dump, export_project, load, loads, plan

ROOT = Path(__file__).resolve().parents[1]
#: the installed console script, as a CI step runs it
WORKBENCH = Path(sys.executable).parent / "workbench"

PROJECT = """\
version: 1
datasets:
  - name: bc
    source: {csv}
    target: diagnosis
  - name: bc-holdout
    source: {holdout}
    target: diagnosis
experiments:
  - name: bc-search
    dataset: bc
    space:
      family: logistic_regression
      C: {{loguniform: [1e-2, 1e1]}}
    num_samples: 2
    folds: 2
    model: bc-model
    holdout: bc-holdout
gate:
  metric: f1
  margin: 0.0
policies:
  - name: bc-nightly
    model: bc-model
    deployment: bc-serving
    train: bc
    holdout: bc-holdout
    triggers: [{{cron: "0 3 * * *"}}]
    cooldown_s: 600
    budget: {{max_per_day: 2}}
"""


# ------------------------------------------------------------------ pure: the file and its schema
@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("datasets:\n  - name: a\n    sorce: x.csv\n", 3, "datasets[0].sorce", "unknown field"),
        (
            "experiments:\n  - name: e\n    dataset: d\n    space:\n      C: {lognormal: [1, 2]}\n",
            5,
            "experiments[0].space.C",
            "sampling domain",
        ),
        (
            "experiments:\n  - name: e\n    dataset: d\n    num_samples: 0\n",
            4,
            "experiments[0].num_samples",
            "minimum of 1",
        ),
        (
            "deployments:\n  - name: d\n    model: m\n\n    strategy: rolling\n",
            5,
            "deployments[0].strategy",
            "'rolling' is not one of",
        ),
        (
            "datasets:\n  - {name: a}\n  - {name: a}\n",
            3,
            "datasets[1].name",
            "two entries named 'a'",
        ),
        ("experiments:\n  - name: e\n    model: m\n", 2, "experiments[0]", "'dataset' is a"),
    ],
)
def test_an_invalid_file_names_the_field_and_the_line(text, line, field, words):
    with pytest.raises(ProjectFileError) as info:
        loads(text, path="workbench.yaml")
    message = str(info.value)
    assert message.startswith(f"workbench.yaml:{line}: {field}: "), message
    assert words in message
    assert "\n" not in message


def test_yaml_errors_and_missing_files_are_one_line(tmp_path):
    with pytest.raises(ProjectFileError, match=r"^w.yaml:3: not valid YAML: .*on line 2\)$"):
        loads("a:\n  - [1\n", path="w.yaml")
    with pytest.raises(ProjectFileError, match="export-project"):
        load(tmp_path / "none.yaml")


def test_numbers_and_domains_read_as_written():
    p = loads("experiments:\n  - {name: e, dataset: d, space: {lr: {loguniform: [1e-3, 1e-1]}}}\n")
    assert p.experiments[0]["space"]["lr"] == {"loguniform": [0.001, 0.1]}
    assert p.line("experiments", 0, "space") == 2


def test_the_documented_example_is_a_valid_file(monkeypatch):
    text = (ROOT / "docs" / "project-file.md").read_text()
    example = text.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    p = loads(example, path="docs/project-file.md")
    assert [len(getattr(p, k)) for k in ("datasets", "experiments", "deployments")] == [2, 1, 1]
    assert p.alerts["webhook_url"] == "${SLACK_WEBHOOK}"  # kept as written, resolved at plan
    assert p.experiments[0]["space"]["C"] == {"loguniform": [0.001, 10.0]}
    from workbench.project._plan import policy_from_spec

    policy = policy_from_spec(p.policies[0], p.gate)
    assert policy.budget.max_per_day == 2 and policy.budget.max_job_s == 900
    assert policy.gate.margin == 0.005 and policy.gate.guarded == ("recall",)  # the file's gate
    assert [type(t).__name__ for t in policy.triggers] == ["DriftTrigger", "ScheduleTrigger"]


def test_the_schema_file_is_published_in_the_package():
    import jsonschema

    from workbench.project import SCHEMA_PATH, schema

    assert SCHEMA_PATH.name == "schema.json" and SCHEMA_PATH.exists()
    jsonschema.Draft202012Validator.check_schema(schema())
    assert "project/schema.json" in (ROOT / "pyproject.toml").read_text()


# ------------------------------------------------------------------- against a real store
@pytest.fixture(scope="module")
def project(tmp_path_factory, ray_cluster):
    """A home where the project file was applied once: ``(bench, file, first apply's plan)``."""
    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv

    home = tmp_path_factory.mktemp("project")
    csv = write_breast_cancer_csv(home / "bc.csv")
    holdout = home / "bc-holdout.csv"
    lines = Path(csv).read_text().splitlines(keepends=True)
    holdout.write_text("".join(lines[:1] + lines[1::3]))
    path = home / "workbench.yaml"
    path.write_text(PROJECT.format(csv=csv, holdout=holdout))
    bench = Workbench(home)
    first = apply(bench, path)
    yield bench, path, first
    bench.close()


def test_apply_creates_everything_once_and_a_second_apply_changes_nothing(project):
    bench, path, first = project
    created = {(c.kind, c.name): c for c in first.changes}
    assert [c.action for c in first.changes] == ["create"] * 5, str(first)
    assert created["experiment", "bc-search"].note.startswith("ran experiment ")
    assert "now champion" in created["model", "bc-model"].note
    exp = next(e for e in bench.experiments.list() if e["name"] == "bc-search")
    assert exp["status"] == "TERMINATED" and exp["num_samples"] == 2
    assert exp["search_space"]["C"] == "loguniform(0.01, 10.0)"  # a readable record
    assert bench.registry.get("bc-model", "champion").experiment_id == exp["id"]

    assert plan(bench, path).empty
    again = apply(bench, path)
    assert again.empty and again.applied, str(again)
    assert len([e for e in bench.experiments.list() if e["name"] == "bc-search"]) == 1
    assert len(bench.registry.list("bc-model")) == 1
    entries = [e for e in bench.audit.entries(200) if e.get("action") == "experiment.start"]
    assert len(entries) == 1 and entries[0].get("actor")


def test_a_manual_change_shows_as_drift_by_field_and_apply_restores_it(project):
    from dataclasses import replace

    from workbench.automation import LoopPolicy

    bench, path, _ = project
    row = next(r for r in bench.automation.policies() if r["name"] == "bc-nightly")
    policy = LoopPolicy.from_dict(row["config"])
    bench.automation.add_policy(replace(policy, cooldown_s=60.0, approval=True))

    drift = plan(bench, path)
    (change,) = drift.pending
    assert (change.kind, change.name, change.action) == ("policy", "bc-nightly", "change")
    assert change.fields == {"cooldown_s": [60.0, 600], "approval": [True, False]}
    assert "~ policy bc-nightly (cooldown_s: 60 -> 600; approval: True -> False)" in str(drift)

    text = path.read_text()
    changed = path.with_name("changed.yaml")
    changed.write_text(text.replace("folds: 2", "folds: 3"))
    exp_change = next(c for c in plan(bench, changed).pending if c.kind == "experiment")
    assert exp_change.action == "change" and exp_change.fields == {"folds": [2, 3]}

    apply(bench, path)
    assert plan(bench, path).empty


def test_export_round_trip_plans_nothing(project, tmp_path):
    bench, _, _ = project
    exported = export_project(bench)
    assert [d["name"] for d in exported["datasets"]] == ["bc", "bc-holdout"]
    (exp,) = exported["experiments"]
    assert exp["space"] == {"family": "logistic_regression", "C": {"loguniform": [0.01, 10.0]}}
    assert exp["model"] == "bc-model" and exp["holdout"] == "bc-holdout@1"
    file = tmp_path / "exported.yaml"
    file.write_text(dump(exported))
    again = plan(bench, file)
    assert again.empty, str(again)
    assert export_project(bench) == load(file).as_dict()


HOOK = "https://hooks.example.invalid/project-secret"
DEPLOY = """\
deployments:
  - name: {app}
    model: bc-model
    version: {version}
    strategy: direct
    replicas: 1
    resources: {{cpu: 0.25}}
alerts:
  webhook_url: ${{WB_PROJECT_TEST_HOOK}}
  cooldown_s: 60
monitors:
  - name: {app}-drift
    deployment: {app}
    kind: drift
    window: 50
    backend: scipy
  - name: {app}-latency
    deployment: {app}
    kind: operational
    window: 5min
    max_p99_ms: 500
"""


def test_deployment_monitors_and_alerts(project, serve_apps, tmp_path, monkeypatch):
    from workbench.api import Workbench

    bench, path, _ = project
    hook = HOOK
    monkeypatch.setenv("WB_PROJECT_TEST_HOOK", hook)
    app = f"bc-project-{uuid.uuid4().hex[:6]}"
    file = tmp_path / "deploy.yaml"
    file.write_text(path.read_text() + DEPLOY.format(app=app, version="champion"))
    with Workbench(bench.settings.home, serve_port=serve_apps.port) as served:
        first = apply(served, file)
        assert [(c.kind, c.action) for c in first.pending] == [
            ("deployment", "create"),
            ("monitor", "create"),
            ("monitor", "create"),
        ], str(first)
        assert served.serving.record(app)["weights"] == {1: 1.0}
        drift = served.monitoring.record(f"{app}-drift")
        assert drift["config"]["window"] == 50 and drift["config"]["backend"] == "scipy"
        assert hook not in json.dumps(drift) and drift["config"]["alerts"]["cooldown_s"] == 60
        assert plan(served, file).empty

        monkeypatch.setenv("WB_PROJECT_TEST_HOOK", hook + "-rotated")
        rotated = plan(served, file).pending  # both monitors send to the project's alerts
        assert [(c.kind, list(c.fields)) for c in rotated] == [
            ("monitor", ["alerts.webhook_url"]),
            ("monitor", ["alerts.webhook_url"]),
        ]
        monkeypatch.delenv("WB_PROJECT_TEST_HOOK")
        with pytest.raises(
            ProjectFileError, match=r"deploy.yaml:\d+: alerts.webhook_url: .*WB_PROJECT"
        ):
            plan(served, file)
        monkeypatch.setenv("WB_PROJECT_TEST_HOOK", hook)

        served.register_best(
            served.stages.search_result(served.registry.get("bc-model", 1).experiment_id),
            model="bc-model",
            train=served.datasets.get("bc"),
            holdout=served.datasets.get("bc-holdout"),
        )
        file.write_text(path.read_text() + DEPLOY.format(app=app, version=2))
        (change,) = plan(served, file).pending
        assert (change.kind, change.action, change.fields) == (
            "deployment",
            "change",
            {"version": [1, 2]},
        )
        apply(served, file)
        assert served.serving.record(app)["weights"].get(2) == 1.0
        assert plan(served, file).empty

        file.write_text(file.read_text().replace("replicas: 1", "replicas: 2"))
        (change,) = plan(served, file).pending
        assert (change.kind, change.fields) == ("deployment", {"replicas": [1, 2]})
        apply(served, file)
        router = served.serving.status(app)["serve"]["deployments"]["Router"]
        assert sum(router["replicas"].values()) == 2
        assert served.serving.record(app)["weights"].get(2) == 1.0
        assert plan(served, file).empty

        canary = file.read_text().replace("version: 2", "version: 1")
        file.write_text(canary.replace("strategy: direct", "strategy: canary"))
        (change,) = plan(served, file).pending
        assert change.fields == {"version": [2, 1]} and "canary" in change.note
        apply(served, file)
        weights = served.serving.record(app)["weights"]
        assert weights[1] == pytest.approx(0.1) and weights[2] == pytest.approx(0.9)
        (held,) = [c for c in plan(served, file).changes if c.kind == "deployment"]
        assert held.action == "unchanged" and "in progress" in held.note

        file.write_text(canary.replace("strategy: direct", "strategy: blue-green"))
        (change,) = plan(served, file).pending
        assert change.fields == {"version": [2, 1]} and "blue-green" in change.note
        apply(served, file)
        weights = served.serving.record(app)["weights"]
        assert weights[1] == 1.0 and not weights.get(2)
        assert plan(served, file).empty

        monkeypatch.setenv("WORKBENCH_ALERT_WEBHOOK", hook)
        exported = export_project(served)
        assert exported["alerts"]["webhook_url"] == "${WORKBENCH_ALERT_WEBHOOK}"
        file.write_text(file.read_text().replace("replicas: 2", "replicas: 1"))
        apply(served, file)  # back to one replica: the CPUs are the next tests'
        assert {"name": app, "model": "bc-model"} in exported["deployments"]  # v1: the champion
        again = tmp_path / "exported.yaml"
        again.write_text(dump(exported))
        assert hook not in again.read_text()
        assert plan(served, again).empty, str(plan(served, again))


# ---------------------------------------------------------------------------------- CLI
def test_cli_plan_apply_export_and_their_exit_codes(project, tmp_path, monkeypatch):
    from workbench.cli import cli

    # an exported webhook (after the deployment test) is read from this variable
    monkeypatch.setenv("WORKBENCH_ALERT_WEBHOOK", HOOK)

    bench, path, _ = project
    home = str(bench.settings.home)
    runner = CliRunner()
    out = runner.invoke(cli, ["--home", home, "plan", str(path)])
    assert out.exit_code == 0, out.output
    assert "nothing to change" in out.output

    pending = tmp_path / "pending.yaml"
    pending.write_text(path.read_text().replace("cooldown_s: 600", "cooldown_s: 700"))
    out = runner.invoke(cli, ["--home", home, "plan", str(pending), "--json"])
    assert out.exit_code == 1, out.output
    body = json.loads(out.output)
    assert body["pending"] == 1 and body["changes"][-1]["fields"] == {"cooldown_s": [600, 700]}

    out = runner.invoke(cli, ["--home", home, "apply", str(pending), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["pending"] == 1
    assert runner.invoke(cli, ["--home", home, "plan", str(pending)]).exit_code == 0
    assert runner.invoke(cli, ["--home", home, "apply", str(path)]).exit_code == 0

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ngate:\n  metric: f1\n  margn: 0.1\n")
    out = runner.invoke(cli, ["--home", home, "plan", str(bad)])
    assert out.exit_code == 2
    assert "bad.yaml:4: gate.margn: unknown field" in out.output
    assert "Traceback" not in out.output

    exported = tmp_path / "export.yaml"
    out = runner.invoke(cli, ["--home", home, "export-project", "--out", str(exported)])
    assert out.exit_code == 0, out.output
    assert runner.invoke(cli, ["--home", home, "plan", str(exported)]).exit_code == 0


def test_plan_as_a_subprocess(project):
    bench, path, _ = project
    env = {**os.environ, "WORKBENCH_HOME": str(bench.settings.home)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [str(WORKBENCH), "plan", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "= experiment bc-search" in proc.stdout
    assert "nothing to change" in proc.stdout

    # a recorded deployment, planned from a process with no cluster to ask: not running there
    # (a private Ray holds no app of another process), and plan starts no Ray to find out
    deployed = [d for d in bench.deployments() if d.get("status") != "deleted"]
    if not deployed:
        pytest.skip("no deployment recorded (the deployment test did not run)")
    file = path.with_name("deployed.yaml")
    file.write_text(
        path.read_text()
        + f"deployments:\n  - {{name: {deployed[0]['name']}, model: bc-model, version: 1}}\n"
    )
    proc = subprocess.run(
        [str(WORKBENCH), "plan", str(file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"~ deployment {deployed[0]['name']} (serve: not running -> running)" in proc.stdout
    assert "Token authentication is enabled" not in proc.stderr  # what ray.init prints here


def test_new_data_plans_the_next_version_and_apply_searches_registers_and_gates(project, tmp_path):
    """Last in the module: it moves bc to version 2 and the model to a new version."""
    bench, path, _ = project
    text = path.read_text()
    source = next(ln.split(": ", 1)[1] for ln in text.splitlines() if "bc.csv" in ln)
    rows = Path(source).read_text().splitlines(keepends=True)
    fresh = tmp_path / "bc-fresh.csv"
    fresh.write_text("".join(rows[:1] + [r for i, r in enumerate(rows[1:]) if i % 7]))
    file = tmp_path / "fresh.yaml"
    file.write_text(text.replace(source, f"{fresh}\n    checks: {{min_rows: 50}}", 1))
    missing = tmp_path / "missing.yaml"
    missing.write_text(text.replace(source, str(tmp_path / "nowhere.csv"), 1))
    with pytest.raises(ProjectFileError, match=r"missing.yaml:4: datasets\[0\].source: .*nowhere"):
        plan(bench, missing)
    bad = tmp_path / "bad-checks.yaml"
    bad.write_text(file.read_text().replace("min_rows: 50", "min_rowz: 50"))
    with pytest.raises(ProjectFileError, match=r"bad-checks.yaml:5: datasets\[0\].checks: unknown"):
        plan(bench, bad)

    before = len(bench.registry.list("bc-model"))
    pending = plan(bench, file)
    got = {(c.kind, c.name): c for c in pending.pending}
    assert got["dataset", "bc"].fields["version"] == [1, 2]
    assert got["experiment", "bc-search"].fields == {"dataset": ["bc@1", "(pending)"]}
    assert got["model", "bc-model"].action == "create"
    assert len(pending.pending) == 3, str(pending)

    done = {(c.kind, c.name): c for c in apply(bench, file).changes}
    assert done["dataset", "bc"].note == "ingested bc@2"
    versions = bench.registry.list("bc-model")
    assert len(versions) == before + 1
    note = done["model", "bc-model"].note
    champion = bench.registry.get("bc-model", "champion").version
    if "gate PASSED" in note:
        assert champion == versions[-1].version
    else:
        assert "gate FAILED" in note and champion != versions[-1].version
    assert plan(bench, file).empty
