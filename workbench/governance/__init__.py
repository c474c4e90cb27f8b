"""Governance: who is acting, which roles they hold, and the guard every mutating stage method
carries.

- :func:`current_identity` / :func:`acting_as`: the Jupyter user of a REST call, the JupyterHub
  user, else the OS user.
- :data:`ROLES`, :data:`ACTIONS`: ``viewer``, ``editor`` (ingest, search, register),
  ``deployer`` (deploy, traffic, rollback), ``approver`` (approve retraining, promote),
  ``admin`` (grant roles).
- :class:`Access` (``bench.access``): grants, the four-eyes rule, ``whoami()``.
- :func:`requires`: the guard.
"""

from workbench._identity import Identity, acting_as, current_identity
from workbench.governance._access import (
    ACCESS_ENV,
    SYSTEM_ACTORS,
    Access,
    guarded_actions,
    requires,
)
from workbench.governance._audit import Audit
from workbench.governance._roles import ACTIONS, ROLES, allows, role_for

__all__ = [
    "ACCESS_ENV",
    "ACTIONS",
    "ROLES",
    "SYSTEM_ACTORS",
    "Access",
    "Audit",
    "Identity",
    "acting_as",
    "allows",
    "current_identity",
    "guarded_actions",
    "requires",
    "role_for",
]
