"""The workbench widgets in a real JupyterLab and Debian's chromium: they render readable charts, and
clicks (stop, promote with confirmation, a lineage node) reach the kernel and act through the API.

The store is seeded from this process (1,000 trials, three model versions, a deployment with a
canary and request logs, a drift monitor with alerts and a retrain job); the notebook's kernel
reads the same WORKBENCH_HOME. Screenshots of each widget land in tests/browser/artifacts/.
"""

from __future__ import annotations

import json
import os
import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser._lab import (
    ARTIFACTS,
    FAILED,
    end_kernels,
    open_lab,
    open_notebook,
    reset_notebook,
    run_cell,
    screenshot,
)

pytestmark = pytest.mark.ray

FEATURES = ["mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness"]


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


def _triage(method, estimate, baseline, interval, *, n):
    """A job's ``detail["triage"]`` as ``Job.triage()`` records it (the verdict from the real rule)."""
    from workbench.automation._policy import triage_verdict

    harmful, reason = triage_verdict(
        estimate, baseline, max_drop=0.05, interval=None if interval is None else tuple(interval)
    )
    return {
        "method": method, "estimate": estimate, "baseline": baseline, "interval": interval,
        "harmful": harmful, "n": n, "labels": n if method == "labels" else 0, "reason": f"{method}: {reason}",
    }  # fmt: skip


@pytest.fixture(scope="module")
def seeded(lab):
    """Records of every kind in the lab's store; returns their ids."""
    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv

    bench = Workbench(lab.home)
    store = bench.store
    dv = bench.datasets.ingest(
        write_breast_cancer_csv(lab.root_dir / "bc.csv"), name="bc", target="diagnosis"
    )
    eid = store.experiments.add(
        name="big-search", dataset_version_id=dv.id, metric="f1", mode="max", num_samples=1000,
        search_space={}, search_alg="optuna", scheduler="ASHA", seed=0, code_version={}, packages={},
    )  # fmt: skip
    rng = random.Random(1)
    trials, metrics = [], []
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1000):
        family = rng.choice(["random_forest", "logistic_regression", "hist_gradient_boosting"])
        c = 10 ** rng.uniform(-3, 2)
        depth = rng.randint(2, 12)
        f1 = (
            0.85
            + 0.1 * (1 - abs(rng.gauss(0, 0.4)))
            - (0.03 if family == "logistic_regression" and c < 0.01 else 0)
        )
        status = rng.choices(["TERMINATED", "STOPPED", "ERROR"], [90, 8, 2])[0]
        config = (
            {"family": family, "C": c}
            if family == "logistic_regression"
            else {"family": family, "max_depth": depth}
        )
        trials.append({
            "trial_id": f"trial_{i:04d}", "config": config, "status": status, "duration_s": rng.uniform(1, 9),
            "metrics": {"f1": f1, "accuracy": f1 + 0.01}, "ended_at": _iso(t0 + timedelta(seconds=i)),
        })  # fmt: skip
        steps = 1 if status == "STOPPED" else 3
        metrics += [
            (f"trial_{i:04d}", s, {"f1": f1 - 0.02 * (steps - 1 - s)}) for s in range(steps)
        ]
    store.experiments.record_trial_events(eid, trials, metrics)
    store.experiments.set_finished(eid, status="TERMINATED", best_trial_id="trial_0001")
    mvs = []
    for v, f1 in enumerate([0.951, 0.968, 0.962], start=1):
        mvs.append(store.models.add_version(
            "bc-model", task="classification", artifact_hash=f"{v}" * 64, params={"max_depth": v + 3},
            metrics={"f1": f1, "accuracy": f1 + 0.008, "precision": f1 - 0.01}, signature={},
            experiment_id=eid, trial_id=f"trial_{v:04d}", dataset_version_id=dv.id,
        ))  # fmt: skip
    store.models.set_alias("bc-model", "champion", 1, actor="alice", reason="first model")
    store.models.set_alias("bc-model", "champion", 2, actor="alice", reason="better f1")
    store.deployments.add("bc-model", model="bc-model", route_prefix="/bc-model", status="running")
    store.deployments.record_traffic(
        "bc-model", {2: 1.0}, actor="alice", reason="initial deployment", kind="deploy"
    )
    for step, share in enumerate([0.1, 0.25], start=1):
        store.deployments.record_traffic(
            "bc-model", {2: 1 - share, 3: share}, actor="canary", reason=f"canary step {step}/4", kind="canary",
            detail={"step": step, "steps": 4, "champion": 2, "challenger": 3, "evidence": {}},
        )  # fmt: skip
    now = datetime.now(UTC)
    rows = []
    for i in range(900):
        at = now - timedelta(seconds=180 * (1 - i / 900))
        rows.append({
            "request_id": f"req-{i}", "deployment": "bc-model", "model_version_id": mvs[1 if i % 5 else 2]["id"],
            "features": {}, "latency_ms": 4 + 3 * rng.random() + (20 if i % 97 == 0 else 0),
            "status_code": 500 if i % 61 == 0 else 200, "at": _iso(at),
        })  # fmt: skip
    store.deployments.record_requests(rows)
    store.monitors.add(
        "bc-drift", deployment="bc-model", kind="data_drift", reference_dataset_version_id=dv.id,
        config={"p_val": 0.05, "correction": "bonferroni", "features": FEATURES},
    )  # fmt: skip
    drift_ids = []
    for w in range(14):
        drift = w in (9, 10, 12)
        pvals = {
            f: (rng.uniform(1e-6, 1e-3) if drift and k < 2 else rng.uniform(0.05, 0.9))
            for k, f in enumerate(FEATURES)
        }
        worst = sorted(pvals.items(), key=lambda kv: kv[1])[:5]
        rid = store.monitors.record_window(
            "bc-drift", first_request_log_id=w * 50 + 1, last_request_log_id=w * 50 + 50, n=50, is_drift=drift,
            score=worst[0][1], threshold=0.01,
            detail={"verdict": "drift" if drift else "ok", "most_shifted": [{"feature": f, "p_val": p} for f, p in worst]},
        )  # fmt: skip
        drift_ids.append(rid)
        if drift:
            store.monitors.record_alert(
                dedup_key=f"drift-{w}", severity="warning", title=f"data drift on bc-model: {worst[0][0]} (p={worst[0][1]:.1g})",
                detail={}, cooldown_s=0, monitor="bc-drift", drift_result_id=rid,
            )  # fmt: skip
    # the triage each job recorded (LoopPolicy(triage=True), as Job.triage() writes it): the first
    # drift hurt (labels: a real drop), so it retrained and promoted; the second was harmless
    # (no labels: a confidence-based estimate) and ended without retraining; the third is untriaged
    harmful = _triage("labels", 0.7105, 0.976, [0.6217, 0.7851], n=114)
    job = store.retraining.claim_job(
        "drift:9", policy="on-drift", status="PROMOTED", drift_result_id=drift_ids[9],
        detail={"triage": harmful},
    )  # fmt: skip
    store.retraining.set_job(
        job, challenger_version_id=mvs[2]["id"], decision="promoted: f1 +0.011"
    )
    pending = store.retraining.claim_job(
        "drift:12", policy="on-drift", status="PENDING_APPROVAL", drift_result_id=drift_ids[12]
    )
    skipped = store.retraining.claim_job(
        "drift:10", policy="on-drift", status="SKIPPED", decision="harmless_shift",
        drift_result_id=drift_ids[10], detail={"triage": _triage("cbpe", 0.9893, 0.9712, None, n=50)},
    )  # fmt: skip
    ids = {
        "experiment": eid,
        "dataset": dv.id,
        "model_versions": [m["id"] for m in mvs],
        "jobs": {"promoted": job, "pending": pending, "skipped": skipped},
    }
    bench.close()
    return ids


@pytest.fixture(scope="module")
def notebook(lab, seeded):
    return lab.write_notebook(
        "widgets.ipynb", ["from workbench import Workbench\nbench = Workbench()"]
    )


@pytest.fixture(scope="module")
def notebook_state():
    """``{"ready": bool}``: whether the module's page holds a JupyterLab with the notebook open
    whose kernel a test may reuse."""
    return {"ready": False}


@pytest.fixture
def page(lab_page, lab, notebook, notebook_state, request):
    """This module's tests share one JupyterLab, notebook and kernel (a kernel start, the workbench
    import and joining Ray cost seconds each): each test finds the notebook as new (one empty
    cell) and every widget of the test before closed in the kernel. After a failed test the kernel
    is shut down and JupyterLab loaded anew, so the next test starts with a fresh kernel."""
    ready, notebook_state["ready"] = notebook_state["ready"], False
    if ready:
        reset_notebook(lab_page)
    else:
        end_kernels(lab)
        open_lab(lab_page, lab)
    yield lab_page
    try:
        screenshot(lab_page, request.node.name)
    finally:
        notebook_state["ready"] = not request.node.stash.get(FAILED, False)


def _shot(page, selector, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(selector).last.screenshot(path=str(ARTIFACTS / f"widget_{name}.png"))
    if os.environ.get("WORKBENCH_WIDGET_SHOTS"):  # a second copy, e.g. outside the shared folder
        page.locator(selector).last.screenshot(
            path=os.path.join(os.environ["WORKBENCH_WIDGET_SHOTS"], f"{name}.png")
        )


def _start(page, notebook):
    page.set_viewport_size({"width": 2000, "height": 2400})  # whole widgets in one screenshot
    open_notebook(page, notebook)
    # JupyterLab's "get notified about news?" toast would cover the widgets in screenshots.
    page.add_style_tag(content=".Toastify { display: none !important; }")
    run_cell(
        page, "from workbench import Workbench\nbench = Workbench()\nimport time, threading, json"
    )


def test_experiment_widget_sorts_filters_and_pages_a_thousand_trials(page, lab, seeded, notebook):
    _start(page, notebook)
    run_cell(page, f"w = bench.widgets.experiment({seeded['experiment']})\nw")
    page.wait_for_selector(".wb-experiment .wb-table tbody tr", timeout=60_000)
    rows = page.locator(".wb-experiment .wb-table tbody tr")
    assert rows.count() == 50
    assert "1000 of 1000 trials" in page.locator(".wb-experiment .wb-pager").inner_text()
    # Charts: curves, best so far, parallel coordinates (an SVG each, with axis labels).
    svgs = page.locator(".wb-experiment svg.wb-chart")
    assert svgs.count() == 3
    text = page.locator(".wb-experiment").inner_text()
    assert "f1 per step" in text and "best f1 so far" in text and "parallel coordinates" in text
    assert page.locator(".wb-experiment .wb-pc-lines path").count() >= 900
    # Sorted by f1, best first (mode max): the first row is the best trial.
    first = rows.first.locator("td").nth(2).inner_text()
    values = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(5)]
    assert values == sorted(values, reverse=True), values
    # Sorting 1,000 rows in the browser stays fast.
    ms = page.evaluate(
        """() => { const th = [...document.querySelectorAll('.wb-experiment .wb-table th')].find(t => t.textContent.startsWith('duration_s'));
                  const t0 = performance.now(); th.click(); return performance.now() - t0; }"""
    )
    print(f"\nsorting 1,000 trials in the browser (click to redrawn page): {ms:.1f} ms")
    assert ms < 500, f"sorting 1,000 trials took {ms:.0f} ms"
    durations = [float(rows.nth(i).locator("td").nth(3).inner_text()) for i in range(5)]
    assert durations == sorted(durations)
    page.fill(".wb-experiment .wb-filter", "status=ERROR")
    page.wait_for_function(
        "() => /^\\d+ of 1000 trials/.test(document.querySelector('.wb-experiment .wb-pager').textContent)"
    )
    shown = int(
        re.match(r"(\d+) of", page.locator(".wb-experiment .wb-pager").inner_text()).group(1)
    )
    assert 0 < shown < 100
    assert all(
        rows.nth(i).locator(".wb-status").inner_text() == "ERROR" for i in range(min(shown, 5))
    )
    page.fill(".wb-experiment .wb-filter", "")
    th = page.locator(".wb-experiment .wb-table th", has_text="f1").first
    th.click()
    _shot(page, ".wb-experiment", "experiment")
    assert first


def test_a_widget_update_blocks_the_kernel_thread_only_briefly(page, lab, seeded, notebook):
    """1,000 trials, real comm: the kernel thread keeps ticking while updates are pushed."""
    _start(page, notebook)
    code = f"""
from workbench.ui import ExperimentWidget
reader = bench.reopen()  # its own store connection, as bench.widgets reads through
w = ExperimentWidget(reader.experiments, {seeded["experiment"]}, autostart=False, min_interval=0)
display(w)
time.sleep(1.0)
def measure(update, n=20):
    done, cost = threading.Event(), []
    def pump():
        for i in range(n):
            t0 = time.perf_counter(); update(i); cost.append((time.perf_counter() - t0) * 1000)
        done.set()
    gaps, last = [], time.perf_counter()
    threading.Thread(target=pump).start() if update else threading.Timer(2.0, done.set).start()
    while not done.is_set():
        time.sleep(0.001); now = time.perf_counter(); gaps.append((now - last) * 1000 - 1); last = now
    gaps.sort()
    return {{"update_ms": sorted(cost)[len(cost) // 2] if cost else None, "push_ms": round(w.stats["push_ms"], 2),
            "p50_gap_ms": round(gaps[len(gaps) // 2], 2), "p99_gap_ms": round(gaps[int(len(gaps) * 0.99)], 2),
            "max_gap_ms": round(gaps[-1], 2)}}
def typical(i):  # one trial changed: the table is sent again, cached curves are not
    reader.store.experiments.record_trial_events({seeded["experiment"]}, [{{"trial_id": "trial_0000", "duration_s": 1 + i}}])
    w.refresh(force=True)
def worst(i):  # every curve re-read and the whole table sent again
    w._reader._final.clear(); w.rows = []; w.refresh(force=True)
out = {{"idle": measure(None), "typical": measure(typical), "worst": measure(worst)}}
print("STATS" + json.dumps(out))
"""
    out = run_cell(page, code, timeout_s=240)
    stats = json.loads(out.split("STATS", 1)[1].strip())
    print(
        "\nkernel-thread gaps beyond a 1 ms sleep while a 1,000-trial widget updates 20 times:",
        stats,
    )
    # The poller does the work; the kernel thread only waits for the GIL now and then. Bounds are
    # generous for a 2-core machine shared with a browser, JupyterLab and Ray.
    # A thread doing pure-Python work instead puts the median gap at the 5 ms switch interval.
    assert stats["typical"]["p50_gap_ms"] < 2, stats
    assert stats["worst"]["p50_gap_ms"] < 2, stats
    assert stats["typical"]["p99_gap_ms"] < 250, stats
    # push_ms (printed above) is the last push alone, one sample: a bound on it was a timed check
    # that failed under load (74 ms against 50 once, with a Ray cluster starting beside it).


def test_registry_widget_promotes_after_confirmation(page, lab, seeded, notebook):
    from workbench.lineage import Store

    _start(page, notebook)
    run_cell(page, 'bench.registry.get("bc-model", 2)')  # a model version displays its widget
    page.wait_for_selector(".wb-registry .wb-table tbody tr")
    assert page.locator(".wb-registry .wb-table tbody tr").count() == 3
    assert page.locator(".wb-registry svg.wb-chart rect").count() >= 9  # 3 versions x 3 metrics
    assert "champion → v2" in page.locator(".wb-registry .wb-head").inner_text()
    page.locator('.wb-registry button[data-action="promote"][data-version="3"]').click()
    confirm = page.locator(".wb-registry .wb-confirm")
    assert "Point champion of bc-model at v3 (now v2)?" in confirm.inner_text()
    _shot(page, ".wb-registry", "registry_confirm")
    confirm.locator("button", has_text="Confirm").click()
    page.wait_for_function(
        "() => document.querySelector('.wb-registry .wb-notice').textContent.includes('champion is now version 3')",
        timeout=30_000,
    )
    page.wait_for_function(
        "() => document.querySelector('.wb-registry .wb-head').textContent.includes('champion → v3')"
    )
    store = Store(lab.home / "lineage.db")
    try:
        assert store.models.get_version("bc-model", "champion")["version"] == 3
        last = store.models.list_alias_history("bc-model")[-1]
        assert last["actor"].endswith("(widget)") and last["previous_version"] == 2
        assert store.audit_log(5)[0]["action"] == "alias.set"
    finally:
        store.close()
    _shot(page, ".wb-registry", "registry")


def test_registry_widget_shows_an_evaluation_and_opens_its_report(page, lab, seeded, notebook):
    from tests.test_report import cancer_evaluation
    from workbench.api import Workbench

    with Workbench(lab.home) as bench:
        mv = bench.registry.get("bc-model", 2)
        bench.store.evaluations.add(mv.id, holdout_version_id=None, **cancer_evaluation())
        ev = bench.registry.evaluation("bc-model", 2)
    _start(page, notebook)
    run_cell(page, 'bench.registry.get("bc-model", 2)')
    card = page.locator('.wb-registry .wb-eval[data-version="2"]').last
    card.wait_for()
    for name, value in ev["metrics"].items():
        cells = card.locator(f'.wb-eval-metrics tr[data-metric="{name}"] td')
        assert float(cells.nth(1).inner_text()) == pytest.approx(value, abs=5e-5)
    cv = ev["cv"]["f1"]
    assert card.locator('tr[data-metric="f1"] svg.wb-ci line.wb-ci-bar').count() == 1
    assert f"[{round(cv['ci_low'], 4)}, {round(cv['ci_high'], 4)}]" in card.inner_text()
    gate = card.locator(".wb-gate")
    assert gate.get_attribute("data-passed") == str(ev["gate"]["passed"]).lower()
    assert f"n={ev['gate']['n']}" in gate.inner_text()
    assert sorted(card.locator(".wb-eval-groups tr[data-group]").evaluate_all(
        "rs => rs.map(r => r.dataset.group)")) == ["a<b>", "c"]  # fmt: skip
    card.locator('button[data-action="report"]').click()
    frame = page.frame_locator(".wb-registry .wb-report-frame").last
    frame.locator("#roc-curve").wait_for(timeout=30_000)
    (cls,) = ev["details"]["roc"]
    legend = frame.locator(f'.series-label[data-class="{cls}"]').first.inner_text()
    assert legend == f"{cls} (AUC {ev['details']['roc'][cls]['auc']:.4f})"
    assert frame.locator('#metrics tr[data-metric="f1"] td').nth(1).inner_text() == (
        f"{ev['metrics']['f1']:.4f}"
    )
    _shot(page, ".wb-registry", "registry_evaluation")


def test_deployment_widget_shows_traffic_requests_and_canary(page, lab, seeded, notebook):
    _start(page, notebook)
    run_cell(page, 'bench.widgets.deployment("bc-model")')
    page.wait_for_selector(".wb-deployment .wb-slider")
    assert page.locator(".wb-deployment .wb-slider").count() == 2
    text = page.locator(".wb-deployment").inner_text()
    assert "canary v2 → v3: step 2/4 (in progress)" in text
    assert (
        "request rate" in text
        and "latency" in text
        and "error rate" in text
        and "traffic share per version" in text
    )
    assert "900 requests logged" in text
    # Moving a slider updates the normalised shares at once (before anything is sent).
    page.locator('.wb-deployment .wb-slider[data-version="3"]').evaluate(
        "el => { el.value = 75; el.dispatchEvent(new Event('input')); }"
    )
    shares = page.locator(".wb-deployment .wb-share").all_inner_texts()
    assert shares == ["50%", "50%"], shares
    _shot(page, ".wb-deployment", "deployment")


def test_monitor_widget_shows_p_values_alerts_and_retraining(page, lab, seeded, notebook):
    _start(page, notebook)
    run_cell(page, 'bench.widgets.monitor("bc-drift")')
    page.wait_for_selector(".wb-monitor svg.wb-chart")
    text = page.locator(".wb-monitor").inner_text()
    assert "14 windows · 3 with drift · 3 alerts · 3 retrain jobs" in text
    assert "PENDING_APPROVAL" in text and "promoted: f1 +0.011" in text
    # under each alert (newest first: windows 12, 10, 9) the triage of the retraining it started
    # and what that job decided
    jobs = seeded["jobs"]
    alerts = page.locator(".wb-monitor .wb-alert")
    assert alerts.count() == 3
    outcomes = [alerts.nth(i).locator(".wb-triage").inner_text() for i in range(3)]
    assert outcomes == [
        f"retrain job #{jobs['pending']}: PENDING_APPROVAL",
        "triage: harmless shift: accuracy est. 0.99 vs 0.97 baseline, cbpe (no labels) n=50"
        f" → retrain job #{jobs['skipped']}: SKIPPED — harmless_shift",
        "triage: harmful shift: accuracy est. 0.71 (0.62–0.79) vs 0.98 baseline, labels n=114"
        f" → retrain job #{jobs['promoted']}: PROMOTED — promoted: f1 +0.011",
    ], outcomes
    assert "wb-triage-harmless" in alerts.nth(1).locator(".wb-triage").get_attribute("class")
    assert "wb-triage-harmful" in alerts.nth(2).locator(".wb-triage").get_attribute("class")
    # hovering the line gives the engine's own reason
    reason = alerts.nth(2).locator(".wb-triage").get_attribute("title")
    assert reason.startswith("labels: estimated accuracy 0.711 (95% interval 0.622-0.785) under"), (
        reason
    )
    # each alert line and its triage sit together, the alert's title first
    assert alerts.nth(2).inner_text().index("data drift on bc-model") < alerts.nth(
        2
    ).inner_text().index("triage:")
    job = page.locator(f".wb-monitor .wb-hist[data-job='{jobs['skipped']}']")
    assert "triage: harmless shift: accuracy est. 0.99" in job.inner_text()
    assert page.locator(".wb-monitor button[data-action='approve']").count() == 1
    assert page.locator(".wb-monitor rect").count() >= 14 * len(FEATURES)
    _shot(page, ".wb-monitor", "monitor")


def test_lineage_widget_shows_the_record_of_a_clicked_node(page, lab, seeded, notebook):
    _start(page, notebook)
    run_cell(page, 'bench.widgets.lineage("bc-model", 3)')
    page.wait_for_selector(".wb-lineage .wb-node")
    keys = page.locator(".wb-lineage .wb-node").evaluate_all("els => els.map(e => e.dataset.key)")
    assert (
        f"dataset_version:{seeded['dataset']}" in keys
        and f"experiment:{seeded['experiment']}" in keys
    )
    assert any(k.startswith("deployment:") for k in keys) and any(
        k.startswith("retrain_job:") for k in keys
    )
    page.locator(f".wb-lineage .wb-node[data-key='experiment:{seeded['experiment']}']").click()
    page.wait_for_function(
        "() => document.querySelector('.wb-lineage .wb-detail').textContent.includes('big-search')",
        timeout=30_000,
    )
    assert "optuna" in page.locator(".wb-lineage .wb-detail").inner_text()
    _shot(page, ".wb-lineage", "lineage")


def test_dataset_widget_shows_reports_and_a_diff_by_key(page, lab, seeded, notebook):
    from tests._factories import ingest_two_city_versions
    from workbench.api import Workbench

    with Workbench(lab.home) as bench:
        ingest_two_city_versions(bench)
    _start(page, notebook)
    run_cell(page, 'bench.widgets.dataset("cities")')
    page.wait_for_selector(".wb-dataset .wb-diff-summary")
    box = page.locator(".wb-dataset")
    assert "validation report of v2: " in box.inner_text()
    failed = box.locator("tr.wb-warn-row")
    assert failed.count() == 1 and "range" in failed.inner_text()
    assert "cities@1 → cities@2" in box.locator(".wb-diff-summary").inner_text()
    # the report of the version clicked
    box.locator("tr[data-version='1']").click()
    page.wait_for_function(
        "() => document.querySelector('.wb-dataset').textContent.includes('validation report of v1')",
        timeout=30_000,
    )
    assert box.locator("tr.wb-warn-row, tr.wb-fail-row").count() == 0
    # compare by key: the diff runs in the kernel's worker thread and comes back
    box.locator("input.wb-key").fill("id")
    box.locator("button[data-action='diff']").click()
    page.wait_for_function(
        "() => document.querySelector('.wb-dataset .wb-diff-summary').textContent.includes('by key id')",
        timeout=30_000,
    )
    summary = box.locator(".wb-diff-summary").inner_text()
    assert "+1 added, −1 removed, ~2 changed, 0 unchanged" in summary, summary
    assert "changed rows (old → new)" in box.inner_text()
    _shot(page, ".wb-dataset", "dataset")


def test_stop_button_ends_a_search_running_in_the_kernel(page, lab, seeded, notebook):
    from workbench.lineage import Store

    _start(page, notebook)
    code = """
from ray import tune
def slow(config, data):
    import time as t
    from ray import tune as rt
    for step in range(1, 61):
        rt.report({"score": config["x"] * step})
        t.sleep(0.25)
dv = bench.datasets.get("bc")
handle = bench.experiments.start_search(dv, name="browser-stop", space={"x": tune.grid_search([1, 2, 3, 4])},
    trainable=slow, metric="score", mode="max", num_samples=1, max_steps=60, progress=None)
handle
"""
    run_cell(page, code, timeout_s=180)
    stop = page.locator(".wb-experiment .wb-stop").last
    page.wait_for_function(
        "() => { const b = [...document.querySelectorAll('.wb-experiment .wb-stop')].pop();"
        " return b && b.style.display !== 'none' && !b.disabled &&"
        " [...document.querySelectorAll('.wb-experiment')].pop().querySelectorAll('path[data-series]').length > 0; }",
        timeout=120_000,
    )
    _shot(page, ".wb-experiment", "experiment_running")
    stop.click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wb-experiment')].pop().querySelector('.wb-head').textContent.includes('STOPPED')",
        timeout=120_000,
    )
    store = Store(lab.home / "lineage.db")
    try:
        exp = [e for e in store.experiments.list() if e["name"] == "browser-stop"][-1]
        assert exp["status"] == "STOPPED"
        audit = [
            a
            for a in store.audit_log(50)
            if a["action"] == "experiment.stop" and a["entity_id"] == exp["id"]
        ]
        assert audit and audit[0]["actor"].endswith("(widget)")
    finally:
        store.close()
    _shot(page, ".wb-experiment", "experiment_stopped")


@pytest.fixture(scope="module")
def live_deployment(lab, seeded, serve_apps):
    """A real Serve deployment ("live", versions 1 and 2) recorded in the lab's store."""
    import contextlib

    from tests._serve_env import cancer_bundle
    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store
    from workbench.serving import Serving
    from workbench.serving._recorder import kill_recorder

    settings = Settings.from_env(lab.home)
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    bundle, records = cancer_bundle()
    for _ in range(2):
        store.models.add_version(
            "live", task=bundle.task, artifact_hash=artifacts.put_object(bundle), params={}, metrics={},
            signature=bundle.signature, experiment_id=None, trial_id=None, dataset_version_id=None,
        )  # fmt: skip
    serving = Serving(store, artifacts, settings, http_port=serve_apps.port)
    serving.deploy("live", 1, name="live", actor="tester")
    for _ in range(5):
        serving.predict("live", records[:3])
    try:
        yield serving
    finally:
        serving.close()
        with contextlib.suppress(Exception):
            serve_apps.delete()
        with contextlib.suppress(Exception):
            kill_recorder(settings.db_path)
        store.close()


def test_a_slider_reconfigures_the_live_router(page, lab, live_deployment, notebook):
    serving = live_deployment
    _start(page, notebook)
    run_cell(page, 'bench.widgets.deployment("live")')
    page.wait_for_selector(".wb-deployment .wb-slider[data-version='1']")
    # Put version 2 on a slider, then release it at 30: weights {1: 1.0, 2: 0.3} -> 77% / 23%.
    page.locator(".wb-deployment select.wb-add").last.select_option("2")
    slider = page.locator(".wb-deployment .wb-slider[data-version='2']").last
    slider.evaluate(
        "el => { el.value = 30; el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change')); }"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wb-deployment .wb-notice')].pop().textContent.startsWith('traffic set')",
        timeout=120_000,
    )
    notice = page.locator(".wb-deployment .wb-notice").last.inner_text()
    assert notice == "traffic set: v1 77%, v2 23%", notice
    live = serving.health("live")["versions"]  # what the router serves now
    assert live["2"]["weight"] == pytest.approx(0.3 / 1.3)
    last = serving.store.deployments.list_traffic("live")[-1]
    assert last["actor"].endswith("(widget)") and last["kind"] == "set"
    page.wait_for_function(
        "() => [...document.querySelectorAll('.wb-deployment .wb-share')].map(e => e.textContent).join(' ') === '77% 23%'",
        timeout=30_000,
    )
    _shot(page, ".wb-deployment", "deployment_live")
