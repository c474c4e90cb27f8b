"""A deployment started with ``Serving.start_deploy``: Serve brings it up while the notebook goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.runtime import BackgroundHandle

if TYPE_CHECKING:
    from workbench.serving._serving import Deployed

__all__ = ["DeployProgress"]


class DeployProgress(BackgroundHandle["Deployed"]):
    """Waits for one deployment in a background thread of this process and records its outcome.

    A ``concurrent.futures.Future`` of what :meth:`Serving.deploy` returns (see
    :class:`~workbench.runtime.BackgroundHandle`). The thread does what a
    blocking ``deploy`` does after the request is checked: waits until the
    router serves the version (``timeout_s``), then marks the deployment
    ``running`` (or ``failed``) and records the first traffic change. The cell
    that called ``start_deploy`` has already returned; as the last expression
    of a cell this shows the deployment widget.

    Examples
    --------
    >>> progress = serving.start_deploy("cancer")      # doctest: +SKIP
    >>> progress.status()["phase"]                     # doctest: +SKIP
    'deploying'
    >>> progress.wait(timeout_s=120)["url"]            # doctest: +SKIP
    'http://127.0.0.1:8000/cancer'
    """

    def __init__(self, serving: Any, name: str, finish: Callable[[], Deployed]):
        self._serving = serving
        super().__init__(name, finish, thread_name=f"workbench-deploy-{name}")

    @property
    def url(self) -> str:
        """HTTP base URL the deployment answers on once it runs."""
        return str(self._serving.url(self.name))

    def phase(self) -> str:
        """``deploying``, ``running`` or ``failed``."""
        if not self.done():
            return "deploying"
        return "failed" if self.error() is not None else "running"

    def status(self) -> dict[str, Any]:
        """``phase`` (``deploying``, ``running`` or ``failed``), ``elapsed_s``, ``error``, and Serve's live view.

        ``serve`` is :meth:`Serving.status`'s ``serve`` entry: the app's state
        and, per deployment, replicas counted by state.
        """
        try:
            serve = self._serving.status(self.name).get("serve")
        except Exception as exc:  # Serve not reachable right now: say so, do not raise
            serve = {"status": "unknown", "message": str(exc)}
        error = self.error()
        return {
            "name": self.name,
            "phase": self.phase(),
            "elapsed_s": round(self.elapsed_s, 2),
            "error": None if error is None else f"{type(error).__name__}: {error}",
            "serve": serve,
        }

    def _still_running(self, timeout_s: float | None) -> str:
        return (
            f"deployment {self.name!r} is still coming up after {timeout_s}s; "
            "check progress.status() or serving.status(name)."
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        """In a notebook kernel, show the deployment widget (it follows the deployment as it comes up)."""
        from workbench.ui import in_notebook_kernel

        if not in_notebook_kernel():
            return None  # plain Python: IPython falls back to __repr__
        from workbench.ui import DeploymentWidget

        widget = DeploymentWidget(self._serving, self.name)
        return widget._repr_mimebundle_(include=include, exclude=exclude)

    def __repr__(self) -> str:
        return f"<DeployProgress {self.name!r} {self.phase()}>"
