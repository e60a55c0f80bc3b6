"""The reference server's fault options (aclip.testing._faults) on every protocol.

Raw clients only: grpclib with the raw-bytes codec, aiohttp for HTTP and WebSocket, never aclip's own client.
The server runs off the test's event loop (``serve_in_thread``) or in a subprocess (the CLI test). Every wait
is bounded; nothing sleeps in place of synchronisation (``server.wait_for_stats`` waits on the server's own
counters).
"""

from __future__ import annotations

import contextlib
import doctest
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

import aclip.testing._faults
from aclip._pb.docarray_pb2 import DocumentProto
from aclip._pb.jina_pb2 import DataRequestProto, StatusProto
from aclip.testing import Faults, ReferenceServer, ServerStats, serve_in_thread
from tests.testing.test_http_ws import END, cli, grpc_exchange, json_embedding, receive, session, websocket
from tests.testing.test_server import WAIT, embedding_bytes, expected, make_request, open_call, recv

PROTOCOLS = ("grpc", "http", "websocket")


# --- one sequential conversation per protocol: ask, get the answer, ask again -----------------------------


@dataclass
class Answer:
    request_id: str
    text: str
    error: str  # the exception's name, "" when the request succeeded
    message: str
    executor: str
    embedding: bytes | None


Ask = Callable[[str], Awaitable[Answer]]


class NoAnswer(Exception):
    """What came instead of an answer: an HTTP status, or how a WebSocket ended (message type, close code)."""


def _grpc_answer(response: DataRequestProto) -> Answer:
    status = response.header.status
    [doc] = response.data.docs.docs
    failed = status.code == StatusProto.ERROR
    return Answer(
        request_id=response.header.request_id,
        text=doc.text,
        error=status.exception.name if failed else "",
        message=" ".join(status.exception.args),
        executor=status.exception.executor,
        embedding=embedding_bytes(doc) if doc.HasField("embedding") else None,
    )


def _json_answer(body: dict[str, Any]) -> Answer:
    status = body["header"].get("status") or {}
    [doc] = body["data"]
    exception = status.get("exception") or {}
    return Answer(
        request_id=body["header"]["requestId"],
        text=doc["text"],
        error=exception.get("name", "") if status.get("code") == 1 else "",
        message=" ".join(exception.get("args", [])),
        executor=exception.get("executor", ""),
        embedding=json_embedding(doc) if doc["embedding"] is not None else None,
    )


@contextlib.asynccontextmanager
async def conversation(server: ReferenceServer, protocol: str) -> AsyncIterator[Ask]:
    """One gRPC stream, one WebSocket connection (``bytes``) or one keep-alive HTTP connection; ``ask(text)``
    sends one request with one text document and returns its answer."""
    numbers = iter(range(1, 1000))
    if protocol == "grpc":
        async with open_call(server.url("grpc")) as stream:

            async def ask_grpc(text: str) -> Answer:
                request = make_request(DocumentProto(id="d", text=text), request_id=f"g{next(numbers)}")
                await stream.send_message(request.SerializeToString())
                return _grpc_answer(await recv(stream))

            yield ask_grpc
            await stream.end()
            with anyio.fail_after(WAIT):
                assert await stream.recv_message() is None
    elif protocol == "websocket":
        async with websocket(server.url("websocket")) as ws:

            async def ask_ws(text: str) -> Answer:
                request = make_request(DocumentProto(id="d", text=text), request_id=f"w{next(numbers)}")
                await ws.send_bytes(request.SerializeToString())
                message = await receive(ws)
                if message.type != aiohttp.WSMsgType.BINARY:
                    raise NoAnswer(message.type, ws.close_code)
                return _grpc_answer(DataRequestProto.FromString(message.data))

            yield ask_ws
            await ws.send_bytes(END)
            assert (await receive(ws)).type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1000
    else:
        async with session(connector=aiohttp.TCPConnector(limit=1)) as client:  # one connection, kept alive

            async def ask_http(text: str) -> Answer:
                body = {"data": [{"id": "d", "text": text}], "exec_endpoint": "/encode"}
                async with client.post(server.url("http") + "/post", json=body) as response:
                    if response.status != 200:
                        raise NoAnswer(response.status)
                    return _json_answer(await response.json())

            yield ask_http


async def ask_once(server: ReferenceServer, protocol: str, text: str) -> Answer:
    async with conversation(server, protocol) as ask:
        return await ask(text)


def check_injected(answer: Answer) -> None:
    """The shape of an injected failure: a real executor error's, the document back without an embedding."""
    assert (answer.error, answer.executor, answer.embedding) == ("InjectedFailure", "CLIPEncoder", None), answer
    assert "injected" in answer.message, answer


# --- fail_every -------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_fail_every_fails_every_nth_request_as_an_executor_error(protocol: str) -> None:
    with serve_in_thread(protocols=protocol, fail_every=3) as server:
        texts = [f"text {i}" for i in range(1, 8)]
        async with conversation(server, protocol) as ask:
            answers = [await ask(text) for text in texts]
        assert [answer.text for answer in answers] == texts  # every document comes back
        for number, (text, answer) in enumerate(zip(texts, answers), start=1):
            if number % 3 == 0:
                check_injected(answer)
                assert f"request {number}" in answer.message
            else:
                assert answer.error == "" and answer.embedding == expected(text.encode()), number
        assert server.stats.injected_failures == [answers[2].request_id, answers[5].request_id]
        assert (server.stats.error_responses, server.stats.requests_received) == (2, 7)


@pytest.mark.anyio
async def test_fail_every_counts_requests_across_the_whole_server() -> None:
    with serve_in_thread(fail_every=2) as server:
        answers = [await ask_once(server, protocol, protocol) for protocol in (*PROTOCOLS, "grpc")]
        assert [answer.error for answer in answers] == ["", "InjectedFailure", "", "InjectedFailure"]
        assert server.stats.injected_failures == [answers[1].request_id, answers[3].request_id]


# --- close_after ------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_grpc_close_after_resets_the_stream() -> None:
    with serve_in_thread(protocols="grpc", close_after=2) as server:
        answered = []
        with pytest.raises(StreamTerminatedError, match="reset"):  # broken, not a clean end
            async with open_call(server.url("grpc")) as stream:
                for text in ("a", "b", "c"):
                    await stream.send_message(make_request(DocumentProto(text=text)).SerializeToString())
                    response = await recv(stream)
                    answered.append(embedding_bytes(response.data.docs.docs[0]))
        assert answered == [expected(b"a"), expected(b"b")]
        assert server.stats.connections_dropped == 1
        # The budget is per stream: a new call is served again, up to its own limit.
        [answer] = await grpc_exchange(server.url("grpc"), [make_request(DocumentProto(text="d"))])
        assert embedding_bytes(answer.data.docs.docs[0]) == expected(b"d")
        await server.wait_for_idle(timeout=WAIT)
        assert (server.stats.connections_dropped, server.stats.responses_sent) == (1, 3)


@pytest.mark.anyio
async def test_websocket_close_after_drops_the_connection_without_a_close_frame() -> None:
    with serve_in_thread(protocols="websocket", close_after=2) as server:
        async with websocket(server.url("websocket")) as ws:
            requests = [make_request(DocumentProto(text=t), request_id=t) for t in ("a", "b", "c", "d")]
            for request in requests:  # all at once: the server answers two, then drops the connection
                await ws.send_bytes(request.SerializeToString())
            await ws.send_bytes(END)
            answers = []
            while (message := await receive(ws)).type == aiohttp.WSMsgType.BINARY:
                answers.append(DataRequestProto.FromString(message.data))
            assert message.type == aiohttp.WSMsgType.CLOSED and ws.close_code == 1006  # no close frame
        assert len(answers) == 2
        for answer in answers:
            assert embedding_bytes(answer.data.docs.docs[0]) == expected(answer.header.request_id.encode())
        assert server.stats.connections_dropped == 1
        assert (await ask_once(server, "websocket", "e")).embedding == expected(b"e")  # a new connection


@pytest.mark.anyio
async def test_http_close_after_closes_the_keep_alive_connection_before_answering() -> None:
    with serve_in_thread(protocols="http", close_after=2) as server:
        async with conversation(server, "http") as ask:
            assert [(await ask(text)).embedding for text in ("a", "b")] == [expected(b"a"), expected(b"b")]
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await ask("c")
            assert server.stats.connections_dropped == 1
            assert (await ask("d")).embedding == expected(b"d")  # on a new connection
        await server.wait_for_idle(timeout=WAIT)
        assert (server.stats.requests_received, server.stats.responses_sent) == (3, 3)


# --- never_answer -----------------------------------------------------------------------------------------


async def _pending_until_stopped(protocol: str) -> tuple[Any, ServerStats]:
    """Send one request to a never_answer server, stop the server while it waits; what the client got."""
    stack = contextlib.ExitStack()
    server = stack.enter_context(serve_in_thread(protocols=protocol, never_answer=True))
    outcome: list[Any] = []

    async def client() -> None:
        try:
            outcome.append(await ask_once(server, protocol, "nobody answers"))
        except (GRPCError, StreamTerminatedError, aiohttp.ClientError, NoAnswer) as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(client)
        await server.wait_for_stats(lambda stats: stats.requests_unanswered == 1, timeout=WAIT)
        assert not outcome  # the request has been read, and nothing answered
        with anyio.fail_after(WAIT):  # shutdown is bounded although the request still waits
            await anyio.to_thread.run_sync(stack.close)
    assert server.stats.calls_open == 0
    return outcome[0], server.stats


@pytest.mark.anyio
async def test_never_answer_grpc_waits_until_the_server_stops() -> None:
    outcome, stats = await _pending_until_stopped("grpc")
    # As at any shutdown: UNAVAILABLE, or a lost connection when the close overtakes the trailers.
    assert isinstance(outcome, (GRPCError, StreamTerminatedError)), outcome
    if isinstance(outcome, GRPCError):
        assert outcome.status == Status.UNAVAILABLE
    assert (stats.requests_received, stats.responses_sent) == (1, 0)


@pytest.mark.anyio
async def test_never_answer_websocket_waits_until_the_server_stops() -> None:
    outcome, stats = await _pending_until_stopped("websocket")
    assert isinstance(outcome, NoAnswer) and outcome.args == (aiohttp.WSMsgType.CLOSE, 1001), outcome
    assert (stats.requests_received, stats.responses_sent) == (1, 0)


@pytest.mark.anyio
async def test_never_answer_http_waits_until_the_server_stops() -> None:
    outcome, stats = await _pending_until_stopped("http")
    assert isinstance(outcome, NoAnswer) and outcome.args == (503,), outcome
    assert (stats.requests_received, stats.responses_sent) == (1, 0)


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_never_answer_can_be_switched_off(protocol: str) -> None:
    with serve_in_thread(protocols=protocol, never_answer=True) as server:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask_once, server, protocol, "held")
            await server.wait_for_stats(lambda stats: stats.requests_unanswered == 1, timeout=WAIT)
            tg.cancel_scope.cancel()  # the client gives up
        server.faults.never_answer = False
        assert (await ask_once(server, protocol, "answered")).embedding == expected(b"answered")
        assert server.stats.requests_unanswered == 1


# --- fail_status (HTTP) and grpc_status -------------------------------------------------------------------


@pytest.mark.anyio
async def test_http_fail_status_answers_every_post_with_it() -> None:
    with serve_in_thread(protocols="http", fail_status=503) as server:
        async with session() as client:
            for path in ("/post", "/search"):
                async with client.post(server.url("http") + path, json={"data": [{"text": "x"}]}) as response:
                    assert response.status == 503 and response.content_type == "application/json"
                    body = await response.json()
            assert set(body) == {"detail"} and "503" in body["detail"]
            async with client.get(server.url("http") + "/dry_run") as response:
                assert response.status == 200  # only POSTs fail
        assert (server.stats.status_failures, server.stats.requests_received) == (2, 0)


@pytest.mark.anyio
async def test_grpc_status_ends_every_call_with_it() -> None:
    with serve_in_thread(protocols="grpc", grpc_status="unavailable") as server:
        for _ in range(2):
            with pytest.raises(GRPCError) as caught:
                await grpc_exchange(server.url("grpc"), [make_request(DocumentProto(text="x"))])
            assert caught.value.status == Status.UNAVAILABLE and "injected" in (caught.value.message or "")
        assert (server.stats.status_failures, server.stats.requests_received) == (2, 0)


# --- changing faults while the server runs ----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_faults_change_at_run_time(protocol: str) -> None:
    """ "Fail the next two requests, then recover", on one open stream or connection."""
    with serve_in_thread(protocols=protocol) as server:
        async with conversation(server, protocol) as ask:
            assert (await ask("before")).error == ""
            server.faults.fail_every = 1
            check_injected(await ask("first"))
            check_injected(await ask("second"))
            server.faults.fail_every = 0
            assert (await ask("after")).embedding == expected(b"after")
        assert len(server.stats.injected_failures) == 2


@pytest.mark.anyio
async def test_status_faults_change_at_run_time() -> None:
    with serve_in_thread() as server:
        server.faults.fail_status, server.faults.grpc_status = 502, "RESOURCE_EXHAUSTED"
        async with session() as client, client.post(server.url("http") + "/post", json={"data": []}) as response:
            assert response.status == 502
        with pytest.raises(GRPCError) as caught:
            await grpc_exchange(server.url("grpc"), [make_request(DocumentProto(text="x"))])
        assert caught.value.status == Status.RESOURCE_EXHAUSTED
        assert (await ask_once(server, "websocket", "unaffected")).error == ""
        server.faults.fail_status, server.faults.grpc_status = 0, ""
        assert (await ask_once(server, "http", "x")).embedding == expected(b"x")
        assert (await ask_once(server, "grpc", "y")).embedding == expected(b"y")


def test_bad_fault_values_are_refused() -> None:
    faults = Faults()
    for name, value in [
        ("fail_every", -1),
        ("close_after", 1.5),
        ("never_answer", 1),
        ("fail_status", 200),
        ("grpc_status", "OK"),
        ("grpc_status", "NOT_A_STATUS"),
    ]:
        with pytest.raises(ValueError, match=name):
            setattr(faults, name, value)
    assert faults == Faults()
    with pytest.raises(ValueError, match="fail_status"):
        ReferenceServer(fail_status=99)


# --- the CLI and the docstrings ---------------------------------------------------------------------------


def test_cli_fault_options() -> None:
    options = ["--fail-every", "1", "--fail-status", "503", "--grpc-status", "UNAVAILABLE"]
    with cli(*options, urls=3) as server:
        grpc_url, http_url, ws_url = server.urls

        async def check() -> None:
            with pytest.raises(GRPCError) as caught:
                await grpc_exchange(grpc_url, [make_request(DocumentProto(text="x"))])
            assert caught.value.status == Status.UNAVAILABLE
            async with session() as client, client.post(http_url + "/post", data=json.dumps({"data": []})) as answer:
                assert answer.status == 503
            async with websocket(ws_url) as ws:
                await ws.send_bytes(make_request(DocumentProto(text="x")).SerializeToString())
                message = await receive(ws)
                assert DataRequestProto.FromString(message.data).header.status.exception.name == "InjectedFailure"

        anyio.run(check)
        assert "Traceback" not in server.stop(signal.SIGTERM)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(aclip.testing._faults)
    assert result.failed == 0 and result.attempted > 0
