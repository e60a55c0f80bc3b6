"""Timeouts: a server that does not answer ends the call in bounded time, on every protocol."""

from __future__ import annotations

import socket
import threading
from typing import Iterator, List

import anyio
import numpy as np
import pytest

from aclip import AsyncClient, Client, RequestTimeoutError, TransportError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio
SCHEMES = {"grpc": "grpc", "http": "http", "websocket": "ws"}


@pytest.fixture(scope="module")
def slow_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(delay=30.0) as running:  # a model that takes 30 s per request
        yield running


@pytest.fixture(scope="module")
def a_little_slow_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(delay=0.3) as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_unanswered_request_times_out(slow_server: ReferenceServer, protocol: str) -> None:
    with anyio.fail_after(15):  # the bound the test holds the client to (the server would take 30 s)
        async with AsyncClient(slow_server.url(protocol), timeout=0.5) as client:
            expected = r"got no answer within 0\.5 s; 6 inputs are unanswered"
            with pytest.raises(RequestTimeoutError, match=expected) as caught:
                await client.aencode([f"t{i}" for i in range(6)], batch_size=2)
    assert caught.value.positions == [0, 1, 2, 3, 4, 5]
    assert isinstance(caught.value, TimeoutError)  # also the builtin


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_call_timeout_wins_over_the_clients(a_little_slow_server: ReferenceServer, protocol: str) -> None:
    async with AsyncClient(a_little_slow_server.url(protocol), timeout=0.05) as client:
        vectors = await client.aencode(["patient"], timeout=None)
        np.testing.assert_array_equal(vectors[0], expected_text("patient"))
        with pytest.raises(RequestTimeoutError):
            await client.aencode(["impatient"])
    with Client(a_little_slow_server.url(protocol), timeout=None) as sync_client:
        with pytest.raises(RequestTimeoutError):
            sync_client.encode(["impatient"], timeout=0.05)
        assert sync_client.encode(["fine"]).shape == (1, 512)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and then never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: List[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_server_that_accepts_but_never_answers(black_hole: int, protocol: str) -> None:
    url = f"{SCHEMES[protocol]}://127.0.0.1:{black_hole}"
    with anyio.fail_after(15):
        async with AsyncClient(url, timeout=1, connect_timeout=1) as client:
            with pytest.raises(TransportError):  # RequestTimeoutError, or ConnectError for the handshake
                await client.aencode(["anyone there?"])


@pytest.mark.parametrize("value", [0, -1, "5", True])
def test_timeout_must_be_positive_or_none(value: object) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        AsyncClient("grpc://127.0.0.1:1", timeout=value)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dead_model_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(never_answer=True) as running:  # the gateway is up, the model is not
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_dead_model_ends_the_call_in_bounded_time(dead_model_server: ReferenceServer, protocol: str) -> None:
    with anyio.fail_after(20):
        async with AsyncClient(dead_model_server.url(protocol), timeout=0.3, max_retries=1) as client:
            with pytest.raises(RequestTimeoutError):
                await client.aencode(["hello?"])
