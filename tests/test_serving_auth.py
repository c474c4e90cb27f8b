"""Bearer tokens for the Serve endpoint as pure logic: when one is required, how a request is checked.

The HTTP side (401s on a real Serve endpoint, the token absent from logs and
the request log) is in test_serving_v2.py, whose deployment runs with a token.
"""

from __future__ import annotations

import pytest

from workbench.exceptions import ConfigError
from workbench.serving._auth import (
    MIN_TOKEN_CHARS,
    TOKEN_ENV,
    auth_options,
    authorization_error,
    is_loopback,
    resolve_token,
    token_digest,
)

TOKEN = "wb-test-token-5f1c9a0e"


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("192.168.0.7", False),
        ("fe80::1", False),
        ("myhost.example", False),
        ("localhost.evil.example", False),
    ],
)
def test_loopback_is_only_this_machine(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "node-1"])
def test_beyond_loopback_without_a_token_is_refused_with_how_to_set_one(host):
    with pytest.raises(ConfigError) as err:
        resolve_token(host, None, environ={})
    message = str(err.value)
    assert TOKEN_ENV in message and "Authorization: Bearer" in message and repr(host) in message


def test_beyond_loopback_takes_the_token_from_the_argument_or_the_environment():
    assert resolve_token("0.0.0.0", TOKEN, environ={}) == TOKEN
    assert resolve_token("0.0.0.0", None, environ={TOKEN_ENV: TOKEN}) == TOKEN
    assert resolve_token("0.0.0.0", TOKEN, environ={TOKEN_ENV: "x" * 40}) == TOKEN  # argument wins


def test_loopback_is_open_without_a_token_and_enforced_with_one():
    assert resolve_token("127.0.0.1", None, environ={}) is None
    assert resolve_token("127.0.0.1", None, environ={TOKEN_ENV: ""}) is None
    assert resolve_token("127.0.0.1", TOKEN, environ={}) == TOKEN


@pytest.mark.parametrize(
    "bad", ["short", "has space in it 123456", "tab\there-0123456789", "é" * 20]
)
def test_weak_or_unsendable_tokens_are_refused_without_echoing_them(bad):
    with pytest.raises(ConfigError) as err:
        resolve_token("0.0.0.0", bad, environ={})
    assert bad not in str(err.value)
    assert len(bad) >= MIN_TOKEN_CHARS or str(MIN_TOKEN_CHARS) in str(err.value)


def test_serving_refuses_to_start_beyond_loopback_without_a_token(monkeypatch):
    from workbench.serving import Serving

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match=TOKEN_ENV):
        Serving(None, None, None, http_host="0.0.0.0")  # type: ignore[arg-type]
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    serving = Serving(None, None, None, http_host="0.0.0.0", http_port=8123)  # type: ignore[arg-type]
    assert serving._token == TOKEN
    assert TOKEN not in repr(serving) and TOKEN not in str(vars(serving).keys())


def test_requests_are_checked_against_the_digest_only():
    digest = token_digest(TOKEN)
    assert TOKEN not in digest and len(digest) == 64
    assert authorization_error("/predict", f"Bearer {TOKEN}", digest) is None
    assert authorization_error("/predict", f"bearer   {TOKEN}  ", digest) is None
    assert authorization_error("/health", f"Bearer {TOKEN}", digest) is None
    assert authorization_error("/predict", None, None) is None  # no token configured: open
    for header in (None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"):
        message = authorization_error("/predict", header, digest)
        assert message and TOKEN not in message, header
    assert "not valid" in authorization_error("/v2/models/m/infer", "Bearer nope-nope", digest)
    assert "requires a bearer token" in authorization_error("/v2", None, digest)
    # Probes stay open so load balancers and Kubernetes can check the endpoint.
    assert authorization_error("/v2/health/live", None, digest) is None
    assert authorization_error("/v2/health/ready", None, digest) is None


def test_router_config_holds_a_digest_never_a_token():
    assert auth_options({"token_sha256": token_digest(TOKEN)})["token_sha256"] == token_digest(
        TOKEN
    )
    with pytest.raises(ConfigError, match="never the token itself") as err:
        auth_options({"token_sha256": TOKEN})
    assert TOKEN not in str(err.value)


def test_router_config_validation_keeps_auth_and_validation_options():
    from workbench.serving._router import validate_config

    cfg = validate_config(
        {
            "deployment": "d",
            "db_path": "/tmp/x/lineage.db",
            "artifacts_dir": "/tmp/x/artifacts",
            "versions": {"1": {"artifact": "ab" * 32, "model_version_id": 1, "weight": 1}},
            "token_sha256": token_digest(TOKEN),
            "non_finite": "impute",
        }
    )
    assert cfg["token_sha256"] == token_digest(TOKEN)
    assert cfg["non_finite"] == "impute" and cfg["max_body_bytes"] == 1 << 20
