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
