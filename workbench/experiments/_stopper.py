"""A Tune stopper another thread can trip: how ``SearchHandle.stop()`` ends a search."""

from __future__ import annotations

import threading
from typing import Any

from ray.tune import Stopper

__all__ = ["StopFlag"]


class StopFlag(Stopper):
    """A Tune stopper that ends the whole search once :meth:`request` is called (from any thread).

    Tune pickles its run config with the experiment state; the event is not
    pickled, so a restored search gets a fresh, unset one.
    """

    def __init__(self) -> None:
        self._event: threading.Event | None = threading.Event()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        if self._event is not None:
            self._event.set()

    @property
    def requested(self) -> bool:
        return self._event is not None and self._event.is_set()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.requested
