"""Where a dataset version's rows come from: one :class:`Source` interface for frames, files, databases, APIs and streams.

A source reads rows; :meth:`Datasets.ingest` validates and records them. A source keeps no state of
its own between reads: what it needs to read only what is new (a watermark, the ids of the last
messages) is handed to :meth:`Source.fetch` from the last recorded version and comes back in
:class:`Fetched` to be recorded with the next one, so a restarted process (or the scheduler actor)
goes on where the store says.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Fetched", "FrameSource", "Source", "as_source", "register_source", "source_from_spec"]


@dataclass
class Fetched:
    """What one read of a source gave.

    Attributes
    ----------
    frame : polars.DataFrame
        The rows read.
    source : str
        Where they came from, for the record: secrets masked.
    state : dict
        The source's cursor after this read (recorded with the version, handed to the next read).
    manifest : list of dict
        For a multi-file source, one ``{"path", "size", "hash"}`` per file.
    unchanged : bool
        True when there is nothing new to record (an incremental source with no new rows):
        ``ingest`` then returns the last version unchanged.
    commit : callable, optional
        Called once the version is recorded (a stream acknowledges its messages here).
    abort : callable, optional
        Called when the read is not recorded (validation failed, an error): a stream leaves its
        messages unacknowledged so the broker delivers them again.
    """

    frame: pl.DataFrame
    source: str
    state: dict[str, Any] = field(default_factory=dict)
    manifest: list[dict[str, Any]] = field(default_factory=list)
    unchanged: bool = False
    commit: Callable[[], None] | None = None
    abort: Callable[[], None] | None = None


class Source(ABC):
    """A place rows are read from.

    Subclasses set ``kind`` (a short name recorded with each version), implement :meth:`fetch`,
    :meth:`describe` and :meth:`to_spec`, and are registered with :func:`register_source` so a stored
    spec (a schedule) can be read back with :func:`source_from_spec`. A spec never holds a secret:
    passwords and tokens are named by the environment variable that holds them.
    """

    kind: ClassVar[str] = ""

    @abstractmethod
    def fetch(self, state: dict[str, Any]) -> Fetched:
        """Read the rows that are new since ``state`` (the last version's recorded cursor; ``{}`` at first)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the rows come from, secrets masked (recorded as the version's ``source``)."""

    @abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """JSON-able constructor arguments without secrets; ``{"kind": ..., **args}``."""

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Source:
        args = {k: v for k, v in spec.items() if k != "kind"}
        return cls(**args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


_KINDS: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator: make ``cls`` readable back from its spec by its ``kind``."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} needs a kind")
    _KINDS[cls.kind] = cls
    return cls


def source_from_spec(spec: dict[str, Any]) -> Source:
    """The source a stored spec describes."""
    _load_builtin_sources()
    kind = spec.get("kind")
    if kind not in _KINDS:
        raise ConfigError(
            f"unknown source kind {kind!r} in {spec!r}; known kinds: {sorted(_KINDS)}."
        )
    return _KINDS[kind].from_spec(spec)


@register_source
class FrameSource(Source):
    """A polars frame already in memory (not schedulable: its spec cannot hold the rows)."""

    kind = "frame"

    def __init__(self, frame: pl.DataFrame):
        self.frame = frame

    def fetch(self, state: dict[str, Any]) -> Fetched:
        return Fetched(self.frame, self.describe())

    def describe(self) -> str:
        return "dataframe"

    def to_spec(self) -> dict[str, Any]:
        raise ConfigError(
            "a polars frame cannot be re-read later; schedule a file, database, API or stream source."
        )


def _load_builtin_sources() -> None:
    """Import the modules whose sources register themselves (lazily: they pull in their clients)."""
    import importlib

    for module in ("_files", "_sql", "_http", "_mqtt"):
        try:
            importlib.import_module(f"workbench.datasets.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"workbench.datasets.{module}":
                raise


def as_source(obj: Any) -> Source:
    """The :class:`Source` for what a user passed to ``ingest``: a source, a frame, a path or a URI.

    ``postgresql://``/``sqlite:///`` URIs need a table or a query (:class:`SqlSource`), ``http(s)://``
    an API source (:class:`HttpSource`), ``mqtt://host:port/topic`` a stream (:class:`MqttSource`);
    anything else is a file, a folder or a glob, local or on a ``pyarrow.fs`` URI (:class:`FileSource`).
    """
    import polars as pl

    if isinstance(obj, Source):
        return obj
    if isinstance(obj, pl.DataFrame):
        return FrameSource(obj)
    if isinstance(obj, pl.LazyFrame):
        return FrameSource(obj.collect())
    if not isinstance(obj, str | Path):
        raise ConfigError(
            f"cannot ingest a {type(obj).__name__}; pass a path, a URI, a polars frame or a source "
            "(FileSource, SqlSource, HttpSource, MqttSource)."
        )
    text = str(obj)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    _load_builtin_sources()
    if scheme.startswith(("postgres", "mysql", "sqlite", "mssql", "redshift", "oracle")):
        raise ConfigError(
            "a database URI needs a table or a query: "
            "ingest(SqlSource(uri, table='...') or SqlSource(uri, query='SELECT ...'), name=...)."
        )
    if scheme in {"http", "https"} and "http" in _KINDS:
        return _KINDS["http"](text)
    if scheme == "mqtt" and "mqtt" in _KINDS:
        return _KINDS["mqtt"].from_uri(text)  # type: ignore[attr-defined]
    return _KINDS["files"](text)
