"""Serving pieces that need no cluster: lazy imports, router config and body validation, canary arguments."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.exceptions import ConfigError, InvalidRequestError

SHA = "ab" * 32


def _config(**versions):
    return {
        "deployment": "d",
        "db_path": "/tmp/x/lineage.db",
        "artifacts_dir": "/tmp/x/artifacts",
        "versions": versions or {"1": {"artifact": SHA, "model_version_id": 1, "weight": 1}},
    }


def test_importing_serving_does_not_import_ray_or_starlette():
    code = (
        "import sys, workbench, workbench.serving as s; "
        "assert callable(s.normalize); "
        "heavy = [m for m in ('ray', 'starlette', 'httpx') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_serving_package_exports_what_it_declares():
    import workbench.serving as serving

    for name in serving.__all__:
        assert getattr(serving, name) is not None
    with pytest.raises(AttributeError):
        serving.NoSuchThing  # noqa: B018


def test_validate_config_normalises_weights_and_accepts_json_versions():
    import json

    from workbench.serving._router import validate_config

    versions = {
        "2": {"artifact": SHA, "model_version_id": 5, "weight": 1},
        "1": {"artifact": SHA, "model_version_id": 4, "weight": 3},
    }
    cfg = validate_config({**_config(), "versions": json.dumps(versions)})
    assert list(cfg["versions"]) == ["1", "2"]
    assert cfg["versions"]["1"]["weight"] == 0.75 and cfg["versions"]["2"]["model_version_id"] == 5


@pytest.mark.parametrize(
    "patch, needle",
    [
        ({"deployment": ""}, "deployment"),
        ({"db_path": None}, "db_path"),
        ({"versions": {}}, "versions"),
        ({"versions": "{not json"}, "not valid JSON"),
        ({"versions": {"1": {"artifact": "short", "model_version_id": 1, "weight": 1}}}, "SHA-256"),
        (
            {"versions": {"1": {"artifact": SHA, "model_version_id": "1", "weight": 1}}},
            "model_version_id",
        ),
        ({"versions": {"1": {"artifact": SHA, "model_version_id": 1, "weight": -1}}}, ">= 0"),
        (
            {"versions": {"x": {"artifact": SHA, "model_version_id": 1, "weight": 1}}},
            "version numbers",
        ),
    ],
)
def test_validate_config_names_what_is_wrong(patch, needle):
    from workbench.serving._router import validate_config

    with pytest.raises(ConfigError, match=needle):
        validate_config({**_config(), **patch})


def test_build_app_pins_the_router_code_version():
    from workbench.serving._router import ROUTER_CODE_VERSION, build_app

    app = build_app({**_config(), "num_cpus": 0.25})
    deployment = app._bound_deployment
    assert deployment.version == ROUTER_CODE_VERSION
    assert deployment.user_config["num_cpus"] == 0.25
    assert deployment.ray_actor_options["num_cpus"] == 0.25


@pytest.mark.parametrize(
    "body, field",
    [
        ([1, 2], "body"),
        ({"records": [{}], "extra": 1}, "extra"),
        ({"records": [{}], "columns": {"a": [1]}}, "records"),
        ({}, "records"),
        ({"records": "abc"}, "records"),
        ({"columns": {"a": 1}}, "a"),
        ({"columns": {"a": [1, 2], "b": [1]}}, "b"),
        ({"columns": {"a": []}}, "columns"),
        ({"records": [{"a": 1}], "key": 3}, "key"),
    ],
)
def test_request_body_errors_name_the_field(body, field):
    from workbench.serving._codecs import records_from_body as _records_from_body

    with pytest.raises(InvalidRequestError) as err:
        _records_from_body(body)
    assert err.value.field == field


def test_columns_become_records_in_order():
    from workbench.serving._codecs import records_from_body as _records_from_body

    records, key = _records_from_body({"columns": {"a": [1, 2], "b": ["x", "y"]}, "key": "u1"})
    assert records == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}] and key == "u1"


def test_recorder_names_differ_per_database(tmp_path):
    from workbench.serving._recorder import recorder_name

    assert recorder_name(tmp_path / "a" / "lineage.db") != recorder_name(
        tmp_path / "b" / "lineage.db"
    )
    assert recorder_name(tmp_path / "a" / "lineage.db") == recorder_name(
        str(tmp_path / "a" / ".." / "a" / "lineage.db")
    )


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"max_error_rate": 1.5}, "max_error_rate"),
        ({"min_requests": 0}, "min_requests"),
        ({"steps": (0.5, 0.2, 1.0)}, "increase"),
        ({"challenger": 1}, "different"),
    ],
)
def test_canary_rejects_bad_arguments(kwargs, needle):
    from workbench.serving import CanaryRollout

    args = {"champion": 1, "challenger": 2, **kwargs}
    with pytest.raises(ConfigError, match=needle):
        CanaryRollout(None, "d", args.pop("champion"), args.pop("challenger"), **args)  # type: ignore[arg-type]
