"""What ``bench.datasets.ingest(SqlSource(...))`` adds to reading the same rows with polars alone.

A throwaway PostgreSQL 15 (``workbench.testing.start_postgres``: loopback, SCRAM password login) holds a table of
``--rows`` rows (default 1 million: bigint id, timestamp, float8, text, int). Per round, interleaved
so machine load hits both alike:

- ``read``: ``polars.read_database_uri(sql, uri, engine="connectorx")`` alone;
- ``ingest``: ``Workbench.datasets.ingest(SqlSource(uri, table=...), name=...)`` into a fresh home
  (so the artifact really is written, not found by its hash).

Medians over ``--rounds``, of wall time and of CPU time (this process plus the database server's
processes: what the work costs, steady when other processes load shared cores, where wall times
swing by 2x); the ratio ingest/read is the headline (goal: x1.10 at most), also paired within each round. ``ingest`` does more than read:
it validates (default checks), hashes the content, writes a zstd Parquet artifact (``parquet_bytes``) and records the
version, so the breakdown times each of those steps on the same frame, the way ``ingest`` calls
them, and ``fetch`` (``SqlSource.fetch``: the login probe + the same read) separately. An
incremental read (``watermark="id"``, 1 % new rows, an index on ``id``) is timed too.

Usage::

    .venv/bin/python bench/sql_ingest_overhead.py [--rows 1000000] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from workbench.testing import start_postgres

GOAL_EXTRA = 0.10  # ingest may add at most 10 % to the read alone

TABLE_SQL = """
create table sales (id bigint primary key, at timestamp not null, amount float8, region text,
                    qty int);
insert into sales
  select g, timestamp '2024-01-01' + g * interval '1 second', (g % 9973) * 0.37,
         (array['north', 'south', 'east', 'west'])[1 + g % 4], g % 50
  from generate_series(1, {rows}) g;
analyze sales;
"""


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _server_cpu(pid: int) -> float:
    """CPU seconds the server has used: the postmaster, its live processes and the reaped ones
    (each connection's backend exits after its read and is counted in ``children_*``)."""
    import psutil

    root = psutil.Process(pid)
    total = sum(root.cpu_times()[:4])
    for child in root.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass  # ended between the listing and the reading: counted as reaped next time
    return total


def _cpu_timed(fn: Any, pid: int) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds (this process + the database server) and the result of ``fn()``.

    CPU time is what the work costs whatever else loads the machine; wall time is what a user
    waits, and on shared cores it swings with the other processes."""
    c0, s0, t0 = time.process_time(), _server_cpu(pid), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    return wall, (time.process_time() - c0) + (_server_cpu(pid) - s0), out


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def breakdown(frame: Any, artifacts: Any, probe_of: Any) -> dict[str, float]:
    """Seconds of each step ``ingest`` runs after the read, on ``frame``, called as it calls them;
    and of the login probe ``probe_of`` (a :class:`SqlSource`) runs before it."""
    from workbench.datasets import Checks
    from workbench.datasets._datasets import content_hash

    try:  # what ingest calls (validate() is the same checks, with the report formatted)
        from workbench.datasets._validation import run_checks as check
    except ImportError:
        from workbench.datasets import validate as check

    out: dict[str, float] = {}
    src = probe_of
    out["probe_s"], _ = _timed(lambda: src._probe(src._connect_uri()))
    out["validate_s"], _ = _timed(lambda: check(frame, Checks()))
    out["content_hash_s"], _ = _timed(lambda: content_hash(frame))

    try:  # what ingest calls to encode the version's Parquet copy
        from workbench.datasets._datasets import parquet_bytes
    except ImportError:  # before parquet_bytes: polars' writer

        def parquet_bytes(df: Any) -> bytes:
            buf = io.BytesIO()
            df.write_parquet(buf, compression="zstd")
            return buf.getvalue()

    def parquet() -> bytes:
        return parquet_bytes(frame)

    out["parquet_s"], payload = _timed(parquet)
    out["artifact_put_s"], _ = _timed(lambda: artifacts.put_bytes(payload))
    out["artifact_mb"] = len(payload) / 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import polars as pl

    from workbench import Workbench
    from workbench.datasets import SqlSource
    from workbench.lineage import ArtifactStore

    pg = start_postgres(settings={"shared_buffers": "256MB"})
    work = Path(tempfile.mkdtemp(prefix="wb-sqlbench-"))
    try:
        t_load, _ = _timed(lambda: pg.psql(TABLE_SQL.format(rows=args.rows), timeout_s=600))
        print(
            f"postgres started in {pg.start_s:.2f} s; {args.rows:,} rows loaded in {t_load:.1f} s"
        )
        os.environ["WB_BENCH_PG_PASSWORD"] = pg.password
        src = SqlSource(pg.uri_without_password, table="sales", password_env="WB_BENCH_PG_PASSWORD")
        sql = 'select * from "sales"'  # what src sends for a full read
        read_s, ingest_s, fetch_s, steps = [], [], [], []
        read_cpu, ingest_cpu = [], []
        # warm up (not timed): the server's cache, and the first ingest's imports (pandera...)
        frame = pl.read_database_uri(sql, pg.uri, engine="connectorx")
        warm = Workbench(work / "warm")
        try:
            warm.datasets.ingest(src, name="sales")
        finally:
            warm.close()
        orders = [
            ("read", "ingest", "fetch"),
            ("ingest", "fetch", "read"),
            ("fetch", "read", "ingest"),
        ]
        load0 = os.getloadavg()[0]
        for i in range(args.rounds):
            bench = Workbench(work / f"home{i}")
            try:
                # the order rotates, so no side always runs first or right after another's work
                for which in orders[i % 3]:
                    if which == "read":
                        t, c, frame = _cpu_timed(
                            lambda: pl.read_database_uri(sql, pg.uri, engine="connectorx"), pg.pid
                        )
                        read_s.append(t)
                        read_cpu.append(c)
                    elif which == "ingest":
                        t, c, dv = _cpu_timed(
                            lambda b=bench: b.datasets.ingest(src, name="sales"), pg.pid
                        )
                        ingest_s.append(t)
                        ingest_cpu.append(c)
                        assert dv.created and dv.n_rows == args.rows, dv
                    else:
                        t, fetched = _timed(lambda: src.fetch({}))
                        fetch_s.append(t)
                        assert fetched.frame.height == args.rows
                steps.append(breakdown(fetched.frame, ArtifactStore(work / f"steps{i}"), src))
            finally:
                bench.close()
            print(
                f"  round {i + 1}: read {read_s[-1]:.3f} s (cpu {read_cpu[-1]:.3f} s), "
                f"ingest {ingest_s[-1]:.3f} s (cpu {ingest_cpu[-1]:.3f} s), fetch {fetch_s[-1]:.3f} s"
            )

        # incremental: 1 % new rows past the recorded watermark
        inc = SqlSource(
            pg.uri_without_password,
            table="sales",
            watermark="id",
            password_env="WB_BENCH_PG_PASSWORD",
        )
        bench = Workbench(work / "incremental")
        try:
            bench.datasets.ingest(inc, name="sales")
            new = max(1, args.rows // 100)
            pg.psql(
                "insert into sales select g, timestamp '2025-01-01' + g * interval '1 second', "
                f"1.0, 'north', 1 from generate_series({args.rows + 1}, {args.rows + new}) g"
            )
            t_inc, dv = _timed(lambda: bench.datasets.ingest(inc, name="sales"))
            assert dv.n_rows == new and dv.version == 2, dv
            t_none, same = _timed(lambda: bench.datasets.ingest(inc, name="sales"))
            assert same.id == dv.id
        finally:
            bench.close()

        med = {
            "read_s": _median(read_s),
            "ingest_s": _median(ingest_s),
            "fetch_s": _median(fetch_s),
            **{k: _median([st[k] for st in steps]) for k in steps[0]},
        }
        med["ratio"] = med["ingest_s"] / med["read_s"]
        # paired within a round: the two ran back to back, under the same load
        med["paired_ratio"] = _median([g / r for g, r in zip(ingest_s, read_s, strict=True)])
        med["paired_extra_s"] = _median([g - r for g, r in zip(ingest_s, read_s, strict=True)])
        med["fetch_paired_ratio"] = _median([f / r for f, r in zip(fetch_s, read_s, strict=True)])
        med["read_cpu_s"] = _median(read_cpu)
        med["ingest_cpu_s"] = _median(ingest_cpu)
        med["cpu_ratio"] = med["ingest_cpu_s"] / med["read_cpu_s"]
        med["cpu_paired_ratio"] = _median(
            [g / r for g, r in zip(ingest_cpu, read_cpu, strict=True)]
        )
        step_keys = ("probe_s", "validate_s", "content_hash_s", "parquet_s", "artifact_put_s")
        med["steps_s"] = sum(med[k] for k in step_keys)
        med["steps_pct_of_read"] = 100 * med["steps_s"] / med["read_s"]
        print(
            f"\n{args.rows:,} rows x {frame.width} columns ({frame.estimated_size('mb'):.0f} MB "
            f"in memory), medians of {args.rounds} rounds:"
        )
        print(f"  polars.read_database_uri alone   {med['read_s']:.3f} s")
        print(
            f"  SqlSource.fetch                  {med['fetch_s']:.3f} s  "
            f"(paired x{med['fetch_paired_ratio']:.3f}: login probe + the same read)"
        )
        print(
            f"  datasets.ingest(SqlSource)       {med['ingest_s']:.3f} s  "
            f"(x{med['ratio']:.2f} of medians; paired x{med['paired_ratio']:.2f}, "
            f"{med['paired_extra_s']:+.3f} s)"
        )
        pairs = sorted(g / r for g, r in zip(ingest_s, read_s, strict=True))
        cpu_pairs = sorted(g / r for g, r in zip(ingest_cpu, read_cpu, strict=True))
        med["paired_ratio_range"] = [pairs[0], pairs[-1]]
        med["cpu_paired_ratio_range"] = [cpu_pairs[0], cpu_pairs[-1]]
        med["read_s_range"] = [min(read_s), max(read_s)]
        med["loadavg_1min"] = [load0, os.getloadavg()[0]]
        print(
            f"  spread: read {min(read_s):.3f}-{max(read_s):.3f} s; per-round ingest/read "
            f"x{pairs[0]:.2f}-{pairs[-1]:.2f} wall, x{cpu_pairs[0]:.2f}-{cpu_pairs[-1]:.2f} CPU; "
            f"1-minute load {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        )
        print(
            f"  CPU (this process + the server)  read {med['read_cpu_s']:.3f} s, ingest "
            f"{med['ingest_cpu_s']:.3f} s (x{med['cpu_ratio']:.2f} of medians; paired "
            f"x{med['cpu_paired_ratio']:.2f})"
        )
        print("  what ingest does besides the read, each step timed alone on the same frame:")
        print(f"    login probe                    {med['probe_s']:.4f} s")
        print(f"    validate (default checks)      {med['validate_s']:.3f} s")
        print(f"    content hash                   {med['content_hash_s']:.3f} s")
        print(
            f"    parquet write (parquet_bytes)  {med['parquet_s']:.3f} s  "
            f"({med['artifact_mb']:.1f} MB)"
        )
        print(f"    artifact put                   {med['artifact_put_s']:.3f} s")
        print(
            f"    sum                            {med['steps_s']:.3f} s  "
            f"({med['steps_pct_of_read']:.1f} % of the read; recording the row not included)"
        )
        print(
            f"  incremental: {max(1, args.rows // 100):,} new rows {t_inc:.3f} s; "
            f"nothing new {t_none:.3f} s"
        )
        for what, key in (("wall", "paired_ratio"), ("CPU", "cpu_paired_ratio")):
            met = med[key] <= 1 + GOAL_EXTRA
            print(
                f"  target: ingest adds <= {100 * GOAL_EXTRA:.0f} % to the read ({what}, paired): "
                f"{'met' if met else 'NOT met'} (x{med[key]:.2f})"
            )
        out = {
            "rows": args.rows,
            "rounds": args.rounds,
            "medians": med,
            "runs": {
                "read_s": read_s,
                "ingest_s": ingest_s,
                "fetch_s": fetch_s,
                "read_cpu_s": read_cpu,
                "ingest_cpu_s": ingest_cpu,
            },
            "incremental_s": t_inc,
            "nothing_new_s": t_none,
            "postgres_start_s": pg.start_s,
            "cpus": os.cpu_count(),
        }
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
