"""Who is acting: the name recorded as ``actor`` when a caller gives none.

The lowest module of the package (no workbench import), so the lineage store and the adapters
(widgets, CLI) share one definition.
"""

from __future__ import annotations

import getpass

__all__ = ["default_actor"]


def default_actor() -> str:
    """The OS user running this process, or ``"unknown"`` where there is none.

    Examples
    --------
    >>> isinstance(default_actor(), str)
    True
    """
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"
