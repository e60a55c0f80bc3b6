"""Redirects are never followed: a 3xx answer is an HTTPStatusError that names where it pointed.

Following a redirect sends the request on to wherever the answer points: aiohttp re-posts the body on a
307 or 308, and keeps every header but ``Authorization`` and cookies even on the way to another origin (an
``X-Api-Key`` goes along), and the WebSocket handshake follows redirects with no way to turn that off. A
Jina gateway never redirects: a redirect comes from something in between (a proxy sending http to https, a
moved host), so aclip stops there and says where it pointed; the caller decides whether to use that URL.
Same-origin redirects are refused too: one rule, easy to predict, and no request is ever sent twice.

HTTP requests go with ``allow_redirects=False`` and their 3xx answers become :func:`refused_redirect`; the
WebSocket handshake is stopped by :func:`redirect_refusing_trace` before aiohttp sends a second request.

Example::

    >>> from yarl import URL
    >>> redirect_target(URL("http://gateway:8080/post"), "/v2/post")
    'http://gateway:8080/v2/post'
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

import aiohttp
from yarl import URL

from .._config import ServerAddress
from .._exceptions import HTTPStatusError

#: How much of a Location is shown (a hostile server may send a very long one).
_SHOWN = 300


def is_redirect(answer: aiohttp.ClientResponse) -> bool:
    """Whether an answer is a redirect: a 3xx status with a Location to go to."""
    return 300 <= answer.status < 400 and aiohttp.hdrs.LOCATION in answer.headers


def redirect_target(requested: URL, location: Optional[str]) -> str:
    """Where a redirect points, resolved against the URL it answered, without any user:password in it."""
    if location is None:
        return "nowhere (no Location header)"
    try:
        target = requested.join(URL(location))
        shown = str(target.with_user(None) if target.absolute else target)
    except (ValueError, TypeError):
        shown = repr(location)
    return shown[:_SHOWN]


def refused_redirect(address: ServerAddress, status: int, location: Optional[str], requested: URL) -> HTTPStatusError:
    """The error for a redirect aclip did not follow: its status, and where it pointed (``detail``)."""
    target = redirect_target(requested, location)
    return HTTPStatusError(
        f"{address} answered HTTP {status}, a redirect to {target}; aclip follows no redirect, since that would "
        "send the request, the token and the headers on to it: give that URL as the server if you trust it",
        status=status,
        detail=f"redirect to {target}",
    )


def redirect_refusing_trace(address: ServerAddress) -> aiohttp.TraceConfig:
    """A session trace that stops every redirect aiohttp is about to follow (the WebSocket handshake's).

    aiohttp calls it when a redirect arrives and before it sends anything to the new location; the error
    raised here ends the request there, and aiohttp releases the connection.
    """

    async def refuse(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestRedirectParams
    ) -> None:
        answer = params.response
        answer.close()
        raise refused_redirect(address, answer.status, answer.headers.get(aiohttp.hdrs.LOCATION), params.url)

    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(refuse)
    return trace
