"""The contract between the streaming engine and a transport: move DataRequest frames, nothing more.

A transport owns connections (one per event loop, reused across calls) and opens one duplex stream per
call. The engine sends serialised requests and receives serialised responses; batching, ordering,
matching and decoding stay in the engine and the codec. TLS, auth metadata and the translation of
third-party errors into aclip's own happen inside the transport.
"""

from __future__ import annotations

import abc
from typing import AsyncContextManager, ClassVar, Optional, Tuple

__all__ = ["DuplexStream", "Received", "Transport"]

#: A response frame and, when the protocol itself says which request it answers (HTTP: the POST that
#: carried it), that request's id; None means "read the id from the message" (gRPC, WebSocket).
Received = Tuple[Optional[str], bytes]


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

    #: How frames are encoded on this transport: "protobuf" (gRPC, WebSocket) or "json" (HTTP).
    wire_format: ClassVar[str] = "protobuf"

    @abc.abstractmethod
    def open_stream(self) -> AsyncContextManager[DuplexStream]:
        """A duplex stream for one call; leaving the context closes (or cancels) it."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every connection. The transport is not used afterwards."""
