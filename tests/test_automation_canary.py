"""The store-driven loop on a real Ray Serve deployment under live HTTP traffic on loopback.

1. Drift in a window of logged requests → ``tick()`` makes one job → snapshot, warm-started
   search, gate → canary 50% → 100% while client threads send requests (and their labels,
   late) → PROMOTED; the drift monitor's reference moves to the new training data.
2. Labels that arrive later say the model is wrong (a broken labelling feed) → the
   performance monitor's window falls under its floor → ``tick()`` makes exactly one job →
   the challenger learns the broken labels and a gate told to pass anything lets it
   through → the canary's accuracy check on correctly labelled live traffic rolls it back;
   the champion keeps 100% and the evidence is recorded.

Everything is asserted through the public API and the store.
"""

from __future__ import annotations

import random
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from workbench.automation import DriftTrigger, Gate, LoopPolicy, PerformanceTrigger

pytestmark = [pytest.mark.ray, pytest.mark.slow]

NAME = "loop"
TARGET = "diagnosis"
FLIP = {"malignant": "benign", "benign": "malignant"}


@pytest.fixture(scope="module")
def live(serve_apps, tmp_path_factory):
    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv
    from workbench.serving._recorder import kill_recorder

    home = tmp_path_factory.mktemp("loop") / "wbhome"
    bench = Workbench(home, serve_port=serve_apps.port)
    dv = bench.datasets.ingest(write_breast_cancer_csv(home / "bc.csv"), name="bc", target=TARGET)
    parts = bench.datasets.split(dv, {"train": 0.5, "holdout": 0.2, "live": 0.3}, seed=0)
    bundle = bench.experiments.fit_bundle(
        parts["train"], {"family": "logistic_regression", "C": 1.0}
    )
    metrics = bench.experiments.evaluate(bundle, parts["holdout"])
    bench.registry.register(NAME, bundle, metrics=metrics, dataset_version_id=parts["train"].id)
    bench.registry.set_alias(NAME, "champion", 1)
    bench.serving.deploy(NAME, "champion", name=NAME)
    rows = bench.datasets.load(parts["live"]).to_dicts()
    try:
        yield SimpleNamespace(bench=bench, rows=rows, rng=random.Random(0))
    finally:
        bench.close()
        serve_apps.delete()
        kill_recorder(bench.settings.db_path)


def _shifted(env: Any, n: int) -> list[dict[str, Any]]:
    """A referral clinic: 85% malignant cases (the training data has about 37%)."""
    mal = [r for r in env.rows if r[TARGET] == "malignant"]
    ben = [r for r in env.rows if r[TARGET] != "malignant"]
    return [
        env.rng.choice(mal) if env.rng.random() < 0.85 else env.rng.choice(ben) for _ in range(n)
    ]


def _send(env: Any, rows: list[dict[str, Any]], *, flip: bool = False) -> list[dict[str, Any]]:
    """POST each row over HTTP, then (later) send the labels, joined by request id."""
    labels, answers = {}, []
    for row in rows:
        out = env.bench.serving.predict(NAME, [{k: v for k, v in row.items() if k != TARGET}])
        labels[out["request_id"]] = FLIP[row[TARGET]] if flip else row[TARGET]
        answers.append(out)
    env.bench.serving.flush_logs(NAME)
    env.bench.monitoring.record_labels(labels)
    return answers


class Clients(threading.Thread):
    """Live clients in a thread: one-record requests over HTTP, labels sent every 10 requests.

    With ``after_step``, they start once the named retrain step is recorded (so the
    retraining snapshot holds only what came before). Bounded in requests and seconds.
    """

    def __init__(self, env: Any, *, after_step: str | None = None, max_s: float = 150.0):
        super().__init__(daemon=True)
        self.env, self.after_step, self.max_s = env, after_step, max_s
        self.stop = threading.Event()
        self.answers: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        bench, deadline = self.env.bench, time.monotonic() + self.max_s
        while self.after_step and not self.stop.is_set() and time.monotonic() < deadline:
            if bench.store._db.row(
                "SELECT id FROM retrain_steps WHERE step = ?", [self.after_step]
            ):
                break
            time.sleep(0.2)
        rng = random.Random(1)
        while not self.stop.is_set() and time.monotonic() < deadline and len(self.answers) < 2000:
            try:
                self.answers += _send(self.env, rng.sample(self.env.rows, 10))
            except Exception as exc:  # recorded and asserted on, never swallowed
                self.errors.append(repr(exc))
                time.sleep(0.2)

    def __enter__(self) -> Clients:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(timeout=60)


def _weights(bench: Any) -> dict[int, float]:
    health = bench.serving.health(NAME)
    return {int(v): float(d["weight"]) for v, d in health["versions"].items()}


def _policy(name: str, triggers: list[Any], **kw: Any) -> LoopPolicy:
    base: dict[str, Any] = dict(
        model=NAME,
        deployment=NAME,
        train="bc-train",
        holdout="bc-holdout",
        triggers=triggers,
        cooldown_s=0,
        num_samples=1,
        canary_steps=(0.5, 1.0),
        min_requests=10,
        min_labels=10,
        canary_poll_s=0.5,
        max_canary_rounds=240,
        # the canary is what is tested: a job retrains on every event (triage would call this
        # module's shift harmless) from the sliding snapshot (tests/test_triage.py covers both)
        triage=False,
        since_change=False,
    )
    return LoopPolicy(name, **{**base, **kw})


def test_drift_job_goes_through_a_canary_on_serve_and_is_promoted(live):
    bench = live.bench
    mon = bench.monitoring.drift_monitor(NAME, window=60, p_val=0.01, backend="scipy")
    bench.automation.add_policy(
        _policy(
            "on-drift",
            [DriftTrigger(mon.name, windows=1)],
            gate=Gate("f1", margin=-0.05, guarded=("recall",), tolerance=0.1),
            snapshot="sliding",
            max_accuracy_drop=0.2,
            canary_wait_for_labels=True,
        )
    )
    _send(live, live.rng.sample(live.rows, 60))
    quiet = bench.automation.tick()
    assert [r["verdict"] for r in quiet["checked"][mon.name]] == ["ok"]
    assert quiet["created"] == [] and bench.automation.jobs("on-drift") == []

    _send(live, _shifted(live, 60))
    with Clients(live) as clients:
        out = bench.automation.tick()
    assert not clients.errors, clients.errors[:3]
    assert [r["verdict"] for r in out["checked"][mon.name]] == ["drift"]
    drift_id = out["checked"][mon.name][0]["id"]
    (job,) = bench.automation.jobs("on-drift")
    assert out["created"] == [job["id"]] and out["ran"][0]["status"] == "PROMOTED", out["ran"]
    assert job["status"] == "PROMOTED" and job["drift_result_id"] == drift_id and job["ended_at"]

    steps = bench.automation.steps(job["id"])
    assert [(s["step"], s["status"]) for s in steps] == [
        ("snapshot", "ok"),
        ("validation", "passed"),
        ("search", "ok"),
        ("evaluation", "ok"),
        ("gate", "passed"),
        ("registration", "ok"),
        ("canary", "started"),
        ("canary", "advanced"),
        ("canary", "completed"),
        ("promotion", "ok"),
        ("reference", "ok"),
    ]
    gate = job["detail"]["gate"]
    evaluation = steps[3]["detail"]
    assert gate["champion"] == evaluation["champion"]["f1"]
    assert gate["challenger"] == evaluation["challenger"]["f1"]
    # the canary judged real requests answered by the challenger at each step
    canary = job["detail"]["canary"]
    assert [c["decision"] for c in canary] == ["advanced", "completed"]
    assert [c["weights"] for c in canary] == [{"1": 0.5, "2": 0.5}, {"1": 0.0, "2": 1.0}]
    assert all(c["versions"]["2"]["requests"] >= 10 and c["failed"] == [] for c in canary)
    assert any(a["model_version"] == 2 for a in clients.answers)

    # aliases, weights served by the router, traffic history, audit
    assert bench.registry.get(NAME, "champion").version == 2
    assert _weights(bench) == {1: 0.0, 2: 1.0}
    history = bench.store.deployments.list_traffic(NAME)
    assert [h["weights"] for h in history[-2:]] == [{"1": 0.5, "2": 0.5}, {"1": 0.0, "2": 1.0}]
    assert all(h["actor"] == "automation" and h["kind"] == "canary" for h in history[-2:])
    actions = [(a["action"], a["actor"]) for a in bench.store.audit_log(200)]
    assert ("canary.completed", "automation") in actions
    alias = bench.store.models.list_alias_history(NAME)[-1]
    assert (alias["alias"], alias["version"], alias["previous_version"]) == ("champion", 2, 1)
    assert alias["actor"] == "automation" and alias["reason"].startswith(f"retrain job {job['id']}")
    assert ("alias.set", "automation") in actions

    # lineage: drift event → job → steps, snapshot, experiment, model version
    edges = {
        (e["src_type"], e["relation"], e["dst_type"])
        for e in bench.store.edges(src=("retrain_job", job["id"]))
    }
    assert {
        ("retrain_job", "step", "retrain_step"),
        ("retrain_job", "produced", "dataset_version"),
        ("retrain_job", "ran", "experiment"),
        ("retrain_job", "produced", "model_version"),
    } <= edges
    assert {e["src_id"] for e in bench.store.edges(dst=("retrain_job", job["id"]))} == {drift_id}
    v2 = bench.registry.get(NAME, 2)
    assert v2.dataset_version_id == job["new_dataset_version_id"]
    # the monitor's reference moved to the new version's training data
    assert (
        bench.store.monitors.get(mon.name)["reference_dataset_version_id"] == v2.dataset_version_id
    )
    bench.automation.disable_policy("on-drift")
    print(
        f"\npromoted in {job['compute_s']:.1f}s: gate f1 {gate['challenger']:.4f} vs {gate['champion']:.4f}; "
        f"canary {[c['versions']['2']['requests'] for c in canary]} challenger requests per step"
    )


def test_late_labels_degrade_a_performance_window_and_the_canary_rolls_back_a_bad_challenger(
    live,
):
    bench = live.bench
    champion = bench.registry.get(NAME, "champion").version
    perf = bench.monitoring.performance_monitor(NAME, window=40, metric="accuracy", tolerance=0.1)
    bench.automation.add_policy(
        _policy(
            "on-quality",
            [PerformanceTrigger("accuracy", monitor=perf.name)],
            # the gate is told to pass anything: the canary is the last line of defence here
            gate=Gate("f1", margin=-1.0, guarded=("recall",), tolerance=1.0),
            snapshot="sliding",
            window=40,  # the 40 latest labelled requests: the broken labels
            max_accuracy_drop=0.2,
            canary_wait_for_labels=True,  # labels lag requests: judge accuracy before moving on
        )
    )
    # labels so far are right: every complete window is ok; top up the partial one
    assert all(r["verdict"] == "ok" for r in perf.check())
    state = bench.store.monitors.get(perf.name)["state"] or {}
    pending = len(bench.store.monitors.list_labels_after(NAME, int(state.get("label_seq", 0))))
    _send(live, live.rng.sample(live.rows, 40 - pending))
    _send(live, live.rng.sample(live.rows, 40), flip=True)  # a broken labelling feed

    with Clients(live, after_step="canary") as clients:
        out = bench.automation.tick()
    assert not clients.errors, clients.errors[:3]
    verdicts = [r["verdict"] for r in out["checked"][perf.name]]
    assert verdicts == ["ok", "degraded"], verdicts
    window = bench.store.monitors.list_windows(perf.name)[-1]
    assert window["is_drift"] and window["detail"]["value"] < window["detail"]["bound"]
    (job,) = bench.automation.jobs("on-quality")
    assert out["created"] == [job["id"]] and job["drift_result_id"] == window["id"]
    assert job["event_key"] == f"on-quality:performance:{window['id']}"
    assert bench.automation.tick(run=False, check=False)["created"] == []  # same event: no job
    assert job["status"] == "ROLLED_BACK" and job["decision"] == "rolled_back", job["detail"]

    steps = [(s["step"], s["status"]) for s in bench.automation.steps(job["id"])]
    assert steps[-3:] == [("canary", "started"), ("canary", "rolled_back"), ("rollback", "ok")]
    (decision,) = job["detail"]["canary"]
    challenger = job["detail"]["challenger_version"]
    assert decision["decision"] == "rolled_back" and decision["failed"] == ["accuracy"]
    ch, champ = decision["versions"][str(challenger)], decision["versions"][str(champion)]
    assert ch["labels"] >= 10 and champ["labels"] >= 10
    assert champ["accuracy"] - ch["accuracy"] > 0.2, decision

    # the champion keeps its alias and 100% of the traffic; the challenger stays registered
    assert bench.registry.get(NAME, "champion").version == champion
    assert bench.store.models.list_alias_history(NAME)[-1]["version"] == champion
    assert bench.registry.get(NAME, challenger).version == challenger
    weights = _weights(bench)
    assert weights[champion] == 1.0 and weights.get(challenger, 0.0) == 0.0
    last = bench.store.deployments.list_traffic(NAME)[-1]
    assert last["kind"] == "rollback" and last["actor"] == "automation"
    assert last["weights"][str(champion)] == 1.0 and "accuracy" in last["reason"]
    assert any(
        c["check"] == "accuracy" and c["failed"] for c in last["detail"]["evidence"]["checks"]
    )
    assert job["detail"]["rollback"]["traffic_change_id"] == last["id"]
    audit = [a for a in bench.store.audit_log(200) if a["action"] == "canary.rolled_back"]
    assert audit and audit[0]["detail"]["traffic_change_id"] == last["id"]
    # requests sent after the rollback all went to the champion
    after = [a for a in _send(live, live.rng.sample(live.rows, 10))]
    assert {a["model_version"] for a in after} == {champion}
    # lineage: the degraded window triggered the job
    assert {
        (e["src_type"], e["src_id"]) for e in bench.store.edges(dst=("retrain_job", job["id"]))
    } == {("drift_result", window["id"])}
    print(
        f"\nrolled back: challenger v{challenger} accuracy {ch['accuracy']:.3f} on {ch['labels']} labels, "
        f"champion v{champion} {champ['accuracy']:.3f} on {champ['labels']}"
    )


def test_without_a_canary_a_promotion_switches_the_live_deployment(live):
    """canary=False: once the gate passes, the router serves the new version (old one kept at 0%)."""
    bench = live.bench
    for policy in bench.automation.policies():  # earlier tests' policies would act on this traffic
        bench.automation.disable_policy(policy["name"])
    before = bench.registry.get(NAME, "champion").version
    mon = bench.monitoring.drift_monitor(
        NAME,
        name="no-canary-drift",
        reference=bench.datasets.get("bc-train"),  # the original training data
        window=60,
        p_val=0.01,
        backend="scipy",
    )
    mon.check()  # the requests earlier tests logged: judged before the policy exists
    bench.automation.add_policy(
        _policy(
            "no-canary",
            [DriftTrigger(mon.name, windows=1)],
            gate=Gate("f1", margin=-1.0),  # this test is about the switch, not the gate
            canary=False,
        )
    )
    # every feature tripled: drift beyond doubt (this test is about what follows it)
    tripled = [
        {k: v * 3 if k != TARGET else v for k, v in row.items()}
        for row in live.rng.sample(live.rows, 120)
    ]
    _send(live, tripled)  # at least one window of shifted traffic alone
    out = bench.automation.tick()
    assert "drift" in [r["verdict"] for r in out["checked"][mon.name]], out["checked"]
    promoted = [j for j in bench.automation.jobs("no-canary") if j["status"] == "PROMOTED"]
    assert promoted, bench.automation.jobs("no-canary")
    job = promoted[-1]
    new = bench.registry.get(NAME, "champion").version
    assert new == job["detail"]["challenger_version"] and new != before
    # the job's champion stays loaded at 0% for an instant rollback
    assert _weights(bench) == {job["detail"]["champion_version"]: 0.0, new: 1.0}
    last = bench.store.deployments.list_traffic(NAME)[-1]
    assert last["actor"] == "automation" and last["reason"].startswith(f"retrain job {job['id']}")
    promotion = [s for s in bench.automation.steps(job["id"]) if s["step"] == "promotion"]
    assert promotion and f"{NAME} now serves it" in promotion[0]["detail"]["summary"]
    answers = _send(live, live.rng.sample(live.rows, 10))
    assert {a["model_version"] for a in answers} == {new}
    bench.automation.disable_policy("no-canary")
