"""One per-call deadline object that every wait inside a call consults.

A call has two bounds: each request must be answered within ``request_timeout`` seconds of being first
sent (retries included: a resent batch keeps its first deadline), and the whole call must end by
``call_ends`` (anyio's clock; infinite unless the caller gives the call a total deadline). Every wait in
the engine and the transports — connecting, the TLS and WebSocket handshakes, gRPC trailers, a retry's
backoff, loading and downloading inputs — ends by the earlier of its own limit (``connect_timeout``, say)
and the deadline of the request it serves. :func:`bounded` runs one such wait.

Example::

    deadline = Deadline(request_timeout=2.0)
    until = deadline.for_new_request()           # now + 2 s
    with bounded(10.0, until) as wait:           # connect_timeout 10 s, but the request's 2 s win
        await connect()
    if wait.expired:
        raise wait.error(own_limit=lambda: ConnectError("no connection within 10 s"), what="connecting")
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

import anyio

from ._exceptions import AclipError, RequestTimeoutError


class Deadline:
    """When the waits of one call must end.

    ``request_timeout``: seconds each request may take from its first sending to its answer (None: no
    bound). ``call_ends``: when the whole call must be over, on anyio's clock (``math.inf``: no bound).
    """

    __slots__ = ("call_ends", "request_timeout")

    def __init__(self, request_timeout: Optional[float], *, call_ends: float = math.inf) -> None:
        self.request_timeout = request_timeout
        self.call_ends = call_ends

    def __repr__(self) -> str:
        return f"Deadline(request_timeout={self.request_timeout!r}, call_ends={self.call_ends!r})"

    @property
    def bounded(self) -> bool:
        """Whether any wait of the call has a bound at all."""
        return self.request_timeout is not None or self.call_ends != math.inf

    def for_new_request(self) -> float:
        """When a request first sent now must have been answered (anyio's clock; inf: never)."""
        if self.request_timeout is None:
            return self.call_ends
        return min(anyio.current_time() + self.request_timeout, self.call_ends)

    def describe(self) -> str:
        """The bound in words, for error messages: ``"2 s"``, ``"the call's deadline"``."""
        if self.request_timeout is not None:
            return f"{self.request_timeout:g} s"
        return "the call's deadline"


def remaining(until: float) -> float:
    """Seconds left until ``until`` (anyio's clock), never negative; inf stays inf."""
    if until == math.inf:
        return math.inf
    return max(0.0, until - anyio.current_time())


class Wait:
    """What :func:`bounded` yields: after the block, whether the wait ran out, and which bound ended it."""

    def __init__(self, scope: anyio.CancelScope, own_limit: Optional[float], own_ends: float, until: float) -> None:
        self._scope = scope
        self.own_limit = own_limit
        self._own_ends = own_ends
        self._until = until

    @property
    def expired(self) -> bool:
        """True when a bound ended the wait (the block was cancelled by it)."""
        return self._scope.cancelled_caught

    @property
    def by_own_limit(self) -> bool:
        """True when the wait's own limit, not the request's deadline, was the earlier bound."""
        return self._own_ends <= self._until

    def error(self, *, own_limit: Callable[[], AclipError], what: str) -> AclipError:
        """The error to raise for an expired wait: ``own_limit()`` when its own limit ended it, else a
        RequestTimeoutError saying that ``what`` did not finish before the request's deadline (the engine
        adds the positions of the requests that were waiting)."""
        if self.by_own_limit:
            return own_limit()
        return RequestTimeoutError(f"{what} did not finish before the request's deadline", positions=())


@contextmanager
def bounded(own_limit: Optional[float], until: float) -> Iterator[Wait]:
    """Run the block for at most ``own_limit`` seconds and at most until ``until`` (anyio's clock).

    Like ``anyio.move_on_after``: the block is cancelled when the earlier bound is reached, and the
    yielded :class:`Wait` says so afterwards (``expired``, ``by_own_limit``). Never raises by itself.
    """
    now = anyio.current_time()
    own_ends = now + own_limit if own_limit is not None else math.inf
    ends = min(own_ends, until)
    with anyio.CancelScope(deadline=ends) as scope:
        yield Wait(scope, own_limit, own_ends, until)
