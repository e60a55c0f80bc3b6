"""WebSocket transport on aiohttp: ``GET /`` with subprotocol ``bytes``, one binary frame per DataRequest.

After the last request the client sends the single byte 0x00 ("no more requests"); the server answers
each request with one binary frame, in completion order, then closes the connection with code 1000.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator, Dict, Optional

import aiohttp
import anyio

from .._address import ServerAddress
from .._errors import ConnectError, ProtocolError, TransportError
from ._aiohttp import AiohttpTransport, translate_error
from .base import DuplexStream, Received, too_large_answer
from .http import status_error

__all__ = ["WebSocketTransport"]

#: The frame that tells a Jina gateway no more requests follow.
END_OF_REQUESTS = b"\x00"
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
        """``GET /dry_run``: one empty message out, the status back as one binary frame."""
        from .._health import reason_from_proto

        socket = await self._connect(self._headers, url=self._base_url + "/dry_run")
        try:
            try:
                await socket.send_bytes(b"")
                message = await socket.receive()
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
                raise translate_error(err, self._address) from err
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_WAIT):
                await socket.close()
        if message.type == aiohttp.WSMsgType.BINARY:
            return reason_from_proto(message.data)
        if message.type in _CLOSING:
            return f"the gateway closed the readiness probe: {socket.close_code} {message.extra or ''}".strip()
        return f"the readiness answer is a {message.type.name} frame, not a status"

    async def _connect(self, headers: Dict[str, str], *, url: Optional[str] = None) -> aiohttp.ClientWebSocketResponse:
        try:
            with anyio.fail_after(self._connect_timeout):  # a server that never completes the handshake
                socket = await self._get_session().ws_connect(
                    url or self._url,
                    protocols=("bytes",),
                    headers=headers,
                    max_msg_size=self._options.max_message_size,
                )
        except TimeoutError:
            raise ConnectError(
                f"no WebSocket handshake from {self._address} within {self._connect_timeout:g} s"
            ) from None
        except aiohttp.WSServerHandshakeError as err:
            raise status_error(self._address, err.status, err.message.encode()) from err
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
            raise translate_error(err, self._address) from err
        # A Jina gateway reads the subprotocol but does not echo it back; only another choice is wrong.
        if socket.protocol not in (None, "bytes"):
            await socket.close()
            raise ProtocolError(f"{self._address} chose the WebSocket subprotocol {socket.protocol!r}, not 'bytes'")
        return socket

    @asynccontextmanager
    async def open_stream(self, headers: Optional[Dict[str, str]] = None) -> AsyncIterator[DuplexStream]:
        socket = await self._connect(self._headers_with(headers))
        try:
            yield _WebSocketDuplex(socket, self._address, self._options.max_message_size)
        finally:
            # Also when the call failed or was cancelled: close within a bound, whatever the server does.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_WAIT):
                await socket.close()
