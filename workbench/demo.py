"""The whole loop on real components, on scikit-learn's bundled breast-cancer data.

Run it with ``workbench demo`` (or ``make demo``). Every step goes through the
public API; nothing here is special to the demo except the simulated clients.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from workbench.api import Workbench
from workbench.automation import Budget, DriftTrigger, Gate, LoopPolicy
from workbench.datasets import Checks, format_report, write_breast_cancer_csv
from workbench.exceptions import DatasetValidationError, InvalidRequestError

__all__ = ["run_demo"]

MODEL = "breast-cancer"


def run_demo(
    home: str | None = None,
    *,
    num_samples: int = 4,
    serve_port: int | None = None,
    say: Callable[[str], None] = print,
    seed: int = 0,
) -> dict[str, Any]:
    """Run ingest → tune → register → serve → drift → retrain → canary → promote, and print the lineage chain.

    The retraining is the store-driven engine users are told to run: a
    :class:`~workbench.automation.LoopPolicy` and ``bench.automation.tick()`` (what the
    scheduler actor does every interval), with clients sending requests during the canary.

    Returns a summary with the ids and figures of each step.
    """
    t0 = time.monotonic()
    rng = random.Random(seed)
    bench = Workbench(home, serve_port=serve_port)
    summary: dict[str, Any] = {"home": str(bench.settings.home)}

    def step(n: int, text: str) -> None:
        say(f"\n[{n}/8] {text}  (t={time.monotonic() - t0:.0f}s)")

    try:
        # 1. ingest with validation
        step(1, "ingest breast-cancer CSV with polars, validate, version it")
        csv = write_breast_cancer_csv(bench.settings.home / "data" / "breast_cancer.csv")
        header = csv.read_text().split("\n", 1)[0].split(",")
        schema = {c: ("String" if c == "diagnosis" else "Float64") for c in header}
        checks = Checks(
            schema=schema,
            target="diagnosis",
            min_rows=100,
            max_null_fraction=0.0,
            numeric=header[:-1],
        )
        full = bench.datasets.ingest(csv, name="breast-cancer", target="diagnosis", checks=checks)
        say(
            f"  {full}: {full.n_rows} rows, sha256 {full.content_hash[:12]}…, {len(full.validation)} checks passed"
        )
        try:
            bad = bench.datasets.load(full).head(5).with_columns(diagnosis=None)
            bench.datasets.ingest(bad, name="breast-cancer-bad", target="diagnosis", checks=checks)
        except DatasetValidationError as exc:
            say("  a broken copy (labels removed, 5 rows) was refused, nothing recorded:")
            say(format_report(exc.report, only_failures=True))
        parts = bench.datasets.split(full, {"train": 0.6, "holdout": 0.2, "live": 0.2}, seed=seed)
        train, holdout, live = parts["train"], parts["holdout"], parts["live"]
        say(
            f"  split: {train} ({train.n_rows}), {holdout} ({holdout.n_rows}), {live} ({live.n_rows} rows kept for live traffic)"
        )

        # 2 + 3. preprocessing inside each trial, Tune search over two families
        step(
            2,
            "preprocessing (impute, scale, one-hot) is fitted inside every trial and saved with the model",
        )
        step(3, f"Ray Tune search: 2 model families × {num_samples} samples, 3-fold CV")
        result = bench.experiments.search(
            train, name="breast-cancer", num_samples=num_samples, seed=seed
        )
        n_trials = len(result.trials)
        say(
            f"  experiment #{result.experiment_id}: {n_trials} trials recorded; best {result.best_trial_id} "
            f"{result.best_config['family']} cv f1={result.best_metrics['f1']:.4f}"
        )

        # 4. evaluate on holdout, register v1 as champion
        step(4, "evaluate the best trial on the holdout, register it as version 1 (champion)")
        v1 = bench.register_best(
            result, model=MODEL, train=train, holdout=holdout, alias="champion", seed=seed
        )
        metrics = v1.metrics
        say("  " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()) + f"  → {v1} [champion]")

        # 5. serve behind the traffic-splitting router
        step(5, "deploy on Ray Serve behind the weighted router, JSON over HTTP")
        dep = bench.serving.deploy(MODEL, "champion", name=MODEL)
        say(f"  {dep['url']} answers with {dep['weights']}")
        live_rows = bench.datasets.load(live).to_dicts()
        target = train.target or "diagnosis"
        features = [c for c in live_rows[0] if c != target]

        def send(rows: list[dict[str, Any]]) -> dict[str, Any]:
            """POST each row over HTTP; returns the ground truth by request id, to be sent later."""
            labels = {}
            for row in rows:
                out = bench.serving.predict(MODEL, [{f: row[f] for f in features}])
                labels[out["request_id"]] = row[target]
            return labels

        labels = send(rng.sample(live_rows, 100))
        try:
            bench.serving.predict(MODEL, [{f: live_rows[0][f] for f in features[1:]}])
        except InvalidRequestError as exc:
            say(f"  a request without {features[0]!r} got a 4xx: {exc}")
        bench.serving.flush_logs(MODEL)
        say(
            f"  100 requests answered and logged; {bench.serving.request_stats(MODEL)['n']} rows in request_logs"
        )

        # 6. drift: the case mix shifts to mostly malignant referrals
        step(
            6,
            "a retraining policy watches the deployment; traffic shifts part-way (a referral clinic sends mostly malignant cases)",
        )
        monitor = bench.monitoring.drift_monitor(MODEL, window=100, p_val=0.05)
        # The holdout has 115 rows: one misclassification moves F1 by about 0.01, so the
        # challenger may trail the champion by up to two before the gate refuses it.
        policy = bench.automation.add_policy(
            LoopPolicy(
                MODEL,
                model=MODEL,
                deployment=MODEL,
                train=train.name,
                holdout=holdout.name,
                triggers=[DriftTrigger(monitor.name, windows=1)],
                cooldown_s=3600,
                budget=Budget(max_per_day=3, max_compute_s=900, max_job_s=120),
                gate=Gate("f1", margin=-0.02, guarded=("recall",), tolerance=0.05),
                snapshot="sliding",
                window=400,
                num_samples=2,
                seed=seed,
                canary_steps=(0.1, 0.5, 1.0),
                min_requests=20,
                min_labels=20,
                max_accuracy_drop=0.1,
                canary_wait_for_labels=True,
                canary_poll_s=0.5,
            )
        )
        say(
            f"  policy {policy.name!r}: drift in 1 window of {monitor.name} (alibi-detect, windows of 100) → "
            f"retrain; gate f1 margin {policy.gate.margin:+g}, recall may drop ≤ {policy.gate.tolerance}; "
            f"canary {'/'.join(f'{s:.0%}' for s in policy.canary_steps)}"
        )
        bench.monitoring.record_labels(labels)  # ground truth arrives for the logged requests
        quiet = bench.automation.tick()
        for r in quiet["checked"].get(monitor.name, []):
            say(f"  window {r['id']} (before the shift): {r['verdict']}, no job")
        malignant = [r for r in live_rows if r[target] == "malignant"]
        benign = [r for r in live_rows if r[target] != "malignant"]
        shifted = [
            rng.choice(malignant) if rng.random() < 0.85 else rng.choice(benign) for _ in range(100)
        ]
        labels = send(shifted)
        bench.serving.flush_logs(MODEL)
        bench.monitoring.record_labels(labels)

        # 7. the engine: monitor check → job → pipeline → canary under live traffic → decision
        step(
            7,
            "tick(): the monitor finds the drift, the policy makes one job, the job runs (live clients keep sending)",
        )
        stop = threading.Event()

        def clients() -> None:  # live clients: requests over HTTP, their labels a little later
            crng = random.Random(seed + 1)
            while not stop.is_set():
                late = send(crng.sample(live_rows, 10))
                bench.serving.flush_logs(MODEL)
                bench.monitoring.record_labels(late)

        traffic = threading.Thread(target=clients, name="demo-clients", daemon=True)
        traffic.start()
        try:
            out = bench.automation.tick()
        finally:
            stop.set()
            traffic.join(timeout=60)
        for r in out["checked"].get(monitor.name, []):
            p_min = r.get("p_val_min")
            say(
                f"  window {r['id']}: {r['verdict']}"
                + (f" (min p {p_min:.2g} < {r['threshold']:.2g})" if r["is_drift"] else "")
            )
        outcome = None
        if not out["created"]:
            say("  no drift detected in the shifted window; nothing to retrain")
        else:
            job = bench.automation.job(out["created"][0])
            say(f"  → retrain job #{job['id']}: {job['detail']['trigger']}")
            for s in bench.automation.steps(job["id"]):
                say(f"    {s['step']:<12} {s['status']:<11} {s['detail'].get('summary', '')}")
            gate = job["detail"].get("gate", {})
            outcome = {
                "job_id": job["id"],
                "status": job["status"],
                "gate": gate,
                "canary": job["detail"].get("canary", []),
                "compute_s": job["compute_s"],
            }
            say(
                f"  job #{job['id']}: {job['status']} in {job['compute_s'] or 0:.1f}s"
                + (
                    f" (gate f1 challenger {gate['challenger']:.4f} vs champion {gate['champion']:.4f})"
                    if gate
                    else ""
                )
            )
        summary["outcome"] = outcome

        # 8. lineage
        step(8, "lineage of the current champion")
        champion = bench.registry.get(MODEL, "champion")
        say(bench.lineage_text(MODEL, champion.version))
        summary.update(
            experiment_id=result.experiment_id,
            trials=n_trials,
            champion=champion.version,
            elapsed_s=time.monotonic() - t0,
            status=bench.status(),
        )
        say(f"\nstore: {bench.settings.db_path}\nartifacts: {bench.settings.artifacts_dir}")
        say(f"demo finished in {summary['elapsed_s']:.0f}s")
        return summary
    finally:
        bench.close()
