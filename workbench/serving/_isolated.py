"""Isolated model versions: each version its own Serve deployment, called by the router through a handle.

With ``deploy(..., isolate=True)`` the app holds the router plus one
``version-<n>`` deployment per loaded version. The router still parses,
validates, routes and logs every request, then awaits the version's handle.
A request whose replica dies while it holds it (a crash, an OOM kill) comes
back as ``ActorDiedError``; predictions are pure functions of the request, so
the router sends it again, and Serve's handle picks a live replica. That is
what Serve's HTTP proxy cannot do for the router itself: it does not retry a
request a replica had already accepted.

The cost is a second hop per request (measured in ``bench/serving_overhead.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from ray import serve

from workbench.exceptions import ConfigError, InvalidRequestError
from workbench.runtime import jsonable
from workbench.serving._router_strategies import validate_warmup, warm_up
from workbench.serving._scaling import deployment_options

__all__ = [
    "ModelServer",
    "version_deployment_name",
    "version_apps",
    "call_version",
    "RETRY_ATTEMPTS",
    "ModelVersionError",
]

log = logging.getLogger("workbench.serving.isolated")

RETRY_ATTEMPTS = 4  # one replica dying mid-request costs one retry; more means Serve is re-placing
RETRY_BACKOFF_S = (0.0, 0.05, 0.2, 0.5)


class ModelVersionError(RuntimeError):
    """The model of an isolated version raised (answered 500 by the router, like an in-router model)."""


def version_deployment_name(version: int | str) -> str:
    """Name of the Serve deployment that serves ``version`` inside its app.

    Examples
    --------
    >>> version_deployment_name(3)
    'version-3'
    """
    return f"version-{int(version)}"


@serve.deployment(name="ModelVersion", ray_actor_options={"num_cpus": 0.5})
class ModelServer:
    """One model version, in its own replicas; ``user_config`` names the artifact to load.

    ``predict`` never lets a model error escape as a Ray error: it answers
    ``("ok", predictions)``, ``("invalid", message, field)`` or ``("error",
    message)`` so the router maps them to 200, 422 and 500 exactly as for a
    version it holds itself, and only a dead replica reaches it as
    ``ActorDiedError`` (the one case worth a retry).
    """

    def __init__(self) -> None:
        self._bundle: Any = None
        self._artifact: str | None = None
        self._version: int | None = None
        self._warmup: dict[str, Any] | None = None
        self._pid = os.getpid()
        self._actor_name: str | None = None
        try:
            self._actor_name = serve.get_replica_context().replica_id.to_full_id_str()
        except Exception:  # outside a replica (unit use)
            pass

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Load (and warm up) the artifact the config names; a same-artifact change keeps the model."""
        from workbench.lineage import ArtifactStore
        from workbench.registry import ModelBundle

        sha = config.get("artifact")
        if not isinstance(sha, str) or len(sha) != 64:
            raise ConfigError("isolated version config needs 'artifact', a SHA-256 hex digest.")
        if sha != self._artifact:
            bundle = ArtifactStore(config["artifacts_dir"]).get_object(sha)  # verifies the hash
            if not isinstance(bundle, ModelBundle):
                raise ConfigError(
                    f"artifact {sha[:12]}… is not a ModelBundle; re-register the version."
                )
            self._bundle, self._artifact = bundle, sha
            self._warmup = warm_up(bundle, validate_warmup(config.get("warmup")))
        self._version = int(config["version"])

    def predict(self, records: list[Any]) -> tuple[Any, ...]:
        """Predictions for one request's records, as a tagged tuple (see the class docstring)."""
        try:
            return ("ok", [jsonable(p) for p in self._bundle.predict_records(records)])
        except InvalidRequestError as exc:
            return ("invalid", str(exc), exc.field)
        except Exception as exc:
            log.exception("model version %s failed", self._version)
            return ("error", f"{type(exc).__name__}: {exc}")

    def predict_proba(self, records: list[Any]) -> tuple[Any, ...]:
        """Predictions and class probabilities, as ``("ok", [predictions, probabilities])`` or
        the same error tuples as :meth:`predict`."""
        try:
            preds, proba = self._bundle.predict_proba_records(records)
            return ("ok", [[jsonable(p) for p in preds], proba])
        except InvalidRequestError as exc:
            return ("invalid", str(exc), exc.field)
        except Exception as exc:
            log.exception("model version %s failed", self._version)
            return ("error", f"{type(exc).__name__}: {exc}")

    def identity(self) -> dict[str, Any]:
        """Which process and node serve this version (tests kill one by its actor name)."""
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "version": self._version,
            "pid": self._pid,
            "actor": self._actor_name,
            "warmup": self._warmup,
        }


def version_apps(config: Mapping[str, Any], code_version: str) -> dict[str, Any]:
    """One bound ``ModelServer`` deployment per version of a checked router config.

    ``code_version`` pins Serve's deployment version, so a config change
    reconfigures replicas in place instead of restarting them.
    """
    opts = deployment_options(config)
    apps = {}
    for key, spec in config["versions"].items():
        user_config = {
            "artifacts_dir": config["artifacts_dir"],
            "artifact": spec["artifact"],
            "version": int(key),
            "warmup": config.get("warmup"),
        }
        try:
            apps[str(key)] = ModelServer.options(  # type: ignore[attr-defined]
                name=version_deployment_name(key),
                version=code_version,
                _internal=True,
                user_config=user_config,
                **opts,
            ).bind()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Ray Serve refused the version options: {exc}") from exc
    return apps


def _replica_died(exc: BaseException) -> bool:
    from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

    if isinstance(exc, ActorDiedError | ActorUnavailableError | RayActorError):
        return True
    cause = getattr(exc, "cause", None) or exc.__cause__
    return isinstance(cause, ActorDiedError | ActorUnavailableError)


async def call_version(
    handle: Any,
    records: list[Any],
    *,
    version: int,
    on_retry: Callable[[BaseException], None] | None = None,
    method: str = "predict",
) -> list[Any]:
    """Predict through an isolated version's handle, retrying on a replica that died meanwhile.

    ``on_retry`` is called with the error of each attempt that met a dead replica. ``method``
    is the :class:`ModelServer` method called: ``predict`` answers the predictions,
    ``predict_proba`` ``[predictions, probabilities]``.

    Raises
    ------
    InvalidRequestError
        The records do not fit the model (the router answers 422).
    ModelVersionError
        The model raised, or every attempt met a dead replica (answered 500).
    """
    last: BaseException | None = None
    for attempt in range(RETRY_ATTEMPTS):
        if RETRY_BACKOFF_S[attempt]:
            await asyncio.sleep(RETRY_BACKOFF_S[attempt])
        try:
            answer = await getattr(handle, method).remote(records)
        except Exception as exc:
            if not _replica_died(exc):
                raise ModelVersionError(
                    f"model version {version} failed: {type(exc).__name__}: {exc}"
                ) from exc
            last = exc
            if on_retry is not None:
                on_retry(exc)
            log.warning("version %s: replica died mid-request (attempt %d)", version, attempt + 1)
            continue
        if answer[0] == "ok":
            return list(answer[1])
        if answer[0] == "invalid":
            raise InvalidRequestError(answer[1], field=answer[2])
        raise ModelVersionError(f"model version {version} failed: {answer[1]}")
    raise ModelVersionError(
        f"model version {version}: every one of {RETRY_ATTEMPTS} attempts met a dead replica "
        f"({type(last).__name__}); check serving.status() for replicas that keep crashing."
    ) from last
