"""The in-memory transport: a client's calls answered by a handler in this process, no sockets.

Besides showing users how to unit-test their own code, these are the engine's fast tests: ordering,
windows, retries and cancellation, in milliseconds each.
"""

from __future__ import annotations

import random
from typing import Iterator, List

import anyio
import numpy as np
import pytest

import aclip
from aclip import AsyncClient, Client, ClientClosedError, Document, MemoryTransport, ServerError, TransportError
from aclip._wire.protobuf import DataRequestProto
from aclip.testing import ReferenceExecutor
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio
URL = "grpc://in-memory:1"  # names the server in errors; nothing connects to it


def memory_client(**options: object) -> AsyncClient:
    return AsyncClient(URL, transport=MemoryTransport(ReferenceExecutor().handle), **options)  # type: ignore[arg-type]


async def test_encode_rank_index_search_in_memory() -> None:
    async with memory_client() as client:
        vectors = await client.aencode(["a", "b", "c"], batch_size=2)
        np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in "abc"]))
        [ranked] = await client.arank([Document(text="q", matches=[Document(text="m1"), Document(text="m2")])])
        assert {m.text for m in ranked.matches} == {"m1", "m2"}
        await client.aindex(["stored one", "stored two"])
        [hit] = await client.asearch(["stored one"], limit=1)
        assert hit.matches[0].text == "stored one"
        assert await client.ais_ready()


def test_the_sync_client_takes_a_transport_too() -> None:
    with Client(URL, transport=MemoryTransport(ReferenceExecutor().handle)) as client:
        np.testing.assert_array_equal(client.encode(["sync"])[0], expected_text("sync"))


async def test_answers_in_any_order_are_placed_by_position() -> None:
    executor = ReferenceExecutor()
    rng = random.Random(5)

    async def shuffled(request: DataRequestProto) -> DataRequestProto:
        await anyio.sleep(rng.random() / 200)  # each request takes its own time: answers overtake each other
        return await executor.handle(request)

    texts = [f"t{i}" for i in range(200)]
    async with AsyncClient(URL, transport=MemoryTransport(shuffled)) as client:
        vectors = await client.aencode(iter(texts), batch_size=3, prefetch=16)
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))


async def test_no_more_requests_in_flight_than_prefetch() -> None:
    executor = ReferenceExecutor()
    in_flight = 0
    most = 0

    async def counting(request: DataRequestProto) -> DataRequestProto:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await anyio.sleep(0.001)
            return await executor.handle(request)
        finally:
            in_flight -= 1

    client = AsyncClient(URL, transport=MemoryTransport(counting))
    async with client, client.aencode_iter((f"x{i}" for i in range(400)), batch_size=2, prefetch=5) as parts:
        async for _ in parts:
            await anyio.sleep(0.002)  # a slow consumer: answers wait for it, and hold their slots
    assert most == 5


async def test_a_failing_stream_is_retried_and_every_row_placed_once() -> None:
    executor = ReferenceExecutor()
    calls = 0

    async def flaky(request: DataRequestProto) -> DataRequestProto:
        nonlocal calls
        calls += 1
        if calls % 7 == 0:
            raise TransportError("the connection broke off")  # the stream fails: its open requests are resent
        return await executor.handle(request)

    texts = [f"r{i}" for i in range(120)]
    async with AsyncClient(URL, transport=MemoryTransport(flaky), max_retries=100) as client:
        vectors = await client.aencode(texts, batch_size=4, prefetch=4)
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))
    assert calls > len(texts) // 4  # some requests were resent


async def test_an_executor_failure_names_its_positions() -> None:
    with_failures = ReferenceExecutor()
    with_failures.faults.fail_every = 2
    async with AsyncClient(URL, transport=MemoryTransport(with_failures.handle)) as client:
        with pytest.raises(ServerError, match="InjectedFailure") as caught:
            await client.aencode(["a", "b", "c", "d"], batch_size=2, prefetch=1)
    assert caught.value.positions == [2, 3]


async def test_cancelling_a_call_ends_it_at_once() -> None:
    executor = ReferenceExecutor()

    async def hangs_on_waits(request: DataRequestProto) -> DataRequestProto:
        if request.data.docs.docs[0].text == "waits":
            await anyio.sleep_forever()
        return await executor.handle(request)

    async with AsyncClient(URL, transport=MemoryTransport(hangs_on_waits), timeout=None) as client:
        with anyio.move_on_after(0.2) as scope:
            await client.aencode(["waits"])
        assert scope.cancelled_caught
        np.testing.assert_array_equal((await client.aencode(["next"]))[0], expected_text("next"))  # still usable


async def test_the_transport_outlives_each_event_loop_and_closes_with_the_client() -> None:
    transport = MemoryTransport(ReferenceExecutor().handle)
    client = AsyncClient(URL, transport=transport)
    await client.aencode(["first"])
    assert not transport.closed
    await client.aclose()
    assert transport.closed
    with pytest.raises(ClientClosedError):
        await client.aencode(["after"])


def test_one_client_one_transport_over_several_event_loops() -> None:
    transport = MemoryTransport(ReferenceExecutor().handle)
    client = AsyncClient(URL, transport=transport)

    async def one(text: str) -> List[float]:
        return list((await client.aencode([text]))[0])

    for text in ("loop one", "loop two"):  # each asyncio.run ends its loop: the given transport stays open
        assert anyio.run(one, text) == list(expected_text(text))
    assert not transport.closed
    anyio.run(client.aclose)
    assert transport.closed


def test_a_transport_serves_one_server() -> None:
    with pytest.raises(ValueError, match="one server"):
        AsyncClient([URL, "grpc://other:1"], transport=MemoryTransport(ReferenceExecutor().handle))


def test_memory_transport_is_public() -> None:
    assert aclip.MemoryTransport is MemoryTransport and "MemoryTransport" in aclip.__all__


@pytest.fixture
def many() -> Iterator[List[str]]:
    yield [f"m{i}" for i in range(1000)]


async def test_a_thousand_inputs_in_memory_take_milliseconds(many: List[str]) -> None:
    """Not a timing assertion: a bound that only a hang or a per-request sleep would break."""
    with anyio.fail_after(20):
        async with memory_client() as client:
            vectors = await client.aencode(many, batch_size=8)
    assert vectors.shape == (1000, 512)


async def test_a_receive_waiting_when_nothing_more_can_come_returns_once_the_stream_ends() -> None:
    """The engine never does this, but the contract says receive() returns None after end() once every
    answer is out: a receive already waiting then must not wait for ever (HTTP's duplex shares this code)."""
    from aclip._wire.protobuf import build_request

    transport = MemoryTransport(ReferenceExecutor().handle)
    request = build_request(request_id="r1", endpoint="/encode", parameters=None, items=[], ids=[])
    outcome: List[object] = []
    with anyio.fail_after(5):
        async with transport.open_stream() as stream:
            await stream.send("r1", request.SerializeToString())
            assert (await stream.receive()) is not None

            async def receive_after_everything() -> None:
                outcome.append(await stream.receive())

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(receive_after_everything)
                await anyio.wait_all_tasks_blocked()
                assert outcome == []  # it waits: the stream has not ended yet
                await stream.end()
    assert outcome == [None]
