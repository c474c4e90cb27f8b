"""The Parquet copy a dataset version is stored as (``parquet_bytes``): every dtype reads back as
it was, through the pyarrow path (flat columns) and polars' own writer (everything else)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import polars as pl
import pyarrow.parquet as pq
import pytest

from workbench import Workbench
from workbench.datasets._datasets import parquet_bytes


def _flat_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "i8": pl.Series([-128, 0, None, 127], dtype=pl.Int8),
            "i16": pl.Series([-32768, 1, 2, None], dtype=pl.Int16),
            "i32": pl.Series([None, -(2**31), 5, 2**31 - 1], dtype=pl.Int32),
            "i64": pl.Series([-(2**63), 3, None, 2**63 - 1], dtype=pl.Int64),
            "u8": pl.Series([0, 255, None, 7], dtype=pl.UInt8),
            "u32": pl.Series([0, 2**32 - 1, 9, None], dtype=pl.UInt32),
            "u64": pl.Series([0, 2**64 - 1, None, 2**63], dtype=pl.UInt64),
            "f32": pl.Series([1.5, float("nan"), None, -0.0], dtype=pl.Float32),
            "f64": [float("inf"), float("nan"), None, -0.0],
            "b": [True, None, False, True],
            "s": ["north", "", None, "ünï ☃"],
            "bin": [b"\x00\x01", None, b"", b"xyz"],
            "d": [date(1970, 1, 1), None, date(2024, 2, 29), date(1, 1, 1)],
            "t": [time(0, 0), time(23, 59, 59, 999999), None, time(12)],
            "dt_us": [
                datetime(2024, 1, 1),
                None,
                datetime(1900, 1, 1, 0, 0, 1),
                datetime(2262, 1, 1),
            ],
            "dt_ns": pl.Series(
                [datetime(2024, 1, 1), None, datetime(2000, 1, 1), datetime(2001, 1, 1)],
                dtype=pl.Datetime("ns"),
            ),
            "dt_ms_tz": pl.Series(
                [
                    datetime(2024, 1, 1, tzinfo=UTC),
                    None,
                    datetime(1999, 12, 31, 23, tzinfo=UTC),
                    None,
                ],
                dtype=pl.Datetime("ms", "Europe/Paris"),
            ),
            "dur": [timedelta(seconds=1), None, timedelta(days=-3), timedelta(0)],
        }
    ).with_columns(pl.col("dt_ns") + pl.duration(nanoseconds=7))


def _back(data: bytes) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(data))


def test_flat_dtypes_read_back_equal_through_pyarrow() -> None:
    df = _flat_frame()
    data = parquet_bytes(df)
    back = _back(data)
    assert back.schema == df.schema
    assert back.equals(df)  # nulls, NaN, -0.0, extreme integers, ns and zoned datetimes
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    encodings = {
        meta.schema.column(i).name: meta.row_group(0).column(i).encodings
        for i in range(meta.num_columns)
    }
    assert "DELTA_BINARY_PACKED" in encodings["i64"] and "DELTA_BINARY_PACKED" in encodings["dt_us"]
    assert "BYTE_STREAM_SPLIT" in encodings["f64"] and "BYTE_STREAM_SPLIT" in encodings["f32"]
    assert not meta.row_group(0).column(0).is_stats_set  # no statistics written


def test_empty_and_sliced_frames_read_back_equal() -> None:
    df = _flat_frame()
    for part in (df.head(0), df.slice(1, 2), pl.concat([df, df], rechunk=False)):
        back = _back(parquet_bytes(part))
        assert back.schema == part.schema and back.equals(part)


@pytest.mark.parametrize(
    "column",
    [
        pl.Series("cat", ["a", "b", None, "a"], dtype=pl.Categorical),
        pl.Series("enum", ["x", "y", "x", None], dtype=pl.Enum(["x", "y"])),
        pl.Series(
            "dec", [Decimal("1.50"), None, Decimal("-2.25"), Decimal("0")], dtype=pl.Decimal(10, 2)
        ),
        pl.Series("lst", [[1, 2], None, [], [3]]),
        pl.Series("st", [{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}, {"a": 2, "b": None}]),
        pl.Series("nul", [None, None, None, None], dtype=pl.Null),
    ],
    ids=lambda s: s.name,
)
def test_other_dtypes_keep_polars_writer(column: pl.Series) -> None:
    df = pl.DataFrame({"id": [1, 2, 3, 4]}).with_columns(column)
    data = parquet_bytes(df)
    expected = io.BytesIO()
    df.write_parquet(expected, compression="zstd")
    back = _back(data)
    assert back.schema == df.schema and back.equals(df)
    assert _back(expected.getvalue()).equals(back)


def test_ingest_stores_the_fast_copy_and_loads_it_back(tmp_path) -> None:
    df = _flat_frame()
    bench = Workbench(tmp_path / "home")
    try:
        dv = bench.datasets.ingest(df, name="flat")
        loaded = bench.datasets.load(dv)
        assert loaded.schema == df.schema and loaded.equals(df)
        stored = bench.datasets.artifacts.get_bytes(dv.artifact_hash)
        assert stored == parquet_bytes(df)  # deterministic: the same rows give the same artifact
        assert bench.datasets.ingest(df, name="flat").id == dv.id
    finally:
        bench.close()


def test_text_columns_without_nulls_hash_as_before() -> None:
    """The content hash skips ``fill_null`` on text/binary columns with no null: digests pinned
    from the encoding before that change (one chunk, and sliced across two chunks)."""
    from workbench.datasets import content_hash

    df = pl.DataFrame(
        {
            "s": ["north", "", "ünï ☃", "west"],
            "b": [b"\x00", b"", b"xy", b"z"],
            "n": ["a", None, "c", None],
        }
    )
    assert content_hash(df) == "xxh3-128:0fc60e17a28d3e5788b8c934e430706d"
    sliced = pl.concat([df, df], rechunk=False).slice(1, 6)
    assert content_hash(sliced) == "xxh3-128:260237d1203b316967e607176d6d1889"


def test_column_names_with_dots_spaces_or_none_keep_their_encoding() -> None:
    df = pl.DataFrame({"a.b": [1, 2], "x y": [1.5, 2.5], "ü": ["a", "b"], "": [3, 4]})
    data = parquet_bytes(df)
    back = _back(data)
    assert back.columns == df.columns and back.equals(df)
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    encodings = [meta.row_group(0).column(i).encodings for i in range(meta.num_columns)]
    assert "DELTA_BINARY_PACKED" in encodings[0] and "BYTE_STREAM_SPLIT" in encodings[1]
    assert "DELTA_BINARY_PACKED" in encodings[3]
