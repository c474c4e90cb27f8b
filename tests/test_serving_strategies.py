"""Serving strategies on a real local Ray Serve over real loopback HTTP, under bounded concurrent load.

One Serve instance and one deployment for the module. Versions of the same
breast-cancer model: 1 (champion), 2 (another regularisation), 3 (raises on
every request), 4 (always answers the majority class: bad accuracy).

Load: 4 client threads with their own httpx clients, each bounded in requests
and seconds; "zero failed requests" means every response was a 200 and no
client call raised.
"""

from __future__ import annotations

import math
import random
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.ray

NAME = "strategies"


def _bundle(kind: str):
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    from tests._serve_env import cancer_bundle, cancer_labels

    if kind == "broken":  # fitted on 5 of 30 columns: predict raises ValueError on every request
        bundle, records = cancer_bundle(broken=True)
    else:
        est = {
            "lr": LogisticRegression(C=1.0, max_iter=1000),
            "lr-weak": LogisticRegression(C=0.002, max_iter=1000),
            "majority": DummyClassifier(strategy="most_frequent"),
        }[kind]
        bundle, records = cancer_bundle(est)
    return bundle, records, cancer_labels()


@pytest.fixture(scope="module")
def env(serve_apps, tmp_path_factory):
    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store
    from workbench.serving import Serving
    from workbench.serving._recorder import kill_recorder

    settings = Settings.from_env(tmp_path_factory.mktemp("strategies") / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    bundles = {}
    for version, kind in enumerate(["lr", "lr-weak", "broken", "majority"], start=1):
        bundle, records, labels = _bundle(kind)
        row = store.models.add_version(
            "bc",
            task="classification",
            artifact_hash=artifacts.put_object(bundle),
            params={"kind": kind},
            metrics={},
            signature=bundle.signature,
            experiment_id=None,
            trial_id=None,
            dataset_version_id=None,
        )
        assert row["version"] == version
        bundles[version] = bundle
    store.models.set_alias("bc", "champion", 1, actor="tester", reason="first")
    serving = Serving(store, artifacts, settings, http_port=serve_apps.port)
    info = serving.deploy("bc", "champion", name=NAME, actor="tester", reason="initial deployment")
    ns = SimpleNamespace(
        serving=serving,
        store=store,
        bundles=bundles,
        records=records,
        labels=labels,
        url=info["url"],
        answers=[],  # every Result from every load run, for the lineage test
    )
    try:
        yield ns
    finally:
        serving.close()
        serve_apps.delete()
        kill_recorder(settings.db_path)
        store.close()


# --------------------------------------------------------------------------- load
class Load:
    """Bounded concurrent clients: ``threads`` threads, each at most ``per_thread`` requests and
    ``max_s`` seconds, pausing ``pace_s`` after each response (so the load keeps requests in flight
    on every replica without a closed loop saturating both cores)."""

    def __init__(self, env, *, threads=4, per_thread=2500, max_s=60.0, key=None, pace_s=0.02):
        self.env, self.threads, self.per_thread, self.max_s, self.key = (
            env,
            threads,
            per_thread,
            max_s,
            key,
        )
        self.pace_s = pace_s
        self.results: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _run(self, seed: int) -> None:
        import httpx

        rng = random.Random(seed)
        deadline = time.monotonic() + self.max_s
        with httpx.Client(base_url=self.env.url, timeout=30) as client:
            for _ in range(self.per_thread):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                i = rng.randrange(len(self.env.records))
                body = {"records": [self.env.records[i]]}
                sent = time.time()
                res = {"sent": sent, "i": i, "status": None, "version": None, "error": None}
                try:
                    resp = client.post("/predict", json=body)
                    payload = resp.json()
                    res.update(
                        status=resp.status_code,
                        version=payload.get("model_version"),
                        request_id=payload.get("request_id"),
                        predictions=payload.get("predictions"),
                    )
                except Exception as exc:  # a refused or dropped connection is a failed request too
                    res["error"] = f"{type(exc).__name__}: {exc}"
                res["received"] = time.time()
                with self._lock:
                    self.results.append(res)
                self._stop.wait(self.pace_s)

    def __enter__(self):
        for t in range(self.threads):
            w = threading.Thread(target=self._run, args=(t,), daemon=True)
            w.start()
            self._workers.append(w)
        return self

    def wait_for(self, n: int, timeout_s: float = 60.0) -> None:
        """Block until ``n`` more responses came back (so a change happens mid-traffic)."""
        start, deadline = len(self.results), time.monotonic() + timeout_s
        while len(self.results) < start + n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.results) >= start + n, "the load stalled"

    def join(self) -> None:
        """Wait for every client to finish its bounded run."""
        for w in self._workers:
            w.join(timeout=self.max_s + 30)

    def __exit__(self, *exc):
        self._stop.set()
        for w in self._workers:
            w.join(timeout=60)
        self.env.answers.extend(self.results)

    def failures(self):
        return [r for r in self.results if r["error"] or r["status"] != 200]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def weights_of(env):
    import httpx

    h = httpx.get(env.url + "/health", timeout=30).json()
    return {int(k): v["weight"] for k, v in h["versions"].items()}, h


# -------------------------------------------------------------------------- tests
def test_sticky_routing_by_header_and_body_key(env):
    import httpx

    from workbench.serving import sticky_choice

    weights = env.serving.set_traffic(NAME, {1: 0.5, 2: 0.5}, actor="tester", reason="sticky check")
    seen = set()
    with httpx.Client(base_url=env.url, timeout=30) as client:
        for i in range(15):
            key = f"customer-{i}"
            body = {"records": [env.records[i]]}
            a = client.post("/predict", json=body, headers={"X-Workbench-Key": key}).json()
            b = client.post("/predict", json=body, headers={"X-Workbench-Key": key}).json()
            c = client.post(
                "/predict", json={**body, "key": key}, headers={"X-Workbench-Key": "x"}
            ).json()
            assert (
                a["model_version"]
                == b["model_version"]
                == c["model_version"]
                == sticky_choice(weights, key)
            )
            seen.add(a["model_version"])
        out = env.serving.predict(NAME, env.records[:1], key="customer-3")
        assert out["model_version"] == sticky_choice(weights, "customer-3")
    assert seen == {1, 2}


def test_weight_changes_under_load_fail_no_request(env):
    env.serving.set_traffic(NAME, {1: 1.0}, actor="tester", reason="before load")
    plan = [{1: 0.9, 2: 0.1}, {1: 0.5, 2: 0.5}, {1: 0.0, 2: 1.0}, {1: 1.0, 2: 0.0}]
    changes = []  # (call started, call returned, weights)
    with Load(env, max_s=90) as load:
        load.wait_for(20)
        for weights in plan:
            started = time.time()
            env.serving.set_traffic(NAME, weights, actor="tester", reason="under load")
            changes.append((started, time.time(), weights))
            load.wait_for(25)
    assert not load.failures(), load.failures()[:3]
    # Requests sent after a change returned and answered before the next one began were
    # answered by a version with weight > 0 in that state.
    for i, (_, returned, weights) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else math.inf
        after = [r for r in load.results if returned < r["sent"] and r["received"] < until]
        assert after, "no request landed between two changes"
        assert all(weights[r["version"]] > 0 for r in after), weights
    for r in load.results:
        assert r["predictions"] == env.bundles[r["version"]].predict_records([env.records[r["i"]]])
    print(f"\n{len(load.results)} requests across 4 weight changes, 0 failed")


def test_ten_percent_split_over_http(env):
    env.serving.set_traffic(NAME, {1: 0.9, 2: 0.1}, actor="tester", reason="10% split")
    with Load(env, threads=4, per_thread=100, max_s=120) as load:
        load.join()
    n = len(load.results)
    assert n == 400 and not load.failures()
    to_v2 = sum(r["version"] == 2 for r in load.results)
    sd = math.sqrt(n * 0.1 * 0.9)
    # 400 requests: 40 expected on version 2, sd 6. Over HTTP the check is the wiring: +-5 sd
    # (10..70) fails no honest run yet rules out nothing-to-v2 and an even split (200); the
    # 9-11% bound is checked over 10,000 runs on the router's code path in
    # test_serving_strategies_units.py.
    assert abs(to_v2 - 0.1 * n) < 5 * sd, to_v2
    print(f"\n400 HTTP requests at 10%: {to_v2 / n:.1%} to version 2")


def test_blue_green_switch_and_rollback_under_load(env):
    from workbench.lineage import utcnow

    env.serving.set_traffic(NAME, {1: 1.0}, actor="tester", reason="blue only")
    blue_only = utcnow()
    assert set(weights_of(env)[0]) == {1}
    with Load(env, max_s=120) as load:
        load.wait_for(20)
        out = env.serving.blue_green(NAME, 2, actor="release-bot", reason="release v2")
        switched = time.time()
        load.wait_for(30)
        rolling = time.time()
        weights = env.serving.rollback(NAME, actor="oncall", reason="v2 complaints")
        rolled = time.time()
        load.wait_for(30)
    assert not load.failures(), load.failures()[:3]
    assert out["blue"] == 1 and out["green"] == 2 and out["weights"] == {1: 0.0, 2: 1.0}
    assert out["warmup"]["ok"] is True and out["warmup"]["predictions"] >= 2
    assert weights == {1: 1.0, 2: 0.0}

    history = env.store.deployments.list_traffic(NAME)
    stage, switch, back = history[-3:]
    assert [stage["kind"], switch["kind"], back["kind"]] == [
        "blue_green.stage",
        "blue_green.switch",
        "rollback",
    ]
    assert stage["weights"] == {"1": 1.0, "2": 0.0} and stage["detail"]["warmup"]["2"]["ok"] is True
    assert (
        switch["detail"]["from"] == 1
        and switch["detail"]["to"] == 2
        and switch["actor"] == "release-bot"
    )
    assert back["detail"]["from"] == 2 and back["detail"]["to"] == 1 and back["actor"] == "oncall"
    assert back["detail"]["rule"] == "last version that held 100% of traffic"

    # Green got no client request before the switch took effect; after each call returned, only the new main.
    env.serving.flush_logs(NAME)
    v2_id = env.store.models.get_version("bc", 2)["id"]
    early = env.store._db.rows(
        "SELECT COUNT(*) AS n FROM request_logs WHERE model_version_id = ? AND at > ? AND at < ?",
        [v2_id, blue_only, switch["detail"]["requested_at"]],
    )[0]["n"]
    assert early == 0
    assert all(
        r["version"] == 2 for r in load.results if switched < r["sent"] and r["received"] < rolling
    )
    assert all(r["version"] == 1 for r in load.results if r["sent"] > rolled)
    assert any(r["version"] == 2 for r in load.results)

    env.serving.retire(NAME, 2, actor="release-bot", reason="v2 rolled back")
    assert set(weights_of(env)[0]) == {1}
    assert env.store.deployments.list_traffic(NAME)[-1]["kind"] == "retire"
    print(f"\nblue-green + rollback under load: {len(load.results)} requests, 0 failed")


def test_blue_green_aborts_when_green_fails_its_warm_up(env):
    from workbench.exceptions import DeploymentError

    with pytest.raises(DeploymentError, match="failed its warm-up"):
        env.serving.blue_green(NAME, 3, actor="release-bot")
    weights, health = weights_of(env)
    assert weights == {1: 1.0} and "3" not in health["versions"]
    kinds = [r["kind"] for r in env.store.deployments.list_traffic(NAME)[-2:]]
    assert kinds == ["blue_green.stage", "blue_green.abort"]
    abort = env.store.deployments.list_traffic(NAME)[-1]
    assert "ValueError" in abort["detail"]["warmup"]["error"]
    assert env.serving.predict(NAME, env.records[:1])["model_version"] == 1


def test_shadow_is_logged_and_compared_never_returned(env):
    import httpx

    env.serving.shadow(NAME, 2, share=1.0, actor="ds", reason="compare v2 on live traffic")
    sample = env.records[:40]
    with httpx.Client(base_url=env.url, timeout=30) as client:
        answers = [client.post("/predict", json={"records": [r]}).json() for r in sample]
    assert all(a["model_version"] == 1 for a in answers)
    assert [a["predictions"] for a in answers] == [
        env.bundles[1].predict_records([r]) for r in sample
    ]
    report = env.serving.shadow_report(NAME)
    expected = sum(
        env.bundles[1].predict_records([r]) == env.bundles[2].predict_records([r]) for r in sample
    ) / len(sample)
    assert report["version"] == 2 and report["mirrored"] == 40 and report["errors"] == 0
    assert report["agreement"] == pytest.approx(expected)
    assert report["latency_ms"]["shadow"]["p50"] > 0 and report["latency_ms"]["primary"]["p99"] > 0
    assert report["by_primary_version"][1]["mirrored"] == 40
    assert report["router"]["mirrored"] >= 40
    got = env.serving.which_version(NAME, answers[0]["request_id"])
    assert got["version"] == 1 and got["shadow"]["version"] == 2

    # A shadow that raises on every request: clients never notice.
    env.serving.shadow(NAME, 3, share=1.0, actor="ds", reason="try v3")
    with httpx.Client(base_url=env.url, timeout=30) as client:
        statuses = [client.post("/predict", json={"records": [r]}).status_code for r in sample[:20]]
    assert statuses == [200] * 20
    bad = env.serving.shadow_report(NAME)
    assert bad["version"] == 3 and bad["mirrored"] == 20 and bad["errors"] == 20
    assert bad["agreement"] is None and "ValueError" in bad["error_examples"][0]
    assert env.serving.stop_shadow(NAME, actor="ds") == {1: 1.0, 2: 0.0}
    _, health = weights_of(env)
    assert health["shadow"] is None and "3" not in health["versions"]
    env.serving.retire(NAME, 2, actor="ds")
    print(f"\nshadow v2 agreement with v1: {report['agreement']:.1%} over 40 requests")


def test_failing_canary_rolls_back_and_no_request_reaches_it_after_the_decision(env):
    from workbench.serving import CanaryRollout

    canary = CanaryRollout(
        env.serving,
        NAME,
        champion=1,
        challenger=3,
        steps=(0.25, 1.0),
        min_requests=20,
        actor="canary-bot",
    )
    with Load(env, max_s=120) as load:
        load.wait_for(10)
        canary.start()
        outcome = "waiting"
        for _ in range(60):
            outcome = canary.advance()
            if outcome == "rolled_back":
                break
            time.sleep(0.2)
        decided = time.time()
        assert outcome == "rolled_back"
        load.wait_for(40 + load.threads)  # at most one per client was in flight at the decision
    failures = load.failures()
    assert failures and all(r["status"] == 500 and r["version"] == 3 for r in failures), failures[
        :3
    ]
    after = [r for r in load.results if r["sent"] > decided]
    assert len(after) >= 40 and all(r["status"] == 200 and r["version"] == 1 for r in after)

    env.serving.flush_logs(NAME)
    v3 = env.store.models.get_version("bc", 3)["id"]
    late = env.store._db.rows(
        "SELECT COUNT(*) AS n FROM request_logs WHERE model_version_id = ? AND at > ?",
        [v3, canary.decided_at],
    )[0]["n"]
    reached = env.store._db.rows(
        "SELECT COUNT(*) AS n FROM request_logs WHERE model_version_id = ?", [v3]
    )[0]["n"]
    assert late == 0 and reached == len(failures)

    last = env.store.deployments.list_traffic(NAME)[-1]
    assert last["kind"] == "rollback" and last["at"] == canary.decided_at
    assert last["weights"] == {"1": 1.0, "3": 0.0} and last["actor"] == "canary-bot"
    assert last["detail"]["from"] == 3 and last["detail"]["rule"] == "canary"
    evidence = last["detail"]["evidence"]
    assert evidence["versions"]["3"]["errors"] >= 1 and any(
        c["check"] == "error_rate" and c["failed"] for c in evidence["checks"]
    )
    assert "error_rate" in last["reason"]
    audit = [a for a in env.store.audit_log(50) if a["action"] == "canary.rolled_back"]
    assert audit and audit[0]["detail"]["traffic_change_id"] == last["id"]
    print(
        f"\ncanary rollback: {len(failures)} requests reached v3 before the decision, 0 after ({len(after)} sent)"
    )


def test_canary_rolls_back_when_labelled_accuracy_trails_the_champion(env):
    import httpx

    from workbench.serving import CanaryRollout

    canary = CanaryRollout(
        env.serving,
        NAME,
        champion=1,
        challenger=4,
        steps=(0.5, 1.0),
        min_requests=10,
        min_labels=20,
        actor="canary-bot",
    )
    canary.start()
    order = random.Random(7).sample(range(len(env.records)), 90)
    labels = {}
    with httpx.Client(base_url=env.url, timeout=30) as client:
        for i in order:
            payload = client.post("/predict", json={"records": [env.records[i]]}).json()
            labels[payload["request_id"]] = [env.labels[i]]
    env.serving.flush_logs(NAME)
    env.store.monitors.record_labels(
        labels
    )  # ground truth arrives (what bench.monitoring.record_labels stores)
    assert canary.advance() == "rolled_back"
    analysis = canary.log[-1]["analysis"]
    acc = {v: analysis["versions"][v]["accuracy"] for v in (1, 4)}
    # the router's 50/50 draw decides how many of the 90 requests each version answered, so the
    # challenger's labelled accuracy moves by a few points from run to run (0.8 was seen)
    assert acc[1] > 0.9 and acc[4] <= acc[1] - 0.1, acc
    failed = [c["check"] for c in analysis["checks"] if c["failed"]]
    assert failed == ["accuracy"]
    last = env.store.deployments.list_traffic(NAME)[-1]
    assert (
        last["kind"] == "rollback" and "accuracy" in last["reason"] and last["weights"]["4"] == 0.0
    )
    print(f"\naccuracy canary: champion {acc[1]:.1%}, challenger {acc[4]:.1%} → rolled back")


def test_which_version_answered_each_request_is_a_query(env):
    env.serving.flush_logs(NAME)
    answered = [r for r in env.answers if r.get("request_id") and r["status"] == 200]
    assert len(answered) > 500
    for r in random.Random(3).sample(answered, 60):
        got = env.serving.which_version(NAME, r["request_id"])
        assert got["version"] == r["version"]
        state = got["traffic"]
        # The version had traffic in the state in force when it answered (or a change was being applied).
        assert state["weights"].get(r["version"], 0) > 0 or state["transition"], (got, r)
        assert state["actor"] and state["reason"] and state["kind"]
        at = env.serving.version_at(NAME, got["at"])
        assert at["change_id"] == state["change_id"]
