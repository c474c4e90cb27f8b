"""``export_project``: the project file of a store set up in a notebook, such that its plan on
that store is empty."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Any

from workbench.exceptions import NotFoundError
from workbench.project._plan import MONITOR_KINDS
from workbench.project._space import recorded_space

if TYPE_CHECKING:
    from workbench.api import Workbench

__all__ = ["export_project", "dump"]

_KINDS = {v: k for k, v in MONITOR_KINDS.items()}
#: Where a URL written by export is read from (the store shows webhook URLs only redacted).
WEBHOOK_VARIABLE = "${WORKBENCH_ALERT_WEBHOOK}"


def export_project(bench: Workbench) -> dict[str, Any]:
    """The project file (as data; :func:`dump` gives its YAML) describing ``bench``'s store: each
    dataset (its latest version's source and target), the latest finished experiment per name
    (with the model registered from it), the deployments, monitors and retraining policies.

    A dataset ingested from an in-memory frame has no source to read again: it is written without
    one (apply then only checks that it exists). An experiment whose space holds Tune domains made
    outside a project file is written without its space (the record cannot say what it was); one
    searched with a ``Searcher`` or scheduler object (not a name) is left out.

    Examples
    --------
    >>> from workbench.project import export_project, dump             # doctest: +SKIP
    >>> open("workbench.yaml", "w").write(dump(export_project(bench))) # doctest: +SKIP
    """
    out: dict[str, Any] = {"version": 1}
    datasets = _datasets(bench)
    experiments, gate = _experiments(bench)
    for key, value in (
        ("datasets", datasets),
        ("experiments", experiments),
        ("gate", gate),
        ("deployments", _deployments(bench)),
    ):
        if value:
            out[key] = value
    monitors, alerts = _monitors(bench)
    if alerts:
        out["alerts"] = alerts
    if monitors:
        out["monitors"] = monitors
    policies = _policies(bench)
    if policies:
        out["policies"] = policies
    return out


def dump(project: dict[str, Any]) -> str:
    """A project dict as YAML text, sections in the file's order."""
    import yaml

    return yaml.safe_dump(project, sort_keys=False, default_flow_style=None, width=100)


def _datasets(bench: Workbench) -> list[dict[str, Any]]:
    latest: dict[str, Any] = {}
    for dv in bench.datasets.list():
        if dv.name.endswith("-quarantine"):
            continue
        latest[dv.name] = (
            dv if dv.name not in latest or dv.version > latest[dv.name].version else latest[dv.name]
        )
    out = []
    for name, dv in latest.items():
        item: dict[str, Any] = {"name": name}
        source = dv.source
        if source and not source.startswith("<") and (dv.source_spec or {}).get("kind") != "frame":
            item["source"] = source
        if dv.target:
            item["target"] = dv.target
        out.append(item)
    return out


def _experiments(bench: Workbench) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for exp in bench.experiments.list():
        if exp["status"] == "TERMINATED":
            latest[exp["name"]] = exp
    versions = {}
    for mv in bench.registry.list():
        if mv.experiment_id is not None:
            versions.setdefault(mv.experiment_id, mv)
    out = []
    algs = set(_enum("experiment", "search_alg"))
    schedulers = set(_enum("experiment", "scheduler"))
    for name, exp in latest.items():
        if exp.get("dataset_version_id") is None:
            continue
        if exp.get("search_alg") not in algs or exp.get("scheduler") not in schedulers:
            continue  # a Searcher or scheduler object of a notebook: not writable in the file
        dv = bench.datasets.by_id(exp["dataset_version_id"])
        newest = bench.datasets.get(dv.name)
        space = dict(exp.get("search_space") or {})
        options = space.get("_options") or {}
        item: dict[str, Any] = {
            "name": name,
            "dataset": dv.name if newest.version == dv.version else str(dv),
        }
        readable = recorded_space(space)
        if readable:
            item["space"] = readable
            grids = [
                len(v["grid"]) for v in readable.values() if isinstance(v, dict) and "grid" in v
            ]
            n = int(exp["num_samples"])
            if exp.get("search_alg") in ("random", "grid") and grids:
                n //= max(1, _prod(grids))
            item["num_samples"] = n
        else:
            item["num_samples"] = int(exp["num_samples"])
        item.update(
            search_alg=exp.get("search_alg") or "random",
            scheduler=exp.get("scheduler") or "fifo",
            folds=int(options.get("folds", 3)),
            seed=int(exp.get("seed") or 0),
            metric=exp.get("metric"),
            mode=exp.get("mode"),
        )
        if options.get("time_budget_s") is not None:
            item["time_budget_s"] = options["time_budget_s"]
        if space.get("_resources"):
            item["resources"] = dict(space["_resources"])
        mv = versions.get(exp["id"])
        if mv is not None:
            evaluation = bench.registry.evaluation(mv.model, mv.version) or {}
            holdout = evaluation.get("holdout_version_id")
            if holdout is not None:
                item["model"] = mv.model
                item["holdout"] = str(bench.datasets.by_id(holdout))
        out.append(item)
    return out, {}


def _enum(definition: str, key: str) -> list[Any]:
    from workbench.project._file import schema

    return list(schema()["$defs"][definition]["properties"][key]["enum"])


def _prod(values: list[int]) -> int:
    n = 1
    for v in values:
        n *= v
    return n


def _deployments(bench: Workbench) -> list[dict[str, Any]]:
    out = []
    for dep in bench.deployments():
        if dep.get("status") == "deleted":
            continue
        weights = dep.get("weights") or {}
        item: dict[str, Any] = {"name": dep["name"], "model": dep["model"]}
        if weights:
            served = max(weights, key=lambda v: weights[v])
            try:
                champion = bench.registry.get(dep["model"], "champion").version
            except NotFoundError:
                champion = None
            if served != champion:
                item["version"] = int(served)
        out.append(item)
    return out


def _monitors(bench: Workbench) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out, alerts = [], {}
    for rec in bench.monitoring.list():
        kind = _KINDS.get(rec["kind"])
        if kind is None:
            continue  # online and performance monitors are not in the file's format yet
        config = rec.get("config") or {}
        item: dict[str, Any] = {"name": rec["name"], "deployment": rec["deployment"], "kind": kind}
        item["window"] = config.get("window")
        item["min_rows"] = config.get("min_rows")
        if kind == "operational":
            item.update({k: v for k, v in (config.get("bounds") or {}).items() if v is not None})
        else:
            item["p_val"] = config.get("p_val")
            item["backend"] = config.get("backend")
            if kind == "drift" and config.get("features"):
                item["features"] = list(config["features"])
        a = config.get("alerts") or {}
        mine = {
            "cooldown_s": a.get("cooldown_s", 900.0),
            "min_severity": a.get("min_severity", "warning"),
        }
        if a.get("webhook_url"):
            mine["webhook_url"] = WEBHOOK_VARIABLE
        if mine != {"cooldown_s": 900.0, "min_severity": "warning"}:
            alerts = alerts or mine  # one alerts section: the first monitor's that differs
        out.append(item)
    return out, alerts


def _policies(bench: Workbench) -> list[dict[str, Any]]:
    from workbench.automation import Budget, Gate, LoopPolicy

    defaults = {f.name: f.default for f in fields(LoopPolicy) if f.default is not MISSING}
    out = []
    for row in bench.automation.policies():
        config = dict(row.get("config") or {})
        policy = LoopPolicy.from_dict(config)
        item: dict[str, Any] = {"name": policy.name}
        for f in fields(LoopPolicy):
            if f.name in ("name", "triggers", "budget", "gate"):
                continue
            value = getattr(policy, f.name)
            if f.name in defaults and value == defaults[f.name]:
                continue
            item[f.name] = list(value) if isinstance(value, tuple) else value
        if not row.get("enabled", True):
            item["enabled"] = False
        triggers = []
        for t in policy.triggers:
            kind = type(t).__name__
            if kind == "DriftTrigger":
                triggers.append({"drift": t.monitor, "windows": t.windows})
            elif kind == "ScheduleTrigger":
                triggers.append({"cron": t.cron})
            else:
                triggers.append({"performance": {k: v for k, v in vars(t).items()}})
        if triggers:
            item["triggers"] = triggers
        if policy.budget != Budget():
            item["budget"] = {k: v for k, v in vars(policy.budget).items() if v is not None}
        gate = {k: v for k, v in config["gate"].items() if k != "lower_is_better"}
        default_gate = {k: v for k, v in vars(Gate()).items()}
        item["gate"] = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in gate.items()
            if k in default_gate and _norm(default_gate[k]) != _norm(v)
        }
        out.append(item)
    return out


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
