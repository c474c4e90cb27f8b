"""What ``workbench.datasets.validate`` costs over calling pandera directly with the same checks.

A reference of ``--rows`` rows (default 1,000,000: an integer id, four float columns, one with
nulls, an integer count, two string columns, one with a regex) gives ``infer_checks``; a second
batch of the same size from the same distribution is then validated ``--repeats`` times (default
7) two ways, interleaved (in alternating order) so machine load hits both alike:

- ours: ``validate(batch, checks)`` (pandera for the row-level rules, one polars pass for the
  aggregates, the report with examples);
- pandera: one ``pandera.polars.DataFrameSchema`` holding the same rules, written by hand as a
  pandera user would (dtypes, nullable, unique, ``in_range``, ``isin``, ``str_matches``, and the
  row-count, null-share and PSI rules as DataFrame-level ``Check`` functions), called directly.

For context a third line times pandera with the dtypes and row-level rules only (the part of our
``validate`` that pandera runs). Medians are printed with the ratio ours / pandera, the best
runs' ratio, the median of the ratios of each back-to-back pair, and the median CPU seconds
of each (all threads: the work done, the steadiest figure on a loaded machine); the goal is an overhead of 10 % or less::

    .venv/bin/python bench/validation_overhead.py
    .venv/bin/python bench/validation_overhead.py --rows 200000 --repeats 3 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import polars as pl

from workbench.datasets import Checks, infer_checks, validate
from workbench.datasets._validation import psi


def batch(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    f3 = rng.normal(3, 4, n)
    return pl.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64) + seed * n,
            **{f"f{i}": rng.normal(i, 1 + i, n) for i in range(3)},
            "f3": pl.Series(f3).set(pl.Series(rng.random(n) < 0.05), None),
            "count": rng.integers(0, 100, n),
            "city": rng.choice(["paris", "lyon", "lille", "nantes", "brest"], n),
            "code": rng.choice([f"c{i:03d}" for i in range(500)], n),
        }
    )


def pandera_schema(checks: Checks, *, frame_rules: bool = True):
    """The same rules as ``checks``, as one pandera schema (what a pandera user writes); without
    ``frame_rules``, only the dtypes and the row-level rules (for context: pandera's share)."""
    import pandera.polars as pa

    columns = {}
    frame_checks = [
        pa.Check(
            lambda data: checks.min_rows <= data.lazyframe.select(pl.len()).collect().item(),
            name="row_count",
        )
    ]
    for name, col in checks.columns.items():
        rules = []
        if col.min is not None:
            rules.append(pa.Check.in_range(col.min, col.max))
        if col.isin is not None:
            rules.append(pa.Check.isin(col.isin))
        if col.regex is not None:
            rules.append(pa.Check.str_matches(col.regex))
        columns[name] = pa.Column(
            getattr(pl, col.dtype),
            nullable=col.nullable is not False,
            unique=col.unique,
            checks=rules,
        )
        lo, hi = col.null_fraction or (0.0, checks.max_null_fraction)
        frame_checks.append(
            pa.Check(
                lambda data, c=name, lo=lo, hi=hi: (
                    lo
                    <= data.lazyframe.select(pl.col(c).null_count() / pl.len()).collect().item()
                    <= hi
                ),
                name=f"nulls:{name}",
            )
        )
        if col.psi is not None:
            frame_checks.append(
                pa.Check(
                    lambda data, c=name, spec=col.psi: _psi_ok(data, c, spec), name=f"psi:{name}"
                )
            )
    return pa.DataFrameSchema(columns, checks=frame_checks if frame_rules else [], strict=True)


def _psi_ok(data, c: str, spec: dict) -> bool:
    s = data.lazyframe.select(pl.col(c)).collect()[c].drop_nulls()
    if "edges" in spec:
        s = s.cast(pl.Float64)
        s = s.filter(s.is_not_nan())
        cum = [int((s <= e).sum()) for e in spec["edges"]]
        counts = [b - a for a, b in zip([0, *cum], [*cum, s.len()], strict=True)]
    else:
        vc = dict(s.cast(pl.String).value_counts().iter_rows())
        counts = [int(vc.get(k, 0)) for k in spec["categories"]]
        counts.append(s.len() - sum(counts))
    return psi(spec["expected"], [k / s.len() for k in counts]) <= spec["threshold"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    ref, new = batch(args.rows, 0), batch(args.rows, 1)
    t = time.perf_counter()
    checks = infer_checks(ref)
    checks.columns["code"].regex = r"^c\d{3}$"
    infer_s = time.perf_counter() - t
    schema = pandera_schema(checks)
    rows_only = pandera_schema(checks, frame_rules=False)
    report = validate(new, checks)  # warm-up: imports pandera, and a correctness check
    failed = [r for r in report if not r["passed"]]
    assert not failed, failed
    schema.validate(new, lazy=True)

    runs = {"ours": [], "pandera": [], "rows": []}
    cpu = {"ours": [], "pandera": [], "rows": []}  # CPU seconds of all threads: the work done
    calls = {
        "ours": lambda: validate(new, checks),
        "pandera": lambda: schema.validate(new, lazy=True),
        "rows": lambda: rows_only.validate(new, lazy=True),
    }
    for k in range(args.repeats):
        # the order alternates so neither side always runs right after the other's allocations
        for name in ("ours", "pandera", "rows") if k % 2 == 0 else ("pandera", "ours", "rows"):
            t, c = time.perf_counter(), time.process_time()
            calls[name]()
            runs[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    ours, direct, row_rules = runs["ours"], runs["pandera"], runs["rows"]
    med_ours, med_direct = statistics.median(ours), statistics.median(direct)
    out = {
        "rows": args.rows,
        "columns": new.width,
        "checks": len(report),
        "infer_s": round(infer_s, 3),
        "ours_s": [round(x, 3) for x in ours],
        "pandera_s": [round(x, 3) for x in direct],
        "ours_median_s": round(med_ours, 3),
        "pandera_median_s": round(med_direct, 3),
        "pandera_row_rules_median_s": round(statistics.median(row_rules), 3),
        "ours_best_s": round(min(ours), 3),
        "pandera_best_s": round(min(direct), 3),
        "ratio_best": round(min(ours) / min(direct), 3),
        "ratio": round(med_ours / med_direct, 3),
        # each pair ran back to back, so the ratio of a pair cancels load that drifts between pairs
        "ratio_paired_median": round(
            statistics.median(a / b for a, b in zip(ours, direct, strict=True)), 3
        ),
        "overhead_pct": round(100 * (med_ours / med_direct - 1), 1),
        "ours_cpu_median_s": round(statistics.median(cpu["ours"]), 3),
        "pandera_cpu_median_s": round(statistics.median(cpu["pandera"]), 3),
        "cpu_ratio": round(statistics.median(cpu["ours"]) / statistics.median(cpu["pandera"]), 3),
    }
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"{args.rows:,} rows x {new.width} columns, {len(report)} checks (inferred in {infer_s:.2f} s)"
    )
    print(f"  ours     median {med_ours:.3f} s   runs {out['ours_s']}")
    print(f"  pandera  median {med_direct:.3f} s   runs {out['pandera_s']}")
    print(
        f"  (pandera, dtypes and row-level rules only: median {out['pandera_row_rules_median_s']:.3f} s)"
    )
    print(
        f"  best runs: ours {out['ours_best_s']:.3f} s, pandera {out['pandera_best_s']:.3f} s, ratio {out['ratio_best']:.3f}"
    )
    print(
        f"  median of the paired ratios (each pair run back to back) {out['ratio_paired_median']:.3f}"
    )
    print(
        f"  CPU seconds (all threads, less disturbed by other load): ours {out['ours_cpu_median_s']:.3f}, "
        f"pandera {out['pandera_cpu_median_s']:.3f}, ratio {out['cpu_ratio']:.3f}"
    )
    print(f"  ratio {out['ratio']:.3f} (overhead {out['overhead_pct']:+.1f} %; goal <= +10 %)")
    for what, key in (
        ("medians", "ratio"),
        ("paired", "ratio_paired_median"),
        ("CPU", "cpu_ratio"),
    ):
        print(f"  target: overhead <= 10 % ({what}): {'met' if out[key] <= 1.10 else 'NOT met'} (x{out[key]:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
