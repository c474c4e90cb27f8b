"""Monitors over a deployment's request log: data, prediction, online, performance and operational.

Every monitor is a row in the store (``monitors``) whose position in the
request log advances with each recorded result, so ``check()`` can run as
often as wanted, from any process, and never tests a request twice. Detectors
are fitted once, on the training data of the deployed version, saved as a
content-addressed artifact and loaded from it afterwards: a restarted monitor
tests with the very detector it had (``Monitoring.refit`` refits on purpose,
and says so in the audit log).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.exceptions import ConfigError, NotFoundError
from workbench.governance import requires
from workbench.lineage import ArtifactStore, Store
from workbench.monitoring._alerts import Alerts, AlertSink, WebhookSink, redact_url
from workbench.monitoring._detectors import make_detector
from workbench.monitoring._encode import (
    BREACH,
    DATETIME,
    DEGRADED,
    DRIFT,
    INSUFFICIENT,
    NUMBER,
    OK,
    SCHEMA_MISMATCH,
    Encoder,
)
from workbench.monitoring._windows import WindowSpec, parse_window, split_windows

if TYPE_CHECKING:
    from workbench.datasets import Datasets, DatasetVersion
    from workbench.monitoring._windows import Window

__all__ = [
    "DriftMonitor",
    "OnlineDriftMonitor",
    "PerformanceMonitor",
    "OperationalMonitor",
    "Monitoring",
]

log = logging.getLogger("workbench.monitoring")

# How loud each verdict is. Bad input is an alert too: someone has to fix the client or the schema.
SEVERITY = {
    DRIFT: "warning",
    DEGRADED: "critical",
    BREACH: "critical",
    SCHEMA_MISMATCH: "warning",
    INSUFFICIENT: "info",
}


class _Monitor:
    """What every monitor shares: its record, windows, results and alerts."""

    kind = ""

    def __init__(self, monitoring: Monitoring, record: dict[str, Any]):
        self.monitoring = monitoring
        self.store: Store = monitoring.store
        self.name: str = record["name"]
        self.deployment: str = record["deployment"]
        self.config: dict[str, Any] = record["config"]
        self.reference_id: int = record["reference_dataset_version_id"]

    @property
    def spec(self) -> WindowSpec:
        return parse_window(self.config["window"])

    @property
    def window(self) -> int | str:
        """The window as configured: a number of records, or a duration such as ``"15min"``."""
        return self.config["window"]

    @property
    def min_rows(self) -> int:
        return int(self.config.get("min_rows") or 1)

    def _window_detail(self, w: Window) -> dict[str, Any]:
        spec = self.spec
        out: dict[str, Any] = {"kind": spec.kind, "size": spec.size}
        if w.start:
            out.update(start=w.start, end=w.end)
        return out

    def _alert(
        self, verdict: str, title: str, detail: dict[str, Any], result_id: int | None
    ) -> dict[str, Any] | None:
        if verdict not in SEVERITY:
            return None
        alerts_cfg = self.config.get("alerts") or {}
        severity = detail.get("severity") or SEVERITY[verdict]
        extra: list[AlertSink] = []
        if alerts_cfg.get("webhook_url"):
            extra.append(WebhookSink(alerts_cfg["webhook_url"]))
        return self.monitoring.alerting.emit(
            title=title,
            severity=severity,
            dedup_key=f"{self.name}:{verdict}",
            detail={"deployment": self.deployment, "kind": self.kind, **detail},
            monitor=self.name,
            drift_result_id=result_id,
            cooldown_s=float(alerts_cfg.get("cooldown_s", 900.0)),
            min_severity=alerts_cfg.get("min_severity", "warning"),
            extra_sinks=extra,
        )

    def results(
        self, *, drift_only: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """This monitor's windows, oldest first (with ``limit``: the latest ``limit``)."""
        return self.store.monitors.list_windows(self.name, drift_only=drift_only, limit=limit)

    def alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.monitors.list_alerts(self.name, limit=limit)

    def _bad_input(
        self, w: Window, verdict: str, reason: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        detail = {
            "verdict": verdict,
            "reason": reason,
            "kind": self.kind,
            "window": self._window_detail(w),
            **extra,
        }
        result_id = self.store.monitors.record_window(
            self.name,
            first_request_log_id=w.first_id,
            last_request_log_id=w.last_id,
            n=len(w.records),
            is_drift=False,
            score=None,
            threshold=float(self.config.get("p_val", 0.0)),
            detail=detail,
        )
        self._alert(
            verdict, f"{verdict} in a window of {self.deployment}: {reason}", detail, result_id
        )
        return {
            "id": result_id,
            "verdict": verdict,
            "is_drift": False,
            "reason": reason,
            "n": len(w.records),
            "p_val_min": None,
            "threshold": detail.get("threshold"),
            "most_shifted": [],
        }


class DriftMonitor(_Monitor):
    """A detector fitted on a reference dataset version, run on successive windows of a deployment's requests.

    ``kind`` is ``data_drift`` (the request features) or ``prediction_drift``
    (the model's outputs, against its predictions on the reference data).
    Each window gives one result in the store: ``ok``, ``drift``,
    ``insufficient data`` or ``schema mismatch`` (bad input never counts as
    drift). Each result of ``check()`` has ``id``, ``is_drift``, ``p_val_min``,
    ``threshold``, ``n``, ``most_shifted``, ``verdict`` and ``reason``.
    """

    def __init__(self, monitoring: Monitoring, record: dict[str, Any], detector: Any = None):
        super().__init__(monitoring, record)
        self.kind = record.get("kind") or "data_drift"
        _require_saved(record)
        self.encoder = Encoder.from_json(self.config["encoder"])
        self.kinds = self.encoder.kinds
        self.detector = detector if detector is not None else monitoring._load_detector(record)

    @property
    def reference(self) -> DatasetVersion:
        return self.monitoring.datasets.by_id(self.reference_id)

    def _records_of(self, req: dict[str, Any]) -> list[Any]:
        if self.config.get("target") == "prediction":
            return [{"prediction": p} for p in req["prediction"]]
        return req["features"]

    def check(self) -> list[dict[str, Any]]:
        """Test every complete window of new requests; returns the results recorded (maybe none)."""
        if self.config.get("follow_deployment"):
            self.monitoring._follow_deployment(self)
        record = self.store.monitors.get(self.name)
        pending = self.store.deployments.list_requests(
            self.deployment, record["last_request_log_id"]
        )
        windows = split_windows(pending, self.spec, records_of=self._records_of)
        return [self._test(w) for w in windows]

    def _test(self, w: Window) -> dict[str, Any]:
        enc = self.encoder.encode(w.records, min_rows=self.min_rows)
        if enc.verdict is not None:
            return self._bad_input(
                w,
                enc.verdict,
                enc.reason,
                {"problems": enc.problems, "records": enc.n_records, "complete": enc.n_complete},
            )
        out = self.detector.test(enc.x)
        data, meta = out["data"], out["meta"]
        p_min = float(min(data["p_val"]))
        if meta.get("feature_level", True):
            worst = sorted(zip(self.kinds, data["p_val"], strict=True), key=lambda kv: kv[1])[:5]
        else:
            worst = []
        verdict = DRIFT if data["is_drift"] else OK
        detail = {
            "verdict": verdict,
            "kind": self.kind,
            "meta": meta,
            "window": self._window_detail(w),
            "records": enc.n_records,
            "complete": enc.n_complete,
            "most_shifted": [{"feature": f, "p_val": p} for f, p in worst],
            "detector_artifact": self.config.get("detector_artifact"),
            "reference_dataset_version_id": self.reference_id,
        }
        if enc.problems:
            detail["problems"] = enc.problems
        result_id = self.store.monitors.record_window(
            self.name,
            first_request_log_id=w.first_id,
            last_request_log_id=w.last_id,
            n=enc.n_complete,
            is_drift=data["is_drift"],
            score=p_min,
            threshold=float(data["threshold"]),
            detail=detail,
        )
        if data["is_drift"]:
            what = "prediction drift" if self.kind == "prediction_drift" else "data drift"
            top = ", ".join(f"{f} (p={p:.2g})" for f, p in worst[:3]) or f"p={p_min:.2g}"
            self._alert(
                DRIFT,
                f"{what} on {self.deployment}: {top}",
                {
                    "p_val_min": p_min,
                    "threshold": data["threshold"],
                    "most_shifted": detail["most_shifted"],
                },
                result_id,
            )
        return {
            "id": result_id,
            "verdict": verdict,
            "is_drift": bool(data["is_drift"]),
            "reason": "",
            "p_val_min": p_min,
            "threshold": data["threshold"],
            "n": enc.n_complete,
            "most_shifted": worst,
        }


class OnlineDriftMonitor(_Monitor):
    """An online detector fed one logged record at a time; an alarm is a ``drift`` result, then a new run.

    Its state (time since the last alarm and the latest records) is saved
    with the monitor's position after each ``check()``, so a restart goes on
    where it stopped. Records with missing values are skipped (counted);
    requests with a schema mismatch give one ``schema mismatch`` result per
    check.
    """

    kind = "online_drift"

    def __init__(self, monitoring: Monitoring, record: dict[str, Any], detector: Any = None):
        super().__init__(monitoring, record)
        _require_saved(record)
        self.encoder = Encoder.from_json(self.config["encoder"])
        self.kinds = self.encoder.kinds
        self.detector = detector if detector is not None else monitoring._load_detector(record)
        state = record.get("state") or {}
        if state.get("online"):
            self.detector.set_state(state["online"])

    def check(self) -> list[dict[str, Any]]:
        record = self.store.monitors.get(self.name)
        state = dict(record.get("state") or {})
        pending = self.store.deployments.list_requests(
            self.deployment, record["last_request_log_id"]
        )
        results: list[dict[str, Any]] = []
        run_start = state.get("run_start_id")
        skipped: dict[str, Any] = {"records": 0, "requests": [], "reasons": []}
        incomplete = 0
        for req in pending:
            records = req["features"]
            enc = self.encoder.encode(records, min_rows=0)
            if enc.verdict == SCHEMA_MISMATCH:
                skipped["records"] += len(records)
                skipped["requests"].append(req["id"])
                if enc.reason not in skipped["reasons"]:
                    skipped["reasons"].append(enc.reason)
                continue
            incomplete += enc.n_records - enc.n_complete
            for row in enc.x if enc.x is not None else []:
                if run_start is None:
                    run_start = req["id"]
                out = self.detector.update(row)
                if out["data"]["is_drift"]:
                    results.append(self._alarm(out, run_start, req["id"]))
                    run_start = None
        if skipped["records"]:
            results.append(self._skipped(skipped, pending))
        if pending:
            self.store.monitors.set_state(
                self.name,
                {
                    "online": self.detector.get_state(),
                    "run_start_id": run_start,
                    "incomplete_skipped": int(state.get("incomplete_skipped", 0)) + incomplete,
                },
                last_request_log_id=pending[-1]["id"],
            )
        return results

    def _alarm(self, out: dict[str, Any], first_id: int, last_id: int) -> dict[str, Any]:
        data = out["data"]
        stats = [s if s is not None else -math.inf for s in data["test_stat"]]
        ranked = sorted(zip(self.kinds, stats, strict=True), key=lambda kv: -kv[1])[:5]
        run_length = int(data["time"])
        self.detector.reset()
        detail = {
            "verdict": DRIFT,
            "kind": self.kind,
            "meta": out["meta"],
            "run_length": run_length,
            "most_shifted": [{"feature": f, "test_stat": s} for f, s in ranked],
            "detector_artifact": self.config.get("detector_artifact"),
            "reference_dataset_version_id": self.reference_id,
        }
        result_id = self.store.monitors.record_window(
            self.name,
            first_request_log_id=first_id,
            last_request_log_id=last_id,
            n=run_length,
            is_drift=True,
            score=float(max(stats)),
            threshold=float(data["threshold"]),
            detail=detail,
            state={"online": self.detector.get_state(), "run_start_id": None},
        )
        self._alert(
            DRIFT,
            f"online drift on {self.deployment} after {run_length} records: "
            + ", ".join(f for f, _ in ranked[:3]),
            {"run_length": run_length, "most_shifted": detail["most_shifted"]},
            result_id,
        )
        return {
            "id": result_id,
            "verdict": DRIFT,
            "is_drift": True,
            "run_length": run_length,
            "score": float(max(stats)),
            "threshold": data["threshold"],
            "most_shifted": ranked,
        }

    def _skipped(self, skipped: dict[str, Any], pending: list[dict[str, Any]]) -> dict[str, Any]:
        reason = "; ".join(skipped["reasons"][:3])
        detail = {
            "verdict": SCHEMA_MISMATCH,
            "kind": self.kind,
            "reason": reason,
            "skipped_records": skipped["records"],
            "skipped_requests": skipped["requests"][:50],
        }
        result_id = self.store.monitors.record_window(
            self.name,
            first_request_log_id=skipped["requests"][0],
            last_request_log_id=skipped["requests"][-1],
            n=skipped["records"],
            is_drift=False,
            score=None,
            threshold=0.0,
            detail=detail,
        )
        self._alert(
            SCHEMA_MISMATCH,
            f"schema mismatch in {skipped['records']} records of {self.deployment}: {reason}",
            detail,
            result_id,
        )
        return {"id": result_id, "verdict": SCHEMA_MISMATCH, "is_drift": False, "reason": reason}


class PerformanceMonitor(_Monitor):
    """Model quality per window of labelled requests (labels joined to logged requests by request id).

    Labels arrive late (``Monitoring.record_labels``), so windows follow the
    order in which labels arrived: count windows of ``window`` labelled
    records, or time windows of label arrival. A window whose metric falls
    below the floor (or above the ceiling, for errors such as ``rmse``) is
    ``degraded`` (``is_drift`` true: performance drift). The floor is
    ``min_value``, else the deployed version's registered holdout metric
    minus ``tolerance``.

    With ``group_by`` (a feature of the requests, such as ``"sex"``), the metric is also measured
    per group of that feature's values (``by_group``); a group with at least ``min_group_rows``
    labelled records whose metric falls below the floor (above the ceiling) makes the window
    ``degraded`` too, even when the overall figure holds, and the alert names it: a model can
    stay accurate on average while it fails one group.
    """

    kind = "performance"

    def check(self) -> list[dict[str, Any]]:
        if self.config.get("follow_deployment"):
            self._follow_deployment()
        record = self.store.monitors.get(self.name)
        state = dict(record.get("state") or {})
        rows = self.store.monitors.list_labels_after(
            self.deployment, int(state.get("label_seq", 0))
        )
        for r in rows:
            r["at"] = r["labeled_at"]
        windows = split_windows(rows, self.spec, records_of=self._pairs)
        return [self._evaluate(w) for w in windows]

    def _follow_deployment(self) -> None:
        """After a promotion, judge against the newly deployed version's registered metric: the
        floor (ceiling) moves to its holdout value minus (plus) ``tolerance``, audited
        (``monitor.bound_moved``); the label cursor stays where it is."""
        from workbench.evaluation import lower_is_better

        mv = self.monitoring._deployed_version(self.deployment)
        metric = self.config["metric"]
        baseline = (mv or {}).get("metrics", {}).get(metric)
        if mv is None or mv["version"] == self.config.get("model_version") or baseline is None:
            return
        tolerance = float(self.config.get("tolerance") or 0.0)
        bound = baseline + tolerance if lower_is_better(metric) else baseline - tolerance
        old = {k: self.config.get(k) for k in ("bound", "baseline", "model_version")}
        config = {
            **self.config,
            "bound": bound,
            "baseline": baseline,
            "model_version": mv["version"],
        }
        record = self.store.monitors.get(self.name)
        updated = self.store.monitors.add(
            self.name,
            deployment=self.deployment,
            kind=self.kind,
            reference_dataset_version_id=record["reference_dataset_version_id"],
            config=config,
        )
        self.store.audit(
            "monitor.bound_moved",
            "monitor",
            updated["id"],
            {
                "from": old,
                "to": {"bound": bound, "baseline": baseline, "model_version": mv["version"]},
            },
            actor="monitor",
        )
        self.config = updated["config"]

    def _pairs(self, row: dict[str, Any]) -> list[tuple[Any, Any, Any, Any]]:
        """``(model version, prediction, label, group)`` per record of a labelled request (the
        group is the ``group_by`` feature's value as text, None without ``group_by``)."""
        preds, labels = row["prediction"], row["label"]
        if row.get("status_code", 200) != 200 or len(preds) != len(labels):
            return [("unpaired", None, None, None)] * max(len(labels), 1)
        by = self.config.get("group_by")
        records = row.get("features") or []
        groups: list[Any] = [None] * len(preds)
        if by and len(records) == len(preds):
            groups = [
                None if not isinstance(r, dict) or r.get(by) is None else str(r[by])
                for r in records
            ]
        return [
            (row.get("model_version"), p, y, g)
            for p, y, g in zip(preds, labels, groups, strict=True)
        ]

    def _evaluate(self, w: Window) -> dict[str, Any]:
        from workbench.evaluation import lower_is_better, regression_score, score

        metric, task = self.config["metric"], self.config["task"]
        pairs = [
            p for p in w.records if p[0] != "unpaired" and p[1] is not None and p[2] is not None
        ]
        state = {"label_seq": int(w.requests[-1]["label_seq"])}
        base = {
            "kind": self.kind,
            "metric": metric,
            "window": self._window_detail(w),
            "labelled": len(w.records),
            "paired": len(pairs),
        }
        if len(pairs) < self.min_rows:
            reason = f"{len(pairs)} labelled record(s) with a prediction; at least {self.min_rows} are needed"
            detail = {**base, "verdict": INSUFFICIENT, "reason": reason}
            result_id = self.store.monitors.record_window(
                self.name,
                first_request_log_id=min(r["id"] for r in w.requests),
                last_request_log_id=max(r["id"] for r in w.requests),
                n=len(pairs),
                is_drift=False,
                score=None,
                threshold=float(self.config["bound"]),
                detail=detail,
                state=state,
            )
            self._alert(INSUFFICIENT, f"{reason} ({self.deployment})", detail, result_id)
            return {"id": result_id, "verdict": INSUFFICIENT, "is_drift": False, "reason": reason}

        def measure(subset: Sequence[tuple[Any, ...]]) -> float:
            if task == "regression":
                return regression_score(
                    [float(r[2]) for r in subset], [float(r[1]) for r in subset]
                )[metric]
            return score([str(r[2]) for r in subset], [str(r[1]) for r in subset])[metric]

        value = measure(pairs)
        bound = float(self.config["bound"])
        lower = lower_is_better(metric)

        def beyond(v: float) -> bool:
            return v > bound if lower else v < bound

        by_version: dict[str, Any] = {}
        for version in sorted({str(r[0]) for r in pairs}):
            subset = [p for p in pairs if str(p[0]) == version]
            by_version[version] = {"n": len(subset), metric: measure(subset)}

        def measure_group(subset: Sequence[tuple[Any, ...]]) -> float | None:
            """None where a small group leaves the metric undefined (R² of one record, MAPE of
            zero targets): shown as such, never judged."""
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    v = float(measure(subset))
                except KeyError:
                    return None
            return v if math.isfinite(v) else None

        by_group: dict[str, Any] = {}
        failing_groups: list[str] = []
        if self.config.get("group_by"):
            min_group = int(self.config.get("min_group_rows") or 1)
            for group in sorted({r[3] for r in pairs if r[3] is not None}):
                subset = [p for p in pairs if p[3] == group]
                v = measure_group(subset)
                judged = len(subset) >= min_group and v is not None
                by_group[group] = {"n": len(subset), metric: v, "judged": judged}
                if judged and v is not None and beyond(v):
                    failing_groups.append(group)
        degraded = beyond(value) or bool(failing_groups)
        verdict = DEGRADED if degraded else OK
        detail = {
            **base,
            "verdict": verdict,
            "value": value,
            "bound": bound,
            "bound_kind": "ceiling" if lower else "floor",
            "baseline": self.config.get("baseline"),
            "by_version": by_version,
        }
        if self.config.get("group_by"):
            detail.update(
                group_by=self.config["group_by"], by_group=by_group, failing_groups=failing_groups
            )
        result_id = self.store.monitors.record_window(
            self.name,
            first_request_log_id=min(r["id"] for r in w.requests),
            last_request_log_id=max(r["id"] for r in w.requests),
            n=len(pairs),
            is_drift=degraded,
            score=value,
            threshold=bound,
            detail=detail,
            state=state,
        )
        if degraded:
            kind = "ceiling" if lower else "floor"
            if beyond(value):
                message = (
                    f"{metric} of {self.deployment} fell to {value:.3f} ({kind} {bound:.3f}) "
                    f"over {len(pairs)} labelled records"
                )
            else:
                worst = ", ".join(
                    f"{g} {by_group[g][metric]:.3f} (n={by_group[g]['n']})" for g in failing_groups
                )
                message = (
                    f"{metric} of {self.deployment} for {self.config['group_by']}={worst} is past "
                    f"the {kind} {bound:.3f} (overall {value:.3f} over {len(pairs)} records)"
                )
            self._alert(
                DEGRADED,
                message,
                {
                    "value": value,
                    "bound": bound,
                    "by_version": by_version,
                    **({"by_group": by_group} if by_group else {}),
                },
                result_id,
            )
        out = {
            "id": result_id,
            "verdict": verdict,
            "is_drift": degraded,
            "reason": "",
            "metric": metric,
            "value": value,
            "bound": bound,
            "n": len(pairs),
            "by_version": by_version,
        }
        if self.config.get("group_by"):
            out.update(by_group=by_group, failing_groups=failing_groups)
        return out


class OperationalMonitor(_Monitor):
    """Latency p50/p99, error rate and throughput per window of requests (every status code).

    A window outside any configured bound is a ``breach``: alerted (critical
    for the error rate, warning otherwise), never a drift.
    """

    kind = "operational"

    def check(self) -> list[dict[str, Any]]:
        record = self.store.monitors.get(self.name)
        pending = self.store.deployments.list_requests(
            self.deployment, record["last_request_log_id"], ok_only=False
        )
        windows = split_windows(pending, self.spec, records_of=lambda r: [r])
        return [self._measure(w) for w in windows]

    def _measure(self, w: Window) -> dict[str, Any]:
        from workbench.monitoring._windows import _epoch

        reqs = w.requests
        n = len(reqs)
        codes = np.array([int(r["status_code"]) for r in reqs])
        answered = np.array([float(r["latency_ms"]) for r in reqs if int(r["status_code"]) < 400])
        errors = int((codes >= 500).sum())
        spec = self.spec
        if spec.kind == "time":
            duration = spec.size
        else:
            duration = _epoch(reqs[-1]["at"]) - _epoch(reqs[0]["at"])
        stats: dict[str, Any] = {
            "requests": n,
            "errors": errors,
            "client_errors": int(((codes >= 400) & (codes < 500)).sum()),
            "error_rate": errors / n,
            "p50_ms": float(np.percentile(answered, 50)) if len(answered) else None,
            "p99_ms": float(np.percentile(answered, 99)) if len(answered) else None,
            "throughput_rps": n / duration if duration > 0 else None,
            "duration_s": duration,
        }
        if n < self.min_rows:
            reason = f"{n} request(s) in the window; at least {self.min_rows} are needed"
            return self._bad_input(w, INSUFFICIENT, reason, {"stats": stats})
        bounds = self.config.get("bounds") or {}
        broken: list[str] = []
        checks = [
            ("max_p50_ms", "p50_ms", lambda v, b: v > b),
            ("max_p99_ms", "p99_ms", lambda v, b: v > b),
            ("max_error_rate", "error_rate", lambda v, b: v > b),
            ("min_throughput_rps", "throughput_rps", lambda v, b: v < b),
        ]
        for key, stat, bad in checks:
            if (
                bounds.get(key) is not None
                and stats[stat] is not None
                and bad(stats[stat], bounds[key])
            ):
                broken.append(f"{stat} {stats[stat]:.4g} (bound {bounds[key]:g})")
        verdict = BREACH if broken else OK
        severity = "critical" if any(b.startswith("error_rate") for b in broken) else "warning"
        detail = {
            "verdict": verdict,
            "kind": self.kind,
            "window": self._window_detail(w),
            "stats": stats,
            "bounds": bounds,
            "broken": broken,
        }
        result_id = self.store.monitors.record_window(
            self.name,
            first_request_log_id=w.first_id,
            last_request_log_id=w.last_id,
            n=n,
            is_drift=False,
            score=stats["p99_ms"],
            threshold=float(bounds.get("max_p99_ms") or 0.0),
            detail=detail,
        )
        if broken:
            self._alert(
                BREACH,
                f"{self.deployment} out of bounds: " + "; ".join(broken),
                {"stats": stats, "broken": broken, "severity": severity},
                result_id,
            )
        return {"id": result_id, "verdict": verdict, "is_drift": False, "broken": broken, **stats}


MONITOR_CLASSES: dict[str, type[_Monitor]] = {
    "data_drift": DriftMonitor,
    "prediction_drift": DriftMonitor,
    "online_drift": OnlineDriftMonitor,
    "performance": PerformanceMonitor,
    "operational": OperationalMonitor,
}


class Monitoring:
    """Create, load and run monitors; list their results and alerts.

    Examples
    --------
    >>> mon = bench.monitoring.drift_monitor("cancer", window=200, backend="scipy")   # doctest: +SKIP
    >>> mon.check()                                                                   # doctest: +SKIP
    >>> bench.monitoring.performance_monitor("cancer", metric="f1", tolerance=0.05)  # doctest: +SKIP
    >>> bench.monitoring.alerting.add_sink(WebhookSink("https://hooks.example/x"))   # doctest: +SKIP
    """

    def __init__(
        self,
        store: Store,
        datasets: Datasets,
        *,
        artifacts: ArtifactStore | None = None,
        alerting: Alerts | None = None,
    ):
        self.store = store
        self.datasets = datasets
        self.artifacts: ArtifactStore = artifacts or datasets.artifacts
        self.alerting = alerting or Alerts(store)

    # ------------------------------------------------------------ creation
    @requires("monitor")
    def drift_monitor(
        self,
        deployment: str,
        *,
        reference: DatasetVersion | None = None,
        name: str | None = None,
        window: int | str | timedelta = 100,
        p_val: float = 0.05,
        backend: str = "alibi",
        detector: str = "tabular",
        correction: str = "bonferroni",
        features: Sequence[str] | None = None,
        min_rows: int | None = None,
        alerts: Mapping[str, Any] | None = None,
        **detector_options: Any,
    ) -> DriftMonitor:
        """Create (or update) a data-drift monitor on a deployment's requests.

        Parameters
        ----------
        reference
            The data the detector is fitted on; default: the training data of
            the deployed version, and the monitor then follows the deployment
            (after a promotion it refits on the new version's training data).
        window
            Records per window (``100``) or a duration (``"15min"``, ``"1h"``).
        backend
            ``"alibi"`` (alibi-detect, BSL 1.1) or ``"scipy"`` (BSD).
        detector
            ``"tabular"``: KS/Chi-square per feature with ``correction``
            (``"bonferroni"`` or ``"fdr"``); ``"mmd"``: one multivariate MMD
            test (options ``n_permutations``, ``n_ref``, ``max_rows``, ``seed``,
            ``torch_threads``).
        features
            Monitor only these features (default: all of the reference).
        min_rows
            Fewer complete records than this is ``insufficient data``
            (default ``min(window, 30)``).
        alerts
            ``{"cooldown_s": 900, "min_severity": "warning", "webhook_url": ...}``.
        """
        spec = parse_window(window)
        if spec.kind == "count" and spec.size < 10:
            raise ConfigError("window must hold at least 10 records for a meaningful test")
        if not 0 < p_val < 1:
            raise ConfigError("p_val must be between 0 and 1")
        dv, follow = self._reference(deployment, reference)
        kinds = self._kinds(dv, features)
        config = {
            "window": window if not isinstance(window, timedelta) else f"{spec.size:g}s",
            "p_val": p_val,
            "backend": backend,
            "detector": detector,
            "correction": correction,
            "detector_options": dict(detector_options),
            "features": list(kinds),
            "min_rows": int(min_rows or min(30, spec.size if spec.kind == "count" else 30)),
            "follow_deployment": follow,
            "target": "features",
            "alerts": _alerts_config(alerts),
        }
        return self._create(name or f"{deployment}-drift", deployment, "data_drift", dv, config)

    @requires("monitor")
    def prediction_monitor(
        self,
        deployment: str,
        *,
        reference: DatasetVersion | None = None,
        name: str | None = None,
        window: int | str | timedelta = 100,
        p_val: float = 0.05,
        backend: str = "alibi",
        min_rows: int | None = None,
        alerts: Mapping[str, Any] | None = None,
    ) -> DriftMonitor:
        """Drift of the model's outputs: logged predictions against the deployed version's
        predictions on ``reference`` (Chi-square for classes, KS for regression values)."""
        spec = parse_window(window)
        if spec.kind == "count" and spec.size < 10:
            raise ConfigError("window must hold at least 10 records for a meaningful test")
        dv, follow = self._reference(deployment, reference)
        config = {
            "window": window if not isinstance(window, timedelta) else f"{spec.size:g}s",
            "p_val": p_val,
            "backend": backend,
            "detector": "tabular",
            "correction": "bonferroni",
            "detector_options": {},
            "features": None,
            "min_rows": int(min_rows or min(30, spec.size if spec.kind == "count" else 30)),
            "follow_deployment": follow,
            "target": "prediction",
            "alerts": _alerts_config(alerts),
        }
        return self._create(
            name or f"{deployment}-prediction-drift", deployment, "prediction_drift", dv, config
        )

    @requires("monitor")
    def online_monitor(
        self,
        deployment: str,
        *,
        reference: DatasetVersion | None = None,
        name: str | None = None,
        ert: float = 1000.0,
        window_sizes: Sequence[int] = (20, 100),
        backend: str = "alibi",
        features: Sequence[str] | None = None,
        n_bootstraps: int | None = None,
        n_ref: int = 1000,
        seed: int = 0,
        alerts: Mapping[str, Any] | None = None,
    ) -> OnlineDriftMonitor:
        """An online CVM detector on each logged record of the numeric features, with an expected
        run time of ``ert`` records between false alarms."""
        dv, _ = self._reference(deployment, reference)
        kinds = {k: v for k, v in self._kinds(dv, features).items() if v == NUMBER}
        if not kinds:
            raise ConfigError(
                "the online detector tests numeric features and the reference has none; "
                "use drift_monitor for categorical ones"
            )
        config = {
            "window": 1,
            "backend": backend,
            "detector": "cvm_online",
            "detector_options": {
                "ert": ert,
                "window_sizes": list(window_sizes),
                "n_bootstraps": n_bootstraps,
                "n_ref": n_ref,
                "seed": seed,
            },
            "features": list(kinds),
            "follow_deployment": False,
            "target": "features",
            "alerts": _alerts_config(alerts),
        }
        return self._create(  # type: ignore[return-value]
            name or f"{deployment}-online-drift", deployment, "online_drift", dv, config
        )

    @requires("monitor")
    def performance_monitor(
        self,
        deployment: str,
        *,
        name: str | None = None,
        window: int | str | timedelta = 100,
        metric: str | None = None,
        min_value: float | None = None,
        tolerance: float = 0.05,
        min_rows: int | None = None,
        reference: DatasetVersion | None = None,
        alerts: Mapping[str, Any] | None = None,
        group_by: str | None = None,
        min_group_rows: int = 10,
    ) -> PerformanceMonitor:
        """Accuracy/F1 (or R²/RMSE/MAE) per window of labelled requests, also per group of the
        ``group_by`` feature (groups with fewer than ``min_group_rows`` records in a window are
        shown, not judged); see :class:`PerformanceMonitor`."""
        from workbench.evaluation import lower_is_better, task_metrics

        spec = parse_window(window)
        mv = self._deployed_version(deployment)
        task = mv["task"] if mv else "classification"
        metric = metric or ("f1" if task == "classification" else "rmse")
        allowed = task_metrics(task)
        if metric not in allowed:
            raise ConfigError(f"metric for a {task} model must be one of {allowed}, got {metric!r}")
        baseline = (mv or {}).get("metrics", {}).get(metric)
        if min_value is not None:
            bound = float(min_value)
        elif baseline is not None:
            bound = baseline + tolerance if lower_is_better(metric) else baseline - tolerance
        else:
            raise ConfigError(
                f"the deployed version of {deployment!r} has no registered {metric!r} to compare with; "
                "pass min_value="
            )
        dv, _ = self._reference(deployment, reference)
        if group_by is not None:
            features = dict((mv or {}).get("signature", {}).get("features") or {}) or dict(
                dv.schema
            )
            if group_by not in features:
                raise ConfigError(
                    f"group_by={group_by!r} is not a feature of {deployment!r}'s requests; "
                    f"choose one of {sorted(features)}"
                )
            if min_group_rows < 1:
                raise ConfigError("min_group_rows must be at least 1")
        config = {
            "window": window if not isinstance(window, timedelta) else f"{spec.size:g}s",
            "metric": metric,
            "task": task,
            "group_by": group_by,
            "min_group_rows": int(min_group_rows),
            "bound": bound,
            "baseline": baseline,
            "tolerance": tolerance,
            # a floor derived from the deployed version follows it when another is promoted
            "follow_deployment": min_value is None,
            "model_version": (mv or {}).get("version"),
            "min_rows": int(min_rows or min(30, spec.size if spec.kind == "count" else 30)),
            "alerts": _alerts_config(alerts),
        }
        return self._create(  # type: ignore[return-value]
            name or f"{deployment}-performance", deployment, "performance", dv, config
        )

    @requires("monitor")
    def operational_monitor(
        self,
        deployment: str,
        *,
        name: str | None = None,
        window: int | str | timedelta = "5min",
        max_p50_ms: float | None = None,
        max_p99_ms: float | None = None,
        max_error_rate: float | None = None,
        min_throughput_rps: float | None = None,
        min_rows: int = 20,
        reference: DatasetVersion | None = None,
        alerts: Mapping[str, Any] | None = None,
    ) -> OperationalMonitor:
        """Latency p50/p99, error rate and throughput per window of requests, against these bounds."""
        spec = parse_window(window)
        dv, _ = self._reference(deployment, reference)
        config = {
            "window": window if not isinstance(window, timedelta) else f"{spec.size:g}s",
            "bounds": {
                "max_p50_ms": max_p50_ms,
                "max_p99_ms": max_p99_ms,
                "max_error_rate": max_error_rate,
                "min_throughput_rps": min_throughput_rps,
            },
            "min_rows": int(min_rows),
            "alerts": _alerts_config(alerts),
        }
        return self._create(  # type: ignore[return-value]
            name or f"{deployment}-operational", deployment, "operational", dv, config
        )

    # ------------------------------------------------------------ loading, running
    def get(self, name: str) -> Any:
        """Load a monitor by name, with the detector it saved (never refitted silently)."""
        record = self.store.monitors.get(name)
        return MONITOR_CLASSES.get(record["kind"], DriftMonitor)(self, record)

    def list(self, deployment: str | None = None) -> list[dict[str, Any]]:
        """Every monitor (of one deployment), oldest first, as :meth:`record` shows each."""
        return [_record(m) for m in self.store.monitors.list(deployment)]

    def record(self, name: str) -> dict[str, Any]:
        """One monitor as recorded, without loading its detector: ``id``, ``name``,
        ``deployment``, ``kind``, ``config`` (window, ``p_val``, correction, features...),
        ``reference_dataset_version_id``, ``last_request_log_id``, ``created_at``. The running
        state (an online detector's statistics, label cursors) stays internal.

        Examples
        --------
        >>> bench.monitoring.record("cancer-drift")["config"]["p_val"]     # doctest: +SKIP
        0.05
        """
        return _record(self.store.monitors.get(name))

    def retrain_jobs(self, name: str) -> list[dict[str, Any]]:
        """The retrain jobs the drift results of monitor ``name`` triggered, oldest first:
        ``id``, ``drift_result_id``, ``status``, ``decision``, ``policy``, ``started_at``,
        ``ended_at``, ``challenger_version_id``, and ``triage``: the job's estimate of the shift's
        harm (``LoopPolicy(triage=True)``: ``method``, ``estimate``, ``baseline``, ``interval``,
        ``harmful``, ``n``, ``reason``...), None when it was not triaged.

        Examples
        --------
        >>> [j["status"] for j in bench.monitoring.retrain_jobs("cancer-drift")]   # doctest: +SKIP
        ['PROMOTED']
        """
        windows = {w["id"] for w in self.store.monitors.list_windows(name)}
        keep = ("id", "drift_result_id", "status", "decision", "policy", "started_at", "ended_at")
        return [
            {
                **{k: j.get(k) for k in keep},
                "challenger_version_id": j.get("challenger_version_id"),
                "triage": (j.get("detail") or {}).get("triage"),
            }
            for j in self.store.retraining.list_jobs()
            if j.get("drift_result_id") in windows
        ]

    def check_all(self, deployment: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Run ``check()`` on every monitor (of one deployment); a failing monitor is logged and skipped."""
        out: dict[str, list[dict[str, Any]]] = {}
        for record in self.list(deployment):
            try:
                out[record["name"]] = self.get(record["name"]).check()
            except Exception as exc:  # one broken monitor must not silence the others
                log.exception("monitor %s failed", record["name"])
                out[record["name"]] = [
                    {"verdict": "error", "error": f"{type(exc).__name__}: {exc}"}
                ]
        return out

    def refit(self, name: str, *, reference: DatasetVersion | None = None) -> Any:
        """Fit a drift monitor's detector again (on ``reference``, else its current one), save it, audit it."""
        record = self.store.monitors.get(name)
        if record["kind"] not in ("data_drift", "prediction_drift", "online_drift"):
            raise ConfigError(f"monitor {name!r} ({record['kind']}) has no detector to refit")
        dv = reference or self.datasets.by_id(record["reference_dataset_version_id"])
        config = dict(record["config"])
        if "encoder" not in config:  # a stored config without encoder settings gets the defaults
            config.update(_default_settings(config))
        return self._create(name, record["deployment"], record["kind"], dv, config, action="refit")

    def record_labels(self, labels: dict[str, Any]) -> int:
        """Attach ground truth that arrived later to logged requests (``{request_id: label}``).

        Labelled requests feed performance monitors and the next retraining's data.
        """
        return self.store.monitors.record_labels(labels)

    def results(
        self, name: str | None = None, *, drift_only: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recorded windows (verdict, p-value, threshold, detail), oldest first.

        ``limit`` keeps only the latest ``limit`` windows, read with one indexed
        query however long the monitor has run (what a UI polling for the newest
        windows wants).
        """
        return self.store.monitors.list_windows(name, drift_only=drift_only, limit=limit)

    def alerts(
        self, name: str | None = None, *, severity: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Alerts, newest first (``count`` > 1: duplicates folded in during the cooldown)."""
        return self.alerting.list(name, severity=severity, limit=limit)

    # ------------------------------------------------------------ internals
    def _deployed_version(self, deployment: str) -> dict[str, Any] | None:
        """The model version taking most of the deployment's traffic (else its champion)."""
        dep = self.store.deployments.get(deployment)
        weights = {int(v): float(w) for v, w in (dep.get("weights") or {}).items() if float(w) > 0}
        try:
            if weights:
                version = max(weights, key=lambda v: (weights[v], v))
                return self.store.models.get_version(dep["model"], version)
            return self.store.models.get_version(dep["model"], "champion")
        except NotFoundError:
            return None

    def _reference(
        self, deployment: str, reference: DatasetVersion | None
    ) -> tuple[DatasetVersion, bool]:
        if reference is not None:
            return reference, False
        mv = self._deployed_version(deployment)
        if not mv or mv.get("dataset_version_id") is None:
            raise ConfigError(
                f"cannot tell the training data of {deployment!r}'s deployed version; pass reference="
            )
        return self.datasets.by_id(mv["dataset_version_id"]), True

    @staticmethod
    def _kinds(dv: DatasetVersion, features: Sequence[str] | None) -> dict[str, str]:
        from workbench.features import feature_kinds

        kinds = feature_kinds(dv.schema, dv.target)
        if features is not None:
            unknown = [f for f in features if f not in kinds]
            if unknown:
                raise ConfigError(
                    f"features {unknown} are not features of {dv.name}@{dv.version} ({sorted(kinds)})"
                )
            kinds = {f: kinds[f] for f in features}
        else:
            # a timestamp's distribution moves with the calendar by nature: every window of new
            # requests would be "drift". Named explicitly, one is compared as epoch seconds.
            kinds = {f: k for f, k in kinds.items() if k != DATETIME}
        if not kinds:
            raise ConfigError(f"{dv.name}@{dv.version} has no features to monitor")
        return kinds

    def _reference_rows(
        self, deployment: str, dv: DatasetVersion, config: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        frame = self.datasets.load(dv)
        if config.get("target") == "prediction":
            mv = self._deployed_version(deployment)
            if mv is None:
                raise ConfigError(f"{deployment!r} serves no model version to predict with")
            from workbench.features import feature_kinds
            from workbench.registry import ModelRegistry

            bundle = ModelRegistry(self.store, self.artifacts).load(mv["model"], mv["version"])
            inputs = list(feature_kinds(dv.schema, dv.target))
            preds = bundle.predict_records(frame.select(inputs).to_dicts())
            kind = "string" if mv["task"] == "classification" else NUMBER
            return [{"prediction": p} for p in preds], {"prediction": kind}
        kinds = {f: k for f, k in self._kinds(dv, config["features"]).items()}
        return frame.select(list(kinds)).to_dicts(), kinds

    def _create(
        self,
        name: str,
        deployment: str,
        kind: str,
        dv: DatasetVersion,
        config: dict[str, Any],
        *,
        action: str = "fit",
        extra: dict[str, Any] | None = None,
    ) -> Any:
        from workbench.monitoring._persist import detector_to_bytes

        detector = None
        if kind in ("data_drift", "prediction_drift", "online_drift"):
            rows, kinds = self._reference_rows(deployment, dv, config)
            encoder = Encoder.fit(rows, kinds)
            x_ref = encoder.encode_reference(rows)
            if kind == "online_drift":
                from workbench.monitoring._online import make_online_detector

                opts = {k: v for k, v in config["detector_options"].items() if v is not None}
                detector = make_online_detector(config["backend"], **opts)
            else:
                detector = make_detector(
                    config["backend"],
                    detector=config["detector"],
                    p_val=config["p_val"],
                    **(
                        {"correction": config["correction"]}
                        if config["detector"] == "tabular"
                        else {}
                    ),
                    **config["detector_options"],
                )
            detector.fit(x_ref, encoder.categorical)
            digest = self.artifacts.put_bytes(detector_to_bytes(detector))
            config = {
                **config,
                "encoder": encoder.to_json(),
                "detector_artifact": digest,
                "detector_class": type(detector).__name__,
                "reference_rows": int(len(x_ref)),
            }
        record = self.store.monitors.add(
            name,
            deployment=deployment,
            kind=kind,
            reference_dataset_version_id=dv.id,
            config=config,
        )
        self.store.monitors.set_state(name, {})  # a new detector starts a new run
        self.store.audit(
            f"monitor.{action}",
            "monitor",
            record["id"],
            {
                "kind": kind,
                "reference_dataset_version_id": dv.id,
                "detector_artifact": config.get("detector_artifact"),
                **(extra or {}),
            },
            actor="monitor",
        )
        record = self.store.monitors.get(name)
        cls = MONITOR_CLASSES[kind]
        if cls in (DriftMonitor, OnlineDriftMonitor):
            return cls(self, record, detector=detector)  # type: ignore[call-arg]
        return cls(self, record)

    def _load_detector(self, record: dict[str, Any]) -> Any:
        from workbench.monitoring._persist import detector_from_bytes

        config = record["config"]
        digest = config.get("detector_artifact")
        if not digest:
            raise ConfigError(
                f"monitor {record['name']!r} was created before detectors were saved with their "
                f"monitor; fit it once more, explicitly, with Monitoring.refit({record['name']!r})."
            )
        try:
            return detector_from_bytes(self.artifacts.get_bytes(digest))
        except Exception as exc:
            raise ConfigError(
                f"the saved detector of monitor {record['name']!r} cannot be loaded ({exc}); "
                f"it was not refitted behind your back: refit it with Monitoring.refit({record['name']!r})."
            ) from exc

    def _follow_deployment(self, monitor: DriftMonitor) -> None:
        """After a promotion, move the reference to the training data of the newly deployed version."""
        mv = self._deployed_version(monitor.deployment)
        dv_id = (mv or {}).get("dataset_version_id")
        if dv_id is None or dv_id == monitor.reference_id:
            return
        old = monitor.reference_id
        fresh = self._create(
            monitor.name,
            monitor.deployment,
            monitor.kind,
            self.datasets.by_id(dv_id),
            {
                k: v
                for k, v in monitor.config.items()
                if k not in ("encoder", "detector_artifact", "detector_class", "reference_rows")
            },
            action="reference_moved",
            extra={"from_dataset_version_id": old, "model_version": (mv or {}).get("version")},
        )
        monitor.__dict__.update(fresh.__dict__)


def _require_saved(record: dict[str, Any]) -> None:
    if "encoder" not in record["config"] or not record["config"].get("detector_artifact"):
        raise ConfigError(
            f"monitor {record['name']!r} was created before detectors were saved with their "
            f"monitor; fit it once more, explicitly, with Monitoring.refit({record['name']!r})."
        )


def _alerts_config(alerts: Mapping[str, Any] | None) -> dict[str, Any]:
    cfg = {"cooldown_s": 900.0, "min_severity": "warning", **dict(alerts or {})}
    unknown = set(cfg) - {"cooldown_s", "min_severity", "webhook_url"}
    if unknown:
        raise ConfigError(
            f"unknown alert settings {sorted(unknown)}; use cooldown_s, min_severity, webhook_url"
        )
    if cfg.get("webhook_url"):
        WebhookSink(cfg["webhook_url"])  # validates the URL now rather than at the first alert
    return cfg


def _default_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a drift monitor's stored config lacks, filled with their defaults."""
    return {
        "detector": config.get("detector", "tabular"),
        "correction": config.get("correction", "bonferroni"),
        "detector_options": config.get("detector_options", {}),
        "features": config.get("features"),
        "min_rows": config.get("min_rows") or min(30, int(config.get("window", 100))),
        "follow_deployment": False,
        "target": config.get("target", "features"),
        "alerts": _alerts_config(config.get("alerts")),
    }


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A monitor row without its running state (internal, and large for online detectors), its
    webhook URL redacted (a secret: the real one stays in the store, where delivery reads it).

    >>> _record({"name": "m", "state": {}, "config": {"alerts": {"webhook_url": "https://h.example/s"}}})
    {'name': 'm', 'config': {'alerts': {'webhook_url': 'https://h.example/…#5ea232'}}}
    """
    out = {k: v for k, v in row.items() if k != "state"}
    alerts = (out.get("config") or {}).get("alerts") or {}
    if alerts.get("webhook_url"):
        alerts = {**alerts, "webhook_url": redact_url(alerts["webhook_url"])}
        out["config"] = {**out["config"], "alerts": alerts}
    return out
