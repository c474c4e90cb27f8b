"""JupyterLab extension of workbench: a REST API over the public ``workbench`` API and a side panel."""

from __future__ import annotations

from typing import Any

from jupyterlab_workbench._version import __version__

__all__ = ["__version__"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyterlab-workbench"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "jupyterlab_workbench"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the REST handlers (one route table, :data:`jupyterlab_workbench.handlers.ROUTES`)."""
    from jupyterlab_workbench.handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("jupyterlab_workbench %s: REST API under /workbench/", __version__)


def _unload_jupyter_server_extension(server_app: Any) -> None:
    """Close the extension's Workbench (its store; Ray only if it started it) when the server stops."""
    service = server_app.web_app.settings.get("workbench_service")
    if service is not None:
        service.close()
