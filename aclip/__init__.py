"""aclip: a fast, asyncio-first client for CLIP-as-service servers (gRPC, HTTP, WebSocket).

Example::

    from aclip import Client

    with Client("grpc://127.0.0.1:51000") as client:
        vectors = client.encode(["she smiled, with pain", "apple.png"])   # float32 [2, 512]

Transports and their libraries (grpclib, aiohttp, protobuf) are imported when a client first needs them,
so ``import aclip`` stays light.
"""

from ._callbacks import Response, ResponseStatus, Route
from ._client import AsyncClient
from ._document import Document, DocumentList, NamedScore
from ._errors import (
    AclipError,
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    HTTPStatusError,
    InputError,
    InputTypeError,
    MessageTooLargeError,
    MissingEmbeddingError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    TLSError,
    TransportError,
)
from ._parts import Collected, Part
from ._sync import Client

__version__ = "0.1.0"

__all__ = [
    "AclipError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ClientClosedError",
    "Collected",
    "ConnectError",
    "Document",
    "DocumentList",
    "HTTPStatusError",
    "InputError",
    "InputTypeError",
    "MessageTooLargeError",
    "MissingEmbeddingError",
    "NamedScore",
    "Part",
    "ProtocolError",
    "RequestTimeoutError",
    "Response",
    "ResponseStatus",
    "Route",
    "ServerError",
    "TLSError",
    "TransportError",
    "__version__",
]
