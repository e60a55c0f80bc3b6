"""Soak: 100,000 texts per protocol through dropped streams and executor failures, with retries.

The server drops every stream after 40 answers (``close_after=40``) and fails every 97th request inside
its executor (``fail_every=97``). Whatever the caller's side does — collect, stream parts to a slow
consumer, or take each answer in a slow coroutine ``on_done`` with ``on_error`` — every position hit by an
executor failure is reported exactly once (those are never retried), every other position is delivered
exactly once with the test encoder's row, and the call ends (each run is under a deadline).

Marked ``slow``: CI runs it once, in the main environment, not once per Python of the matrix.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, Iterator, List, Set

import anyio
import numpy as np
import pytest

from aclip import AsyncClient, Response, ServerError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS
from tests.helpers import expected_text

INPUTS = 100_000
BATCH_SIZE = 32
CONSUMER_DELAY = 0.003  # seconds per part or callback: a caller a little slower than the server
DEADLINE = 240  # seconds for one run; a lost batch used to hang the call forever

# pytest-timeout's 120 s default is for ordinary tests; each run here has its own deadline above.
pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(DEADLINE + 60)]


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(close_after=40, fail_every=97) as running:
        yield running


@pytest.fixture(scope="module")
def texts() -> List[str]:
    return [f"soak {i}" for i in range(INPUTS)]


@pytest.fixture(scope="module")
def expected(texts: List[str]) -> np.ndarray:
    return np.stack([expected_text(text) for text in texts])


def _client(server: ReferenceServer, protocol: str) -> AsyncClient:
    return AsyncClient(server.url(protocol), max_retries=10_000)  # every dropped stream is retried


def _check_failures(failed: Dict[int, Exception], server: ReferenceServer, protocol: str) -> None:
    """Each reported failure is a whole batch the server really failed on purpose."""
    assert failed, "fail_every=97 over thousands of requests must fail some"
    errors = {id(error): error for error in failed.values()}.values()
    for error in errors:
        assert isinstance(error, ServerError) and error.name == "InjectedFailure"
        assert sorted(position for position, e in failed.items() if e is error) == list(error.positions)
    assert len(errors) <= len(server.stats.injected_failures)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_soak_collect(
    faulty_server: ReferenceServer, protocol: str, texts: List[str], expected: np.ndarray
) -> None:
    with anyio.fail_after(DEADLINE):
        async with _client(faulty_server, protocol) as client:
            outcome = await client.aencode_collect(iter(texts), batch_size=BATCH_SIZE, prefetch=32)
    _check_failures(outcome.failed, faulty_server, protocol)
    assert isinstance(outcome.results, np.ndarray) and outcome.results.shape == (INPUTS, 512)
    delivered = np.setdiff1d(np.arange(INPUTS), np.fromiter(outcome.failed, dtype=np.int64))
    np.testing.assert_array_equal(outcome.results[delivered], expected[delivered])
    assert np.isnan(outcome.results[list(outcome.failed)]).all()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_soak_coroutine_on_done_with_on_error(
    faulty_server: ReferenceServer, protocol: str, texts: List[str], expected: np.ndarray
) -> None:
    done: Counter[int] = Counter()
    failed: Dict[int, Exception] = {}
    reported: Counter[int] = Counter()
    mismatches: List[int] = []

    async def on_done(response: Response) -> None:
        for position, doc in zip(response.positions, response.docs):
            if not np.array_equal(doc.embedding, expected[position]):
                mismatches.append(position)
        done.update(response.positions)
        await anyio.sleep(CONSUMER_DELAY)

    async def on_error(response: Response) -> None:
        assert response.status is not None
        error = ServerError(
            name=response.status.name,
            description=response.status.description,
            executor=response.status.executor,
            endpoint="/encode",
            positions=response.positions,
        )
        failed.update(dict.fromkeys(response.positions, error))
        reported.update(response.positions)
        await anyio.sleep(CONSUMER_DELAY)

    with anyio.fail_after(DEADLINE):
        async with _client(faulty_server, protocol) as client:
            result = await client.aencode(
                iter(texts), batch_size=BATCH_SIZE, prefetch=32, on_done=on_done, on_error=on_error
            )
    assert result is None
    assert not mismatches
    _check_failures(failed, faulty_server, protocol)
    assert max(reported.values()) == 1 and max(done.values()) == 1
    assert set(done).isdisjoint(failed) and len(done) + len(failed) == INPUTS


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_soak_streamed_parts_to_a_slow_consumer(
    faulty_server: ReferenceServer, protocol: str, texts: List[str], expected: np.ndarray
) -> None:
    """Without on_error an executor failure ends ``aencode_iter``; so the server only drops streams here."""
    faulty_server.faults.fail_every = 0
    try:
        seen: Counter[int] = Counter()
        with anyio.fail_after(DEADLINE):
            client = _client(faulty_server, protocol)
            async with client, client.aencode_iter(iter(texts), batch_size=BATCH_SIZE, prefetch=32) as parts:
                async for part in parts:
                    assert part.embeddings is not None
                    rows = np.asarray(part.positions)
                    np.testing.assert_array_equal(part.embeddings, expected[rows])
                    seen.update(part.positions)
                    await anyio.sleep(CONSUMER_DELAY)
    finally:
        faulty_server.faults.fail_every = 97
    assert len(seen) == INPUTS and max(seen.values()) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_soak_streamed_parts_end_with_the_first_executor_failure(
    faulty_server: ReferenceServer, protocol: str, texts: List[str], expected: np.ndarray
) -> None:
    seen: Set[int] = set()
    with anyio.fail_after(DEADLINE):
        async with _client(faulty_server, protocol) as client:
            with pytest.raises(ServerError, match="InjectedFailure") as caught:
                async with client.aencode_iter(iter(texts), batch_size=BATCH_SIZE, prefetch=32) as parts:
                    async for part in parts:
                        assert part.embeddings is not None
                        np.testing.assert_array_equal(part.embeddings, expected[np.asarray(part.positions)])
                        assert seen.isdisjoint(part.positions)
                        seen.update(part.positions)
                        await anyio.sleep(CONSUMER_DELAY)
    assert seen.isdisjoint(caught.value.positions)
