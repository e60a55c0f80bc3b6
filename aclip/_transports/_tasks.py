"""A duplex stream whose requests each run in a task of their own (HTTP's POSTs, the in-memory handler).

Such a stream owns a task group for as long as the call uses it: when the call ends, requests still
running are cancelled (abandoned, as the call no longer wants their answers), and the duplex closes its
answer queue. The tasks never raise (they queue their outcome), so an error out of the group is the
caller's own, and is raised as it is, not as an exception group.

Example::

    async with duplex_in_tasks(lambda tasks: _HttpDuplex(..., tasks)) as duplex:
        await duplex.send(request_id, frame)
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Optional, Protocol, TypeVar

import anyio
from anyio.abc import TaskGroup

from .._exceptions import BaseExceptionGroup, first_error


class _Closable(Protocol):
    def close(self) -> None: ...


D = TypeVar("D", bound=_Closable)


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
