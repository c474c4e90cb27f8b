"""Registered models, their versions and aliases, with the history of every alias move."""

from __future__ import annotations

from typing import Any

from workbench._numbers import is_int_text
from workbench.exceptions import NotFoundError
from workbench.lineage._db import Repository, default_actor, dumps, utcnow

__all__ = ["ModelRepository"]


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
        db = self._db
        with db.transaction():
            m = self.ensure(model, task=task)
            version = db.scalar(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = ?",
                [m["id"]],
            )
            mv_id = self._record(
                "model_versions",
                {
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
                },
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

    def get_version_by_id(self, mv_id: int) -> dict[str, Any]:
        """One version with ``model``, ``task`` and its ``aliases``."""
        row = self._one(
            "SELECT v.*, m.name AS model, m.task AS task FROM model_versions v JOIN models m ON m.id = v.model_id WHERE v.id = ?",
            [mv_id],
            missing=f"model version id {mv_id} does not exist; list them with `workbench models`.",
        )
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
            self.get_version_by_id(r["id"])
            for r in self._db.rows(sql + " ORDER BY m.name, v.version", params)
        ]
