"""Counters a reference server keeps, so tests can assert what really happened on the wire."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator

__all__ = ["HEADERS_KEPT", "ServerStats"]

#: How many calls' headers :attr:`ServerStats.headers_seen` keeps.
HEADERS_KEPT = 50


@dataclasses.dataclass
class ServerStats:
    """What the server has seen and done since it started; all frontends add to the same counters.

    Only the server's event loop writes these counters; other threads may read them at any time (each read
    is atomic, but two reads are not a consistent snapshot while requests are in flight; copy
    ``injected_failures`` with ``list(...)`` before iterating over it).

    Example::

        >>> stats = ServerStats()
        >>> stats.requests_received, stats.responses_out_of_order
        (0, 0)
    """

    #: Calls opened, the rejected ones included: gRPC streams, WebSocket connections and HTTP requests.
    calls: int = 0
    #: Calls open right now (the server has not finished them yet).
    calls_open: int = 0
    #: The most calls that were open at once.
    calls_open_peak: int = 0
    #: Calls refused before any request was read (on every protocol): bad or missing token.
    calls_rejected: int = 0
    #: Requests decoded and handed to the executor.
    requests_received: int = 0
    #: Responses written to a client.
    responses_sent: int = 0
    #: Responses sent while a request received earlier on the same stream was still unanswered.
    responses_out_of_order: int = 0
    #: Responses that carry header.status ERROR (an exception inside the executor, an injected one included).
    error_responses: int = 0
    #: ``fail_every``: the ``request_id`` of every request failed on purpose, in the order they failed.
    injected_failures: list[str] = dataclasses.field(default_factory=list)
    #: ``close_after``: gRPC streams, WebSocket connections and HTTP connections dropped on purpose.
    connections_dropped: int = 0
    #: ``never_answer``: requests read and left unanswered on purpose.
    requests_unanswered: int = 0
    #: ``fail_status`` / ``grpc_status``: HTTP POSTs and gRPC calls failed on purpose with that status.
    status_failures: int = 0
    #: The headers (HTTP, WebSocket) or metadata (gRPC) of the most recent calls, oldest first, names in
    #: lower case: what a client really sent. At most :data:`HEADERS_KEPT` calls are kept.
    headers_seen: list[dict[str, str]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self._changed = threading.Condition()  # not a field: asdict() and replace() ignore it

    @contextlib.contextmanager
    def track_call(self) -> Iterator[None]:
        """Count one call for as long as the block runs (frontends wrap each call in this)."""
        with self._changed:
            self.calls += 1
            self.calls_open += 1
            self.calls_open_peak = max(self.calls_open_peak, self.calls_open)
        try:
            yield
        finally:
            with self._changed:
                self.calls_open -= 1
                self._changed.notify_all()

    def saw_headers(self, headers: Iterable[tuple[str, object]]) -> None:
        """Keep one call's headers or metadata in :attr:`headers_seen` (text values only).

        Example::

            >>> stats = ServerStats()
            >>> stats.saw_headers([("X-Team", "search"), ("data-bin", b"\\x00")])
            >>> stats.headers_seen
            [{'x-team': 'search'}]
        """
        seen = {name.lower(): value for name, value in headers if isinstance(value, str)}
        with self._changed:
            self.headers_seen = [*self.headers_seen[-(HEADERS_KEPT - 1) :], seen]

    def add(self, counter: str, amount: int = 1) -> None:
        """Add to ``counter`` and wake :meth:`wait_for` (the fault counters are counted this way).

        Example::

            >>> stats = ServerStats()
            >>> stats.add("connections_dropped")
            >>> stats.connections_dropped
            1
        """
        with self._changed:
            setattr(self, counter, getattr(self, counter) + amount)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[ServerStats], bool], timeout: float) -> bool:
        """Block the calling thread until ``predicate(stats)`` holds; False if that takes over ``timeout`` s.

        The predicate is checked at once, then whenever a call opens or ends or a fault counter changes
        (``error_responses`` with ``injected_failures``, ``connections_dropped``, ``requests_unanswered``,
        ``status_failures``): wait on those, e.g. for a request that ``never_answer`` holds.

        Example::

            >>> stats = ServerStats()
            >>> stats.add("requests_unanswered")
            >>> stats.wait_for(lambda s: s.requests_unanswered == 1, timeout=1.0)
            True
        """
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def wait_for_idle(self, timeout: float) -> bool:
        """Block the calling thread until no call is open; False if that takes over ``timeout`` seconds.

        Example::

            >>> ServerStats().wait_for_idle(timeout=1.0)
            True
        """
        with self._changed:
            return self._changed.wait_for(lambda: self.calls_open == 0, timeout)
