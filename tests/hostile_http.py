"""Hostile HTTP and WebSocket servers: each does one bad thing on purpose, to test the client's defences.

Every server listens on 127.0.0.1 on its own event loop in a daemon thread (as the reference server does,
see :func:`aclip.testing.serve_in_thread`), so its work never slows the test's loop. It stops when the
``with`` block ends, or by itself after ``lifetime`` seconds, so a test that hangs cannot keep it alive.

- :func:`silent_server`: accepts connections and never says a word (a black hole);
- :func:`fixed_answer_app`: answers every HTTP request with the same bytes, status and headers (a gzip
  bomb, a corrupt gzip body, an unknown Content-Encoding), with Content-Length or chunked;
- :func:`compressed_reference_app`: real answers of the reference executor, compressed;
- :func:`websocket_deflate_bomb`: completes the WebSocket handshake, then sends one compressed frame that
  inflates far past any sane limit (whether or not the client offered compression);
- :func:`websocket_never_closes`: answers every request, then neither closes the socket nor answers the
  client's close frame.

Example::

    bomb = deflate_bomb(300 * MiB, "gzip")
    with serve_app(fixed_answer_app(bomb, headers={"Content-Encoding": "gzip"})) as port:
        ...  # http://127.0.0.1:{port}
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import socket
import struct
import threading
import zlib
from typing import Awaitable, Callable, ContextManager, Dict, Iterator, List, Mapping, Optional, Tuple

from aiohttp import WSMsgType, web

from aclip._pb import jina_pb2
from aclip._wire.json import dumps
from aclip.testing import ReferenceExecutor
from aclip.testing._http import parse_post
from aclip.testing._json import response_to_json

__all__ = [
    "MiB",
    "compress",
    "compressed_reference_app",
    "deflate_bomb",
    "fixed_answer_app",
    "serve_app",
    "serve_in_thread",
    "silent_server",
    "websocket_deflate_bomb",
    "websocket_never_closes",
]

MiB = 1024 * 1024
#: How long a server runs at most when the test does not stop it first.
LIFETIME = 60.0
_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: zlib's wbits for each way of wrapping a deflate stream: HTTP's gzip and deflate (zlib-wrapped, or raw
#: as some servers send it), and WebSocket's permessage-deflate (raw).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}

#: Starts a server on the running loop; returns its port and a coroutine function that stops it.
Start = Callable[[], Awaitable[Tuple[int, Callable[[], Awaitable[None]]]]]


# --- running a server in a thread ------------------------------------------------------------------------


@contextlib.contextmanager
def serve_in_thread(start: Start, *, lifetime: float = LIFETIME) -> Iterator[int]:
    """Run the server ``start`` starts on its own loop in a daemon thread; yields its port."""
    runner = _Runner(start, lifetime)
    thread = threading.Thread(target=runner.run, name="hostile-server", daemon=True)
    thread.start()
    try:
        if not runner.ready.wait(10):
            raise TimeoutError("the hostile server did not start within 10 s")
        if runner.error is not None:
            raise runner.error
        yield runner.port
    finally:
        runner.stop()
        thread.join(10)


class _Runner:
    """Owns the thread's loop: start the server, report its port, serve until told to stop (or lifetime)."""

    def __init__(self, start: Start, lifetime: float) -> None:
        self._start = start
        self._lifetime = lifetime
        self.ready = threading.Event()
        self.port = 0
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._stop_requested = False

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # handed to the test's thread when it happened before start
            self.error = self.error or exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        stop = asyncio.Event()
        with self._lock:
            self._loop, self._stop = asyncio.get_running_loop(), stop
            if self._stop_requested:
                return
        self.port, close = await self._start()
        self.ready.set()
        try:
            await asyncio.wait_for(stop.wait(), self._lifetime)
        except asyncio.TimeoutError:
            pass
        finally:
            await close()

    def stop(self) -> None:
        with self._lock:
            self._stop_requested = True
            loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has finished already
                loop.call_soon_threadsafe(stop.set)


def _listening_socket() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def serve_app(make_app: Callable[[], web.Application], *, lifetime: float = LIFETIME) -> ContextManager[int]:
    """Serve the aiohttp application ``make_app()`` builds (in the server's thread); yields its port."""

    async def start() -> Tuple[int, Callable[[], Awaitable[None]]]:
        runner = web.AppRunner(make_app(), shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        listener = _listening_socket()
        await web.SockSite(runner, listener).start()
        return listener.getsockname()[1], runner.cleanup

    return serve_in_thread(start, lifetime=lifetime)


def _serve_streams(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], lifetime: float
) -> ContextManager[int]:
    """Serve raw TCP connections with ``handle``; stopping closes the connections still open."""

    async def start() -> Tuple[int, Callable[[], Awaitable[None]]]:
        connections: Dict[asyncio.Task[None], asyncio.StreamWriter] = {}

        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections[task] = writer
            try:
                await handle(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass  # the client went away: that is its right
            finally:
                del connections[task]
                writer.close()

        server = await asyncio.start_server(tracked, sock=_listening_socket())

        async def close() -> None:
            server.close()
            for writer in connections.values():
                writer.transport.abort()  # the handlers see the connection end, and return
            if connections:
                await asyncio.wait(list(connections), timeout=1)
            await server.wait_closed()

        return server.sockets[0].getsockname()[1], close

    return serve_in_thread(start, lifetime=lifetime)


# --- payloads ----------------------------------------------------------------------------------------------


def compress(data: bytes, encoding: str) -> bytes:
    """``data`` as a whole gzip, deflate (zlib-wrapped) or raw-deflate stream."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS[encoding])
    return compressor.compress(data) + compressor.flush()


@functools.cache
def deflate_bomb(inflated_size: int, encoding: str) -> bytes:
    """A few hundred kB that inflate to ``inflated_size`` spaces (made once per process, in 1 MiB steps).

    ``encoding`` is ``gzip``, ``deflate`` or ``raw-deflate`` (a whole stream), or ``permessage-deflate``
    (one WebSocket message: raw deflate, sync-flushed, without the trailing ``00 00 ff ff``).
    """
    per_message = encoding == "permessage-deflate"
    compressor = zlib.compressobj(9, zlib.DEFLATED, _WBITS["raw-deflate" if per_message else encoding])
    block = b" " * MiB
    parts = [compressor.compress(block) for _ in range(inflated_size // MiB)]
    parts.append(compressor.compress(b" " * (inflated_size % MiB)))
    if per_message:
        return (b"".join(parts) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    parts.append(compressor.flush())
    return b"".join(parts)


# --- HTTP ----------------------------------------------------------------------------------------------------


def fixed_answer_app(
    body: bytes, *, status: int = 200, headers: Optional[Mapping[str, str]] = None, chunked: bool = False
) -> Callable[[], web.Application]:
    """Every request, on any path, answered with ``body``: with Content-Length, or ``chunked`` without."""

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        if not chunked:
            return web.Response(body=body, status=status, headers=headers)
        response = web.StreamResponse(status=status, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the client may refuse it half-way, as it should
            for start in range(0, len(body), 64 * 1024):
                await response.write(body[start : start + 64 * 1024])
            await response.write_eof()
        return response

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        return app

    return make_app


def compressed_reference_app(encoding: str, seen_headers: List[Dict[str, str]]) -> Callable[[], web.Application]:
    """``POST /post`` and ``GET /dry_run`` answered as the reference server does, compressed with
    ``encoding`` (gzip, deflate or raw-deflate, which goes as ``deflate``); each request's headers are
    appended to ``seen_headers``."""
    executor = ReferenceExecutor()
    name = "deflate" if encoding == "raw-deflate" else encoding

    def compressed(payload: bytes) -> web.Response:
        headers = {"Content-Encoding": name, "Content-Type": "application/json"}
        return web.Response(body=compress(payload, encoding), headers=headers)

    async def post(request: web.Request) -> web.StreamResponse:
        seen_headers.append(dict(request.headers))
        message: jina_pb2.DataRequestProto = parse_post(await request.read())
        return compressed(dumps(response_to_json(await executor.handle(message))))

    async def dry_run(request: web.Request) -> web.StreamResponse:
        seen_headers.append(dict(request.headers))
        return compressed(dumps({"code": 0, "description": "", "exception": None}))

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_post("/post", post)
        app.router.add_get("/dry_run", dry_run)
        return app

    return make_app


# --- raw TCP and WebSocket -------------------------------------------------------------------------------------


def silent_server(*, lifetime: float = LIFETIME) -> ContextManager[int]:
    """Accepts every connection, reads what comes, never answers: no HTTP answer, no TLS or WS handshake."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(64 * 1024):
            pass

    return _serve_streams(handle, lifetime)


def _accept_websocket(head: bytes, writer: asyncio.StreamWriter, *, compress: bool) -> None:
    """Accept the upgrade request ``head`` with subprotocol ``bytes`` (and permessage-deflate if ``compress``)."""
    key = (_header_value(head, b"Sec-WebSocket-Key") or "").encode()
    accept = base64.b64encode(hashlib.sha1(key + _WEBSOCKET_GUID).digest())
    extension = b"Sec-WebSocket-Extensions: permessage-deflate\r\n" if compress else b""
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: bytes\r\n" + extension + b"\r\n"
    )


def _header_value(head: bytes, name: bytes) -> Optional[str]:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("latin-1")
    return None


def websocket_deflate_bomb(
    payload: bytes, offers: List[Optional[str]], *, lifetime: float = LIFETIME
) -> ContextManager[int]:
    """A WebSocket server whose first answer is ``payload`` as one compressed binary frame (RSV1 set).

    It sends that frame whether or not the client offered permessage-deflate (it agrees when offered);
    what the client offered in ``Sec-WebSocket-Extensions`` (None: nothing) is appended to ``offers``.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        offer = _header_value(head, b"Sec-WebSocket-Extensions")
        offers.append(offer)
        _accept_websocket(head, writer, compress=offer is not None and "permessage-deflate" in offer)
        await reader.read(1)  # the client's first request has begun to arrive
        fin_rsv1_binary = 0x80 | 0x40 | 0x2
        writer.write(struct.pack("!BBQ", fin_rsv1_binary, 127, len(payload)) + payload)
        await writer.drain()
        while await reader.read(64 * 1024):  # until the client goes
            pass

    return _serve_streams(handle, lifetime)


def websocket_never_closes(*, lifetime: float = LIFETIME) -> ContextManager[int]:
    """Answers each request as the reference server does; after the end-of-requests byte it goes quiet:
    no close frame, no answer to the client's close frame, the connection left open until the client
    drops it."""
    executor = ReferenceExecutor()

    async def connect(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("bytes",), autoclose=False, compress=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type != WSMsgType.BINARY or message.data == b"\x00":
                break  # the end of requests, or the client's close frame: from now on, silence
            answer = await executor.handle(jina_pb2.DataRequestProto.FromString(message.data))
            await ws.send_bytes(answer.SerializeToString())
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.05)
        return ws

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_get("/", connect)
        return app

    return serve_app(make_app, lifetime=lifetime)
