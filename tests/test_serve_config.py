"""A deployment exported as a Ray Serve config file: valid for Serve's own schema, built from the
live deployment's router config, and answering like the workbench's router under ``serve run``.

The unit tests read the store only (a deployment recorded as Serving.deploy records it); the
``ray`` test deploys on the session's Serve, then runs the exported file with the real ``serve``
CLI in a Ray cluster of its own and compares the answers over HTTP.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests._nodes import node_env, start_head
from tests._processes import end_ray_start
from tests._serve_env import register_bundles

NAME = "bc-export"
BIN = Path(sys.executable).parent


def _bundles():
    from sklearn.linear_model import LogisticRegression

    from tests._serve_env import cancer_bundle

    # Two versions that answer differently on some rows, so a mixed-up version shows.
    one, records = cancer_bundle(LogisticRegression(C=1.0, max_iter=1000))
    two, _ = cancer_bundle(LogisticRegression(C=0.002, max_iter=1000))
    return [one, two], records


@pytest.fixture
def recorded(tmp_path):
    """A store with two versions of ``bc`` and deployment NAME recorded at 70/30, without Serve."""
    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store
    from workbench.serving import Serving

    settings = Settings.from_env(tmp_path / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    bundles, records = _bundles()
    register_bundles(store, artifacts, "bc", bundles)
    store.deployments.add(NAME, model="bc", route_prefix=f"/{NAME}", status="running")
    store.deployments.record_traffic(NAME, {1: 0.7, 2: 0.3}, actor="tester", reason="split")
    serving = Serving(store, artifacts, settings, http_port=8123)
    yield SimpleNamespace(serving=serving, store=store, settings=settings, records=records)
    store.close()


def test_export_is_a_serve_config_of_the_live_router_config(recorded, tmp_path):
    from ray.serve.schema import ServeDeploySchema

    from workbench.serving._router import validate_config
    from workbench.serving._scaling import scaling_options

    path = tmp_path / "out" / "serve.yaml"
    config = recorded.serving.export_config(NAME, path, num_replicas=2, num_cpus=0.25)
    on_disk = yaml.safe_load(path.read_text())
    assert on_disk == config
    schema = ServeDeploySchema.model_validate(on_disk)  # Ray's own check, as `serve deploy` does
    (app,) = schema.applications
    assert (app.name, app.route_prefix, app.import_path) == (
        NAME,
        f"/{NAME}",
        "workbench.serving.app:build",
    )
    assert on_disk["http_options"] == {"host": "127.0.0.1", "port": 8123}

    # args are exactly what a live deploy hands its router: the same builder made them.
    live = recorded.serving.router_config(
        NAME, {1: 0.7, 2: 0.3}, scaling=scaling_options({"num_replicas": 2, "num_cpus": 0.25})
    )
    assert app.args == live
    checked = validate_config(app.args)
    hashes = {
        mv["version"]: mv["artifact_hash"] for mv in recorded.store.models.list_versions("bc")
    }
    assert {k: (v["artifact"], round(v["weight"], 9)) for k, v in checked["versions"].items()} == {
        "1": (hashes[1], 0.7),
        "2": (hashes[2], 0.3),
    }
    assert checked["db_path"] == str(recorded.settings.db_path)
    (router,) = app.deployments
    assert router.name == "Router" and router.num_replicas == 2
    assert router.ray_actor_options.num_cpus == 0.25
    assert "warmup" not in app.args  # recent requests are user data: not written to a file


def test_the_builder_builds_the_router_the_file_describes(recorded):
    from ray.serve import Application

    from workbench.serving._router import ROUTER_CODE_VERSION
    from workbench.serving.app import build

    config = recorded.serving.export_config(NAME, isolate=True, num_replicas=2)
    app = config["applications"][0]
    assert [d["name"] for d in app["deployments"]] == ["Router", "version-1", "version-2"]
    assert app["deployments"][1]["num_replicas"] == 2
    built = build(app["args"])
    assert isinstance(built, Application)
    deployment = built._bound_deployment
    assert deployment.name == "Router" and deployment.version == ROUTER_CODE_VERSION
    assert deployment.user_config["versions"] == app["args"]["versions"]


def test_bad_input_is_refused_and_nothing_is_written(recorded, tmp_path):
    from workbench.exceptions import ConfigError, NotFoundError

    target = tmp_path / "serve.yaml"
    with pytest.raises(NotFoundError):
        recorded.serving.export_config("no-such-deployment", target)
    with pytest.raises(ConfigError, match="num_replicas"):
        recorded.serving.export_config(NAME, target, num_replicas=0)
    with pytest.raises(ConfigError, match="port"):
        recorded.serving.export_config(NAME, target, port=70000)
    assert not target.exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="could not write"):
        recorded.serving.export_config(NAME, blocker / "serve.yaml")
    # a version whose artifact is not in the artifact store: refused, as a deploy refuses it
    recorded.store.models.add_version(
        "bc",
        task="classification",
        artifact_hash="f" * 64,
        params={},
        metrics={},
        signature=None,
        experiment_id=None,
        trial_id=None,
        dataset_version_id=None,
    )
    recorded.store.deployments.record_traffic(NAME, {1: 0.5, 3: 0.5}, reason="v3 has no bytes")
    with pytest.raises(NotFoundError):
        recorded.serving.export_config(NAME, target)
    assert not target.exists()
    assert recorded.store.deployments.get(NAME)["status"] == "running"  # nothing lost


def test_beyond_loopback_the_file_demands_the_token(recorded, tmp_path):
    from workbench.exceptions import ConfigError
    from workbench.serving import Serving
    from workbench.serving._auth import token_digest

    with pytest.raises(ConfigError, match="WORKBENCH_SERVE_TOKEN"):
        recorded.serving.export_config(NAME, tmp_path / "open.yaml", host="0.0.0.0")
    assert not (tmp_path / "open.yaml").exists()
    token = "t" * 40
    guarded = Serving(
        recorded.store, recorded.serving.artifacts, recorded.settings, token=token
    ).export_config(NAME, host="0.0.0.0", port=8000)
    assert guarded["http_options"] == {"host": "0.0.0.0", "port": 8000}
    args = guarded["applications"][0]["args"]
    assert args["token_sha256"] == token_digest(token)
    assert token not in yaml.safe_dump(guarded)  # only the digest travels


def test_cli_serve_config_writes_and_prints(recorded, tmp_path):
    from click.testing import CliRunner

    from workbench.cli import cli

    home = str(recorded.settings.home)
    out = tmp_path / "cli.yaml"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--home", home, "serve-config", NAME, "-o", str(out), "--port", "8200"]
    )
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(out.read_text())
    assert written["http_options"]["port"] == 8200
    assert written["applications"][0]["args"]["deployment"] == NAME
    printed = runner.invoke(cli, ["--home", home, "serve-config", NAME, "--num-replicas", "3"])
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.stdout)["applications"][0]["deployments"][0]["num_replicas"] == 3
    missing = runner.invoke(cli, ["--home", home, "serve-config", "nope"])
    assert missing.exit_code == 3 and "nope" in missing.output  # 3: not found


# ------------------------------------------------------------------ serve run, for real
def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`serve run` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            resp = httpx.get(url, timeout=5)
            if resp.status_code == 200:
                return
            last = f"{resp.status_code} {resp.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(1.0)
    pytest.fail(
        f"{url} did not answer within {timeout_s:.0f}s ({last}):\n{log.read_text()[-3000:]}"
    )


def _stop(proc: subprocess.Popen) -> None:
    """End `serve run` by its pid (SIGINT: it deletes its app and shuts its Serve down)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    # Its own process group (start_new_session): whatever of it outlived it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.mark.ray
def test_serve_run_of_the_export_answers_like_the_workbench_router(serve_apps, tmp_path_factory):
    import httpx

    from tests._serve_env import close_env, serve_env
    from workbench.runtime import free_port

    bundles, records = _bundles()
    env = serve_env(tmp_path_factory, "bc", bundles, apps=serve_apps)
    proc = ray_tmp = head = None
    try:
        env.serving.deploy("bc", 1, name=NAME, actor="tester", reason="export test")
        env.serving.set_traffic(NAME, {1: 0.5, 2: 0.5}, reason="split for the export")
        port = free_port()
        # A short folder: Ray's unix sockets live under it (a path limit of ~107 bytes).
        ray_tmp = Path(tempfile.mkdtemp(prefix="wbsr-", dir="/tmp"))
        config_path = ray_tmp / "serve.yaml"
        env.serving.export_config(NAME, config_path, port=port)

        # A Ray cluster of its own, started without a dashboard: `serve run` alone starts one with
        # its dashboard on 127.0.0.1:8265, which the session's local Ray records as its own job
        # server (test_ray_jobs' embedded-Ray test then saw a job server there and failed).
        head, gcs, _ = start_head(
            ray_tmp,
            str(ray_tmp),
            num_cpus=2,
            dashboard=False,
            env=node_env(),
        )
        run_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        run_env.update(RAY_USAGE_STATS_ENABLED="0")
        log = ray_tmp / "serve-run.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(BIN / "serve"), "run", f"--address={gcs}", str(config_path)],
                cwd=ray_tmp,
                env=run_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        exported = f"http://127.0.0.1:{port}/{NAME}"
        _wait_http(exported + "/health", proc, log, timeout_s=240)

        live = env.serving.url(NAME)
        assert live != exported  # two Serves, two clusters
        # Each request holds a row the two versions answer differently (31 of the 569 rows),
        # so a request routed to the other version, or a version with the other model, shows.
        first, second = (b.predict_records(records) for b in bundles)
        differs = [r for r, a, b in zip(records, first, second, strict=True) if a != b]
        assert len(differs) >= 20
        requests = [[differs[i], records[2 * i], records[2 * i + 1]] for i in range(20)]
        answers: dict[str, list] = {"live": [], "exported": []}
        with httpx.Client(timeout=30) as client:
            for i, batch in enumerate(requests):
                for which, base in (("live", live), ("exported", exported)):
                    # sticky key: both routers must pick the same version by the same 50/50 split
                    body = {"records": batch, "key": f"customer-{i}"}
                    resp = client.post(base + "/predict", json=body)
                    assert resp.status_code == 200, (which, resp.text)
                    got = resp.json()
                    answers[which].append((got["model_version"], got["predictions"]))
        assert answers["exported"] == answers["live"]
        # The split and the versions travelled: both versions answered, each with its own model.
        assert {v for v, _ in answers["live"]} == {1, 2}
        for (version, predictions), batch in zip(answers["live"], requests, strict=True):
            assert predictions == bundles[version - 1].predict_records(batch)
    finally:
        if proc is not None:
            _stop(proc)
        if head is not None:
            end_ray_start(head)
        if ray_tmp is not None:
            shutil.rmtree(ray_tmp, ignore_errors=True)
        close_env(env)


def test_a_storage_uri_with_credentials_never_goes_into_the_file(tmp_path, s3_server, monkeypatch):
    """Keys in the storage URI (``s3://KEY:SECRET@…``) are refused for a config file, masked."""
    import pyarrow.fs as pafs

    from workbench.config import Settings
    from workbench.exceptions import ConfigError
    from workbench.lineage import ArtifactStore, Store
    from workbench.serving import Serving

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    query = f"endpoint_override={s3_server.endpoint}&scheme=http"
    fs, _ = pafs.FileSystem.from_uri(
        f"s3://AKIAX:sekrit@wb-export?{query}&allow_bucket_creation=true"
    )
    fs.create_dir("wb-export")
    settings = Settings.from_env(
        tmp_path / "wbhome", storage=f"s3://AKIAX:sekrit@wb-export/p?{query}"
    )
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_root, cache_dir=tmp_path / "cache")
    register_bundles(store, artifacts, "bc", _bundles()[0][:1])
    store.deployments.add(NAME, model="bc", route_prefix=f"/{NAME}", status="running")
    store.deployments.record_traffic(NAME, {1: 1.0}, actor="tester", reason="initial")
    serving = Serving(store, artifacts, settings, http_port=8123)
    target = tmp_path / "serve.yaml"
    with pytest.raises(ConfigError, match=r"s3://\*\*\*@wb-export/p.*carries credentials") as err:
        serving.export_config(NAME, target)
    assert "sekrit" not in str(err.value) and "AKIAX" not in str(err.value)
    assert not target.exists()
    store.close()
