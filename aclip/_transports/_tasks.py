"""A duplex stream whose requests each run in a task of their own (HTTP's POSTs, the in-memory handler).

:class:`TaskDuplex` sends each request by starting a task that answers it (:meth:`TaskDuplex.answer`) and
queues the outcome, an answer or a typed error; :meth:`~TaskDuplex.receive` hands the outcomes out in
completion order, as a server's answers would come. The queue is unbounded, as a socket's buffers are to
the engine: the engine's window bounds what is in flight.

Such a stream owns a task group for as long as the call uses it (:func:`duplex_in_tasks`): when the call
ends, requests still running are cancelled (abandoned, as the call no longer wants their answers), and
the duplex closes its queue. The tasks never raise (they queue their outcome), so an error out of the
group is the caller's own, and is raised as it is, not as an exception group.

Example::

    async with duplex_in_tasks(lambda tasks: _HttpDuplex(..., tasks)) as duplex:
        await duplex.send(request_id, frame)
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Optional, TypeVar, Union

import anyio
from anyio.abc import TaskGroup

from .._exceptions import AclipError, BaseExceptionGroup, first_error
from .base import DuplexStream, Received


class _End:
    """Queued by :meth:`TaskDuplex.end`, so that a receive waiting for nothing more returns."""


class TaskDuplex(DuplexStream):
    """Each request answered in a task of its own; outcomes queue up in completion order (see above)."""

    def __init__(self, tasks: TaskGroup) -> None:
        self._tasks = tasks
        self._outcomes_in, self._outcomes = anyio.create_memory_object_stream[Union[Received, AclipError, _End]](
            math.inf
        )
        self._sent = 0
        self._received = 0
        self._ended = False

    async def answer(self, request_id: str, frame: bytes) -> Union[Received, AclipError]:
        """The answer to one request, or the typed error it ended with (never raised: it is queued)."""
        raise NotImplementedError

    async def send(self, request_id: str, frame: bytes) -> None:
        self._sent += 1
        self._tasks.start_soon(self._answer_and_queue, request_id, frame)

    async def _answer_and_queue(self, request_id: str, frame: bytes) -> None:
        await self._outcomes_in.send(await self.answer(request_id, frame))

    async def end(self) -> None:
        self._ended = True
        await self._outcomes_in.send(_End())

    async def receive(self) -> Optional[Received]:
        while not (self._ended and self._received == self._sent):
            outcome = await self._outcomes.receive()
            if isinstance(outcome, _End):
                continue
            self._received += 1
            if isinstance(outcome, AclipError):
                raise outcome
            return outcome
        return None

    def close(self) -> None:
        self._outcomes_in.close()
        self._outcomes.close()


D = TypeVar("D", bound=TaskDuplex)


@asynccontextmanager
async def duplex_in_tasks(make: Callable[[TaskGroup], D]) -> AsyncIterator[D]:
    """The duplex ``make(tasks)`` builds over a task group that lives as long as the block (see above)."""
    duplex: Optional[D] = None
    try:
        async with anyio.create_task_group() as tasks:
            duplex = make(tasks)
            try:
                yield duplex
            finally:
                tasks.cancel_scope.cancel()  # requests still running when the call ends are abandoned
    except BaseExceptionGroup as group:  # the request tasks never raise: this is the caller's own error
        error = first_error(group)
        raise error from error.__cause__
    finally:
        if duplex is not None:
            duplex.close()
