"""WebSocket transport on aiohttp: ``GET /`` with subprotocol ``bytes``, one binary frame per DataRequest.

After the last request the client sends the single byte 0x00 ("no more requests"); the server answers
each request with one binary frame, in completion order, then closes the connection with code 1000.

Every wait for a stream — connecting (TCP, TLS, the WebSocket handshake) and closing — ends by the earlier
of its own limit (``connect_timeout``; 5 s to close) and the stream's deadline, asked when the wait starts
(:func:`aclip._deadline.bounded`). The engine never waits for the server's close frame once every answer
has arrived: it leaves the stream, and closing it is bounded as above.

A redirect answering the handshake is not followed (:mod:`._redirects`): it is an HTTPStatusError naming
where it pointed. A refused handshake is an AuthenticationError or HTTPStatusError with the status.

Compression (permessage-deflate) is not offered, so a server must not send compressed frames; aiohttp
refuses those it did not negotiate (3.9 inflates them, but no further than ``max_msg_size``).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator, Dict, Optional

import aiohttp
import anyio

from .._config import ServerAddress
from .._deadline import bounded
from .._exceptions import ConnectError, ProtocolError, TransportError
from ._aiohttp import AiohttpTransport, hide_request_headers, translate_error
from ._closing import refuse_if_closed, reported_as_closed
from .base import DuplexStream, Received, StreamDeadline, no_deadline, too_large_answer
from .http import status_error

#: The frame that tells a Jina gateway no more requests follow.
END_OF_REQUESTS = b"\x00"
#: How long closing may wait for the server's close frame (bounded further by the stream's deadline).
_CLOSE_WAIT = 5.0
_CLOSING = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


class _WebSocketDuplex(DuplexStream):
    def __init__(self, socket: aiohttp.ClientWebSocketResponse, address: ServerAddress, max_message_size: int) -> None:
        self._socket = socket
        self._address = address
        self._max_message_size = max_message_size

    async def send(self, request_id: str, frame: bytes) -> None:
        try:
            await self._socket.send_bytes(frame)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
            raise translate_error(err, self._address) from err

    async def end(self) -> None:
        try:
            await self._socket.send_bytes(END_OF_REQUESTS)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
            raise translate_error(err, self._address) from err

    async def receive(self) -> Optional[Received]:
        message = await self._socket.receive()
        if message.type == aiohttp.WSMsgType.BINARY:
            return None, message.data
        if message.type in _CLOSING:
            return None
        if message.type == aiohttp.WSMsgType.ERROR:
            error = self._socket.exception() or message.data
            if isinstance(error, aiohttp.WebSocketError) and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                raise too_large_answer(self._address, None, self._max_message_size) from error
            raise TransportError(f"the WebSocket connection to {self._address} failed: {error}")
        raise ProtocolError(f"{self._address} sent a {message.type.name} frame where DataRequest frames were expected")


class WebSocketTransport(AiohttpTransport):
    """One WebSocket connection per call, over an aiohttp session reused across calls."""

    schemes = ("ws", "wss")
    path = "/"

    async def check_ready(self) -> Optional[str]:
        """``GET /dry_run``: one empty message out, the status back as one binary frame.

        Bounded by ``connect_timeout`` (to connect) and by the caller (the rest), not by a call's deadline.
        """
        from .._wire.health import reason_from_proto

        with reported_as_closed(self, self._address):
            socket = await self._connect(self._headers, no_deadline, url=self._base_url + "/dry_run")
            try:
                try:
                    await socket.send_bytes(b"")
                    message = await socket.receive()
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
                    raise translate_error(err, self._address) from err
                refuse_if_closed(self, self._address)  # closing the session ends the socket without an error
            finally:
                await _close(socket, no_deadline)
        if message.type == aiohttp.WSMsgType.BINARY:
            return reason_from_proto(message.data)
        if message.type in _CLOSING:
            return f"the gateway closed the readiness probe: {socket.close_code} {message.extra or ''}".strip()
        return f"the readiness answer is a {message.type.name} frame, not a status"

    async def _connect(
        self, headers: Dict[str, str], deadline: StreamDeadline, *, url: Optional[str] = None
    ) -> aiohttp.ClientWebSocketResponse:
        """A socket, by ``connect_timeout`` (a ConnectError) or the stream's deadline (a RequestTimeoutError),
        whichever comes first: a server may accept TCP and never complete the TLS or WebSocket handshake."""
        with bounded(self._connect_timeout, deadline()) as wait:
            try:
                socket = await self._get_session().ws_connect(
                    url or self._url,
                    protocols=("bytes",),
                    headers=headers,
                    max_msg_size=self._options.max_message_size,
                    compress=0,  # no permessage-deflate: nothing to inflate, so nothing to bound
                )
            except aiohttp.WSServerHandshakeError as err:
                hide_request_headers(err)  # it carries the handshake's headers, the token among them
                raise status_error(self._address, err.status, err.message.encode()) from err
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
                raise translate_error(err, self._address) from err
        if wait.expired:
            raise wait.error(
                own_limit=lambda: ConnectError(
                    f"no WebSocket handshake from {self._address} within {self._connect_timeout:g} s"
                ),
                what=f"the WebSocket handshake with {self._address}",
            )
        # A Jina gateway reads the subprotocol but does not echo it back; only another choice is wrong.
        if socket.protocol not in (None, "bytes"):
            await _close(socket, deadline)
            raise ProtocolError(f"{self._address} chose the WebSocket subprotocol {socket.protocol!r}, not 'bytes'")
        return socket

    @asynccontextmanager
    async def open_stream(
        self, headers: Optional[Dict[str, str]] = None, *, deadline: StreamDeadline = no_deadline
    ) -> AsyncIterator[DuplexStream]:
        with reported_as_closed(self, self._address):
            socket = await self._connect(self._headers_with(headers), deadline)
            try:
                yield _WebSocketDuplex(socket, self._address, self._options.max_message_size)
            finally:
                await _close(socket, deadline)


async def _close(socket: aiohttp.ClientWebSocketResponse, deadline: StreamDeadline) -> None:
    """Close the socket, also when the call failed or was cancelled, waiting for the server's close frame
    no longer than ``_CLOSE_WAIT`` or the stream's deadline: past that, aiohttp drops the connection."""
    with anyio.CancelScope(shield=True), bounded(_CLOSE_WAIT, deadline()):
        await socket.close()
