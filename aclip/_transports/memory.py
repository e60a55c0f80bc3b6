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

from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, Dict, Optional, Union

from anyio.abc import TaskGroup

from .._exceptions import AclipError, ClientClosedError, TransportError
from .._wire.protobuf import DataRequestProto, parse_response
from ._tasks import TaskDuplex, duplex_in_tasks
from .base import DuplexStream, Received, StreamDeadline, Transport, no_deadline

#: Answers one request: a DataRequest in, a DataRequest out (its ``header.request_id`` is set for it).
Handler = Callable[[DataRequestProto], Awaitable[DataRequestProto]]


class _MemoryDuplex(TaskDuplex):
    """Each request is handled in a task of its own, by the handler."""

    def __init__(self, handler: Handler, tasks: TaskGroup) -> None:
        super().__init__(tasks)
        self._handler = handler

    async def answer(self, request_id: str, frame: bytes) -> Union[Received, AclipError]:
        try:
            response = await self._handler(parse_response(frame))
        except AclipError as err:
            return err
        except Exception as err:  # the handler's own bug, as a server's crash would look to a client
            failure = TransportError(f"the in-memory handler raised {type(err).__name__}: {err}")
            failure.__cause__ = err
            return failure
        response.header.request_id = request_id
        return None, response.SerializeToString()


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
