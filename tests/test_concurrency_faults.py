"""Many calls at once on one client, with faults injected: every position exactly once, or reported."""

from __future__ import annotations

from typing import Dict, Iterator, List

import anyio
import numpy as np
import pytest

from aclip import AsyncClient, Response, ServerError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(close_after=5, out_of_order=True, delay=0.001) as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_64_concurrent_calls_through_dropped_streams(faulty_server: ReferenceServer, protocol: str) -> None:
    results: Dict[int, np.ndarray] = {}
    prefetch = 1 if protocol == "grpc" else 3  # see test_retries: a gRPC reset discards unread answers

    async with AsyncClient(faulty_server.url(protocol), max_retries=5) as client:

        async def call(n: int) -> None:
            results[n] = await client.aencode(
                [f"call {n} item {i}" for i in range(12)], batch_size=2, prefetch=prefetch
            )

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tasks:
                for n in range(64):
                    tasks.start_soon(call, n)
    assert sorted(results) == list(range(64))
    for n, vectors in results.items():
        np.testing.assert_array_equal(vectors, np.stack([expected_text(f"call {n} item {i}") for i in range(12)]))


async def test_concurrent_calls_with_failing_batches_report_exactly_the_failed_positions() -> None:
    with serve_in_thread(fail_every=5) as failing:
        failed: Dict[int, List[int]] = {}
        done: Dict[int, List[int]] = {}
        async with AsyncClient(failing.url("websocket")) as client:

            async def call(n: int) -> None:
                failed[n], done[n] = [], []

                def on_error(response: Response) -> None:
                    assert response.status is not None and response.status.name == "InjectedFailure"
                    failed[n].extend(response.positions)

                def on_done(response: Response) -> None:
                    for position, doc in zip(response.positions, response.docs):
                        np.testing.assert_array_equal(doc.embedding, expected_text(f"{n}/{position}"))
                    done[n].extend(response.positions)

                texts = [f"{n}/{i}" for i in range(10)]
                await client.aencode(texts, batch_size=1, on_done=on_done, on_error=on_error)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tasks:
                    for n in range(64):
                        tasks.start_soon(call, n)
        assert failing.stats.requests_received == 640
        assert sum(len(p) for p in failed.values()) == len(failing.stats.injected_failures) == 128
        for n in range(64):
            assert sorted(failed[n] + done[n]) == list(range(10))  # each position once, done or failed
        with pytest.raises(ServerError):  # and without on_error, the first failure ends a call
            async with AsyncClient(failing.url("grpc")) as client:
                await client.aencode([f"y{i}" for i in range(10)], batch_size=1)
