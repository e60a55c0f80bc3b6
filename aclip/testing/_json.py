"""The server's side of Jina's HTTP JSON: requests read, answers written (the client's side is in
:mod:`aclip._wire.json`).

The reference server's HTTP and WebSocket frontends read a POST body into a DataRequest message
(:func:`request_from_json`, the endpoint key camelCase or not) and write an answer as a gateway does
(:func:`response_to_json`: a camelCase header, every document key present, unset ones as null).

Example::

    >>> from aclip._pb import jina_pb2
    >>> request = request_from_json({"data": [{"text": "hi"}], "exec_endpoint": "/encode"})
    >>> sorted(response_to_json(request)["header"])
    ['execEndpoint', 'requestId', 'status', 'targetExecutor']
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, Optional

from google.protobuf.timestamp_pb2 import Timestamp

from aclip._pb.docarray_pb2 import DocumentProto
from aclip._pb.jina_pb2 import DataRequestProto, StatusProto
from aclip._wire.json import _documents_from_json, _expect, _struct_from_json, _struct_to_json, document_to_json

#: Every key of a document as a gateway writes it, in its order.
_DOCUMENT_KEYS = (
    "id",
    "parent_id",
    "granularity",
    "adjacency",
    "blob",
    "tensor",
    "mime_type",
    "text",
    "weight",
    "uri",
    "tags",
    "offset",
    "location",
    "embedding",
    "modality",
    "evaluations",
    "scores",
    "chunks",
    "matches",
)


def _timestamp_to_json(stamp: Timestamp) -> str:
    moment = datetime.datetime.fromtimestamp(stamp.seconds, tz=datetime.timezone.utc)
    return moment.replace(microsecond=stamp.nanos // 1000).isoformat()


def _status_to_json(status: StatusProto) -> Optional[Dict[str, Any]]:
    if status.code == StatusProto.SUCCESS and not status.description:
        return None
    exception = status.exception
    return {
        "code": int(status.code),
        "description": status.description,
        "exception": {
            "name": exception.name,
            "args": list(exception.args),
            "stacks": list(exception.stacks),
            "executor": exception.executor,
        },
    }


def _full_document(doc: DocumentProto) -> Dict[str, Any]:
    """A document as a gateway writes it: every key present (unset ones as null), its children's too."""
    out: Dict[str, Any] = {**dict.fromkeys(_DOCUMENT_KEYS), **document_to_json(doc)}
    for key, children in (("chunks", doc.chunks), ("matches", doc.matches)):
        if children:
            out[key] = [_full_document(child) for child in children]
    return out


def response_to_json(response: DataRequestProto) -> Dict[str, Any]:
    """The body a gateway answers a POST with: camelCase header, every document key present."""
    header = response.header
    return {
        "header": {
            "requestId": header.request_id,
            "status": _status_to_json(header.status) if header.HasField("status") else None,
            "execEndpoint": header.exec_endpoint,
            "targetExecutor": header.target_executor,
        },
        "parameters": _struct_to_json(response.parameters) if response.HasField("parameters") else None,
        "routes": [
            {
                "executor": route.executor,
                "startTime": _timestamp_to_json(route.start_time) if route.HasField("start_time") else None,
                "endTime": _timestamp_to_json(route.end_time) if route.HasField("end_time") else None,
                "status": _status_to_json(route.status) if route.HasField("status") else None,
            }
            for route in response.routes
        ],
        "data": [_full_document(doc) for doc in response.data.docs.docs],
    }


def request_from_json(value: Any) -> DataRequestProto:
    """Read a POST /post body (what the reference server receives); the endpoint key may be camelCase."""
    body = _expect(value, dict, "the body")
    request = DataRequestProto()
    header = body.get("header")
    header = {} if header is None else _expect(header, dict, "header")
    request.header.request_id = _expect(header.get("request_id") or "", str, "header.request_id")
    endpoint = body.get("exec_endpoint") or body.get("execEndpoint") or header.get("exec_endpoint")
    request.header.exec_endpoint = _expect(endpoint or "/", str, "exec_endpoint")
    if body.get("parameters") is not None:
        _struct_from_json(body["parameters"], request.parameters, "parameters")
    _documents_from_json(body.get("data") or [], request, "data")
    return request
