"""Registered models, their versions and aliases, with the history of every alias move."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from workbench._numbers import is_int_text
from workbench.exceptions import ConfigError, NotFoundError, TamperedError
from workbench.lineage._audit import audit_key
from workbench.lineage._db import Repository, default_actor, dumps, is_sha256_hex, utcnow

__all__ = ["ModelRepository", "row_digest"]

_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def row_digest(row: dict[str, Any], key: bytes | None) -> str:
    """The digest binding a version row to its artifact: SHA-256 (``sha256:…``), or with the
    audit key an HMAC-SHA256 (``hmac-sha256:…``), over the canonical JSON of the model name,
    version, artifact hash, signature, params and ``created_at``.

    Examples
    --------
    >>> row = {"model": "m", "version": 1, "artifact_hash": "0" * 64, "signature": {},
    ...        "params": {"C": 1.0}, "created_at": "2026-01-01T00:00:00+00:00"}
    >>> row_digest(row, None)[:7]
    'sha256:'
    """
    body = {
        "model": row["model"],
        "version": int(row["version"]),
        "artifact_hash": row["artifact_hash"],
        "signature": row["signature"],
        "params": row["params"],
        "created_at": row["created_at"],
    }
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    if key is None:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()


def check_model_name(name: Any) -> str:
    """``name`` if it can name a model: text, 1-200 characters, no ``/``, ``\\``, NUL or other
    control characters, not starting with ``.``; else :class:`ConfigError`."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= 200
        or _BAD_NAME.search(name)
        or name.startswith(".")
        or name != name.strip()
    ):
        raise ConfigError(
            f"{name!r} cannot name a model: use 1-200 characters without '/', '\\', control "
            "characters or surrounding spaces, not starting with '.' (e.g. 'cancer-risk')."
        )
    return name


class ModelRepository(Repository):
    """``models``, ``model_versions``, ``aliases`` and ``alias_history``."""

    def ensure(self, name: str, *, task: str) -> dict[str, Any]:
        """The model called ``name``, created for ``task`` when it does not exist yet."""
        with self._db.transaction():
            row = self._db.row("SELECT * FROM models WHERE name = ?", [name])
            if row:
                return row
            new_id = self._db.insert("models", {"name": name, "task": task, "created_at": utcnow()})
            return {"id": new_id, "name": name, "task": task}

    def get(self, name: str) -> dict[str, Any]:
        row = self._db.row("SELECT * FROM models WHERE name = ?", [name])
        if row is None:  # the message lists the known models, so it is built only when needed
            known = ", ".join(r["name"] for r in self.list()) or "none yet"
            raise NotFoundError(
                f"model {name!r} does not exist (known models: {known}); register one first."
            )
        return row

    def list(self) -> list[dict[str, Any]]:
        return self._db.rows("SELECT * FROM models ORDER BY name")

    def add_version(
        self,
        model: str,
        *,
        task: str,
        artifact_hash: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        signature: dict[str, Any],
        experiment_id: int | None,
        trial_id: str | None,
        dataset_version_id: int | None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        check_model_name(model)
        if not is_sha256_hex(artifact_hash):
            raise ConfigError(
                f"artifact hash {str(artifact_hash)[:80]!r} is not a SHA-256 hex digest (64 lowercase "
                "hex characters); register the bundle through ModelRegistry.register."
            )
        db = self._db
        with db.transaction():
            m = self.ensure(model, task=task)
            version = db.scalar(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = ?",
                [m["id"]],
            )
            record = {
                "model_id": m["id"],
                "version": version,
                "artifact_hash": artifact_hash,
                "experiment_id": experiment_id,
                "trial_id": trial_id,
                "dataset_version_id": dataset_version_id,
                "params_json": dumps(params),
                "metrics_json": dumps(metrics),
                "signature_json": dumps(signature),
                "created_at": utcnow(),
            }
            record["row_digest"] = row_digest(
                {
                    "model": model,
                    "version": version,
                    "artifact_hash": artifact_hash,
                    "signature": json.loads(record["signature_json"]),
                    "params": json.loads(record["params_json"]),
                    "created_at": record["created_at"],
                },
                audit_key(),
            )
            mv_id = self._record(
                "model_versions",
                record,
                node="model_version",
                links=[
                    ("experiment", experiment_id, "produced"),
                    ("dataset_version", dataset_version_id, "trained"),
                ],
                audit="model_version.register",
                detail={"model": model, "version": version},
                actor=actor,
            )
            return self.get_version_by_id(mv_id)

    def get_version_by_id(self, mv_id: int, *, verify: bool = True) -> dict[str, Any]:
        """One version with ``model``, ``task`` and its ``aliases``; with ``verify`` (the default)
        its row digest is checked first (:meth:`verify_row`)."""
        row = self._one(
            "SELECT v.*, m.name AS model, m.task AS task FROM model_versions v JOIN models m ON m.id = v.model_id WHERE v.id = ?",
            [mv_id],
            missing=f"model version id {mv_id} does not exist; list them with `workbench models`.",
        )
        if verify:
            self.verify_row(row)
        row["aliases"] = [
            r["alias"]
            for r in self._db.rows(
                "SELECT alias FROM aliases WHERE model_version_id = ? ORDER BY alias", [mv_id]
            )
        ]
        return row

    def get_version(self, model: str, ref: int | str) -> dict[str, Any]:
        """Look a version up by number (``3``, ``"3"``) or alias (``"champion"``)."""
        m = self.get(model)
        if is_int_text(ref) or (
            type(ref) is int and is_int_text(str(ref))
        ):  # not '²', True, 10**30
            row = self._db.row(
                "SELECT id FROM model_versions WHERE model_id = ? AND version = ?",
                [m["id"], int(ref)],
            )
        else:
            row = self._db.row(
                "SELECT model_version_id AS id FROM aliases WHERE model_id = ? AND alias = ?",
                [m["id"], str(ref)],
            )
        if row is None:
            versions = [
                str(r["version"])
                for r in self._db.rows(
                    "SELECT version FROM model_versions WHERE model_id = ? ORDER BY version",
                    [m["id"]],
                )
            ]
            aliases = [
                r["alias"]
                for r in self._db.rows(
                    "SELECT alias FROM aliases WHERE model_id = ? ORDER BY alias", [m["id"]]
                )
            ]
            raise NotFoundError(
                f"model {model!r} has no version {ref!r}; versions: {', '.join(versions) or 'none'}; "
                f"aliases: {', '.join(aliases) or 'none'}. Run `workbench models` to list them."
            )
        return self.get_version_by_id(row["id"])

    def verify_row(self, row: dict[str, Any]) -> None:
        """Raise :class:`TamperedError` unless ``row`` (a version as :meth:`get_version_by_id`
        reads it) still carries the digest written at register.

        A row without a digest is accepted only when it is older than every digested row
        (registered before the binding existed); one added later without a digest was written
        outside workbench. With the audit key set, an unkeyed digest is accepted only on a version
        whose register entry in the audit log is unkeyed too (registered before the key was set).
        """
        stored = row.get("row_digest")
        where = f"model version {row['model']}@{row['version']} (id {row['id']})"
        advice = (
            "Nothing was loaded. Compare it with the audit log (`workbench audit verify`) and "
            "re-register the model from its experiment."
        )
        key = audit_key()
        if stored is None:
            first = self._db.scalar(
                "SELECT MIN(id) FROM model_versions WHERE row_digest IS NOT NULL"
            )
            since = self._db.scalar(
                "SELECT applied_at FROM _migrations WHERE name = '0013_model_binding'"
            )
            legacy = row["id"] < first if first is not None else row["created_at"] < (since or "")
            if not legacy:
                raise TamperedError(
                    f"{where} has no row digest although it was added after versions are bound to "
                    f"their artifacts: it was written outside workbench. {advice}"
                )
            return
        if stored.startswith("hmac-sha256:"):
            if key is None:
                raise ConfigError(
                    f"{where} is bound with the audit key (HMAC); set WORKBENCH_AUDIT_KEY or "
                    "WORKBENCH_AUDIT_KEY_FILE to load it."
                )
        elif key is not None:
            # the version's register entry in the (chained, keyed) audit log says how it was bound
            registered = self._db.scalar(
                "SELECT hash FROM audit_log WHERE action = 'model_version.register' "
                "AND entity_type = 'model_version' AND entity_id = ? ORDER BY id LIMIT 1",
                [row["id"]],
            )
            if registered and registered.startswith("hmac-sha256:"):
                raise TamperedError(
                    f"{where} is bound without the audit key although it was registered with it: "
                    f"the row was rewritten without the key. {advice}"
                )
        want = row_digest(row, key if stored.startswith("hmac-sha256:") else None)
        if not hmac.compare_digest(want, stored):
            raise TamperedError(
                f"{where} no longer matches what was registered (its artifact hash, signature, "
                f"params or creation time were changed, e.g. swapped with another version's). {advice}"
            )

    def set_alias(
        self, model: str, alias: str, version: int, *, actor: str | None = None, reason: str = ""
    ) -> None:
        db = self._db
        with db.transaction():
            mv = self.get_version(model, version)
            prev = db.row(
                "SELECT model_version_id FROM aliases WHERE model_id = ? AND alias = ?",
                [mv["model_id"], alias],
            )
            db.execute(
                "INSERT INTO aliases (model_id, alias, model_version_id) VALUES (?, ?, ?) "
                "ON CONFLICT (model_id, alias) DO UPDATE SET model_version_id = excluded.model_version_id",
                (mv["model_id"], alias, mv["id"]),
            )
            db.insert(
                "alias_history",
                {
                    "model_id": mv["model_id"],
                    "alias": alias,
                    "model_version_id": mv["id"],
                    "previous_version_id": prev["model_version_id"] if prev else None,
                    "actor": actor or default_actor(),
                    "reason": reason,
                    "at": utcnow(),
                },
            )
            db.audit(
                "alias.set",
                "model_version",
                mv["id"],
                {"alias": alias, "reason": reason},
                actor=actor,
            )

    def list_alias_history(self, model: str) -> list[dict[str, Any]]:
        return self._db.rows(
            "SELECT h.alias, h.actor, h.reason, h.at, v.version, pv.version AS previous_version FROM alias_history h "
            "JOIN models m ON m.id = h.model_id LEFT JOIN model_versions v ON v.id = h.model_version_id "
            "LEFT JOIN model_versions pv ON pv.id = h.previous_version_id WHERE m.name = ? ORDER BY h.id",
            [model],
        )

    def list_versions(self, model: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT v.id FROM model_versions v JOIN models m ON m.id = v.model_id"
        params: list[Any] = []
        if model:
            sql += " WHERE m.name = ?"
            params.append(model)
        return [
            self.get_version_by_id(r["id"], verify=False)
            for r in self._db.rows(sql + " ORDER BY m.name, v.version", params)
        ]
