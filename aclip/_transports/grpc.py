"""gRPC transport on grpclib: the bidirectional ``/jina.JinaRPC/Call`` stream, one channel per event loop.

grpclib and OS errors are translated into aclip's errors here and nowhere else.
"""

from __future__ import annotations

import logging
import ssl
from contextlib import asynccontextmanager
from typing import AsyncIterator, Dict, NoReturn, Optional

import anyio
import anyio.lowlevel
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.exceptions import ProtocolError as GrpclibProtocolError

from .._address import ServerAddress
from .._errors import (
    AclipError,
    AuthenticationError,
    ConnectError,
    ProtocolError,
    TLSError,
    TransportError,
)
from .._grpc_codec import JINA_CALL, JINA_DRY_RUN, RawBytesCodec
from .base import DuplexStream, Received, Transport, TransportOptions, too_large_answer

__all__ = ["GrpcTransport"]

_UNREACHABLE = frozenset({Status.UNAVAILABLE})


def _raise_translated(err: BaseException, address: ServerAddress) -> NoReturn:
    """Raise the aclip error for a grpclib/OS error, chained to it."""
    if isinstance(err, AclipError):
        raise err
    if isinstance(err, GRPCError):
        detail = f": {err.message}" if err.message else ""
        if err.status in (Status.UNAUTHENTICATED, Status.PERMISSION_DENIED):
            raise AuthenticationError(f"{address} refused the credentials (gRPC {err.status.name}{detail})") from err
        if err.status in _UNREACHABLE:
            raise ConnectError(f"{address} is unavailable (gRPC {err.status.name}{detail})") from err
        if err.status is Status.UNKNOWN and err.message and "DecodeError" in err.message:
            raise ProtocolError(f"{address} could not decode aclip's request (gRPC UNKNOWN{detail})") from err
        raise TransportError(f"{address} ended the call with gRPC {err.status.name}{detail}") from err
    if isinstance(err, StreamTerminatedError):
        raise TransportError(f"the connection to {address} broke off: {err}") from err
    if isinstance(err, GrpclibProtocolError):
        raise ProtocolError(f"{address} broke the gRPC protocol: {err}") from err
    if isinstance(err, ssl.SSLError):
        raise TLSError(f"TLS with {address} failed: {err}") from err
    if isinstance(err, (ConnectionError, OSError)):
        raise ConnectError(f"cannot connect to {address}: {err}") from err
    raise err


_TRANSLATED = (GRPCError, StreamTerminatedError, GrpclibProtocolError, OSError)
#: Translated by the duplex methods at once. A StreamTerminatedError is left to open_stream: grpclib's exit
#: replaces it with the server's status when one arrived before the reset (an UNAUTHENTICATED refusal, say).
_TRANSLATED_AT_ONCE = (GRPCError, GrpclibProtocolError, OSError)


class _GrpcDuplex(DuplexStream):
    def __init__(
        self, stream: Stream[bytes, bytes], address: ServerAddress, connect_timeout: float, max_message_size: int
    ) -> None:
        self._stream = stream
        self._address = address
        self._connect_timeout = connect_timeout
        self._max_message_size = max_message_size
        self._started = anyio.Event()
        self._ended = False

    async def _start(self) -> None:
        try:
            with anyio.fail_after(self._connect_timeout):
                await self._stream.send_request()
        except TimeoutError:
            raise ConnectError(f"cannot connect to {self._address} within {self._connect_timeout:g} s") from None
        self._started.set()

    async def send(self, request_id: str, frame: bytes) -> None:
        try:
            if not self._started.is_set():
                await self._start()
            await self._stream.send_message(frame)
        except _TRANSLATED_AT_ONCE as err:
            _raise_translated(err, self._address)

    async def end(self) -> None:
        try:
            if not self._started.is_set():
                await self._start()
            if not self._ended:
                self._ended = True
                await self._stream.end()
        except _TRANSLATED_AT_ONCE as err:
            _raise_translated(err, self._address)

    async def receive(self) -> Optional[Received]:
        await self._started.wait()  # grpclib cannot receive before the request headers went out
        try:
            message = await self._stream.recv_message()
            if message is not None:
                if len(message) > self._max_message_size:  # grpclib has read it: checked as early as it can be
                    raise too_large_answer(self._address, len(message), self._max_message_size)
                return None, message
            if not self._ended:
                raise TransportError(f"{self._address} ended the call before aclip had sent all of its requests")
            await self._stream.recv_trailing_metadata()
            return None
        except _TRANSLATED_AT_ONCE as err:
            _raise_translated(err, self._address)


class _DropDebugRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_HPACK_LOGGERS = ("hpack.hpack", "hpack.table")
_hpack_filter = _DropDebugRecords()


def keep_token_out_of_hpack_logs() -> None:
    """hpack logs every HTTP/2 header it encodes or decodes at DEBUG, the authorization token included.

    A client that sends a token therefore silences hpack's DEBUG records (only those), so that turning on
    DEBUG logging never writes the token out.
    """
    for name in _HPACK_LOGGERS:
        logger = logging.getLogger(name)
        if _hpack_filter not in logger.filters:
            logger.addFilter(_hpack_filter)


class GrpcTransport(Transport):
    """Streams over one grpclib Channel, created on first use inside the running event loop.

    The options' headers (the token among them, as ``authorization``) go out as the metadata of every
    call, with the call's own on top. gRPC ignores ``trust_env``: grpclib connects directly.
    """

    def __init__(self, address: ServerAddress, options: TransportOptions) -> None:
        self._address = address
        self._options = options
        self._metadata: Dict[str, str] = dict(options.headers)
        self._ssl = options.ssl_context
        self._channel: Optional[Channel] = None

    def __repr__(self) -> str:
        return f"GrpcTransport({str(self._address)!r})"

    def _get_channel(self) -> Channel:
        if self._channel is None:
            self._channel = Channel(self._address.host, self._address.port, codec=RawBytesCodec(), ssl=self._ssl)
        return self._channel

    @asynccontextmanager
    async def open_stream(self, headers: Optional[Dict[str, str]] = None) -> AsyncIterator[DuplexStream]:
        metadata = {**self._metadata, **headers} if headers else self._metadata
        if "authorization" in metadata:
            keep_token_out_of_hpack_logs()
        stream = self._get_channel().request(JINA_CALL, Cardinality.STREAM_STREAM, bytes, bytes, metadata=metadata)
        options = self._options
        try:
            async with stream:
                yield _GrpcDuplex(stream, self._address, options.connect_timeout, options.max_message_size)
        except _TRANSLATED as err:
            # grpclib's own exit (the trailers after a clean end, or the status behind a reset) and a stream
            # reset met by the duplex methods arrive here.
            _raise_translated(err, self._address)

    async def check_ready(self) -> Optional[str]:
        from .._health import reason_from_proto

        stream = self._get_channel().request(
            JINA_DRY_RUN, Cardinality.UNARY_UNARY, bytes, bytes, metadata=self._metadata
        )
        try:
            async with stream:
                await stream.send_message(b"", end=True)  # google.protobuf.Empty
                answer = await stream.recv_message()
        except _TRANSLATED as err:
            _raise_translated(err, self._address)
        return reason_from_proto(answer or b"")

    async def aclose(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()
            # The socket closes in a callback the loop runs next: let it run before this returns, so a loop
            # shutting down right after (asyncio.run's end) does not leave an unclosed socket behind.
            await anyio.lowlevel.checkpoint()
