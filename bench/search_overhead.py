"""The same small search five ways in one run: plain Ray Tune, the workbench search, Tune + MLflow, Optuna.

Workload (from the experiments issue): logistic regression on the bundled
breast-cancer data, ``C ~ loguniform(1e-3, 1e1)``, 3-fold stratified CV, one
CPU per trial. Every variant runs the *same* trial body
(``workbench.experiments._estimators.fold_scores``: the same preprocessing,
estimator and folds), so the differences are the machinery around it:

- ``a_stock``  plain Ray Tune, stock settings (``reuse_actors=False``), data
  through ``tune.with_parameters``; reports once per fold like (b).
- ``a_equal``  the same with ``reuse_actors=True``, the setting the workbench
  uses: (b)/(a_equal) is the price of tracking alone.
- ``b``        ``Workbench.experiments.search`` (Tune + the driver-side
  ``TrackingCallback`` writing to SQLite).
- ``b_warm``   the same search run right after another workbench search (an untimed 2-trial
  one when needed), so its trial actors are the parked ones
  (``workbench/runtime/_warm_trials.py``); every other variant releases parked actors
  first and starts cold.
- ``c``        ``a_equal`` + Ray's ``MLflowLoggerCallback`` on an SQLite
  tracking URI (mlflow-skinny, installed only for this benchmark into
  ``bench/.deps`` by ``make bench-search``; the callback runs on the driver,
  so only the driver's ``sys.path`` needs it, appended last so the venv's own
  packages win).
- ``d``        Optuna in-process, ``n_jobs=2`` (threads), the floor.

Ray is started once (``workbench.runtime.connect``, as the workbench does)
before the timed runs; its start-up time is reported separately. Variants run
round-robin within each repeat so a change in machine load hits them alike;
the 1-minute load average is recorded at the start and end of each run.

Also measured: the tracking write rate (the workbench store's batched
``store.experiments.record_trial_events`` against MLflow's ``log_metric`` on SQLite, same
metrics), and the memory of the driver and of the Ray workers over a long
search of trivial trials, to show whether the driver grows with the number of
results. Usage::

    make bench-search                                   # installs mlflow-skinny into bench/.deps first
    .venv/bin/python bench/search_overhead.py --quick   # < 3 minutes
    .venv/bin/python bench/search_overhead.py --trials 64 --repeats 3 --out results.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
DEFAULT_DEPS = HERE / ".deps"

# Targets from the experiments issue.
TARGET_B_OVER_A = 1.05  # workbench / plain Tune on equal settings
TARGET_B_OVER_D = 1.5  # workbench / Optuna in-process
TARGET_WARM_OVER_D = 1.0  # workbench right after another search (warm trial actors) / Optuna
TARGET_WRITE_RATIO = 20.0  # workbench metric writes/s over MLflow's per-metric rate

VARIANTS = ("a_stock", "a_equal", "b", "b_warm", "c", "d")
LABELS = {
    "a_stock": "(a) plain Tune, stock (reuse_actors=False)",
    "a_equal": "(a) plain Tune, reuse_actors=True",
    "b": "(b) workbench tracked search, cold",
    "b_warm": "(b) the same right after another search",
    "c": "(c) Tune + MLflowLoggerCallback (SQLite)",
    "d": "(d) Optuna in-process, n_jobs=2",
}


# ----------------------------------------------------------------------------- pure helpers
def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


def paired_ratio(num: list[float], den: list[float]) -> float | None:
    """Median of the per-repeat ratios (runs of one repeat ran back to back, under similar load)."""
    pairs = [n / d for n, d in zip(num, den, strict=False) if d]
    return statistics.median(pairs) if pairs else None


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    if value is None:
        width = spec.split(".")[0]
        return "n/a".rjust(int(width) if width.isdigit() else 0)
    return f"{value:{spec}}{unit}"


def verdict(value: float | None, target: float, *, at_most: bool) -> str:
    if value is None:
        return "not measured"
    ok = value <= target if at_most else value >= target
    return ("met" if ok else "MISSED") + f" ({'≤' if at_most else '≥'} {target:g})"


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


# ----------------------------------------------------------------------------- trial bodies
def plain_trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
    """Plain Tune trial: the same CV as the workbench's built-in trainable, one report per fold."""
    from ray import tune

    from workbench.experiments._estimators import fold_scores, mean_scores

    per_fold: list[dict[str, float]] = []
    for fold in fold_scores(
        config, data["X"], data["y"], data["kinds"], folds=data["folds"], seed=data["seed"]
    ):
        per_fold.append(fold)
        tune.report(mean_scores(per_fold))


def tiny_trainable(config: dict[str, Any], data: dict[str, Any]) -> None:
    """A trial that does no work: ``folds`` reports of four metrics (for the memory run)."""
    from ray import tune

    x = float(config["x"])
    for _ in range(data["folds"]):
        tune.report({"accuracy": x, "precision": x, "recall": x, "f1": x})


# ----------------------------------------------------------------------------- instrumentation
class Timers:
    """Wall time spent inside wrapped driver-side methods (callback hooks, store writes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.rows = 0
        self.trials: list[dict[str, float]] = []  # last results of finished trials

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def wrap(self, cls: type, name: str, key: str) -> None:
        original = getattr(cls, name)
        timers = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers.seconds[key] = timers.seconds.get(key, 0.0) + time.perf_counter() - t
                timers.calls[key] = timers.calls.get(key, 0) + 1

        setattr(cls, name, timed)


TIMERS = Timers()


def instrument_workbench() -> None:
    """Time the TrackingCallback hooks and the store writes; keep each finished trial's last result."""
    from workbench.experiments._tracking import TrackingCallback
    from workbench.lineage._experiments import ExperimentRepository

    original_write = ExperimentRepository.record_trial_events

    def write(self: Any, experiment_id: int, trials: Any, metrics: Any = ()) -> None:
        metrics = list(metrics)
        TIMERS.rows += sum(len(v) for _, _, v in metrics)
        t = time.perf_counter()
        try:
            original_write(self, experiment_id, trials, metrics)
        finally:
            TIMERS.seconds["store.experiments.record_trial_events"] = (
                TIMERS.seconds.get("store.experiments.record_trial_events", 0.0)
                + time.perf_counter()
                - t
            )
            TIMERS.calls["store.experiments.record_trial_events"] = (
                TIMERS.calls.get("store.experiments.record_trial_events", 0) + 1
            )

    ExperimentRepository.record_trial_events = write  # type: ignore[method-assign]
    original_complete = TrackingCallback.on_trial_complete

    def complete(self: Any, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        TIMERS.trials.append(_timing_fields(trial.last_result or {}))
        original_complete(self, iteration, trials, trial, **info)

    TrackingCallback.on_trial_complete = complete  # type: ignore[method-assign]
    for hook in (
        "on_trial_start",
        "on_trial_result",
        "on_trial_complete",
        "on_step_end",
        "on_experiment_end",
    ):
        TIMERS.wrap(TrackingCallback, hook, "callback." + hook)


def _timing_fields(result: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(result[k])
        for k in ("timestamp", "time_total_s", "training_iteration")
        if isinstance(result.get(k), int | float)
    }


def schedule_profile(
    trials: list[dict[str, float]], t_fit_start: float, t_fit_end: float, wall: float
) -> dict[str, Any]:
    """Where a Tune run's wall time went: start-up before the first trial, trial work, gaps, tail.

    ``timestamp`` (unix seconds of the last report) minus ``time_total_s`` is
    when a trial's body began. ``slot_idle_per_trial_s`` is the time a CPU
    slot spent not running a trial body, per trial: (CPUs × span − Σ work) / n.
    """
    done = [t for t in trials if "timestamp" in t and "time_total_s" in t]
    if not done:
        return {}
    work = sum(t["time_total_s"] for t in done)
    first = min(t["timestamp"] - t["time_total_s"] for t in done)
    last = max(t["timestamp"] for t in done)
    slots = os.cpu_count() or 2  # one CPU per trial: as many trials at a time as CPUs
    return {
        "trials": len(done),
        "work_s": round(work, 2),
        "work_per_trial_s": round(work / len(done), 3),
        "startup_s": round(first - t_fit_start, 2),
        "tail_s": round(t_fit_end - last, 2),
        "span_s": round(last - first, 2),
        "slot_idle_per_trial_s": round((slots * (last - first) - work) / len(done), 3),
        "outside_fit_s": round(wall - (t_fit_end - t_fit_start), 2),
    }


# ----------------------------------------------------------------------------- memory sampling
def _mem(p: psutil.Process) -> tuple[int, int]:
    info = p.memory_full_info()
    return info.rss, getattr(info, "pss", info.rss)


def _ray_workers() -> list[psutil.Process]:
    """Ray worker processes (``default_worker.py``: idle pool, Tune trial actors) of this driver's raylet."""
    out = []
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.NoSuchProcess:
        return out
    for p in children:
        try:
            cmd = " ".join(p.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "default_worker.py" in cmd:
            out.append(p)
    return out


class Sampler:
    """Sample driver and worker memory (RSS, PSS) and an optional progress probe every ``interval`` s."""

    def __init__(self, interval: float = 0.5, probe: Callable[[], dict[str, Any]] | None = None):
        self.interval = interval
        self.probe = probe
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> dict[str, Any]:
        rss, pss = _mem(psutil.Process())
        w_rss = w_pss = w_max = n = 0
        for p in _ray_workers():
            try:
                r, s = _mem(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            w_rss += r
            w_pss += s
            w_max = max(w_max, s)
            n += 1
        row = {
            "t": time.monotonic(),
            "driver_rss": rss,
            "driver_pss": pss,
            "workers_rss": w_rss,
            "workers_pss": w_pss,
            "worker_max_pss": w_max,
            "workers": n,
        }
        if self.probe is not None:
            try:
                row.update(self.probe())
            except Exception:  # the probe reads a database another thread writes: skip a bad read
                pass
        return row

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.samples.append(self.sample())

    def peaks(self) -> dict[str, int]:
        keys = ("driver_rss", "driver_pss", "workers_rss", "workers_pss", "worker_max_pss")
        return {k: max((s[k] for s in self.samples), default=0) for k in keys}


# ----------------------------------------------------------------------------- the variants
class Bench:
    def __init__(self, args: argparse.Namespace, root: Path):
        self.args = args
        self.root = root
        self.seed = args.seed
        self.runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        self.mlflow_error: str | None = None

    def setup(self) -> dict[str, Any]:
        from workbench import Workbench
        from workbench.datasets import write_breast_cancer_csv

        self.wb = Workbench(home=self.root / "wb")
        csv = write_breast_cancer_csv(self.root / "breast_cancer.csv")
        self.dv = self.wb.datasets.ingest(csv, name="bc", target="diagnosis")
        t = time.perf_counter()
        self.wb.connect()
        ray_start = time.perf_counter() - t
        self.data = self.wb.experiments.training_data(self.dv)
        self.data.update(folds=3, seed=self.seed)
        instrument_workbench()
        self.mlflow_uri = f"sqlite:///{self.root / 'mlflow.db'}"
        try:
            from mlflow.tracking import MlflowClient

            # create the tables (alembic migrations, ~1.5 s) outside the timed runs
            MlflowClient(tracking_uri=self.mlflow_uri).search_experiments()
        except Exception as exc:
            self.mlflow_error = f"{type(exc).__name__}: {exc}"
        return {"ray_start_s": round(ray_start, 2), "rows": len(self.data["y"])}

    def space(self) -> dict[str, Any]:
        from ray import tune

        return {
            "family": tune.grid_search(["logistic_regression"]),
            "C": tune.loguniform(1e-3, 1e1),
        }

    def _tune(self, name: str, *, reuse: bool, callbacks: list | None = None) -> dict[str, Any]:
        from ray import tune
        from ray.tune.search.basic_variant import BasicVariantGenerator

        tuner = tune.Tuner(
            tune.with_parameters(plain_trainable, data=self.data),
            param_space=self.space(),
            tune_config=tune.TuneConfig(
                metric="f1",
                mode="max",
                num_samples=self.args.trials,
                search_alg=BasicVariantGenerator(random_state=self.seed),
                reuse_actors=reuse,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(self.root / "tune"),
                callbacks=callbacks,
                verbose=0,
            ),
        )
        t0 = time.time()
        grid = tuner.fit()
        t1 = time.time()
        errors = sum(r.error is not None for r in grid)
        trials = [_timing_fields(r.metrics or {}) for r in grid]
        best = grid.get_best_result().metrics.get("f1") if errors < len(grid) else None
        return {"t_fit": (t0, t1), "trials": trials, "errors": errors, "best_f1": best}

    def run_a(self, rep: int, *, reuse: bool) -> dict[str, Any]:
        return self._tune(f"a-{'equal' if reuse else 'stock'}-{rep}", reuse=reuse)

    def run_b(self, rep: int, name: str = "b") -> dict[str, Any]:
        TIMERS.reset()
        t0 = time.time()
        result = self.wb.experiments.search(
            self.dv,
            name=f"{name}-{rep}",
            space=self.space(),
            num_samples=self.args.trials,
            folds=3,
            progress=None,
            seed=self.seed,
        )
        t1 = time.time()
        errors = sum(t["status"] != "TERMINATED" for t in result.trials)
        return {
            "t_fit": (t0, t1),
            "trials": list(TIMERS.trials),
            "errors": errors,
            "best_f1": result.best_metrics.get("f1"),
            "recorded_trials": len(result.trials),
            "driver_time_in_callback_s": round(
                sum(v for k, v in TIMERS.seconds.items() if k.startswith("callback.")), 3
            ),
            "driver_time_in_store_writes_s": round(
                TIMERS.seconds.get("store.experiments.record_trial_events", 0.0), 3
            ),
            "store_transactions": TIMERS.calls.get("store.experiments.record_trial_events", 0),
            "metric_rows_written": TIMERS.rows,
        }

    def run_c(self, rep: int) -> dict[str, Any]:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        timers = Timers()

        class TimedMLflow(MLflowLoggerCallback):
            pass

        for hook in ("on_trial_start", "on_trial_result", "on_trial_complete", "setup"):
            timers.wrap(TimedMLflow, hook, hook)
        cb = TimedMLflow(tracking_uri=self.mlflow_uri, experiment_name=f"c-{rep}")
        out = self._tune(f"c-{rep}", reuse=True, callbacks=[cb])
        out["driver_time_in_callback_s"] = round(sum(timers.seconds.values()), 3)
        out["callback_seconds"] = {k: round(v, 3) for k, v in timers.seconds.items()}
        out["callback_calls"] = dict(timers.calls)
        return out

    def run_d(self, rep: int) -> dict[str, Any]:
        import optuna

        from workbench.experiments._estimators import cross_validate

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        X, y, kinds = self.data["X"], self.data["y"], self.data["kinds"]
        busy: list[float] = []

        def objective(trial: optuna.Trial) -> float:
            t = time.perf_counter()
            config = {
                "family": "logistic_regression",
                "C": trial.suggest_float("C", 1e-3, 1e1, log=True),
            }
            value = cross_validate(config, X, y, kinds, folds=3, seed=self.seed)["f1"]
            busy.append(time.perf_counter() - t)
            return value

        t0 = time.time()
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.seed + rep)
        )
        study.optimize(objective, n_trials=self.args.trials, n_jobs=2)
        t1 = time.time()
        return {
            "t_fit": (t0, t1),
            "errors": 0,
            "best_f1": study.best_value,
            "work_s": round(sum(busy), 2),
            "work_per_trial_s": round(sum(busy) / len(busy), 3),
        }

    def run(self, variant: str, rep: int) -> dict[str, Any]:
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "a_stock": lambda: self.run_a(rep, reuse=False),
            "a_equal": lambda: self.run_a(rep, reuse=True),
            "b": lambda: self.run_b(rep),
            "b_warm": lambda: self.run_b(rep, name="bw"),
            "c": lambda: self.run_c(rep),
            "d": lambda: self.run_d(rep),
        }
        from workbench.runtime import parked_trials, release_parked_trials

        if variant == "b_warm" and not parked_trials():
            # untimed: a 2-trial workbench search leaves its trial actors parked for this one
            trials, self.args.trials = self.args.trials, 2
            self.run_b(rep, name="prime")
            self.args.trials = trials
        elif variant != "b_warm":
            release_parked_trials()  # every other variant starts its trial actors cold
        load0 = loadavg()
        t = time.perf_counter()
        with Sampler() as sampler:
            out = runners[variant]()
        wall = time.perf_counter() - t
        t_fit = out.pop("t_fit")
        trials = out.pop("trials", None)
        row = {
            "variant": variant,
            "repeat": rep,
            "wall_s": round(wall, 2),
            "load_start": load0,
            "load_end": loadavg(),
            **{k: round(v / 2**20, 1) for k, v in sampler.peaks().items()},
            **out,
        }
        if trials is not None:
            row["profile"] = schedule_profile(trials, t_fit[0], t_fit[1], wall)
        self.runs[variant].append(row)
        print(
            f"  {variant:8s} repeat {rep}: {wall:7.1f} s   load {row['load_start']:.2f} → {row['load_end']:.2f}"
            f"   best f1 {fmt(row.get('best_f1'), '.4f')}   errors {row.get('errors')}",
            flush=True,
        )
        return row


# ----------------------------------------------------------------------------- write rate
def write_rate(root: Path, trials: int, steps: int, mlflow_n: int) -> dict[str, Any]:
    """Metric values written per second: workbench store (as its callback batches) vs MLflow on SQLite.

    Workbench, two batchings: one transaction per reported result (one trial
    upsert + 4 metric rows: what the callback's per-step flush writes when one
    result arrives per Tune step, the usual case with 2 trials at a time), and
    one transaction for a whole search's results. MLflow: ``log_metric`` per
    value (its per-metric rate, the target's reference, and what Ray's
    ``MLflowLoggerCallback`` calls for every numeric field of every result),
    and ``log_batch`` of one result's 4 values (MLflow's batched API, for
    reference).
    """
    from workbench.lineage import Store

    names = ("accuracy", "precision", "recall", "f1")
    out: dict[str, Any] = {"metrics_per_result": len(names)}
    for mode in ("per_result", "per_search"):
        store = Store(root / f"rate-{mode}.db")
        exp = store.experiments.add(
            name=mode,
            dataset_version_id=None,
            metric="f1",
            mode="max",
            num_samples=trials,
            search_space={},
            search_alg="random",
            scheduler="fifo",
            seed=0,
            code_version={},
            packages={},
        )
        events = [
            (f"t{i:05d}", s, {n: 0.5 + i * 1e-6 + s * 1e-3 for n in names})
            for i in range(trials)
            for s in range(1, steps + 1)
        ]
        t = time.perf_counter()
        if mode == "per_result":
            for tid, step, values in events:
                store.experiments.record_trial_events(
                    exp, [{"trial_id": tid, "status": "RUNNING"}], [(tid, step, values)]
                )
        else:
            store.experiments.record_trial_events(
                exp, [{"trial_id": f"t{i:05d}", "status": "RUNNING"} for i in range(trials)], events
            )
        dt = time.perf_counter() - t
        n = len(events) * len(names)
        out[f"workbench_{mode}"] = {"values": n, "seconds": round(dt, 4), "per_s": round(n / dt)}
    try:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        out["mlflow_error"] = f"{exc}"
        return out
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'rate-mlflow.db'}")
    exp_id = client.create_experiment("rate")
    run = client.create_run(exp_id).info.run_id
    t = time.perf_counter()
    for i in range(mlflow_n):
        client.log_metric(run, names[i % len(names)], 0.5, step=i // len(names))
    dt = time.perf_counter() - t
    out["mlflow_log_metric"] = {
        "values": mlflow_n,
        "seconds": round(dt, 4),
        "per_s": round(mlflow_n / dt),
    }
    run = client.create_run(exp_id).info.run_id
    batches = max(1, mlflow_n // len(names))
    t = time.perf_counter()
    for s in range(batches):
        ts = int(time.time() * 1000)
        client.log_batch(run, metrics=[Metric(n, 0.5, ts, s) for n in names])
    dt = time.perf_counter() - t
    n = batches * len(names)
    out["mlflow_log_batch_per_result"] = {
        "values": n,
        "seconds": round(dt, 4),
        "per_s": round(n / dt),
    }
    return out


# ----------------------------------------------------------------------------- memory run
def _store_bytes(db: Path, *, checkpoint: bool = False) -> int:
    """Size of the SQLite store: main file plus WAL, or (``checkpoint``) the main file after folding the WAL in."""
    if checkpoint:
        con = sqlite3.connect(db, timeout=30)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
    return sum(
        Path(str(db) + suffix).stat().st_size
        for suffix in ("", "-wal")
        if Path(str(db) + suffix).exists()
    )


def _counting_callback() -> Any:
    from ray.tune import Callback

    class CountDone(Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            TIMERS.trials.append(_timing_fields(trial.last_result or {}))

    return CountDone()


def memory_run(bench: Bench, trials: int, kind: str, steps: int = 3) -> dict[str, Any]:
    """A long search of trivial trials (``kind`` "b": the workbench; "a": plain Tune, reuse_actors=True),
    each reporting ``steps`` results, sampling driver and worker memory and the workbench store's size."""
    from ray import tune

    db = Path(bench.wb.store.path)
    name = f"memory-{kind}-{trials}x{steps}"
    TIMERS.reset()

    def probe() -> dict[str, Any]:
        return {"done": len(TIMERS.trials), "db_bytes": _store_bytes(db)}

    db_before = _store_bytes(db, checkpoint=True)
    load0 = loadavg()
    t = time.perf_counter()
    with Sampler(interval=0.5, probe=probe) as sampler:
        base = sampler.sample()
        if kind == "b":
            result = bench.wb.experiments.search(
                bench.dv,
                name=name,
                space={"x": tune.uniform(0, 1)},
                num_samples=trials,
                folds=steps,
                progress=None,
                seed=bench.seed,
                trainable=tiny_trainable,
            )
            recorded = len(result.trials)
        else:
            from ray.tune.search.basic_variant import BasicVariantGenerator

            grid = tune.Tuner(
                tune.with_parameters(tiny_trainable, data={"folds": steps}),
                param_space={"x": tune.uniform(0, 1)},
                tune_config=tune.TuneConfig(
                    metric="f1",
                    mode="max",
                    num_samples=trials,
                    search_alg=BasicVariantGenerator(random_state=bench.seed),
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=str(bench.root / "tune"),
                    callbacks=[_counting_callback()],
                    verbose=0,
                ),
            ).fit()
            recorded = len(grid)
    wall = time.perf_counter() - t
    db_after = _store_bytes(db, checkpoint=True)
    samples = [s for s in sampler.samples if "done" in s]
    mib = 2**20

    def at(fraction: float) -> dict[str, Any] | None:
        for s in samples:
            if s["done"] >= fraction * trials:
                return {
                    "done": s["done"],
                    "driver_rss_mib": round(s["driver_rss"] / mib, 1),
                    "driver_pss_mib": round(s["driver_pss"] / mib, 1),
                    "workers_pss_mib": round(s["workers_pss"] / mib, 1),
                    "store_mib": round(s["db_bytes"] / mib, 2),
                }
        return None

    peaks = sampler.peaks()
    results = trials * steps
    first, last = at(0.25), at(1.0)
    out = {
        "kind": kind,
        "trials": trials,
        "steps": steps,
        "recorded_trials": recorded,
        "results_reported": results,
        "wall_s": round(wall, 1),
        "per_trial_s": round(wall / trials, 3),
        "load_start": load0,
        "load_end": loadavg(),
        "driver_rss_before_mib": round(base["driver_rss"] / mib, 1),
        "peak_driver_rss_mib": round(peaks["driver_rss"] / mib, 1),
        "peak_driver_pss_mib": round(peaks["driver_pss"] / mib, 1),
        "peak_workers_pss_mib": round(peaks["workers_pss"] / mib, 1),
        "peak_workers_rss_mib": round(peaks["workers_rss"] / mib, 1),
        "peak_one_worker_pss_mib": round(peaks["worker_max_pss"] / mib, 1),
        "max_worker_processes": max((s["workers"] for s in sampler.samples), default=0),
        "at_25pct": at(0.25),
        "at_50pct": at(0.50),
        "at_100pct": at(1.0),
        "samples": len(sampler.samples),
    }
    if first and last and last["done"] > first["done"]:
        grown = last["driver_rss_mib"] - first["driver_rss_mib"]
        out["driver_rss_growth_25_to_100pct_mib"] = round(grown, 1)
        out["driver_rss_growth_per_trial_kib"] = round(
            grown * 1024 / (last["done"] - first["done"]), 2
        )
        out["driver_rss_growth_per_result_kib"] = round(
            grown * 1024 / ((last["done"] - first["done"]) * steps), 2
        )
    if kind == "b":
        out["store_growth_mib"] = round((db_after - db_before) / mib, 2)
        out["store_bytes_per_result"] = round((db_after - db_before) / results)
    return out


# ----------------------------------------------------------------------------- report
def summarize(bench: Bench, rate: dict[str, Any] | None) -> dict[str, Any]:
    walls = {v: [r["wall_s"] for r in bench.runs[v]] for v in VARIANTS}
    med = {v: median(w) for v, w in walls.items()}
    pairs = {
        "b/a_equal": ("b", "a_equal"),
        "b/a_stock": ("b", "a_stock"),
        "b/d": ("b", "d"),
        "b_warm/d": ("b_warm", "d"),
        "b_warm/a_equal": ("b_warm", "a_equal"),
        "a_stock/d": ("a_stock", "d"),
        "a_equal/d": ("a_equal", "d"),
        "c/a_equal": ("c", "a_equal"),
        "c/b": ("c", "b"),
    }
    ratios = {
        k: {
            "of_medians": ratio(med[n], med[d]),
            "paired_median": paired_ratio(walls[n], walls[d]),
        }
        for k, (n, d) in pairs.items()
    }
    write_ratio = write_ratio_batched = None
    if rate and "mlflow_log_metric" in rate:
        ref = rate["mlflow_log_metric"]["per_s"]
        write_ratio = rate["workbench_per_result"]["per_s"] / ref
        write_ratio_batched = rate["workbench_per_search"]["per_s"] / ref
    targets = {
        "b/a_equal <= 1.05": verdict(
            ratios["b/a_equal"]["of_medians"], TARGET_B_OVER_A, at_most=True
        ),
        "b/d <= 1.5": verdict(ratios["b/d"]["of_medians"], TARGET_B_OVER_D, at_most=True),
        "b_warm/d <= 1.0": verdict(
            ratios["b_warm/d"]["of_medians"], TARGET_WARM_OVER_D, at_most=True
        ),
        "write rate >= 20x MLflow log_metric": verdict(
            write_ratio, TARGET_WRITE_RATIO, at_most=False
        ),
    }
    return {
        "medians_s": med,
        "walls_s": walls,
        "ratios": ratios,
        "write_ratio_per_result_vs_log_metric": write_ratio,
        "write_ratio_per_search_vs_log_metric": write_ratio_batched,
        "targets": targets,
    }


def print_report(summary: dict[str, Any], bench: Bench, report: dict[str, Any]) -> None:
    print()
    print(f"search of {bench.args.trials} trials, {bench.args.repeats} repeat(s); wall seconds")
    print(f"{'variant':46s} {'median':>8s} {'runs':>24s} {'load (1 min) start→end':>24s}")
    for v in VARIANTS:
        runs = bench.runs[v]
        if not runs:
            continue
        walls = " ".join(f"{r['wall_s']:.1f}" for r in runs)
        loads = " ".join(f"{r['load_start']:.1f}→{r['load_end']:.1f}" for r in runs)
        print(f"{LABELS[v]:46s} {fmt(summary['medians_s'][v], '8.1f')} {walls:>24s} {loads:>24s}")
    print()
    print("where the time went (medians over repeats; seconds)")
    print(
        f"{'variant':8s} {'fit→1st trial':>13s} {'work/trial':>10s} {'idle slot/trial':>15s} "
        f"{'driver in tracking callback':>27s}"
    )
    for v in VARIANTS:
        runs = bench.runs[v]
        if not runs:
            continue
        prof = [r.get("profile") or {} for r in runs]

        def med(key: str, rows: list[dict[str, Any]] = prof) -> float | None:
            return median([p[key] for p in rows if key in p])

        work = (
            med("work_per_trial_s") if v != "d" else median([r["work_per_trial_s"] for r in runs])
        )
        cb = median(
            [r["driver_time_in_callback_s"] for r in runs if "driver_time_in_callback_s" in r]
        )
        print(
            f"{v:8s} {fmt(med('startup_s'), '13.2f')} {fmt(work, '10.3f')} "
            f"{fmt(med('slot_idle_per_trial_s'), '15.3f')} {fmt(cb, '27.3f')}"
        )
    print()
    print(f"{'ratio':12s} {'of medians':>11s} {'paired':>8s}")
    for k, r in summary["ratios"].items():
        print(f"{k:12s} {fmt(r['of_medians'], '11.2f')} {fmt(r['paired_median'], '8.2f')}")
    rate = report.get("write_rate") or {}
    if rate:
        print()
        print("tracking writes (metric values per second)")
        for key in (
            "workbench_per_result",
            "workbench_per_search",
            "mlflow_log_metric",
            "mlflow_log_batch_per_result",
        ):
            if key in rate:
                print(f"  {key:30s} {rate[key]['per_s']:>10,d} /s  ({rate[key]['values']} values)")
        print(
            f"  ratio workbench (per result) / MLflow log_metric: "
            f"{fmt(summary['write_ratio_per_result_vs_log_metric'], '.0f', 'x')}; "
            f"batched per search: {fmt(summary['write_ratio_per_search_vs_log_metric'], '.0f', 'x')}"
        )
    for mem in (report.get("memory") or {}).values():
        who = "workbench search" if mem["kind"] == "b" else "plain Tune (reuse_actors=True)"
        print()
        print(
            f"memory, {who} of {mem['trials']} trivial trials × {mem['steps']} results: "
            f"{mem['wall_s']} s ({mem['per_trial_s']} s/trial), {mem['recorded_trials']} trials returned, "
            f"load {mem['load_start']:.1f}→{mem['load_end']:.1f}"
        )
        print(
            f"  driver RSS before {mem['driver_rss_before_mib']} MiB, peak {mem['peak_driver_rss_mib']} MiB "
            f"(peak PSS {mem['peak_driver_pss_mib']} MiB)"
        )
        print(
            f"  workers: peak PSS {mem['peak_workers_pss_mib']} MiB summed over up to "
            f"{mem['max_worker_processes']} processes (one worker at most {mem['peak_one_worker_pss_mib']} MiB)"
        )
        for key in ("at_25pct", "at_50pct", "at_100pct"):
            s = mem.get(key)
            if s:
                store = f", store {s['store_mib']} MiB" if mem["kind"] == "b" else ""
                print(f"  {key}: {s['done']} done, driver RSS {s['driver_rss_mib']} MiB{store}")
        if "driver_rss_growth_25_to_100pct_mib" in mem:
            print(
                f"  driver RSS growth from 25% to 100% done: {mem['driver_rss_growth_25_to_100pct_mib']} MiB "
                f"({mem['driver_rss_growth_per_trial_kib']} KiB per trial, "
                f"{mem['driver_rss_growth_per_result_kib']} KiB per result)"
            )
        if "store_growth_mib" in mem:
            print(
                f"  store grew {mem['store_growth_mib']} MiB after checkpoint: "
                f"{mem['store_bytes_per_result']} bytes per reported result"
            )
    print()
    print("targets")
    for k, v in summary["targets"].items():
        print(f"  {k:40s} {v}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--stock-repeats", type=int, default=None, help="repeats of a_stock (default --repeats)"
    )
    parser.add_argument("--memory-trials", type=int, default=1000, help="0 skips the memory run")
    parser.add_argument(
        "--memory-kinds",
        default="a,b,b_steps",
        help="memory runs: a (plain Tune, reuse_actors=True), b (workbench), b_steps (workbench, "
        "memory_trials/100 trials of 300 results each)",
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deps", default=str(DEFAULT_DEPS), help="where mlflow-skinny lives")
    parser.add_argument(
        "--quick", action="store_true", help="8 trials, 1 repeat, 100-trial memory run"
    )
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.repeats, args.memory_trials = 8, 1, 100
    stock_repeats = args.stock_repeats if args.stock_repeats is not None else args.repeats
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune's legacy output engine prints nothing at verbose=0 (the new one prints a banner); the
    # workbench sets this itself around fit(), so every Tune variant runs with the same console.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    if Path(args.deps).is_dir():
        sys.path.append(str(Path(args.deps).resolve()))  # last: the venv's packages win
    try:
        import mlflow

        mlflow_version: str | None = mlflow.__version__
    except ImportError:
        mlflow_version = None
        if "c" in variants:
            print(
                "mlflow-skinny not found: (c) is skipped; `make bench-search` installs it into bench/.deps"
            )
            variants.remove("c")

    import optuna
    import ray
    import sklearn

    root = Path(tempfile.mkdtemp(prefix="wb-search-bench-"))
    t_start = time.time()
    print(f"workdir {root}; load average at start {os.getloadavg()}", flush=True)
    bench = Bench(args, root)
    setup = bench.setup()
    if bench.mlflow_error and "c" in variants:
        print(f"MLflow unusable ({bench.mlflow_error}): (c) is skipped")
        variants.remove("c")
    print(f"ray started in {setup['ray_start_s']} s", flush=True)
    # one untimed warm-up so first-use costs (imports, the object store put) do not land on one variant
    warm = args.trials
    args.trials = 2
    bench.run_b(-1)
    bench.run_a(-1, reuse=True)
    args.trials = warm
    for rep in range(max(args.repeats, stock_repeats)):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
        for v in order:
            if rep >= (stock_repeats if v == "a_stock" else args.repeats):
                continue
            bench.run(v, rep)

    print("tracking write rate ...", flush=True)
    rate = write_rate(root, trials=1000, steps=3, mlflow_n=400 if args.quick else 2000)
    memory = None
    if args.memory_trials > 0:
        print(f"memory run, {args.memory_trials} trivial trials ...", flush=True)
        memory = {}
        for kind in args.memory_kinds.split(","):
            if kind == "b_steps":  # few trials, many results each: does the driver grow per result?
                trials, steps = max(2, args.memory_trials // 100), 300
                memory[kind] = memory_run(bench, trials, "b", steps=steps)
            else:
                memory[kind] = memory_run(bench, args.memory_trials, kind)

    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d", time.localtime(t_start)),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "ray": ray.__version__,
            "optuna": optuna.__version__,
            "scikit_learn": sklearn.__version__,
            "mlflow_skinny": mlflow_version,
        },
        "settings": {
            "trials": args.trials,
            "repeats": args.repeats,
            "stock_repeats": stock_repeats,
            "memory_trials": args.memory_trials,
            "seed": args.seed,
            "variants": variants,
        },
        "setup": setup,
        "runs": bench.runs,
        "write_rate": rate,
        "memory": memory,
        "total_s": round(time.time() - t_start, 1),
    }
    report["summary"] = summarize(bench, rate)
    print_report(report["summary"], bench, report)
    ray.shutdown()  # the local cluster bench.setup() started
    print(f"\ntotal {report['total_s']} s")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
