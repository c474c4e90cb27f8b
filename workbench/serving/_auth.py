"""Bearer tokens for the Serve HTTP endpoint: when one is required, how it travels, how it is checked.

Pure Python (no Ray, no starlette). The token itself stays with the process
that deploys: replicas receive only its SHA-256 in their ``user_config``, so
neither Serve's config, its logs nor the request log can leak it. A request
is checked by hashing the presented token and comparing digests with
:func:`hmac.compare_digest` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any

from workbench.exceptions import ConfigError
from workbench.lineage import is_sha256_hex

__all__ = [
    "TOKEN_ENV",
    "MIN_TOKEN_CHARS",
    "OPEN_PATHS",
    "is_loopback",
    "resolve_token",
    "token_digest",
    "auth_options",
    "authorization_error",
    "authorize",
    "key_options",
    "SCOPES",
    "route_scope",
    "host_error",
]

TOKEN_ENV = "WORKBENCH_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
#: Liveness/readiness probes answer without a token (they reveal nothing but "up"), as
#: load balancers and Kubernetes probes expect. Everything else needs one when a token is set.
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9._~+/=-]+$")  # RFC 6750 b64token
#: What a named API key may be allowed: ``predict`` (POST /predict, v2 infer) and ``health``
#: (GET /health and the v2 metadata routes).
SCOPES = ("predict", "health")
_HINT = (
    f"set {TOKEN_ENV} (for example: export {TOKEN_ENV}="
    "$(python -c 'import secrets; print(secrets.token_urlsafe(32))')) or pass token=... to "
    "Serving; clients then send 'Authorization: Bearer <token>'"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost).

    ``0.0.0.0``, ``::``, an empty host and any other name count as beyond loopback.

    Examples
    --------
    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "[::1]", "localhost", "0.0.0.0", "10.0.0.5")]
    [True, True, True, True, False, False]
    """
    name = (host or "").strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def resolve_token(
    host: str, token: str | None = None, *, environ: Mapping[str, str] | None = None
) -> str | None:
    """The bearer token to enforce for an endpoint on ``host``, or None when none is needed.

    A token given (argument, else ``$WORKBENCH_SERVE_TOKEN``) is always
    enforced, on loopback too. Without one, a loopback host serves openly and
    any other host is refused.

    Raises
    ------
    ConfigError
        The host is beyond loopback and no token is set (the message says how
        to set one), or the token is too short or has characters a header
        cannot carry.

    Examples
    --------
    >>> resolve_token("127.0.0.1", environ={}) is None
    True
    >>> resolve_token("0.0.0.0", environ={})
    Traceback (most recent call last):
    ...
    workbench.exceptions.ConfigError: Serve's HTTP endpoint listens on '0.0.0.0', beyond loopback, so a bearer token is required: set WORKBENCH_SERVE_TOKEN (for example: export WORKBENCH_SERVE_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')) or pass token=... to Serving; clients then send 'Authorization: Bearer <token>'.
    """
    env = os.environ if environ is None else environ
    if token is None:
        token = env.get(TOKEN_ENV) or None
    if token is None:
        if is_loopback(host):
            return None
        raise ConfigError(
            f"Serve's HTTP endpoint listens on {host!r}, beyond loopback, so a bearer token is "
            f"required: {_HINT}."
        )
    if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"the serving token must be a string of at least {MIN_TOKEN_CHARS} characters; "
            f"generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    if not _TOKEN_CHARS.match(token):
        # Never echo the token: say only what is wrong with it.
        raise ConfigError(
            "the serving token may only hold letters, digits and - . _ ~ + / = (it travels in an "
            "HTTP header); generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    return token


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a token: what replicas keep instead of the token.

    Examples
    --------
    >>> len(token_digest("a" * 16)), token_digest("a" * 16) == token_digest("a" * 16)
    (64, True)
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def auth_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check the auth key of a router ``user_config``: ``token_sha256`` is None or a SHA-256 hex digest.

    Examples
    --------
    >>> auth_options({})
    {'token_sha256': None}
    """
    digest = config.get("token_sha256")
    if digest is not None and not is_sha256_hex(digest):
        raise ConfigError(
            "router config 'token_sha256' must be the lowercase SHA-256 hex digest of the token "
            "(hashlib.sha256(token.encode()).hexdigest()), never the token itself."
        )
    return {"token_sha256": digest}


def authorization_error(path: str, header: str | None, digest: str | None) -> str | None:
    """Why a request to ``path`` with this ``Authorization`` header is refused, or None if it may pass.

    The message never contains the presented value.

    Examples
    --------
    >>> d = token_digest("s3cret-token-0123")
    >>> authorization_error("/predict", "Bearer s3cret-token-0123", d) is None
    True
    >>> authorization_error("/predict", "Bearer wrong-token-000000", d)
    'the bearer token is not valid for this endpoint'
    >>> authorization_error("/v2/health/ready", None, d) is None
    True
    """
    if digest is None or path in OPEN_PATHS:
        return None
    if not header:
        return (
            "this endpoint requires a bearer token: send the header 'Authorization: Bearer <token>'"
        )
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return "the Authorization header must have the form 'Bearer <token>'"
    presented = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()
    if not hmac.compare_digest(presented, digest):
        return "the bearer token is not valid for this endpoint"
    return None


def key_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check the ``api_keys`` of a router ``user_config``: ``[{name, sha256, scopes}]`` (digests only).

    Examples
    --------
    >>> key_options({})
    {'api_keys': []}
    >>> key_options({"api_keys": [{"name": "ci", "sha256": "a" * 64, "scopes": ["predict"]}]})["api_keys"][0]["name"]
    'ci'
    """
    keys = config.get("api_keys") or []
    if not isinstance(keys, list):
        raise ConfigError("router config 'api_keys' must be a list of {name, sha256, scopes}.")
    clean = []
    for key in keys:
        if (
            not isinstance(key, Mapping)
            or not isinstance(key.get("name"), str)
            or not is_sha256_hex(key.get("sha256"))
            or not isinstance(key.get("scopes"), list | tuple)
            or not set(key["scopes"]) <= set(SCOPES)
        ):
            raise ConfigError(
                "router config 'api_keys' entries must be {name, sha256 (the key's SHA-256 hex "
                f"digest, never the key), scopes (a subset of {list(SCOPES)})}}."
            )
        clean.append({"name": key["name"], "sha256": key["sha256"], "scopes": list(key["scopes"])})
    return {"api_keys": clean}


def route_scope(path: str) -> str:
    """The scope a route needs: ``predict`` for /predict and v2 infer, ``health`` otherwise.

    Examples
    --------
    >>> route_scope("/predict"), route_scope("/v2/models/m/infer"), route_scope("/health")
    ('predict', 'predict', 'health')
    """
    return "predict" if path == "/predict" or path.endswith("/infer") else "health"


def authorize(
    path: str,
    header: str | None,
    digest: str | None,
    keys: list[dict[str, Any]] | tuple[()] = (),
) -> tuple[int | None, str, str | None]:
    """``(status, message, key_name)`` for a request: status None when it may pass.

    The single token (``digest``) passes every route (``key_name`` None). A named key passes
    the routes its scopes allow; one without the route's scope gets 403. Digests are compared
    with :func:`hmac.compare_digest`; messages never hold the presented value.

    Examples
    --------
    >>> keys = [{"name": "probe", "sha256": token_digest("h" * 20), "scopes": ["health"]}]
    >>> authorize("/health", "Bearer " + "h" * 20, None, keys)
    (None, '', 'probe')
    >>> authorize("/predict", "Bearer " + "h" * 20, None, keys)[:2]
    (403, "the API key 'probe' lacks the 'predict' scope for this route")
    >>> authorize("/predict", None, None, [])
    (None, '', None)
    """
    if (digest is None and not keys) or path in OPEN_PATHS:
        return None, "", None
    if not header:
        return (
            401,
            "this endpoint requires a bearer token: send the header 'Authorization: Bearer <token>'",
            None,
        )
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return 401, "the Authorization header must have the form 'Bearer <token>'", None
    presented = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()
    if digest is not None and hmac.compare_digest(presented, digest):
        return None, "", None
    found = None
    for key in keys:  # compare against every key: the time does not tell which one matched
        if hmac.compare_digest(presented, key["sha256"]):
            found = key
    if found is None:
        return 401, "the bearer token is not valid for this endpoint", None
    scope = route_scope(path)
    if scope not in found["scopes"]:
        return 403, f"the API key {found['name']!r} lacks the {scope!r} scope for this route", None
    return None, "", found["name"]


def host_error(host_header: str | None) -> str | None:
    """Why a ``Host`` header is refused on an endpoint without a token, or None.

    Without a token the endpoint trusts being reachable from this machine only; a page on
    another site can still reach it by DNS rebinding (its name resolving to 127.0.0.1), and
    then the browser sends that name as ``Host``. Only loopback names pass; a request without
    a Host (HTTP/1.0, an in-process call) passes too, as no browser sends one.

    Examples
    --------
    >>> [host_error(h) is None for h in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "evil.example:8000", None)]
    [True, True, True, False, True]
    """
    value = (host_header or "").strip()
    if not value:
        return None
    if value.startswith("["):
        name = value[1 : value.find("]")] if "]" in value else ""
        rest = value[value.find("]") + 1 :] if "]" in value else ""
    else:
        name, _, port = value.partition(":")
        rest = ":" + port if port else ""
    if rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit()):
        return f"the Host header {value[:80]!r} is not a loopback address"
    if name and is_loopback(name):
        return None
    return (
        f"the Host header {value[:80]!r} is not a loopback address; without a token this "
        "endpoint answers only requests addressed to 127.0.0.1, localhost or [::1]"
    )
