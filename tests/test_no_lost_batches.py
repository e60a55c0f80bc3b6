"""No batch is lost when a stream fails while an answer is being handed over: each ends handled once,
resent, or reported in an error, and the call always ends.

The server drops each stream after a few answers while the caller's side is slow (a slow ``aencode_iter``
consumer, a slow coroutine ``on_done``); every test runs under a deadline, so a lost batch (which used to
hang the call forever) fails the test instead of hanging it.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator, List

import anyio
import numpy as np
import pytest

from aclip import AsyncClient, Response, ServerError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS
from tests.helpers import expected_text

# A generous bound: over gRPC a dropped stream often loses the answers that had arrived but were not read
# yet (an HTTP/2 reset discards them), so retries back off more there; a lost batch hangs for ever.
_DEADLINE = 180
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(_DEADLINE + 60)]

_INPUTS = 600
_CONSUMER_DELAY = 0.003  # seconds per part: a consumer a little slower than the server


@pytest.fixture(scope="module")
def dropping_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(close_after=7) as running:  # every stream is dropped after seven answers
        yield running


def _texts(count: int = _INPUTS) -> List[str]:
    return [f"kept {i}" for i in range(count)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_slow_consumer_of_streamed_parts_gets_every_position_once(
    dropping_server: ReferenceServer, protocol: str
) -> None:
    texts = _texts()
    seen: Counter[int] = Counter()
    with anyio.fail_after(_DEADLINE):
        client = AsyncClient(dropping_server.url(protocol), max_retries=1000)
        async with client, client.aencode_iter(iter(texts), batch_size=4, prefetch=16) as parts:
            async for part in parts:
                assert part.embeddings is not None
                for row, position in zip(part.embeddings, part.positions):
                    np.testing.assert_array_equal(row, expected_text(texts[position]))
                seen.update(part.positions)
                await anyio.sleep(_CONSUMER_DELAY)  # the slow consumer: a stream drops meanwhile
    assert sorted(seen) == list(range(len(texts)))
    assert max(seen.values()) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_slow_coroutine_on_done_sees_every_position_once(
    dropping_server: ReferenceServer, protocol: str
) -> None:
    texts = _texts()
    seen: Counter[int] = Counter()

    async def on_done(response: Response) -> None:
        seen.update(response.positions)
        await anyio.sleep(_CONSUMER_DELAY)

    with anyio.fail_after(_DEADLINE):
        async with AsyncClient(dropping_server.url(protocol), max_retries=1000) as client:
            await client.aencode(iter(texts), batch_size=4, prefetch=16, on_done=on_done)
    assert sorted(seen) == list(range(len(texts)))
    assert max(seen.values()) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_failing_handler_ends_the_call_with_its_error(dropping_server: ReferenceServer, protocol: str) -> None:
    """A handler that raises while streams drop around it: the call ends with that error, promptly."""
    handled = 0

    async def on_done(response: Response) -> None:
        nonlocal handled
        handled += 1
        await anyio.sleep(_CONSUMER_DELAY)
        if handled == 50:
            raise ServerError(name="Mine", description="the caller's own", executor="", endpoint="", positions=[])

    with anyio.fail_after(_DEADLINE):
        async with AsyncClient(dropping_server.url(protocol), max_retries=1000) as client:
            with pytest.raises(ServerError, match="the caller's own"):
                await client.aencode(iter(_texts()), batch_size=4, prefetch=16, on_done=on_done)
    assert handled == 50
