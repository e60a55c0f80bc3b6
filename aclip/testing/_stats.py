"""Counters a reference server keeps, so tests can assert what really happened on the wire."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator

__all__ = ["ServerStats"]


@dataclasses.dataclass
class ServerStats:
    """What the server has seen and done since it started; all frontends add to the same counters.

    Only the server's event loop writes these integers; other threads may read them at any time (each read
    is atomic, but two reads are not a consistent snapshot while requests are in flight).

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
    #: Responses that carry header.status ERROR (an exception inside the executor).
    error_responses: int = 0

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

    def wait_for_idle(self, timeout: float) -> bool:
        """Block the calling thread until no call is open; False if that takes over ``timeout`` seconds.

        Example::

            >>> ServerStats().wait_for_idle(timeout=1.0)
            True
        """
        with self._changed:
            return self._changed.wait_for(lambda: self.calls_open == 0, timeout)
