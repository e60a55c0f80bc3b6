"""gRPC transport on grpclib: the bidirectional ``/jina.JinaRPC/Call`` stream, one channel per event loop.

grpclib and OS errors are translated into aclip's errors here and nowhere else. grpclib waits without a
bound (for the connection, and for the trailers when a stream is left), so every such wait here runs
under :func:`aclip._deadline.bounded`: its own limit, or the deadline of the request it serves if that
comes first. Answers are read by :mod:`._grpc_framing`, which refuses one over ``max_message_size`` from
its length prefix, before its body is read.
"""

from __future__ import annotations

import logging
import ssl
from contextlib import asynccontextmanager, contextmanager
from typing import AsyncIterator, Callable, Dict, Iterator, NoReturn, Optional

import anyio
import anyio.lowlevel
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.exceptions import ProtocolError as GrpclibProtocolError

from .._config import ServerAddress
from .._deadline import bounded
from .._exceptions import (
    AclipError,
    AuthenticationError,
    ConnectError,
    ProtocolError,
    TLSError,
    TransportError,
)
from .._wire.protobuf import JINA_CALL, JINA_DRY_RUN, RawBytesCodec
from ._closing import refuse_if_closed, reported_as_closed
from ._grpc_framing import read_message
from .base import DuplexStream, Received, StreamDeadline, Transport, TransportOptions, no_deadline

logger = logging.getLogger("aclip")

#: Seconds a stream waits for the server's trailers once the server has nothing more to say (every answer
#: arrived, or it ended the stream), unless the request's deadline comes first. A server that sends no
#: trailers is then reset: the answers are in, so the call does not fail for it.
TRAILERS_GRACE = 5.0

#: The most a readiness answer (a status message of a few bytes) may announce before it is refused.
_READINESS_ANSWER_LIMIT = 1024 * 1024
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


class _TrailersGivenUp(Exception):
    """Raised inside grpclib's stream context to leave it without its unbounded wait for the trailers
    (grpclib's exit waits only when no error is propagating, and resets the stream on the way out)."""


class _GrpcDuplex(DuplexStream):
    def __init__(
        self,
        stream: Stream[bytes, bytes],
        address: ServerAddress,
        options: TransportOptions,
        deadline: StreamDeadline,
        still_open: Callable[[], None],
    ) -> None:
        self._stream = stream
        self._address = address
        self._still_open = still_open
        self._connect_timeout = options.connect_timeout
        self._max_message_size = options.max_message_size
        self._deadline = deadline
        self._started = anyio.Event()
        self._ended = False
        self._trailers_waited = False
        self._trailers_missing = False  # the server sent none within the bound: the stream is to be reset

    async def _start(self) -> None:
        with bounded(self._connect_timeout, self._deadline()) as wait:
            await self._stream.send_request()
        if wait.expired:
            raise wait.error(
                own_limit=lambda: ConnectError(f"cannot connect to {self._address} within {self._connect_timeout:g} s"),
                what=f"connecting to {self._address}",
            )
        self._still_open()  # a connection grpclib completed after the client's close is not used
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
            message = await read_message(self._stream, self._address, self._max_message_size)
            if message is not None:
                return None, message
            if not self._ended:
                raise TransportError(f"{self._address} ended the call before aclip had sent all of its requests")
            await self.wait_for_trailers()
            return None
        except _TRANSLATED_AT_ONCE as err:
            _raise_translated(err, self._address)

    async def wait_for_trailers(self) -> None:
        """Receive the trailers (a non-OK status in them raises), waiting at most TRAILERS_GRACE seconds and
        never past the deadline; when they do not come, one DEBUG line says so and the stream is given up
        (:meth:`finish` leaves it through a reset).

        Only called once the server has nothing more to send: every answer arrived, or it ended the stream.
        """
        if self._trailers_waited or not self._started.is_set():
            return
        self._trailers_waited = True
        with bounded(TRAILERS_GRACE, self._deadline()) as wait:
            if not self._stream._recv_initial_metadata_done:
                await self._stream.recv_initial_metadata()
            await self._stream.recv_trailing_metadata()
        if wait.expired:
            self._trailers_missing = True
            logger.debug(
                "%s sent no gRPC trailers within %s once its answers were in; the stream is given up without them",
                self._address,
                f"{TRAILERS_GRACE:g} s" if wait.by_own_limit else "the request's deadline",
            )

    async def finish(self) -> None:
        """Before a clean exit from grpclib's stream: wait for the trailers as far as the bounds allow,
        and raise _TrailersGivenUp when they did not come, so that grpclib's exit does not wait again."""
        await self.wait_for_trailers()
        if self._trailers_missing:
            raise _TrailersGivenUp


class _DropDebugRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_HPACK_LOGGERS = ("hpack.hpack", "hpack.table")
_hpack_filter = _DropDebugRecords()


def keep_headers_out_of_hpack_logs() -> None:
    """hpack logs every HTTP/2 header it encodes or decodes at DEBUG, values included: the token, and any
    other header that may carry a credential.

    A transport that sends headers therefore silences hpack's DEBUG records (only those, process-wide, and
    once: the filter is installed before the first request, so no request and no readiness probe can
    write a header out, whatever logging is turned on later).
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
        if self._metadata:
            keep_headers_out_of_hpack_logs()

    def __repr__(self) -> str:
        return f"GrpcTransport({str(self._address)!r})"

    def _get_channel(self) -> Channel:
        refuse_if_closed(self, self._address)
        if self._channel is None:
            self._channel = Channel(self._address.host, self._address.port, codec=RawBytesCodec(), ssl=self._ssl)
        return self._channel

    @asynccontextmanager
    async def open_stream(
        self, headers: Optional[Dict[str, str]] = None, *, deadline: StreamDeadline = no_deadline
    ) -> AsyncIterator[DuplexStream]:
        metadata = {**self._metadata, **headers} if headers else self._metadata
        if headers:
            keep_headers_out_of_hpack_logs()
        with reported_as_closed(self, self._address), self._closed_after_use() as channel:
            stream = channel.request(JINA_CALL, Cardinality.STREAM_STREAM, bytes, bytes, metadata=metadata)
            duplex = _GrpcDuplex(stream, self._address, self._options, deadline, self._still_open)
            try:
                async with stream:
                    yield duplex
                    await duplex.finish()  # only on a clean exit: with an error propagating grpclib does not wait
            except _TrailersGivenUp:
                pass  # grpclib's exit has reset the stream; the answers were all in
            except _TRANSLATED as err:
                # grpclib's own exit (the trailers after a clean end, or the status behind a reset) and a stream
                # reset met by the duplex methods arrive here.
                _raise_translated(err, self._address)

    async def check_ready(self) -> Optional[str]:
        from .._wire.health import reason_from_proto

        with reported_as_closed(self, self._address), self._closed_after_use() as channel:
            stream = channel.request(JINA_DRY_RUN, Cardinality.UNARY_UNARY, bytes, bytes, metadata=self._metadata)
            try:
                async with stream:
                    await stream.send_message(b"", end=True)  # google.protobuf.Empty
                    self._still_open()
                    # A status is a few bytes: a server that announces more is not buffered whole.
                    limit = min(_READINESS_ANSWER_LIMIT, self._options.max_message_size)
                    answer = await read_message(stream, self._address, limit)
            except _TRANSLATED as err:
                _raise_translated(err, self._address)
        return reason_from_proto(answer or b"")

    def _still_open(self) -> None:
        """Called once a stream's connection is up: ClientClosedError when the transport was closed meanwhile."""
        refuse_if_closed(self, self._address)

    @contextmanager
    def _closed_after_use(self) -> Iterator[Channel]:
        """The channel for one stream; closed again when the stream ends after the transport was closed.

        grpclib connects when a stream first sends, and :meth:`aclose` closing the channel meanwhile does not
        stop that: the connection it completes would be used (:meth:`_still_open` refuses it) and left open,
        with nobody to close it (closed here).
        """
        channel = self._get_channel()
        try:
            yield channel
        finally:
            if self.closed:
                channel.close()

    async def aclose(self) -> None:
        self.mark_closed()
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()
            # The socket closes in a callback the loop runs next: let it run before this returns, so a loop
            # shutting down right after (asyncio.run's end) does not leave an unclosed socket behind.
            await anyio.lowlevel.checkpoint()
