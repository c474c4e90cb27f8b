"""A worker node killed while it holds a running trial and a Serve replica.

A ``ray.cluster_utils.Cluster`` (built in a subprocess script with a private ``RAY_TMPDIR``, as
tests/test_multinode_cluster.py does): a head with no CPU (the driver's node, holding the store,
the recorder and Serve's controller) and two worker nodes of 3 CPUs and one ``trial_slot`` each.
The resources force the spread, in whatever order Ray places things: a trial asks for 1 CPU and
the slot, a router replica for 2 CPUs, so each worker holds one trial and one replica. The search
(two trials that checkpoint every step and go on stepping until the test releases them,
``max_failures=1``) starts first and runs while the deployment comes up. Four paced HTTP clients
(``Load`` of tests/test_serving_reliability.py, never retried) then call the deployment, and once
both trials have checkpointed twice one worker is killed whole: its raylet with
``cluster.remove_node(node, allow_graceful=False)`` and its worker processes (the trial, the
replica) by pid with SIGKILL. Then the trials are released.

Afterwards, through the public API and the store: the search finished, the killed trial was
retried once from its checkpoint on the other worker and ended TERMINATED with the node failure
in its recorded error, the other trial ran once; only requests in flight at the kill failed,
every request sent after the node's processes were gone was answered 200, and request-log rows
kept arriving. Nothing the cluster started is left running.
"""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import pytest

from tests._processes import run_cluster_script
from tests.test_serving_reliability import CLIENTS

STEP_S = 1.0  # a trial reports (and checkpoints) a step this often, until the test releases it

SCRIPT = textwrap.dedent(
    """
    import json
    import os
    import signal
    import sys
    import time
    from pathlib import Path

    import psutil

    home, out_path, marks, repo = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    step_s = float(sys.argv[5])
    release = marks / "release"  # written once the node is gone: then each trial takes a last step
    cap = 300  # steps: a bound whatever happens
    sys.path.insert(0, repo)
    out = {"events": {}}
    t00 = time.monotonic()


    def mark(event):
        out["events"][event] = round(time.monotonic() - t00, 2)


    def slow(config, data):
        # Resumes from its last checkpoint; writes one line per attempt: where it ran, from which step.
        import tempfile

        import ray
        from ray import tune

        start = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                start = json.loads((Path(d) / "step.json").read_text())["step"]
        trial_id = tune.get_context().get_trial_id()
        with open(marks / f"{trial_id}.jsonl", "a") as f:
            line = {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "start": start}
            f.write(json.dumps(line) + "\\n")
        step = start
        while step < cap:
            step += 1
            time.sleep(step_s)
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "step.json").write_text(json.dumps({"step": step}))
                tune.report(
                    {"score": config["x"] * 10.0 + step, "step": step},
                    checkpoint=tune.Checkpoint.from_directory(d),
                )
            if release.exists():
                return


    def attempts(trial_id):
        p = marks / f"{trial_id}.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


    def wait_until(what, check, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


    from ray.cluster_utils import Cluster

    cluster = Cluster()
    try:
        # Node death noticed in ~3 s (defaults: 3 s x 5 checks) so the test does not wait on it.
        cluster.add_node(
            num_cpus=0,
            include_dashboard=False,
            _system_config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        )
        workers = [cluster.add_node(num_cpus=3, resources={"trial_slot": 1}) for _ in range(2)]
        cluster.wait_for_nodes()
        mark("cluster_up")

        import ray
        from ray import serve, tune
        from ray._private import state as ray_state

        from tests.test_serving_reliability import Load, _running_replicas
        from workbench import Workbench
        from workbench.datasets import write_breast_cancer_csv
        from workbench.runtime import free_port

        wb = Workbench(home, address=cluster.address, serve_port=free_port())
        wb.connect()
        out["head_node"] = ray.get_runtime_context().get_node_id()
        out["worker_nodes"] = [w.node_id for w in workers]
        dv = wb.datasets.ingest(write_breast_cancer_csv(Path(home) / "bc.csv"), name="bc", target="diagnosis")
        bundle = wb.experiments.fit_bundle(dv, {"family": "logistic_regression", "C": 1.0})
        wb.registry.register("bc", bundle, metrics={})
        records = wb.datasets.load(dv).drop("diagnosis").head(50).to_dicts()
        mark("registered")
        # The resources force the spread, in whatever order Ray places things: one trial_slot per
        # worker, so one trial each; 2 CPUs a replica on 3-CPU workers, so one replica each. The
        # search starts first and runs while the deployment comes up.
        handle = wb.experiments.start_search(
            dv,
            name="node-loss",
            trainable=slow,
            space={"x": tune.grid_search([1, 2])},
            metric="score",
            mode="max",
            num_samples=1,
            resources={"cpu": 1, "trial_slot": 1},
            max_concurrent_trials=2,
            max_failures=1,
            progress=None,
        )
        exp_id = out["experiment_id"] = handle.experiment_id
        dep = wb.serving.deploy("bc", 1, num_replicas=2, num_cpus=2, timeout_s=180)
        mark("deployed")

        def replicas():
            # from the GCS actor table (the state API needs the dashboard, off here)
            return {
                a["ActorID"]: {"node_id": a["Address"]["NodeID"], "pid": a["Pid"], "state": a["State"]}
                for a in ray_state.actors().values()
                if a["ActorClassName"].startswith("ServeReplica:bc:Router")
            }

        out["replicas_before"] = {k: v for k, v in replicas().items() if v["state"] == "ALIVE"}

        def checkpointed(step):
            def check():
                trials = wb.experiments.trials(exp_id)
                done = {
                    t["trial_id"]: max((m["step"] for m in wb.experiments.metrics(exp_id, t["trial_id"])), default=0)
                    for t in trials
                }
                return len(done) == 2 and all(s >= step for s in done.values()) and done

            return check

        # The load starts once both trials run (Tune's start-up time varies), and has MAX_S to spare.
        wait_until("both trials to report", checkpointed(1), 120)
        with Load(dep["url"], records) as load:
            load.wait_for(50)
            out["steps_at_kill"] = wait_until("both trials past step 2", checkpointed(2), 60)
            wb.serving.flush_logs("bc")
            out["log_id_at_kill"] = max((r["id"] for r in wb.serving.requests("bc", limit=None)), default=0)
            victim_trial = sorted(out["steps_at_kill"])[0]
            where = attempts(victim_trial)[-1]
            node = next(w for w in workers if w.node_id == where["node_id"])
            out["victim"] = {"trial_id": victim_trial, "node_id": node.node_id}
            raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
            doomed = [(p.pid, p.create_time()) for p in raylet.children(recursive=True)]
            out["victim"]["processes"] = len(doomed) + 1
            # The whole node at once: raylet (and the node's other daemons), then its workers by pid.
            t_kill = time.monotonic()
            mark("kill")
            cluster.remove_node(node, allow_graceful=False)
            procs = []
            for pid, created in doomed:
                try:
                    p = psutil.Process(pid)
                    if abs(p.create_time() - created) < 1e-3:
                        p.send_signal(signal.SIGKILL)
                        procs.append(p)
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(procs, timeout=10)
            t_dead = time.monotonic()
            mark("node_gone")
            release.write_text("")
            # Serve notices: the dead replica no longer counts as RUNNING.
            wait_until("Serve to notice the lost replica", lambda: _running_replicas("bc") < 2, 60)
            mark("serve_noticed")
            load.wait_for(100)
            mark("load_end")
        out["requests"] = [
            {"sent": r["sent"] - t_kill, "received": r["received"] - t_kill, "status": r["status"], "error": r["error"]}
            for r in load.results
        ]
        out["dead_s"] = t_dead - t_kill

        result = handle.wait(240)
        mark("search_done")
        out["best_config"] = result.best_config
        out["trials"] = wb.experiments.trials(exp_id)
        out["experiment"] = wb.experiments.get(exp_id)
        out["attempts"] = {t["trial_id"]: attempts(t["trial_id"]) for t in out["trials"]}
        out["metrics"] = {t["trial_id"]: wb.experiments.metrics(exp_id, t["trial_id"]) for t in out["trials"]}

        wb.serving.flush_logs("bc")
        out["logged_after_kill"] = len(wb.serving.requests("bc", after_id=out["log_id_at_kill"], limit=None))
        out["request_stats"] = wb.serving.request_stats("bc")
        out["serve_after"] = wb.serving.status("bc")["serve"]
        out["replicas_after"] = replicas()
        wb.serving.undeploy("bc")
        serve.shutdown()
        wb.close()
    except BaseException:
        import traceback

        out["crash"] = traceback.format_exc()
    finally:
        import ray

        ray.shutdown()  # the driver first: Cluster refuses to remove the node it is attached to
        out["descendants"] = [(p.pid, p.create_time()) for p in psutil.Process().children(recursive=True)]
        cluster.shutdown()
        out_path.write_text(json.dumps(out, default=str))
    """
)


def test_a_retry_that_succeeds_keeps_the_failure_in_the_trials_record(tmp_path):
    """Regression: ``on_trial_recover`` recorded only the retry, so a trial that failed (its node
    died) and then finished on retry was stored TERMINATED with no error: its failure was lost."""
    from types import SimpleNamespace

    from tests._factories import make_experiment
    from workbench.experiments._tracking import TrackingCallback
    from workbench.lineage import Store

    store = Store(tmp_path / "l.db")
    exp = make_experiment(store)
    cb = TrackingCallback(
        str(tmp_path / "l.db"), exp, metric="score", mode="max", total=1, name="e"
    )
    error_file = tmp_path / "error.txt"  # what Tune's Trial.handle_error appends before the hook
    error_file.write_text(
        "Failure # 1 (occurred at 2026-12-06_22-50-00)\n\x1b[36mray::ImplicitFunc.train()\x1b[39m "
        "ray.exceptions.ActorDiedError: The actor died because its node has died.\n"
    )
    trial = SimpleNamespace(
        trial_id="t1",
        config={"x": 1},
        status="RUNNING",
        last_result={},
        error_file=str(error_file),
        get_error=lambda: None,
    )

    def row():
        (t,) = store.experiments.list_trials(exp)
        return t

    cb.on_trial_start(0, [trial], trial)
    cb.on_step_end(0, [trial])
    assert row()["attempts"] == 1 and row()["error"] is None
    cb.on_trial_recover(1, [trial], trial)
    cb.on_step_end(1, [trial])
    pending = row()
    assert pending["status"] == "PENDING" and pending["attempts"] == 2
    assert "Failure # 1" in pending["error"] and "its node has died" in pending["error"]
    assert "\x1b[" not in pending["error"]
    cb.on_trial_start(2, [trial], trial)
    trial.last_result = {"score": 16.0, "training_iteration": 6}
    cb.on_trial_complete(3, [trial], trial)
    cb.on_experiment_end([trial])
    done = row()
    assert done["status"] == "TERMINATED" and done["attempts"] == 2, done
    assert done["metrics"] == {"score": 16.0} and "its node has died" in done["error"], done


@pytest.mark.ray
@pytest.mark.slow
def test_worker_node_killed_with_a_trial_and_a_replica(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="wbnf-", dir="/tmp")
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "node_failure.py"
    script.write_text(SCRIPT)
    out_path = tmp_path / "out.json"
    # every node of this cluster shares this machine's disk: name one shared folder as the storage
    # (Tune's checkpoints and the artifacts), as a cluster with a shared mount would
    (tmp_path / "shared").mkdir()
    env = {"WORKBENCH_STORAGE": f"file://{tmp_path / 'shared'}"}
    repo = str(Path(__file__).resolve().parents[1])
    proc, out, survivors, elapsed = run_cluster_script(
        [str(script), str(tmp_path / "home"), str(out_path), str(marks), repo, str(STEP_S)],
        env=env,
        temp_dir=temp_dir,
        out_path=out_path,
    )
    assert proc.returncode == 0 and "crash" not in out, (out.get("crash"), proc.stderr[-3000:])
    assert not survivors, f"Ray processes outlived the cluster's shutdown: {survivors}"

    victim = out["victim"]
    trials = {t["trial_id"]: t for t in out["trials"]}
    hit = trials.get(victim["trial_id"], {})
    runs = out["attempts"].get(victim["trial_id"], [])
    reqs = out["requests"]
    ok = [r for r in reqs if r["status"] == 200]
    failed = [r for r in reqs if r["status"] != 200]
    after = [r for r in reqs if r["sent"] > out["dead_s"]]
    in_flight = [r for r in reqs if r["sent"] <= 0 < r["received"]]
    lost_logs = len(ok) - out["request_stats"]["n"]
    print(
        f"\nnode failure: {elapsed:.1f}s total (measured under load); events (s) {out['events']}; "
        f"requests: {sum(r['sent'] <= 0 for r in reqs)} sent before the kill, {len(after)} after "
        f"the node was gone ({out['dead_s']:.2f}s after the kill), {len(failed)} failed, "
        f"{len(in_flight)} in flight at the kill; request-log rows {out['request_stats']['n']} of "
        f"{len(ok)} answered, {out['logged_after_kill']} after the kill; killed trial's attempts "
        f"{runs}; Serve after: {out['serve_after']['status']} "
        f"{out['serve_after']['deployments']['Router']['replicas']}"
    )
    for r in failed:
        print(f"  failed, sent at kill{r['sent']:+.3f}s: {r['status']} {r['error']}")
    print(f"  killed trial's recorded error: {hit.get('error')!r}")

    # The setup did what it claims: one replica on each worker, the head holds none; the killed
    # node held the replica and the running trial.
    workers = set(out["worker_nodes"])
    before = out["replicas_before"]
    assert sorted(r["node_id"] for r in before.values()) == sorted(workers), before
    assert victim["node_id"] in {r["node_id"] for r in before.values()}
    assert len(trials) == 2 and victim["trial_id"] in trials
    other_id = next(t for t in trials if t != victim["trial_id"])
    survivor = (workers - {victim["node_id"]}).pop()

    # The search finished and its record is complete; the killed trial was retried once, from its
    # checkpoint, on the other worker, and its record shows the failure and two attempts (Ray
    # reports the lost node as the trial actor's broken connection: "The actor ... is unavailable:
    # ... Socket closed" or, when the GCS saw the node die first, ActorDiedError); the other trial
    # ran once.
    exp = out["experiment"]
    assert exp["status"] == "TERMINATED" and exp["n_trials"] == 2 and exp["ended_at"], exp
    assert exp["best_trial_id"] == other_id and out["best_config"] == {"x": 2}, exp
    assert [r["node_id"] for r in runs] == [victim["node_id"], survivor], runs
    assert out["steps_at_kill"][victim["trial_id"]] >= 2, out["steps_at_kill"]
    assert runs[1]["start"] >= 2, runs  # resumed from a checkpoint, not from scratch
    assert hit["status"] == "TERMINATED" and hit["attempts"] == 2, hit
    error = hit["error"] or ""
    assert "Failure # 1" in error and "Failure # 2" not in error, error
    assert "The actor" in error and ("unavailable" in error or "died" in error), error
    # every step once, the last ones from the retry (which took one step after the release)
    steps = sorted({m["step"] for m in out["metrics"][victim["trial_id"]]})
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] > runs[1]["start"], steps
    assert hit["metrics"]["step"] == steps[-1], hit
    other = trials[other_id]
    assert other["status"] == "TERMINATED" and other["attempts"] == 1 and not other["error"], other
    assert len(out["attempts"][other_id]) == 1, out["attempts"]
    assert other["metrics"]["step"] > out["steps_at_kill"][other_id], other

    # The deployment kept answering: only requests in flight when the node died failed (one per
    # client at most), every request sent after its processes were gone was answered 200.
    assert len(failed) <= CLIENTS, failed
    assert all(r["sent"] <= out["dead_s"] for r in failed), failed
    assert len(after) >= 100 and all(r["status"] == 200 for r in after), after[:5]
    # Serve kept the surviving replica and asked for a replacement, which cannot be placed: the
    # survivor has no 2 CPUs left and the head has none.
    alive = [r for r in out["replicas_after"].values() if r["state"] == "ALIVE"]
    assert [r["node_id"] for r in alive] == [survivor], out["replicas_after"]
    assert out["serve_after"]["deployments"]["Router"]["replicas"].get("RUNNING") == 1
    # Request logs kept arriving through the recorder on the head. The rows the killed replica
    # still held in its buffer (shipped every 0.25 s) went with it: at most what was answered in
    # the last second before the kill.
    assert out["logged_after_kill"] >= len(after), (out["logged_after_kill"], len(after))
    assert lost_logs <= sum(-1 <= r["received"] <= 0 for r in ok), lost_logs
