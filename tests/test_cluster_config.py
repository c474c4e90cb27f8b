"""cluster/workbench-cluster.yaml is a valid `ray up` config with the node layout workbench relies on."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "cluster" / "workbench-cluster.yaml"


def _ray_schema_path() -> Path:
    # Located without importing ray (seconds of import for a file lookup).
    spec = importlib.util.find_spec("ray")
    assert spec is not None and spec.submodule_search_locations, "ray is not installed"
    for location in spec.submodule_search_locations:
        path = Path(location) / "autoscaler" / "ray-schema.json"
        if path.is_file():
            return path
    raise AssertionError("ray-schema.json not found in the installed ray package")


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(_ray_schema_path().read_text())


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_config_validates_against_rays_own_schema(schema, config):
    jsonschema.validate(config, schema)


def test_the_schema_check_rejects_a_broken_config(schema, config):
    # Guards against a schema that accepts anything: the same check must fail on real mistakes.
    broken = json.loads(json.dumps(config))
    broken["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    del broken["available_node_types"]["gpu_worker"]["resources"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({k: v for k, v in config.items() if k != "provider"}, schema)


def test_node_types_head_runs_no_trials_workers_split_cpu_and_gpu(config):
    types = config["available_node_types"]
    head = config["head_node_type"]
    assert head in types
    # The head keeps the lineage store and schedulers; trials and replicas go to workers.
    assert types[head]["resources"].get("CPU") == 0
    assert types[head]["resources"].get("GPU", 0) == 0

    workers = {name: t for name, t in types.items() if name != head}
    gpu = {n: t for n, t in workers.items() if t["resources"].get("GPU", 0) >= 1}
    cpu_only = {n: t for n, t in workers.items() if t["resources"].get("GPU", 0) == 0}
    assert set(gpu) == {"gpu_worker"}
    assert set(cpu_only) == {"cpu_worker"}
    for name, t in workers.items():
        assert t["resources"].get("CPU", 0) >= 1, f"{name} could not run a single trial"
        assert 0 <= t.get("min_workers", 0) <= t["max_workers"] <= config["max_workers"]
    assert sum(t["max_workers"] for t in workers.values()) <= config["max_workers"]
    assert gpu["gpu_worker"]["node_config"]["InstanceType"].startswith(("g", "p"))


def test_every_node_installs_workbench_and_turns_on_token_auth(config):
    common = config["setup_commands"]
    gpu = config["available_node_types"]["gpu_worker"]["worker_setup_commands"]
    for commands in (common, gpu):
        text = "\n".join(commands)
        assert re.search(r"uv pip install .*~/workbench\b", text), "workbench is not installed"
        assert "RAY_AUTH_MODE=token" in text
        # nodes share no disk: every node gets the same artifact storage URI
        assert 'export WORKBENCH_STORAGE="s3://REPLACE-WITH-YOUR-BUCKET/workbench"' in text
        # every Ray worker imports jsonschema; this optional checker costs 1.7 s of each start
        assert "uv pip uninstall --python ~/wb-venv/bin/python rfc3987-syntax" in text
    assert "download.pytorch.org/whl/cpu" in "\n".join(common)
    # The GPU node must not get the CPU-only torch wheel pinned in constraints.txt.
    assert "+cpu" not in "\n".join(gpu)
    assert "~/workbench" in config["file_mounts"]
    assert config["file_mounts"]["~/workbench"] == "."
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert any("WORKBENCH_HOME" in c for c in config["head_setup_commands"])


def test_repository_copy_excludes_local_state(config):
    # rsync --exclude patterns: "**/.venv" drops a .venv directory (and its contents) at any depth.
    excluded_dirs = {pat.rsplit("/", 1)[-1] for pat in config["rsync_exclude"]}
    assert {".git", ".venv", ".workbench"} <= excluded_dirs


def test_constraints_pin_the_torch_line_the_setup_commands_rewrite():
    # setup_commands drop '^torch==' from constraints.txt; if the pin moves, they would silently keep it.
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    assert [line for line in lines if line.startswith("torch==")] == ["torch==2.13.0+cpu"]


def test_start_commands_start_ray_head_and_join_workers(config):
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    assert "ray start --head" in head and "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--address=$RAY_HEAD_IP:6379" in worker
