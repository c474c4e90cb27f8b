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


def lookup_recorder(db_path: str | os.PathLike[str]) -> Any | None:
    """The running recorder for ``db_path``, or ``None``."""
    try:
        return ray.get_actor(recorder_name(db_path), namespace=RECORDER_NAMESPACE)
    except ValueError:
        return None


def get_or_create_recorder(db_path: str | os.PathLike[str], *, detached: bool) -> Any:
    """Get the recorder for ``db_path``, creating it on this process's node if there is none.

    Parameters
    ----------
    db_path : path
        The lineage database the recorder writes to; it must be reachable from
        this node, which is why the actor is pinned here (``soft=False``).
    detached : bool
        ``True`` on an external cluster, so request logging survives the
        notebook kernel that deployed the model; ``False`` on a local cluster
        started by workbench, where the actor ends with the cluster.

    Returns
    -------
    ray.actor.ActorHandle
        Handle to the ``Recorder``.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    path = str(Path(db_path).expanduser().resolve())
    options: dict[str, Any] = {
        "name": recorder_name(path),
        "namespace": RECORDER_NAMESPACE,
        "get_if_exists": True,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(
            node_id=ray.get_runtime_context().get_node_id(), soft=False
        ),
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
