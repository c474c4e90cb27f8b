"""Request-validation policy of a deployment: NaN/inf inputs, body size, and non-finite predictions.

Pure Python (no Ray, no starlette), so every rule is unit-tested without a
cluster. The router applies these before and after the model: the model's
own signature checks (missing, unknown or mistyped features) live in
:func:`workbench.features.coerce_records`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.exceptions import ConfigError, InvalidRequestError
from workbench.runtime import jsonable

__all__ = [
    "NON_FINITE_POLICIES",
    "DEFAULT_MAX_BODY_BYTES",
    "validation_options",
    "apply_non_finite_policy",
    "sanitize_predictions",
]

#: ``reject`` answers 422 naming the row and feature; ``impute`` treats the value as missing
#: (``null``), which the model's fitted imputer fills like any other missing value.
NON_FINITE_POLICIES = ("reject", "impute")
DEFAULT_MAX_BODY_BYTES = 1 << 20
_MAX_BODY_CEILING = 1 << 30  # Serve buffers the whole body in the replica: keep the limit sane


def validation_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check and fill the validation keys of a router ``user_config``.

    Parameters
    ----------
    config : mapping
        May hold ``non_finite`` (``"reject"`` or ``"impute"``) and
        ``max_body_bytes`` (a positive int, at most 1 GiB).

    Returns
    -------
    dict
        ``{"non_finite": ..., "max_body_bytes": ...}`` with defaults filled in.

    Raises
    ------
    ConfigError
        Naming the bad option and the allowed values.

    Examples
    --------
    >>> validation_options({})
    {'non_finite': 'reject', 'max_body_bytes': 1048576}
    >>> validation_options({"non_finite": "impute", "max_body_bytes": 4096})["non_finite"]
    'impute'
    """
    policy = config.get("non_finite", "reject")
    if policy not in NON_FINITE_POLICIES:
        raise ConfigError(
            f"non_finite must be one of {list(NON_FINITE_POLICIES)} (what to do with NaN/inf in a "
            f"request); got {policy!r}."
        )
    limit = config.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    if limit is None:
        limit = DEFAULT_MAX_BODY_BYTES
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= _MAX_BODY_CEILING:
        raise ConfigError(
            f"max_body_bytes must be an integer in 1..{_MAX_BODY_CEILING} (bytes); got {limit!r}."
        )
    return {"non_finite": policy, "max_body_bytes": limit}


def _describe(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def apply_non_finite_policy(records: Sequence[Any], policy: str = "reject") -> list[Any]:
    """Apply the NaN/inf policy to JSON-like records before the model sees them.

    ``reject`` raises :class:`InvalidRequestError` for the first NaN, +/-inf or
    integer too large for a float; ``impute`` turns NaN and +/-inf into
    ``None`` (missing). Integers beyond float range are rejected under both
    policies: they are not a measurement, and converting them would raise
    inside the model. Values of any other type pass through untouched for
    the signature check.

    Examples
    --------
    >>> apply_non_finite_policy([{"x": float("nan"), "c": "a"}], "impute")
    [{'x': None, 'c': 'a'}]
    >>> apply_non_finite_policy([{"x": float("inf")}])
    Traceback (most recent call last):
    ...
    workbench.exceptions.InvalidRequestError: record 0: feature 'x' is Infinity, not a finite number; send a finite number or null, or deploy with non_finite="impute" to treat NaN/inf as missing
    """
    if policy not in NON_FINITE_POLICIES:
        raise ConfigError(f"non_finite must be one of {list(NON_FINITE_POLICIES)}; got {policy!r}.")
    out: list[Any] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            out.append(rec)  # the signature check names it
            continue
        clean = None
        for name, value in rec.items():
            if isinstance(value, int) and not isinstance(value, bool):
                try:
                    float(value)
                except OverflowError:
                    raise InvalidRequestError(
                        f"record {i}: feature {name!r} is an integer of {len(str(abs(value)))} digits, "
                        "beyond the range of a 64-bit float",
                        field=str(name),
                    ) from None
                continue
            if isinstance(value, float) and not math.isfinite(value):
                if policy == "reject":
                    raise InvalidRequestError(
                        f"record {i}: feature {name!r} is {_describe(value)}, not a finite number; "
                        'send a finite number or null, or deploy with non_finite="impute" to treat '
                        "NaN/inf as missing",
                        field=str(name),
                    )
                if clean is None:
                    clean = dict(rec)
                clean[name] = None
        out.append(rec if clean is None else clean)
    return out


def sanitize_predictions(predictions: Sequence[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Make predictions JSON-safe: NaN and +/-inf become ``None`` with one warning per row.

    Starlette renders JSON with ``allow_nan=False``, so a NaN left in a
    response would turn a good request into a 500. A non-finite prediction is
    the model's answer, not the client's fault: the row gets ``null`` and the
    response says which rows and why.

    Returns
    -------
    (list, list of dict)
        The cleaned predictions and ``[{"row": i, "message": ...}]``.

    Examples
    --------
    >>> sanitize_predictions([1.5, float("nan"), "benign"])
    ([1.5, None, 'benign'], [{'row': 1, 'message': 'the model predicted NaN; returned as null'}])
    """
    out: list[Any] = []
    warnings: list[dict[str, Any]] = []
    for i, raw in enumerate(predictions):
        value = jsonable(raw)  # numpy scalars and arrays to Python values
        bad: list[str] = []
        value = _finite(value, bad)
        if bad:
            warnings.append(
                {"row": i, "message": f"the model predicted {bad[0]}; returned as null"}
            )
        out.append(value)
    return out, warnings


def _finite(value: Any, bad: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        bad.append(_describe(value))
        return None
    if isinstance(value, list | tuple):
        return [_finite(v, bad) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v, bad) for k, v in value.items()}
    return value
