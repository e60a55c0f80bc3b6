"""The gRPC frontend: the bidirectional stream ``/jina.JinaRPC/Call`` on a grpclib server.

It only moves bytes. Each request is read as soon as it arrives and processed in its own task, so a slow
request never holds up reading the next one; a :class:`~aclip.testing._sequencer.ResponseSequencer` is the
stream's only writer. Undecodable request bytes end the call with grpc-status UNKNOWN, as a Jina gateway
does. With ``ssl_context`` the server speaks TLS (the context must offer ALPN ``h2``, see
:func:`~aclip.testing._net.server_tls_context`). With a token set, a call whose ``authorization``
metadata does not equal it is refused with UNAUTHENTICATED before any request is read. On shutdown, calls
in progress end with UNAVAILABLE and every client connection is closed, so clients see the server go away
instead of waiting on a dead socket.

Of the server's :class:`~aclip.testing._faults.Faults` this frontend applies ``grpc_status`` (the call
ends with that status before any request is read) and ``close_after`` (where the stream would carry one
response more, the server resets it with RST_STREAM instead: a grpclib client sees
``StreamTerminatedError``, and loses the responses it had received but not yet read).

Example::

    frontend = GrpcFrontend(ReferenceExecutor(), token=None)
    port = await frontend.start("127.0.0.1", 0)
    ...
    await frontend.close()
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from typing import Optional

import anyio
import anyio.lowlevel
from google.protobuf.message import DecodeError
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.server import Server, Stream

from aclip._pb import jina_pb2
from aclip._wire.protobuf import JINA_CALL, RawBytesCodec
from aclip.testing._dry_run import JINA_DRY_RUN, dry_run_status
from aclip.testing._executor import ReferenceExecutor
from aclip.testing._faults import ResponseBudget
from aclip.testing._net import listen, token_matches
from aclip.testing._sequencer import DEFAULT_HOLD, ResponseSequencer

__all__ = ["GrpcFrontend"]

logger = logging.getLogger("aclip.testing")


class GrpcFrontend:
    """Serves ``/jina.JinaRPC/Call`` for one :class:`ReferenceExecutor` (see the module docstring).

    Example::

        frontend = GrpcFrontend(executor, token="secret", out_of_order=True)
        port = await frontend.start("127.0.0.1", 0)
    """

    def __init__(
        self,
        executor: ReferenceExecutor,
        *,
        token: str | None = None,
        out_of_order: bool = False,
        out_of_order_hold: float = DEFAULT_HOLD,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self._executor = executor
        self._ssl_context = ssl_context
        self._stats = executor.stats
        self._faults = executor.faults
        self._budget = ResponseBudget(executor.faults)
        self._token = token
        self._out_of_order = out_of_order
        self._hold = out_of_order_hold
        self._server: _Server | None = None
        self._closing = False

    def __mapping__(self) -> dict[str, Handler]:
        return {
            JINA_CALL: Handler(self._call, Cardinality.STREAM_STREAM, bytes, bytes),
            JINA_DRY_RUN: Handler(self._dry_run, Cardinality.UNARY_UNARY, bytes, bytes),
        }

    async def _dry_run(self, stream: Stream[bytes, bytes]) -> None:
        """The readiness probe: ``google.protobuf.Empty`` in (unread), a ``jina.StatusProto`` out."""
        with self._stats.track_call():
            self._authorize(stream)
            await stream.recv_message()
            status = await dry_run_status(self._executor)
            await stream.send_message(status.SerializeToString())

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the port actually bound."""
        sock = listen(host, port)
        server = _Server([self], codec=RawBytesCodec())
        try:
            await server.start(sock=sock, ssl=self._ssl_context)
        except BaseException:
            sock.close()
            raise
        self._server = server
        bound: int = sock.getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening, cancel the calls in progress and wait until their handlers have returned."""
        self._closing = True
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server.close_connections()

    async def _call(self, stream: Stream[bytes, bytes]) -> None:
        with self._stats.track_call():
            await self._serve_call(stream)

    async def _serve_call(self, stream: Stream[bytes, bytes]) -> None:
        self._authorize(stream)
        status = self._faults.grpc_status_code
        if status is not None:
            self._stats.add("status_failures")
            raise GRPCError(status, f"{status.name} injected by the reference server (grpc_status)")
        dropped = False

        async def send(message: bytes) -> None:
            nonlocal dropped
            if self._budget.exhausted(stream):
                dropped = True
                tg.cancel_scope.cancel()
                await anyio.lowlevel.checkpoint()  # cancelled here: the sequencer sends nothing more
            await stream.send_message(message)
            self._budget.sent(stream)

        sequencer = ResponseSequencer(send, stats=self._stats, out_of_order=self._out_of_order, hold=self._hold)
        failure: GRPCError | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sequencer.run)
                async for message in stream:
                    try:
                        request = jina_pb2.DataRequestProto.FromString(message)
                    except DecodeError as exc:
                        logger.info("gRPC call from %s: undecodable request", stream.peer.addr())
                        failure = GRPCError(Status.UNKNOWN, f"Unexpected {type(exc)!r}: {exc}")
                        tg.cancel_scope.cancel()
                        break
                    tg.start_soon(self._answer, sequencer, sequencer.received(), request)
                sequencer.end_of_input()
        except anyio.get_cancelled_exc_class():
            if self._closing:  # cancelled by our own shutdown, not by the client: say so
                with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                    await stream.send_trailing_metadata(status=Status.UNAVAILABLE, status_message="server stopped")
            raise
        if dropped:
            self._stats.add("connections_dropped")
            logger.info(
                "gRPC call from %s: reset after %d responses (close_after)",
                stream.peer.addr(),
                self._faults.close_after,
            )
            await stream.cancel()
        elif failure is not None:
            raise failure

    async def _answer(self, sequencer: ResponseSequencer, seq: int, request: jina_pb2.DataRequestProto) -> None:
        response = await self._executor.handle(request)
        sequencer.finished(seq, response.SerializeToString())

    def _authorize(self, stream: Stream[bytes, bytes]) -> None:
        self._stats.saw_headers(stream.metadata.items() if stream.metadata is not None else ())
        if self._token is None:
            return
        given = stream.metadata.get("authorization") if stream.metadata is not None else None
        if not token_matches(given if isinstance(given, str) else None, self._token):
            self._stats.calls_rejected += 1
            logger.info("gRPC call from %s refused: missing or wrong authorization token", stream.peer.addr())
            raise GRPCError(Status.UNAUTHENTICATED, "missing or invalid authorization token")


class _Server(Server):
    """A grpclib server that can also close its client connections when it stops.

    grpclib's ``Server.close`` cancels the running handlers but leaves the connections open; a client then
    waits on a socket nobody serves. We remember each connection's protocol to close its transport.
    """

    def __init__(self, handlers: list[GrpcFrontend], *, codec: RawBytesCodec) -> None:
        super().__init__(handlers, codec=codec)
        self._protocols: weakref.WeakSet[H2Protocol] = weakref.WeakSet()

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        self._protocols.add(protocol)
        return protocol

    async def wait_closed(self) -> None:
        """The handlers end first (sending their trailers), then the connections close, then the listener.

        In that order because since Python 3.12.1 asyncio's ``Server.wait_closed`` also waits for every
        connection to end, which grpclib's order (listener first) would make a wait for the clients.
        """
        handlers = list(self._handlers)
        if handlers:
            await asyncio.wait({asyncio.ensure_future(handler.wait_closed()) for handler in handlers})
        self.close_connections()
        await super().wait_closed()

    def close_connections(self) -> None:
        for protocol in list(self._protocols):
            connection = getattr(protocol, "connection", None)  # set once the connection is made
            if connection is not None:
                connection.close()
