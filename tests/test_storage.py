"""Artifacts and Tune on a storage URI: the same tests on ``file://`` and on a real S3 API on loopback
(moto's ``ThreadedMotoServer``), faults refused before anything is recorded, and the public API end to
end on a local Ray with nothing written under ``WORKBENCH_HOME/artifacts`` or ``/tune``."""

from __future__ import annotations

import os
import pickle
import time

import pytest

from workbench.exceptions import ArtifactCorruptError, ConfigError, NotFoundError

BUCKET = "wb-test"


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials for the loopback S3 server, from the environment as on a real node."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never wait on a metadata service here
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)


def _fs(uri):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def _s3_uri(server, prefix, bucket=BUCKET, keys=""):
    """``keys``: ``"KEY:SECRET"`` in the URI's user info (pyarrow takes no key in the query)."""
    at = f"{keys}@" if keys else ""
    return f"s3://{at}{bucket}/{prefix}?endpoint_override={server.endpoint}&scheme=http"


def _make_bucket(server, bucket=BUCKET):
    fs, _ = _fs(
        f"s3://{bucket}?endpoint_override={server.endpoint}&scheme=http&allow_bucket_creation=true"
    )
    fs.create_dir(bucket)


@pytest.fixture(params=["file", "s3"])
def storage_uri(request, tmp_path, aws_env):
    """A fresh storage root: ``file://`` of a folder, or a prefix in a bucket of the loopback S3 server."""
    if request.param == "file":
        root = tmp_path / "shared"
        root.mkdir()
        return f"file://{root}"
    server = request.getfixturevalue("s3_server")
    _make_bucket(server)
    return _s3_uri(server, f"{request.node.name.replace('[', '-').rstrip(']')}-{time.time_ns()}")


def _store(uri, tmp_path, name="cache"):
    from workbench.lineage import ArtifactStore

    return ArtifactStore(uri, cache_dir=tmp_path / name)


def _raw_key(store, digest):
    """The object's filesystem and path, written to directly (behind the store's back)."""
    fs, _ = _fs(store.uri)
    return fs, store.path_for(digest)


# --------------------------------------------------------------------------- the store on a URI
def test_round_trip_and_a_second_node_reads_it(storage_uri, tmp_path):
    writer = _store(storage_uri, tmp_path, "node-a")
    assert writer.remote
    obj = {"weights": list(range(100)), "name": "model"}
    digest = writer.put_object(obj)
    assert writer.exists(digest) and not writer.exists("0" * 64)
    assert writer.put_object(obj) == digest  # content-addressed: the same bytes, the same id
    reader = _store(storage_uri, tmp_path, "node-b")  # another node: its own, empty cache
    assert reader.get_object(digest) == obj
    assert reader.remote_reads == 1
    assert (tmp_path / "node-b" / digest[:2] / digest[2:]).exists()
    with pytest.raises(NotFoundError, match="missing from"):
        reader.get_bytes("f" * 64)


def test_corrupt_remote_bytes_refused_before_unpickling(storage_uri, tmp_path):
    store = _store(storage_uri, tmp_path, "writer")
    digest = store.put_object({"good": True})
    fs, key = _raw_key(store, digest)
    if fs.type_name == "local":
        os.chmod(key, 0o644)
    with fs.open_output_stream(
        key
    ) as f:  # a valid pickle of something else: unpickling it would succeed
        f.write(pickle.dumps({"good": False}))
    fresh = _store(storage_uri, tmp_path, "other-node")
    with pytest.raises(ArtifactCorruptError, match="corrupt") as info:
        fresh.get_object(digest)
    assert "it was not loaded" in str(info.value)
    assert not (tmp_path / "other-node" / digest[:2] / digest[2:]).exists()  # never cached


def test_cache_hit_is_served_without_a_remote_read(storage_uri, tmp_path):
    store = _store(storage_uri, tmp_path)
    digest = store.put_bytes(b"x" * 10_000)
    node = _store(storage_uri, tmp_path, "node")
    assert node.get_bytes(digest) == b"x" * 10_000 and node.remote_reads == 1
    fs, key = _raw_key(store, digest)
    fs.delete_file(key)  # gone from the storage: only the cache can answer now
    assert node.get_bytes(digest) == b"x" * 10_000
    assert node.remote_reads == 1
    with pytest.raises(NotFoundError):
        _store(storage_uri, tmp_path, "cold-node").get_bytes(digest)


def test_corrupt_cache_entry_is_dropped_and_refetched(storage_uri, tmp_path):
    store = _store(storage_uri, tmp_path)
    digest = store.put_object([1, 2, 3])
    node = _store(storage_uri, tmp_path, "node")
    assert node.get_object(digest) == [1, 2, 3]
    cached = tmp_path / "node" / digest[:2] / digest[2:]
    os.chmod(cached, 0o644)
    cached.write_bytes(pickle.dumps([6, 6, 6]))
    assert node.get_object(digest) == [1, 2, 3]
    assert node.remote_reads == 2
    assert pickle.loads(cached.read_bytes()) == [1, 2, 3]


def test_probe_writes_and_deletes_and_is_cheap(storage_uri, tmp_path):
    store = _store(storage_uri, tmp_path)
    seconds = [store.probe() for _ in range(3)]
    assert max(seconds) < 5.0, seconds
    fs, base = _fs(storage_uri)
    import pyarrow.fs as pafs

    left = [i.path for i in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))]
    assert not [p for p in left if ".probe-" in p]


def test_replicas_load_their_versions_from_the_uri(storage_uri, tmp_path, monkeypatch):
    """The router and an isolated version's server, configured as Serve configures a replica
    (in-process), load the bundle from the storage URI through their node's cache, and refuse
    bytes that do not match their hash."""
    from ray import serve  # noqa: F401  (the replica modules need Serve's decorator)

    from tests._serve_env import cancer_bundle
    from workbench.serving._isolated import ModelServer
    from workbench.serving._router import Router

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "replica-node-cache"))
    bundle, records = cancer_bundle()
    writer = _store(storage_uri, tmp_path, "driver")
    digest = writer.put_object(bundle)
    config = {
        "deployment": "d",
        "db_path": str(tmp_path / "lineage.db"),
        "artifacts_dir": storage_uri,
        "versions": {"1": {"artifact": digest, "model_version_id": 7, "weight": 1.0}},
    }

    class _Router(Router.func_or_class):  # type: ignore[misc,name-defined]
        def _ensure_flusher(self) -> None:
            pass

        def __del__(self) -> None:
            pass

    router = _Router()
    router.reconfigure(config)
    assert router._artifacts.uri == storage_uri and router._artifacts.remote_reads == 1
    assert (tmp_path / "replica-node-cache" / digest[:2] / digest[2:]).exists()
    server = ModelServer.func_or_class()
    server.reconfigure({"artifacts_dir": storage_uri, "artifact": digest, "version": 1})
    assert server.predict(records[:3]) == ("ok", bundle.predict_records(records[:3]))

    other = writer.put_object({"not": "a model"})
    fs, key = _raw_key(writer, other)
    if fs.type_name == "local":
        os.chmod(key, 0o644)
    with fs.open_output_stream(key) as f:
        f.write(pickle.dumps(bundle))  # a valid bundle, under another hash
    with pytest.raises(ArtifactCorruptError):
        ModelServer.func_or_class().reconfigure(
            {"artifacts_dir": storage_uri, "artifact": other, "version": 2}
        )


# --------------------------------------------------------------------------- faults
def _bad_uris(tmp_path, server):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return {
        "missing-bucket": _s3_uri(server, "p", bucket="no-such-bucket"),
        "wrong-endpoint": "s3://wb-test/p?endpoint_override=127.0.0.1:9&scheme=http",
        "unwritable-path": f"file://{blocker}/sub",
    }


@pytest.mark.parametrize("case", ["missing-bucket", "wrong-endpoint", "unwritable-path"])
def test_unreachable_storage_is_refused_before_anything_is_recorded(
    case, tmp_path, aws_env, s3_server
):
    from workbench.api import Workbench

    _make_bucket(s3_server)
    uri = _bad_uris(tmp_path, s3_server)[case]
    home = tmp_path / "home"
    with pytest.raises(ConfigError) as info:
        Workbench(home, storage=uri)
    message = str(info.value)
    assert uri.split("?")[0] in message and "could not be written" in message
    assert not (home / "lineage.db").exists()
    assert not (home / "artifacts").exists()


def test_refused_credentials_name_the_uri_masked(tmp_path, aws_env, s3_server, monkeypatch):
    """With authentication on, the loopback server refuses keys it does not know; the message
    names the URI with the key and secret given in it masked."""
    import moto.settings

    from workbench.api import Workbench
    from workbench.lineage import ArtifactStore, mask_uri

    _make_bucket(s3_server)
    uri = _s3_uri(s3_server, "p", keys="AKIAWRONG:s3cr3t-value")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    home = tmp_path / "home"
    with pytest.raises(ConfigError) as info:
        Workbench(home, storage=uri)
    message = str(info.value)
    assert "s3cr3t-value" not in message and "AKIAWRONG" not in message
    assert f"s3://***@{BUCKET}/p/artifacts" in message and "could not be written" in message
    assert "INVALID_ACCESS_KEY_ID" in message, message  # refused by the server, not by a typo
    assert not (home / "lineage.db").exists()
    # the same keys with authentication off: the URI itself was fine
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    assert ArtifactStore(uri, cache_dir=tmp_path / "c").probe() < 5.0
    # a secret in a query parameter (gs/abfs style) is masked as well
    assert "zz" not in mask_uri("abfs://c@acct.dfs.core.windows.net/p?account_key=zz&sas_token=zz")


def test_missing_credentials_are_refused(tmp_path, s3_server, monkeypatch):
    """No key in the environment or the URI: the server refuses the unsigned request."""
    import moto.settings

    from workbench.lineage import ArtifactStore

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    store = ArtifactStore(_s3_uri(s3_server, "p"), cache_dir=tmp_path / "c")
    with pytest.raises(ConfigError, match=f"s3://{BUCKET}/p"):
        store.probe()


# --------------------------------------------------------------------------- settings and the refusal
def test_settings_resolve_storage_from_the_argument_or_the_environment(tmp_path, monkeypatch):
    from workbench.config import Settings

    monkeypatch.delenv("WORKBENCH_STORAGE", raising=False)
    plain = Settings.from_env(tmp_path)
    assert plain.storage is None
    assert plain.artifacts_root == str(tmp_path.resolve() / "artifacts")
    assert plain.tune_root == str(tmp_path.resolve() / "tune")
    monkeypatch.setenv("WORKBENCH_STORAGE", "s3://b/p/?endpoint_override=h:9000&scheme=http")
    env = Settings.from_env(tmp_path)
    assert env.artifacts_root == "s3://b/p/artifacts?endpoint_override=h:9000&scheme=http"
    assert env.tune_path("exp-1-x") == "s3://b/p/tune/exp-1-x?endpoint_override=h:9000&scheme=http"
    assert (
        Settings.from_env(tmp_path, storage="gs://other").artifacts_root == "gs://other/artifacts"
    )
    secret = Settings.from_env(tmp_path, storage="s3://b/p?secret_key=zz&access_key=kk")
    from workbench.lineage import mask_uri

    recorded = mask_uri(secret.tune_path("exp-3-y"))
    assert "zz" not in recorded and "kk" not in recorded
    assert secret.resolve_tune_path(recorded) == secret.tune_path("exp-3-y")


def test_local_storage_is_refused_on_a_cluster_of_several_nodes(tmp_path):
    from workbench.config import Settings, storage_refusal

    embedded = Settings.from_env(tmp_path)
    assert storage_refusal(embedded, alive_nodes=1) is None
    refusal = storage_refusal(embedded, alive_nodes=2)
    assert isinstance(refusal, ConfigError)
    for words in ("2 alive nodes", "WORKBENCH_STORAGE=s3://", "Workbench(storage=", "file:///"):
        assert words in str(refusal)
    assert storage_refusal(Settings.from_env(tmp_path, storage=str(tmp_path / "x")), alive_nodes=3)
    assert (
        storage_refusal(Settings.from_env(tmp_path, storage=f"file://{tmp_path}"), alive_nodes=3)
        is None
    )
    assert storage_refusal(Settings.from_env(tmp_path, storage="s3://b/p"), alive_nodes=3) is None


# --------------------------------------------------------------------------- end to end on a local Ray
@pytest.mark.ray
@pytest.mark.parametrize("backend", ["s3", "file"])
def test_public_api_end_to_end_on_storage(backend, tmp_path, s3_server, serve_apps, aws_env):
    """ingest → a HyperBand search whose trials checkpoint → register → deploy → predict over HTTP,
    with artifacts and Tune on the storage and nothing under WORKBENCH_HOME/artifacts or /tune.

    The session's Ray started before this test set its environment, so its workers get the
    endpoint and the (test) keys from the URI."""
    import httpx
    import pyarrow.fs as pafs
    from ray import tune

    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv
    from workbench.lineage import mask_uri
    from workbench.serving._recorder import kill_recorder

    prefix = f"e2e-{time.time_ns()}"
    if backend == "s3":
        _make_bucket(s3_server)
        uri = _s3_uri(s3_server, prefix, keys="testing-key:testing-secret")
        shown = f"s3://***@{BUCKET}/{prefix}"
    else:
        (tmp_path / "shared").mkdir()
        uri = shown = f"file://{tmp_path}/shared/{prefix}"
    assert mask_uri(uri).startswith(shown)
    home = tmp_path / "home"
    bench = Workbench(home, storage=uri, serve_port=serve_apps.port)
    try:
        assert bench.stages.storage_probe_s < 5.0
        status = bench.status()
        assert "testing-secret" not in str(status) and status["storage"].startswith(shown)
        csv = write_breast_cancer_csv(tmp_path / "bc.csv")
        dv = bench.datasets.ingest(csv, name="bc", target="diagnosis")
        parts = bench.datasets.split(dv, {"train": 0.7, "holdout": 0.3}, seed=0)
        train, holdout = parts["train"], parts["holdout"]
        t0 = time.perf_counter()
        space = {
            "family": tune.grid_search(["logistic_regression"]),
            "C": tune.loguniform(1e-2, 1e1),
        }
        result = bench.experiments.search(
            train, name="s3hb", space=space, num_samples=2, folds=3, seed=1,
            scheduler="hyperband", progress=None,
        )  # fmt: skip
        search_s = time.perf_counter() - t0
        exp = bench.experiments.get(result.experiment_id)
        assert exp["tune_path"].startswith(f"{shown}/tune/exp-")
        assert "testing-secret" not in exp["tune_path"]
        mv = bench.register_best(
            result, model="bc-s3", train=train, holdout=holdout, alias="champion"
        )
        t0 = time.perf_counter()
        info = bench.serving.deploy("bc-s3", "champion", name="bc-s3")
        deploy_s = time.perf_counter() - t0
        records = [{k: v for k, v in r.items() if k != "diagnosis"} for r in _records(csv)[:5]]
        resp = httpx.post(
            info["url"].rstrip("/") + "/predict", json={"records": records}, timeout=30
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["predictions"] == bench.registry.load(
            "bc-s3", mv.version
        ).predict_records(records)

        assert not (home / "artifacts").exists() or not any((home / "artifacts").iterdir())
        assert not (home / "tune").exists() or not any((home / "tune").iterdir())
        fs, base = _fs(uri)
        keys = [i.path for i in fs.get_file_info(pafs.FileSelector(base, recursive=True))]
        assert f"{base}/artifacts/{mv.artifact_hash[:2]}/{mv.artifact_hash[2:]}" in keys
        assert f"{base}/artifacts/{dv.artifact_hash[:2]}/{dv.artifact_hash[2:]}" in keys
        assert any("/tune/exp-" in k and "/checkpoint_" in k for k in keys), (
            "no trial checkpoint stored"
        )
        print(f"\n{backend}: search {search_s:.1f} s, deploy {deploy_s:.1f} s, {len(keys)} objects")
    finally:
        try:
            bench.serving.undeploy("bc-s3")
        except Exception:
            pass
        kill_recorder(bench.settings.db_path)
        bench.close()


def _records(csv):
    import csv as _csv

    with open(csv) as f:
        return [
            {k: (float(v) if k != "diagnosis" else v) for k, v in row.items()}
            for row in _csv.DictReader(f)
        ]


DRIVER = """
import sys
from workbench import Workbench

wb = Workbench(home=sys.argv[1], storage=sys.argv[2])
dv = wb.datasets.get("bc")
wb.experiments.search(dv, name="killed-s3", num_samples=3, folds=5, seed=7, progress=None)
"""


@pytest.mark.ray
def test_a_killed_search_resumes_from_its_state_on_s3(tmp_path, s3_server, ray_cluster, aws_env):
    """The driver (a second process on the session's Ray) is SIGKILLed mid-search; a new
    workbench on the same storage finds the experiment's Tune state on S3 and finishes it."""
    import signal
    import subprocess
    import sys

    import pyarrow.fs as pafs
    import ray

    from workbench.api import Workbench
    from workbench.datasets import write_breast_cancer_csv
    from workbench.lineage import Store

    _make_bucket(s3_server)
    uri = _s3_uri(s3_server, f"resume-{time.time_ns()}", keys="testing-key:testing-secret")
    home = tmp_path / "home"
    bench = Workbench(home, storage=uri)
    bench.datasets.ingest(
        write_breast_cancer_csv(tmp_path / "bc.csv"), name="bc", target="diagnosis"
    )
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(home), uri],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fs, base = _fs(uri)
    watcher = Store(home / "lineage.db")
    try:
        deadline = time.monotonic() + 180
        exp = None
        while time.monotonic() < deadline and exp is None:
            time.sleep(0.5)
            exps = [e for e in watcher.experiments.list() if e["name"] == "killed-s3"]
            if not exps or not exps[0]["tune_path"]:
                continue
            done = [
                t
                for t in watcher.experiments.list_trials(exps[0]["id"])
                if t["status"] == "TERMINATED"
            ]
            tune_dir = exps[0]["tune_path"].split("?")[0].rsplit("/", 1)[-1]
            state = fs.get_file_info(
                pafs.FileSelector(f"{base}/tune/{tune_dir}", allow_not_found=True)
            )
            if len(done) >= 1 and any("experiment_state-" in i.path for i in state):
                exp = exps[0]
        assert exp is not None, (
            "timed out after 180 s waiting for a finished trial and a Tune snapshot on S3"
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        watcher.close()
    try:
        assert "testing-secret" not in exp["tune_path"]
        assert bench.store.experiments.get(exp["id"])["status"] == "RUNNING"
        result = bench.experiments.resume(exp["id"], progress=None)
        after = bench.experiments.trials(exp["id"])
        final = bench.store.experiments.get(exp["id"])
        assert final["status"] == "TERMINATED" and final["resumes"] == 1
        assert len(after) == final["num_samples"] and {t["status"] for t in after} == {"TERMINATED"}
        assert result.best_metrics["f1"] > 0.9
        assert not (home / "tune").exists()
    finally:
        bench.close()


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_the_endpoint_comes_from_the_environment(
    variable, tmp_path, aws_env, s3_server, monkeypatch
):
    """``s3://bucket/prefix`` with no query: the endpoint from the usual AWS variables."""
    from workbench.lineage import ArtifactStore

    _make_bucket(s3_server)
    monkeypatch.setenv(variable, s3_server.url)
    uri = f"s3://{BUCKET}/env-{variable}-{time.time_ns()}"
    store = ArtifactStore(uri, cache_dir=tmp_path / "c")
    assert store.probe() < 5.0
    digest = store.put_bytes(b"through the environment")
    fresh = ArtifactStore(uri, cache_dir=tmp_path / "other")
    assert fresh.get_bytes(digest) == b"through the environment" and fresh.remote_reads == 1
