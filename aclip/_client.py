"""AsyncClient: the one real implementation of every call; the sync Client forwards to it."""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from types import TracebackType
from typing import Any, Dict, Iterable, Mapping, Optional, Type, Union, overload

import numpy as np
from numpy.typing import NDArray

from ._address import ServerAddress, parse_server
from ._constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PREFETCH,
    TOKEN_ENVIRONMENT_VARIABLE,
)
from ._document import Document, DocumentList
from ._errors import ClientClosedError
from ._tls import TLSOptions

__all__ = ["AsyncClient"]

EncodeResult = Union[NDArray[np.float32], DocumentList]


def _token_from(credential: Optional[Mapping[str, str]]) -> Optional[str]:
    if credential is None:
        return os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None
    if not isinstance(credential, Mapping):
        raise TypeError("credential must be a dict such as {'Authorization': '<token>'}")
    for key, value in credential.items():
        if isinstance(key, str) and key.lower() == "authorization":
            if not isinstance(value, str):
                raise TypeError("credential['Authorization'] must be a str token")
            return value or None
    raise ValueError(f"credential must have an 'Authorization' key, got keys {sorted(map(str, credential))}")


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def endpoint_and_parameters(base: str, parameters: Optional[Mapping[str, Any]]) -> tuple[str, Dict[str, Any]]:
    """The endpoint to call and the parameters to send, from a caller's ``parameters`` (left unchanged).

    ``model_name`` selects ``<base>/<model_name>`` and is not sent on; ``drop_image_content`` defaults
    to true, so the server does not send image bytes back.
    """
    if parameters is not None and not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a dict, not {type(parameters).__name__}")
    sent: Dict[str, Any] = dict(parameters or {})
    model_name = sent.pop("model_name", None)
    endpoint = f"{base}/{model_name}" if model_name else base
    sent.setdefault("drop_image_content", True)
    return endpoint, sent


class AsyncClient:
    """An asyncio client for a CLIP-as-service server.

    ``server`` is ``scheme://host:port`` with a scheme of grpc, grpcs, http, https, websocket, websockets,
    ws or wss. ``credential={"Authorization": token}`` (or the ``CLIP_AUTH_TOKEN`` environment variable)
    authenticates every call. Connections are made on first use, one per event loop, and reused.

    TLS schemes verify the server's certificate against the system's CAs, or against ``ca_file``; pass
    ``client_cert`` (and ``client_key``) for mutual TLS, or a ready ``ssl_context`` instead of all three.

    Example::

        async with AsyncClient("grpc://127.0.0.1:51000") as client:
            vectors = await client.aencode(["a photo of a cat", "cat.png"])
    """

    def __init__(
        self,
        server: str,
        *,
        credential: Optional[Mapping[str, str]] = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ssl_context: Optional[ssl.SSLContext] = None,
        ca_file: Optional[str] = None,
        client_cert: Optional[str] = None,
        client_key: Optional[str] = None,
    ) -> None:
        from ._transports import ssl_context_for

        self._address: ServerAddress = parse_server(server)
        self._token = _token_from(credential)
        tls = TLSOptions(ssl_context=ssl_context, ca_file=ca_file, client_cert=client_cert, client_key=client_key)
        self._ssl_context = ssl_context_for(self._address, tls)
        if not isinstance(connect_timeout, (int, float)) or connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}")
        self._connect_timeout = float(connect_timeout)
        self._transports: Dict[asyncio.AbstractEventLoop, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncClient({str(self._address)!r})"

    @property
    def server(self) -> str:
        """The server URL this client talks to (never the token)."""
        return str(self._address)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def _transport(self) -> Any:
        """The transport for the running event loop, created on first use."""
        from ._transports import create_transport

        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise ClientClosedError(f"{self!r} is closed; create a new client")
            transport = self._transports.get(loop)
            if transport is None:
                for stale in [known for known in self._transports if known.is_closed()]:
                    del self._transports[stale]
                transport = create_transport(
                    self._address,
                    token=self._token,
                    ssl_context=self._ssl_context,
                    connect_timeout=self._connect_timeout,
                )
                self._transports[loop] = transport
            return transport

    async def aclose(self) -> None:
        """Close the client's connections; later calls raise ClientClosedError.

        Example::

            client = AsyncClient("grpc://127.0.0.1:51000")
            try:
                await client.aencode(["hello"])
            finally:
                await client.aclose()
        """
        with self._lock:
            self._closed = True
            transports, self._transports = self._transports, {}
        current = asyncio.get_running_loop()
        for loop, transport in transports.items():
            if loop is current:
                await transport.aclose()
            elif not loop.is_closed():
                asyncio.run_coroutine_threadsafe(transport.aclose(), loop)

    @overload
    async def aencode(
        self,
        content: Iterable[str],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
    ) -> NDArray[np.float32]: ...

    @overload
    async def aencode(
        self,
        content: Iterable[Document],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
    ) -> DocumentList: ...

    async def aencode(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
    ) -> EncodeResult:
        """Embed sentences and images.

        ``content`` is an iterable (list, tuple, generator) of ``str`` — each auto-detected as an image
        (a file path or http(s) URL ending in an image extension, or an image data URI) or a sentence — or
        of :class:`Document`. Strings give a float32 array [N, D] in input order; Documents give the same
        Document objects back, in input order, in a :class:`DocumentList`, with ``.embedding`` set.

        ``batch_size`` inputs go in each request, at most ``prefetch`` requests are in flight.
        ``parameters`` are sent to the server; ``model_name`` in them selects ``/encode/<model_name>``.

        Example::

            vectors = await client.aencode(["she smiled, with pain", "apple.png"])
            vectors.shape   # (2, 512)
        """
        from ._batches import iter_batches
        from ._codec import parameters_struct
        from ._inputs import InputMode, peek_mode
        from ._results import ArrayCollector, DocumentCollector
        from ._streaming import CallSettings, run_stream

        batch_size = _positive_int("batch_size", batch_size)
        prefetch = _positive_int("prefetch", prefetch)
        endpoint, sent_parameters = endpoint_and_parameters("/encode", parameters)
        total = len(content) if hasattr(content, "__len__") else None  # type: ignore[arg-type]
        mode, items = peek_mode(content)
        if mode is None:
            return DocumentList() if isinstance(content, DocumentList) else np.empty((0, 0), dtype=np.float32)
        transport = self._transport()
        settings = CallSettings(endpoint=endpoint, parameters=parameters_struct(sent_parameters), prefetch=prefetch)
        if mode is InputMode.STRINGS:
            array_collector = ArrayCollector(total)
            batches = iter_batches(items, mode=mode, batch_size=batch_size)
            await run_stream(transport, batches, settings, array_collector)
            return array_collector.result()
        documents = DocumentList()
        document_collector = DocumentCollector(documents)
        batches = iter_batches(items, mode=mode, batch_size=batch_size, collected=documents)
        await run_stream(transport, batches, settings, document_collector)
        return document_collector.result()
