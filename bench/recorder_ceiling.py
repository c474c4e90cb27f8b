"""The request-log recorder's ceiling: rows/s it writes with 1, 4 and 8 routers flooding it.

Every Serve router replica ships its request-log rows to one Recorder actor (pinned to the store's
node), in batches of up to ``FLUSH_ROWS`` every ``FLUSH_INTERVAL_S``; the actor writes each batch
in one SQLite transaction. Here N sender actors stand in for N router replicas: each sends batches
shaped like the router's (30 features, one prediction) as fast as the recorder takes them, with at
most ``--inflight`` unanswered batches each (what a router does when the recorder is slower than
its flush loop). Reported per N: rows/s written, batch round trip p50/p99, and the backlog a router
would build at a given request rate. A router drops rows only when more than ``LOG_BUFFER_ROWS``
accumulate between two flushes; past the ceiling the rows wait in the recorder's queue instead.

    .venv/bin/python bench/recorder_ceiling.py [--seconds 10] [--senders 1 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="flood time per run")
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument(
        "--batch", type=int, default=None, help="rows per batch (router's FLUSH_ROWS)"
    )
    parser.add_argument("--inflight", type=int, default=4, help="unanswered batches per sender")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    import ray

    from workbench.lineage import Store
    from workbench.serving._recorder import get_or_create_recorder
    from workbench.serving._router import FLUSH_INTERVAL_S, FLUSH_ROWS, LOG_BUFFER_ROWS

    batch_rows = args.batch or FLUSH_ROWS
    home = tempfile.mkdtemp(prefix="wb-recorder-")
    db_path = os.path.join(home, "lineage.db")
    store = Store(db_path)
    store.models.ensure("m", task="classification")
    store.deployments.add("d", model="m", route_prefix="/d", status="running")

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    recorder = get_or_create_recorder(db_path, detached=False)

    @ray.remote(num_cpus=0)
    class Sender:
        """One router's shipping loop, flat out: batches of ``batch_rows`` rows, ``inflight`` in flight."""

        def flood(self, recorder, seconds: float, batch_rows: int, inflight: int) -> dict:
            features = [{f"f{i}": 1.0 + i for i in range(30)}]
            pending, rtts, sent = {}, [], 0
            end = time.monotonic() + seconds
            while time.monotonic() < end or pending:
                while time.monotonic() < end and len(pending) < inflight:
                    rows = [
                        {
                            "request_id": uuid.uuid4().hex,
                            "deployment": "d",
                            "model_version_id": None,
                            "features": features,
                            "prediction": ["benign"],
                            "latency_ms": 3.2,
                            "status_code": 200,
                            "error": None,
                        }
                        for _ in range(batch_rows)
                    ]
                    pending[recorder.write.remote(rows)] = time.monotonic()
                    sent += batch_rows
                done, _ = ray.wait(list(pending), num_returns=1, timeout=5)
                for ref in done:
                    ray.get(ref)
                    rtts.append(time.monotonic() - pending.pop(ref))
            return {"rows": sent, "rtts": rtts}

    results = []
    for n in args.senders:
        senders = [Sender.remote() for _ in range(n)]
        ray.get([s.__ray_ready__.remote() for s in senders])
        before = ray.get(recorder.stats.remote())["rows"]
        t0 = time.monotonic()
        outs = ray.get(
            [s.flood.remote(recorder, args.seconds, batch_rows, args.inflight) for s in senders]
        )
        wall = time.monotonic() - t0
        written = ray.get(recorder.stats.remote())["rows"] - before
        rtts = sorted(r for o in outs for r in o["rtts"])
        rate = written / wall
        row = {
            "senders": n,
            "rows_written": written,
            "seconds": round(wall, 2),
            "rows_per_s": round(rate),
            "batch_rtt_p50_ms": round(1000 * statistics.median(rtts), 1),
            "batch_rtt_p99_ms": round(1000 * rtts[int(0.99 * (len(rtts) - 1))], 1),
        }
        results.append(row)
        print(
            f"{n} sender(s): {written:>7} rows in {wall:5.1f} s = {rate:8.0f} rows/s; "
            f"batch of {batch_rows} round trip p50 {row['batch_rtt_p50_ms']} ms, p99 {row['batch_rtt_p99_ms']} ms"
        )
        for s in senders:
            ray.kill(s)
    rows_in_db = store.deployments.get_request_stats("d")["n"]
    ceiling = max(r["rows_per_s"] for r in results)
    print(
        f"\nceiling ~{ceiling} rows/s (one request = one row). A router buffers up to {LOG_BUFFER_ROWS} rows "
        f"and flushes every {FLUSH_INTERVAL_S} s or {FLUSH_ROWS} rows, so it drops rows only past "
        f"{int(LOG_BUFFER_ROWS / FLUSH_INTERVAL_S)} requests/s of its own; past ~{ceiling} requests/s over all "
        "routers the rows queue in the recorder (memory grows, logs arrive late) instead."
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {"batch_rows": batch_rows, "runs": results, "rows_in_db": rows_in_db}, f, indent=2
            )
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
