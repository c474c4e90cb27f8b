"""Batch scoring on Ray Data (``Serving.score``): a registered bundle over a whole dataset version on the
session's real local Ray, recorded as a new version linked to the model version and the input."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from workbench.exceptions import ConfigError, DatasetValidationError, NotFoundError
from workbench.features import to_pandas
from workbench.serving._batch import (
    BundleScorer,
    _run,
    actor_pool,
    model_reference,
    output_columns,
    score_table,
)


@pytest.fixture(scope="module")
def scoring(cancer_bench):
    """``bc@1`` (logistic regression on all of the breast-cancer rows, also ``champion``) and the
    first scoring of ``bc`` with it, in batches of 100 rows (six blocks, up to two actors)."""
    bench, dv = cancer_bench
    bundle = bench.experiments.fit_bundle(dv, {"family": "logistic_regression", "C": 1.0})
    mv = bench.registry.register("bc", bundle, metrics={"f1": 0.97}, dataset_version_id=dv.id)
    bench.registry.set_alias("bc", "champion", mv.version)
    scored = bench.serving.score(f"bc@{mv.version}", dv, batch_size=100)
    return SimpleNamespace(bench=bench, dv=dv, bundle=bundle, mv=mv, scored=scored)


def _versions(bench) -> list[tuple[str, int]]:
    return [(v.name, v.version) for v in bench.datasets.list()]


@pytest.mark.ray
def test_every_row_is_scored_as_the_bundle_scores_it_in_input_order(scoring):
    bench, bundle = scoring.bench, scoring.bundle
    rows, out = bench.datasets.load(scoring.dv), bench.datasets.load(scoring.scored)
    assert out.height == rows.height == 569
    assert out.select(rows.columns).equals(rows)  # the input rows, in their order, untouched
    X = to_pandas(rows, bundle.features)
    assert out["prediction"].to_list() == bundle.predict_frame(X)
    assert set(out["prediction"].unique()) == {"benign", "malignant"}
    proba = bundle.pipeline.predict_proba(X)
    for j, code in enumerate(bundle.pipeline.classes_):
        column = out[f"prediction_proba_{bundle.classes[int(code)]}"].to_numpy()
        np.testing.assert_allclose(column, proba[:, j], rtol=0, atol=1e-12)
    assert out.columns == rows.columns + output_columns("prediction", bundle.signature)


@pytest.mark.ray
def test_rows_come_back_in_order_when_a_later_block_finishes_first(scoring):
    import ray

    class SlowFirstBlock(BundleScorer):
        """Scores the block holding row 0 last: an unordered gather would put its rows last.
        (Defined here so Ray pickles it by value: workers cannot import this test module.)"""

        def __call__(self, batch):
            import time

            if batch.column("row")[0].as_py() == 0:
                time.sleep(1.5)
            return super().__call__(batch)

    rows = scoring.bench.datasets.load(scoring.dv)
    table = rows.with_row_index("row").to_arrow()
    got = _run(
        table,
        artifacts_root=scoring.bench.artifacts.uri,
        artifact_hash=scoring.mv.artifact_hash,
        output="prediction",
        batch_size=100,
        num_gpus=0,
        compute=ray.data.ActorPoolStrategy(size=2),
        scorer=SlowFirstBlock,
    )
    assert got.column("row").to_pylist() == list(range(569))
    assert got.column("prediction").to_pylist() == scoring.bundle.predict_frame(
        to_pandas(rows, scoring.bundle.features)
    )


@pytest.mark.ray
def test_the_scored_rows_are_a_version_linked_to_the_model_and_the_input(scoring):
    bench, dv, mv, scored = scoring.bench, scoring.dv, scoring.mv, scoring.scored
    assert (scored.name, scored.version, scored.created) == ("bc-scored", 1, True)
    assert scored.parent_id == dv.id and scored.target is None and scored.n_rows == 569
    assert scored.source == "bc@1 scored by bc@1"
    out = [
        (e["relation"], e["dst_type"], e["dst_id"])
        for e in bench.store.edges(src=("dataset_version", scored.id))
    ]
    assert out == [("scored_by", "model_version", mv.id)]
    into = [
        (e["src_type"], e["src_id"], e["relation"])
        for e in bench.store.edges(dst=("dataset_version", scored.id))
    ]
    assert into == [("dataset_version", dv.id, "derived")]
    chain = bench.lineage("bc", "champion")
    assert ("dataset_version", scored.id) in chain["nodes"]
    assert "--scored_by--> model bc v1 [champion]" in bench.lineage_text("bc", 1)


@pytest.mark.ray
def test_scoring_the_same_rows_again_returns_their_version(scoring):
    bench, dv, mv = scoring.bench, scoring.dv, scoring.mv
    # a ModelVersion and "dataset@version", one actor, one batch
    again = bench.serving.score(mv, f"bc@{dv.version}", concurrency=1)
    assert (again.id, again.created) == (scoring.scored.id, False)
    assert len(bench.store.edges(src=("dataset_version", again.id))) == 1  # the edge once
    assert [v for n, v in _versions(bench) if n == "bc-scored"] == [1]


@pytest.mark.ray
def test_a_dataset_without_the_models_columns_is_refused_and_nothing_recorded(scoring):
    bench, dv = scoring.bench, scoring.dv
    rows = bench.datasets.load(dv)
    partial = bench.datasets.ingest(
        rows.drop("mean_radius", "worst_area"), name="bc-partial", target="diagnosis"
    )
    before = _versions(bench)
    with pytest.raises(DatasetValidationError) as err:
        bench.serving.score("bc@1", partial)
    assert "['mean_radius', 'worst_area']" in str(err.value)
    assert "nothing was scored or recorded" in str(err.value)
    assert [(r["column"], r["passed"]) for r in err.value.report] == [
        ("mean_radius", False),
        ("worst_area", False),
    ]
    texty = bench.datasets.ingest(
        rows.with_columns(rows["mean_texture"].cast(str)), name="bc-texty", target="diagnosis"
    )
    before = _versions(bench)
    with pytest.raises(
        DatasetValidationError, match=r"'mean_texture' \(String, the model takes a number\)"
    ):
        bench.serving.score("bc@1", texty)
    assert _versions(bench) == before


@pytest.mark.ray
def test_gpus_the_cluster_lacks_are_refused_and_cpu_is_the_default(scoring):
    import ray

    from workbench.serving import Serving

    assert inspect.signature(Serving.score).parameters["num_gpus"].default == 0
    # no GPU here; on a machine with some, one more than the session's Ray has
    gpus = int(ray.cluster_resources().get("GPU", 0))
    before = _versions(scoring.bench)
    with pytest.raises(
        ConfigError,
        match=rf"num_gpus={gpus + 1} per scoring actor, but this Ray cluster has {gpus} GPU",
    ):
        scoring.bench.serving.score("bc@1", scoring.dv, num_gpus=gpus + 1)
    assert _versions(scoring.bench) == before


@pytest.mark.ray
def test_refusals_before_any_work(scoring):
    bench, dv, scored = scoring.bench, scoring.dv, scoring.scored
    before = _versions(bench)
    with pytest.raises(ConfigError, match=r"already has column\(s\) \['prediction'"):
        bench.serving.score("bc@1", scored)  # scoring the scored rows needs another output name
    with pytest.raises(NotFoundError, match="no version '7'"):
        bench.serving.score("bc@7", dv)
    with pytest.raises(NotFoundError):
        bench.serving.score("nope@1", dv)
    with pytest.raises(ConfigError, match="takes a DatasetVersion or 'name@version'"):
        bench.serving.score("bc@1", dv.id)
    with pytest.raises(NotFoundError):
        bench.serving.score("bc@1", "bc@9")
    with pytest.raises(ConfigError, match="batch_size"):
        bench.serving.score("bc@1", dv, batch_size=0)
    assert _versions(bench) == before


# ------------------------------------------------------------------ pure parts, no Ray work


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("cancer@2", ("cancer", "2")),
        ("cancer@champion", ("cancer", "champion")),
        ("cancer", ("cancer", "champion")),
        (SimpleNamespace(model="cancer", version=3), ("cancer", 3)),
    ],
)
def test_model_reference_forms(ref, want):
    assert model_reference(ref) == want


@pytest.mark.parametrize("ref", ["", "@2", "cancer@", "a@b@c", 3, None])
def test_model_reference_refusals(ref):
    with pytest.raises(ConfigError, match="'model@version' or 'model@alias'"):
        model_reference(ref)


def test_actor_pool_sizes_and_refusals():
    cpus = {"CPU": 4.0}
    assert actor_pool(None, num_gpus=0, cluster=cpus).max_size == 4
    assert actor_pool(None, num_gpus=0.5, cluster={"CPU": 4.0, "GPU": 2.0}).max_size == 4
    assert actor_pool(3, num_gpus=0, cluster=cpus).min_size == 3
    pool = actor_pool((1, 2), num_gpus=0, cluster=cpus)
    assert (pool.min_size, pool.max_size) == (1, 2)
    for bad in (0, (3, 1), (0, 2), "2", True, (1, 2, 3)):
        with pytest.raises(ConfigError, match="concurrency"):
            actor_pool(bad, num_gpus=0, cluster=cpus)
    with pytest.raises(ConfigError, match="has 1 GPU"):
        actor_pool(None, num_gpus=2, cluster={"CPU": 4.0, "GPU": 1.0})


@pytest.mark.ray
def test_score_table_in_process_appends_predictions(scoring):
    bundle, rows = scoring.bundle, scoring.bench.datasets.load(scoring.dv)
    table = rows.head(5).to_arrow()
    out = score_table(bundle, table, output="y")
    assert out.column_names == table.column_names + output_columns("y", bundle.signature)
    assert out.column("y").to_pylist() == bundle.predict_frame(
        to_pandas(rows.head(5), bundle.features)
    )
    empty = score_table(bundle, table.slice(0, 0), output="y")
    assert empty.num_rows == 0 and empty.schema.field("y").type == pa.string()


@pytest.mark.ray
def test_an_actor_reads_the_bundle_from_a_storage_uri_not_a_driver_path(
    scoring, s3_server, tmp_path, monkeypatch
):
    """What each Ray Data actor runs when the nodes share no disk: the bundle fetched by hash from
    the storage URI (here the loopback S3, into an empty node cache) and verified."""
    import pyarrow.fs as pafs

    from workbench.lineage import ArtifactStore
    from workbench.serving import BundleScorer

    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing-key",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(var, value)
    query = f"endpoint_override={s3_server.endpoint}&scheme=http"
    fs, _ = pafs.FileSystem.from_uri(f"s3://wb-scoring?{query}&allow_bucket_creation=true")
    fs.create_dir("wb-scoring")
    uri = f"s3://wb-scoring/artifacts?{query}"
    sha = ArtifactStore(uri, cache_dir=tmp_path / "driver").put_object(scoring.bundle)
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "node"))  # a node with nothing cached
    scorer = BundleScorer(uri, sha, output="p")
    rows = scoring.bench.datasets.load(scoring.dv).head(7)
    got = scorer(rows.to_arrow()).column("p").to_pylist()
    assert got == scoring.bundle.predict_frame(to_pandas(rows, scoring.bundle.features))
    assert (tmp_path / "node" / sha[:2] / sha[2:]).is_file()  # fetched from S3 by the "node"
    with pytest.raises(NotFoundError):
        BundleScorer(uri, "0" * 64)
