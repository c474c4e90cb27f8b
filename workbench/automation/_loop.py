"""The closed loop, each step a lineage record."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from workbench.evaluation import compare

if TYPE_CHECKING:
    from workbench.api import Workbench
    from workbench.automation._policy import LoopPolicy
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

    # ------------------------------------------------ policies, jobs, approval, scheduler
    def add_policy(self, policy: LoopPolicy, *, enabled: bool = True) -> LoopPolicy:
        """Store a retraining policy (replacing one of the same name); the scheduler reads it on its next tick.

        Examples
        --------
        >>> from workbench.automation import LoopPolicy, DriftTrigger, Budget, Gate
        >>> wb.automation.add_policy(LoopPolicy("bc", model="bc", deployment="bc", train="bc-train",
        ...     holdout="bc-holdout", triggers=[DriftTrigger("bc", windows=2)], cooldown_s=3600,
        ...     budget=Budget(max_per_day=3), gate=Gate("f1", margin=0.005, guarded=("recall",)),
        ...     approval=True))                                                  # doctest: +SKIP
        """
        from workbench.automation._engine import check_policy

        check_policy(self.bench, policy)
        self.bench.store.retraining.set_policy(policy.name, policy.to_dict(), enabled=enabled)
        return policy

    def policies(self) -> list[dict[str, Any]]:
        """Stored policies with their state (last check, cron cursor)."""
        return self.bench.store.retraining.list_policies()

    def disable_policy(self, name: str) -> None:
        row = self.bench.store.retraining.get_policy(name)
        self.bench.store.retraining.set_policy(name, row["config"], enabled=False)

    def tick(
        self, *, run: bool = True, now: float | None = None, check: bool = True
    ) -> dict[str, Any]:
        """Evaluate every policy once in this process (what the scheduler does each interval).

        With ``check`` the monitors named by the policies' triggers first test their new
        windows; then new events become jobs and (with ``run``) runnable jobs run, each to
        its end (a canary waits for live requests between its steps).

        Returns ``{"checked": {monitor: results}, "created": [job ids], "ran": [outcomes], "at"}``.
        """
        from workbench.automation._engine import Engine

        return Engine(self.bench).tick(run=run, now=now, check=check)

    def jobs(self, policy: str | None = None) -> list[dict[str, Any]]:
        """Retrain jobs (all, or one policy's), oldest first."""
        store = self.bench.store
        return store.retraining.list_jobs(policy=policy)

    def steps(self, job_id: int) -> list[dict[str, Any]]:
        """The recorded steps of one job: snapshot, validation, search, evaluation, gate, registration, canary..."""
        return self.bench.store.retraining.list_steps(job_id)

    def pending(self) -> list[dict[str, Any]]:
        """Jobs waiting for a person: answer each with :meth:`approve` or :meth:`reject`."""
        return self.bench.store.retraining.list_jobs(statuses=("PENDING_APPROVAL",))

    def job(self, job_id: int) -> dict[str, Any]:
        """One retrain job: ``status``, ``decision``, ``policy``, ``drift_result_id``,
        ``challenger_version_id``, ``detail``, ``started_at``/``ended_at``...

        Raises
        ------
        NotFoundError
            If there is no such job.

        Examples
        --------
        >>> bench.automation.job(1)["status"]          # doctest: +SKIP
        'PROMOTED'
        """
        return self.bench.store.retraining.get_job(int(job_id))

    def approve(self, job_id: int, *, actor: str | None = None, reason: str = "") -> dict[str, Any]:
        """Approve a pending job; the scheduler (or :meth:`tick`) runs it next."""
        from workbench.automation._engine import Engine

        return Engine(self.bench).answer(job_id, approve=True, actor=actor, reason=reason)

    def reject(self, job_id: int, *, actor: str | None = None, reason: str = "") -> dict[str, Any]:
        """Reject a pending job; it never runs and does not count against the budget."""
        from workbench.automation._engine import Engine

        return Engine(self.bench).answer(job_id, approve=False, actor=actor, reason=reason)

    def start_scheduler(self, *, interval_s: float = 60.0, namespace: str | None = None) -> Any:
        """Start (or find) the named, detached scheduler actor; it outlives this kernel.

        Examples
        --------
        >>> wb.automation.start_scheduler(interval_s=30)                         # doctest: +SKIP
        >>> wb.automation.scheduler_status()["actor"]["ticks"]                    # doctest: +SKIP
        """
        import ray

        from workbench.automation._scheduler import NAMESPACE, SCHEDULER_NAME, SchedulerActor

        self.bench.connect()
        cls = ray.remote(num_cpus=0, max_concurrency=4)(SchedulerActor)
        return cls.options(
            name=SCHEDULER_NAME,
            namespace=namespace or NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
        ).remote(str(self.bench.settings.home), interval_s, type(self.bench))

    def _scheduler_handle(self, namespace: str | None) -> Any:
        import ray

        from workbench.automation._scheduler import NAMESPACE, SCHEDULER_NAME

        self.bench.connect()
        try:
            return ray.get_actor(SCHEDULER_NAME, namespace=namespace or NAMESPACE)
        except ValueError:
            return None

    def stop_scheduler(self, *, namespace: str | None = None) -> bool:
        """Stop the scheduler after its current tick and remove the actor; False if none ran."""
        import ray

        handle = self._scheduler_handle(namespace)
        if handle is None:
            return False
        try:
            ray.get(handle.stop.remote(), timeout=120)
        finally:
            ray.kill(handle)
        return True

    def scheduler_status(self, *, namespace: str | None = None) -> dict[str, Any]:
        """The scheduler's state from the store (survives the actor) and, when it runs, from the actor."""
        import ray

        handle = self._scheduler_handle(namespace)
        live = ray.get(handle.status.remote(), timeout=30) if handle is not None else None
        jobs = self.bench.store.retraining.count_jobs()
        return {
            "running": live is not None,
            "actor": live,
            "stored": self.bench.store.retraining.get_scheduler_state("scheduler"),
            "jobs": jobs,
        }

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
        job_id = self.bench.store.retraining.add_job(
            drift_result_id=drifts[0]["id"], detail={"policy": asdict(policy)}
        )
        try:
            return self._retrain(
                job_id, deployment, model, monitor, train, holdout, policy, traffic
            )
        except Exception as exc:
            self.bench.store.retraining.set_job(
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
        store.retraining.set_job(job_id, status="RUNNING")

        # 1. recent labelled requests join the training data as a new dataset version
        labelled = store.monitors.list_labeled_requests(deployment)
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
        store.retraining.set_job(job_id, new_dataset_version_id=new_train.id)

        # 2. search again on it
        result = bench.experiments.search(
            new_train,
            name=f"retrain-{job_id}",
            num_samples=policy.num_samples,
            metric=policy.metric,
            progress=None,
        )
        store.retraining.set_job(job_id, experiment_id=result.experiment_id)

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
        store.retraining.set_job(job_id, challenger_version_id=challenger.id, detail=detail)
        if not verdict.challenger_wins:
            store.retraining.set_job(job_id, status="REJECTED", decision="rejected", detail=detail)
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
            # the reference moves to the new version's training data; the monitor keeps its
            # detector kind, backend, correction, features and alert settings
            bench.monitoring.refit(monitor.name, reference=new_train)
            store.retraining.set_job(job_id, status="PROMOTED", decision="promoted", detail=detail)
            return {"job_id": job_id, "status": "PROMOTED", **detail}
        if outcome != "rolled_back":
            bench.serving.rollback(
                deployment,
                to_version=champion.version,
                actor=ACTOR,
                reason=f"retrain job {job_id}: canary did not finish in {policy.max_canary_rounds} rounds",
            )
        store.retraining.set_job(
            job_id, status="ROLLED_BACK", decision="rolled_back", detail=detail
        )
        return {"job_id": job_id, "status": "ROLLED_BACK", **detail}
