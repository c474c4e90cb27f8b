"""The closed loop, each step a lineage record."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workbench.evaluation import compare

if TYPE_CHECKING:
    from workbench.api import Workbench
    from workbench.datasets import DatasetVersion
    from workbench.monitoring import DriftMonitor

__all__ = ["Automation", "RetrainPolicy"]

ACTOR = "automation"


@dataclass
class RetrainPolicy:
    """How a drift event turns into a new champion.

    Parameters
    ----------
    metric, tolerance
        The challenger must score at least the champion's ``metric`` minus
        ``tolerance`` on the same holdout to be deployed at all.
    num_samples
        Trials per model family in the retraining search.
    canary_steps
        Traffic shares for the challenger, ending at 1.0.
    max_error_rate, min_requests
        Canary analysis: roll back when the challenger's server-error rate
        exceeds ``max_error_rate``; wait for ``min_requests`` per step.
    cooldown_s
        No second retraining starts within this many seconds of the last one.
    """

    metric: str = "f1"
    tolerance: float = 0.01
    num_samples: int = 2
    canary_steps: tuple[float, ...] = (0.1, 0.5, 1.0)
    max_error_rate: float = 0.02
    min_requests: int = 30
    cooldown_s: float = 0.0
    max_canary_rounds: int = 50


class Automation:
    """Runs the retraining loop for one deployment.

    ``traffic`` in :meth:`run_once` stands for the clients: it is called while
    a canary step waits for requests (in production, real clients send them
    and ``traffic`` can simply sleep).

    Examples
    --------
    >>> outcome = wb.automation.run_once(deployment="cancer", model="cancer",   # doctest: +SKIP
    ...     monitor=mon, train=train, holdout=holdout)
    """

    def __init__(self, bench: Workbench):
        self.bench = bench
        self._last_run: float | None = None

    def run_once(
        self,
        *,
        deployment: str,
        model: str,
        monitor: DriftMonitor,
        train: DatasetVersion,
        holdout: DatasetVersion,
        policy: RetrainPolicy | None = None,
        traffic: Callable[[], None] | None = None,
    ) -> dict[str, Any] | None:
        """Check the monitor; on drift, schedule and run one retraining. Returns the job's outcome or None."""
        policy = policy or RetrainPolicy()
        drifts = [r for r in monitor.check() if r["is_drift"]]
        if not drifts:
            return None
        if self._last_run is not None and time.monotonic() - self._last_run < policy.cooldown_s:
            return {"status": "COOLDOWN", "drift_result_id": drifts[0]["id"]}
        self._last_run = time.monotonic()
        job_id = self.bench.store.create_retrain_job(
            drift_result_id=drifts[0]["id"], detail={"policy": asdict(policy)}
        )
        try:
            return self._retrain(
                job_id, deployment, model, monitor, train, holdout, policy, traffic
            )
        except Exception as exc:
            self.bench.store.update_retrain_job(
                job_id, status="FAILED", detail={"error": repr(exc)}
            )
            raise

    def _retrain(
        self,
        job_id: int,
        deployment: str,
        model: str,
        monitor: DriftMonitor,
        train: DatasetVersion,
        holdout: DatasetVersion,
        policy: RetrainPolicy,
        traffic: Callable[[], None] | None,
    ) -> dict[str, Any]:
        import polars as pl

        bench, store = self.bench, self.bench.store
        store.update_retrain_job(job_id, status="RUNNING")

        # 1. recent labelled requests join the training data as a new dataset version
        labelled = store.labeled_requests(deployment)
        rows = []
        for r in labelled:
            records = r["features"] if isinstance(r["features"], list) else [r["features"]]
            labels = r["label"] if isinstance(r["label"], list) else [r["label"]]
            rows += [{**rec, train.target: lab} for rec, lab in zip(records, labels, strict=False)]
        base = bench.datasets.load(train)
        recent = (
            pl.DataFrame(rows, schema=base.schema, orient="row").unique(maintain_order=True)
            if rows
            else base.clear()
        )
        new_train = bench.datasets.extend(train, recent)
        store.update_retrain_job(job_id, new_dataset_version_id=new_train.id)

        # 2. search again on it
        result = bench.experiments.search(
            new_train,
            name=f"retrain-{job_id}",
            num_samples=policy.num_samples,
            metric=policy.metric,
            progress=None,
        )
        store.update_retrain_job(job_id, experiment_id=result.experiment_id)

        # 3. challenger versus champion on the same holdout
        champion = bench.registry.get(model, "champion")
        challenger = bench.register_best(
            result, model=model, train=new_train, holdout=holdout, actor=ACTOR
        )
        champ_metrics = bench.experiments.evaluate(
            bench.registry.load(model, champion.version), holdout
        )
        verdict = compare(
            champ_metrics, challenger.metrics, metric=policy.metric, tolerance=policy.tolerance
        )
        detail: dict[str, Any] = {
            "new_rows": recent.height,
            "comparison": verdict.as_dict(),
            "champion_version": champion.version,
            "challenger_version": challenger.version,
        }
        store.update_retrain_job(job_id, challenger_version_id=challenger.id, detail=detail)
        if not verdict.challenger_wins:
            store.update_retrain_job(job_id, status="REJECTED", decision="rejected", detail=detail)
            return {"job_id": job_id, "status": "REJECTED", **detail}

        # 4. canary, analysed at each step; roll back on failure
        from workbench.serving import CanaryRollout

        rollout = CanaryRollout(
            bench.serving,
            deployment,
            champion=champion.version,
            challenger=challenger.version,
            steps=policy.canary_steps,
            max_error_rate=policy.max_error_rate,
            min_requests=policy.min_requests,
            actor=ACTOR,
        )
        rollout.start()
        steps: list[dict[str, Any]] = []
        outcome = "waiting"
        for _ in range(policy.max_canary_rounds):
            if traffic is not None:
                traffic()
            bench.serving.flush_logs(deployment)
            weights = dict(rollout.schedule[rollout.step])
            outcome = rollout.advance()
            if outcome != "waiting":
                steps.append(
                    {
                        "outcome": outcome,
                        "weights": weights,
                        "analysis": rollout.log[-1]["analysis"],
                    }
                )
            if outcome in ("completed", "rolled_back"):
                break
        detail["canary"] = steps
        if outcome == "completed":
            bench.registry.set_alias(
                model,
                "champion",
                challenger.version,
                actor=ACTOR,
                reason=f"retrain job {job_id}: canary passed, {verdict.metric} {verdict.challenger:.4f} vs {verdict.champion:.4f}",
            )
            bench.monitoring.drift_monitor(
                deployment,
                reference=new_train,
                name=monitor.name,
                window=monitor.window,
                p_val=monitor.config["p_val"],
                backend=monitor.config["backend"],
            )
            store.update_retrain_job(job_id, status="PROMOTED", decision="promoted", detail=detail)
            return {"job_id": job_id, "status": "PROMOTED", **detail}
        if outcome != "rolled_back":
            bench.serving.rollback(
                deployment,
                to_version=champion.version,
                actor=ACTOR,
                reason=f"retrain job {job_id}: canary did not finish in {policy.max_canary_rounds} rounds",
            )
        store.update_retrain_job(
            job_id, status="ROLLED_BACK", decision="rolled_back", detail=detail
        )
        return {"job_id": job_id, "status": "ROLLED_BACK", **detail}
