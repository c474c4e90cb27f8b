"""The side panel's actions clicked through in a real JupyterLab (Debian's chromium).

One store is seeded through the public ``workbench`` API in the lab's WORKBENCH_HOME: a dataset
split into train/holdout, model ``panel-actions`` v1 (champion) and v2 registered on it, deployed on
real Serve with v2 at 50% (a canary), a drift monitor (scipy backend) that has tested three windows
of real requests sent over HTTP (one as in training, two shifted), and a retraining policy with
``approval=True`` whose ``tick(run=False)`` left two jobs waiting for a person. In chromium the
tests then promote v2 (through the confirmation), roll the deployment back, approve one retraining
and reject the other, and
read the Monitors and Lineage tabs; each action is checked through the API (aliases, the router's
weights, the job) and in the audit log, where the actor must be the lab's user (the OS user that
owns the token-login server), recorded through the panel. Screenshots land in tests/browser/artifacts/.
"""

from __future__ import annotations

import pytest

from tests.browser._lab import bench_with_split, open_panel, screenshot

pytestmark = pytest.mark.ray

MODEL = DEPLOYMENT = "panel-actions"
MONITOR = "panel-actions-drift"
WINDOW = 40


@pytest.fixture(scope="module")
def seeded(lab, serve_apps):
    from workbench.automation import DriftTrigger, LoopPolicy

    bench, train, holdout = bench_with_split(lab, 0.7)
    for c in (1.0, 0.05):
        bundle = bench.experiments.fit_bundle(train, {"family": "logistic_regression", "C": c})
        bench.registry.register(
            MODEL,
            bundle,
            metrics=bench.experiments.evaluate(bundle, holdout),
            dataset_version_id=train.id,
        )
    bench.registry.set_alias(MODEL, "champion", 1, reason="first model")
    bench.serving.deploy(MODEL, "champion", name=DEPLOYMENT)
    bench.serving.set_traffic(DEPLOYMENT, {1: 0.5, 2: 0.5}, reason="canary v2")

    # Requests over HTTP: one window as in training, then two with every feature tripled.
    rows = bench.datasets.load(holdout).drop("diagnosis").to_dicts()
    assert len(rows) >= WINDOW
    normal = rows[:WINDOW]
    shifted = [{k: v * 3 for k, v in r.items()} for r in rows[:WINDOW]]
    bench.monitoring.drift_monitor(DEPLOYMENT, name=MONITOR, window=WINDOW, backend="scipy")
    for batch in (normal, shifted, shifted):
        for i in range(0, WINDOW, 10):
            bench.serving.predict(DEPLOYMENT, batch[i : i + 10])
    bench.serving.flush_logs(DEPLOYMENT)

    bench.automation.add_policy(
        LoopPolicy(
            "panel-loop",
            model=MODEL,
            deployment=DEPLOYMENT,
            train="bc-train",
            holdout="bc-holdout",
            triggers=[DriftTrigger(MONITOR, windows=1)],
            approval=True,
            cooldown_s=0,  # each drifting window is its own job: one to approve, one to reject
            canary=False,
            num_samples=1,
        )
    )
    ticked = bench.automation.tick(run=False)  # checks the monitor's 3 windows, files the jobs
    results = bench.monitoring.results(MONITOR)
    assert [r["is_drift"] for r in results] == [False, True, True], results
    pending = bench.automation.pending()
    assert [j["id"] for j in pending] == ticked["created"] and len(pending) == 2, ticked
    yield {"bench": bench, "jobs": pending, "results": results}
    try:
        serve_apps.delete()
    finally:
        bench.store.close()


def open_tab(page, tab: str):
    """Open the panel from the left sidebar and click one of its tabs, as a user does."""
    open_panel(page)
    panel = page.locator("#jp-workbench-panel")
    panel.locator(f'[data-tab="{tab}"]').click()
    return panel


def audit(bench, action: str) -> list[dict]:
    return [e for e in bench.audit_log(200) if e["action"] == action]


def lab_user(page) -> str:
    """Who the panel's actions must be recorded as: the lab is logged in with Jupyter's own token,
    so its user is the server's owner, the OS user running it (docs/governance.md), not the
    random anonymous name Jupyter gives the browser."""
    from workbench._identity import os_user

    name = page.evaluate("() => window.jupyterapp.serviceManager.user.identity.username")
    assert name and name not in ("automation", "seed"), name
    return os_user()


def p_text(value: float) -> str:
    """A p-value as the panel writes it (JavaScript's toPrecision(2), or toExponential(1) under 0.001)."""
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return format(value, "#.2g")


def test_promote_moves_the_champion_after_a_confirmation(page, seeded):
    bench = seeded["bench"]
    assert bench.registry.get(MODEL, "champion").version == 1
    before = len(audit(bench, "alias.set"))
    panel = open_tab(page, "models")
    row = panel.locator(f'.jp-WorkbenchPanel-version[data-model="{MODEL}"][data-version="2"]')
    row.locator('[data-action="promote"]').click()
    # nothing moves before the confirmation; Cancel leaves everything as it was
    confirm = panel.locator(".jp-WorkbenchPanel-confirm")
    confirm.wait_for()
    assert "champion" in confirm.inner_text() and "v2" in confirm.inner_text()
    screenshot(page, "panel-promote-confirm")
    confirm.locator('[data-action="cancel"]').click()
    confirm.wait_for(state="detached")
    assert bench.registry.get(MODEL, "champion").version == 1
    assert len(audit(bench, "alias.set")) == before

    row.locator('[data-action="promote"]').click()
    confirm.locator('[data-action="confirm"]').click()
    notice = panel.locator(".jp-WorkbenchPanel-notice.jp-mod-ok")
    notice.wait_for(timeout=60_000)
    assert f"{MODEL} v2 is now champion" in notice.inner_text()

    assert bench.registry.get(MODEL, "champion").version == 2
    history = bench.registry.history(MODEL)
    assert (history[-1]["alias"], history[-1]["version"]) == ("champion", 2), history
    assert history[-1]["actor"] == lab_user(page)
    entries = audit(bench, "alias.set")
    assert len(entries) == before + 1 and entries[0]["actor"] == lab_user(page), entries[:2]
    # the panel redraws: v2 carries the alias, v1 now has the Promote button
    row.locator(".jp-WorkbenchPanel-alias", has_text="champion").wait_for()
    assert row.locator('[data-action="promote"]').count() == 0
    screenshot(page, "panel-promoted")


def test_rollback_sends_all_traffic_to_the_last_good_version(page, seeded):
    bench = seeded["bench"]
    before = bench.serving.health(DEPLOYMENT)["versions"]
    assert (before["1"]["weight"], before["2"]["weight"]) == (0.5, 0.5)
    panel = open_tab(page, "deployments")
    section = panel.locator(f'.jp-WorkbenchPanel-deployment[data-deployment="{DEPLOYMENT}"]')
    section.wait_for()
    section.locator('[data-action="rollback"]').click()
    confirm = panel.locator(".jp-WorkbenchPanel-confirm")
    confirm.wait_for()
    # the question names the version the rollback will send all traffic to
    assert f"Roll {DEPLOYMENT} back to v1?" in confirm.inner_text(), confirm.inner_text()
    assert bench.serving.last_known_good(DEPLOYMENT) == 1
    screenshot(page, "panel-rollback-confirm")
    confirm.locator('[data-action="confirm"]').click()
    panel.locator(".jp-WorkbenchPanel-notice").wait_for(timeout=120_000)
    notice = panel.locator(".jp-WorkbenchPanel-notice").inner_text()
    assert "rolled back" in notice and "failed" not in notice, notice

    after = bench.serving.health(DEPLOYMENT)["versions"]
    assert (after["1"]["weight"], after["2"]["weight"]) == (1.0, 0.0)
    change = bench.store.deployments.list_traffic(DEPLOYMENT)[-1]
    assert change["kind"] == "rollback" and change["actor"] == lab_user(page), change
    assert change["detail"]["from"] == 2 and change["detail"]["to"] == 1, change
    assert change["reason"].startswith("rollback from the JupyterLab panel")
    section.get_by_text("(serving 100%)").wait_for()
    screenshot(page, "panel-rolled-back")


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_approve_or_reject_a_pending_retraining(page, seeded, answer):
    bench = seeded["bench"]
    job = seeded["jobs"][0 if answer == "approve" else 1]
    status = {"approve": "APPROVED", "reject": "REJECTED"}[answer]
    assert bench.store.retraining.get_job(job["id"])["status"] == "PENDING_APPROVAL"
    panel = open_tab(page, "monitors")
    row = panel.locator(f'.jp-WorkbenchPanel-job[data-job="{job["id"]}"]')
    row.wait_for()
    assert "PENDING_APPROVAL" in row.inner_text()
    row.locator(f'[data-action="{answer}"]').click()
    confirm = panel.locator(".jp-WorkbenchPanel-confirm")
    confirm.wait_for()
    assert f"retraining #{job['id']}" in confirm.inner_text()
    screenshot(page, f"panel-{answer}-confirm")
    confirm.locator('[data-action="confirm"]').click()
    panel.locator(".jp-WorkbenchPanel-notice.jp-mod-ok").wait_for(timeout=60_000)

    got = bench.store.retraining.get_job(job["id"])
    assert (got["status"], got["approval"]) == (status, status), got
    assert job["id"] not in [j["id"] for j in bench.automation.pending()]
    (entry,) = [e for e in audit(bench, f"retrain.{answer}") if e["entity_id"] == job["id"]]
    assert entry["actor"] == lab_user(page), entry
    row.get_by_text(status).wait_for()
    assert row.locator('[data-action="approve"]').count() == 0
    screenshot(page, f"panel-{answer}d")


def _triaged(bench, results, jobs):
    """The retraining the first drifting window started, approved (by the test above, or here
    when this test runs alone) and run by the engine: its first step triages the shift. The
    requests carry no labels, so the estimate is confidence-based (CBPE); every feature tripled
    pushes the logistic regression to certainty, which that estimate reads as harmless."""
    (job,) = [j for j in jobs if j["drift_result_id"] == results[1]["id"]]
    if bench.automation.job(job["id"])["status"] == "PENDING_APPROVAL":
        bench.automation.approve(job["id"], reason="the monitors test runs alone")
    bench.automation.tick(check=False)
    job = bench.automation.job(job["id"])
    step = bench.automation.steps(job["id"])[0]
    assert step["step"] == "triage" and step["detail"]["method"] == "cbpe", step
    return job, step["detail"]


def test_monitors_tab_shows_windows_p_values_and_alerts(page, seeded):
    bench, results = seeded["bench"], seeded["results"]
    job, triage = _triaged(bench, results, seeded["jobs"])
    assert (job["status"], job["decision"]) == ("SKIPPED", "harmless_shift"), (job, triage)
    panel = open_tab(page, "monitors")
    monitor = panel.locator(f'.jp-WorkbenchPanel-monitor[data-monitor="{MONITOR}"]')
    monitor.wait_for()
    assert "data_drift" in monitor.inner_text() or "drift" in monitor.inner_text()
    windows = panel.locator(f'.jp-WorkbenchPanel-window[data-monitor="{MONITOR}"]')
    windows.nth(1).wait_for()
    shown = windows.evaluate_all(
        "rows => rows.map(r => [Number(r.dataset.result), r.dataset.verdict,"
        " Array.from(r.cells).map(c => c.innerText.trim())])"
    )
    # newest first: window, verdict, smallest p-value, threshold, records
    assert [(rid, verdict, cells) for rid, verdict, cells in shown] == [
        (
            r["id"],
            "drift" if r["is_drift"] else "ok",
            [f"#{r['id']}", "drift" if r["is_drift"] else "ok"]
            + [p_text(r["score"]), p_text(r["threshold"]), str(r["n"])],
        )
        for r in reversed(results)
    ], shown
    assert results[-1]["score"] < results[-1]["threshold"] < results[0]["score"]
    # under the newest drifting window: the features the detector found most shifted
    top = results[-1]["detail"]["most_shifted"][0]["feature"]
    shifted = panel.locator(".jp-WorkbenchPanel-shifted").first.inner_text()
    assert top in shifted, (top, shifted)
    alerts = bench.monitoring.alerts(MONITOR)
    assert alerts, "the drifting window raised no alert"
    alert_text = panel.locator(".jp-WorkbenchPanel-alerts").inner_text()
    assert alerts[0]["title"] in alert_text, alert_text
    # the second drifting window was folded into the first alert (cooldown): shown as a count
    assert alerts[0]["count"] == 2 and "(×2)" in alert_text, (alerts[0], alert_text)
    # under the alert: the triage of the retraining its window started, and what the job decided
    assert alerts[0]["drift_result_id"] == results[1]["id"], alerts[0]
    outcome = panel.locator(
        f'.jp-WorkbenchPanel-alert[data-alert="{alerts[0]["id"]}"] .jp-WorkbenchPanel-triage'
    )
    outcome.wait_for()
    assert outcome.inner_text() == (
        f"triage: harmless shift: accuracy est. {triage['estimate']:.2f} vs {triage['baseline']:.2f}"
        f" baseline, cbpe (no labels) n={triage['n']} → retrain job #{job['id']}: SKIPPED — harmless_shift"
    ), outcome.inner_text()
    assert "jp-mod-harmless" in outcome.get_attribute("class")
    assert outcome.get_attribute("title") == triage["reason"], outcome.get_attribute("title")
    screenshot(page, "panel-monitors")


def test_lineage_tab_shows_the_chain_from_dataset_to_deployment(page, seeded):
    bench = seeded["bench"]
    panel = open_tab(page, "lineage")
    lineage = panel.locator(".jp-WorkbenchPanel-lineage")
    edges = lineage.locator(".jp-WorkbenchPanel-edge")
    edges.first.wait_for()

    def shown() -> list[tuple[str, str]]:
        return [
            (rel, " ".join(text.split()))
            for rel, text in edges.evaluate_all(
                "es => es.map(e => [e.dataset.relation, e.innerText])"
            )
        ]

    def recorded(version) -> list[tuple[str, str, str]]:
        """(relation, source, target) of each edge line pair of ``lineage_text``."""
        lines = bench.lineage_text(MODEL, version).splitlines()
        out = []
        for head, edge in zip(lines, lines[1:], strict=False):
            if edge.startswith(" ") and "-->" in edge:
                relation, dst = edge.strip()[2:].split("--> ", 1)
                out.append((relation, " ".join(head.split()[1:]), " ".join(dst.split())))
        return out

    # the champion (v2 since the promotion, else v1) by default: every edge of lineage_text, in order
    champion = bench.registry.get(MODEL, "champion").version
    expected = recorded(champion)
    got = shown()
    assert [r for r, _ in got] == [r for r, _, _ in expected], got
    for (_, text), (_, src, dst) in zip(got, expected, strict=True):
        assert src in text and dst in text, (text, src, dst)
    relations = {r for r, _ in got}
    assert {"derived", "trained", "deployed_to"} <= relations, relations
    text = lineage.inner_text()
    assert "dataset bc v1" in text and "dataset bc-train v1" in text, text
    assert f"model {MODEL} v{champion}" in text and f"deployment {DEPLOYMENT}" in text, text
    assert f"traffic history of deployment {DEPLOYMENT}" in text
    screenshot(page, "panel-lineage")

    # another version by number, through the form
    other = 1 if champion == 2 else 2
    panel.locator('.jp-WorkbenchPanel-lineageForm [name="version"]').fill(str(other))
    panel.locator('.jp-WorkbenchPanel-lineageForm [data-action="lineage"]').click()
    page.wait_for_function(
        """([n, want]) => document.querySelectorAll(
            '#jp-workbench-panel .jp-WorkbenchPanel-edge').length === n &&
            document.querySelector('#jp-workbench-panel .jp-WorkbenchPanel-lineage').innerText.includes(want)""",
        arg=[len(recorded(other)), f"model {MODEL} v{other}"],
    )


def test_a_viewer_sees_which_buttons_they_may_not_press_and_why(page, seeded):
    """Last in the module: the lab's user is made a viewer (another admin is granted first, so
    the owner's admin can be revoked). The panel then says who it acts as, disables Promote,
    Apply traffic, Roll back, Approve and Reject with the role each needs, and nothing moves."""
    from workbench._identity import os_user

    bench = seeded["bench"]
    me = os_user()
    bench.access.grant("second-admin", "admin")
    bench.access.grant(me, "viewer")
    bench.access.revoke(me, "admin")
    assert bench.access.roles(me) == {"viewer"}
    before = (
        bench.registry.history(MODEL),
        bench.serving.traffic(DEPLOYMENT),
        bench.audit_log(500),
    )

    panel = open_tab(page, "models")
    identity = panel.locator(".jp-WorkbenchPanel-identity")
    identity.wait_for()
    assert identity.inner_text().strip() == f"as {me} · viewer"
    promote = panel.locator('[data-action="promote"]').first
    promote.wait_for()
    assert promote.is_disabled()
    assert (
        promote.get_attribute("title")
        == f"{me} (viewer) may not promote: it needs the approver role"
    )

    panel.locator('[data-tab="deployments"]').click()
    rollback = panel.locator(f'[data-action="rollback"][data-deployment="{DEPLOYMENT}"]')
    rollback.wait_for()
    assert rollback.is_disabled() and "deployer role" in rollback.get_attribute("title")
    apply = panel.locator(f'[data-action="apply-traffic"][data-deployment="{DEPLOYMENT}"]')
    assert apply.is_disabled() and "deployer role" in apply.get_attribute("title")
    sliders = panel.locator(f'[data-action="weight"][data-deployment="{DEPLOYMENT}"]')
    assert sliders.count() == 2 and all(sliders.nth(i).is_disabled() for i in range(2))
    screenshot(page, "panel-viewer")
    after = (bench.registry.history(MODEL), bench.serving.traffic(DEPLOYMENT), bench.audit_log(500))
    assert after == before
