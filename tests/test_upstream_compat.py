"""Code written for upstream clip_client runs on aclip: the read paths and call forms it uses, on every protocol.

These run against aclip's reference server; the interop suite (``tests/interop``) holds the same
expectations against the real Jina gateway, with docarray objects and beside the real clip_client.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any, Iterator, List

import pytest

from aclip import AsyncClient, Client, Document, DocumentList, MemoryTransport, Response
from aclip.testing import EMBEDDING_DIM, ReferenceExecutor, ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS, Endpoint

pytestmark = pytest.mark.anyio
TOKEN = "upstream-style-token"
PROFILE_KEYS = {"Roundtrip", "Client-server network", "Server", "Gateway-CLIP network", "CLIP model"}


@pytest.fixture(scope="module")
def guarded() -> Iterator[ReferenceServer]:
    with serve_in_thread(token=TOKEN) as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_credential_may_be_positional_as_upstream_allows(guarded: ReferenceServer, protocol: str) -> None:
    with Client(guarded.url(protocol), {"Authorization": TOKEN}) as client:
        assert client.encode(["positional credential"]).shape == (1, EMBEDDING_DIM)


def test_an_empty_credential_dict_is_no_credential(guarded: ReferenceServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream's default is ``credential={}``, which falls back to CLIP_AUTH_TOKEN as None does."""
    monkeypatch.setenv("CLIP_AUTH_TOKEN", TOKEN)
    with Client(guarded.url("grpc"), credential={}) as client:
        assert client.encode(["from the environment"]).shape == (1, EMBEDDING_DIM)


def test_unknown_keywords_stay_an_error() -> None:
    with pytest.raises(TypeError, match="asyncio"):
        Client("grpc://127.0.0.1:1", asyncio=True)  # type: ignore[call-arg]  # upstream ignored it silently


def test_profile_returns_upstreams_keys(plain_endpoint: Endpoint) -> None:
    with Client(plain_endpoint.url) as client:
        times = client.profile(show=False)
    assert set(times) == PROFILE_KEYS
    assert times["Client-server network"] + times["Server"] == pytest.approx(times["Roundtrip"])
    assert times["Gateway-CLIP network"] + times["CLIP model"] == pytest.approx(times["Server"])


async def test_callbacks_read_data_docs_and_header_as_upstream_code_does(plain_endpoint: Endpoint) -> None:
    seen: List[Any] = []

    def on_done(response: Response) -> None:
        seen.append((response.data.docs.texts, response.header.request_id, response.header.status.code))

    async with AsyncClient(plain_endpoint.url) as client:
        docs = DocumentList([Document(text="first"), Document(text="second")])
        assert await client.aencode(docs, on_done=on_done, batch_size=1) is None
    assert sorted(texts for texts, _, _ in seen) == [["first"], ["second"]]
    assert all(request_id for _, request_id, _ in seen)
    assert {code for _, _, code in seen} == {0}  # SUCCESS


async def test_an_error_callback_reads_the_status_description(plain_endpoint: Endpoint) -> None:
    with serve_in_thread(fail_every=1) as failing:
        descriptions: List[str] = []
        url = failing.url(plain_endpoint.protocol)
        async with AsyncClient(url) as client:
            docs = await client.aencode(
                DocumentList([Document(text="fails")]),
                on_error=lambda r: descriptions.append(r.header.status.description),
            )
    assert docs is not None and docs[0].embedding is None  # with on_error alone the call goes on
    assert len(descriptions) == 1
    assert "InjectedFailure" in descriptions[0]  # the executor's exception, as jina's gateway writes it


def _fake_docarray(monkeypatch: pytest.MonkeyPatch, *, with_document_array: bool) -> type:
    """A module named docarray (v1 has DocumentArray, v2 not) and a Document class that claims to be its."""
    module = types.ModuleType("docarray")

    class FakeDocumentArray(list):  # type: ignore[type-arg]
        pass

    if with_document_array:
        module.DocumentArray = FakeDocumentArray  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "docarray", module)

    class FakeDocument:
        def __init__(self, text: str) -> None:
            self.text, self.embedding = text, None

    FakeDocument.__module__ = "docarray.document"
    return FakeDocument


@pytest.mark.parametrize("with_document_array", [True, False], ids=["docarray-v1", "docarray-v2"])
async def test_docarray_documents_come_back_in_docarrays_container_when_it_has_one(
    monkeypatch: pytest.MonkeyPatch, with_document_array: bool
) -> None:
    fake_document = _fake_docarray(monkeypatch, with_document_array=with_document_array)
    inputs = [fake_document("a"), fake_document("b")]
    async with AsyncClient("grpc://in-memory:1", transport=MemoryTransport(ReferenceExecutor().handle)) as client:
        result: Any = await client.aencode(inputs)  # type: ignore[call-overload]
    expected = sys.modules["docarray"].DocumentArray if with_document_array else DocumentList
    assert type(result) is expected
    assert all(a is b and b.embedding is not None for a, b in zip(inputs, result))


async def test_a_long_input_gives_no_warning() -> None:
    """Upstream warns past 500 inputs that one bad input aborts the request; aclip checks each input before
    its batch is sent and streams in bounded memory, so it has nothing to warn about (README's table)."""
    async with AsyncClient("grpc://in-memory:1", transport=MemoryTransport(ReferenceExecutor().handle)) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            vectors = await client.aencode([f"sentence {i}" for i in range(600)], batch_size=64)
    assert vectors.shape == (600, EMBEDDING_DIM)
