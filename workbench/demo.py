"""The whole loop on real components, on scikit-learn's bundled breast-cancer data.

Run it with ``workbench demo`` (or ``make demo``). Every step goes through the
public API; nothing here is special to the demo except the simulated clients.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from workbench.api import Workbench
from workbench.automation import RetrainPolicy
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
        labels: dict[str, Any] = {}

        def send(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                out = bench.serving.predict(MODEL, [{f: row[f] for f in features}])
                labels[out["request_id"]] = row[target]

        send(rng.sample(live_rows, 100))
        try:
            bench.serving.predict(MODEL, [{f: live_rows[0][f] for f in features[1:]}])
        except InvalidRequestError as exc:
            say(f"  a request without {features[0]!r} got a 4xx: {exc}")
        bench.serving.flush_logs(MODEL)
        say(
            f"  100 requests answered and logged; {bench.store.request_stats(MODEL)['n']} rows in request_logs"
        )

        # 6. drift: the case mix shifts to mostly malignant referrals
        step(
            6,
            "traffic shifts part-way (a referral clinic sends mostly malignant cases); alibi-detect watches windows",
        )
        monitor = bench.monitoring.drift_monitor(MODEL, reference=train, window=100, p_val=0.05)
        first = monitor.check()
        say(
            f"  window 1 (before the shift): drift={first[0]['is_drift']} min p={first[0]['p_val_min']:.3g} "
            f"(threshold {first[0]['threshold']:.3g})"
            if first
            else "  no full window yet"
        )
        malignant = [r for r in live_rows if r[target] == "malignant"]
        benign = [r for r in live_rows if r[target] != "malignant"]
        shifted = [
            rng.choice(malignant) if rng.random() < 0.85 else rng.choice(benign) for _ in range(100)
        ]
        send(shifted)
        bench.serving.flush_logs(MODEL)
        bench.monitoring.record_labels(labels)  # ground truth arrives for the logged requests

        # 7. retrain on drift, validate, canary, promote or roll back
        step(
            7,
            "drift schedules a retraining: new data version → search → holdout comparison → canary → decision",
        )

        def clients() -> None:
            send(rng.sample(live_rows, 40))

        # The holdout has 115 rows: one misclassification moves F1 by about 0.01, so the challenger
        # may trail the champion by up to two before it is rejected.
        policy = RetrainPolicy(
            metric="f1", tolerance=0.02, num_samples=2, canary_steps=(0.1, 0.5, 1.0)
        )
        outcome = bench.automation.run_once(
            deployment=MODEL,
            model=MODEL,
            monitor=monitor,
            train=train,
            holdout=holdout,
            policy=policy,
            traffic=clients,
        )
        if outcome is None:
            say("  no drift detected in the shifted window; nothing to retrain")
        else:
            cmp_ = outcome["comparison"]
            say(
                f"  drift detected → retrain job #{outcome['job_id']}: {outcome['new_rows']} new labelled rows, "
                f"challenger v{outcome['challenger_version']} {cmp_['metric']}={cmp_['challenger']:.4f} vs champion "
                f"{cmp_['champion']:.4f} → {outcome['status']}"
            )
            for s in outcome.get("canary", []):
                say(f"    canary {s['outcome']}: weights {s['weights']}")
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
