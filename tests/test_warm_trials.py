"""Trial actors parked between searches (workbench/runtime/_warm_trials.py), on the session's Ray.

What is checked: the second search runs in the first one's trial processes and records what a cold
search records; a parked actor takes the new search's trainable and data; a search of another
shape, the idle timer and a deploy give the CPUs back; a dead parked actor is replaced.
"""

from __future__ import annotations

import os
import time

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _user_search(bench, dv, name, xs):
    from ray import tune

    def _pid_trainable(config, data):  # nested: pickled by value, as a notebook's function is
        import os
        import time

        from ray import tune as t

        time.sleep(0.1)
        # depends on the search's own data, so a reused actor left with the old data shows
        t.report({"score": config["x"] * len(data["y"]), "worker": float(os.getpid())})

    result = bench.experiments.search(
        dv,
        name=name,
        trainable=_pid_trainable,
        space={"x": tune.grid_search(xs)},
        metric="score",
        mode="max",
        num_samples=1,
        resources={"cpu": 2},  # one trial actor at a time: which process ran what is certain
        progress=None,
    )
    return {int(t["metrics"]["worker"]) for t in result.trials}, result


def _sklearn_search(bench, dv, name, seed=0, resources=None):
    from ray import tune

    return bench.experiments.search(
        dv,
        name=name,
        space={"family": "logistic_regression", "C": tune.loguniform(1e-3, 10)},
        num_samples=4,
        folds=3,
        seed=seed,
        progress=None,
        resources=resources,
    )


def _free_cpus(expected: float, timeout_s: float = 20.0) -> float:
    import ray

    deadline = time.monotonic() + timeout_s
    free = ray.available_resources().get("CPU", 0.0)
    while free < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        free = ray.available_resources().get("CPU", 0.0)
    return free


def _parked_pids() -> set[int]:
    """The process ids of the parked trial actors (asked of each actor)."""
    import ray

    from workbench.runtime import _warm_trials

    actors = [e.actor for entries in _warm_trials._parked.values() for e in entries]
    return set(ray.get([a.__ray_call__.remote(lambda _self: os.getpid()) for a in actors]))


@pytest.fixture
def cold(monkeypatch):
    from workbench.runtime import release_parked_trials

    release_parked_trials()
    # long enough that only what a test checks releases them, however loaded the machine is
    monkeypatch.setenv("WORKBENCH_WARM_TRIALS_S", "600")
    yield
    release_parked_trials()


def test_the_next_search_runs_in_the_parked_processes_and_records_what_a_cold_one_does(
    cancer_bench, cold, monkeypatch
):
    from workbench.runtime import parked_trials, release_parked_trials

    bench, dv = cancer_bench
    first, _ = _user_search(bench, dv, "warm-a", [1, 2, 3, 4])
    assert parked_trials() == 1  # its trial actor, kept
    parked = _parked_pids()
    assert first == parked
    second, result = _user_search(bench, dv, "warm-b", [5, 6, 7, 8])
    assert second == parked  # the same process ran it, no new one
    # the parked actors ran the new search's function on its own data and configs
    rows = len(bench.datasets.load(dv))
    assert sorted(t["metrics"]["score"] for t in result.trials) == [x * rows for x in (5, 6, 7, 8)]

    # a built-in search of another shape (1 CPU per trial) releases that one and parks its own
    _sklearn_search(bench, dv, "prime", seed=1)
    assert parked_trials() == 2
    parked = _parked_pids()
    warm = _sklearn_search(bench, dv, "warm", seed=7)
    assert _parked_pids() == parked
    release_parked_trials()
    monkeypatch.setenv("WORKBENCH_WARM_TRIALS_S", "0")  # parking off
    cold_result = _sklearn_search(bench, dv, "cold", seed=7)
    assert parked_trials() == 0
    assert warm.best_config == cold_result.best_config
    assert warm.best_metrics["f1"] == pytest.approx(cold_result.best_metrics["f1"], abs=1e-12)
    assert sorted(t["config"]["C"] for t in warm.trials) == sorted(
        t["config"]["C"] for t in cold_result.trials
    )
    assert all(t["status"] == "TERMINATED" for t in warm.trials)


def test_parked_actors_give_their_cpus_back(cancer_bench, cold, monkeypatch):
    import ray

    from workbench.runtime import parked_trials, release_parked_trials

    bench, dv = cancer_bench
    total = ray.cluster_resources()["CPU"]
    _sklearn_search(bench, dv, "one-cpu")
    assert parked_trials() == 2
    assert ray.available_resources().get("CPU", 0.0) == 0.0  # both CPUs held while parked
    # a 2-CPU trial needs both: the parked ones are released instead of blocking it
    result = _sklearn_search(bench, dv, "two-cpu", resources={"cpu": 2})
    assert len(result.trials) == 4
    assert parked_trials() == 1
    assert release_parked_trials() == 1  # what deploys, batch scoring and close() call
    assert _free_cpus(total) == total

    monkeypatch.setenv("WORKBENCH_WARM_TRIALS_S", "1")
    _user_search(bench, dv, "idle", [1, 2])
    assert parked_trials() >= 1
    deadline = time.monotonic() + 15
    while parked_trials() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert parked_trials() == 0  # the idle timer released them
    assert _free_cpus(total) == total


def test_a_dead_parked_actor_is_replaced(cancer_bench, cold):
    import ray

    from workbench.runtime import _warm_trials, parked_trials

    bench, dv = cancer_bench
    _user_search(bench, dv, "dead-a", [1, 2])
    assert parked_trials() == 1
    before = _parked_pids()
    for entries in _warm_trials._parked.values():
        for entry in entries:
            ray.kill(entry.actor)  # it dies while parked
    _, result = _user_search(bench, dv, "dead-b", [3, 4, 5, 6])
    assert len(result.trials) == 4 and all(t["status"] == "TERMINATED" for t in result.trials)
    assert parked_trials() == 1
    assert not _parked_pids() & before  # a fresh actor took the dead one's placement group


def test_plain_tune_in_the_same_process_gets_the_parked_cpus(cancer_bench, cold, monkeypatch):
    from ray import tune

    from workbench.runtime import parked_trials

    bench, dv = cancer_bench
    monkeypatch.setenv("WORKBENCH_WARM_TRIALS_S", "120")  # only the release can free them in time
    _sklearn_search(bench, dv, "before-plain")
    assert parked_trials() == 2

    def plain(config):
        tune.report({"v": config["x"]})

    t = time.monotonic()
    grid = tune.Tuner(
        plain,
        param_space={"x": tune.grid_search([1, 2])},
        tune_config=tune.TuneConfig(metric="v", mode="max"),
        run_config=tune.RunConfig(storage_path=str(bench.settings.tune_root), verbose=0),
    ).fit()
    assert grid.get_best_result().metrics["v"] == 2
    assert parked_trials() == 0  # released for it, and plain Tune parks nothing
    assert time.monotonic() - t < 60  # not the 120 s idle timer
