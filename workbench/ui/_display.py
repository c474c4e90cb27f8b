"""Rich display of lower-layer objects in a notebook: a model version shows its registry widget.

``workbench.registry`` may not import ``workbench.ui`` (they are independent
layers), so instead of a ``_repr_mimebundle_`` method on ``ModelVersion``
the UI registers an IPython formatter for it, by name, inside a kernel only.
"""

from __future__ import annotations

import sys
from typing import Any

from workbench.ui._factory import in_notebook_kernel

__all__ = ["register_displays"]

_REGISTERED: set[int] = set()


def register_displays() -> bool:
    """In a Jupyter kernel, make ``ModelVersion`` objects display as the registry widget; idempotent.

    Outside a kernel this does nothing (and imports nothing). Returns whether
    the formatter is registered in the running shell.

    Examples
    --------
    >>> register_displays()   # plain Python: nothing to do
    False
    """
    if not in_notebook_kernel():
        return False
    shell = sys.modules["IPython"].get_ipython()
    if id(shell) not in _REGISTERED:
        formatter = shell.display_formatter.mimebundle_formatter
        formatter.for_type_by_name(
            "workbench.registry._registry", "ModelVersion", _model_version_bundle
        )
        _REGISTERED.add(id(shell))
    return True


def _model_version_bundle(mv: Any, include: Any = None, exclude: Any = None) -> Any:
    registry = mv.__dict__.get("_registry")
    if registry is None:
        return None  # built by hand, not from a registry: the plain repr
    from workbench.ui._widgets import RegistryWidget

    widget = RegistryWidget(registry, mv.model, highlight=mv.version)
    return widget._repr_mimebundle_(include=include, exclude=exclude)
