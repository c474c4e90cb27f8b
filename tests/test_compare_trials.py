"""Comparing trials across experiments: the flat table, its filter and sort language, the per-step
curves, the two plots, and the API, CLI and docs that expose them. A real SQLite store; no Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests._factories import make_experiment
from workbench.cli import cli
from workbench.exceptions import ConfigError, NotFoundError
from workbench.experiments import (
    compare_trials,
    metric_curves,
    plot_metric_curves,
    plot_parallel_coordinates,
    trial_columns,
)
from workbench.lineage import Store

ROOT = Path(__file__).resolve().parents[1]


def fill(store: Store) -> dict[str, int]:
    """Three experiments, two of them named "cancer", with trials of three model families."""
    rf = make_experiment(store, name="cancer")
    mlp = make_experiment(store, name="cancer-mlp")
    rerun = make_experiment(store, name="cancer")
    store.experiments.record_trial_events(
        rf,
        [
            {
                "trial_id": "rf1",
                "config": {"family": "random_forest", "n_estimators": 100},
                "status": "TERMINATED",
                "metrics": {"f1": 0.91, "accuracy": 0.93},
                "duration_s": 2.0,
            },
            {
                "trial_id": "lr1",
                "config": {"family": "logistic_regression", "C": 0.5},
                "status": "TERMINATED",
                "metrics": {"f1": 0.95, "accuracy": 0.96},
                "duration_s": 1.0,
            },
            {
                "trial_id": "rf2",
                "config": {"family": "random_forest", "n_estimators": 10},
                "status": "ERROR",
                "error": "boom",
                "duration_s": 0.5,
            },
        ],
        [
            ("rf1", 1, {"f1": 0.80}),
            ("rf1", 2, {"f1": 0.91}),
            ("lr1", 1, {"f1": 0.90}),
            ("lr1", 2, {"f1": 0.95}),
        ],
    )
    store.experiments.record_trial_events(
        mlp,
        [
            {
                "trial_id": "m1",
                "config": {"family": "mlp", "lr": 1e-4, "hidden": 64},
                "status": "TERMINATED",
                "metrics": {"f1": 0.88},
                "duration_s": 5.0,
            },
            # still running: no final metrics yet, only what it reported per step
            {
                "trial_id": "m2",
                "config": {"family": "mlp", "lr": 1e-1, "hidden": 32},
                "status": "RUNNING",
            },
        ],
        [
            ("m1", 1, {"f1": 0.70}),
            ("m1", 2, {"f1": 0.84}),
            ("m1", 3, {"f1": 0.88}),
            ("m2", 1, {"f1": 0.55}),
            ("m2", 2, {"f1": 0.60}),
        ],
    )
    # a trial Tune has not started: nothing but its id, which the mlp experiment also uses
    store.experiments.record_trial_events(rerun, [{"trial_id": "m2"}])
    store.experiments.record_trial_events(
        rerun,
        [
            {
                "trial_id": "rf3",
                "config": {"family": "random_forest", "n_estimators": 300},
                "status": "TERMINATED",
                "metrics": {"f1": 0.93},
                "duration_s": 3.0,
            }
        ],
    )
    return {"rf": rf, "mlp": mlp, "rerun": rerun}


@pytest.fixture
def filled(store):
    return store, fill(store)


def ids(rows):
    return [r["trial_id"] for r in rows]


# -------------------------------------------------------------------------------------- the table
def test_rows_are_flat_with_config_metrics_and_experiment(filled):
    store, exp = filled
    rows = compare_trials(store)
    assert ids(rows) == ["rf1", "lr1", "rf2", "m1", "m2", "m2", "rf3"]
    rf1 = rows[0]
    assert rf1["experiment_id"] == exp["rf"] and rf1["experiment"] == "cancer"
    assert rf1["status"] == "TERMINATED" and rf1["duration_s"] == 2.0
    assert rf1["config.family"] == "random_forest" and rf1["config.n_estimators"] == 100
    assert rf1["metrics.f1"] == 0.91 and rf1["metrics.accuracy"] == 0.93
    assert "config.C" not in rf1 and "metrics.f1" not in rows[2]  # the errored trial
    # a trial without final metrics shows the latest value it reported
    running = rows[4]
    assert running["experiment"] == "cancer-mlp" and running["metrics.f1"] == 0.60
    cols = trial_columns(rows)
    assert cols[:5] == ["experiment_id", "experiment", "trial_id", "status", "duration_s"]
    assert cols[-3:] == ["config.n_estimators", "metrics.accuracy", "metrics.f1"]


def test_trial_columns_added_later_appear_without_code_changes(filled):
    """Rows come from ``t.*``: a column a later migration adds (JSON or plain) shows up, flattened."""
    store, exp = filled
    store._db.conn.execute("ALTER TABLE trials ADD COLUMN placement_json TEXT")
    store._db.conn.execute("ALTER TABLE trials ADD COLUMN host TEXT")
    store._db.conn.execute(
        "UPDATE trials SET placement_json = ?, host = 'n1' WHERE trial_id = 'rf1'",
        [json.dumps({"cpu": 2, "gpu": 0.5})],
    )
    (row,) = compare_trials(store, where="trial_id==rf1")
    assert row["host"] == "n1" and row["placement.gpu"] == 0.5 and row["placement.cpu"] == 2
    assert [r["trial_id"] for r in compare_trials(store, where="placement.gpu>0")] == ["rf1"]


def test_experiments_by_id_or_name(filled):
    store, exp = filled
    # a name matches every experiment of that name
    assert ids(compare_trials(store, "cancer")) == ["rf1", "lr1", "rf2", "m2", "rf3"]
    assert ids(compare_trials(store, exp["mlp"])) == ["m1", "m2"]
    assert ids(compare_trials(store, str(exp["mlp"]))) == ["m1", "m2"]  # as the CLI passes it
    # in the order asked, each once
    both = compare_trials(store, ["cancer-mlp", exp["rerun"], "cancer"])
    assert [r["experiment_id"] for r in both] == [2, 2, 3, 3, 1, 1, 1]


def test_unknown_experiment_says_what_exists_and_how_to_list(filled):
    store, _ = filled
    with pytest.raises(NotFoundError) as err:
        compare_trials(store, ["cancer", "nope"])
    msg = str(err.value)
    assert "'nope' does not exist" in msg and "1 'cancer'" in msg and "2 'cancer-mlp'" in msg
    assert "workbench runs" in msg
    with pytest.raises(NotFoundError, match="experiment 99 does not exist"):
        compare_trials(store, 99)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("metrics.f1>=0.9", ["rf1", "lr1", "rf3"]),
        ("metrics.f1 > 0.91", ["lr1", "rf3"]),
        ("metrics.f1<0.9", ["m1", "m2"]),
        ("metrics.f1<=0.88", ["m1", "m2"]),
        ("status==TERMINATED", ["rf1", "lr1", "m1", "rf3"]),
        ("status!=TERMINATED", ["rf2", "m2", "m2"]),
        ("config.family==random_forest", ["rf1", "rf2", "rf3"]),
        ("config.family=='random_forest'", ["rf1", "rf2", "rf3"]),
        # a trial without the key is "not mlp" (it fails ordering tests instead)
        ("config.family!=mlp", ["rf1", "lr1", "rf2", "m2", "rf3"]),
        ("config.n_estimators>=100", ["rf1", "rf3"]),
        ("config.n_estimators==100", ["rf1"]),
        ("config.n_estimators==100.0", ["rf1"]),
        ("config.lr<0.01", ["m1"]),
        ("metrics.accuracy==null", ["rf2", "m1", "m2", "m2", "rf3"]),
        ("experiment==cancer-mlp", ["m1", "m2"]),
        ("trial_id>=rf", ["rf1", "rf2", "rf3"]),  # text compares as text
        (["config.family==random_forest", "status==TERMINATED"], ["rf1", "rf3"]),
    ],
)
def test_where(filled, where, expected):
    store, _ = filled
    assert ids(compare_trials(store, where=where)) == expected


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("metrics.f1 ~ 0.9", "cannot read where condition 'metrics.f1 ~ 0.9'"),
        ("metrics.f1>=", "cannot read where condition 'metrics.f1>='"),
        ("f1>=0.9", "no column 'f1'. Did you mean 'metrics.f1'?"),
        ("metrics.f1>=high", "metrics.f1 holds numbers; compare it with a number"),
        ("__import__('os')==1", "no column"),
    ],
)
def test_bad_where_names_the_expression_and_the_columns(filled, where, message):
    store, _ = filled
    with pytest.raises(ConfigError) as err:
        compare_trials(store, where=where)
    assert message in str(err.value)
    if "no column" in message or "cannot read" in message:
        assert "Columns: experiment_id, experiment, trial_id" in str(err.value)
        assert "config.family" in str(err.value) and "metrics.f1" in str(err.value)


def test_sort_descending_ascending_multi_key_missing_last_and_limit(filled):
    store, _ = filled
    assert ids(compare_trials(store, sort="-metrics.f1")) == [
        "lr1",
        "rf3",
        "rf1",
        "m1",
        "m2",
        "rf2",  # no f1: last, in their original order
        "m2",
    ]
    assert ids(compare_trials(store, sort="metrics.f1")) == [
        "m2",
        "m1",
        "rf1",
        "rf3",
        "lr1",
        "rf2",  # no f1: last either way
        "m2",
    ]
    assert ids(compare_trials(store, sort="-config.n_estimators")) == [
        "rf3",
        "rf1",
        "rf2",
        "lr1",
        "m1",
        "m2",
        "m2",
    ]
    by_family = compare_trials(store, sort=["config.family", "-metrics.f1"])
    assert ids(by_family) == ["lr1", "m1", "m2", "rf3", "rf1", "rf2", "m2"]
    assert ids(compare_trials(store, sort="-metrics.f1", limit=2)) == ["lr1", "rf3"]
    assert compare_trials(store, limit=0) == []


def test_status_filter_and_bad_sort_or_limit(filled):
    store, _ = filled
    assert ids(compare_trials(store, status="error")) == ["rf2"]
    assert ids(compare_trials(store, status=["ERROR", "RUNNING"])) == ["rf2", "m2"]
    with pytest.raises(ConfigError, match="sort '-metrics.f2': no column 'metrics.f2'"):
        compare_trials(store, sort="-metrics.f2")
    with pytest.raises(ConfigError, match="limit must be a whole number"):
        compare_trials(store, limit=-1)


def test_empty_store_gives_no_rows(store):
    assert compare_trials(store, where="metrics.f1>0.5", sort="-metrics.f1") == []


# ------------------------------------------------------------------------------------------ curves
def test_metric_curves_from_rows_pairs_and_ids(filled):
    store, exp = filled
    curves = metric_curves(store, compare_trials(store, "cancer-mlp"))
    assert [c["trial_id"] for c in curves] == ["m1", "m2"]
    assert curves[0]["series"]["f1"] == {"step": [1, 2, 3], "value": [0.70, 0.84, 0.88]}
    assert curves[1]["status"] == "RUNNING" and curves[1]["experiment"] == "cancer-mlp"
    (pair,) = metric_curves(store, [(exp["rf"], "lr1")])
    assert pair["series"]["f1"]["value"] == [0.90, 0.95]
    (by_id,) = metric_curves(store, ["rf1"])
    assert by_id["experiment_id"] == exp["rf"] and by_id["series"]["f1"]["step"] == [1, 2]
    (silent,) = metric_curves(store, ["rf3"])
    assert silent["series"] == {}


def test_metric_curves_errors(filled):
    store, exp = filled
    with pytest.raises(ConfigError, match="exists in experiments 2, 3"):
        metric_curves(store, ["m2"])  # the same trial id in two experiments
    with pytest.raises(NotFoundError, match="no trial 'zz' in any experiment"):
        metric_curves(store, ["zz"])
    with pytest.raises(NotFoundError, match="experiment 1 has no trial 'm1'"):
        metric_curves(store, [(exp["rf"], "m1")])


# ------------------------------------------------------------------------------------------- plots
def test_parallel_coordinates(filled):
    import matplotlib
    from matplotlib.figure import Figure

    store, _ = filled
    rows = compare_trials(store)
    fig = plot_parallel_coordinates(rows, color="metrics.f1")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert len(lines) == len(rows) == 7  # one line per trial
    # default axes: every hyperparameter, then the colour metric
    names = ["config.C", "config.family", "config.hidden", "config.lr", "config.n_estimators"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        *names[:3],
        "config.lr (log)",
        names[4],
        "metrics.f1",
    ]
    axes = {a.get_gid(): a for a in ax.child_axes}
    assert set(axes) == {f"axis:{n}" for n in [*names, "metrics.f1"]}
    family = [t.get_text() for t in axes["axis:config.family"].get_yticklabels()]
    assert family == ["logistic_regression", "mlp", "random_forest"]  # evenly spaced categories
    assert list(axes["axis:config.family"].get_yticks()) == [0.0, 0.5, 1.0]
    trees = [t.get_text() for t in axes["axis:config.n_estimators"].get_yticklabels()]
    assert trees[0] == "10" and trees[-1] == "300"  # real min and max
    lr = [t.get_text() for t in axes["axis:config.lr"].get_yticklabels()]
    assert lr[0] == "0.0001" and lr[-1] == "0.1"
    # lines coloured by f1: the best trial is the top of the colormap, one without f1 is grey
    best = next(line for line in lines if line.get_label() == "cancer/lr1")
    worst = next(line for line in lines if line.get_label() == "cancer-mlp/m2")
    viridis = matplotlib.colormaps["viridis"]
    assert best.get_color() == pytest.approx(viridis(1.0))
    assert worst.get_color() == pytest.approx(viridis(0.0))
    errored = next(line for line in lines if line.get_label() == "cancer/rf2")
    assert errored.get_color() == pytest.approx((0.6, 0.6, 0.6, 0.8))
    # rf1 has no C, hidden or lr: its line joins family, n_estimators and f1 only
    rf1 = next(line for line in lines if line.get_label() == "cancer/rf1")
    assert list(rf1.get_xdata()) == [1, 4, 5]
    assert rf1.get_ydata()[1] == pytest.approx((100 - 10) / (300 - 10))
    assert fig.axes[-1].get_ylabel() == "metrics.f1"  # the colour bar
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"  # shows itself in a notebook


def test_parallel_coordinates_columns_and_errors(filled):
    store, _ = filled
    rows = compare_trials(store, "cancer")
    fig = plot_parallel_coordinates(rows, ["config.family", "duration_s"], color="metrics.f1")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["config.family", "duration_s"]
    assert len(ax.get_lines()) == len(rows) == 5 and len(ax.child_axes) == 2
    with pytest.raises(ConfigError, match="no column 'config.depth'"):
        plot_parallel_coordinates(rows, ["config.depth"])
    with pytest.raises(ConfigError, match="must be a numeric column"):
        plot_parallel_coordinates(rows, color="config.family")
    with pytest.raises(ConfigError, match="no trials to plot"):
        plot_parallel_coordinates([])


def test_metric_curves_plot(filled):
    store, _ = filled
    curves = metric_curves(store, compare_trials(store))
    fig = plot_metric_curves(curves, "metrics.f1")
    ax = fig.axes[0]
    lines = ax.get_lines()
    # rf2, rf3 and the pending m2 reported no steps
    assert [line.get_label() for line in lines] == [
        "cancer/rf1",
        "cancer/lr1",
        "cancer-mlp/m1",
        "cancer-mlp/m2",
    ]
    assert list(lines[2].get_xdata()) == [1, 2, 3]
    assert list(lines[2].get_ydata()) == [0.70, 0.84, 0.88]
    assert ax.get_xlabel() == "step" and ax.get_ylabel() == "f1"
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "cancer/rf1"
    with pytest.raises(ConfigError, match="no trial reported metric 'loss'; metrics: f1"):
        plot_metric_curves(curves, "loss")


def test_plots_leave_pyplot_alone(tmp_path):
    """No global pyplot state, no display backend: pyplot is never imported."""
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from _factories import make_experiment\n"
        "from test_compare_trials import fill\n"
        "from workbench.lineage import Store\n"
        "from workbench.experiments import *\n"
        "s = Store(':memory:'); fill(s); rows = compare_trials(s)\n"
        "plot_parallel_coordinates(rows).savefig(sys.argv[1])\n"
        "plot_metric_curves(metric_curves(s, rows), 'f1')._repr_png_()\n"
        "print('pyplot' if 'matplotlib.pyplot' in sys.modules else 'no-pyplot')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "p.png")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "no-pyplot"
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------ API, CLI and docs
@pytest.fixture
def bench_home(tmp_path):
    home = tmp_path / "home"
    with Store(home / "lineage.db") as store:
        fill(store)
    return home


def test_workbench_methods(bench_home):
    from workbench.api import Workbench

    with Workbench(bench_home) as bench:
        rows = bench.compare_trials("cancer", where="metrics.f1>=0.9", sort="-metrics.f1")
        assert ids(rows) == ["lr1", "rf3", "rf1"]
        fig = bench.plot_trials(status="TERMINATED", columns=["config.family", "metrics.f1"])
        assert len(fig.axes[0].get_lines()) == 4
        curves = bench.plot_curves("f1", "cancer-mlp")
        assert [line.get_label() for line in curves.axes[0].get_lines()] == [
            "cancer-mlp/m1",
            "cancer-mlp/m2",
        ]


def run(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def test_cli_table(bench_home):
    result = run(bench_home, "trials")
    assert result.exit_code == 0, result.output
    header, *lines = result.output.strip().splitlines()
    assert header.split()[:6] == [
        "experiment",
        "trial_id",
        "status",
        "duration_s",
        "metrics.accuracy",
        "metrics.f1",
    ]
    assert "config.family" in header and len(lines) == 7
    assert lines[0].split()[:2] == ["cancer", "rf1"]


def test_cli_filters_sorts_and_picks_columns(bench_home):
    result = run(
        bench_home,
        "trials",
        "-e",
        "cancer",
        "--experiment",
        "2",
        "--where",
        "metrics.f1>=0.88",
        "-w",
        "status==TERMINATED",
        "--sort",
        "-metrics.f1",
        "--limit",
        "3",
        "--columns",
        "trial_id,metrics.f1,config.family",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"trial_id": "lr1", "metrics.f1": 0.95, "config.family": "logistic_regression"},
        {"trial_id": "rf3", "metrics.f1": 0.93, "config.family": "random_forest"},
        {"trial_id": "rf1", "metrics.f1": 0.91, "config.family": "random_forest"},
    ]
    text = run(
        bench_home, "trials", "--status", "running", "--columns", "trial_id,metrics.f1"
    ).output
    assert text.split() == ["trial_id", "metrics.f1", "m2", "0.6"]
    full = json.loads(run(bench_home, "trials", "-e", "cancer-mlp", "--json").output)
    assert full[0]["config.lr"] == 0.0001 and full[0]["experiment_id"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "nope"], "experiment 'nope' does not exist"),
        (["-w", "f1>0.9"], "Did you mean 'metrics.f1'?"),
        (["-w", "metrics.f1 => 0.9"], "cannot read where condition"),
        (["--sort", "-bogus"], "no column 'bogus'"),
        (["--columns", "trial_id,bogus"], "no column bogus; columns: experiment_id"),
    ],
)
def test_cli_errors_say_what_to_do(bench_home, args, message):
    result = run(bench_home, "trials", *args)
    assert result.exit_code != 0
    assert message in result.output


def test_docs_example_runs_as_written(bench_home, tmp_path, monkeypatch):
    """The example in docs/api.md, run on a store holding experiments of the names it uses."""
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("## Comparing trials across experiments", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("WORKBENCH_HOME", str(bench_home))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/api.md", "exec"), {})
    assert (tmp_path / "trials.png").stat().st_size > 0
    assert (tmp_path / "f1-per-step.png").stat().st_size > 0
