"""Retry policy as plain functions: which failures are worth another try, and how long to wait first.

Only transient failures are retried (the server unreachable, a connection reset, a proxy's 502/503/504,
an unanswered request), and only on endpoints where doing a request twice is harmless (encode, rank,
search: not index). Nothing here sleeps; the engine does.
"""

from __future__ import annotations

import random
from typing import Optional

from .._exceptions import (
    AuthenticationError,
    ConnectError,
    HTTPStatusError,
    RequestTimeoutError,
    TLSError,
    TransportError,
)

_RETRIED_HTTP_STATUSES = frozenset({502, 503, 504})


def is_transient(error: BaseException) -> bool:
    """Whether another attempt may succeed where this one failed.

    Example::

        is_transient(ConnectError("refused"))          # True
        is_transient(AuthenticationError("wrong"))     # False
    """
    if isinstance(error, (AuthenticationError, TLSError)):
        return False
    if isinstance(error, HTTPStatusError):
        return error.status in _RETRIED_HTTP_STATUSES
    return isinstance(error, (ConnectError, RequestTimeoutError, TransportError))


def is_idempotent(endpoint: str) -> bool:
    """Whether sending a request to ``endpoint`` twice is harmless (index stores documents: it is not)."""
    from .._wire.endpoints import rules_for

    return rules_for(endpoint).idempotent


def backoff(attempt: int, *, base: float = 0.2, cap: float = 10.0, rng: Optional[random.Random] = None) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): exponential, capped, with full jitter.

    Example::

        backoff(1)   # between 0 and 0.2
        backoff(4)   # between 0 and 1.6
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(0.0, ceiling)
