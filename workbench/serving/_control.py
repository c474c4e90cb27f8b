"""The traffic-control interface the rollout strategies are written against, and what a change returns.

:class:`~workbench.serving.Serving` implements it on Ray Serve; the strategy
objects (:class:`~workbench.serving.CanaryRollout`,
:class:`~workbench.serving.BlueGreen`, :class:`~workbench.serving.Shadow`)
take any object that does, so their rules run against a fake in unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    from workbench.lineage import Store

__all__ = ["TrafficControl", "TrafficUpdate", "KEEP", "iso_utc"]


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: ``shadow=KEEP``: leave the running shadow as it is.
KEEP: Final = _Keep()


@dataclass(frozen=True)
class TrafficUpdate:
    """One applied traffic change.

    ``weights`` are the normalised weights now served; ``health`` is the
    router's health right after (per version, its ``warmup`` result);
    ``record`` is the stored ``traffic_changes`` row (``id``, ``at``, ``kind``,
    ``detail``...); ``warmed`` the warm-up result of each version this change
    loaded.
    """

    weights: dict[int, float]
    health: dict[str, Any]
    record: dict[str, Any]
    warmed: dict[int, dict[str, Any]]


class TrafficControl(Protocol):
    """What a rollout strategy may do to a deployment: read and change its traffic, read its evidence.

    Every change goes through :meth:`apply_traffic`: one in-place reconfigure
    of the router, waited for, then one ``traffic_changes`` row with ``kind``,
    ``actor``, ``reason`` and the evidence in ``detail``.
    """

    @property
    def store(self) -> Store:
        """The lineage store: request logs, traffic history, audit."""
        ...

    def traffic(self, name: str) -> dict[int, float]:
        """The weights last recorded for deployment ``name``."""
        ...

    def apply_traffic(
        self,
        name: str,
        weights: dict[int, float],
        *,
        actor: str | None,
        reason: str,
        kind: str,
        detail: dict[str, Any] | None = None,
        shadow: Any = KEEP,
        warmup_records: list[dict[str, Any]] | None = None,
        timeout_s: float = 120.0,
    ) -> TrafficUpdate:
        """Serve ``weights`` (and ``shadow``: a ``{"version", "share"}``, ``None`` for none, or
        :data:`KEEP`), warming new versions on ``warmup_records``; record the change."""
        ...

    def health(self, name: str) -> dict[str, Any]:
        """The router's view: loaded versions, weights, shadow, counters."""
        ...

    def flush_logs(self, name: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """Write the router's buffered request logs to the store now."""
        ...

    def warmup_records(self, name: str, versions: list[int]) -> list[dict[str, Any]]:
        """A few real records to warm ``versions`` on (recent requests, else training rows)."""
        ...


def iso_utc(at: str | datetime) -> str:
    """``at`` as the store writes times: ISO-8601 UTC with microseconds (naive datetimes are UTC).

    Examples
    --------
    >>> iso_utc("2025-01-31T12:00:00+01:00")
    '2025-01-31T11:00:00.000000+00:00'
    """
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError as exc:
            raise ConfigError(
                f"time {at!r} is not ISO-8601, e.g. '2025-01-31T12:00:00+00:00'."
            ) from exc
    if not isinstance(at, datetime):
        raise ConfigError(f"time must be an ISO-8601 string or a datetime, got {at!r}.")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")
