"""Files as a source: CSV or Parquet on the local disk."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.datasets._sources import Fetched, Source, register_source
from workbench.exceptions import ConfigError, DatasetValidationError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["FileSource"]


@register_source
class FileSource(Source):
    """A CSV or Parquet file."""

    kind = "files"

    def __init__(self, path: str | Path):
        self.path = str(path)

    def fetch(self, state: dict[str, Any]) -> Fetched:
        return Fetched(_read(Path(self.path)), self.describe())

    def describe(self) -> str:
        return str(Path(self.path).resolve())

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path}


def _read(path: Path) -> pl.DataFrame:
    import polars as pl

    if not path.exists():
        raise ConfigError(f"{path} does not exist; pass the path of a CSV or Parquet file.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(path, infer_schema_length=10_000)
        if suffix in {".parquet", ".pq"}:
            return pl.read_parquet(path)
    except Exception as exc:
        raise DatasetValidationError(
            f"could not read {path}: {exc}. Check that the file is valid {suffix[1:]}."
        ) from exc
    raise ConfigError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet.")
