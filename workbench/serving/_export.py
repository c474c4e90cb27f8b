"""A deployment as a Ray Serve config file: what ``serve run``, ``serve deploy`` and KubeRay take.

The file names :func:`workbench.serving.app.build` as its app builder and carries the router
config that :meth:`Serving.router_config` builds for a live deployment (versions, weights,
where the artifacts and the store are), so a file and a ``Serving.deploy`` of the same
weights run the same router. ``deployments[]`` repeats the replicas and resources the builder
sets (from the same functions), where Serve's config reference puts them for an operator to
edit: Serve lets them override the builder's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    from workbench.serving._serving import Serving

__all__ = ["export_config", "APP_IMPORT_PATH"]

APP_IMPORT_PATH = "workbench.serving.app:build"


def export_config(
    serving: Serving,
    name: str,
    path: str | Path | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
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
) -> dict[str, Any]:
    """The Serve config (a dict) of deployment ``name`` at its last recorded weights; written to ``path`` as YAML.

    See :meth:`workbench.serving.Serving.export_config`.
    """
    import yaml

    from workbench.serving._auth import resolve_token
    from workbench.serving._isolated import version_deployment_name
    from workbench.serving._router import validate_config
    from workbench.serving._scaling import deployment_options, router_options, scaling_options

    host = serving.http_host if host is None else host
    # The rule deploy applies: beyond loopback the router must demand a token (its digest goes
    # into the file through router_config); raises naming WORKBENCH_SERVE_TOKEN otherwise.
    resolve_token(host, serving._token, environ={})
    port = serving.http_port if port is None else port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {port!r}.")
    dep = serving.store.deployments.get(name)  # NotFoundError names how to list deployments
    weights = serving.traffic(name)  # the last recorded change, zero-weight versions included
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
    # No warm-up rows: the live deployment takes them from recent requests, which are user data
    # that a file bound for git or a Kubernetes manifest should not hold.
    args = serving.router_config(
        name, weights, scaling=scaling, non_finite=non_finite, max_body_bytes=max_body_bytes
    )
    validate_config(args)  # what the builder will check, before anything is written
    from workbench.lineage import mask_uri

    storage = str(args.get("artifacts_dir", ""))
    if mask_uri(storage) != storage:
        raise ConfigError(
            f"the artifact storage {mask_uri(storage)} carries credentials, which a Serve config "
            "file (bound for git or a Kubernetes manifest) must not hold: set the storage URI "
            "without them (WORKBENCH_STORAGE=s3://bucket/prefix) and give every node its keys "
            "in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) instead."
        )
    deployments = [{"name": "Router", **router_options(args)}]
    if args["isolate"]:
        deployments += [
            {"name": version_deployment_name(v), **deployment_options(args)}
            for v in args["versions"]
        ]
    config = {
        "http_options": {
            "host": host,
            "port": port,
        },
        "applications": [
            {
                "name": name,
                "route_prefix": dep["route_prefix"],
                "import_path": APP_IMPORT_PATH,
                "args": args,
                "deployments": deployments,
            }
        ],
    }
    _check_schema(config)
    if path is not None:
        target = Path(path)
        text = (
            f"# Ray Serve config of workbench deployment {name!r} (model {dep['model']!r}), "
            "written by `workbench serve-config`.\n"
            "# Run it with `serve run FILE` or `serve deploy FILE`; versions and weights are in args.\n"
            + yaml.safe_dump(config, sort_keys=False)
        )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        except OSError as exc:
            raise ConfigError(f"could not write the Serve config to {target}: {exc}") from exc
    return config


def _check_schema(config: dict[str, Any]) -> None:
    """Refuse a config Ray Serve's own schema (the one ``serve deploy`` applies) rejects."""
    from ray.serve.schema import ServeDeploySchema

    try:
        ServeDeploySchema.model_validate(config)
    except Exception as exc:  # pydantic's ValidationError, v1 or v2 API
        raise ConfigError(
            f"the exported Serve config does not fit Ray Serve's schema: {exc}"
        ) from exc
