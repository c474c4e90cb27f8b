"""Walk lineage edges into a readable chain (data → experiment → model → deployment → drift → retrain → …)."""

from __future__ import annotations

from collections import deque
from typing import Any

from workbench.lineage._store import NODE_TABLES, Store

__all__ = ["lineage_chain", "format_chain", "describe_node"]


def describe_node(store: Store, node_type: str, node_id: int) -> str:
    """One-line human description of a lineage node."""
    if node_type == "dataset_version":
        r = store.datasets.get_version_by_id(node_id)
        # "xxh3-128:<hex>"; versions recorded before hashes named their algorithm: bare SHA-256
        algorithm, _, digest = str(r["content_hash"]).rpartition(":")
        return f"dataset {r['dataset']} v{r['version']} ({r['n_rows']} rows, {algorithm or 'sha256'} {digest[:12]})"
    if node_type == "experiment":
        r = store.experiments.get(node_id)
        return f"experiment #{node_id} {r['name']} ({r['n_trials']} trials, {r['status']}, best {r['best_trial_id']})"
    if node_type == "model_version":
        r = store.models.get_version_by_id(node_id)
        metrics = ", ".join(
            f"{k}={v:.3f}" for k, v in sorted(r["metrics"].items()) if isinstance(v, int | float)
        )
        alias = f" [{', '.join(r['aliases'])}]" if r["aliases"] else ""
        return f"model {r['model']} v{r['version']}{alias} ({metrics})"
    r = store.node(node_type, node_id) if node_type in NODE_TABLES else None
    if r is None:
        return f"{node_type} #{node_id}"
    if node_type == "deployment":
        return (
            f"deployment {r['name']} at {r['route_prefix']} ({r['status']}, weights {r['weights']})"
        )
    if node_type == "monitor":
        return f"monitor {r['name']} ({r['kind']})"
    if node_type == "drift_result":
        flag = "DRIFT" if r["is_drift"] else "no drift"
        return f"drift result #{node_id}: {flag} on {r['n']} requests (score {r['score']:.2g} vs {r['threshold']:.2g})"
    if node_type == "retrain_job":
        return f"retrain job #{node_id} ({r['status']}, decision: {r['decision']})"
    if node_type == "retrain_step":
        summary = r["detail"].get("summary", "")
        return f"step {r['step']} of retrain job #{r['job_id']}: {r['status']}" + (
            f" ({summary})" if summary else ""
        )
    return f"{node_type} #{node_id}"


def lineage_chain(
    store: Store, node_type: str, node_id: int, *, max_nodes: int = 500
) -> dict[str, Any]:
    """Everything connected to a node through lineage edges, in the order the edges were recorded.

    Drift results that found no drift and caused nothing are left out: they are
    routine observations, listed by ``store.monitors.list_windows()``.
    """
    seen = {(node_type, node_id)}
    queue = deque([(node_type, node_id)])
    edges: dict[int, dict[str, Any]] = {}
    while queue and len(seen) < max_nodes:
        t, i = queue.popleft()
        for e in store.edges(src=(t, i)) + store.edges(dst=(t, i)):
            if e["dst_type"] == "drift_result":
                r = store.node("drift_result", e["dst_id"])
                if r and not r["is_drift"]:
                    continue
            edges[e["id"]] = e
            for nxt in ((e["src_type"], e["src_id"]), (e["dst_type"], e["dst_id"])):
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
    ordered = [edges[k] for k in sorted(edges)]
    nodes = {n: describe_node(store, *n) for n in seen}
    return {"root": (node_type, node_id), "nodes": nodes, "edges": ordered}


def format_chain(store: Store, chain: dict[str, Any]) -> str:
    """Render a chain as text: one line per edge, then each deployment's traffic history."""
    lines = []
    nodes = chain["nodes"]
    for e in chain["edges"]:
        src = nodes[(e["src_type"], e["src_id"])]
        dst = nodes[(e["dst_type"], e["dst_id"])]
        lines.append(f"{e['at'][:19]}  {src}\n{'':21}--{e['relation']}--> {dst}")
    for _type, i in sorted(n for n in nodes if n[0] == "deployment"):
        dep = store.node("deployment", i)
        if dep:
            lines.append(f"traffic history of deployment {dep['name']}:")
            for c in store.deployments.list_traffic(dep["name"]):
                weights = ", ".join(f"v{k}={v:.0%}" for k, v in c["weights"].items())
                lines.append(f"  {c['at'][:19]}  {weights}  by {c['actor']}: {c['reason']}")
    return "\n".join(lines)
