"""Batch scoring of a million rows: ``Serving.score`` on Ray Data against the bundle's own predict in one process.

Workload: logistic regression on scikit-learn's breast-cancer data (30 numeric features, the
workbench's own preprocessing, a ``ModelBundle`` registered as ``bc@1``) scoring ``--rows`` rows
(default 1,000,000) drawn from the 569 with seeded Gaussian noise, recorded as a dataset version.
Both variants do the same work on the same Arrow table: the feature columns to pandas
(``workbench.features.to_pandas``), ``ModelBundle.predict_frame``, ``predict_proba``, the columns
appended (``workbench.serving._batch.score_table``).

- ``in_process``  one ``score_table`` call on the whole table in this process.
- ``ray_data``    the Ray Data part of ``Serving.score``: the table in blocks through Ray's
  object store, ``map_batches`` of ``BundleScorer`` (the bundle loaded once per actor from the
  artifact store, hash-verified) on an autoscaling pool of up to one actor per CPU, the scored
  blocks gathered in row order. Its output is checked against ``in_process``'s: the rows and
  predictions equal, the probabilities to 1e-12.
- ``score``       ``Serving.score`` end to end, once: the version loaded and verified, the Ray
  Data part, then validation, content hash, Parquet and the record with its lineage edges.

The two variants alternate within each repeat (so a change in machine load hits both alike); the
1-minute load average is printed with every run. Ray is a private local one with every CPU of the
machine. Usage::

    .venv/bin/python bench/batch_scoring.py                        # 1M rows, 3 repeats (~3 min on 2 cores)
    .venv/bin/python bench/batch_scoring.py --rows 200000 --repeats 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def rows_like(frame, n: int, *, seed: int = 0):
    """``n`` rows resampled from ``frame``, each number jittered by 5% of its column's spread."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    pick = rng.integers(0, frame.height, n)
    out = frame[pick.tolist()]
    numeric = [c for c, t in out.schema.items() if t.is_numeric()]
    return out.with_columns(
        [
            pl.Series(c, out[c].to_numpy() + rng.normal(0, 0.05 * float(frame[c].std()), n))
            for c in numeric
        ]
    )


def check_same(got, want) -> None:
    """The input columns and predictions exactly equal; probabilities to 1e-12 (the last rows of a
    BLAS call may differ in the last bit with the call's length: 38 of 2 million did here)."""
    import numpy as np

    assert got.column_names == want.column_names, (got.column_names, want.column_names)
    for name in want.column_names:
        if "_proba_" in name:
            np.testing.assert_allclose(
                got.column(name).to_numpy(), want.column(name).to_numpy(), rtol=0, atol=1e-12
            )
        else:
            assert got.column(name).equals(want.column(name)), f"column {name} differs"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()

    import ray

    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv
    from workbench.runtime import connect
    from workbench.serving._batch import _run, actor_pool, score_table

    cpus = os.cpu_count() or 1
    conn = connect(num_cpus=cpus, object_store_memory=2 * 1024**3)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Workbench(Path(tmp) / "home")
        small = bench.datasets.ingest(
            write_breast_cancer_csv(Path(tmp) / "bc.csv"), name="bc", target="diagnosis"
        )
        bundle = bench.experiments.fit_bundle(small, {"family": "logistic_regression", "C": 1.0})
        mv = bench.registry.register("bc", bundle, metrics={})
        t = time.perf_counter()
        dv = bench.datasets.ingest(
            rows_like(bench.datasets.load(small), args.rows), name="bc-big", target="diagnosis"
        )
        print(f"{args.rows:,} rows recorded as {dv} in {time.perf_counter() - t:.1f} s", flush=True)
        table = bench.datasets.load(dv).to_arrow()
        root, sha = bench.artifacts.uri, mv.artifact_hash
        times: dict[str, list[float]] = {"in_process": [], "ray_data": []}
        reference = None
        for r in range(args.repeats):
            t = time.perf_counter()
            reference = score_table(bundle, table)
            times["in_process"].append(time.perf_counter() - t)
            t = time.perf_counter()
            got = _run(
                table,
                artifacts_root=root,
                artifact_hash=sha,
                output="prediction",
                batch_size=args.batch_size,
                num_gpus=0,
                compute=actor_pool(None, num_gpus=0, cluster=ray.cluster_resources()),
            )
            times["ray_data"].append(time.perf_counter() - t)
            check_same(got, reference)
            print(
                f"repeat {r + 1}: in_process {times['in_process'][-1]:.2f} s, "
                f"ray_data {times['ray_data'][-1]:.2f} s (load {_load()})",
                flush=True,
            )
        t = time.perf_counter()
        scored = bench.serving.score(mv, dv, batch_size=args.batch_size)
        end_to_end = time.perf_counter() - t
        assert scored.n_rows == args.rows and scored.parent_id == dv.id
        bench.close()
    conn.shutdown()
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "rows": args.rows,
        "cpus": cpus,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "in_process_median_s": round(med["in_process"], 2),
        "ray_data_median_s": round(med["ray_data"], 2),
        "ratio_ray_data_over_in_process": round(med["ray_data"] / med["in_process"], 2),
        "in_process_rows_per_s": round(args.rows / med["in_process"]),
        "ray_data_rows_per_s": round(args.rows / med["ray_data"]),
        "score_end_to_end_s": round(end_to_end, 2),
        "load_1min": _load(),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{args.rows:,} rows on {cpus} CPUs: in one process {out['in_process_median_s']} s "
            f"({out['in_process_rows_per_s']:,} rows/s), Ray Data {out['ray_data_median_s']} s "
            f"({out['ray_data_rows_per_s']:,} rows/s): Ray Data / in-process = "
            f"{out['ratio_ray_data_over_in_process']} (medians of {args.repeats}); "
            f"Serving.score end to end, recording included: {out['score_end_to_end_s']} s"
        )


if __name__ == "__main__":
    main()
