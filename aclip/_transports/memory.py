"""An in-memory transport: every request goes to a handler in this process, no sockets, no server.

``MemoryTransport(handler)`` answers each request with ``await handler(request)``, where both are Jina
``DataRequest`` messages, concurrently, in completion order, as a server would; the client, its engine,
its batching, retries, callbacks and results work exactly as over the network. Users get fast unit tests
of their own code (give ``transport=`` to the client); aclip's engine tests (ordering, retries,
cancellation, windows) run in milliseconds beside the socket tests. The reference server's executor is
a handler: ``aclip.testing.ReferenceExecutor().handle``.

Example::

    from aclip import AsyncClient, MemoryTransport
    from aclip.testing import ReferenceExecutor

    transport = MemoryTransport(ReferenceExecutor().handle)
    async with AsyncClient("grpc://in-memory:1", transport=transport) as client:
        vectors = await client.aencode(["hello"])
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, Dict, Optional, Union

import anyio
from anyio.abc import TaskGroup

from .._exceptions import AclipError, ClientClosedError, TransportError
from .._wire.protobuf import DataRequestProto, parse_response
from ._tasks import duplex_in_tasks
from .base import DuplexStream, Received, StreamDeadline, Transport, no_deadline

#: Answers one request: a DataRequest in, a DataRequest out (its ``header.request_id`` is set for it).
Handler = Callable[[DataRequestProto], Awaitable[DataRequestProto]]
_Outcome = Union[bytes, AclipError]


class _MemoryDuplex(DuplexStream):
    """Each request is handled in a task of its own; answers queue up in completion order."""

    def __init__(self, handler: Handler, tasks: TaskGroup) -> None:
        self._handler = handler
        self._tasks = tasks
        # Unbounded, as a socket's buffers are to the engine: the engine's window bounds what is in flight.
        self._answers_in, self._answers = anyio.create_memory_object_stream[_Outcome](math.inf)
        self._sent = 0
        self._received = 0
        self._ended = False

    async def send(self, request_id: str, frame: bytes) -> None:
        self._sent += 1
        self._tasks.start_soon(self._answer, request_id, frame)

    async def _answer(self, request_id: str, frame: bytes) -> None:
        outcome: _Outcome
        try:
            response = await self._handler(parse_response(frame))
            response.header.request_id = request_id
            outcome = response.SerializeToString()
        except AclipError as err:
            outcome = err
        except Exception as err:  # the handler's own bug, as a server's crash would look to a client
            outcome = TransportError(f"the in-memory handler raised {type(err).__name__}: {err}")
            outcome.__cause__ = err
        await self._answers_in.send(outcome)

    async def end(self) -> None:
        self._ended = True

    async def receive(self) -> Optional[Received]:
        if self._ended and self._received == self._sent:
            return None
        outcome = await self._answers.receive()
        self._received += 1
        if isinstance(outcome, AclipError):
            raise outcome
        return None, outcome

    def close(self) -> None:
        self._answers_in.close()
        self._answers.close()


class MemoryTransport(Transport):
    """Requests answered by ``handler`` in this process (see the module docstring); protobuf frames.

    One instance may serve any number of calls, on any event loop.
    """

    def __init__(self, handler: Handler, *, ready: Optional[str] = None) -> None:
        self._handler = handler
        self._ready = ready  # what check_ready() answers: None means ready
        self.streams_opened = 0

    def __repr__(self) -> str:
        return f"MemoryTransport({self._handler!r})"

    @asynccontextmanager
    async def open_stream(
        self, headers: Optional[Dict[str, str]] = None, *, deadline: StreamDeadline = no_deadline
    ) -> AsyncIterator[DuplexStream]:
        if self.closed:
            raise ClientClosedError("the client was closed; create a new client")
        self.streams_opened += 1
        # Requests still being handled when the call ends are dropped.
        async with duplex_in_tasks(lambda tasks: _MemoryDuplex(self._handler, tasks)) as duplex:
            yield duplex

    async def check_ready(self) -> Optional[str]:
        return self._ready

    async def aclose(self) -> None:
        self.mark_closed()
