"""Pure policy logic of the closed loop: triggers, cron, cooldown, budget, gate, warm start, snapshots.

Nothing here imports Ray or touches the store; the scheduler feeds it rows it
read and acts on what it returns, so every rule is unit-tested on plain data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from workbench._cron import CronSchedule
from workbench.evaluation import gain
from workbench.exceptions import ConfigError

__all__ = [
    "CronSchedule",
    "DriftTrigger",
    "ScheduleTrigger",
    "PerformanceTrigger",
    "Budget",
    "Gate",
    "GateVerdict",
    "LoopPolicy",
    "drift_trigger_ids",
    "performance_dropped",
    "admission",
    "compute_used",
    "search_budget",
    "warm_start_space",
    "snapshot_rows",
]

DAY_S = 86400.0


# ------------------------------------------------------------------- triggers
@dataclass(frozen=True)
class DriftTrigger:
    """Retrain when ``monitor`` reports drift in ``windows`` consecutive windows."""

    monitor: str
    windows: int = 1

    def __post_init__(self) -> None:
        if self.windows < 1:
            raise ConfigError("DriftTrigger.windows must be at least 1")


@dataclass(frozen=True)
class ScheduleTrigger:
    """Retrain on a cron schedule (UTC)."""

    cron: str

    def __post_init__(self) -> None:
        CronSchedule(self.cron)


@dataclass(frozen=True)
class PerformanceTrigger:
    """Retrain when live quality drops.

    With ``monitor`` (the name of a :meth:`Monitoring.performance_monitor`), each
    ``degraded`` window of that monitor (labels joined to logged requests by
    request id, metric under its floor) is one event, linked to that window's
    result in the lineage. Without it, the champion's ``metric`` on its latest
    ``min_labels`` labelled requests must fall more than ``drop`` below its
    registered holdout value.
    """

    metric: str = "f1"
    drop: float = 0.05
    min_labels: int = 50
    monitor: str | None = None


def drift_trigger_ids(results: Iterable[tuple[int, bool]], windows: int) -> list[int]:
    """Ids of the drift results that complete a run of ``windows`` consecutive drifting windows.

    After a run fires, counting starts again: 3 in a row with ``windows=3``
    fire once, 6 in a row fire twice. ``results`` are ``(id, is_drift)`` in id order.
    """
    fired, run = [], 0
    for rid, is_drift in results:
        run = run + 1 if is_drift else 0
        if run >= windows:
            fired.append(rid)
            run = 0
    return fired


def performance_dropped(champion: float, recent: float, *, drop: float, metric: str = "f1") -> bool:
    """True when ``recent`` is worse than ``champion`` by more than ``drop`` (absolute), in
    ``metric``'s direction (:func:`workbench.evaluation.lower_is_better`)."""
    return -gain(metric, champion, recent) > drop


# --------------------------------------------------------- cooldown and budget
@dataclass(frozen=True)
class Budget:
    """Limits on retraining: how many, and how much compute.

    Parameters
    ----------
    max_per_day
        At most this many admitted retrainings in any rolling 24 hours.
    max_compute_s
        At most this many seconds of retraining (wall seconds of each job's run,
        recorded as ``retrain_jobs.compute_s``) in any rolling 24 hours. A job is
        refused once the day's use reaches it, and a job's search never gets more
        than what is left.
    max_job_s
        The search of one job stops after this many seconds (Tune's
        ``time_budget_s``); the best trial found so far is used.

    Examples
    --------
    >>> search_budget(0.0, [{"started": -10.0, "compute_s": 250.0}],
    ...               Budget(max_compute_s=300, max_job_s=120))
    50.0
    """

    max_per_day: int | None = None
    max_compute_s: float | None = None
    max_job_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_per_day", "max_compute_s", "max_job_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"Budget.{name} must be positive (or None), got {value!r}")


def compute_used(now: float, history: Sequence[dict[str, Any]]) -> float:
    """Seconds of retraining recorded in the 24 hours before ``now``."""
    return sum(float(h.get("compute_s") or 0.0) for h in history if now - h["started"] < DAY_S)


def search_budget(now: float, history: Sequence[dict[str, Any]], budget: Budget) -> float | None:
    """Seconds the next job's search may run: ``max_job_s`` capped by what is left of
    ``max_compute_s`` today; None when neither is set (no limit)."""
    limits = []
    if budget.max_job_s is not None:
        limits.append(float(budget.max_job_s))
    if budget.max_compute_s is not None:
        limits.append(max(0.0, float(budget.max_compute_s) - compute_used(now, history)))
    return min(limits) if limits else None


def admission(
    now: float,
    history: Sequence[dict[str, Any]],
    *,
    cooldown_s: float,
    budget: Budget,
) -> tuple[bool, str]:
    """May a new retraining start at ``now`` (epoch seconds)?

    ``history`` holds the policy's earlier retrainings that counted (not
    skipped, not rejected by a person): ``{"started": epoch_s, "compute_s": float}``.
    Returns ``(True, "ok")`` or ``(False, reason)``.
    """
    if history and cooldown_s > 0:
        last = max(h["started"] for h in history)
        if now - last < cooldown_s:
            return False, f"cooldown: last retraining {now - last:.0f}s ago < {cooldown_s:.0f}s"
    day = [h for h in history if now - h["started"] < DAY_S]
    if budget.max_per_day is not None and len(day) >= budget.max_per_day:
        return False, f"budget: {len(day)} retrainings in 24h (max {budget.max_per_day})"
    used = compute_used(now, history)
    if budget.max_compute_s is not None and used >= budget.max_compute_s:
        return (
            False,
            f"budget: {used:.1f}s of retraining compute in 24h (max {budget.max_compute_s:g}s)",
        )
    return True, "ok"


# ----------------------------------------------------------------------- gate
@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    metric: str
    champion: float
    challenger: float
    margin: float
    regressions: dict[str, dict[str, float]]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Gate:
    """The challenger must beat the champion by ``margin`` on ``metric`` and lose no more than
    ``tolerance`` on any ``guarded`` metric; better and worse follow each metric's direction
    (:func:`workbench.evaluation.lower_is_better`: less wins for rmse, mae, log_loss)."""

    metric: str = "f1"
    margin: float = 0.0
    guarded: tuple[str, ...] = ()
    tolerance: float = 0.0

    def judge(self, champion: dict[str, float], challenger: dict[str, float]) -> GateVerdict:
        missing = [
            m for m in (self.metric, *self.guarded) if m not in champion or m not in challenger
        ]
        if missing:
            raise ConfigError(f"gate metrics {missing} are not in both evaluations")
        won = gain(self.metric, champion[self.metric], challenger[self.metric])
        regressions = {}
        for g in self.guarded:
            loss = -gain(g, champion[g], challenger[g])
            if loss > self.tolerance + 1e-12:
                regressions[g] = {
                    "champion": champion[g],
                    "challenger": challenger[g],
                    "loss": loss,
                }
        beats = won >= self.margin - 1e-12 and not (self.margin > 0 and won <= 0)
        if not beats:
            reason = f"{self.metric} gain {won:+.4f} < margin {self.margin}"
        elif regressions:
            reason = f"regressed beyond {self.tolerance} on {sorted(regressions)}"
        else:
            reason = f"{self.metric} gain {won:+.4f} >= margin {self.margin}, no guarded regression"
        return GateVerdict(
            passed=beats and not regressions,
            metric=self.metric,
            champion=champion[self.metric],
            challenger=challenger[self.metric],
            margin=self.margin,
            regressions=regressions,
            reason=reason,
        )


# ------------------------------------------------------------------ warm start
def warm_start_space(config: dict[str, Any], *, factor: float = 3.0) -> dict[str, Any]:
    """A Tune space centred on ``config``: its family fixed, floats ``loguniform(v/factor, v*factor)``,
    positive ints ``randint`` over ``[v/factor, v*factor]``; other keys kept as they are."""
    from ray import tune

    if factor <= 1:
        raise ConfigError("warm-start factor must be > 1")
    space: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, bool) or key == "family" or key.startswith("_"):
            space[key] = value
        elif isinstance(value, float) and value > 0:
            space[key] = tune.loguniform(value / factor, value * factor)
        elif isinstance(value, int) and value > 0:
            lo = max(1, math.floor(value / factor))
            space[key] = tune.randint(lo, max(lo + 1, math.ceil(value * factor)) + 1)
        else:
            space[key] = value
    return space


# -------------------------------------------------------------------- snapshot
def snapshot_rows(n_base: int, n_new: int, *, mode: str, window: int | None) -> tuple[int, int]:
    """How many base rows and new rows go into the retraining snapshot: ``(keep_base, keep_new)``.

    ``cumulative`` keeps everything; ``sliding`` keeps the latest ``window``
    rows (new rows first, then the newest base rows; default window = ``n_base``,
    the size the champion was trained on).
    """
    if mode == "cumulative":
        return n_base, n_new
    if mode != "sliding":
        raise ConfigError(f"snapshot must be 'sliding' or 'cumulative', got {mode!r}")
    w = n_base if window is None else window
    if w < 1:
        raise ConfigError("a sliding window needs at least one row")
    keep_new = min(n_new, w)
    return min(n_base, w - keep_new), keep_new


# ---------------------------------------------------------------------- policy
#: the values of ``LoopPolicy.run_as`` (None: decided by the cluster the job runs on)
RUN_AS = (None, "inline", "ray_job")


@dataclass
class LoopPolicy:
    """A named retraining policy the scheduler evaluates; stored in the lineage store.

    Parameters
    ----------
    name, model, deployment
        The policy's name; the registered model whose champion it retrains; the deployment
        serving it (its labelled requests are the new data).
    train, holdout
        Dataset names; the latest version of each is used (``holdout`` should be fresh data).
    triggers
        Any of :class:`DriftTrigger`, :class:`ScheduleTrigger`, :class:`PerformanceTrigger`.
    cooldown_s, budget, approval
        No retraining within ``cooldown_s`` of the last; at most ``budget`` per day; with
        ``approval=True`` a job waits for ``approve(job_id)`` / ``reject(job_id)``.
    gate
        What a challenger must achieve against the champion on the holdout.
    snapshot, window
        ``"cumulative"`` or ``"sliding"`` (latest ``window`` rows).
    num_samples, warm_start_factor
        Trials of the warm-started search, and how far around the champion's config it looks.
    canary
        Roll out through a canary on the deployment (needs Ray Serve running it); otherwise
        the champion alias moves directly once the gate passes.
    canary_steps, max_error_rate, min_requests, max_accuracy_drop, min_labels
        The canary's steps and its rollback checks (see ``CanaryRollout``): the challenger's
        5xx rate, requests per step, and accuracy on requests whose labels arrived.
    max_canary_rounds, canary_poll_s
        The canary is judged every ``canary_poll_s`` seconds, at most ``max_canary_rounds``
        times; a canary that has not finished by then is rolled back.
    canary_wait_for_labels
        Hold each canary step until its accuracy check has ``min_labels`` labels on each side
        (labels arrive later than requests); without it a step moves on once the challenger
        served ``min_requests`` requests, judged on accuracy only if the labels are there.
    run_as
        Where a job's pipeline runs. ``"inline"``: in the process that runs the job (the
        notebook's :meth:`~workbench.automation.Automation.tick`, or the scheduler actor).
        ``"ray_job"``: submitted as a Ray Job (``JobSubmissionClient``) with the job's event key
        as its ``submission_id``, its entrypoint ``python -m workbench.automation.run_job``
        pinned to the head node (where the lineage store is). ``None`` (the default) decides
        when the job runs: ``"ray_job"`` when the workbench joined an existing cluster (an
        ``address=``, ``$RAY_ADDRESS``, or the scheduler actor inside such a cluster) and that
        cluster's job server (its dashboard) answers; otherwise ``"inline"``. The embedded
        default, a private local Ray started with its dashboard off, is always ``"inline"``.
    job_num_cpus
        ``entrypoint_num_cpus`` of the Ray Job. The entrypoint is a driver that waits for its
        Tune trials, which reserve their own CPUs; 0 lets it start on a head node with
        ``CPU: 0`` (the cluster template's).
    job_package
        Ship the installed ``workbench`` package with the Ray Job (``runtime_env`` ``py_modules``:
        0.3 MB zipped, 0.1 s to upload on loopback) so the job runs exactly the submitter's code;
        ``False`` when the cluster's image already has the same version installed.
    """

    name: str
    model: str
    deployment: str
    train: str
    holdout: str
    triggers: list[Any] = field(default_factory=list)
    cooldown_s: float = 3600.0
    budget: Budget = field(default_factory=Budget)
    approval: bool = False
    gate: Gate = field(default_factory=Gate)
    snapshot: str = "cumulative"
    window: int | None = None
    min_rows: int = 20
    num_samples: int = 2
    warm_start_factor: float = 3.0
    seed: int = 0
    canary: bool = True
    canary_steps: tuple[float, ...] = (0.1, 0.5, 1.0)
    max_error_rate: float = 0.02
    min_requests: int = 30
    max_accuracy_drop: float = 0.05
    min_labels: int = 30
    max_canary_rounds: int = 50
    canary_poll_s: float = 1.0
    canary_wait_for_labels: bool = False
    run_as: str | None = None
    job_num_cpus: float = 0.0
    job_package: bool = True

    def __post_init__(self) -> None:
        if self.run_as not in RUN_AS:
            raise ConfigError(
                f"LoopPolicy(run_as={self.run_as!r}): use 'inline', 'ray_job', or None (decided "
                "by the cluster: a Ray Job when joined to a cluster with a job server)."
            )
        if self.job_num_cpus < 0:
            raise ConfigError(f"LoopPolicy(job_num_cpus={self.job_num_cpus!r}) must be >= 0.")
        snapshot_rows(1, 0, mode=self.snapshot, window=self.window)
        for t in self.triggers:
            if not isinstance(t, DriftTrigger | ScheduleTrigger | PerformanceTrigger):
                raise ConfigError(f"unknown trigger {t!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["triggers"] = [{"kind": type(t).__name__, **asdict(t)} for t in self.triggers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoopPolicy:
        kinds = {c.__name__: c for c in (DriftTrigger, ScheduleTrigger, PerformanceTrigger)}
        d = dict(d)
        d["triggers"] = [
            kinds[t["kind"]](**{k: v for k, v in t.items() if k != "kind"}) for t in d["triggers"]
        ]
        d["budget"] = Budget(**d["budget"])
        g = dict(d["gate"])
        # A stored gate may hold a ``lower_is_better`` list; which metrics are lower-is-better
        # is evaluation's to say (evaluation.LOWER_IS_BETTER), so the stored list is not read.
        g.pop("lower_is_better", None)
        g["guarded"] = tuple(g["guarded"])
        d["gate"] = Gate(**g)
        d["canary_steps"] = tuple(d["canary_steps"])
        return cls(**d)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
