"""Router-side pieces of the serving strategies: sticky keys, warm-up of new versions, shadow mirroring.

The router (``_router.py``) calls these from its request path and its
``reconfigure``; they hold no Ray or Serve code, so they are tested in-process.

- Sticky routing: a request's key comes from the body's ``"key"`` or else the
  ``X-Workbench-Key`` header; the same key gets the same version while the
  weights hold (:func:`workbench.serving.traffic.sticky_choice`).
- Warm-up: a version loaded by a ``reconfigure`` answers a few real records
  before the new weights take effect, so blue-green's green (or a canary) is
  warm before its first request; the result is in ``/health``.
- Shadow: :class:`ShadowMirror` sends a share of answered requests to a shadow
  version on a worker thread after the client's answer is ready; the shadow's
  answer, latency and agreement are logged with the request id, never returned,
  and its exceptions never reach a client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from workbench.evaluation import same_label
from workbench.exceptions import ConfigError
from workbench.runtime import jsonable

__all__ = [
    "STICKY_HEADER",
    "MAX_WARMUP_RECORDS",
    "SHADOW_MAX_PENDING",
    "sticky_key",
    "validate_warmup",
    "validate_shadow",
    "warm_up",
    "ShadowMirror",
]

log = logging.getLogger("workbench.serving.router")

STICKY_HEADER = "x-workbench-key"
MAX_WARMUP_RECORDS = 16
# Shadow calls queued on the worker thread at most; beyond that a request is not mirrored
# (counted as skipped), so a slow shadow can never build an unbounded backlog in the replica.
SHADOW_MAX_PENDING = 32


def sticky_key(headers: Mapping[str, str] | None, body_key: str | None) -> str | None:
    """The sticky routing key of a request: the body's ``"key"``, else the ``X-Workbench-Key`` header.

    Examples
    --------
    >>> sticky_key({"x-workbench-key": "user-7"}, None)
    'user-7'
    >>> sticky_key({"x-workbench-key": "user-7"}, "user-9")
    'user-9'
    >>> sticky_key({}, None) is None
    True
    """
    if body_key is not None:
        return body_key
    if headers is None:
        return None
    value = headers.get(STICKY_HEADER)
    return value if value else None


def validate_warmup(records: Any) -> list[dict[str, Any]]:
    """Check the router config's ``warmup`` records (a short list of feature objects)."""
    if records is None:
        return []
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        raise ConfigError("router config 'warmup' must be a list of records ({feature: value}).")
    return [dict(r) for r in records[:MAX_WARMUP_RECORDS]]


def validate_shadow(spec: Any, loaded: Sequence[int]) -> dict[str, Any] | None:
    """Check the router config's ``shadow`` entry: ``{"version": int, "share": float in (0, 1]}``.

    The shadow version must be among the loaded versions (at weight 0 unless
    it also takes live traffic).

    Examples
    --------
    >>> validate_shadow({"version": 2, "share": 0.5}, [1, 2])
    {'version': 2, 'share': 0.5}
    >>> validate_shadow(None, [1]) is None
    True
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"router config 'shadow' must be {{'version': int, 'share': float}}, got {spec!r}."
        )
    version = spec.get("version")
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise ConfigError(f"router config 'shadow' needs a version number, got {version!r}.")
    try:
        version = int(version)
    except ValueError as exc:
        raise ConfigError(
            f"router config 'shadow' needs a version number, got {version!r}."
        ) from exc
    share = spec.get("share", 1.0)
    if isinstance(share, bool) or not isinstance(share, int | float):
        raise ConfigError(f"shadow share must be a number in (0, 1], got {share!r}.")
    share = float(share)
    if not math.isfinite(share) or not 0.0 < share <= 1.0:
        raise ConfigError(f"shadow share must be in (0, 1], got {share!r}.")
    if version not in {int(v) for v in loaded}:
        raise ConfigError(
            f"shadow version {version} is not loaded in the router; add it to 'versions' (weight 0)."
        )
    return {"version": version, "share": share}


def warm_up(bundle: Any, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Run real predictions on a freshly loaded version: the batch once, then each record alone.

    Never raises: a failure is reported (``ok`` false, ``error``) so the caller
    decides, and a replica is never left half-configured.

    Returns
    -------
    dict
        ``{"records", "predictions", "ms", "ok", "error"}``; ``ok`` is ``None``
        when there was nothing to warm up with.
    """
    from workbench.lineage import utcnow

    if not records:
        return {
            "records": 0,
            "predictions": 0,
            "ms": 0.0,
            "ok": None,
            "error": None,
            "at": utcnow(),
        }
    t0 = time.perf_counter()
    calls = 0
    try:
        bundle.predict_records(list(records))
        calls += 1
        for record in records:
            bundle.predict_records([record])
            calls += 1
    except Exception as exc:
        return {
            "records": len(records),
            "predictions": calls,
            "ms": (time.perf_counter() - t0) * 1000.0,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "at": utcnow(),
        }
    return {
        "records": len(records),
        "predictions": calls,
        "ms": (time.perf_counter() - t0) * 1000.0,
        "ok": True,
        "error": None,
        "at": utcnow(),
    }


class ShadowMirror:
    """Mirrors a share of answered requests to one shadow version, off the response path.

    :meth:`maybe_mirror` is called by the router after the primary answered; it
    only schedules work (an asyncio task awaiting a one-thread executor) and
    returns at once, so the client's answer never waits for the shadow. Each
    mirrored request produces one log row (``kind: "shadow"``) through ``sink``
    with both answers, both latencies, agreement and the shadow's error if it
    raised.

    Parameters
    ----------
    deployment : str
        Deployment name (for the log rows).
    version, model_version_id : int
        The shadow version.
    bundle : ModelBundle
        Its loaded model.
    share : float
        Share of answered requests to mirror, in ``(0, 1]``.
    sink : callable
        Receives each log row on the event loop (the router's ``_log``).
    rand : callable
        Uniform draws in ``[0, 1)`` deciding which requests are mirrored.
    """

    def __init__(
        self,
        *,
        deployment: str,
        version: int,
        model_version_id: int,
        artifact: str,
        bundle: Any,
        share: float,
        sink: Callable[[dict[str, Any]], None],
        rand: Callable[[], float] = random.random,
    ):
        self.deployment = deployment
        self.version = int(version)
        self.model_version_id = int(model_version_id)
        self.artifact = artifact
        self.bundle = bundle
        self.share = float(share)
        self._sink = sink
        self._rand = rand
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-shadow")
        self._pending: set[asyncio.Future[Any]] = set()
        self._closing = False
        self.mirrored = 0
        self.skipped = 0
        self.failed = 0
        self.agreed = 0

    def same_as(self, version: int, artifact: str, share: float) -> bool:
        return (self.version, self.artifact, self.share) == (int(version), artifact, float(share))

    def maybe_mirror(
        self,
        *,
        request_id: str,
        records: list[Any],
        primary_version: int,
        primary_version_id: int,
        primary_prediction: Any,
        primary_latency_ms: float,
    ) -> bool:
        """Schedule the shadow call for this request if it falls in the share; never raises."""
        try:
            if self._closing or primary_version == self.version or self._rand() >= self.share:
                return False
            if len(self._pending) >= SHADOW_MAX_PENDING:
                self.skipped += 1
                return False
            task = asyncio.get_running_loop().create_task(
                self._run(
                    request_id,
                    records,
                    primary_version_id,
                    primary_prediction,
                    primary_latency_ms,
                )
            )
            self._pending.add(task)
            task.add_done_callback(self._done)
            return True
        except Exception:  # the client's answer must not depend on the shadow
            self.skipped += 1
            log.exception("could not mirror request %s to shadow v%s", request_id, self.version)
            return False

    def _predict(self, records: list[Any]) -> tuple[Any, float, str | None]:
        t0 = time.perf_counter()
        try:
            out = [jsonable(p) for p in self.bundle.predict_records(records)]
        except Exception as exc:
            return None, (time.perf_counter() - t0) * 1000.0, f"{type(exc).__name__}: {exc}"
        return out, (time.perf_counter() - t0) * 1000.0, None

    async def _run(
        self,
        request_id: str,
        records: list[Any],
        primary_version_id: int,
        primary_prediction: Any,
        primary_latency_ms: float,
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
            prediction, ms, error = await loop.run_in_executor(
                self._executor, self._predict, records
            )
            self.mirrored += 1
            # a version trained before classes kept their type answers "1" where a new one
            # answers 1: the same class
            agree = (
                None
                if error
                else len(prediction) == len(primary_prediction)
                and all(map(same_label, prediction, primary_prediction))
            )
            if error:
                self.failed += 1
            elif agree:
                self.agreed += 1
            self._sink(
                {
                    "kind": "shadow",
                    "request_id": request_id,
                    "deployment": self.deployment,
                    "primary_version_id": primary_version_id,
                    "shadow_version_id": self.model_version_id,
                    "primary_prediction": primary_prediction,
                    "shadow_prediction": prediction,
                    "agree": agree,
                    "primary_latency_ms": primary_latency_ms,
                    "shadow_latency_ms": ms,
                    "error": error,
                }
            )
        except Exception:
            self.failed += 1
            log.exception("shadow v%s failed to log request %s", self.version, request_id)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait (bounded) until the shadow calls scheduled so far have finished and logged."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout_s)

    def stats(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "share": self.share,
            "mirrored": self.mirrored,
            "agreed": self.agreed,
            "failed": self.failed,
            "skipped": self.skipped,
            "pending": len(self._pending),
        }

    def close(self) -> None:
        """Stop taking work; calls already scheduled still finish and log, then the thread ends."""
        self._closing = True
        if not self._pending:
            self._executor.shutdown(wait=False)

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._pending.discard(task)
        if self._closing and not self._pending:
            self._executor.shutdown(wait=False)
