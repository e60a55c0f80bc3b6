"""The reference server (aclip.testing), driven by a raw grpclib client and the aclip._pb messages.

The server always runs off the test's event loop (``serve_in_thread``) or in a subprocess (the CLI test).
Every wait is bounded; nothing sleeps in place of synchronisation.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import doctest
import http.server
import importlib
import pathlib
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Optional
from urllib.parse import quote

import anyio
import numpy as np
import pytest
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

import aclip.testing
from aclip._pb.docarray_pb2 import DocumentProto, NdArrayProto
from aclip._pb.jina_pb2 import DataRequestProto, StatusProto
from aclip._wire.protobuf import JINA_CALL, RawBytesCodec
from aclip.testing import ReferenceExecutor, ReferenceServer, serve_in_thread
from tests import helpers

WAIT = 10.0  # seconds: upper bound of every wait in this module
REPO = pathlib.Path(__file__).resolve().parents[2]


# --- an independent statement of the test encoder (shared/reference/test-encoder.md) -------------------


def expected(payload: bytes) -> bytes:
    """The embedding bytes (<f4) the formula gives for ``payload``."""
    return helpers.expected_embedding(payload).astype("<f4").tobytes()


def expected_tensor(t: np.ndarray) -> bytes:
    return helpers.expected_tensor(t).astype("<f4").tobytes()


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)  # the magic is all the server checks
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(32)


# --- a raw client ------------------------------------------------------------------------------------------


def make_request(
    *docs: DocumentProto,
    request_id: str = "req-0",
    endpoint: Optional[str] = "/encode",
    parameters: Optional[dict[str, Any]] = None,
) -> DataRequestProto:
    request = DataRequestProto()
    request.header.request_id = request_id
    if endpoint is not None:
        request.header.exec_endpoint = endpoint
    if parameters is not None:
        request.parameters.update(parameters)
    request.data.docs.docs.extend(docs)
    return request


def tensor_proto(array: np.ndarray) -> NdArrayProto:
    dense = {"buffer": array.tobytes(), "shape": list(array.shape), "dtype": array.dtype.str}
    return NdArrayProto(dense=dense, cls_name="numpy")


def host_port(url: str) -> tuple[str, int]:
    assert url.startswith("grpc://"), url
    host, _, port = url[len("grpc://") :].rpartition(":")
    return host, int(port)


@contextlib.asynccontextmanager
async def open_call(url: str, *, metadata: Optional[dict[str, str]] = None) -> AsyncIterator[Stream[bytes, bytes]]:
    host, port = host_port(url)
    channel = Channel(host, port, codec=RawBytesCodec())
    try:
        with anyio.fail_after(WAIT):
            async with channel.request(
                JINA_CALL, Cardinality.STREAM_STREAM, bytes, bytes, metadata=metadata, timeout=WAIT
            ) as stream:
                yield stream
    finally:
        channel.close()


async def recv(stream: Stream[bytes, bytes]) -> DataRequestProto:
    with anyio.fail_after(WAIT):
        message = await stream.recv_message()
    assert message is not None, "the server ended the stream early"
    return DataRequestProto.FromString(message)


async def exchange(
    url: str, requests: Sequence[DataRequestProto], *, metadata: Optional[dict[str, str]] = None
) -> list[DataRequestProto]:
    """Send every request, half-close, and return the responses in the order they arrived."""
    async with open_call(url, metadata=metadata) as stream:
        for request in requests:
            await stream.send_message(request.SerializeToString())
        await stream.end()
        return [DataRequestProto.FromString(message) async for message in stream]


def embedding_bytes(doc: DocumentProto) -> bytes:
    assert doc.HasField("embedding"), f"doc {doc.id!r} has no embedding"
    dense = doc.embedding.dense
    assert (list(dense.shape), dense.dtype, doc.embedding.cls_name) == ([512], "<f4", "numpy")
    return dense.buffer


# --- the test encoder ------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"hello, world", "\u00e9t\u00e9".encode(), bytes(range(256)) * 9])
def test_encoder_follows_the_formula(payload: bytes) -> None:
    vector = aclip.testing.test_embedding(payload)
    assert vector.dtype == np.float32 and vector.shape == (512,)
    assert vector.tobytes() == expected(payload)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_encoder_helpers() -> None:
    assert aclip.testing.embed_text("a cat").tobytes() == expected(b"a cat")
    image = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
    assert aclip.testing.embed_tensor(image).tobytes() == expected(b"(4, 4, 3)" + image.tobytes())
    assert aclip.testing.embed_tensor(image.astype(np.float64)).tobytes() == expected_tensor(image)
    assert aclip.testing.embed_image_bytes(PNG).tobytes() == expected(PNG)
    with pytest.raises(aclip.testing.UnidentifiedImageError):
        aclip.testing.embed_image_bytes(b"not an image")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (PNG, "png"),
        (JPEG, "jpeg"),
        (b"GIF89a" + bytes(8), "gif"),
        (b"GIF87a" + bytes(8), "gif"),
        (b"BM" + bytes(12), "bmp"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"\x89PNG", None),
        (b"", None),
    ],
)
def test_image_format_by_magic_bytes(data: bytes, name: Optional[str]) -> None:
    assert aclip.testing.image_format(data) == name


@pytest.mark.parametrize("module", ["_encoder", "_executor", "_loader", "_stats"])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"aclip.testing.{module}"))
    assert result.failed == 0 and result.attempted > 0


def test_public_names() -> None:
    assert aclip.testing.__all__ == sorted(aclip.testing.__all__)
    for name in aclip.testing.__all__:
        assert getattr(aclip.testing, name).__doc__, name


def test_serve_in_thread_takes_a_server_or_its_options() -> None:
    with serve_in_thread("127.0.0.1", protocols=("http",), fail_every=3, start_timeout=WAIT) as server:
        assert list(server.urls) == ["http"] and server.faults.fail_every == 3
    ready = ReferenceServer(protocols=["grpc"], token="t")
    with serve_in_thread(ready, start_timeout=WAIT, stop_timeout=WAIT) as server:
        assert server is ready and list(server.urls) == ["grpc"]
    with pytest.raises(TypeError, match="not both"), serve_in_thread(ReferenceServer(), token="t"):
        pytest.fail("serve_in_thread took a server and options")
    with pytest.raises(TypeError, match="fail_evry"), serve_in_thread(fail_evry=3):
        pytest.fail("serve_in_thread took an option ReferenceServer does not have")


# --- encoding through the gRPC frontend -------------------------------------------------------------------


@pytest.mark.anyio
async def test_text_response_has_the_real_server_shape(server: ReferenceServer) -> None:
    request = make_request(
        DocumentProto(id="d0", text="hello, world"),
        request_id="87c9b3d4524643cda41d2e97f65fec3c",
        parameters={"drop_image_content": True, "limit": 2},
    )
    [response] = await exchange(server.url("grpc"), [request])
    header = response.header
    assert header.request_id == request.header.request_id
    assert header.exec_endpoint == "/encode"
    assert header.HasField("target_executor") and header.target_executor == ""
    assert not header.HasField("status")
    assert response.parameters == request.parameters
    assert [route.executor for route in response.routes] == ["gateway", "clip_t"]
    gateway, executor = response.routes
    assert 0 < gateway.start_time.ToNanoseconds() <= executor.start_time.ToNanoseconds()
    assert executor.start_time.ToNanoseconds() <= executor.end_time.ToNanoseconds()
    assert executor.end_time.ToNanoseconds() <= gateway.end_time.ToNanoseconds()
    [doc] = response.data.docs.docs
    assert (doc.id, doc.text, doc.mime_type) == ("d0", "hello, world", "text/plain")
    assert embedding_bytes(doc) == expected(b"hello, world")


@pytest.mark.anyio
async def test_images_as_tensor_blob_data_uri_and_files(server: ReferenceServer, tmp_path: pathlib.Path) -> None:
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    path = tmp_path / "cat image.png"
    path.write_bytes(PNG)
    docs = [
        DocumentProto(id="tensor", tensor=tensor_proto(image)),
        DocumentProto(id="tensor-f32", tensor=tensor_proto(image.astype(np.float32)[None])),
        DocumentProto(id="blob", blob=JPEG, mime_type="image/jpeg"),
        DocumentProto(id="b64", uri="data:image/png;base64," + base64.b64encode(PNG).decode()),
        DocumentProto(id="pct", uri="data:image/png," + quote(PNG)),
        DocumentProto(id="path", uri=str(path)),
        DocumentProto(id="file-url", uri=path.as_uri()),
    ]
    request = make_request(*docs, parameters={"drop_image_content": False})
    [response] = await exchange(server.url("grpc"), [request])
    assert response.header.status.code == StatusProto.SUCCESS
    out = {doc.id: doc for doc in response.data.docs.docs}
    assert list(out) == [doc.id for doc in docs]
    assert embedding_bytes(out["tensor"]) == expected(b"(4, 4, 3)" + image.tobytes())
    assert embedding_bytes(out["tensor-f32"]) == expected_tensor(image)
    assert out["tensor"].tensor == docs[0].tensor  # drop_image_content false: content kept
    assert embedding_bytes(out["blob"]) == expected(JPEG)
    assert out["blob"].blob == JPEG
    for name in ("b64", "pct", "path", "file-url"):
        assert embedding_bytes(out[name]) == expected(PNG), name
        assert out[name].WhichOneof("content") is None, name  # the loaded bytes are not sent back
        assert out[name].mime_type == "image/png", name
        assert out[name].uri == request.data.docs.docs[[d.id for d in docs].index(name)].uri


@pytest.mark.anyio
async def test_drop_image_content(server: ReferenceServer) -> None:
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    docs = [
        DocumentProto(id="blob", blob=PNG, uri="img/0.png", mime_type="image/png"),
        DocumentProto(id="tensor", tensor=tensor_proto(image)),
        DocumentProto(id="text", text="kept"),
    ]
    [response] = await exchange(server.url(), [make_request(*docs, parameters={"drop_image_content": True})])
    blob, tensor, text = response.data.docs.docs
    assert not blob.blob and blob.WhichOneof("content") is None
    assert (blob.uri, blob.mime_type) == ("img/0.png", "image/png")
    assert embedding_bytes(blob) == expected(PNG)
    assert not tensor.HasField("tensor") and embedding_bytes(tensor) == expected_tensor(image)
    assert text.text == "kept" and embedding_bytes(text) == expected(b"kept")


@pytest.mark.anyio
async def test_empty_text_and_empty_doc_get_no_embedding(server: ReferenceServer) -> None:
    docs = [DocumentProto(id="empty-text", text=""), DocumentProto(id="nothing"), DocumentProto(id="t", text="x")]
    [response] = await exchange(server.url(), [make_request(*docs)])
    assert response.header.status.code == StatusProto.SUCCESS and not response.header.HasField("status")
    empty_text, nothing, text = response.data.docs.docs
    assert not empty_text.HasField("embedding") and empty_text.mime_type == ""
    assert not nothing.HasField("embedding") and nothing == docs[1]
    assert embedding_bytes(text) == expected(b"x")


@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", ["/", "/encode", "/encode/ViT-B-32::openai", None, "/foo", "/rank", "/search"])
async def test_every_endpoint_encodes(server: ReferenceServer, endpoint: Optional[str]) -> None:
    request = make_request(DocumentProto(id="d", text="hello"), endpoint=endpoint)
    [response] = await exchange(server.url(), [request])
    assert response.header.HasField("exec_endpoint") == (endpoint is not None)
    assert response.header.exec_endpoint == (endpoint or "")
    assert embedding_bytes(response.data.docs.docs[0]) == expected(b"hello")


@pytest.mark.anyio
async def test_a_large_batch_is_encoded_exactly(server: ReferenceServer) -> None:
    texts = [f"text number {i}" for i in range(100)]  # large enough for the worker-thread path
    request = make_request(*(DocumentProto(id=str(i), text=t) for i, t in enumerate(texts)))
    [response] = await exchange(server.url(), [request])
    assert [embedding_bytes(doc) for doc in response.data.docs.docs] == [expected(t.encode()) for t in texts]


# --- errors -----------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_executor_error_fails_one_request_only(server: ReferenceServer) -> None:
    bad = make_request(DocumentProto(id="a", text="ok"), DocumentProto(id="b", blob=b"not an image"), request_id="bad")
    good = make_request(DocumentProto(id="c", text="fine"), request_id="good")
    async with open_call(server.url()) as stream:
        await stream.send_message(bad.SerializeToString())
        first = await recv(stream)
        await stream.send_message(good.SerializeToString())  # the same stream goes on
        second = await recv(stream)
        await stream.end()
        assert await stream.recv_message() is None
    # grpc-status OK: leaving the call without GRPCError proves it
    assert first.header.request_id == "bad"
    status = first.header.status
    assert status.code == StatusProto.ERROR
    assert status.exception.name == "UnidentifiedImageError"
    assert status.description.startswith("UnidentifiedImageError(")
    assert status.exception.args and status.exception.args[0].startswith("cannot identify image file")
    assert status.exception.stacks[0].startswith("Traceback") and status.exception.executor
    assert [route.executor for route in first.routes] == ["gateway", "clip_t"]
    assert first.routes[1].status == status and not first.routes[0].HasField("status")
    assert list(first.data.docs.docs) == list(bad.data.docs.docs)  # unchanged, no embeddings, no mime_type
    assert second.header.request_id == "good" and not second.header.HasField("status")
    assert embedding_bytes(second.data.docs.docs[0]) == expected(b"fine")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("/nonexistent/x.jpg", "FileNotFoundError"),
        ("file:///nonexistent/y.png", "FileNotFoundError"),
        ("ftp://example.invalid/z.png", "FileNotFoundError"),
        ("data:image/png;base64", "ValueError"),
        ("data:text/plain,not%20an%20image", "UnidentifiedImageError"),
    ],
)
async def test_uri_load_failures_are_executor_errors(server: ReferenceServer, uri: str, name: str) -> None:
    request = make_request(DocumentProto(id="u", uri=uri, mime_type="image/jpeg"))
    [response] = await exchange(server.url(), [request])
    exception = response.header.status.exception
    assert (response.header.status.code, exception.name) == (StatusProto.ERROR, name)
    if name == "FileNotFoundError":
        assert uri in exception.args[0]
    assert list(response.data.docs.docs) == list(request.data.docs.docs)


@pytest.mark.anyio
async def test_undecodable_request_ends_the_call_with_unknown(server: ReferenceServer) -> None:
    with pytest.raises(GRPCError) as caught:
        async with open_call(server.url()) as stream:
            await stream.send_message(b"\xff\xff\xff\xff garbage")
            await stream.end()
            await stream.recv_message()
            await stream.recv_trailing_metadata()
    assert caught.value.status == Status.UNKNOWN
    assert "DecodeError" in (caught.value.message or "")


@pytest.mark.anyio
async def test_token_is_required_when_set() -> None:
    request = make_request(DocumentProto(text="secret stuff"))
    with serve_in_thread(token="s3cret") as server:
        for metadata in (None, {"authorization": "wrong"}, {"authorization": "Bearer s3cret"}):
            with pytest.raises(GRPCError) as caught:
                await exchange(server.url(), [request], metadata=metadata)
            assert caught.value.status == Status.UNAUTHENTICATED, metadata
        [response] = await exchange(server.url(), [request], metadata={"authorization": "s3cret"})
        assert embedding_bytes(response.data.docs.docs[0]) == expected(b"secret stuff")
        assert (server.stats.calls, server.stats.calls_rejected, server.stats.requests_received) == (4, 3, 1)


# --- concurrency and ordering -----------------------------------------------------------------------------


class _SlowImages(http.server.BaseHTTPRequestHandler):
    """Serves PNG at /fast.png at once, and at /slow.png only once the server's ``gate`` is set; tells
    (``server.requested``) when /slow.png has been asked for."""

    server: _ImageServer

    def do_GET(self) -> None:
        if self.path == "/slow.png":
            self.server.requested.set()
            if not self.server.gate.wait(WAIT):
                self.send_error(504)
                return
        if self.path not in ("/fast.png", "/slow.png"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        pass


class _ImageServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    gate: threading.Event
    requested: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up waiting is no error
            super().handle_error(request, client_address)


@contextlib.contextmanager
def serve_images() -> Iterator[_ImageServer]:
    """An image server on 127.0.0.1 whose /slow.png answers only once ``gate`` is set (the test opens it)."""
    httpd = _ImageServer(("127.0.0.1", 0), _SlowImages)
    httpd.gate, httpd.requested = threading.Event(), threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.gate.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(WAIT)


@pytest.fixture
def image_server() -> Iterator[_ImageServer]:
    with serve_images() as httpd:
        yield httpd


def image_url(httpd: _ImageServer, path: str) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"


@pytest.mark.anyio
async def test_http_uri_is_fetched(server: ReferenceServer, image_server: _ImageServer) -> None:
    docs = [DocumentProto(id="ok", uri=image_url(image_server, "/fast.png"))]
    missing = [DocumentProto(id="404", uri=image_url(image_server, "/missing.png"))]
    ok, not_found = await exchange(server.url(), [make_request(*docs), make_request(*missing, request_id="r404")])
    if ok.header.request_id == "r404":
        ok, not_found = not_found, ok
    assert embedding_bytes(ok.data.docs.docs[0]) == expected(PNG)
    assert ok.data.docs.docs[0].mime_type == "image/png"
    assert not_found.header.status.code == StatusProto.ERROR
    assert "404" in not_found.header.status.description
    assert not not_found.data.docs.docs[0].HasField("embedding")


@pytest.mark.anyio
async def test_http_uri_fetch_times_out(image_server: _ImageServer) -> None:
    with serve_in_thread(fetch_timeout=0.2) as server:
        [response] = await exchange(
            server.url(), [make_request(DocumentProto(uri=image_url(image_server, "/slow.png")))]
        )
    assert response.header.status.exception.name == "TimeoutError"
    assert "/slow.png" in response.header.status.exception.args[0]


@pytest.mark.anyio
async def test_a_slow_request_does_not_hold_up_the_next(image_server: _ImageServer) -> None:
    slow = make_request(DocumentProto(uri=image_url(image_server, "/slow.png")), request_id="slow")
    fast = make_request(DocumentProto(text="fast"), request_id="fast")
    with serve_in_thread() as server:
        async with open_call(server.url()) as stream:
            await stream.send_message(slow.SerializeToString())
            await stream.send_message(fast.SerializeToString())
            first = await recv(stream)  # the slow one cannot finish before the gate opens
            image_server.gate.set()
            second = await recv(stream)
            await stream.end()
            assert await stream.recv_message() is None
        assert [first.header.request_id, second.header.request_id] == ["fast", "slow"]
        assert embedding_bytes(second.data.docs.docs[0]) == expected(PNG)
        assert server.stats.responses_out_of_order == 1  # completion order is out of order by itself


@pytest.mark.anyio
async def test_out_of_order_swaps_pairs_of_requests_in_flight() -> None:
    requests = [make_request(DocumentProto(text=f"t{i}"), request_id=f"r{i}") for i in range(5)]
    # A long hold makes the order exact: each even request waits for its partner, which is surely coming;
    # the last one (r4) has no partner and is released when the client ends its stream.
    with serve_in_thread(out_of_order=True, out_of_order_hold=WAIT) as server:
        responses = await exchange(server.url(), requests)
        stats = server.stats
        assert [r.header.request_id for r in responses] == ["r1", "r0", "r3", "r2", "r4"]
        assert (stats.requests_received, stats.responses_sent, stats.responses_out_of_order) == (5, 5, 2)
    for response in responses:
        doc = response.data.docs.docs[0]
        assert embedding_bytes(doc) == expected(doc.text.encode())


@pytest.mark.anyio
async def test_out_of_order_with_one_request_in_flight_does_not_deadlock() -> None:
    with serve_in_thread(out_of_order=True) as server:  # default hold: about 50 ms per even request
        async with open_call(server.url()) as stream:
            for i in range(4):
                await stream.send_message(
                    make_request(DocumentProto(text=f"t{i}"), request_id=f"r{i}").SerializeToString()
                )
                assert (await recv(stream)).header.request_id == f"r{i}"
            await stream.end()
            assert await stream.recv_message() is None
        assert (server.stats.responses_sent, server.stats.responses_out_of_order) == (4, 0)


@pytest.mark.anyio
async def test_in_order_server_answers_a_stream_of_requests(server: ReferenceServer) -> None:
    requests = [make_request(DocumentProto(text=f"s{i}"), request_id=f"s{i}") for i in range(8)]
    responses = await exchange(server.url(), requests)
    assert sorted(r.header.request_id for r in responses) == sorted(r.header.request_id for r in requests)
    for response in responses:
        assert embedding_bytes(response.data.docs.docs[0]) == expected(response.header.request_id.encode())


# --- lifecycle ----------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stopping_ends_open_calls_and_frees_the_port() -> None:
    stack = contextlib.ExitStack()
    server = stack.enter_context(serve_in_thread(protocols=("grpc",)))
    url = server.url()
    assert server.urls == {"grpc": url} and host_port(url)[0] == "127.0.0.1"
    # The open call ends promptly (no hang until the deadline): with UNAVAILABLE, or as a lost connection
    # when the connection's close overtakes the trailers in the client.
    with pytest.raises((GRPCError, StreamTerminatedError)) as caught:
        async with open_call(url) as stream:
            await stream.send_message(make_request(DocumentProto(text="a")).SerializeToString())
            await recv(stream)
            with anyio.fail_after(WAIT):
                await anyio.to_thread.run_sync(stack.close)  # while the client still holds the call open
            await recv(stream)
    if isinstance(caught.value, GRPCError):
        assert caught.value.status == Status.UNAVAILABLE
    with pytest.raises((GRPCError, ConnectionError, OSError)):
        await exchange(url, [make_request(DocumentProto(text="b"))])


@pytest.mark.anyio
async def test_open_calls_are_counted_and_awaited() -> None:
    with serve_in_thread() as server:
        async with open_call(server.url()) as stream:
            await stream.send_message(make_request(DocumentProto(text="a")).SerializeToString())
            await recv(stream)
            assert (server.stats.calls, server.stats.calls_open) == (1, 1)
            with pytest.raises(TimeoutError):
                await server.wait_for_idle(timeout=0.05)  # a bounded wait that must fail: the call is open
            await stream.end()
            assert await stream.recv_message() is None
        await server.wait_for_idle(timeout=WAIT)
        assert (server.stats.calls, server.stats.calls_open) == (1, 0)
        assert dataclasses.asdict(server.stats)["calls_open"] == 0


@pytest.mark.anyio
async def test_reference_server_runs_on_the_current_loop() -> None:
    async with ReferenceServer(grpc_port=0, protocols=["grpc"]) as server:
        with pytest.raises(ValueError, match="http"):
            server.url("http")
        [response] = await exchange(server.url(), [make_request(DocumentProto(text="here"))])
        assert embedding_bytes(response.data.docs.docs[0]) == expected(b"here")
    with pytest.raises(RuntimeError):
        await server.start()


def test_serve_in_thread_reports_a_port_in_use(server: ReferenceServer) -> None:
    _, port = host_port(server.url())
    with pytest.raises(OSError, match=f"grpc on 127.0.0.1:{port}"), serve_in_thread(grpc_port=port):
        pytest.fail("a second server started on a port in use")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cli_prints_a_working_url_and_stops_on_a_signal(signum: signal.Signals) -> None:
    command = [sys.executable, "-m", "aclip.testing", "--grpc-port", "0", "--protocols", "grpc"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None

        def pump() -> None:
            for line in proc.stdout or ():
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        url = lines.get(timeout=30).strip()
        assert url.startswith("grpc://127.0.0.1:")
        [response] = anyio.run(exchange, url, [make_request(DocumentProto(text="from the cli"))])
        assert embedding_bytes(response.data.docs.docs[0]) == expected(b"from the cli")
        proc.send_signal(signum)
        assert proc.wait(timeout=WAIT) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)


def test_cli_reports_a_port_in_use(server: ReferenceServer) -> None:
    _, port = host_port(server.url())
    command = [sys.executable, "-m", "aclip.testing", "--grpc-port", str(port), "--http-port", "0"]
    command += ["--websocket-port", "0"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert f"127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


# --- the executor against the real gateway's captured messages ------------------------------------------------

_WIRE_DIRS = [REPO.parent / "shared" / "reference" / "wire", pathlib.Path("/work/shared/reference/wire")]
WIRE = next((d for d in _WIRE_DIRS if d.is_dir()), None)
CAPTURED = [
    "grpc/encode.Call",
    "grpc/encode_docs.Call",
    "grpc/index.Call",
    "grpc/profile.Call",
    "errors/grpc/grpc_empty_doc.Call",
    "errors/grpc/grpc_empty_docs.Call",
    "errors/grpc/grpc_executor_exception.Call",
    "errors/grpc/grpc_missing_file_uri.Call",
    "errors/grpc/grpc_no_endpoint.Call",
    "errors/grpc/grpc_unknown_endpoint.Call",
    "errors/grpc/official_grpc_exec_error.Call",
]


def _comparable(message: DataRequestProto) -> DataRequestProto:
    """Drop what differs between any two runs: times, and the text of error reports (names stay)."""
    copy = DataRequestProto()
    copy.CopyFrom(message)
    for route in copy.routes:
        route.ClearField("start_time")
        route.ClearField("end_time")
    for status in [copy.header.status, *(route.status for route in copy.routes)]:
        status.ClearField("description")
        del status.exception.args[:]
        del status.exception.stacks[:]
        status.exception.ClearField("executor")
    return copy


@pytest.mark.skipif(WIRE is None, reason="shared/reference/wire is not available")
@pytest.mark.anyio
@pytest.mark.parametrize("capture", CAPTURED)
async def test_executor_answers_like_the_real_gateway(capture: str) -> None:
    assert WIRE is not None
    request = DataRequestProto.FromString((WIRE / f"{capture}.request0.bin").read_bytes())
    real = DataRequestProto.FromString((WIRE / f"{capture}.response0.bin").read_bytes())
    ours = await ReferenceExecutor().handle(request)
    assert _comparable(ours) == _comparable(real)
    assert ours.SerializeToString() != b""
