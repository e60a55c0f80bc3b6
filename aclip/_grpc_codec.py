"""A grpclib codec that passes message bytes through untouched.

aclip parses and builds DataRequest messages itself (``_codec``), so both the gRPC transport and the
reference server hand grpclib ready-made bytes and take raw bytes back.
"""

from __future__ import annotations

from typing import Any

from grpclib.encoding.base import CodecBase

__all__ = ["JINA_CALL", "JINA_DRY_RUN", "RawBytesCodec"]

#: The bidirectional streaming method every Jina gateway serves.
JINA_CALL = "/jina.JinaRPC/Call"
#: The gateway's readiness probe: unary, ``google.protobuf.Empty`` in, ``jina.StatusProto`` out.
JINA_DRY_RUN = "/jina.JinaGatewayDryRunRPC/dry_run"


class RawBytesCodec(CodecBase):
    """Messages are ``bytes`` on both sides; content type ``application/grpc`` as protobuf uses."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        if not isinstance(message, (bytes, bytearray, memoryview)):
            raise TypeError(f"RawBytesCodec sends bytes, got {type(message).__name__}")
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> bytes:
        return bytes(data)
