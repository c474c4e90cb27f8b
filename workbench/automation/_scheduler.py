"""The scheduler: a named, detached Ray actor that ticks the engine on an interval; its state is in the store."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

__all__ = ["SCHEDULER_NAME", "NAMESPACE", "SchedulerActor"]

SCHEDULER_NAME = "workbench-scheduler"
NAMESPACE = "workbench"


class SchedulerActor:
    """Runs :meth:`Engine.tick` every ``interval_s`` seconds in a background thread.

    Nothing it knows lives only in this process: policies, their last check,
    cooldowns, budget use and job states are rows of the lineage store, so a
    killed and restarted actor (or a restarted driver) continues where it was
    and never runs a job twice. The UNIQUE event key guards job creation; an
    atomic status transition guards running.

    It opens its own :class:`~workbench.stages.Stages` on ``home``, joined to the cluster
    at ``address`` (the one it runs in) with Serve's port ``serve_port`` and the artifacts and
    Tune state on ``storage`` (the starting Workbench's; ``None``: its ``WORKBENCH_STORAGE``).
    """

    def __init__(
        self,
        home: str,
        interval_s: float,
        *,
        address: str | None = None,
        serve_port: int | None = None,
        storage: str | None = None,
    ):
        from workbench.automation._engine import Engine
        from workbench.stages import Stages

        self.incarnation = f"scheduler:{uuid.uuid4().hex[:8]}"
        self.stages = Stages.open(home, address=address, serve_port=serve_port, storage=storage)
        self.engine = Engine(self.stages, runner=self.incarnation)
        self.interval_s = interval_s
        self.ticks = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self.interrupted = self.engine.interrupt_orphans("scheduler:")
        # ingestion runs an earlier incarnation left running end failed (their next fire time runs)
        self.interrupted_runs = self.stages.store.ingestion.interrupt_runs(
            "scheduler:", keep=self.incarnation
        )
        self._save("running")
        self._thread = threading.Thread(target=self._loop, name="wb-scheduler", daemon=True)
        self._thread.start()

    def _save(self, state: str) -> None:
        self.stages.store.retraining.set_scheduler_state(
            "scheduler",
            {
                "state": state,
                "incarnation": self.incarnation,
                "interval_s": self.interval_s,
                "ticks": self.ticks,
                "last_error": self.last_error,
                "heartbeat": time.time(),
            },
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval_s)

    def tick(self) -> dict[str, Any]:
        try:
            out = self.engine.tick()
            self.last_error = None
        except Exception as exc:  # keep polling; the error is visible in scheduler_status()
            out = {"error": repr(exc)}
            self.last_error = repr(exc)
        self.ticks += 1
        self._save("running")
        return out

    def status(self) -> dict[str, Any]:
        return {
            "incarnation": self.incarnation,
            "ticks": self.ticks,
            "interval_s": self.interval_s,
            "last_error": self.last_error,
            "interrupted_on_start": self.interrupted,
            "interrupted_runs_on_start": self.interrupted_runs,
            "alive": self._thread.is_alive(),
        }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self._save("stopped")
        if not self._thread.is_alive():  # a tick still running keeps using the store
            self.stages.close()
