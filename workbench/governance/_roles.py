"""Roles and the actions each one allows: the one table of who may press which button."""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["ROLES", "ACTIONS", "role_for", "allows"]

#: The roles, in the order the docs list them. ``admin`` allows every action; every other role
#: also allows reading.
ROLES: tuple[str, ...] = ("viewer", "editor", "deployer", "approver", "admin")

#: Every guarded action and the role it needs.
ACTIONS = MappingProxyType(
    {
        # reading (REST routes and panels; the Python API reads the file directly)
        "read": "viewer",
        # editor: data, searches, models
        "ingest": "editor",
        "schedule": "editor",
        "search": "editor",
        "register": "editor",
        "monitor": "editor",
        "export": "editor",
        # deployer: what serves and how much traffic it gets
        "deploy": "deployer",
        "traffic": "deployer",
        "rollback": "deployer",
        "api_key": "deployer",
        # approver: retraining answers, promotion, the loop's policies
        "approve": "approver",
        "promote": "approver",
        "policy": "approver",
        # admin: who holds which role, the access settings
        "grant": "admin",
    }
)


def role_for(action: str) -> str:
    """The role ``action`` needs.

    Examples
    --------
    >>> role_for("traffic")
    'deployer'
    """
    try:
        return ACTIONS[action]
    except KeyError:
        raise KeyError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}") from None


def allows(roles: set[str] | frozenset[str], action: str) -> bool:
    """Whether holding ``roles`` allows ``action`` (admin allows all; any role allows reading).

    Examples
    --------
    >>> allows({"editor"}, "register"), allows({"editor"}, "deploy"), allows({"admin"}, "grant")
    (True, False, True)
    >>> allows({"deployer"}, "read"), allows(set(), "read")
    (True, False)
    """
    if "admin" in roles:
        return True
    needed = role_for(action)
    if needed == "viewer":
        return bool(roles)
    return needed in roles
