"""Where workbench keeps its state: ``WORKBENCH_HOME`` and the paths under it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "resolve_home"]

DEFAULT_HOME = ".workbench"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the absolute workbench home: ``home``, else ``$WORKBENCH_HOME``, else ``./.workbench``."""
    raw = home if home is not None else os.environ.get("WORKBENCH_HOME", DEFAULT_HOME)
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the lineage database and the artifact store."""

    home: Path

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Settings:
        return cls(home=resolve_home(home))

    @property
    def db_path(self) -> Path:
        return self.home / "lineage.db"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"
