"""encode end to end against the reference server, over every protocol, plain and TLS."""

from __future__ import annotations

import asyncio
import base64
import pathlib
from typing import Iterator

import anyio
import numpy as np
import pytest

from aclip import AsyncClient, Document, DocumentList, InputError, MissingEmbeddingError, ServerError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import Endpoint
from tests.helpers import expected_embedding, expected_tensor, expected_text, png_bytes

pytestmark = pytest.mark.anyio


async def test_sentences_give_exact_embeddings_in_order(endpoint: Endpoint) -> None:
    texts = ["she smiled, with pain", "hello, world", "a photo of a cat", "hello, world"]
    async with endpoint.async_client() as client:
        vectors = await client.aencode(texts, batch_size=3)
    assert isinstance(vectors, np.ndarray)
    assert vectors.shape == (4, 512) and vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))
    vectors[0, 0] = 42.0  # results are the caller's to edit


async def test_ten_thousand_strings_from_a_generator(endpoint: Endpoint) -> None:
    def sentences() -> Iterator[str]:
        for i in range(10_000):
            yield f"sentence number {i}"

    async with endpoint.async_client() as client:
        vectors = await client.aencode(sentences(), batch_size=7)
    assert isinstance(vectors, np.ndarray) and vectors.shape == (10_000, 512)
    for i in (0, 1, 6, 7, 4_999, 9_993, 9_999):
        np.testing.assert_array_equal(vectors[i], expected_text(f"sentence number {i}"))
    # every row is its own sentence's, not a neighbour's
    assert len({row.tobytes() for row in vectors}) == 10_000


async def test_duplicate_and_empty_ids_are_placed_by_position(endpoint: Endpoint) -> None:
    docs = [
        Document(text="first", id="same"),
        Document(text="second", id="same"),
        Document(text="third", id=""),
        Document(text="fourth", id=""),
        Document(text="fifth", id="same"),
    ]
    async with endpoint.async_client() as client:
        result = await client.aencode(docs, batch_size=2)
    assert isinstance(result, DocumentList)
    assert [id(d) for d in result] == [id(d) for d in docs]  # the caller's own objects, in order
    for doc in docs:
        assert doc.text is not None and doc.embedding is not None
        np.testing.assert_array_equal(doc.embedding, expected_text(doc.text))


@pytest.mark.parametrize("protocol", ["grpc", "websocket"])
async def test_out_of_order_answers_come_out_in_input_order(
    out_of_order_server: ReferenceServer, protocol: str
) -> None:
    before = out_of_order_server.stats.responses_out_of_order
    texts = [f"t{i}" for i in range(300)]
    async with AsyncClient(out_of_order_server.url(protocol)) as client:
        vectors = await client.aencode(texts, batch_size=4, prefetch=8)
        docs = await client.aencode([Document(text=t, id="dup") for t in texts[:40]], batch_size=3, prefetch=6)
    assert out_of_order_server.stats.responses_out_of_order - before > 10  # the server really reordered
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))
    for doc in docs:
        np.testing.assert_array_equal(doc.embedding, expected_text(doc.text or ""))


async def test_images_from_path_data_uri_bytes_and_tensor(endpoint: Endpoint, tmp_path: pathlib.Path) -> None:
    images = [png_bytes(seed=i) for i in range(3)]
    path = tmp_path / "apple.png"
    path.write_bytes(images[0])
    data_uri = "data:image/png;base64," + base64.b64encode(images[1]).decode()
    tensor = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    async with endpoint.async_client() as client:
        vectors = await client.aencode(["a sentence", str(path), data_uri])
        docs = await client.aencode(
            [
                Document(uri=str(path)),
                Document(uri=data_uri),
                Document(blob=images[2]),
                Document(tensor=tensor),
                Document(text="caption wins", uri=str(path)),
            ]
        )
    np.testing.assert_array_equal(vectors[0], expected_text("a sentence"))
    np.testing.assert_array_equal(vectors[1], expected_embedding(images[0]))
    np.testing.assert_array_equal(vectors[2], expected_embedding(images[1]))
    expected = [
        expected_embedding(images[0]),
        expected_embedding(images[1]),
        expected_embedding(images[2]),
        expected_tensor(tensor),
        expected_text("caption wins"),
    ]
    for doc, vector in zip(docs, expected):
        np.testing.assert_array_equal(doc.embedding, vector)
    assert docs[0].blob is None and docs[1].blob is None  # the client gave the caller's Documents no bytes
    assert docs[0].mime_type == "image/png"


async def test_empty_input_gives_an_empty_result_of_the_matching_type(endpoint: Endpoint) -> None:
    async with endpoint.async_client() as client:
        vectors = await client.aencode([])
        from_generator = await client.aencode(text for text in list[str]())
        docs = await client.aencode(DocumentList())
    assert isinstance(vectors, np.ndarray) and vectors.shape[0] == 0 and vectors.dtype == np.float32
    assert isinstance(from_generator, np.ndarray) and from_generator.shape[0] == 0
    assert isinstance(docs, DocumentList) and len(docs) == 0


async def test_empty_string_names_its_position(endpoint: Endpoint) -> None:
    async with endpoint.async_client() as client:
        with pytest.raises(MissingEmbeddingError) as caught:
            await client.aencode(["fine", "", "also fine", ""], batch_size=3)
        docs = await client.aencode([Document(text="fine"), Document(text=""), Document()])
    assert caught.value.positions == [1, 3]
    assert "positions 1, 3" in str(caught.value)
    assert docs[0].embedding is not None and docs[1].embedding is None and docs[2].embedding is None


async def test_a_str_instead_of_a_list_is_a_type_error(endpoint: Endpoint) -> None:
    async with endpoint.async_client() as client:
        with pytest.raises(TypeError, match=r"wrap it in a list: \['hello'\]"):
            await client.aencode("hello")


async def test_mixed_inputs_name_the_offending_position(endpoint: Endpoint) -> None:
    async with endpoint.async_client() as client:
        with pytest.raises(TypeError, match="input 2 is a Document but input 0 is a str"):
            await client.aencode(["a", "b", Document(text="c")])  # type: ignore[list-item]


async def test_missing_file_is_an_input_error(endpoint: Endpoint, tmp_path: pathlib.Path) -> None:
    async with endpoint.async_client() as client:
        with pytest.raises(InputError, match=r"input 9: .*missing\.png") as caught:
            await client.aencode([f"s{i}" for i in range(9)] + [str(tmp_path / "missing.png")], batch_size=4)
        assert caught.value.position == 9
        vectors = await client.aencode(["still usable"])
    np.testing.assert_array_equal(vectors[0], expected_text("still usable"))


async def test_executor_failure_is_a_server_error_with_positions(endpoint: Endpoint) -> None:
    docs = [Document(text=f"t{i}") for i in range(6)] + [Document(blob=b"not an image")]
    async with endpoint.async_client() as client:
        with pytest.raises(ServerError) as caught:
            await client.aencode(docs, batch_size=4)
    assert caught.value.name == "UnidentifiedImageError"
    assert caught.value.positions == [4, 5, 6]
    assert "inputs 4..6" in str(caught.value)


async def test_parameters_are_not_mutated(endpoint: Endpoint) -> None:
    parameters = {"drop_image_content": False, "extra": {"k": [1]}}
    async with endpoint.async_client() as client:
        await client.aencode(["x"], parameters=parameters)
    assert parameters == {"drop_image_content": False, "extra": {"k": [1]}}


@pytest.mark.parametrize(("option", "value"), [("batch_size", 0), ("prefetch", -1), ("batch_size", True)])
async def test_invalid_window_options(endpoint: Endpoint, option: str, value: object) -> None:
    async with endpoint.async_client() as client:
        with pytest.raises((ValueError, TypeError), match=option):
            await client.aencode(["x"], **{option: value})  # type: ignore[call-overload]


async def test_cancelling_aencode_leaves_nothing_behind(server: ReferenceServer, plain_endpoint: Endpoint) -> None:
    reached = anyio.Event()

    def endless() -> Iterator[str]:
        i = 0
        while True:
            if i == 500:
                reached.set()
            yield f"endless {i}"
            i += 1

    tasks_before = asyncio.all_tasks()
    async with plain_endpoint.async_client() as client:
        task = asyncio.ensure_future(client.aencode(endless(), batch_size=5, prefetch=4))
        waiter = asyncio.ensure_future(reached.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert done == {waiter}, task.exception() if task.done() else "input 500 was never reached"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == tasks_before
        vectors = await client.aencode(["after the cancel"])
        np.testing.assert_array_equal(vectors[0], expected_text("after the cancel"))
    await server.wait_for_idle(timeout=10)
    assert server.stats.calls_open == 0


async def test_http_keeps_up_to_prefetch_posts_in_flight() -> None:
    with serve_in_thread(protocols=("http",), delay=0.05) as http_only:
        async with AsyncClient(http_only.url("http")) as client:
            vectors = await client.aencode([f"post {i}" for i in range(400)], batch_size=2, prefetch=4)
        peak = http_only.stats.calls_open_peak
    np.testing.assert_array_equal(vectors[399], expected_text("post 399"))
    assert 2 <= peak <= 4, peak  # concurrent, and never more than the window
