"""What the richer fold metrics (ROC-AUC, PR-AUC, log-loss, Brier) add to a search's wall time.

Workload (issue 13's speed goal: "the richer metrics add <= 10% to a 64-trial search's wall
time"): ``Workbench.experiments.search`` of logistic regression on the bundled breast-cancer
data, ``C ~ loguniform(1e-3, 1e1)``, 64 trials, 3-fold CV, one CPU per trial. Two variants of
the *same* search:

- ``rich``   what the workbench does: each fold reports the four label metrics and the four
  probability metrics, and every fold is recorded in the store (``trial_folds``).
- ``basic``  the private switch ``WORKBENCH_FOLD_METRICS=basic`` (read by ``fold_scores``, for
  this benchmark only): each fold reports accuracy/precision/recall/F1 as before issue 13.
  The folds are still recorded; only the metric computation differs.

The switch must reach the Ray workers, which inherit the environment of the process that
started Ray, so each run is its own Python process with its own private Ray (its start is not
timed: only ``search`` is). Each repeat runs both back to back, the order alternating between
repeats, so a change in machine load hits both alike; the 1-minute load average is printed with each run. A second, Ray-free
figure times ``fold_scores`` alone for the same 64 configurations in this process (the trial
body without Tune around it, the two variants alternating per configuration), to show the
metrics' own cost.

Usage::

    .venv/bin/python bench/metrics_overhead.py                 # 3 repeats of each, ~4 minutes on 2 cores
    .venv/bin/python bench/metrics_overhead.py --repeats 1 --trials 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GOAL = 1.10


def one_run(trials: int, folds: int) -> dict[str, float]:
    """One search in this process (the variant is the environment it was started with)."""
    from ray import tune

    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv

    with tempfile.TemporaryDirectory() as tmp:
        bench = Workbench(Path(tmp) / "wb")
        dv = bench.datasets.ingest(
            write_breast_cancer_csv(Path(tmp) / "bc.csv"), name="bc", target="diagnosis"
        )
        t0 = time.perf_counter()
        bench.stages.connect()
        ray_s = time.perf_counter() - t0
        space = {"family": "logistic_regression", "C": tune.loguniform(1e-3, 1e1)}
        t0 = time.perf_counter()
        result = bench.experiments.search(
            dv, name="overhead", space=space, num_samples=trials, folds=folds, progress=None
        )
        search_s = time.perf_counter() - t0
        n_folds = len(bench.store.evaluations.list_folds(result.experiment_id))
        metrics = sorted(result.best_metrics)
        bench.close()
    return {
        "search_s": search_s,
        "ray_start_s": ray_s,
        "folds_recorded": n_folds,
        "metrics": metrics,
    }


def fold_only(trials: int, folds: int, repeats: int) -> dict[str, list[float]]:
    """``fold_scores`` of the same configurations, no Ray: the trial body's own time per variant."""
    import numpy as np
    import polars as pl

    from workbench.datasets import write_breast_cancer_csv
    from workbench.experiments._estimators import fold_scores
    from workbench.features import to_pandas

    with tempfile.TemporaryDirectory() as tmp:
        df = pl.read_csv(write_breast_cancer_csv(Path(tmp) / "bc.csv"))
    kinds = {c: "number" for c in df.columns if c != "diagnosis"}
    X = to_pandas(df, kinds)
    labels = sorted(set(df["diagnosis"].to_list()))
    y = np.array([labels.index(v) for v in df["diagnosis"].to_list()])
    rng = np.random.default_rng(0)
    configs = [
        {"family": "logistic_regression", "C": float(10 ** rng.uniform(-3, 1))}
        for _ in range(trials)
    ]
    # interleaved per configuration (order alternating), so load drift hits both variants alike
    out: dict[str, list[float]] = {"rich": [], "basic": []}
    for r in range(repeats):
        total = {"rich": 0.0, "basic": 0.0}
        for k, c in enumerate(configs):
            order = ("rich", "basic") if (k + r) % 2 == 0 else ("basic", "rich")
            for variant in order:
                if variant == "basic":
                    os.environ["WORKBENCH_FOLD_METRICS"] = "basic"
                else:
                    os.environ.pop("WORKBENCH_FOLD_METRICS", None)
                t0 = time.perf_counter()
                list(fold_scores(c, X, y, kinds, folds=folds, seed=0))
                total[variant] += time.perf_counter() - t0
        for variant, seconds in total.items():
            out[variant].append(seconds)
    os.environ.pop("WORKBENCH_FOLD_METRICS", None)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", choices=["run"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.trials, args.folds)))
        return 0

    runs: dict[str, list[float]] = {"rich": [], "basic": []}
    for r in range(args.repeats):
        # the order alternates between repeats: a load that keeps rising does not favour one
        for variant in ("rich", "basic") if r % 2 == 0 else ("basic", "rich"):
            env = dict(os.environ)
            env.pop("WORKBENCH_FOLD_METRICS", None)
            if variant == "basic":
                env["WORKBENCH_FOLD_METRICS"] = "basic"
            load = os.getloadavg()[0]
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    "run",
                    "--trials",
                    str(args.trials),
                    "--folds",
                    str(args.folds),
                ],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[variant].append(res["search_s"])
            print(
                f"repeat {r + 1} {variant:5s}: search {res['search_s']:6.2f} s "
                f"(Ray start {res['ray_start_s']:.1f} s, not timed), {res['folds_recorded']} folds "
                f"recorded, metrics {','.join(res['metrics'])}; load {load:.2f} -> {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    rich, basic = statistics.median(runs["rich"]), statistics.median(runs["basic"])
    # each repeat's rich/basic pair ran back to back: the median of the pair ratios is the
    # figure least moved by the load drifting between repeats
    paired = statistics.median(r / b for r, b in zip(runs["rich"], runs["basic"], strict=True))
    print(
        f"\n{args.trials}-trial search, {args.folds} folds, median of {args.repeats}: "
        f"rich {rich:.2f} s, basic {basic:.2f} s, ratio of medians x{rich / basic:.3f}, "
        f"median paired ratio x{paired:.3f} "
        f"(goal <= x{GOAL:.2f}: {'met' if paired <= GOAL else 'NOT met'})"
    )
    body = fold_only(args.trials, args.folds, max(3, args.repeats))
    br, bb = statistics.median(body["rich"]), statistics.median(body["basic"])
    print(
        f"fold_scores alone (no Ray), {args.trials} configs x {args.folds} folds, median: "
        f"rich {br:.3f} s, basic {bb:.3f} s, ratio x{br / bb:.3f} "
        f"(+{(br - bb) / (args.trials * args.folds) * 1e3:.2f} ms per fold)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
