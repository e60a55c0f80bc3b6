"""What sits between client and server: proxies (trust_env), extra headers and metadata, message size limits."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

from aclip import AsyncClient, AuthenticationError, Client, Document, MessageTooLargeError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS, Certificates
from tests.helpers import expected_embedding, expected_text
from tests.proxy import ForwardProxy

pytestmark = pytest.mark.anyio

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "WS_PROXY", "WSS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    yield monkeypatch


def big_png(size: int, seed: int) -> bytes:
    """Image bytes of about ``size`` bytes that the test encoder accepts (a PNG signature, then noise)."""
    noise = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()
    return b"\x89PNG\r\n\x1a\n" + noise


# --- proxies -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "websocket"])
async def test_trust_env_sends_through_the_proxy_of_the_environment(
    server: ReferenceServer, protocol: str, clean_proxy_environment: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy() as proxy:
        for name in ("HTTP_PROXY", "WS_PROXY"):
            clean_proxy_environment.setenv(name, proxy.url)
        async with AsyncClient(server.url(protocol)) as client:  # trust_env is off by default
            await client.aencode(["direct"])
        assert proxy.requests == []
        async with AsyncClient(server.url(protocol), trust_env=True) as client:
            vectors = await client.aencode(["via the proxy", "again"], batch_size=1)
    np.testing.assert_array_equal(vectors, np.stack([expected_text("via the proxy"), expected_text("again")]))
    host_port = server.url(protocol).split("://", 1)[1]
    expected = ("POST", f"http://{host_port}/post") if protocol == "http" else ("GET", f"ws://{host_port}/")
    assert expected in proxy.requests


@pytest.mark.parametrize("protocol", ["http", "websocket"])
async def test_trust_env_tunnels_tls_with_connect(
    tls_server: ReferenceServer, certificates: Certificates, protocol: str, clean_proxy_environment: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy() as proxy:
        for name in ("HTTPS_PROXY", "WSS_PROXY"):
            clean_proxy_environment.setenv(name, proxy.url)
        url = tls_server.url(protocol)
        async with AsyncClient(url, ca_file=certificates.ca_file, trust_env=True) as client:
            vectors = await client.aencode(["through a tunnel"])
    np.testing.assert_array_equal(vectors[0], expected_text("through a tunnel"))
    assert ("CONNECT", url.split("://", 1)[1]) in proxy.requests


async def test_no_proxy_is_honoured(server: ReferenceServer, clean_proxy_environment: pytest.MonkeyPatch) -> None:
    async with ForwardProxy() as proxy:
        clean_proxy_environment.setenv("HTTP_PROXY", proxy.url)
        clean_proxy_environment.setenv("NO_PROXY", "127.0.0.1")
        async with AsyncClient(server.url("http"), trust_env=True) as client:
            await client.aencode(["not through the proxy"])
    assert proxy.requests == []


async def test_trust_env_must_be_a_bool(server: ReferenceServer) -> None:
    with pytest.raises(TypeError, match="trust_env"):
        AsyncClient(server.url("http"), trust_env="yes")  # type: ignore[arg-type]


# --- headers and metadata ------------------------------------------------------------------------------------

BEARER = "Bearer s3cret-value"


@pytest.fixture(scope="module")
def bearer_server() -> Iterator[ReferenceServer]:
    """A server that wants ``authorization: Bearer <token>``, as some gateways do."""
    with serve_in_thread(token=BEARER) as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_bearer_token_goes_as_given(bearer_server: ReferenceServer, protocol: str) -> None:
    url = bearer_server.url(protocol)
    async with AsyncClient(url, credential={"Authorization": BEARER}) as client:
        np.testing.assert_array_equal((await client.aencode(["in"]))[0], expected_text("in"))
    async with AsyncClient(url, headers={"Authorization": BEARER}) as client:  # a client header does the same
        np.testing.assert_array_equal((await client.aencode(["in"]))[0], expected_text("in"))
    async with AsyncClient(url, credential={"Authorization": "s3cret-value"}, max_retries=0) as client:
        with pytest.raises(AuthenticationError):
            await client.aencode(["the raw token is not enough here"])
        # a call's own header replaces the client's token for that call only
        vectors = await client.aencode(["per call"], headers={"authorization": BEARER})
        np.testing.assert_array_equal(vectors[0], expected_text("per call"))
        with pytest.raises(AuthenticationError):
            await client.aencode(["and the next call is back to the client's token"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_client_and_call_headers_reach_the_server(protocol: str) -> None:
    with serve_in_thread() as server:
        client_headers = {"X-Team": "search", "X-Trace": "client"}
        async with AsyncClient(server.url(protocol), headers=client_headers) as client:
            await client.aencode(["one"])
            first = server.stats.headers_seen[-1]
            await client.aencode(["two"], headers={"X-Trace": "call", "X-Extra": "1"})
            second = server.stats.headers_seen[-1]
            await client.aencode(["three"])
            third = server.stats.headers_seen[-1]
    assert first["x-team"] == "search" and first["x-trace"] == "client" and "x-extra" not in first
    assert second["x-team"] == "search" and second["x-trace"] == "call" and second["x-extra"] == "1"
    assert third["x-trace"] == "client" and "x-extra" not in third
    assert "authorization" not in first  # no token was given


@pytest.mark.parametrize(
    ("headers", "error", "match"),
    [
        ({"content-type": "text/plain"}, ValueError, "set by the protocol"),
        ({"grpc-timeout": "1S"}, ValueError, "set by the protocol"),
        ({"x-trace-bin": "abc"}, ValueError, "binary gRPC metadata"),
        ({"x bad": "1"}, ValueError, "not a valid header name"),
        ({"x-ok": "line\r\nbreak"}, ValueError, "line break"),
        ({"x-ok": 3}, TypeError, "str to str"),
        (["x-ok"], TypeError, "dict of str"),
    ],
)
async def test_bad_headers_are_refused_where_given(
    server: ReferenceServer, headers: object, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        AsyncClient(server.url("grpc"), headers=headers)  # type: ignore[arg-type]
    async with AsyncClient(server.url("grpc")) as client:
        with pytest.raises(error, match=match):
            await client.aencode(["x"], headers=headers)  # type: ignore[arg-type]


# --- message size limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_default_limit_carries_a_batch_of_large_images_both_ways(
    server: ReferenceServer, protocol: str
) -> None:
    """6 images of 1.5 MiB in one request, and back again: far over aiohttp's and grpcio's 4 MiB defaults."""
    images = [big_png(3 * 2**19, seed) for seed in range(6)]
    docs = [Document(blob=image) for image in images]
    async with AsyncClient(server.url(protocol)) as client:
        answered = await client.aencode(docs, batch_size=6, parameters={"drop_image_content": False})
    assert [d.blob for d in answered] == images
    for doc, image in zip(answered, images):
        np.testing.assert_array_equal(doc.embedding, expected_embedding(image))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_request_over_the_limit_is_refused_before_sending(server: ReferenceServer, protocol: str) -> None:
    before = server.stats.requests_received
    with Client(server.url(protocol), max_message_size=100_000) as client:
        with pytest.raises(MessageTooLargeError) as raised:
            client.encode([Document(text="small"), Document(blob=big_png(200_000, 1))], batch_size=2)
        assert raised.value.direction == "request" and raised.value.limit == 100_000
        assert raised.value.size is not None and raised.value.size > 100_000 and raised.value.positions == [0, 1]
        assert "batch_size" in str(raised.value)
        assert server.stats.requests_received == before  # nothing went out
        assert client.encode(["it fits"]).shape == (1, 512)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_answer_over_the_limit_is_refused(server: ReferenceServer, protocol: str) -> None:
    async with AsyncClient(server.url(protocol), max_message_size=20_000, max_retries=0) as client:
        with pytest.raises(MessageTooLargeError) as raised:
            # 40 one-letter sentences fit in a request of a few kB; 40 embeddings of 2 kB each do not
            await client.aencode([chr(ord("a") + i % 26) for i in range(40)], batch_size=40)
        assert raised.value.direction == "answer" and raised.value.limit == 20_000
        vectors = await client.aencode(["small answers still pass"])
    np.testing.assert_array_equal(vectors[0], expected_text("small answers still pass"))


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
async def test_max_message_size_must_be_a_positive_int(server: ReferenceServer, value: object) -> None:
    with pytest.raises((TypeError, ValueError), match="max_message_size"):
        AsyncClient(server.url("grpc"), max_message_size=value)  # type: ignore[arg-type]
