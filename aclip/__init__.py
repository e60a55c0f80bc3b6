"""aclip: a fast, asyncio-first client for CLIP-as-service servers (gRPC, HTTP, WebSocket).

Example::

    from aclip import Client

    with Client("grpc://127.0.0.1:51000") as client:
        vectors = client.encode(["she smiled, with pain", "apple.png"])   # float32 [2, 512]

``import aclip`` loads only the exceptions; the clients, Documents and their libraries (numpy, anyio) load
when first used, and the transports' libraries (grpclib, aiohttp, protobuf) when a client first connects.
"""

import typing as _typing

from ._exceptions import (
    AclipError,
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    HTTPStatusError,
    InputError,
    InputTypeError,
    JsonError,
    MessageTooLargeError,
    MissingEmbeddingError,
    ProtocolError,
    RequestTimeoutError,
    ResponseError,
    ServerError,
    TLSError,
    TransportError,
)

if _typing.TYPE_CHECKING:  # type checkers see the real names; at run time they load on first use (below)
    from ._client import AsyncClient
    from ._engine.callbacks import Response, Route
    from ._models import Collected, Document, DocumentList, NamedScore, Part
    from ._sync import Client
    from ._transports.memory import MemoryTransport
    from ._wire.status import ResponseStatus

#: Public names that live in modules importing numpy and anyio: loaded when first asked for, so that
#: ``import aclip`` (a CLI's start, a web app's import) stays fast.
_LAZY = {
    "AsyncClient": "._client",
    "Client": "._sync",
    "Collected": "._models",
    "Document": "._models",
    "DocumentList": "._models",
    "MemoryTransport": "._transports.memory",
    "NamedScore": "._models",
    "Part": "._models",
    "Response": "._engine.callbacks",
    "ResponseStatus": "._wire.status",
    "Route": "._engine.callbacks",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aclip' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> _typing.List[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "JsonError",
    "MemoryTransport",
    "MessageTooLargeError",
    "MissingEmbeddingError",
    "NamedScore",
    "Part",
    "ProtocolError",
    "RequestTimeoutError",
    "Response",
    "ResponseError",
    "ResponseStatus",
    "Route",
    "ServerError",
    "TLSError",
    "TransportError",
    "__version__",
]
