"""Answers aclip refuses rather than place: reordered documents, foreign ids, embeddings no caller can use.

A tampering server (the reference server, whose answers pass through a test's function before they go
out, on every protocol) returns a batch's documents in another order, a rank match aclip did not send, or
an embedding with NaN, infinity, a float64 beyond float32's range, or integers. Each is a ProtocolError
naming the input positions, in every way results come back: arrays, Documents, streamed parts and the
callbacks' ``Response.docs``. Document-like objects of the caller's own kind get only the attributes they
have.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import pytest

from aclip import AsyncClient, Document, DocumentList, ProtocolError, Response
from aclip._pb.docarray_pb2 import DocumentProto
from aclip._wire.protobuf import DataRequestProto, check_embeddings, encode_ndarray
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS, Endpoint
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio

Tamper = Callable[[DataRequestProto], None]


class TamperingServer:
    """The reference server, each answer passed through ``tamper`` (set by a test) before it goes out."""

    def __init__(self, server: ReferenceServer) -> None:
        self.server = server
        self.tamper: Optional[Tamper] = None
        handle = server.executor.handle

        async def tampered(request: DataRequestProto) -> DataRequestProto:
            response = await handle(request)
            if self.tamper is not None:
                self.tamper(response)
            return response

        server.executor.handle = tampered  # type: ignore[method-assign]

    def url(self, protocol: str) -> str:
        return self.server.url(protocol)


@pytest.fixture(scope="module")
def tampering_server() -> Iterator[TamperingServer]:
    with serve_in_thread() as running:
        yield TamperingServer(running)


@pytest.fixture
def tampering(tampering_server: TamperingServer) -> Iterator[TamperingServer]:
    tampering_server.tamper = None
    yield tampering_server
    tampering_server.tamper = None


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(tampering: TamperingServer, protocol: str) -> AsyncClient:
    return AsyncClient(tampering.url(protocol), max_retries=0, timeout=30)


# --- item 8: the answer must carry aclip's wire ids, in the order sent -------------------------------------


def reverse_documents(response: DataRequestProto) -> None:
    """A server that returns each batch's documents in another order (reversed)."""
    docs = response.data.docs.docs
    if len(docs) > 1:
        reordered = [DocumentProto.FromString(doc.SerializeToString()) for doc in reversed(docs)]
        response.data.docs.ClearField("docs")
        response.data.docs.docs.extend(reordered)


def rename_first_document(response: DataRequestProto) -> None:
    response.data.docs.docs[0].id = "not-aclips"


async def test_strings_answered_in_another_order_are_refused(tampering: TamperingServer, protocol: str) -> None:
    tampering.tamper = reverse_documents
    async with client_for(tampering, protocol) as client:
        with pytest.raises(ProtocolError, match=r"inputs 0\.\.3 .*input 0 got the document sent for input 3"):
            await client.aencode(["a", "b", "c", "d"], batch_size=4)


async def test_documents_answered_in_another_order_are_refused(tampering: TamperingServer, protocol: str) -> None:
    tampering.tamper = reverse_documents
    docs = [Document(text=text) for text in "abc"]
    async with client_for(tampering, protocol) as client:
        with pytest.raises(ProtocolError, match=r"inputs 0\.\.2"):
            await client.aencode(docs, batch_size=3)
    assert all(doc.embedding is None for doc in docs)  # nothing was placed


async def test_an_id_aclip_did_not_send_is_refused(tampering: TamperingServer, protocol: str) -> None:
    tampering.tamper = rename_first_document
    async with client_for(tampering, protocol) as client:
        with pytest.raises(ProtocolError, match="'not-aclips', which aclip did not send"):
            await client.aencode(["a", "b"], batch_size=2)


async def test_streamed_parts_and_callbacks_check_the_order_too(tampering: TamperingServer, protocol: str) -> None:
    tampering.tamper = reverse_documents
    async with client_for(tampering, protocol) as client:
        with pytest.raises(ProtocolError, match=r"inputs 0\.\.1"):
            async with client.aencode_iter(["a", "b"], batch_size=2) as parts:
                async for _ in parts:
                    pass

        def on_done(response: Response) -> None:
            _ = response.docs  # the positions and the documents must agree

        with pytest.raises(ProtocolError, match=r"inputs 0\.\.1"):
            await client.aencode(["a", "b"], batch_size=2, on_done=on_done)

        seen: List[range] = []  # a callback that never reads .docs is not handed a misordered answer either
        with pytest.raises(ProtocolError, match=r"inputs 0\.\.1"):
            await client.aencode(["a", "b"], batch_size=2, on_done=lambda response: seen.append(response.positions))
        assert seen == []


async def test_a_rank_match_aclip_did_not_send_is_refused(tampering: TamperingServer, protocol: str) -> None:
    def rename_a_match(response: DataRequestProto) -> None:
        response.data.docs.docs[0].matches[1].id = "someone-else"

    tampering.tamper = rename_a_match
    root = Document(text="q", matches=DocumentList([Document(text="m1"), Document(text="m2")]))
    async with client_for(tampering, protocol) as client:
        with pytest.raises(ProtocolError, match="input 0 with a match of id 'someone-else'"):
            await client.arank([root])


async def test_index_keeps_matching_by_position(tampering: TamperingServer, protocol: str) -> None:
    """The caller's ids are on the wire (they are stored): nothing to check them against."""
    tampering.tamper = rename_first_document
    docs = [Document(text="a", id=""), Document(text="b", id="b")]
    async with client_for(tampering, protocol) as client:
        await client.aindex(docs)
    tampering.server.executor.clear_index()
    np.testing.assert_array_equal(docs[1].embedding, expected_text("b"))


# --- item 9: embeddings must be of a float dtype and finite as float32 -------------------------------------

POISONS: Dict[str, np.ndarray] = {
    "nan": np.where(np.arange(512) == 7, np.nan, 0.01).astype(np.float32),
    "inf": np.where(np.arange(512) == 7, np.inf, 0.01).astype(np.float32),
    "1e300": np.where(np.arange(512) == 7, 1e300, 0.01),  # float64: finite, but inf as float32
    "int8": np.ones(512, dtype=np.int8),
}


def poison(values: np.ndarray, text: str = "b") -> Tamper:
    """A server that sends ``values`` as the embedding of every document with this text."""

    def tamper(response: DataRequestProto) -> None:
        for doc in response.data.docs.docs:
            if doc.text == text:
                doc.ClearField("embedding")
                encode_ndarray(values, doc.embedding)

    return tamper


def poison_cases() -> List[Any]:
    # JSON carries no dtype: over HTTP integers arrive as numbers, which are fine as float32.
    return [
        pytest.param(kind, protocol, id=f"{kind}-{protocol}")
        for kind in POISONS
        for protocol in PROTOCOLS
        if not (kind == "int8" and protocol == "http")
    ]


def refusal(kind: str, positions: str) -> str:
    if kind == "int8":
        return rf"dtype int8, not a float type, for inputs {positions}$"
    return rf"not finite as float32 \(NaN or infinity\) for inputs {positions}$"


@pytest.mark.parametrize(("kind", "protocol"), poison_cases())
async def test_unusable_embeddings_are_refused_in_arrays(tampering: TamperingServer, kind: str, protocol: str) -> None:
    tampering.tamper = poison(POISONS[kind])
    async with client_for(tampering, protocol) as client:
        with pytest.raises(ProtocolError, match=refusal(kind, "1")):
            await client.aencode(["a", "b", "c"], batch_size=3)
        with pytest.raises(ProtocolError, match=refusal(kind, "4")):  # in the second batch
            await client.aencode(["a", "c", "d", "e", "b"], batch_size=3)
        with pytest.raises(ProtocolError, match=refusal(kind, "0, 2")):  # not a failure to collect: a broken server
            await client.aencode_collect(["b", "a", "b"], batch_size=3)
        with pytest.raises(ProtocolError, match=refusal(kind, "1")):
            async with client.aencode_iter(["a", "b", "c"], batch_size=3) as parts:
                async for _ in parts:
                    pass


@pytest.mark.parametrize(("kind", "protocol"), poison_cases())
async def test_unusable_embeddings_are_refused_for_documents(
    tampering: TamperingServer, kind: str, protocol: str
) -> None:
    tampering.tamper = poison(POISONS[kind])
    docs = [Document(text=text) for text in "abc"]
    async with client_for(tampering, protocol) as client:
        with pytest.raises(ProtocolError, match=refusal(kind, "1")):
            await client.aencode(docs, batch_size=3)
        assert all(doc.embedding is None for doc in docs)  # none is set from a refused answer
        with pytest.raises(ProtocolError, match=refusal(kind, "1")):
            async with client.aencode_iter(docs, batch_size=3) as parts:
                async for _ in parts:
                    pass

        def on_done(response: Response) -> None:
            _ = response.docs

        with pytest.raises(ProtocolError, match=r"for the embedding of input 1$"):
            await client.aencode(["a", "b", "c"], batch_size=3, on_done=on_done)


async def test_finite_float_embeddings_of_other_widths_are_accepted(tampering: TamperingServer, protocol: str) -> None:
    vector = expected_text("b")
    tampering.tamper = poison(vector.astype(np.float64))
    async with client_for(tampering, protocol) as client:
        vectors = await client.aencode(["a", "b", "c"], batch_size=3)
    np.testing.assert_array_equal(vectors, np.stack([expected_text(text) for text in "abc"]))


# --- item 12: document-like objects get only the attributes they have -------------------------------------


class Note:
    """Document-like with the least there is: a text and an embedding to fill (no mime_type, no id)."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self.embedding: Optional[np.ndarray] = None


class Plain:
    """Document-like with an id and matches, but without ``scores`` or ``mime_type``."""

    def __init__(self, text: str = "", id: str = "", matches: Optional[List[Plain]] = None) -> None:
        self.text = text
        self.id = id
        self.embedding: Optional[np.ndarray] = None
        self.matches = matches or []


async def test_a_document_like_object_without_optional_attributes_is_encoded(plain_endpoint: Endpoint) -> None:
    notes = [Note("a cat"), Note("a dog")]
    async with plain_endpoint.async_client() as client:
        result = await client.aencode(notes)  # type: ignore[call-overload]
    assert list(result) == notes
    for note in notes:
        np.testing.assert_array_equal(note.embedding, expected_text(note.text))
        assert not hasattr(note, "mime_type") and not hasattr(note, "id")  # nothing set that it lacked


async def test_matches_of_the_callers_kind_get_only_their_attributes(plain_endpoint: Endpoint) -> None:
    root = Plain("a cat", id="q", matches=[Plain("a dog", id="d"), Plain("a cat", id="c")])
    async with plain_endpoint.async_client() as client:
        [ranked] = await client.arank([root])  # type: ignore[list-item]
    assert ranked is root and [match.id for match in root.matches] == ["c", "d"]  # sorted, the caller's ids
    assert [match.text for match in root.matches] == ["a cat", "a dog"]
    assert all(isinstance(match, Plain) and not hasattr(match, "scores") for match in root.matches)
    assert not hasattr(root, "mime_type") and root.id == "q"


def test_check_embeddings_names_what_it_refuses_and_takes_large_finite_numbers() -> None:
    huge = np.full(8, 1e20, dtype=np.float32)
    stacked = check_embeddings([huge, np.full(8, 3e38)], lambda bad: f"rows {bad}")  # float64, fits in float32
    assert stacked is not None and stacked.shape == (2, 8) and np.isfinite(stacked.astype(np.float32)).all()
    with pytest.raises(ProtocolError, match=r"for rows \[1\]$"):
        check_embeddings([huge, np.full(8, 1e39)], lambda bad: f"rows {bad}")  # float64 beyond float32's range
    with pytest.raises(ProtocolError, match=r"dtype bool, not a float type, for rows \[0\]$"):
        check_embeddings([np.ones(8, dtype=bool), huge], lambda bad: f"rows {bad}")
    with pytest.raises(ProtocolError, match=r"for rows \[1\]$"):  # lengths differ: checked one by one
        check_embeddings([huge, np.full(3, np.nan, dtype=np.float32)], lambda bad: f"rows {bad}")
