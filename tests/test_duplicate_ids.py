"""Documents that share an id each get their own results, and keep their own ids.

A real CLIP server merges the documents of a request that share an id (of two Documents with id "x" only
the last gets an embedding; the reference server does the same, see ``aclip.testing._executor``), so
encode, rank and search put ids of aclip's own on the wire and give the caller's back: the caller's
Documents are never renamed, rank's matches (new Documents, reordered by score) get the caller's match
ids, and so do the callbacks' ``Response.docs``. Index keeps the caller's ids on the wire: it stores them.
"""

from __future__ import annotations

from typing import List

import numpy as np
import pytest

from aclip import AsyncClient, Document, DocumentList, Response
from aclip.testing import ReferenceServer
from tests.conftest import PROTOCOLS, Endpoint
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def shared_id_documents() -> List[Document]:
    return [
        Document(text="first", id="x"),
        Document(text="second", id="x"),
        Document(text="third", id="y"),
        Document(text="fourth", id="x"),
    ]


async def test_encode_gives_every_document_its_embedding_and_its_id(plain_endpoint: Endpoint) -> None:
    docs = shared_id_documents()
    async with plain_endpoint.async_client() as client:
        result = await client.aencode(docs, batch_size=4)
    assert list(result) == docs and [doc.id for doc in docs] == ["x", "x", "y", "x"]
    for doc in docs:
        assert doc.embedding is not None, doc.text
        np.testing.assert_array_equal(doc.embedding, expected_text(doc.text or ""))


async def test_rank_scores_every_match_and_gives_back_the_callers_match_ids(plain_endpoint: Endpoint) -> None:
    shared = [Document(text="a photo of a cat", id="m"), Document(text="a photo of a dog", id="m")]
    roots = [
        Document(text="a cat", id="r", matches=DocumentList([*shared, Document(text="a car", id="car")])),
        Document(text="a dog", id="r", matches=DocumentList(shared)),  # the same candidates again
    ]
    async with plain_endpoint.async_client() as client:
        ranked = await client.arank(roots, batch_size=2)
    assert list(ranked) == roots and [root.id for root in roots] == ["r", "r"]
    for root, texts in zip(roots, (["a photo of a cat", "a photo of a dog", "a car"], [d.text for d in shared])):
        np.testing.assert_array_equal(root.embedding, expected_text(root.text or ""))
        assert sorted(str(match.text) for match in root.matches) == sorted(map(str, texts))
        scores = [match.scores["clip_score"].value for match in root.matches]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-5)
        expected_ids = {"a photo of a cat": "m", "a photo of a dog": "m", "a car": "car"}
        assert [match.id for match in root.matches] == [expected_ids[str(match.text)] for match in root.matches]
        cosines = {str(m.text): m.scores["clip_score_cosine"].value for m in root.matches}
        for text, cosine in cosines.items():  # each match scored with its own embedding
            assert cosine == pytest.approx(float(expected_text(root.text or "") @ expected_text(text)), abs=1e-6)
    assert [doc.id for doc in shared] == ["m", "m"] and all(doc.scores == {} for doc in shared)  # theirs untouched


async def test_search_answers_every_query_and_index_keeps_the_callers_ids(
    server: ReferenceServer, protocol: str
) -> None:
    server.executor.clear_index()
    try:
        async with AsyncClient(server.url(protocol)) as client:
            stored = await client.aindex([Document(text="a cat", id="kept-cat"), Document(text="a dog", id="kept-dog")])
            queries = [Document(text="a cat", id="q"), Document(text="a dog", id="q")]
            hits = await client.asearch(queries, limit=1)
    finally:
        server.executor.clear_index()
    assert [doc.id for doc in stored] == ["kept-cat", "kept-dog"]
    assert list(hits) == queries and [query.id for query in queries] == ["q", "q"]
    assert [[match.id for match in query.matches] for query in queries] == [["kept-cat"], ["kept-dog"]]
    for query in queries:
        np.testing.assert_array_equal(query.embedding, expected_text(query.text or ""))


async def test_callbacks_and_parts_see_the_callers_ids(plain_endpoint: Endpoint) -> None:
    seen: List[tuple[str, bool]] = []
    match_ids: List[List[str]] = []

    def on_done(response: Response) -> None:
        seen.extend((doc.id, doc.embedding is not None) for doc in response.docs)

    def on_ranked(response: Response) -> None:
        match_ids.extend([match.id for match in doc.matches] for doc in response.docs)

    root = Document(text="a cat", id="r", matches=DocumentList([Document(text="a cat", id="c"), Document(text="x")]))
    async with plain_endpoint.async_client() as client:
        await client.aencode(shared_id_documents(), batch_size=4, on_done=on_done)
        await client.arank([root], on_done=on_ranked)
        docs = shared_id_documents()
        async with client.aencode_iter(docs, batch_size=4) as parts:
            [part] = [part async for part in parts]
    assert seen == [("x", True), ("x", True), ("y", True), ("x", True)]
    assert match_ids == [["c", root.matches[1].id]]
    assert part.documents is not None and list(part.documents) == docs
    assert all(doc.embedding is not None and doc.id in ("x", "y") for doc in docs)
