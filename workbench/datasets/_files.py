"""Files as a source: CSV, Parquet, JSON and NDJSON files, folders, globs and hive partitions, on the
local disk or any ``pyarrow.fs`` URI; Delta tables by their table version.

Each file's bytes are read once (memory-mapped when local): hashed with xxh3-128 for the version's
manifest, then parsed by polars from those same bytes. A version whose files hash as the last one's
did is not parsed at all (:meth:`FileSource.fetch`).
"""

from __future__ import annotations

import json
import mmap
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode

from workbench.datasets._hashing import bytes_hash, content_hash
from workbench.datasets._sources import Fetched, Source, register_source
from workbench.exceptions import ConfigError, DatasetValidationError, SourceError
from workbench.lineage import is_uri, mask_uri

if TYPE_CHECKING:
    import polars as pl

__all__ = ["DeltaSource", "FileSource", "read_delta_reference"]

#: File name suffix -> format.
SUFFIXES = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
FORMATS = ("csv", "parquet", "json", "ndjson")
_GLOB = re.compile(r"[*?\[]")
_HIVE = re.compile(r"^([^=/]+)=(.*)$")
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# storage options that carry a secret: never written into a spec
_SECRET_OPTIONS = {"access_key", "secret_key", "session_token", "account_key", "sas_token", "token"}
_CSV_MIXED = re.compile(r"could not parse `(.*?)` as dtype `(.*?)` at column '(.*?)'")
_CSV_INFER = 10_000


@dataclass
class _File:
    path: str  # the filesystem's path
    display: str  # what the manifest and messages show (a local path or ``scheme://path``)
    relative: str  # below the source's base folder, "/"-separated (hive keys come from here)
    size: int
    format: str


@register_source
class FileSource(Source):
    """Rows from one file, a folder of files, or a glob: CSV, Parquet, JSON (a list of records), NDJSON.

    Parameters
    ----------
    path_or_uri : str or Path
        A file, a folder (every data file below it, names starting with ``.`` or ``_`` skipped), or a
        glob (``data/*.csv``, ``s3://bucket/prefix/**/*.parquet``; ``**`` spans folders). A local path
        or any ``pyarrow.fs`` URI (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``, ``file://``); an S3
        endpoint comes from ``AWS_ENDPOINT_URL`` or the URI's ``?endpoint_override=host:port&scheme=http``
        and credentials from the usual AWS environment, as for artifact storage. In a URI, ``?``
        starts the query, so globs there use ``*`` and ``[...]`` only.
    format : {"csv", "parquet", "json", "ndjson"}, optional
        Default: from each file's suffix (``.csv``, ``.parquet``/``.pq``, ``.json``, ``.ndjson``/``.jsonl``);
        every file of one source has the same format.
    schema_overrides : dict, optional
        ``{column: polars dtype}`` (or its name, ``"String"``, ``"Int64"``...) where inference guesses
        wrong, e.g. ``{"zip": pl.Utf8}`` for a column of mostly numbers; applies to hive columns too.
    hive : bool, optional
        Add ``key=value`` folder names (``year=2024/month=01/part.parquet``) as columns. Default:
        when every file lies under such folders. Values that are all integers become ``Int64``,
        all numbers ``Float64``, else ``String``.
    storage_options : dict, optional
        More ``pyarrow.fs`` URI options (``{"endpoint_override": "host:9000", "scheme": "http",
        "region": "eu-west-1"}``), added to the URI's query. Secret options are used but never recorded.

    Notes
    -----
    Each file is read once: its bytes (memory-mapped when local) are hashed with xxh3-128 for the
    manifest (``[{"path", "size", "hash"}]``) and parsed from the same bytes. The version's cursor
    (``source_state``) holds ``{"fingerprint": ...}``, a hash of the manifest and the read options;
    when the next read's fingerprint is the same (the same files with the same bytes), the files are
    not parsed and ``ingest`` returns the last version (``unchanged=True``). Files that differ only
    in format or compression but hold the same rows are parsed and give the same content hash.

    Examples
    --------
    >>> src = FileSource("data/year=*/*.parquet")                             # doctest: +SKIP
    >>> wb.datasets.ingest(src, name="events").manifest[0]["hash"][:9]        # doctest: +SKIP
    'xxh3-128:'
    >>> FileSource("s3://bucket/raw/*.csv", schema_overrides={"zip": "String"})  # doctest: +SKIP
    """

    kind = "files"

    def __init__(
        self,
        path_or_uri: str | Path | None = None,
        *,
        format: str | None = None,
        schema_overrides: dict[str, Any] | None = None,
        hive: bool | None = None,
        storage_options: dict[str, Any] | None = None,
        path: str | Path | None = None,
    ):
        location = path_or_uri if path_or_uri is not None else path  # ``path``: older specs
        if location is None:
            raise ConfigError("FileSource needs a path, a folder, a glob or a URI.")
        if format is not None and format not in FORMATS:
            raise ConfigError(f"unknown file format {format!r}; use one of {', '.join(FORMATS)}.")
        self.location = str(location)
        self.format = format
        self.schema_overrides = {k: _dtype(v) for k, v in (schema_overrides or {}).items()}
        self.hive = hive
        self.storage_options = dict(storage_options or {})

    # -------------------------------------------------------------- interface
    def fetch(self, state: dict[str, Any]) -> Fetched:
        """Hash every file; parse them unless their fingerprint equals ``state["fingerprint"]``."""
        import polars as pl

        fs, files = self._files()
        blobs, hashes = _read_all(fs, files, local=not is_uri(self.location))
        try:
            manifest = [
                {"path": f.display, "size": f.size, "hash": h}
                for f, h in zip(files, hashes, strict=True)
            ]
            fingerprint = self._fingerprint(manifest)
            new_state = {"fingerprint": fingerprint, "files": len(manifest)}
            if state.get("fingerprint") == fingerprint:
                return Fetched(pl.DataFrame(), self.describe(), new_state, manifest, unchanged=True)
            frame = self._parse(files, blobs)
        finally:
            for b in blobs:
                _close(b)
        return Fetched(frame, self.describe(), new_state, manifest)

    def manifest(self) -> list[dict[str, Any]]:
        """``[{"path", "size", "hash"}]`` of the files this source reads now, without parsing them.

        Examples
        --------
        >>> FileSource("data/*.csv").manifest()[0]["hash"][:9]                 # doctest: +SKIP
        'xxh3-128:'
        """
        fs, files = self._files()
        blobs, hashes = _read_all(fs, files, local=not is_uri(self.location))
        try:
            return [
                {"path": f.display, "size": f.size, "hash": h}
                for f, h in zip(files, hashes, strict=True)
            ]
        finally:
            for b in blobs:
                _close(b)

    def describe(self) -> str:
        if is_uri(self.location):
            return mask_uri(self.location)
        return os.path.abspath(os.path.expanduser(self.location))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind, "path": _spec_location(self.location)}
        if self.format:
            spec["format"] = self.format
        if self.schema_overrides:
            spec["schema_overrides"] = {k: _dtype_name(v) for k, v in self.schema_overrides.items()}
        if self.hive is not None:
            spec["hive"] = self.hive
        options = {
            k: v for k, v in self.storage_options.items() if k.lower() not in _SECRET_OPTIONS
        }
        if options:
            spec["storage_options"] = options
        return spec

    # ---------------------------------------------------------------- listing
    def _fingerprint(self, manifest: list[dict[str, Any]]) -> str:
        options = {
            "format": self.format,
            "schema_overrides": {k: str(v) for k, v in self.schema_overrides.items()},
            "hive": self.hive,
        }
        payload = json.dumps({"files": manifest, "options": options}, sort_keys=True)
        return bytes_hash(payload.encode())

    def _files(self) -> tuple[Any, list[_File]]:
        """The filesystem and the files this source reads, sorted by path."""
        import pyarrow.fs as pafs

        fs, base, pattern, prefix = self._filesystem()
        where = self.describe()
        try:
            if pattern is None:
                info = fs.get_file_info(base)
                if info.type == pafs.FileType.NotFound:
                    raise ConfigError(
                        f"{where} does not exist; pass the path of a file, a folder or a glob "
                        "(data/*.csv) of CSV, Parquet, JSON or NDJSON files."
                    )
                if info.type == pafs.FileType.File:
                    name = info.path.rsplit("/", 1)[-1]
                    infos, explicit = [(info, name)], True
                else:
                    if fs.get_file_info(f"{base}/_delta_log").type == pafs.FileType.Directory:
                        # its Parquet files include rows the table has since removed
                        raise ConfigError(
                            f"{where} is a Delta table; read it with DeltaSource({where!r}), "
                            "which records its table version."
                        )
                    infos, explicit = self._below(fs, base, None), False
            else:
                deep = "/" in pattern or "**" in pattern  # else one folder's listing is enough
                infos = self._below(fs, base, _glob_regex(pattern), recursive=deep)
                explicit = False
                if not infos and fs.get_file_info(base).type == pafs.FileType.NotFound:
                    raise ConfigError(
                        f"{where}: the folder (or bucket) above the glob does not exist; check "
                        "the path."
                    )
        except OSError as exc:
            raise SourceError(
                f"could not list {where}: {str(exc).splitlines()[0][:300]}. Check the path, the "
                "endpoint (AWS_ENDPOINT_URL or ?endpoint_override=host:port&scheme=http) and the "
                "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)."
            ) from exc
        files = []
        for info, rel in infos:
            fmt = self.format or SUFFIXES.get(Path(info.path).suffix.lower())
            if fmt is None:
                if explicit:
                    raise ConfigError(
                        f"{where}: unsupported file type {Path(info.path).suffix!r}; use .csv, "
                        f".parquet, .json or .ndjson files or pass format= (one of {', '.join(FORMATS)})."
                    )
                continue  # a README or a checksum beside the data in a folder
            files.append(_File(info.path, prefix + info.path, rel, info.size, fmt))
        if not files:
            raise ConfigError(
                f"{where} matched no CSV, Parquet, JSON or NDJSON files; check the path or glob "
                "(** spans folders) or pass format= for files without those suffixes."
            )
        formats = sorted({f.format for f in files})
        if len(formats) > 1:
            raise ConfigError(
                f"{where} holds files of several formats ({', '.join(formats)}); one source reads "
                "one format: narrow the glob (data/*.csv) or pass format=."
            )
        return fs, files

    def _filesystem(self) -> tuple[Any, str, str | None, str]:
        """``(filesystem, base folder or file, glob below it or None, display prefix)``."""
        import pyarrow.fs as pafs

        text = self.location
        if not is_uri(text):
            path = os.path.abspath(os.path.expanduser(text))
            base, pattern = _split_glob(path)
            return pafs.LocalFileSystem(), base, pattern, ""
        head, _, query = text.partition("?")
        scheme = head.split("://", 1)[0]
        rest = head.split("://", 1)[1]
        base_rest, pattern = _split_glob(rest)
        extra = urlencode({k: str(v) for k, v in self.storage_options.items()}, safe=":/")
        query = "&".join(q for q in (query, extra) if q)
        uri = f"{scheme}://{base_rest}" + (f"?{query}" if query else "")
        try:
            # the URI is handled as for artifact storage: pyarrow's parser, endpoint and credentials
            fs, base = pafs.FileSystem.from_uri(uri)
        except Exception as exc:
            raise ConfigError(
                f"{self.describe()} could not be opened: {str(exc).splitlines()[0][:300]}. Check the "
                "URI (s3://bucket/prefix/*.parquet, file:///a/path), the endpoint "
                "(?endpoint_override=host:port&scheme=http) and the credentials."
            ) from exc
        return fs, base.rstrip("/") or base, pattern, f"{scheme}://"

    @staticmethod
    def _below(
        fs: Any, base: str, regex: re.Pattern[str] | None, *, recursive: bool = True
    ) -> list[tuple[Any, str]]:
        import pyarrow.fs as pafs

        found = []
        selector = pafs.FileSelector(base, recursive=recursive, allow_not_found=True)
        for info in fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(base) :].lstrip("/")
            if any(part.startswith((".", "_")) for part in rel.split("/")):
                continue  # _SUCCESS, .crc, _delta_log: not data
            if regex is None or regex.fullmatch(rel):
                found.append((info, rel))
        return sorted(found, key=lambda x: x[0].path)

    # ---------------------------------------------------------------- parsing
    def _parse(self, files: list[_File], blobs: list[Any]) -> pl.DataFrame:
        partitions = self._partitions(files)
        frames = []
        for f, blob, keys in zip(files, blobs, partitions, strict=True):
            frame = _parse_one(blob, f, self.schema_overrides)
            if keys:
                frame = _add_partitions(frame, keys, f)
            frames.append(frame)
        return _concat(frames, files)

    def _partitions(self, files: list[_File]) -> list[dict[str, Any]]:
        """Per file its hive ``{column: value}`` (typed, overrides applied); ``{}`` when not hive."""
        import polars as pl

        if self.hive is False:
            return [{} for _ in files]
        raw = []
        for f in files:
            parts = [_HIVE.match(p) for p in f.relative.split("/")[:-1]]
            raw.append({m.group(1): unquote(m.group(2)) for m in parts if m})
        keys = {tuple(r) for r in raw}
        if self.hive is None and (len(keys) != 1 or () in keys):
            return [{} for _ in files]
        if len(keys) != 1 or () in keys:
            shown = ", ".join("/".join(k) or "(none)" for k in sorted(keys))
            raise ConfigError(
                f"{self.describe()}: hive=True but the files' key=value folders differ ({shown}); "
                "every file must lie under the same partition keys (year=2024/month=01/...)."
            )
        columns = {}
        for key in raw[0]:
            values = [None if r[key] in ("", _HIVE_NULL) else r[key] for r in raw]
            dtype = self.schema_overrides.get(key) or _infer_partition(values)
            try:
                columns[key] = pl.Series(key, values, dtype=pl.String).cast(dtype)
            except Exception as exc:
                raise DatasetValidationError(
                    f"{self.describe()}: partition column {key!r} has values {values[:3]} that are "
                    f"not {dtype}: {exc}. Fix schema_overrides[{key!r}]."
                ) from exc
        return [{k: s.slice(i, 1) for k, s in columns.items()} for i in range(len(files))]


# ------------------------------------------------------------------- helpers
def _split_glob(path: str) -> tuple[str, str | None]:
    """``(folder above the first glob segment, the rest)``; ``(path, None)`` without a glob."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if _GLOB.search(part):
            return "/".join(parts[:i]) or "/", "/".join(parts[i:])
    return path, None


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a relative ``/``-separated glob: ``*`` and ``?`` within a name, ``**`` any folders."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _read_all(fs: Any, files: list[_File], *, local: bool) -> tuple[list[Any], list[str]]:
    """Every file's bytes, read once (memory-mapped when local, else one read per object), and
    their xxh3-128, files read and hashed concurrently: object stores answer in parallel, and
    xxh3 releases the GIL, so several cores hash."""

    def read(f: _File) -> tuple[Any, str]:
        blob = _read(f)
        f.size = len(blob)  # what was hashed, even if the file changed since it was listed
        try:
            return blob, bytes_hash(blob)
        except BaseException:
            _close(blob)
            raise

    def _read(f: _File) -> Any:
        try:
            if local:
                if f.size == 0:
                    return b""
                with open(f.path, "rb") as fh:
                    return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            with fs.open_input_file(f.path) as fh:
                return fh.read()
        except OSError as exc:
            raise SourceError(
                f"could not read {mask_uri(f.display)}: {str(exc).splitlines()[0][:300]}. Check that "
                "the file still exists and that this process may read it."
            ) from exc

    if len(files) == 1:
        pairs = [read(files[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
            futures = [pool.submit(read, f) for f in files]
            pairs = []
            error: BaseException | None = None
            for fut in futures:  # wait for all, so no mapping is left open behind an error
                try:
                    pairs.append(fut.result())
                except BaseException as exc:
                    error = error or exc
            if error is not None:
                for blob, _ in pairs:
                    _close(blob)
                raise error
    return [b for b, _ in pairs], [h for _, h in pairs]


def _close(blob: Any) -> None:
    if isinstance(blob, mmap.mmap):
        try:
            blob.close()
        except BufferError:  # a parsed frame still views the mapping: the GC closes it
            pass


def _parse_one(data: Any, f: _File, overrides: dict[str, Any]) -> pl.DataFrame:
    """Parse one file's bytes as its format; errors name the file (and column) and what to do."""
    import polars as pl

    where = mask_uri(f.display)
    fmt = f.format
    if len(data) == 0:
        raise DatasetValidationError(
            f"could not read {where}: the file is empty. Remove it or fill it."
        )
    magic = bytes(data[:4]) == b"PAR1"
    if fmt != "parquet" and magic:
        raise DatasetValidationError(
            f"could not read {where}: it is a Parquet file, not {fmt.upper()}. Rename it to "
            ".parquet or pass format='parquet'."
        )
    if fmt == "parquet" and not (magic and bytes(data[-4:]) == b"PAR1"):
        hint = "it is cut off or corrupt" if magic else "it is not a Parquet file (no PAR1 magic)"
        raise DatasetValidationError(
            f"could not read {where}: {hint}. Check that the file is valid Parquet, or pass "
            "format='csv'/'json'/'ndjson' if that is what it holds."
        )
    try:
        if fmt == "csv":
            frame = pl.read_csv(data, infer_schema_length=_CSV_INFER, schema_overrides=overrides)
        elif fmt == "parquet":
            frame = pl.read_parquet(data)
            present = {k: v for k, v in overrides.items() if k in frame.columns}
            frame = frame.cast(present) if present else frame
        elif fmt == "json":
            frame = pl.read_json(data, schema_overrides=overrides or None)
        else:
            frame = pl.read_ndjson(data, schema_overrides=overrides or None)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        mixed = _CSV_MIXED.search(str(exc))
        if mixed:
            value, dtype, column = mixed.groups()
            raise DatasetValidationError(
                f"could not read {where}: column {column!r} holds {value!r}, which is not {dtype} like "
                f"the values before it (mixed types). Pass schema_overrides={{{column!r}: pl.Utf8}} "
                "(or the type it should have) to FileSource, or fix the file."
            ) from exc
        raise DatasetValidationError(
            f"could not read {where}: {first[:300]}. Check that the file is valid {fmt.upper()} "
            f"(a {fmt} file named for another format? pass format=), or pass schema_overrides= "
            "for a column parsed as the wrong type."
        ) from exc
    return frame


def _infer_partition(values: list[str | None]) -> Any:
    import polars as pl

    present = [v for v in values if v is not None]
    for dtype, parse in ((pl.Int64, int), (pl.Float64, float)):
        try:
            for v in present:
                parse(v)  # type: ignore[operator]
        except ValueError:
            continue
        if present:
            return dtype
    return pl.String


def _add_partitions(frame: pl.DataFrame, keys: dict[str, Any], f: _File) -> pl.DataFrame:
    import polars as pl

    clash = [k for k in keys if k in frame.columns]
    if clash:
        raise DatasetValidationError(
            f"{mask_uri(f.display)}: column {clash[0]!r} is both in the file and in its folder name "
            f"({clash[0]}=...); pass hive=False to keep the file's column."
        )
    return frame.with_columns(pl.lit(s.item(), dtype=s.dtype).alias(k) for k, s in keys.items())


def _concat(frames: list[pl.DataFrame], files: list[_File]) -> pl.DataFrame:
    """One frame from every file's; columns must agree (order may differ), numbers may widen."""
    import polars as pl

    if len(frames) == 1:
        return frames[0]
    first, head = frames[0], files[0]
    out = [first]
    relaxed = False
    for frame, f in zip(frames[1:], files[1:], strict=True):
        if set(frame.columns) != set(first.columns):
            missing = [c for c in first.columns if c not in frame.columns]
            extra = [c for c in frame.columns if c not in first.columns]
            raise DatasetValidationError(
                f"the files of one source have different columns: {mask_uri(f.display)} "
                f"lacks {missing} and has {extra} compared with {mask_uri(head.display)}. Give all "
                "files the same columns, or ingest them as separate sources."
            )
        frame = frame.select(first.columns)
        for c in first.columns:
            a, b = first.schema[c], frame.schema[c]
            if a == b:
                continue
            if (a.is_numeric() and b.is_numeric()) or pl.Null in (a, b):
                relaxed = True
                continue
            raise DatasetValidationError(
                f"column {c!r} is {a} in {mask_uri(head.display)} but {b} in {mask_uri(f.display)}. "
                f"Pass schema_overrides={{{c!r}: pl.Utf8}} (or the type it should have) to FileSource."
            )
        out.append(frame)
    return pl.concat(out, how="vertical_relaxed" if relaxed else "vertical")


def _dtype(value: Any) -> Any:
    """A polars dtype from a dtype, a dtype class, or its name (``"Utf8"``, ``"Int64"``,
    ``"Datetime(time_unit='us', time_zone='UTC')"``), as a spec stores it."""
    import polars as pl

    if not isinstance(value, str):
        return value() if isinstance(value, type) else value
    text = value.strip()
    m = re.fullmatch(r"(Datetime|Duration)\((.*)\)", text)
    if m:
        args = dict(re.findall(r"(\w+)=(?:'([^']*)'|None)", m.group(2)))
        unit = args.get("time_unit") or "us"
        if m.group(1) == "Duration":
            return pl.Duration(unit)  # type: ignore[arg-type]
        return pl.Datetime(unit, args.get("time_zone") or None)  # type: ignore[arg-type]
    cls = getattr(pl, text, None)
    if isinstance(cls, type) and issubclass(cls, pl.DataType):
        return cls()
    raise ConfigError(
        f"unknown polars type {value!r} in schema_overrides; use a polars dtype (pl.Utf8, pl.Int64, "
        "pl.Float64, pl.Date, pl.Datetime('us')) or its name ('String', 'Int64')."
    )


def _dtype_name(dtype: Any) -> str:
    """The name a spec stores for ``dtype``; :class:`ConfigError` when it would not read back."""
    name = str(dtype)
    try:
        same = _dtype(name) == dtype
    except ConfigError:
        same = False
    if not same:
        raise ConfigError(
            f"schema_overrides type {name} cannot be recorded in a source spec; override with a "
            "plain type (pl.Utf8, pl.Int64, pl.Float64, pl.Date, pl.Datetime) and cast later."
        )
    return name


def _spec_location(location: str) -> str:
    """The location with credentials left out: a spec holds none (they come from the environment)."""
    if not is_uri(location):
        return os.path.abspath(os.path.expanduser(location))
    scheme, rest = location.split("://", 1)
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{slash}{tail}"


# ---------------------------------------------------------------------- Delta
@register_source
class DeltaSource(Source):
    """A Delta Lake table, recorded by its table version: the version keeps ``{uri, table version}``,
    not a copy of the rows, and :meth:`Datasets.load` reads the table at that version.

    Parameters
    ----------
    uri : str
        The table's folder or URI (``/data/events``, ``s3://bucket/events``); on S3 the endpoint and
        credentials come from the environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...) or
        ``storage_options``.
    version : int, optional
        A table version to pin; default the latest at each read.
    storage_options : dict, optional
        deltalake's ``storage_options`` (``{"AWS_ALLOW_HTTP": "true"}``); secret keys are used but
        never recorded.

    Notes
    -----
    A read whose table version is the one the last dataset version recorded says ``unchanged``
    without reading any rows. The table must keep that version readable (no ``VACUUM`` of its files)
    for :meth:`Datasets.load` to read it later; a load whose rows no longer hash as recorded is refused.

    Examples
    --------
    >>> dv = wb.datasets.ingest(DeltaSource("/data/events"), name="events")   # doctest: +SKIP
    >>> dv.source_state                                                        # doctest: +SKIP
    {'uri': '/data/events', 'table_version': 3}
    """

    kind = "delta"

    def __init__(
        self,
        uri: str | Path,
        *,
        version: int | None = None,
        storage_options: dict[str, str] | None = None,
    ):
        self.uri = str(uri)
        self.version = version
        self.storage_options = dict(storage_options or {})

    def _location(self) -> str:
        return _spec_location(self.uri)

    def _table(self, version: int | None) -> Any:
        import deltalake

        try:
            return deltalake.DeltaTable(
                self._location() if not is_uri(self.uri) else self.uri,
                version=version,
                storage_options=self.storage_options or None,
            )
        except Exception as exc:
            at = f" at version {version}" if version is not None else ""
            raise SourceError(
                f"could not open the Delta table {self.describe()}{at}: "
                f"{str(exc).splitlines()[0][:300]}. Check the URI, that it is a Delta table "
                "(a _delta_log folder), that the version exists and was not vacuumed, and the "
                "storage credentials."
            ) from exc

    def _rows(self, table: Any) -> pl.DataFrame:
        import polars as pl

        try:
            frame = pl.from_arrow(table.to_pyarrow_table())
        except Exception as exc:  # a data file gone (vacuumed, deleted) or unreadable
            raise SourceError(
                f"could not read the Delta table {self.describe()} at version {table.version()}: "
                f"{str(exc).splitlines()[0][:300]}. Its files may have been vacuumed or deleted; "
                "re-ingest the table to record what it holds now."
            ) from exc
        assert isinstance(frame, pl.DataFrame)
        return frame

    def fetch(self, state: dict[str, Any]) -> Fetched:
        import polars as pl

        table = self._table(self.version)
        current = table.version()
        new_state = {"uri": self._location(), "table_version": current}
        if state.get("uri") == new_state["uri"] and state.get("table_version") == current:
            return Fetched(pl.DataFrame(), self.describe(), new_state, unchanged=True)
        frame = self._rows(table)
        return Fetched(frame, f"{self.describe()}@v{current}", new_state)

    def reference(self, fetched: Fetched) -> dict[str, Any]:
        """What the version's artifact records instead of the rows: ``{"delta": uri, "version": n}``."""
        options = {
            k: v for k, v in self.storage_options.items() if k.lower() not in _SECRET_OPTIONS
        }
        ref: dict[str, Any] = {
            "delta": fetched.state["uri"],
            "version": fetched.state["table_version"],
        }
        if options:
            ref["storage_options"] = options
        return ref

    def describe(self) -> str:
        return mask_uri(self.uri) if is_uri(self.uri) else self._location()

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind, "uri": self._location()}
        if self.version is not None:
            spec["version"] = self.version
        options = {
            k: v for k, v in self.storage_options.items() if k.lower() not in _SECRET_OPTIONS
        }
        if options:
            spec["storage_options"] = options
        return spec


def read_delta_reference(ref: dict[str, Any], *, expected: str | None = None) -> pl.DataFrame:
    """The rows a Delta reference (``{"delta": uri, "version": n}``) names; with ``expected``, a
    content hash they must have (:class:`SourceError` if the table was rewritten since).

    Examples
    --------
    >>> read_delta_reference({"delta": "/data/events", "version": 3})          # doctest: +SKIP
    """
    src = DeltaSource(
        ref["delta"], version=ref["version"], storage_options=ref.get("storage_options")
    )
    frame = src._rows(src._table(ref["version"]))
    if expected and content_hash(frame) != expected:
        raise SourceError(
            f"the Delta table {src.describe()} at version {ref['version']} no longer holds the rows "
            "recorded for it (rewritten or restored files); re-ingest the table to record what it "
            "holds now."
        )
    return frame
