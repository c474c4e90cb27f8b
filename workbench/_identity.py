"""Who is acting: the name recorded as ``actor`` when a caller gives none.

The lowest module of the package (no workbench import), so the lineage store, the governance
guard and the adapters (widgets, CLI, REST) share one definition. A REST handler runs its call
inside :func:`acting_as` with the name Jupyter Server's ``IdentityProvider`` gave; a process
inside a JupyterHub single-user server is ``$JUPYTERHUB_USER``; scripts, the CLI, Ray Jobs and
the scheduler are the OS user running them.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Identity", "current_identity", "acting_as", "default_actor", "os_user"]


@dataclass(frozen=True)
class Identity:
    """A user name and where it came from: ``"jupyter"``, ``"jupyterhub"`` or ``"os"``."""

    name: str
    source: str


_ACTING: ContextVar[Identity | None] = ContextVar("workbench_acting", default=None)


def os_user() -> str:
    """The OS user running this process, or ``"unknown"`` where there is none.

    Examples
    --------
    >>> isinstance(os_user(), str)
    True
    """
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def current_identity() -> Identity:
    """The identity of this call.

    Examples
    --------
    >>> with acting_as("ada"):
    ...     current_identity()
    Identity(name='ada', source='jupyter')
    >>> current_identity().source in {"os", "jupyterhub"}
    True
    """
    acting = _ACTING.get()
    if acting is not None:
        return acting
    hub_user = os.environ.get("JUPYTERHUB_USER", "").strip()
    if hub_user:
        return Identity(hub_user, "jupyterhub")
    return Identity(os_user(), "os")


def default_actor() -> str:
    """The name of who is acting (:func:`current_identity`), recorded when a caller gives none.

    Examples
    --------
    >>> with acting_as("ada"):
    ...     default_actor()
    'ada'
    """
    return current_identity().name


@contextmanager
def acting_as(name: str, source: str = "jupyter") -> Iterator[Identity]:
    """Run the block as ``name`` (what REST handlers do with the Jupyter user); nests and restores."""
    name = str(name).strip()
    if not name:
        raise ValueError("acting_as needs a user name")
    identity = Identity(name, source)
    token = _ACTING.set(identity)
    try:
        yield identity
    finally:
        _ACTING.reset(token)
