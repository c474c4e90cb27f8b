"""Data-drift monitors that test windows of logged requests against the training reference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError
from workbench.lineage import Store
from workbench.monitoring._detectors import encode_matrix, make_detector

if TYPE_CHECKING:
    from workbench.datasets import Datasets, DatasetVersion

__all__ = ["DriftMonitor", "Monitoring"]


class DriftMonitor:
    """A detector fitted on a reference dataset version, run on successive windows of a deployment's requests.

    Each window of ``window`` request records gives one drift result in the
    store; the monitor remembers the last request it has seen, so ``check()``
    can be called as often as wanted and never tests a request twice.
    """

    def __init__(self, store: Store, datasets: Datasets, record: dict[str, Any]):
        self.store = store
        self.datasets = datasets
        self.name: str = record["name"]
        self.deployment: str = record["deployment"]
        self.config: dict[str, Any] = record["config"]
        self.reference = datasets.by_id(record["reference_dataset_version_id"])
        from workbench.features import feature_kinds

        self.kinds = feature_kinds(self.reference.schema, self.reference.target)
        self._vocab: dict[str, dict[Any, int]] = {}
        ref_rows = self.datasets.load(self.reference).select(list(self.kinds)).to_dicts()
        x_ref = encode_matrix(ref_rows, self.kinds, self._vocab)
        categorical = [j for j, k in enumerate(self.kinds.values()) if k != "number"]
        self.detector = make_detector(self.config["backend"], p_val=self.config["p_val"]).fit(
            x_ref, categorical
        )

    @property
    def window(self) -> int:
        return int(self.config["window"])

    def check(self) -> list[dict[str, Any]]:
        """Test every complete window of new requests; returns the drift results recorded (maybe none)."""
        record = self.store.get_monitor(self.name)
        pending = self.store.requests_after(self.deployment, record["last_request_log_id"])
        results = []
        batch: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        for req in pending:
            batch.append(req)
            rows.extend(req["features"] if isinstance(req["features"], list) else [req["features"]])
            if len(rows) >= self.window:
                results.append(self._test(batch, rows))
                batch, rows = [], []
        return results

    def _test(self, batch: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
        x = encode_matrix(rows, self.kinds, self._vocab)
        out = self.detector.test(x)
        data = out["data"]
        p_min = float(min(data["p_val"]))
        worst = sorted(zip(self.kinds, data["p_val"], strict=True), key=lambda kv: kv[1])[:5]
        result_id = self.store.add_drift_result(
            self.name,
            first_request_log_id=batch[0]["id"],
            last_request_log_id=batch[-1]["id"],
            n=len(rows),
            is_drift=data["is_drift"],
            score=p_min,
            threshold=float(data["threshold"]),
            detail={
                "meta": out["meta"],
                "most_shifted": [{"feature": f, "p_val": p} for f, p in worst],
            },
        )
        return {
            "id": result_id,
            "is_drift": data["is_drift"],
            "p_val_min": p_min,
            "threshold": data["threshold"],
            "n": len(rows),
            "most_shifted": worst,
        }


class Monitoring:
    """Create and load monitors.

    Examples
    --------
    >>> mon = wb.monitoring.drift_monitor("cancer", reference=train)   # doctest: +SKIP
    >>> mon.check()                                                     # doctest: +SKIP
    """

    def __init__(self, store: Store, datasets: Datasets):
        self.store = store
        self.datasets = datasets

    def drift_monitor(
        self,
        deployment: str,
        *,
        reference: DatasetVersion,
        name: str | None = None,
        window: int = 100,
        p_val: float = 0.05,
        backend: str = "alibi",
    ) -> DriftMonitor:
        """Create (or update) a data-drift monitor on a deployment's requests, fitted on ``reference``."""
        if window < 10:
            raise ConfigError("window must hold at least 10 records for a meaningful test")
        if not 0 < p_val < 1:
            raise ConfigError("p_val must be between 0 and 1")
        record = self.store.create_monitor(
            name or f"{deployment}-drift",
            deployment=deployment,
            kind="data_drift",
            reference_dataset_version_id=reference.id,
            config={"window": window, "p_val": p_val, "backend": backend},
        )
        return DriftMonitor(self.store, self.datasets, record)

    def get(self, name: str) -> DriftMonitor:
        return DriftMonitor(self.store, self.datasets, self.store.get_monitor(name))

    def record_labels(self, labels: dict[str, Any]) -> int:
        """Attach ground truth that arrived later to logged requests (``{request_id: label}``).

        Labelled requests feed accuracy monitoring and the next retraining's data.
        """
        return self.store.add_feedback(labels)

    def results(self, name: str | None = None, *, drift_only: bool = False) -> list[dict[str, Any]]:
        return self.store.drift_results(name, drift_only=drift_only)
