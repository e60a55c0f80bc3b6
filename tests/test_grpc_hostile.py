"""The gRPC transport against a server that breaks the rules (see tests/hostile_grpc.py).

Every wait is held to a bound by ``anyio.fail_after``, so a regression fails instead of hanging: no
trailers, a 4 GiB announcement, a body that never completes, a truncated or compressed message.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import ssl
import tracemalloc
from typing import Callable, List, Optional

import anyio
import numpy as np
import pytest
from grpclib import client as grpclib_client
from grpclib import protocol as grpclib_protocol
from grpclib.const import Cardinality

from aclip import AsyncClient, ConnectError, MessageTooLargeError, ProtocolError, RequestTimeoutError
from aclip._config import parse_server
from aclip._pb import jina_pb2
from aclip._transports import grpc as grpc_transport
from aclip._transports.base import Received, TransportOptions
from aclip._transports.grpc import GrpcTransport
from aclip._wire.protobuf import JINA_CALL, RawBytesCodec, decode_ndarray
from tests.helpers import expected_text
from tests.hostile_grpc import HUGE_LENGTH, Behaviour, HostileGrpcServer, serve_hostile

pytestmark = pytest.mark.anyio

MiB = 2**20


def request_frame(request_id: str, texts: List[str]) -> bytes:
    """A serialised /encode DataRequest for ``texts``."""
    request = jina_pb2.DataRequestProto()
    request.header.request_id = request_id
    request.header.exec_endpoint = "/encode"
    for number, text in enumerate(texts):
        request.data.docs.docs.add(id=str(number), text=text)
    return request.SerializeToString()


def check_answer(received: Optional[Received], request_id: str, text: str) -> None:
    assert received is not None
    answer = jina_pb2.DataRequestProto.FromString(received[1])
    assert answer.header.request_id == request_id
    embedding = decode_ndarray(answer.data.docs.docs[0].embedding, what="embedding")
    np.testing.assert_array_equal(embedding, expected_text(text))


def transport_for(server: HostileGrpcServer, **options: object) -> GrpcTransport:
    return GrpcTransport(parse_server(server.url), TransportOptions(**options))  # type: ignore[arg-type]


def within(seconds: float) -> Callable[[], float]:
    """A StreamDeadline: every wait may take ``seconds`` from when it starts."""
    return lambda: anyio.current_time() + seconds


async def eventually(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.02)


def trailer_records(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aclip" and "trailers" in r.getMessage()]


# -- trailers that never come ------------------------------------------------------------------------


async def test_answers_arrive_although_the_server_never_sends_trailers(caplog: pytest.LogCaptureFixture) -> None:
    texts = ["alpha", "beta", "gamma"]
    with serve_hostile(Behaviour.NO_TRAILERS) as server:
        with caplog.at_level(logging.DEBUG, logger="aclip"), anyio.fail_after(10):
            async with AsyncClient(server.url, timeout=2) as client:
                vectors = await client.aencode(texts, batch_size=1)
        for text, vector in zip(texts, vectors):
            np.testing.assert_array_equal(vector, expected_text(text))
        await eventually(lambda: server.resets_by_client == 1)  # the client gave the stream up
    [record] = trailer_records(caplog)
    assert record.levelno == logging.DEBUG


async def test_the_trailers_wait_ends_by_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    with serve_hostile(Behaviour.NO_TRAILERS) as server:
        transport = transport_for(server)
        try:
            with caplog.at_level(logging.DEBUG, logger="aclip"), anyio.fail_after(4):
                for call in ("first", "second"):  # the connection stays usable after a stream is given up
                    started = anyio.current_time()
                    async with transport.open_stream(deadline=within(0.5)) as stream:
                        await stream.send(call, request_frame(call, [call]))
                        await stream.end()
                        check_answer(await stream.receive(), call, call)
                    assert anyio.current_time() - started < 2  # the 0.5 s deadline, not the 5 s grace
        finally:
            await transport.aclose()
        await eventually(lambda: server.resets_by_client == 2)
    assert len(trailer_records(caplog)) == 2


async def test_without_a_deadline_the_trailers_wait_ends_by_its_own_grace(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(grpc_transport, "TRAILERS_GRACE", 0.3)
    with serve_hostile(Behaviour.NO_TRAILERS) as server:
        transport = transport_for(server)
        try:
            with caplog.at_level(logging.DEBUG, logger="aclip"), anyio.fail_after(4):
                started = anyio.current_time()
                async with transport.open_stream() as stream:  # no deadline: only the grace bounds the wait
                    await stream.send("r1", request_frame("r1", ["hello"]))
                    await stream.end()
                    check_answer(await stream.receive(), "r1", "hello")
                assert anyio.current_time() - started < 2
        finally:
            await transport.aclose()
    [record] = trailer_records(caplog)
    assert "within 0.3 s" in record.getMessage()


async def test_a_stream_ended_without_trailers_ends_cleanly_by_the_deadline() -> None:
    with serve_hostile(Behaviour.ENDS_WITHOUT_TRAILERS) as server:
        transport = transport_for(server)
        try:
            with anyio.fail_after(4):
                started = anyio.current_time()
                async with transport.open_stream(deadline=within(0.5)) as stream:
                    await stream.send("r1", request_frame("r1", ["hello"]))
                    await stream.end()
                    check_answer(await stream.receive(), "r1", "hello")
                    assert await stream.receive() is None  # the server ended the stream; trailers never come
                assert anyio.current_time() - started < 2
        finally:
            await transport.aclose()


async def test_an_error_leaves_the_stream_without_waiting_for_trailers() -> None:
    class Boom(Exception):
        pass

    with serve_hostile(Behaviour.NO_TRAILERS) as server:
        transport = transport_for(server)
        try:
            with anyio.fail_after(4):
                started = anyio.current_time()
                with pytest.raises(Boom):
                    async with transport.open_stream() as stream:
                        await stream.send("r1", request_frame("r1", ["hello"]))
                        await stream.end()
                        check_answer(await stream.receive(), "r1", "hello")
                        raise Boom
                assert anyio.current_time() - started < 1  # no trailers grace at all
        finally:
            await transport.aclose()


# -- connecting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["deadline", "connect_timeout"])
async def test_a_tls_handshake_that_never_ends_is_bounded(by: str) -> None:
    with serve_hostile(Behaviour.SILENT) as server:  # accepts, never answers the ClientHello
        connect_timeout = 10.0 if by == "deadline" else 0.3
        deadline = within(0.3) if by == "deadline" else within(60)
        transport = transport_for(server, ssl_context=ssl.create_default_context(), connect_timeout=connect_timeout)
        try:
            with anyio.fail_after(4):
                async with transport.open_stream(deadline=deadline) as stream:
                    if by == "deadline":
                        with pytest.raises(RequestTimeoutError, match="before the request's deadline") as caught:
                            await stream.send("r1", request_frame("r1", ["hello"]))
                        assert caught.value.positions == []  # the engine fills them in
                    else:
                        with pytest.raises(ConnectError, match=r"within 0\.3 s"):
                            await stream.send("r1", request_frame("r1", ["hello"]))
        finally:
            await transport.aclose()


# -- answers over max_message_size -------------------------------------------------------------------


@pytest.mark.parametrize("limit", [None, MiB], ids=["default-limit", "1MiB-limit"])
async def test_an_answer_announcing_4_gib_is_refused_at_once_without_buffering(limit: Optional[int]) -> None:
    options = {} if limit is None else {"max_message_size": limit}
    with serve_hostile(Behaviour.HUGE_PREFIX) as server:
        tracemalloc.start()
        try:
            with anyio.fail_after(10):
                async with AsyncClient(server.url, timeout=30, **options) as client:
                    started = anyio.current_time()
                    with pytest.raises(MessageTooLargeError) as caught:
                        await client.aencode(["hello"])
                    elapsed = anyio.current_time() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    error = caught.value
    assert (error.direction, error.size, error.limit) == ("answer", HUGE_LENGTH, limit or 2**30)
    assert elapsed < 3
    assert peak < 32 * MiB, f"the client buffered {peak / MiB:.0f} MiB of an answer it should have refused"


async def test_a_valid_answer_over_a_small_limit_is_refused_before_its_body_is_read() -> None:
    with serve_hostile(Behaviour.PARTIAL_BODY) as server:  # sends half the body, then waits
        with anyio.fail_after(10):
            async with AsyncClient(server.url, timeout=30, max_message_size=1024) as client:
                started = anyio.current_time()
                with pytest.raises(MessageTooLargeError, match="max_message_size=1024") as caught:
                    await client.aencode(["hello"])
                assert anyio.current_time() - started < 3
    assert caught.value.size is not None and caught.value.size > 1024


# -- broken framing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "behaviour", [Behaviour.TRUNCATED, Behaviour.TRUNCATED_END_STREAM, Behaviour.TRUNCATED_PREFIX], ids=str
)
async def test_a_truncated_answer_is_a_protocol_error(behaviour: Behaviour) -> None:
    with serve_hostile(behaviour) as server:
        with anyio.fail_after(10):
            async with AsyncClient(server.url, timeout=30) as client:
                with pytest.raises(ProtocolError, match="in the middle of a gRPC message") as caught:
                    await client.aencode(["hello"])
    assert server.url in str(caught.value)


async def test_a_compressed_answer_is_a_protocol_error() -> None:
    with serve_hostile(Behaviour.COMPRESSED) as server:
        with anyio.fail_after(10):
            async with AsyncClient(server.url, timeout=30) as client:
                with pytest.raises(ProtocolError, match="aclip does not accept compressed gRPC messages") as caught:
                    await client.aencode(["hello"])
    assert server.url in str(caught.value)


# -- the grpclib internals the framing reader relies on ----------------------------------------------


async def test_grpclib_private_api_is_what_the_framing_reader_expects() -> None:
    """aclip/_transports/_grpc_framing.py reads messages through grpclib internals; say loudly what changed."""
    problems: List[str] = []
    Stream = grpclib_client.Stream
    if "_stream" not in Stream.__annotations__:
        problems.append("client.Stream no longer declares _stream (the HTTP/2 stream)")
    if Stream.__dict__.get("_recv_initial_metadata_done") is not False:
        problems.append("client.Stream._recv_initial_metadata_done is gone or no longer False by default")
    recv_data = getattr(grpclib_protocol.Stream, "recv_data", None)
    if recv_data is None or not inspect.iscoroutinefunction(recv_data):
        problems.append("protocol.Stream.recv_data is gone or no longer a coroutine function")
    elif list(inspect.signature(recv_data).parameters) != ["self", "size"]:
        problems.append(f"protocol.Stream.recv_data{inspect.signature(recv_data)} is no longer (self, size)")

    channel = grpclib_client.Channel("127.0.0.1", 1, codec=RawBytesCodec())
    try:
        stream = channel.request(JINA_CALL, Cardinality.STREAM_STREAM, bytes, bytes)
        async with stream:  # nothing was sent: the exit returns at once
            wrapper = getattr(stream, "_wrapper", None)
            if not (hasattr(wrapper, "__enter__") and hasattr(wrapper, "__exit__")):
                problems.append("client.Stream._wrapper (set on entering the stream) is gone or no context manager")
    finally:
        channel.close()

    buffer = grpclib_protocol.Buffer(lambda size: None)
    buffer.add(b"abc", 3)
    buffer.eof()
    try:
        short = await buffer.read(5)
    except AssertionError:
        pass  # what the reader expects when a stream ends in the middle of a read
    else:
        problems.append(f"Buffer.read(5) with 3 bytes left before the end returned {short!r} instead of failing")
    ended = grpclib_protocol.Buffer(lambda size: None)
    ended.eof()
    if await ended.read(5) != b"":
        problems.append("Buffer.read at the end of the stream no longer returns b''")

    assert not problems, (
        f"grpclib {importlib.metadata.version('grpclib')} changed private API that aclip's gRPC framing reader "
        f"(aclip/_transports/_grpc_framing.py) relies on; update the reader and the grpclib pin in "
        f"pyproject.toml: " + "; ".join(problems)
    )
