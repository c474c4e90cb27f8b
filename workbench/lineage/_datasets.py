"""Dataset versions: content-hashed, never recorded twice, with their parent for derived data."""

from __future__ import annotations

from typing import Any

from workbench.exceptions import NotFoundError
from workbench.lineage._db import Repository, dumps, utcnow

__all__ = ["DatasetRepository"]

_VERSION = (
    "SELECT v.*, d.name AS dataset FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
)


class DatasetRepository(Repository):
    """``datasets`` and ``dataset_versions``."""

    def ensure(self, name: str) -> dict[str, Any]:
        """The dataset called ``name``, created when it does not exist yet."""
        with self._db.transaction():
            row = self._db.row("SELECT * FROM datasets WHERE name = ?", [name])
            if row:
                return row
            new_id = self._db.insert("datasets", {"name": name, "created_at": utcnow()})
            return {"id": new_id, "name": name}

    def add_version(
        self,
        name: str,
        *,
        content_hash: str,
        artifact_hash: str,
        source: str,
        n_rows: int,
        n_cols: int,
        schema: dict[str, str],
        target: str | None,
        validation: list[dict[str, Any]],
        parent_id: int | None = None,
        source_spec: dict[str, Any] | None = None,
        source_state: dict[str, Any] | None = None,
        manifest: list[dict[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Record a dataset version; returns ``(row, created)``. The same content is never recorded twice.

        ``source_spec`` is the source's JSON description without secrets (what a schedule re-reads),
        ``source_state`` its cursor after this version (a watermark, the last message ids), and
        ``manifest`` one ``{"path", "size", "hash"}`` per file a multi-file source read.
        """
        db = self._db
        with db.transaction():
            ds = self.ensure(name)
            existing = db.row(
                "SELECT id FROM dataset_versions WHERE dataset_id = ? AND content_hash = ?",
                [ds["id"], content_hash],
            )
            if existing:
                return self.get_version_by_id(existing["id"]), False
            version = db.scalar(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM dataset_versions WHERE dataset_id = ?",
                [ds["id"]],
            )
            new_id = self._record(
                "dataset_versions",
                {
                    "dataset_id": ds["id"],
                    "version": version,
                    "content_hash": content_hash,
                    "artifact_hash": artifact_hash,
                    "source": source,
                    "n_rows": n_rows,
                    "n_cols": n_cols,
                    "schema_json": dumps(schema),
                    "target": target,
                    "validation_json": dumps(validation),
                    "parent_id": parent_id,
                    "source_spec_json": dumps(source_spec or {}),
                    "source_state_json": dumps(source_state or {}),
                    "manifest_json": dumps(manifest or []),
                    "created_at": utcnow(),
                },
                node="dataset_version",
                links=[("dataset_version", parent_id, "derived")],
                audit="dataset_version.create",
                detail={"name": name, "version": version},
            )
            return self.get_version_by_id(new_id), True

    def get_version_by_id(self, dv_id: int) -> dict[str, Any]:
        return self._one(
            _VERSION + " WHERE v.id = ?",
            [dv_id],
            missing=f"dataset version id {dv_id} does not exist; list them with bench.datasets.list().",
        )

    def get_version(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Version ``version`` of dataset ``name``, or its latest."""
        sql = "SELECT v.id FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE d.name = ?"
        params: list[Any] = [name]
        if version is None:
            sql += " ORDER BY v.version DESC LIMIT 1"
        else:
            sql += " AND v.version = ?"
            params.append(version)
        row = self._db.row(sql, params)
        if row is None:
            what = f"{name}" + (f" version {version}" if version is not None else "")
            raise NotFoundError(
                f"dataset {what} does not exist; ingest it first with wb.datasets.ingest(...)."
            )
        return self.get_version_by_id(row["id"])

    def list_versions(self) -> list[dict[str, Any]]:
        return self._db.rows(_VERSION + " ORDER BY v.id")
