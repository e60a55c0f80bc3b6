"""Several servers in one client: batches spread, a killed server's batches move, index stays on one."""

from __future__ import annotations

import contextlib
import socket
from typing import Iterator

import numpy as np
import pytest

from aclip import AsyncClient, ConnectError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[ReferenceServer, ReferenceServer]]:
    with serve_in_thread(delay=0.002) as first, serve_in_thread(delay=0.002) as second:
        yield first, second


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_batches_spread_over_every_server(pair: tuple[ReferenceServer, ReferenceServer], protocol: str) -> None:
    first, second = pair
    before = (first.stats.requests_received, second.stats.requests_received)
    texts = [f"spread {i}" for i in range(120)]
    async with AsyncClient([first.url(protocol), second.url(protocol)]) as client:
        vectors = await client.aencode(texts, batch_size=2, prefetch=8)
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))
    took = (first.stats.requests_received - before[0], second.stats.requests_received - before[1])
    assert sum(took) == 60 and min(took) > 0, took  # both servers worked, every batch once


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_server_killed_mid_call_loses_nothing(protocol: str) -> None:
    with serve_in_thread(delay=0.002) as survivor, contextlib.ExitStack() as doomed_context:
        doomed = doomed_context.enter_context(serve_in_thread(delay=0.002))

        def texts() -> Iterator[str]:
            for i in range(200):
                if i == 80:
                    doomed_context.close()  # the first server goes away in the middle of the call
                yield f"survive {i}"

        async with AsyncClient([doomed.url(protocol), survivor.url(protocol)], max_retries=1) as client:
            vectors = await client.aencode(texts(), batch_size=2, prefetch=6)
    np.testing.assert_array_equal(vectors, np.stack([expected_text(f"survive {i}") for i in range(200)]))
    assert doomed.stats.requests_received > 0 and survivor.stats.requests_received > 0


async def test_index_and_search_use_the_first_healthy_server(pair: tuple[ReferenceServer, ReferenceServer]) -> None:
    first, second = pair
    first.executor.clear_index()
    second.executor.clear_index()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"grpc://127.0.0.1:{probe.getsockname()[1]}"
    async with AsyncClient([first.url("grpc"), second.url("grpc")]) as client:
        await client.aindex(["kept on the first"])
        [hit] = await client.asearch(["kept on the first"], limit=1)
    assert first.executor.indexed_count == 1 and second.executor.indexed_count == 0
    assert hit.matches[0].text == "kept on the first"
    async with AsyncClient([dead, second.url("grpc")], max_retries=0) as client:
        with pytest.raises(ConnectError):
            await client.aindex(["the first is down"])  # index is never retried elsewhere mid-call
        await client.aindex(["so the next call goes to the second"])  # the dead one is set aside
    assert second.executor.indexed_count == 1


async def test_the_least_busy_server_takes_most() -> None:
    with serve_in_thread(delay=0.25) as slow, serve_in_thread() as fast:
        async with AsyncClient([slow.url("grpc"), fast.url("grpc")]) as client:
            vectors = await client.aencode([f"busy {i}" for i in range(80)], batch_size=2, prefetch=8)
        took_slow, took_fast = slow.stats.requests_received, fast.stats.requests_received
    np.testing.assert_array_equal(vectors[79], expected_text("busy 79"))
    assert took_slow + took_fast == 40 and took_fast > 2 * took_slow, (took_slow, took_fast)
