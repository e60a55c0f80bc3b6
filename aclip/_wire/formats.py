"""Wire formats: how a DataRequest message becomes a frame's bytes and back.

gRPC and WebSocket carry serialised protobuf (:data:`PROTOBUF`); HTTP carries Jina's JSON (:data:`JSON`).
Each transport names the format of its frames as a class attribute, and the engine serialises and parses
with it, so the rest of aclip only ever sees DataRequest messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .protobuf import DataRequestProto, parse_response


@dataclass(frozen=True)
class WireFormat:
    """A named pair of functions: request message -> bytes, response bytes -> message."""

    name: str
    serialize: Callable[[DataRequestProto], bytes]
    parse: Callable[[bytes], DataRequestProto]


def _serialize_protobuf(request: DataRequestProto) -> bytes:
    return request.SerializeToString()


def _serialize_json(request: DataRequestProto) -> bytes:
    from .json import dumps, request_to_json

    return dumps(request_to_json(request))


def _parse_json(data: bytes) -> DataRequestProto:
    from .json import loads, response_from_json

    return response_from_json(loads(data))


#: Serialised protobuf DataRequests (gRPC, WebSocket).
PROTOBUF = WireFormat("protobuf", _serialize_protobuf, parse_response)
#: Jina's JSON DataRequests (HTTP); the JSON codec loads on first use.
JSON = WireFormat("json", _serialize_json, _parse_json)
