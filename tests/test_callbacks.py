"""Callbacks and progress bars while the call streams."""

from __future__ import annotations

import io
from typing import Any, List

import numpy as np
import pytest

from aclip import AsyncClient, Document, MissingEmbeddingError, Response, ServerError, _display
from aclip.testing import ReferenceServer
from tests.conftest import Endpoint
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio


async def test_callbacks_once_per_request_in_order_and_nothing_collected(plain_endpoint: Endpoint) -> None:
    calls: List[tuple[str, range]] = []
    texts = [f"t{i}" for i in range(23)]

    def on_done(response: Response) -> None:
        calls.append(("done", response.positions))
        assert response.ok and response.status is None
        for position, doc in zip(response.positions, response.docs):
            np.testing.assert_array_equal(doc.embedding, expected_text(texts[position]))
        assert response.parameters["drop_image_content"] is True
        assert [route.executor for route in response.routes] == ["gateway", "clip_t"]

    def on_always(response: Response) -> None:
        calls.append(("always", response.positions))

    async with plain_endpoint.async_client() as client:
        result = await client.aencode(texts, batch_size=5, on_done=on_done, on_always=on_always)
    assert result is None  # results are the callbacks' to keep
    assert [kind for kind, _ in calls] == ["done", "always"] * 5
    assert sorted(p for kind, positions in calls if kind == "done" for p in positions) == list(range(23))
    assert all(calls[i][1] == calls[i + 1][1] for i in range(0, 10, 2))  # always follows its own done


async def test_coroutine_callbacks(plain_endpoint: Endpoint) -> None:
    seen: List[int] = []

    async def on_done(response: Response) -> None:
        seen.extend(response.positions)

    async with plain_endpoint.async_client() as client:
        assert await client.aencode([Document(text=str(i)) for i in range(9)], batch_size=4, on_done=on_done) is None
    assert sorted(seen) == list(range(9))


async def test_a_raising_callback_ends_the_call_and_no_callback_runs_after(server: ReferenceServer) -> None:
    calls: List[str] = []

    def on_done(response: Response) -> None:
        calls.append("done")
        if calls.count("done") == 2:
            raise RuntimeError("the database is full")

    def on_always(response: Response) -> None:
        calls.append("always")

    async with AsyncClient(server.url("grpc")) as client:
        with pytest.raises(RuntimeError, match="the database is full"):
            await client.aencode(
                [f"x{i}" for i in range(40)], batch_size=2, prefetch=1, on_done=on_done, on_always=on_always
            )
    assert calls == ["done", "always", "done"]


async def test_on_error_takes_failed_requests_and_the_stream_goes_on(plain_endpoint: Endpoint) -> None:
    failures: List[Response] = []
    docs = [Document(text="a"), Document(text="b"), Document(blob=b"not an image"), Document(text="d")]
    async with plain_endpoint.async_client() as client:
        result = await client.aencode(docs, batch_size=1, on_error=failures.append)
        with pytest.raises(MissingEmbeddingError) as caught:  # an array result must not look complete
            await client.aencode(
                ["a", "b", "c", "d"] * 3 + ["data:image/png;base64,AAAA"], batch_size=4, on_error=failures.append
            )
        with pytest.raises(ServerError):  # without on_error the failure ends the call
            await client.aencode(docs, batch_size=1, on_always=lambda response: None)
    assert result is not None and [d.embedding is not None for d in docs] == [True, True, False, True]
    assert caught.value.positions == [12]
    assert [f.positions for f in failures] == [range(2, 3), range(12, 13)]
    assert not failures[0].ok and failures[0].status is not None
    assert failures[0].status.name == "UnidentifiedImageError"


async def test_two_concurrent_calls_each_have_their_own_bar(
    server: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    output = io.StringIO()
    monkeypatch.setattr(_display, "console", Console(file=output, width=120, force_terminal=False))
    async with AsyncClient(server.url("grpc")) as client:
        import anyio

        results: List[Any] = []

        async def run(count: int) -> None:
            results.append(
                await client.aencode([f"p{count}-{i}" for i in range(count)], batch_size=3, show_progress=True)
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run, 30)
            tasks.start_soon(run, 50)
    drawn = output.getvalue()
    assert "30/30" in drawn and "50/50" in drawn and "docs/s" in drawn
    assert sorted(len(r) for r in results) == [30, 50]


async def test_progress_without_rich_names_the_extra(server: ReferenceServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "rich" else real(name))
    async with AsyncClient(server.url("grpc")) as client:
        with pytest.raises(ImportError, match=r"pip install 'aclip\[rich\]'"):
            await client.aencode(["x"], show_progress=True)


async def test_callback_options_are_checked(server: ReferenceServer) -> None:
    async with AsyncClient(server.url("grpc")) as client:
        with pytest.raises(TypeError, match="on_done must be a function"):
            await client.aencode(["x"], on_done="print")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="show_progress must be True or False"):
            await client.aencode(["x"], show_progress="yes")  # type: ignore[call-overload]


def test_sync_client_callbacks(plain_endpoint: Endpoint) -> None:
    positions: List[int] = []
    with plain_endpoint.client() as client:
        assert (
            client.encode([f"s{i}" for i in range(10)], batch_size=3, on_done=lambda r: positions.extend(r.positions))
            is None
        )
        [ranked] = client.rank(
            [Document(text="q", matches=[Document(text="a"), Document(text="b")])],  # type: ignore[arg-type]
            on_error=lambda r: None,
        )
    assert sorted(positions) == list(range(10))
    assert len(ranked.matches) == 2
