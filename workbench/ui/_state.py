"""What each workbench widget shows, built from the stages' read views: plain, JSON-safe dicts and lists.

Pure functions (and one small incremental aggregator) with no widget, store
or Ray import: they call the read methods of the stage objects handed in
(see ``_sources.py``), so they are tested without a browser, and a widget
re-created after a kernel restart shows exactly what the store holds.
Everything here only reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from workbench.datasets import short_hash
from workbench.runtime import jsonable, percentile
from workbench.ui._sources import (
    DatasetSource,
    DeploymentSource,
    ExperimentSource,
    LineageSource,
    MonitorSource,
    RegistrySource,
)

__all__ = [
    "STATUSES",
    "ExperimentReader",
    "RequestSeries",
    "registry_state",
    "evaluation_summary",
    "cv_text",
    "deployment_state",
    "monitor_state",
    "triage_view",
    "alerts_view",
    "lineage_state",
    "dataset_state",
    "diff_state",
    "node_record",
    "rollback_target",
    "clean",
]

#: Trial statuses in the order the experiment widget lists them.
STATUSES = ("RUNNING", "PENDING", "TERMINATED", "STOPPED", "INTERRUPTED", "ERROR")
_FINAL_TRIAL = {"TERMINATED", "STOPPED", "ERROR"}


def clean(value: Any) -> Any:
    """``value`` as JSON for the comm: NaN/inf as ``None`` (JSON has neither), other objects as text."""
    return jsonable(value, default=str, finite=True)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _cell(value: Any) -> Any:
    """A table cell: numbers stay numbers, everything else becomes short text."""
    if value is None or isinstance(value, bool | str):
        return value
    n = _num(value)
    if n is not None or isinstance(value, int | float):
        return n
    return str(value)


# ------------------------------------------------------------------ experiment
class ExperimentReader:
    """Builds the experiment widget's state, re-reading only what can still change.

    Metric curves of finished trials are read once and cached; trials that
    are still running are re-read on every call. With 1,000 finished trials a
    refresh is one ``experiments.trials`` read plus nothing per trial.

    Parameters
    ----------
    experiments : ExperimentSource
        ``bench.experiments`` (``get``, ``trials``, ``metrics``).
    experiment_id : int
        The experiment to show.
    """

    def __init__(self, experiments: ExperimentSource, experiment_id: int):
        self.experiments = experiments
        self.experiment_id = int(experiment_id)
        self._curves: dict[str, list[list[float]]] = {}
        self._final: set[str] = set()

    def read(self) -> dict[str, Any]:
        """The whole state: ``experiment``, ``columns``, ``rows``, ``curves``, ``best``, ``best_curve``."""
        exp = self.experiments.get(self.experiment_id)
        trials = self.experiments.trials(self.experiment_id)
        metric, mode = exp["metric"], exp["mode"]
        sign = 1.0 if mode == "max" else -1.0

        config_keys: list[str] = []
        metric_keys: list[str] = []
        for t in trials:
            for k in t.get("config") or {}:
                if k not in config_keys:
                    config_keys.append(k)
            for k in t.get("metrics") or {}:
                if k != metric and k not in metric_keys:
                    metric_keys.append(k)
        # the CV mean and 95% interval of the experiment's metric, when trials carry them
        with_cv = any(isinstance((t.get("cv") or {}).get(metric), Mapping) for t in trials)
        columns = [
            "trial_id",
            "status",
            metric,
            "duration_s",
            *([f"cv {metric}"] if with_cv else []),
            *(f"config.{k}" for k in config_keys),
            *(f"metrics.{k}" for k in metric_keys),
        ]
        rows: list[list[Any]] = []
        counts: dict[str, int] = {}
        best: dict[str, Any] | None = None
        finished: list[tuple[str, str, float]] = []
        for t in trials:
            config, metrics = t.get("config") or {}, t.get("metrics") or {}
            status = str(t.get("status") or "PENDING")
            self._read_curve(t["trial_id"], status, metric)
            value = _num(metrics.get(metric))
            if value is None and status not in _FINAL_TRIAL and self._curves.get(t["trial_id"]):
                value = self._curves[t["trial_id"]][-1][1]  # still running: its latest report
            counts[status] = counts.get(status, 0) + 1
            rows.append(
                [
                    t["trial_id"],
                    status,
                    value,
                    _num(t.get("duration_s")),
                    *([cv_text((t.get("cv") or {}).get(metric))] if with_cv else []),
                    *(_cell(config.get(k)) for k in config_keys),
                    *(_cell(metrics.get(k)) for k in metric_keys),
                ]
            )
            if value is not None and (best is None or sign * value > sign * best["value"]):
                best = {"trial_id": t["trial_id"], "value": value, "config": clean(config)}
            if status in _FINAL_TRIAL and value is not None:
                finished.append(
                    (str(t.get("ended_at") or t.get("started_at") or ""), t["trial_id"], value)
                )

        # Best so far, in the order trials finished.
        best_curve: list[list[Any]] = []
        running_best: float | None = None
        for i, (_, trial_id, value) in enumerate(sorted(finished), start=1):
            if running_best is None or sign * value > sign * running_best:
                running_best = value
            best_curve.append([i, running_best, trial_id])

        experiment = {
            "id": exp["id"],
            "name": exp["name"],
            "status": exp["status"],
            "metric": metric,
            "mode": mode,
            "num_samples": exp["num_samples"],
            "search_alg": exp["search_alg"],
            "scheduler": exp["scheduler"],
            "started_at": exp["started_at"],
            "ended_at": exp.get("ended_at"),
            "n_trials": len(trials),
            "counts": counts,
        }
        known = {t["trial_id"] for t in trials}
        curves = {k: v for k, v in self._curves.items() if k in known}
        return clean(
            {
                "experiment": experiment,
                "columns": columns,
                "rows": rows,
                "curves": curves,
                "best": best or {},
                "best_curve": best_curve,
            }
        )

    def _read_curve(self, trial_id: str, status: str, metric: str) -> None:
        if trial_id in self._final:
            return
        points = [
            [float(m["step"]), float(m["value"])]
            for m in self.experiments.metrics(self.experiment_id, trial_id)
            if m["name"] == metric and _num(m["value"]) is not None
        ]
        self._curves[trial_id] = points
        if status in _FINAL_TRIAL:
            self._final.add(trial_id)


# -------------------------------------------------------------------- registry
def registry_state(registry: RegistrySource, model: str) -> dict[str, Any]:
    """Versions of ``model`` (metrics, aliases, data version), alias history, data versions, and
    each evaluated version's :func:`evaluation_summary` under ``evaluations`` (keyed by the
    version as text).

    ``registry`` is ``bench.registry`` (``get``, ``list``, ``history``, ``data_versions``,
    ``evaluation``).
    """
    versions = registry.list(model)
    if not versions:
        # Ask for a version so the error names the known models.
        registry.get(model, 1)
    data_versions = [
        {
            "id": dv["id"],
            "label": f"{dv['dataset']} v{dv['version']}",
            "rows": dv["n_rows"],
            "cols": dv["n_cols"],
            "hash": short_hash(dv["content_hash"]),
            "created_at": dv["created_at"],
            "parent_id": dv.get("parent_id"),
        }
        for dv in registry.data_versions(model)
    ]
    labels = {dv["id"]: dv["label"] for dv in data_versions}
    metric_names: list[str] = []
    rows = []
    for mv in versions:
        for k, v in (mv.metrics or {}).items():
            if _num(v) is not None and k not in metric_names:
                metric_names.append(k)
        dv_id = mv.dataset_version_id
        rows.append(
            {
                "version": mv.version,
                "aliases": list(mv.aliases),
                "metrics": {
                    k: _num(v) for k, v in (mv.metrics or {}).items() if _num(v) is not None
                },
                "params": {k: _cell(v) for k, v in (mv.params or {}).items()},
                # a dangling id: show the id rather than fail the whole widget
                "dataset": None
                if dv_id is None
                else labels.get(dv_id, f"dataset version #{dv_id}"),
                "dataset_version_id": dv_id,
                "experiment_id": mv.experiment_id,
                "trial_id": mv.trial_id,
                "created_at": mv.created_at,
                "artifact": mv.artifact_hash[:12],
                # the columns the fitted preprocessing generates (what the estimator sees)
                "feature_names": list((mv.signature or {}).get("feature_names") or []),
            }
        )
    history = [
        {
            "alias": h["alias"],
            "version": h["version"],
            "previous_version": h["previous_version"],
            "actor": h["actor"],
            "reason": h["reason"],
            "at": h["at"],
        }
        for h in registry.history(model)
    ]
    aliases: dict[str, int] = {}
    for r in rows:
        for a in r["aliases"]:
            aliases[a] = r["version"]
    evaluations = {}
    for mv in versions:
        summary = evaluation_summary(registry.evaluation(model, mv.version), labels=labels)
        if summary is not None:
            evaluations[str(mv.version)] = summary
    return clean(
        {
            "model": model,
            "versions": rows,
            "evaluations": evaluations,
            "metric_names": metric_names,
            "aliases": aliases,
            "history": history,
            "data_versions": data_versions,
            "rollback": {a: rollback_target(history, a, aliases.get(a)) for a in aliases},
        }
    )


def evaluation_summary(
    ev: Mapping[str, Any] | None, *, labels: Mapping[int, str] | None = None
) -> dict[str, Any] | None:
    """What the registry widget and the panel show of a recorded evaluation (None for none).

    ``metrics``: one row per metric, ``{"name", "value"}`` (the holdout figure) and ``"cv"``
    (``{"mean", "ci_low", "ci_high", "n_folds"}`` of the training trial's folds, or None);
    ``fairness``: ``{"features", "metrics", "groups": [{"feature", "group", "count",
    "values": {metric: v}}], "gaps": {feature: {gap: v}}, "notes": [str]}`` or None; ``gate``: the verdict's
    ``passed``, ``metric``, ``champion``, ``challenger``, ``margin``, ``reason``, ``test``,
    ``n``, ``interval``, ``p_value``, ``evidence`` or None; ``holdout`` (a dataset label from
    ``labels`` or ``dataset version #id``), ``n`` (holdout rows), ``created_at``, ``id`` and
    ``has_report`` (whether the HTML report is stored already).

    Examples
    --------
    >>> s = evaluation_summary({"id": 1, "metrics": {"f1": 0.9}, "details": {"n": 50},
    ...     "cv": {"f1": {"mean": 0.88, "ci_low": 0.85, "ci_high": 0.91, "n_folds": 5}}})
    >>> s["metrics"][0]["name"], s["metrics"][0]["cv"]["ci_high"], s["n"]
    ('f1', 0.91, 50)
    """
    if not ev:
        return None
    metrics = dict(ev.get("metrics") or {})
    cv = {k: v for k, v in (ev.get("cv") or {}).items() if isinstance(v, Mapping)}
    rows = []
    for name in [*metrics, *(k for k in cv if k not in metrics)]:
        c = cv.get(name)
        rows.append(
            {
                "name": name,
                "value": _num(metrics.get(name)),
                "cv": None
                if c is None
                else {
                    **{k: _num(c.get(k)) for k in ("mean", "ci_low", "ci_high")},
                    "n_folds": None if _num(c.get("n_folds")) is None else int(c["n_folds"]),
                },
            }
        )
    fairness = None
    fair = ev.get("fairness") or {}
    if fair.get("by_group"):
        groups, names = [], []
        for feature, by in fair["by_group"].items():
            for group, vals in (by or {}).items():
                if not isinstance(vals, Mapping):
                    continue
                values = {k: _num(v) for k, v in vals.items() if k != "count"}
                names += [k for k in values if k not in names]
                groups.append(
                    {
                        "feature": feature,
                        "group": group,
                        "count": vals.get("count"),
                        "values": values,
                    }
                )
        fairness = {
            "features": list(fair.get("sensitive_features") or fair["by_group"]),
            "metrics": names,
            "groups": groups,
            "gaps": {
                f: {k: _num(v) for k, v in g.items()}
                for f, g in (fair.get("gaps") or {}).items()
                if isinstance(g, Mapping)
            },
            "notes": [str(n) for n in fair.get("notes") or []],
        }
    gate = None
    if ev.get("gate"):
        keep = ("passed", "metric", "champion", "challenger", "margin", "reason", "test", "n")
        gate = {k: ev["gate"].get(k) for k in keep}
        gate.update(
            interval=ev["gate"].get("interval"),
            p_value=_num(ev["gate"].get("p_value")),
            evidence=ev["gate"].get("evidence"),
        )
    hid = ev.get("holdout_version_id")
    return clean(
        {
            "id": ev.get("id"),
            "created_at": ev.get("created_at"),
            "holdout": None if hid is None else (labels or {}).get(hid, f"dataset version #{hid}"),
            "n": (ev.get("details") or {}).get("n"),
            "metrics": rows,
            "fairness": fairness,
            "gate": gate,
            "has_report": bool(ev.get("report_artifact")),
        }
    )


def cv_text(cv: Mapping[str, Any] | None) -> str | None:
    """A CV summary of one metric as a table cell: ``"mean [ci_low, ci_high]"`` to 3 decimals
    (``"mean (1 fold)"`` without an interval; None without a summary).

    Examples
    --------
    >>> cv_text({"mean": 0.9512, "ci_low": 0.9391, "ci_high": 0.9633, "n_folds": 5})
    '0.951 [0.939, 0.963]'
    """
    if not cv or _num(cv.get("mean")) is None:
        return None
    lo, hi = _num(cv.get("ci_low")), _num(cv.get("ci_high"))
    if lo is None or hi is None:
        return f"{cv['mean']:.3f} ({cv.get('n_folds', 1)} fold)"
    return f"{cv['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def rollback_target(
    history: Iterable[Mapping[str, Any]], alias: str, current: int | None
) -> int | None:
    """The version ``alias`` pointed at before its latest move (``None`` if it never moved)."""
    for h in reversed(list(history)):
        if h["alias"] == alias:
            prev = h.get("previous_version")
            return None if prev is None or prev == current else int(prev)
    return None


# ------------------------------------------------------------------ deployment
def _ts(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


class RequestSeries:
    """Request rate, latency and errors of a deployment per time bucket, fed incrementally from the log.

    Each :meth:`update` reads only the request-log rows written since the
    last one (``serving.requests(name, after_id=cursor)``) and keeps the last
    ``window_s`` seconds in buckets of ``bucket_s`` seconds.

    Parameters
    ----------
    serving : DeploymentSource
        ``bench.serving`` (its ``requests`` read view; no Ray call).
    deployment : str
        Deployment name.
    window_s, bucket_s : float
        How much history to keep, and the bucket width.
    """

    def __init__(
        self,
        serving: DeploymentSource,
        deployment: str,
        *,
        window_s: float = 300.0,
        bucket_s: float = 5.0,
    ):
        if bucket_s <= 0 or window_s < bucket_s:
            raise ValueError("bucket_s must be positive and window_s at least one bucket")
        self.serving = serving
        self.deployment = deployment
        self.window_s = float(window_s)
        self.bucket_s = float(bucket_s)
        self.cursor = 0
        self.total = 0
        self._buckets: dict[int, dict[str, Any]] = {}

    def update(self, *, now: float | None = None, batch: int = 5000) -> None:
        while True:
            rows = self.serving.requests(
                self.deployment, after_id=self.cursor, limit=batch, ok_only=False
            )
            for r in rows:
                self.cursor = max(self.cursor, int(r["id"]))
                key = int(_ts(r["at"]) // self.bucket_s)
                b = self._buckets.setdefault(key, {"n": 0, "errors": 0, "lat": [], "versions": {}})
                b["n"] += 1
                b["errors"] += int(int(r["status_code"]) >= 500)
                b["lat"].append(float(r["latency_ms"]))
                v = r.get("model_version")
                if v is not None:
                    b["versions"][str(v)] = b["versions"].get(str(v), 0) + 1
            self.total += len(rows)
            if len(rows) < batch:
                break
        now = datetime.now().timestamp() if now is None else now
        oldest = int((now - self.window_s) // self.bucket_s)
        for key in [k for k in self._buckets if k < oldest]:
            del self._buckets[key]

    def series(self) -> list[dict[str, Any]]:
        """One point per non-empty bucket: ``t`` (epoch s), ``rps``, ``p50``, ``p95``, ``error_rate``, ``versions``."""
        out = []
        for key in sorted(self._buckets):
            b = self._buckets[key]
            lat = sorted(b["lat"])
            out.append(
                {
                    "t": key * self.bucket_s,
                    "n": b["n"],
                    "rps": round(b["n"] / self.bucket_s, 3),
                    "p50": _round(percentile(lat, 50)),
                    "p95": _round(percentile(lat, 95)),
                    "error_rate": b["errors"] / b["n"] if b["n"] else 0.0,
                    "versions": dict(b["versions"]),
                }
            )
        return out


def deployment_state(
    serving: DeploymentSource, name: str, series: RequestSeries | None = None
) -> dict[str, Any]:
    """Current weights, versions that can take traffic, traffic history, canary progress, request series."""
    dep = serving.record(name)
    weights = {str(int(k)): float(v) for k, v in (dep.get("weights") or {}).items()}
    versions = list(dep["versions"])
    history = []
    for c in serving.traffic_history(name):
        history.append(
            {
                "at": c["at"],
                "t": _ts(c["at"]),
                "weights": {str(k): float(v) for k, v in (c.get("weights") or {}).items()},
                "kind": c["kind"],
                "actor": c["actor"],
                "reason": c["reason"],
                "detail": c["detail"],
            }
        )
    canary = None
    for c in reversed(history):
        if c["kind"] == "canary":
            d = c["detail"]
            canary = {
                "step": d.get("step"),
                "steps": d.get("steps"),
                "champion": d.get("champion"),
                "challenger": d.get("challenger"),
                "share": c["weights"].get(str(d.get("challenger")), 0.0),
                "at": c["at"],
                "active": c is history[-1] and (d.get("step") or 0) < (d.get("steps") or 0),
                "reason": c["reason"],
            }
            break
        if c["kind"] == "rollback" and canary is None:
            # A rollback after a canary ends it; keep looking to say which canary it ended.
            continue
    if canary is not None and history and history[-1]["kind"] == "rollback":
        canary["rolled_back"] = history[-1]["at"] > canary["at"]
    stats = serving.request_stats(name)
    return clean(
        {
            "name": name,
            "model": dep["model"],
            "status": dep["status"],
            "route_prefix": dep["route_prefix"],
            "weights": weights,
            "versions": versions,
            "history": history[-200:],
            "canary": canary or {},
            "requests": series.series() if series is not None else [],
            "totals": {
                "n": stats["n"],
                "errors": stats["errors"],
                "mean_latency_ms": stats["mean_latency_ms"],
            },
        }
    )


# --------------------------------------------------------------------- monitor
def _figure(value: float | None) -> str:
    """An estimate as the triage line writes it: 2 decimals (an accuracy, an error), whole numbers
    from 1,000 on."""
    if value is None:
        return "?"
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:,.0f}"


#: How each triage method reads in the triage line (``Job.triage``'s ``method``).
_TRIAGE_METHODS = {
    "labels": "labels",
    "cbpe": "cbpe (no labels)",
    "iw": "importance-weighted (no labels)",
}


def triage_view(triage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A retrain job's triage (``LoopPolicy(triage=True)``: the estimated harm of the shift that
    started it) as the monitor widget and the side panel show it, None when it was not triaged:
    ``method``, ``metric``, ``estimate``, ``baseline``, ``interval``, ``harmful``, ``n``,
    ``effective_n`` (importance weighting), ``reason`` (the engine's) and ``verdict``, one line
    of text.

    Examples
    --------
    >>> triage_view({"method": "labels", "estimate": 0.9737, "baseline": 0.9605,
    ...              "interval": [0.925, 0.991], "harmful": False, "n": 114})["verdict"]
    'harmless shift: accuracy est. 0.97 (0.93–0.99) vs 0.96 baseline, labels n=114'
    >>> triage_view({"method": "cbpe", "estimate": 0.71, "baseline": 0.95, "interval": None,
    ...              "harmful": True, "n": 40})["verdict"]
    'harmful shift: accuracy est. 0.71 vs 0.95 baseline, cbpe (no labels) n=40'
    >>> triage_view({"method": "iw", "metric": "rmse", "estimate": 41.37, "baseline": 30.2,
    ...              "interval": [35.0, 48.1], "harmful": True, "n": 80,
    ...              "effective_n": 31.24})["verdict"]
    'harmful shift: rmse est. 41.37 (35.00–48.10) vs 30.20 baseline, importance-weighted (no labels) n=80, effective n=31.2'
    """
    if not triage:
        return None
    estimate, baseline = _num(triage.get("estimate")), _num(triage.get("baseline"))
    raw = triage.get("interval")
    interval = None
    if isinstance(raw, list | tuple) and len(raw) == 2:
        lo, hi = _num(raw[0]), _num(raw[1])
        interval = None if lo is None or hi is None else [lo, hi]
    harmful = bool(triage.get("harmful"))
    method = str(triage.get("method") or "?")
    metric = str(triage.get("metric") or "accuracy")
    n = triage.get("n")
    effective = _num(triage.get("effective_n"))
    where = "" if interval is None else f" ({_figure(interval[0])}–{_figure(interval[1])})"
    rows = f"n={n if n is not None else '?'}"
    if effective is not None:
        rows += f", effective n={effective:.1f}"
    verdict = (
        f"{'harmful' if harmful else 'harmless'} shift: {metric} est. {_figure(estimate)}{where} "
        f"vs {_figure(baseline)} baseline, {_TRIAGE_METHODS.get(method, method)} {rows}"
    )
    return {
        "method": method,
        "metric": metric,
        "estimate": estimate,
        "baseline": baseline,
        "interval": interval,
        "harmful": harmful,
        "n": n,
        "effective_n": effective,
        "reason": triage.get("reason"),
        "verdict": verdict,
    }


def _job_row(j: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": j["id"],
        "drift_result_id": j["drift_result_id"],
        "status": j["status"],
        "decision": j.get("decision"),
        "policy": j.get("policy"),
        "started_at": j["started_at"],
        "ended_at": j.get("ended_at"),
        "challenger_version_id": j.get("challenger_version_id"),
        "triage": triage_view(j.get("triage")),
    }


def _alert_rows(
    alerts: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    by_window = {j["drift_result_id"]: j for j in jobs if j.get("drift_result_id") is not None}
    rows = []
    for a in alerts:
        job = by_window.get(a.get("drift_result_id"))
        rows.append(
            {
                "id": a["id"],
                "monitor": a.get("monitor"),
                "severity": a["severity"],
                "title": a["title"],
                "count": a["count"],
                "first_at": a["first_at"],
                "last_at": a["last_at"],
                "drift_result_id": a.get("drift_result_id"),
                # the retraining the alert's window started, and its triage
                "job": None
                if job is None
                else {k: job[k] for k in ("id", "status", "decision") if k in job},
                "triage": None if job is None else job["triage"],
            }
        )
    return rows


def alerts_view(
    monitoring: MonitorSource, monitor: str | None = None, *, limit: int = 50
) -> list[dict[str, Any]]:
    """Alerts (of one monitor, or all), newest first, each with the retrain job its drift window
    started (``job``: ``id``, ``status``, ``decision``) and that job's triage (:func:`triage_view`),
    or None for both: the alert list of the monitor widget and of the side panel's monitors tab."""
    alerts = monitoring.alerts(monitor, limit=limit)
    names = (
        [monitor]
        if monitor is not None
        else sorted({str(a["monitor"]) for a in alerts if a.get("monitor")})
    )
    jobs = [_job_row(j) for name in names for j in monitoring.retrain_jobs(name)]
    return clean(_alert_rows(alerts, jobs))


def monitor_state(
    monitoring: MonitorSource, monitor: str, *, max_windows: int = 200
) -> dict[str, Any]:
    """Drift windows (p-values per feature), alerts and the retraining each drift caused, with the
    triage of each retrain job (also beside the alert of the window that started it)."""
    mon = monitoring.record(monitor)
    config = mon.get("config") or {}
    results = monitoring.results(monitor, limit=max_windows)
    windows = []
    features: list[str] = list(config.get("features") or [])
    for r in results:
        detail = r.get("detail") or {}
        pvals = {}
        for item in detail.get("most_shifted") or []:
            f, p = item.get("feature"), _num(item.get("p_val"))
            if f is not None and p is not None:
                pvals[str(f)] = p
                if str(f) not in features:
                    features.append(str(f))
        windows.append(
            {
                "id": r["id"],
                "at": r["at"],
                "n": r["n"],
                "is_drift": bool(r["is_drift"]),
                "score": _num(r.get("score")),
                "threshold": _num(r.get("threshold")),
                "verdict": detail.get("verdict") or ("drift" if r["is_drift"] else "ok"),
                "p_values": pvals,
            }
        )
    ids = {w["id"] for w in windows}
    all_jobs = [_job_row(j) for j in monitoring.retrain_jobs(monitor)]
    jobs = [j for j in all_jobs if j["drift_result_id"] in ids]
    alerts = _alert_rows(monitoring.alerts(monitor, limit=50), all_jobs)
    return clean(
        {
            "name": monitor,
            "deployment": mon["deployment"],
            "kind": mon["kind"],
            "p_val": _num(config.get("p_val")),
            "correction": config.get("correction"),
            "features": features,
            "windows": windows,
            "alerts": alerts,
            "jobs": jobs,
        }
    )


# --------------------------------------------------------------------- lineage
def node_record(lineage: LineageSource, node_type: str, node_id: int) -> dict[str, Any]:
    """The stored record behind one lineage node (JSON-safe), for the lineage widget's detail pane."""
    return clean(lineage.lineage_record(node_type, int(node_id)))


def short_label(node_type: str, description: str) -> str:
    """A node's description cut to what fits in a graph box: ``"bc-model v3 [champion]"``, ``"DRIFT on 50 requests"``."""
    text = description
    prefix = re.match(
        r"^(dataset|experiment #\d+|model|deployment|monitor|drift result #\d+:|retrain job #\d+|step)\s+",
        text,
    )
    if prefix:
        text = text[prefix.end() :]
    if text.startswith("("):
        text = text[1:].split(",")[0].rstrip(")")
    elif node_type != "retrain_step":
        text = text.split(" (")[0]
    return text.strip() or description


def lineage_state(
    lineage: LineageSource, node_type: str, node_id: int, *, max_nodes: int = 500
) -> dict[str, Any]:
    """Nodes and edges connected to one node, ready for the layered graph."""
    graph = lineage.lineage_graph(node_type, int(node_id), max_nodes=max_nodes)
    nodes = [{**n, "short": short_label(n["type"], n["label"])} for n in graph["nodes"]]
    return clean({"root": graph["root"], "nodes": nodes, "edges": graph["edges"]})


# --------------------------------------------------------------------- dataset
def dataset_state(
    datasets: DatasetSource, name: str, *, selected: int | None = None
) -> dict[str, Any]:
    """Versions of dataset ``name`` (rows, columns, hash, checks that failed, by severity) and the
    validation report of version ``selected`` (default: the latest), failures first."""
    versions = datasets.versions(name)
    rows = []
    for dv in versions:
        row = dv.summary()
        rows.append({**row, "cols": row["columns"], "hash": short_hash(dv.content_hash)})
    by_version = {dv.version: dv for dv in versions}
    chosen = by_version.get(selected) if selected is not None else None
    chosen = chosen or versions[-1]
    report = sorted(
        datasets.report(chosen), key=lambda r: (bool(r["passed"]), r["severity"] != "error")
    )
    return clean(
        {
            "name": name,
            "versions": rows,
            "selected": chosen.version,
            "schema": dict(chosen.schema),
            "report": report,
        }
    )


def diff_state(
    datasets: DatasetSource,
    name: str,
    a: int,
    b: int,
    key: Iterable[str] = (),
    *,
    examples: int = 5,
) -> dict[str, Any]:
    """``datasets.diff(name@a, name@b, key=...)`` as JSON (``to_dict()``), or ``{"error": ...}``
    saying what to change (an unknown version, a key that is not unique...)."""
    from workbench.exceptions import WorkbenchError

    keys = [k for k in key if k]
    try:
        d = datasets.diff(
            f"{name}@{int(a)}", f"{name}@{int(b)}", key=keys or None, examples=examples
        )
    except WorkbenchError as exc:
        return {"error": str(exc), "a": int(a), "b": int(b), "key": keys}
    return clean({**d.to_dict(), "text": str(d)})
