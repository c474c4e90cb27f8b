"""What the widgets read and call: narrow protocols of the stage methods they use.

The widgets sit low in the layers (beside ``workbench.registry``), so they import no stage and
no store: a :class:`~workbench.Workbench` hands its stage objects in at run time, and any object
with these methods will do (the tests pass the real stages, or small fakes for the actions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "ExperimentSource",
    "SearchControl",
    "RegistrySource",
    "RegistryActions",
    "DeploymentSource",
    "ServingActions",
    "MonitorSource",
    "RetrainActions",
    "LineageSource",
    "DatasetSource",
]


class ExperimentSource(Protocol):
    """``bench.experiments``: the experiment widget's reads, and the audit of a stop."""

    def get(self, experiment_id: int) -> dict[str, Any]: ...
    def trials(self, experiment_id: int | None = None) -> list[dict[str, Any]]: ...
    def metrics(self, experiment_id: int, trial_id: str) -> list[dict[str, Any]]: ...
    def record_stop(
        self, experiment_id: int, *, reason: str, actor: str | None = None, via: str | None = None
    ) -> int: ...


class SearchControl(Protocol):
    """A running search (``SearchHandle``): what the stop button needs."""

    @property
    def done(self) -> bool: ...
    def state(self) -> str: ...
    def stop(self) -> None: ...


class RegistrySource(Protocol):
    """``bench.registry``: versions, alias history, the data versions behind them, evaluations."""

    def get(self, model: str, ref: int | str = "champion") -> Any: ...
    def list(self, model: str | None = None) -> list[Any]: ...
    def history(self, model: str) -> list[dict[str, Any]]: ...
    def data_versions(self, model: str) -> list[dict[str, Any]]: ...
    def evaluation(self, model: str, ref: int | str = "champion") -> dict[str, Any] | None: ...


class RegistryActions(RegistrySource, Protocol):
    """``bench.registry``, for the promote and roll back buttons and the report."""

    def set_alias(
        self, model: str, alias: str, version: int, *, actor: str | None = None, reason: str = ""
    ) -> Any: ...
    def report(self, model: str, ref: int | str = "champion", *, path: Any = None) -> str: ...


class DeploymentSource(Protocol):
    """``bench.serving``'s store-only reads (no Ray call)."""

    def record(self, name: str) -> dict[str, Any]: ...
    def traffic_history(self, name: str) -> list[dict[str, Any]]: ...
    def request_stats(self, name: str) -> dict[str, Any]: ...
    def requests(
        self, name: str, *, after_id: int = 0, limit: int | None = 1000, ok_only: bool = False
    ) -> list[dict[str, Any]]: ...


class ServingActions(DeploymentSource, Protocol):
    """``bench.serving``, for the sliders and the roll back button."""

    def set_traffic(
        self,
        name: str,
        weights: Mapping[Any, Any],
        *,
        actor: str | None = None,
        reason: str = "",
    ) -> dict[int, float]: ...
    def rollback(
        self,
        name: str,
        *,
        to_version: int | None = None,
        actor: str | None = None,
        reason: str = "",
    ) -> dict[int, float]: ...


class MonitorSource(Protocol):
    """``bench.monitoring``: a monitor's record, windows, alerts and the retraining it caused."""

    def record(self, name: str) -> dict[str, Any]: ...
    def results(
        self, name: str | None = None, *, drift_only: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]: ...
    def alerts(
        self, name: str | None = None, *, severity: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...
    def retrain_jobs(self, name: str) -> list[dict[str, Any]]: ...


class RetrainActions(Protocol):
    """``bench.automation``, for the approve and reject buttons."""

    def approve(self, job_id: int, *, actor: str | None = None, reason: str = "") -> Any: ...
    def reject(self, job_id: int, *, actor: str | None = None, reason: str = "") -> Any: ...


class LineageSource(Protocol):
    """The ``Workbench``: the lineage graph around a record and the record behind a node."""

    def lineage_graph(
        self, node_type: str, node_id: int, *, max_nodes: int = 500
    ) -> dict[str, Any]: ...
    def lineage_record(self, node_type: str, node_id: int) -> dict[str, Any]: ...


class DatasetSource(Protocol):
    """``bench.datasets``: a dataset's versions, a version's validation report, and diffs."""

    def versions(self, name: str) -> list[Any]: ...
    def report(self, ref: Any) -> list[dict[str, Any]]: ...
    def diff(
        self, a: Any, b: Any, *, key: str | list[str] | None = None, examples: int = 5
    ) -> Any: ...
