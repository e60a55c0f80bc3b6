"""A transport's closed state: no new connection once closing began, and ClientClosedError for what it ends.

``AsyncClient.aclose()`` marks every transport closed (:meth:`~.base.Transport.mark_closed`) before it
closes any connection. Closing a gRPC channel or an aiohttp session under a call in flight makes that call
fail with whatever the library raises (a stream reset, a connection lost, aiohttp's
``RuntimeError('Session is closed')``); such a failure would otherwise look transient, be retried, and
reconnect: a channel or session that nobody closes. Here instead:

- :func:`refuse_if_closed` stops every new connection, stream and readiness probe with ClientClosedError;
- :func:`reported_as_closed` turns any failure of a stream or probe of a closed transport into
  ClientClosedError (chained to what happened), which the engine never retries.

Example::

    with reported_as_closed(transport, address):
        refuse_if_closed(transport, address)
        ...  # open and use a stream
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .._config import ServerAddress
from .._exceptions import ClientClosedError
from .base import Transport


def client_closed(address: ServerAddress) -> ClientClosedError:
    """The error of a call to ``address`` that the client's close() or aclose() ended, or came too late."""
    return ClientClosedError(
        f"the client was closed (close() or aclose()) while a call to {address} was in flight; create a new client"
    )


def refuse_if_closed(transport: Transport, address: ServerAddress) -> None:
    """Raise ClientClosedError once ``transport`` is closed: nothing connects after the client's close."""
    if transport.closed:
        raise client_closed(address)


@contextmanager
def reported_as_closed(transport: Transport, address: ServerAddress) -> Iterator[None]:
    """Around a stream or a probe: once ``transport`` is closed, what fails inside failed because of the
    close, and is raised as ClientClosedError (the original chained to it)."""
    try:
        yield
    except ClientClosedError:
        raise
    except Exception as err:
        if not transport.closed:
            raise
        raise client_closed(address) from err
