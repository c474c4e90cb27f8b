"""Per-request logging on the serving path, as p50/p99: what logging adds to a request, and what
writing the logs costs off the path.

1. In the replica (no HTTP, no Ray): the real ``Router._predict`` on a Starlette request, with
   request logging and with ``Router._log`` switched off, interleaved one call of each per round,
   CPU time of the thread (``time.thread_time``: other processes' load does not count). The
   per-request logging cost is the paired difference (with − without) in each round; reported as
   p50/p99, for the real model and for a model answering a constant (which leaves only the
   machinery). This reuses ``in_replica_profile`` of ``bench/serving_overhead.py``.
2. Off the path: what the recorder does with the buffered rows,
   ``store.deployments.record_requests`` in batches of ``--batch`` rows to SQLite (WAL, one
   transaction per batch), per row, p50/p99 over batches.

Usage::

    .venv/bin/python bench/request_logging_overhead.py [--n 1000] [--batches 60] [--batch 100]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _serving_bench() -> Any:
    spec = importlib.util.spec_from_file_location("serving_overhead", HERE / "serving_overhead.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["serving_overhead"] = module
    spec.loader.exec_module(module)
    return module


def write_cost(
    store: Any, mv_id: int, record: dict[str, float], batches: int, size: int
) -> dict[str, Any]:
    """µs per row of ``store.deployments.record_requests`` (what the recorder actor runs), p50/p99 over batches."""
    from workbench.lineage import utcnow

    store.deployments.add("bench", model="bench", route_prefix="/bench", status="RUNNING")
    per_row = []
    for _ in range(batches):
        rows = [
            {
                "deployment": "bench",
                "request_id": uuid.uuid4().hex,
                "model_version_id": mv_id,
                "features": [record],
                "prediction": ["benign"],
                "status_code": 200,
                "latency_ms": 5.0,
                "at": utcnow(),
            }
            for _ in range(size)
        ]
        t = time.perf_counter()
        store.deployments.record_requests(rows)
        per_row.append((time.perf_counter() - t) / size * 1e6)
    per_row.sort()
    return {
        "batch": size,
        "batches": batches,
        "p50_us_per_row": round(statistics.median(per_row), 1),
        "p99_us_per_row": round(
            per_row[min(len(per_row) - 1, round(0.99 * (len(per_row) - 1)))], 1
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="rounds of the in-replica profile")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store

    sb = _serving_bench()
    root = Path(tempfile.mkdtemp(prefix="wb-logging-bench-"))
    settings = Settings.from_env(root / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    shas, record, mv_id = sb.register_versions(store, artifacts)
    load = os.getloadavg()[0]
    profile = sb.in_replica_profile(artifacts, str(settings.db_path), shas, record, args.n)
    writes = write_cost(store, mv_id, record, args.batches, args.batch)
    store.close()
    out = {"load_at_start": round(load, 2), "in_replica": profile, "store_writes": writes}
    print(json.dumps(out, indent=2))
    print(
        "\n| model | request p50 / p99 (µs CPU) | without logging p50 / p99 | logging, paired p50 / p99 |"
    )
    print("|---|---|---|---|")
    for key, label in (("real_model", "the real model"), ("constant_model", "a constant")):
        r = profile[key]
        print(
            f"| {label} | {r['median_us']['router']:,.1f} / {r['p99_us']['router']:,.1f} | "
            f"{r['median_us']['nolog']:,.1f} / {r['p99_us']['nolog']:,.1f} | "
            f"{r['logging_paired_p50_us']:,.1f} / {r['logging_paired_p99_us']:,.1f} |"
        )
    print(
        f"\nstore writes off the path: {writes['p50_us_per_row']} / {writes['p99_us_per_row']} µs per row "
        f"(p50 / p99 over {writes['batches']} batches of {writes['batch']})"
    )
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
