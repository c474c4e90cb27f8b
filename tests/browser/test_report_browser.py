"""The HTML evaluation report and its views, in Debian's chromium.

The store holds a real breast-cancer holdout evaluation (tests/test_report.py's
``cancer_evaluation``: metrics, curves, CV of 5 folds, a gate verdict, per-group figures) for
version 2 (champion) of a model and none for version 1. The report file renders offline with
every chart visible and the store's figures as text; the panel's Models tab shows the champion's
evaluation and opens the same report served by the server extension. No Ray: this module's
JupyterLab (it overrides ``lab``) reads only the store. Screenshots land in
tests/browser/artifacts/.
"""

from __future__ import annotations

import pytest

from tests.browser._lab import open_panel, screenshot, start_lab, stop_lab
from tests.test_report import cancer_evaluation, seed_versions

MODEL = "cancer<x>"  # a name that must be escaped everywhere
CHARTS = (
    "roc-curve",
    "pr-curve",
    "calibration-curve",
    "per-class-bars",
    "cv-intervals",
    "group-bars-grp",
)


def _f(x):
    return f"{x:.4f}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab without Ray (the report and evaluation endpoints read the store only)."""
    root = tmp_path_factory.mktemp("reportlab")
    home = root / ".workbench"
    home.mkdir()
    from workbench.api import Workbench

    with Workbench(home) as bench:
        seed_versions(bench.store, cancer_evaluation(), model=MODEL)
    server = start_lab(root, home)
    yield server
    stop_lab(server)


@pytest.fixture(scope="module")
def stored(lab):
    from workbench.api import Workbench

    with Workbench(lab.home) as bench:
        return bench.registry.evaluation(MODEL, "champion")


def _check_report(pg, ev):
    """The rendered report shows each chart with a size, and the store's figures as its text."""
    for ident in CHARTS:
        box = pg.locator(f"#{ident}").bounding_box()
        assert box and box["width"] > 100 and box["height"] > 20, (ident, box)
        assert pg.locator(f"#{ident}").is_visible()
    # drawn marks are on screen: the ROC line has the stored points, calibration points visible
    roc = pg.locator("#roc-curve polyline.series")
    assert roc.count() == len(ev["details"]["roc"])
    n_points = roc.first.evaluate("p => p.points.numberOfItems")
    (cls,) = ev["details"]["roc"]
    assert n_points == len(ev["details"]["roc"][cls]["fpr"])
    assert pg.locator("#calibration-curve circle").first.is_visible()
    # the text a reader sees equals the store's
    for name, value in ev["metrics"].items():
        assert pg.locator(f'#metrics tr[data-metric="{name}"] td').nth(1).inner_text() == _f(value)
    legend = pg.locator(f'#roc-curve + figcaption .series-label[data-class="{cls}"]').inner_text()
    assert legend == f"{cls} (AUC {_f(ev['details']['roc'][cls]['auc'])})"
    conf = ev["details"]["confusion"]
    for i, t in enumerate(conf["labels"]):
        for j, p in enumerate(conf["labels"]):
            cell = pg.locator(f'#confusion-matrix td[data-true="{t}"][data-predicted="{p}"]')
            assert cell.inner_text() == str(conf["matrix"][i][j])
    # the heat map: the largest count is shaded darker than the smallest
    colors = pg.locator("#confusion-matrix td[data-count]").evaluate_all(
        "cells => cells.map(c => [Number(c.dataset.count), getComputedStyle(c).backgroundColor])"
    )
    alpha = {n: float(c.rstrip(")").split(",")[-1]) if "rgba" in c else 1.0 for n, c in colors}
    assert alpha[max(alpha)] > alpha[min(alpha)]
    cv = ev["cv"]["f1"]
    shown = pg.locator("#cv-intervals").evaluate("svg => svg.textContent")
    assert f"{_f(cv['mean'])} [{_f(cv['ci_low'])}, {_f(cv['ci_high'])}]" in shown
    assert pg.locator("#cv-intervals rect.ci").is_visible()
    verdict = pg.locator("#gate-verdict .verdict").inner_text()
    assert verdict.startswith("passed" if ev["gate"]["passed"] else "refused")
    assert MODEL in pg.locator("#report-header h1").inner_text()


def test_the_report_file_renders_offline_with_the_stores_figures(lab_page, lab, stored, tmp_path):
    from workbench.api import Workbench

    path = tmp_path / "report.html"
    with Workbench(lab.home) as bench:
        bench.registry.report(MODEL, "champion", path=path)
    requests, errors = [], []
    lab_page.on("request", lambda r: requests.append(r.url))
    lab_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    lab_page.goto(path.as_uri())
    _check_report(lab_page, stored)
    assert requests == [path.as_uri()], f"the report fetched something: {requests}"
    assert not errors, errors
    screenshot(lab_page, "report-file")


def test_the_panel_shows_the_evaluation_and_opens_the_report(page, lab, stored):
    open_panel(page)
    panel = page.locator("#jp-workbench-panel")
    panel.locator('[data-tab="models"]').click()
    ev_box = panel.locator(".jp-WorkbenchPanel-evaluation")
    ev_box.wait_for(timeout=30_000)
    assert ev_box.get_attribute("data-version") == "2", "the champion's evaluation first"
    for name, value in stored["metrics"].items():
        row = ev_box.locator(f'tr[data-metric="{name}"] td')
        assert row.nth(1).inner_text() == _f(value)
    cv = stored["cv"]["f1"]
    cv_cell = ev_box.locator('tr[data-metric="f1"] td').nth(2).inner_text()
    assert cv_cell == f"{cv['mean']:.3f} [{cv['ci_low']:.3f}, {cv['ci_high']:.3f}]"
    gate = ev_box.locator(".jp-WorkbenchPanel-gate")
    assert gate.get_attribute("data-passed") == str(stored["gate"]["passed"]).lower()
    assert f"n={stored['gate']['n']}" in gate.inner_text()
    groups = ev_box.locator(".jp-WorkbenchPanel-groups tr[data-group]")
    assert sorted(groups.evaluate_all("rs => rs.map(r => r.dataset.group)")) == ["a<b>", "c"]
    screenshot(page, "panel-evaluation")

    # version 1 has none, and says how to record one; back to v2
    panel.locator('[data-action="evaluation"][data-version="1"]').click()
    panel.get_by_text("No recorded evaluation").wait_for()
    panel.locator('[data-action="evaluation"][data-version="2"]').click()
    ev_box.locator(".jp-WorkbenchPanel-report").wait_for()

    with page.context.expect_page() as opened:
        ev_box.locator(".jp-WorkbenchPanel-report").click()
    report = opened.value
    report.wait_for_load_state()
    try:
        _check_report(report, stored)
        screenshot(report, "panel-report")
    finally:
        report.close()
