"""The closed loop end to end on a stream with a drift injected at a known window.

A champion trained on a synthetic classification set (scikit-learn's
``make_classification``: 6,000 rows, 10 features; the live pool is large
enough that windows are drawn without replacement) serves a stream of
request windows through the real router. From window ``--drift-at`` on, a
"sensor recalibration" adds ``--shift`` standard deviations to features
``x0``–``x2`` (a covariate shift that hurts the champion). After each window the labels arrive
(``record_labels``) and ``Automation.run_once`` checks the drift monitor; on
drift it retrains on the training data plus the labelled recent requests,
compares challenger and champion on fresh holdout rows under the current
regime (rows never sent), runs a canary and promotes or rolls back.

Reports: detection delay (windows), false retrains before the drift (must be
0), wall time from the first drifted window to a promoted model, and the
served accuracy before the drift, during it (until a promotion) and after.
Writes JSON to ``--out``. Takes a few minutes on 2 cores::

    .venv/bin/python bench/closed_loop_stream.py --out /tmp/stream.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL = "stream"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--drift-at", type=int, default=5)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--shift", type=float, default=1.0)
    parser.add_argument("--p-val", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import polars as pl

    from workbench import Workbench
    from workbench.automation import RetrainPolicy

    rng = random.Random(args.seed)
    home = Path(tempfile.mkdtemp(prefix="wb-stream-"))
    bench = Workbench(home)
    try:
        import numpy as np
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=6000, n_features=10, n_informative=6, random_state=args.seed
        )
        frame = pl.DataFrame({f"x{i}": X[:, i] for i in range(X.shape[1])}).with_columns(
            label=pl.Series(np.where(y == 1, "pos", "neg"))
        )
        full = bench.datasets.ingest(frame, name="synthetic", target="label")
        parts = bench.datasets.split(
            full, {"train": 0.3, "holdout": 0.1, "live": 0.6}, seed=args.seed
        )
        train, holdout, live = parts["train"], parts["holdout"], parts["live"]
        result = bench.experiments.search(train, name="stream", num_samples=2, progress=None)
        bench.register_best(result, model=MODEL, train=train, holdout=holdout, alias="champion")
        bench.serving.deploy(MODEL, "champion", name=MODEL)
        monitor = bench.monitoring.drift_monitor(
            MODEL, reference=train, window=args.window, p_val=args.p_val
        )

        target = "label"
        live_rows = bench.datasets.load(live).to_dicts()
        rng.shuffle(live_rows)
        holdout_rows = bench.datasets.load(holdout).to_dicts()
        features = [c for c in live_rows[0] if c != target]
        shifted_cols = ["x0", "x1", "x2"]
        sd = {c: float(np.std(X[:, int(c[1:])])) for c in shifted_cols}
        pool = itertools.cycle(live_rows)  # 3,600 rows: reused only after 18 windows

        def regime(row: dict[str, Any], drifted: bool) -> dict[str, Any]:
            if not drifted:
                return dict(row)
            return {k: (v + args.shift * sd[k] if k in shifted_cols else v) for k, v in row.items()}

        def send(rows: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
            correct, labels = 0, {}
            for row in rows:
                out = bench.serving.predict(MODEL, [{f: row[f] for f in features}])
                labels[out["request_id"]] = row[target]
                correct += out["predictions"][0] == row[target]
            return correct, labels

        policy = RetrainPolicy(metric="f1", tolerance=0.0, num_samples=2)
        log: list[dict[str, Any]] = []
        drift_started: float | None = None
        promoted_after_s: float | None = None
        for w in range(args.windows):
            drifted = w >= args.drift_at
            if drifted and drift_started is None:
                drift_started = time.monotonic()
            rows = [regime(next(pool), drifted) for _ in range(args.window)]
            correct, labels = send(rows)
            bench.serving.flush_logs(MODEL)
            bench.monitoring.record_labels(labels)
            # fresh holdout: rows never sent, under the regime now in force
            fresh = pl.DataFrame([regime(r, drifted) for r in holdout_rows])
            fresh_dv = bench.datasets.ingest(fresh, name="fresh-holdout", target=target)
            champion = bench.registry.get(MODEL, "champion").version

            def clients(drifted: bool = drifted) -> None:
                c, lab = send([regime(next(pool), drifted) for _ in range(40)])
                bench.serving.flush_logs(MODEL)  # labels attach to logged requests only
                bench.monitoring.record_labels(lab)

            outcome = bench.automation.run_once(
                deployment=MODEL,
                model=MODEL,
                monitor=monitor,
                train=train,
                holdout=fresh_dv,
                policy=policy,
                traffic=clients,
            )
            status = None if outcome is None else outcome.get("status")
            if status == "PROMOTED" and promoted_after_s is None and drift_started is not None:
                promoted_after_s = time.monotonic() - drift_started
            entry = {
                "window": w,
                "drifted": drifted,
                "served_accuracy": correct / len(rows),
                "champion": champion,
                "retrain": status,
            }
            if outcome is not None and "comparison" in outcome:
                cmp_ = outcome["comparison"]
                entry["comparison"] = {k: cmp_[k] for k in ("metric", "champion", "challenger")}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    finally:
        bench.close()

    retrains = [e for e in log if e["retrain"] not in (None, "COOLDOWN")]
    first_detect = next((e["window"] for e in retrains if e["drifted"]), None)
    promoted_at = next((e["window"] for e in log if e["retrain"] == "PROMOTED"), None)

    def acc(entries: list[dict[str, Any]]) -> float | None:
        return round(statistics.mean(e["served_accuracy"] for e in entries), 4) if entries else None

    during_end = promoted_at if promoted_at is not None else args.windows
    summary = {
        "windows": args.windows,
        "window_size": args.window,
        "drift_at": args.drift_at,
        "shift": f"{shifted_cols} + {args.shift} sd",
        "p_val": args.p_val,
        "false_retrains_before_drift": sum(not e["drifted"] for e in retrains),
        "detection_delay_windows": None if first_detect is None else first_detect - args.drift_at,
        "promoted_in_window": promoted_at,
        "drift_to_promoted_s": None if promoted_after_s is None else round(promoted_after_s, 1),
        "accuracy_before": acc([e for e in log if not e["drifted"]]),
        "accuracy_during": acc([e for e in log if e["drifted"] and e["window"] <= during_end]),
        "accuracy_after": acc(
            [e for e in log if promoted_at is not None and e["window"] > promoted_at]
        ),
        "retrains": [{k: e.get(k) for k in ("window", "retrain", "comparison")} for e in retrains],
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "log": log}, indent=2))


if __name__ == "__main__":
    main()
