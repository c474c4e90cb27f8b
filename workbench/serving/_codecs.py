"""Wire formats of a deployment's HTTP routes: decode a body into records, encode the answer.

Two protocols share one prediction path in the router (pick a version, validate,
predict, log): the workbench JSON protocol on ``/predict`` (this module) and the
Open Inference Protocol v2 on ``/v2/...`` (:mod:`workbench.serving._v2`). A codec
is made per request; it turns the raw body into records and a sticky-routing
key, and the router's outcome (a status and a payload) into a response.

The JSON protocol, relative to the deployment's route prefix::

    POST /predict  {"records": [{"mean radius": 14.1, ...}, ...], "key": "user-7"}
    POST /predict  {"columns": {"mean radius": [14.1, 20.6], ...}}

``records`` is row-oriented (one object per row); ``columns`` is column-oriented
(one equally long list per feature; row *i* takes the *i*-th value of every
list). ``key`` is optional. The answer is ``{"predictions": [...],
"model_version": 2, "request_id": "..."}`` plus ``"warnings"`` when a
prediction was NaN/inf (returned as ``null``); predictions are the model's class
labels of the target's own type (ints, booleans, strings), or numbers for a
regressor. ``"probabilities": true`` in the body adds ``"classes"`` (the labels, in
order) and ``"probabilities"`` (one list per row, aligned with ``classes``); a
regressor answers that with 422. Errors are ``{"error", "field", "request_id"}`` with
400 (not JSON), 401 (token), 413 (too large) or 422 (does not match the signature).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

from workbench.exceptions import InvalidRequestError
from workbench.serving._validation import apply_non_finite_policy

__all__ = ["HTTPError", "JSONCodec", "records_from_body"]


class HTTPError(Exception):
    """A request outcome with its own HTTP status (413, 415, 503, 500...)."""

    def __init__(self, status: int, message: str, field: str | None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


#: The deepest nesting of arrays/objects a request body may have (a record is 2-3 levels deep).
MAX_JSON_DEPTH = 32
#: The longest string a request body may hold (characters between quotes, escapes included).
MAX_JSON_STRING = 65_536
#: The most values (array items and object members, all containers together) a request body may
#: hold: 100k is 10k records of 10 features; a 1 MiB body of ``[0,0,0,...]`` would be 500k.
MAX_JSON_ITEMS = 100_000
# A string, or an unterminated one up to the end: every attempt that starts at a quote succeeds, so
# one left-to-right pass consumes each byte once (no restart inside a string: linear time).
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def check_json_shape(raw: bytes) -> None:
    """Refuse a body nesting deeper than :data:`MAX_JSON_DEPTH`, holding a string longer than
    :data:`MAX_JSON_STRING` or more than :data:`MAX_JSON_ITEMS` values, before :func:`json.loads`
    recurses into it or builds its containers.

    Strings are blanked and the brackets left are summed by C-level passes (regular expressions,
    ``bytes.translate``, ``itertools.accumulate``), so 200k ``[`` cost a few milliseconds.

    Examples
    --------
    >>> check_json_shape(b'{"columns": {"a": [1, 2]}}')
    >>> check_json_shape(b"[" * 200_000)
    Traceback (most recent call last):
    ...
    workbench.exceptions.InvalidRequestError: the body nests too deeply (over 32 levels); a request is {"records": [{feature: value}]}
    >>> check_json_shape(b"[" + b"0," * 100_000 + b"0]")
    Traceback (most recent call last):
    ...
    workbench.exceptions.InvalidRequestError: the body holds over 100000 values; send at most that many feature values per request (split a batch into several requests)
    """
    if len(raw) > MAX_JSON_STRING and any(
        m.end() - m.start() - 2 > MAX_JSON_STRING for m in _JSON_STRING.finditer(raw)
    ):
        raise InvalidRequestError(
            f"the body holds a string over {MAX_JSON_STRING} characters; "
            "send feature values, not documents",
            field="body",
        )
    bare = _JSON_STRING.sub(b"", raw)
    if bare.count(b",") >= MAX_JSON_ITEMS:
        raise InvalidRequestError(
            f"the body holds over {MAX_JSON_ITEMS} values; send at most that many feature values "
            "per request (split a batch into several requests)",
            field="body",
        )
    brackets = bare.translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= MAX_JSON_DEPTH:
        return
    if max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets))) > MAX_JSON_DEPTH:
        raise InvalidRequestError(
            f"the body nests too deeply (over {MAX_JSON_DEPTH} levels); a request is "
            '{"records": [{feature: value}]}',
            field="body",
        )


def parse_json(raw: bytes) -> Any:
    """Parse a request body; anything that is not JSON is an InvalidRequestError on field ``body``.

    The nesting depth and string lengths are checked first (:func:`check_json_shape`), so a
    body of 100k nested brackets (it fits in 1 MiB) never reaches the recursive parser.
    """
    check_json_shape(raw)
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidRequestError(
            "the body nests too deeply to be a request", field="body"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"the body is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})",
            field="body",
        ) from None


def records_from_body(body: Any) -> tuple[list[Any], str | None]:
    """Records and sticky key from a parsed request body; raises InvalidRequestError naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequestError(
            'the body must be a JSON object such as {"records": [{...}]} or {"columns": {...}}',
            field="body",
        )
    unknown = sorted(set(body) - {"records", "columns", "key", "probabilities"})
    if unknown:
        raise InvalidRequestError(
            f"unknown field {unknown[0]!r} in the body; send 'records' or 'columns', and "
            "optionally 'key' and 'probabilities'",
            field=unknown[0],
        )
    key = body.get("key")
    if key is not None and not isinstance(key, str):
        raise InvalidRequestError(
            f"'key' must be a string (a user or session id), got {key!r}", field="key"
        )
    if not isinstance(body.get("probabilities", False), bool):
        raise InvalidRequestError(
            f"'probabilities' must be true or false, got {body['probabilities']!r}",
            field="probabilities",
        )
    if ("records" in body) == ("columns" in body):
        raise InvalidRequestError(
            'send exactly one of "records" (a list of objects) or "columns" (an object of equal-length lists)',
            field="records",
        )
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not records:
            raise InvalidRequestError(
                '"records" must be a non-empty list of objects', field="records"
            )
        return records, key
    columns = body["columns"]
    if not isinstance(columns, dict) or not columns:
        raise InvalidRequestError(
            '"columns" must be a non-empty object {feature: [values...]}', field="columns"
        )
    lengths = {}
    for name, values in columns.items():
        if not isinstance(values, list):
            raise InvalidRequestError(f"column {name!r} must be a list of values", field=name)
        lengths[name] = len(values)
    n = max(lengths.values())
    short = sorted(c for c, m in lengths.items() if m != n)
    if short:
        raise InvalidRequestError(
            f"column {short[0]!r} has {lengths[short[0]]} values but others have {n}; columns must be equally long",
            field=short[0],
        )
    if n == 0:
        raise InvalidRequestError(
            '"columns" hold no values; send at least one row', field="columns"
        )
    names = list(columns)
    return [{c: columns[c][i] for c in names} for i in range(n)], key


class JSONCodec:
    """The workbench JSON protocol on ``POST /predict`` (see the module docstring).

    Parameters
    ----------
    non_finite : str
        ``"reject"`` or ``"impute"``: what to do with NaN/inf in the records.
    """

    protocol = "json"

    def __init__(self, *, non_finite: str = "reject"):
        self.non_finite = non_finite
        #: whether the request asked for class probabilities (set by :meth:`decode`)
        self.probabilities = False

    def decode(
        self, raw: bytes, headers: Mapping[str, str], routing: Any
    ) -> tuple[list[Any], str | None]:
        """Records and sticky key from the raw body; raises InvalidRequestError naming the field."""
        body = parse_json(raw)
        records, key = records_from_body(body)
        self.probabilities = body.get("probabilities") is True
        return apply_non_finite_policy(records, self.non_finite), key

    def respond(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        """A JSONResponse; a payload JSON cannot hold becomes a 500 that says so, never a crash."""
        from starlette.responses import JSONResponse

        try:
            return JSONResponse(payload, status_code=status, headers=headers)
        except (TypeError, ValueError) as exc:
            return JSONResponse(
                {
                    "error": f"the answer could not be encoded as JSON ({type(exc).__name__}: {exc})",
                    "field": None,
                    "request_id": payload.get("request_id"),
                },
                status_code=500,
            )
