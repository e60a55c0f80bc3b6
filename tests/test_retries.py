"""Retries: transient failures are resent per batch on a new stream, every answer placed exactly once."""

from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import pytest

from aclip import (
    AsyncClient,
    AuthenticationError,
    ConnectError,
    HTTPStatusError,
    ProtocolError,
    RequestTimeoutError,
    ServerError,
    TLSError,
    TransportError,
)
from aclip._engine.retry import backoff, is_idempotent, is_transient
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio


def test_which_failures_are_transient() -> None:
    assert is_transient(ConnectError("refused"))
    assert is_transient(TransportError("reset"))
    assert is_transient(RequestTimeoutError("slow", positions=[1]))
    assert is_transient(HTTPStatusError("bad gateway", status=502, detail=""))
    assert is_transient(HTTPStatusError("unavailable", status=503, detail=""))
    assert not is_transient(HTTPStatusError("bad request", status=400, detail=""))
    assert not is_transient(AuthenticationError("no"))
    assert not is_transient(TLSError("untrusted"))
    assert not is_transient(ProtocolError("garbage"))
    assert not is_transient(ServerError(name="E", description="d", executor="x", endpoint="/", positions=[0]))
    assert not is_transient(ValueError("a caller's own error"))


def test_only_index_is_not_idempotent() -> None:
    assert is_idempotent("/encode") and is_idempotent("/encode/ViT-B-32") and is_idempotent("/rank")
    assert is_idempotent("/search") and is_idempotent("/")
    assert not is_idempotent("/index")


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    for attempt, ceiling in ((1, 0.2), (2, 0.4), (3, 0.8), (10, 10.0)):
        waits = [backoff(attempt, rng=rng) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert max(waits) > ceiling * 0.8  # jitter spreads over the whole range
    with pytest.raises(ValueError):
        backoff(0)


@pytest.fixture(scope="module")
def dropping_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(close_after=2) as running:  # every connection is dropped after two answers
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_dropped_streams_are_resumed_and_every_answer_placed_once(
    dropping_server: ReferenceServer, protocol: str
) -> None:
    texts = [f"resumed {i}" for i in range(40)]
    # A gRPC stream reset discards answers that arrived but were not read yet (HTTP/2 semantics), so with many
    # requests in flight a reset stream may deliver nothing at all; one at a time, each stream gets its two.
    prefetch = 1 if protocol == "grpc" else 4
    async with AsyncClient(dropping_server.url(protocol), max_retries=3) as client:
        vectors = await client.aencode((t for t in texts), batch_size=2, prefetch=prefetch)
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_no_retries_when_asked_for_none(dropping_server: ReferenceServer, protocol: str) -> None:
    async with AsyncClient(dropping_server.url(protocol), max_retries=2) as client:
        with pytest.raises(TransportError):
            await client.aencode([f"x{i}" for i in range(20)], batch_size=2, prefetch=4, max_retries=0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_index_is_never_retried(protocol: str) -> None:
    # A server of its own: on a shared one, a late connection of an earlier test could be counted here.
    with serve_in_thread(close_after=2) as dropping:
        async with AsyncClient(dropping.url(protocol), max_retries=5) as client:
            with pytest.raises(TransportError):
                await client.aindex([f"stored {i}" for i in range(20)], batch_size=2, prefetch=4)
        if protocol != "http":  # one stream: one call (HTTP counts every POST as a call)
            assert dropping.stats.calls == 1


async def test_executor_failures_are_not_retried() -> None:
    with serve_in_thread(fail_every=1) as failing:
        async with AsyncClient(failing.url("grpc"), max_retries=5) as client:
            with pytest.raises(ServerError, match="InjectedFailure"):
                await client.aencode(["x"])
        assert failing.stats.requests_received == 1


async def test_an_unavailable_server_is_retried_then_reported() -> None:
    with serve_in_thread(grpc_status="UNAVAILABLE", protocols=("grpc",)) as unavailable:
        async with AsyncClient(unavailable.url("grpc"), max_retries=2) as client:
            with pytest.raises(ConnectError, match="UNAVAILABLE"):
                await client.aencode(["x"])
        assert unavailable.stats.calls == 3  # the first try and two retries
        unavailable.faults.grpc_status = ""  # the server recovers: so does the client
        async with AsyncClient(unavailable.url("grpc")) as client:
            assert (await client.aencode(["back"])).shape == (1, 512)


async def test_http_503_is_retried_and_recovers() -> None:
    with serve_in_thread(fail_status=503, protocols=("http",)) as proxy:
        async with AsyncClient(proxy.url("http"), max_retries=1) as client:
            with pytest.raises(HTTPStatusError) as caught:
                await client.aencode(["x"])
            assert caught.value.status == 503
            assert proxy.stats.status_failures == 2  # tried twice
            proxy.faults.fail_status = 0
            vectors = await client.aencode(["x"])
        np.testing.assert_array_equal(vectors[0], expected_text("x"))


def test_one_table_holds_the_rules_of_every_endpoint() -> None:
    from aclip._wire.endpoints import rules_for

    assert rules_for("/encode/ViT-B-32") == rules_for("/encode")
    assert rules_for("/rank").spread and not rules_for("/search").spread
    assert rules_for("/search").own_ids and not rules_for("/index").own_ids
    unknown = rules_for("/something/else")  # an endpoint aclip does not know gets the careful rules
    assert not (unknown.idempotent or unknown.spread or unknown.own_ids)
