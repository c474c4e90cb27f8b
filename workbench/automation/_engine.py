"""The closed loop driven from the store: evaluate policies into jobs (one per event), run jobs step by step.

Every decision reads and writes the lineage store, never process memory, so
the same code run by a notebook, a script or the scheduler actor (restarted
any number of times) creates one job per triggering event and runs each job
at most once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workbench.automation._policy import (
    CronSchedule,
    DriftTrigger,
    LoopPolicy,
    PerformanceTrigger,
    ScheduleTrigger,
    admission,
    change_point,
    compute_used,
    drift_trigger_ids,
    holdout_rows,
    labels_to_show,
    performance_dropped,
    search_budget,
    snapshot_rows,
    triage_verdict,
    warm_start_space,
    wilson_interval,
)
from workbench.exceptions import ConfigError, DatasetValidationError, WorkbenchError
from workbench.status import JobStatus

if TYPE_CHECKING:
    from workbench.stages import Stages

__all__ = ["Engine", "Pipeline", "check_policy"]

ACTOR = "automation"
RUNNABLE = (JobStatus.SCHEDULED, JobStatus.APPROVED, JobStatus.WAITING_FOR_DATA)
#: jobs that count against cooldown and budget: every admitted one (a person's rejection aside)
_COUNTED = frozenset(JobStatus) - {JobStatus.SKIPPED}


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Engine:
    """Policies → jobs → pipeline, on one set of stages."""

    def __init__(self, stages: Stages, *, runner: str = "notebook"):
        self.stages = stages
        self.store = stages.store
        self.runner = runner

    # --------------------------------------------------------------- policies
    def policy(self, name: str) -> LoopPolicy:
        return LoopPolicy.from_dict(self.store.retraining.get_policy(name)["config"])

    # ----------------------------------------------------------------- events
    def _events(
        self, policy: LoopPolicy, state: dict[str, Any], now: float
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for trig in policy.triggers:
            if isinstance(trig, DriftTrigger):
                results = _distinct(self.store.monitors.list_windows(trig.monitor))
                ids = drift_trigger_ids(
                    ((r["id"], bool(r["is_drift"])) for r in results), trig.windows
                )
                for rid in ids:
                    events.append(
                        {
                            "key": f"{policy.name}:drift:{rid}",
                            "drift_result_id": rid,
                            "trigger": f"drift in {trig.windows} consecutive windows of {trig.monitor}",
                        }
                    )
            elif isinstance(trig, ScheduleTrigger):
                cron = CronSchedule(trig.cron)
                since = state.get("cron_since")
                since_dt = (
                    datetime.fromisoformat(since) if since else datetime.fromtimestamp(now, UTC)
                )
                fire = cron.last_fire(since_dt, datetime.fromtimestamp(now, UTC))
                if fire is not None:
                    events.append(
                        {
                            "key": f"{policy.name}:cron:{fire.isoformat()}",
                            "trigger": f"schedule {trig.cron}",
                        }
                    )
            elif isinstance(trig, PerformanceTrigger) and trig.monitor:
                for r in _distinct(self.store.monitors.list_windows(trig.monitor, drift_only=True)):
                    d = r.get("detail") or {}
                    value, bound = d.get("value"), d.get("bound")
                    what = (
                        f"{d.get('metric', trig.metric)} {value:.4f} under its floor {bound:.4f}"
                        if isinstance(value, float) and isinstance(bound, float)
                        else "quality below its bound"
                    )
                    events.append(
                        {
                            "key": f"{policy.name}:performance:{r['id']}",
                            "drift_result_id": r["id"],
                            "trigger": f"{what} in a window of {r['n']} labelled records of {trig.monitor}",
                        }
                    )
            elif isinstance(trig, PerformanceTrigger):
                ev = self._performance_event(policy, trig)
                if ev:
                    events.append(ev)
        return events

    @staticmethod
    def _monitors(policy: LoopPolicy) -> list[str]:
        names = [t.monitor for t in policy.triggers if isinstance(t, DriftTrigger)]
        names += [t.monitor for t in policy.triggers if isinstance(t, PerformanceTrigger)]
        return [n for n in names if n]

    def check_monitors(self, names: list[str]) -> dict[str, Any]:
        """Run ``check()`` on the named monitors (new windows become results); errors are returned, not raised."""
        out: dict[str, Any] = {}
        for name in dict.fromkeys(names):
            try:
                results = self.stages.monitoring.get(name).check()
                keep = ("id", "verdict", "is_drift", "reason", "p_val_min", "threshold")
                keep += ("metric", "value", "bound", "n")
                out[name] = [{k: r[k] for k in keep if k in r} for r in results]
            except Exception as exc:  # one broken monitor must not stop the loop
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    def _performance_event(
        self, policy: LoopPolicy, trig: PerformanceTrigger
    ) -> dict[str, Any] | None:
        from workbench.evaluation import score

        champ = self.stages.registry.get(policy.model, "champion")
        rows = self.store.monitors.list_labeled_predictions(
            policy.deployment, model_version_id=champ.id
        )
        if len(rows) < trig.min_labels or trig.metric not in champ.metrics:
            return None
        rows = rows[-trig.min_labels :]
        pairs = []
        for r in rows:
            pairs += list(zip(r["label"], r["prediction"], strict=False))
        # labels and predictions compare as text, as the performance monitor's do: a label
        # recorded as "1" meets a typed prediction 1, and an old model's "1" meets a label 1
        recent = score([str(a) for a, _ in pairs], [str(b) for _, b in pairs]).get(trig.metric)
        if recent is None or not performance_dropped(
            champ.metrics[trig.metric], recent, drop=trig.drop, metric=trig.metric
        ):
            return None
        return {
            "key": f"{policy.name}:performance:{rows[-1]['request_id']}",
            "trigger": f"{trig.metric} {recent:.4f} on the last {len(rows)} labels vs champion "
            f"{champ.metrics[trig.metric]:.4f} (drop > {trig.drop})",
        }

    # ------------------------------------------------------------------- tick
    def tick(
        self, *, now: float | None = None, run: bool = True, check: bool = True
    ) -> dict[str, Any]:
        """Evaluate every enabled policy once: first the monitors its triggers name check their new
        windows (if ``check``), then the due ingestion schedules run (``"ingested"``:
        :meth:`Datasets.run_due_schedules`), then new events become jobs, then runnable jobs run
        (if ``run``)."""
        rows = self.store.retraining.list_policies(enabled_only=True)
        checked: dict[str, Any] = {}
        if check:
            checked = self.check_monitors(
                [m for row in rows for m in self._monitors(LoopPolicy.from_dict(row["config"]))]
            )
        now = time.time() if now is None else now
        # scheduled ingestion first: a policy evaluated below sees the data recorded this tick
        try:
            ingested: Any = self.stages.datasets.run_due_schedules(now=now, runner=self.runner)
        except Exception as exc:  # a broken store read must not stop the retraining loop
            ingested = {"error": f"{type(exc).__name__}: {exc}"}
        created: list[int] = []
        ran: list[dict[str, Any]] = []
        for row in rows:
            policy = LoopPolicy.from_dict(row["config"])
            state = dict(row["state"] or {})
            for ev in self._events(policy, state, now):
                job = self._admit(policy, ev, now)
                if job is not None:
                    created.append(job)
            state["cron_since"] = datetime.fromtimestamp(now, UTC).isoformat()
            state["last_check"] = state["cron_since"]
            self.store.retraining.set_policy_state(policy.name, state)
        try:
            reconciled: Any = self.reconcile()
        except Exception as exc:  # an unreachable job server must not stop the loop
            reconciled = {"error": f"{type(exc).__name__}: {exc}"}
        if run:
            for job in self.store.retraining.list_jobs(statuses=RUNNABLE, with_policy=True):
                out = self.run_job(job["id"])
                if out is not None:
                    ran.append(out)
        return {
            "checked": checked,
            "created": created,
            "ran": ran,
            "reconciled": reconciled,
            "ingested": ingested,
            "at": now,
        }

    def _history(self, policy: str, *, exclude: int | None = None) -> list[dict[str, Any]]:
        """The policy's jobs that count against cooldown and budget, as :func:`admission` reads them."""
        return [
            {"started": _epoch(j["started_at"]), "compute_s": j["compute_s"]}
            for j in self.store.retraining.list_jobs(policy=policy)
            if j["status"] in _COUNTED and j["approval"] != "REJECTED" and j["id"] != exclude
        ]

    def _admit(self, policy: LoopPolicy, ev: dict[str, Any], now: float) -> int | None:
        if self.store.retraining.find_job(ev["key"]):
            return None  # seen before: cheap path; the UNIQUE index is what guarantees it
        history = self._history(policy.name)
        ok, reason = admission(now, history, cooldown_s=policy.cooldown_s, budget=policy.budget)
        detail = {"trigger": ev["trigger"], "admission": reason, "policy": policy.to_dict()}
        if not ok:
            return self.store.retraining.claim_job(
                ev["key"],
                policy=policy.name,
                status=JobStatus.SKIPPED,
                decision=reason.split(":")[0],
                drift_result_id=ev.get("drift_result_id"),
                detail=detail,
            )
        return self.store.retraining.claim_job(
            ev["key"],
            policy=policy.name,
            status=JobStatus.PENDING_APPROVAL if policy.approval else JobStatus.SCHEDULED,
            approval="PENDING" if policy.approval else None,
            drift_result_id=ev.get("drift_result_id"),
            detail=detail,
        )

    # --------------------------------------------------------------- approval
    def answer(
        self, job_id: int, *, approve: bool, actor: str | None = None, reason: str = ""
    ) -> dict[str, Any]:
        job = self.store.retraining.get_job(job_id)
        if job["approval"] != "PENDING":
            raise WorkbenchError(
                f"retrain job {job_id} is not waiting for approval (status {job['status']}, approval {job['approval']})."
            )
        moved = self.store.retraining.set_job_status(
            job_id,
            from_status=(JobStatus.PENDING_APPROVAL,),
            to_status=JobStatus.APPROVED if approve else JobStatus.REJECTED,
            approval="APPROVED" if approve else "REJECTED",
            **({} if approve else {"decision": "not_approved", "ended_at": _now_iso()}),
        )
        if not moved:
            raise WorkbenchError(f"retrain job {job_id} was answered by someone else first.")
        self.store.audit(
            "retrain.approve" if approve else "retrain.reject",
            "retrain_job",
            job_id,
            {"reason": reason},
            actor=actor,
        )
        return self.store.retraining.get_job(job_id)

    # ---------------------------------------------------------------- running
    def run_job(self, job_id: int) -> dict[str, Any] | None:
        """Run one SCHEDULED/APPROVED job; None if another runner took it (each job runs at most once).

        The compute budget is checked again here, against what the policy's other jobs used
        since this one was admitted: a job over budget ends ``SKIPPED`` (decision ``budget``)
        with the figures in its detail, and a job within budget gives its search only what is left.
        """
        if not self.store.retraining.set_job_status(
            job_id, from_status=RUNNABLE, to_status=JobStatus.RUNNING, runner=self.runner
        ):
            return None
        job = self.store.retraining.get_job(job_id)
        policy = LoopPolicy.from_dict(job["detail"]["policy"])
        now = time.time()
        history = self._history(policy.name, exclude=job_id)
        budget = policy.budget
        used = compute_used(now, history)
        allowed = search_budget(now, history, budget)
        figures = {
            "max_per_day": budget.max_per_day,
            "max_compute_s": budget.max_compute_s,
            "max_job_s": budget.max_job_s,
            "compute_used_24h_s": round(used, 3),
            "search_budget_s": None if allowed is None else round(allowed, 3),
        }
        detail = {**job["detail"], "budget": figures}
        stale = self._stale(job, policy)
        if stale:
            return self._skip(job_id, detail, ("trigger", "stale"), "stale", stale)
        if budget.max_compute_s is not None and used >= budget.max_compute_s:
            reason = (
                f"budget: {used:.1f}s of retraining compute used in 24h by earlier jobs "
                f"(max {budget.max_compute_s:g}s)"
            )
            return self._skip(job_id, detail, ("budget", "refused"), "budget", reason, figures)
        self.store.retraining.set_job(job_id, detail=detail)
        job["detail"] = detail
        try:
            from workbench.automation._jobs import resolve_run_as

            ray_job = resolve_run_as(policy, self.stages) == "ray_job"
        except Exception as exc:
            return self._fail(job_id, detail, "ray_job", exc, decision="submit_failed")
        if ray_job:
            return self._submit(job, policy)
        return self.execute(job, policy, allowed)

    def execute(
        self, job: dict[str, Any], policy: LoopPolicy, search_budget_s: float | None
    ) -> dict[str, Any]:
        """Run the pipeline of a RUNNING job here, to its decision; an error ends it FAILED."""
        job_id = job["id"]
        t0 = time.monotonic()
        try:
            out = Pipeline(self.stages, job, policy, search_budget_s=search_budget_s).run()
        except Exception as exc:
            return self._fail(job_id, job["detail"], "error", exc, compute_s=time.monotonic() - t0)
        compute = time.monotonic() - t0
        self.store.retraining.set_job(job_id, compute_s=compute)
        out["compute_s"] = compute
        return out

    def _fail(
        self,
        job_id: int,
        detail: dict[str, Any],
        step: str,
        exc: BaseException,
        *,
        decision: str | None = None,
        compute_s: float = 0.0,
    ) -> dict[str, Any]:
        self.store.retraining.record_step(job_id, step, "failed", {"summary": repr(exc)[:300]})
        fields: dict[str, Any] = {"decision": decision} if decision else {}
        self.store.retraining.set_job(
            job_id,
            status=JobStatus.FAILED,
            compute_s=compute_s,
            detail={**detail, "error": repr(exc)},
            **fields,
        )
        return {"job_id": job_id, "status": JobStatus.FAILED.value, "error": repr(exc)}

    # --------------------------------------------------------------- Ray Jobs
    def _submit(self, job: dict[str, Any], policy: LoopPolicy) -> dict[str, Any]:
        """Hand a RUNNING job to a Ray Job whose ``submission_id`` is the job's event key.

        The id is recorded before the submission: a submitter that dies in between leaves a job
        that :meth:`reconcile` finds unknown to Ray and marks lost, never one that runs twice.
        The runner becomes ``ray_job:<id>``, so a restarted scheduler does not take it for its
        own interrupted work.
        """
        from workbench.automation._jobs import RayJobs

        job_id = job["id"]
        sid = job.get("event_key") or f"workbench-retrain-{job_id}"
        attempt = job["detail"].get("data_attempts", 0)
        if attempt:  # a job that waited for data runs again as a new Ray job
            sid = f"{sid}-attempt-{attempt + 1}"
        try:
            jobs = RayJobs.of(self.stages)
            self.store.retraining.set_job(job_id, ray_job_id=sid, runner=f"ray_job:{sid}")
            started = jobs.submit(
                sid,
                home=self.stages.settings.home,
                job_id=job_id,
                num_cpus=policy.job_num_cpus,
                package=policy.job_package,
                metadata={"workbench_retrain_job": str(job_id), "policy": policy.name},
                storage=self.stages.settings.storage,
            )
        except Exception as exc:
            return self._fail(job_id, job["detail"], "ray_job", exc, decision="submit_failed")
        summary = (
            f"Ray job {sid} submitted to {jobs.url} (entrypoint on the head node, "
            f"entrypoint_num_cpus={policy.job_num_cpus:g})"
            if started
            else f"Ray job {sid} already exists at {jobs.url}: not submitted again"
        )
        self.store.retraining.record_step(
            job_id,
            "ray_job",
            "submitted" if started else "exists",
            {"summary": summary, "ray_job_id": sid, "url": jobs.url},
        )
        return {
            "job_id": job_id,
            "status": JobStatus.RUNNING.value,
            "ray_job_id": sid,
            "submitted": started,
        }

    def execute_submitted(self, job_id: int) -> dict[str, Any]:
        """Run a job handed to a Ray Job (what its entrypoint calls): the same :meth:`execute` as
        the inline path, with the search budget fixed when the job was admitted to run."""
        job = self.store.retraining.get_job(job_id)
        if job["status"] != JobStatus.RUNNING or not job.get("ray_job_id"):
            raise WorkbenchError(
                f"retrain job {job_id} is {job['status']} (Ray job {job.get('ray_job_id')}): only a "
                "RUNNING job submitted as a Ray Job runs here; nothing was done."
            )
        policy = LoopPolicy.from_dict(job["detail"]["policy"])
        allowed = (job["detail"].get("budget") or {}).get("search_budget_s")
        return self.execute(job, policy, allowed)

    def reconcile(self) -> list[dict[str, Any]]:
        """Bring Ray's view of the RUNNING jobs submitted as Ray Jobs into the store.

        A Ray job that ended without its entrypoint recording a decision (it crashed, was
        stopped, or exited early) ends our job ``FAILED`` (``INTERRUPTED`` when stopped) with
        Ray's message; a submission Ray no longer knows (its head restarted) is marked
        ``INTERRUPTED`` with decision ``ray_job_lost``, and never submitted again.
        """
        rows = self.store.retraining.list_jobs(statuses=(JobStatus.RUNNING,), ray_jobs=True)
        if not rows:
            return []
        from workbench.automation._jobs import RayJobs

        jobs = RayJobs.of(self.stages)
        out = []
        for j in rows:
            sid = j["ray_job_id"]
            state = jobs.state(sid)
            if state.status in ("PENDING", "RUNNING"):
                continue
            if state.status is None:
                to, decision = JobStatus.INTERRUPTED, "ray_job_lost"
                reason = (
                    f"Ray no longer knows job {sid} at {jobs.url} (the head restarted?); "
                    "not rerun: add a new event or run it inline"
                )
            elif state.status == "STOPPED":
                to, decision = JobStatus.INTERRUPTED, "ray_job_stopped"
                reason = f"Ray job {sid} was stopped: {state.message}"
            else:  # FAILED, or SUCCEEDED without a decision recorded by the entrypoint
                to, decision = JobStatus.FAILED, f"ray_job_{state.status.lower()}"
                reason = (
                    f"Ray job {sid} {state.status} without recording a decision: {state.message}"
                )
                try:
                    tail = jobs.logs(sid)[-1500:]
                except Exception:  # the logs are a help, the status is what counts
                    tail = ""
                if tail:
                    reason += f"; log tail: {tail}"
            detail = {**j["detail"], "error": reason, "ray_status": state.status}
            if self.store.retraining.set_job_status(
                j["id"],
                from_status=(JobStatus.RUNNING,),
                to_status=to,
                decision=decision,
                ended_at=_now_iso(),
            ):
                self.store.retraining.set_job(j["id"], detail=detail)
                self.store.retraining.record_step(
                    j["id"],
                    "ray_job",
                    decision.removeprefix("ray_job_"),
                    {"summary": reason[:2000]},
                )
                out.append({"job_id": j["id"], "status": to.value, "decision": decision})
        return out

    def _skip(
        self,
        job_id: int,
        detail: dict[str, Any],
        step: tuple[str, str],
        decision: str,
        reason: str,
        figures: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """End a job ``SKIPPED`` before it runs: one step (name, status) with the reason (and
        figures), the reason as the job's admission."""
        self.store.retraining.record_step(job_id, *step, {"summary": reason, **(figures or {})})
        self.store.retraining.set_job(
            job_id,
            status=JobStatus.SKIPPED,
            decision=decision,
            ended_at=_now_iso(),
            detail={**detail, "admission": reason},
        )
        return {
            "job_id": job_id,
            "status": JobStatus.SKIPPED.value,
            "decision": decision,
            "reason": reason,
        }

    def _stale(self, job: dict[str, Any], policy: LoopPolicy | None = None) -> str | None:
        """Why a drift or performance job's evidence no longer holds, else None.

        A window tested against a reference the monitor has since left (a promotion by an
        earlier job moved it to the new training data) says nothing about the model now
        served: retraining on it would repeat the job that just finished. Likewise a
        performance window none of whose labelled requests the current champion answered
        (``by_version`` of its detail: the versions served before a promotion) measured a
        model that no longer serves.
        """
        rid = job.get("drift_result_id")
        if rid is None:
            return None
        row = self.store.monitors.get_window(rid)
        if row is None or row["kind"] == "operational":
            return None
        if row["kind"] == "performance":
            return self._stale_performance(rid, row, policy)
        tested = (row.get("detail") or {}).get("reference_dataset_version_id")
        if tested is None or tested == row["monitor_reference_id"]:
            return None
        return (
            f"stale: drift result #{rid} was tested against reference dataset version #{tested}; "
            f"monitor {row['monitor']} has moved to #{row['monitor_reference_id']} since (a promotion)"
        )

    def _stale_performance(
        self, rid: int, row: dict[str, Any], policy: LoopPolicy | None
    ) -> str | None:
        from workbench.exceptions import NotFoundError

        served = (row.get("detail") or {}).get("by_version")
        if policy is None or not served:
            return None
        try:
            champion = self.stages.registry.get(policy.model, "champion")
        except NotFoundError:
            return None
        if str(champion.version) in {str(v) for v in served}:
            return None
        versions = ", ".join(f"v{v}" for v in sorted(served, key=str))
        return (
            f"stale: performance window #{rid} measured {versions}; the champion is "
            f"v{champion.version} now (promoted since), which answered none of its requests"
        )

    def interrupt_orphans(self, runner_prefix: str) -> list[int]:
        """Jobs left RUNNING by an earlier incarnation of a runner are marked INTERRUPTED, never rerun."""
        out = []
        running = self.store.retraining.list_jobs(
            statuses=(JobStatus.RUNNING,), runner_prefix=runner_prefix
        )
        for j in running:
            if j["runner"] == self.runner:
                continue
            if self.store.retraining.set_job_status(
                j["id"],
                from_status=(JobStatus.RUNNING,),
                to_status=JobStatus.INTERRUPTED,
                ended_at=_now_iso(),
            ):
                out.append(j["id"])
        return out


def _distinct(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per window of requests: when two processes checked a monitor at the same moment
    (a notebook's ``tick()`` beside the scheduler's), the same window may have been recorded twice;
    the later copy is not a second event."""
    seen: set[tuple[int, int]] = set()
    out = []
    for r in results:
        span = (int(r["first_request_log_id"]), int(r["last_request_log_id"]))
        if span[1] > 0 and span in seen:
            continue
        seen.add(span)
        out.append(r)
    return out


def _warned(report: list[dict[str, Any]]) -> list[str]:
    return [f"{r['check']}[{r['column']}]" if r.get("column") else r["check"] for r in report[:5]]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Pipeline:
    """snapshot → validate → warm-started search → evaluate → gate → register → canary → promote/rollback."""

    def __init__(
        self,
        stages: Stages,
        job: dict[str, Any],
        policy: LoopPolicy,
        *,
        search_budget_s: float | None = None,
    ):
        self.stages, self.job, self.policy = stages, job, policy
        self.search_budget_s = search_budget_s
        self.store = stages.store
        self.id = job["id"]
        self.detail: dict[str, Any] = dict(job["detail"])

    def step(self, name: str, status: str, summary: str, **detail: Any) -> None:
        self.store.retraining.record_step(self.id, name, status, {"summary": summary, **detail})

    def finish(self, status: JobStatus, decision: str) -> dict[str, Any]:
        self.store.retraining.set_job(self.id, status=status, decision=decision, detail=self.detail)
        return {
            "job_id": self.id,
            "status": status.value,
            **{k: v for k, v in self.detail.items() if k != "policy"},
        }

    def _reference_checks(self, train: Any) -> tuple[Any, Any]:
        """The champion's training data and the checks inferred from it (stored as an artifact).

        Types, columns, nullability, category sets (the label's too), the label's presence and
        the policy's ``min_rows`` reject; ranges, the row-count band and the distribution (PSI)
        only warn: live data moving beyond the training range is drift, which is what a
        retraining is for, not broken data. Without a champion, or one not linked to its
        training data, the policy's training dataset is the reference.
        """
        from workbench.exceptions import NotFoundError

        stages, p = self.stages, self.policy
        reference = train
        try:
            champion = stages.registry.get(p.model, "champion")
            if champion.dataset_version_id is not None:
                reference = stages.datasets.by_id(champion.dataset_version_id)
        except NotFoundError:
            pass
        from workbench.datasets import infer_checks

        checks = infer_checks(stages.datasets.load(reference), target=train.target)
        checks.min_rows = p.min_rows
        checks.severity = {**checks.severity, "range": "warn"}
        # the stored copy is what this job applied, its own settings included
        checks.artifact = stages.datasets.artifacts.put_bytes(checks.yaml_text().encode())
        return reference, checks

    #: label-free triage of a classifier with probabilities keeps confidence-based estimation
    #: (CBPE) while the champion's top-label expected calibration error on its reference rows is
    #: at most this; above it, importance weighting (see ``LoopPolicy.triage``)
    TRIAGE_CBPE_MAX_ECE = 0.05

    def triage(self) -> dict[str, Any] | None:
        """The estimated impact of the data drift that started this job on the champion, from the
        requests since the change point (see ``LoopPolicy.triage``); None when there is nothing to
        estimate (a job no drift window started, no served rows, no reference rows, a classifier
        without accuracy registered, reference rows without labels where they are needed)."""
        import statistics

        from workbench.evaluation import expected_calibration_error, same_label

        p, stages = self.policy, self.stages
        rid = self.job.get("drift_result_id")
        window = self.store.monitors.get_window(rid) if rid is not None else None
        if window is None or window["kind"] in ("performance", "operational"):
            return None  # a performance event measured the harm already
        since = self.change_point()
        after = (since["request_log_id"] if since else window["first_request_log_id"]) - 1
        champion = stages.registry.get(p.model, "champion")
        bundle = stages.registry.load(p.model, champion.version)
        records, labels = [], []
        for r in self.store.monitors.list_labeled_requests(p.deployment, after_id=after):
            for rec, lab in zip(r["features"], r["label"], strict=False):
                records.append(rec)
                labels.append(lab)
        out: dict[str, Any] = {"after_request_log_id": after, "labels": len(labels)}
        metric = "accuracy"
        if len(labels) >= p.triage_min_labels and "accuracy" in champion.metrics:
            right = sum(
                same_label(a, b)
                for a, b in zip(bundle.predict_records(records), labels, strict=True)
            )
            estimate, baseline = right / len(labels), float(champion.metrics["accuracy"])
            interval: tuple[float, float] | None = wilson_interval(right, len(labels))
            out.update(method="labels", n=len(labels))
        else:
            served = self._served_since(after)
            if not served:
                return None
            evaluation = stages.registry.evaluation(p.model, champion.version) or {}
            ref_id = evaluation.get("holdout_version_id") or champion.dataset_version_id
            if ref_id is None:
                return None
            reference = stages.datasets.load(stages.datasets.by_id(ref_id))
            ref_records = reference.select(list(bundle.features)).to_dicts()
            truth = (
                reference[bundle.target].to_list() if bundle.target in reference.columns else None
            )
            proba = bundle.task == "classification" and bundle.probabilities_missing is None
            iw = (
                None
                if truth is None
                else self._importance_weighted(bundle, ref_records, truth, served)
            )
            if iw is not None:
                iw_detail = {
                    "metric": iw.metric,
                    "estimate": round(iw.estimate, 4),
                    "baseline": round(iw.baseline, 4),
                    "interval": [round(v, 4) for v in iw.interval],
                    "effective_n": round(iw.effective_n, 1),
                    "capped_effective_n": round(iw.capped_effective_n, 1),
                    "domain_auc": round(iw.domain_auc, 4),
                    "clipped": iw.clipped,
                }
            few = iw is not None and iw.effective_n < p.triage_min_labels
            if proba:

                def cbpe(rows: list[dict[str, Any]]) -> float:
                    return statistics.fmean(max(ps) for ps in bundle.predict_proba_records(rows)[1])

                estimate, baseline, interval = cbpe(served), cbpe(ref_records), None
                out.update(method="cbpe", n=len(served), reference_dataset_version_id=ref_id)
                if iw is not None and not few:
                    predicted, ps = bundle.predict_proba_records(ref_records)
                    ece = expected_calibration_error(
                        [max(row) for row in ps],
                        [same_label(a, b) for a, b in zip(predicted, truth or [], strict=True)],
                    )
                    out["ece"] = round(ece, 4)
                    iw_shows_harm = triage_verdict(
                        iw.estimate,
                        iw.baseline,
                        max_drop=p.triage_max_drop,
                        interval=iw.interval,
                        metric=iw.metric,
                    )[0]
                    cbpe_shows_harm = triage_verdict(
                        estimate, baseline, max_drop=p.triage_max_drop, interval=None
                    )[0]
                    if ece > self.TRIAGE_CBPE_MAX_ECE or (iw_shows_harm and not cbpe_shows_harm):
                        out["cbpe"] = {
                            "estimate": round(estimate, 4),
                            "baseline": round(baseline, 4),
                        }
                        out.update(method="iw", **iw_detail)
                        estimate, baseline, interval = iw.estimate, iw.baseline, iw.interval
                    else:
                        out["iw"] = iw_detail
            elif iw is not None:
                out.update(
                    method="iw", n=len(served), reference_dataset_version_id=ref_id, **iw_detail
                )
                estimate, baseline, interval = iw.estimate, iw.baseline, iw.interval
                if few:
                    # the served rows lie where the reference has almost none: no evidence either
                    # way, and only a shift shown harmless ends the job
                    out.update(
                        harmful=True,
                        reason=f"iw: effective sample size {iw.effective_n:.1f} under "
                        f"triage_min_labels={p.triage_min_labels} (the served rows lie where the "
                        "reference has few rows): the harm cannot be ruled out",
                    )
                    return out
            else:
                return None
            metric = iw.metric if out["method"] == "iw" and iw is not None else "accuracy"
        harmful, reason = triage_verdict(
            estimate, baseline, max_drop=p.triage_max_drop, interval=interval, metric=metric
        )
        out.update(
            estimate=round(estimate, 4),
            baseline=round(baseline, 4),
            interval=None if interval is None else [round(v, 4) for v in interval],
            harmful=harmful,
            reason=f"{out['method']}: {reason}",
        )
        if out["method"] == "labels" and not harmful and estimate < baseline - p.triage_max_drop:
            # a drop the labels suggest but do not show yet: more labels decide, not a dismissal
            need = labels_to_show(estimate, baseline, len(labels))
            if need is not None:
                out.update(inconclusive=True, labels_needed=need)
        return out

    def _importance_weighted(
        self,
        bundle: Any,
        ref_records: list[dict[str, Any]],
        truth: list[Any],
        served: list[dict[str, Any]],
    ) -> Any:
        """The champion's performance on the served rows, importance-weighted from its labelled
        reference rows (:func:`workbench.evaluation.importance_weighted_estimate`, seeded by the
        policy's ``seed``): accuracy for a classifier; for a regressor the gate's metric when it
        is RMSE or MAE, else RMSE. None with fewer than 2 labelled reference or served rows."""
        from workbench.evaluation import importance_weighted_estimate, same_label

        metric = "accuracy"
        if bundle.task == "regression":
            gate = self.policy.gate.metric
            metric = gate if gate in ("rmse", "mae") else "rmse"
        labelled = [i for i, y in enumerate(truth) if y is not None]  # a row without a label
        ref_records, truth = [ref_records[i] for i in labelled], [truth[i] for i in labelled]
        if len(ref_records) < 2 or len(served) < 2:
            return None  # nothing to tell apart
        predicted = bundle.predict_records(ref_records)
        if metric == "accuracy":
            values = [same_label(a, b) for a, b in zip(predicted, truth, strict=True)]
        else:
            values = [float(y) - float(f) for y, f in zip(truth, predicted, strict=True)]
        features = list(bundle.features)
        return importance_weighted_estimate(
            ref_records,
            [{f: rec.get(f) for f in features} for rec in served],
            values,
            metric=metric,
            seed=self.policy.seed,
        )

    def _served_since(self, after_id: int) -> list[dict[str, Any]]:
        """The records the deployment answered after request-log id ``after_id``."""
        return [
            rec
            for r in self.store.deployments.list_requests(self.policy.deployment, after_id=after_id)
            for rec in r["features"]
            if isinstance(rec, dict)
        ]

    def _accept_shift(self, verdict: dict[str, Any]) -> None:
        """A harmless shift becomes the drift monitor's new reference: the requests served since
        the change, recorded as ``<monitor>-reference`` and the monitor refitted on them (audited)."""
        import polars as pl

        window = self.store.monitors.get_window(self.job["drift_result_id"])
        record = self.store.monitors.get(window["monitor"])
        if record["kind"] != "data_drift":
            return
        served = self._served_since(verdict["after_request_log_id"])
        features = record["config"].get("features") or sorted(served[0])
        frame = pl.DataFrame([{f: rec.get(f) for f in features} for rec in served])
        dv = self.stages.datasets.ingest(frame, name=f"{window['monitor']}-reference")
        old = record["reference_dataset_version_id"]
        self.stages.monitoring.refit(window["monitor"], reference=dv)
        moved = {"monitor": window["monitor"], "from": old, "to": dv.id, "rows": frame.height}
        self.detail["references"] = [moved]
        self.step(
            "reference",
            "ok",
            f"monitor {window['monitor']} refitted on the {frame.height} requests served since the "
            f"change ({dv}): this harmless shift is its new normal",
            **moved,
        )

    def change_point(self) -> dict[str, Any] | None:
        """Where the change that started this job began (``request_log_id``, the ``monitor`` and
        the event's ``window_id``), from the monitor's windows; None for a job no window started."""
        rid = self.job.get("drift_result_id")
        window = self.store.monitors.get_window(rid) if rid is not None else None
        if window is None:
            return None
        first = change_point(self.store.monitors.list_windows(window["monitor"]), rid)
        if first is None:
            return None
        return {"request_log_id": first, "monitor": window["monitor"], "window_id": rid}

    def _waited_s(self, *, start: bool = False) -> float:
        """Seconds this job has waited for data (0 before its first wait; ``start`` records now
        as the wait's start when none is recorded)."""
        now = time.time()
        since = (
            self.detail.setdefault("waiting_since", now)
            if start
            else self.detail.get("waiting_since", now)
        )
        return now - since

    def wait_for_data(
        self, summary: str, *, have: int, need: int, step: str = "holdout"
    ) -> dict[str, Any]:
        """Too few rows (held out for the gate, or since the change point): wait for more labelled
        requests (the next tick runs the job again), at most ``data_wait_s``, then fail with
        ``not_enough_data``."""
        p = self.policy
        waited = self._waited_s(start=True)
        self.detail["data_attempts"] = self.detail.get("data_attempts", 0) + 1
        figures = {"have": have, "need": need, "waited_s": round(waited, 1)}
        if waited > p.data_wait_s:
            self.step(
                step,
                "failed",
                f"{summary} after {waited:.0f}s of waiting (data_wait_s={p.data_wait_s:g}); label "
                "more requests (bench.monitoring.record_labels) or name a holdout dataset in the policy",
                **figures,
            )
            return self.finish(JobStatus.FAILED, "not_enough_data")
        self.step(step, "waiting", f"{summary}: waiting for more labels", **figures)
        return self.finish(JobStatus.WAITING_FOR_DATA, "waiting_for_data")

    def _unseen_by_champion(self, new: Any) -> list[int]:
        """Indices of the labelled rows ``new`` that are not in the champion's training data.

        A champion an earlier job trained on post-change requests has seen some of the rows this
        job may hold out (each job draws afresh from a growing set); judged on them it looks
        better than it is and good challengers are rejected (the concept-drift stream of
        ``bench/closed_loop_stream.py``: 63 of 282 held-out rows were the champion's own).
        Rows it trained on stay available for training; only the evidence excludes them."""
        import polars as pl

        from workbench.exceptions import NotFoundError

        everything = list(range(new.height))
        try:
            champion = self.stages.registry.get(self.policy.model, "champion")
        except NotFoundError:
            return everything
        if champion.dataset_version_id is None or not new.height:
            return everything
        seen = self.stages.datasets.load(self.stages.datasets.by_id(champion.dataset_version_id))
        if set(seen.columns) != set(new.columns):
            return everything
        try:
            seen = seen.select(new.columns).cast(dict(new.schema))
        except pl.exceptions.PolarsError:  # columns of other types: nothing to compare
            return everything
        indexed = new.with_row_index("_row")
        fresh = indexed.join(seen.unique(), on=new.columns, how="anti", nulls_equal=True)
        return sorted(fresh["_row"].to_list())

    def held_out(self, held: Any, train: Any) -> Any:
        """Record the job's held-out rows as a version of ``<policy>-holdout`` (its lineage: the
        training data's next to it), and say so in a step."""
        p = self.policy
        version = self.stages.datasets.ingest(held, name=f"{p.name}-holdout", target=train.target)
        self.detail["holdout"] = {
            "dataset_version_id": version.id,
            "rows": held.height,
            "fraction": p.holdout_fraction,
        }
        self.step(
            "holdout",
            "ok",
            f"{held.height} labelled requests held out ({p.holdout_fraction:g}, seed {p.seed}) "
            f"-> {version}: the gate's evidence, never trained on",
            dataset_version_id=version.id,
            rows=held.height,
        )
        return version

    def run(self) -> dict[str, Any]:
        import polars as pl

        stages, p = self.stages, self.policy
        # 0. does the shift hurt? A harmless one is not worth a retraining (a job waiting for data
        # was triaged harmful on its first run: it is not triaged again)
        if p.triage and "triage" not in self.detail:
            verdict = self.triage()
            if verdict is not None and verdict.get("inconclusive"):
                waited = self._waited_s()
                if waited <= p.data_wait_s:
                    return self.wait_for_data(
                        f"{verdict['reason']}: {verdict['labels']} labels since the change "
                        f"suggest a drop they do not show; about {verdict['labels_needed']} would",
                        have=verdict["labels"],
                        need=verdict["labels_needed"],
                        step="triage",
                    )
                # waited data_wait_s: the estimate is still under the floor, so it is a drop
                verdict = {
                    **verdict,
                    "harmful": True,
                    "reason": f"{verdict['reason']}, still after {waited:.0f}s of waiting "
                    "(data_wait_s): retraining on the estimate",
                }
            if verdict is not None:
                self.detail.pop("waiting_since", None)  # a later wait (holdout) starts afresh
                self.detail["triage"] = verdict
                status = "harmful" if verdict["harmful"] else "harmless"
                self.step("triage", status, verdict["reason"], **verdict)
                if not verdict["harmful"]:
                    if p.triage_moves_reference:
                        self._accept_shift(verdict)
                    return self.finish(JobStatus.SKIPPED, "harmless_shift")
        # 1. snapshot: the policy's training data plus the deployment's labelled requests
        train = stages.datasets.get(p.train)
        base = stages.datasets.load(train)
        since = self.change_point() if p.since_change else None
        rows, before = [], []
        for r in self.store.monitors.list_labeled_requests(p.deployment):
            side = before if since is not None and r["id"] < since["request_log_id"] else rows
            side += [
                {**rec, train.target: lab}
                for rec, lab in zip(r["features"], r["label"], strict=False)
            ]

        def frame_of(records: list[dict[str, Any]]) -> Any:
            if not records:
                return base.clear()
            return pl.DataFrame(records, schema=base.schema, orient="row").unique(
                maintain_order=True
            )

        new = frame_of(rows)
        if since is not None:  # train on what came after the change; older rows only by option
            self.detail["change_point"] = {**since, "rows_after": new.height}
            if new.height < p.min_rows:
                return self.wait_for_data(
                    f"{new.height} of the min_rows={p.min_rows} labelled requests logged since "
                    f"the change point (request #{since['request_log_id']}, the first window of "
                    f"the run ending at {since['monitor']} window #{since['window_id']})",
                    have=new.height,
                    need=p.min_rows,
                    step="data",
                )
            older = pl.concat([base, frame_of(before)])
            base = older.tail(int(p.pre_change_fraction * new.height))
        own_holdout = None
        if p.holdout is None:  # the job's own evidence: a seeded share of the labelled requests
            unseen = self._unseen_by_champion(new)
            picked = [
                unseen[i]
                for i in holdout_rows(len(unseen), fraction=p.holdout_fraction, seed=p.seed)
            ]
            need = p.holdout_rows_needed()
            if len(picked) < need:
                return self.wait_for_data(
                    f"{len(picked)} of the {need} held-out rows the gate needs "
                    f"({p.holdout_fraction:g} of the {len(unseen)} of {new.height} labelled "
                    f"requests of {p.deployment} the champion was not trained on)",
                    have=len(picked),
                    need=need,
                )
            is_held = pl.Series("held", [False] * new.height)
            is_held[picked] = True
            own_holdout = self.held_out(new.filter(is_held), train)
            new = new.filter(~is_held)
        keep_base, keep_new = snapshot_rows(
            base.height, new.height, mode=p.snapshot, window=p.window
        )
        frame = (
            pl.concat([base.tail(keep_base), new.tail(keep_new)])
            if keep_base or keep_new
            else base.clear()
        )
        summary = f"{p.snapshot}: {keep_base} rows of {train} + {keep_new} labelled requests"
        if since is not None:
            summary = (
                f"since the change point (request #{since['request_log_id']}): {keep_new} labelled "
                f"requests + {keep_base} pre-change rows (pre_change_fraction={p.pre_change_fraction:g})"
            )
        # 2. validate while recording the version, against checks inferred from the champion's
        # training data: a failing error check records nothing
        reference, checks = self._reference_checks(train)
        try:
            snap = stages.datasets.ingest(
                frame, name=train.name, target=train.target, checks=checks, parent=train
            )
        except DatasetValidationError as exc:
            failed = [
                {k: r.get(k) for k in ("check", "column", "failing", "detail")}
                for r in exc.report
                if not r["passed"] and r.get("severity", "error") == "error"
            ]
            self.step("snapshot", "ok", summary)
            self.step(
                "validation",
                "failed",
                str(exc)[:300],
                reference_dataset_version_id=reference.id,
                checks_artifact=checks.artifact,
                failed=failed[:20],
            )
            self.detail["validation"] = str(exc)
            return self.finish(JobStatus.FAILED, "invalid_data")
        self.store.retraining.set_job(self.id, new_dataset_version_id=snap.id)
        self.step("snapshot", "ok", f"{summary} -> {snap}", dataset_version_id=snap.id)
        warned = [r for r in snap.validation if not r["passed"]]
        self.step(
            "validation",
            "passed",
            f"{len(snap.validation) - len(warned)} of {len(snap.validation)} checks passed against "
            f"checks inferred from {reference}"
            + (f", {len(warned)} warning(s): " + ", ".join(_warned(warned)) if warned else ""),
            reference_dataset_version_id=reference.id,
            checks_artifact=checks.artifact,
            warnings=[
                {k: r.get(k) for k in ("check", "column", "failing", "detail")} for r in warned[:20]
            ],
        )
        self.detail.update(
            snapshot={
                "mode": p.snapshot,
                "base_rows": keep_base,
                "new_rows": keep_new,
                "dataset_version_id": snap.id,
            }
        )

        # 3. search, warm-started from the champion's configuration
        from ray.tune.search.basic_variant import BasicVariantGenerator

        champion = stages.registry.get(p.model, "champion")
        champ_config = {k: v for k, v in champion.params.items() if not k.startswith("_")}
        space = warm_start_space(champ_config, factor=p.warm_start_factor) if champ_config else None
        alg = (
            BasicVariantGenerator(points_to_evaluate=[champ_config], random_state=p.seed)
            if champ_config
            else "random"
        )
        t_search = time.monotonic()
        result = stages.experiments.search(
            snap,
            name=f"retrain-{self.id}",
            space=space,
            num_samples=p.num_samples,
            metric=p.gate.metric,
            seed=p.seed,
            search_alg=alg,
            progress=None,
            time_budget_s=self.search_budget_s,
        )
        search_s = time.monotonic() - t_search
        self.store.retraining.set_job(self.id, experiment_id=result.experiment_id)
        budget_note = (
            f", time budget {self.search_budget_s:.0f}s" if self.search_budget_s is not None else ""
        )
        self.step(
            "search",
            "ok",
            f"experiment #{result.experiment_id}: {len(result.trials)} trials warm-started from v{champion.version} "
            f"in {search_s:.1f}s{budget_note}, "
            f"best cv {p.gate.metric}={result.best_metrics.get(p.gate.metric, float('nan')):.4f}",
            warm_start=champ_config,
            experiment_id=result.experiment_id,
            search_s=search_s,
            time_budget_s=self.search_budget_s,
        )
        self.detail["search"] = {
            "experiment_id": result.experiment_id,
            "trials": len(result.trials),
            "search_s": round(search_s, 3),
            "time_budget_s": self.search_budget_s,
        }

        # 4. evaluate both on the fresh holdout: the same rows, paired, for the gate's test
        from workbench.evaluation import prediction_metrics

        holdout = own_holdout if own_holdout is not None else stages.datasets.get(p.holdout)
        sensitive = tuple(p.sensitive_features)
        candidate = stages.refit_best(
            result, train=snap, holdout=holdout, seed=p.seed, sensitive_features=sensitive
        )
        chall_metrics = candidate.metrics
        chall_preds = candidate.predictions
        if chall_preds is None:
            chall_preds = stages.experiments.predict(
                candidate.bundle, holdout, sensitive_features=sensitive
            )
        champ_preds = stages.experiments.predict(
            stages.registry.load(p.model, champion.version), holdout, sensitive_features=sensitive
        )
        champ_metrics = prediction_metrics(champ_preds)
        self.step(
            "evaluation",
            "ok",
            f"on {holdout} ({champ_preds.n} rows): champion {champ_metrics.get(p.gate.metric):.4f}, "
            f"challenger {chall_metrics.get(p.gate.metric):.4f}",
            champion=champ_metrics,
            challenger=chall_metrics,
            holdout_id=holdout.id,
            n=champ_preds.n,
            sensitive_features=list(sensitive),
        )

        # 5. gate: on the paired predictions when it tests significance or fairness
        verdict = (
            p.gate.judge(champ_preds, chall_preds)
            if p.gate.needs_predictions
            else p.gate.judge(champ_metrics, chall_metrics)
        )
        self.detail.update(gate=verdict.as_dict(), champion_version=champion.version)
        self.step(
            "gate",
            "passed" if verdict.passed else "failed",
            verdict.reason,
            verdict=verdict.as_dict(),
            test=verdict.test,
            interval=verdict.interval,
            p_value=verdict.p_value,
            n=champ_preds.n,
            evidence=verdict.evidence,
        )
        if not verdict.passed:
            return self.finish(JobStatus.REJECTED, "gate_failed")

        # 6. register (only a challenger that passed the gate), with the verdict beside its evaluation
        mv = stages.register_candidate(
            candidate, model=p.model, actor=ACTOR, gate=verdict.as_dict()
        )
        self.store.retraining.set_job(self.id, challenger_version_id=mv.id)
        self.detail["challenger_version"] = mv.version
        self.step("registration", "ok", f"{mv}", model_version_id=mv.id)

        reason = f"retrain job {self.id} ({self.detail.get('trigger', '')}): {verdict.reason}"
        if not p.canary:
            # Traffic first: if the live deployment cannot take the new version, the job fails
            # and the champion alias still names what clients are served.
            try:
                switched = self._switch_traffic(champion.version, mv.version, reason)
            except Exception as exc:
                self.step(
                    "promotion", "failed", f"switching {p.deployment} to v{mv.version}: {exc}"
                )
                return self.finish(JobStatus.FAILED, "traffic_switch_failed")
            stages.registry.set_alias(p.model, "champion", mv.version, actor=ACTOR, reason=reason)
            served = f"; {p.deployment} now serves it" if switched else ""
            self.step("promotion", "ok", f"champion -> v{mv.version} (no canary){served}")
            self._move_references(snap)
            return self.finish(JobStatus.PROMOTED, "promoted")
        return self._canary(champion.version, mv.version, reason, snap)

    def _switch_traffic(self, champion: int, version: int, reason: str) -> bool:
        """Send all of the policy's running deployment to ``version``, keeping the old champion
        loaded at 0% for an instant rollback; False when the deployment is not running."""
        from workbench.exceptions import NotFoundError

        p = self.policy
        try:
            dep = self.store.deployments.get(p.deployment)
        except NotFoundError:
            return False
        if dep.get("status") != "running":
            return False
        self.stages.serving.set_traffic(
            p.deployment, {champion: 0.0, version: 1.0}, actor=ACTOR, reason=reason
        )
        return True

    def _move_references(self, snap: Any) -> None:
        """After a promotion, the drift monitors of the policy's triggers are refitted on the new
        version's training data (the snapshot), keeping their detector, backend and settings."""
        moved = []
        for trig in self.policy.triggers:
            if not isinstance(trig, DriftTrigger):
                continue
            record = self.store.monitors.get(trig.monitor)
            if record["kind"] not in ("data_drift", "prediction_drift", "online_drift"):
                continue
            old = record["reference_dataset_version_id"]
            self.stages.monitoring.refit(trig.monitor, reference=snap)
            moved.append({"monitor": trig.monitor, "from": old, "to": snap.id})
        if moved:
            self.detail["references"] = moved
            self.step(
                "reference",
                "ok",
                "; ".join(
                    f"{m['monitor']}: reference dataset version #{m['from']} -> #{m['to']} ({snap})"
                    for m in moved
                ),
                moved=moved,
            )

    @staticmethod
    def _summary(entry: dict[str, Any], weights: dict[Any, float]) -> dict[str, Any]:
        analysis = entry["analysis"]
        return {
            "decision": entry["decision"],
            "weights": {str(k): float(v) for k, v in weights.items()},
            "versions": {
                str(v): {
                    k: a.get(k)
                    for k in ("requests", "errors", "error_rate", "p99_ms", "labels", "accuracy")
                }
                for v, a in analysis["versions"].items()
            },
            "failed": [c["check"] for c in analysis.get("checks", []) if c.get("failed")],
        }

    @staticmethod
    def _labels_judged(rollout: Any) -> bool:
        """True once the canary's accuracy check has its labels (or another check already failed)."""
        checks = rollout.checks(rollout.analyze())
        if any(c["failed"] for c in checks):
            return True  # let advance() roll back now
        return all(c["failed"] is not None for c in checks if c["check"] == "accuracy")

    def _canary(self, champion: int, challenger: int, reason: str, snap: Any) -> dict[str, Any]:
        from workbench.serving import CanaryRollout

        stages, p = self.stages, self.policy
        rollout = CanaryRollout(
            stages.serving,
            p.deployment,
            champion=champion,
            challenger=challenger,
            steps=p.canary_steps,
            max_error_rate=p.max_error_rate,
            min_requests=p.min_requests,
            max_accuracy_drop=p.max_accuracy_drop,
            min_labels=p.min_labels,
            actor=ACTOR,
            metric=p.canary_metric,
            scores=_version_scores(stages, p.model),
        )
        started = rollout.start()
        self.step(
            "canary",
            "started",
            f"challenger v{challenger} at {({int(k): v for k, v in started.items()})[challenger]:.0%}",
            weights={str(k): v for k, v in started.items()},
        )
        outcome, steps = "waiting", []
        for _ in range(p.max_canary_rounds):
            weights = dict(rollout.schedule[rollout.step])
            if p.canary_wait_for_labels and not self._labels_judged(rollout):
                outcome = "waiting"  # no step moves on before its accuracy can be judged
                time.sleep(p.canary_poll_s)
                continue
            outcome = rollout.advance()
            if outcome != "waiting":
                s = self._summary(rollout.log[-1], weights)
                steps.append(s)
                ch = s["versions"][str(challenger)]
                self.step(
                    "canary",
                    outcome,
                    f"at {weights[challenger]:.0%}: challenger {ch['requests']} requests, "
                    f"{ch['errors']} errors, accuracy "
                    + ("n/a" if ch["accuracy"] is None else f"{ch['accuracy']:.3f}")
                    + f" on {ch['labels']} labels"
                    + (f"; failed {s['failed']}" if s["failed"] else ""),
                    **s,
                )
            if outcome in ("completed", "rolled_back"):
                break
            time.sleep(p.canary_poll_s)  # real clients send the requests the analysis waits for
        self.detail["canary"] = steps
        if outcome == "completed":
            stages.registry.set_alias(p.model, "champion", challenger, actor=ACTOR, reason=reason)
            self.step("promotion", "ok", f"champion -> v{challenger}")
            self._move_references(snap)
            return self.finish(JobStatus.PROMOTED, "promoted")
        if outcome != "rolled_back":
            stages.serving.rollback(
                p.deployment,
                to_version=champion,
                actor=ACTOR,
                reason=f"retrain job {self.id}: canary did not finish in {p.max_canary_rounds} rounds",
            )
        last = self.store.deployments.list_traffic(p.deployment)[-1]
        self.detail["rollback"] = {"reason": last["reason"], "traffic_change_id": last["id"]}
        self.step(
            "rollback",
            "ok",
            f"traffic back to v{champion}: {last['reason']}",
            traffic_change_id=last["id"],
        )
        return self.finish(JobStatus.ROLLED_BACK, "rolled_back")


def check_policy(stages: Stages, policy: LoopPolicy) -> None:
    """Fail early, with the next action, when a policy names things that do not exist."""
    stages.datasets.get(policy.train)
    if policy.holdout is not None:
        stages.datasets.get(policy.holdout)
    try:
        stages.registry.get(policy.model, "champion")
    except WorkbenchError as exc:
        raise ConfigError(
            f"policy {policy.name!r}: model {policy.model!r} has no champion; set one first ({exc})"
        ) from exc


def _version_scores(stages: Stages, model: str) -> Any:
    """``scores(version, records) -> (classes, proba)`` for the canary's probability metrics: the
    logged inputs replayed through each version's own bundle (loaded once per version)."""
    bundles: dict[int, Any] = {}

    def scores(version: int, records: list[dict[str, Any]]) -> tuple[list[Any], Any]:
        from workbench.features import coerce_records

        if version not in bundles:
            bundles[version] = stages.registry.load(model, version)
        bundle = bundles[version]
        frame = coerce_records(records, bundle.features, allow_missing=True)
        return list(bundle.classes), bundle.predict_proba_frame(frame)[1]

    return scores
