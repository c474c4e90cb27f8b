"""The CLI is a thin adapter: listing commands, --json, and errors that say what to do."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests._factories import make_experiment
from workbench.cli import cli
from workbench.lineage import Store


@pytest.fixture
def populated(tmp_path):
    home = tmp_path / "home"
    store = Store(home / "lineage.db")
    dv, _ = store.datasets.add_version(
        "d",
        content_hash="h",
        artifact_hash="a" * 64,
        source="x",
        n_rows=3,
        n_cols=2,
        schema={"x": "Float64", "y": "String"},
        target="y",
        validation=[],
    )
    exp = make_experiment(store, name="search", dataset_version_id=dv["id"])
    store.experiments.record_trial_events(
        exp,
        [
            {
                "trial_id": "t1",
                "config": {"family": "random_forest"},
                "status": "TERMINATED",
                "metrics": {"f1": 0.91},
                "duration_s": 1.5,
            }
        ],
    )
    store.experiments.set_finished(exp, status="TERMINATED", best_trial_id="t1")
    store.models.add_version(
        "m",
        task="classification",
        artifact_hash="b" * 64,
        params={},
        metrics={"f1": 0.9},
        signature={},
        experiment_id=exp,
        trial_id="t1",
        dataset_version_id=dv["id"],
    )
    store.models.set_alias("m", "champion", 1, reason="test")
    store.deployments.add("m", model="m", route_prefix="/m", status="running")
    store.deployments.record_traffic("m", {1: 1.0}, reason="initial")
    store.close()
    return home


def run(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)


def test_listings_as_text_and_json(populated):
    assert "search" in run(populated, "runs").output
    trials = json.loads(run(populated, "runs", "1", "--json").output)
    assert trials[0]["trial_id"] == "t1" and trials[0]["metrics"]["f1"] == 0.91
    models = json.loads(run(populated, "models", "--json").output)
    assert models[0]["aliases"] == ["champion"] and models[0]["version"] == 1
    deps = json.loads(run(populated, "deployments", "--json").output)
    assert deps[0]["weights"] == {"1": 1.0}
    status = json.loads(run(populated, "status", "--json").output)
    assert status["model_versions"] == 1 and status["lineage_db"].endswith("lineage.db")


def test_lineage_text_and_json(populated):
    text = run(populated, "lineage", "m@champion").output
    assert (
        "--produced--> model m v1 [champion]" in text and "traffic history of deployment m" in text
    )
    data = json.loads(run(populated, "lineage", "m@1", "--json").output)
    assert {"experiment", "model_version", "deployment", "dataset_version"} <= {
        n["type"] for n in data["nodes"]
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lineage", "m@9"], "has no version '9'; versions: 1; aliases: champion"),
        (["lineage", "nope@1"], "model 'nope' does not exist"),
        (["lineage", "m"], "use MODEL@VERSION"),
        (["runs", "42"], "experiment 42 does not exist"),
        (["reproduce", "1", "nope"], "experiment 1 has no trial 'nope'"),
        (["resume", "1"], "experiment 1 ended (TERMINATED); there is nothing to resume"),
        (["resume", "42"], "experiment 42 does not exist"),
    ],
)
def test_errors_say_what_to_do(populated, args, message):
    result = CliRunner().invoke(cli, ["--home", str(populated), *args])
    assert result.exit_code != 0
    assert message in result.output


# -------------------------------------------------------------------- datasets
@pytest.fixture
def two_versions(tmp_path):
    import polars as pl

    from workbench.api import Workbench

    home = tmp_path / "dshome"
    with Workbench(home) as wb:
        wb.datasets.ingest(
            pl.DataFrame(
                {
                    "id": [1, 2, 3, 4],
                    "x": [1.0, 2.0, 3.0, None],
                    "city": ["paris", "lyon", "paris", None],
                }
            ),
            name="cities",
        )
        wb.datasets.ingest(
            pl.DataFrame(
                {
                    "id": [4, 3, 2, 5],
                    "x": [None, 3.5, 2.0, 9.0],
                    "city": ["lyon", "paris", "lyon", "lille"],
                }
            ),
            name="cities",
        )
    return home


def test_datasets_list_show_and_diff(two_versions):
    listed = json.loads(run(two_versions, "datasets", "list", "--json").output)
    assert [(r["name"], r["version"], r["rows"], r["failed"]) for r in listed] == [
        ("cities", 1, 4, 0),
        ("cities", 2, 4, 0),
    ]
    assert (
        listed[0]["content_hash"].startswith("xxh3-128:") and len(listed[0]["content_hash"]) == 41
    )
    text = run(two_versions, "datasets", "list", "cities").output
    assert text.splitlines()[0].split()[:4] == ["name", "version", "rows", "columns"]
    assert len(text.splitlines()) == 3

    shown = run(two_versions, "datasets", "show", "cities@1").output
    assert shown.startswith("dataset cities@1 (id 1): 4 rows x 3 columns")
    assert "columns    city (String), id (Int64), x (Float64)" in shown
    assert "validation 4 of 4 checks passed" in shown
    assert "  ok   error   nulls          [x] 25.0% null (maximum 50%)\n" in shown
    data = json.loads(run(two_versions, "datasets", "show", "cities", "--json").output)
    assert data["version"] == 2 and data["schema"]["city"] == "String"
    assert data["validation"] and all(
        {"check", "column", "passed", "severity", "failing", "examples", "detail"} <= set(r)
        for r in data["validation"]
    )

    out = run(two_versions, "datasets", "diff", "cities@1", "cities@2", "--key", "id").output
    assert out.splitlines()[0] == (
        "cities@1 -> cities@2: rows 4 -> 4 (+1 added, -1 removed, ~2 changed, 1 unchanged; by key id)"
    )
    assert "id=4  city: None -> 'lyon'" in out
    d = json.loads(
        run(two_versions, "datasets", "diff", "cities@1", "cities", "-k", "id", "--json").output
    )
    assert (d["added"], d["removed"], d["changed"]) == (1, 1, 2)
    assert d["changed_columns"] == {"x": 1, "city": 1}
    whole = json.loads(
        run(two_versions, "datasets", "diff", "cities@1", "cities@2", "--json").output
    )
    assert whole["key"] is None and (whole["added"], whole["removed"], whole["unchanged"]) == (
        3,
        3,
        1,
    )


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["datasets", "show", "nope"], "dataset nope does not exist; ingest it first", 3),
        (["datasets", "show", "cities@7"], "dataset cities version 7 does not exist", 3),
        (["datasets", "show", "cities@x"], "use NAME or NAME@VERSION", 4),
        (["datasets", "list", "nope"], "dataset nope does not exist", 3),
        (
            ["datasets", "diff", "cities@1", "cities@2", "-k", "city"],
            "is not unique in cities@1",
            4,
        ),
        (["datasets", "diff", "cities@1", "cities@2", "-k", "zz"], "are not in cities@1", 4),
    ],
)
def test_datasets_errors_say_what_to_do(two_versions, args, message, code):
    # 3: not found (NotFoundError), 4: refused (any other WorkbenchError); see docs/cli.md
    result = CliRunner().invoke(cli, ["--home", str(two_versions), *args])
    assert result.exit_code == code, result.output
    assert message in result.output


def test_datasets_show_prints_failed_warnings_first_with_examples(two_versions):
    import polars as pl

    from workbench.api import Workbench
    from workbench.datasets import Checks, Column

    with Workbench(two_versions) as wb:
        wb.datasets.ingest(
            pl.DataFrame({"id": [1, 2, 3], "x": [1.0, 9.0, 7.0]}),
            name="warned",
            checks=Checks(columns={"x": Column(max=5, severity="warn")}),
        )
    lines = run(two_versions, "datasets", "show", "warned").output.splitlines()
    report = lines[lines.index(next(ln for ln in lines if ln.startswith("validation"))) :]
    assert report[0].startswith("validation ") and "checks passed" in report[0]
    assert report[1].startswith("  FAIL warn    range          [x] ") and "(2 failing)" in report[1]
    assert report[2].strip().startswith("e.g. {") and '"x": 9.0' in report[2]
    assert all(ln.startswith("  ok ") for ln in report[3:])
    listed = json.loads(run(two_versions, "datasets", "list", "warned", "--json").output)
    assert listed[0]["failed"] == 1


# -------------------------------------------------------------------- report
def test_report_writes_the_champions_html_and_refuses_a_version_without_evaluation(
    populated, tmp_path
):
    store = Store(populated / "lineage.db")
    mv = store.models.get_version("m", 1)
    store.evaluations.add(
        mv["id"],
        holdout_version_id=mv["dataset_version_id"],
        metrics={"f1": 0.8765, "roc_auc": 0.9321},
        details={"task": "classification", "n": 3},
    )
    store.close()
    out = tmp_path / "m.html"
    result = CliRunner().invoke(cli, ["--home", str(populated), "report", "m", "-o", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and ">0.9321<" in html and 'data-model="m"' in html
    # MODEL@VERSION prints the same stored page
    assert run(populated, "report", "m@1").output.strip() == html.strip()
    store = Store(populated / "lineage.db")
    store.models.add_version(
        "m",
        task="classification",
        artifact_hash="c" * 64,
        params={},
        metrics={},
        signature={},
        experiment_id=None,
        trial_id=None,
        dataset_version_id=None,
    )
    store.close()
    result = CliRunner().invoke(cli, ["--home", str(populated), "report", "m@2"])
    assert result.exit_code == 3 and "has no recorded evaluation" in result.output
    assert "register_best" in result.output


def test_policies_add_without_a_holdout_takes_the_loops_own_and_the_triage_options(populated):
    import json

    out = run(
        populated,
        *("policies", "add", "p", "--model", "m", "--deployment", "m", "--train", "d"),
        *("--holdout-fraction", "0.25", "--triage", "--since-change", "--json"),
    )
    assert out.exit_code == 0, out.output
    listed = json.loads(run(populated, "policies", "list", "--json").output)
    (config,) = [p["config"] for p in listed if p["name"] == "p"]
    assert config["holdout"] is None and config["holdout_fraction"] == 0.25
    assert config["triage"] is True and config["since_change"] is True
