"""The workbench side panel in a real JupyterLab, driven in Debian's chromium.

A real search and a real two-version deployment are made from this process in the lab's
WORKBENCH_HOME (the server and its kernels join this session's Ray). The tests open the panel and
see an experiment's trials, move a traffic slider and check the router's weights changed, and run a
notebook cell that starts a search with ``start_search`` and watch its progress widget (and the panel)
update live. Screenshots land in tests/browser/artifacts/.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.browser._lab import bench_with_split, open_notebook, open_panel, run_cell, screenshot

pytestmark = pytest.mark.ray

DEPLOYMENT = "panel-cancer"


@pytest.fixture(scope="module")
def seeded(lab, serve_apps):
    """A finished 2-trial search, model ``panel-cancer`` v1 (champion) and v2, deployed with v2 at 0%."""
    bench, train, holdout = bench_with_split(lab, 0.8)
    space = {"family": "logistic_regression", "C": 1.0}
    result = bench.experiments.search(
        train, name="panel-search", space=space, num_samples=2, folds=2, progress=None
    )
    v1 = bench.register_best(
        result, model=DEPLOYMENT, train=train, holdout=holdout, alias="champion"
    )
    v2 = bench.register_best(result, model=DEPLOYMENT, train=train, holdout=holdout, seed=1)
    bench.serving.deploy(DEPLOYMENT, "champion", name=DEPLOYMENT)
    bench.serving.set_traffic(DEPLOYMENT, {v1.version: 1.0, v2.version: 0.0}, reason="stage v2")
    yield {"bench": bench, "result": result, "v1": v1.version, "v2": v2.version, "train": train}
    try:
        serve_apps.delete()
    finally:
        bench.store.close()


def test_side_panel_shows_an_experiments_trials(page, seeded):
    result = seeded["result"]
    open_panel(page)
    panel = page.locator("#jp-workbench-panel")
    panel.locator('[data-tab="experiments"]').click()
    row = panel.locator(f'.jp-WorkbenchPanel-experiment[data-id="{result.experiment_id}"]')
    row.click()
    trials = panel.locator(".jp-WorkbenchPanel-trial")
    trials.first.wait_for()
    shown = sorted(trials.evaluate_all("rows => rows.map(r => r.dataset.trial)"))
    recorded = sorted(
        t["trial_id"] for t in seeded["bench"].experiments.trials(result.experiment_id)
    )
    assert shown == recorded and len(shown) == 2
    assert "Trials of panel-search" in panel.inner_text()
    # the metric column shows the recorded f1 of each trial
    text = panel.locator(".jp-WorkbenchPanel-trials").inner_text()
    for t in seeded["bench"].experiments.trials(result.experiment_id):
        assert f"{t['metrics']['f1']:.4f}" in text
        # the CV column: mean [95% interval] over the trial's 2 recorded folds
        cv = t["cv"]["f1"]
        shown = panel.locator(
            f'.jp-WorkbenchPanel-trial[data-trial="{t["trial_id"]}"] .jp-WorkbenchPanel-cv'
        ).inner_text()
        assert shown == f"{cv['mean']:.3f} [{cv['ci_low']:.3f}, {cv['ci_high']:.3f}]"
    screenshot(page, "panel-experiments")


def test_traffic_slider_changes_the_routers_weights(page, seeded):
    bench, v1, v2 = seeded["bench"], seeded["v1"], seeded["v2"]
    before = bench.serving.health(DEPLOYMENT)["versions"]
    assert (before[str(v1)]["weight"], before[str(v2)]["weight"]) == (1.0, 0.0)

    open_panel(page)
    panel = page.locator("#jp-workbench-panel")
    panel.locator('[data-tab="deployments"]').click()
    section = panel.locator(f'.jp-WorkbenchPanel-deployment[data-deployment="{DEPLOYMENT}"]')
    section.wait_for()
    section.locator(f'input[data-version="{v1}"]').fill("70")
    section.locator(f'input[data-version="{v2}"]').fill("30")
    section.locator('[data-action="apply-traffic"]').click()
    panel.locator(".jp-WorkbenchPanel-notice").wait_for(timeout=120_000)
    notice = panel.locator(".jp-WorkbenchPanel-notice").inner_text()
    assert "changed" in notice, notice

    after = bench.serving.health(DEPLOYMENT)["versions"]
    assert after[str(v1)]["weight"] == pytest.approx(0.7)
    assert after[str(v2)]["weight"] == pytest.approx(0.3)
    # recorded as a traffic change by the lab's user (the OS user owning the token-login server),
    # through the panel, and shown back by the panel
    from workbench._identity import os_user

    change = bench.store.deployments.list_traffic(DEPLOYMENT)[-1]
    assert change["reason"] == "set from the JupyterLab panel"
    assert change["actor"] == os_user()
    section.get_by_text("(serving 70%)").wait_for()
    screenshot(page, "panel-deployments")


def test_notebook_search_updates_its_widget_and_the_panel_live(page, lab, seeded):
    path = lab.write_notebook("live-search.ipynb")
    open_notebook(page, path)
    run_cell(
        page,
        "from workbench import Workbench\n"
        "bench = Workbench()\n"
        "train = bench.datasets.get('bc')\n"
        "handle = bench.experiments.start_search(train, name='live-search', num_samples=3, folds=2,\n"
        "    space={'family': 'logistic_regression', 'C': 1.0})\n"
        "print('started', handle.experiment_id)",
        timeout_s=180,
    )
    # The cell has returned (the kernel is idle) while the search runs: the widget must move on.
    widget = page.locator(".wb-progress").last
    widget.wait_for(timeout=60_000)
    seen = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = widget.get_attribute("data-status")
        counts = widget.locator(".wb-progress-counts").inner_text()
        done = int(re.match(r"\d+", counts).group())  # "2/3 trials done · ..." or "0 trials ..."
        if not seen or seen[-1] != (status, done):
            seen.append((status, done))
        if status != "RUNNING":
            break
        time.sleep(0.2)
    assert seen[-1] == ("TERMINATED", 3), seen
    assert len({done for _, done in seen}) >= 2, f"the widget never changed while running: {seen}"
    screenshot(page, "notebook-live-search")

    # the panel picks the new experiment up by polling, with its three trials
    open_panel(page)
    panel = page.locator("#jp-workbench-panel")
    panel.locator('[data-tab="experiments"]').click()
    panel.get_by_text("Trials of live-search").wait_for(timeout=30_000)
    panel.locator(".jp-WorkbenchPanel-trial").nth(2).wait_for()
    assert panel.locator(".jp-WorkbenchPanel-trial").count() == 3
    screenshot(page, "panel-live-search")


def test_datasets_tab_shows_a_report_and_a_diff_by_key(page, lab):
    from tests._factories import ingest_two_city_versions
    from workbench.api import Workbench

    with Workbench(lab.home) as bench:
        ingest_two_city_versions(bench, "panel-cities")
    open_panel(page)
    panel = page.locator("#jp-workbench-panel")
    panel.locator('[data-tab="datasets"]').click()
    # the dataset ingested last, its latest report (the failed warning first) and the last two diffed
    panel.get_by_text("Validation report of panel-cities v2").wait_for(timeout=30_000)
    first = panel.locator(".jp-WorkbenchPanel-check").first
    assert first.get_attribute("data-check") == "range" and "FAIL" in first.inner_text()
    summary = panel.locator(".jp-WorkbenchPanel-diffSummary")
    summary.wait_for(timeout=30_000)
    assert "panel-cities@1 → panel-cities@2" in summary.inner_text()
    assert "as whole rows" in summary.inner_text()
    panel.locator('.jp-WorkbenchPanel-datasetVersion[data-version="1"]').click()
    panel.get_by_text("Validation report of panel-cities v1").wait_for(timeout=30_000)
    assert panel.locator('.jp-WorkbenchPanel-check[data-passed="false"]').count() == 0
    panel.locator(".jp-WorkbenchPanel-diffForm input[name=key]").fill("id")
    panel.locator('[data-action="dataset-diff"]').click()
    panel.get_by_text("by key id").wait_for(timeout=30_000)
    text = panel.locator(".jp-WorkbenchPanel-diff").inner_text()
    assert "+1 added, −1 removed, ~2 changed, 0 unchanged" in text, text
    assert "changed columns (rows): x (1), city (1)" in text
    # a key that is not unique: the server's refusal in place of the diff
    panel.locator(".jp-WorkbenchPanel-diffForm input[name=key]").fill("city")
    panel.locator('[data-action="dataset-diff"]').click()
    panel.get_by_text("is not unique in panel-cities@1").wait_for(timeout=30_000)
    screenshot(page, "panel-datasets")
