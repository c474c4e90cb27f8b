"""How long ``workbench.datasets.diff`` takes on two versions of a million rows, by key and without.

Version a: ``--rows`` rows (default 1,000,000) with an integer id, four float columns, an integer
and two string columns. Version b: 1 % of a's rows removed, 1 % new ids added, 2 % of the rest
with one or two values changed, one column added, one column's type changed (Int64 -> Float64).
Each diff runs ``--repeats`` times (default 3); the best and median wall times are printed, with
the counts, which are checked against what was injected. Goal: under 2 s by key::

    .venv/bin/python bench/diff_speed.py
    .venv/bin/python bench/diff_speed.py --rows 200000 --repeats 1 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import polars as pl

from workbench.datasets import diff


def versions(n: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, int]]:
    rng = np.random.default_rng(seed)
    a = pl.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            **{f"f{i}": rng.normal(i, 1 + i, n) for i in range(4)},
            "count": rng.integers(0, 100, n),
            "city": rng.choice(["paris", "lyon", "lille", "nantes", "brest"], n),
            "code": rng.choice([f"c{i:03d}" for i in range(500)], n),
        }
    )
    n_removed, n_added, n_changed = n // 100, n // 100, n // 50
    order = rng.permutation(n)
    removed, changed = order[:n_removed], order[n_removed : n_removed + n_changed]
    b = a.with_columns(
        f0=pl.when(pl.col("id").is_in(changed)).then(pl.col("f0") + 1.0).otherwise(pl.col("f0")),
        city=pl.when(pl.col("id").is_in(changed[: n_changed // 2]))
        .then(pl.lit("rennes"))
        .otherwise(pl.col("city")),
        count=pl.col("count").cast(pl.Float64),
        extra=pl.lit(1.5),
    ).filter(~pl.col("id").is_in(removed))
    new = b.head(n_added).with_columns(id=pl.col("id") + n)
    b = pl.concat([b, new]).sample(fraction=1.0, shuffle=True, seed=seed)
    return a, b, {"removed": n_removed, "added": n_added, "changed": n_changed}


def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args()

    a, b, injected = versions(args.rows)
    by_key, d = timed(lambda: diff(a, b, key="id"), args.repeats)
    assert (d.added, d.removed, d.changed) == (
        injected["added"],
        injected["removed"],
        injected["changed"],
    ), (d.added, d.removed, d.changed, injected)
    whole, w = timed(lambda: diff(a, b), args.repeats)
    assert w.added == w.removed + (b.height - a.height) and w.removed >= injected["removed"]
    out = {
        "rows": args.rows,
        "threads": pl.thread_pool_size(),
        "by_key_best_s": round(min(by_key), 3),
        "by_key_median_s": round(statistics.median(by_key), 3),
        "whole_rows_best_s": round(min(whole), 3),
        "whole_rows_median_s": round(statistics.median(whole), 3),
        "counts_by_key": {"added": d.added, "removed": d.removed, "changed": d.changed},
        "goal_s": 2.0,
        "met": min(by_key) < 2.0,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"diff of {args.rows:,} rows on {out['threads']} threads: by key "
            f"{out['by_key_best_s']} s best / {out['by_key_median_s']} s median "
            f"(goal < 2 s: {'met' if out['met'] else 'NOT met'}); whole rows "
            f"{out['whole_rows_best_s']} s best / {out['whole_rows_median_s']} s median; "
            f"{d.added:,} added, {d.removed:,} removed, {d.changed:,} changed"
        )


if __name__ == "__main__":
    main()
