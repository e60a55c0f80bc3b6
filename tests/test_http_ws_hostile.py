"""The HTTP and WebSocket transports against hostile servers: every wait bounded, every answer's memory bounded.

- A WebSocket handshake that never comes ends by the request's deadline, not by ``connect_timeout`` (nor by
  ``connect_timeout`` once per retry).
- Closing a WebSocket whose server never closes ends by the request's deadline too, and the engine never
  waits for that close frame when every answer has arrived.
- A compressed HTTP answer is bounded by its inflated size (``max_message_size``) while it inflates: a gzip
  bomb of 300 kB that inflates to 300 MB fails with MessageTooLargeError after inflating at most the limit.
  Error and readiness answers are read through the same bounded reader.
- WebSocket compression is not offered, and a compressed frame a server sends anyway cannot grow memory.
"""

from __future__ import annotations

import contextlib
import math
import tracemalloc
from typing import Any, Dict, Iterator, List, Optional

import aiohttp
import anyio
import numpy as np
import pytest

from aclip import (
    AsyncClient,
    ConnectError,
    HTTPStatusError,
    MessageTooLargeError,
    ProtocolError,
    RequestTimeoutError,
    TransportError,
)
from aclip._config import TLSOptions, parse_server
from aclip._transports import TransportOptions, create_transport, ssl_context_for
from tests.conftest import Certificates
from tests.helpers import expected_text
from tests.hostile_http import (
    MiB,
    compress,
    compressed_reference_app,
    deflate_bomb,
    fixed_answer_app,
    serve_app,
    silent_server,
    websocket_deflate_bomb,
    websocket_never_closes,
)

pytestmark = pytest.mark.anyio

#: What the bombs inflate to: far more than any limit the tests set, so inflating it all would show.
BOMB_SIZE = 300 * MiB
JSON_GZIP = {"Content-Type": "application/json", "Content-Encoding": "gzip"}


class _Peak:
    bytes = 0


@contextlib.contextmanager
def peak_allocation() -> Iterator[_Peak]:
    """The peak of Python allocations during the block (every thread; the servers' payloads are made before)."""
    peak = _Peak()
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# --- 1. the WebSocket handshake ends by the request's deadline ----------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    with silent_server(lifetime=30) as port:
        yield port


def _client_options(scheme: str, certificates: Certificates) -> Dict[str, Any]:
    return {"ca_file": certificates.ca_file} if scheme == "wss" else {}


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_a_handshake_that_never_comes_ends_by_the_streams_deadline(
    silent_port: int, scheme: str, certificates: Certificates
) -> None:
    """connect_timeout is 10 s, the deadline 1 s away: the deadline ends the wait, as a RequestTimeoutError."""
    address = parse_server(f"{scheme}://127.0.0.1:{silent_port}")
    ssl_context = ssl_context_for(address, TLSOptions(**_client_options(scheme, certificates)))
    transport = create_transport(address, TransportOptions(ssl_context=ssl_context, connect_timeout=10))
    try:
        with anyio.fail_after(8):
            started = anyio.current_time()
            with pytest.raises(RequestTimeoutError) as raised:
                async with transport.open_stream(deadline=lambda: started + 1):
                    pytest.fail("a stream opened on a server that never answers the handshake")
            elapsed = anyio.current_time() - started
    finally:
        await transport.aclose()
    assert elapsed < 3
    assert raised.value.positions == []  # the engine fills them in
    assert "handshake" in str(raised.value)


async def test_connect_timeout_still_ends_the_handshake_when_it_comes_first(silent_port: int) -> None:
    transport = create_transport(parse_server(f"ws://127.0.0.1:{silent_port}"), TransportOptions(connect_timeout=0.5))
    try:
        with anyio.fail_after(8):
            started = anyio.current_time()
            with pytest.raises(ConnectError, match=r"within 0\.5 s"):
                async with transport.open_stream(deadline=lambda: started + 30):
                    pass
    finally:
        await transport.aclose()


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_the_calls_timeout_bounds_one_websocket_handshake(
    silent_port: int, scheme: str, certificates: Certificates
) -> None:
    """timeout=2 with the default connect_timeout of 10 s: the single attempt ends by the request's 2 s."""
    url = f"{scheme}://127.0.0.1:{silent_port}"
    with anyio.fail_after(9):  # one handshake would take 10 s when only connect_timeout bounded it
        async with AsyncClient(url, timeout=2, max_retries=0, **_client_options(scheme, certificates)) as client:
            started = anyio.current_time()
            with pytest.raises(TransportError):
                await client.aencode(["anyone there?"])
            elapsed = anyio.current_time() - started
    assert elapsed < 5


async def test_the_calls_timeout_bounds_the_handshakes_of_every_retry(silent_port: int) -> None:
    """Default max_retries (2): each attempt's handshake ends by its request's deadline (2 s), not after the
    10 s connect_timeout: three attempts and two short backoffs (at most 0.2 s and 0.4 s)."""
    with anyio.fail_after(20):  # three handshakes of 10 s each would take 30 s
        async with AsyncClient(f"ws://127.0.0.1:{silent_port}", timeout=2) as client:
            started = anyio.current_time()
            with pytest.raises(RequestTimeoutError) as caught:
                await client.aencode(["anyone there?"])
            elapsed = anyio.current_time() - started
    assert elapsed < 3 * 2 + 0.6 + 2  # 2 s of slack for a busy machine; 30 s before the fix
    assert caught.value.positions == [0]


async def test_the_http_transport_takes_a_stream_deadline(silent_port: int) -> None:
    """HTTP has nothing to wait for when opening a stream (the engine bounds each POST's answer)."""
    transport = create_transport(parse_server(f"http://127.0.0.1:{silent_port}"), TransportOptions())
    try:
        with anyio.fail_after(5):
            async with transport.open_stream(deadline=lambda: math.inf) as stream:
                await stream.end()
                assert await stream.receive() is None
    finally:
        await transport.aclose()


# --- 4. closing a WebSocket whose server never closes --------------------------------------------------------


@pytest.fixture
def never_closing_port() -> Iterator[int]:
    with websocket_never_closes(lifetime=30) as port:
        yield port


async def test_closing_a_socket_the_server_never_closes_ends_by_the_streams_deadline(never_closing_port: int) -> None:
    transport = create_transport(parse_server(f"ws://127.0.0.1:{never_closing_port}"), TransportOptions())
    try:
        with anyio.fail_after(8):
            started = anyio.current_time()
            async with transport.open_stream(deadline=lambda: started + 1) as stream:
                await stream.end()
            elapsed = anyio.current_time() - started
    finally:
        await transport.aclose()
    assert elapsed < 3  # not the 5 s of the close's own limit


async def test_a_call_ends_when_every_answer_came_though_the_server_never_closes(never_closing_port: int) -> None:
    """With no timeout at all: the engine must not wait for the close frame after the last answer."""
    with anyio.fail_after(12):
        async with AsyncClient(f"ws://127.0.0.1:{never_closing_port}", timeout=None) as client:
            vectors = await client.aencode(["every", "answer", "arrives"], batch_size=1)
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in ("every", "answer", "arrives")]))


# --- 2. compressed HTTP answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("limit", [64 * MiB, 1 * MiB], ids=["64MiB", "1MiB"])
async def test_a_gzip_bomb_is_refused_by_its_inflated_size(limit: int, chunked: bool) -> None:
    bomb = deflate_bomb(BOMB_SIZE, "gzip")
    with (
        serve_app(fixed_answer_app(bomb, headers=JSON_GZIP, chunked=chunked), lifetime=60) as port,
        anyio.fail_after(30),
        peak_allocation() as peak,
    ):
        async with AsyncClient(f"http://127.0.0.1:{port}", max_message_size=limit, max_retries=0) as client:
            with pytest.raises(MessageTooLargeError) as raised:
                await client.aencode(["boom"])
    assert raised.value.direction == "answer" and raised.value.limit == limit
    assert peak.bytes < 2 * limit + 16 * MiB, f"{peak.bytes / MiB:.0f} MiB for a limit of {limit / MiB:.0f} MiB"


@pytest.mark.parametrize("encoding", ["deflate", "raw-deflate"])
async def test_a_deflate_bomb_is_refused_by_its_inflated_size(encoding: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "deflate"}
    with (
        serve_app(fixed_answer_app(deflate_bomb(BOMB_SIZE, encoding), headers=headers)) as port,
        anyio.fail_after(30),
        peak_allocation() as peak,
    ):
        async with AsyncClient(f"http://127.0.0.1:{port}", max_message_size=MiB, max_retries=0) as client:
            with pytest.raises(MessageTooLargeError):
                await client.aencode(["boom"])
    assert peak.bytes < 16 * MiB


async def test_an_error_answer_that_is_a_gzip_bomb_keeps_its_status() -> None:
    """Only the error's detail is shown, so its body is read up to a small cap, whatever max_message_size."""
    with (
        serve_app(fixed_answer_app(deflate_bomb(BOMB_SIZE, "gzip"), status=503, headers=JSON_GZIP)) as port,
        anyio.fail_after(30),
        peak_allocation() as peak,
    ):
        async with AsyncClient(f"http://127.0.0.1:{port}", max_retries=0) as client:
            with pytest.raises(HTTPStatusError) as raised:
                await client.aencode(["boom"])
    assert raised.value.status == 503
    assert peak.bytes < 16 * MiB


async def test_a_readiness_answer_that_is_a_gzip_bomb_is_not_read_whole() -> None:
    with (
        serve_app(fixed_answer_app(deflate_bomb(BOMB_SIZE, "gzip"), headers=JSON_GZIP)) as port,
        anyio.fail_after(30),
        peak_allocation() as peak,
    ):
        async with AsyncClient(f"http://127.0.0.1:{port}") as client:
            [reason] = await client.readiness(timeout=20)
    assert reason is not None and "max_message_size" in reason
    assert peak.bytes < 16 * MiB


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_answers_decode_as_plain_ones(encoding: str) -> None:
    seen: List[Dict[str, str]] = []
    texts = ["squeezed", "and", "inflated"]
    with serve_app(compressed_reference_app(encoding, seen)) as port:
        with anyio.fail_after(20):
            async with AsyncClient(f"http://127.0.0.1:{port}") as client:
                vectors = await client.aencode(texts, batch_size=2)
                assert await client.readiness() == [None]
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))
    assert {headers.get("Accept-Encoding") for headers in seen} == {"gzip, deflate"}  # not br: it is not bounded


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("br", b"\x0b\x02\x80{}\x03"),  # brotli, which aclip does not ask for
        ("gzip", b"\x1f\x8b\x08\x00not a gzip stream at all"),  # corrupt
        ("gzip", compress(b'{"header": {}, "data": []}', "gzip")[:-12]),  # cut short
        ("gzip, gzip", compress(compress(b"{}", "gzip"), "gzip")),  # stacked encodings are not accepted
    ],
    ids=["unknown", "corrupt", "truncated", "stacked"],
)
async def test_an_undecodable_encoding_is_a_protocol_error(encoding: str, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    with serve_app(fixed_answer_app(body, headers=headers)) as port:
        with anyio.fail_after(20):
            async with AsyncClient(f"http://127.0.0.1:{port}", max_retries=0) as client:
                with pytest.raises(ProtocolError):
                    await client.aencode(["what is this?"])


# --- 3. WebSocket compression ----------------------------------------------------------------------------------


async def test_a_compressed_websocket_frame_cannot_grow_memory() -> None:
    """aiohttp's ws_connect offers no permessage-deflate unless asked (compress=0), and aclip does not ask.

    A server that sends a compressed frame anyway is refused: aiohttp 3.14 rejects the RSV1 bit it did not
    negotiate; aiohttp 3.9 inflates it, but no further than max_msg_size. Either way memory stays bounded.
    """
    offers: List[Optional[str]] = []
    with (
        websocket_deflate_bomb(deflate_bomb(BOMB_SIZE, "permessage-deflate"), offers) as port,
        anyio.fail_after(30),
        peak_allocation() as peak,
    ):
        async with AsyncClient(f"ws://127.0.0.1:{port}", max_message_size=MiB, max_retries=0) as client:
            with pytest.raises((MessageTooLargeError, TransportError)) as raised:
                await client.aencode(["boom"])
    assert offers == [None]  # no Sec-WebSocket-Extensions in the handshake
    assert isinstance(raised.value, MessageTooLargeError) or "reserved bits" in str(raised.value)
    assert peak.bytes < 16 * MiB


async def test_aiohttp_bounds_a_negotiated_compressed_frame_by_max_msg_size() -> None:
    """Should compression ever be offered: aiohttp (3.9 to 3.14) inflates a message no further than
    max_msg_size (zlib's max_length), so the bomb is refused without growing memory."""
    offers: List[Optional[str]] = []
    with (
        websocket_deflate_bomb(deflate_bomb(BOMB_SIZE, "permessage-deflate"), offers) as port,
        anyio.fail_after(30),
        peak_allocation() as peak,
    ):
        async with aiohttp.ClientSession() as session:
            socket = await session.ws_connect(f"ws://127.0.0.1:{port}", compress=15, max_msg_size=MiB)
            await socket.send_bytes(b"request")
            message = await socket.receive()
            await socket.close()
    assert offers[0] is not None and "permessage-deflate" in offers[0]
    assert message.type == aiohttp.WSMsgType.ERROR
    assert isinstance(message.data, aiohttp.WebSocketError)
    assert message.data.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    assert peak.bytes < 16 * MiB
