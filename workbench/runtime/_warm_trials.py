"""Trial actors kept warm from one search to the next.

Ray never reuses an actor's process, and Tune's ``reuse_actors`` keeps its trial actors only until
``Tuner.fit`` returns, so every search started two fresh trial processes: 2.6-2.9 s of CPU each
on the development machine (the worker, ``ray.tune`` with pandas and pyarrow, scikit-learn),
against milliseconds of fitting for a small search.

While a workbench search runs (:func:`warm_trials`), three hooks into Tune's execution keep them:

- when the search ends, each trial actor Tune would stop (or keep cached) is *parked* instead,
  with the placement group it runs in (:func:`_park`);
- when the next search asks for a placement group of the same shape, a parked one is handed to it
  as ready (``request_resources`` in :func:`_install`), and one of another shape is released at
  once, so a parked actor never holds CPUs a search needs;
- when Tune starts an actor in a handed-over group, the parked actor takes the new trial's class
  (the new search's trainable and data) and is ``reset`` with its config and storage, exactly as
  Tune resets an actor it reuses inside one search (:class:`_Reused`); if that fails, the old actor
  is killed and a fresh one starts in the group.

A parked actor holds its placement group's CPUs, so parked actors are released after
``WORKBENCH_WARM_TRIALS_S`` seconds (default 3; ``0`` turns parking off), when this process
needs the CPUs for something else (:func:`release_parked_trials`: deploys, batch scoring, Ray job
submissions, :meth:`Workbench.close`), and when Ray is not the one they were parked in. Another
process (another notebook, a Ray job) that needs those CPUs waits at most the idle time. A
search outside :func:`warm_trials` (plain Tune or Ray Train in this process) parks nothing and
takes nothing; its first placement-group request releases the parked actors. The hooks rely on
Tune's private execution classes of the pinned Ray release (``constraints.txt``);
``tests/test_warm_trials.py`` checks them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_state = threading.local()
_lock = threading.RLock()
_installed = False


@dataclass
class _Parked:
    pg: Any
    actor: Any
    runtime_env: Any
    job: str
    since: float


_parked: dict[Any, list[_Parked]] = {}  # ResourceRequest -> parked actors
# placement group handed to a search -> (its parked actor, the thread of that search)
_handed: dict[Any, tuple[_Parked, int]] = {}
_reaper: threading.Thread | None = None


def idle_seconds() -> float:
    """How long a parked trial actor waits for the next search (``WORKBENCH_WARM_TRIALS_S``)."""
    try:
        return max(0.0, float(os.environ.get("WORKBENCH_WARM_TRIALS_S", "3")))
    except ValueError:
        return 3.0


def _active() -> bool:
    return bool(getattr(_state, "depth", 0))


@contextmanager
def warm_trials() -> Iterator[None]:
    """Run a ``Tuner.fit`` in this block to reuse parked trial actors and park them afterwards."""
    if idle_seconds() <= 0:
        yield
        return
    _install()
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth:
            _forget_handed()


def _forget_handed() -> None:
    """Kill the parked actors handed to this thread's search that no trial started in (the search
    ended first); Tune removes their placement groups with its own."""
    import ray

    me = threading.get_ident()
    with _lock:
        mine = [pg for pg, (_, thread) in _handed.items() if thread == me]
        entries = [_handed.pop(pg)[0] for pg in mine]
    for entry in entries:
        try:
            ray.kill(entry.actor)
        except Exception:  # already gone
            pass


def parked_trials() -> int:
    """How many trial actors are parked now."""
    with _lock:
        return sum(len(v) for v in _parked.values())


def _job() -> str:
    """This driver's job in this cluster's session (job ids restart at 1 in every new cluster)."""
    import ray

    if not ray.is_initialized():
        return ""
    try:
        session = ray._private.worker.global_worker.node.session_name
    except AttributeError:  # private attribute moved: never hand a parked actor to another Ray
        return ""
    return f"{session}/{ray.get_runtime_context().get_job_id()}"


def _drop(entry: _Parked) -> None:
    """Kill a parked actor and remove its placement group (nothing if Ray went away)."""
    import ray
    from ray.util.placement_group import remove_placement_group

    if not ray.is_initialized() or not entry.job or entry.job != _job():
        return
    try:
        ray.kill(entry.actor)
    except Exception:  # already gone
        pass
    try:
        remove_placement_group(entry.pg)
    except Exception:
        pass


def release_parked_trials() -> int:
    """Release every parked trial actor and its CPUs now; how many were released."""
    with _lock:
        entries = [e for v in _parked.values() for e in v]
        _parked.clear()
    for entry in entries:
        _drop(entry)
    return len(entries)


def _reap() -> None:
    while True:
        time.sleep(0.5)
        limit = time.monotonic() - idle_seconds()
        with _lock:
            old = [e for v in _parked.values() for e in v if e.since < limit]
            for key in list(_parked):
                _parked[key] = [e for e in _parked[key] if e.since >= limit]
                if not _parked[key]:
                    del _parked[key]
        for entry in old:
            _drop(entry)


def _park(controller: Any, tracked_actor: Any) -> bool:
    """Take a started, idle trial actor and its placement group away from Tune; False if not."""
    manager = controller._actor_manager
    if not manager.is_actor_started(tracked_actor):
        return False
    resources = manager._resource_manager
    ray_actor, acquired = manager._live_actors_to_ray_actors_resources[tracked_actor]
    pg = getattr(acquired, "placement_group", None)
    if pg is None or pg not in resources._acquired_pgs:
        return False
    request = resources._pg_to_request.get(pg)
    if request is None:
        return False
    manager._live_actors_to_ray_actors_resources.pop(tracked_actor)
    manager._cleanup_actor_futures(tracked_actor)
    manager._live_resource_cache = None
    resources._acquired_pgs.discard(pg)
    resources._pg_to_request.pop(pg, None)
    controller._started_actors.discard(tracked_actor)
    classes = list(controller._class_cache._cache.values())
    env = classes[0]._default_options.get("runtime_env") if classes else None
    entry = _Parked(pg=pg, actor=ray_actor, runtime_env=env, job=_job(), since=time.monotonic())
    log.debug("parked trial actor %s", ray_actor)
    global _reaper
    with _lock:
        _parked.setdefault(request, []).append(entry)
        if _reaper is None:
            _reaper = threading.Thread(target=_reap, name="workbench-warm-trials", daemon=True)
            _reaper.start()
    return True


def _take(request: Any) -> _Parked | None:
    """A parked actor for ``request``; parked actors of other shapes are released (their CPUs may
    be what this search waits for)."""
    job = _job()
    with _lock:
        entries = _parked.pop(request, [])
        others = [e for v in _parked.values() for e in v]
        _parked.clear()
        stale = [e for e in entries if not job or e.job != job]
        entries = [e for e in entries if job and e.job == job]
        found = entries.pop(0) if entries else None
        if entries:
            _parked[request] = entries
    for entry in others + stale:
        _drop(entry)
    return found


class _Reused:
    """Stands in for ``ActorClass.options(...)`` for a handed-over placement group: ``remote``
    gives the parked actor the new trial's class and resets it, or starts a fresh actor."""

    def __init__(self, annotated: Any, actor_cls: Any, entry: _Parked) -> None:
        self._annotated = annotated
        self._actor_cls = actor_cls
        self._entry = entry

    def remote(self, **kwargs: Any) -> Any:
        import ray

        entry = self._entry
        env = self._actor_cls._default_options.get("runtime_env")
        if env == entry.runtime_env:
            try:
                cls = self._actor_cls.__ray_metadata__.modified_class
                ok = ray.get(entry.actor.__ray_call__.remote(_rebind, cls, kwargs), timeout=60)
                if ok:
                    log.debug("reused parked trial actor %s", entry.actor)
                    return entry.actor
            except Exception as exc:  # the parked actor died or cannot take the trial
                log.info("a parked trial actor could not be reused (%s); starting a fresh one", exc)
        try:
            ray.kill(entry.actor)
        except Exception:
            pass
        return self._annotated.remote(**kwargs)


def _rebind(trainable: Any, cls: type, kwargs: dict[str, Any]) -> bool:
    """In the parked actor: become the new search's trainable class and take the trial."""
    trainable.__class__ = cls
    return bool(trainable.reset(kwargs["config"], storage=kwargs["storage"]))


def _install() -> None:
    """Hook Tune's controller, placement-group manager and acquired resources (once)."""
    global _installed
    with _lock:
        if _installed:
            return
        from ray.air.execution.resources import placement_group as pgmod
        from ray.tune.execution import tune_controller as tc

        manager_cls = pgmod.PlacementGroupResourceManager
        acquired_cls = pgmod.PlacementGroupAcquiredResources
        controller_cls = tc.TuneController
        original_request = manager_cls.request_resources
        original_annotate = acquired_cls.annotate_remote_entities
        original_cleanup = controller_cls._cleanup_cached_actors
        original_cache = controller_cls._maybe_cache_trial_actor

        def request_resources(self: Any, resource_request: Any) -> None:
            if not _active():
                if _parked:  # plain Tune (or Ray Train) in this process: give it the CPUs
                    release_parked_trials()
                return original_request(self, resource_request)
            entry = _take(resource_request)
            if entry is None:
                return original_request(self, resource_request)
            self._pg_to_request[entry.pg] = resource_request
            self._request_to_ready_pgs[resource_request].add(entry.pg)
            with _lock:
                _handed[entry.pg] = (entry, threading.get_ident())
            return None

        def annotate_remote_entities(self: Any, entities: list[Any]) -> list[Any]:
            annotated = original_annotate(self, entities)
            with _lock:
                handed = _handed.pop(self.placement_group, None)
            if handed is None or not entities:
                return annotated
            return [_Reused(annotated[0], entities[0], handed[0]), *annotated[1:]]

        def cleanup_cached_actors(self: Any, force_all: bool = False) -> None:
            if not _active():
                return original_cleanup(self, force_all=force_all)
            if (
                self._search_alg.is_finished()
                and not self._staged_trials
                and self._actor_cache.total_max_objects == 0
            ):
                force_all = True
            for tracked_actor in self._actor_cache.flush_cached_objects(force_all=force_all):
                tracked_actor.set_on_stop(None)
                tracked_actor.set_on_error(None)
                if not _park(self, tracked_actor):
                    self._remove_actor(tracked_actor=tracked_actor)
            return None

        def maybe_cache_trial_actor(self: Any, trial: Any) -> bool:
            if original_cache(self, trial):
                return True
            if not (_active() and self._reuse_actors):
                return False
            # Tune stops the actor of a trial that ends when no trial is left to run: park it
            tracked_actor = self._trial_to_actor[trial]
            manager = self._actor_manager
            if (
                manager.is_actor_failed(tracked_actor)
                or tracked_actor not in self._started_actors
                or not _park(self, tracked_actor)
            ):
                return False
            self._trial_to_actor.pop(trial)
            self._actor_to_trial.pop(tracked_actor)
            trial.set_ray_actor(None)
            return True

        manager_cls.request_resources = request_resources
        acquired_cls.annotate_remote_entities = annotate_remote_entities
        controller_cls._cleanup_cached_actors = cleanup_cached_actors
        controller_cls._maybe_cache_trial_actor = maybe_cache_trial_actor
        _installed = True
