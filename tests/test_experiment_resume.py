"""A search whose driver is killed resumes with Tuner.restore, and its records stay consistent.

The killed driver is a real second Python process that joins this session's Ray cluster, so
killing it (SIGKILL: no cleanup of any kind) leaves the cluster to the tests, as a crashed
notebook kernel would leave a shared cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from workbench.exceptions import ConfigError
from workbench.lineage import Store

DRIVER = """
import sys
from workbench import Workbench

wb = Workbench(home=sys.argv[1])
dv = wb.datasets.get("bc")
wb.experiments.search(dv, name="killed", num_samples=8, folds=5, seed=7, progress=None)
"""


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.ray
def test_a_killed_search_resumes_without_duplicates_and_leaves_finished_trials_alone(
    cancer_bench, ray_cluster, tmp_path
):
    import ray

    bench, _ = cancer_bench
    home = bench.settings.home
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(home)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watcher = Store(home / "lineage.db")
    try:

        def progressed():
            exps = [e for e in watcher.experiments.list() if e["name"] == "killed"]
            if not exps or not exps[0]["tune_path"]:
                return None
            exp = exps[0]
            done = [
                t for t in watcher.experiments.list_trials(exp["id"]) if t["status"] == "TERMINATED"
            ]
            snapshot = list(Path(exp["tune_path"]).glob("experiment_state-*.json"))
            return exp if len(done) >= 3 and snapshot else None

        exp = _wait_for(progressed, 180, "3 finished trials and a Tune snapshot")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        watcher.close()
    exp_id = exp["id"]
    assert bench.store.experiments.get(exp_id)["status"] == "RUNNING"  # nobody got to close it
    before = {t["trial_id"]: t for t in bench.experiments.trials(exp_id)}
    finished = {i: t for i, t in before.items() if t["status"] == "TERMINATED"}
    unfinished = sorted(i for i, t in before.items() if t["status"] not in ("TERMINATED", "ERROR"))
    assert len(finished) >= 3 and unfinished  # 2 CPUs: trials were running when it was killed

    result = bench.experiments.resume(exp_id, progress=None)

    after = {t["trial_id"]: t for t in bench.experiments.trials(exp_id)}
    exp = bench.store.experiments.get(exp_id)
    assert exp["status"] == "TERMINATED" and exp["resumes"] == 1
    assert len(after) == exp["num_samples"] == 16  # every trial once: no duplicates, none lost
    assert {t["status"] for t in after.values()} == {"TERMINATED"}
    for trial_id, old in finished.items():  # finished trials untouched
        new = after[trial_id]
        assert (new["ended_at"], new["metrics"], new["attempts"]) == (
            old["ended_at"],
            old["metrics"],
            1,
        )
    for trial_id in unfinished:  # interrupted ones ran again under the same id
        assert after[trial_id]["attempts"] == 2
        steps = {m["step"] for m in bench.store.experiments.list_trial_metrics(exp_id, trial_id)}
        assert steps == {1, 2, 3, 4, 5}
    audit = bench.store._db.rows(
        "SELECT detail_json FROM audit_log WHERE action = 'experiment.resume' AND entity_id = ?",
        [exp_id],
    )
    assert sorted(audit[0]["detail"]["interrupted"]) == unfinished
    assert result.best_trial_id in after and result.best_metrics["f1"] > 0.9

    with pytest.raises(ConfigError, match="nothing to resume"):
        bench.experiments.resume(exp_id)


@pytest.mark.ray
def test_a_search_runs_in_the_background_reports_live_and_stops(cancer_bench):
    from ray import tune

    bench, dv = cancer_bench

    def slow(config, data):
        import time as t

        from ray import tune as rt

        for step in range(1, 41):
            rt.report({"score": config["x"] * step})
            t.sleep(0.25)

    t0 = time.perf_counter()
    handle = bench.experiments.start_search(
        dv, name="background", space={"x": tune.grid_search([1, 2, 3, 4])}, trainable=slow,
        metric="score", mode="max", num_samples=1, max_steps=40, progress=None,
    )  # fmt: skip
    returned = time.perf_counter() - t0
    assert returned < 5, f"start_search blocked for {returned:.1f} s"
    assert isinstance(handle, Future) and handle.running()
    assert handle.state() == "RUNNING" and not handle.done()
    with pytest.raises(TimeoutError, match="still running"):
        handle.wait(timeout_s=0.1)
    seen = _wait_for(lambda: handle.best(), 60, "a best-so-far value")
    assert seen["metric"] == "score" and seen["value"] > 0
    live = handle.status()
    assert live["state"] == "RUNNING" and live["trials"].get("RUNNING", 0) >= 1
    handle.stop()
    result = handle.wait(timeout_s=60)
    stopped_at = time.perf_counter() - t0
    assert handle.state() == "STOPPED" and handle.status()["state"] == "STOPPED"
    assert stopped_at < 30  # four 10 s trials on 2 CPUs would take 20 s + start-up
    exp = bench.store.experiments.get(handle.experiment_id)
    assert exp["status"] == "STOPPED" and exp["best_trial_id"] == result.best_trial_id
    trials = bench.experiments.trials(handle.experiment_id)
    assert "STOPPED" in {t["status"] for t in trials}
    assert not {"RUNNING", "PENDING", "PAUSED"} & {t["status"] for t in trials}
