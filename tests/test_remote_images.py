"""http(s) image URLs: the client downloads them (as clip_client does), unless told to let the server."""

from __future__ import annotations

from typing import AsyncIterator, List

import numpy as np
import pytest
from aiohttp import web

from aclip import AsyncClient, Document, DocumentList, InputError
from aclip.testing import ReferenceServer
from tests.conftest import Endpoint
from tests.helpers import expected_embedding, png_bytes

pytestmark = pytest.mark.anyio
IMAGE = png_bytes(seed=61)


@pytest.fixture
async def image_host() -> AsyncIterator[tuple[str, List[str]]]:
    agents: List[str] = []

    async def serve(request: web.Request) -> web.Response:
        agents.append(request.headers.get("User-Agent", ""))
        return web.Response(body=IMAGE, content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", agents
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("fetch", [False, True], ids=["server-fetches", "client-fetches"])
async def test_who_downloads_the_image(server: ReferenceServer, image_host: tuple[str, List[str]], fetch: bool) -> None:
    base, agents = image_host
    async with AsyncClient(server.url("grpc"), fetch_remote_images=fetch) as client:
        vectors = await client.aencode([f"{base}/cat.png"])
    np.testing.assert_array_equal(vectors[0], expected_embedding(IMAGE))
    assert len(agents) == 1
    assert agents[0].startswith("aclip/") is fetch  # the client names itself; the server is plain aiohttp


async def test_a_missing_remote_image_names_the_input(
    server: ReferenceServer, image_host: tuple[str, List[str]]
) -> None:
    base, _ = image_host
    async with AsyncClient(server.url("grpc"), fetch_remote_images=True) as client:
        with pytest.raises(InputError, match=r"input 1: cannot fetch the image .*nope\.png.*404"):
            await client.aencode(["fine", f"{base}/nope.png"])


async def test_by_default_the_client_downloads_the_image_on_every_protocol(
    plain_endpoint: Endpoint, image_host: tuple[str, List[str]]
) -> None:
    """As clip_client does: the server gets the image's bytes, so it needs no route to the image's host."""
    base, agents = image_host
    async with AsyncClient(plain_endpoint.url) as client:
        vectors = await client.aencode([f"{base}/cat.png"])
        [doc] = await client.aencode(DocumentList([Document(uri=f"{base}/cat.png")]))
    np.testing.assert_array_equal(vectors[0], expected_embedding(IMAGE))
    np.testing.assert_array_equal(doc.embedding, expected_embedding(IMAGE))
    assert len(agents) == 2 and all(agent.startswith("aclip/") for agent in agents)


async def test_strings_as_text_download_nothing_whatever_the_default(
    server: ReferenceServer, image_host: tuple[str, List[str]]
) -> None:
    base, agents = image_host
    async with AsyncClient(server.url("grpc"), strings_are_text=True) as client:
        await client.aencode([f"{base}/cat.png"])
    assert agents == []
