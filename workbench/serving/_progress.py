"""A deployment started with ``Serving.deploy(..., wait=False)``: Serve brings it up while the notebook goes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DeployProgress"]


class DeployProgress:
    """Waits for one deployment in a background thread of this process and records its outcome.

    The thread does what a blocking ``deploy`` does after the request is
    checked: waits until the router serves the version (``timeout_s``), then
    marks the deployment ``running`` (or ``failed``) and records the first
    traffic change. The cell that called ``deploy`` has already returned.

    Examples
    --------
    >>> dep = serving.deploy("cancer", wait=False)      # doctest: +SKIP
    >>> dep["progress"].status()["phase"]                # doctest: +SKIP
    'deploying'
    >>> dep["progress"].wait(timeout_s=120)["url"]       # doctest: +SKIP
    'http://127.0.0.1:8000/cancer'
    """

    def __init__(self, serving: Any, name: str, finish: Callable[[], dict[str, Any]]):
        self.name = name
        self._serving = serving
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        # Not a daemon: a script that exits right after deploy(wait=False) still records the outcome.
        self._thread = threading.Thread(
            target=self._main, args=(finish,), name=f"workbench-deploy-{name}", daemon=False
        )
        self._thread.start()

    def _main(self, finish: Callable[[], dict[str, Any]]) -> None:
        try:
            self._result = finish()
        except BaseException as exc:  # handed to the caller of wait()
            self._error = exc
        finally:
            self._ended = time.monotonic()

    @property
    def done(self) -> bool:
        """Whether the deployment is serving or has failed."""
        return not self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        """``phase`` (``deploying``, ``running`` or ``failed``), ``elapsed_s``, ``error``, and Serve's live view.

        ``serve`` is :meth:`Serving.status`'s ``serve`` entry: the app's state
        and, per deployment, replicas counted by state.
        """
        end = self._ended if self._ended is not None else time.monotonic()
        phase = "deploying" if not self.done else ("failed" if self._error else "running")
        try:
            serve = self._serving.status(self.name).get("serve")
        except Exception as exc:  # Serve not reachable right now: say so, do not raise
            serve = {"status": "unknown", "message": str(exc)}
        return {
            "name": self.name,
            "phase": phase,
            "elapsed_s": round(end - self._started, 2),
            "error": None
            if self._error is None
            else f"{type(self._error).__name__}: {self._error}",
            "serve": serve,
        }

    def wait(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Block until the deployment serves; return what a blocking ``deploy`` returns, or raise its error.

        Raises
        ------
        TimeoutError
            Still deploying after ``timeout_s`` (the background wait goes on).
        """
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(
                f"deployment {self.name!r} is still coming up after {timeout_s}s; "
                "check progress.status() or serving.status(name)."
            )
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def __repr__(self) -> str:
        phase = "deploying" if not self.done else ("failed" if self._error else "running")
        return f"<DeployProgress {self.name!r} {phase}>"
