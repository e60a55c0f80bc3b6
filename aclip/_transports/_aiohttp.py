"""What the HTTP and WebSocket transports share: an aiohttp session per event loop, and error translation."""

from __future__ import annotations

import asyncio
import ssl
from typing import ClassVar, Dict, Optional, Tuple

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from .._config import ServerAddress
from .._exceptions import AclipError, ConnectError, TLSError, TransportError
from ._closing import refuse_if_closed
from ._redirects import redirect_refusing_trace
from .base import Transport, TransportOptions


def new_session(options: TransportOptions, address: ServerAddress) -> aiohttp.ClientSession:
    """A session for one event loop. The engine bounds requests in flight, so the connector does not.

    With ``trust_env`` aiohttp takes proxies from ``HTTP_PROXY``/``HTTPS_PROXY``/``WS_PROXY``/``WSS_PROXY``
    (and their lower-case forms, ``NO_PROXY`` excepted hosts) and credentials from ``~/.netrc``.

    Bodies are not decompressed by aiohttp: it would inflate each chunk whole, with no bound but memory, so
    a gzip bomb of a few hundred kB could become gigabytes before ``max_message_size`` is looked at. The
    HTTP transport inflates them itself, within the limit (:mod:`aclip._transports.http`).

    Redirects are never followed, not even by the WebSocket handshake (see :mod:`._redirects`).
    """
    ssl_context = options.ssl_context
    connector = aiohttp.TCPConnector(limit=0, ssl=ssl_context if ssl_context is not None else False)
    wait = options.connect_timeout
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=wait, connect=wait)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        trust_env=options.trust_env,
        trace_configs=[redirect_refusing_trace(address)],
    )


def hide_request_headers(err: BaseException) -> None:
    """Replace the header values an aiohttp error keeps, in place, so that it can be chained and logged.

    A ClientResponseError (a refused WebSocket handshake is one) keeps the request's ``request_info``,
    headers and all, and shows it in its repr and its args: the token and every other header value would be
    written out with a traceback. What remains is the URL, the method, the status and the header names.
    """
    if not isinstance(err, aiohttp.ClientResponseError):
        return
    info = err.request_info
    hidden = CIMultiDictProxy(CIMultiDict((name, "<hidden>") for name in info.headers))
    safe = aiohttp.RequestInfo(url=info.url, method=info.method, headers=hidden, real_url=info.real_url)
    err.request_info = safe
    err.args = tuple(safe if arg is info else arg for arg in err.args)


def translate_error(err: BaseException, address: ServerAddress) -> AclipError:
    """The aclip error for an aiohttp/OS error met while talking to ``address`` (raise it ``from err``:
    the header values ``err`` kept are hidden first)."""
    if isinstance(err, AclipError):
        return err
    hide_request_headers(err)
    if isinstance(err, (aiohttp.ClientSSLError, ssl.SSLError)):
        return TLSError(f"TLS with {address} failed: {err}")
    if isinstance(err, aiohttp.ClientConnectorError):
        return ConnectError(f"cannot connect to {address}: {err.os_error or err}")
    if isinstance(err, (asyncio.TimeoutError, TimeoutError)):
        return ConnectError(f"cannot connect to {address}: timed out")
    if isinstance(err, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError)):
        return TransportError(f"the connection to {address} broke off: {err}")
    if isinstance(err, OSError):
        return ConnectError(f"cannot connect to {address}: {err}")
    return TransportError(f"talking to {address} failed: {type(err).__name__}: {err}")


class AiohttpTransport(Transport):
    """The part of the HTTP and WebSocket transports that is the same: a URL, headers, one session per loop.

    Subclasses name their URL schemes (plain, TLS), path and extra headers as class attributes.
    """

    schemes: ClassVar[Tuple[str, str]]
    path: ClassVar[str]
    extra_headers: ClassVar[Dict[str, str]] = {}

    def __init__(self, address: ServerAddress, options: TransportOptions) -> None:
        self._address = address
        host = f"[{address.host}]" if ":" in address.host else address.host
        self._base_url = f"{self.schemes[1] if address.tls else self.schemes[0]}://{host}:{address.port}"
        self._url = self._base_url + self.path
        self._options = options
        self._headers = {**self.extra_headers, **options.headers}
        self._connect_timeout = options.connect_timeout
        self._session: Optional[aiohttp.ClientSession] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._address)!r})"

    def _get_session(self) -> aiohttp.ClientSession:
        refuse_if_closed(self, self._address)
        if self._session is None or self._session.closed:
            self._session = new_session(self._options, self._address)
        return self._session

    def _headers_with(self, headers: Optional[Dict[str, str]]) -> Dict[str, str]:
        """The headers of one call: the client's, with the call's own on top."""
        return {**self._headers, **headers} if headers else self._headers

    async def aclose(self) -> None:
        self.mark_closed()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
