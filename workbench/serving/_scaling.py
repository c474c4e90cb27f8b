"""Replicas, resources and request batching of a deployment: checked here, before Ray Serve sees them.

Pure Python (no Ray), so every rule is unit-tested without a cluster. The
options travel in the router's ``user_config`` (so a traffic change, which
re-deploys the same config, keeps them) and :func:`deployment_options` turns
them into the keyword arguments of Serve's ``Deployment.options``:

- ``num_replicas`` (fixed count) *or* ``autoscaling_config`` (Serve's own
  autoscaling: ``min_replicas``, ``max_replicas``, ``target_ongoing_requests``,
  ...; Serve validates the keys);
- ``num_cpus`` and ``num_gpus`` per replica (``ray_actor_options``);
- ``max_ongoing_requests`` per replica (requests beyond it wait in the proxy);
- ``max_batch_size`` and ``batch_wait_timeout_s``: when ``max_batch_size`` is
  above 1, concurrent requests of a replica are grouped by Serve's
  ``@serve.batch`` and each model version predicts a batch in one call.
  These two are applied by ``reconfigure()``, in place.
- ``isolate``: each model version runs as its own Serve deployment (with the
  replicas, resources and ``max_ongoing_requests`` above) behind a light
  router of ``router_replicas`` replicas, which calls it through a
  deployment handle and retries a request whose replica died on a live one.
  It costs a second hop per request; in exchange a crashed model replica
  loses no request, and a version gets its own resources (a GPU). Batching
  is done in the router, so it is not available with ``isolate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.exceptions import ConfigError

__all__ = [
    "DEFAULT_NUM_REPLICAS",
    "DEFAULT_NUM_CPUS",
    "DEFAULT_MAX_ONGOING_REQUESTS",
    "DEFAULT_BATCH_WAIT_TIMEOUT_S",
    "ROUTER_NUM_CPUS_ISOLATED",
    "scaling_options",
    "deployment_options",
    "router_options",
]

DEFAULT_NUM_REPLICAS = 1
DEFAULT_NUM_CPUS = 0.5
DEFAULT_MAX_ONGOING_REQUESTS = 16
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.01
ROUTER_NUM_CPUS_ISOLATED = 0.25  # the router only parses, validates and forwards
_MAX_WAIT_S = 10.0  # a batch wait beyond this is a mistake, not a tuning choice


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def scaling_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check and fill the replica, resource and batching keys of a router ``user_config``.

    Parameters
    ----------
    config : mapping
        May hold ``num_replicas`` (int >= 1) or ``autoscaling_config`` (a
        mapping), ``num_cpus`` and ``num_gpus`` (>= 0), ``max_ongoing_requests``
        (int >= 1), ``max_batch_size`` (``None`` or 1 = no batching, else an int
        up to ``max_ongoing_requests``), ``batch_wait_timeout_s`` (0..10),
        ``isolate`` (bool) and ``router_replicas`` (int >= 1, used with ``isolate``).

    Returns
    -------
    dict
        All nine keys, defaults filled in (``num_replicas`` is ``None`` under
        autoscaling, ``max_batch_size`` is ``None`` without batching).

    Raises
    ------
    ConfigError
        Naming the bad option and what it accepts.

    Examples
    --------
    >>> opts = scaling_options({})
    >>> opts["num_replicas"], opts["num_cpus"], opts["max_batch_size"]
    (1, 0.5, None)
    >>> scaling_options({"autoscaling_config": {"min_replicas": 1, "max_replicas": 3}})["num_replicas"] is None
    True
    """
    autoscaling = config.get("autoscaling_config")
    num_replicas = config.get("num_replicas")
    if autoscaling is not None:
        if not isinstance(autoscaling, Mapping) or not autoscaling:
            raise ConfigError(
                "autoscaling_config must be a mapping such as "
                f"{{'min_replicas': 1, 'max_replicas': 4}}; got {autoscaling!r}."
            )
        if num_replicas not in (None, "auto"):
            raise ConfigError(
                f"pass either num_replicas ({num_replicas!r}) or autoscaling_config, not both: "
                "under autoscaling, min_replicas/max_replicas set the count."
            )
        low, high = autoscaling.get("min_replicas", 1), autoscaling.get("max_replicas", 1)
        if not (isinstance(low, int) and isinstance(high, int) and 0 <= low <= high and high >= 1):
            raise ConfigError(
                f"autoscaling_config needs integers 0 <= min_replicas <= max_replicas, max_replicas >= 1; "
                f"got min_replicas={low!r}, max_replicas={high!r}."
            )
        autoscaling, num_replicas = dict(autoscaling), None
    else:
        num_replicas = DEFAULT_NUM_REPLICAS if num_replicas is None else num_replicas
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
            raise ConfigError(
                f"num_replicas must be >= 1 (an integer); got {num_replicas!r}. "
                "For a varying count pass autoscaling_config instead."
            )
    resources = {}
    for key, default in (("num_cpus", DEFAULT_NUM_CPUS), ("num_gpus", 0.0)):
        value = config.get(key)
        value = default if value is None else value
        if not _number(value) or value < 0:
            raise ConfigError(f"{key} per replica must be a number >= 0; got {value!r}.")
        resources[key] = float(value)
    ongoing = config.get("max_ongoing_requests")
    ongoing = DEFAULT_MAX_ONGOING_REQUESTS if ongoing is None else ongoing
    if isinstance(ongoing, bool) or not isinstance(ongoing, int) or ongoing < 1:
        raise ConfigError(f"max_ongoing_requests must be an integer >= 1; got {ongoing!r}.")
    batch = config.get("max_batch_size")
    if batch is not None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(
                f"max_batch_size must be None (no batching) or an integer >= 1; got {batch!r}."
            )
        if batch > ongoing:
            raise ConfigError(
                f"max_batch_size ({batch}) exceeds max_ongoing_requests ({ongoing}): a replica never "
                "holds that many requests at once, so no batch could fill. Raise max_ongoing_requests too."
            )
        if batch == 1:
            batch = None
    wait = config.get("batch_wait_timeout_s")
    wait = DEFAULT_BATCH_WAIT_TIMEOUT_S if wait is None else wait
    if not _number(wait) or not 0 <= wait <= _MAX_WAIT_S:
        raise ConfigError(
            f"batch_wait_timeout_s must be a number of seconds in 0..{_MAX_WAIT_S:g}; got {wait!r}."
        )
    isolate = config.get("isolate", False)
    if not isinstance(isolate, bool):
        raise ConfigError(f"isolate must be True or False; got {isolate!r}.")
    if isolate and batch is not None:
        raise ConfigError(
            "max_batch_size is not available with isolate=True: batching runs inside the router's "
            "replica, and isolated versions answer in their own. Drop one of the two."
        )
    router_replicas = config.get("router_replicas")
    router_replicas = DEFAULT_NUM_REPLICAS if router_replicas is None else router_replicas
    if (
        isinstance(router_replicas, bool)
        or not isinstance(router_replicas, int)
        or router_replicas < 1
    ):
        raise ConfigError(f"router_replicas must be an integer >= 1; got {router_replicas!r}.")
    return {
        "num_replicas": num_replicas,
        "autoscaling_config": autoscaling,
        **resources,
        "max_ongoing_requests": ongoing,
        "max_batch_size": batch,
        "batch_wait_timeout_s": float(wait),
        "isolate": isolate,
        "router_replicas": router_replicas,
    }


def deployment_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for Serve's ``Deployment.options`` from a checked config.

    Examples
    --------
    >>> deployment_options(scaling_options({"num_replicas": 2, "num_gpus": 0.5}))
    {'max_ongoing_requests': 16, 'ray_actor_options': {'num_cpus': 0.5, 'num_gpus': 0.5}, 'num_replicas': 2}
    >>> deployment_options(scaling_options({"autoscaling_config": {"max_replicas": 3}}))["autoscaling_config"]
    {'max_replicas': 3}
    """
    opts = scaling_options(config)
    actor: dict[str, float] = {"num_cpus": opts["num_cpus"]}
    if opts["num_gpus"] > 0:
        actor["num_gpus"] = opts["num_gpus"]
    out: dict[str, Any] = {
        "max_ongoing_requests": opts["max_ongoing_requests"],
        "ray_actor_options": actor,
    }
    if opts["autoscaling_config"] is not None:
        out["autoscaling_config"] = opts["autoscaling_config"]
    else:
        out["num_replicas"] = opts["num_replicas"]
    return out


def router_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the router's ``Deployment.options``.

    Without ``isolate`` the router *is* the model server: it gets the
    replicas and resources of :func:`deployment_options`. With ``isolate`` it
    only forwards: ``router_replicas`` replicas of a quarter CPU each, and as
    many ongoing requests as its versions can hold together.

    Examples
    --------
    >>> router_options(scaling_options({"num_replicas": 2}))["num_replicas"]
    2
    >>> opts = router_options(scaling_options({"num_replicas": 2, "isolate": True}))
    >>> opts["num_replicas"], opts["ray_actor_options"]
    (1, {'num_cpus': 0.25})
    """
    opts = scaling_options(config)
    if not opts["isolate"]:
        return deployment_options(opts)
    per_version = opts["num_replicas"] or (opts["autoscaling_config"] or {}).get("max_replicas", 1)
    return {
        "num_replicas": opts["router_replicas"],
        "ray_actor_options": {"num_cpus": ROUTER_NUM_CPUS_ISOLATED},
        "max_ongoing_requests": max(opts["max_ongoing_requests"] * per_version, 16),
    }
