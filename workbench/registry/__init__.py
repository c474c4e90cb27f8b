"""Model registry: versions, aliases (``champion``) with history, hash-verified loading, rollback."""

from workbench.registry._bundle import ModelBundle, allow_version_mismatch, check_versions
from workbench.registry._registry import ModelRegistry, ModelVersion

__all__ = [
    "ModelRegistry",
    "ModelVersion",
    "ModelBundle",
    "allow_version_mismatch",
    "check_versions",
]
