"""Downloading http(s) images on the event loop (``fetch_remote_images``): bounded in time and in size.

Image URLs come from the caller's input, so their hosts are strangers, and a stranger may trickle a byte
a second, announce or stream gigabytes, send a compressed bomb, answer with an HTML error page, or cut the
body short. Each download therefore ends by the earlier of its own limit (:data:`DOWNLOAD_TIME_LIMIT`) and
the deadline of the request the image will travel in; its body may not pass the client's
``max_message_size`` (refused before reading when Content-Length says so, else as soon as the running
count passes it); it is asked for without compression and refused if compressed anyway; and anything but
a 2xx answer with image content is an :class:`~aclip.InputError` naming the input's position.

Nothing of ours goes with a download: a session of its own (the transports' session carries the token),
none of the client's headers, no cookies kept between requests, redirects followed but capped.

Example::

    async with ImageFetcher(max_bytes=64 << 20, trust_env=False, connect_timeout=10.0) as images:
        png = await images.fetch("https://example.com/cat.png", 0, until=anyio.current_time() + 30)
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import List, Optional, Type

import aiohttp
import anyio

from .._deadline import bounded
from .._exceptions import InputError, RequestTimeoutError
from .inputs import _shown

#: Seconds one image download may take, however far away the deadline of its request is: a host that
#: trickles an image cannot hold a call without a timeout for ever.
DOWNLOAD_TIME_LIMIT = 30.0
#: Redirects followed per download (we send no credential, so following them leaks nothing).
MAX_REDIRECTS = 5

_CHUNK_SIZE = 64 * 1024
_CLOSE_LIMIT = 5.0  # seconds closing the session may take
# identity: the body is the image itself, so max_bytes bounds what is held, with no decompression bomb.
_REQUEST_HEADERS = {"Accept": "image/*, application/octet-stream;q=0.9, */*;q=0.1", "Accept-Encoding": "identity"}
# What object stores (S3, GCS) call files they were not told the type of.
_UNTYPED_BINARY = frozenset({"application/octet-stream", "binary/octet-stream"})


def is_image_content_type(header: Optional[str]) -> bool:
    """Whether a Content-Type header may carry an image: ``image/*``, untyped binary, or no header at all.

    Example::

        >>> is_image_content_type("image/png"), is_image_content_type(None), is_image_content_type("text/html")
        (True, True, False)
    """
    media_type = (header or "").split(";", 1)[0].strip().lower()
    return not media_type or media_type.startswith("image/") or media_type in _UNTYPED_BINARY


class ImageFetcher:
    """Downloads the remote images of one call over a session of its own; an async context manager.

    The session opens on the first download, so a call without remote images never opens one, and
    closes with the block (within a few seconds, even when the call was cancelled).

    ``max_bytes``: the largest body accepted (the client's ``max_message_size``). ``trust_env``: take
    proxies from ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (and, as aiohttp does with it, credentials
    for the image's host from ``~/.netrc``), as the transports do. ``connect_timeout``: seconds to wait
    for a connection. ``ssl_context``: how https image hosts are verified (None: the system's CAs; not
    the context of the CLIP server, which may hold the client's certificate). ``time_limit``: seconds one
    download may take at most (:data:`DOWNLOAD_TIME_LIMIT`).

    Example::

        async with ImageFetcher(max_bytes=1 << 30, trust_env=False, connect_timeout=10.0) as images:
            data = await images.fetch(url, position=3, until=deadline.for_new_request())
    """

    def __init__(
        self,
        *,
        max_bytes: int,
        trust_env: bool,
        connect_timeout: float,
        ssl_context: Optional[ssl.SSLContext] = None,
        time_limit: float = DOWNLOAD_TIME_LIMIT,
    ) -> None:
        self.max_bytes = max_bytes
        self.trust_env = trust_env
        self.connect_timeout = connect_timeout
        self.ssl_context = ssl_context
        self.time_limit = time_limit
        self._session: Optional[aiohttp.ClientSession] = None
        self._open_block = False  # inside its ``async with``: only then may a session be made

    def __repr__(self) -> str:
        return f"ImageFetcher(max_bytes={self.max_bytes}, trust_env={self.trust_env})"

    async def __aenter__(self) -> ImageFetcher:
        self._open_block = True
        return self

    def _open(self) -> aiohttp.ClientSession:
        """The session, made on the first download (no await: two downloads cannot both make one)."""
        if not self._open_block:  # a session made outside the block would never be closed
            raise RuntimeError("ImageFetcher.fetch() needs an open fetcher: use it in 'async with'")
        if self._session is not None:
            return self._session
        from .. import __version__

        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
        wait = self.connect_timeout
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=wait, sock_connect=wait),
            headers={"User-Agent": f"aclip/{__version__} (image download)"},
            auto_decompress=False,
            trust_env=self.trust_env,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self._open_block = False
        session, self._session = self._session, None
        if session is not None:
            with anyio.move_on_after(_CLOSE_LIMIT, shield=True):  # never waited for without end
                await session.close()

    async def fetch(self, url: str, position: int, *, until: float) -> bytes:
        """The body of ``url``, the image of input ``position``; by ``until`` (anyio's clock) at the latest.

        Raises RequestTimeoutError (``positions == [position]``) when ``until`` ends the download first,
        and InputError naming the position for everything else: its own time limit, a body over
        ``max_bytes``, a non-2xx answer, a short or compressed body, content that is not an image, no
        connection.
        """
        with bounded(self.time_limit, until) as wait:
            return await self._download(self._open(), url, position)
        if wait.by_own_limit:
            raise _cannot(url, position, f"the download did not finish within {self.time_limit:g} s")
        raise RequestTimeoutError(
            f"input {position}: downloading the image {_shown(url)} did not finish before the request's deadline",
            positions=[position],
        )

    async def _download(self, session: aiohttp.ClientSession, url: str, position: int) -> bytes:
        try:
            async with session.get(url, headers=_REQUEST_HEADERS, max_redirects=MAX_REDIRECTS) as answer:
                self._check_head(answer, url, position)
                return await self._read_body(answer, url, position)
        except InputError:
            raise
        except aiohttp.TooManyRedirects:
            raise _cannot(url, position, f"more than {MAX_REDIRECTS} redirects") from None
        except (aiohttp.ClientSSLError, ssl.SSLError) as err:
            raise _cannot(url, position, f"TLS failed: {err}") from err
        except aiohttp.ClientProxyConnectionError as err:
            raise _cannot(url, position, f"cannot connect to the proxy (trust_env=True): {err}") from err
        except aiohttp.ServerTimeoutError as err:
            reason = f"no connection within connect_timeout={self.connect_timeout:g} s"
            raise _cannot(url, position, reason) from err
        except (aiohttp.ClientError, OSError, ValueError) as err:  # refused, unreachable, reset, a bad URL
            raise _cannot(url, position, f"{type(err).__name__}: {err}") from err

    def _check_head(self, answer: aiohttp.ClientResponse, url: str, position: int) -> None:
        """Refuse an answer on its status and headers alone, before reading a byte of its body."""
        if not 200 <= answer.status < 300:
            raise _cannot(url, position, f"the host answered HTTP {answer.status} {answer.reason or ''}".rstrip())
        encoding = answer.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise _cannot(url, position, f"the host sent it {encoding}-encoded although aclip asked for no encoding")
        content_type = answer.headers.get("Content-Type")
        if not is_image_content_type(content_type):
            raise _cannot(url, position, f"the host answered with {content_type!r} content, not an image")
        if answer.content_length is not None and answer.content_length > self.max_bytes:
            raise self._too_large(url, position, f"{answer.content_length} bytes announced")

    async def _read_body(self, answer: aiohttp.ClientResponse, url: str, position: int) -> bytes:
        chunks: List[bytes] = []
        size = 0
        expected = answer.content_length
        try:
            async for chunk in answer.content.iter_chunked(_CHUNK_SIZE):
                size += len(chunk)
                if size > self.max_bytes:
                    answer.close()  # not read to its end: the connection goes, not back to the pool
                    raise self._too_large(url, position, f"more than {self.max_bytes} bytes sent")
                chunks.append(chunk)
        except aiohttp.ClientPayloadError as err:
            raise _cannot(url, position, f"the body ended after {size} of {expected} bytes") from err
        if expected is not None and size < expected:
            raise _cannot(url, position, f"the body ended after {size} of {expected} bytes")
        return b"".join(chunks)

    def _too_large(self, url: str, position: int, what: str) -> InputError:
        return InputError(
            f"input {position}: the image {_shown(url)} is over max_message_size={self.max_bytes} bytes ({what}); "
            "raise the client's max_message_size, or let the server download it (fetch_remote_images=False)",
            position=position,
        )


def _cannot(url: str, position: int, reason: str) -> InputError:
    return InputError(f"input {position}: cannot fetch the image {_shown(url)}: {reason}", position=position)
