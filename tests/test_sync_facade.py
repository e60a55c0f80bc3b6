"""The sync Client is built from AsyncClient: every twin is there, and it has one closed state that close() reaches."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from typing import Any, Callable, Coroutine, List, Set, TypeVar

import numpy as np
import pytest

from aclip import AsyncClient, Client, ClientClosedError, MissingEmbeddingError
from tests.conftest import Endpoint
from tests.helpers import expected_text

T = TypeVar("T")

#: Bounds each wait; a hang fails the test instead of stalling the suite.
WAIT = 30.0


def public_methods(cls: type) -> Set[str]:
    return {name for name, value in vars(cls).items() if not name.startswith("_") and callable(value)}


def all_closed(transports: List[Any]) -> bool:
    return all(getattr(t, "_channel", None) is None and getattr(t, "_session", None) is None for t in transports)


async def this_loops_transports(client: Client) -> List[Any]:
    return list(client._async._pool.transports())


def test_every_coroutine_has_its_blocking_twin_and_every_method_its_a_twin() -> None:
    coroutines = public_methods(AsyncClient) - {"readiness"}  # the former name of areadiness, below
    assert coroutines == {
        "aclose",
        "aencode",
        "aencode_collect",
        "aencode_iter",
        "arank",
        "aindex",
        "asearch",
        "ais_ready",
        "areadiness",
        "aprofile",
    }
    blocking = {name[1:] for name in coroutines}
    assert public_methods(Client) == coroutines | blocking
    assert AsyncClient.readiness is AsyncClient.areadiness


BLOCKING = ["encode", "encode_collect", "encode_iter", "rank", "index", "search", "is_ready", "readiness", "profile"]


@pytest.mark.parametrize("name", BLOCKING)
def test_each_blocking_method_takes_the_parameters_of_its_coroutine(name: str) -> None:
    blocking, coroutine = getattr(Client, name), getattr(AsyncClient, f"a{name}")
    assert inspect.signature(blocking).parameters == inspect.signature(coroutine).parameters
    assert inspect.signature(getattr(Client, f"a{name}")).parameters == inspect.signature(coroutine).parameters
    assert blocking.__qualname__ == f"Client.{name}"
    assert not inspect.iscoroutinefunction(blocking)
    assert inspect.iscoroutinefunction(getattr(Client, f"a{name}")) == inspect.iscoroutinefunction(coroutine)
    # Its own docstring, with an example a script can run as it is.
    assert blocking.__doc__ and "Example::" in blocking.__doc__ and "await" not in blocking.__doc__
    assert f"client.{name}(" in blocking.__doc__ and f"client.a{name}(" not in blocking.__doc__


def test_client_takes_the_arguments_of_async_client() -> None:
    assert inspect.signature(Client).parameters == inspect.signature(AsyncClient).parameters
    with pytest.raises(TypeError, match="timout"):
        Client("grpc://127.0.0.1:1", timout=5)  # type: ignore[call-arg]


def run_on(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(WAIT)


def wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_close_reaches_the_connections_of_awaited_calls_on_an_apps_loop(plain_endpoint: Endpoint) -> None:
    """Only ``await client.aencode(...)`` was used, on a loop that runs on; close() from another thread."""
    client = plain_endpoint.client()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        vectors = run_on(loop, client.aencode(["on the app's loop"]))
        np.testing.assert_array_equal(vectors[0], expected_text("on the app's loop"))
        transports = run_on(loop, this_loops_transports(client))
        assert not all_closed(transports)
        client.close()
        assert wait_for(lambda: all_closed(transports)), "the connections live on after close()"
        assert client._async._pool.loops == {}
        with pytest.raises(ClientClosedError):
            run_on(loop, client._async.aencode(["the inner client is closed too"]))
        with pytest.raises(ClientClosedError):
            run_on(loop, client.aencode(["and the facade"]))
        assert client._portal is None  # close() started no loop thread of its own
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        loop.close()


def test_a_with_block_inside_a_coroutine_closes_that_loops_connections(plain_endpoint: Endpoint) -> None:
    async def main() -> List[Any]:
        with plain_endpoint.client() as client:
            await client.aencode(["awaited inside a with block"])
            transports = await this_loops_transports(client)
        # __exit__ ran close() on this loop's thread: the closing runs here as soon as this task waits.
        for _ in range(int(WAIT / 0.01)):
            if all_closed(transports):
                break
            await asyncio.sleep(0.01)
        with pytest.raises(ClientClosedError):
            await client._async.aencode(["closed"])
        return transports

    assert all_closed(asyncio.run(main()))


def test_one_closed_state_whichever_side_closes(grpc_url: str) -> None:
    client = Client(grpc_url)
    client.encode(["the loop thread starts"])
    asyncio.run(client._async.aclose())
    with pytest.raises(ClientClosedError, match=r"Client\('grpc://"):
        client.encode(["refused"])
    with pytest.raises(ClientClosedError):
        asyncio.run(client.aencode(["refused"]))
    client.close()  # still stops the loop thread
    assert client._portal is None


def test_aclose_closes_both_kinds_of_call(grpc_url: str) -> None:
    client = Client(grpc_url)
    before = set(threading.enumerate())

    async def main() -> None:
        client.encode(["blocking, on the client's loop thread"])
        await client.aencode(["awaited, on this loop"])
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await client.aencode(["refused"])

    asyncio.run(main())
    with pytest.raises(ClientClosedError):
        client.encode(["refused"])
    for thread in set(threading.enumerate()) - before:
        thread.join(WAIT)
        assert not thread.is_alive()


def test_the_new_twins_work(plain_endpoint: Endpoint) -> None:
    texts = [f"streamed {i}" for i in range(9)]

    async def main() -> None:
        with plain_endpoint.client() as client:
            outcome = await client.aencode_collect(["fine", "", "also fine"])
            assert list(outcome.failed) == [1] and isinstance(outcome.failed[1], MissingEmbeddingError)
            seen: List[int] = []
            async with client.aencode_iter(texts, batch_size=2) as parts:
                async for part in parts:
                    seen.extend(part.positions)
            assert sorted(seen) == list(range(len(texts)))
            assert await client.areadiness() == [None]
            assert client.readiness() == [None]
        async with plain_endpoint.async_client() as async_client:
            assert await async_client.readiness() == await async_client.areadiness() == [None]

    asyncio.run(main())


def test_leaving_encode_iter_early_leaves_the_client_usable(plain_endpoint: Endpoint) -> None:
    with plain_endpoint.client() as client:
        for part in client.encode_iter([f"many {i}" for i in range(50)], batch_size=2, prefetch=2):
            assert part.embeddings is not None
            break
        np.testing.assert_array_equal(client.encode(["after"])[0], expected_text("after"))
