"""Access control, enforced once in the library: :class:`Access` decides, :func:`requires` guards.

Every mutating method of a stage (``Serving.set_traffic``, ``ModelRegistry.set_alias``,
``Automation.approve``...) carries ``@requires(action)``. The guard

1. finds who is acting (:func:`~workbench.governance.current_identity`);
2. refuses an ``actor=`` that claims another person, and a user whose roles do not allow the
   action (:class:`~workbench.exceptions.PermissionDenied`, nothing changed);
3. records the intent in the audit log *before* the method touches anything, and a
   ``intent.failed`` entry when the method raises; the method's own entries are the effect.

The Python API, the CLI, the widgets and the REST handlers all call those methods, so they all
inherit the same rules.

Enforcement is off in the embedded single-user default (the OS user is ``admin`` and every call
is allowed, as before); ``WORKBENCH_ACCESS=roles`` or any grant in the store turns it on. With
enforcement on and no grant yet, the OS user who owns the home is ``admin`` (so the first grant
can be made); that first grant also records them as ``admin``.
"""

from __future__ import annotations

import functools
import os
import pwd
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from workbench._identity import current_identity, os_user
from workbench.exceptions import ConfigError, PermissionDenied
from workbench.governance._roles import ACTIONS, ROLES, allows, role_for

if TYPE_CHECKING:
    from workbench.lineage import Store

__all__ = ["ACCESS_ENV", "SYSTEM_ACTORS", "Access", "requires", "guarded_actions"]

ACCESS_ENV = "WORKBENCH_ACCESS"
#: Labels the library's own loops record as ``actor`` (the retraining engine, monitors). They
#: name a process, not a person: the permission is still checked against who runs it.
SYSTEM_ACTORS = frozenset({"automation", "monitor"})
FOUR_EYES = "four_eyes"

F = TypeVar("F", bound=Callable[..., Any])
_DEPTH: ContextVar[int] = ContextVar("workbench_guard_depth", default=0)


def _roles_by_env() -> bool:
    """Whether ``WORKBENCH_ACCESS=roles`` enforces roles (``open`` or unset: not by itself)."""
    mode = os.environ.get(ACCESS_ENV, "").strip().lower()
    if mode not in {"", "open", "roles"}:
        raise ConfigError(f"{ACCESS_ENV}={mode!r}: use 'roles' (enforce) or leave it unset.")
    return mode == "roles"


def _owner_of(path: str) -> str:
    """The OS user owning the home holding ``path`` (the store file), else this process's user."""
    if path == ":memory:":
        return os_user()
    try:
        return pwd.getpwuid(Path(path).resolve().parent.stat().st_uid).pw_name
    except (KeyError, OSError):
        return os_user()


class Access:
    """Who may do what in one store.

    Examples
    --------
    >>> from workbench.lineage import Store
    >>> access = Access(Store(":memory:"))
    >>> access.enforced, access.allowed("deploy")
    (False, True)
    """

    def __init__(self, store: Store):
        self.store = store

    # ------------------------------------------------------------------ state
    @property
    def enforced(self) -> bool:
        """Whether roles are checked: ``WORKBENCH_ACCESS=roles``, or any grant recorded."""
        return _roles_by_env() or self.store.access.has_grants()

    @property
    def four_eyes(self) -> bool:
        """Whether an approver may not approve a job, or promote a version, that they requested."""
        return bool(self.store.access.setting(FOUR_EYES, False))

    def roles(self, user: str | None = None) -> set[str]:
        """The roles ``user`` (default: who is acting) holds; with enforcement off, or on with no
        grant yet, the home's owner holds ``admin``."""
        user = user or current_identity().name
        if self.store.access.has_grants():
            return self.store.access.roles_of(user)
        # no grant yet: open (everyone admin) unless the environment enforces, then the owner only
        return {"admin"} if (not _roles_by_env() or user == _owner_of(self.store.path)) else set()

    def allowed(self, action: str, user: str | None = None) -> bool:
        """Whether ``user`` (default: who is acting) may do ``action`` now."""
        role_for(action)  # unknown actions raise
        if not self.enforced:
            return True
        return allows(self.roles(user), action)

    def whoami(self) -> dict[str, Any]:
        """``user``, ``source`` (jupyter, jupyterhub, os), ``roles``, ``enforced``, ``four_eyes``
        and ``allowed`` (every action this user may do now): what the panel and widgets read to
        show only the buttons that will work."""
        me = current_identity()
        return {
            "user": me.name,
            "source": me.source,
            "roles": sorted(self.roles(me.name)),
            "enforced": self.enforced,
            "four_eyes": self.four_eyes,
            "allowed": [a for a in ACTIONS if self.allowed(a, me.name)],
        }

    def grants(self) -> list[dict[str, Any]]:
        """Every grant: ``user``, ``role``, ``granted_by``, ``granted_at``."""
        return self.store.access.grants()

    def denied(self, actions: tuple[str, ...] | list[str]) -> dict[str, str]:
        """``{action: why}`` for each of ``actions`` the acting user may not take now (empty in an
        open home): what a widget disables, with the reason as the button's tooltip.

        Examples
        --------
        >>> from workbench.lineage import Store
        >>> Access(Store(":memory:")).denied(["deploy"])
        {}
        """
        if not self.enforced:
            return {}
        me = current_identity().name
        roles = self.roles(me)
        held = ", ".join(sorted(roles)) or "no role"
        return {
            a: f"{me} ({held}) may not {a}: it needs the {role_for(a)} role"
            for a in actions
            if not allows(roles, a)
        }

    # ----------------------------------------------------------------- checks
    def require(self, action: str, *, actor: str | None = None) -> str:
        """The name to record as ``actor`` for ``action``, or :class:`PermissionDenied`.

        ``actor`` may name the acting user (with a channel note: ``"ada (widget)"``), or one of
        :data:`SYSTEM_ACTORS`; with enforcement off it is recorded as given (one person owns the
        home).
        """
        me = current_identity().name
        needed = role_for(action)
        if not self.enforced:
            return actor or me
        if actor is not None and not _names_self(actor, me) and actor not in SYSTEM_ACTORS:
            raise PermissionDenied(
                f"{me} cannot act as {actor!r}: actor= may only name yourself "
                f"(or {', '.join(sorted(SYSTEM_ACTORS))}); leave it out.",
                user=me,
                action=action,
                role=needed,
            )
        if not allows(self.roles(me), action):
            raise PermissionDenied(
                f"{me} may not {action}: it needs the {needed!r} role. An admin grants it with "
                f"`workbench access grant {me} {needed}` (bench.access.grant({me!r}, {needed!r})).",
                user=me,
                action=action,
                role=needed,
            )
        return actor or me

    def require_other_person(self, action: str, requester: str | None, what: str) -> None:
        """Under the four-eyes rule, refuse ``action`` by the person who requested ``what``."""
        if not (self.enforced and self.four_eyes and requester):
            return
        me = current_identity().name
        if requester == me:
            raise PermissionDenied(
                f"{me} requested {what}, so {me} may not {action} it: the four-eyes rule is on. "
                "Ask another approver.",
                user=me,
                action=action,
                role=role_for(action),
            )

    # ------------------------------------------------------------ admin only
    def grant(self, user: str, role: str) -> bool:
        """Give ``user`` the ``role`` (admin only, audited); False when it was held already.

        The first grant of a store also makes the granting admin an ``admin`` on record, so
        turning enforcement on never locks them out.
        """
        by = self._admin(user, role)
        with self.store.transaction():
            if not self.store.access.has_grants() and not (user == by and role == "admin"):
                self.store.access.grant(by, "admin", by=by)
            return self.store.access.grant(user, role, by=by)

    def revoke(self, user: str, role: str) -> bool:
        """Take ``role`` from ``user`` (admin only, audited); the last admin cannot be removed."""
        by = self._admin(user, role)
        with self.store.transaction():
            if role == "admin" and self.store.access.count_role("admin") <= 1:
                held = self.store.access.roles_of(user)
                if "admin" in held:
                    raise PermissionDenied(
                        f"{user} is the last admin; grant admin to someone else first.",
                        user=by,
                        action="grant",
                        role="admin",
                    )
            return self.store.access.revoke(user, role, by=by)

    def set_four_eyes(self, on: bool = True) -> None:
        """Turn the four-eyes rule on or off (admin only, audited)."""
        by = self._guard("grant")
        self.store.access.set_setting(FOUR_EYES, bool(on), by=by)

    def _admin(self, user: str, role: str) -> str:
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; roles are {', '.join(ROLES)}.")
        if not str(user).strip():
            raise ConfigError("grant needs a user name.")
        return self._guard("grant")

    def _guard(self, action: str) -> str:
        me = self.require(action)
        owner = _owner_of(self.store.path)
        if not self.enforced and current_identity().name != owner:
            # enforcement is off (everyone may act), but who holds roles is the owner's call
            raise PermissionDenied(
                f"{me} may not change roles: only the home's owner ({owner}) or an admin can.",
                user=me,
                action=action,
                role="admin",
            )
        return me


def _names_self(actor: str, me: str) -> bool:
    """``actor`` is ``me``, or ``me`` with a note of the channel: ``"ada (widget)"``."""
    return actor == me or (actor.startswith(f"{me} (") and actor.endswith(")"))


def _store_of(obj: Any) -> Store | None:
    """The store a stage object records into; None for one built without (nothing to guard:
    it can neither record nor read anything)."""
    for name in ("store", "_store"):
        store = getattr(obj, name, None)
        if store is not None:
            return store
    stages = getattr(obj, "stages", None)
    return None if stages is None else getattr(stages, "store", None)


def _summary(value: Any) -> Any:
    """A short, secret-free picture of an argument for the intent entry."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= 120 else value[:120] + "…"
    if isinstance(value, dict) and len(value) <= 20:
        return {str(k)[:60]: _summary(v) for k, v in value.items() if not isinstance(v, dict)}
    name = getattr(value, "name", None)
    version = getattr(value, "version", None)
    if isinstance(name, str):
        return f"{type(value).__name__}({name}{'' if version is None else f' v{version}'})"
    return type(value).__name__


def requires(action: str, *, check: Callable[..., None] | None = None) -> Callable[[F], F]:
    """Guard a stage method with ``action`` (see :data:`~workbench.governance.ACTIONS`).

    The method's ``actor=`` keyword, when it has one, is checked and replaced by the name to
    record. ``check(self, *args, **kwargs)``, when given, runs after the role check and before
    the intent is recorded (the four-eyes rule): what it refuses leaves no trace either.
    Nested guarded calls check their own action but record no second intent.
    """
    role_for(action)

    def wrap(fn: F) -> F:
        takes_actor = (
            "actor"
            in fn.__code__.co_varnames[: fn.__code__.co_argcount + fn.__code__.co_kwonlyargcount]
        )

        @functools.wraps(fn)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            store = _store_of(self)
            if store is None:
                return fn(self, *args, **kwargs)
            access = Access(store)
            actor = access.require(action, actor=kwargs.get("actor"))
            if check is not None:
                check(self, *args, **kwargs)
            if takes_actor:
                kwargs["actor"] = actor
            depth = _DEPTH.get()
            if depth:
                return fn(self, *args, **kwargs)
            detail = {
                "action": action,
                "call": fn.__qualname__,
                "args": [_summary(a) for a in args[:4]],
                "kwargs": {k: _summary(v) for k, v in kwargs.items() if k != "actor"},
            }
            intent = store.audit("intent", type(self).__name__.lower(), None, detail, actor=actor)
            token = _DEPTH.set(depth + 1)
            try:
                return fn(self, *args, **kwargs)
            except BaseException as exc:
                store.audit(
                    "intent.failed",
                    type(self).__name__.lower(),
                    None,
                    {
                        "intent": intent,
                        "call": fn.__qualname__,
                        "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                    },
                    actor=actor,
                )
                raise
            finally:
                _DEPTH.reset(token)

        guarded.__requires__ = action  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return wrap


def guarded_actions(cls: type) -> dict[str, str]:
    """``{method name: action}`` for every guarded method of ``cls`` (what the docs table shows)."""
    return {
        name: member.__requires__
        for name, member in vars(cls).items()
        if callable(member) and hasattr(member, "__requires__")
    }
