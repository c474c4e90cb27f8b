"""Search algorithms, trial schedulers and per-trial resources of a search, checked before any trial.

Everything here is validated and built on the driver before the experiment
row is written, so a bad name, a space a searcher cannot take or a resource
request the cluster can never satisfy fails at once with a message that
names it (Tune itself leaves an impossible request pending until the time
budget runs out). Optuna and HyperOpt are imported only when chosen.
"""

from __future__ import annotations

from typing import Any

from workbench.exceptions import ConfigError

__all__ = [
    "SEARCH_ALGS",
    "SCHEDULERS",
    "search_alg_name",
    "make_search_alg",
    "scheduler_name",
    "make_scheduler",
    "needs_checkpoints",
    "check_space",
    "count_trials",
    "normalize_resources",
    "check_resources",
]

SEARCH_ALGS = ("random", "grid", "optuna", "hyperopt")
SCHEDULERS = ("fifo", "asha", "hyperband", "median", "pbt")


def _is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid_search"}


def _walk(space: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, leaf) pairs of a nested search space; a grid_search is a leaf."""
    if isinstance(space, dict) and not _is_grid(space):
        out = []
        for k, v in space.items():
            out += _walk(v, f"{prefix}{k}.")
        return out
    return [(prefix.rstrip("."), space)]


def search_alg_name(search_alg: Any) -> str:
    """The name recorded for a search algorithm: one of SEARCH_ALGS, or a Searcher's class name."""
    if isinstance(search_alg, str):
        if search_alg not in SEARCH_ALGS:
            raise ConfigError(
                f"unknown search_alg {search_alg!r}; choose one of {list(SEARCH_ALGS)} "
                "or pass a ray.tune.search.Searcher instance"
            )
        return search_alg
    from ray.tune.search import SearchAlgorithm, Searcher

    if isinstance(search_alg, Searcher | SearchAlgorithm):
        return type(search_alg).__name__
    raise ConfigError(
        f"search_alg must be one of {list(SEARCH_ALGS)} or a ray.tune.search.Searcher, "
        f"got {type(search_alg).__name__}"
    )


def _accepts_grid(search_alg: Any) -> bool:
    if isinstance(search_alg, str):
        return search_alg in ("random", "grid")
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return isinstance(search_alg, BasicVariantGenerator)


def check_space(space: dict[str, Any], search_alg: Any) -> None:
    """Refuse a space the chosen search algorithm cannot take, naming the key."""
    from ray.tune.search.sample import Domain

    leaves = _walk(space)
    name = search_alg_name(search_alg)
    if not _accepts_grid(search_alg):
        grids = [k for k, v in leaves if _is_grid(v)]
        if grids:
            raise ConfigError(
                f"search_alg {name!r} does not accept tune.grid_search (found at {grids}): "
                "it proposes each trial itself from sampling domains; use tune.choice([...]) "
                "instead, or search_alg='grid' / 'random' to enumerate a grid"
            )
    if search_alg == "grid":
        sampled = [k for k, v in leaves if isinstance(v, Domain)]
        if sampled:
            raise ConfigError(
                f"search_alg 'grid' enumerates tune.grid_search values only, but {sampled} are "
                "sampling domains; make them tune.grid_search([...]) or use search_alg='random'"
            )


def count_trials(space: dict[str, Any], search_alg: Any, num_samples: int) -> int:
    """How many trials the search runs: BasicVariantGenerator repeats the whole grid num_samples times."""
    if not _accepts_grid(search_alg):
        return num_samples
    n = 1
    for _, v in _walk(space):
        if _is_grid(v):
            n *= len(v["grid_search"])
    return num_samples * n


def make_search_alg(search_alg: Any, *, seed: int) -> Any:
    """A Tune search algorithm from its name (seeded), or the given instance as it is."""
    if not isinstance(search_alg, str):
        return search_alg
    if search_alg in ("random", "grid"):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed)
    if search_alg == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch
        except ImportError as exc:  # pragma: no cover - optuna is a dependency
            raise ConfigError(f"search_alg 'optuna' needs optuna installed: {exc}") from exc
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return OptunaSearch(seed=seed)
    if search_alg == "hyperopt":
        try:
            from ray.tune.search.hyperopt import HyperOptSearch
        except ImportError as exc:  # pragma: no cover - hyperopt is a dependency
            raise ConfigError(f"search_alg 'hyperopt' needs hyperopt installed: {exc}") from exc
        return HyperOptSearch(random_state_seed=seed)
    raise AssertionError(search_alg)  # names are checked by search_alg_name


def scheduler_name(scheduler: Any) -> str:
    if isinstance(scheduler, str):
        if scheduler not in SCHEDULERS:
            raise ConfigError(
                f"unknown scheduler {scheduler!r}; choose one of {list(SCHEDULERS)} "
                "or pass a ray.tune.schedulers.TrialScheduler instance"
            )
        return scheduler
    from ray.tune.schedulers import TrialScheduler

    if isinstance(scheduler, TrialScheduler):
        return type(scheduler).__name__
    raise ConfigError(
        f"scheduler must be one of {list(SCHEDULERS)} or a ray.tune.schedulers.TrialScheduler, "
        f"got {type(scheduler).__name__}"
    )


def needs_checkpoints(scheduler: Any) -> bool:
    """Schedulers that pause or clone trials: a trial must resume from where it was."""
    return scheduler in ("hyperband", "pbt") or not isinstance(scheduler, str)


def pbt_mutations(space: dict[str, Any]) -> dict[str, Any]:
    """PBT explores the space's numeric sampling domains (resampled from the same distribution)."""
    from ray.tune.search.sample import Float, Integer

    return {k: v for k, v in space.items() if isinstance(v, Float | Integer)}


def make_scheduler(
    scheduler: Any, *, max_t: int, space: dict[str, Any], seed: int
) -> tuple[Any, dict[str, Any]]:
    """A Tune trial scheduler and its settings (recorded with the experiment).

    Steps are ``training_iteration``: one per CV fold for the built-in
    trainable, one per ``tune.report`` for a user trainable; ``max_t`` is
    the number of steps a full trial reports.
    """
    from ray.tune import schedulers as s

    if not isinstance(scheduler, str):
        return scheduler, {}
    if max_t < 1:
        raise ConfigError(f"max_steps must be at least 1, got {max_t}")
    t = "training_iteration"
    if scheduler == "fifo":
        return s.FIFOScheduler(), {}
    if scheduler == "asha":
        settings = {"time_attr": t, "max_t": max_t, "grace_period": 1, "reduction_factor": 2}
        return s.ASHAScheduler(**settings), settings
    if scheduler == "hyperband":
        from workbench.experiments._schedulers import HyperBand

        settings = {"time_attr": t, "max_t": max_t, "reduction_factor": 2}
        return HyperBand(**settings), settings
    if scheduler == "median":
        settings = {"time_attr": t, "grace_period": 1, "min_samples_required": 2}
        return s.MedianStoppingRule(**settings), settings
    if scheduler == "pbt":
        mutations = pbt_mutations(space)
        if not mutations:
            raise ConfigError(
                "scheduler 'pbt' mutates numeric hyperparameters, but the space has no top-level "
                "tune.uniform/loguniform/randint... domain; add one or choose another scheduler"
            )
        settings = {"time_attr": t, "perturbation_interval": 1}
        sched = s.PopulationBasedTraining(hyperparam_mutations=mutations, synch=False, **settings)
        return sched, {**settings, "hyperparam_mutations": sorted(mutations)}
    raise AssertionError(scheduler)  # names are checked by scheduler_name


_RAY_NAMES = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}


def normalize_resources(
    resources: dict[str, float] | None, cpus_per_trial: float | None
) -> dict[str, float]:
    """Per-trial resources as ``{"cpu": .., "gpu": .., **custom}``; ``cpus_per_trial`` is an alias."""
    if resources is not None and cpus_per_trial is not None:
        raise ConfigError("give either resources={'cpu': ...} or cpus_per_trial, not both")
    out: dict[str, float] = {"cpu": 1.0, "gpu": 0.0}
    if cpus_per_trial is not None:
        out["cpu"] = cpus_per_trial
    for key, amount in (resources or {}).items():
        k = key.lower() if key.lower() in _RAY_NAMES else key
        out[k] = amount
    for key, amount in out.items():
        if not isinstance(amount, int | float) or isinstance(amount, bool) or amount < 0:
            raise ConfigError(f"resource {key!r} must be a number >= 0, got {amount!r}")
        if amount > 1 and float(amount) != int(amount):
            raise ConfigError(
                f"resource {key!r}: Ray takes fractions below 1 or whole numbers, got {amount}"
            )
    if out["cpu"] == 0 and out["gpu"] == 0:
        raise ConfigError("a trial needs some cpu or gpu; got 0 of both")
    return {k: float(v) for k, v in out.items()}


def check_resources(resources: dict[str, float], *, count: int = 1) -> str | None:
    """Refuse per-trial resources no node of the connected cluster has, nor can ever have.

    Without an autoscaler, a request no live node satisfies is refused (Tune
    would wait forever). With one, a request that fits one of its worker node
    types is asked of it (``ray.autoscaler.sdk.request_resources``, ``count``
    bundles) and the note ``"waiting for a node of type <type>"`` is returned
    for the progress line; only what no node type can provide is refused, with
    the largest node type named. Returns ``None`` when a live node fits now.
    """
    import ray

    from workbench.runtime._autoscaler import ask_autoscaler, fits

    total = ray.cluster_resources()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    wanted = {_RAY_NAMES.get(k, k): float(v) for k, v in resources.items() if v}
    if any(fits(wanted, n) for n in nodes):
        return None
    note = ask_autoscaler(wanted, count=count, what="trial")
    if note is not None:
        return note
    for key, amount in resources.items():
        if amount == 0:
            continue
        ray_key = _RAY_NAMES.get(key, key)
        have = float(total.get(ray_key, 0))
        largest = max((float(n.get(ray_key, 0)) for n in nodes), default=0.0)
        if amount > have:
            raise ConfigError(
                f"each trial asks for {key}={amount:g} but the Ray cluster has {have:g} {ray_key} "
                f"in total; Tune would leave the trial pending forever. Ask for at most {have:g}, "
                "or connect to a cluster that has more"
            )
        if amount > largest:
            raise ConfigError(
                f"each trial asks for {key}={amount:g} but the largest Ray node has {largest:g} "
                f"{ray_key} (cluster total {have:g}); a trial runs on one node, so it would stay "
                "pending forever"
            )
    return None


def ray_resources(resources: dict[str, float]) -> dict[str, float]:
    """The dict ``tune.with_resources`` takes (cpu/gpu/memory keys, custom resources as they are)."""
    return {k: v for k, v in resources.items() if k in _RAY_NAMES or v}
