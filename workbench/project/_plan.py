"""``plan`` and ``apply``: a project file against a store (and its running deployments).

One walk over the file's sections, in order (datasets, experiments and the models they register,
deployments, monitors, policies), works out each item's :class:`Change`; ``apply`` makes each
pending change as soon as it is found, through the stage methods a notebook would call (so each
is audited with the acting user and guarded by their roles), because a later item depends on an
earlier one (an experiment on the dataset version just ingested).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError, NotFoundError, WorkbenchError
from workbench.project._file import Project, load, resolve_env
from workbench.project._space import space_record, to_tune

if TYPE_CHECKING:
    from workbench.api import Workbench

__all__ = ["Change", "Plan", "plan", "apply", "MONITOR_KINDS", "policy_from_spec"]

#: A project file's monitor kinds and the kinds the monitoring stage records.
MONITOR_KINDS = {
    "drift": "data_drift",
    "prediction": "prediction_drift",
    "operational": "operational",
}
#: What a pending item will hold once an earlier pending item is applied (plan only).
PENDING = "(pending)"
_OP_BOUNDS = ("max_p50_ms", "max_p99_ms", "max_error_rate", "min_throughput_rps")


@dataclass(frozen=True)
class Change:
    """One item of a plan: ``kind`` (dataset, experiment, model, deployment, monitor, policy),
    ``name``, ``action`` (``create``, ``change`` or ``unchanged``), ``fields`` (field → ``[old,
    new]``) and a ``note`` saying what apply does or did."""

    kind: str
    name: str
    action: str
    fields: dict[str, list[Any]] = field(default_factory=dict)
    note: str = ""

    @property
    def pending(self) -> bool:
        return self.action != "unchanged"

    def __str__(self) -> str:
        mark = {"create": "+", "change": "~", "unchanged": "="}[self.action]
        parts = [f"{k}: {_show(old)} -> {_show(new)}" for k, (old, new) in self.fields.items()]
        text = f"{mark} {self.kind} {self.name}"
        if parts:
            text += " (" + "; ".join(parts) + ")"
        return text + (f"  # {self.note}" if self.note else "")


@dataclass(frozen=True)
class Plan:
    """Every item of a project file and what it needs (:func:`plan`), or what was done
    (:func:`apply`); ``empty`` when nothing is (or was) pending."""

    changes: list[Change]
    path: str = ""
    applied: bool = False

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.pending]

    @property
    def empty(self) -> bool:
        return not self.pending

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "applied": self.applied,
            "pending": len(self.pending),
            "changes": [asdict(c) for c in self.changes],
        }

    def __str__(self) -> str:
        lines = [str(c) for c in self.changes] or ["(the project file declares nothing)"]
        n = len(self.pending)
        verb = "applied" if self.applied else "to apply"
        lines.append(
            f"{n} change(s) {verb}" if n else "nothing to change: the store matches the file"
        )
        return "\n".join(lines)


def plan(bench: Workbench, project: Project | str | os.PathLike[str]) -> Plan:
    """What applying ``project`` (a :class:`Project` or a file path) would change; changes nothing.

    Examples
    --------
    >>> from workbench.project import plan                              # doctest: +SKIP
    >>> print(plan(bench, "workbench.yaml"))                            # doctest: +SKIP
    = dataset cancer
    ~ deployment cancer (version: 1 -> 2)  # switch all traffic to v2 (direct)
    1 change(s) to apply
    """
    return _Walk(bench, _project(project), applying=False).run()


def apply(bench: Workbench, project: Project | str | os.PathLike[str]) -> Plan:
    """Make the store (and its deployments) match ``project``; returns what was done. Applying the
    same file again changes nothing (its plan is empty).

    Examples
    --------
    >>> from workbench.project import apply                             # doctest: +SKIP
    >>> apply(bench, "workbench.yaml").empty                            # doctest: +SKIP
    False
    >>> apply(bench, "workbench.yaml").empty                            # doctest: +SKIP
    True
    """
    return _Walk(bench, _project(project), applying=True).run()


def _project(project: Project | str | os.PathLike[str]) -> Project:
    return project if isinstance(project, Project) else load(project)


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [old.get(k), new[k]] for k in new if old.get(k) != new[k]}


class _Walk:
    """One pass over a project: each item's change, made at once when ``applying``."""

    def __init__(self, bench: Workbench, project: Project, *, applying: bool):
        self.bench = bench
        self.project = project
        self.applying = applying
        self.changes: list[Change] = []
        self.pending_datasets: set[str] = set()  # plan only: datasets a new version awaits
        self.pending_models: set[str] = set()  # plan only: models a new version awaits

    def run(self) -> Plan:
        p = self.project
        for i, spec in enumerate(p.datasets):
            self.changes.append(self.dataset(i, spec))
        for i, spec in enumerate(p.experiments):
            self.changes.extend(self.experiment(i, spec))
        for i, spec in enumerate(p.deployments):
            self.changes.append(self.deployment(i, spec))
        for i, spec in enumerate(p.monitors):
            self.changes.append(self.monitor(i, spec))
        for i, spec in enumerate(p.policies):
            self.changes.append(self.policy(i, spec))
        return Plan(self.changes, path=p.path, applied=self.applying)

    # ------------------------------------------------------------------ datasets
    def dataset(self, i: int, spec: dict[str, Any]) -> Change:
        from workbench.datasets import Checks, as_source, content_hash, short_hash

        ds, name = self.bench.datasets, spec["name"]
        try:
            checks = Checks.from_dict(spec["checks"]) if spec.get("checks") else None
        except (ConfigError, TypeError) as exc:
            raise self.project.error(("datasets", i, "checks"), str(exc)) from None
        last = _maybe(lambda: ds.get(name))
        if "source" not in spec:
            if last is None:
                raise self.project.error(
                    ("datasets", i),
                    f"dataset {name!r} has no version and no source to ingest; add source: PATH",
                )
            return Change("dataset", name, "unchanged", note=f"{last} (no source: kept as is)")
        try:
            fetched = as_source(spec["source"]).fetch({})
        except WorkbenchError as exc:  # a source that cannot be read: say where the file names it
            raise self.project.error(("datasets", i, "source"), str(exc)) from None
        try:
            digest = content_hash(fetched.frame)
        finally:
            if fetched.abort:
                fetched.abort()
        target = spec.get("target")
        if last is not None and digest == last.content_hash:
            if target is not None and target != last.target:
                raise self.project.error(
                    ("datasets", i, "target"),
                    f"{last} holds this content with target {last.target!r}, not {target!r}; "
                    "the same content is never recorded twice: use another dataset name",
                )
            return Change("dataset", name, "unchanged", note=str(last))
        if last is None:
            change = Change(
                "dataset",
                name,
                "create",
                {"source": [None, spec["source"]], "content": [None, short_hash(digest)]},
            )
        else:
            change = Change(
                "dataset",
                name,
                "change",
                {
                    "version": [last.version, last.version + 1],
                    "content": [short_hash(last.content_hash), short_hash(digest)],
                },
            )
        if not self.applying:
            self.pending_datasets.add(name)
            return change
        dv = ds.ingest(
            spec["source"],
            name=name,
            target=target,
            checks=checks,
            on_error=spec.get("on_error", "reject"),
        )
        return Change(change.kind, name, change.action, change.fields, note=f"ingested {dv}")

    def _dataset(self, ref: str) -> Any:
        """The dataset version ``ref`` names now, or None when a pending ingest will make it."""
        name = ref.partition("@")[0]
        if name in self.pending_datasets and "@" not in ref:
            return None
        return self.bench.datasets.resolve(ref)

    # --------------------------------------------------------------- experiments
    def experiment(self, i: int, spec: dict[str, Any]) -> list[Change]:
        name = spec["name"]
        dv = self._dataset(spec["dataset"])
        want = _experiment_fields(spec)
        want["dataset"] = str(dv) if dv is not None else PENDING
        runs = [e for e in self.bench.experiments.list() if e["name"] == name]
        finished = [e for e in runs if e["status"] == "TERMINATED"]
        match = next(
            (
                e
                for e in reversed(finished)
                if dv is not None and _diff(self._recorded(e, spec), want) == {}
            ),
            None,
        )
        if match is not None:
            return [
                Change("experiment", name, "unchanged", note=f"experiment {match['id']}"),
                *self.registration(i, spec, match["id"], dv),
            ]
        if finished:
            action, diff = "change", _diff(self._recorded(finished[-1], spec), want)
        else:  # a new one: what identifies it, not every default
            action = "create"
            diff = {k: [None, want[k]] for k in ("dataset", "trials") if k in want}
        change = Change("experiment", name, action, diff)
        if not self.applying:
            note = f"search {want['dataset']} ({spec.get('num_samples', 4)} sample(s))"
            out = [Change(change.kind, name, action, change.fields, note=note)]
            if spec.get("model"):
                self.pending_models.add(spec["model"])
                out.append(
                    Change(
                        "model",
                        spec["model"],
                        "create",
                        {"version": [None, "best of the new search"]},
                        note="register, then the gate decides the champion",
                    )
                )
            return out
        options: dict[str, Any] = {
            "num_samples": spec.get("num_samples", 4),
            "folds": spec.get("folds", 3),
            "seed": spec.get("seed", 0),
            "search_alg": spec.get("search_alg", "random"),
            "scheduler": spec.get("scheduler", "fifo"),
            "progress": None,
        }
        for key in ("metric", "mode", "time_budget_s"):
            if spec.get(key) is not None:
                options[key] = spec[key]
        if spec.get("space"):
            options["space"] = to_tune(spec["space"])
        if spec.get("resources"):
            options["resources"] = dict(spec["resources"])
        result = self.bench.experiments.search(dv, name=name, **options)
        done = Change(
            change.kind, name, action, change.fields, note=f"ran experiment {result.experiment_id}"
        )
        return [done, *self.registration(i, spec, result.experiment_id, dv)]

    def _recorded(self, exp: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """An experiment's record in the shape of :func:`_experiment_fields`."""
        space = dict(exp.get("search_space") or {})
        options = space.get("_options") or {}
        dv = _maybe(lambda: self.bench.datasets.by_id(exp["dataset_version_id"]))
        got: dict[str, Any] = {
            "dataset": str(dv) if dv is not None else None,
            "search_alg": exp.get("search_alg"),
            "scheduler": exp.get("scheduler"),
            "seed": exp.get("seed"),
            "folds": options.get("folds"),
            "time_budget_s": options.get("time_budget_s"),
            "metric": exp.get("metric"),
            "mode": exp.get("mode"),
            "trials": exp.get("num_samples"),
            "resources": space.get("_resources"),
            "space": {k: v for k, v in space.items() if not k.startswith("_")},
        }
        return got

    def registration(
        self, i: int, spec: dict[str, Any], experiment_id: int, dv: Any
    ) -> list[Change]:
        """The model version an experiment's ``model`` asks for, registered once per experiment."""
        model = spec.get("model")
        if not model:
            return []
        registry = self.bench.registry
        versions = _maybe(lambda: registry.list(model)) or []
        mine = [mv for mv in versions if mv.experiment_id == experiment_id]
        if mine:
            return [
                Change(
                    "model", model, "unchanged", note=f"{mine[-1]} from experiment {experiment_id}"
                )
            ]
        change = {"version": [None, f"best of experiment {experiment_id}"]}
        if not self.applying:
            self.pending_models.add(model)
            return [
                Change(
                    "model",
                    model,
                    "create",
                    change,
                    note="register, then the gate decides the champion",
                )
            ]
        holdout = self.bench.datasets.resolve(spec["holdout"])
        search = self.bench.stages.search_result(experiment_id)
        champion = _maybe(lambda: registry.get(model, "champion"))
        mv = self.bench.register_best(
            search,
            model=model,
            train=dv,
            holdout=holdout,
            alias="champion" if champion is None else None,
            seed=spec.get("seed", 0),
            reason=f"workbench apply: first version of {model}",
        )
        if champion is None:
            return [Change("model", model, "create", change, note=f"registered {mv}, now champion")]
        verdict = self.bench.automation.gate(
            model,
            mv.version,
            against="champion",
            holdout=holdout,
            gate=self._gate(self.project.gate),
        )
        if verdict.passed:
            registry.set_alias(
                model,
                "champion",
                mv.version,
                reason=f"workbench apply: gate passed: {verdict.reason}",
            )
            note = f"registered {mv}; gate PASSED, now champion ({verdict.reason})"
        else:
            note = f"registered {mv}; gate FAILED, champion stays v{champion.version} ({verdict.reason})"
        return [Change("model", model, "create", change, note=note)]

    @staticmethod
    def _gate(spec: dict[str, Any]) -> Any:
        from workbench.automation import Gate

        g = dict(spec or {})
        if "guarded" in g:
            g["guarded"] = tuple(g["guarded"])
        return Gate(**g)

    # --------------------------------------------------------------- deployments
    def deployment(self, i: int, spec: dict[str, Any]) -> Change:
        serving, name, model = self.bench.serving, spec["name"], spec["model"]
        ref = spec.get("version", "champion")
        strategy = spec.get("strategy", "direct")
        if model in self.pending_models and isinstance(ref, str):
            target: Any = None
        else:
            mv = _maybe(lambda: self.bench.registry.get(model, ref))
            if mv is None:
                raise self.project.error(
                    ("deployments", i, "version" if "version" in spec else "model"),
                    f"model {model!r} has no version {ref!r}; register one (an experiment with "
                    "model: and holdout:) or `workbench models` to list them",
                )
            target = mv.version
        rec = _maybe(lambda: serving.record(name))
        if rec is not None and rec["status"] == "deleted":
            rec = None
        if rec is None:
            change = Change(
                "deployment",
                name,
                "create",
                {"model": [None, model], "version": [None, target or PENDING]},
            )
            if not self.applying:
                return change
            resources = spec.get("resources") or {}
            serving.deploy(
                model,
                target,
                name=name,
                num_replicas=spec.get("replicas"),
                num_cpus=resources.get("cpu", 0.5),
                num_gpus=resources.get("gpu", 0.0),
                reason="workbench apply",
            )
            return Change(
                change.kind, name, "create", change.fields, note=f"deployed {model} v{target}"
            )
        if rec["model"] != model:
            raise self.project.error(
                ("deployments", i, "model"),
                f"deployment {name!r} serves model {rec['model']!r}, not {model!r}; a deployment "
                "keeps its model: give this one another name",
            )
        weights = rec["weights"]
        served = max(weights, key=lambda v: weights[v]) if weights else None
        live = self._live(name)
        if live is None or (target is not None and served == target):
            return self._running(i, spec, live, served, target)
        if target is not None and strategy == "canary" and weights.get(target, 0) > 0:
            return Change(
                "deployment",
                name,
                "unchanged",
                note=f"canary of v{target} in progress: `workbench canary {name} {target}` carries it on",
            )
        how = {
            "direct": "switch all traffic",
            "blue-green": "blue-green release",
            "canary": f"canary: {spec.get('canary_share', 0.1):g} of traffic",
        }[strategy]
        change = Change(
            "deployment",
            name,
            "change",
            {"version": [served, target or PENDING]},
            note=f"{how} ({strategy})",
        )
        if not self.applying:
            return change
        reason = "workbench apply"
        if strategy == "direct":
            serving.set_traffic(name, {target: 1.0}, reason=reason)
        elif strategy == "blue-green" and weights.get(target, 0) > 0:
            # already warm and taking a share (a canary of it ran): the atomic switch alone,
            # blue kept loaded at 0% for an instant rollback, as a blue-green release leaves it
            serving.set_traffic(name, {served: 0.0, target: 1.0}, reason=reason)
        elif strategy == "blue-green":
            serving.blue_green(name, target, reason=reason)
        else:
            share = float(spec.get("canary_share", 0.1))
            serving.set_traffic(name, {served: 1.0 - share, target: share}, reason=reason)
        return change

    def _live(self, name: str) -> dict[str, Any] | None:
        """The deployment's app as Ray Serve reports it, or None when it does not run. A plan
        with no cluster to ask (no address, no ``RAY_ADDRESS``, no Ray in this process) starts
        neither Ray nor Serve to find out: a private Ray holds no app of another process."""
        if not self.applying and not (self.bench.address or os.environ.get("RAY_ADDRESS")):
            ray = sys.modules.get("ray")
            if ray is None or not ray.is_initialized():
                return None
        return self.bench.serving.status(name).get("serve")

    def _running(
        self, i: int, spec: dict[str, Any], live: dict[str, Any] | None, served: Any, target: Any
    ) -> Change:
        """A recorded deployment whose app is gone (redeployed) or that serves the version the
        file names (its replicas compared with the running router's)."""
        name = spec["name"]
        diff: dict[str, list[Any]] = {}
        if live is None:
            diff["serve"] = ["not running", "running"]
        elif spec.get("replicas") is not None:
            router = (live.get("deployments") or {}).get("Router") or {}
            running = sum((router.get("replicas") or {}).values())
            if running != spec["replicas"]:
                diff["replicas"] = [running, spec["replicas"]]
        if not diff:
            return Change("deployment", name, "unchanged", note=f"serving v{target}")
        version = target if target is not None else served
        change = Change("deployment", name, "change", diff, note=f"redeploy v{version}")
        if self.applying:
            resources = spec.get("resources") or {}
            self.bench.serving.deploy(
                spec["model"],
                version,
                name=name,
                num_replicas=spec.get("replicas"),
                num_cpus=resources.get("cpu", 0.5),
                num_gpus=resources.get("gpu", 0.0),
                reason="workbench apply: " + ", ".join(diff),
            )
        return change

    # ------------------------------------------------------------------ monitors
    def monitor(self, i: int, spec: dict[str, Any]) -> Change:
        monitoring, name = self.bench.monitoring, spec["name"]
        kind = spec.get("kind", "drift")
        alerts = self._alerts(("monitors", i)) if spec.get("alerts", True) else {}
        want = _monitor_fields(spec, alerts)
        rec = _maybe(lambda: monitoring.record(name))
        if rec is not None:
            got = _monitor_recorded(rec)
            diff = _diff(got, want)
            if not diff:
                return Change("monitor", name, "unchanged")
            change = Change("monitor", name, "change", diff)
        else:
            change = Change(
                "monitor",
                name,
                "create",
                {"deployment": [None, spec["deployment"]], "kind": [None, kind]},
            )
        if not self.applying:
            return change
        options: dict[str, Any] = {"name": name, "alerts": alerts or None}
        for key in ("window", "min_rows"):
            if key in spec:
                options[key] = spec[key]
        if kind == "operational":
            for key in _OP_BOUNDS:
                if key in spec:
                    options[key] = spec[key]
            monitoring.operational_monitor(spec["deployment"], **options)
        else:
            options.update(p_val=spec.get("p_val", 0.05), backend=spec.get("backend", "alibi"))
            if kind == "drift":
                if spec.get("features"):
                    options["features"] = list(spec["features"])
                monitoring.drift_monitor(spec["deployment"], **options)
            else:
                monitoring.prediction_monitor(spec["deployment"], **options)
        return change

    def _alerts(self, where: tuple[Any, ...]) -> dict[str, Any]:
        alerts = dict(self.project.alerts)
        if "webhook_url" in alerts:
            alerts["webhook_url"] = resolve_env(
                self.project, ("alerts", "webhook_url"), alerts["webhook_url"]
            )
        return alerts

    # ------------------------------------------------------------------ policies
    def policy(self, i: int, spec: dict[str, Any]) -> Change:
        auto, name = self.bench.automation, spec["name"]
        policy = policy_from_spec(spec, self.project.gate)
        want = json.loads(json.dumps(policy.to_dict()))  # as stored: tuples become lists
        enabled = bool(spec.get("enabled", True))
        rows = {r["name"]: r for r in auto.policies()}
        rec = rows.get(name)
        if rec is not None:
            diff = _diff(dict(rec.get("config") or {}), want)
            if bool(rec.get("enabled")) != enabled:
                diff["enabled"] = [bool(rec.get("enabled")), enabled]
            if not diff:
                return Change("policy", name, "unchanged")
            change = Change("policy", name, "change", diff)
        else:
            change = Change(
                "policy",
                name,
                "create",
                {"model": [None, policy.model], "deployment": [None, policy.deployment]},
            )
        if self.applying:
            auto.add_policy(policy, enabled=enabled)
        return change


# ----------------------------------------------------------------- pure parts
def _experiment_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """What a finished experiment must have recorded to be this file's experiment."""
    alg = spec.get("search_alg", "random")
    out: dict[str, Any] = {
        "search_alg": alg,
        "scheduler": spec.get("scheduler", "fifo"),
        "seed": spec.get("seed", 0),
        "folds": spec.get("folds", 3),
        "time_budget_s": spec.get("time_budget_s"),
    }
    for key in ("metric", "mode"):
        if spec.get(key) is not None:
            out[key] = spec[key]
    if spec.get("resources"):
        r = spec["resources"]
        out["resources"] = {"cpu": float(r.get("cpu", 1.0)), "gpu": float(r.get("gpu", 0.0))}
    if spec.get("space"):
        space = spec["space"]
        out["space"] = space_record(space)
        n = spec.get("num_samples", 4)
        if alg in ("random", "grid"):
            grids = [len(v["grid"]) for v in space.values() if isinstance(v, dict) and "grid" in v]
            n *= math.prod(grids)
        out["trials"] = n
    return out


def _monitor_fields(spec: dict[str, Any], alerts: dict[str, Any]) -> dict[str, Any]:
    """A monitor spec as the fields :func:`_monitor_recorded` reads from a record."""
    from workbench.monitoring._alerts import redact_url  # the record shows the URL redacted so

    kind = spec.get("kind", "drift")
    out: dict[str, Any] = {
        "deployment": spec["deployment"],
        "kind": MONITOR_KINDS[kind],
        "window": spec.get("window", "5min" if kind == "operational" else 100),
        "alerts.cooldown_s": float(alerts.get("cooldown_s", 900.0)),
        "alerts.min_severity": alerts.get("min_severity", "warning"),
        "alerts.webhook_url": redact_url(alerts["webhook_url"])
        if alerts.get("webhook_url")
        else None,
    }
    if "min_rows" in spec:
        out["min_rows"] = spec["min_rows"]
    if kind == "operational":
        for key in _OP_BOUNDS:
            out[key] = spec.get(key)
    else:
        out["p_val"] = spec.get("p_val", 0.05)
        out["backend"] = spec.get("backend", "alibi")
        if kind == "drift" and spec.get("features"):
            out["features"] = list(spec["features"])
    return out


def _monitor_recorded(rec: dict[str, Any]) -> dict[str, Any]:
    config = rec.get("config") or {}
    alerts = config.get("alerts") or {}
    bounds = config.get("bounds") or {}
    out: dict[str, Any] = {
        "deployment": rec.get("deployment"),
        "kind": rec.get("kind"),
        "window": config.get("window"),
        "min_rows": config.get("min_rows"),
        "p_val": config.get("p_val"),
        "backend": config.get("backend"),
        "features": config.get("features"),
        "alerts.cooldown_s": float(alerts.get("cooldown_s", 900.0)),
        "alerts.min_severity": alerts.get("min_severity", "warning"),
        "alerts.webhook_url": alerts.get("webhook_url") or None,
    }
    out.update({k: bounds.get(k) for k in _OP_BOUNDS})
    return out


def policy_from_spec(spec: dict[str, Any], default_gate: dict[str, Any] | None = None) -> Any:
    """The :class:`~workbench.automation.LoopPolicy` a project file's policy entry describes
    (its ``gate`` default: the file's top-level ``gate``)."""
    from workbench.automation import (
        Budget,
        DriftTrigger,
        LoopPolicy,
        PerformanceTrigger,
        ScheduleTrigger,
    )

    names = {f.name for f in fields(LoopPolicy)}
    kw = {k: v for k, v in spec.items() if k in names and k not in ("triggers", "budget", "gate")}
    triggers: list[Any] = []
    for t in spec.get("triggers") or []:
        if "drift" in t:
            triggers.append(DriftTrigger(t["drift"], windows=t.get("windows", 1)))
        elif "cron" in t:
            triggers.append(ScheduleTrigger(t["cron"]))
        else:
            triggers.append(PerformanceTrigger(**(t["performance"] or {})))
    for key in ("canary_steps", "sensitive_features"):
        if key in kw:
            kw[key] = tuple(kw[key])
    return LoopPolicy(
        triggers=triggers,
        budget=Budget(**(spec.get("budget") or {})),
        gate=_Walk._gate(spec["gate"] if "gate" in spec else (default_gate or {})),
        **kw,
    )


def _maybe(fn: Any) -> Any:
    try:
        return fn()
    except NotFoundError:
        return None
