"""The app builder that Serve config files name: ``import_path: workbench.serving.app:build``.

``workbench serve-config NAME`` (:meth:`workbench.serving.Serving.export_config`) writes a
Ray Serve config whose application imports :func:`build` with the deployment's router config
as ``args``; ``serve run FILE``, ``serve deploy FILE`` and a KubeRay RayService's
``serveConfigV2`` then build the same router the workbench deploys from Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["build"]


def build(args: Mapping[str, Any]) -> Any:
    """Build the workbench router application from a Serve config's ``args``.

    Parameters
    ----------
    args : mapping
        The router config: ``deployment``, the store and artifact locations, ``versions``
        (version → ``artifact``, ``model_version_id``, ``weight``) and the scaling,
        validation and auth options; what ``export_config`` writes.

    Returns
    -------
    ray.serve.Application

    Raises
    ------
    ConfigError
        A missing or malformed entry, named.

    Examples
    --------
    >>> # serve.yaml: applications: [{import_path: workbench.serving.app:build, args: {...}}]
    >>> build(yaml.safe_load(open("serve.yaml"))["applications"][0]["args"])   # doctest: +SKIP
    """
    from workbench.serving._router import build_app

    return build_app(dict(args))
