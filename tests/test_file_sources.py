"""File sources: CSV, Parquet, JSON and NDJSON files, folders, globs and hive partitions on the local
disk and on a real S3 API on loopback (moto); the xxh3 manifest and the unchanged fast path; faults
that name the file and what to do; Delta tables recorded by their table version, not copied."""

from __future__ import annotations

import json
import time

import polars as pl
import pytest
import xxhash

from workbench.datasets import Datasets, DeltaSource, FileSource, content_hash, source_from_spec
from workbench.datasets import _files as files_module
from workbench.datasets._files import read_delta_reference
from workbench.exceptions import ConfigError, DatasetValidationError, SourceError
from workbench.lineage import ArtifactStore, Store

ROWS = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "x": [0.5, -1.25, None, 3.0],
        "name": ["a", "b", None, "dd"],
        "ok": [True, False, True, None],
    }
)


@pytest.fixture
def datasets(tmp_path):
    store = Store(tmp_path / "l.db")
    yield Datasets(store, ArtifactStore(tmp_path / "art"))
    store.close()


def _xxh(path) -> str:
    return "xxh3-128:" + xxhash.xxh3_128_hexdigest(path.read_bytes())


def _write(df: pl.DataFrame, path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    {
        "csv": df.write_csv,
        "parquet": df.write_parquet,
        "json": df.write_json,
        "ndjson": df.write_ndjson,
    }[fmt](path)


# ------------------------------------------------------------- formats, manifest
@pytest.mark.parametrize("fmt", ["csv", "parquet", "json", "ndjson"])
def test_each_format_gives_the_same_rows_hash_and_a_manifest(datasets, tmp_path, fmt):
    path = tmp_path / f"rows.{fmt}"
    _write(ROWS, path, fmt)
    dv = datasets.ingest(path, name=f"rows-{fmt}")
    assert dv.content_hash == content_hash(ROWS) and dv.content_hash.startswith("xxh3-128:")
    assert datasets.load(dv).equals(ROWS)
    assert dv.manifest == [{"path": str(path), "size": path.stat().st_size, "hash": _xxh(path)}]
    assert dv.source_spec == {"kind": "files", "path": str(path)}
    again = source_from_spec(dv.source_spec).fetch({})
    assert content_hash(again.frame) == dv.content_hash


def test_folder_and_globs_read_the_matching_files_in_order(datasets, tmp_path):
    root = tmp_path / "data"
    _write(ROWS[:2], root / "a.csv", "csv")
    _write(ROWS[2:], root / "sub" / "b.csv", "csv")
    (root / "README.txt").write_text("not data")
    (root / "_SUCCESS").write_text("")
    (root / ".hidden.csv").write_text("id\n99\n")
    whole = datasets.ingest(root, name="folder")
    assert [m["path"] for m in whole.manifest] == [str(root / "a.csv"), str(root / "sub" / "b.csv")]
    assert datasets.load(whole).equals(ROWS)
    top = FileSource(str(root / "*.csv")).fetch({})
    assert top.frame.equals(ROWS[:2]) and len(top.manifest) == 1
    deep = FileSource(str(root / "**" / "*.csv")).fetch({})
    assert deep.frame.equals(ROWS) and len(deep.manifest) == 2
    with pytest.raises(ConfigError, match="matched no"):
        FileSource(str(root / "*.parquet")).fetch({})
    with pytest.raises(ConfigError, match="does not exist"):
        datasets.ingest(tmp_path / "nope", name="x")


def test_hive_partitions_become_columns(tmp_path):
    root = tmp_path / "events"
    for year, month, rows in (
        (2023, "12", ROWS[:1]),
        (2024, "01", ROWS[1:3]),
        (2024, "02", ROWS[3:]),
    ):
        _write(rows, root / f"year={year}" / f"month={month}" / "part-0.parquet", "parquet")
    got = FileSource(root).fetch({}).frame
    assert got.columns == [*ROWS.columns, "year", "month"]
    assert got.schema["year"] == pl.Int64 and got.schema["month"] == pl.Int64
    assert got["year"].to_list() == [2023, 2024, 2024, 2024]
    assert got.drop("year", "month").equals(ROWS)
    typed = FileSource(root, schema_overrides={"month": pl.Utf8}).fetch({}).frame
    assert typed["month"].to_list() == ["12", "01", "01", "02"]
    assert FileSource(root, hive=False).fetch({}).frame.columns == ROWS.columns
    spec = FileSource(root, schema_overrides={"month": pl.Utf8}, hive=True).to_spec()
    assert spec["schema_overrides"] == {"month": "String"} and spec["hive"] is True
    assert source_from_spec(spec).fetch({}).frame.equals(typed)
    with pytest.raises(ConfigError, match="cannot be recorded in a source spec"):
        FileSource(root, schema_overrides={"id": pl.List(pl.Int64)}).to_spec()
    with pytest.raises(ConfigError, match="unknown polars type 'Integer'"):
        FileSource(root, schema_overrides={"id": "Integer"})


# ------------------------------------------------------------------------ faults
def test_mixed_type_csv_names_the_file_and_column_and_the_override(datasets, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("zip,n\n" + "".join(f"{i},{i}\n" for i in range(10_050)) + "AB12,1\n")
    with pytest.raises(DatasetValidationError) as info:
        datasets.ingest(path, name="mixed")
    text = str(info.value)
    assert str(path) in text and "'zip'" in text and "'AB12'" in text
    assert "schema_overrides={'zip': pl.Utf8}" in text
    dv = datasets.ingest(FileSource(path, schema_overrides={"zip": pl.Utf8}), name="mixed")
    assert dv.schema["zip"] == "String" and dv.n_rows == 10_051
    assert dv.source_spec["schema_overrides"] == {"zip": "String"}
    assert datasets.list() == [dv]


def test_files_that_are_not_what_their_suffix_says(tmp_path):
    csv_named_parquet = tmp_path / "a.parquet"
    csv_named_parquet.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetValidationError, match=r"a\.parquet: it is not a Parquet file"):
        FileSource(csv_named_parquet).fetch({})
    assert FileSource(csv_named_parquet, format="csv").fetch({}).frame.shape == (1, 2)
    parquet_named_csv = tmp_path / "b.csv"
    ROWS.write_parquet(parquet_named_csv)
    with pytest.raises(DatasetValidationError, match=r"b\.csv: it is a Parquet file, not CSV"):
        FileSource(parquet_named_csv).fetch({})
    cut = tmp_path / "cut.parquet"
    ROWS.write_parquet(cut)
    cut.write_bytes(cut.read_bytes()[:-20] + b"PAR1")
    with pytest.raises(DatasetValidationError, match=r"could not read .*cut\.parquet"):
        FileSource(cut).fetch({})
    bad_json = tmp_path / "c.json"
    bad_json.write_text('[{"a": 1}, {"a": ')
    with pytest.raises(DatasetValidationError, match=r"could not read .*c\.json"):
        FileSource(bad_json).fetch({})
    with pytest.raises(ConfigError, match="unsupported file type '.txt'"):
        (tmp_path / "d.txt").write_text("x")
        FileSource(tmp_path / "d.txt").fetch({})
    with pytest.raises(ConfigError, match="unknown file format"):
        FileSource(tmp_path, format="xlsx")


def test_files_with_different_columns_or_types_are_refused(tmp_path):
    _write(ROWS, tmp_path / "cols" / "a.csv", "csv")
    _write(ROWS.drop("ok").with_columns(extra=pl.lit(1)), tmp_path / "cols" / "b.csv", "csv")
    with pytest.raises(DatasetValidationError, match=r"b\.csv lacks \['ok'\] and has \['extra'\]"):
        FileSource(tmp_path / "cols").fetch({})
    _write(ROWS, tmp_path / "types" / "a.csv", "csv")
    _write(ROWS.with_columns(pl.col("id").cast(pl.Utf8) + "x"), tmp_path / "types" / "b.csv", "csv")
    with pytest.raises(
        DatasetValidationError, match=r"column 'id' is Int64 in .*a\.csv but String"
    ):
        FileSource(tmp_path / "types").fetch({})
    # reordered columns and int/float widening are fine
    _write(ROWS, tmp_path / "ok" / "a.csv", "csv")
    _write(
        ROWS.select(reversed(ROWS.columns)).with_columns(pl.col("id") * 1.5),
        tmp_path / "ok" / "b.csv",
        "csv",
    )
    got = FileSource(tmp_path / "ok").fetch({}).frame
    assert got.columns == ROWS.columns and got.schema["id"] == pl.Float64 and got.height == 8
    _write(ROWS, tmp_path / "two" / "a.csv", "csv")
    _write(ROWS, tmp_path / "two" / "b.parquet", "parquet")
    with pytest.raises(ConfigError, match="several formats"):
        FileSource(tmp_path / "two").fetch({})


# --------------------------------------------------------- unchanged fast path
def test_unchanged_files_are_not_parsed_again(datasets, tmp_path, monkeypatch):
    root = tmp_path / "d"
    _write(ROWS[:2], root / "a.parquet", "parquet")
    _write(ROWS[2:], root / "b.parquet", "parquet")
    first = datasets.ingest(root, name="d")
    assert first.created and first.source_state["files"] == 2
    parsed = []
    real = files_module._parse_one
    monkeypatch.setattr(
        files_module, "_parse_one", lambda *a, **k: parsed.append(a[1].path) or real(*a, **k)
    )
    again = datasets.ingest(root, name="d")
    assert again.id == first.id and not again.created and parsed == []
    _write(ROWS[2:].with_columns(pl.col("id") + 10), root / "b.parquet", "parquet")
    second = datasets.ingest(root, name="d")
    assert second.created and second.version == 2 and len(parsed) == 2
    assert second.manifest[0] == first.manifest[0] and second.manifest[1] != first.manifest[1]
    assert second.source_state["fingerprint"] != first.source_state["fingerprint"]
    # other read options over the same bytes are not "unchanged"
    typed = datasets.ingest(FileSource(root, schema_overrides={"name": pl.Categorical}), name="d")
    assert len(parsed) == 4 and typed.id == second.id  # parsed again; same rows, same version


def test_same_rows_in_another_format_are_the_same_version(datasets, tmp_path):
    _write(ROWS, tmp_path / "a.csv", "csv")
    _write(ROWS, tmp_path / "a.ndjson", "ndjson")
    a = datasets.ingest(tmp_path / "a.csv", name="same")
    b = datasets.ingest(tmp_path / "a.ndjson", name="same")
    assert a.id == b.id and not b.created


# ---------------------------------------------------------------------------- S3
BUCKET = "wb-files"


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A bucket on the loopback S3 server, credentials in the environment as on a real node."""
    import pyarrow.fs as pafs

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    query = f"endpoint_override={s3_server.endpoint}&scheme=http"
    fs, _ = pafs.FileSystem.from_uri(f"s3://{BUCKET}?{query}&allow_bucket_creation=true")
    fs.create_dir(BUCKET)
    prefix = f"run-{time.time_ns()}"

    def put(key: str, data: bytes) -> None:
        with fs.open_output_stream(f"{BUCKET}/{prefix}/{key}") as f:
            f.write(data)

    return type("S3", (), {"put": staticmethod(put), "prefix": prefix, "query": query})


def test_s3_glob_with_hive_partitions_and_manifest(datasets, tmp_path, s3):
    blobs = {}
    for day, rows in (("2024-01-01", ROWS[:2]), ("2024-01-02", ROWS[2:])):
        path = tmp_path / f"{day}.parquet"
        rows.write_parquet(path)
        blobs[f"events/day={day}/part.parquet"] = path.read_bytes()
        s3.put(f"events/day={day}/part.parquet", path.read_bytes())
    s3.put("events/day=2024-01-02/notes.txt", b"ignored: not matched by the glob")
    uri = f"s3://testing-key:testing-secret@{BUCKET}/{s3.prefix}/events/**/*.parquet?{s3.query}"
    dv = datasets.ingest(uri, name="s3-events")
    assert datasets.load(dv).drop("day").equals(ROWS)
    assert datasets.load(dv)["day"].to_list() == ["2024-01-01"] * 2 + ["2024-01-02"] * 2
    assert [m["path"] for m in dv.manifest] == [
        f"s3://{BUCKET}/{s3.prefix}/{key}" for key in sorted(blobs)
    ]
    assert [m["hash"] for m in dv.manifest] == [
        "xxh3-128:" + xxhash.xxh3_128_hexdigest(blobs[k]) for k in sorted(blobs)
    ]
    assert "testing-secret" not in dv.source and "testing-secret" not in json.dumps(dv.source_spec)
    # the spec re-reads the same files with the environment's credentials; unchanged -> same version
    assert datasets.ingest(source_from_spec(dv.source_spec), name="s3-events").id == dv.id
    single = FileSource(
        f"s3://{BUCKET}/{s3.prefix}/events/day=2024-01-01/part.parquet",
        storage_options={
            "endpoint_override": s3.query.split("=")[1].split("&")[0],
            "scheme": "http",
        },
    )
    assert single.fetch({}).frame.equals(ROWS[:2])
    with pytest.raises(ConfigError, match="above the glob does not exist"):  # no such prefix
        FileSource(f"s3://{BUCKET}/{s3.prefix}/nothing/*.csv?{s3.query}").fetch({})
    with pytest.raises(ConfigError, match="matched no"):
        FileSource(f"s3://{BUCKET}/{s3.prefix}/events/*/*.csv?{s3.query}").fetch({})
    with pytest.raises(ConfigError, match="does not exist"):
        FileSource(f"s3://{BUCKET}/{s3.prefix}/missing.csv?{s3.query}").fetch({})


def test_s3_csv_and_ndjson(datasets, tmp_path, s3):
    _write(ROWS, tmp_path / "r.csv", "csv")
    _write(ROWS, tmp_path / "r.ndjson", "ndjson")
    s3.put("r/r.csv", (tmp_path / "r.csv").read_bytes())
    s3.put("r/r.ndjson", (tmp_path / "r.ndjson").read_bytes())
    for name in ("r.csv", "r.ndjson"):
        got = FileSource(f"s3://{BUCKET}/{s3.prefix}/r/{name}?{s3.query}").fetch({})
        assert content_hash(got.frame) == content_hash(ROWS)


def test_s3_faults_name_the_uri_with_secrets_masked(s3):
    keys = "testing-key:testing-secret@"
    with pytest.raises(ConfigError, match="does not exist") as info:
        FileSource(f"s3://{keys}no-such-bucket/p/*.csv?{s3.query}").fetch({})
    assert "testing-secret" not in str(info.value) and "s3://***@no-such-bucket/p/" in str(
        info.value
    )
    with pytest.raises(ConfigError, match="could not be opened"):
        FileSource(f"s3://{BUCKET}/p/*.csv?{s3.query}&no_such_option=1").fetch({})
    unreachable = "endpoint_override=127.0.0.1:9&scheme=http"  # nothing listens on port 9
    with pytest.raises(SourceError, match="could not list") as info:
        FileSource(f"s3://{keys}{BUCKET}/p/*.csv?{unreachable}").fetch({})
    assert "testing-secret" not in str(info.value) and f"s3://***@{BUCKET}/p/" in str(info.value)


# ------------------------------------------------------------------------- Delta
def test_delta_table_is_recorded_by_version_not_copied(datasets, tmp_path):
    import deltalake

    table = tmp_path / "table"
    deltalake.write_deltalake(table, ROWS[:2].to_arrow())
    v0 = datasets.ingest(DeltaSource(table), name="delta")
    assert v0.source_state == {"uri": str(table), "table_version": 0}
    artifact = datasets.artifacts.get_bytes(v0.artifact_hash)
    assert json.loads(artifact) == {"delta": str(table), "version": 0}  # a reference, no rows
    assert datasets.load(v0).equals(ROWS[:2]) and v0.content_hash == content_hash(ROWS[:2])
    assert datasets.ingest(DeltaSource(table), name="delta").id == v0.id  # nothing new
    deltalake.write_deltalake(table, ROWS[2:].to_arrow(), mode="append")
    v1 = datasets.ingest(DeltaSource(table), name="delta")
    assert v1.created and v1.version == 2 and v1.source_state["table_version"] == 1
    assert datasets.load(v1).sort("id").equals(ROWS)
    assert datasets.load(v0).equals(ROWS[:2])  # the old version still reads table version 0
    pinned = DeltaSource(table, version=0).fetch({})
    assert pinned.frame.equals(ROWS[:2]) and source_from_spec(v1.source_spec).to_spec() == {
        "kind": "delta",
        "uri": str(table),
    }
    # rows that no longer hash as recorded are refused, and so is a version whose files are gone
    with pytest.raises(SourceError, match="no longer holds the rows recorded"):
        read_delta_reference({"delta": str(table), "version": 1}, expected=v0.content_hash)
    for f in table.glob("*.parquet"):
        f.unlink()
    with pytest.raises(SourceError, match="could not read the Delta table .* at version 0"):
        datasets.load(v0)
    with pytest.raises(ConfigError, match=r"is a Delta table; read it with DeltaSource"):
        datasets.ingest(table, name="delta-as-files")
    with pytest.raises(SourceError, match="could not open the Delta table"):
        DeltaSource(tmp_path / "not-a-table").fetch({})
