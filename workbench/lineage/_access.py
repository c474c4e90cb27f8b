"""Access records: who holds which role (``access_grants``) and the access settings
(``access_settings``: the four-eyes rule). Every change is audited in the same transaction.

The policy (which action needs which role, who acts) is :mod:`workbench.governance`; this module
only stores and reads it.
"""

from __future__ import annotations

import json
from typing import Any

from workbench.lineage._db import Repository, dumps, utcnow

__all__ = ["AccessRepository"]


class AccessRepository(Repository):
    """Role grants and access settings of one store."""

    # ------------------------------------------------------------------ grants
    def has_grants(self) -> bool:
        """Whether any role is granted (a non-empty table turns enforcement on)."""
        return self._db.scalar("SELECT 1 FROM access_grants LIMIT 1") is not None

    def roles_of(self, user: str) -> set[str]:
        return {
            r["role"]
            for r in self._db.rows("SELECT role FROM access_grants WHERE user = ?", [str(user)])
        }

    def grants(self) -> list[dict[str, Any]]:
        """Every grant: ``user``, ``role``, ``granted_by``, ``granted_at``, by user then role."""
        return self._db.rows("SELECT * FROM access_grants ORDER BY user, role")

    def grant(self, user: str, role: str, *, by: str) -> bool:
        """Grant ``role`` to ``user``; False when it was held already (nothing recorded)."""
        with self._db.transaction():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO access_grants (user, role, granted_by, granted_at) "
                "VALUES (?, ?, ?, ?)",
                (str(user), str(role), str(by), utcnow()),
            )
            if not cur.rowcount:
                return False
            self._db.audit("access.grant", "user", None, {"user": user, "role": role}, actor=by)
            return True

    def revoke(self, user: str, role: str, *, by: str) -> bool:
        """Take ``role`` from ``user``; False when it was not held (nothing recorded)."""
        with self._db.transaction():
            cur = self._db.execute(
                "DELETE FROM access_grants WHERE user = ? AND role = ?", (str(user), str(role))
            )
            if not cur.rowcount:
                return False
            self._db.audit("access.revoke", "user", None, {"user": user, "role": role}, actor=by)
            return True

    def count_role(self, role: str) -> int:
        return int(
            self._db.scalar("SELECT COUNT(*) FROM access_grants WHERE role = ?", [role]) or 0
        )

    # ---------------------------------------------------------------- settings
    def setting(self, key: str, default: Any = None) -> Any:
        value = self._db.scalar("SELECT value_json FROM access_settings WHERE key = ?", [key])
        return default if value is None else json.loads(value)

    def set_setting(self, key: str, value: Any, *, by: str) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO access_settings (key, value_json, updated_by, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value_json = excluded.value_json, updated_by = excluded.updated_by, "
                "updated_at = excluded.updated_at",
                (key, dumps(value), by, utcnow()),
            )
            self._db.audit("access.setting", "setting", None, {key: value}, actor=by)

    # ------------------------------------------------------- who asked for what
    def first_actor(self, action: str, entity_type: str, entity_id: int) -> str | None:
        """The actor of the oldest ``action`` audit entry on one entity (who registered a
        version, who requested a job), or None when there is none."""
        return self._db.scalar(
            "SELECT actor FROM audit_log WHERE action = ? AND entity_type = ? AND entity_id = ? "
            "ORDER BY id LIMIT 1",
            [action, entity_type, int(entity_id)],
        )

    def policy_author(self, policy: str) -> str | None:
        """Who last saved retraining policy ``policy`` (the person asking for its retraining)."""
        return self._db.scalar(
            "SELECT actor FROM audit_log WHERE action = 'policy.save' "
            "AND json_extract(detail_json, '$.name') = ? ORDER BY id DESC LIMIT 1",
            [policy],
        )
