"""Loading a document's ``uri`` on the server side, as a CLIP server does for a doc without blob or tensor.

Three kinds of URI are understood:

- ``data:`` URIs, base64 (``;base64,``) or percent-encoded;
- local files, as a plain path (relative to the server's working directory) or a ``file://`` URL;
- ``http://`` and ``https://`` URLs, fetched with aiohttp under a short total timeout.

File reads run in a worker thread so they never block the event loop. Every failure raises an exception
whose message names the URI; the executor turns it into an error response for that request.

Example::

    >>> import anyio
    >>> anyio.run(load_uri, "data:text/plain,hi%21")
    (b'hi!', 'text/plain')
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import mimetypes
import os
from urllib.parse import unquote, unquote_to_bytes, urlsplit
from urllib.request import url2pathname

import anyio.to_thread

__all__ = ["DEFAULT_FETCH_TIMEOUT", "load_uri"]

#: Seconds an http(s) URI may take to download before the request fails.
DEFAULT_FETCH_TIMEOUT = 5.0


async def load_uri(uri: str, *, timeout: float = DEFAULT_FETCH_TIMEOUT) -> tuple[bytes, str]:
    """Return ``(content, mime_type)`` for ``uri``; ``mime_type`` is ``""`` when it cannot be told.

    Raises FileNotFoundError for a path that is not a file (or a scheme we do not load), ValueError for a
    malformed data URI, TimeoutError for a download that takes longer than ``timeout`` seconds, and
    aiohttp's ClientError for other download failures (an HTTP status >= 400 included).

    Example::

        >>> anyio.run(load_uri, "data:image/png;base64,iVBORw0KGgo=")
        (b'\\x89PNG\\r\\n\\x1a\\n', 'image/png')
    """
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "data":
        return _decode_data_uri(uri)
    if scheme in ("http", "https"):
        return await _fetch(uri, timeout)
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise FileNotFoundError(f"`{uri}` is not a URL or a valid local path")
        path = url2pathname(unquote(parts.path))
    elif len(scheme) > 1:  # one letter is a Windows drive, anything longer a scheme we do not load
        raise FileNotFoundError(f"`{uri}` is not a URL or a valid local path")
    else:
        path = uri
    data = await anyio.to_thread.run_sync(_read_file, path, uri)
    return data, mimetypes.guess_type(path)[0] or ""


def _read_file(path: str, uri: str) -> bytes:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"`{uri}` is not a URL or a valid local path")
    with open(path, "rb") as f:
        return f.read()


def _decode_data_uri(uri: str) -> tuple[bytes, str]:
    header, sep, payload = uri[len("data:") :].partition(",")
    if not sep:
        raise ValueError(f"`{uri[:60]}` is not a valid data URI: no ',' before the data")
    media_type, *params = header.split(";")
    raw = unquote_to_bytes(payload)
    if params and params[-1].strip().lower() == "base64":
        try:
            raw = base64.b64decode(raw, validate=False)
        except binascii.Error as exc:
            raise ValueError(f"`{uri[:60]}` is not a valid data URI: {exc}") from None
    return raw, media_type.strip().lower()


async def _fetch(uri: str, timeout: float) -> tuple[bytes, str]:
    import aiohttp  # imported on first use: most test runs never fetch over HTTP

    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
    try:
        async with session, session.get(uri, raise_for_status=True) as response:
            data = await response.read()
            content_type = response.content_type if "Content-Type" in response.headers else ""
    except (asyncio.TimeoutError, TimeoutError):  # distinct classes before Python 3.11
        raise TimeoutError(f"fetching `{uri}` took longer than {timeout:g} s") from None
    if content_type in ("", "application/octet-stream"):
        content_type = mimetypes.guess_type(urlsplit(uri).path)[0] or ""
    return data, content_type
