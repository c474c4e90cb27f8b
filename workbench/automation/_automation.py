"""``Automation``: retraining policies, their jobs and approvals, and the scheduler actor, on one set of stages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.governance import Access, requires
from workbench.status import JobStatus

if TYPE_CHECKING:
    from collections.abc import Sequence

    from workbench.automation._policy import GateVerdict, LoopPolicy
    from workbench.datasets import DatasetVersion
    from workbench.stages import Stages

__all__ = ["Automation"]


class Automation:
    """The closed loop, driven from the store: policies become jobs, jobs run step by step.

    :meth:`tick` evaluates every stored policy once in this process; the scheduler actor
    (:meth:`start_scheduler`) does the same every interval and outlives the kernel.

    Examples
    --------
    >>> from workbench.automation import DriftTrigger, LoopPolicy
    >>> bench.automation.add_policy(LoopPolicy("cancer", model="cancer", deployment="cancer",
    ...     train="cancer-train", holdout="cancer-holdout",
    ...     triggers=[DriftTrigger("cancer-drift")]))                          # doctest: +SKIP
    >>> bench.automation.tick()["ran"]                                          # doctest: +SKIP
    """

    def __init__(self, stages: Stages):
        self.stages = stages

    @requires("policy")
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

        check_policy(self.stages, policy)
        self.stages.store.retraining.set_policy(policy.name, policy.to_dict(), enabled=enabled)
        return policy

    def policies(self) -> list[dict[str, Any]]:
        """Stored policies with their state (last check, cron cursor)."""
        return self.stages.store.retraining.list_policies()

    @requires("policy")
    def disable_policy(self, name: str) -> None:
        row = self.stages.store.retraining.get_policy(name)
        self.stages.store.retraining.set_policy(name, row["config"], enabled=False)

    def tick(
        self, *, run: bool = True, now: float | None = None, check: bool = True
    ) -> dict[str, Any]:
        """Evaluate every policy once in this process (what the scheduler does each interval).

        With ``check`` the monitors named by the policies' triggers first test their new
        windows; then new events become jobs and (with ``run``) runnable jobs run, each to
        its end (a canary waits for live requests between its steps).

        Jobs submitted as Ray Jobs (``LoopPolicy.run_as``) are first reconciled with Ray: one that
        Ray reports ended without a decision, or no longer knows, is ended in the store.

        Returns ``{"checked": {monitor: results}, "created": [job ids], "ran": [outcomes],
        "reconciled": [jobs ended from Ray's status], "at"}``.
        """
        from workbench.automation._engine import Engine

        return Engine(self.stages).tick(run=run, now=now, check=check)

    def jobs(self, policy: str | None = None) -> list[dict[str, Any]]:
        """Retrain jobs (all, or one policy's), oldest first."""
        store = self.stages.store
        return store.retraining.list_jobs(policy=policy)

    def steps(self, job_id: int) -> list[dict[str, Any]]:
        """The recorded steps of one job: snapshot, validation, search, evaluation, gate, registration, canary..."""
        return self.stages.store.retraining.list_steps(job_id)

    def logs(self, job_id: int) -> str:
        """The logs of the Ray Job that ran retrain job ``job_id`` (``JobSubmissionClient.get_job_logs``).

        Raises
        ------
        WorkbenchError
            If the job ran inline (no Ray job; its record is :meth:`steps`), or if the cluster's
            job server no longer knows the Ray job (its head restarted).

        Examples
        --------
        >>> print(bench.automation.logs(3)[-500:])                              # doctest: +SKIP
        """
        from workbench.automation._jobs import RayJobs
        from workbench.exceptions import WorkbenchError

        job = self.stages.store.retraining.get_job(int(job_id))
        sid = job.get("ray_job_id")
        if not sid:
            raise WorkbenchError(
                f"retrain job {job_id} did not run as a Ray Job (it ran inline): its record is "
                f"bench.automation.steps({job_id})."
            )
        jobs = RayJobs.of(self.stages)
        if jobs.state(sid).status is None:
            raise WorkbenchError(
                f"Ray's job server at {jobs.url} no longer knows Ray job {sid} of retrain job "
                f"{job_id} (the head restarted?); its steps are in bench.automation.steps({job_id})."
            )
        return jobs.logs(sid)

    def gate(
        self,
        model: str,
        challenger: int | str,
        *,
        against: int | str = "champion",
        holdout: DatasetVersion | str | None = None,
        gate: Any = None,
        sensitive_features: Sequence[str] = (),
    ) -> GateVerdict:
        """Judge registered version ``challenger`` of ``model`` against version ``against`` (a
        number or an alias) on the same ``holdout`` rows with ``gate`` (a
        :class:`Gate`; default ``Gate()``: f1, no margin); returns the
        :class:`GateVerdict`. Nothing is recorded.

        ``holdout`` defaults to the dataset version the challenger was evaluated on when it was
        registered (its recorded evaluation).

        Examples
        --------
        >>> bench.automation.gate("cancer", 3, against="champion").passed   # doctest: +SKIP
        False
        """
        from workbench.automation._policy import Gate
        from workbench.exceptions import ConfigError

        gate = gate if gate is not None else Gate()
        chall = self.stages.registry.get(model, challenger)
        champ = self.stages.registry.get(model, against)
        if holdout is None:
            evaluation = self.stages.registry.evaluation(model, chall.version)
            if not evaluation or evaluation.get("holdout_version_id") is None:
                raise ConfigError(
                    f"{model}@{chall.version} was registered without a holdout evaluation: name "
                    "the holdout to judge both versions on (--holdout NAME[@VERSION])"
                )
            holdout = self.stages.datasets.by_id(evaluation["holdout_version_id"])
        holdout = self.stages.datasets.resolve(holdout)
        sensitive = tuple(sensitive_features)
        preds = [
            self.stages.experiments.predict(
                self.stages.registry.load(model, mv.version), holdout, sensitive_features=sensitive
            )
            for mv in (champ, chall)
        ]
        if gate.needs_predictions:
            return gate.judge(preds[0], preds[1])
        from workbench.evaluation import prediction_metrics

        return gate.judge(prediction_metrics(preds[0]), prediction_metrics(preds[1]))

    def pending(self) -> list[dict[str, Any]]:
        """Jobs waiting for a person: answer each with :meth:`approve` or :meth:`reject`."""
        return self.stages.store.retraining.list_jobs(statuses=(JobStatus.PENDING_APPROVAL,))

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
        return self.stages.store.retraining.get_job(int(job_id))

    @requires("approve", check=lambda self, job_id, **_: self._four_eyes(job_id))
    def approve(self, job_id: int, *, actor: str | None = None, reason: str = "") -> dict[str, Any]:
        """Approve a pending job; the scheduler (or :meth:`tick`) runs it next.

        Under the four-eyes rule (``bench.access.set_four_eyes()``) the person who requested the
        job (who saved its policy) may not approve it.
        """
        from workbench.automation._engine import Engine

        return Engine(self.stages).answer(job_id, approve=True, actor=actor, reason=reason)

    @requires("approve", check=lambda self, job_id, **_: self._four_eyes(job_id))
    def reject(self, job_id: int, *, actor: str | None = None, reason: str = "") -> dict[str, Any]:
        """Reject a pending job; it never runs and does not count against the budget."""
        from workbench.automation._engine import Engine

        return Engine(self.stages).answer(job_id, approve=False, actor=actor, reason=reason)

    def _four_eyes(self, job_id: int) -> None:
        """Under the four-eyes rule, the person who asked for a job (who saved its policy) may
        not answer it."""
        job = self.stages.store.retraining.get_job(int(job_id))
        Access(self.stages.store).require_other_person(
            "approve",
            self.stages.store.access.policy_author(job["policy"]),
            f"retrain job {job_id} (policy {job['policy']!r})",
        )

    @requires("policy")
    def start_scheduler(self, *, interval_s: float = 60.0, namespace: str | None = None) -> Any:
        """Start (or find) the named, detached scheduler actor; it outlives this kernel.

        The actor is pinned (hard node affinity) to the node of the driver that opened the store
        (recorded in the cluster, so a later driver finds the same node and actor).

        Examples
        --------
        >>> wb.automation.start_scheduler(interval_s=30)                         # doctest: +SKIP
        >>> wb.automation.scheduler_status()["actor"]["ticks"]                    # doctest: +SKIP
        """
        # connect before the first `import ray`: Ray reads RAY_AUTH_MODE at import, and connect()
        # sets it for a token-authenticated cluster (imported first, the join failed here with
        # InvalidAuthToken)
        conn = self.stages.connect()
        import ray

        from workbench.automation._scheduler import NAMESPACE, SCHEDULER_NAME, SchedulerActor
        from workbench.serving._recorder import store_node_strategy

        cls = ray.remote(num_cpus=0, max_concurrency=4)(SchedulerActor)
        return cls.options(
            name=SCHEDULER_NAME,
            namespace=namespace or NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            # on the node that holds the store (hard affinity): another node's disk has no
            # lineage.db, or an empty one
            scheduling_strategy=store_node_strategy(self.stages.settings.db_path),
        ).remote(
            str(self.stages.settings.home),
            interval_s,
            address=conn.address,
            serve_port=self.stages.serve_port,
            storage=self.stages.settings.storage,
        )

    def _scheduler_handle(self, namespace: str | None) -> Any:
        self.stages.connect()  # before `import ray`, as in start_scheduler
        import ray

        from workbench.automation._scheduler import NAMESPACE, SCHEDULER_NAME

        try:
            return ray.get_actor(SCHEDULER_NAME, namespace=namespace or NAMESPACE)
        except ValueError:
            return None

    @requires("policy")
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
        jobs = self.stages.store.retraining.count_jobs()
        return {
            "running": live is not None,
            "actor": live,
            "stored": self.stages.store.retraining.get_scheduler_state("scheduler"),
            "jobs": jobs,
        }
