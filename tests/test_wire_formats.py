"""What the client puts on the wire fits the real gateway's formats, and broken answers are reported.

A strict parser built from the requests the upstream client sent to a real Jina gateway (tests/data/http
and tests/data/websocket) checks every HTTP body and WebSocket frame our client sends: no key, field or
value type the real format does not have. Capture servers here record what arrives and answer through the
reference executor.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, AsyncIterator, Callable, Dict, List, Set

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from google.protobuf.message import Message

from aclip import AsyncClient, Document, DocumentList, HTTPStatusError, TransportError
from aclip._pb.jina_pb2 import DataRequestProto
from aclip.testing import ReferenceExecutor
from aclip.testing._json import request_from_json, response_to_json
from tests.helpers import expected_tensor, expected_text, png_bytes

pytestmark = pytest.mark.anyio

DATA = pathlib.Path(__file__).parent / "data"
FREE_FORM = {"parameters", "tags"}  # objects whose keys are the caller's own


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "str", list: "list", dict: "object"}[type(value)]


class JsonShape:
    """Every (path, JSON type) the captured upstream requests use; documents share one path prefix."""

    def __init__(self) -> None:
        self.allowed: Dict[str, Set[str]] = {}

    def learn(self, value: Any, path: str = "body") -> None:
        self.allowed.setdefault(path, set()).add(json_type(value))
        for child_path, child in self._children(value, path):
            self.learn(child, child_path)

    def check(self, value: Any, path: str = "body") -> None:
        assert path in self.allowed, f"{path} does not exist in the real format"
        kind = json_type(value)
        assert kind in self.allowed[path] | {"null"}, f"{path} is a {kind}; the real format has {self.allowed[path]}"
        for child_path, child in self._children(value, path):
            self.check(child, child_path)

    @staticmethod
    def _children(value: Any, path: str) -> List[tuple[str, Any]]:
        if path.rsplit(".", 1)[-1] in FREE_FORM:
            return []
        if isinstance(value, dict):
            return [(f"{path}.{key}", item) for key, item in value.items()]
        if isinstance(value, list):
            is_documents = path.endswith((".data", ".matches", ".chunks"))
            return [("doc" if is_documents else f"{path}[]", item) for item in value]
        return []


def captured_http_shape() -> JsonShape:
    shape = JsonShape()
    for file in sorted((DATA / "http").glob("*.request.json")):
        shape.learn(json.loads(file.read_text())["body"])
    return shape


def _is_repeated(descriptor: Any) -> bool:
    """``is_repeated`` on protobuf 5.28+ (7 dropped ``label``), ``label`` before it."""
    is_repeated = getattr(descriptor, "is_repeated", None)
    return bool(is_repeated) if is_repeated is not None else descriptor.label == descriptor.LABEL_REPEATED


def field_paths(message: Message, prefix: str = "") -> Set[str]:
    """The populated fields of a message, as dotted paths; repeated documents share one path."""
    paths: Set[str] = set()
    for descriptor, value in message.ListFields():
        path = f"{prefix}{descriptor.name}"
        paths.add(path)
        if descriptor.message_type is None or descriptor.message_type.GetOptions().map_entry:
            continue
        children = value if _is_repeated(descriptor) else [value]
        for child in children:
            paths |= field_paths(child, f"{path}.")
    return paths


def captured_frame_paths() -> Set[str]:
    paths: Set[str] = set()
    for file in sorted((DATA / "websocket").glob("*.c2s.frame0.bin")):
        paths |= field_paths(DataRequestProto.FromString(file.read_bytes()))
    return paths


class CaptureServer:
    """An HTTP + WebSocket server on 127.0.0.1 that records requests and answers like a gateway."""

    def __init__(self) -> None:
        self.executor = ReferenceExecutor()
        self.bodies: List[Any] = []
        self.headers: List[Dict[str, str]] = []
        self.frames: List[bytes] = []
        self.port = 0
        self.ws_behaviour: Callable[[web.WebSocketResponse, List[bytes]], Any] | None = None
        self.post_status = 200

    async def post(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        body = await request.json()
        self.bodies.append(body)
        if self.post_status != 200:
            return web.json_response({"detail": "the model is warming up"}, status=self.post_status)
        answer = await self.executor.handle(request_from_json(body))
        return web.json_response(response_to_json(answer))

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        self.headers.append(dict(request.headers))
        socket = web.WebSocketResponse(protocols=("bytes",))
        await socket.prepare(request)
        received: List[bytes] = []
        async for message in socket:
            assert message.type == aiohttp.WSMsgType.BINARY
            self.frames.append(message.data)
            if message.data == b"\x00":
                break
            received.append(message.data)
            if self.ws_behaviour is not None and await self.ws_behaviour(socket, received):
                return socket
            answer = await self.executor.handle(DataRequestProto.FromString(message.data))
            await socket.send_bytes(answer.SerializeToString())
        await socket.close()
        return socket


@pytest.fixture
async def capture() -> AsyncIterator[CaptureServer]:
    server = CaptureServer()
    app = web.Application()
    app.router.add_post("/post", server.post)
    app.router.add_get("/", server.websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    try:
        yield server
    finally:
        await runner.cleanup()


def mixed_documents(tmp_path: pathlib.Path) -> List[Document]:
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes(seed=3))
    return [
        Document(text="hello, world", tags={"k": "v", "n": 1}),
        Document(uri=str(image)),
        Document(blob=png_bytes(seed=4), mime_type="image/png"),
        Document(tensor=np.arange(48, dtype=np.uint8).reshape(4, 4, 3)),
        Document(uri="https://example.com/cat.jpg"),
    ]


async def test_http_bodies_fit_the_captured_format(capture: CaptureServer, tmp_path: pathlib.Path) -> None:
    shape = captured_http_shape()
    docs = mixed_documents(tmp_path)[:4]
    async with AsyncClient(f"http://127.0.0.1:{capture.port}", credential={"Authorization": "tok"}) as client:
        vectors = await client.aencode(["a sentence", "another"], batch_size=1)
        await client.aencode(docs, batch_size=2, parameters={"drop_image_content": False})
    assert len(capture.bodies) == 4
    for body in capture.bodies:
        shape.check(body)
        assert body["exec_endpoint"] == "/encode" and body["header"]["exec_endpoint"] == "/encode"
    assert all(headers["Content-Type"] == "application/json" for headers in capture.headers)
    assert all(headers["Authorization"] == "tok" for headers in capture.headers)
    np.testing.assert_array_equal(vectors[1], expected_text("another"))
    np.testing.assert_array_equal(docs[3].embedding, expected_tensor(np.arange(48).reshape(4, 4, 3)))


async def test_the_strict_parser_rejects_what_the_real_format_lacks() -> None:
    shape = captured_http_shape()
    with pytest.raises(AssertionError, match="does not exist"):
        shape.check({"data": [{"txt": "typo"}]})
    with pytest.raises(AssertionError, match="is a number"):
        shape.check({"data": [{"text": 3}]})


async def test_websocket_frames_fit_the_captured_format(capture: CaptureServer, tmp_path: pathlib.Path) -> None:
    allowed = captured_frame_paths()
    docs = mixed_documents(tmp_path)
    url = f"ws://127.0.0.1:{capture.port}"
    async with AsyncClient(url, credential={"Authorization": "tok"}) as client:
        await client.aencode(docs[:4], batch_size=3)  # the remote URL is left out: the server would fetch it
    assert capture.frames[-1] == b"\x00" and len(capture.frames) == 3
    for frame in capture.frames[:-1]:
        message = DataRequestProto.FromString(frame)
        # Nothing our schema does not know (unknown fields would be dropped); map entries (tags) may come back
        # in another order, so the lengths are compared, not the bytes.
        assert len(message.SerializeToString()) == len(frame)
        assert field_paths(message) <= allowed, field_paths(message) - allowed
        assert len(message.header.request_id) == 32
    handshake = capture.headers[0]
    assert handshake["Sec-WebSocket-Protocol"] == "bytes" and handshake["Authorization"] == "tok"


async def test_websocket_drop_says_how_many_results_are_missing(capture: CaptureServer) -> None:
    async def drop_after_first(socket: web.WebSocketResponse, received: List[bytes]) -> bool:
        if len(received) < 3:
            return False
        await socket.close(code=1011)  # three requests in, one answered so far... then gone
        return True

    async def answer_first_only(socket: web.WebSocketResponse, received: List[bytes]) -> bool:
        if len(received) == 1:
            answer = await capture.executor.handle(DataRequestProto.FromString(received[0]))
            await socket.send_bytes(answer.SerializeToString())
        return await drop_after_first(socket, received) or True

    capture.ws_behaviour = answer_first_only
    texts = [f"t{i}" for i in range(6)]
    async with AsyncClient(f"ws://127.0.0.1:{capture.port}", max_retries=0) as client:
        with pytest.raises(TransportError, match=r"2 requests \(4 inputs\) still unanswered"):
            await client.aencode(texts, batch_size=2, prefetch=3)
    frames_without_retries, connections_without_retries = len(capture.frames), len(capture.headers)
    async with AsyncClient(f"ws://127.0.0.1:{capture.port}", max_retries=3) as client:
        vectors = await client.aencode(texts, batch_size=2, prefetch=3)  # the unanswered are resent, alone
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in texts]))
    resent = [DataRequestProto.FromString(f) for f in capture.frames[frames_without_retries:] if f != b"\x00"]
    assert len(capture.headers) - connections_without_retries > 1  # the call needed more than one connection
    assert len({m.header.request_id for m in resent}) == len(resent)  # every attempt had its own id


async def test_http_error_status_carries_status_and_detail(capture: CaptureServer) -> None:
    capture.post_status = 503
    async with AsyncClient(f"http://127.0.0.1:{capture.port}") as client:
        with pytest.raises(HTTPStatusError) as caught:
            await client.aencode(["x"])
    assert caught.value.status == 503
    assert caught.value.detail == "the model is warming up"
    assert "HTTP 503" in str(caught.value)


async def test_model_name_selects_the_endpoint_and_is_not_sent(capture: CaptureServer) -> None:
    parameters = {"model_name": "ViT-B-32", "drop_image_content": False}
    root = Document(text="q", matches=DocumentList([Document(text="m")]))
    async with AsyncClient(f"http://127.0.0.1:{capture.port}") as client:
        await client.aencode(["x"], parameters=parameters)
        await client.arank([root], parameters=parameters)
        await client.asearch(["x"], limit=2, parameters={"limit": 7})
        await client.aindex(["x"])
    encode, rank, search, index = capture.bodies
    assert encode["exec_endpoint"] == "/encode/ViT-B-32" and rank["exec_endpoint"] == "/rank/ViT-B-32"
    assert encode["parameters"] == {"drop_image_content": False} == rank["parameters"]
    assert search["exec_endpoint"] == "/search" and search["parameters"] == {"limit": 2, "drop_image_content": True}
    assert index["exec_endpoint"] == "/index" and index["parameters"] == {"drop_image_content": True}
    # aclip's own ids on the wire (a CLIP server merges documents that share an id), the caller's kept
    sent_root, [sent_match] = rank["data"][0], rank["data"][0]["matches"]
    assert sent_match == {"id": sent_root["id"] + ".0", "text": "m", "adjacency": 1}
    assert root.matches[0].id not in (sent_root["id"], sent_match["id"]) and root.matches[0].text == "m"
    assert parameters == {"model_name": "ViT-B-32", "drop_image_content": False}
