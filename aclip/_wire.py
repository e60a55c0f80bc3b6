"""Wire formats: how a DataRequest message becomes a frame's bytes and back.

gRPC and WebSocket carry serialised protobuf; HTTP carries Jina's JSON. A transport names its format and
the engine serialises and parses with it, so the rest of aclip only ever sees DataRequest messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ._codec import DataRequestProto, parse_response

__all__ = ["WireFormat", "wire_format"]


@dataclass(frozen=True)
class WireFormat:
    """A named pair of functions: request message -> bytes, response bytes -> message."""

    name: str
    serialize: Callable[[DataRequestProto], bytes]
    parse: Callable[[bytes], DataRequestProto]


def _serialize_protobuf(request: DataRequestProto) -> bytes:
    return request.SerializeToString()


def wire_format(name: str) -> WireFormat:
    """The wire format called ``name``: ``"protobuf"`` or ``"json"``."""
    if name == "protobuf":
        return WireFormat("protobuf", _serialize_protobuf, parse_response)
    if name == "json":
        from ._jsonwire import dumps, loads, request_to_json, response_from_json

        return WireFormat(
            "json",
            lambda request: dumps(request_to_json(request)),
            lambda data: response_from_json(loads(data)),
        )
    raise ValueError(f"unknown wire format {name!r}")
