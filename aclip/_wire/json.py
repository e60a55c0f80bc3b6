"""DataRequest messages <-> the JSON that Jina's HTTP gateway speaks. Pure functions, no I/O.

The JSON shape, as a real gateway speaks it: a request body is ``{"header": {"request_id", "exec_endpoint"},
"parameters": {...}, "data": [docs], "exec_endpoint": "..."}``; a response body is ``{"header":
{"requestId", "status", "execEndpoint", "targetExecutor"}, "parameters", "routes": [{"executor",
"startTime", "endTime", "status"}], "data": [docs]}``. Header keys are camelCase in responses, document
keys snake_case everywhere; blobs are base64, tensors and embeddings nested number lists (their dtype is
lost: embeddings are read back as float32), timestamps ISO 8601, and a score of 0.0 may come as null.

The client sends requests and reads answers; the reference server's side (reading requests, writing
answers) is :mod:`aclip.testing._json`, built on these functions. Everything is converted to and from
the same protobuf messages the gRPC and WebSocket transports carry, so the rest of aclip sees one type.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from .._exceptions import JsonError
from .._pb.docarray_pb2 import DocumentProto, NamedScoreProto, NdArrayProto
from .._pb.jina_pb2 import DataRequestProto, RouteProto, StatusProto
from .protobuf import decode_ndarray, encode_ndarray

_STRING_FIELDS = ("id", "parent_id", "mime_type", "uri", "modality")
_UINT_FIELDS = ("granularity", "adjacency")
_FLOAT_FIELDS = ("weight", "offset")


def stdlib_dumps(value: Any) -> bytes:
    """Serialise to compact UTF-8 JSON with the standard library."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def stdlib_loads(data: bytes) -> Any:
    """Parse JSON with the standard library; malformed input is a JsonError."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise JsonError(f"not JSON: {err}") from err


try:  # orjson is an optional extra ("aclip[fast]"): several times faster on the embeddings' float lists
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    dumps = stdlib_dumps
    loads = stdlib_loads
else:

    def dumps(value: Any) -> bytes:
        """Serialise to compact UTF-8 JSON."""
        return orjson.dumps(value)

    def loads(data: bytes) -> Any:
        """Parse JSON; malformed input is a JsonError."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as err:
            raise JsonError(f"not JSON: {err}") from err


# ---- protobuf -> JSON ------------------------------------------------------------------------------


def _struct_to_json(struct: Struct) -> Dict[str, Any]:
    return json_format.MessageToDict(struct)


def _score_to_json(score: NamedScoreProto) -> Dict[str, Any]:
    return {
        "value": score.value or None,
        "op_name": score.op_name or None,
        "description": score.description or None,
        "ref_id": score.ref_id or None,
    }


def document_to_json(doc: DocumentProto) -> Dict[str, Any]:
    """A document as JSON, with only the keys it sets (a gateway writes the others as null)."""
    out: Dict[str, Any] = {}
    for name in _STRING_FIELDS:
        value = getattr(doc, name)
        if value:
            out[name] = value
    for name in (*_UINT_FIELDS, *_FLOAT_FIELDS):
        value = getattr(doc, name)
        if value:
            out[name] = value
    content = doc.WhichOneof("content")
    if content == "text":
        out["text"] = doc.text
    elif content == "blob":
        out["blob"] = base64.b64encode(doc.blob).decode("ascii")
    elif content == "tensor":
        out["tensor"] = decode_ndarray(doc.tensor, what="a tensor").tolist()
    if doc.HasField("embedding"):
        out["embedding"] = decode_ndarray(doc.embedding, what="an embedding").tolist()
    if doc.location:
        out["location"] = list(doc.location)
    if doc.HasField("tags"):
        out["tags"] = _struct_to_json(doc.tags)
    if doc.scores:
        out["scores"] = {name: _score_to_json(score) for name, score in doc.scores.items()}
    if doc.evaluations:
        out["evaluations"] = {name: _score_to_json(score) for name, score in doc.evaluations.items()}
    if doc.chunks:
        out["chunks"] = [document_to_json(chunk) for chunk in doc.chunks]
    if doc.matches:
        out["matches"] = [document_to_json(match) for match in doc.matches]
    return out


def request_to_json(request: DataRequestProto) -> Dict[str, Any]:
    """The POST /post body for a request (documents with only their set keys)."""
    endpoint = request.header.exec_endpoint
    body: Dict[str, Any] = {
        "header": {"request_id": request.header.request_id, "exec_endpoint": endpoint},
        "data": [document_to_json(doc) for doc in request.data.docs.docs],
        "exec_endpoint": endpoint,
    }
    if request.HasField("parameters"):
        body["parameters"] = _struct_to_json(request.parameters)
    return body


# ---- JSON -> protobuf ------------------------------------------------------------------------------


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise JsonError(f"{where} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JsonError(f"{where} must be a number, got {type(value).__name__}")
    return float(value)


def _struct_from_json(value: Any, target: Struct, where: str) -> None:
    try:
        target.update(_expect(value, dict, where))
    except (ValueError, TypeError) as err:
        raise JsonError(f"{where} is not a JSON object of plain values: {err}") from err


def _array_from_json(value: Any, target: NdArrayProto, where: str, dtype: Optional[type]) -> None:
    """A JSON number list as an array of ``dtype`` (embeddings: float32, as the gRPC wire carries them).

    A JSON number is a double: one beyond float32's range (1e300) becomes inf here without a warning, and
    null becomes NaN. Neither is refused here: the result handlers refuse embeddings that are not finite
    as float32 whatever the wire (:func:`aclip._wire.protobuf.check_embeddings`), so both wires share one rule.
    """
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(_expect(value, list, where), dtype=dtype)
    except (ValueError, TypeError) as err:
        raise JsonError(f"{where} must be a (nested) list of numbers: {err}") from err
    if array.dtype.kind not in "iuf":
        raise JsonError(f"{where} must be a (nested) list of numbers")
    encode_ndarray(array, target)


def _score_from_json(value: Any, target: NamedScoreProto, where: str) -> None:
    score = _expect(value, dict, where)
    raw = score.get("value")
    target.value = 0.0 if raw is None else _number(raw, f"{where}.value")
    for key in ("op_name", "description", "ref_id"):
        text = score.get(key)
        if text is not None:
            setattr(target, key, _expect(text, str, f"{where}.{key}"))


def document_from_json(value: Any, target: DocumentProto, where: str = "document") -> None:
    """Fill ``target`` from a JSON document; null keys are unset, anything misshapen is a JsonError."""
    try:
        _fill_document(value, target, where)
    except JsonError:
        raise
    except (ValueError, TypeError) as err:  # out-of-range numbers, unencodable strings, ...
        raise JsonError(f"{where} cannot be read: {err}") from err


def _fill_document(value: Any, target: DocumentProto, where: str) -> None:
    doc = _expect(value, dict, where)
    for key, item in doc.items():
        if item is None:
            continue
        at = f"{where}.{key}"
        if key in _STRING_FIELDS or key == "text":
            setattr(target, key, _expect(item, str, at))
        elif key in _UINT_FIELDS:
            setattr(target, key, int(_number(item, at)))
        elif key in _FLOAT_FIELDS:
            setattr(target, key, _number(item, at))
        elif key == "blob":
            try:
                target.blob = base64.b64decode(_expect(item, str, at), validate=True)
            except (binascii.Error, ValueError) as err:
                raise JsonError(f"{at} must be base64: {err}") from err
        elif key == "tensor":
            _array_from_json(item, target.tensor, at, None)
        elif key == "embedding":
            _array_from_json(item, target.embedding, at, np.float32)
        elif key == "location":
            target.location.extend(_number(x, at) for x in _expect(item, list, at))
        elif key == "tags":
            _struct_from_json(item, target.tags, at)
        elif key in ("scores", "evaluations"):
            scores = getattr(target, key)
            for name, score in _expect(item, dict, at).items():
                _score_from_json(score, scores[name], f"{at}[{name!r}]")
        elif key in ("chunks", "matches"):
            children = getattr(target, key)
            for index, child in enumerate(_expect(item, list, at)):
                _fill_document(child, children.add(), f"{at}[{index}]")
        # unknown keys (e.g. "_metadata") are ignored, as a gateway does


def _documents_from_json(value: Any, target: DataRequestProto, where: str) -> None:
    docs = target.data.docs.docs
    for index, doc in enumerate(_expect(value, list, where)):
        document_from_json(doc, docs.add(), f"{where}[{index}]")


def _timestamp_from_json(value: Any, target: Timestamp, where: str) -> None:
    text = _expect(value, str, where)
    try:
        moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError as err:
        raise JsonError(f"{where} is not an ISO 8601 time: {text!r}") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    target.FromDatetime(moment)


def _status_from_json(value: Any, target: StatusProto, where: str) -> None:
    status = _expect(value, dict, where)
    target.code = int(_number(status.get("code") or 0, f"{where}.code"))  # type: ignore[assignment]
    target.description = _expect(status.get("description") or "", str, f"{where}.description")
    exception = status.get("exception")
    if exception is not None:
        _expect(exception, dict, f"{where}.exception")
        target.exception.name = str(exception.get("name") or "")
        target.exception.executor = str(exception.get("executor") or "")
        target.exception.args.extend(str(arg) for arg in exception.get("args") or [])
        target.exception.stacks.extend(str(line) for line in exception.get("stacks") or [])


def _first(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return None


def response_from_json(value: Any) -> DataRequestProto:
    """Read a gateway's answer (camelCase or snake_case header keys) into a DataRequest message."""
    body = _expect(value, dict, "the answer")
    response = DataRequestProto()
    header = body.get("header")
    header = {} if header is None else _expect(header, dict, "header")
    response.header.request_id = str(_first(header, "requestId", "request_id") or "")
    endpoint = _first(header, "execEndpoint", "exec_endpoint")
    if endpoint is not None:
        response.header.exec_endpoint = _expect(endpoint, str, "header.execEndpoint")
    if header.get("status") is not None:
        _status_from_json(header["status"], response.header.status, "header.status")
    if body.get("parameters") is not None:
        _struct_from_json(body["parameters"], response.parameters, "parameters")
    for index, route in enumerate(_expect(body.get("routes") or [], list, "routes")):
        _route_from_json(route, response.routes.add(), f"routes[{index}]")
    _documents_from_json(body.get("data") or [], response, "data")
    return response


def _route_from_json(value: Any, target: RouteProto, where: str) -> None:
    route = _expect(value, dict, where)
    target.executor = str(route.get("executor") or "")
    converters: List[tuple[str, Callable[[Any, Any, str], None], Any]] = [
        ("startTime", _timestamp_from_json, target.start_time),
        ("endTime", _timestamp_from_json, target.end_time),
        ("status", _status_from_json, target.status),
    ]
    for key, convert, field in converters:
        raw = _first(route, key, _snake(key))
        if raw is not None:
            convert(raw, field, f"{where}.{key}")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
