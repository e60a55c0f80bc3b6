"""HTTP and WebSocket redirects are never followed: a typed error names where they pointed.

A redirecting server answers every request with a 3xx and a Location on another origin (a recording
server, which must never see a request: followed, a 307 would re-post the body there, and aiohttp would
send ``X-Api-Key`` along, dropping only ``Authorization``).
"""

from __future__ import annotations

import secrets
from typing import ContextManager, Dict, Iterator, List, Tuple

import pytest
from aiohttp import web

from aclip import AsyncClient, Client, HTTPStatusError
from tests.hostile_http import serve_app

pytestmark = pytest.mark.anyio

TOKEN = "tok-" + secrets.token_hex(12)
API_KEY = "key-" + secrets.token_hex(12)
CREDENTIALS = {"credential": {"Authorization": TOKEN}, "headers": {"X-Api-Key": API_KEY}}

Seen = List[Tuple[str, str, Dict[str, str]]]


def recording_app(seen: Seen) -> web.Application:
    """Answers 200 to anything, after writing down its method, path and headers."""

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.path, dict(request.headers)))
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    return app


def redirecting_app(status: int, location: str, asked: List[str]) -> web.Application:
    """Answers every request (the WebSocket handshake included) with ``status`` and ``location``."""

    async def redirect(request: web.Request) -> web.StreamResponse:
        asked.append(f"{request.method} {request.path}")
        await request.read()
        return web.Response(status=status, headers={"Location": location})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Tuple[int, Seen]]:
    """The other origin the redirects point to, and what it has seen."""
    seen: Seen = []
    with serve_app(lambda: recording_app(seen)) as port:
        yield port, seen


def redirector(status: int, location: str) -> Tuple[ContextManager[int], List[str]]:
    """A redirecting server (to start with ``with``) and the requests it was asked."""
    asked: List[str] = []
    return serve_app(lambda: redirecting_app(status, location, asked)), asked


STATUSES = (301, 302, 303, 307, 308)
SCHEMES = {"http": "http", "websocket": "ws"}


@pytest.mark.parametrize("protocol", ["http", "websocket"])
@pytest.mark.parametrize("status", STATUSES)
async def test_a_redirect_to_another_origin_is_a_typed_error_naming_it(
    elsewhere: Tuple[int, Seen], protocol: str, status: int
) -> None:
    port, seen = elsewhere
    seen.clear()
    target = f"http://127.0.0.1:{port}/moved"
    served, asked = redirector(status, target)
    with served as redirecting:
        url = f"{SCHEMES[protocol]}://127.0.0.1:{redirecting}"
        async with AsyncClient(url, max_retries=3, **CREDENTIALS) as client:
            with pytest.raises(HTTPStatusError) as caught:
                await client.aencode(["goes nowhere"])
            [reason] = await client.readiness(timeout=5)
    error = caught.value
    assert error.status == status
    assert target in str(error) and "redirect" in str(error)
    assert reason is not None and target in reason
    assert seen == []  # nothing, not the body, not the token, not the headers, reached the other origin
    assert len(asked) == 2  # one call, not retried, and one readiness probe
    for text in (str(error), repr(error), reason):
        assert TOKEN not in text and API_KEY not in text


@pytest.mark.parametrize("protocol", ["http", "websocket"])
async def test_a_same_origin_redirect_is_refused_too(protocol: str) -> None:
    served, asked = redirector(307, "/elsewhere")
    with served as port, Client(f"{SCHEMES[protocol]}://127.0.0.1:{port}", **CREDENTIALS) as client:
        with pytest.raises(HTTPStatusError) as caught:
            client.encode(["stays"])
        assert f"127.0.0.1:{port}/elsewhere" in str(caught.value)
    assert caught.value.status == 307
    assert len(asked) == 1


async def test_the_target_shown_carries_no_user_or_password() -> None:
    served, _ = redirector(302, "http://someone:pa55word@127.0.0.1:9/x")
    with served as port:
        async with AsyncClient(f"http://127.0.0.1:{port}", max_retries=0) as client:
            with pytest.raises(HTTPStatusError) as caught:
                await client.aencode(["x"])
    assert "http://127.0.0.1:9/x" in str(caught.value) and "pa55word" not in str(caught.value)
