"""The Serve app: one ingress ``Router`` replica that holds every model version and splits traffic by weight.

Small model versions live inside the router's own replica, so a request costs
one hop (proxy → router). With ``isolate`` each version is its own deployment
(its own replicas and resources, e.g. a GPU) that the router calls through a
handle, retrying a request whose replica died (see :mod:`workbench.serving._isolated`). Weights, versions and
paths arrive as the deployment's ``user_config``; ``reconfigure()`` applies a
change in place, without restarting the replica.

The same app runs from Python (``Serving.deploy``) and from the CLI::

    serve run workbench.serving._router:build_app --  # with a config file holding `args`
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve

from workbench._numbers import parse_int
from workbench.exceptions import ConfigError, InvalidRequestError
from workbench.runtime import jsonable
from workbench.serving._auth import auth_options, authorize, host_error, key_options
from workbench.serving._codecs import HTTPError as _HTTPError
from workbench.serving._codecs import JSONCodec
from workbench.serving._isolated import (
    ModelVersionError,
    call_version,
    version_apps,
    version_deployment_name,
)
from workbench.serving._router_strategies import (
    ShadowMirror,
    sticky_key,
    validate_shadow,
    validate_warmup,
    warm_up,
)
from workbench.serving._scaling import router_options, scaling_options
from workbench.serving._validation import (
    DEFAULT_MAX_BODY_BYTES,
    sanitize_predictions,
    validation_options,
)
from workbench.serving.traffic import normalize, route

__all__ = ["Router", "build_app", "validate_config", "ROUTER_CODE_VERSION", "MAX_BODY_BYTES"]

log = logging.getLogger("workbench.serving.router")

MAX_BODY_BYTES = 1 << 20
#: Logged features are capped by the request body's size: a larger request is answered and
#: counted, but its features are not stored (``features`` null), so one client cannot fill the
#: store at max_body_bytes per request.
LOG_FEATURES_MAX_BYTES = 256 * 1024
#: A request body must arrive within this many seconds (``body_timeout_s`` in the config), so
#: slow uploads cannot hold a replica's request slots.
BODY_TIMEOUT_S = 10.0
#: Rejected requests are logged as a summary: status, reason (at most this many characters)
#: and body size; never their content, never a model version.
LOG_ERROR_CHARS = 300
#: The media types a POST may declare (a cross-origin ``text/plain`` POST, which browsers send
#: without a preflight, is refused before anything is read).
JSON_TYPES = frozenset({"application/json"})
V2_TYPES = frozenset({"application/json", "application/octet-stream"})
LOG_BUFFER_ROWS = 10_000
FLUSH_INTERVAL_S = 0.25
FLUSH_ROWS = 64
DEFAULT_NUM_CPUS = 0.5
DEFAULT_NUM_REPLICAS = 1


def _code_version() -> str:
    # Serve restarts replicas whenever the deployment "version" changes and, for apps
    # deployed from Python, picks a random one per serve.run. Pinning it to this
    # file's bytes makes a user_config change a reconfigure(), while a new router
    # code still rolls the replicas. The router's code is this package's modules (codecs,
    # validation, auth, strategies, traffic), so all of them count.
    from workbench._version import __version__

    sources = sorted(Path(__file__).parent.glob("*.py"))
    code = b"".join(f.name.encode() + f.read_bytes() for f in sources)
    digest = hashlib.sha256(code + __version__.encode()).hexdigest()
    return f"router-{digest[:16]}"


ROUTER_CODE_VERSION = _code_version()


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a router ``user_config`` and return it with weights normalised.

    Parameters
    ----------
    config : mapping
        ``{"deployment": name, "db_path": ..., "artifacts_dir": ..., "versions":
        {"1": {"artifact": sha256, "model_version_id": id, "weight": 0.9}, ...}}``;
        ``versions`` may also be a JSON string (as ``serve run key=value`` passes it).
        Optional: ``non_finite`` (``"reject"``/``"impute"``) and ``max_body_bytes``
        (see :mod:`workbench.serving._validation`), ``token_sha256`` (see
        :mod:`workbench.serving._auth`).

    Returns
    -------
    dict
        A copy with version keys as strings and weights summing to 1.

    Raises
    ------
    ConfigError
        Naming the missing or malformed entry.

    Examples
    --------
    >>> cfg = validate_config({"deployment": "d", "db_path": "/x/lineage.db", "artifacts_dir": "/x/artifacts",
    ...     "versions": {"1": {"artifact": "a" * 64, "model_version_id": 7, "weight": 3}}})
    >>> cfg["versions"]["1"]["weight"]
    1.0
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"router config must be a mapping, got {type(config).__name__}.")
    out = dict(config)
    for key in ("deployment", "db_path", "artifacts_dir"):
        if not isinstance(out.get(key), str) or not out[key]:
            raise ConfigError(
                f"router config needs a non-empty string {key!r}; got {out.get(key)!r}."
            )
    versions = out.get("versions")
    if isinstance(versions, str):
        try:
            versions = json.loads(versions)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"router config 'versions' is not valid JSON: {exc}") from exc
    if not isinstance(versions, Mapping) or not versions:
        raise ConfigError(
            "router config needs 'versions': {version: {artifact, model_version_id, weight}}."
        )
    clean: dict[str, dict[str, Any]] = {}
    for key, spec in versions.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"router config: version {key!r} must be a mapping, got {spec!r}.")
        artifact = spec.get("artifact")
        if not isinstance(artifact, str) or len(artifact) != 64:
            raise ConfigError(
                f"router config: version {key!r} needs 'artifact', a SHA-256 hex digest."
            )
        mv_id = spec.get("model_version_id")
        if isinstance(mv_id, bool) or not isinstance(mv_id, int):
            raise ConfigError(
                f"router config: version {key!r} needs an integer 'model_version_id'."
            )
        clean[str(key)] = {
            "artifact": artifact,
            "model_version_id": mv_id,
            "weight": spec.get("weight", 0.0),
        }
    weights = normalize({k: v["weight"] for k, v in clean.items()})
    for version, weight in weights.items():
        clean[str(version)]["weight"] = weight
    out["versions"] = {str(v): clean[str(v)] for v in weights}
    out.update(validation_options(out))  # non_finite, max_body_bytes
    out.update(auth_options(out))  # token_sha256 (a digest; the token never reaches a replica)
    out.update(key_options(out))  # api_keys: [{name, sha256, scopes}] (digests only)
    out["ignore_sticky"] = out.get("ignore_sticky") is True  # set while a canary runs
    out.update(scaling_options(out))  # replicas/autoscaling, CPUs/GPUs, batching
    return out


def build_app(args: Mapping[str, Any]) -> Any:
    """Build the router application from its config (an app builder for ``serve.run`` and ``serve run``).

    Parameters
    ----------
    args : mapping
        The router ``user_config`` (see :func:`validate_config`), plus optional
        ``num_replicas`` (default 1) or ``autoscaling_config``, ``num_cpus`` per
        replica (default 0.5), ``num_gpus``, ``max_ongoing_requests`` (default 16)
        and batching (see :mod:`workbench.serving._scaling`).

    Returns
    -------
    ray.serve.Application

    Examples
    --------
    >>> app = build_app({"deployment": "cancer", ...})      # doctest: +SKIP
    >>> serve.run(app, name="cancer", route_prefix="/cancer")  # doctest: +SKIP
    """
    config = validate_config(args)  # also checks replicas, resources and batching
    try:
        deployment = Router.options(  # type: ignore[attr-defined]
            version=ROUTER_CODE_VERSION,
            _internal=True,  # `version` is internal in Ray 2.60; see _code_version for why we pin it
            user_config=config,
            **router_options(config),
        )
    except (TypeError, ValueError) as exc:  # Serve's own checks, e.g. an unknown autoscaling key
        raise ConfigError(f"Ray Serve refused the deployment options: {exc}") from exc
    if config["isolate"]:
        # Bound as an argument only so Serve deploys them as part of this app; the router
        # looks each handle up by name in reconfigure(), since a pinned version means a
        # changed argument never reaches a running router.
        return deployment.bind(version_apps(config, ROUTER_CODE_VERSION))
    return deployment.bind()


@dataclass(frozen=True)
class _Loaded:
    version: int
    artifact: str
    model_version_id: int
    bundle: Any
    remote: Any = None  # the version's DeploymentHandle when the app isolates versions


@dataclass(frozen=True)
class _Routing:
    """Everything a request needs, swapped as one object so a request never sees half a change."""

    deployment: str
    versions: dict[int, _Loaded]
    weights: dict[int, float]


def _check_media(headers: Mapping[str, str], protocol: str) -> None:
    """415 for a POST whose Content-Type (or, for /predict, Content-Encoding) is not accepted."""
    allowed = V2_TYPES if protocol == "v2" else JSON_TYPES
    declared = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    # NVIDIA's tritonclient sends its v2 infer bodies without a Content-Type: v2 lets none pass
    if declared not in allowed and not (protocol == "v2" and not declared):
        raise _HTTPError(
            415,
            f"Content-Type {declared or 'none'!r} is not accepted; send "
            f"{' or '.join(sorted(allowed))}",
            "content-type",
        )
    encoding = (headers.get("content-encoding") or "").strip().lower()
    if protocol != "v2" and encoding not in ("", "identity"):
        raise _HTTPError(
            415,
            f"Content-Encoding {encoding[:40]!r} is not accepted on /predict; send the body "
            "uncompressed (the v2 infer route accepts gzip and deflate, inflated up to "
            "max_body_bytes)",
            "body",
        )


@serve.deployment(
    name="Router", max_ongoing_requests=16, ray_actor_options={"num_cpus": DEFAULT_NUM_CPUS}
)
class Router:
    """Ingress of a workbench deployment: routes each request to one model version by weight.

    HTTP, relative to the app's route prefix:

    - ``POST /predict`` with ``{"records": [{feature: value}, ...]}`` or
      ``{"columns": {feature: [values]}}``, an optional ``"key"`` for sticky
      routing and ``"probabilities": true`` → ``{"predictions", "model_version",
      "request_id"}`` (plus ``"classes"`` and ``"probabilities"`` when asked);
    - ``GET /health`` → loaded versions, weights and this replica's identity;
    - ``/v2/...``: the Open Inference Protocol v2 (see :mod:`workbench.serving._v2`).

    With ``token_sha256`` in the config, every route but the v2 liveness and
    readiness probes needs ``Authorization: Bearer <token>`` (401 otherwise).
    Every ``/predict`` and v2 infer call, answered or rejected, is logged to a bounded
    in-memory buffer that a background task ships to the recorder actor.
    """

    def __init__(self, versions: Any = None) -> None:
        del versions  # isolated versions' handles: looked up by name in reconfigure()
        self._routing: _Routing | None = None
        self._config: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}  # artifact sha → bundle, so re-weighting never reloads
        self._artifacts: Any = None
        self._recorder: Any = None
        self._buffer: deque[dict[str, Any]] = deque(maxlen=LOG_BUFFER_ROWS)
        self._dropped = 0
        self._refused: dict[int, int] = {}  # 401/403/421 answers: counted, never logged
        self._unlogged_features = 0  # answered requests whose features were over the log cap
        self._written = 0
        self._lost = 0
        self._inflight: set[asyncio.Future[Any]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._started_at = time.time()
        self._pid = os.getpid()
        self._reconfigures = 0
        self._retries = 0  # requests re-sent because an isolated version's replica died
        self._warmup: dict[int, dict[str, Any]] = {}  # version → result of its warm-up on load
        self._shadow: ShadowMirror | None = None
        self._batch_size: int | None = None  # None: each request predicts on its own
        self._batch_wait_s = 0.0
        self._batcher: Any = None  # this replica's @serve.batch queue, made on first use
        self._batch_sizes: dict[int, int] = {}  # batch size → how many batches of it ran
        self._actor_name: str | None = None  # the replica's Ray actor, in namespace "serve"
        try:
            replica = serve.get_replica_context().replica_id
            self._replica_id = replica.unique_id
            self._actor_name = replica.to_full_id_str()
        except Exception:  # outside a replica (unit use)
            self._replica_id = f"local-{self._pid}"

    # ---------------------------------------------------------------- config
    def reconfigure(self, config: dict[str, Any]) -> None:
        """Load new versions, drop removed ones and take the new weights, in place."""
        from workbench.lineage import ArtifactStore
        from workbench.registry import ModelBundle

        cfg = validate_config(config)
        warmup_records = validate_warmup(cfg.get("warmup"))
        shadow_spec = validate_shadow(cfg.get("shadow"), [int(k) for k in cfg["versions"]])
        # artifacts_dir: the storage root, a local path or a URI this replica's node reads
        if self._artifacts is None or self._artifacts.uri != cfg["artifacts_dir"]:
            self._artifacts = ArtifactStore(cfg["artifacts_dir"])
        loaded: dict[int, _Loaded] = {}
        for key, spec in cfg["versions"].items():
            sha = spec["artifact"]
            bundle = self._cache.get(sha)
            if bundle is None:
                bundle = self._artifacts.get_object(sha)  # verifies the SHA-256 before unpickling
                if not isinstance(bundle, ModelBundle):
                    raise ConfigError(
                        f"artifact {sha[:12]}… of version {key} is not a ModelBundle; re-register it."
                    )
            remote = None
            if cfg["isolate"]:
                remote = serve.get_deployment_handle(
                    version_deployment_name(key), app_name=self._app_name()
                )
            loaded[int(key)] = _Loaded(int(key), sha, spec["model_version_id"], bundle, remote)
        # A version new to this replica answers real records before the new weights take
        # effect (blue-green's green, a canary): its first client request meets a warm model.
        self._warmup = {
            v: (
                self._warmup[v]
                if v in self._warmup and lv.artifact in self._cache
                else warm_up(lv.bundle, warmup_records)
            )
            for v, lv in loaded.items()
        }
        self._cache = {v.artifact: v.bundle for v in loaded.values()}  # drops removed versions
        self._set_shadow(cfg["deployment"], shadow_spec, loaded)
        self._set_batching(cfg["max_batch_size"], cfg["batch_wait_timeout_s"])
        if self._config.get("db_path") != cfg["db_path"]:
            self._recorder = None
        self._config = cfg
        self._routing = _Routing(
            deployment=cfg["deployment"],
            versions=loaded,
            weights={v: cfg["versions"][str(v)]["weight"] for v in loaded},
        )
        self._reconfigures += 1
        log.info("router %s: versions %s", cfg["deployment"], self._routing.weights)

    def _count_retry(self, exc: BaseException) -> None:
        self._retries += 1

    @staticmethod
    def _app_name() -> str:
        return serve.get_replica_context().app_name

    def _set_shadow(
        self, deployment: str, spec: dict[str, Any] | None, loaded: dict[int, _Loaded]
    ) -> None:
        old = self._shadow
        if spec is not None:
            lv = loaded[spec["version"]]
            if old is not None and old.same_as(lv.version, lv.artifact, spec["share"]):
                return
            self._shadow = ShadowMirror(
                deployment=deployment,
                version=lv.version,
                model_version_id=lv.model_version_id,
                artifact=lv.artifact,
                bundle=lv.bundle,
                share=spec["share"],
                sink=self._log,
            )
        else:
            self._shadow = None
        if old is not None:
            old.close()

    def config(self) -> dict[str, Any]:
        """The user_config this replica runs with (the deployer reuses it for the next change)."""
        return dict(self._config)

    def health(self) -> dict[str, Any]:
        """Loaded versions with their weights, and this replica's identity and log counters."""
        routing = self._routing
        versions = {}
        if routing is not None:
            for v, lv in sorted(routing.versions.items()):
                versions[str(v)] = {
                    "weight": routing.weights[v],
                    "model_version_id": lv.model_version_id,
                    "artifact": lv.artifact,
                }
                if lv.remote is not None:
                    versions[str(v)]["deployment"] = version_deployment_name(v)
        for v, result in self._warmup.items():
            if str(v) in versions:
                versions[str(v)]["warmup"] = result
        return {
            "status": "ok" if routing else "not configured",
            "deployment": routing.deployment if routing else None,
            "versions": versions,
            "revision": self._config.get("revision"),
            "isolate": bool(self._config.get("isolate")),
            "retries": self._retries,
            "shadow": self._shadow.stats() if self._shadow is not None else None,
            "replica": {
                "id": self._replica_id,
                "pid": self._pid,
                "started_at": self._started_at,
                "actor": self._actor_name,
            },
            "reconfigures": self._reconfigures,
            "batching": {
                "max_batch_size": self._batch_size,
                "batch_wait_timeout_s": self._config.get("batch_wait_timeout_s"),
                "batches": sum(self._batch_sizes.values()),
                "sizes": {str(k): n for k, n in sorted(self._batch_sizes.items())},
            },
            "refused": {str(k): n for k, n in sorted(self._refused.items())},  # 401/403/421
            "features_not_logged": self._unlogged_features,  # bodies over LOG_FEATURES_MAX_BYTES
            "log": {
                "buffered": len(self._buffer),
                "written": self._written,
                "lost": self._lost,
                "dropped": self._dropped,
            },
        }

    # ------------------------------------------------------------------ HTTP
    async def __call__(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        root = request.scope.get("root_path", "") or ""
        path = request.url.path
        sub = path[len(root) :] if root and path.startswith(root) else path
        sub = "/" + sub.strip("/")
        is_v2 = sub == "/v2" or sub.startswith("/v2/")
        digest = self._config.get("token_sha256")
        keys = self._config.get("api_keys") or []
        if digest is None and not keys:
            bad_host = host_error(request.headers.get("host"))
            if bad_host is not None:  # DNS rebinding: a page elsewhere naming 127.0.0.1
                self._refused[421] = self._refused.get(421, 0) + 1
                return JSONCodec().respond(421, {"error": bad_host, "field": "host"})
        status, message, key_name = authorize(
            sub, request.headers.get("authorization"), digest, keys
        )
        if status is not None:
            return self._unauthorized(sub, message, is_v2, status)
        request.scope["workbench.api_key"] = key_name
        if is_v2:
            from workbench.serving import _v2

            return await _v2.handle(self, request, sub)
        if sub == "/health":
            if request.method != "GET":
                return JSONResponse(
                    {"error": "use GET for /health", "field": None}, status_code=405
                )
            return JSONResponse(self.health())
        if sub == "/predict":
            if request.method != "POST":
                return JSONResponse(
                    {"error": "use POST for /predict", "field": None}, status_code=405
                )
            self._ensure_flusher()
            return await self._predict(
                request, JSONCodec(non_finite=self._config.get("non_finite", "reject"))
            )
        return JSONResponse(
            {
                "error": f"no route {path!r}; use POST {root}/predict or GET {root}/health",
                "field": None,
            },
            status_code=404,
        )

    def _unauthorized(self, sub: str, message: str, is_v2: bool, status: int = 401) -> Any:
        """401/403 without a hint of the presented token: counted (``/health``'s ``refused``),
        not logged, so unauthenticated clients cannot write to the store."""
        from workbench.serving._v2 import error_response

        self._refused[status] = self._refused.get(status, 0) + 1
        request_id = uuid.uuid4().hex
        headers = {"workbench-request-id": request_id}
        if status == 401:
            headers["www-authenticate"] = "Bearer"
        if is_v2:
            return error_response(status, message, headers)
        return JSONCodec().respond(
            status, {"error": message, "field": "authorization", "request_id": request_id}, headers
        )

    async def _predict(self, request: Any, codec: Any = None) -> Any:
        t0 = time.perf_counter()
        codec = codec if codec is not None else JSONCodec()
        request_id = uuid.uuid4().hex
        routing = self._routing
        version: _Loaded | None = None
        size: int | None = None
        records: Any = None
        predictions: Any = None
        try:
            if routing is None:
                raise _HTTPError(
                    503,
                    "the router has no model versions yet; deploy one with Serving.deploy",
                    None,
                )
            _check_media(request.headers, getattr(codec, "protocol", "json"))
            raw = await self._read_body(request)
            size = len(raw)
            records, key = codec.decode(raw, request.headers, routing)  # JSON or v2, validated
            if self._config.get("ignore_sticky"):  # a canary runs: clients cannot pick
                key, sticky = None, None
            else:
                sticky = sticky_key(request.headers, key)
            chosen = route(routing.weights, sticky)
            version = routing.versions[chosen]
            probabilities: list[Any] | None = None
            try:
                if getattr(codec, "probabilities", False):
                    predictions, probabilities = await self._infer_proba(version, records)
                else:
                    predictions = await self._infer(version, records)
            except InvalidRequestError:
                raise
            except ModelVersionError as exc:  # an isolated version's model failed, or kept dying
                raise _HTTPError(500, str(exc), None) from exc
            except Exception as exc:  # the model itself failed: answer 500, keep the replica up
                log.exception("model version %s failed on request %s", chosen, request_id)
                raise _HTTPError(
                    500, f"model version {chosen} failed: {type(exc).__name__}: {exc}", None
                ) from exc
            # NaN/inf predictions become null with a warning: never a 500 from JSON encoding.
            predictions, warnings = sanitize_predictions(predictions)
            status, payload = (
                200,
                {"predictions": predictions, "model_version": chosen, "request_id": request_id},
            )
            if probabilities is not None:
                payload["classes"] = jsonable(list(version.bundle.classes))
                payload["probabilities"], more = sanitize_predictions(probabilities)
                warnings += more
            if warnings:
                payload["warnings"] = warnings
            error = None
        except InvalidRequestError as exc:
            status = 400 if exc.field == "body" else 422
            error = str(exc)
            payload = {"error": error, "field": exc.field, "request_id": request_id}
        except _HTTPError as exc:
            status, error = exc.status, exc.message
            payload = {"error": error, "field": exc.field, "request_id": request_id}
        if version is not None:
            payload["model_version"] = version.version
        latency_ms = (time.perf_counter() - t0) * 1000.0
        if status == 200 and self._shadow is not None and version is not None:
            self._shadow.maybe_mirror(  # schedules only: the answer below does not wait for it
                request_id=request_id,
                records=records,
                primary_version=version.version,
                primary_version_id=version.model_version_id,
                primary_prediction=predictions,
                primary_latency_ms=latency_ms,
            )
        rejected = 400 <= status < 500
        if rejected:
            # A bounded summary: the reason and the size, never the content, never a version
            # (a canary is judged on what its model answered, not on what clients sent).
            error = f"{(error or '')[:LOG_ERROR_CHARS]} (body {size if size is not None else '?'} bytes)"
        keep_features = (
            not rejected and isinstance(records, list) and (size or 0) <= LOG_FEATURES_MAX_BYTES
        )
        if not rejected and isinstance(records, list) and not keep_features:
            self._unlogged_features += 1
        self._log(
            {
                "request_id": request_id,
                "deployment": routing.deployment if routing else self._config.get("deployment", ""),
                "model_version_id": version.model_version_id if version and not rejected else None,
                "features": records if keep_features else None,
                "prediction": None if rejected else predictions,
                "latency_ms": latency_ms,
                "status_code": status,
                "error": error,
                "api_key": request.scope.get("workbench.api_key"),
            }
        )
        return codec.respond(status, payload)

    # ------------------------------------------------------------- batching
    def _set_batching(self, max_batch_size: int | None, wait_s: float) -> None:
        self._batch_size, self._batch_wait_s = max_batch_size, wait_s
        if max_batch_size is not None and self._batcher is not None:
            # Serve's setters act in place, from the next batch on.
            self._batcher.set_max_batch_size(max_batch_size)
            self._batcher.set_batch_wait_timeout_s(wait_s)

    async def _infer(self, version: _Loaded, records: list[Any]) -> list[Any]:
        """One request's predictions: directly, through the batch queue, or from the isolated version."""
        if version.remote is not None:
            return await call_version(
                version.remote, records, version=version.version, on_retry=self._count_retry
            )
        if self._batch_size is None:
            return [jsonable(p) for p in version.bundle.predict_records(records)]
        if self._batcher is None:
            # Made per router, inside the replica's event loop (the queue binds to the loop
            # that first uses it): a class-level @serve.batch would be shared by every router
            # of the process, e.g. several apps under Serve's local testing mode.
            self._batcher = serve.batch(
                max_batch_size=self._batch_size, batch_wait_timeout_s=self._batch_wait_s
            )(self._predict_batch)
        ok, value = await self._batcher((version, records))
        if not ok:
            raise value
        return list(value)

    async def _infer_proba(
        self, version: _Loaded, records: list[Any]
    ) -> tuple[list[Any], list[Any]]:
        """One request's predictions and class probabilities (rows aligned with the version's
        classes): directly or from the isolated version; never through the batch queue."""
        if version.remote is not None:
            preds, proba = await call_version(
                version.remote,
                records,
                version=version.version,
                on_retry=self._count_retry,
                method="predict_proba",
            )
        else:
            preds, proba = version.bundle.predict_proba_records(records)
        return [jsonable(p) for p in preds], list(proba)

    async def _predict_batch(
        self, items: list[tuple[_Loaded, list[Any]]]
    ) -> list[tuple[bool, Any]]:
        """Predict the requests Serve gathered, one model call per version; ``(ok, predictions or error)`` each.

        If a version's joint call fails (one request's records do not match the
        signature, say), its requests are predicted one by one, so each gets its
        own answer or its own error, exactly as without batching.
        """
        n = len(items)
        self._batch_sizes[n] = self._batch_sizes.get(n, 0) + 1
        out: list[tuple[bool, Any]] = [(False, None)] * n
        groups: dict[tuple[int, str], list[int]] = {}
        for i, (version, _) in enumerate(items):
            groups.setdefault((version.version, version.artifact), []).append(i)
        for idx in groups.values():
            bundle = items[idx[0]][0].bundle
            rows = [r for i in idx for r in items[i][1]]
            try:
                preds = [jsonable(p) for p in bundle.predict_records(rows)]
                if len(preds) != len(rows):
                    raise ValueError(f"the model answered {len(preds)} rows for {len(rows)}")
            except Exception:
                for i in idx:
                    try:
                        out[i] = (True, [jsonable(p) for p in bundle.predict_records(items[i][1])])
                    except Exception as exc:
                        out[i] = (False, exc)
                continue
            start = 0
            for i in idx:
                size = len(items[i][1])
                out[i] = (True, preds[start : start + size])
                start += size
        return out

    async def _read_body(self, request: Any) -> bytes:
        """The body, refused with 413 past ``max_body_bytes`` (a declared Content-Length before
        reading anything) and with 408 when it has not all arrived within ``body_timeout_s``."""
        limit = int(self._config.get("max_body_bytes") or DEFAULT_MAX_BODY_BYTES)
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                length = parse_int(declared.strip(), "Content-Length", minimum=0)
            except ValueError as exc:
                raise _HTTPError(400, f"{exc}; send the body's size in bytes", "body") from None
            if length > limit:
                raise _HTTPError(
                    413,
                    f"the body is {length} bytes; the limit is {limit} (max_body_bytes). Send fewer records per request.",
                    "body",
                )
        timeout = float(self._config.get("body_timeout_s") or BODY_TIMEOUT_S)
        chunks: list[bytes] = []
        size = 0

        async def read() -> None:
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _HTTPError(
                        413,
                        f"the body exceeds {limit} bytes (max_body_bytes); send fewer records per request.",
                        "body",
                    )
                chunks.append(chunk)

        try:
            await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise _HTTPError(
                408, f"the body did not arrive within {timeout:g} s; send it at once", "body"
            ) from None
        return b"".join(chunks)

    # ------------------------------------------------------------- logging
    def _log(self, row: dict[str, Any]) -> None:
        from workbench.lineage import utcnow

        row["at"] = utcnow()
        if len(self._buffer) == self._buffer.maxlen:
            self._dropped += 1  # the deque drops the oldest row; count it so /health shows the loss
        self._buffer.append(row)
        if len(self._buffer) >= FLUSH_ROWS and self._wake is not None:
            self._wake.set()

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._wake = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                self._send()
            except Exception:  # never let the loop die; /health shows lost rows
                log.exception("could not ship request logs")

    def _get_recorder(self) -> Any:
        if self._recorder is None:
            from workbench.serving._recorder import get_or_create_recorder, lookup_recorder

            db_path = self._config["db_path"]
            self._recorder = lookup_recorder(db_path)
            if self._recorder is None:
                # The deployer creates it on the store's node; this fallback keeps logs flowing
                # if it died (e.g. the notebook that owned it exited on an external cluster).
                log.warning("no request-log recorder for %s; starting one on this node", db_path)
                self._recorder = get_or_create_recorder(db_path, detached=False)
        return self._recorder

    def _send(self) -> asyncio.Future[Any] | None:
        if not self._buffer:
            return None
        batch = list(self._buffer)
        self._buffer.clear()
        try:
            ref = self._get_recorder().write.remote(batch)
        except Exception:
            self._lost += len(batch)
            self._recorder = None
            log.exception("could not reach the request-log recorder; %d rows lost", len(batch))
            return None
        task = asyncio.ensure_future(self._await_write(ref, len(batch)))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _await_write(self, ref: Any, n: int) -> None:
        try:
            await ref
            self._written += n
        except Exception:
            self._lost += n
            self._recorder = None  # look it up again next time
            log.exception("the request-log recorder failed to write %d rows", n)

    async def flush(self) -> dict[str, Any]:
        """Ship buffered request logs now and wait until the store has them; returns the log counters."""
        if self._shadow is not None:
            await self._shadow.drain()  # shadow answers scheduled so far join this flush
        self._send()
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        return self.health()["log"]

    async def __del__(self) -> None:
        # Serve awaits this on graceful shutdown (serve.delete / redeploy): ship what is buffered.
        try:
            await self.flush()
        except Exception:
            log.exception("could not flush request logs on shutdown")
