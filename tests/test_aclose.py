"""Closing a client while calls are in flight: they end with ClientClosedError and nothing reconnects.

Each test counts the gRPC channels and aiohttp sessions created after ``aclose()`` began (none may be) and
collects the ResourceWarnings of whatever was left unclosed (none may be).
"""

from __future__ import annotations

import gc
import threading
import time
import warnings
from typing import Any, Iterator, List

import anyio
import pytest

from aclip import AsyncClient, Client, ClientClosedError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS

pytestmark = pytest.mark.anyio

#: How long the slow server takes per request: long enough that no call can end on its own first.
DELAY = 3.0
#: A call cut short by aclose() ends well before DELAY.
PROMPTLY = DELAY / 2


@pytest.fixture(scope="module")
def slow() -> Iterator[ReferenceServer]:
    with serve_in_thread(delay=DELAY) as running:
        yield running


class Openings:
    """Counts the connections aclip opens (gRPC channels, aiohttp sessions), and those opened after a mark."""

    def __init__(self) -> None:
        self.total = 0
        self.after_close = 0
        self.closing = False

    def opened(self) -> None:
        self.total += 1
        if self.closing:
            self.after_close += 1


@pytest.fixture
def openings(monkeypatch: pytest.MonkeyPatch) -> Openings:
    from aclip._transports import _aiohttp
    from aclip._transports import grpc as grpc_transport

    counted = Openings()
    channel_class = grpc_transport.Channel
    new_session = _aiohttp.new_session

    def channel(*args: Any, **kwargs: Any) -> Any:
        counted.opened()
        return channel_class(*args, **kwargs)

    def session(*args: Any, **kwargs: Any) -> Any:
        counted.opened()
        return new_session(*args, **kwargs)

    monkeypatch.setattr(grpc_transport, "Channel", channel)
    monkeypatch.setattr(_aiohttp, "new_session", session)
    return counted


@pytest.fixture
def resource_warnings() -> Iterator[List[warnings.WarningMessage]]:
    """The ResourceWarnings raised until the test ends, after a garbage collection of what it left."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        kept: List[warnings.WarningMessage] = []
        yield kept
        gc.collect()
        kept += [warning for warning in caught if issubclass(warning.category, ResourceWarning)]
    assert not kept, [str(warning.message) for warning in kept]


async def _wait_for_requests(server: ReferenceServer, before: int, at_least: int) -> None:
    with anyio.fail_after(10):
        while server.stats.requests_received < before + at_least:
            await anyio.sleep(0.01)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_aclose_ends_calls_in_flight_and_nothing_reconnects(
    slow: ReferenceServer,
    protocol: str,
    openings: Openings,
    resource_warnings: List[warnings.WarningMessage],
) -> None:
    client = AsyncClient(slow.url(protocol), max_retries=5)
    outcomes: List[BaseException] = []

    async def call() -> None:
        try:
            await client.aencode([f"text {i}" for i in range(6)], batch_size=1, prefetch=3)
        except BaseException as error:  # whatever ended it is the subject of the test
            outcomes.append(error)
        else:
            outcomes.append(AssertionError("the call completed although the client was closed"))

    before = slow.stats.requests_received
    started = time.monotonic()
    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(call)
        await _wait_for_requests(slow, before, 3)
        openings.closing = True
        await client.aclose()
    elapsed = time.monotonic() - started
    await anyio.sleep(0.5)  # a retry would have come by now
    assert [type(error) for error in outcomes] == [ClientClosedError] * 3, outcomes
    assert elapsed < PROMPTLY
    assert openings.total >= 1 and openings.after_close == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_readiness_in_flight_says_closed(protocol: str, openings: Openings) -> None:
    with serve_in_thread(never_answer=True) as server:
        client = AsyncClient(server.url(protocol))
        reasons: List[Any] = []

        async def ask() -> None:
            reasons.extend(await client.readiness(timeout=5))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(ask)
            with anyio.fail_after(5):
                while openings.total == 0:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.2)
            openings.closing = True
            await client.aclose()
    assert len(reasons) == 1 and reasons[0] is not None and "the client was closed" in reasons[0], reasons
    assert openings.after_close == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_closing_a_sync_client_ends_the_calls_of_other_threads(
    slow: ReferenceServer,
    protocol: str,
    openings: Openings,
    resource_warnings: List[warnings.WarningMessage],
) -> None:
    client = Client(slow.url(protocol), max_retries=5)
    outcomes: List[BaseException] = []

    def call() -> None:
        try:
            client.encode(["one", "two", "three"], batch_size=1)
        except BaseException as error:
            outcomes.append(error)
        else:
            outcomes.append(AssertionError("the call completed although the client was closed"))

    before = slow.stats.requests_received
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while slow.stats.requests_received < before + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    openings.closing = True
    client.close()
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - started < PROMPTLY
    assert [type(error) for error in outcomes] == [ClientClosedError] * 2, outcomes
    assert openings.after_close == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("wait", [0.0, 0.001, 0.005, 0.02, 0.1])
async def test_a_call_racing_aclose_ends_with_client_closed_error(
    slow: ReferenceServer,
    protocol: str,
    wait: float,
    openings: Openings,
    resource_warnings: List[warnings.WarningMessage],
) -> None:
    """Whenever aclose() comes (before the first POST, between them, while they wait), never a raw error."""
    client = AsyncClient(slow.url(protocol), max_retries=5)
    outcomes: List[BaseException] = []

    async def call() -> None:
        try:
            await client.aencode([f"text {i}" for i in range(20)], batch_size=1, prefetch=20)
        except BaseException as error:
            outcomes.append(error)
        else:
            outcomes.append(AssertionError("the call completed although the client was closed"))

    async with anyio.create_task_group() as tasks:
        for _ in range(2):
            tasks.start_soon(call)
        await anyio.sleep(wait)
        openings.closing = True
        await client.aclose()
    await anyio.sleep(0.3)
    assert [type(error) for error in outcomes] == [ClientClosedError] * 2, outcomes
    assert openings.after_close == 0


async def test_calls_after_aclose_refuse_at_once(server: ReferenceServer, openings: Openings) -> None:
    for protocol in PROTOCOLS:
        client = AsyncClient(server.url(protocol))
        await client.aencode(["open"])
        await client.aclose()
        openings.closing = True
        with pytest.raises(ClientClosedError):
            await client.aencode(["closed"])
        with pytest.raises(ClientClosedError):
            await client.readiness()
        openings.closing = False
    assert openings.after_close == 0
