"""The contract between the streaming engine and a transport: move DataRequest frames, nothing more.

A transport owns connections (one per event loop, reused across calls) and opens one duplex stream per
call. The engine sends serialised requests and receives serialised responses; batching, ordering,
matching and decoding stay in the engine and the codec. TLS, auth metadata and the translation of
third-party errors into aclip's own happen inside the transport.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import ssl
from typing import AsyncContextManager, Callable, ClassVar, Dict, Mapping, Optional, Tuple

from .._config import DEFAULT_CONNECT_TIMEOUT, MAX_MESSAGE_SIZE, ServerAddress
from .._exceptions import MessageTooLargeError
from .._wire.formats import PROTOBUF, WireFormat


@dataclasses.dataclass(frozen=True, repr=False)
class TransportOptions:
    """How a transport connects: the same for every server of a client.

    ``headers`` go with every request (gRPC metadata, HTTP and WebSocket headers), the token already in
    them as ``authorization``; names are lower case (:mod:`aclip._config` checked them). ``trust_env``
    lets HTTP and WebSocket use the proxy environment variables (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``NO_PROXY``, ...) and ``~/.netrc``; gRPC connects directly. ``max_message_size`` bounds each answer
    in bytes (the engine bounds the requests).

    The repr shows the header names but never their values: the token is one of them, and any other
    header may carry a credential (``X-Api-Key``), so none is written into a log line or a traceback.
    """

    ssl_context: Optional[ssl.SSLContext] = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    trust_env: bool = False
    max_message_size: int = MAX_MESSAGE_SIZE

    def __repr__(self) -> str:
        return (
            f"TransportOptions(ssl_context={self.ssl_context!r}, connect_timeout={self.connect_timeout!r}, "
            f"headers={_hidden_values(self.headers)}, trust_env={self.trust_env!r}, "
            f"max_message_size={self.max_message_size!r})"
        )


def _hidden_values(headers: Mapping[str, str]) -> str:
    """``headers`` shown with their names and without their values: ``{'authorization': '<hidden>'}``."""
    return "{" + ", ".join(f"{name!r}: '<hidden>'" for name in headers) + "}"


#: A response frame and, when the protocol itself says which request it answers (HTTP: the POST that
#: carried it), that request's id; None means "read the id from the message" (gRPC, WebSocket).
Received = Tuple[Optional[str], bytes]


#: Asked when a wait of a stream starts (connecting, a handshake, the trailers): the time on anyio's clock by
#: which that wait must end, i.e. the deadline of the request it serves (``math.inf``: no bound). The
#: transport ends the wait by the earlier of that and its own limit (see :func:`aclip._deadline.bounded`);
#: when the deadline ends it, it raises ``RequestTimeoutError`` (positions empty: the engine fills them in).
StreamDeadline = Callable[[], float]


def no_deadline() -> float:
    """The StreamDeadline of a stream whose waits have no bound but their own limits."""
    return math.inf


class DuplexStream(abc.ABC):
    """One call's stream of request frames out and response frames in, used by two tasks at once."""

    @abc.abstractmethod
    async def send(self, request_id: str, frame: bytes) -> None:
        """Send one serialised request. May wait for flow control, never for responses."""

    @abc.abstractmethod
    async def end(self) -> None:
        """Tell the server no more requests follow (half-close)."""

    @abc.abstractmethod
    async def receive(self) -> Optional[Received]:
        """The next response, or None once the server has ended the stream cleanly."""


class Transport(abc.ABC):
    """Connections to one server over one protocol, bound to the event loop that created them."""

    #: How frames are encoded on this transport: PROTOBUF (gRPC, WebSocket) or JSON (HTTP).
    wire_format: ClassVar[WireFormat] = PROTOBUF

    #: Set once closing began (:meth:`mark_closed`): from then on the transport opens no connection and no
    #: stream, and a stream still open that fails reports ClientClosedError (see :mod:`._closing`).
    closed: bool = False

    def mark_closed(self) -> None:
        """The first step of closing: a flag, set at once and safe from any thread (no I/O).

        The client marks every transport closed before it closes any, so that a call in flight cannot
        reconnect (a retry, another lane) while the connections are being closed; :meth:`aclose` then
        closes them, on the transport's own event loop.
        """
        self.closed = True

    @abc.abstractmethod
    def open_stream(
        self, headers: Optional[Dict[str, str]] = None, *, deadline: StreamDeadline = no_deadline
    ) -> AsyncContextManager[DuplexStream]:
        """A duplex stream for one call, with the call's own extra ``headers`` (on top of the client's);
        leaving the context closes (or cancels) it.

        Every wait the transport does for the stream (connect, TLS and WebSocket handshakes, the gRPC
        trailers, closing) ends by the earlier of its own limit and ``deadline()`` asked when it starts.
        """

    @abc.abstractmethod
    async def check_ready(self) -> Optional[str]:
        """Ask the gateway's readiness probe (``dry_run``): None when ready, else why not.

        Network failures raise aclip's errors, as a call would; the caller bounds the wait.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Mark the transport closed and close every connection. The transport is not used afterwards."""


def too_large_answer(address: ServerAddress, size: Optional[int], limit: int) -> MessageTooLargeError:
    """The error for an answer over ``max_message_size``."""
    of = f"of {size} bytes " if size is not None else ""
    return MessageTooLargeError(
        f"{address} sent an answer {of}over max_message_size={limit} bytes; raise max_message_size or lower batch_size",
        direction="answer",
        size=size,
        limit=limit,
        positions=(),
    )
