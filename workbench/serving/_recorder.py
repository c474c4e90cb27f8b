"""The one writer of request logs: a Ray actor that owns the SQLite store, pinned to the store's node."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import ray

__all__ = [
    "Recorder",
    "RECORDER_NAMESPACE",
    "recorder_name",
    "get_or_create_recorder",
    "lookup_recorder",
    "store_node_id",
    "store_node_strategy",
]

log = logging.getLogger(__name__)

# Serve replicas run in the "serve" namespace and notebooks in their own, so the
# recorder lives in a fixed namespace that every caller names explicitly.
RECORDER_NAMESPACE = "workbench"


def recorder_name(db_path: str | os.PathLike[str]) -> str:
    """Actor name for the recorder of one lineage database (two WORKBENCH_HOMEs never share one).

    Examples
    --------
    >>> recorder_name("/a/lineage.db") == recorder_name("/a/lineage.db")
    True
    >>> recorder_name("/a/lineage.db") != recorder_name("/b/lineage.db")
    True
    """
    digest = hashlib.sha256(str(Path(db_path).expanduser().resolve()).encode()).hexdigest()[:16]
    return f"workbench-recorder-{digest}"


@ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3)
class Recorder:
    """Appends batches of request-log rows to the lineage store, one transaction per batch.

    Retried writes are harmless: rows are keyed by ``request_id`` and the store
    ignores duplicates.
    """

    def __init__(self, db_path: str):
        from workbench.lineage import Store

        self._db_path = db_path
        self._store = Store(db_path)
        self._rows = 0
        self._batches = 0

    def write(self, rows: list[dict[str, Any]]) -> int:
        """Append ``rows`` (see ``Store.log_requests``); returns how many were inserted.

        Rows with ``"kind": "shadow"`` are a shadow version's answers and go to
        ``Store.log_shadow`` instead.
        """
        shadow = [r for r in rows if r.get("kind") == "shadow"]
        if shadow:
            rows = [r for r in rows if r.get("kind") != "shadow"]
            self._store.deployments.record_shadow(shadow)
        inserted = self._store.deployments.record_requests(rows)
        self._rows += len(rows)
        self._batches += 1
        return inserted

    def stats(self) -> dict[str, Any]:
        """Rows and batches received since this actor started, and where they go."""
        return {
            "db_path": self._db_path,
            "rows": self._rows,
            "batches": self._batches,
            "pid": os.getpid(),
        }


def _node_key(db_path: str | os.PathLike[str]) -> str:
    return f"store-node:{recorder_name(db_path)}"


def store_node_id(db_path: str | os.PathLike[str], *, claim: bool = True) -> str:
    """The Ray node id of the node that holds the lineage store ``db_path``.

    The first caller (the driver that opened the store) records its own node
    (``ray.get_runtime_context().get_node_id()``) in the cluster's GCS
    key-value store, keyed by the store's path; every later caller, on any
    node, gets that node while it is alive, so a later driver on the same node
    finds the same pinned actors. When the recorded node is gone (or nothing is
    recorded), ``claim=True`` records the caller's node; ``claim=False``
    returns the caller's node without recording it.
    """
    # ray.experimental.internal_kv: the GCS KV every Ray process of the cluster can read (the
    # autoscaler and Ray's dashboards keep their state there too); Ray has no public KV API.
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_put

    key = _node_key(db_path)
    raw = _internal_kv_get(key, namespace=RECORDER_NAMESPACE)
    if raw:
        node = raw.decode()
        if any(n.get("Alive") and n.get("NodeID") == node for n in ray.nodes()):
            return node
    here = ray.get_runtime_context().get_node_id()
    if claim:
        _internal_kv_put(key, here, overwrite=True, namespace=RECORDER_NAMESPACE)
    return here


def store_node_strategy(db_path: str | os.PathLike[str]) -> Any:
    """Hard node affinity to the store's node (:func:`store_node_id`): the actor runs there or
    not at all (``soft=False``), never on a node with another (empty) ``lineage.db``."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=store_node_id(db_path), soft=False)


def lookup_recorder(db_path: str | os.PathLike[str]) -> Any | None:
    """The running recorder for ``db_path``, or ``None``."""
    try:
        return ray.get_actor(recorder_name(db_path), namespace=RECORDER_NAMESPACE)
    except ValueError:
        return None


def get_or_create_recorder(db_path: str | os.PathLike[str], *, detached: bool) -> Any:
    """Get the recorder for ``db_path``, creating it on the store's node if there is none.

    Parameters
    ----------
    db_path : path
        The lineage database the recorder writes to. The actor is pinned
        (``soft=False``) to the node recorded for this store by the driver that
        opened it (:func:`store_node_id`; this node when none is recorded).
    detached : bool
        ``True`` on an external cluster, so request logging survives the
        notebook kernel that deployed the model; ``False`` on a local cluster
        started by workbench, where the actor ends with the cluster.

    Returns
    -------
    ray.actor.ActorHandle
        Handle to the ``Recorder``.
    """
    path = str(Path(db_path).expanduser().resolve())
    options: dict[str, Any] = {
        "name": recorder_name(path),
        "namespace": RECORDER_NAMESPACE,
        "get_if_exists": True,
        "scheduling_strategy": store_node_strategy(path),
    }
    if detached:
        options["lifetime"] = "detached"
    return Recorder.options(**options).remote(path)


def kill_recorder(db_path: str | os.PathLike[str]) -> bool:
    """Stop the recorder of ``db_path`` if it runs; returns whether one was stopped."""
    handle = lookup_recorder(db_path)
    if handle is None:
        return False
    ray.kill(handle, no_restart=True)
    return True
