"""A hostile gRPC server: ``/jina.JinaRPC/Call`` on plain HTTP/2 (h2 over asyncio), breaking the rules on purpose.

grpclib's own server always frames messages correctly and always ends a call with trailers, so it cannot
play the servers the client must survive. This one speaks HTTP/2 through ``h2`` directly and answers each
call as its :class:`Behaviour` says. Correct answers come from the reference server's executor, so a
client that gets them returns the test encoder's embeddings.

It runs on 127.0.0.1 in a daemon thread with its own event loop, for at most ``lifetime`` seconds::

    with serve_hostile(Behaviour.NO_TRAILERS) as server:
        async with AsyncClient(server.url, timeout=2) as client:
            await client.aencode(["a"])
        assert server.resets_by_client == 1
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import struct
import threading
from typing import Any, Coroutine, Dict, Iterator, Optional, Set

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from aclip._pb import jina_pb2
from aclip.testing import ReferenceExecutor

__all__ = ["FLOOD_LIMIT", "HUGE_LENGTH", "Behaviour", "HostileGrpcServer", "serve_hostile"]

#: What HUGE_PREFIX announces: the largest length a gRPC prefix can hold (4 GiB - 1).
HUGE_LENGTH = 2**32 - 1
#: How many bytes of the huge message HUGE_PREFIX sends at most (as fast as flow control lets it) before it
#: stalls: enough to show a client that buffers them, small enough for a shared test machine.
FLOOD_LIMIT = 64 * 2**20

_ZEROS = bytes(64 * 1024)


class Behaviour(enum.Enum):
    """How the server answers the requests of a call."""

    #: Answers every request correctly, then never sends trailers and never ends the stream.
    NO_TRAILERS = "no-trailers"
    #: Answers every request correctly; once the client half-closes, ends the stream with an empty DATA
    #: frame (END_STREAM) instead of trailers.
    ENDS_WITHOUT_TRAILERS = "ends-without-trailers"
    #: Answers the first request with a prefix announcing HUGE_LENGTH bytes, then sends zeros as fast as
    #: flow control allows, up to FLOOD_LIMIT bytes, and stalls.
    HUGE_PREFIX = "huge-prefix"
    #: Sends the prefix of the correct answer to the first request and half of its body, then stalls.
    PARTIAL_BODY = "partial-body"
    #: Sends the prefix and half of the body of the first answer, then trailers with grpc-status 0.
    TRUNCATED = "truncated"
    #: Sends the prefix and half of the body of the first answer, the last DATA frame with END_STREAM.
    TRUNCATED_END_STREAM = "truncated-end-stream"
    #: Sends three bytes of a prefix, then trailers with grpc-status 0.
    TRUNCATED_PREFIX = "truncated-prefix"
    #: Sends the correct first answer with the compressed flag set, then trailers with grpc-status 0.
    COMPRESSED = "compressed"
    #: Never writes a byte, not even HTTP/2's SETTINGS: a TLS client waits for the handshake forever.
    SILENT = "silent"


def grpc_frame(message: bytes, *, compressed: bool = False, length: Optional[int] = None) -> bytes:
    """The 5-byte gRPC prefix (compressed flag, big-endian length) and the message."""
    announced = len(message) if length is None else length
    return struct.pack(">BI", int(compressed), announced) + message


class HostileGrpcServer:
    """The server's state, shared with the test's thread: where it listens and what it has seen."""

    def __init__(self, behaviour: Behaviour, *, lifetime: float) -> None:
        self.behaviour = behaviour
        self.lifetime = lifetime
        self.port = 0
        self.requests_received = 0
        self.resets_by_client = 0  # RST_STREAM frames from the client: it gave up on a call
        self.bytes_flooded = 0
        self.executor = ReferenceExecutor()
        self.ready = threading.Event()
        self.error: Optional[BaseException] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._connections: Set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def run(self) -> None:
        """The thread's body: serve until stopped or ``lifetime`` is over."""
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()

    def stop(self) -> None:
        """Ask the server to stop (from any thread); returns at once."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop.set)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        listener = await asyncio.start_server(self._serve_connection, "127.0.0.1", 0)
        self.port = listener.sockets[0].getsockname()[1]
        self.ready.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.lifetime)
        finally:
            listener.close()
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        connection = _Connection(self, writer)
        try:
            if self.behaviour is Behaviour.SILENT:
                while await reader.read(65536):
                    pass
                return
            await connection.serve(reader)
        except (ConnectionError, h2.exceptions.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            connection.cancel_calls()
            writer.close()
            self._connections.discard(task)


class _Connection:
    """One client connection: HTTP/2 state, the calls on it and the tasks answering them."""

    def __init__(self, server: HostileGrpcServer, writer: asyncio.StreamWriter) -> None:
        self._server = server
        self._writer = writer
        self._h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self._received: Dict[int, bytearray] = {}  # request bytes of each call, not yet framed
        self._answered: Dict[int, int] = {}  # requests answered on each call
        self._tasks: Dict[int, Set[asyncio.Task[None]]] = {}
        self._window_opened = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader) -> None:
        self._h2.initiate_connection()
        self._flush()
        while data := await reader.read(65536):
            for event in self._h2.receive_data(data):
                self._handle(event)
            self._flush()

    def cancel_calls(self) -> None:
        for tasks in self._tasks.values():
            for task in tasks:
                task.cancel()

    def _flush(self) -> None:
        self._writer.write(self._h2.data_to_send())

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._received[event.stream_id] = bytearray()
            self._answered[event.stream_id] = 0
            self._h2.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        elif isinstance(event, h2.events.DataReceived):
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self._take_requests(event.stream_id, event.data)
        elif isinstance(event, h2.events.StreamEnded):
            if self._server.behaviour is Behaviour.ENDS_WITHOUT_TRAILERS:
                self._start(event.stream_id, self._end_without_trailers(event.stream_id))
        elif isinstance(event, h2.events.StreamReset):
            self._server.resets_by_client += 1
            for task in self._tasks.pop(event.stream_id, set()):
                task.cancel()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self._window_opened.set()

    def _take_requests(self, stream_id: int, data: bytes) -> None:
        buffer = self._received[stream_id]
        buffer += data
        while len(buffer) >= 5:
            _, length = struct.unpack(">BI", buffer[:5])
            if len(buffer) < 5 + length:
                break
            request = bytes(buffer[5 : 5 + length])
            del buffer[: 5 + length]
            self._server.requests_received += 1
            self._start(stream_id, self._answer(stream_id, request))

    def _start(self, stream_id: int, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        tasks = self._tasks.setdefault(stream_id, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _answer(self, stream_id: int, request: bytes) -> None:
        """Answer one request as the behaviour says (the hostile ones only answer the call's first)."""
        response = await self._server.executor.handle(jina_pb2.DataRequestProto.FromString(request))
        answer = response.SerializeToString()
        behaviour = self._server.behaviour
        first = self._answered[stream_id] == 0
        self._answered[stream_id] += 1
        try:
            if behaviour in (Behaviour.NO_TRAILERS, Behaviour.ENDS_WITHOUT_TRAILERS):
                await self._send(stream_id, grpc_frame(answer))
            elif not first:
                return  # the hostile behaviours answer nothing after their first move
            elif behaviour is Behaviour.HUGE_PREFIX:
                await self._send(stream_id, grpc_frame(b"", length=HUGE_LENGTH))
                while self._server.bytes_flooded < FLOOD_LIMIT:
                    await self._send(stream_id, _ZEROS)
                    self._server.bytes_flooded += len(_ZEROS)
            elif behaviour is Behaviour.PARTIAL_BODY:
                await self._send(stream_id, grpc_frame(answer)[: 5 + len(answer) // 2])
            elif behaviour is Behaviour.TRUNCATED:
                await self._send(stream_id, grpc_frame(answer)[: 5 + len(answer) // 2])
                self._send_trailers(stream_id)
            elif behaviour is Behaviour.TRUNCATED_END_STREAM:
                await self._send(stream_id, grpc_frame(answer)[: 5 + len(answer) // 2], end_stream=True)
            elif behaviour is Behaviour.TRUNCATED_PREFIX:
                await self._send(stream_id, grpc_frame(answer)[:3])
                self._send_trailers(stream_id)
            elif behaviour is Behaviour.COMPRESSED:
                await self._send(stream_id, grpc_frame(answer, compressed=True))
                self._send_trailers(stream_id)
        except h2.exceptions.StreamClosedError:
            pass  # the client reset the call meanwhile

    async def _end_without_trailers(self, stream_id: int) -> None:
        while self._tasks.get(stream_id, set()) - {asyncio.current_task()}:  # the answers go out first
            await asyncio.sleep(0.01)
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            await self._send(stream_id, b"", end_stream=True)

    def _send_trailers(self, stream_id: int) -> None:
        self._h2.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
        self._flush()

    async def _send(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Send ``data`` as DATA frames, waiting whenever HTTP/2 flow control says the client has enough."""
        view = memoryview(data)
        while True:
            room = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size, len(view))
            if room <= 0 and view:
                self._window_opened.clear()
                await self._window_opened.wait()
                continue
            chunk, view = view[:room], view[room:]
            self._h2.send_data(stream_id, bytes(chunk), end_stream=end_stream and not view)
            self._flush()
            await self._writer.drain()
            if not view:
                return


@contextlib.contextmanager
def serve_hostile(behaviour: Behaviour, *, lifetime: float = 60.0) -> Iterator[HostileGrpcServer]:
    """Run a :class:`HostileGrpcServer` in a daemon thread for the block (and at most ``lifetime`` s)."""
    server = HostileGrpcServer(behaviour, lifetime=lifetime)
    thread = threading.Thread(target=server.run, name=f"hostile-grpc-{behaviour.value}", daemon=True)
    thread.start()
    try:
        if not server.ready.wait(10):
            raise TimeoutError("the hostile gRPC server did not start within 10 s")
        if server.error is not None:
            raise server.error
        yield server
    finally:
        server.stop()
        thread.join(10)
