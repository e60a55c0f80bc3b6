"""Faults a reference server injects on purpose, so that clients' failure handling can be tested.

One :class:`Faults` object per server (``server.faults``) holds the options; the executor and every frontend
read it on each request, so a test may change it while the server runs, from any thread (each option is
one attribute: assigning an int, bool or str is atomic; set the options one by one, each takes effect
from the next request or response that looks at it). An assignment is checked at once: a bad value raises
ValueError in the thread that assigns it.

- ``fail_every`` (all protocols): every N-th request the executor receives (numbered from 1 across the
  whole server, in the order requests arrive) fails as a real executor error does: ``header.status`` ERROR
  with the exception ``InjectedFailure``, the documents returned without embeddings; the stream goes on.
- ``close_after`` (all protocols): a gRPC stream or a WebSocket connection carries at most N responses;
  where the server would send one more it drops the stream instead (gRPC: RST_STREAM; WebSocket: the TCP
  connection closes without a close frame). HTTP: once N responses went out on one keep-alive
  connection, the next request on it closes the connection unanswered.
- ``never_answer`` (all protocols): requests are read and counted but never answered, until the server
  stops (or the client gives up): a gateway whose executor is dead.
- ``fail_status`` (HTTP): every POST is answered with this HTTP status and a ``{"detail": ...}`` body.
- ``grpc_status`` (gRPC): every call ends at once with this status (a :class:`grpclib.const.Status` name).

Example::

    >>> faults = Faults(fail_every=3)
    >>> [n for n in range(1, 10) if faults.fails(n)]
    [3, 6, 9]
    >>> faults.fail_every = 0  # recovered: from the next request on
    >>> faults.fails(3)
    False
    >>> Faults(grpc_status="unavailable").grpc_status
    'UNAVAILABLE'
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any, Optional

from grpclib.const import Status

__all__ = ["Faults", "InjectedFailure", "ResponseBudget"]


class InjectedFailure(Exception):
    """The exception an executor error injected by ``fail_every`` reports (its name is what clients see)."""


@dataclasses.dataclass
class Faults:
    """The fault options of one reference server; see the module docstring. All off by default.

    Example::

        with serve_in_thread(fail_every=1) as server:
            ...  # every request fails
            server.faults.fail_every = 0  # recovered
            server.faults.never_answer = True  # now nothing is answered
    """

    #: Every N-th request (1-based, server-wide) is an executor error; 0: none.
    fail_every: int = 0
    #: At most N responses per gRPC stream / WebSocket connection / HTTP keep-alive connection; 0: no limit.
    close_after: int = 0
    #: Read and count requests, never answer them (until the server stops).
    never_answer: bool = False
    #: HTTP only: answer every POST with this status (400-599); 0: off.
    fail_status: int = 0
    #: gRPC only: end every call with this status, e.g. ``"UNAVAILABLE"``; "": off.
    grpc_status: str = ""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, _checked(name, value))

    def fails(self, number: int) -> bool:
        """Whether request ``number`` (1-based, server-wide) is to fail under ``fail_every``."""
        every = self.fail_every
        return every > 0 and number % every == 0

    @property
    def grpc_status_code(self) -> Optional[Status]:
        """``grpc_status`` as a :class:`grpclib.const.Status`; None when off."""
        name = self.grpc_status
        return Status[name] if name else None


def _checked(name: str, value: Any) -> Any:
    if name in ("fail_every", "close_after"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    elif name == "never_answer":
        if not isinstance(value, bool):
            raise ValueError(f"never_answer must be a bool, got {value!r}")
    elif name == "fail_status":
        if isinstance(value, bool) or not isinstance(value, int) or not (value == 0 or 400 <= value <= 599):
            raise ValueError(f"fail_status must be 0 or an HTTP error status (400-599), got {value!r}")
    elif name == "grpc_status":
        if not isinstance(value, str):
            raise ValueError(f"grpc_status must be a str, got {value!r}")
        value = value.strip().upper()
        if value and (value not in Status.__members__ or value == "OK"):
            choices = ", ".join(status.name for status in Status if status is not Status.OK)
            raise ValueError(f"grpc_status must be empty or one of {choices}; got {value!r}")
    return value


class ResponseBudget:
    """Counts the responses sent on each connection for ``close_after``: any object standing for it that
    can be weakly referenced (a gRPC stream, a WebSocket response, an HTTP connection's transport).

    Example::

        >>> class Connection: ...
        >>> budget, connection = ResponseBudget(Faults(close_after=2)), Connection()
        >>> budget.sent(connection); budget.exhausted(connection)
        False
        >>> budget.sent(connection); budget.exhausted(connection)
        True
    """

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._counts: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()

    def exhausted(self, connection: object) -> bool:
        """Whether ``connection`` may carry no more responses: it is to be dropped instead."""
        limit = self._faults.close_after
        return limit > 0 and self._counts.get(connection, 0) >= limit

    def sent(self, connection: object) -> None:
        """Count one response sent on ``connection``."""
        self._counts[connection] = self._counts.get(connection, 0) + 1
