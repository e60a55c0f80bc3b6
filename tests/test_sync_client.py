"""The blocking Client: scripts, threads, running event loops, and its lifecycle."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading

import numpy as np
import pytest

from aclip import Client, ClientClosedError, ConnectError, Document, DocumentList
from aclip.testing import serve_in_thread
from tests.conftest import Endpoint
from tests.helpers import expected_text


def test_encode_strings_and_documents(endpoint: Endpoint) -> None:
    with endpoint.client() as client:
        vectors = client.encode(["one", "two", "three"], batch_size=2)
        docs = client.encode([Document(text="four")])
    np.testing.assert_array_equal(vectors, np.stack([expected_text(t) for t in ("one", "two", "three")]))
    assert isinstance(docs, DocumentList)
    np.testing.assert_array_equal(docs[0].embedding, expected_text("four"))


def test_sixteen_threads_share_one_client(plain_endpoint: Endpoint) -> None:
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def work(n: int) -> None:
        try:
            start.wait(timeout=30)
            results[n] = client.encode([f"thread {n} item {i}" for i in range(40)], batch_size=3, prefetch=4)
        except BaseException as err:  # reported below
            errors.append(err)

    with plain_endpoint.client() as client:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert sorted(results) == list(range(16))
    for n, vectors in results.items():
        np.testing.assert_array_equal(vectors, np.stack([expected_text(f"thread {n} item {i}") for i in range(40)]))


def test_sync_client_inside_a_running_event_loop(plain_endpoint: Endpoint) -> None:
    client = plain_endpoint.client()

    async def handler() -> np.ndarray:
        # a sync FastAPI route or a Jupyter cell: blocking call while this thread's loop runs
        return client.encode(["from inside a loop"])

    try:
        vectors = asyncio.run(handler())
    finally:
        client.close()
    np.testing.assert_array_equal(vectors[0], expected_text("from inside a loop"))


def test_client_aencode_runs_on_the_callers_loop(plain_endpoint: Endpoint) -> None:
    client = plain_endpoint.client()

    async def main() -> np.ndarray:
        other = asyncio.create_task(asyncio.sleep(0))
        vectors = await client.aencode(["awaited on the caller's loop"] * 3)
        await other
        await client.aclose()
        return vectors

    vectors = asyncio.run(main())
    np.testing.assert_array_equal(vectors[2], expected_text("awaited on the caller's loop"))
    with pytest.raises(ClientClosedError):
        client.encode(["closed"])


def test_closed_client_refuses_calls_and_stops_its_thread(grpc_url: str) -> None:
    before = {t.ident for t in threading.enumerate()}
    client = Client(grpc_url)
    client.encode(["warm up"])
    started = [t for t in threading.enumerate() if t.ident not in before]
    assert len(started) == 1 and started[0].daemon
    client.close()
    client.close()  # idempotent
    started[0].join(timeout=10)
    assert not started[0].is_alive()
    with pytest.raises(ClientClosedError, match="closed"):
        client.encode(["x"])


@pytest.mark.parametrize("scheme", ["grpc", "http", "ws"])
def test_nothing_listening_is_a_connect_error(scheme: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with (
        Client(f"{scheme}://127.0.0.1:{port}") as client,
        pytest.raises(ConnectError, match=f"127.0.0.1:{port}") as caught,
    ):
        client.encode(["x"])
    assert isinstance(caught.value.__cause__, OSError)  # chained to what the OS said


def test_token_is_not_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLIP_AUTH_TOKEN", "s3cret-token")
    client = Client("grpc://127.0.0.1:1")
    assert "s3cret" not in repr(client) and "s3cret" not in repr(client._async)
    client.close()


def test_credential_must_name_authorization() -> None:
    with pytest.raises(ValueError, match="'Authorization' key"):
        Client("grpc://127.0.0.1:1", credential={"token": "x"})


def test_ctrl_c_cancels_the_call_and_the_client_stays_usable() -> None:
    with serve_in_thread(never_answer=True, protocols=("grpc",)) as server, Client(server.url("grpc")) as client:
        before = server.stats.requests_unanswered

        def interrupt_once_the_request_is_in() -> None:
            if server.stats.wait_for(lambda stats: stats.requests_unanswered > before, timeout=30):
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)  # Ctrl-C

        watcher = threading.Thread(target=interrupt_once_the_request_is_in, daemon=True)
        watcher.start()
        with pytest.raises(KeyboardInterrupt):
            client.encode(["never answered"])
        watcher.join(timeout=30)
        assert server.stats.wait_for(lambda stats: stats.calls_open == 0, timeout=10)  # the stream was closed
        server.faults.never_answer = False
        np.testing.assert_array_equal(client.encode(["answered"])[0], expected_text("answered"))
