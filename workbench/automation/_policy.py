"""Pure policy logic of the closed loop: triggers, cron, cooldown, budget, gate, warm start, snapshots.

Nothing here imports Ray or touches the store; the scheduler feeds it rows it
read and acts on what it returns, so every rule is unit-tested on plain data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from workbench._cron import CronSchedule
from workbench.evaluation import gain, lower_is_better
from workbench.exceptions import ConfigError

__all__ = [
    "CronSchedule",
    "DriftTrigger",
    "ScheduleTrigger",
    "PerformanceTrigger",
    "Budget",
    "Gate",
    "GateVerdict",
    "GATE_TESTS",
    "LoopPolicy",
    "drift_trigger_ids",
    "performance_dropped",
    "admission",
    "compute_used",
    "search_budget",
    "warm_start_space",
    "snapshot_rows",
    "holdout_rows",
    "change_point",
    "wilson_interval",
    "triage_verdict",
    "labels_to_show",
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
#: the values of ``Gate.test``: None compares the two point values, as before significance tests
GATE_TESTS = (None, "paired_bootstrap", "mcnemar")
#: the least ``Gate.resamples``: fewer make the interval's ends too noisy to decide on
MIN_RESAMPLES = 1000
SUFFICIENT = "sufficient"
NOT_ENOUGH = "not enough evidence"


@dataclass(frozen=True)
class GateVerdict:
    """A gate's decision with its evidence; ``reason`` says it in words.

    ``champion``/``challenger`` are the gate metric's values on the whole holdout. With a test,
    ``interval`` is the ``1 - alpha`` interval of the paired difference (the challenger's gain,
    positive = better, in the metric's direction) and ``p_value`` its one-sided p-value (McNemar:
    the exact test's), ``n`` the holdout rows, and ``evidence`` ``"sufficient"`` when the test
    decided either way or ``"not enough evidence"`` when it could not (a holdout under
    ``min_samples`` rows, an interval across the margin, a McNemar test rejecting neither way).
    ``guarded`` holds each guarded metric's figures, ``regressions`` the guarded metrics that
    failed, ``fairness`` each fairness bound's figures (champion, challenger, bound, passed).
    """

    passed: bool
    metric: str
    champion: float
    challenger: float
    margin: float
    regressions: dict[str, dict[str, Any]]
    reason: str
    test: str | None = None
    n: int | None = None
    interval: list[float] | None = None
    p_value: float | None = None
    evidence: str | None = None
    alpha: float | None = None
    guarded: dict[str, dict[str, Any]] = field(default_factory=dict)
    fairness: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Gate:
    """What a challenger must show against the champion on the same holdout to be registered.

    Better and worse follow each metric's direction
    (:func:`workbench.evaluation.lower_is_better`: less wins for rmse, mae, log_loss).

    Parameters
    ----------
    metric, margin
        The challenger must gain at least ``margin`` on ``metric``. Without a test: on the two
        point values (a zero margin lets a tie pass, a positive margin needs a real gain). With
        ``test="paired_bootstrap"``: the whole ``1 - alpha`` interval of the paired gain must lie
        above ``margin`` (strictly: an identical model does not pass a zero margin). With
        ``test="mcnemar"`` (``metric="accuracy"`` only): McNemar's one-sided exact test must
        reject "equally accurate" at ``alpha`` and the accuracy gain must be at least ``margin``.
    guarded, tolerance
        Metrics the challenger may not lose more than ``tolerance`` on. Without a test: the point
        loss. With a test (either: McNemar only speaks of accuracy), each guarded metric's paired
        bootstrap interval on the same resamples: it fails when the whole interval lies below
        ``-tolerance``, i.e. the loss beyond the tolerance is shown; an interval that merely
        reaches below is recorded (``guarded``) but does not fail: a guard refuses on evidence of
        harm, as the gate metric passes on evidence of a gain.
    test, alpha, resamples, seed
        ``None``, ``"paired_bootstrap"`` or ``"mcnemar"``; the level; the bootstrap's resamples
        (at least 1,000) and the seed of the resampling.
    min_samples
        With a test, a holdout under this many rows gives ``"not enough evidence"`` (not passed).
    fairness
        ``{gap: bound}`` over :func:`workbench.evaluation.fairness_gaps` of the predictions'
        sensitive groups, e.g. ``{"equalized_odds_difference": 0.1}``: a challenger whose gap is
        above the bound *and* wider than the champion's is refused; one that narrows a gap which
        is already too wide is not refused for it. A ``*_ratio`` gap (1 is parity) is a floor:
        refused below the bound and below the champion's. Needs ``Predictions`` with
        ``sensitive`` groups.

    :meth:`judge` takes two metric dicts (point values only: no test, no fairness) or two
    :class:`~workbench.evaluation.Predictions` of the models on the same holdout rows.

    Examples
    --------
    >>> Gate("f1", margin=0.01).judge({"f1": 0.90}, {"f1": 0.92}).passed
    True
    >>> from workbench.evaluation import Predictions
    >>> y = ["a", "b"] * 100
    >>> champ = Predictions.of("classification", y, y[:180] + ["a"] * 20)
    >>> chall = Predictions.of("classification", y, y[:184] + ["a"] * 16)
    >>> v = Gate("accuracy", test="paired_bootstrap").judge(champ, chall)
    >>> v.passed, v.evidence, v.n
    (False, 'not enough evidence', 200)
    """

    metric: str = "f1"
    margin: float = 0.0
    guarded: tuple[str, ...] = ()
    tolerance: float = 0.0
    test: str | None = None
    alpha: float = 0.05
    resamples: int = MIN_RESAMPLES
    seed: int = 0
    min_samples: int = 100
    fairness: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.test not in GATE_TESTS:
            raise ConfigError(
                f"Gate(test={self.test!r}): use None (compare the two values), "
                "'paired_bootstrap' (an interval of any metric's paired difference) or "
                "'mcnemar' (an exact test of accuracy)"
            )
        if self.test == "mcnemar" and self.metric != "accuracy":
            raise ConfigError(
                f"Gate(test='mcnemar') tests accuracy (right against wrong), not {self.metric!r}; "
                "use metric='accuracy', or test='paired_bootstrap' for any metric"
            )
        if not 0 < self.alpha < 1:
            raise ConfigError(f"Gate(alpha={self.alpha!r}) must be between 0 and 1, e.g. 0.05")
        if self.resamples < MIN_RESAMPLES:
            raise ConfigError(
                f"Gate(resamples={self.resamples!r}): at least {MIN_RESAMPLES} resamples, or the "
                "interval's ends are too noisy to decide on (1,000 on 10,000 rows take < 1 s)"
            )
        if self.min_samples < 1:
            raise ConfigError(f"Gate(min_samples={self.min_samples!r}) must be at least 1")
        for name, bound in self.fairness.items():
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise ConfigError(
                    f"Gate(fairness={{{name!r}: {bound!r}}}): a bound is a number, e.g. "
                    "{'equalized_odds_difference': 0.1}"
                )

    @property
    def needs_predictions(self) -> bool:
        """Whether :meth:`judge` needs the two models' ``Predictions`` (a test or a fairness
        bound), not only their metrics."""
        return self.test is not None or bool(self.fairness)

    def judge(self, champion: Any, challenger: Any) -> GateVerdict:
        """The verdict on ``challenger`` against ``champion``: two metric dicts, or two
        :class:`~workbench.evaluation.Predictions` on the same holdout rows."""
        from workbench.evaluation import Predictions

        if isinstance(champion, Mapping) and isinstance(challenger, Mapping):
            if self.needs_predictions:
                raise ConfigError(
                    "this gate has a significance test or a fairness bound: pass the two models' "
                    "Predictions on the same holdout (bench.experiments.predict(bundle, holdout, "
                    "sensitive_features=...)), not their metrics"
                )
            return self._judge_values(champion, challenger)
        if not (isinstance(champion, Predictions) and isinstance(challenger, Predictions)):
            raise ConfigError(
                "Gate.judge takes two metric dicts or two Predictions, got "
                f"{type(champion).__name__} and {type(challenger).__name__}"
            )
        champion.check_paired(challenger)
        if self.test is None:
            from workbench.evaluation import prediction_metrics

            verdict = self._judge_values(
                prediction_metrics(champion), prediction_metrics(challenger)
            )
            verdict = _replace_verdict(verdict, n=champion.n)
        else:
            verdict = self._judge_tested(champion, challenger)
        if self.fairness:
            verdict = self._judge_fairness(verdict, champion, challenger)
        return verdict

    # ----------------------------------------------------------- point values
    def _judge_values(
        self, champion: Mapping[str, float], challenger: Mapping[str, float]
    ) -> GateVerdict:
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

    # ------------------------------------------------------------------ tested
    def _judge_tested(self, champion: Any, challenger: Any) -> GateVerdict:
        from workbench.evaluation import mcnemar, paired_bootstrap_many

        n = champion.n
        level = f"{100 * (1 - self.alpha):g}%"
        boot_metrics = list(dict.fromkeys(self.guarded))
        if self.test == "paired_bootstrap":
            boot_metrics = list(dict.fromkeys([self.metric, *self.guarded]))
        common = {"test": self.test, "n": n, "alpha": self.alpha}
        if n < self.min_samples:
            from workbench.evaluation import prediction_metrics

            a = prediction_metrics(champion).get(self.metric, float("nan"))
            b = prediction_metrics(challenger).get(self.metric, float("nan"))
            return GateVerdict(
                passed=False,
                metric=self.metric,
                champion=a,
                challenger=b,
                margin=self.margin,
                regressions={},
                reason=(
                    f"not enough evidence: the holdout has {n} rows, fewer than "
                    f"min_samples={self.min_samples}; score both models on a holdout of at least "
                    f"{self.min_samples} rows (or lower Gate(min_samples=...))"
                ),
                evidence=NOT_ENOUGH,
                **common,
            )
        boot = (
            paired_bootstrap_many(
                boot_metrics,
                champion,
                challenger,
                resamples=self.resamples,
                seed=self.seed,
                alpha=self.alpha,
            )
            if boot_metrics
            else {}
        )
        if self.test == "paired_bootstrap":
            r = boot[self.metric]
            low, high = r["interval"]
            d = r["difference"]
            beats = low > self.margin
            decided = beats or high <= self.margin
            figures = (
                f"{self.metric} gain {d:+.4f}, {level} interval [{low:+.4f}, {high:+.4f}] "
                f"(paired bootstrap, n={n}, {r['resamples_used']} resamples)"
            )
            if beats:
                reason = f"{figures} clears margin {self.margin}"
            elif decided:
                reason = f"{figures} does not clear margin {self.margin}"
            else:
                reason = f"not enough evidence: {figures} straddles margin {self.margin}; " + (
                    _rows_needed_bootstrap(n, d, low, high, self.margin)
                )
            values = {"interval": [low, high], "p_value": r["p_value"]}
        else:
            r = mcnemar(champion, challenger, alpha=self.alpha)
            d, p, p_rev = r["difference"], r["p_value"], r["p_value_reverse"]
            beats = p < self.alpha and d >= self.margin - 1e-12
            decided = p < self.alpha or p_rev < self.alpha
            figures = (
                f"accuracy gain {d:+.4f}, McNemar p={p:.3g} (n={n}; of the {r['discordant']} "
                f"rows where the models disagree, the challenger is right on "
                f"{r['challenger_only']})"
            )
            if beats:
                reason = f"{figures} < alpha {self.alpha}, gain >= margin {self.margin}"
            elif p < self.alpha:
                reason = f"{figures}: significant but below margin {self.margin}"
            elif decided:
                reason = f"{figures}: the champion is the more accurate (p={p_rev:.3g})"
            else:
                reason = f"not enough evidence: {figures} >= alpha {self.alpha}; " + (
                    _rows_needed_mcnemar(n, r, self.alpha)
                )
            values = {"interval": None, "p_value": p}
        guarded, regressions = {}, {}
        for g in self.guarded:
            gr = boot[g]
            low_g, high_g = gr["interval"]
            entry = {
                "champion": gr["champion"],
                "challenger": gr["challenger"],
                "loss": -gr["difference"],
                "interval": [low_g, high_g],
                "passed": not high_g < -self.tolerance,
            }
            guarded[g] = entry
            if not entry["passed"]:
                regressions[g] = {k: v for k, v in entry.items() if k != "passed"}
        if regressions:
            reason += (
                f"; shown to regress beyond tolerance {self.tolerance} on {sorted(regressions)} "
                f"(whole {level} interval of the gain below {-self.tolerance})"
            )
        elif beats and self.guarded:
            reason += ", no guarded regression shown"
        return GateVerdict(
            passed=beats and not regressions,
            metric=self.metric,
            champion=r["champion"],
            challenger=r["challenger"],
            margin=self.margin,
            regressions=regressions,
            reason=reason,
            evidence=SUFFICIENT if decided else NOT_ENOUGH,
            guarded=guarded,
            **values,
            **common,
        )

    # ---------------------------------------------------------------- fairness
    def _judge_fairness(self, verdict: GateVerdict, champion: Any, challenger: Any) -> GateVerdict:
        if not champion.sensitive or not challenger.sensitive:
            raise ConfigError(
                "this gate has fairness bounds but the predictions have no sensitive groups: "
                "score both models with sensitive_features=[...] (LoopPolicy(sensitive_features="
                "...), bench.experiments.predict(..., sensitive_features=...))"
            )
        from workbench.evaluation import fairness_gaps
        from workbench.evaluation._fairness import GAPS  # the gaps every report has: one owner

        gaps_a, gaps_b = fairness_gaps(champion), fairness_gaps(challenger)
        figures, refused = {}, []
        known = set(gaps_a) | set(gaps_b) | set(GAPS)
        for name, bound in self.fairness.items():
            if name not in known and not name.endswith("_difference"):
                raise ConfigError(
                    f"Gate(fairness=...) has no gap {name!r}; the gaps are {sorted(known)} "
                    "(and <metric>_difference for a metric of the fairness report)"
                )
            if name not in gaps_b:  # undefined for the challenger (e.g. a ratio of 0/0 rates)
                a_ = gaps_a.get(name)
                figures[name] = {
                    "champion": None if a_ is None else float(a_),
                    "challenger": None,
                    "bound": float(bound),
                    "passed": True,
                }
                continue
            b = float(gaps_b[name])
            floor = name.endswith("_ratio")  # parity is 1: a ratio bound is a minimum
            a = float(gaps_a[name]) if name in gaps_a else (math.inf if floor else -math.inf)
            beyond = b < bound if floor else b > bound
            wider = b < a if floor else b > a  # a gap the champion lacks counts as widened
            ok = not (beyond and wider)
            a = a if math.isfinite(a) else None
            figures[name] = {"champion": a, "challenger": b, "bound": float(bound), "passed": ok}
            if not ok:
                champ_text = "undefined" if a is None else f"{a:.4f}"
                refused.append(
                    f"{name} {b:.4f} {'<' if floor else '>'} {bound} (champion {champ_text})"
                )
        reason = verdict.reason
        if refused:
            reason += "; fairness: " + ", ".join(refused)
        return _replace_verdict(
            verdict, passed=verdict.passed and not refused, reason=reason, fairness=figures
        )


def _replace_verdict(verdict: GateVerdict, **changes: Any) -> GateVerdict:
    """A copy of ``verdict`` with ``changes``."""
    from dataclasses import replace

    return replace(verdict, **changes)


def _rows_needed_bootstrap(n: int, gain_: float, low: float, high: float, margin: float) -> str:
    """Roughly how many holdout rows would make the interval clear the margin, if the observed
    gain held: the interval narrows as 1/sqrt(n)."""
    if gain_ <= margin:
        return (
            "the observed gain is not above the margin, so more rows would not make it pass at "
            "this gain"
        )
    half = (high - low) / 2
    need = math.ceil(n * (half / (gain_ - margin)) ** 2)
    return f"about {need} holdout rows would be needed if the gain held"


def _rows_needed_mcnemar(n: int, r: dict[str, Any], alpha: float) -> str:
    """Roughly how many holdout rows would make McNemar's test reject, if the discordant rows'
    split held (normal approximation of the binomial)."""
    from scipy.stats import norm

    b, c = r["champion_only"], r["challenger_only"]
    if c <= b:
        return "the challenger is not right more often than the champion on these rows"
    z = (c - b) / math.sqrt(b + c)
    need = math.ceil(n * (norm.ppf(1 - alpha) / z) ** 2)
    return f"about {need} holdout rows would be needed if the split of the disagreements held"


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


def change_point(windows: list[dict[str, Any]], event_window_id: int) -> int | None:
    """The request-log id where a change began: the first request of the first window in the
    unbroken run of alarming windows (drift, or a degraded performance window) that ends at the
    event's window. ``windows`` are one monitor's, oldest first; None when the event's window is
    not among them.

    Examples
    --------
    >>> ws = [{"id": 1, "is_drift": 0, "first_request_log_id": 1},
    ...       {"id": 2, "is_drift": 1, "first_request_log_id": 51},
    ...       {"id": 3, "is_drift": 1, "first_request_log_id": 101}]
    >>> change_point(ws, 3), change_point(ws, 2), change_point(ws, 9)
    (51, 51, None)
    """
    ids = [w["id"] for w in windows]
    if event_window_id not in ids:
        return None
    i = ids.index(event_window_id)
    while i > 0 and windows[i - 1]["is_drift"]:
        i -= 1
    return int(windows[i]["first_request_log_id"])


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion ``k / n``.

    Examples
    --------
    >>> [round(v, 3) for v in wilson_interval(45, 50)]
    [0.786, 0.957]
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def triage_verdict(
    estimate: float,
    baseline: float,
    *,
    max_drop: float,
    interval: tuple[float, float] | None,
    metric: str = "accuracy",
) -> tuple[bool, str]:
    """Whether a shift hurts the model: ``(harmful, reason)``. Harmful when the estimated
    ``metric`` is more than ``max_drop`` worse than the baseline and, with an interval, when
    the interval lies wholly on the worse side of the baseline (a drop the data shows, not noise
    of a few labels; its size is the estimate's). For a higher-is-better metric (accuracy) the
    floor is ``baseline - max_drop``; for a lower-is-better one
    (:func:`~workbench.evaluation.lower_is_better`: RMSE, MAE, in the target's own units)
    ``max_drop`` is relative: the ceiling is ``baseline × (1 + max_drop)``.

    Requiring the interval's better end beyond the floor instead (the drop shown to exceed
    ``max_drop``) cost the harmful stream of ``bench/closed_loop_stream.py`` two windows: a
    7-point drop, 0.825 (0.766-0.871) against a floor of 0.845, was dismissed twice.

    Examples
    --------
    >>> triage_verdict(0.97, 0.96, max_drop=0.05, interval=(0.93, 0.99))[0]
    False
    >>> triage_verdict(0.825, 0.895, max_drop=0.05, interval=(0.766, 0.871))
    (True, 'estimated accuracy 0.825 (95% interval 0.766-0.871) under 0.845 (baseline 0.895 - max_drop 0.05)')
    >>> triage_verdict(0.85, 0.96, max_drop=0.05, interval=(0.70, 0.97))  # few labels
    (False, 'estimated accuracy 0.850 (95% interval 0.700-0.970) under 0.910 (baseline 0.960 - max_drop 0.05), but the interval reaches the baseline: not shown')
    >>> triage_verdict(0.93, 0.96, max_drop=0.05, interval=(0.91, 0.95))[0]  # a drop, a small one
    False
    >>> triage_verdict(2.0, 1.0, max_drop=0.05, interval=(1.6, 2.4), metric="rmse")[0]
    True
    >>> triage_verdict(1.2, 1.0, max_drop=0.05, interval=(0.9, 1.4), metric="rmse")[0]  # not shown
    False
    >>> triage_verdict(0.5, 1.0, max_drop=0.05, interval=(0.4, 0.6), metric="mae")[0]  # better
    False
    """
    where = "" if interval is None else f" (95% interval {interval[0]:.3f}-{interval[1]:.3f})"
    if lower_is_better(metric):
        bound = baseline * (1 + max_drop)
        beyond = estimate > bound
        shown = interval is None or interval[0] > baseline
        side, rule = "over", f"(baseline {baseline:.3f} x (1 + max_drop {max_drop:g}))"
    else:
        bound = baseline - max_drop
        beyond = estimate < bound
        shown = interval is None or interval[1] < baseline
        side, rule = "under", f"(baseline {baseline:.3f} - max_drop {max_drop:g})"
    text = f"estimated {metric} {estimate:.3f}{where} {side if beyond else 'not ' + side} {bound:.3f} {rule}"
    if beyond and not shown:
        return False, f"{text}, but the interval reaches the baseline: not shown"
    return beyond and shown, text


def labels_to_show(estimate: float, baseline: float, n: int, z: float = 1.96) -> int | None:
    """How many labels an accuracy ``estimate`` (from ``n`` of them) under ``baseline`` needs
    before its Wilson interval's upper end falls under the baseline too (the drop shown, see
    :func:`triage_verdict`), if it stays where it is; None when the estimate is not under the
    baseline. At least ``n + 1``.

    Examples
    --------
    >>> labels_to_show(0.933, 0.991, 30)
    72
    >>> labels_to_show(0.995, 0.991, 30) is None
    True
    """
    if estimate >= baseline:
        return None
    gap = baseline - estimate
    return max(n + 1, math.ceil(z * z * estimate * (1 - estimate) / (gap * gap)))


def holdout_rows(n: int, *, fraction: float, seed: int) -> list[int]:
    """Which of ``n`` labelled rows a job holds out: ``int(n * fraction)`` of them, drawn with
    ``seed``, as sorted row indices.

    Examples
    --------
    >>> holdout_rows(10, fraction=0.3, seed=0)
    [0, 6, 9]
    >>> holdout_rows(10, fraction=0.3, seed=0) == holdout_rows(10, fraction=0.3, seed=0)
    True
    """
    import random

    return sorted(random.Random(seed).sample(range(n), int(n * fraction)))


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
        Dataset names; the latest version of each is used. ``holdout=None`` (the default): each
        job holds out its own evidence, a seeded ``holdout_fraction`` of the deployment's
        labelled requests the champion was not trained on, kept out of training and recorded
        as a dataset version ``<policy>-holdout``; a named holdout dataset (which someone must keep fresh) is the
        other option.
    since_change, pre_change_fraction
        ``since_change=True`` (the default): a job started by a monitor event trains on the
        labelled requests logged since the estimated change point (:func:`change_point`: the
        first window of the run of alarming windows that triggered it), not on the data from
        before the change; it waits ``WAITING_FOR_DATA`` (bounded by ``data_wait_s``) until ``min_rows`` of them
        arrived. ``pre_change_fraction`` mixes in that many pre-change rows per post-change
        row (the newest training rows), for when post-change data is scarce. Jobs from a
        schedule, and events whose window is unknown, snapshot as without it.
    triage, triage_max_drop, triage_min_labels
        ``triage=True`` (the default): a job a data-drift event started first estimates the
        shift's impact on the champion, from the requests since the change point: with at least
        ``triage_min_labels`` labels, its accuracy on them (a Wilson interval) against its
        registered holdout accuracy. Without, from the champion's registered holdout (else its
        training data) as the labelled reference: importance weighting (IW,
        :func:`~workbench.evaluation.importance_weighted_estimate`: the holdout rows weighted
        by a domain classifier's density ratio served/holdout, a bootstrap interval) estimates
        the champion's accuracy (a regressor's RMSE, or the gate's metric when it is MAE) on the
        served rows against the same on the holdout; for a classifier with probabilities,
        confidence-based performance estimation (CBPE: the mean of its top class probability,
        served against holdout) stays the method unless its probabilities are miscalibrated on
        the holdout (top-label expected calibration error over
        ``Pipeline.TRIAGE_CBPE_MAX_ECE`` = 0.05), or IW shows a drop CBPE does not (CBPE trusts
        the probabilities exactly where a shift can break them, in a region the model is
        confidently wrong on; a skipped retraining costs more than a needless one). IW counts
        only with at least ``triage_min_labels`` effective rows (Kish's ``(Σw)²/Σw²`` of the
        uncapped weights); a regressor or a classifier without probabilities with fewer (the
        served rows lie where the holdout has almost none) is triaged harmful: the harm cannot
        be ruled out. A shift is harmful when the estimate is more than ``triage_max_drop``
        under the baseline and its interval lies wholly under the baseline (the data shows a
        drop; its size is the estimate's); for a lower-is-better metric (RMSE, MAE)
        ``triage_max_drop`` is relative (over ``baseline × (1 + triage_max_drop)``, see
        :func:`triage_verdict`). Labels whose accuracy is under the floor but too few to show a
        drop (the Wilson interval reaches the baseline) are no dismissal: the job waits
        ``WAITING_FOR_DATA`` (a ``triage`` step ``waiting``, with about how many labels would
        show it, :func:`labels_to_show`) and is triaged again on the next tick;
        after ``data_wait_s`` the estimate decides (harmful). Otherwise the job ends ``SKIPPED``,
        decision ``harmless_shift``, with the estimate in its ``triage`` step (``method``
        ``labels``, ``cbpe`` or ``iw``, the latter with ``effective_n`` and ``interval``); with
        ``triage_moves_reference=True`` the drift monitor is then refitted (audited) on the
        requests served since the change, recorded as ``<monitor>-reference``, so the same
        harmless shift stops alarming.
    holdout_fraction, holdout_min_rows, data_wait_s
        With ``holdout=None``: the fraction of the labelled requests held out (seeded by
        ``seed``), and how many held-out rows the gate needs to judge (default: the gate's
        ``min_samples`` when it runs a statistical test, else 30). A job with fewer waits
        ``WAITING_FOR_DATA`` (a recorded ``holdout`` step) and runs again on the next tick,
        at most ``data_wait_s`` seconds, then ends ``FAILED`` (decision ``not_enough_data``).
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
    canary_steps, max_error_rate, min_requests, max_accuracy_drop, min_labels, canary_metric
        The canary's steps and its rollback checks (see ``CanaryRollout``): the challenger's
        5xx rate, requests per step, and ``canary_metric`` (accuracy by default; ``"roc_auc"``
        and the other probability metrics replay the logged inputs through each version's
        bundle) on requests whose labels arrived, which may drop by ``max_accuracy_drop``.
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
    sensitive_features
        Columns of the holdout whose groups both models' predictions carry, for the gate's
        ``fairness`` bounds (and the registered version's per-group figures).
    job_package
        Ship the installed ``workbench`` package with the Ray Job (``runtime_env`` ``py_modules``:
        0.3 MB zipped, 0.1 s to upload on loopback) so the job runs exactly the submitter's code;
        ``False`` when the cluster's image already has the same version installed.
    """

    name: str
    model: str
    deployment: str
    train: str
    holdout: str | None = None
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
    canary_metric: str = "accuracy"
    max_canary_rounds: int = 50
    canary_poll_s: float = 1.0
    canary_wait_for_labels: bool = False
    run_as: str | None = None
    job_num_cpus: float = 0.0
    job_package: bool = True
    sensitive_features: tuple[str, ...] = ()
    holdout_fraction: float = 0.3
    holdout_min_rows: int | None = None
    data_wait_s: float = 86400.0
    since_change: bool = True
    pre_change_fraction: float = 0.0
    triage: bool = True
    triage_max_drop: float = 0.05
    triage_min_labels: int = 30
    triage_moves_reference: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError(
                f"LoopPolicy(holdout_fraction={self.holdout_fraction!r}) must lie between 0 and 1 "
                "(the share of labelled requests held out as the gate's evidence)."
            )
        if self.pre_change_fraction < 0:
            raise ConfigError(
                f"LoopPolicy(pre_change_fraction={self.pre_change_fraction!r}) must be >= 0 "
                "(pre-change rows mixed in per post-change row)."
            )
        if self.holdout_min_rows is not None and self.holdout_min_rows < 1:
            raise ConfigError(
                f"LoopPolicy(holdout_min_rows={self.holdout_min_rows!r}) must be at least 1."
            )
        if self.run_as not in RUN_AS:
            raise ConfigError(
                f"LoopPolicy(run_as={self.run_as!r}): use 'inline', 'ray_job', or None (decided "
                "by the cluster: a Ray Job when joined to a cluster with a job server)."
            )
        from workbench.evaluation import METRICS, PROBA_METRICS

        if self.canary_metric not in (*METRICS, *PROBA_METRICS):
            raise ConfigError(
                f"LoopPolicy(canary_metric={self.canary_metric!r}): use one of "
                f"{[*METRICS, *PROBA_METRICS]}."
            )
        if self.job_num_cpus < 0:
            raise ConfigError(f"LoopPolicy(job_num_cpus={self.job_num_cpus!r}) must be >= 0.")
        snapshot_rows(1, 0, mode=self.snapshot, window=self.window)
        for t in self.triggers:
            if not isinstance(t, DriftTrigger | ScheduleTrigger | PerformanceTrigger):
                raise ConfigError(f"unknown trigger {t!r}")

    def holdout_rows_needed(self) -> int:
        """Held-out rows a job needs before its gate judges (``holdout=None`` only)."""
        if self.holdout_min_rows is not None:
            return self.holdout_min_rows
        return self.gate.min_samples if self.gate.test else 30

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
        d["sensitive_features"] = tuple(d.get("sensitive_features", ()))
        d["canary_steps"] = tuple(d["canary_steps"])
        return cls(**d)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
