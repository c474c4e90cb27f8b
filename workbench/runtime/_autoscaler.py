"""The connected cluster's autoscaler, as a driver sees it: its node types, and asking it for nodes.

Searches and deployments ask for resources no live node may have yet; on a
cluster with an autoscaler that can add a node that has them, the request is
passed on (``ray.autoscaler.sdk.request_resources``, Ray's public API) instead
of refused, and only what no node type can ever provide is refused at once.
"""

from __future__ import annotations

from typing import Any

from workbench.exceptions import ConfigError

__all__ = [
    "autoscaler_node_types",
    "ask_autoscaler",
    "release_autoscaler_request",
    "fits",
    "scales",
]


def fits(wanted: dict[str, float], have: dict[str, Any]) -> bool:
    """Whether a node (or node type) with resources ``have`` can take the bundle ``wanted``.

    >>> fits({"CPU": 2}, {"CPU": 2.0, "memory": 1e9}), fits({"GPU": 1}, {"CPU": 8})
    (True, False)
    """
    return all(float(have.get(k, 0) or 0) >= v for k, v in wanted.items())


def _describe(resources: dict[str, Any]) -> str:
    shown = {k: v for k, v in resources.items() if k in ("CPU", "GPU") or not k.startswith("node")}
    shown.pop("memory", None)
    shown.pop("object_store_memory", None)
    return ", ".join(f"{k}={float(v):g}" for k, v in sorted(shown.items())) or "no CPU or GPU"


def ask_autoscaler(
    wanted: dict[str, float], *, count: int = 1, what: str = "request"
) -> str | None:
    """Ask the autoscaler for ``count`` bundles of ``wanted`` (Ray's resource names: ``CPU``,
    ``GPU``, custom ones), for a request no live node can take now; ``what`` names
    it in the error ("trial", "replica").

    Returns ``None`` when the cluster has no autoscaler (the caller decides, as
    without one), else the note to show while it adds a node:
    ``"waiting for a node of type <type>"``.

    Raises
    ------
    ConfigError
        When the autoscaler's node types are known and none of them has
        ``wanted``: the message names the largest node type and what it has.
    """
    node_types = autoscaler_node_types()
    if node_types is None:
        return None
    addable = {name: t for name, t in node_types.items() if int(t.get("max_workers", 0) or 0) != 0}
    if node_types:  # node types known: refuse at once what none of them has
        fitting = [name for name, t in addable.items() if fits(wanted, t["resources"])]
        if not fitting:
            ask = ", ".join(f"{k}={v:g}" for k, v in wanted.items())
            pool = addable or node_types
            largest = max(
                pool,
                key=lambda n: tuple(
                    float(pool[n]["resources"].get(k, 0) or 0) for k in ("GPU", "CPU", *wanted)
                ),
            )
            raise ConfigError(
                f"each {what} asks for {ask}, but no node of this cluster has it and no node type "
                f"its autoscaler can add provides it: the largest node type, {largest!r}, has "
                f"{_describe(pool[largest]['resources'])}. Ask for at most that, or add a larger "
                "node type to the cluster's config"
            )
        note = f"waiting for a node of type {fitting[0]}"
    else:  # an autoscaler runs but its node types cannot be read from this driver
        note = "waiting for the autoscaler to add a node"
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[dict(wanted) for _ in range(max(1, int(count)))])
    return note


def release_autoscaler_request() -> None:
    """Withdraw what :func:`ask_autoscaler` asked of the autoscaler (it replaces the standing
    request with none), so idle nodes can go once the trials are done."""
    try:
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[])
    except Exception:  # best effort: the cluster may be gone already
        pass


def autoscaler_node_types() -> dict[str, dict[str, Any]] | None:
    """The node types the connected cluster's autoscaler can add, or ``None`` without one.

    ``{name: {"resources": {...}, "max_workers": n}}``; ``{}`` when an
    autoscaler runs but its node types cannot be read from this driver.

    How Ray 2.60 lets a driver see them (no public API lists node types):

    1. ``ray._private.state.state.get_cluster_config()``: the ``ClusterConfig``
       (node group configs: name, resources, max count) that the GCS keeps
       once something reports it (``ReportClusterConfig``; Ray Data reads the
       same key). Ray's own autoscaler monitors do not write it in 2.60.
    2. The autoscaler monitor's own status, GCS KV key
       ``ray_constants.DEBUG_AUTOSCALING_STATUS`` (written by the v1 monitor
       every update; what ``ray status`` reads), says whether an autoscaler
       with node types runs (every head runs a monitor, a read-only one without
       ``--autoscaling-config``: see :func:`scales`) and gives its ``monitor_pid``. When that process runs on this host (the
       head, where ``ray up`` puts notebooks and jobs), its
       ``--autoscaling-config`` file holds ``available_node_types``.
    3. Otherwise (a v1 monitor elsewhere, or the v2 autoscaler, seen through
       the public ``ray.autoscaler.v2.sdk.get_cluster_status``): an autoscaler
       whose node types are unknown, so nothing is refused for want of a node.
    """
    try:
        from ray._private import state

        config = state.state.get_cluster_config()
    except Exception:  # private API moved or not connected
        config = None
    if config is not None and config.node_group_configs:
        return {
            g.name: {"resources": dict(g.resources), "max_workers": int(g.max_count)}
            for g in config.node_group_configs
        }
    status = _v1_status()
    if status is not None and scales(status):
        return _types_from_monitor(status.get("monitor_pid"))
    if _v2_autoscaler_runs():
        return {}
    return None


def _v1_status() -> dict[str, Any] | None:
    import json

    try:
        import ray._private.ray_constants as ray_constants
        from ray.experimental.internal_kv import _internal_kv_get

        raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
    except Exception:
        return None
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def scales(status: dict[str, Any]) -> bool:
    """Whether a v1 monitor's status is that of an autoscaler with node types of its own.

    Every Ray head runs the monitor; without ``--autoscaling-config`` it runs a
    read-only one, whose status has no ``autoscaler_report`` (a local
    ``ray.init``) or names each node's type ``node_<node id>``.

    >>> scales({"monitor_pid": 1, "load_metrics_report": {}})
    False
    >>> scales({"autoscaler_report": {"node_type_mapping": {"ab12": "node_ab12"}}})
    False
    >>> scales({"autoscaler_report": {"node_type_mapping": {"ab12": "ray.head.default"}}})
    True
    """
    report = status.get("autoscaler_report")
    if not isinstance(report, dict):
        return False
    mapping = report.get("node_type_mapping") or {}
    return any(kind != f"node_{node}" for node, kind in mapping.items())


def _v2_autoscaler_runs() -> bool:
    try:
        import ray
        from ray.autoscaler.v2.sdk import get_cluster_status

        stats = get_cluster_status(ray.get_runtime_context().gcs_address).stats
        return str(stats.autoscaler_version or "0") not in ("", "0")
    except Exception:
        return False


def _types_from_monitor(pid: Any) -> dict[str, dict[str, Any]]:
    """``available_node_types`` of the config file the local autoscaler monitor runs with."""
    import json

    import psutil
    import yaml

    try:
        args = psutil.Process(int(pid)).cmdline()
    except (psutil.Error, TypeError, ValueError):
        return {}
    if not any(a.endswith("monitor.py") for a in args):
        return {}  # that pid is some other process of this host: the monitor runs elsewhere
    path = next((a.split("=", 1)[1] for a in args if a.startswith("--autoscaling-config=")), None)
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        config = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    head = config.get("head_node_type")
    out = {}
    for name, spec in (config.get("available_node_types") or {}).items():
        if name == head:
            continue
        out[name] = {
            "resources": dict(spec.get("resources") or {}),
            "max_workers": int(spec.get("max_workers", config.get("max_workers", 0)) or 0),
        }
    return out
