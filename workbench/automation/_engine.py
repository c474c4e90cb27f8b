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
    drift_trigger_ids,
    performance_dropped,
    snapshot_rows,
    warm_start_space,
)
from workbench.exceptions import ConfigError, DatasetValidationError, WorkbenchError

if TYPE_CHECKING:
    from workbench.api import Workbench

__all__ = ["Engine", "TERMINAL"]

ACTOR = "automation"
TERMINAL = {"PROMOTED", "ROLLED_BACK", "REJECTED", "FAILED", "SKIPPED", "INTERRUPTED"}
RUNNABLE = ("SCHEDULED", "APPROVED")
#: jobs that count against cooldown and budget (everything that was admitted)
_COUNTED = (
    "SCHEDULED",
    "PENDING_APPROVAL",
    "APPROVED",
    "RUNNING",
    "PROMOTED",
    "ROLLED_BACK",
    "REJECTED",
    "FAILED",
    "INTERRUPTED",
)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Engine:
    """Policies → jobs → pipeline, on one Workbench."""

    def __init__(self, bench: Workbench, *, runner: str = "notebook"):
        self.bench = bench
        self.store = bench.store
        self.runner = runner

    # --------------------------------------------------------------- policies
    def policy(self, name: str) -> LoopPolicy:
        return LoopPolicy.from_dict(self.store.get_policy(name)["config"])

    # ----------------------------------------------------------------- events
    def _events(
        self, policy: LoopPolicy, state: dict[str, Any], now: float
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for trig in policy.triggers:
            if isinstance(trig, DriftTrigger):
                results = self.store.drift_results(trig.monitor)
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
            elif isinstance(trig, PerformanceTrigger):
                ev = self._performance_event(policy, trig)
                if ev:
                    events.append(ev)
        return events

    def _performance_event(
        self, policy: LoopPolicy, trig: PerformanceTrigger
    ) -> dict[str, Any] | None:
        from workbench.evaluation import score

        champ = self.bench.registry.get(policy.model, "champion")
        rows = self.store.labeled_predictions(policy.deployment, model_version_id=champ.id)
        if len(rows) < trig.min_labels or trig.metric not in champ.metrics:
            return None
        rows = rows[-trig.min_labels :]
        pairs = []
        for r in rows:
            preds = r["prediction"] if isinstance(r["prediction"], list) else [r["prediction"]]
            labels = r["label"] if isinstance(r["label"], list) else [r["label"]]
            pairs += list(zip(labels, preds, strict=False))
        recent = score([a for a, _ in pairs], [b for _, b in pairs]).get(trig.metric)
        if recent is None or not performance_dropped(
            champ.metrics[trig.metric], recent, drop=trig.drop
        ):
            return None
        return {
            "key": f"{policy.name}:performance:{rows[-1]['request_id']}",
            "trigger": f"{trig.metric} {recent:.4f} on the last {len(rows)} labels vs champion "
            f"{champ.metrics[trig.metric]:.4f} (drop > {trig.drop})",
        }

    # ------------------------------------------------------------------- tick
    def tick(self, *, now: float | None = None, run: bool = True) -> dict[str, Any]:
        """Evaluate every enabled policy once: new events become jobs; runnable jobs run (if ``run``)."""
        now = time.time() if now is None else now
        created: list[int] = []
        ran: list[dict[str, Any]] = []
        for row in self.store.list_policies(enabled_only=True):
            policy = LoopPolicy.from_dict(row["config"])
            state = dict(row["state"] or {})
            for ev in self._events(policy, state, now):
                job = self._admit(policy, ev, now)
                if job is not None:
                    created.append(job)
            state["cron_since"] = datetime.fromtimestamp(now, UTC).isoformat()
            state["last_check"] = state["cron_since"]
            self.store.set_policy_state(policy.name, state)
        if run:
            for job in self.store.query(
                "SELECT id FROM retrain_jobs WHERE policy IS NOT NULL AND status IN ('SCHEDULED', 'APPROVED') ORDER BY id"
            ):
                out = self.run_job(job["id"])
                if out is not None:
                    ran.append(out)
        return {"created": created, "ran": ran, "at": now}

    def _admit(self, policy: LoopPolicy, ev: dict[str, Any], now: float) -> int | None:
        if self.store.query_one("SELECT id FROM retrain_jobs WHERE event_key = ?", [ev["key"]]):
            return None  # seen before: cheap path; the UNIQUE index is what guarantees it
        history = [
            {"started": _epoch(j["started_at"]), "compute_s": j["compute_s"]}
            for j in self.store.policy_jobs(policy.name)
            if j["status"] in _COUNTED and j["approval"] != "REJECTED"
        ]
        ok, reason = admission(now, history, cooldown_s=policy.cooldown_s, budget=policy.budget)
        detail = {"trigger": ev["trigger"], "admission": reason, "policy": policy.to_dict()}
        if not ok:
            return self.store.claim_retrain_job(
                ev["key"],
                policy=policy.name,
                status="SKIPPED",
                decision=reason.split(":")[0],
                drift_result_id=ev.get("drift_result_id"),
                detail=detail,
            )
        return self.store.claim_retrain_job(
            ev["key"],
            policy=policy.name,
            status="PENDING_APPROVAL" if policy.approval else "SCHEDULED",
            approval="PENDING" if policy.approval else None,
            drift_result_id=ev.get("drift_result_id"),
            detail=detail,
        )

    # --------------------------------------------------------------- approval
    def answer(
        self, job_id: int, *, approve: bool, actor: str | None = None, reason: str = ""
    ) -> dict[str, Any]:
        job = self.store.get_retrain_job(job_id)
        if job["approval"] != "PENDING":
            raise WorkbenchError(
                f"retrain job {job_id} is not waiting for approval (status {job['status']}, approval {job['approval']})."
            )
        moved = self.store.transition_retrain_job(
            job_id,
            from_status=("PENDING_APPROVAL",),
            to_status="APPROVED" if approve else "REJECTED",
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
        return self.store.get_retrain_job(job_id)

    # ---------------------------------------------------------------- running
    def run_job(self, job_id: int) -> dict[str, Any] | None:
        """Run one SCHEDULED/APPROVED job; None if another runner took it (each job runs at most once)."""
        if not self.store.transition_retrain_job(
            job_id, from_status=RUNNABLE, to_status="RUNNING", runner=self.runner
        ):
            return None
        job = self.store.get_retrain_job(job_id)
        policy = LoopPolicy.from_dict(job["detail"]["policy"])
        t0 = time.monotonic()
        try:
            out = Pipeline(self.bench, job, policy).run()
        except Exception as exc:
            self.store.record_retrain_step(job_id, "error", "failed", {"summary": repr(exc)[:300]})
            self.store.update_retrain_job(
                job_id,
                status="FAILED",
                compute_s=time.monotonic() - t0,
                detail={**job["detail"], "error": repr(exc)},
            )
            return {"job_id": job_id, "status": "FAILED", "error": repr(exc)}
        self.store.update_retrain_job(job_id, compute_s=time.monotonic() - t0)
        return out

    def interrupt_orphans(self, runner_prefix: str) -> list[int]:
        """Jobs left RUNNING by an earlier incarnation of a runner are marked INTERRUPTED, never rerun."""
        out = []
        for j in self.store.query(
            "SELECT id, runner FROM retrain_jobs WHERE status = 'RUNNING' AND runner LIKE ? AND runner != ?",
            [runner_prefix + "%", self.runner],
        ):
            if self.store.transition_retrain_job(
                j["id"], from_status=("RUNNING",), to_status="INTERRUPTED", ended_at=_now_iso()
            ):
                out.append(j["id"])
        return out


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Pipeline:
    """snapshot → validate → warm-started search → evaluate → gate → register → canary → promote/rollback."""

    def __init__(self, bench: Workbench, job: dict[str, Any], policy: LoopPolicy):
        self.bench, self.job, self.policy = bench, job, policy
        self.store = bench.store
        self.id = job["id"]
        self.detail: dict[str, Any] = dict(job["detail"])

    def step(self, name: str, status: str, summary: str, **detail: Any) -> None:
        self.store.record_retrain_step(self.id, name, status, {"summary": summary, **detail})

    def finish(self, status: str, decision: str) -> dict[str, Any]:
        self.store.update_retrain_job(self.id, status=status, decision=decision, detail=self.detail)
        return {
            "job_id": self.id,
            "status": status,
            **{k: v for k, v in self.detail.items() if k != "policy"},
        }

    def run(self) -> dict[str, Any]:
        import polars as pl

        from workbench.datasets import Checks

        bench, p = self.bench, self.policy
        # 1. snapshot: the policy's training data plus the deployment's labelled requests
        train = bench.datasets.get(p.train)
        base = bench.datasets.load(train)
        rows = []
        for r in self.store.labeled_requests(p.deployment):
            recs = r["features"] if isinstance(r["features"], list) else [r["features"]]
            labs = r["label"] if isinstance(r["label"], list) else [r["label"]]
            rows += [{**rec, train.target: lab} for rec, lab in zip(recs, labs, strict=False)]
        new = (
            pl.DataFrame(rows, schema=base.schema, orient="row").unique(maintain_order=True)
            if rows
            else base.clear()
        )
        keep_base, keep_new = snapshot_rows(
            base.height, new.height, mode=p.snapshot, window=p.window
        )
        frame = (
            pl.concat([base.tail(keep_base), new.tail(keep_new)])
            if keep_base or keep_new
            else base.clear()
        )
        summary = f"{p.snapshot}: {keep_base} rows of {train} + {keep_new} labelled requests"
        # 2. validate while recording the version: a failing check records nothing
        checks = Checks(
            schema={c: str(t) for c, t in base.schema.items()},
            target=train.target,
            min_rows=p.min_rows,
            max_null_fraction=0.0,
        )
        try:
            snap = bench.datasets.ingest(
                frame, name=train.name, target=train.target, checks=checks, parent=train
            )
        except DatasetValidationError as exc:
            self.step("snapshot", "ok", summary)
            self.step("validation", "failed", str(exc)[:300])
            self.detail["validation"] = str(exc)
            return self.finish("FAILED", "invalid_data")
        self.store.update_retrain_job(self.id, new_dataset_version_id=snap.id)
        self.step("snapshot", "ok", f"{summary} -> {snap}", dataset_version_id=snap.id)
        self.step("validation", "passed", f"{len(snap.validation)} checks passed")
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

        champion = bench.registry.get(p.model, "champion")
        champ_config = {k: v for k, v in champion.params.items() if not k.startswith("_")}
        space = warm_start_space(champ_config, factor=p.warm_start_factor) if champ_config else None
        alg = (
            BasicVariantGenerator(points_to_evaluate=[champ_config], random_state=p.seed)
            if champ_config
            else "random"
        )
        result = bench.experiments.search(
            snap,
            name=f"retrain-{self.id}",
            space=space,
            num_samples=p.num_samples,
            metric=p.gate.metric,
            seed=p.seed,
            search_alg=alg,
            progress=None,
        )
        self.store.update_retrain_job(self.id, experiment_id=result.experiment_id)
        self.step(
            "search",
            "ok",
            f"experiment #{result.experiment_id}: {len(result.trials)} trials warm-started from v{champion.version}, "
            f"best cv {p.gate.metric}={result.best_metrics.get(p.gate.metric, float('nan')):.4f}",
            warm_start=champ_config,
            experiment_id=result.experiment_id,
        )

        # 4. evaluate both on the fresh holdout
        holdout = bench.datasets.get(p.holdout)
        bundle = bench.experiments.fit_bundle(snap, result.best_config, seed=p.seed)
        chall_metrics = bench.experiments.evaluate(bundle, holdout)
        champ_metrics = bench.experiments.evaluate(
            bench.registry.load(p.model, champion.version), holdout
        )
        self.step(
            "evaluation",
            "ok",
            f"on {holdout}: champion {champ_metrics.get(p.gate.metric):.4f}, challenger {chall_metrics.get(p.gate.metric):.4f}",
            champion=champ_metrics,
            challenger=chall_metrics,
            holdout_id=holdout.id,
        )

        # 5. gate
        verdict = p.gate.judge(champ_metrics, chall_metrics)
        self.detail.update(gate=verdict.as_dict(), champion_version=champion.version)
        self.step(
            "gate",
            "passed" if verdict.passed else "failed",
            verdict.reason,
            verdict=verdict.as_dict(),
        )
        if not verdict.passed:
            return self.finish("REJECTED", "gate_failed")

        # 6. register
        mv = bench.registry.register(
            p.model,
            bundle,
            metrics=chall_metrics,
            experiment_id=result.experiment_id,
            trial_id=result.best_trial_id,
            dataset_version_id=snap.id,
            actor=ACTOR,
        )
        self.store.link("dataset_version", holdout.id, "evaluated", "model_version", mv.id)
        self.store.update_retrain_job(self.id, challenger_version_id=mv.id)
        self.detail["challenger_version"] = mv.version
        self.step("registration", "ok", f"{mv}", model_version_id=mv.id)

        reason = f"retrain job {self.id} ({self.detail.get('trigger', '')}): {verdict.reason}"
        if not p.canary:
            bench.registry.set_alias(p.model, "champion", mv.version, actor=ACTOR, reason=reason)
            self.step("promotion", "ok", f"champion -> v{mv.version} (no canary)")
            return self.finish("PROMOTED", "promoted")
        return self._canary(champion.version, mv.version, reason)

    def _canary(self, champion: int, challenger: int, reason: str) -> dict[str, Any]:
        from workbench.serving import CanaryRollout

        bench, p = self.bench, self.policy
        rollout = CanaryRollout(
            bench.serving,
            p.deployment,
            champion=champion,
            challenger=challenger,
            steps=p.canary_steps,
            max_error_rate=p.max_error_rate,
            min_requests=p.min_requests,
            actor=ACTOR,
        )
        rollout.start()
        outcome = "waiting"
        for _ in range(p.max_canary_rounds):
            bench.serving.flush_logs(p.deployment)
            outcome = rollout.advance()
            if outcome in ("completed", "rolled_back"):
                break
            time.sleep(1.0)  # real clients send the requests the analysis waits for
        self.step("canary", outcome, f"{len(rollout.log)} analysed steps", log=rollout.log[-3:])
        if outcome == "completed":
            bench.registry.set_alias(p.model, "champion", challenger, actor=ACTOR, reason=reason)
            self.step("promotion", "ok", f"champion -> v{challenger}")
            return self.finish("PROMOTED", "promoted")
        if outcome != "rolled_back":
            bench.serving.rollback(
                p.deployment,
                to_version=champion,
                actor=ACTOR,
                reason=f"retrain job {self.id}: canary did not finish",
            )
        self.step("rollback", "ok", f"traffic back to v{champion}")
        return self.finish("ROLLED_BACK", "rolled_back")


def check_policy(bench: Workbench, policy: LoopPolicy) -> None:
    """Fail early, with the next action, when a policy names things that do not exist."""
    bench.datasets.get(policy.train)
    bench.datasets.get(policy.holdout)
    try:
        bench.registry.get(policy.model, "champion")
    except WorkbenchError as exc:
        raise ConfigError(
            f"policy {policy.name!r}: model {policy.model!r} has no champion; set one first ({exc})"
        ) from exc
