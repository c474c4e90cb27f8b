"""Automatic feature search vs the fixed pipeline, on the same trial budget: metric gained, time cost.

Workload (issue 13's speed section: "automatic feature search vs the fixed pipeline on the same
budget: report the metric gained and the time it cost"): synthetic rows where features matter,
with a known signal (``tests/test_feature_search.make_frame``: a keyword in free text, a skewed
amount with outliers and nulls, a product of two numbers, the hour of a timestamp, a 60-level
category). Per seed, the same train/holdout split is searched twice by ``experiments.auto``:

- ``fixed``     today's pipeline for every trial (``feature_search=False``);
- ``features``  ``feature_search=True``: each trial also draws its preprocessing from
  ``feature_choices`` (default, baseline, robust + IQR clipping, interactions, MI selection).

Both run the same families x ``num_samples`` trials with auto's own settings (ASHA, 5-fold CV
under 2,000 rows). The best trial of each is refitted on the training rows and scored on the
holdout (F1, the search metric, and ROC-AUC). Reported: medians over the seeds of the holdout
metrics and of the search wall time (Ray started once, before any timing), their differences
and the time ratio, with the 1-minute load average (other processes share the cores; the
variant that runs first alternates by seed).

Usage::

    .venv/bin/python bench/feature_search.py                     # 3 seeds, 1,200 rows, 4 samples/family
    .venv/bin/python bench/feature_search.py --seeds 1 --rows 600 --samples 2
    .venv/bin/python bench/feature_search.py --data cancer       # clean numbers: the cost side
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def dataset(bench, data: str, seed: int, rows: int):
    """``orders``: the synthetic rows; ``cancer``: scikit-learn's breast-cancer data (30 clean
    numbers, where the default pipeline already suits and feature search can only cost time)."""
    if data == "cancer":
        from workbench.datasets import write_breast_cancer_csv

        path = write_breast_cancer_csv(Path(bench.settings.home) / f"bc{seed}.csv")
        return bench.datasets.ingest(path, name=f"bc{seed}", target="diagnosis")
    from tests.test_feature_search import make_frame

    return bench.datasets.ingest(make_frame(rows, seed=seed), name=f"shop{seed}", target="label")


def one_seed(bench, data: str, seed: int, rows: int, samples: int) -> dict[str, dict[str, float]]:
    from collections import Counter

    dv = dataset(bench, data, seed, rows)
    parts = bench.datasets.split(dv, {"train": 0.75, "holdout": 0.25}, seed=seed)
    out = {}
    order = [("fixed", False), ("features", True)]
    # alternate which runs first, so a change in machine load does not always hit the same one
    for variant, search_features in order if seed % 2 == 0 else order[::-1]:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        result = bench.experiments.auto(
            parts["train"],
            name=f"{variant}-{seed}",
            num_samples=samples,
            seed=seed,
            feature_search=search_features,
            progress=None,
        )
        wall = time.perf_counter() - t0
        bundle = bench.experiments.fit_bundle(parts["train"], result.best_config, seed=seed)
        holdout = bench.experiments.evaluate(bundle, parts["holdout"])
        chosen = _spec_name(result.best_config.get("features"), bundle, bench, parts["train"])
        out[variant] = {
            "wall_s": wall,
            "f1": holdout["f1"],
            "roc_auc": holdout.get("roc_auc", float("nan")),
            "trials": len(result.trials),
            "status": dict(Counter(t["status"] for t in result.trials)),
            "load": load,
            "best": f"{result.best_config['family']} / {chosen}",
        }
        print(f"seed {seed} {variant:8s} {json.dumps(out[variant])}", flush=True)
    return out


def _spec_name(spec, bundle, bench, train) -> str:
    """Which of the feature choices a best config used (``fixed``: the default pipeline)."""
    if spec is None:
        return "default pipeline"
    from workbench.experiments import feature_choices

    sample = bench.datasets.load(train).head(5_000)  # what auto's baseline looked at
    for name, choice in feature_choices(bundle.features, sample).items():
        if choice == spec:
            return name
    return "a searched spec"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--samples", type=int, default=4, help="trials per model family")
    parser.add_argument("--data", choices=("orders", "cancer"), default="orders")
    args = parser.parse_args()

    from workbench.api import Workbench

    with tempfile.TemporaryDirectory() as tmp:
        bench = Workbench(Path(tmp) / "wb")
        bench.stages.connect()  # Ray's start is not timed
        runs = [one_seed(bench, args.data, s, args.rows, args.samples) for s in range(args.seeds)]
        bench.close()  # the store, and the Ray that connect() started

    def med(variant: str, key: str) -> float:
        return statistics.median(r[variant][key] for r in runs)

    summary = {
        "data": args.data,
        "rows": args.rows if args.data == "orders" else 569,
        "trials_per_search": runs[0]["fixed"]["trials"],
        "seeds": args.seeds,
        "fixed": {k: med("fixed", k) for k in ("f1", "roc_auc", "wall_s")},
        "features": {k: med("features", k) for k in ("f1", "roc_auc", "wall_s")},
        "f1_gain_median": statistics.median(r["features"]["f1"] - r["fixed"]["f1"] for r in runs),
        "roc_auc_gain_median": statistics.median(
            r["features"]["roc_auc"] - r["fixed"]["roc_auc"] for r in runs
        ),
        "time_ratio_median": statistics.median(
            r["features"]["wall_s"] / r["fixed"]["wall_s"] for r in runs
        ),
        "best": {v: [r[v]["best"] for r in runs] for v in ("fixed", "features")},
        "load_1min": [round(r[v]["load"], 2) for r in runs for v in ("fixed", "features")],
    }
    print(json.dumps(summary, indent=2))
    print(
        f"feature search vs fixed pipeline, {summary['trials_per_search']} trials each, "
        f"median of {args.seeds} seed(s): F1 {summary['f1_gain_median']:+.3f}, "
        f"ROC-AUC {summary['roc_auc_gain_median']:+.3f}, time x{summary['time_ratio_median']:.2f}"
    )


if __name__ == "__main__":
    main()
