"""One client across event loops, threads and forked processes (gunicorn's pre-fork workers)."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import warnings
from typing import Any, Iterator, List

import numpy as np
import pytest

from aclip import AsyncClient, Client
from aclip.testing import ReferenceServer
from tests.conftest import PROTOCOLS
from tests.helpers import expected_text

#: Bounds a child process or a thread; a hang fails the test instead of stalling the suite.
WAIT = 60.0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_async_client_serves_asyncio_run_after_asyncio_run(server: ReferenceServer, protocol: str) -> None:
    client = AsyncClient(server.url(protocol))

    async def call(text: str) -> Any:
        vectors = await client.aencode([text])
        return vectors, client._pool.transports()  # this loop's transports, for the checks below

    for round_ in range(3):
        vectors, transports = asyncio.run(call(f"round {round_}"))
        np.testing.assert_array_equal(vectors[0], expected_text(f"round {round_}"))
        # The loop's end closed its connections: the client holds none, and each transport let go of its own.
        assert client._pool.loops == {}
        assert transports and all(
            getattr(t, "_channel", None) is None and getattr(t, "_session", None) is None for t in transports
        )
    asyncio.run(client.aclose())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_two_threads_use_one_async_client_each_on_its_own_loop(server: ReferenceServer, protocol: str) -> None:
    client = AsyncClient(server.url(protocol))
    results: List[Any] = [None, None]
    start = threading.Barrier(2)

    def work(index: int) -> None:
        async def call() -> Any:
            start.wait(timeout=WAIT)  # both loops have started before either calls
            return await client.aencode([f"thread {index} sentence {i}" for i in range(40)], batch_size=4)

        try:
            results[index] = asyncio.run(call())
        except BaseException as exc:  # reported by the assertion below
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not any(thread.is_alive() for thread in threads)
    for index, result in enumerate(results):
        assert isinstance(result, np.ndarray), result
        np.testing.assert_array_equal(result[5], expected_text(f"thread {index} sentence 5"))


@pytest.fixture(scope="module")
def shared_async_client(server: ReferenceServer) -> Iterator[AsyncClient]:
    """Made outside any event loop and used by two tests, each on the loop pytest gives it."""
    client = AsyncClient(server.url("grpc"))
    yield client
    asyncio.run(client.aclose())


@pytest.mark.anyio
@pytest.mark.parametrize("text", ["first test's loop", "second test's loop"])
async def test_a_client_shared_between_tests_works_on_each_tests_loop(
    shared_async_client: AsyncClient, text: str
) -> None:
    vectors = await shared_async_client.aencode([text])
    np.testing.assert_array_equal(vectors[0], expected_text(text))


def _encode_in_child(client: Client, text: str, results: Any) -> None:
    try:
        results.send(client.encode([text]))
    except BaseException as exc:  # sent back, so the parent's assertion shows it
        results.send(exc)


def _async_encode_in_child(client: AsyncClient, text: str, results: Any) -> None:
    try:
        results.send(asyncio.run(client.aencode([text])))
    except BaseException as exc:
        results.send(exc)


def _run_forked(target: Any, *args: Any) -> Any:
    """``target(*args, pipe)`` in a forked child; what it sent back. Fails (not hangs) if the child does."""
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "this process is multi-threaded": that is the point
        child = context.Process(target=target, args=(*args, sending))
        child.start()
    sending.close()
    try:
        assert receiving.poll(WAIT), "the forked child sent nothing back in time"
        result = receiving.recv()
    finally:
        child.join(timeout=WAIT)
        if child.is_alive():
            child.kill()
            child.join(timeout=WAIT)
    assert child.exitcode == 0
    return result


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_sync_client_made_before_fork_works_in_the_child(server: ReferenceServer, protocol: str) -> None:
    with Client(server.url(protocol)) as client:
        client.encode(["the parent connects first"])  # the loop thread and the connection exist now
        result = _run_forked(_encode_in_child, client, "in the child")
        assert isinstance(result, np.ndarray), result
        np.testing.assert_array_equal(result[0], expected_text("in the child"))
        after = client.encode(["the parent goes on"])  # and the parent's connection was left alone
    np.testing.assert_array_equal(after[0], expected_text("the parent goes on"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_async_client_used_before_fork_works_in_the_child(server: ReferenceServer, protocol: str) -> None:
    client = AsyncClient(server.url(protocol))

    async def use_then_fork() -> Any:
        await client.aencode(["the parent connects first"])  # this loop's connection stays open
        # Forked from the loop's own (main) thread, as a pre-fork server does; this loop waits meanwhile.
        result = _run_forked(_async_encode_in_child, client, "in the child")
        await client.aencode(["the parent goes on"])
        return result

    result = asyncio.run(use_then_fork())
    assert isinstance(result, np.ndarray), result
    np.testing.assert_array_equal(result[0], expected_text("in the child"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_script_that_never_closes_its_client_still_exits(server: ReferenceServer, protocol: str) -> None:
    import subprocess
    import sys

    code = f"from aclip import Client\nclient = Client({server.url(protocol)!r})\nprint(client.encode(['x']).shape)\n"
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT, check=False)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "(1, 512)"
