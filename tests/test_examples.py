"""The web-service examples under examples/ serve real requests against the reference server."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from aclip.testing import ReferenceServer
from tests.conftest import PROTOCOLS
from tests.helpers import expected_text

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
SENTENCES = ["a photo of a cat", "she smiled, with pain"]


def load_example(name: str, server_url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import examples/<name>.py afresh, pointed at ``server_url`` as its CLIP_SERVER."""
    monkeypatch.setenv("CLIP_SERVER", server_url)
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_fastapi_example_embeds(server: ReferenceServer, protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    example = load_example("fastapi_app", server.url(protocol), monkeypatch)
    with TestClient(example.app) as http:
        answer = http.post("/embed", json={"sentences": SENTENCES})
        assert answer.status_code == 200, answer.text
        ready = http.get("/ready").json()
    np.testing.assert_array_equal(
        np.asarray(answer.json()["embeddings"], dtype=np.float32), np.stack([expected_text(s) for s in SENTENCES])
    )
    assert ready == {"ready": True}


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_aiohttp_example_embeds(
    server: ReferenceServer, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example("aiohttp_app", server.url(protocol), monkeypatch)
    runner = web.AppRunner(example.make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/embed", json={"sentences": SENTENCES}) as answer:
                assert answer.status == 200, await answer.text()
                body = await answer.json()
            async with http.get(f"http://127.0.0.1:{port}/ready") as answer:
                ready = await answer.json()
    finally:
        await runner.cleanup()
    np.testing.assert_array_equal(
        np.asarray(body["embeddings"], dtype=np.float32), np.stack([expected_text(s) for s in SENTENCES])
    )
    assert ready == {"ready": True}
