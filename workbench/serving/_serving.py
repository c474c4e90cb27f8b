"""Deploy model versions on Ray Serve, move traffic between them, roll back; every change recorded in the store."""

from __future__ import annotations

import inspect
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError, DeploymentError, InvalidRequestError, NotFoundError
from workbench.governance import requires
from workbench.runtime import jsonable
from workbench.serving._blue_green import BlueGreen
from workbench.serving._control import KEEP, TrafficUpdate, iso_utc
from workbench.serving._shadow import Shadow
from workbench.serving.traffic import main_version, normalize

if TYPE_CHECKING:
    from workbench.config import Settings
    from workbench.datasets import DatasetVersion
    from workbench.lineage import ArtifactStore, Store
    from workbench.runtime import RayConnection
    from workbench.serving._progress import DeployProgress

__all__ = ["Serving", "DEFAULT_PORT"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class Serving:
    """Deployments of registered model versions behind Ray Serve, with weighted traffic.

    Each deployment is one Serve application whose ingress router holds the
    model versions in its own replica and splits requests by weight. Weight
    changes are applied in place (``reconfigure``), never by restarting
    replicas. Every deployment and traffic change is a store record with an
    actor and a reason; every request is logged to the store through one
    recorder actor.

    It is the :class:`~workbench.serving.TrafficControl` the rollout
    strategies run over (:class:`~workbench.serving.CanaryRollout`,
    :class:`~workbench.serving.BlueGreen`, :class:`~workbench.serving.Shadow`);
    :meth:`blue_green`, :meth:`stage`, :meth:`shadow` and the like build them.

    Parameters
    ----------
    store : Store
        Lineage store (deployments, traffic changes, request logs).
    artifacts : ArtifactStore
        Where model bundles live; the router loads them by hash.
    settings : Settings
        Paths handed to the router replicas (``db_path``, ``artifacts_dir``).
    http_host : str
        Interface Serve's HTTP proxy listens on (``127.0.0.1`` keeps it local).
    http_port : int, optional
        Port of Serve's HTTP proxy; default ``$WORKBENCH_SERVE_PORT`` or 8000.
        Serve fixes host and port when it first starts in a cluster; if it is
        already running elsewhere, its port is used and a warning is logged.
    token : str, optional
        Bearer token clients must send (``Authorization: Bearer <token>``);
        default ``$WORKBENCH_SERVE_TOKEN``. Required when ``http_host`` is
        beyond loopback; when given, enforced on loopback too. Replicas get
        only its SHA-256; :meth:`predict` sends it.
    connect : callable, optional
        Returns the Ray connection to deploy on (``Stages.connect``, which joins the
        workbench's ``address``); default :func:`workbench.runtime.connect` with no address.

    Examples
    --------
    >>> serving = Serving(store, artifacts, settings)                 # doctest: +SKIP
    >>> serving.deploy("cancer", "champion")["url"]                     # doctest: +SKIP
    'http://127.0.0.1:8000/cancer'
    >>> serving.set_traffic("cancer", {1: 0.9, 2: 0.1}, reason="try v2")  # doctest: +SKIP
    {1: 0.9, 2: 0.1}
    """

    def __init__(
        self,
        store: Store,
        artifacts: ArtifactStore,
        settings: Settings,
        *,
        http_host: str = "127.0.0.1",
        http_port: int | None = None,
        token: str | None = None,
        connect: Callable[[], RayConnection] | None = None,
    ):
        from workbench.serving._auth import resolve_token

        self._token = resolve_token(http_host, token)  # raises beyond loopback without one
        self.store = store
        self.artifacts = artifacts
        self.settings = settings
        self.http_host = http_host
        if http_port is None:
            raw = os.environ.get("WORKBENCH_SERVE_PORT", str(DEFAULT_PORT))
            try:
                http_port = int(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"WORKBENCH_SERVE_PORT must be a port number, got {raw!r}."
                ) from exc
        if not 0 < int(http_port) < 65536:
            raise ConfigError(f"http_port must be in 1..65535, got {http_port}.")
        self.http_port = int(http_port)
        self._http_client: Any = None
        self._connect = connect

    # ------------------------------------------------------------ Ray, Serve
    def _ensure_serve(self) -> Any:
        """Connect to Ray and start Serve with our HTTP options unless it already runs."""
        from ray import serve

        from workbench.runtime import connect, release_parked_trials

        conn = self._connect() if self._connect is not None else connect()
        release_parked_trials()  # replicas need the CPUs parked trial actors hold
        running = _running_http_options()
        if running is None:
            serve.start(http_options={"host": self.http_host, "port": self.http_port})
            running = _running_http_options()
        if running is not None:
            host, port = running
            if port != self.http_port or (host != self.http_host):
                log.warning(
                    "Ray Serve already runs in this cluster on %s:%s; using it instead of %s:%s "
                    "(HTTP options are fixed once Serve starts; call serve.shutdown() to change them).",
                    host,
                    port,
                    self.http_host,
                    self.http_port,
                )
                self.http_host, self.http_port = host, port
        return conn

    def _ensure_recorder(self, conn: Any) -> None:
        from workbench.serving._recorder import get_or_create_recorder

        # On an external cluster the recorder must outlive this notebook; a local cluster
        # started by workbench ends with this process anyway.
        get_or_create_recorder(self.settings.db_path, detached=not conn.local)

    def _handle(self, name: str) -> Any:
        from ray import serve

        self._ensure_serve()
        try:
            return serve.get_app_handle(name)
        except Exception as exc:
            raise DeploymentError(
                f"deployment {name!r} is not running in Ray Serve ({exc}); deploy it with serving.deploy(...)."
            ) from exc

    def _version_spec(self, model: str, version: int | str) -> dict[str, Any]:
        """Look the version up and verify its artifact before anything touches Serve."""
        mv = self.store.models.get_version(model, version)
        self.artifacts.get_bytes(mv["artifact_hash"])  # raises NotFoundError / ArtifactCorruptError
        return {
            "artifact": mv["artifact_hash"],
            "model_version_id": mv["id"],
            "version": mv["version"],
        }

    def router_config(
        self,
        name: str,
        weights: dict[int, float],
        *,
        scaling: dict[str, Any],
        non_finite: str = "reject",
        max_body_bytes: int | None = None,
        specs: dict[int, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The router ``user_config`` of deployment ``name`` serving ``weights`` (version → share).

        The one place that says what a router replica is told: :meth:`deploy` runs it, and
        :func:`workbench.serving._export.export_config` writes it into a Serve config file.
        ``scaling`` is :func:`~workbench.serving._scaling.scaling_options` output; ``specs``
        (version → :meth:`_version_spec`) skips looking the versions up again.
        """
        from workbench.serving._auth import token_digest
        from workbench.serving._validation import validation_options

        if specs is None:
            model = self.store.deployments.get(name)["model"]
            specs = {v: self._version_spec(model, v) for v in weights}
        return {
            "deployment": name,
            "db_path": str(self.settings.db_path),
            # the storage root (a path, or a URI every node reaches): replicas read it themselves
            "artifacts_dir": self.settings.artifacts_root,
            "versions": {
                str(spec["version"]): {
                    "artifact": spec["artifact"],
                    "model_version_id": spec["model_version_id"],
                    "weight": weights[v],
                }
                for v, spec in specs.items()
            },
            **scaling,
            **validation_options({"non_finite": non_finite, "max_body_bytes": max_body_bytes}),
            "token_sha256": token_digest(self._token) if self._token else None,
            "api_keys": self._key_digests(name),
        }

    # ------------------------------------------------------------------ API keys
    def _key_digests(self, name: str) -> list[dict[str, Any]]:
        """What a router replica of ``name`` is told about API keys: names, digests and scopes."""
        return [
            {"name": k["name"], "sha256": k["key_hash"], "scopes": k["scopes"]}
            for k in self.store.api_keys.active_digests(name)
        ]

    @requires("api_key")
    def create_api_key(
        self,
        name: str,
        *,
        scopes: tuple[str, ...] | list[str] = ("predict",),
        deployment: str | None = None,
        actor: str | None = None,
    ) -> str:
        """Create a named API key and return its secret (shown this once; only its SHA-256 is kept).

        Clients send it as ``Authorization: Bearer <key>``; each request-log row then names the
        key (``request_logs.api_key``). Scopes: ``predict`` (POST /predict, v2 infer) and
        ``health`` (GET /health, v2 metadata). ``deployment`` binds the key to one deployment
        (default: every deployment). Running deployments learn the key at once (a reconfigure,
        no restart); a deployment with keys and no token refuses requests without a key.

        Examples
        --------
        >>> key = serving.create_api_key("ci", scopes=("predict",))         # doctest: +SKIP
        >>> httpx.post(url, json=body, headers={"authorization": f"Bearer {key}"})  # doctest: +SKIP
        """
        import secrets

        from workbench._identity import default_actor
        from workbench.serving._auth import SCOPES, token_digest

        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"API key name {name!r} must be 1-63 letters, digits, '-', '_' or '.'."
            )
        scopes = [scopes] if isinstance(scopes, str) else list(scopes)
        if not scopes or not set(scopes) <= set(SCOPES):
            raise ConfigError(
                f"API key scopes must be a non-empty subset of {list(SCOPES)}; got {scopes!r}."
            )
        if deployment is not None:
            self.store.deployments.get(deployment)  # NotFoundError names what to do
        secret = "wbk_" + secrets.token_urlsafe(32)
        self.store.api_keys.create(
            name, token_digest(secret), scopes, deployment, actor or default_actor()
        )
        self._push_keys(deployment)
        return secret

    def api_keys(self) -> list[dict[str, Any]]:
        """Every API key: ``name``, ``scopes``, ``deployment``, ``created_by``, ``created_at``,
        ``revoked_at``; never the secret or its digest."""
        return self.store.api_keys.list()

    @requires("api_key")
    def revoke_api_key(self, name: str, *, actor: str | None = None) -> dict[str, Any]:
        """Revoke a key: running deployments stop accepting it at once (a reconfigure, about
        0.3 s; a deployment that cannot be reached learns it on its next reconfigure)."""
        from workbench._identity import default_actor

        row = self.store.api_keys.revoke(name, by=actor or default_actor())
        self._push_keys(row["deployment"])
        return row

    def _push_keys(self, deployment: str | None) -> None:
        """Give running deployments (one, or all) their current key digests, in place."""
        names = [deployment] if deployment else [d["name"] for d in self.store.deployments.list()]
        for dep_name in names:
            dep = self.store.deployments.get(dep_name)
            if dep["status"] != "running":
                continue
            try:
                current = _call_handle(lambda n=dep_name: self._handle(n).config.remote(), 30)
            except Exception as exc:  # not running in Serve: its next deploy reads the store
                log.warning("could not give %s its API keys now: %s", dep_name, exc)
                continue
            if not current:
                continue
            config = {**current, "api_keys": self._key_digests(dep_name)}
            self._run(dep_name, dep["route_prefix"], config, timeout_s=60)

    def _run(
        self, name: str, route_prefix: str, config: dict[str, Any], *, timeout_s: float
    ) -> dict[str, Any]:
        """Deploy ``config`` as app ``name`` and wait until its router serves exactly these weights.

        Each config carries a fresh ``revision``; the wait ends when the router
        reports it, so a change that keeps the weights (a shadow, a warm-up) is
        also waited for. Returns the router's health at that moment.
        """
        import uuid

        from ray import serve

        from workbench.serving._router import build_app, validate_config

        config = {**config, "revision": uuid.uuid4().hex}
        app = build_app(config)
        want = {k: v["weight"] for k, v in validate_config(config)["versions"].items()}
        try:
            serve.run_many(
                [serve.RunTarget(app, name=name, route_prefix=route_prefix)],
                wait_for_applications_running=False,
            )
        except Exception as exc:
            raise DeploymentError(f"Ray Serve refused deployment {name!r}: {exc}") from exc
        deadline = time.monotonic() + timeout_s
        last = "unknown"
        while time.monotonic() < deadline:
            app_status = serve.status().applications.get(name)
            if app_status is not None:
                state = str(getattr(app_status.status, "value", app_status.status))
                last = f"{state}: {app_status.message}" if app_status.message else state
                if state == "DEPLOY_FAILED":
                    raise DeploymentError(
                        f"deployment {name!r} failed in Ray Serve: {app_status.message}. "
                        "Check the replica logs under /tmp/ray/session_latest/logs/serve/."
                    )
                if state == "RUNNING":
                    try:
                        health = _call_handle(
                            lambda: serve.get_app_handle(name).health.remote(), 10
                        )
                    except Exception as exc:  # replica still starting
                        last = f"RUNNING, router not answering yet ({exc})"
                    else:
                        got = {k: v["weight"] for k, v in health["versions"].items()}
                        if (
                            got.keys() == want.keys()
                            and all(abs(got[k] - want[k]) < 1e-9 for k in want)
                            and health.get("revision") == config["revision"]
                        ):
                            replicas = _router_replicas(app_status)
                            if _all_replicas_on(name, config["revision"], health, replicas):
                                return health
                            last = f"RUNNING, not every one of {replicas} router replicas reconfigured yet"
                        else:
                            last = f"RUNNING, router still on weights {got}"
            # Serve's controller applies a reconfigure in ~0.2-0.4 s here: polling every 50 ms
            # returns within 50 ms of it (at 0.2 s, set_traffic took 0.48 s where 0.28 s would do).
            time.sleep(0.05)
        raise DeploymentError(
            f"deployment {name!r} was not serving the requested versions after {timeout_s:.0f}s (last: {last}). "
            "The cluster may lack CPUs for the replica (see `ray status`); check serving.status(name)."
        )

    # ------------------------------------------------------------------- API
    @requires("deploy")
    def deploy(
        self,
        model: str,
        version: int | str = "champion",
        *,
        name: str | None = None,
        route_prefix: str | None = None,
        actor: str | None = None,
        reason: str = "initial deployment",
        num_replicas: int | None = None,
        num_cpus: float = 0.5,
        num_gpus: float = 0.0,
        autoscaling_config: dict[str, Any] | None = None,
        max_ongoing_requests: int = 16,
        max_batch_size: int | None = None,
        batch_wait_timeout_s: float = 0.01,
        non_finite: str = "reject",
        max_body_bytes: int | None = None,
        isolate: bool = False,
        router_replicas: int | None = None,
        timeout_s: float = 180.0,
    ) -> Deployed:
        """Serve one model version (100% of traffic) over HTTP and record the deployment.

        Parameters
        ----------
        model : str
            Registered model name.
        version : int or str
            Version number or alias (default ``"champion"``).
        name : str, optional
            Deployment (and Serve application) name; default ``model``.
        route_prefix : str, optional
            HTTP path prefix; default ``/<name>``.
        actor, reason : str
            Recorded with the deployment's first traffic change.
        num_replicas : int, optional
            Router replicas (default 1); leave it out when giving ``autoscaling_config``.
        autoscaling_config : dict, optional
            Ray Serve autoscaling, e.g. ``{"min_replicas": 1, "max_replicas": 4,
            "target_ongoing_requests": 4}`` (Serve's keys, checked by Serve).
        num_cpus, num_gpus : float
            Resources per replica (``ray_actor_options``); a replica waits
            until a node offers them.
        max_ongoing_requests : int
            Requests one replica holds at once; more wait in Serve's proxy.
        max_batch_size, batch_wait_timeout_s : int, float
            With ``max_batch_size`` above 1, a replica's concurrent requests are
            gathered (Serve's ``@serve.batch``, waiting at most
            ``batch_wait_timeout_s`` for a batch to fill) and each version
            predicts them in one call; ``health(name)["batching"]`` counts the
            batch sizes seen. Default: no batching.
        non_finite : str
            NaN/inf in a request: ``"reject"`` (422 naming row and feature) or
            ``"impute"`` (treated as missing, filled by the model's imputer).
        max_body_bytes : int, optional
            Larger request bodies get 413; default 1 MiB.
        isolate : bool
            Run each model version as its own Serve deployment (``num_replicas``,
            ``autoscaling_config``, ``num_cpus``, ``num_gpus`` and
            ``max_ongoing_requests`` then apply to each version) behind a light
            router of ``router_replicas`` replicas (default 1). The router retries
            a request whose version replica died on a live one, so a crashed
            replica costs no client request; each request makes a second hop
            (see docs/serving.md for the measured cost). No batching with it.
        router_replicas : int, optional
            Router replicas with ``isolate`` (default 1).
        timeout_s : float
            How long to wait for the app to serve before raising.

        Blocks until the app serves; :meth:`start_deploy` returns at once and
        waits for Serve in a background thread.

        Returns
        -------
        dict
            ``name``, ``url``, ``route_prefix``, ``model``, ``weights``,
            ``status`` (``running``); in a notebook, the deployment widget.

        Raises
        ------
        NotFoundError
            The model or version does not exist (nothing was deployed).
        ConfigError
            A bad option (replicas, resources, batching...), before Serve is touched.
        DeploymentError
            Ray Serve could not start the app.

        Examples
        --------
        >>> serving.deploy("cancer", 1)["url"]    # doctest: +SKIP
        'http://127.0.0.1:8000/cancer'
        """
        return self._prepare_deploy(
            model,
            version,
            name=name,
            route_prefix=route_prefix,
            actor=actor,
            reason=reason,
            num_replicas=num_replicas,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            autoscaling_config=autoscaling_config,
            max_ongoing_requests=max_ongoing_requests,
            max_batch_size=max_batch_size,
            batch_wait_timeout_s=batch_wait_timeout_s,
            non_finite=non_finite,
            max_body_bytes=max_body_bytes,
            isolate=isolate,
            router_replicas=router_replicas,
            timeout_s=timeout_s,
        )()

    @requires("deploy")
    def start_deploy(
        self, model: str, version: int | str = "champion", **options: Any
    ) -> DeployProgress:
        """Start :meth:`deploy` and return at once; a background thread of this process waits for Serve.

        Takes exactly the arguments of :meth:`deploy`. Everything a blocking
        deploy checks is checked before this returns (the version exists and
        its artifact verifies, the options are valid) and the deployment is
        recorded as ``deploying``; the thread then waits until the router
        serves (``timeout_s``), marks it ``running`` (or ``failed``) and records
        the first traffic change.

        Returns
        -------
        DeployProgress
            A ``concurrent.futures.Future`` of what :meth:`deploy` returns:
            ``status()`` (phase, replicas by state), ``wait(timeout_s)``, ``url``;
            in a notebook, the deployment widget.

        Examples
        --------
        >>> progress = serving.start_deploy("cancer", 1, num_replicas=2)   # doctest: +SKIP
        >>> progress.status()["phase"]       # doctest: +SKIP
        'deploying'
        >>> progress.wait()["status"]        # doctest: +SKIP
        'running'
        """
        from workbench.serving._progress import DeployProgress

        bound = inspect.signature(self.deploy).bind(model, version, **options)
        bound.apply_defaults()
        finish = self._prepare_deploy(**bound.arguments)
        return DeployProgress(self, bound.arguments["name"] or model, finish)

    def _prepare_deploy(
        self,
        model: str,
        version: int | str,
        *,
        name: str | None,
        route_prefix: str | None,
        actor: str | None,
        reason: str,
        num_replicas: int | None,
        num_cpus: float,
        num_gpus: float,
        autoscaling_config: dict[str, Any] | None,
        max_ongoing_requests: int,
        max_batch_size: int | None,
        batch_wait_timeout_s: float,
        non_finite: str,
        max_body_bytes: int | None,
        isolate: bool,
        router_replicas: int | None,
        timeout_s: float,
    ) -> Callable[[], Deployed]:
        """Check the request, record the deployment as ``deploying``; the returned call brings it up."""
        name = name or model
        if not _NAME.match(name):
            raise ConfigError(
                f"deployment name {name!r} must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit."
            )
        route_prefix = route_prefix or f"/{name}"
        if not route_prefix.startswith("/") or route_prefix == "/" or route_prefix.endswith("/"):
            raise ConfigError(
                f"route_prefix must look like '/{name}' (leading '/', no trailing '/'); got {route_prefix!r}."
            )
        try:
            existing = self.store.deployments.get(name)
        except NotFoundError:
            existing = None
        if existing is not None and existing["model"] != model and existing["status"] != "deleted":
            # traffic history, canaries and request logs are keyed by the deployment: mixing two
            # models' versions under one name would make them lie
            raise DeploymentError(
                f"deployment {name!r} serves model {existing['model']!r}, not {model!r}; "
                f"undeploy it first (serving.undeploy({name!r})) or pick another name "
                f"(serving.deploy({model!r}, name='{model}-2'))."
            )
        from workbench.serving._scaling import scaling_options

        scaling = scaling_options(
            {
                "num_replicas": num_replicas,
                "autoscaling_config": autoscaling_config,
                "num_cpus": num_cpus,
                "num_gpus": num_gpus,
                "max_ongoing_requests": max_ongoing_requests,
                "max_batch_size": max_batch_size,
                "batch_wait_timeout_s": batch_wait_timeout_s,
                "isolate": isolate,
                "router_replicas": router_replicas,
            }
        )
        spec = self._version_spec(model, version)
        from workbench.runtime import connect

        # Ray first: the replicas' resources are checked (and asked of an autoscaler) before Serve
        # starts, so what no node type has is refused at once
        (self._connect or connect)()
        asked_autoscaler = _warn_if_short_of(scaling)
        conn = self._ensure_serve()
        from workbench.serving._auth import resolve_token

        # Serve may already listen elsewhere (its host wins): check the token for that host.
        resolve_token(self.http_host, self._token)
        self._ensure_recorder(conn)
        config = self.router_config(
            name,
            {spec["version"]: 1.0},
            scaling=scaling,
            non_finite=non_finite,
            max_body_bytes=max_body_bytes,
            specs={spec["version"]: spec},
        )
        from workbench.lineage import utcnow

        requested_at = utcnow()
        self.store.deployments.add(name, model=model, route_prefix=route_prefix, status="deploying")
        config["warmup"] = self.warmup_records(name, [spec["version"]])
        weights = {spec["version"]: 1.0}
        info = {
            "name": name,
            "model": model,
            "route_prefix": route_prefix,
            "url": self.url(name),
            "weights": weights,
        }

        def finish() -> Deployed:
            try:
                health = self._run(name, route_prefix, config, timeout_s=timeout_s)
            except BaseException:
                self.store.deployments.set_status(name, "failed")
                raise
            finally:
                if asked_autoscaler:  # the replicas hold their node now (or failed): let idle go
                    from workbench.runtime._autoscaler import release_autoscaler_request

                    release_autoscaler_request()
            self.store.deployments.set_status(name, "running")
            warmup = health["versions"][str(spec["version"])].get("warmup")
            self.store.deployments.record_traffic(
                name,
                weights,
                actor=actor,
                reason=reason,
                kind="deploy",
                detail={"requested_at": requested_at, "warmup": {str(spec["version"]): warmup}},
            )
            return Deployed({**info, "status": "running"}, serving=self)

        return finish

    @requires("traffic")
    def set_traffic(
        self,
        name: str,
        weights: dict[int, float],
        *,
        actor: str | None = None,
        reason: str = "",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Split the deployment's traffic between versions, in place, and record the change.

        Versions not in ``weights`` are unloaded; a version with weight 0 stays
        loaded without traffic (instant rollback). Unknown versions raise
        before Serve is touched.

        Parameters
        ----------
        name : str
            Deployment name.
        weights : dict of int to float
            Relative weights per version number, e.g. ``{1: 0.9, 2: 0.1}``.
        actor, reason : str
            Who changed traffic and why; stored with the change.

        Returns
        -------
        dict of int to float
            The normalised weights now served.

        Examples
        --------
        >>> serving.set_traffic("cancer", {1: 9, 2: 1}, reason="canary v2")   # doctest: +SKIP
        {1: 0.9, 2: 0.1}
        """
        return self.apply_traffic(
            name, weights, actor=actor, reason=reason, kind="set", timeout_s=timeout_s
        ).weights

    # ------------------------------------------------------ traffic control
    @requires("traffic")
    def apply_traffic(
        self,
        name: str,
        weights: dict[int, float],
        *,
        actor: str | None,
        reason: str,
        kind: str,
        detail: dict[str, Any] | None = None,
        shadow: Any = KEEP,
        warmup_records: list[dict[str, Any]] | None = None,
        timeout_s: float = 120.0,
    ) -> TrafficUpdate:
        """Apply weights (and a shadow, if given) in one ``reconfigure``, then record the change.

        The one way every strategy changes traffic (the
        :class:`~workbench.serving.TrafficControl` operation). A running shadow
        stays on (its version loaded at weight 0) unless ``shadow`` is given
        (``None`` turns it off). Versions new to the router are warmed up on
        ``warmup_records`` (default: :meth:`warmup_records`). Unknown versions
        raise before the router changes.

        Parameters
        ----------
        kind : str
            What the change is, as recorded: ``set``, ``canary``, ``rollback``,
            ``blue_green.stage``, ``shadow``...
        detail : dict, optional
            Evidence recorded with the change (next to ``requested_at``).

        Returns
        -------
        TrafficUpdate
            ``weights`` served, ``health`` of the router right after, ``record``
            (the stored traffic change row), ``warmed`` (warm-up per new version).
        """
        from workbench.lineage import utcnow

        requested_at = utcnow()
        norm = normalize(weights)
        dep = self.store.deployments.get(name)
        current = _call_handle(lambda: self._handle(name).config.remote(), 30)
        if not current:
            raise DeploymentError(
                f"deployment {name!r} has no router config; deploy it again with serving.deploy(...)."
            )
        shadow_spec = current.get("shadow") if shadow is KEEP else shadow
        if shadow_spec is not None and int(shadow_spec["version"]) not in norm:
            norm = {**norm, int(shadow_spec["version"]): 0.0}  # the shadow stays loaded
            norm = {v: norm[v] for v in sorted(norm)}
        specs = {v: self._version_spec(dep["model"], v) for v in norm}
        config = dict(current)
        config["versions"] = {
            str(v): {
                "artifact": s["artifact"],
                "model_version_id": s["model_version_id"],
                "weight": norm[v],
            }
            for v, s in specs.items()
        }
        config.pop("shadow", None)
        if shadow_spec is not None:
            config["shadow"] = dict(shadow_spec)
        # while a canary runs the router picks the version by weight alone: a client's sticky key
        # could otherwise steer itself onto (or away from) the challenger
        config["ignore_sticky"] = kind == "canary"
        config["warmup"] = (
            warmup_records if warmup_records is not None else self.warmup_records(name, list(specs))
        )
        health = self._run(name, dep["route_prefix"], config, timeout_s=timeout_s)
        warmed = {
            int(v): h["warmup"]
            for v, h in health["versions"].items()
            if (h.get("warmup") or {}).get("at", "") >= requested_at
        }
        record = {"requested_at": requested_at, **(detail or {})}
        if warmed:
            record["warmup"] = {str(v): w for v, w in warmed.items()}
        if shadow_spec is not None:
            record["shadow"] = dict(shadow_spec)
        change_id = self.store.deployments.record_traffic(
            name, norm, actor=actor, reason=reason, kind=kind, detail=record
        )
        change = next(r for r in self.store.deployments.list_traffic(name) if r["id"] == change_id)
        return TrafficUpdate(weights=norm, health=health, record=change, warmed=warmed)

    def warmup_records(self, name: str, versions: list[int]) -> list[dict[str, Any]]:
        """A few real records to warm ``versions`` on: recent answered requests, else training rows.

        The deployment's latest answered requests if it has any, else the first
        rows of the training data of the first of ``versions`` that has some
        on record (without the target); ``[]`` when there are neither.
        """
        from workbench.serving._router_strategies import MAX_WARMUP_RECORDS

        want = min(8, MAX_WARMUP_RECORDS)
        records = self.store.deployments.list_recent_features(name, limit=want)
        if records:
            return jsonable(records, default=str)
        # No traffic yet: rows of the data the version was trained on.
        model = self.store.deployments.get(name)["model"]
        for version in versions:
            mv = self.store.models.get_version(model, version)
            dv_id = mv.get("dataset_version_id")
            if dv_id is None:
                continue
            try:
                import io

                import polars as pl

                dv = self.store.datasets.get_version_by_id(dv_id)
                frame = pl.read_parquet(io.BytesIO(self.artifacts.get_bytes(dv["artifact_hash"])))
                features = list((mv.get("signature") or {}).get("features") or {})
                keep = [c for c in frame.columns if c in features] if features else frame.columns
                keep = [c for c in keep if c != dv.get("target")]
                return jsonable(frame.select(keep).head(want).to_dicts(), default=str)
            except Exception as exc:  # warm-up is best effort; the switch checks its result
                log.warning("no warm-up rows from dataset version %s: %s", dv_id, exc)
        return []

    def traffic(self, name: str) -> dict[int, float]:
        """The weights last recorded for ``name``."""
        history = self.store.deployments.list_traffic(name)
        if not history:
            raise NotFoundError(
                f"deployment {name!r} has no traffic record yet; deploy it with serving.deploy(...)."
            )
        return {int(k): float(v) for k, v in history[-1]["weights"].items()}

    @requires("rollback")
    def rollback(
        self,
        name: str,
        *,
        to_version: int | None = None,
        actor: str | None = None,
        reason: str = "rollback",
    ) -> dict[int, float]:
        """Send 100% of traffic back to the last known good version, in one reconfigure.

        The target is ``to_version`` if given; otherwise :meth:`last_known_good`:
        the version that most recently held 100% of traffic (unless it holds
        100% now), skipping versions that a later rollback moved away from;
        failing that, the model's ``champion`` alias. Versions loaded now
        stay loaded at weight 0, so rolling forward again is as instant.

        The change is recorded with ``kind="rollback"`` and
        ``detail = {"from": ..., "to": ..., "rule": ...}``, with who and why.

        Returns
        -------
        dict of int to float
            The weights now served.

        Examples
        --------
        >>> serving.rollback("cancer", reason="v2 p99 too high")   # doctest: +SKIP
        {1: 1.0, 2: 0.0}
        """
        current = self.traffic(name)
        if to_version is not None:
            target, rule = int(to_version), "to_version"
        else:
            target, rule = self._last_known_good(name)
        if target is None:
            raise ConfigError(
                f"deployment {name!r} has no earlier version that held all traffic, and no champion that "
                f"does not already (it serves {_fmt(current)}); pass to_version=..."
            )
        losing = {v: w for v, w in current.items() if v != target and w > 0}
        return self._rollback_to(
            name,
            target,
            actor=actor,
            reason=f"{reason}: 100% to version {target} (was {_fmt(current)})",
            detail={
                "from": main_version(losing) if losing else None,
                "left": sorted(losing),
                "to": target,
                "rule": rule,
            },
        ).weights

    def _rollback_to(
        self,
        name: str,
        target: int,
        *,
        actor: str | None,
        reason: str,
        detail: dict[str, Any],
        timeout_s: float = 120.0,
    ) -> TrafficUpdate:
        current = self.traffic(name)
        weights = {v: 0.0 for v in current} | {int(target): 1.0}
        return self.apply_traffic(
            name,
            weights,
            actor=actor,
            reason=reason,
            kind="rollback",
            detail=detail,
            timeout_s=timeout_s,
        )

    def last_known_good(self, name: str) -> int | None:
        """The version :meth:`rollback` would go back to now, or ``None`` when there is none.

        Walking the traffic history from the newest change back: the first
        version that held 100% of traffic, does not hold 100% now, and was not
        rolled back from afterwards; else the ``champion`` alias if it does not
        hold 100% now and was not rolled back from.

        Examples
        --------
        >>> serving.last_known_good("cancer")    # doctest: +SKIP
        1
        """
        return self._last_known_good(name)[0]

    def _last_known_good(self, name: str) -> tuple[int | None, str]:
        dep = self.store.deployments.get(name)
        history = self.store.deployments.list_traffic(name)
        if not history:
            raise NotFoundError(
                f"deployment {name!r} has no traffic record yet; deploy it with serving.deploy(...)."
            )
        # The version holding all traffic now, if one does: rolling back to it would change nothing.
        now_full = _full({int(k): float(v) for k, v in history[-1]["weights"].items()})
        bad: set[int] = set()
        # Newest first, so a rollback taints every older state of the version it left.
        for row in reversed(history):
            if row.get("kind") == "rollback" and (row.get("detail") or {}).get("from") is not None:
                bad.add(int(row["detail"]["from"]))
            full = _full({int(k): float(v) for k, v in row["weights"].items()})
            if full is not None and full != now_full and full not in bad:
                return full, "last version that held 100% of traffic"
        try:
            champion = int(self.store.models.get_version(dep["model"], "champion")["version"])
        except NotFoundError:
            return None, "none"
        if champion != now_full and champion not in bad:
            return champion, "champion alias"
        return None, "none"

    # ---------------------------------------------------------- strategies
    @requires("deploy")
    def blue_green(
        self,
        name: str,
        green_version: int,
        *,
        warmup_records: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        reason: str = "blue-green",
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        """Blue-green release: stage green at 0% warmed, then switch 100% to it atomically.

        Blue (the version serving most now) stays loaded at 0%, so
        ``serving.rollback(name)`` is one in-place reconfigure back to it;
        ``serving.retire(name, blue)`` unloads it once green has proved itself.
        See :class:`~workbench.serving.BlueGreen`.

        Returns
        -------
        dict
            ``blue``, ``green``, ``weights`` now served, ``warmup`` of green.

        Examples
        --------
        >>> serving.blue_green("cancer", 2)["weights"]          # doctest: +SKIP
        {1: 0.0, 2: 1.0}
        >>> serving.rollback("cancer", reason="green misbehaves")  # doctest: +SKIP
        {1: 1.0, 2: 0.0}
        >>> serving.retire("cancer", 1)                          # doctest: +SKIP
        {2: 1.0}
        """
        return BlueGreen(self, name).release(
            green_version,
            warmup_records=warmup_records,
            actor=actor,
            reason=reason,
            timeout_s=timeout_s,
        )

    @requires("deploy")
    def stage(
        self,
        name: str,
        version: int,
        *,
        warmup_records: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        reason: str = "stage",
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        """Load ``version`` next to the live ones at weight 0 and warm it on real records.

        See :meth:`BlueGreen.stage <workbench.serving.BlueGreen.stage>`: the
        warm-up records default to the latest answered requests, else rows of
        the version's training data; a failed warm-up unloads the version
        again (``kind="blue_green.abort"``) and raises ``DeploymentError``.

        Examples
        --------
        >>> serving.stage("cancer", 2)["warmup"]["ok"]     # doctest: +SKIP
        True
        """
        return BlueGreen(self, name).stage(
            version, warmup_records=warmup_records, actor=actor, reason=reason, timeout_s=timeout_s
        )

    @requires("traffic")
    def switch(
        self,
        name: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "switch",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Send 100% of traffic to a loaded version in one reconfigure; the others stay loaded at 0.

        Examples
        --------
        >>> serving.switch("cancer", 2)            # doctest: +SKIP
        {1: 0.0, 2: 1.0}
        """
        return BlueGreen(self, name).switch(
            version, actor=actor, reason=reason, timeout_s=timeout_s
        )

    @requires("deploy")
    def retire(
        self,
        name: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "retire",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Unload a version that takes no traffic (blue after a blue-green release, a finished shadow).

        Examples
        --------
        >>> serving.retire("cancer", 1)            # doctest: +SKIP
        {2: 1.0}
        """
        return BlueGreen(self, name).retire(
            version, actor=actor, reason=reason, timeout_s=timeout_s
        )

    @requires("deploy")
    def shadow(
        self,
        name: str,
        version: int,
        *,
        share: float = 1.0,
        warmup_records: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        reason: str = "shadow",
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        """Mirror a share of answered requests to ``version``; its answers are logged, never returned.

        See :class:`~workbench.serving.Shadow`. Compare with
        :meth:`shadow_report`; stop with :meth:`stop_shadow`.

        Parameters
        ----------
        share : float
            Share of answered requests to mirror, in ``(0, 1]``.

        Returns
        -------
        dict
            ``weights`` served (the shadow at 0) and ``shadow``: ``{"version", "share"}``.

        Examples
        --------
        >>> serving.shadow("cancer", 3, share=0.5)["shadow"]    # doctest: +SKIP
        {'version': 3, 'share': 0.5}
        """
        return Shadow(self, name).start(
            version,
            share=share,
            warmup_records=warmup_records,
            actor=actor,
            reason=reason,
            timeout_s=timeout_s,
        )

    @requires("deploy")
    def stop_shadow(
        self,
        name: str,
        *,
        keep_loaded: bool = False,
        actor: str | None = None,
        reason: str = "stop shadow",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Stop mirroring; the shadow version is unloaded unless ``keep_loaded`` (or it takes traffic)."""
        return Shadow(self, name).stop(
            keep_loaded=keep_loaded, actor=actor, reason=reason, timeout_s=timeout_s
        )

    def shadow_report(
        self, name: str, *, version: int | None = None, since: str | datetime | None = None
    ) -> dict[str, Any]:
        """Compare a shadow with the versions that answered: agreement, errors, latency.

        See :meth:`Shadow.report <workbench.serving.Shadow.report>` for the keys.

        Examples
        --------
        >>> serving.shadow_report("cancer")["agreement"]    # doctest: +SKIP
        0.97
        """
        return Shadow(self, name).report(version=version, since=since)

    # ------------------------------------------------------------- lineage
    def which_version(self, name: str, request_id: str) -> dict[str, Any]:
        """Which version answered request ``request_id``, when, and under which traffic state.

        Returns
        -------
        dict
            ``request_id``, ``version``, ``at``, ``status_code``, ``latency_ms``,
            ``traffic`` (the change in force then: ``weights``, ``kind``,
            ``actor``, ``reason``, ``at``, ``transition``) and ``shadow`` (the
            shadow's answer if the request was mirrored, else ``None``).

        Examples
        --------
        >>> serving.which_version("cancer", "3f2a…")["version"]     # doctest: +SKIP
        2
        """
        row = self.store.deployments.get_request(name, request_id)
        traffic = row.get("traffic")
        shadow = row.get("shadow")
        return {
            "request_id": row["request_id"],
            "version": row.get("model_version"),
            "at": row["at"],
            "status_code": row["status_code"],
            "latency_ms": row["latency_ms"],
            "traffic": _traffic_view(traffic) if traffic else None,
            "shadow": (
                {
                    "version": shadow["shadow_version"],
                    "prediction": shadow.get("shadow_prediction"),
                    "agree": None if shadow.get("agree") is None else bool(shadow["agree"]),
                    "latency_ms": shadow.get("shadow_latency_ms"),
                    "error": shadow.get("error"),
                }
                if shadow
                else None
            ),
        }

    def version_at(self, name: str, at: str | datetime) -> dict[str, Any]:
        """The traffic state of ``name`` at time ``at``: weights, main version, who set it and why.

        Examples
        --------
        >>> serving.version_at("cancer", "2025-01-31T12:00:00+00:00")["main_version"]   # doctest: +SKIP
        1
        """
        when = iso_utc(at)
        row = self.store.deployments.get_traffic_at(name, when)
        if row is None:
            raise NotFoundError(f"{name!r} had no traffic at {when} (it was deployed later).")
        return _traffic_view(row)

    def export_config(
        self, name: str, path: str | os.PathLike[str] | None = None, **options: Any
    ) -> dict[str, Any]:
        """Write deployment ``name`` as a Ray Serve config file (YAML) for ``serve run``/``serve deploy``/KubeRay.

        The file's application imports ``workbench.serving.app:build`` with ``args`` holding
        the router config a live :meth:`deploy` builds (:meth:`router_config`): the versions and
        weights last recorded for ``name``, where the artifacts and the store are, and the
        scaling, validation and auth options; ``deployments[]`` repeats the router's
        ``num_replicas``/``ray_actor_options``. It is checked against Ray Serve's own schema
        before it is written. Warm-up rows and a running shadow are not exported.

        Parameters
        ----------
        name : str
            Deployment name.
        path : str or path, optional
            Where to write the YAML; nothing is written without it.
        **options
            ``host``, ``port`` (default this object's HTTP host and port) and the scaling and
            validation options of :meth:`deploy` (``num_replicas``, ``num_cpus``, ``num_gpus``,
            ``autoscaling_config``, ``max_ongoing_requests``, ``max_batch_size``,
            ``batch_wait_timeout_s``, ``non_finite``, ``max_body_bytes``, ``isolate``,
            ``router_replicas``), with its defaults: the store does not record them.

        Returns
        -------
        dict
            The config as written.

        Raises
        ------
        NotFoundError
            No deployment ``name``, or an artifact of one of its versions is missing.
        ConfigError
            A bad option, or the file cannot be written.

        Examples
        --------
        >>> serving.export_config("cancer", "serve.yaml")["applications"][0]["import_path"]  # doctest: +SKIP
        'workbench.serving.app:build'
        """
        from workbench.serving._export import export_config

        return export_config(self, name, path, **options)

    def url(self, name: str) -> str:
        """HTTP base URL of the deployment (append ``/predict`` or ``/health``)."""
        dep = self.store.deployments.get(name)
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::", "") else self.http_host
        return f"http://{host}:{self.http_port}{dep['route_prefix']}"

    def predict(
        self,
        name: str,
        records: list[dict[str, Any]],
        *,
        key: str | None = None,
        probabilities: bool = False,
        timeout_s: float = 30.0,
    ) -> dict[str, Any]:
        """POST records to the deployment's real HTTP endpoint.

        Predictions are the model's class labels, of its target's type (ints, booleans,
        strings), or numbers for a regressor. ``probabilities=True`` asks a classifier for its
        class probabilities too (a regressor answers InvalidRequestError).

        Returns
        -------
        dict
            ``predictions``, ``model_version``, ``request_id``; with ``probabilities``,
            ``classes`` (the labels in order) and ``probabilities`` (one list per record,
            aligned with ``classes``).

        Raises
        ------
        InvalidRequestError
            The server rejected the input (4xx); ``field`` names the feature.
        DeploymentError
            The server failed (5xx) or could not be reached.

        Examples
        --------
        >>> serving.predict("cancer", [{"mean radius": 14.1, ...}])["predictions"]   # doctest: +SKIP
        ['benign']
        >>> out = serving.predict("cancer", [{"mean radius": 14.1, ...}], probabilities=True)  # doctest: +SKIP
        >>> dict(zip(out["classes"], out["probabilities"][0]))                               # doctest: +SKIP
        {'benign': 0.93, 'malignant': 0.07}
        """
        import httpx

        body: dict[str, Any] = {"records": records}
        if key is not None:
            body["key"] = key
        if probabilities:
            body["probabilities"] = True
        if self._http_client is None:
            self._http_client = httpx.Client(timeout=timeout_s)
        target = self.url(name) + "/predict"
        try:
            resp = self._http_client.post(
                target,
                json=body,
                timeout=timeout_s,
                headers={"authorization": f"Bearer {self._token}"} if self._token else None,
            )
        except httpx.HTTPError as exc:
            raise DeploymentError(
                f"could not reach {target} ({exc}); check serving.status({name!r})."
            ) from exc
        try:
            payload = resp.json()
        except ValueError:
            payload = {"error": resp.text[:500]}
        if 400 <= resp.status_code < 500:
            raise InvalidRequestError(
                f"{resp.status_code}: {payload.get('error', resp.text[:500])}",
                field=payload.get("field"),
            )
        if resp.status_code >= 500:
            raise DeploymentError(
                f"{target} answered {resp.status_code}: {payload.get('error', resp.text[:500])}"
            )
        return payload

    def score(
        self,
        model_ref: Any,
        dataset_version: DatasetVersion | str,
        *,
        name: str | None = None,
        batch_size: int = 4096,
        num_gpus: float = 0,
        concurrency: int | tuple[int, int] | None = None,
        output: str = "prediction",
    ) -> DatasetVersion:
        """Score every row of a dataset version with a model version on Ray Data; record the result.

        The version's bundle (its fitted preprocessing included) is loaded once per Ray Data actor
        from the artifact store, hash-verified, as a Serve replica loads it; the rows travel
        through Ray's object store, so nodes without a shared disk score too. The input rows come
        back in their order with the predictions appended (``output``) and, for a classifier whose
        pipeline gives them, one ``<output>_proba_<label>`` column per class. They are recorded as
        a new version of ``name`` (its parent ``dataset_version``, a ``scored_by`` edge to the model
        version), so ``bench.lineage(model, version)`` shows it.

        Parameters
        ----------
        model_ref : ModelVersion or str
            A model version, ``"model@version"``, ``"model@alias"`` or ``"model"`` (its champion).
        dataset_version : DatasetVersion or str
            The rows to score: a version, ``"dataset@version"`` or ``"dataset"`` (its latest).
        name : str, optional
            Dataset the scored rows are recorded in; default ``"<dataset>-scored"``.
        batch_size : int
            Rows per ``map_batches`` call.
        num_gpus : float
            GPUs per actor (default 0: CPU); more than the cluster has is refused at once.
        concurrency : int or (int, int), optional
            Actors: a fixed number, or ``(min, max)`` of an autoscaling pool; default 1 up to
            one per CPU (per GPU with ``num_gpus``).
        output : str
            Name of the prediction column.

        Returns
        -------
        DatasetVersion
            The scored version (``created`` False when the same rows were scored before).

        Raises
        ------
        DatasetValidationError
            The dataset lacks a column the model needs, or holds one of another kind; nothing
            is recorded.
        NotFoundError
            The model or version does not exist.
        ConfigError
            A bad option, a GPU the cluster lacks, or an output column that already exists.

        Examples
        --------
        >>> scored = bench.serving.score("cancer@champion", bench.datasets.get("cancer-live"))  # doctest: +SKIP
        >>> bench.datasets.load(scored)["prediction"].head(2).to_list()                           # doctest: +SKIP
        ['B', 'M']
        """
        from workbench.runtime import connect
        from workbench.serving._batch import model_reference, score_version

        model, ref = model_reference(model_ref)
        spec = self._version_spec(model, ref)  # the artifact verified before Ray is touched
        return score_version(
            store=self.store,
            artifacts=self.artifacts,
            connect=self._connect or connect,
            model_version=self.store.models.get_version_by_id(spec["model_version_id"]),
            dataset_version=dataset_version,
            name=name,
            batch_size=batch_size,
            num_gpus=num_gpus,
            concurrency=concurrency,
            output=output,
        )

    def health(self, name: str) -> dict[str, Any]:
        """The router's view: loaded versions, weights, replica identity, log counters."""
        return _call_handle(lambda: self._handle(name).health.remote(), 30)

    def flush_logs(self, name: str, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """Ship the router's buffered request logs to the store and wait until they are written.

        With several replicas this reaches one of them; the others flush
        within a quarter second on their own.

        Returns
        -------
        dict
            The replica's counters: ``buffered``, ``written``, ``lost``, ``dropped``.
        """
        return _call_handle(lambda: self._handle(name).flush.remote(), timeout_s)

    def status(self, name: str) -> dict[str, Any]:
        """The store's deployment row, its current weights and Ray Serve's live status.

        ``ready`` is true once the store says ``running`` and Serve says
        ``RUNNING``; while a deployment comes up (:meth:`start_deploy`),
        ``serve.deployments[...]["replicas"]`` counts replicas by state
        (``STARTING``, ``RUNNING``...).

        Examples
        --------
        >>> serving.status("cancer")["serve"]["status"]     # doctest: +SKIP
        'RUNNING'
        """
        dep = self.store.deployments.get(name)
        out: dict[str, Any] = {
            "name": dep["name"],
            "model": dep["model"],
            "route_prefix": dep["route_prefix"],
            "status": dep["status"],
            "weights": {int(k): float(v) for k, v in (dep.get("weights") or {}).items()},
            "url": self.url(name),
            "serve": None,
            "ready": False,
        }
        if dep["status"] == "deleted":
            return out
        from ray import serve

        self._ensure_serve()
        app = serve.status().applications.get(name)
        if app is not None:
            out["serve"] = {
                "status": str(getattr(app.status, "value", app.status)),
                "message": app.message,
                "deployments": {
                    d: {
                        "status": str(getattr(s.status, "value", s.status)),
                        "replicas": dict(s.replica_states),
                        "message": s.message,
                    }
                    for d, s in app.deployments.items()
                },
            }
            out["ready"] = dep["status"] == "running" and out["serve"]["status"] == "RUNNING"
        return out

    @requires("deploy")
    def undeploy(self, name: str, *, actor: str | None = None) -> None:
        """Flush the deployment's logs, delete its Serve app and mark it ``deleted`` in the store."""
        from ray import serve

        self.store.deployments.get(name)
        self._ensure_serve()
        try:
            self.flush_logs(name, timeout_s=10)
        except Exception as exc:  # best effort: the app may already be gone
            log.warning("could not flush logs of %s before deleting it: %s", name, exc)
        serve.delete(name)
        self.store.deployments.set_status(name, "deleted")
        dep = self.store.deployments.get(name)
        self.store.audit("deployment.delete", "deployment", dep["id"], {"name": name}, actor=actor)

    def close(self) -> None:
        """Close the HTTP client (Serve apps keep running)."""
        if self._http_client is not None:
            self._http_client.close()
            self._http_client = None

    # ------------------------------------------------------------ read views (store only, no Ray)
    def record(self, name: str) -> dict[str, Any]:
        """The deployment as recorded, without asking Ray: ``name``, ``model``, ``route_prefix``,
        ``status``, ``weights`` (version → share, last recorded), ``versions`` (every registered
        version number of the model: what :meth:`set_traffic` accepts), ``created_at``,
        ``updated_at``.

        :meth:`status` adds Serve's live view; this is what a UI polls.

        Examples
        --------
        >>> serving.record("cancer")["weights"]          # doctest: +SKIP
        {1: 0.9, 2: 0.1}
        """
        dep = self.store.deployments.get(name)
        return {
            "name": dep["name"],
            "model": dep["model"],
            "route_prefix": dep["route_prefix"],
            "status": dep["status"],
            "weights": {int(k): float(v) for k, v in (dep.get("weights") or {}).items()},
            "versions": [mv["version"] for mv in self.store.models.list_versions(dep["model"])],
            "created_at": dep.get("created_at"),
            "updated_at": dep.get("updated_at"),
        }

    def traffic_history(self, name: str) -> list[dict[str, Any]]:
        """Every recorded traffic change of ``name``, oldest first: ``id``, ``at``, ``weights``
        (version → share), ``kind`` (``deploy``, ``set``, ``canary``, ``rollback``...), ``actor``,
        ``reason`` and ``detail`` (canary step, shadow, warm-up; without the canary's raw evidence).

        Examples
        --------
        >>> [c["kind"] for c in serving.traffic_history("cancer")]      # doctest: +SKIP
        ['deploy', 'canary', 'canary']
        """
        return [
            {
                "id": c["id"],
                "at": c["at"],
                "weights": {int(k): float(v) for k, v in (c.get("weights") or {}).items()},
                "kind": c.get("kind") or "set",
                "actor": c["actor"],
                "reason": c["reason"],
                "detail": {k: v for k, v in (c.get("detail") or {}).items() if k != "evidence"},
            }
            for c in self.store.deployments.list_traffic(name)
        ]

    def request_stats(self, name: str) -> dict[str, Any]:
        """Totals of ``name``'s request log: ``n``, ``errors`` (status >= 500), ``mean_latency_ms``.

        Examples
        --------
        >>> serving.request_stats("cancer")["n"]           # doctest: +SKIP
        100
        """
        return self.store.deployments.get_request_stats(name)

    def requests(
        self, name: str, *, after_id: int = 0, limit: int | None = 1000, ok_only: bool = False
    ) -> list[dict[str, Any]]:
        """Logged requests of ``name`` after log row ``after_id``, oldest first, at most ``limit``:
        ``id``, ``request_id``, ``at``, ``status_code``, ``latency_ms``, ``model_version``
        (number), ``features``/``prediction`` (lists, one entry per record). Pass the last ``id``
        seen as ``after_id`` to read only what is new; ``ok_only`` keeps answered requests.

        Examples
        --------
        >>> rows = serving.requests("cancer", after_id=0, limit=100)     # doctest: +SKIP
        >>> serving.requests("cancer", after_id=rows[-1]["id"])          # doctest: +SKIP
        []
        """
        return self.store.deployments.list_requests(
            name, int(after_id), limit=limit, ok_only=ok_only
        )


class Deployed(dict):  # type: ignore[type-arg]
    """What :meth:`Serving.deploy` returns: a plain dict to every caller, which in a notebook kernel
    shows the deployment widget (workbench.ui) when it is the last expression of a cell."""

    def __init__(self, info: dict[str, Any], *, serving: Serving):
        super().__init__(info)
        self._serving = serving

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))  # copies and pickles are plain dicts, without the Serving

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        from workbench.ui import in_notebook_kernel

        if not in_notebook_kernel():
            return None  # plain Python: IPython falls back to the dict's repr
        from workbench.ui import DeploymentWidget

        widget = DeploymentWidget(self._serving, self["name"])
        return widget._repr_mimebundle_(include=include, exclude=exclude)


def _traffic_view(row: dict[str, Any]) -> dict[str, Any]:
    weights = {int(k): float(v) for k, v in row["weights"].items()}
    return {
        "change_id": row["id"],
        "weights": weights,
        "main_version": main_version(weights),
        "kind": row.get("kind"),
        "actor": row["actor"],
        "reason": row["reason"],
        "at": row["at"],
        "transition": bool(row.get("transition")),
    }


def _full(weights: dict[int, float]) -> int | None:
    """The version holding all the traffic, or None."""
    full = [v for v, w in weights.items() if w >= 1.0 - 1e-9]
    return full[0] if full else None


def _fmt(weights: dict[int, float]) -> str:
    return ", ".join(f"v{v}={w:.0%}" for v, w in sorted(weights.items()))


def _warn_if_short_of(scaling: dict[str, Any]) -> bool:
    """Warn when no node offers one replica's CPUs/GPUs now (the replica would wait for one).

    A warning, not an error, without an autoscaler. With one, the replicas' resources are asked
    of it (``request_resources``, logged as "waiting for a node of type ..."), and what none of
    its node types can provide is refused at once with ``ConfigError``. Returns whether the
    autoscaler was asked (the request is withdrawn once the replicas are up).
    """
    try:
        import ray

        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    except Exception:  # best effort
        return False
    need = {"CPU": scaling["num_cpus"], "GPU": scaling["num_gpus"]}
    if not any(all(res.get(k, 0.0) >= v for k, v in need.items() if v > 0) for res in nodes):
        from workbench.runtime._autoscaler import ask_autoscaler

        wanted = {k: float(v) for k, v in need.items() if v > 0}
        replicas = scaling.get("num_replicas") or (scaling.get("autoscaling_config") or {}).get(
            "min_replicas", 1
        )
        note = ask_autoscaler(wanted, count=max(1, int(replicas or 1)), what="replica")
        if note is not None:
            log.warning("deployment replicas: %s (asked the autoscaler for it)", note)
            return True
        log.warning(
            "no node of this Ray cluster offers %s CPU and %s GPU for one replica right now; "
            "the deployment waits until one does (or until timeout_s)",
            scaling["num_cpus"],
            scaling["num_gpus"],
        )
    return False


def _running_http_options() -> tuple[str, int] | None:
    """Host and port of the Serve proxy already running in this cluster, or None."""
    try:
        from ray.serve.context import _get_global_client

        client = _get_global_client(raise_if_no_controller_running=False)
    except Exception:  # private API moved: fall back to serve.start's own check
        return None
    if client is None:
        return None
    cfg = client.http_config
    return str(cfg.host), int(cfg.port)


def _router_replicas(app_status: Any) -> int:
    """RUNNING replicas of the app's router deployment (1 when Serve does not say)."""
    try:
        return int(app_status.deployments["Router"].replica_states.get("RUNNING", 1))
    except (KeyError, AttributeError, TypeError, ValueError):
        return 1


def _all_replicas_on(name: str, revision: str, first: dict[str, Any], replicas: int) -> bool:
    """Whether ``replicas`` distinct router replicas report ``revision`` (``first`` already did).

    Serve reconfigures replicas one by one, so one replica on the new config says
    nothing of the others; a traffic change returns only once each of them has it.
    Health calls spread over replicas at random: a few per replica reach them all,
    and one answer on an older revision ends the round (the caller polls again).
    """
    from ray import serve

    seen = {first["replica"]["id"]}
    for _ in range(8 * replicas):
        if len(seen) >= replicas:
            return True
        health = _call_handle(lambda: serve.get_app_handle(name).health.remote(), 10)
        if health.get("revision") != revision:
            return False
        seen.add(health["replica"]["id"])
    return len(seen) >= replicas


def _call_handle(call: Any, timeout_s: float) -> Any:
    """Run a DeploymentHandle call and wait for its result, also from inside a running event loop.

    Serve refuses blocking ``.result()`` on a thread that runs an asyncio loop,
    which is the case in every Jupyter kernel; there the call and the wait
    happen on a helper thread instead.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return call().result(timeout_s=timeout_s)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="workbench-serve") as pool:
        return pool.submit(lambda: call().result(timeout_s=timeout_s)).result()
