"""Dataset validation: every rule passing and failing, severities, capped examples, checks inferred
from a reference (a shifted batch fails its PSI check), a YAML file edited by hand and loaded back,
and quarantine of a CSV's bad rows end to end on a Stages in tmp_path."""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.datasets import Checks, Column, Custom, format_report, infer_checks, validate
from workbench.datasets._validation import psi
from workbench.exceptions import ConfigError, DatasetValidationError


def _one(report, check, column=None):
    hits = [r for r in report if r["check"] == check and r["column"] == column]
    assert len(hits) == 1, (check, column, report)
    return hits[0]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    from workbench.stages import Stages

    st_ = Stages.open(tmp_path_factory.mktemp("validation") / "home")
    yield st_
    st_.close()


# ------------------------------------------------------------ every rule
GOOD = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "age": [20, 35, 50, 64],
        "country": ["FR", "DE", "FR", "IT"],
        "code": ["A1", "B2", "C3", "D4"],
        "score": [0.1, None, 0.3, 0.4],
    }
)

CASES = [
    # (check name, column, checks, a frame that fails it)
    (
        "type",
        "age",
        Checks(columns={"age": Column(dtype="Int64")}),
        GOOD.with_columns(pl.col("age").cast(pl.Float64)),
    ),
    (
        "columns",
        None,
        Checks(schema={c: str(t) for c, t in GOOD.schema.items()}),
        GOOD.with_columns(extra=pl.lit(1)),
    ),
    (
        "nullable",
        "age",
        Checks(columns={"age": Column(nullable=False)}),
        GOOD.with_columns(
            pl.when(pl.col("id") == 2).then(None).otherwise(pl.col("age")).alias("age")
        ),
    ),
    (
        "range",
        "age",
        Checks(columns={"age": Column(min=18, max=65)}),
        GOOD.with_columns(pl.Series("age", [20, 35, 50, 99])),
    ),
    (
        "isin",
        "country",
        Checks(columns={"country": Column(isin=["FR", "DE", "IT"])}),
        GOOD.with_columns(pl.Series("country", ["FR", "DE", "XX", "IT"])),
    ),
    (
        "unique",
        "id",
        Checks(columns={"id": Column(unique=True)}),
        GOOD.with_columns(pl.Series("id", [1, 2, 2, 4])),
    ),
    (
        "regex",
        "code",
        Checks(columns={"code": Column(regex=r"^[A-Z]\d$")}),
        GOOD.with_columns(pl.Series("code", ["A1", "B2", "cc", "D4"])),
    ),
    ("row_count", None, Checks(min_rows=2, max_rows=4), pl.concat([GOOD, GOOD.head(1)])),
    ("row_band", None, Checks(expected_rows=(3, 5)), GOOD.head(2)),
    (
        "nulls",
        "score",
        Checks(columns={"score": Column(null_fraction=(0.0, 0.3))}),
        GOOD.with_columns(pl.Series("score", [None, None, 0.3, 0.4])),
    ),
    (
        "numeric",
        "age",
        Checks(numeric=["age"]),
        GOOD.with_columns(pl.Series("age", ["20", "35", "fifty", "64"])),
    ),
    (
        "target_nulls",
        "country",
        Checks(target="country"),
        GOOD.with_columns(pl.Series("country", ["FR", None, "FR", "IT"])),
    ),
    (
        "adult",
        "age",
        Checks(custom=[Custom(lambda s: s >= 18, name="adult", column="age")]),
        GOOD.with_columns(pl.Series("age", [20, 35, 12, 64])),
    ),
    (
        "enough_fr",
        None,
        Checks(custom=[Custom(lambda df: (df["country"] == "FR").sum() >= 2, name="enough_fr")]),
        GOOD.with_columns(pl.Series("country", ["FR", "DE", "IT", "IT"])),
    ),
]


@pytest.mark.parametrize(("check", "column", "checks", "bad"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_passes_good_data_and_fails_bad_data(check, column, checks, bad):
    good = _one(validate(GOOD, checks), check, column)
    assert good["passed"] and good["failing"] == 0 and good["examples"] == []
    failed = _one(validate(bad, checks), check, column)
    default = "warn" if check == "row_band" else "error"  # a band relative to a reference warns
    assert not failed["passed"] and failed["severity"] == default and failed["failing"] >= 1
    assert set(failed) >= {"check", "column", "passed", "severity", "failing", "examples", "detail"}
    if failed["level"] == "row":  # the examples are the failing rows themselves
        assert failed["examples"] and all(set(e) == set(bad.columns) for e in failed["examples"])
    assert not [r for r in validate(GOOD, checks) if not r["passed"]]


def test_row_rule_counts_examples_and_detail():
    df = pl.DataFrame({"x": list(range(100))})
    report = validate(df, Checks(columns={"x": Column(min=0, max=79)}))
    r = _one(report, "range", "x")
    assert r["failing"] == 20 and [e["x"] for e in r["examples"]] == [80, 81, 82, 83, 84]
    assert "20 of 100 rows fail" in r["detail"]
    assert (
        len(
            _one(validate(df, Checks(columns={"x": Column(max=79)}), examples=2), "range", "x")[
                "examples"
            ]
        )
        == 2
    )
    # a duplicated value: every copy fails
    dup = _one(
        validate(
            pl.DataFrame({"k": ["a", "b", "a", "c", "a"]}),
            Checks(columns={"k": Column(unique=True)}),
        ),
        "unique",
        "k",
    )
    assert dup["failing"] == 3 and [e["k"] for e in dup["examples"]] == ["a", "a", "a"]


def test_severity_warn_records_and_error_rejects(stages):
    df = pl.DataFrame({"age": [20, 30, 140], "y": ["a", "b", "a"]})
    warn = Checks(columns={"age": Column(max=120, severity="warn")}, target="y")
    dv = stages.datasets.ingest(df, name="sev", target="y", checks=warn)
    r = _one(dv.validation, "range", "age")
    assert (
        dv.created
        and not r["passed"]
        and r["severity"] == "warn"
        and r["examples"] == [{"age": 140, "y": "a"}]
    )
    assert "WARN range" in format_report(dv.validation)
    # the same rule as an error rejects and records nothing
    error = Checks(columns={"age": Column(max=120)}, target="y")
    with pytest.raises(DatasetValidationError, match=r"FAIL range +\[age\]") as info:
        stages.datasets.ingest(
            df.head(3).with_columns(pl.col("age") + 1), name="sev", target="y", checks=error
        )
    assert _one(info.value.report, "range", "age")["failing"] == 1
    assert stages.datasets.get("sev").version == 1
    # a per-rule severity map and a Checks-wide default
    mixed = Checks(columns={"age": Column(min=25, max=120, severity={"range": "warn"})})
    assert _one(validate(df, mixed), "range", "age")["severity"] == "warn"
    assert (
        _one(validate(df.head(0), Checks(severity={"row_count": "warn"})), "row_count")["severity"]
        == "warn"
    )
    with pytest.raises(ConfigError, match="severity"):
        Column(severity="fatal")


def test_custom_rules_that_break_or_return_the_wrong_thing_fail_by_name():
    report = validate(
        GOOD,
        Checks(
            custom=[
                Custom(lambda df: 1 / 0, name="boom"),
                Custom(lambda df: "yes", name="text"),
                Custom(lambda s: s > 0, name="gone", column="nope"),
            ]
        ),
    )
    assert "ZeroDivisionError" in _one(report, "boom")["detail"]
    assert "return a boolean Series" in _one(report, "text")["detail"]
    assert not _one(report, "gone", "nope")["passed"]


# ---------------------------------------------------------------- inference
def _reference(n=2000, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.normal(10.0, 2.0, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
            "maybe": [None if i % 10 == 0 else float(i) for i in range(n)],
            "y": rng.choice(["a", "b"], n),
        }
    )


def test_inferred_checks_pass_the_reference_and_flag_a_shifted_batch():
    ref = _reference()
    checks = infer_checks(ref, tolerance=0.1, target="y")
    x = checks.columns["x"]
    lo, hi = ref["x"].min(), ref["x"].max()
    assert x.dtype == "Float64" and x.nullable is False
    assert x.min == pytest.approx(lo - 0.1 * (hi - lo)) and x.max == pytest.approx(
        hi + 0.1 * (hi - lo)
    )
    assert checks.columns["colour"].isin == ["blue", "green", "red"]
    assert checks.columns["id"].unique and not checks.columns["x"].unique  # ids, not measurements
    assert checks.columns["maybe"].nullable is None and checks.columns[
        "maybe"
    ].null_fraction == pytest.approx((0.0, 0.2))
    assert checks.expected_rows == (1800, 2200)
    assert not [r for r in validate(ref, checks) if not r["passed"]]
    # a fresh sample of the same distribution: no warning either
    same = _reference(seed=1)
    assert not [r for r in validate(same, checks) if not r["passed"]]
    # shifted by 0.75 standard deviation (kept within the range): the PSI check warns
    shifted = same.with_columns((pl.col("x") + 1.5).clip(upper_bound=x.max))
    report = validate(shifted, checks)
    bad = [r for r in report if not r["passed"]]
    assert [(r["check"], r["column"], r["severity"]) for r in bad] == [("psi", "x", "warn")]
    assert (
        bad[0]["statistic"] > 0.2 and _one(validate(same, checks), "psi", "x")["statistic"] < 0.05
    )
    # 50 rows of the same distribution: PSI's sampling noise alone (~9/50 for 10 bins) would pass
    # 0.2 often, so the bound rises to chi2(9)'s 99th percentile / 50 = 0.43 and no warning comes;
    # the same 50 rows shifted by 1.5 standard deviations still warn
    small = [_one(validate(_reference(seed=s).head(50), checks), "psi", "x") for s in range(2, 12)]
    assert all(r["passed"] and r["limit"] == pytest.approx(21.666 / 50, abs=1e-3) for r in small)
    far = same.head(50).with_columns((pl.col("x") + 3.0).clip(upper_bound=x.max))
    assert not _one(validate(far, checks), "psi", "x")["passed"]
    # a category share shift warns too; a new category is an error
    skew = same.with_columns(pl.Series("colour", ["blue"] * same.height))
    assert not _one(validate(skew, checks), "psi", "colour")["passed"]
    new_cat = same.with_columns(pl.Series("colour", ["purple"] + same["colour"].to_list()[1:]))
    assert _one(validate(new_cat, checks), "isin", "colour")["failing"] == 1


def test_yaml_round_trip_edited_by_hand(tmp_path):
    ref = _reference(500)
    checks = infer_checks(ref, target="y")
    path = checks.to_yaml(tmp_path / "checks.yaml")
    assert Checks.from_yaml(path) == checks
    text = path.read_text()
    assert text.startswith("# workbench dataset checks")
    # by hand: a tighter maximum for x and the PSI rule of x made an error
    x_max = checks.columns["x"].max
    edited = text.replace(
        f"    max: {x_max}\n", "    max: 12.0\n    severity:\n      psi: error\n", 1
    )
    assert edited != text
    path.write_text(edited)
    loaded = Checks.from_yaml(path)
    assert loaded.columns["x"].max == 12.0 and loaded.severity_of("psi", "x") == "error"
    assert loaded.severity_of("psi", "colour") == "warn"
    r = _one(validate(ref, loaded), "range", "x")
    assert r["failing"] == int((ref["x"] > 12.0).sum()) > 0
    # dict round trip; custom callables are refused; typos are named
    assert Checks.from_dict(checks.to_dict()) == checks
    with pytest.raises(ConfigError, match=r"custom callables \['adult'\] cannot be serialised"):
        Checks(custom=[Custom(lambda s: s > 0, name="adult")]).to_dict()
    with pytest.raises(ConfigError, match=r"unknown rule\(s\) \['maxx'\]"):
        Checks.from_dict({"columns": {"x": {"maxx": 3}}})
    path.write_text("columns: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Checks.from_yaml(path)


def test_datasets_infer_checks_stores_the_yaml_as_an_artifact(stages, tmp_path):
    dv = stages.datasets.ingest(_reference(300), name="ref", target="y")
    checks = stages.datasets.infer_checks(dv, tolerance=0.2, path=tmp_path / "ref.yaml")
    stored = stages.artifacts.get_bytes(checks.artifact).decode()
    assert stored == (tmp_path / "ref.yaml").read_text()
    assert Checks.from_yaml(tmp_path / "ref.yaml") == checks and checks.target == "y"
    assert checks.expected_rows == (240, 360)


# --------------------------------------------------------------- quarantine
CSV = """id,age,country,y
1,34,FR,a
2,41,DE,b
3,-5,FR,a
4,29,XX,b
5,,IT,a
6,52,IT,
7,38,DE,b
8,45,FR,a
"""


def test_quarantine_of_a_csv_with_bad_rows_end_to_end(stages, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    checks = Checks(
        target="y",
        columns={
            "age": Column(nullable=False, min=0, max=120),
            "country": Column(isin=["FR", "DE", "IT"]),
            "id": Column(unique=True),
        },
    )
    # reject (the default): nothing recorded, the report names each failure
    with pytest.raises(DatasetValidationError) as info:
        stages.datasets.ingest(path, name="people", target="y", checks=checks)
    failed = {(r["check"], r["column"], r["failing"]) for r in info.value.report if not r["passed"]}
    assert failed == {
        ("range", "age", 1),
        ("nullable", "age", 1),
        ("isin", "country", 1),
        ("target_nulls", "y", 1),
    }
    assert all(dv.name != "people" for dv in stages.datasets.list())
    # quarantine: 4 bad rows split off into people-quarantine, whose parent is the clean version
    dv = stages.datasets.ingest(
        path, name="people", target="y", checks=checks, on_error="quarantine"
    )
    q = dv.quarantined
    assert (dv.name, dv.n_rows, q.name, q.n_rows, q.parent_id) == (
        "people",
        4,
        "people-quarantine",
        4,
        dv.id,
    )
    assert stages.datasets.load(dv)["id"].to_list() == [1, 2, 7, 8]
    assert stages.datasets.load(q)["id"].to_list() == [3, 4, 5, 6]
    assert (
        dv.validation == q.validation
        and _one(dv.validation, "isin", "country")["examples"][0]["id"] == 4
    )
    assert stages.datasets.get("people-quarantine").id == q.id
    # the same rows again (as a frame: the file source would say "unchanged" before validating):
    # same content, the same two versions
    again = stages.datasets.ingest(
        pl.read_csv(path), name="people", target="y", checks=checks, on_error="quarantine"
    )
    assert (again.id, again.created) == (dv.id, False)
    assert (again.quarantined.id, again.quarantined.created) == (q.id, False)
    # a dataset-level failure (a missing column) cannot be quarantined
    with pytest.raises(DatasetValidationError, match="cannot be quarantined"):
        stages.datasets.ingest(
            pl.read_csv(path).drop("country"),
            name="people",
            target="y",
            checks=checks,
            on_error="quarantine",
        )
    with pytest.raises(ConfigError, match="on_error"):
        stages.datasets.ingest(path, name="people", on_error="drop")


def test_quarantine_keeps_warnings_and_needs_min_rows_of_clean_data(stages):
    df = pl.DataFrame({"v": [1, 2, 300, 400]})
    checks = Checks(
        min_rows=3,
        columns={"v": Column(max=100)},
        custom=[Custom(lambda d: d["v"] < 350, name="soft", severity="warn")],
    )
    with pytest.raises(DatasetValidationError, match="only 2 of 4 rows pass"):
        stages.datasets.ingest(df, name="few", checks=checks, on_error="quarantine")
    checks.min_rows = 1
    dv = stages.datasets.ingest(df, name="few", checks=checks, on_error="quarantine")
    assert (
        dv.n_rows == 2 and dv.quarantined.n_rows == 2
    )  # a warn-only failure (v=300 < 350 is fine) stays
    assert not _one(dv.validation, "soft")["passed"]


# ------------------------------------------------------------- pure logic
@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=8))
def test_psi_is_zero_on_itself_and_positive_on_a_shift(weights):
    total = sum(weights)
    e = [w / total for w in weights]
    assert psi(e, e) == 0.0
    shifted = e[1:] + e[:1]
    assert psi(e, shifted) >= 0.0
    if max(abs(a - b) for a, b in zip(e, shifted, strict=True)) > 1e-9:
        assert psi(e, shifted) > 0.0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=60),
    st.lists(st.sampled_from(["a", "b", "c", None]), min_size=60, max_size=60),
    st.floats(0.0, 0.5),
)
def test_a_reference_passes_its_own_inferred_checks(values, cats, tolerance):
    df = pl.DataFrame({"v": pl.Series(values, dtype=pl.Float64), "c": cats[: len(values)]})
    checks = infer_checks(df, tolerance=tolerance)
    report = validate(df, checks)
    assert not [r for r in report if not r["passed"]], format_report(report, only_failures=True)
    assert Checks.from_dict(checks.to_dict()) == checks
    v = checks.columns["v"]
    if v.min is not None:
        assert v.min <= df["v"].min() and v.max >= df["v"].max() and not math.isnan(v.min)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.integers(-50, 150)), min_size=1, max_size=40),
    st.sampled_from(["error", "warn"]),
)
def test_the_quarantine_mask_is_exactly_the_rows_failing_error_rules(ages, severity):
    from workbench.datasets._validation import run_checks

    df = pl.DataFrame({"age": pl.Series(ages, dtype=pl.Int64)})
    checks = Checks(
        columns={"age": Column(nullable=False, min=0, max=120, severity=severity)},
        max_null_fraction=1.0,  # a mostly-null column is a dataset-level failure otherwise
    )
    out = run_checks(df, checks)
    expected = [a is None or not 0 <= a <= 120 for a in ages]
    if severity == "warn" or not any(expected):
        assert out.bad_rows is None and out.errors == []
    else:
        assert out.bad_rows.tolist() == expected and out.dataset_errors == []
    failing = sum(r["failing"] for r in out.report if r["check"] in ("nullable", "range"))
    assert failing == sum(expected)
