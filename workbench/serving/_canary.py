"""Canary rollout: stepped traffic to a challenger, judged on logged requests, rolled back on errors."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from workbench.evaluation import same_label
from workbench.exceptions import ConfigError
from workbench.runtime import percentile
from workbench.serving.traffic import canary_schedule

if TYPE_CHECKING:
    from workbench.serving._control import TrafficControl

__all__ = ["CanaryRollout"]

_TERMINAL = ("completed", "rolled_back")


class CanaryRollout:
    """Move a deployment from ``champion`` to ``challenger`` in steps, rolling back on errors.

    Each step's evidence is the request log since that step began: per version,
    the number of requests, the error rate (status >= 500) and p50/p99 latency;
    and, since the rollout started, accuracy on the requests whose labels have
    arrived (``monitoring.record_labels``). :meth:`advance` rolls back to 100%
    champion (challenger at 0%, still loaded) as soon as one check fails:

    - errors: the challenger's error rate must exceed ``max_error_rate``
      (already above it over at least ``min_requests`` requests, or so many
      errors that even a clean remainder up to ``min_requests`` cannot bring it
      under);
    - latency (when set): with ``min_requests`` challenger requests at this
      step, its p99 is above ``max_p99_ms``, or above ``max_p99_ratio`` times
      the champion's p99 since the rollout started;
    - accuracy (or ``metric``): with at least ``min_labels`` labelled requests
      on each side, the challenger trails the champion on ``metric`` by more
      than ``max_accuracy_drop``, in the metric's direction
      (:func:`workbench.evaluation.gain`).

    Otherwise, once the challenger has served ``min_requests`` at this step, it
    moves to the next step. At the last step (100% challenger) a healthy
    analysis completes the rollout. Moving the ``champion`` alias afterwards is
    the caller's decision.

    Every traffic change is a store record (``kind="canary"`` per step,
    ``kind="rollback"`` with the full analysis as evidence), with the actor and
    a reason; a rollback is also an audit entry ``canary.rolled_back``.
    ``decided_at`` is when the rollback took effect: no request is routed to
    the challenger after it.

    Parameters
    ----------
    control : TrafficControl
        Usually ``bench.serving``; any :class:`~workbench.serving.TrafficControl`.
    name : str
        Deployment name.
    champion, challenger : int
        Model version numbers.
    steps : sequence of float
        Challenger share per step, increasing, ending at 1.0.
    max_error_rate : float
        Highest tolerated share of challenger requests answered with 5xx.
    min_requests : int
        Challenger requests needed at a step before it is judged healthy.
    max_p99_ms, max_p99_ratio : float, optional
        Latency limits on the challenger's p99 (absolute, and relative to the
        champion's); off by default, since latency on a shared machine is noisy.
    max_accuracy_drop : float
        Largest tolerated drop of ``metric`` (champion's minus challenger's, in the metric's
        direction) on labelled requests.
    min_labels : int
        Labelled records needed on each side before ``metric`` is judged.
    metric : str
        What the labelled check compares: ``"accuracy"`` (default), ``"precision"``,
        ``"recall"``, ``"f1"`` (macro) from the served labels; or ``"roc_auc"``, ``"pr_auc"``,
        ``"log_loss"``, ``"brier"`` from class probabilities, which need ``scores``.
    scores : callable, optional
        ``scores(version, records) -> (classes, proba)``: a version's class probabilities for the
        logged input records (``proba`` of shape ``(len(records), len(classes))``). The request
        log keeps labels only, so a probability metric is measured by replaying the logged
        inputs through the version's own bundle, the fitted pipeline the replica serves (the
        retraining loop passes one built from the registry).
    actor : str, optional
        Recorded with every traffic change (default ``"canary"``).

    Examples
    --------
    >>> canary = CanaryRollout(serving, "cancer", champion=1, challenger=2)  # doctest: +SKIP
    >>> canary.start()                                                        # doctest: +SKIP
    {1: 0.9, 2: 0.1}
    >>> canary.advance()          # after enough traffic                     # doctest: +SKIP
    'advanced'
    """

    def __init__(
        self,
        control: TrafficControl,
        name: str,
        champion: int,
        challenger: int,
        *,
        steps: tuple[float, ...] = (0.1, 0.5, 1.0),
        max_error_rate: float = 0.02,
        min_requests: int = 20,
        max_p99_ms: float | None = None,
        max_p99_ratio: float | None = None,
        max_accuracy_drop: float = 0.05,
        min_labels: int = 30,
        actor: str | None = None,
        metric: str = "accuracy",
        scores: Callable[[int, list[dict[str, Any]]], tuple[Sequence[Any], Any]] | None = None,
    ):
        from workbench.evaluation import METRICS, PROBA_METRICS

        if metric not in (*METRICS, *PROBA_METRICS):
            raise ConfigError(
                f"the canary's labelled check takes metric= one of {[*METRICS, *PROBA_METRICS]}, "
                f"got {metric!r}."
            )
        if metric in PROBA_METRICS and scores is None:
            raise ConfigError(
                f"metric={metric!r} needs class probabilities: pass scores=(version, records) -> "
                "(classes, proba), e.g. from bench.registry.load(model, version).pipeline."
                "predict_proba on the records."
            )
        if not 0.0 <= float(max_error_rate) < 1.0:
            raise ConfigError(f"max_error_rate must be in [0, 1), got {max_error_rate!r}.")
        if int(min_requests) < 1:
            raise ConfigError(f"min_requests must be at least 1, got {min_requests!r}.")
        for label, value in (("max_p99_ms", max_p99_ms), ("max_p99_ratio", max_p99_ratio)):
            if value is not None and not (math.isfinite(float(value)) and float(value) > 0):
                raise ConfigError(f"{label} must be a positive number or None, got {value!r}.")
        if not 0.0 <= float(max_accuracy_drop) <= 1.0:
            raise ConfigError(f"max_accuracy_drop must be in [0, 1], got {max_accuracy_drop!r}.")
        if int(min_labels) < 1:
            raise ConfigError(f"min_labels must be at least 1, got {min_labels!r}.")
        self.control = control
        self.name = name
        self.champion = int(champion)
        self.challenger = int(challenger)
        self.schedule = canary_schedule(self.champion, self.challenger, steps)
        self.max_error_rate = float(max_error_rate)
        self.min_requests = int(min_requests)
        self.max_p99_ms = None if max_p99_ms is None else float(max_p99_ms)
        self.max_p99_ratio = None if max_p99_ratio is None else float(max_p99_ratio)
        self.max_accuracy_drop = float(max_accuracy_drop)
        self.min_labels = int(min_labels)
        self.metric = metric
        self.scores = scores
        self.actor = actor or "canary"
        self.step = -1
        self.state = "pending"
        self.started_at: str | None = None
        self.step_started_at: str | None = None
        self.decided_at: str | None = None  # when a rollback took effect
        self.log: list[dict[str, Any]] = []  # every decision with its analysis

    # ------------------------------------------------------------------ steps
    def _apply_step(
        self, index: int, why: str, evidence: dict[str, Any] | None = None
    ) -> dict[int, float]:
        from workbench.lineage import utcnow

        weights = self.schedule[index]
        share = weights[self.challenger]
        reason = (
            f"canary step {index + 1}/{len(self.schedule)}: challenger v{self.challenger} at {share:.0%}, "
            f"champion v{self.champion} at {1 - share:.0%} ({why})"
        )
        applied = self.control.apply_traffic(
            self.name,
            weights,
            actor=self.actor,
            reason=reason,
            kind="canary",
            detail={
                "step": index + 1,
                "steps": len(self.schedule),
                "champion": self.champion,
                "challenger": self.challenger,
                "evidence": evidence,
            },
        ).weights
        self.step = index
        self.step_started_at = utcnow()
        if self.started_at is None:
            self.started_at = self.step_started_at
        return applied

    def start(self) -> dict[int, float]:
        """Send the first step's share to the challenger; returns the weights served."""
        if self.state != "pending":
            raise ConfigError(
                f"this canary already started (state {self.state!r}); create a new CanaryRollout."
            )
        store = self.control.store
        store.models.get_version(store.deployments.get(self.name)["model"], self.challenger)
        applied = self._apply_step(0, "start")
        self.state = "running"
        return applied

    def analyze(self) -> dict[str, Any]:
        """Per-version evidence since the current step began (flushes the router's logs first).

        Returns
        -------
        dict
            ``{"step", "weights", "since", "started_at", "versions": {version: {"requests",
            "errors", "error_rate", "p50_ms", "p99_ms", "p99_ms_since_start", "labels",
            "accuracy"}}}``; ``labels``/``accuracy`` count the records of this version's
            requests since the rollout started whose ground truth has arrived
            (``accuracy`` is ``None`` without labels).
        """
        if self.step_started_at is None:
            raise ConfigError("the canary has not started; call start() first.")
        self.control.flush_logs(self.name)
        store = self.control.store
        model = store.deployments.get(self.name)["model"]
        versions: dict[int, dict[str, Any]] = {}
        for version in (self.champion, self.challenger):
            mv_id = store.models.get_version(model, version)["id"]
            latencies = _latencies(
                store, self.name, since=self.step_started_at, model_version_id=mv_id
            )
            stats = store.deployments.get_request_stats(
                self.name, since=self.step_started_at, model_version_id=mv_id
            )
            n, errors = int(stats["n"]), int(stats["errors"])
            since_start = _latencies(
                store,
                self.name,
                since=self.started_at or self.step_started_at,
                model_version_id=mv_id,
            )
            labelled = store.monitors.list_labeled_predictions(
                self.name, model_version_id=mv_id, since=self.started_at or self.step_started_at
            )
            labels, correct = _label_counts(labelled)
            versions[version] = {
                "requests": n,
                "errors": errors,
                "error_rate": errors / n if n else 0.0,
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "p99_ms_since_start": percentile(since_start, 99),
                "labels": labels,
                "accuracy": correct / labels if labels else None,
            }
            if self.metric != "accuracy":
                versions[version]["value"] = self._labelled_metric(version, labelled)
        return {
            "step": self.step,
            "weights": dict(self.schedule[self.step]),
            "since": self.step_started_at,
            "started_at": self.started_at,
            "versions": versions,
        }

    def checks(self, analysis: dict[str, Any]) -> list[dict[str, Any]]:
        """Each rollback check on ``analysis``: ``{"check", "failed", "detail"}`` (``failed`` is None
        while there is not enough evidence to judge)."""
        ch = analysis["versions"][self.challenger]
        champ = analysis["versions"][self.champion]
        out: list[dict[str, Any]] = []
        # Errors over max(n, min_requests) is a lower bound on the rate the challenger will
        # show at min_requests, so crossing the threshold here is already conclusive.
        bound = ch["errors"] / max(ch["requests"], self.min_requests)
        out.append(
            {
                "check": "error_rate",
                "failed": bool(ch["errors"] and bound > self.max_error_rate),
                "detail": (
                    f"challenger v{self.challenger} error rate {ch['error_rate']:.1%} "
                    f"({ch['errors']}/{ch['requests']} requests with 5xx), max {self.max_error_rate:.1%}; "
                    f"champion v{self.champion} {champ['errors']}/{champ['requests']}"
                ),
            }
        )
        enough = ch["requests"] >= self.min_requests
        if self.max_p99_ms is not None:
            out.append(
                {
                    "check": "p99_ms",
                    "failed": (ch["p99_ms"] > self.max_p99_ms) if enough else None,
                    "detail": f"challenger p99 {_ms(ch['p99_ms'])}, max {_ms(self.max_p99_ms)}",
                }
            )
        if self.max_p99_ratio is not None:
            base = champ["p99_ms_since_start"]
            judged = enough and base is not None
            out.append(
                {
                    "check": "p99_ratio",
                    "failed": (ch["p99_ms"] > self.max_p99_ratio * base) if judged else None,
                    "detail": (
                        f"challenger p99 {_ms(ch['p99_ms'])} vs champion p99 {_ms(base)} since the start, "
                        f"max ratio {self.max_p99_ratio:g}"
                    ),
                }
            )
        judged = min(ch["labels"], champ["labels"]) >= self.min_labels
        if self.metric == "accuracy":
            gap = (
                champ["accuracy"] - ch["accuracy"]
                if ch["accuracy"] is not None and champ["accuracy"] is not None
                else None
            )
            out.append(
                {
                    "check": "accuracy",
                    "failed": (gap is not None and gap > self.max_accuracy_drop)
                    if judged
                    else None,
                    "detail": (
                        f"accuracy on labelled requests: challenger {_pct(ch['accuracy'])} ({ch['labels']} labels), "
                        f"champion {_pct(champ['accuracy'])} ({champ['labels']} labels), max drop "
                        f"{self.max_accuracy_drop:.1%}, judged from {self.min_labels} labels per side"
                    ),
                }
            )
            return out
        from workbench.evaluation import gain

        a, b = champ.get("value"), ch.get("value")
        drop = -gain(self.metric, a, b) if a is not None and b is not None else None
        out.append(
            {
                "check": self.metric,
                "failed": (drop is not None and drop > self.max_accuracy_drop) if judged else None,
                "detail": (
                    f"{self.metric} on labelled requests: challenger {_num(b)} ({ch['labels']} labels), "
                    f"champion {_num(a)} ({champ['labels']} labels), max drop "
                    f"{self.max_accuracy_drop:g}, judged from {self.min_labels} labels per side"
                ),
            }
        )
        return out

    def _labelled_metric(self, version: int, rows: list[dict[str, Any]]) -> float | None:
        """``metric`` of one version over its labelled records (None without any, or when it is
        undefined on them: an AUC over a single class)."""
        from workbench.evaluation import PROBA_METRICS, Predictions, prediction_metrics

        records, preds, truth = [], [], []
        for r in rows:
            feats = r.get("features") or [None] * len(r["prediction"])
            for x, p, y in zip(feats, r["prediction"], r["label"], strict=False):
                records.append(x)
                preds.append(p)
                truth.append(y)
        if not truth:
            return None
        classes: Sequence[Any] = sorted({str(v) for v in (*truth, *preds)})
        proba = None
        if self.metric in PROBA_METRICS:
            if any(not isinstance(x, dict) for x in records):
                return None  # requests logged without their inputs cannot be replayed
            assert self.scores is not None  # checked in __init__
            classes, proba = self.scores(version, records)
        value = prediction_metrics(
            Predictions.of("classification", truth, preds, classes=classes, proba=proba)
        ).get(self.metric)
        return None if value is None or not math.isfinite(value) else float(value)

    def advance(self) -> str:
        """Judge the current step and act: ``advanced``, ``completed``, ``rolled_back`` or ``waiting``.

        Once the rollout is completed or rolled back, returns that state again
        without touching traffic.
        """
        if self.state in _TERMINAL:
            return self.state
        if self.state != "running":
            raise ConfigError("the canary has not started; call start() first.")
        analysis = self.analyze()
        ch = analysis["versions"][self.challenger]
        checks = self.checks(analysis)
        analysis["checks"] = checks
        failed = [c for c in checks if c["failed"]]
        if failed:
            champ = analysis["versions"][self.champion]
            reason = (
                f"canary rollback at step {self.step + 1}/{len(self.schedule)}: challenger v{self.challenger} failed "
                + "; ".join(f"{c['check']} ({c['detail']})" for c in failed)
                + f"; challenger p99 {_ms(ch['p99_ms'])}, champion p99 {_ms(champ['p99_ms'])}"
            )
            if not any(c["check"] == "error_rate" for c in failed):
                # keep the error-rate evidence in the reason too
                reason += f"; error rate {ch['error_rate']:.1%} ({ch['errors']}/{ch['requests']})"
            evidence = _plain(analysis)
            out = self.control.apply_traffic(
                self.name,
                {v: 0.0 for v in self.control.traffic(self.name)} | {self.champion: 1.0},
                actor=self.actor,
                reason=reason,
                kind="rollback",
                detail={
                    "from": self.challenger,
                    "to": self.champion,
                    "rule": "canary",
                    "evidence": evidence,
                },
            )
            self.decided_at = out.record["at"]
            store = self.control.store
            dep = store.deployments.get(self.name)
            store.audit(
                "canary.rolled_back",
                "deployment",
                dep["id"],
                {
                    "champion": self.champion,
                    "challenger": self.challenger,
                    "failed": [c["check"] for c in failed],
                    "traffic_change_id": out.record["id"],
                    "analysis": evidence,
                },
                actor=self.actor,
            )
            return self._decide("rolled_back", analysis)
        if ch["requests"] < self.min_requests:
            self.log.append({"decision": "waiting", "analysis": analysis})
            return "waiting"
        if self.step == len(self.schedule) - 1:
            store = self.control.store
            dep = store.deployments.get(self.name)
            store.audit(
                "canary.completed",
                "deployment",
                dep["id"],
                {
                    "champion": self.champion,
                    "challenger": self.challenger,
                    "analysis": _plain(analysis),
                },
                actor=self.actor,
            )
            return self._decide("completed", analysis)
        why = (
            f"step {self.step + 1} healthy: {ch['requests']} challenger requests, "
            f"error rate {ch['error_rate']:.1%}, p99 {_ms(ch['p99_ms'])}, "
            f"accuracy {_pct(ch['accuracy'])} on {ch['labels']} labels"
        )
        self._apply_step(self.step + 1, why, _plain(analysis))
        self.log.append({"decision": "advanced", "analysis": analysis})
        return "advanced"

    def _decide(self, state: str, analysis: dict[str, Any]) -> str:
        self.state = state
        self.log.append({"decision": state, "analysis": analysis})
        return state


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _label_counts(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Labelled records and correct predictions among logged requests with ground truth.

    The store gives a request's ``prediction`` and ``label`` as lists, one entry per record.
    """
    total = correct = 0
    for r in rows:
        for p, y in zip(r["prediction"], r["label"], strict=False):
            total += 1
            correct += int(same_label(p, y))
    return total, correct


def _plain(analysis: dict[str, Any]) -> dict[str, Any]:
    return {**analysis, "versions": {str(k): v for k, v in analysis["versions"].items()}}


def _latencies(store: Any, deployment: str, *, since: str, model_version_id: int) -> list[float]:
    """Ascending latencies of a version's requests since ``since``."""
    return store.deployments.list_latencies(
        deployment, model_version_id=model_version_id, since=since
    )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
