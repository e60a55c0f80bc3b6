"""``strings_are_text=True``: every str is a sentence, and no string makes the client read a file or fetch a URL.

A service that passes its users' text to ``aencode`` must not let ``"/srv/secret.png"`` (or the name of a
symlink to ``/etc/passwd``) be read from its disk and sent on. The default keeps the upstream rule, for scripts.
"""

from __future__ import annotations

import base64
import pathlib
from dataclasses import dataclass
from typing import Any, List, NoReturn

import aiohttp
import numpy as np
import pytest
from aiohttp import web

import aclip._engine.fetch
import aclip._engine.inputs
import aclip._engine.loading
from aclip import AsyncClient, Client, Document
from aclip.testing import ReferenceServer
from tests.conftest import Endpoint
from tests.helpers import expected_embedding, expected_text, png_bytes
from tests.test_examples import load_example

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Files:
    image: pathlib.Path  # a real PNG, which the default rule would read and send
    link: pathlib.Path  # link.png -> a file that is no image (think /etc/passwd)
    png: bytes


@pytest.fixture
def files(tmp_path: pathlib.Path) -> Files:
    png = png_bytes(seed=31)
    image = tmp_path / "secret.png"
    image.write_bytes(png)
    private = tmp_path / "passwd"
    private.write_text("root:x:0:0:root:/root:/bin/bash\n")
    link = tmp_path / "link.png"
    link.symlink_to(private)
    return Files(image, link, png)


@pytest.fixture
def nothing_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading a file, decoding a data URI or downloading an image fails the test."""

    def forbidden(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"an input was loaded: {args!r}")

    monkeypatch.setattr(aclip._engine.loading, "_read_image_file", forbidden)
    monkeypatch.setattr(aclip._engine.loading, "_decode_data_uri", forbidden)
    monkeypatch.setattr(aclip._engine.fetch.ImageFetcher, "fetch", forbidden)


def sentences(files: Files) -> List[str]:
    return [
        str(files.image),
        str(files.link),
        f"file://{files.image}",
        "My favourite picture is cat.png",
        "https://example.com/x.png",
        "http://127.0.0.1:9/x.png",
        "data:image/png;base64," + base64.b64encode(files.png).decode(),
    ]


async def test_every_string_is_a_sentence_on_every_protocol(
    plain_endpoint: Endpoint, files: Files, nothing_loaded: None
) -> None:
    texts = sentences(files)
    async with plain_endpoint.async_client(strings_are_text=True, fetch_remote_images=True) as client:
        vectors = await client.aencode(texts, batch_size=3)
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))


async def test_by_default_an_image_path_is_still_read(grpc_url: str, files: Files) -> None:
    async with AsyncClient(grpc_url) as client:
        vectors = await client.aencode([str(files.image)])
    np.testing.assert_array_equal(vectors[0], expected_embedding(files.png))


async def test_collect_iter_index_search_and_profile_take_strings_as_sentences(
    server: ReferenceServer, files: Files, nothing_loaded: None
) -> None:
    path, link = str(files.image), str(files.link)
    async with AsyncClient(server.url("grpc"), strings_are_text=True) as client:
        outcome = await client.aencode_collect([path, link])
        assert outcome.failed == {}
        np.testing.assert_array_equal(outcome.results, np.stack([expected_text(path), expected_text(link)]))

        async with client.aencode_iter([path, link], batch_size=1) as parts:
            rows = {part.positions[0]: part.embeddings async for part in parts}
        np.testing.assert_array_equal(rows[1], expected_text(link)[None, :])

        server.executor.clear_index()
        indexed = await client.aindex([path, "a dog on a mat"])
        assert [(d.text, d.uri) for d in indexed] == [(path, None), ("a dog on a mat", None)]
        [hit] = await client.asearch([path], limit=1)
        assert hit.text == path and hit.uri is None and hit.matches[0].text == path

        times = await client.aprofile(link, show=False)
        assert times["Roundtrip"] > 0
    server.executor.clear_index()


async def test_documents_still_say_what_they_are(grpc_url: str, files: Files) -> None:
    async with AsyncClient(grpc_url, strings_are_text=True) as client:
        image, sentence = await client.aencode([Document(uri=str(files.image)), Document(text=str(files.image))])
    np.testing.assert_array_equal(image.embedding, expected_embedding(files.png))
    np.testing.assert_array_equal(sentence.embedding, expected_text(str(files.image)))


def test_the_sync_client_takes_the_option(grpc_url: str, files: Files, nothing_loaded: None) -> None:
    with Client(grpc_url, strings_are_text=True) as client:
        vectors = client.encode([str(files.link)])
        [doc] = client.index([str(files.image)])
    np.testing.assert_array_equal(vectors[0], expected_text(str(files.link)))
    assert doc.text == str(files.image)


def test_the_option_is_true_or_false(grpc_url: str) -> None:
    with pytest.raises(TypeError, match="strings_are_text must be True or False"):
        AsyncClient(grpc_url, strings_are_text="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="strings_are_text must be True or False"):
        Client(grpc_url, strings_are_text=1)  # type: ignore[arg-type]


# -- the web-service examples: what their users send is text --------------------------------------------------


def test_the_fastapi_example_never_reads_a_users_path(
    grpc_url: str, files: Files, nothing_loaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    example = load_example("fastapi_app", grpc_url, monkeypatch)
    texts = [str(files.image), str(files.link), "My favourite picture is cat.png"]
    with TestClient(example.app) as http:
        answer = http.post("/embed", json={"sentences": texts})
    assert answer.status_code == 200, answer.text
    np.testing.assert_array_equal(
        np.asarray(answer.json()["embeddings"], dtype=np.float32), np.stack([expected_text(t) for t in texts])
    )


async def test_the_aiohttp_example_never_reads_a_users_path(
    grpc_url: str, files: Files, nothing_loaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example("aiohttp_app", grpc_url, monkeypatch)
    runner = web.AppRunner(example.make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    texts = [str(files.link), "https://example.com/x.png"]
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/embed", json={"sentences": texts}) as answer,
        ):
            assert answer.status == 200, await answer.text()
            body = await answer.json()
    finally:
        await runner.cleanup()
    np.testing.assert_array_equal(
        np.asarray(body["embeddings"], dtype=np.float32), np.stack([expected_text(t) for t in texts])
    )
