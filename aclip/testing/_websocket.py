"""The WebSocket frontend: Jina's streaming endpoint ``GET /`` on an aiohttp application.

The client picks the framing with its subprotocol. ``bytes``: every binary frame is one serialised
``DataRequestProto`` and the single byte ``0x00`` ends the input; each answer is one binary frame.
``json`` (also what a client offering no known subprotocol gets): text frames with the HTTP body shape,
``{}`` as the end marker, answers as text frames whose header and route keys are snake_case (protobuf's
own JSON names) while the documents look as they do over HTTP. A JSON request keeps its ``request_id``
(one without gets a fresh one), documents without an ``id`` get a fresh one. Like the real gateway, the server does not
echo the subprotocol in its 101 answer.

Frames are read as soon as they arrive and each request is processed in its own task; a
:class:`~aclip.testing._sequencer.ResponseSequencer` sends the answers (completion order, or pairs
swapped with ``out_of_order``). Once the input has ended and every request is answered, the server closes
with code 1000. A frame it cannot decode (or of the other subprotocol's type) drops the connection without
a close frame, as the real gateway does (the client sees 1006). When the server stops, open connections
are closed with 1001. Without the right ``Authorization`` header the handshake is refused with 401.

With the server's ``close_after`` fault (:mod:`aclip.testing._faults`), where a connection would carry one
response more the server closes the TCP connection instead, without a close frame, after the responses
already sent have been flushed: the client reads them, then sees the connection end abnormally (1006).

Example::

    frontend = WebSocketFrontend(ReferenceExecutor(), out_of_order=True)
    port = await frontend.start("127.0.0.1", 0)
    # ws://127.0.0.1:<port>/ with Sec-WebSocket-Protocol: bytes
    await frontend.close()
"""

from __future__ import annotations

import enum
import logging
import ssl
from typing import Any, Optional

import anyio
import anyio.lowlevel
from aiohttp import WSMsgType, hdrs, web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from multidict import CIMultiDict

from aclip._exceptions import JsonError
from aclip._pb import jina_pb2
from aclip._wire.json import dumps, loads
from aclip.testing._dry_run import dry_run_status
from aclip.testing._executor import ReferenceExecutor
from aclip.testing._json import request_from_json, response_to_json
from aclip.testing._sequencer import DEFAULT_HOLD, ResponseSequencer
from aclip.testing._web import INLINE_MAX_BYTES, MAX_MESSAGE_SIZE, WebFrontend, assign_ids, off_loop

__all__ = ["END_OF_INPUT", "WebSocketFrontend", "response_to_ws_json"]

logger = logging.getLogger("aclip.testing")

#: The binary frame (subprotocol ``bytes``) by which a client says it sends no more requests.
END_OF_INPUT = b"\x00"
#: Seconds the server waits for the client's close frame after sending its own.
CLOSE_TIMEOUT = 2.0


class _Outcome(enum.Enum):
    DONE = "every request answered"
    DROP = "undecodable frame"
    GONE = "the client went away"
    CUT = "close_after responses sent"


class _Undecodable(Exception):
    """A frame that is not a request: the connection is dropped."""


class WebSocketFrontend(WebFrontend):
    """Serves Jina's WebSocket endpoint for one :class:`ReferenceExecutor` (see the module docstring).

    Example::

        frontend = WebSocketFrontend(executor, token="s3cret", out_of_order=True)
        port = await frontend.start("127.0.0.1", 0)
    """

    protocol = "websocket"

    def __init__(
        self,
        executor: ReferenceExecutor,
        *,
        token: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        out_of_order: bool = False,
        out_of_order_hold: float = DEFAULT_HOLD,
    ) -> None:
        super().__init__(executor, token=token, ssl_context=ssl_context)
        self._out_of_order = out_of_order
        self._hold = out_of_order_hold

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._connect)
        app.router.add_get("/dry_run", self._dry_run)

    async def _dry_run(self, request: web.Request) -> web.StreamResponse:
        """The readiness probe: one message in (its content unread), the status out, then close."""
        ws = web.WebSocketResponse(compress=False, timeout=CLOSE_TIMEOUT)
        await ws.prepare(request)
        with self.cancellable():
            await ws.receive()
            status = await dry_run_status(self.executor)
            await ws.send_bytes(status.SerializeToString())
            await ws.close(code=1000)
        return ws

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        json_mode = _subprotocol(request) != "bytes"
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_SIZE, compress=False, timeout=CLOSE_TIMEOUT)
        # Handshake without the subprotocol header: the 101 answer names none, as the real gateway's does.
        headers = CIMultiDict(request.headers)
        headers.popall(hdrs.SEC_WEBSOCKET_PROTOCOL, None)
        await ws.prepare(request.clone(headers=headers))
        outcome = _Outcome.GONE
        with self.cancellable():
            outcome = await self._serve(ws, json_mode=json_mode)
        if self.closing and outcome is not _Outcome.DONE:
            with anyio.move_on_after(CLOSE_TIMEOUT):
                await ws.close(code=1001, message=b"server stopped")
        elif outcome is _Outcome.DROP:
            logger.info("WebSocket client %s sent an undecodable frame: connection dropped", request.remote)
            if request.transport is not None:
                request.transport.abort()
        elif outcome is _Outcome.CUT:
            self.stats.add("connections_dropped")
            logger.info("WebSocket client %s: connection closed without a close frame (close_after)", request.remote)
            if request.transport is not None:
                request.transport.close()  # flushes what was sent, then closes: no close frame
        elif outcome is _Outcome.DONE:
            await ws.close(code=1000)
        return ws

    async def _serve(self, ws: web.WebSocketResponse, *, json_mode: bool) -> _Outcome:
        """Read requests until the end marker, answer each; how the connection should end."""
        outcome = _Outcome.DONE

        async def send(frame: bytes) -> None:
            nonlocal outcome
            if self.budget.exhausted(ws):
                outcome = _Outcome.CUT
                tg.cancel_scope.cancel()
                await anyio.lowlevel.checkpoint()  # cancelled here: the sequencer sends nothing more
            try:
                await (ws.send_str(frame.decode("utf-8")) if json_mode else ws.send_bytes(frame))
            except ConnectionError:
                outcome = _Outcome.GONE
                tg.cancel_scope.cancel()
            else:
                self.budget.sent(ws)

        sequencer = ResponseSequencer(send, stats=self.stats, out_of_order=self._out_of_order, hold=self._hold)
        answer = self._answer_json if json_mode else self._answer_bytes
        async with anyio.create_task_group() as tg:
            tg.start_soon(sequencer.run)
            while True:
                message = await ws.receive()
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    outcome = _Outcome.GONE  # nobody left to answer
                    tg.cancel_scope.cancel()
                    break
                try:
                    request = await _decode(message.type, message.data, json_mode=json_mode)
                except _Undecodable:
                    outcome = _Outcome.DROP
                    tg.cancel_scope.cancel()
                    break
                if request is None:
                    break
                tg.start_soon(answer, sequencer, sequencer.received(), request)
            sequencer.end_of_input()
        return outcome

    async def _answer_bytes(self, sequencer: ResponseSequencer, seq: int, request: jina_pb2.DataRequestProto) -> None:
        response = await self.executor.handle(request)
        sequencer.finished(seq, response.SerializeToString())

    async def _answer_json(self, sequencer: ResponseSequencer, seq: int, request: jina_pb2.DataRequestProto) -> None:
        response = await self.executor.handle(request)
        frame = await off_loop(
            lambda: dumps(response_to_ws_json(response)), heavy=response.ByteSize() * 5 > INLINE_MAX_BYTES
        )
        sequencer.finished(seq, frame)


def _subprotocol(request: web.Request) -> str:
    """The first subprotocol the client offers that the server knows; ``json`` without one."""
    for header in request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, []):
        for name in header.split(","):
            if name.strip() in ("bytes", "json"):
                return name.strip()
    return "json"


async def _decode(kind: WSMsgType, data: Any, *, json_mode: bool) -> Optional[jina_pb2.DataRequestProto]:
    """The request a frame carries, None for the end marker; :class:`_Undecodable` for anything else."""
    if json_mode:
        if kind is not WSMsgType.TEXT:
            raise _Undecodable(f"a {kind.name} frame in json mode")
        return await off_loop(lambda: _json_request(data), heavy=len(data) > INLINE_MAX_BYTES)
    if kind is not WSMsgType.BINARY:
        raise _Undecodable(f"a {kind.name} frame in bytes mode")
    if data == END_OF_INPUT:
        return None
    try:
        return await off_loop(lambda: jina_pb2.DataRequestProto.FromString(data), heavy=len(data) > INLINE_MAX_BYTES)
    except DecodeError as exc:
        raise _Undecodable(str(exc)) from exc


def _json_request(text: str) -> Optional[jina_pb2.DataRequestProto]:
    try:
        value = loads(text.encode("utf-8"))
        if value == {}:
            return None
        request = request_from_json(value)
    except (JsonError, ValueError, TypeError) as exc:
        raise _Undecodable(str(exc)) from exc
    assign_ids(request, fresh_request_id=False)
    return request


def response_to_ws_json(response: jina_pb2.DataRequestProto) -> dict[str, Any]:
    """The JSON a gateway answers over WebSocket ``json``: snake_case header and routes, HTTP-style documents.

    Example::

        >>> response = jina_pb2.DataRequestProto()
        >>> response.header.request_id, response.header.target_executor = "r1", ""
        >>> response_to_ws_json(response)
        {'header': {'request_id': 'r1', 'target_executor': ''}, 'data': []}
    """
    envelope = jina_pb2.DataRequestProto()
    envelope.CopyFrom(response)
    envelope.ClearField("data")
    body: dict[str, Any] = json_format.MessageToDict(
        envelope, preserving_proto_field_name=True, use_integers_for_enums=True
    )
    body["data"] = response_to_json(response)["data"]
    return body
