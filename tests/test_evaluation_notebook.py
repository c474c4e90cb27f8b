"""notebooks/evaluation.ipynb executed top to bottom in a real kernel, its outcomes asserted.

The kernel joins the session's Ray (``RAY_ADDRESS``), as in tests/test_features_notebook.py, so it
starts none; its state lands in ``./.workbench`` of a folder of its own, which the test then opens
to check the printed figures against the store (the recorded evaluation, the gate's verdict, the
stored report). No Serve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests._notebooks import error_outputs, execute_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "evaluation.ipynb"

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # a notebook in a kernel, two searches


@pytest.fixture(scope="module")
def executed(tmp_path_factory, ray_cluster):
    folder = tmp_path_factory.mktemp("evaluation-notebook")
    env = {"RAY_ADDRESS": ray_cluster.address, "RAY_USAGE_STATS_ENABLED": "0"}
    nb, text = execute_notebook(NOTEBOOK, folder, env)
    return nb, text, folder


@pytest.fixture(scope="module")
def bench(executed):
    """The notebook's store, reopened in this process (no Ray needed to read it)."""
    from workbench.api import Workbench

    _, _, folder = executed
    b = Workbench(folder / ".workbench")
    yield b
    b.store.close()


def _floats(pattern: str, out: str) -> list[float]:
    m = re.search(pattern, out)
    assert m, f"{pattern!r} not in the notebook's output:\n{out}"
    return [float(g) for g in m.groups()]


def test_it_runs_without_errors_and_cleans_up(executed):
    nb, out, folder = executed
    errors = error_outputs(nb)
    assert not errors, errors
    assert (folder / ".workbench" / "lineage.db").exists()
    assert "train loans-train@1 2000 rows, holdout loans-holdout@1 2000 rows" in out
    # the scratch folder the report was written to is gone
    scratch = re.search(r"scratch folder: (\S+)", out)[1]
    assert not Path(scratch).exists()


def test_trials_show_their_cv_interval_as_the_store_has_it(executed, bench):
    _, out, _ = executed
    printed = re.findall(
        r"trial (\w+) C=\S+ cv roc_auc ([0-9.]+) ± ([0-9.]+) \[([0-9.]+), ([0-9.]+)\] over 3 folds",
        out,
    )
    assert len(printed) == 2, out
    exp_id = bench.experiments.list()[0]["id"]
    trials = {t["trial_id"]: t["cv"]["roc_auc"] for t in bench.experiments.trials(exp_id)}
    for trial_id, mean, _half, low, high in printed:
        cv = trials[trial_id]
        assert f"{cv['mean']:.4f}" == mean
        assert f"{cv['ci_low']:.4f}" == low and f"{cv['ci_high']:.4f}" == high
        assert float(low) < float(mean) < float(high)
        assert cv["n_folds"] == 3
    best = re.search(r"best trial: (\w+)", out)[1]
    assert trials[best]["mean"] == max(c["mean"] for c in trials.values())


def test_the_recorded_evaluation_is_what_was_printed(executed, bench):
    _, out, _ = executed
    roc, pr, ll, brier, acc = _floats(
        r"loans@1: roc_auc ([0-9.]+), pr_auc ([0-9.]+), log_loss ([0-9.]+), brier ([0-9.]+), "
        r"accuracy ([0-9.]+)",
        out,
    )
    ev = bench.registry.evaluation("loans", 1)
    m = ev["metrics"]
    assert (roc, pr, ll, brier, acc) == tuple(
        round(m[k], 4) for k in ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy")
    )
    assert 0.75 < roc < 0.95  # a linear model on a target with a U-shaped term
    matrix = ev["details"]["confusion"]["matrix"]
    assert f"confusion (rows true, columns predicted) ['no', 'yes'] {matrix}" in out
    assert sum(map(sum, matrix)) == 2000
    # accuracy is the confusion matrix's diagonal
    assert round((matrix[0][0] + matrix[1][1]) / 2000, 4) == acc
    support = {c: f["support"] for c, f in ev["details"]["per_class"].items()}
    assert support == {"no": sum(matrix[0]), "yes": sum(matrix[1])}
    by_group = ev["fairness"]["by_group"]["group"]
    assert sum(g["count"] for g in by_group.values()) == 2000
    (dp, eo) = _floats(
        r"v1 gaps: demographic_parity_difference ([0-9.]+), equalized_odds_difference ([0-9.]+)",
        out,
    )
    gaps = ev["fairness"]["gaps"]["group"]
    assert dp == round(gaps["demographic_parity_difference"], 4)
    assert eo == round(gaps["equalized_odds_difference"], 4)
    assert dp < 0.1  # the group is independent of everything by construction


def test_the_paired_gate_passes_on_the_large_holdout_and_not_on_the_small(executed):
    _, out, _ = executed
    low, high = _floats(
        r"large holdout: passed=True evidence='sufficient' n=2000 interval=\[([-+0-9.]+), ([-+0-9.]+)\]",
        out,
    )
    assert 0 < low < high
    low, high = _floats(
        r"small holdout: passed=False evidence='not enough evidence' n=150 "
        r"interval=\[([-+0-9.]+), ([-+0-9.]+)\]",
        out,
    )
    assert low < 0 < high
    assert "straddles margin 0.0" in out
    assert re.search(r"mcnemar large: passed=True evidence='sufficient' n=2000 p=\S+", out)
    p_small = _floats(
        r"mcnemar small: passed=False evidence='not enough evidence' n=150 p=(\S+)", out
    )[0]
    assert p_small >= 0.05


def test_the_unfair_challenger_is_refused_for_fairness_and_the_fair_one_passes(executed):
    _, out, _ = executed
    built_in = _floats(r"a gap of about 0\.25 x [0-9.]+ = ([0-9.]+) built in", out)[0]
    fair = _floats(
        r"challenger: passed=True .* demographic_parity_difference ([0-9.]+) \(champion ([0-9.]+), "
        r"bound 0\.1\) fairness passed=True",
        out,
    )
    unfair = _floats(
        r"unfair: passed=False .* demographic_parity_difference ([0-9.]+) \(champion ([0-9.]+), "
        r"bound 0\.1\) fairness passed=False",
        out,
    )
    assert fair[0] < 0.1 < unfair[0] and unfair[0] > unfair[1]
    # the model reproduces the disparity its labels carry, roughly
    assert abs(unfair[0] - built_in) < 0.05, (unfair[0], built_in)
    # refused for fairness alone: its ROC-AUC gain over the champion does clear the margin
    assert re.search(
        r"clears margin 0\.0; fairness: demographic_parity_difference [0-9.]+ > 0\.1 "
        r"\(champion [0-9.]+\)",
        out,
    )


def test_the_winner_is_registered_with_its_verdict_and_the_report_matches(executed, bench):
    nb, out, _ = executed
    assert re.search(
        r"loans@2 aliases \('champion',\): roc_auc [0-9.]+, gate passed=True "
        r"test=paired_bootstrap n=2000",
        out,
    )
    ev = bench.registry.evaluation("loans", "champion")
    assert ev["model_version_id"] == bench.registry.get("loans", 2).id
    assert ev["gate"]["passed"] and ev["gate"]["fairness"]["demographic_parity_difference"]
    size = int(re.search(r"report loans-2\.html: (\d+) bytes", out)[1])
    html = bench.registry.report("loans", 2)  # the stored page, as the notebook wrote it
    assert len(html.encode("utf-8")) == size
    auc = ev["details"]["roc"]["yes"]["auc"]
    assert f"legend 'AUC {auc:.4f}' in it: True" in out and f"AUC {auc:.4f}" in html
    assert (
        "parts drawn: ['roc-curve', 'pr-curve', 'per-class-bars', 'calibration-curve', "
        "'confusion-matrix', "
        "'cv-intervals', 'gate-verdict', 'group-bars-group']" in out
    )
    widget_cell = next(c for c in nb.cells if "bench.widgets.registry" in c.source)
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in widget_cell.outputs
    )
