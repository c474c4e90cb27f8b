"""content_hash: xxh3-128 over a canonical encoding. The same rows hash the same whatever file format,
chunking or slicing they came through; any changed value, column name, type or row order changes it."""

from __future__ import annotations

import datetime as dt
import math
import struct

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from workbench.datasets import FileSource, content_hash
from workbench.datasets._hashing import bytes_hash, short_hash

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def frames(draw, *, nan: bool = False) -> pl.DataFrame:
    """1-25 rows of int, float, text and bool columns with nulls; every column has a value
    (an all-null column reads back from CSV as text) and text never looks like a number."""
    n = draw(st.integers(1, 25))
    kinds = draw(st.lists(st.sampled_from(["int", "float", "str", "bool"]), min_size=1, max_size=5))
    data = {}
    for i, kind in enumerate(kinds):
        value = {
            "int": st.integers(-(2**62), 2**62),
            "float": st.floats(allow_nan=nan, allow_infinity=False, width=64),
            "str": st.text(min_size=0, max_size=8).map(lambda s: "s" + s),
            "bool": st.booleans(),
        }[kind]
        values = draw(st.lists(st.none() | value, min_size=n, max_size=n))
        if all(v is None for v in values):
            values[0] = draw(value)
        dtype = {"int": pl.Int64, "float": pl.Float64, "str": pl.String, "bool": pl.Boolean}[kind]
        data[f"c{i}_{kind}"] = pl.Series(values, dtype=dtype)
    return pl.DataFrame(data)


def _changed(v, dtype):
    """A value that differs from ``v`` (null becomes a value)."""
    if dtype == pl.Int64:
        return 0 if v is None else v + 1
    if dtype == pl.Float64:
        return 1.5 if v is None or v != 1.5 else 2.5
    if dtype == pl.String:
        return "s" if v is None else v + "x"
    return True if v is None else not v


# ---------------------------------------------------------------- independence
@SETTINGS
@given(df=frames())
def test_same_rows_as_csv_parquet_ndjson_or_rechunked_hash_the_same(tmp_path, df):
    expected = content_hash(df)
    for fmt, write in (
        ("csv", df.write_csv),
        ("parquet", df.write_parquet),
        ("ndjson", df.write_ndjson),
    ):
        path = tmp_path / f"rows.{fmt}"
        write(path)
        back = FileSource(path).fetch({}).frame
        assert content_hash(back) == expected, (fmt, back, df)
    k = df.height // 2
    rechunked = pl.concat([df[:k], df[k:]], rechunk=False)
    assert content_hash(rechunked) == expected
    lz4 = tmp_path / "lz4.parquet"
    df.write_parquet(lz4, compression="lz4", row_group_size=3)
    assert content_hash(pl.read_parquet(lz4)) == expected


@SETTINGS
@given(df=frames(nan=True), start=st.integers(0, 10))
def test_slices_hash_as_the_same_rows_built_afresh(df, start):
    sliced = df.slice(start)
    fresh = pl.DataFrame(sliced.to_dict(as_series=False), schema=df.schema)
    assert content_hash(sliced) == content_hash(fresh)


def test_many_chunks_hash_as_one():
    df = pl.DataFrame({"i": range(3000), "s": [f"v{i}" if i % 7 else None for i in range(3000)]})
    chunked = pl.concat([df[i : i + 1000] for i in (0, 1000, 2000)], rechunk=False)
    assert chunked.n_chunks() == 3
    assert content_hash(chunked) == content_hash(df) == content_hash(chunked.rechunk())


def test_integer_widths_categoricals_and_float_encodings_are_one_type():
    a = pl.DataFrame({"i": [1, None, 3], "s": ["a", "b", None], "f": [0.0, 1.0, float("nan")]})
    b = a.with_columns(
        pl.col("i").cast(pl.Int16), pl.col("s").cast(pl.Categorical), pl.col("f").cast(pl.Float32)
    )
    assert content_hash(a) == content_hash(b)
    # -0.0 is 0.0 and every NaN is one NaN, whatever its sign or payload
    other_nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_0001))[0]
    assert math.isnan(other_nan)
    c = pl.DataFrame({"i": [1, None, 3], "s": ["a", "b", None], "f": [-0.0, 1.0, other_nan]})
    assert content_hash(c) == content_hash(a)
    # null and NaN differ, null and 0 differ
    assert content_hash(a.with_columns(pl.col("f").fill_nan(None))) != content_hash(a)
    assert content_hash(a.with_columns(pl.col("i").fill_null(0))) != content_hash(a)


def test_time_zones_and_units():
    when = [dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC), None]
    utc = pl.DataFrame({"t": pl.Series(when, dtype=pl.Datetime("us", "UTC"))})
    paris = utc.with_columns(pl.col("t").dt.convert_time_zone("Europe/Paris"))
    assert content_hash(utc) == content_hash(paris)  # the same instants
    naive = utc.with_columns(pl.col("t").dt.replace_time_zone(None))
    assert content_hash(naive) != content_hash(utc)  # naive is another type
    ms = naive.with_columns(pl.col("t").dt.cast_time_unit("ms"))
    ns = naive.with_columns(pl.col("t").dt.cast_time_unit("ns"))
    assert content_hash(ms) == content_hash(naive) == content_hash(ns)
    finer = ns.with_columns(pl.col("t") + pl.duration(nanoseconds=1))
    assert content_hash(finer) != content_hash(ns)  # a nanosecond is kept when a value needs it
    day = pl.DataFrame({"d": [dt.date(2024, 1, 1)]})
    assert content_hash(day) != content_hash(day.with_columns(pl.col("d").cast(pl.Datetime("us"))))


def test_nested_columns():
    base = pl.DataFrame(
        {"l": [[1, 2], None, []], "s": [{"x": 1, "y": "a"}, None, {"x": None, "y": "b"}]}
    )
    h = content_hash(base)
    assert content_hash(base.slice(1)) == content_hash(
        pl.DataFrame(base.slice(1).to_dict(as_series=False), schema=base.schema)
    )
    for changed in (
        base.with_columns(l=pl.Series([[1, 2], [], []])),  # null list vs empty list
        base.with_columns(l=pl.Series([[1], [2], []])),  # the same values, other lengths
        base.with_columns(s=pl.Series([{"x": 1, "y": "a"}, None, {"x": 0, "y": "b"}])),
        base.rename({"s": "t"}),
    ):
        assert content_hash(changed) != h


# ------------------------------------------------------------------- sensitivity
@SETTINGS
@given(df=frames(nan=True), data=st.data())
def test_any_changed_value_changes_the_hash(df, data):
    col = data.draw(st.sampled_from(df.columns))
    row = data.draw(st.integers(0, df.height - 1))
    values = df[col].to_list()
    values[row] = _changed(values[row], df.schema[col])
    changed = df.with_columns(pl.Series(col, values, dtype=df.schema[col]))
    assert content_hash(changed) != content_hash(df)


@SETTINGS
@given(df=frames(nan=True), data=st.data())
def test_changed_name_type_or_row_order_changes_the_hash(df, data):
    h = content_hash(df)
    col = data.draw(st.sampled_from(df.columns))
    assert content_hash(df.rename({col: col + "_"})) != h
    if df.schema[col] != pl.String:
        assert content_hash(df.with_columns(pl.col(col).cast(pl.String))) != h
    if df.schema[col] == pl.Int64:
        assert content_hash(df.with_columns(pl.col(col).cast(pl.Float64))) != h
    if df.width > 1:
        assert content_hash(df.select(reversed(df.columns))) != h
    i, j = data.draw(st.integers(0, df.height - 1)), data.draw(st.integers(0, df.height - 1))
    assume(
        df.row(i) != df.row(j)
        and not any(isinstance(v, float) and np.isnan(v) for v in df.row(i) + df.row(j))
    )
    order = list(range(df.height))
    order[i], order[j] = order[j], order[i]
    assert content_hash(df[order]) != h


def test_rows_are_not_ambiguous_across_column_boundaries():
    a = pl.DataFrame({"a": ["xy", "z"], "b": ["", "w"]})
    b = pl.DataFrame({"a": ["x", "z"], "b": ["y", "w"]})
    assert content_hash(a) != content_hash(b)
    assert content_hash(pl.DataFrame({"a": ["ab", ""]})) != content_hash(
        pl.DataFrame({"a": ["a", "b"]})
    )
    assert content_hash(pl.DataFrame()) != content_hash(pl.DataFrame({"a": []}))


# ------------------------------------------------------------------------ pinned
def test_the_encoding_is_pinned():
    """A literal digest: a polars/pyarrow/numpy upgrade that changed the bytes hashed fails here
    (and would silently make every existing version look new)."""
    df = pl.DataFrame(
        {
            "id": pl.Series([1, 2, None], dtype=pl.Int32),
            "x": [0.5, float("nan"), -0.0],
            "name": ["a", None, "ccc"],
            "ok": [True, None, False],
            "day": [dt.date(2024, 1, 1), None, dt.date(2024, 1, 3)],
            "tags": [["p"], [], None],
        }
    )
    assert content_hash(df) == "xxh3-128:b53555ae17305e34518a2dc4380b5f6f"
    assert bytes_hash(b"") == "xxh3-128:99aa06d3014798d86001c324468d497f"
    assert short_hash(content_hash(df)) == content_hash(df)[9:21]


def test_objects_cannot_be_hashed():
    with pytest.raises(TypeError, match="column 'o' of type Object cannot be content-hashed"):
        content_hash(pl.DataFrame({"o": pl.Series([object()], dtype=pl.Object)}))
