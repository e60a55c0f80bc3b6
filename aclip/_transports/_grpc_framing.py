"""Reading one gRPC message off a grpclib client stream, its size checked before its body is read.

grpclib's ``Stream.recv_message`` reads the 5-byte prefix (compressed flag, big-endian length) and then
``recv_data(length)``, which takes in the whole announced body, and acknowledges it as it goes so that the
server may keep sending, before anyone can look at its size: an answer announcing 4 GiB grows the client
for as long as the server keeps sending, and a 50 MB answer over a 1 MB ``max_message_size`` is read in
full before it is refused. This reader does what ``recv_message`` does around the read (receives the
initial metadata first, and reads inside grpclib's ``_wrapper``, which turns a reset stream or a lost
connection into ``StreamTerminatedError``), but checks the prefix at once: a set compressed flag, or a
length over the limit, fails before a byte of the body is read, so at most one HTTP/2 flow-control window
(4 MiB by default) of an oversized answer is ever buffered. A stream that ends in the middle of a message
is a :class:`~aclip.ProtocolError` naming the server, not grpclib's bare AssertionError.

Not carried over: grpclib's message counters and its ``RecvMessage`` event (channelz statistics and event
listeners, neither of which aclip uses).

This relies on grpclib internals that are not public API: ``Stream._stream`` (the HTTP/2 stream, whose
``recv_data(size)`` returns ``b""`` at the end of the stream and raises AssertionError when it ends
short), ``Stream._wrapper`` and ``Stream._recv_initial_metadata_done``. Hence the narrow grpclib pin in
pyproject.toml, and ``tests/test_grpc_hostile.py::test_grpclib_private_api_is_what_the_framing_reader_expects``,
which says what changed when a grpclib release moves them.
"""

from __future__ import annotations

import struct
from typing import Any, Optional

from grpclib.client import Stream

from .._config import ServerAddress
from .._exceptions import ProtocolError
from .base import too_large_answer

#: The gRPC length prefix: the compressed flag (one byte) and the message length (big-endian uint32).
_PREFIX = struct.Struct(">BI")
_COMPRESSED = 1


async def read_message(stream: Stream[Any, Any], address: ServerAddress, max_message_size: int) -> Optional[bytes]:
    """The next message's bytes, or None once the server has ended the stream between two messages.

    Raises MessageTooLargeError as soon as the prefix announces more than ``max_message_size`` bytes, and
    ProtocolError for a compressed message or one cut short by the end of the stream.
    """
    if not stream._recv_initial_metadata_done:
        await stream.recv_initial_metadata()
    with stream._wrapper:
        prefix = await _read(stream, _PREFIX.size, address, what="a gRPC message prefix")
        if not prefix:
            return None
        flag, length = _PREFIX.unpack(prefix)
        if flag == _COMPRESSED:
            raise ProtocolError(
                f"{address} sent a compressed gRPC message: aclip does not accept compressed gRPC messages; "
                "it offers no grpc-accept-encoding, so turn the server's (or its proxy's) compression off"
            )
        if flag != 0:
            raise ProtocolError(f"{address} sent a gRPC message with an invalid compressed flag {flag}")
        if length > max_message_size:
            raise too_large_answer(address, length, max_message_size)
        if length == 0:
            return b""
        body = await _read(stream, length, address, what=f"a gRPC message of {length} bytes")
        if not body:  # the stream ended right after the prefix
            raise _cut_short(address, what=f"a gRPC message of {length} bytes")
        return body


async def _read(stream: Stream[Any, Any], size: int, address: ServerAddress, *, what: str) -> bytes:
    """Exactly ``size`` bytes, or ``b""`` when the stream had ended before the first of them."""
    try:
        data: bytes = await stream._stream.recv_data(size)
    except AssertionError:  # grpclib's Buffer: the stream ended with fewer bytes left than asked for
        raise _cut_short(address, what=what) from None
    if data and len(data) != size:
        raise _cut_short(address, what=what)
    return data


def _cut_short(address: ServerAddress, *, what: str) -> ProtocolError:
    return ProtocolError(f"{address} ended the stream in the middle of a gRPC message: {what} was cut short")
