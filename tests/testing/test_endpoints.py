"""The reference server's ``/rank``, ``/index`` and ``/search``: CLIP-server semantics, checked two ways.

Every number is compared with an independent float64 numpy statement of the formulas (the embeddings come
from the test encoder's formula written out again in ``tests.helpers``), and the captured answers of a real
Jina gateway with the same test encoder (copied into ``tests/data``) are replayed over gRPC, HTTP and
WebSocket and compared value for value.

Raw clients only (grpclib with the raw codec and the ``aclip._pb`` messages, aiohttp), never aclip's own
client. The server runs in its own thread on 127.0.0.1; every wait is bounded; nothing sleeps.
"""

from __future__ import annotations

import base64
import copy
import doctest
import importlib
import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any, Optional

import anyio
import numpy as np
import pytest

from aclip._pb.docarray_pb2 import DocumentProto
from aclip._pb.jina_pb2 import DataRequestProto, StatusProto
from aclip.testing import ReferenceExecutor, ReferenceServer, serve_in_thread
from aclip.testing._store import IndexStore
from tests.helpers import expected_embedding, expected_tensor, expected_text, png_bytes
from tests.testing.test_http_ws import post, ws_bytes
from tests.testing.test_server import _comparable, exchange, make_request, tensor_proto

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"
#: The logit scale of CLIP's softmax as the real server applies it (ln 100, written 4.60517): ~99.99998.
LOGIT_SCALE = math.exp(4.60517)
TOLERANCE = 1e-6


@pytest.fixture
def server(server: ReferenceServer) -> ReferenceServer:
    """The module's server (tests/testing/conftest.py) with an empty index."""
    server.executor.clear_index()
    assert server.executor.indexed_count == 0
    return server


# --- an independent statement of the formulas, in float64 -------------------------------------------------


def cosines64(query: np.ndarray, candidates: Sequence[np.ndarray]) -> np.ndarray:
    q = np.asarray(query, dtype=np.float64)
    c = np.asarray(candidates, dtype=np.float64)
    return (c @ q) / (np.linalg.norm(c, axis=1) * np.linalg.norm(q))


def softmax64(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def vector(doc: DocumentProto) -> np.ndarray:
    assert doc.HasField("embedding"), f"doc {doc.id!r} has no embedding"
    dense = doc.embedding.dense
    assert (list(dense.shape), dense.dtype, doc.embedding.cls_name) == ([512], "<f4", "numpy")
    return np.frombuffer(dense.buffer, "<f4")


def tagged(doc: DocumentProto, **tags: Any) -> DocumentProto:
    doc.tags.update(tags)
    return doc


def doc_with_matches(root: DocumentProto, *matches: DocumentProto) -> DocumentProto:
    root.matches.extend(matches)
    return root


def check_ranked(root: DocumentProto, expected: dict[str, np.ndarray], query: np.ndarray) -> None:
    """``root``'s matches scored and sorted as a CLIP server does; ``expected`` maps match id -> embedding."""
    ids = [match.id for match in root.matches]
    assert sorted(ids) == sorted(expected)
    want_cos = dict(zip(expected, cosines64(query, list(expected.values()))))
    want_softmax = dict(zip(expected, softmax64(LOGIT_SCALE * np.array(list(want_cos.values())))))
    # 100 x cosine, as the formula is usually written, is within 1e-5 of the real scale.
    want_softmax_100 = dict(zip(expected, softmax64(100 * np.array(list(want_cos.values())))))
    for match in root.matches:
        assert set(match.scores) == {"clip_score", "clip_score_cosine"}
        clip, cosine = match.scores["clip_score"], match.scores["clip_score_cosine"]
        assert (clip.op_name, cosine.op_name) == ("softmax", "cosine")
        assert not (clip.description or clip.ref_id or cosine.description or cosine.ref_id)
        assert abs(cosine.value - want_cos[match.id]) < TOLERANCE
        assert abs(clip.value - want_softmax[match.id]) < TOLERANCE
        assert abs(clip.value - want_softmax_100[match.id]) < 1e-5
        assert not match.HasField("embedding")
    scores = [match.scores["clip_score"].value for match in root.matches]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1.0) < TOLERANCE
    assert vector(root).tobytes() == query.tobytes()


def check_routes(response: DataRequestProto) -> None:
    """gateway start <= executor start <= executor end <= gateway end, all set (what profile() uses)."""
    assert [route.executor for route in response.routes] == ["gateway", "clip_t"]
    gateway, executor = response.routes
    times = [
        gateway.start_time.ToNanoseconds(),
        executor.start_time.ToNanoseconds(),
        executor.end_time.ToNanoseconds(),
        gateway.end_time.ToNanoseconds(),
    ]
    assert 0 < times[0] < times[1] < times[2] < times[3]


async def call(server: ReferenceServer, *requests: DataRequestProto) -> list[DataRequestProto]:
    responses = await exchange(server.url("grpc"), requests)
    assert len(responses) == len(requests)
    for response in responses:
        check_routes(response)
    return sorted(responses, key=lambda response: response.header.request_id)


async def call_one(server: ReferenceServer, request: DataRequestProto) -> DataRequestProto:
    [response] = await call(server, request)
    return response


def succeeded(response: DataRequestProto) -> list[DocumentProto]:
    assert response.header.status.code == StatusProto.SUCCESS, response.header.status.description
    return list(response.data.docs.docs)


def failed(response: DataRequestProto, name: str) -> StatusProto:
    status = response.header.status
    assert (status.code, status.exception.name) == (StatusProto.ERROR, name), status.description
    return status


def data_uri(data: bytes, mime_type: str = "image/png") -> str:
    return f"data:{mime_type};base64,{base64.b64encode(data).decode()}"


# --- /rank --------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_rank_a_text_against_images(server: ReferenceServer) -> None:
    pngs = [png_bytes(4, 3, seed=seed) for seed in range(4)]
    tensor = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    root = doc_with_matches(
        DocumentProto(id="q", text="a photo of a dog"),
        DocumentProto(id="png0", blob=pngs[0], mime_type="image/png", uri="img/0.png", adjacency=1),
        DocumentProto(id="png1", blob=pngs[1]),
        DocumentProto(id="uri2", uri=data_uri(pngs[2])),
        tagged(DocumentProto(id="png3", blob=pngs[3]), k="v"),
        DocumentProto(id="tensor", tensor=tensor_proto(tensor)),
    )
    request = make_request(root, endpoint="/rank", parameters={"drop_image_content": True})
    [ranked] = succeeded(await call_one(server, request))
    expected = {
        "png0": expected_embedding(pngs[0]),
        "png1": expected_embedding(pngs[1]),
        "uri2": expected_embedding(pngs[2]),
        "png3": expected_embedding(pngs[3]),
        "tensor": expected_tensor(tensor),
    }
    check_ranked(ranked, expected, expected_text("a photo of a dog"))
    assert ranked.mime_type == "text/plain"
    by_id = {match.id: match for match in ranked.matches}
    # Everything but scores and embeddings comes back as sent: blobs too (the real server keeps them).
    for sent in root.matches:
        match = copy.deepcopy(by_id[sent.id])
        match.ClearField("scores")
        if sent.id == "uri2":
            assert match.mime_type == "image/png"  # learnt from loading the URI, as /encode does
            match.ClearField("mime_type")
        assert match == sent
    assert server.executor.indexed_count == 0  # ranking stores nothing


@pytest.mark.anyio
async def test_rank_an_image_against_texts(server: ReferenceServer) -> None:
    png = png_bytes(8, 8, seed=7)
    texts = ["a dog", "a cat", "a photo of a dog", "hello, world", "\u00e9t\u00e9", "a car"]
    root = doc_with_matches(DocumentProto(id="img", blob=png), *(DocumentProto(id=t, text=t) for t in texts))
    request = make_request(root, endpoint="/rank/ViT-B-32::openai", parameters={"drop_image_content": True})
    response = await call_one(server, request)
    assert response.header.exec_endpoint == "/rank/ViT-B-32::openai"
    [ranked] = succeeded(response)
    check_ranked(ranked, {t: expected_text(t) for t in texts}, expected_embedding(png))
    assert ranked.blob == png  # /rank does not apply drop_image_content
    assert all(match.mime_type == "text/plain" and match.adjacency == 0 for match in ranked.matches)


@pytest.mark.anyio
async def test_rank_many_roots_and_a_root_without_matches(server: ReferenceServer) -> None:
    roots = [
        doc_with_matches(
            DocumentProto(id=f"q{i}", text=f"query {i}"),
            *(DocumentProto(id=f"m{i}.{j}", text=f"match {i}.{j}") for j in range(3)),
        )
        for i in range(3)
    ]
    lonely = DocumentProto(id="lonely", text="no matches")
    docs = succeeded(await call_one(server, make_request(*roots, lonely, endpoint="/rank")))
    assert [doc.id for doc in docs] == ["q0", "q1", "q2", "lonely"]
    for i, ranked in enumerate(docs[:3]):
        expected = {f"m{i}.{j}": expected_text(f"match {i}.{j}") for j in range(3)}
        check_ranked(ranked, expected, expected_text(f"query {i}"))
    # No matches: embedded like any root, no error (the real server has nothing to score either).
    assert len(docs[3].matches) == 0
    assert vector(docs[3]).tobytes() == expected_text("no matches").tobytes()


@pytest.mark.anyio
async def test_rank_keeps_the_order_of_equal_scores(server: ReferenceServer) -> None:
    texts = ["same", "other", "same", "x", "same"]
    root = doc_with_matches(
        DocumentProto(text="query"), *(DocumentProto(id=f"m{i}", text=t) for i, t in enumerate(texts))
    )
    [ranked] = succeeded(await call_one(server, make_request(root, endpoint="/rank")))
    same = [match.id for match in ranked.matches if match.text == "same"]
    assert same == ["m0", "m2", "m4"]
    positions = [i for i, match in enumerate(ranked.matches) if match.text == "same"]
    assert positions == list(range(positions[0], positions[0] + 3))  # adjacent: equal scores


@pytest.mark.anyio
async def test_rank_a_match_without_content_is_an_executor_error(server: ReferenceServer) -> None:
    root = doc_with_matches(
        DocumentProto(id="q", text="query"), DocumentProto(id="m", text="fine"), DocumentProto(id="e")
    )
    request = make_request(root, endpoint="/rank")
    response = await call_one(server, request)
    status = failed(response, "ValueError")
    assert "'e'" in status.description and "no embedding" in status.description
    assert list(response.data.docs.docs) == list(request.data.docs.docs)  # unchanged, as every error


@pytest.mark.anyio
async def test_rank_over_http_json(server: ReferenceServer) -> None:
    png = png_bytes(5, 5, seed=3)
    body = {
        "data": [
            {
                "id": "q",
                "text": "a photo of a dog",
                "matches": [
                    {"id": "img", "blob": base64.b64encode(png).decode(), "mime_type": "image/png"},
                    {"id": "t1", "text": "hello, world"},
                    {"id": "t2", "text": "a photo of a dog"},
                ],
            }
        ],
        "parameters": {"drop_image_content": True},
        "exec_endpoint": "/rank",
    }
    status, answer = await post(server.url("http"), body)
    assert status == 200 and answer["header"]["status"] is None
    [root] = answer["data"]
    query = expected_text("a photo of a dog")
    assert np.asarray(root["embedding"], dtype="<f4").tobytes() == query.tobytes()
    expected = {"img": expected_embedding(png), "t1": expected_text("hello, world"), "t2": query}
    want_cos = dict(zip(expected, cosines64(query, list(expected.values()))))
    want_softmax = dict(zip(expected, softmax64(LOGIT_SCALE * np.array(list(want_cos.values())))))
    assert root["matches"][0]["id"] == "t2"  # the same text scores highest
    for match in root["matches"]:
        assert match["embedding"] is None
        clip, cosine = match["scores"]["clip_score"], match["scores"]["clip_score_cosine"]
        assert (clip["op_name"], cosine["op_name"]) == ("softmax", "cosine")
        assert abs(cosine["value"] - want_cos[match["id"]]) < TOLERANCE
        assert abs((clip["value"] or 0.0) - want_softmax[match["id"]]) < TOLERANCE  # 0.0 comes as null
    scores = [match["scores"]["clip_score"]["value"] or 0.0 for match in root["matches"]]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < TOLERANCE
    [image] = [match for match in root["matches"] if match["id"] == "img"]
    assert image["blob"] == base64.b64encode(png).decode()  # kept, drop_image_content or not


# --- /index and /search -------------------------------------------------------------------------------------

CORPUS = ["hello, world", "goodbye, world", "a cat", "a dog", "a photo of a dog", "a car", "\u00e9t\u00e9", "x"]


def corpus_docs() -> list[DocumentProto]:
    docs = [tagged(DocumentProto(id=f"t{i}", text=text), i=i) for i, text in enumerate(CORPUS)]
    docs.append(DocumentProto(id="png", blob=png_bytes(6, 6, seed=11), uri="img/png.png"))
    docs.append(DocumentProto(id="tensor", tensor=tensor_proto(np.arange(27, dtype=np.uint8).reshape(3, 3, 3))))
    return docs


def corpus_vectors() -> dict[str, np.ndarray]:
    vectors = {f"t{i}": expected_text(text) for i, text in enumerate(CORPUS)}
    vectors["png"] = expected_embedding(png_bytes(6, 6, seed=11))
    vectors["tensor"] = expected_tensor(np.arange(27, dtype=np.uint8).reshape(3, 3, 3))
    return vectors


def nearest64(query: np.ndarray, stored: dict[str, np.ndarray], limit: int) -> list[tuple[str, float]]:
    distances = 1 - cosines64(query, list(stored.values()))
    order = np.argsort(distances, kind="stable")[:limit]
    ids = list(stored)
    return [(ids[i], float(distances[i])) for i in order]


def found(query: DocumentProto) -> list[tuple[str, float]]:
    for match in query.matches:
        assert list(match.scores) == ["cosine"] and match.scores["cosine"].op_name == ""
    return [(match.id, match.scores["cosine"].value) for match in query.matches]


def check_found(query: DocumentProto, want: list[tuple[str, float]]) -> None:
    got = found(query)
    assert [doc_id for doc_id, _ in got] == [doc_id for doc_id, _ in want]
    assert all(abs(a - b) < TOLERANCE for (_, a), (_, b) in zip(got, want)), (got, want)
    distances = [distance for _, distance in got]
    assert distances == sorted(distances)


async def index(server: ReferenceServer, docs: Sequence[DocumentProto], **parameters: Any) -> list[DocumentProto]:
    request = make_request(*docs, request_id="index", endpoint="/index", parameters=parameters or None)
    return succeeded(await call_one(server, request))


async def search(
    server: ReferenceServer, *queries: DocumentProto, limit: Optional[Any] = None, **parameters: Any
) -> DataRequestProto:
    if limit is not None:
        parameters["limit"] = limit
    request = make_request(*queries, request_id="search", endpoint="/search", parameters=parameters or None)
    return await call_one(server, request)


@pytest.mark.anyio
async def test_index_returns_the_embedded_docs_and_stores_them(server: ReferenceServer) -> None:
    docs = corpus_docs()
    answered = await index(server, docs, drop_image_content=True)
    vectors = corpus_vectors()
    assert [doc.id for doc in answered] == [doc.id for doc in docs]
    for doc in answered:
        assert vector(doc).tobytes() == vectors[doc.id].tobytes()
        assert not (doc.HasField("blob") or doc.HasField("tensor"))  # dropped, as /encode does
    assert answered[0].mime_type == "text/plain" and answered[0].tags["i"] == 0
    assert server.executor.indexed_count == len(docs)
    assert server.executor.store.ids() == [doc.id for doc in docs]


@pytest.mark.anyio
async def test_search_returns_the_exact_nearest_neighbours(server: ReferenceServer) -> None:
    await index(server, corpus_docs())  # blobs kept in the answer, never in the store
    vectors = corpus_vectors()
    png = png_bytes(6, 6, seed=11)
    queries = [
        DocumentProto(id="q0", text="a dog"),  # stored: found at distance 0
        DocumentProto(id="q1", text="a dog, not stored"),
        DocumentProto(id="q2", blob=png),  # the stored image
        DocumentProto(id="q3", uri=data_uri(png_bytes(2, 2, seed=99))),
    ]
    response = await search(server, *queries, limit=4)
    answered = succeeded(response)
    query_vectors = [
        expected_text("a dog"),
        expected_text("a dog, not stored"),
        expected_embedding(png),
        expected_embedding(png_bytes(2, 2, seed=99)),
    ]
    for query, query_vector in zip(answered, query_vectors):
        assert vector(query).tobytes() == query_vector.tobytes()
        check_found(query, nearest64(query_vector, vectors, 4))
        for match in query.matches:
            assert vector(match).tobytes() == vectors[match.id].tobytes()
            assert match.adjacency == 1 and not match.HasField("blob") and not match.HasField("tensor")
    assert found(answered[0])[0] == ("t3", 0.0) and found(answered[2])[0] == ("png", 0.0)
    exact = answered[0].matches[0]
    assert (exact.text, exact.mime_type, exact.tags["i"]) == ("a dog", "text/plain", 3)
    assert exact.scores["cosine"].SerializeToString() == b""  # 0.0 is proto3's default: nothing on the wire
    image = answered[2].matches[0]
    assert (image.uri, image.blob, image.mime_type) == ("img/png.png", b"", "")
    assert not answered[3].HasField("blob") and answered[3].mime_type == "image/png"


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [2.0, 2, 3, None, 10, 11, 1000, 1e300])
async def test_search_limit(server: ReferenceServer, limit: Optional[float]) -> None:
    stored = corpus_docs()
    await index(server, stored)
    response = await search(server, DocumentProto(id="q", text="hello there"), limit=limit)
    [query] = succeeded(response)
    want = len(stored) if limit is None else min(int(limit), len(stored))  # default 10 = the whole store
    check_found(query, nearest64(expected_text("hello there"), corpus_vectors(), want))
    assert len(query.matches) == want
    if limit is not None:
        assert response.parameters["limit"] == limit  # echoed as sent


@pytest.mark.anyio
async def test_search_default_limit_is_ten(server: ReferenceServer) -> None:
    stored = [DocumentProto(id=f"d{i}", text=f"doc {i}") for i in range(25)]
    await index(server, stored)
    [query] = succeeded(await search(server, DocumentProto(text="doc 7")))
    vectors = {doc.id: expected_text(doc.text) for doc in stored}
    check_found(query, nearest64(expected_text("doc 7"), vectors, 10))
    assert found(query)[0] == ("d7", 0.0)


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [0, -1, 2.5, "2", True, float("inf")])
async def test_search_bad_limit_is_an_executor_error(server: ReferenceServer, limit: Any) -> None:
    await index(server, corpus_docs()[:3])
    request = make_request(DocumentProto(id="q", text="a"), endpoint="/search", parameters={"limit": limit})
    response = await call_one(server, request)
    assert "limit" in failed(response, "ValueError").description
    assert list(response.data.docs.docs) == list(request.data.docs.docs)


@pytest.mark.anyio
async def test_reindexing_an_id_replaces_it_in_place(server: ReferenceServer) -> None:
    await index(
        server, [DocumentProto(id="a", text="old a"), DocumentProto(id="b", text="b"), DocumentProto(id="c", text="c")]
    )
    await index(server, [tagged(DocumentProto(id="a", text="new a"), v=2)])
    assert server.executor.indexed_count == 3
    assert server.executor.store.ids() == ["a", "b", "c"]  # the replaced document keeps its place
    [new, old] = succeeded(await search(server, DocumentProto(text="new a"), DocumentProto(text="old a"), limit=3))
    assert found(new)[0] == ("a", 0.0) and new.matches[0].text == "new a" and new.matches[0].tags["v"] == 2
    assert all(distance > 0.5 for _, distance in found(old)) and [m.text for m in old.matches if m.id == "a"] == [
        "new a"
    ]
    # Twice in one request: the later one wins.
    await index(server, [DocumentProto(id="d", text="d1"), DocumentProto(id="d", text="d2")])
    assert server.executor.indexed_count == 4
    [query] = succeeded(await search(server, DocumentProto(text="d2"), limit=1))
    assert found(query) == [("d", 0.0)]


@pytest.mark.anyio
async def test_equal_distances_come_in_insertion_order(server: ReferenceServer) -> None:
    docs = [
        DocumentProto(id=doc_id, text="twin" if doc_id.startswith("twin") else doc_id)
        for doc_id in ("z", "twin2", "y", "twin1", "twin3")
    ]
    await index(server, docs)
    await index(server, [DocumentProto(id="twin2", text="twin")])  # replaced in place: keeps its position
    [query] = succeeded(await search(server, DocumentProto(text="twin"), limit=3))
    # Equal vectors, equal distances (the float32 formula gives 1.2e-7 here, not 0: ties all the same).
    got = found(query)
    assert [doc_id for doc_id, _ in got] == ["twin2", "twin1", "twin3"]
    assert got[0][1] == got[1][1] == got[2][1] < TOLERANCE


@pytest.mark.anyio
async def test_empty_store_and_clear_index(server: ReferenceServer) -> None:
    [query] = succeeded(await search(server, DocumentProto(id="q", text="anything"), limit=5))
    assert len(query.matches) == 0 and vector(query).tobytes() == expected_text("anything").tobytes()
    await index(server, corpus_docs())
    assert server.executor.indexed_count == len(CORPUS) + 2
    server.executor.clear_index()
    assert server.executor.indexed_count == 0
    [query] = succeeded(await search(server, DocumentProto(id="q", text="a cat")))
    assert len(query.matches) == 0


@pytest.mark.anyio
async def test_docs_without_content_are_not_stored_and_find_nothing(server: ReferenceServer) -> None:
    answered = await index(
        server, [DocumentProto(id="empty"), DocumentProto(id="blank", text=""), DocumentProto(id="t", text="t")]
    )
    assert [doc.HasField("embedding") for doc in answered] == [False, False, True]
    assert server.executor.store.ids() == ["t"]
    [empty, text] = succeeded(await search(server, DocumentProto(id="e"), DocumentProto(id="t", text="t")))
    assert (len(empty.matches), empty.HasField("embedding")) == (0, False)
    assert found(text) == [("t", 0.0)]


@pytest.mark.anyio
async def test_search_over_http_writes_an_exact_match_as_null(server: ReferenceServer) -> None:
    body = {"data": [{"id": f"h{i}", "text": text} for i, text in enumerate(CORPUS)]}
    status, answer = await post(server.url("http"), body, path="/index")
    assert status == 200 and answer["header"]["execEndpoint"] == "/index"
    status, answer = await post(
        server.url("http"), {"data": [{"text": "a cat"}], "parameters": {"limit": 3}}, path="/search"
    )
    assert status == 200 and answer["header"]["status"] is None
    [query] = answer["data"]
    vectors = {f"h{i}": expected_text(text) for i, text in enumerate(CORPUS)}
    want = nearest64(expected_text("a cat"), vectors, 3)
    got = [(match["id"], match["scores"]["cosine"]["value"]) for match in query["matches"]]
    assert got[0] == ("h2", None)  # 0.0 comes as null over JSON, as from the real gateway
    assert [doc_id for doc_id, _ in got] == [doc_id for doc_id, _ in want]
    assert all(abs(value - distance) < TOLERANCE for (_, value), (_, distance) in zip(got[1:], want[1:]))
    assert all(match["adjacency"] == 1 and match["embedding"] is not None for match in query["matches"])


@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", ["/rank", "/index", "/search"])
async def test_endpoint_routes_are_timed_over_every_protocol(server: ReferenceServer, endpoint: str) -> None:
    doc = doc_with_matches(DocumentProto(id="d", text="timed"), DocumentProto(id="m", text="match"))
    request = make_request(doc, endpoint=endpoint)
    [over_grpc] = await exchange(server.url("grpc"), [request])
    [over_ws] = await ws_bytes(server.url("websocket"), [request])
    for response in (over_grpc, over_ws):
        succeeded(response)
        check_routes(response)


@pytest.mark.anyio
async def test_a_slow_model_shows_in_the_executor_route() -> None:
    delay = 0.05
    with serve_in_thread(protocols=("grpc",), delay=delay) as slow:
        for endpoint in ("/rank", "/index", "/search"):
            [response] = await exchange(slow.url("grpc"), [make_request(DocumentProto(text="slow"), endpoint=endpoint)])
            check_routes(response)
            executor = response.routes[1]
            spent = executor.end_time.ToNanoseconds() - executor.start_time.ToNanoseconds()
            assert spent >= (delay - 0.001) * 1e9  # less a margin for whole microseconds and clock resolution


@pytest.mark.parametrize("module", ["_scoring", "_rank", "_store", "_executor"])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"aclip.testing.{module}"))
    assert result.failed == 0 and result.attempted > 0


def test_store_grows_and_searches_like_numpy() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((300, 16)).astype(np.float32)  # past the initial capacity, not unit length
    store = IndexStore()
    docs = []
    for i, row in enumerate(vectors):
        doc = DocumentProto(id=f"v{i}")
        doc.embedding.CopyFrom(tensor_proto(row))
        docs.append(doc)
    assert store.upsert(docs[:100]) == 100 and store.upsert(docs[100:]) == 200
    assert (store.count, store.dim) == (300, 16)
    queries = docs[:5]
    for query, result in zip(queries, store.search(queries, 7)):
        want = nearest64(vector_any(query), {doc.id: vector_any(doc) for doc in docs}, 7)
        assert [doc.id for doc, _ in result] == [doc_id for doc_id, _ in want]
        assert np.allclose([d for _, d in result], [d for _, d in want], rtol=0, atol=TOLERANCE)
        assert result[0][0].id == query.id and result[0][1] < TOLERANCE  # not always 0.0 in float32
    wrong = DocumentProto(id="wrong")
    wrong.embedding.CopyFrom(tensor_proto(np.ones(8, dtype=np.float32)))
    with pytest.raises(ValueError, match="8 values"):
        store.upsert([docs[0], wrong])
    assert store.count == 300  # all or nothing
    store.clear()
    assert (store.count, store.dim, store.search(queries, 3)) == (0, None, [[]] * 5)


def vector_any(doc: DocumentProto) -> np.ndarray:
    return np.frombuffer(doc.embedding.dense.buffer, doc.embedding.dense.dtype)


# --- the real gateway's captured answers, replayed -----------------------------------------------------------


def captured(name: str) -> DataRequestProto:
    return DataRequestProto.FromString((DATA / name).read_bytes())


@pytest.mark.anyio
async def test_grpc_replay_of_captured_rank_index_search(server: ReferenceServer) -> None:
    for name in ("rank", "index", "search"):
        request = captured(f"grpc/{name}.Call.request0.bin")
        [ours] = await exchange(server.url("grpc"), [request])
        real = captured(f"grpc/{name}.Call.response0.bin")
        assert _comparable(ours) == _comparable(real), name
        check_routes(ours)
    # Spelled out for the record: what the equality above covers.
    search_answer = _comparable(ours).data.docs.docs[0]
    first = search_answer.matches[0]
    assert (first.text, first.scores["cosine"].value, first.adjacency) == ("hello, world", 0.0, 1)


@pytest.mark.anyio
async def test_websocket_replay_of_captured_rank_index_search(server: ReferenceServer) -> None:
    for name in ("rank", "index", "search"):
        request = captured(f"websocket/{name}.c2s.frame0.bin")
        [ours] = await ws_bytes(server.url("websocket"), [request])
        real = captured(f"websocket/{name}.s2c.frame0.bin")
        assert _comparable(ours) == _comparable(real), name


def _json_comparable(body: dict[str, Any]) -> dict[str, Any]:
    """A gateway JSON answer without what differs between runs: the request id and the route times."""
    body = copy.deepcopy(body)
    del body["header"]["requestId"]
    for route in body["routes"]:
        del route["startTime"], route["endTime"]
    return body


@pytest.mark.anyio
async def test_http_replay_of_captured_rank_index_search(server: ReferenceServer) -> None:
    for name in ("rank", "index", "search"):
        request = json.loads((DATA / f"http/{name}.conn0.0.request.json").read_text())
        real = json.loads((DATA / f"http/{name}.conn0.0.response.json").read_text())
        path = request["request_line"].split()[1]
        status, ours = await post(server.url("http"), request["body"], path=path)
        assert status == int(real["status_line"].split()[1]) == 200
        assert _json_comparable(ours) == _json_comparable(real["body"]), name


def test_executor_replay_without_a_server() -> None:
    """The same captures straight through ``ReferenceExecutor.handle``, sharing one executor's index."""

    async def main() -> None:
        executor = ReferenceExecutor()
        for name in ("rank", "index", "search"):
            ours = await executor.handle(captured(f"grpc/{name}.Call.request0.bin"))
            assert _comparable(ours) == _comparable(captured(f"grpc/{name}.Call.response0.bin")), name
        assert executor.indexed_count == 3

    anyio.run(main)
