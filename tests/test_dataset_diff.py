"""Version diffs: schema changes, rows added/removed/changed by key or as a multiset of whole rows,
column statistics, text/HTML/JSON forms, and ``Datasets.diff`` over versions recorded in a real store.

The pure logic is checked against a plain-Python reference on frames hypothesis draws.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.datasets import DatasetDiff, diff
from workbench.exceptions import ConfigError, NotFoundError

OLD = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "x": [1.0, 2.0, 3.0, None],
        "city": ["paris", "lyon", "paris", None],
        "n": [1, 2, 3, 4],
        "gone": ["a", "b", "c", "d"],
    }
)
NEW = pl.DataFrame(
    {
        "id": [4, 3, 2, 5],
        "x": [None, 3.5, 2.0, 9.0],
        "city": ["lyon", "paris", "lyon", "lille"],
        "n": [4.0, 3.0, 2.0, 5.0],
        "extra": [True, False, True, None],
    }
)


# ------------------------------------------------------------------ by key
def test_by_key_counts_examples_and_schema():
    d = diff(OLD, NEW, key="id", labels=("c@1", "c@2"))
    assert isinstance(d, DatasetDiff) and d.key == ("id",)
    assert (d.rows_a, d.rows_b) == (4, 4)
    assert d.added_columns == {"extra": "Boolean"} and d.removed_columns == {"gone": "String"}
    assert d.type_changes == {"n": ("Int64", "Float64")}
    # id 1 removed, 5 added; 3 (x) and 4 (city) changed; 2 equal, and n 2 == 2.0 is no change
    assert (d.added, d.removed, d.changed, d.unchanged) == (1, 1, 2, 1)
    assert d.changed_columns == {"x": 1, "city": 1, "n": 0}
    assert d.added_examples == [{"id": 5, "x": 9.0, "city": "lille", "n": 5.0, "extra": None}]
    assert d.removed_examples == [{"id": 1, "x": 1.0, "city": "paris", "n": 1, "gone": "a"}]
    # in a's row order, old and new values as each version stores them
    assert d.changed_examples == [
        {"key": {"id": 3}, "changes": {"x": [3.0, 3.5]}},
        {"key": {"id": 4}, "changes": {"city": [None, "lyon"]}},
    ]
    assert not d.empty and d.schema_changed


def test_composite_key_null_keys_and_nan_values_match():
    a = pl.DataFrame({"k1": [1, 1, None], "k2": ["a", "b", "a"], "v": [float("nan"), 1.0, 2.0]})
    b = pl.DataFrame({"k1": [None, 1, 1], "k2": ["a", "b", "a"], "v": [2.0, 1.5, float("nan")]})
    d = diff(a, b, key=["k1", "k2"])
    assert (d.added, d.removed, d.changed, d.unchanged) == (0, 0, 1, 2)
    assert d.changed_examples == [{"key": {"k1": 1, "k2": "b"}, "changes": {"v": [1.0, 1.5]}}]


def test_examples_are_capped_and_can_be_turned_off():
    a = pl.DataFrame({"id": range(100), "v": [0] * 100})
    b = pl.DataFrame({"id": range(50, 150), "v": [1] * 100})
    d = diff(a, b, key="id", examples=3)
    assert (d.added, d.removed, d.changed) == (50, 50, 50)
    assert [r["id"] for r in d.added_examples] == [100, 101, 102]
    assert [r["id"] for r in d.removed_examples] == [0, 1, 2]
    assert [e["key"]["id"] for e in d.changed_examples] == [50, 51, 52]
    none = diff(a, b, key="id", examples=0)
    assert none.added_examples == none.removed_examples == none.changed_examples == []
    assert none.changed == 50


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("nope", "key column(s) ['nope'] are not in a"),
        ("gone", "key column(s) ['gone'] are not in b"),
        ("city", "key ['city'] is not unique in a: 2 rows share a key value"),
        ([], "key must be a column name"),
    ],
)
def test_bad_keys_say_what_to_do(key, message):
    with pytest.raises(ConfigError, match="diff without key=|column name") as err:
        diff(OLD, NEW, key=key)
    assert message in str(err.value)


# ------------------------------------------------------------ whole rows
def test_without_key_rows_are_a_multiset_on_the_common_columns():
    # a column called "n" as well: the helper columns must not collide with real ones
    a = pl.DataFrame({"x": [1, 1, 2, 3], "n": ["a", "a", "b", "c"]})
    b = pl.DataFrame({"x": [3, 1, 4, 4, 4], "n": ["c", "a", "d", "d", "d"]})
    d = diff(a, b)
    assert d.key is None and d.changed is None and d.changed_columns == {}
    assert (d.added, d.removed, d.unchanged) == (3, 2, 2)
    assert d.added_examples == [{"x": 4, "n": "d"}] * 3
    assert d.removed_examples == [{"x": 1, "n": "a"}, {"x": 2, "n": "b"}]  # 1 "a" is in b once
    # the order of rows is no change
    assert diff(a, a.reverse()).empty


def test_without_common_columns_every_row_is_added_and_removed():
    d = diff(pl.DataFrame({"a": [1, 2]}), pl.DataFrame({"b": [1]}))
    assert (d.added, d.removed, d.unchanged) == (1, 2, 0)


# ------------------------------------------------------------------ stats
def test_statistics_shift_for_numbers_and_categories():
    d = diff(OLD, NEW, key="id")
    by = {s["column"]: s for s in d.stats}
    assert by["id"]["kind"] == "key"
    x = by["x"]
    assert x["kind"] == "numeric"
    assert x["a"]["mean"] == pytest.approx(2.0) and x["b"]["mean"] == pytest.approx(14.5 / 3)
    assert x["a"]["null_rate"] == 0.25 and x["shift"]["null_rate"] == 0.0
    assert x["shift"]["mean"] == pytest.approx(14.5 / 3 - 2.0)
    assert x["shift"]["std"] == pytest.approx(NEW["x"].std() - OLD["x"].std())
    city = by["city"]
    assert city["kind"] == "categorical"
    assert city["a"]["top"] == [["paris", 2], ["lyon", 1]]
    assert city["b"]["top"][0] == ["lyon", 2] and city["shift"]["null_rate"] == -0.25
    # shares a: paris 2/3, lyon 1/3; b: lyon 1/2, paris 1/4, lille 1/4
    assert city["shift"]["tvd"] == pytest.approx(
        (abs(2 / 3 - 1 / 4) + abs(1 / 3 - 1 / 2) + 1 / 4) / 2
    )
    assert by["gone"]["b"] is None and by["extra"]["a"] is None
    assert by["n"]["kind"] == "numeric" and by["n"]["shift"]["mean"] == pytest.approx(1.0)


# ------------------------------------------------------------------ forms
def test_text_html_and_json_forms():
    d = diff(OLD, NEW.with_columns(city=pl.col("city").replace("lille", "<b>lille</b>")), key="id")
    text = str(d)
    assert text.splitlines()[0] == (
        "a -> b: rows 4 -> 4 (+1 added, -1 removed, ~2 changed, 1 unchanged; by key id)"
    )
    for part in (
        "+ column extra (Boolean)",
        "- column gone (String)",
        "~ column n: Int64 -> Float64",
        "changed columns (rows): x (1), city (1)",
        "id=4  city: None -> 'lyon'",
        "column statistics (a -> b):",
    ):
        assert part in text, part
    page = d._repr_html_()
    assert "&lt;b&gt;lille&lt;/b&gt;" in page and "<b>lille</b>" not in page
    assert "schema changes" in page and "changed rows" in page
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert data["key"] == ["id"] and data["type_changes"] == {"n": ["Int64", "Float64"]}
    assert data["empty"] is False and data["changed_examples"][0]["changes"] == {"x": [3.0, 3.5]}


def test_dates_and_nan_statistics_are_json():
    from datetime import date

    a = pl.DataFrame({"d": [date(2026, 1, 1)], "v": [float("nan")]})
    b = pl.DataFrame({"d": [date(2026, 1, 2)], "v": [float("nan")]})
    data = d = diff(a, b)
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert data["added_examples"] == [{"d": "2026-01-02", "v": None}]


# ------------------------------------------------------------- hypothesis
_rows = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", None]), st.integers(-2, 2) | st.none()),
    max_size=25,
)


def _frame(rows):
    return pl.DataFrame(rows, schema={"x": pl.Int64, "s": pl.String, "y": pl.Int64}, orient="row")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows, _rows)
def test_whole_row_diff_matches_a_counter_of_tuples(ra, rb):
    a, b = _frame(ra), _frame(rb)
    d = diff(a, b, examples=100)
    ca, cb = Counter(ra), Counter(rb)
    assert Counter(tuple(r.values()) for r in d.added_examples) == cb - ca
    assert Counter(tuple(r.values()) for r in d.removed_examples) == ca - cb
    assert d.added == sum((cb - ca).values()) and d.removed == sum((ca - cb).values())
    assert d.unchanged == sum((ca & cb).values())
    assert d.rows_a == d.removed + d.unchanged and d.rows_b == d.added + d.unchanged
    assert diff(a, a).empty and diff(b, b).empty


_keyed = st.dictionaries(
    st.integers(0, 30), st.tuples(st.sampled_from(["a", "b", None]), st.integers(0, 2)), max_size=20
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_keyed, _keyed)
def test_keyed_diff_matches_a_dict_comparison(da, db):
    def frame(d):
        return pl.DataFrame(
            [(k, *v) for k, v in d.items()],
            schema={"id": pl.Int64, "s": pl.String, "v": pl.Int64},
            orient="row",
        )

    a, b = frame(da), frame(db)
    d = diff(a, b, key="id", examples=100)
    both = da.keys() & db.keys()
    changed = {k for k in both if da[k] != db[k]}
    assert d.added == len(db.keys() - da.keys()) and d.removed == len(da.keys() - db.keys())
    assert d.changed == len(changed) and d.unchanged == len(both) - len(changed)
    assert d.rows_a == d.removed + d.changed + d.unchanged
    assert d.rows_b == d.added + d.changed + d.unchanged
    assert {e["key"]["id"] for e in d.changed_examples} == changed
    assert d.changed_columns["s"] == sum(da[k][0] != db[k][0] for k in both)
    for e in d.changed_examples:
        old, new = da[e["key"]["id"]], db[e["key"]["id"]]
        for col, i in (("s", 0), ("v", 1)):
            assert (col in e["changes"]) == (old[i] != new[i])
    same = diff(a, a, key="id")
    assert same.empty and same.changed == 0 and same.unchanged == a.height
    assert all(
        v in (0, 0.0, None) or (isinstance(v, float) and math.isnan(v))
        for s in same.stats
        for v in s["shift"].values()
    )


# ------------------------------------------------------------- the stage
@pytest.fixture
def stages(tmp_path):
    from workbench.stages import Stages

    st_ = Stages.open(tmp_path / "home")
    yield st_
    st_.close()


def test_datasets_diff_resolves_versions_from_the_store(stages):
    ds = stages.datasets
    v1 = ds.ingest(OLD.drop("gone"), name="cities")
    v2 = ds.ingest(NEW.drop("extra").with_columns(pl.col("n").cast(pl.Int64)), name="cities")
    assert (v1.version, v2.version) == (1, 2)
    assert [v.version for v in ds.versions("cities")] == [1, 2]
    assert ds.resolve("cities") == v2 and ds.resolve("cities@1") == v1 and ds.resolve(v1) is v1
    d = ds.diff("cities@1", "cities", key="id")
    assert (d.a, d.b) == ("cities@1", "cities@2")
    assert (d.added, d.removed, d.changed, d.unchanged) == (1, 1, 2, 1) and not d.schema_changed
    assert ds.diff(v2, v2).empty
    with pytest.raises(NotFoundError, match="cities version 9 does not exist"):
        ds.diff("cities@9", v2)
    with pytest.raises(ConfigError, match="use NAME or NAME@VERSION"):
        ds.resolve("cities@latest")
    with pytest.raises(NotFoundError, match="ingest it first"):
        ds.versions("nope")


def test_report_fills_in_the_keys_older_records_lack(stages):
    from workbench.datasets._diff import report_items

    dv = stages.datasets.ingest(OLD, name="r")
    report = stages.datasets.report("r@1")
    assert report and len(report) == len(dv.validation)
    assert all(
        set(r) >= {"check", "column", "passed", "severity", "failing", "examples", "detail"}
        for r in report
    )
    assert all(r["passed"] for r in report)
    assert report_items([{"check": "nulls", "passed": 0, "examples": "x"}]) == [
        {
            "check": "nulls",
            "column": None,
            "passed": False,
            "severity": "error",
            "failing": None,
            "examples": ["x"],
            "detail": "",
        }
    ]


def test_type_changes_compare_values_in_a_type_both_sides_fit():
    from datetime import date

    a = pl.DataFrame(
        {"id": [1, 2, 3], "l": [[1], [2], [3]], "d": [date(2020, 1, 1)] * 3, "s": ["1", "2", "x"]}
    )
    b = a.with_columns(
        pl.col("id").cast(pl.Float64),  # the key's type changed: rows still match
        pl.col("l").cast(pl.List(pl.Float64)),
        pl.col("d").cast(pl.Datetime),
        pl.col("s").cast(pl.Int64, strict=False),  # "x" is lost
    )
    d = diff(a, b, key="id")
    assert set(d.type_changes) == {"id", "l", "d", "s"}
    assert (d.added, d.removed, d.changed, d.unchanged) == (0, 0, 1, 2)
    assert d.changed_columns == {"l": 0, "d": 0, "s": 1}
    assert d.changed_examples == [{"key": {"id": 3}, "changes": {"s": ["x", None]}}]
    assert "id=3  s: 'x' -> None" in str(d)
