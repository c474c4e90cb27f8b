"""Open Inference Protocol v2 (the KServe / Triton HTTP protocol) on a workbench deployment.

Routes, relative to the deployment's route prefix (e.g. ``/cancer``); the model
name is the deployment name:

==========================================  =============================================
``GET  /v2``                                server metadata (name, version, extensions)
``GET  /v2/health/live``                    200 while the replica answers (no token needed)
``GET  /v2/health/ready``                   200 once model versions are loaded (no token needed)
``GET  /v2/models/{name}``                  model metadata: one input tensor per feature
``GET  /v2/models/{name}/ready``            200 when the model can answer
``GET  /v2/models/{name}/versions/{v}``     metadata of one loaded version
``GET  /v2/models/{name}/versions/{v}/ready``
``POST /v2/models/{name}/infer``            inference; the version is chosen by traffic weight
==========================================  =============================================

Tensors: one input per feature, named after it, shape ``[N]`` (or ``[N, 1]``),
datatype ``FP64`` for numbers (FP32/FP16 and integer types are accepted too),
``BYTES`` for strings, ``BOOL`` for booleans; all inputs hold the same N rows.
Data travels as JSON (``"data": [...]``) or in the binary tensor extension
(``Inference-Header-Content-Length``), which ``tritonclient[http]`` uses by
default; request bodies may be gzip/deflate-compressed. The output
``prediction`` has shape ``[N]`` and datatype ``FP64`` (regression), or
``BYTES``/``INT64``/``FP64``/``BOOL`` after the class labels (of the target's own
type). A classifier with ``predict_proba`` has two more, returned when the request
names them in ``outputs``: ``probabilities`` (``FP64``, shape ``[N, K]``, columns in
the order of the classes) and ``classes`` (shape ``[K]``, the labels in that order);
without ``outputs`` the answer holds ``prediction`` only. A NaN/inf prediction is
``null`` in JSON (NaN in binary) and the response's ``parameters.warnings``
names the rows. ``parameters.key`` is the sticky-routing key. Errors are
``{"error": "..."}``: 400 for any invalid request (as Triton), 401, 404, 405,
413, 415.
"""

from __future__ import annotations

import json
import numbers
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workbench.exceptions import InvalidRequestError
from workbench.runtime import jsonable
from workbench.serving._codecs import HTTPError, parse_json
from workbench.serving._validation import DEFAULT_MAX_BODY_BYTES, apply_non_finite_policy
from workbench.serving.traffic import main_version

__all__ = [
    "FEATURE_DATATYPES",
    "OUTPUT_NAME",
    "OUTPUTS",
    "V2Codec",
    "V2Request",
    "decode_infer",
    "encode_infer",
    "handle",
    "model_metadata",
    "output_datatype",
]

FEATURE_DATATYPES = {"number": "FP64", "string": "BYTES", "boolean": "BOOL"}
OUTPUT_NAME = "prediction"
PROBA_OUTPUT = "probabilities"
CLASSES_OUTPUT = "classes"
OUTPUTS = (OUTPUT_NAME, PROBA_OUTPUT, CLASSES_OUTPUT)
HEADER_LENGTH = "inference-header-content-length"
_NUMERIC = {
    "FP64": "<f8",
    "FP32": "<f4",
    "FP16": "<f2",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}
_REQUEST_KEYS = {"id", "parameters", "inputs", "outputs"}


@dataclass
class V2Request:
    """A decoded infer request: rows as records, plus what the answer must look like."""

    records: list[dict[str, Any]]
    key: str | None
    client_id: str | None
    binary_output: bool
    #: the outputs the request named (name → binary), in its order; None when it named none
    outputs: dict[str, bool] | None = None


# ------------------------------------------------------------------ metadata
def output_datatype(bundle: Any) -> str:
    """V2 datatype of a bundle's ``prediction`` output: FP64 for regression, else after the labels.

    Examples
    --------
    >>> from types import SimpleNamespace as B
    >>> [output_datatype(B(task="classification", classes=c)) for c in (["a", "b"], [0, 1], [True, False])]
    ['BYTES', 'INT64', 'BOOL']
    >>> output_datatype(B(task="regression", classes=[]))
    'FP64'
    """
    classes = list(getattr(bundle, "classes", []) or [])
    if getattr(bundle, "task", "classification") == "regression":
        return "FP64"
    if classes and all(isinstance(c, bool) or type(c).__name__ == "bool_" for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, numbers.Integral) for c in classes):
        return "INT64"
    if classes and all(isinstance(c, numbers.Real) for c in classes):
        return "FP64"
    return "BYTES"


def _platform(bundle: Any) -> str:
    lib = type(getattr(bundle, "pipeline", None)).__module__.split(".")[0]
    return f"workbench_{lib}" if lib and lib != "builtins" else "workbench"


def output_tensors(bundle: Any) -> list[dict[str, Any]]:
    """The output tensors of a bundle: ``prediction``, and for a classifier with class
    probabilities ``probabilities`` ``[N, K]`` and ``classes`` ``[K]``.

    Examples
    --------
    >>> from types import SimpleNamespace as B
    >>> output_tensors(B(task="regression", classes=[], probabilities_missing="regression"))
    [{'name': 'prediction', 'datatype': 'FP64', 'shape': [-1]}]
    >>> [t["shape"] for t in output_tensors(B(task="classification", classes=[0, 1, 2],
    ...                                        probabilities_missing=None))]
    [[-1], [-1, 3], [3]]
    """
    datatype = output_datatype(bundle)
    out = [{"name": OUTPUT_NAME, "datatype": datatype, "shape": [-1]}]
    if getattr(bundle, "probabilities_missing", "unknown") is None:
        k = len(bundle.classes)
        out.append({"name": PROBA_OUTPUT, "datatype": "FP64", "shape": [-1, k]})
        out.append({"name": CLASSES_OUTPUT, "datatype": datatype, "shape": [k]})
    return out


def model_metadata(name: str, routing: Any, version: int | None = None) -> dict[str, Any]:
    """The v2 model metadata: versions loaded, and the tensors of ``version`` (default: the main one)."""
    chosen = main_version(routing.weights) if version is None else version
    bundle = routing.versions[chosen].bundle
    return {
        "name": name,
        "versions": [str(v) for v in sorted(routing.versions)],
        "platform": _platform(bundle),
        "inputs": [
            {"name": f, "datatype": FEATURE_DATATYPES.get(kind, "BYTES"), "shape": [-1]}
            for f, kind in bundle.features.items()
        ],
        "outputs": output_tensors(bundle),
    }


# ------------------------------------------------------------------- decoding
def _inflate(raw: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "deflate"):
        raise HTTPError(
            415,
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none",
            "body",
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise InvalidRequestError(f"the body is not valid {encoding} data", field="body") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise HTTPError(
            413, f"the decompressed body exceeds {limit} bytes; send fewer rows per request", "body"
        )
    return out


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack = [iter(data)]
    while stack:  # iterative: a 1 MiB body can nest deeper than Python's recursion limit
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _check_shape(name: str, shape: Any) -> int:
    """Rows in a tensor of this shape: ``[N]`` or ``[N, 1]``."""
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InvalidRequestError(
            f"input {name!r}: 'shape' must be a list of non-negative integers such as [N], got {shape!r}",
            field=name,
        )
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise InvalidRequestError(
            f"input {name!r} has shape {shape}; send one value per row: shape [N] or [N, 1]",
            field=name,
        )
    return shape[0]


def _binary_values(name: str, datatype: str, chunk: bytes, count: int) -> list[Any]:
    import numpy as np

    if datatype == "BYTES":
        values, pos = [], 0
        for row in range(count):
            if pos + 4 > len(chunk):
                raise InvalidRequestError(
                    f"input {name!r}: binary BYTES data ends before row {row} of {count}",
                    field=name,
                )
            (size,) = struct.unpack_from("<I", chunk, pos)
            pos += 4
            if pos + size > len(chunk):
                raise InvalidRequestError(
                    f"input {name!r}: row {row} claims {size} bytes but the tensor data ends first",
                    field=name,
                )
            try:
                values.append(chunk[pos : pos + size].decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidRequestError(
                    f"input {name!r}: row {row} is not valid UTF-8 text", field=name
                ) from None
            pos += size
        if pos != len(chunk):
            raise InvalidRequestError(
                f"input {name!r}: {len(chunk) - pos} bytes left over after {count} BYTES elements",
                field=name,
            )
        return values
    dtype = np.dtype("u1" if datatype == "BOOL" else _NUMERIC[datatype])
    if len(chunk) != count * dtype.itemsize:
        raise InvalidRequestError(
            f"input {name!r}: {len(chunk)} bytes of binary data, but {count} {datatype} values "
            f"take {count * dtype.itemsize}",
            field=name,
        )
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype == "BOOL":
        return [bool(v) for v in array.tolist()]
    return array.tolist()


def decode_infer(
    raw: bytes, headers: Mapping[str, str], kinds: Mapping[str, str], *, max_body_bytes: int
) -> V2Request:
    """Decode a v2 infer body (JSON, or JSON + binary tensors) into one record per row.

    Raises :class:`InvalidRequestError` naming the input (``field``) for
    anything that does not match the model's signature, and
    :class:`HTTPError` for 413/415.
    """
    raw = _inflate(raw, (headers.get("content-encoding") or "").strip().lower(), max_body_bytes)
    split = headers.get(HEADER_LENGTH)
    binary = b""
    if split is not None:
        if not split.strip().isdigit() or int(split) > len(raw):
            raise InvalidRequestError(
                f"Inference-Header-Content-Length must be a byte count within the body "
                f"({len(raw)} bytes), got {split!r}",
                field="body",
            )
        raw, binary = raw[: int(split)], raw[int(split) :]
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidRequestError(
            'the body must be a JSON object such as {"inputs": [{"name", "shape", "datatype", "data"}]}',
            field="body",
        )
    unknown = sorted(set(body) - _REQUEST_KEYS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field {unknown[0]!r} in the infer request; allowed: {sorted(_REQUEST_KEYS)}",
            field=unknown[0],
        )
    client_id = body.get("id")
    if client_id is not None and not isinstance(client_id, str):
        raise InvalidRequestError(f"'id' must be a string, got {client_id!r}", field="id")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidRequestError("'parameters' must be an object", field="parameters")
    key = params.get("key")
    if key is not None and not isinstance(key, str):
        raise InvalidRequestError(
            f"parameters.key (the sticky-routing key) must be a string, got {key!r}", field="key"
        )
    binary_default = params.get("binary_data_output", False) is True

    outputs = body.get("outputs")
    binary_output = binary_default
    named: dict[str, bool] | None = None
    if outputs is not None:
        if not isinstance(outputs, list):
            raise InvalidRequestError("'outputs' must be a list", field="outputs")
        named = {}
        for out in outputs:
            if not isinstance(out, dict) or out.get("name") not in OUTPUTS:
                got = out.get("name") if isinstance(out, dict) else out
                raise InvalidRequestError(
                    f"unknown output {got!r}; the outputs are {OUTPUT_NAME!r}, and "
                    f"{PROBA_OUTPUT!r} and {CLASSES_OUTPUT!r} for a classifier with class "
                    "probabilities",
                    field="outputs",
                )
            if out["name"] in named:
                raise InvalidRequestError(f"output {out['name']!r} is named twice", field="outputs")
            out_params = out.get("parameters") or {}
            if not isinstance(out_params, dict):
                raise InvalidRequestError(
                    "'outputs[].parameters' must be an object", field="outputs"
                )
            if "classification" in out_params:
                raise InvalidRequestError(
                    "the classification extension is not supported; read the labels from "
                    f"{OUTPUT_NAME!r} and the class probabilities from {PROBA_OUTPUT!r}",
                    field="outputs",
                )
            named[out["name"]] = out_params.get("binary_data", binary_default) is True
        named = named or None  # "outputs": [] names none: the default answer
        if named and OUTPUT_NAME in named:
            binary_output = named[OUTPUT_NAME]

    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError(
            f"'inputs' must be a non-empty list of tensors, one per feature: {list(kinds)}",
            field="inputs",
        )
    columns: dict[str, list[Any]] = {}
    rows: dict[str, int] = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InvalidRequestError(f"inputs[{i}] must be an object", field="inputs")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise InvalidRequestError(f"inputs[{i}] needs a string 'name'", field="inputs")
        if name not in kinds:
            raise InvalidRequestError(
                f"unknown input {name!r}; this model's inputs are {list(kinds)}", field=name
            )
        if name in columns:
            raise InvalidRequestError(f"input {name!r} is given twice", field=name)
        kind = kinds[name]
        datatype = tensor.get("datatype")
        allowed = set(_NUMERIC) if kind == "number" else {FEATURE_DATATYPES.get(kind, "BYTES")}
        if datatype not in allowed:
            want = FEATURE_DATATYPES.get(kind, "BYTES")
            extra = " (FP32, FP16 and integer types are accepted too)" if kind == "number" else ""
            raise InvalidRequestError(
                f"input {name!r} has datatype {datatype!r}; feature {name!r} is a {kind}: "
                f"send {want}{extra}",
                field=name,
            )
        count = _check_shape(name, tensor.get("shape"))
        t_params = tensor.get("parameters") or {}
        if not isinstance(t_params, dict):
            raise InvalidRequestError(f"input {name!r}: 'parameters' must be an object", field=name)
        if any(k.startswith("shared_memory") for k in t_params):
            raise InvalidRequestError(
                f"input {name!r}: shared-memory tensors are not supported over HTTP; send the "
                "data as JSON or binary tensor data",
                field=name,
            )
        size = t_params.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise InvalidRequestError(
                    f"input {name!r}: binary_data_size must be a byte count, got {size!r}",
                    field=name,
                )
            if "data" in tensor:
                raise InvalidRequestError(
                    f"input {name!r} has both 'data' and binary_data_size; send one", field=name
                )
            if offset + size > len(binary):
                raise InvalidRequestError(
                    f"input {name!r}: binary_data_size {size} runs past the end of the body",
                    field=name,
                )
            values = _binary_values(name, datatype, binary[offset : offset + size], count)
            offset += size
        else:
            if "data" not in tensor:
                raise InvalidRequestError(
                    f"input {name!r} has no 'data' (and no binary_data_size)", field=name
                )
            values = _flatten(tensor["data"])
            if len(values) != count:
                raise InvalidRequestError(
                    f"input {name!r} has shape {tensor['shape']} but {len(values)} values",
                    field=name,
                )
        columns[name] = values
        rows[name] = count
    if offset != len(binary):
        raise InvalidRequestError(
            f"{len(binary) - offset} bytes of binary data follow the tensors that claim them; "
            "check binary_data_size and Inference-Header-Content-Length",
            field="body",
        )
    missing = [f for f in kinds if f not in columns]
    if missing:
        raise InvalidRequestError(
            f"missing input {missing[0]!r}; send one tensor per feature: {list(kinds)}",
            field=missing[0],
        )
    counts = sorted(set(rows.values()))
    if len(counts) > 1:
        odd = next(n for n, c in rows.items() if c != rows[next(iter(rows))])
        raise InvalidRequestError(
            f"input {odd!r} has {rows[odd]} rows but {next(iter(rows))!r} has "
            f"{rows[next(iter(rows))]}; every input must hold the same rows",
            field=odd,
        )
    if counts[0] == 0:
        raise InvalidRequestError(
            "empty batch: the inputs hold no rows; send shape [N] with N >= 1", field="inputs"
        )
    names = list(kinds)
    records = [{f: columns[f][r] for f in names} for r in range(counts[0])]
    return V2Request(records, key, client_id, binary_output, named)


# ------------------------------------------------------------------- encoding
def _serialize_bytes(values: list[Any]) -> bytes:
    parts = []
    for v in values:
        b = str(v).encode("utf-8")
        parts.append(struct.pack("<I", len(b)) + b)
    return b"".join(parts)


def _tensor_bytes(datatype: str, data: list[Any]) -> bytes:
    import numpy as np

    if datatype == "BYTES":
        return _serialize_bytes(data)
    dtype = {"FP64": "<f8", "INT64": "<i8", "BOOL": "?"}[datatype]
    return np.array([np.nan if p is None else p for p in data], dtype=dtype).tobytes()


def _tensor_data(datatype: str, values: list[Any]) -> list[Any]:
    return [str(p) if p is not None else "" for p in values] if datatype == "BYTES" else values


def encode_infer(
    *,
    model_name: str,
    version: int,
    request_id: str,
    client_id: str | None,
    predictions: list[Any],
    warnings: list[dict[str, Any]],
    datatype: str,
    binary: bool,
    outputs: dict[str, bool] | None = None,
    probabilities: list[list[Any]] | None = None,
    classes: list[Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The v2 infer response body and headers (JSON, or JSON + binary tensors).

    ``predictions`` are JSON-safe already (NaN/inf replaced by ``None``); in
    binary FP64 a ``None`` travels as NaN, in JSON as ``null``. ``outputs`` are the
    tensors to answer with (name → binary, in order; default ``prediction`` alone, binary
    when ``binary``): ``probabilities`` (``[N, K]`` FP64, one row per prediction, columns
    in the order of ``classes``) and ``classes`` (``[K]``, of ``datatype``) need those two.
    """
    wanted = outputs or {OUTPUT_NAME: binary}
    tensors: list[tuple[str, str, list[int], list[Any]]] = []
    for name in wanted:
        if name == OUTPUT_NAME:
            tensors.append((name, datatype, [len(predictions)], predictions))
        elif name == PROBA_OUTPUT:
            rows = list(probabilities or [])
            k = len(classes or [])
            tensors.append((name, "FP64", [len(rows), k], [p for row in rows for p in row]))
        elif name == CLASSES_OUTPUT:
            tensors.append((name, datatype, [len(classes or [])], list(classes or [])))
    params: dict[str, Any] = {"request_id": request_id}
    if warnings:
        params["warnings"] = "; ".join(f"row {w['row']}: {w['message']}" for w in warnings)
    answer: list[dict[str, Any]] = []
    payload = {
        "model_name": model_name,
        "model_version": str(version),
        "id": client_id if client_id is not None else request_id,
        "parameters": params,
        "outputs": answer,
    }
    raw = b""
    for name, dt, shape, values in tensors:
        output: dict[str, Any] = {"name": name, "datatype": dt, "shape": shape}
        data = _tensor_data(dt, values)
        if wanted[name]:
            chunk = _tensor_bytes(dt, data)
            output["parameters"] = {"binary_data_size": len(chunk)}
            raw += chunk
        else:
            output["data"] = data
        answer.append(output)
    head = json.dumps(payload, allow_nan=False).encode()
    if not any(wanted.values()):
        return head, {"content-type": "application/json"}
    return head + raw, {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(head)),
    }


# --------------------------------------------------------------------- codec
class V2Codec:
    """Per-request codec for ``POST /v2/models/{name}/infer`` (the router calls decode, then respond)."""

    protocol = "v2"

    def __init__(self, model_name: str, *, non_finite: str = "reject", max_body_bytes: int):
        self.model_name = model_name
        self.non_finite = non_finite
        self.max_body_bytes = max_body_bytes
        self._request: V2Request | None = None
        self._routing: Any = None
        #: whether the request named the ``probabilities`` output (set by :meth:`decode`)
        self.probabilities = False

    def decode(
        self, raw: bytes, headers: Mapping[str, str], routing: Any
    ) -> tuple[list[Any], str | None]:
        kinds = routing.versions[main_version(routing.weights)].bundle.features
        self._routing = routing
        self._request = decode_infer(raw, headers, kinds, max_body_bytes=self.max_body_bytes)
        # naming ``classes`` asks too: a regressor then says it has none, never a shape [0]
        self.probabilities = bool({PROBA_OUTPUT, CLASSES_OUTPUT} & set(self._request.outputs or {}))
        return apply_non_finite_policy(self._request.records, self.non_finite), self._request.key

    def respond(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        from starlette.responses import Response

        request_id = str(payload.get("request_id") or "")
        extra = {"workbench-request-id": request_id} if request_id else {}
        if status == 200 and self._request is not None and self._routing is not None:
            version = int(payload["model_version"])
            bundle = self._routing.versions[version].bundle
            try:
                body, head = encode_infer(
                    model_name=self.model_name,
                    version=version,
                    request_id=request_id,
                    client_id=self._request.client_id,
                    predictions=list(payload["predictions"]),
                    warnings=list(payload.get("warnings") or []),
                    datatype=output_datatype(bundle),
                    binary=self._request.binary_output,
                    outputs=self._request.outputs,
                    probabilities=payload.get("probabilities"),
                    classes=jsonable(list(payload.get("classes") or bundle.classes)),
                )
            except (TypeError, ValueError, KeyError) as exc:
                return error_response(
                    500,
                    f"the answer could not be encoded as a v2 tensor ({type(exc).__name__}: {exc})",
                    extra,
                )
            return Response(body, status_code=200, headers={**head, **extra, **(headers or {})})
        return error_response(
            400 if status == 422 else status,
            str(payload.get("error")),
            {**extra, **(headers or {})},
        )


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    """A v2 error: ``{"error": message}``."""
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status, headers=headers)


# -------------------------------------------------------------------- routing
async def handle(router: Any, request: Any, sub: str) -> Any:
    """Answer one ``/v2...`` request for ``router`` (a Router replica); ``sub`` is the path after the prefix."""
    from starlette.responses import JSONResponse

    from workbench._version import __version__

    parts = [p for p in sub.split("/") if p][1:]  # after "v2"
    method = request.method
    routing = router._routing
    root = (request.scope.get("root_path", "") or "").rstrip("/")

    def need(allowed: str) -> Any:
        if method != allowed:
            return error_response(405, f"use {allowed} for {sub}")
        return None

    if not parts:
        return need("GET") or JSONResponse(
            {"name": "workbench", "version": __version__, "extensions": ["binary_tensor_data"]}
        )
    if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
        if (bad := need("GET")) is not None:
            return bad
        if parts[1] == "live":
            return JSONResponse({"live": True})
        if routing is None:
            return JSONResponse({"ready": False}, status_code=503)
        return JSONResponse({"ready": True})
    if parts[0] != "models" or len(parts) < 2:
        return error_response(404, f"no v2 route {sub!r}; see GET {root}/v2/models/<name>")
    name = parts[1]
    if routing is None:
        return error_response(503, "the router has no model versions yet; deploy one first")
    if name != routing.deployment:
        return error_response(
            404, f"unknown model {name!r}; this endpoint serves {routing.deployment!r}"
        )
    rest = parts[2:]
    version: int | None = None
    if len(rest) >= 2 and rest[0] == "versions":
        try:
            version = int(rest[1])
        except ValueError:
            version = -1
        if version not in routing.versions:
            return error_response(
                404,
                f"model {name!r} has no loaded version {rest[1]!r}; loaded: "
                f"{[str(v) for v in sorted(routing.versions)]}",
            )
        rest = rest[2:]
    if not rest:
        return need("GET") or JSONResponse(model_metadata(name, routing, version))
    if rest == ["ready"]:
        return need("GET") or JSONResponse({"name": name, "ready": True})
    if rest == ["infer"]:
        if (bad := need("POST")) is not None:
            return bad
        if version is not None:
            return error_response(
                400,
                "inference on a pinned version is not offered: the router picks the version by "
                f"traffic weight; POST {root}/v2/models/{name}/infer",
            )
        router._ensure_flusher()
        cfg = router._config
        codec = V2Codec(
            name,
            non_finite=cfg.get("non_finite", "reject"),
            max_body_bytes=int(cfg.get("max_body_bytes") or DEFAULT_MAX_BODY_BYTES),
        )
        return await router._predict(request, codec)
    return error_response(404, f"no v2 route {sub!r}")
