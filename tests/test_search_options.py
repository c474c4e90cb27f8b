"""Search algorithms, schedulers, resources and failures of `Experiments.search` on a real local Ray (2 CPUs)."""

from __future__ import annotations

import time

import pytest

from workbench.exceptions import ConfigError


@pytest.fixture(scope="module")
def bench_with_data(cancer_bench):
    return cancer_bench


def _max_step(bench, exp_id, trial_id):
    return max(m["step"] for m in bench.store.experiments.list_trial_metrics(exp_id, trial_id))


def test_option_helpers_without_a_cluster():
    from ray import tune

    from workbench.experiments import default_search_space
    from workbench.experiments._options import check_space, count_trials, normalize_resources

    assert normalize_resources(None, None) == {"cpu": 1.0, "gpu": 0.0}
    assert normalize_resources(None, 2) == {"cpu": 2.0, "gpu": 0.0}
    assert normalize_resources({"CPU": 0.5, "gpu": 0.25}, None) == {"cpu": 0.5, "gpu": 0.25}
    for bad in ({"gpu": 1.5}, {"cpu": -1}, {"cpu": 0, "gpu": 0}):
        with pytest.raises(ConfigError):
            normalize_resources(bad, None)
    with pytest.raises(ConfigError, match="not both"):
        normalize_resources({"cpu": 1}, 1)
    # Optuna/HyperOpt choose the family themselves; random/grid enumerate it
    assert "grid_search" not in default_search_space(search_alg="optuna")["family"]
    assert default_search_space(search_alg="grid")["C"] == 1.0
    random_space = default_search_space()
    assert count_trials(random_space, "random", 3) == 6
    assert count_trials(default_search_space(search_alg="hyperopt"), "hyperopt", 3) == 3
    check_space(default_search_space(search_alg="optuna"), "optuna")
    with pytest.raises(
        ConfigError, match=r"does not accept tune.grid_search \(found at \['family'\]"
    ):
        check_space(random_space, "hyperopt")
    with pytest.raises(ConfigError, match=r"\['C'\] are sampling domains"):
        check_space(
            {"family": tune.grid_search(["random_forest"]), "C": tune.uniform(0, 1)}, "grid"
        )


@pytest.mark.ray
@pytest.mark.parametrize("alg", ["random", "grid", "optuna", "hyperopt"])
def test_each_search_algorithm_runs_and_is_recorded(bench_with_data, alg):
    from ray import tune

    bench, dv = bench_with_data
    if alg == "random":
        space, n, expected = None, 1, 2  # default space: one sample per family
    elif alg == "grid":
        space = {
            "family": tune.grid_search(["logistic_regression"]),
            "C": tune.grid_search([0.1, 1.0]),
        }
        n, expected = 1, 2
    else:
        space = {
            "family": tune.choice(["logistic_regression"]),
            "C": tune.loguniform(1e-2, 1e1),
        }
        n, expected = 3, 3
    t0 = time.perf_counter()
    result = bench.experiments.search(
        dv, name=f"alg-{alg}", space=space, num_samples=n, search_alg=alg, progress=None
    )
    print(f"{alg}: {expected} trials in {time.perf_counter() - t0:.1f} s")
    exp = bench.store.experiments.get(result.experiment_id)
    assert exp["search_alg"] == alg and exp["scheduler"] == "fifo"
    assert exp["num_samples"] == expected and exp["status"] == "TERMINATED"
    assert exp["search_space"]["_resources"] == {"cpu": 1.0, "gpu": 0.0}
    trials = bench.experiments.trials(result.experiment_id)
    assert len(trials) == expected
    assert all(t["status"] == "TERMINATED" and 0.8 < t["metrics"]["f1"] <= 1 for t in trials)
    if alg == "grid":
        assert sorted(t["config"]["C"] for t in trials) == [0.1, 1.0]
    assert set(result.best_metrics) >= {"accuracy", "precision", "recall", "f1", "roc_auc"}
    # the built-in trainable reports once per fold (3 by default)
    assert _max_step(bench, result.experiment_id, result.best_trial_id) == 3


@pytest.mark.ray
@pytest.mark.parametrize("scheduler", ["asha", "hyperband", "median", "pbt"])
def test_each_scheduler_runs_the_builtin_trainable(bench_with_data, scheduler):
    from ray import tune

    bench, dv = bench_with_data
    space = {"family": tune.grid_search(["logistic_regression"]), "C": tune.loguniform(1e-3, 1e1)}
    t0 = time.perf_counter()
    result = bench.experiments.search(
        dv,
        name=f"sched-{scheduler}",
        space=space,
        num_samples=4,
        folds=5,
        scheduler=scheduler,
        progress=None,
    )
    print(f"{scheduler}: 4 trials × 5 folds in {time.perf_counter() - t0:.1f} s")
    exp = bench.store.experiments.get(result.experiment_id)
    assert exp["scheduler"] == scheduler and exp["search_alg"] == "random"
    assert exp["search_space"]["_options"]["max_steps"] == 5
    trials = bench.experiments.trials(result.experiment_id)
    assert len(trials) == 4
    steps = [_max_step(bench, result.experiment_id, t["trial_id"]) for t in trials]
    assert all(1 <= s <= 5 for s in steps) and max(steps) == 5
    assert _max_step(bench, result.experiment_id, result.best_trial_id) == 5
    assert result.best_metrics["f1"] > 0.8


@pytest.mark.ray
def test_asha_stops_a_bad_trial_early(bench_with_data):
    from ray import tune

    bench, dv = bench_with_data

    def fixed_quality(config, data):
        from ray import tune as t

        for _ in range(8):
            t.report({"score": config["q"]})

    result = bench.experiments.search(
        dv,
        name="asha-bad",
        space={"q": tune.grid_search([0.9, 0.95, 0.97, 0.1])},  # the bad one comes last
        metric="score",
        num_samples=1,
        scheduler="asha",
        trainable=fixed_quality,
        max_steps=8,
        max_concurrent_trials=1,
        progress=None,
    )
    trials = {t["config"]["q"]: t for t in bench.experiments.trials(result.experiment_id)}
    steps = {q: _max_step(bench, result.experiment_id, t["trial_id"]) for q, t in trials.items()}
    print(f"ASHA steps per trial quality: {steps}")
    assert steps[0.1] < 8 and steps[0.95] == 8
    assert result.best_config["q"] == 0.97 and result.best_metrics["score"] == 0.97
    assert bench.store.experiments.get(result.experiment_id)["search_space"]["_options"][
        "scheduler"
    ] == {"time_attr": "training_iteration", "max_t": 8, "grace_period": 1, "reduction_factor": 2}


@pytest.mark.ray
def test_failing_trial_is_retried_and_recorded(bench_with_data, tmp_path):
    from ray import tune

    bench, dv = bench_with_data
    counters = tmp_path

    def flaky(config, data):
        from pathlib import Path

        from ray import tune as t

        counter = Path(counters) / f"attempts-{config['x']}"
        counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
        if config["x"] == 2:
            raise ValueError(f"boom for x={config['x']}")
        t.report({"score": float(config["x"])})

    result = bench.experiments.search(
        dv,
        name="flaky",
        space={"x": tune.grid_search([1, 2])},
        metric="score",
        num_samples=1,
        max_failures=2,
        trainable=flaky,
        progress=None,
    )
    assert (tmp_path / "attempts-2").read_text() == "3"  # first try + 2 retries
    assert (tmp_path / "attempts-1").read_text() == "1"
    trials = {t["config"]["x"]: t for t in bench.experiments.trials(result.experiment_id)}
    assert trials[2]["status"] == "ERROR"
    error = trials[2]["error"]
    # one entry per attempt, each with the remote traceback down to the user's line
    assert "Failure # 3" in error and error.count("ValueError: boom for x=2") == 3
    assert 'in flaky\n    raise ValueError(f"boom for x={config' in error and "\x1b[" not in error
    assert trials[1]["status"] == "TERMINATED"
    assert result.best_config["x"] == 1 and result.best_metrics == {"score": 1.0}
    exp = bench.store.experiments.get(result.experiment_id)
    assert exp["status"] == "TERMINATED" and exp["search_space"]["_options"]["max_failures"] == 2


@pytest.mark.ray
def test_bad_options_fail_before_any_trial_or_record(bench_with_data):
    from ray import tune

    bench, dv = bench_with_data
    before = len(bench.experiments.list())
    search = bench.experiments.search
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"gpu=1 but the Ray cluster has 0 GPU"):
        search(dv, name="x", resources={"gpu": 1}, progress=None)
    with pytest.raises(ConfigError, match=r"cpu=8 but the Ray cluster has 2 CPU"):
        search(dv, name="x", resources={"cpu": 8}, progress=None)
    with pytest.raises(ConfigError, match=r"cpu=3 but the Ray cluster has 2 CPU"):
        search(dv, name="x", cpus_per_trial=3, progress=None)
    print(f"resource checks: {time.perf_counter() - t0:.2f} s for 3 refusals")
    with pytest.raises(
        ConfigError, match=r"unknown search_alg 'bayes'.*'random', 'grid', 'optuna'"
    ):
        search(dv, name="x", search_alg="bayes", progress=None)
    with pytest.raises(ConfigError, match=r"unknown scheduler 'ashaa'.*'fifo', 'asha'"):
        search(dv, name="x", scheduler="ashaa", progress=None)
    with pytest.raises(ConfigError, match="'optuna' does not accept tune.grid_search"):
        space = {"family": tune.grid_search(["logistic_regression"]), "C": tune.uniform(0.1, 1)}
        search(dv, name="x", space=space, search_alg="optuna", progress=None)
    with pytest.raises(ConfigError, match="mode must be"):
        search(dv, name="x", mode="maximize", progress=None)
    with pytest.raises(ConfigError, match="needs its search space"):
        search(dv, name="x", trainable=lambda c, d: None, metric="score", progress=None)
    with pytest.raises(ConfigError, match="'pbt' mutates numeric"):
        space = {"family": tune.grid_search(["logistic_regression"])}
        search(dv, name="x", space=space, scheduler="pbt", progress=None)
    assert len(bench.experiments.list()) == before


@pytest.mark.ray
def test_hyperband_resumes_paused_trials_from_their_fold_checkpoints(bench_with_data):
    """HyperBand pauses trials between rungs; a resumed trial continues from its per-fold checkpoint
    and ends with the score an uninterrupted (FIFO) run of the same config gets."""
    from ray import tune

    bench, dv = bench_with_data
    space = {"family": tune.grid_search(["logistic_regression"]), "C": tune.loguniform(1e-3, 1e1)}
    runs = {}
    for scheduler in ("fifo", "hyperband"):
        r = bench.experiments.search(
            dv, name=f"hb-{scheduler}", space=space, num_samples=6, folds=5, seed=3,
            scheduler=scheduler, progress=None,
        )  # fmt: skip
        runs[scheduler] = {
            t["config"]["C"]: (
                t["metrics"]["f1"],
                _max_step(bench, r.experiment_id, t["trial_id"]),
            )
            for t in bench.experiments.trials(r.experiment_id)
        }
        runs[scheduler + "_id"] = r.experiment_id
    fifo, hb = runs["fifo"], runs["hyperband"]
    assert set(fifo) == set(hb)  # same seeded configurations
    complete = [c for c, (_, steps) in hb.items() if steps == 5]
    assert complete and len(complete) < 6  # some finished, some were stopped at a rung
    assert all(hb[c][0] == fifo[c][0] for c in complete)
    saved = list(
        (bench.settings.home / "tune").glob(f"exp-{runs['hyperband_id']}-*/*/checkpoint_*")
    )
    assert saved, "HyperBand trials saved no checkpoint to resume from"


@pytest.mark.ray
def test_time_budget_and_searcher_and_scheduler_instances(bench_with_data):
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    bench, dv = bench_with_data

    def slow(config, data):
        import time as t

        from ray import tune as rt

        for step in range(100):
            rt.report({"loss": config["lr"] / (step + 1)})
            t.sleep(0.25)

    t0 = time.perf_counter()
    result = bench.experiments.search(
        dv,
        name="budget",
        space={"lr": tune.uniform(0.1, 1.0)},
        metric="loss",
        mode="min",
        num_samples=4,
        search_alg=OptunaSearch(seed=1),
        scheduler=FIFOScheduler(),
        time_budget_s=8,
        trainable=slow,
        max_steps=100,
        progress=None,
    )
    elapsed = time.perf_counter() - t0
    print(f"time_budget_s=8: search returned after {elapsed:.1f} s")
    assert elapsed < 20  # 4 full trials would take 2 × 25 s on 2 CPUs
    exp = bench.store.experiments.get(result.experiment_id)
    assert exp["search_alg"] == "OptunaSearch" and exp["scheduler"] == "FIFOScheduler"
    assert exp["search_space"]["_options"]["time_budget_s"] == 8
    steps = [
        _max_step(bench, result.experiment_id, t["trial_id"])
        for t in bench.experiments.trials(result.experiment_id)
        if bench.store.experiments.list_trial_metrics(result.experiment_id, t["trial_id"])
    ]
    assert steps and max(steps) < 100
    assert 0 < result.best_metrics["loss"] <= 1
    # trials the budget cut short are recorded as STOPPED, none is left looking alive
    statuses = [t["status"] for t in bench.experiments.trials(result.experiment_id)]
    assert "STOPPED" in statuses and not {"RUNNING", "PENDING", "PAUSED"} & set(statuses)


def test_hyperband_stops_the_paused_trials_of_a_bracket_its_last_trials_finished():
    """Ray 2.60's HyperBand leaves a bracket's paused trial PAUSED forever when the others end with a
    final (done) result instead of a plain one: the removal that completes the bracket does nothing.
    This is the hang CI hit with 4 trials × 5 folds (bracket of 3 trials with r0 = max_t = 5)."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import HyperBandScheduler

    from workbench.experiments._schedulers import HyperBand

    class Controller:
        def __init__(self, scheduler):
            self.scheduler, self.stopped = scheduler, []

        def stop_trial(self, trial):
            self.stopped.append(trial)
            trial.status = Trial.TERMINATED
            self.scheduler.on_trial_remove(self, trial)

    outcome = {}
    for cls in (HyperBandScheduler, HyperBand):
        sched = cls(
            time_attr="training_iteration", max_t=5, reduction_factor=2, metric="f1", mode="max"
        )
        ctl = Controller(sched)
        trials = [Trial("__fake", stub=True) for _ in range(3)]
        for t in trials:
            sched.on_trial_add(ctl, t)
            t.status = Trial.RUNNING
        last = {"training_iteration": 5, "f1": 0.9}
        assert sched.on_trial_result(ctl, trials[0], last) == "PAUSE"  # waits for the other two
        trials[0].status = Trial.PAUSED
        for t in trials[1:]:
            sched.on_trial_complete(ctl, t, last)
            t.status = Trial.TERMINATED
        outcome[cls] = (trials[0].status, ctl.stopped)
    assert outcome[HyperBandScheduler] == (Trial.PAUSED, [])  # the upstream bug, still there
    status, stopped = outcome[HyperBand]
    assert status == Trial.TERMINATED and len(stopped) == 1


@pytest.mark.ray
def test_hyperband_goes_on_when_a_trial_that_survived_a_halving_fails(bench_with_data):
    """6 trials, max_t 4: x=0..2 fill a bracket that runs them to 4; x=3..5 a bracket halved at step 2.
    x=5 leads there, survives with x=4, then raises at step 3. Stock Ray 2.60 HyperBand leaves x=4
    PAUSED at step 4 waiting for it (measured: the search ran until its 90 s budget); ours ends."""
    from ray import tune

    bench, dv = bench_with_data

    def trainable(config, data):
        """Reports ``x + step`` for steps 1..4, checkpointed so HyperBand can pause and resume it."""
        import json
        import os
        import tempfile

        from ray import tune as rt

        start = 0
        if (ck := rt.get_checkpoint()) is not None:
            with ck.as_directory() as d, open(os.path.join(d, "s.json")) as f:
                start = json.load(f)["s"]
        for step in range(start + 1, 5):
            if config["x"] == 5 and step == 3:
                raise RuntimeError("boom at step 3")
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "s.json"), "w") as f:
                    json.dump({"s": step}, f)
                rt.report({"score": config["x"] + step}, checkpoint=rt.Checkpoint.from_directory(d))

    t0 = time.perf_counter()
    r = bench.experiments.search(
        dv, name="hb-error", space={"x": tune.grid_search(list(range(6)))}, trainable=trainable,
        metric="score", mode="max", num_samples=1, scheduler="hyperband", max_steps=4,
        time_budget_s=120, progress=None,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    assert elapsed < 100, f"HyperBand waited for the failed trial ({elapsed:.0f} s)"
    trials = {t["config"]["x"]: t for t in bench.experiments.trials(r.experiment_id)}
    assert trials[5]["status"] == "ERROR" and "boom at step 3" in trials[5]["error"]
    assert {trials[x]["status"] for x in range(5)} == {"TERMINATED"}
    steps = {x: _max_step(bench, r.experiment_id, t["trial_id"]) for x, t in trials.items()}
    assert steps == {0: 4, 1: 4, 2: 4, 3: 2, 4: 4, 5: 2}
    assert r.best_metrics["score"] == 8.0  # x=4 at step 4
