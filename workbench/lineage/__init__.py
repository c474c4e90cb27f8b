"""Lineage store (SQLite) and content-addressed artifact store at the bottom of every stage."""

from workbench.lineage._artifacts import (
    ArtifactStore,
    default_cache_dir,
    is_uri,
    mask_uri,
    sha256_bytes,
    sha256_file,
)
from workbench.lineage._audit import AuditVerification
from workbench.lineage._db import is_sha256_hex, utcnow
from workbench.lineage._graph import describe_node, format_chain, lineage_chain
from workbench.lineage._store import NODE_TABLES, Store

NODE_TYPES = tuple(NODE_TABLES)

__all__ = [
    "AuditVerification",
    "is_sha256_hex",
    "Store",
    "ArtifactStore",
    "default_cache_dir",
    "is_uri",
    "mask_uri",
    "NODE_TYPES",
    "sha256_bytes",
    "sha256_file",
    "utcnow",
    "lineage_chain",
    "describe_node",
    "format_chain",
]
