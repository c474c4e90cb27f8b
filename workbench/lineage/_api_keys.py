"""Named API keys of serving endpoints (``api_keys``): only each key's SHA-256 digest is stored.

The secret itself is shown once, by :meth:`workbench.serving.Serving.create_api_key`; this
module only stores, lists and revokes the digests. Every change is audited in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.exceptions import ConfigError
from workbench.lineage._db import Repository, dumps, is_sha256_hex, utcnow

__all__ = ["ApiKeyRepository"]

_PUBLIC = "id, name, scopes_json, deployment, created_by, created_at, revoked_at"


class ApiKeyRepository(Repository):
    """``api_keys``: name, SHA-256 of the key, scopes, optional deployment, who made and revoked it.

    Examples
    --------
    >>> from workbench.lineage import Store
    >>> store = Store(":memory:")
    >>> row = store.api_keys.create("ci", "a" * 64, ["predict"], None, "ada")
    >>> [k["name"] for k in store.api_keys.list()], "key_hash" in store.api_keys.list()[0]
    (['ci'], False)
    >>> store.api_keys.find_by_hash("a" * 64)["scopes"]
    ['predict']
    """

    def create(
        self,
        name: str,
        key_hash: str,
        scopes: Sequence[str],
        deployment: str | None,
        created_by: str,
    ) -> dict[str, Any]:
        """Record a key; :class:`ConfigError` when the name (or the digest) is taken."""
        if not is_sha256_hex(key_hash):
            raise ConfigError("key_hash must be the lowercase SHA-256 hex digest of the key.")
        with self._db.transaction():
            if self._db.scalar("SELECT 1 FROM api_keys WHERE name = ?", [name]) is not None:
                raise ConfigError(
                    f"an API key named {name!r} exists already; revoke it first or pick another name."
                )
            if self._db.scalar("SELECT 1 FROM api_keys WHERE key_hash = ?", [key_hash]):
                raise ConfigError("this key is registered already; generate a new one.")
            key_id = self._db.insert(
                "api_keys",
                {
                    "name": name,
                    "key_hash": key_hash,
                    "scopes_json": dumps(sorted(set(scopes))),
                    "deployment": deployment,
                    "created_by": created_by,
                    "created_at": utcnow(),
                },
            )
            self._db.audit(
                "api_key.create",
                "api_key",
                key_id,
                {"name": name, "scopes": sorted(set(scopes)), "deployment": deployment},
                actor=created_by,
            )
        return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        """One key's public record (never its digest)."""
        return _public(
            self._one(
                f"SELECT {_PUBLIC} FROM api_keys WHERE name = ?",
                [name],
                missing=f"no API key named {name!r}; list them with serving.api_keys().",
            )
        )

    def list(self, *, include_revoked: bool = True) -> list[dict[str, Any]]:
        """Every key's public record, oldest first: never the digest."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        return [
            _public(r) for r in self._db.rows(f"SELECT {_PUBLIC} FROM api_keys{where} ORDER BY id")
        ]

    def active_digests(self, deployment: str | None = None) -> list[dict[str, Any]]:
        """``{name, key_hash, scopes}`` of every unrevoked key valid for ``deployment``
        (keys bound to it and keys bound to none): what a replica receives."""
        rows = self._db.rows(
            "SELECT name, key_hash, scopes_json FROM api_keys WHERE revoked_at IS NULL "
            "AND (deployment IS NULL OR deployment = ?) ORDER BY id",
            [deployment],
        )
        return [_public(r) for r in rows]

    def revoke(self, name: str, *, by: str) -> dict[str, Any]:
        """Mark a key revoked (its row stays, so logs keep naming it); NotFoundError if unknown."""
        with self._db.transaction():
            row = self.get(name)
            if row["revoked_at"] is None:
                self._db.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (utcnow(), row["id"])
                )
                self._db.audit("api_key.revoke", "api_key", row["id"], {"name": name}, actor=by)
        return self.get(name)

    def find_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        """The unrevoked key with this digest (public record), or None."""
        row = self._db.row(
            f"SELECT {_PUBLIC} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
            [key_hash],
        )
        return None if row is None else _public(row)


def _public(row: dict[str, Any]) -> dict[str, Any]:
    row["scopes"] = list(row.get("scopes") or [])
    return row
