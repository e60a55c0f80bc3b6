"""Streamed results: every position exactly once, as parts complete; leaving early leaves nothing behind."""

from __future__ import annotations

import asyncio
import pathlib
import threading
from typing import Iterator, List

import anyio
import anyio.to_thread
import numpy as np
import pytest

import aclip._engine.loading
from aclip import AsyncClient, Client, Document, Part
from aclip.testing import ReferenceServer
from tests.conftest import Endpoint
from tests.helpers import expected_embedding, expected_text, png_bytes

pytestmark = pytest.mark.anyio


async def test_every_position_once_with_its_own_embedding(plain_endpoint: Endpoint) -> None:
    texts = [f"streamed {i}" for i in range(101)]
    seen: List[int] = []
    client = plain_endpoint.async_client()
    async with client, client.aencode_iter((t for t in texts), batch_size=4, prefetch=3) as parts:
        async for part in parts:
            assert isinstance(part, Part) and part.embeddings is not None
            assert part.embeddings.shape == (len(part.positions), 512)
            for row, position in zip(part.embeddings, part.positions):
                np.testing.assert_array_equal(row, expected_text(texts[position]))
            seen.extend(part.positions)
    assert sorted(seen) == list(range(101))


async def test_documents_come_back_in_their_parts(out_of_order_server: ReferenceServer) -> None:
    docs = [Document(text=f"d{i}", id="same") for i in range(30)]
    client = AsyncClient(out_of_order_server.url("websocket"))
    async with client, client.aencode_iter(docs, batch_size=3, prefetch=4) as parts:
        collected = [part async for part in parts]
    order = [p for part in collected for p in part.positions]
    assert sorted(order) == list(range(30)) and order != list(range(30))  # completion order, all of them
    for part in collected:
        assert part.documents is not None and [d.text for d in part.documents] == [f"d{p}" for p in part.positions]
        for doc in part.documents:
            np.testing.assert_array_equal(doc.embedding, expected_text(doc.text or ""))


async def test_leaving_early_cancels_the_rest(server: ReferenceServer, plain_endpoint: Endpoint) -> None:
    def endless() -> Iterator[str]:
        i = 0
        while True:
            yield f"endless {i}"
            i += 1

    tasks_before = asyncio.all_tasks()
    async with plain_endpoint.async_client() as client:
        async with client.aencode_iter(endless(), batch_size=5, prefetch=2) as parts:
            async for part in parts:
                assert part.positions == range(0, 5) or part.positions.start % 5 == 0
                break
        assert asyncio.all_tasks() == tasks_before
        vectors = await client.aencode(["still usable"])
    np.testing.assert_array_equal(vectors[0], expected_text("still usable"))
    await server.wait_for_idle(timeout=10)


def test_sync_iterator(server: ReferenceServer, plain_endpoint: Endpoint) -> None:
    texts = [f"sync streamed {i}" for i in range(50)]
    with plain_endpoint.client() as client:
        seen = {
            p: row
            for part in client.encode_iter(texts, batch_size=7)
            for p, row in zip(part.positions, part.embeddings)
        }  # type: ignore[arg-type]
        assert sorted(seen) == list(range(50))
        np.testing.assert_array_equal(seen[49], expected_text(texts[49]))
        threads_before = threading.active_count()
        for part in client.encode_iter((t for t in texts * 1000), batch_size=5, prefetch=2):
            assert part.positions.start % 5 == 0
            break  # closing the generator cancels the rest
        assert threading.active_count() == threads_before
        assert client.encode(["after"]).shape == (1, 512)
    server.stats.wait_for_idle(timeout=10)
    assert server.stats.calls_open == 0


def test_sync_iterator_raises_the_servers_error(server: ReferenceServer) -> None:
    with Client(server.url("grpc")) as client:
        docs = [Document(text="fine"), Document(blob=b"not an image")]
        with pytest.raises(Exception, match="UnidentifiedImageError"):
            list(client.encode_iter(docs, batch_size=1, prefetch=1))


async def test_a_slow_file_read_does_not_block_the_event_loop(
    plain_endpoint: Endpoint, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that blocks (a slow network file system) blocks a worker thread, never the event loop."""
    path = tmp_path / "slow.png"
    image = png_bytes(seed=51)
    path.write_bytes(image)
    ticked = threading.Event()
    ticks = 0
    read_image_file = aclip._engine.loading._read_image_file

    def slow_read(name: str, position: int) -> bytes:
        assert ticked.wait(timeout=20), "the event loop did not tick while the file was being read"
        return read_image_file(name, position)

    monkeypatch.setattr(aclip._engine.loading, "_read_image_file", slow_read)

    async def tick() -> None:
        nonlocal ticks
        for _ in range(50):
            await anyio.sleep(0)  # only possible while the loop is free
            ticks += 1
        ticked.set()

    async with plain_endpoint.async_client() as client:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(tick)
                vectors = await client.aencode(["before", str(path), "after"], batch_size=1)
    assert ticks == 50
    np.testing.assert_array_equal(vectors[1], expected_embedding(image))


async def test_a_generator_that_raises_midway_raises_its_error(plain_endpoint: Endpoint) -> None:
    def breaks_after_thirty() -> Iterator[str]:
        for i in range(30):
            yield f"fine {i}"
        raise ValueError("the source database went away")

    async with plain_endpoint.async_client() as client:
        with pytest.raises(ValueError, match="the source database went away"):
            await client.aencode(breaks_after_thirty(), batch_size=4)
        with pytest.raises(ValueError, match="the source database went away"):
            async with client.aencode_iter(breaks_after_thirty(), batch_size=4) as parts:
                async for _ in parts:
                    pass
