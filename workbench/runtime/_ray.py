"""Start or join Ray; never stop a Ray this process did not start."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.exceptions import ConfigError

__all__ = ["RayConnection", "connect", "free_port"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_current: RayConnection | None = None


@dataclass
class RayConnection:
    """The Ray this process talks to, and whether workbench started it."""

    address: str
    started_here: bool
    namespace: str
    #: the cluster is a private local one that this process started (it dies with the process)
    local: bool = False

    def shutdown(self) -> None:
        """Disconnect; the local cluster is stopped only when workbench started it."""
        global _current
        import ray

        from workbench.runtime._warm_trials import release_parked_trials

        with _lock:
            if not self.started_here:
                return
            release_parked_trials()  # parked trial actors die with the cluster; forget them first
            if ray.is_initialized():
                ray.shutdown()
            _current = None


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_memory: int | None = None,
    namespace: str = "workbench",
    include_dashboard: bool = False,
) -> RayConnection:
    """Connect to Ray once per process and return the connection.

    With no ``address`` and no ``RAY_ADDRESS``, a private local cluster is
    started (``address="local"``, so it never joins a cluster that happens to
    run on the machine). With an address, that cluster is joined and is never
    shut down by workbench. If Ray is already initialised in this process
    (say by the user), it is reused as is.

    Examples
    --------
    >>> conn = connect()                  # doctest: +SKIP
    >>> conn.started_here                 # doctest: +SKIP
    True
    """
    global _current
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    target = address or os.environ.get("RAY_ADDRESS")
    if target and not os.environ.get("RAY_AUTH_MODE") and _token_available():
        # Ray reads the mode when it is imported, so this must come before `import ray`; see _join.
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray

    with _lock:
        if _current is not None and ray.is_initialized():
            # Someone in this process connected first: share their Ray, never own it.
            return RayConnection(
                address=_current.address,
                started_here=False,
                namespace=_current.namespace,
                local=_current.local,
            )
        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            _current = RayConnection(
                address=_gcs_address(), started_here=False, namespace=ctx.namespace
            )
            return _current
        kwargs: dict[str, Any] = {
            "namespace": namespace,
            "log_to_driver": False,
            "configure_logging": False,
        }
        try:
            if target:
                _join(target, kwargs)
                started = False
            else:
                ray.init(
                    address="local",
                    num_cpus=num_cpus if num_cpus is not None else os.cpu_count(),
                    num_gpus=num_gpus,
                    object_store_memory=object_store_memory or 512 * 1024**2,
                    include_dashboard=include_dashboard,
                    **kwargs,
                )
                started = True
        except ConnectionError as exc:
            raise ConfigError(
                f"could not reach a Ray cluster at {target!r}: {exc}. Check the address (ray status on the head node); "
                "if the cluster uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or put the "
                "token in ~/.ray/auth_token); or unset RAY_ADDRESS to start a local cluster."
            ) from exc
        _current = RayConnection(
            address=_gcs_address(), started_here=started, namespace=namespace, local=started
        )
        log.info("connected to Ray at %s (started here: %s)", _current.address, started)
        return _current


def _token_available() -> bool:
    """Whether a Ray auth token can be found the way Ray looks for one."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").exists()


def _join(address: str, kwargs: dict[str, Any]) -> None:
    """Join an existing cluster.

    A Ray 2.60 cluster started with token authentication refuses clients that
    do not send the token, and Ray never turns token mode on by itself for an
    explicit address (the client retries for ~40 s, then fails with a bare
    "Failed to connect"). :func:`connect` therefore sets ``RAY_AUTH_MODE=token``
    before Ray is first imported whenever a token is at hand; a token-mode
    client also joins clusters without authentication (both seen with Ray 2.60.0).
    """
    import ray

    ray.init(address=address, **kwargs)


def _gcs_address() -> str:
    import ray

    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # older/newer Ray without gcs_address on the context
        return "unknown"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
