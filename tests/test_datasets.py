"""Ingestion, validation, versioning, splitting."""

from __future__ import annotations

import polars as pl
import pytest

from workbench.datasets import Checks, Datasets, write_breast_cancer_csv
from workbench.exceptions import ConfigError, DatasetValidationError
from workbench.lineage import ArtifactStore, Store


@pytest.fixture
def datasets(tmp_path):
    store = Store(tmp_path / "l.db")
    yield Datasets(store, ArtifactStore(tmp_path / "art"))
    store.close()


def test_ingest_csv_and_parquet_give_the_same_content_hash(datasets, tmp_path):
    csv = write_breast_cancer_csv(tmp_path / "bc.csv")
    pq = tmp_path / "bc.parquet"
    pl.read_csv(csv).write_parquet(pq)
    a = datasets.ingest(csv, name="bc", target="diagnosis")
    b = datasets.ingest(pq, name="bc", target="diagnosis")
    assert a.id == b.id and a.version == 1  # same content → same version, recorded once
    assert a.n_rows == 569 and a.schema["diagnosis"] == "String"
    assert datasets.load(a).equals(pl.read_csv(csv))


def test_the_same_rows_under_two_names_are_stored_once(datasets, tmp_path):
    df = pl.DataFrame({"a": list(range(1000)), "b": ["x", "y"] * 500})
    one = datasets.ingest(df, name="one")
    two = datasets.ingest(df.rechunk(), name="two")
    other = datasets.ingest(df.head(999), name="three")
    assert (one.name, two.name) == ("one", "two") and one.id != two.id  # a version of each name
    assert one.content_hash == two.content_hash != other.content_hash
    assert one.artifact_hash == two.artifact_hash != other.artifact_hash
    stored = [p for p in (tmp_path / "art").rglob("*") if p.is_file()]
    assert len(stored) == 2, stored  # one copy of the shared rows, one of the others


def test_failed_validation_records_nothing(datasets):
    df = pl.DataFrame({"x": [1.0, None, None, None], "y": ["a", None, "b", "a"]})
    with pytest.raises(DatasetValidationError) as info:
        datasets.ingest(
            df,
            name="bad",
            target="y",
            checks=Checks(target="y", min_rows=10, max_null_fraction=0.5),
        )
    failed = {(r["check"], r["column"]) for r in info.value.report if not r["passed"]}
    assert failed == {("row_count", None), ("target_nulls", "y"), ("nulls", "x")}
    assert "FAIL" in str(info.value) and "nothing was recorded" in str(info.value)
    assert datasets.list() == []


def test_schema_and_numeric_checks_name_the_column(datasets):
    df = pl.DataFrame({"age": ["31", "forty", "52"], "y": ["a", "b", "a"]})
    checks = Checks(target="y", schema={"age": "Float64", "y": "String"}, numeric=["age"])
    with pytest.raises(
        DatasetValidationError, match=r"\[age\].*non-numeric values such as 'forty'"
    ):
        datasets.ingest(df, name="typed", target="y", checks=checks)


def test_unreadable_and_missing_files(datasets, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        datasets.ingest(tmp_path / "nope.csv", name="x")
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(DatasetValidationError, match="could not read"):
        datasets.ingest(bad, name="x")


def test_split_is_deterministic_stratified_and_lineaged(datasets, tmp_path):
    dv = datasets.ingest(
        write_breast_cancer_csv(tmp_path / "bc.csv"), name="bc", target="diagnosis"
    )
    parts = datasets.split(dv, {"train": 0.6, "holdout": 0.2, "live": 0.2}, seed=3)
    sizes = {k: v.n_rows for k, v in parts.items()}
    assert sum(sizes.values()) == 569 and abs(sizes["train"] - 341) <= 2
    frames = {k: datasets.load(v) for k, v in parts.items()}
    share = {k: (f["diagnosis"] == "malignant").mean() for k, f in frames.items()}
    assert max(share.values()) - min(share.values()) < 0.03  # stratified
    assert (
        frames["train"].join(frames["holdout"], on=frames["train"].columns, how="inner").height == 0
    )
    again = datasets.split(dv, {"train": 0.6, "holdout": 0.2, "live": 0.2}, seed=3)
    assert {k: v.id for k, v in again.items()} == {k: v.id for k, v in parts.items()}
    assert parts["train"].parent_id == dv.id
    with pytest.raises(ConfigError, match="sum to 1"):
        datasets.split(dv, {"a": 0.5, "b": 0.2})


def test_extend_makes_a_child_version(datasets, tmp_path):
    dv = datasets.ingest(pl.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}), name="d", target="y")
    child = datasets.extend(dv, pl.DataFrame({"x": [3.0], "y": ["a"]}))
    assert (child.version, child.n_rows, child.parent_id) == (2, 3, dv.id)
    with pytest.raises(DatasetValidationError, match="do not match"):
        datasets.extend(dv, pl.DataFrame({"z": [1]}))
