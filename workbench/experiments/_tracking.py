"""Driver-side Tune callback that records every trial in the lineage store, in batched writes."""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from typing import Any

from ray.tune import Callback

from workbench.lineage import Store, utcnow
from workbench.runtime import jsonable

__all__ = ["TrackingCallback", "FOLDS_KEY"]

#: the result key under which the built-in trainable reports every fold's own metrics so far
FOLDS_KEY = "_folds"

# Fields Tune adds to every result; the step is stored separately and timings come from the trial record.
_RESERVED = {
    "config",
    "trial_id",
    "experiment_tag",
    "date",
    "timestamp",
    "pid",
    "hostname",
    "node_ip",
    "done",
    "training_iteration",
    "time_this_iter_s",
    "time_total_s",
    "time_since_restore",
    "iterations_since_restore",
    "timesteps_total",
    "episodes_total",
    "timesteps_since_restore",
    "checkpoint_dir_name",
    "should_checkpoint",
}


class TrackingCallback(Callback):
    """Record trials (config, per-step metrics, status, error, duration, and each
    cross-validation fold's own metrics) of one experiment.

    Writes are buffered and flushed once per Tune event-loop step, so a
    search makes one transaction per step instead of one per metric. State
    survives ``Tuner.restore`` through ``get_state``/``set_state``; the store
    connection and any progress display are dropped when Tune pickles the
    callback and reopened on first use.
    """

    def __init__(
        self,
        db_path: str,
        experiment_id: int,
        *,
        metric: str,
        mode: str,
        total: int | None,
        name: str,
        display: Any = None,
        max_steps: int | None = None,
    ):
        self.db_path = db_path
        self.experiment_id = experiment_id
        self.metric = metric
        self.mode = mode
        self.total = total
        self.name = name
        self.display = display
        self.max_steps = max_steps
        self._store: Store | None = None
        self._pending_trials: dict[str, dict[str, Any]] = {}
        self._pending_metrics: list[tuple[str, int, dict[str, float]]] = []
        # trial id → every fold's metrics so far (the built-in trainable reports them as _folds)
        self._pending_folds: dict[str, list[dict[str, float]]] = {}
        self._started: dict[str, float] = {}
        self._status: dict[str, str] = {}
        self._best: dict[str, Any] | None = None
        self._latest: dict[str, dict[str, Any]] = {}
        self._t0 = time.monotonic()
        self._frozen: set[str] = set()
        # "waiting for a node of type ..." while an autoscaler adds a node for the first trial
        self.waiting: str | None = None
        self.asked_autoscaler = False

    # pickling: Tune checkpoints callbacks with the experiment state
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_store"] = None
        state["display"] = None
        return state

    def get_state(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "status": dict(self._status),
            "best": self._best,
            "latest": dict(self._latest),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.experiment_id = state["experiment_id"]
        self._status = dict(state.get("status", {}))
        self._best = state.get("best")
        self._latest = dict(state.get("latest", {}))

    def freeze(self, trial_ids: set[str]) -> None:
        """Leave these (finished) trials' records alone: after a resume Tune may re-run a trial that
        finished after its last snapshot of the experiment state."""
        self._frozen = set(trial_ids)

    def _skip(self, trial: Any) -> bool:
        return trial.trial_id in getattr(self, "_frozen", ())

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.db_path)
        return self._store

    # ------------------------------------------------------------------ hooks
    def _trial(self, trial: Any) -> dict[str, Any]:
        return self._pending_trials.setdefault(trial.trial_id, {"trial_id": trial.trial_id})

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._skip(trial):
            return
        self._started[trial.trial_id] = time.monotonic()
        self._status[trial.trial_id] = "RUNNING"
        self.waiting = None  # a node is there: the trials run
        row = self._trial(trial)
        row.update(
            config=jsonable(trial.config, default=repr), status="RUNNING", started_at=utcnow()
        )
        resources = _resources(trial)
        if resources:
            row["resources"] = resources

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if self._skip(trial):
            return
        step = int(result.get("training_iteration", 0))
        values = {
            k: float(v)
            for k, v in result.items()
            if k not in _RESERVED and isinstance(v, int | float) and not isinstance(v, bool)
        }
        self._pending_metrics.append((trial.trial_id, step, values))
        folds = result.get(FOLDS_KEY)
        if isinstance(folds, str):  # the built-in trainable sends them as JSON text
            try:
                folds = json.loads(folds)
            except ValueError:
                folds = None
        if isinstance(folds, list) and folds:
            # the whole list each step (a resumed trial reports its checkpointed folds again),
            # recorded in place of what the store holds for this trial
            self.__dict__.setdefault("_pending_folds", {})[trial.trial_id] = [
                {k: float(v) for k, v in f.items() if isinstance(v, int | float)}
                for f in folds
                if isinstance(f, dict)
            ]
        row = self._trial(trial)
        if isinstance(result.get("node_ip"), str):
            row["node"] = result["node_ip"]
        value = result.get(self.metric)
        if isinstance(value, int | float):
            # Best so far compares each trial's latest value (Tune's scope="last"), not its peak:
            # a running mean over folds can start high and settle lower.
            self._latest[trial.trial_id] = {
                "trial_id": trial.trial_id,
                "metric": self.metric,
                "value": float(value),
                "config": jsonable(trial.config, default=repr),
            }
            pick = max if self.mode == "max" else min
            self._best = pick(self._latest.values(), key=lambda r: r["value"])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "TERMINATED", error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "ERROR", error=_error_text(trial) or "trial failed (see Tune logs)")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A failed trial Tune is about to retry (``max_failures``): shown as pending again, with the
        failure recorded (a retry that then succeeds keeps it: it ends TERMINATED with its history)."""
        if self._skip(trial):
            return
        self._status[trial.trial_id] = "PENDING"
        row = self._trial(trial)
        row.update(status="PENDING", retry=True)
        error = _error_text(trial)
        if error:
            row["error"] = error

    def _finish(self, trial: Any, status: str, *, error: str | None) -> None:
        if self._skip(trial):
            return
        self._status[trial.trial_id] = status
        row = self._trial(trial)
        last = {
            k: v
            for k, v in (trial.last_result or {}).items()
            if k not in _RESERVED and isinstance(v, int | float) and not isinstance(v, bool)
        }
        started = self._started.get(trial.trial_id)
        # PBT changes a trial's config when it clones another: record the one it ended with
        row.update(
            config=jsonable(trial.config, default=repr),
            status=status,
            metrics=last,
            ended_at=utcnow(),
        )
        steps = (trial.last_result or {}).get("training_iteration")
        if status == "TERMINATED" and self.max_steps and isinstance(steps, int):
            # a scheduler (ASHA, HyperBand, median stopping) ended it before its last step
            row["stopped_early"] = steps < self.max_steps
        checkpoint = getattr(trial, "checkpoint", None)
        if checkpoint is not None and getattr(checkpoint, "path", None):
            row["checkpoint_path"] = str(checkpoint.path)
        if started is not None:
            row["duration_s"] = time.monotonic() - started
        if error:
            row["error"] = error
        self.flush()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._pending_trials or self._pending_metrics or getattr(self, "_pending_folds", None):
            self.flush()
        self._show(trials, "RUNNING")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Trials the search ended before they finished (time budget, stop(), a scheduler that left
        # them paused) are not left looking alive: they are recorded as STOPPED with what they reported.
        for trial in trials:
            if self._status.get(trial.trial_id) not in ("TERMINATED", "ERROR"):
                self._finish(trial, "STOPPED", error=None)
        self.flush()
        self.waiting = None
        if getattr(self, "asked_autoscaler", False):
            from workbench.runtime._autoscaler import release_autoscaler_request

            release_autoscaler_request()  # let idle nodes go; Tune no longer needs them
            self.asked_autoscaler = False
        self._show(trials, "TERMINATED")

    # ---------------------------------------------------------------- helpers
    def flush(self) -> None:
        pending_folds = getattr(self, "_pending_folds", {})  # a callback pickled before folds
        if not (self._pending_trials or self._pending_metrics or pending_folds):
            return
        if self._pending_trials or self._pending_metrics:
            self.store.experiments.record_trial_events(
                self.experiment_id, list(self._pending_trials.values()), self._pending_metrics
            )
        # after the trial rows: a fold belongs to a recorded trial
        for trial_id, folds in pending_folds.items():
            self.store.evaluations.record_folds(self.experiment_id, trial_id, folds)
        self._pending_trials = {}
        self._pending_metrics = []
        self._pending_folds = {}

    def summary(self, trials: list, status: str) -> dict[str, Any]:
        states = [t.status for t in trials]
        out = {
            "experiment": self.name,
            "total": self.total,
            "done": sum(s in ("TERMINATED", "ERROR") for s in states),
            "running": states.count("RUNNING"),
            "errored": states.count("ERROR"),
            "pending": states.count("PENDING"),
            "best": self._best,
            "elapsed_s": time.monotonic() - self._t0,
            "status": status,
        }
        waiting = getattr(self, "waiting", None)
        if waiting:
            out["note"] = waiting
        return out

    def _show(self, trials: list, status: str) -> None:
        if self.display is not None:
            self.display.update(self.summary(trials, status))


def _error_text(trial: Any) -> str | None:
    """The trial's error with its traceback: every attempt from the trial's local error file (Tune
    appends one entry per failure, so retries show), else its error object or text from storage."""
    path = getattr(trial, "error_file", None)
    try:
        if isinstance(path, str) and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read().strip()
            if text:
                return re.sub(r"\x1b\[[0-9;]*m", "", text)  # Ray colours the actor name
    except OSError:
        pass
    try:
        exc = trial.get_error()
    except Exception:  # error file unreadable: record what Tune told us
        return None
    if isinstance(exc, BaseException):
        return "".join(traceback.format_exception(exc))
    return str(exc) if exc else None


def _resources(trial: Any) -> dict[str, float]:
    """The resources Tune reserved for the trial (its placement group's bundles, summed)."""
    try:
        required = trial.placement_group_factory.required_resources
    except Exception:  # an unusual trial object: record nothing rather than fail the search
        return {}
    return {str(k): float(v) for k, v in required.items() if v}
