"""Fast content hashes: xxh3-128 of a frame's canonical encoding, and of a file's bytes.

A dataset version is named by what its rows are, not by how they were stored: the same rows read
from CSV, Parquet or NDJSON, in one chunk or many, compressed or not, hash the same. Hashes carry
their algorithm (``"xxh3-128:…"``) so the SHA-256 hex digests of older versions stay distinguishable.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ALGORITHM", "bytes_hash", "content_hash", "short_hash"]

#: The prefix every hash this module makes carries.
ALGORITHM = "xxh3-128"
#: Bumped if the canonical encoding ever changes (it is part of what is hashed).
_ENCODING = b"workbench-frame-v1\0"


def bytes_hash(data: Any) -> str:
    """``"xxh3-128:<32 hex>"`` of a bytes-like object (``bytes``, ``mmap``, ``memoryview``).

    Examples
    --------
    >>> bytes_hash(b"hello")
    'xxh3-128:b5e9c1ad071b3e7fc779cfaa5e523818'
    """
    import xxhash

    return f"{ALGORITHM}:{xxhash.xxh3_128_hexdigest(data)}"


def short_hash(digest: str, n: int = 12) -> str:
    """The first ``n`` hex characters of a digest, without its algorithm prefix (for display).

    Examples
    --------
    >>> short_hash("xxh3-128:0123456789abcdef0123456789abcdef")
    '0123456789ab'
    >>> short_hash("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
    '9f86d081884c'
    """
    return str(digest).rsplit(":", 1)[-1][:n]


def content_hash(df: pl.DataFrame) -> str:
    """xxh3-128 of a frame's column names, canonical types and values; ``"xxh3-128:<32 hex>"``.

    The hash does not depend on the file format the rows came from, on chunking, slicing,
    compression or the polars/Arrow version, only on the column names and order, each column's
    canonical type, and the values in row order.

    Canonical encoding (every section is preceded by its byte length as a little-endian uint64):

    1. ``b"workbench-frame-v1\\0"``, then a JSON header ``{"rows": n, "columns": [[name, type], …]}``
       (compact separators) with each column's canonical type name:

       ==========================================  ==========================================
       polars dtype                                canonical type, values as
       ==========================================  ==========================================
       Int8…Int64, UInt8…UInt32                    ``int64``: int64 LE
       UInt64                                      ``uint64``: uint64 LE
       Float32, Float64                            ``float64``: float64 LE, every NaN as
                                                   ``0x7ff8000000000000``, -0.0 as 0.0
       Boolean                                     ``bool``: bits, LSB first
       String, Categorical, Enum / Binary          ``utf8`` / ``binary``: int64 LE byte lengths,
                                                   then the bytes of all values
       Date                                        ``date32``: int32 LE days
       Datetime (naive / with a time zone)         ``timestamp[us]`` / ``timestamp[us, UTC]``:
                                                   int64 LE (``ns`` kept when a value needs it;
                                                   zoned values converted to UTC first)
       Duration, Time                              ``duration[us]`` (or ``ns``), ``time64[ns]``
       Decimal                                     ``decimal[scale]``: its text, as ``utf8``
       Null                                        ``null``: no values
       List, Array                                 ``list<child>``: int64 LE lengths, then the
                                                   child's values, encoded recursively
       Struct                                      ``struct<a:type,…>``: each field in order,
                                                   recursively (null rows null in every field)
       ==========================================  ==========================================

    2. Per column, in order: a validity section (``b"\\0"`` when no value is null, else ``b"\\1"``
       and one bit per row, LSB first, 1 = valid) then its values as above, a null slot holding
       zero (an empty value for ``utf8``/``binary``/lists).

    Integer widths are one type, so a CSV's inferred ``Int64`` and a Parquet file's ``Int32``
    column of the same numbers hash the same; a change of kind (int to float, number to text) does
    not. Object columns cannot be hashed.

    Examples
    --------
    >>> import polars as pl
    >>> a = pl.DataFrame({"x": [1, 2], "y": ["a", None]})
    >>> b = pl.DataFrame({"x": pl.Series([1, 2], dtype=pl.Int32), "y": ["a", None]})
    >>> content_hash(a) == content_hash(b)
    True
    >>> content_hash(a) == content_hash(a.reverse())
    False
    >>> content_hash(a)[:9]
    'xxh3-128:'
    """
    import xxhash

    h = xxhash.xxh3_128()
    columns = [_canonical(df.get_column(name)) for name in df.columns]
    header = {
        "rows": df.height,
        "columns": [[n, t] for n, (t, _) in zip(df.columns, columns, strict=True)],
    }
    _section(h, _ENCODING)
    _section(h, json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode())
    for _, series in columns:
        _feed(h, series)
    return f"{ALGORITHM}:{h.hexdigest()}"


def _section(h: Any, data: Any) -> None:
    """Feed one length-prefixed section, so no two different sequences of sections share bytes."""
    view = memoryview(data).cast("B")
    h.update(len(view).to_bytes(8, "little"))
    h.update(view)


def _canonical(s: pl.Series) -> tuple[str, pl.Series]:
    """``(canonical type name, series cast to the canonical dtype)`` for one column or child."""
    import polars as pl

    dt = s.dtype
    if dt == pl.UInt64:
        return "uint64", s
    if dt.is_integer():
        if dt in (pl.Int128, pl.UInt128):
            return f"{str(dt).lower()}-text", s.cast(pl.String)
        return "int64", s.cast(pl.Int64)
    if dt.is_float():
        return "float64", s.cast(pl.Float64)
    if dt == pl.Boolean:
        return "bool", s
    if dt in (pl.String, pl.Categorical) or isinstance(dt, pl.Enum | pl.Categorical):
        return "utf8", s.cast(pl.String)
    if dt == pl.Binary:
        return "binary", s
    if dt == pl.Date:
        return "date32", s
    if isinstance(dt, pl.Datetime):
        if dt.time_zone is not None:
            s = s.dt.convert_time_zone("UTC")
        unit = _unit(s)
        s = s.dt.cast_time_unit(unit)
        return (f"timestamp[{unit}, UTC]" if dt.time_zone else f"timestamp[{unit}]"), s
    if isinstance(dt, pl.Duration):
        unit = _unit(s)
        return f"duration[{unit}]", s.dt.cast_time_unit(unit)
    if dt == pl.Time:
        return "time64[ns]", s
    if isinstance(dt, pl.Decimal):
        return f"decimal[{dt.scale}]", s.cast(pl.String)
    if dt == pl.Null:
        return "null", s
    if isinstance(dt, pl.Array):
        s = s.arr.to_list()
        dt = s.dtype
    if isinstance(dt, pl.List):
        child = _list_values(s)
        name, _ = _canonical(child)
        return f"list<{name}>", s
    if isinstance(dt, pl.Struct):
        names = [f"{f.name}:{_canonical(s.struct.field(f.name))[0]}" for f in dt.fields]
        return f"struct<{','.join(names)}>", s
    raise TypeError(
        f"column {s.name!r} of type {dt} cannot be content-hashed; cast it to a plain type "
        "(numbers, text, dates, lists or structs of them) first."
    )


def _unit(s: pl.Series) -> str:
    """``us`` unless a value needs nanoseconds: a ms/us column and the same instants in ns agree."""

    if s.dtype.time_unit != "ns":  # type: ignore[attr-defined]
        return "us"
    physical = s.to_physical().drop_nulls()
    return "ns" if physical.len() and (physical % 1000 != 0).any() else "us"


def _list_values(s: pl.Series) -> pl.Series:
    """The values of a list column's non-null rows, in order (offsets and null rows resolved)."""
    import polars as pl

    arr = s.to_arrow(compat_level=pl.CompatLevel.oldest())
    return pl.Series(s.name, arr.flatten())


def _validity(h: Any, s: pl.Series) -> None:
    import numpy as np

    if s.null_count() == 0:
        _section(h, b"\0")
    else:
        bits = np.packbits(s.is_not_null().to_numpy(), bitorder="little")
        _section(h, b"\1" + bits.tobytes())


def _feed(h: Any, s: pl.Series) -> None:
    """Feed one canonical column (as :func:`_canonical` returned it): validity, then values."""
    import numpy as np
    import polars as pl

    _validity(h, s)
    dt = s.dtype
    if dt == pl.Null:
        return
    if dt == pl.Float64:
        x = s.fill_null(0.0).to_numpy().astype("<f8", copy=True)
        x[np.isnan(x)] = np.nan  # one NaN bit pattern, whatever payload or sign a file carried
        x += 0.0  # -0.0 + 0.0 == +0.0
        _section(h, x)
    elif dt == pl.Boolean:
        _section(h, np.packbits(s.fill_null(False).to_numpy(), bitorder="little"))
    elif dt in (pl.String, pl.Binary):
        _feed_bytes(h, s)
    elif isinstance(dt, pl.List):
        _section(h, s.list.len().fill_null(0).cast(pl.Int64).to_numpy().astype("<i8"))
        child = _list_values(s)
        _feed(h, _canonical(child)[1])
    elif isinstance(dt, pl.Struct):
        null_rows = s.is_null()
        for f in dt.fields:
            field = s.struct.field(f.name)
            if null_rows.any():
                field = pl.select(
                    pl.when(null_rows).then(None).otherwise(field).alias(f.name)
                ).to_series()
            _feed(h, _canonical(field)[1])
    else:  # int64, uint64, date32, timestamps, durations, times: their physical integers
        physical = s.to_physical().fill_null(0).to_numpy()
        _section(h, physical.astype(physical.dtype.newbyteorder("<"), copy=False))


def _feed_bytes(h: Any, s: pl.Series) -> None:
    """Lengths then data of a text/binary column, read from one Arrow large-binary array."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    if s.null_count():
        s = s.fill_null("" if s.dtype == pl.String else b"")
    arr = s.to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_binary())
    buffers = arr.buffers()
    n = len(arr)
    offsets = np.frombuffer(buffers[1], dtype="<i8")[arr.offset : arr.offset + n + 1]
    _section(h, np.diff(offsets).astype("<i8", copy=False) if n else np.zeros(0, "<i8"))
    start, end = (int(offsets[0]), int(offsets[-1])) if n else (0, 0)
    data = buffers[2]
    _section(h, memoryview(data)[start:end] if data is not None else b"")
