"""Reliability on a real local Ray Serve: one of two replicas of the champion is killed under steady load.

Four client threads POST over keep-alive HTTP connections, with no retries:
every non-200 answer and every broken connection counts as a failed request.
One router replica is killed with ``ray.kill`` (no graceful shutdown: what a
crashed or OOM-killed process looks like to Serve) while the load runs, and the
load goes on until Serve has started a replacement and it answers.

Serve retries a request on another replica only while it is being assigned
(the chosen replica turns out dead before accepting it); a request the killed
replica had already accepted is not retried (Serve cannot know whether it ran).
So the failures this test can see are bounded by what was in flight on that
replica at the moment of the kill, and none may come after Serve noticed.
This is the default, in-router mode; with ``deploy(..., isolate=True)`` the
router re-sends such a request and none fails (``tests/test_serving_isolated.py``).
"""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.ray

NAME = "champion"
CLIENTS = 4
MAX_S = 90.0  # hard bound on the load, whatever happens
# Each client pauses this long after every response: ~4 x 40 requests/s keep a request in flight
# on every replica at any moment, without the closed loop saturating both cores (which slowed
# Serve's replacement of the killed replica and everything running beside this test).
PACE_S = 0.02


@pytest.fixture(scope="module")
def env(serve_apps, tmp_path_factory):
    from tests._serve_env import champion_env

    with champion_env(
        tmp_path_factory, NAME, versions=1, reason="reliability test", apps=serve_apps
    ) as env:
        yield env


class Load:
    """``CLIENTS`` threads POSTing one record each, ``PACE_S`` apart, until stopped or ``MAX_S``; never retried."""

    def __init__(self, url: str, records: list[dict]):
        self.url, self.records = url, records
        self.results: list[dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def _run(self, i: int) -> None:
        import httpx

        deadline = time.monotonic() + MAX_S
        with httpx.Client(base_url=self.url, timeout=30) as client:
            n = 0
            while not self._stop.is_set() and time.monotonic() < deadline:
                rec = self.records[(i * 1000 + n) % len(self.records)]
                n += 1
                res = {"sent": time.monotonic(), "status": None, "error": None}
                try:
                    resp = client.post("/predict", json={"records": [rec]})
                    res["status"] = resp.status_code
                    if resp.status_code != 200:
                        res["error"] = resp.text[:300]
                except Exception as exc:  # a broken connection is a failed request too
                    res["error"] = f"{type(exc).__name__}: {exc}"
                res["received"] = time.monotonic()
                with self._lock:
                    self.results.append(res)
                self._stop.wait(PACE_S)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def wait_for(self, n: int, timeout_s: float = 60.0) -> None:
        start, deadline = len(self.results), time.monotonic() + timeout_s
        while len(self.results) < start + n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.results) >= start + n, "the load stalled"

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def failures(self) -> list[dict]:
        return [r for r in self.results if r["status"] != 200]


def _replicas(url: str, want: int, tries: int = 80) -> dict[str, dict]:
    """Health of ``want`` distinct replicas, by replica id (the proxy spreads GETs over them)."""
    import httpx

    seen: dict[str, dict] = {}
    with httpx.Client(timeout=30) as client:
        for _ in range(tries):
            h = client.get(url + "/health").json()
            seen[h["replica"]["id"]] = h["replica"]
            if len(seen) >= want:
                break
    return seen


def _running_replicas(name: str) -> int:
    from ray import serve

    app = serve.status().applications.get(name)
    if app is None:
        return 0
    states = app.deployments["Router"].replica_states
    return int(states.get("RUNNING", 0))


def test_killing_one_of_two_replicas_under_load(env):
    import ray

    info = env.serving.deploy(NAME, "champion", name=NAME, num_replicas=2, num_cpus=0.25)
    url = info["url"]
    before = _replicas(url, 2)
    assert len(before) == 2, "both replicas answer before the kill"
    victim_id, victim = sorted(before.items())[0]
    assert victim["actor"], "the router reports its Ray actor name"

    with Load(url, env.records) as load:
        load.wait_for(100)  # steady load on both replicas
        handle = ray.get_actor(victim["actor"], namespace="serve")
        t_kill = time.monotonic()
        ray.kill(handle, no_restart=True)
        assert _wait_gone(victim["pid"]), "the killed replica's process is still there"
        t_dead = time.monotonic()
        # keep the load going until Serve runs two replicas again, and the new one answers
        deadline = t_kill + 60
        replaced: dict[str, dict] = {}
        while time.monotonic() < deadline:
            if _running_replicas(NAME) == 2:
                now = _replicas(url, 2, tries=20)
                replaced = {k: v for k, v in now.items() if k not in before}
                if replaced and victim_id not in now:
                    break
            time.sleep(0.25)
        t_replaced = time.monotonic()
        assert replaced, "Serve did not replace the killed replica within 60 s"
        load.wait_for(100)  # and the load keeps flowing through both

    total = len(load.results)
    failed = load.failures()
    after_death = [r for r in load.results if r["sent"] > t_dead]
    print(
        f"\n{total} requests, {len(failed)} failed; process gone {t_dead - t_kill:.2f}s after "
        f"ray.kill; {len(after_death)} sent after that, replacement answering after "
        f"{t_replaced - t_kill:.1f}s"
    )
    for r in failed:
        print(f"  failed, sent at kill{r['sent'] - t_kill:+.3f}s: {r['status']} {r['error']}")
    # Zero failures is not reachable in this mode with Serve 2.60: a request the killed replica had
    # already accepted is lost with it (Serve retries only the assignment, never an accepted
    # request); isolate=True puts a router that retries between the proxy and the model.
    # What must hold: only requests in flight when the process died failed (at most one per
    # client, each has one outstanding), and not one request sent after it died failed.
    assert len(failed) <= CLIENTS, failed
    assert all(r["sent"] <= t_dead for r in failed), "a request sent after the death failed"
    assert len(after_death) > 100 and all(r["status"] == 200 for r in after_death)


def _wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    import psutil

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        time.sleep(0.05)
    return False
