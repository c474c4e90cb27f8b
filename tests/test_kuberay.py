"""cluster/kuberay/: every manifest fits its KubeRay CRD's openAPIV3Schema (the vendored copies in
cluster/kuberay/crds/), holds the layout workbench relies on, and the RayService serves exactly
what ``export_config`` writes.

The RayService manifest is generated: ``cluster/kuberay/make_rayservice.py SERVE_CONFIG`` embeds a
``workbench serve-config`` file as ``serveConfigV2``. The test runs that script on a fresh export
and compares the text; the committed example must have the keys a fresh export has (a change to
the router config's keys fails here until ``make_rayservice.py --example`` regenerates it).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
KUBERAY = ROOT / "cluster" / "kuberay"
CRDS = KUBERAY / "crds"
MANIFESTS = {
    "raycluster.yaml": "RayCluster",
    "rayservice.yaml": "RayService",
    "rayjob.yaml": "RayJob",
    "raycronjob.yaml": "RayCronJob",
}


def _strip_kubernetes_keys(node: Any) -> Any:
    """The schema without Kubernetes' ``x-kubernetes-*`` extensions (jsonschema has no use for them)."""
    if isinstance(node, dict):
        return {k: _strip_kubernetes_keys(v) for k, v in node.items() if not k.startswith("x-")}
    if isinstance(node, list):
        return [_strip_kubernetes_keys(v) for v in node]
    return node


def _crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) → openAPIV3Schema, for every version each vendored CRD serves."""
    out = {}
    for path in sorted(CRDS.glob("ray.io_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = _strip_kubernetes_keys(version["schema"]["openAPIV3Schema"])
                out[(f"{group}/{version['name']}", kind)] = schema
    return out


@pytest.fixture(scope="module")
def schemas() -> dict[tuple[str, str], dict]:
    return _crd_schemas()


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    return {name: yaml.safe_load((KUBERAY / name).read_text()) for name in MANIFESTS}


def _validate(manifest: dict, schemas: dict) -> None:
    key = (manifest["apiVersion"], manifest["kind"])
    assert key in schemas, f"no vendored CRD serves {key}; served: {sorted(schemas)}"
    jsonschema.Draft7Validator(schemas[key]).validate(manifest)


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# --------------------------------------------------------------------------- the CRDs
def test_the_crds_are_vendored_with_their_licence_and_origin(schemas):
    assert (CRDS / "LICENSE").read_text().lstrip().startswith("Apache License")
    readme = (CRDS / "README.md").read_text()
    assert "ray-project/kuberay" in readme and re.search(r"commit\s+[0-9a-f]{40}", readme)
    assert {kind for _, kind in schemas} == set(MANIFESTS.values())
    # The storage version of each: what our manifests use.
    assert {("ray.io/v1", kind) for kind in MANIFESTS.values()} <= set(schemas)


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_every_manifest_fits_its_crd(name, manifests, schemas):
    manifest = manifests[name]
    assert manifest["kind"] == MANIFESTS[name]
    assert manifest["apiVersion"] == "ray.io/v1"
    _validate(manifest, schemas)


def test_the_schema_check_rejects_broken_manifests(manifests, schemas):
    # Guards against a schema that accepts anything: real mistakes must fail the same check.
    import copy

    cluster = copy.deepcopy(manifests["raycluster.yaml"])
    cluster["spec"]["workerGroupSpecs"][0]["maxReplicas"] = "4"  # a string, not an integer
    with pytest.raises(jsonschema.ValidationError):
        _validate(cluster, schemas)
    cluster = copy.deepcopy(manifests["raycluster.yaml"])
    del cluster["spec"]["workerGroupSpecs"][1]["groupName"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(cluster, schemas)
    cluster = copy.deepcopy(manifests["raycluster.yaml"])
    cluster["spec"]["authOptions"]["mode"] = "password"  # not in the enum
    with pytest.raises(jsonschema.ValidationError):
        _validate(cluster, schemas)
    cron = copy.deepcopy(manifests["raycronjob.yaml"])
    del cron["spec"]["schedule"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(cron, schemas)
    service = copy.deepcopy(manifests["rayservice.yaml"])
    service["spec"]["serveConfigV2"] = {"applications": []}  # must be a string of YAML
    with pytest.raises(jsonschema.ValidationError):
        _validate(service, schemas)


# --------------------------------------------------------------------------- RayCluster
def test_raycluster_head_runs_no_trials_workers_split_cpu_and_gpu_and_autoscale(manifests):
    spec = manifests["raycluster.yaml"]["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["authOptions"] == {"mode": "token"}  # Ray 2.60's default, kept on
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for g in groups.values():
        assert 0 == g["minReplicas"] <= g["maxReplicas"], "workers start at zero and autoscale"
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    cpu_limits = groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1" and "nvidia.com/gpu" not in cpu_limits
    assert int(cpu_limits["cpu"]) >= 1
    import ray

    assert spec["rayVersion"] == ray.__version__  # the Ray the workbench is tested with


def test_every_ray_container_gets_the_storage_uri_and_the_head_keeps_the_store(manifests):
    spec = manifests["raycluster.yaml"]["spec"]
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in spec["workerGroupSpecs"]
    ]
    storages = set()
    for pod in pods:
        for container in pod["containers"]:
            env = _env(container)
            assert env.get("WORKBENCH_STORAGE", "").startswith("s3://"), container["name"]
            storages.add(env["WORKBENCH_STORAGE"])
            assert container["image"].endswith(("workbench:cpu", "workbench:gpu"))
    assert len(storages) == 1, "every node must see the same artifact storage"
    head = spec["headGroupSpec"]["template"]["spec"]
    home = _env(head["containers"][0])["WORKBENCH_HOME"]
    mounts = {m["mountPath"]: m["name"] for m in head["containers"][0]["volumeMounts"]}
    volume = next(v for v in head["volumes"] if v["name"] == mounts[home])
    assert "persistentVolumeClaim" in volume  # lineage.db survives a head pod restart
    for group in spec["workerGroupSpecs"]:
        assert "WORKBENCH_HOME" not in _env(group["template"]["spec"]["containers"][0])


def test_the_dockerfile_installs_workbench_with_the_pins_of_constraints():
    import ray

    text = (KUBERAY / "Dockerfile").read_text()
    assert f"rayproject/ray:{ray.__version__}-py311" in text
    pins = [ln for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln]
    (torch,) = [p for p in pins if p.startswith("torch==")]
    assert f'"{torch}"' in text and "download.pytorch.org/whl/cpu" in text
    assert "-c /tmp/constraints-notorch.txt /home/ray/workbench" in text
    assert "pip uninstall -y rfc3987-syntax" in text
    ignored = (KUBERAY / "Dockerfile.dockerignore").read_text().split()
    assert {"**/.git", "**/.venv", "**/.workbench"} <= set(ignored)


# --------------------------------------------------------------------------- RayJob, RayCronJob
def test_rayjob_runs_a_retraining_pass_on_the_workbench_cluster(manifests, tmp_path):
    cluster = manifests["raycluster.yaml"]
    spec = manifests["rayjob.yaml"]["spec"]
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert spec["shutdownAfterJobFinishes"] is False  # never delete the store's cluster
    assert "rayClusterSpec" not in spec
    import json

    assert json.loads(spec["entrypointResources"]) == {"node:__internal_head__": 0.001}
    # The entrypoint is a real command: run it, as the job's driver would, on an empty store.
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "python"
    out = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=tmp_path,
        env={"WORKBENCH_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["created"] == [] and result["ran"] == [] and "at" in result
    assert (tmp_path / "home" / "lineage.db").exists()


def test_raycronjob_schedules_the_rayjob_unchanged(manifests):
    spec = manifests["raycronjob.yaml"]["spec"]
    assert spec["jobTemplate"] == manifests["rayjob.yaml"]["spec"]
    fields = spec["schedule"].split()
    assert len(fields) == 5, "a five-field cron schedule"


# --------------------------------------------------------------------------- RayService
def _export(tmp_path: Path, *, name: str = "cancer") -> Path:
    """A deployment recorded in a fresh store, exported as `workbench serve-config` writes it."""
    from tests._serve_env import cancer_bundle, register_bundles
    from workbench.config import Settings
    from workbench.lineage import ArtifactStore, Store
    from workbench.serving import Serving

    settings = Settings.from_env(tmp_path / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    register_bundles(store, artifacts, "breast-cancer", [cancer_bundle()[0]])
    store.deployments.add(name, model="breast-cancer", route_prefix=f"/{name}", status="running")
    store.deployments.record_traffic(name, {1: 1.0}, reason="kuberay test")
    path = tmp_path / "serve.yaml"
    try:
        Serving(store, artifacts, settings, token="k" * 40).export_config(
            name, path, host="0.0.0.0", port=8000
        )
    finally:
        store.close()
    return path


def test_make_rayservice_embeds_the_exported_file_unchanged(tmp_path, manifests, schemas):
    serve_config = _export(tmp_path)
    out = tmp_path / "rayservice.yaml"
    run = subprocess.run(
        [sys.executable, str(KUBERAY / "make_rayservice.py"), str(serve_config), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    service = yaml.safe_load(out.read_text())
    _validate(service, schemas)
    assert service["spec"]["serveConfigV2"] == serve_config.read_text()  # byte for byte
    assert service["spec"]["rayClusterConfig"] == manifests["raycluster.yaml"]["spec"]
    assert service["metadata"]["name"] == "workbench-cancer"


def test_the_committed_rayservice_is_a_current_export(tmp_path, manifests):
    from ray.serve.schema import ServeDeploySchema

    from workbench.serving._router import validate_config

    service = manifests["rayservice.yaml"]
    assert service["spec"]["rayClusterConfig"] == manifests["raycluster.yaml"]["spec"], (
        "raycluster.yaml changed: run python cluster/kuberay/make_rayservice.py --example"
    )
    embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(embedded)
    fresh = yaml.safe_load(_export(tmp_path).read_text())
    (app,), (want,) = embedded["applications"], fresh["applications"]
    assert app["import_path"] == want["import_path"] == "workbench.serving.app:build"
    assert set(app["args"]) == set(want["args"]), (
        "the router config's keys changed: regenerate the example with "
        "python cluster/kuberay/make_rayservice.py --example"
    )
    validate_config(app["args"])
    # KubeRay's Serve service reaches the proxy on 8000 from outside the pod, and beyond loopback
    # the router demands a bearer token.
    assert embedded["http_options"] == {"host": "0.0.0.0", "port": 8000}
    assert re.fullmatch(r"[0-9a-f]{64}", app["args"]["token_sha256"] or "")
