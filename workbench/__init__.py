"""workbench: notebook-first MLOps on Ray — data to monitored, self-retraining service.

Heavy libraries (ray, torch, alibi-detect) load only when a stage needs them,
so ``import workbench`` stays fast.

Examples
--------
>>> import workbench as wb
>>> bench = wb.Workbench()            # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench._version import __version__
from workbench.exceptions import (
    ArtifactCorruptError,
    DatasetValidationError,
    InvalidRequestError,
    NotFoundError,
    WorkbenchError,
)

__all__ = [
    "Workbench",
    "WorkbenchError",
    "DatasetValidationError",
    "NotFoundError",
    "ArtifactCorruptError",
    "InvalidRequestError",
    "__version__",
]

if TYPE_CHECKING:
    from workbench.api import Workbench


def __getattr__(name: str) -> Any:
    if name == "Workbench":
        from workbench.api import Workbench

        return Workbench
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
