"""Who is acting: the Jupyter user a REST call came from, the JupyterHub user, else the OS user.

A REST handler runs its call inside :func:`acting_as` with the name Jupyter Server's
``IdentityProvider`` gave; a process inside a JupyterHub single-user server is
``$JUPYTERHUB_USER``; scripts, the CLI, Ray Jobs and the scheduler are the OS user running them.
``actor=`` arguments never change who is acting (see :class:`~workbench.governance.Access`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from workbench._identity import default_actor

__all__ = ["Identity", "current_identity", "acting_as"]


@dataclass(frozen=True)
class Identity:
    """A user name and where it came from: ``"jupyter"``, ``"jupyterhub"`` or ``"os"``."""

    name: str
    source: str


_ACTING: ContextVar[Identity | None] = ContextVar("workbench_acting", default=None)


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
    return Identity(default_actor(), "os")


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
