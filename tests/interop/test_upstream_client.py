"""The upstream client, clip_client 0.8, against aclip's reference server, on every protocol.

A user who tests their clip_client code against ``aclip.testing`` instead of a real CLIP server must get what
a real server gives: ``encode`` of strings (sentences, image paths, data URIs) and of docarray Documents,
``rank``, ``index`` then ``search``, and ``profile``, over gRPC, HTTP and WebSocket, plus the token. Every
embedding is compared bit for bit with the test encoder's (``aclip.testing.embed_text`` and friends), and
every score with what aclip's own client gets from the same server.

What clip_client needed from the server beyond what aclip's client uses (both are served by
``aclip.testing`` now):

- ``GET /openapi.json`` over HTTP: Jina's HTTP client reads it before its first POST to pick the route
  (``POST /index`` for index, ``POST /search`` for search, ``POST /post`` otherwise);
- a ``gateway`` route that spans at least one whole-millisecond boundary: ``profile()`` divides by the
  gateway's span in whole milliseconds and raised ZeroDivisionError on a span inside one millisecond.

clip_client has no timeout of its own: every test here is bounded by pytest-timeout.
"""

from __future__ import annotations

import base64
import pathlib
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import pytest

import aclip
from aclip.testing import ReferenceServer, embed_image_bytes, embed_tensor, embed_text, sample_png, serve_in_thread
from tests.interop.support import PROTOCOLS, import_docarray_v1, import_upstream

clip_client = import_upstream("clip_client")
jina = import_upstream("jina")
docarray = import_docarray_v1()
Document = docarray.Document
DocumentArray = docarray.DocumentArray

#: Seconds any one test may take: clip_client itself waits forever for an answer.
UPSTREAM_TIMEOUT = 60

pytestmark = [pytest.mark.interop, pytest.mark.timeout(UPSTREAM_TIMEOUT, method="thread")]

TOKEN = "upstream-s3cret"
PROFILE_KEYS = {"Roundtrip", "Client-server network", "Server", "Gateway-CLIP network", "CLIP model"}


@pytest.fixture
def upstream(reference_server: ReferenceServer, protocol: str) -> Any:
    """clip_client's Client on ``protocol`` of the session's reference server."""
    return clip_client.Client(reference_server.url(protocol))


@pytest.fixture(scope="module")
def token_server() -> Iterator[ReferenceServer]:
    """A reference server that requires :data:`TOKEN` on every protocol."""
    with serve_in_thread(token=TOKEN) as running:
        yield running


def data_uri(image: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(image).decode()


def check_rows(got: Any, expected: List[np.ndarray], protocol: str, what: str) -> None:
    """``got`` is an [N, 512] array whose rows are ``expected``, exactly.

    Over HTTP the embeddings travel as JSON number lists, which carry no dtype: docarray reads them as
    float64 (from a real gateway too), each number the float32 value widened exactly.
    """
    assert isinstance(got, np.ndarray), f"{what}: {type(got).__name__}"
    dtype = np.float64 if protocol == "http" else np.float32
    assert got.dtype == dtype and got.shape == (len(expected), 512), (what, got.dtype, got.shape)
    for row, (vector, want) in enumerate(zip(got, expected)):
        assert vector.tobytes() == want.astype(dtype).tobytes(), f"{what}: row {row} is not the test encoder's"


# --- encode ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encode_sentences(upstream: Any, reference_server: ReferenceServer, protocol: str) -> None:
    sentences = ["she smiled, with pain", "a photo of a cat", "ünïcödé ✓", "the fourth", "and a fifth, alone"]
    vectors = upstream.encode(sentences, batch_size=2)  # three requests
    check_rows(vectors, [embed_text(sentence) for sentence in sentences], protocol, "sentences")
    with aclip.Client(reference_server.url(protocol)) as own:
        np.testing.assert_array_equal(own.encode(sentences), vectors)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encode_with_a_model_name(upstream: Any, protocol: str) -> None:
    """``parameters={"model_name": ...}`` goes to ``/encode/<model_name>``, which encodes as ``/encode``."""
    vectors = upstream.encode(["named model"], parameters={"model_name": "ViT-B-32::openai"})
    check_rows(vectors, [embed_text("named model")], protocol, "/encode/<model_name>")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encode_image_paths_and_data_uris(upstream: Any, protocol: str, tmp_path: pathlib.Path) -> None:
    on_disk, inline = sample_png(5, 3, seed=41), sample_png(2, 4, seed=42)
    path = tmp_path / "apple.png"
    path.write_bytes(on_disk)
    content = [str(path), data_uri(inline), "a sentence between images", str(path)]
    vectors = upstream.encode(content, batch_size=3)
    expected = [
        embed_image_bytes(on_disk),
        embed_image_bytes(inline),
        embed_text(content[2]),
        embed_image_bytes(on_disk),
    ]
    check_rows(vectors, expected, protocol, "images")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encode_documents(upstream: Any, protocol: str, tmp_path: pathlib.Path) -> None:
    blob, from_file, inline = sample_png(3, 3, seed=51), sample_png(4, 2, seed=52), sample_png(2, 2, seed=53)
    path = tmp_path / "from-file.png"
    path.write_bytes(from_file)
    tensor = np.random.default_rng(54).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    documents = [
        Document(text="she smiled, with pain"),
        Document(blob=blob),
        Document(tensor=tensor),
        Document(uri=str(path)),
        Document(uri=data_uri(inline)),
        Document(text="the last one"),
    ]
    expected = [
        embed_text("she smiled, with pain"),
        embed_image_bytes(blob),
        embed_tensor(tensor),
        embed_image_bytes(from_file),
        embed_image_bytes(inline),
        embed_text("the last one"),
    ]
    result = upstream.encode(DocumentArray(documents), batch_size=4)
    assert isinstance(result, DocumentArray)
    assert [document.id for document in result] == [document.id for document in documents]
    check_rows(result.embeddings, expected, protocol, "Documents")


# --- rank -----------------------------------------------------------------------------------------------------


def upstream_scores(root: Any) -> List[Tuple[str, float, str, float, str]]:
    """A ranked root's matches, in order: id, clip_score and its op_name, clip_score_cosine and its op_name."""
    rows = []
    for match in root.matches:
        score, cosine = match.scores["clip_score"], match.scores["clip_score_cosine"]
        rows.append((match.id, score.value, score.op_name, cosine.value, cosine.op_name))
    return rows


def own_scores(root: aclip.Document) -> List[Tuple[str, float, str, float, str]]:
    rows = []
    for match in root.matches:
        score, cosine = match.scores["clip_score"], match.scores["clip_score_cosine"]
        rows.append((match.id, score.value, score.op_name, cosine.value, cosine.op_name))
    return rows


def check_ranked(rows: List[Tuple[str, float, str, float, str]], ids: List[str]) -> None:
    """Every candidate once, by clip_score descending, a softmax (sums to 1) beside a cosine."""
    assert sorted(row[0] for row in rows) == sorted(ids)
    scores = [row[1] for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert {(row[2], row[4]) for row in rows} == {("softmax", "cosine")}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rank_agrees_with_aclips_own_client(
    upstream: Any, reference_server: ReferenceServer, protocol: str, tmp_path: pathlib.Path
) -> None:
    image = sample_png(6, 4, seed=61)
    path = tmp_path / "rerank.png"
    path.write_bytes(image)
    places = ("control room", "lecture room", "conference room", "podium")
    texts = {f"t{i}": f"a photo of a {place}" for i, place in enumerate(places)}
    blob, tensor = sample_png(3, 5, seed=62), np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)

    image_root = Document(uri=str(path), matches=[Document(id=key, text=text) for key, text in texts.items()])
    text_root = Document(
        text="a photo of a conference room",
        matches=[Document(id="blob", blob=blob), Document(id="tensor", tensor=tensor)],
    )
    ranked = upstream.rank(DocumentArray([image_root, text_root]), batch_size=1)

    own_roots = [
        aclip.Document(uri=str(path), matches=[aclip.Document(id=key, text=text) for key, text in texts.items()]),
        aclip.Document(
            text="a photo of a conference room",
            matches=[aclip.Document(id="blob", blob=blob), aclip.Document(id="tensor", tensor=tensor)],
        ),
    ]
    with aclip.Client(reference_server.url(protocol)) as own:
        own_ranked = own.rank(own_roots)

    assert [root.id for root in ranked] == [image_root.id, text_root.id]
    for root, own_root, ids in zip(ranked, own_ranked, [list(texts), ["blob", "tensor"]]):
        rows = upstream_scores(root)
        check_ranked(rows, ids)
        assert rows == own_scores(own_root)
    # ...and both are right: the cosines are the test encoder's.
    query = embed_text("a photo of a conference room").astype(np.float64)
    want = {"blob": float(np.dot(query, embed_image_bytes(blob))), "tensor": float(np.dot(query, embed_tensor(tensor)))}
    for match_id, _, _, cosine, _ in upstream_scores(ranked[1]):
        assert cosine == pytest.approx(want[match_id], abs=1e-6), match_id


# --- index and search -----------------------------------------------------------------------------------------


def nearest(query: np.ndarray, stored: Dict[str, np.ndarray], limit: int) -> List[str]:
    distances = {key: 1.0 - float(np.dot(query.astype(np.float64), vector)) for key, vector in stored.items()}
    return sorted(distances, key=distances.__getitem__)[:limit]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_index_then_search_agrees_with_aclips_own_client(
    upstream: Any, reference_server: ReferenceServer, protocol: str, tmp_path: pathlib.Path
) -> None:
    reference_server.executor.clear_index()
    image = sample_png(4, 4, seed=71)
    path = tmp_path / "apple.png"
    path.write_bytes(image)
    texts = {"smile": "she smiled, with pain", "cat": "a cat on a mat", "market": "the stock market fell"}
    texts.update({"dog": "a dog in the park", "rain": "rain on the window"})
    to_index = DocumentArray([Document(id=key, text=text) for key, text in texts.items()])
    to_index.append(Document(id="apple", uri=str(path)))
    stored = {key: embed_text(text) for key, text in texts.items()}
    stored["apple"] = embed_image_bytes(image)

    indexed = upstream.index(to_index, batch_size=4)
    assert [document.id for document in indexed] == list(stored)
    check_rows(indexed.embeddings, list(stored.values()), protocol, "indexed")
    assert reference_server.executor.indexed_count == len(stored)

    queries = ["a cat on a mat", "smiling", str(path)]  # the first is stored as it is: distance 0 (null in JSON)
    limit = 3
    hits = upstream.search(queries, limit=limit)
    with aclip.Client(reference_server.url(protocol)) as own:
        own_hits = own.search(queries, limit=limit)

    assert len(hits) == len(queries)
    query_vectors = [embed_text(queries[0]), embed_text(queries[1]), embed_image_bytes(image)]
    for query, vector, hit, own_hit in zip(queries, query_vectors, hits, own_hits):
        got = [(match.id, match.scores["cosine"].value) for match in hit.matches]
        assert got == [(match.id, match.scores["cosine"].value) for match in own_hit.matches], query
        assert [key for key, _ in got] == nearest(vector, stored, limit), query
    assert hits[0].matches[0].id == "cat" and hits[0].matches[0].scores["cosine"].value == 0.0
    assert hits[2].matches[0].id == "apple"


# --- profile --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "a sentence", "image"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_profile(upstream: Any, protocol: str, content: str, tmp_path: pathlib.Path, capsys: Any) -> None:
    if content == "image":
        path = tmp_path / "profile.png"
        path.write_bytes(sample_png(3, 3, seed=81))
        content = str(path)
    times = upstream.profile(content)
    assert set(times) == PROFILE_KEYS
    # Whole milliseconds from the routes' timestamps; the roundtrip is measured by the client.
    assert times["Roundtrip"] > 0
    assert times["Server"] >= 1  # the gateway's span is never inside one millisecond
    assert 0 <= times["CLIP model"] <= times["Server"]
    assert times["Gateway-CLIP network"] == times["Server"] - times["CLIP model"]
    assert times["Client-server network"] == pytest.approx(times["Roundtrip"] - times["Server"])
    drawn = capsys.readouterr().out
    assert "Roundtrip" in drawn and "CLIP model" in drawn


def test_upstream_http_client_reads_the_openapi_routes(reference_server: ReferenceServer) -> None:
    """Jina's HTTP client reads ``GET /openapi.json`` and then posts index and search to their own routes.

    ``_endpoints`` is that client's private record of the POST routes it read (jina 3.27); without the
    document it stays empty and every request goes to ``/post``.
    """
    upstream = clip_client.Client(reference_server.url("http"))
    upstream.encode(["read the routes first"])
    assert sorted(upstream._client._endpoints) == ["index", "post", "search"]


# --- the token ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_credential_is_sent_and_required(token_server: ReferenceServer, protocol: str) -> None:
    url = token_server.url(protocol)
    vectors = clip_client.Client(url, credential={"Authorization": TOKEN}).encode(["with the token"])
    check_rows(vectors, [embed_text("with the token")], protocol, "with the token")

    refused = {"grpc": (jina.excepts.BadServerFlow, "UNAUTHENTICATED"), "http": (ValueError, "authorization token")}
    error, message = refused[protocol]
    received = token_server.stats.requests_received
    for credential in ({}, {"Authorization": "not-the-token"}):
        with pytest.raises(error, match=message):
            clip_client.Client(url, credential=credential).encode(["without the token"])
    assert token_server.stats.requests_received == received  # refused before any request was read


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # jina leaves the refused connection open
def test_upstream_websocket_cannot_send_a_credential(token_server: ReferenceServer) -> None:
    """clip_client 0.8 warns that it sends no credential over WebSocket, and indeed the server refuses it.

    (Under ``-W error`` the ResourceWarning about the connection jina leaves open, raised while uvloop
    closes jina's event loop, hangs the call: hence the filter.)
    """
    with pytest.warns(UserWarning, match="Credential is not supported for websocket"):
        upstream = clip_client.Client(token_server.url("websocket"), credential={"Authorization": TOKEN})
    rejected = token_server.stats.calls_rejected
    with pytest.raises(ConnectionError, match="401"):
        upstream.encode(["no token on this protocol"])
    assert token_server.stats.calls_rejected > rejected
