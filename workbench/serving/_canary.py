"""Canary rollout: stepped traffic to a challenger, judged on logged requests, rolled back on errors."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError
from workbench.serving.traffic import canary_schedule

if TYPE_CHECKING:
    from workbench.serving._deployer import Serving

__all__ = ["CanaryRollout"]

_TERMINAL = ("completed", "rolled_back")


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (``None`` when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


class CanaryRollout:
    """Move a deployment from ``champion`` to ``challenger`` in steps, rolling back on errors.

    Each step's evidence is the request log since that step began: per version,
    the number of requests, the error rate (status >= 500) and p50/p99 latency.
    :meth:`advance` rolls back to 100% champion as soon as the challenger's
    error rate must exceed ``max_error_rate`` (already above it over at least
    ``min_requests`` requests, or so many errors that even a clean remainder up to
    ``min_requests`` cannot bring it under); otherwise, once the challenger has
    served ``min_requests`` at this step, it moves to the next step. At the last
    step (100% challenger) a healthy analysis completes the rollout. Moving the
    ``champion`` alias afterwards is the caller's decision.

    Every traffic change goes through :meth:`Serving.set_traffic`, so it is a
    store record with the actor and a reason holding the evidence.

    Parameters
    ----------
    serving : Serving
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
        serving: Serving,
        name: str,
        champion: int,
        challenger: int,
        *,
        steps: tuple[float, ...] = (0.1, 0.5, 1.0),
        max_error_rate: float = 0.02,
        min_requests: int = 20,
        actor: str | None = None,
    ):
        if not 0.0 <= float(max_error_rate) < 1.0:
            raise ConfigError(f"max_error_rate must be in [0, 1), got {max_error_rate!r}.")
        if int(min_requests) < 1:
            raise ConfigError(f"min_requests must be at least 1, got {min_requests!r}.")
        self.serving = serving
        self.name = name
        self.champion = int(champion)
        self.challenger = int(challenger)
        self.schedule = canary_schedule(self.champion, self.challenger, steps)
        self.max_error_rate = float(max_error_rate)
        self.min_requests = int(min_requests)
        self.actor = actor or "canary"
        self.step = -1
        self.state = "pending"
        self.step_started_at: str | None = None
        self.log: list[dict[str, Any]] = []  # every decision with its analysis

    # ------------------------------------------------------------------ steps
    def _apply_step(self, index: int, why: str) -> dict[int, float]:
        from workbench.lineage import utcnow

        weights = self.schedule[index]
        share = weights[self.challenger]
        reason = (
            f"canary step {index + 1}/{len(self.schedule)}: challenger v{self.challenger} at {share:.0%}, "
            f"champion v{self.champion} at {1 - share:.0%} ({why})"
        )
        applied = self.serving.set_traffic(self.name, weights, actor=self.actor, reason=reason)
        self.step = index
        self.step_started_at = utcnow()
        return applied

    def start(self) -> dict[int, float]:
        """Send the first step's share to the challenger; returns the weights served."""
        if self.state != "pending":
            raise ConfigError(
                f"this canary already started (state {self.state!r}); create a new CanaryRollout."
            )
        self.serving.store.get_model_version(
            self.serving.store.get_deployment(self.name)["model"], self.challenger
        )
        applied = self._apply_step(0, "start")
        self.state = "running"
        return applied

    def analyze(self) -> dict[str, Any]:
        """Per-version evidence since the current step began (flushes the router's logs first).

        Returns
        -------
        dict
            ``{"step", "weights", "since", "versions": {version: {"requests", "errors",
            "error_rate", "p50_ms", "p99_ms"}}}``.
        """
        if self.step_started_at is None:
            raise ConfigError("the canary has not started; call start() first.")
        self.serving.flush_logs(self.name)
        store = self.serving.store
        model = store.get_deployment(self.name)["model"]
        versions: dict[int, dict[str, Any]] = {}
        for version in (self.champion, self.challenger):
            mv_id = store.get_model_version(model, version)["id"]
            latencies = _latencies(
                store, self.name, since=self.step_started_at, model_version_id=mv_id
            )
            stats = store.request_stats(
                self.name, since=self.step_started_at, model_version_id=mv_id
            )
            n, errors = int(stats["n"]), int(stats["errors"])
            versions[version] = {
                "requests": n,
                "errors": errors,
                "error_rate": errors / n if n else 0.0,
                "p50_ms": _percentile(latencies, 50),
                "p99_ms": _percentile(latencies, 99),
            }
        return {
            "step": self.step,
            "weights": dict(self.schedule[self.step]),
            "since": self.step_started_at,
            "versions": versions,
        }

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
        # Errors over max(n, min_requests) is a lower bound on the rate the challenger will
        # show at min_requests, so crossing the threshold here is already conclusive.
        bound = ch["errors"] / max(ch["requests"], self.min_requests)
        if ch["errors"] and bound > self.max_error_rate:
            champ = analysis["versions"][self.champion]
            reason = (
                f"canary rollback at step {self.step + 1}/{len(self.schedule)}: challenger v{self.challenger} "
                f"error rate {ch['error_rate']:.1%} ({ch['errors']}/{ch['requests']} requests with 5xx) exceeds "
                f"max_error_rate {self.max_error_rate:.1%}; p99 {_ms(ch['p99_ms'])}; champion v{self.champion} "
                f"{champ['errors']}/{champ['requests']} errors, p99 {_ms(champ['p99_ms'])}"
            )
            self.serving.set_traffic(
                self.name,
                {self.champion: 1.0, self.challenger: 0.0},
                actor=self.actor,
                reason=reason,
            )
            return self._decide("rolled_back", analysis)
        if ch["requests"] < self.min_requests:
            self.log.append({"decision": "waiting", "analysis": analysis})
            return "waiting"
        if self.step == len(self.schedule) - 1:
            dep = self.serving.store.get_deployment(self.name)
            self.serving.store.audit(
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
            f"error rate {ch['error_rate']:.1%}, p99 {_ms(ch['p99_ms'])}"
        )
        self._apply_step(self.step + 1, why)
        self.log.append({"decision": "advanced", "analysis": analysis})
        return "advanced"

    def _decide(self, state: str, analysis: dict[str, Any]) -> str:
        self.state = state
        self.log.append({"decision": state, "analysis": analysis})
        return state


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _plain(analysis: dict[str, Any]) -> dict[str, Any]:
    return {**analysis, "versions": {str(k): v for k, v in analysis["versions"].items()}}


def _latencies(store: Any, deployment: str, *, since: str, model_version_id: int) -> list[float]:
    """Ascending latencies of a version's requests since ``since``.

    A read through the store's public read-only ``query``; a dedicated store
    method would be the better home for this SQL.
    """
    dep = store.get_deployment(deployment)
    rows = store.query(
        "SELECT latency_ms FROM request_logs WHERE deployment_id = ? AND model_version_id = ? AND at >= ? "
        "ORDER BY latency_ms",
        [dep["id"], model_version_id, since],
    )
    return [float(r["latency_ms"]) for r in rows]
