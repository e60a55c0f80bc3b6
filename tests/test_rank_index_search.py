"""rank, index, search and profile over every protocol, checked against independent numpy computations."""

from __future__ import annotations

import base64
import pathlib
from typing import Iterator, List

import numpy as np
import pytest

from aclip import AsyncClient, Client, Document, DocumentList, InputError, InputTypeError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS, Endpoint
from tests.helpers import expected_embedding, expected_tensor, expected_text, png_bytes

pytestmark = pytest.mark.anyio


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def check_ranking(root: Document, root_vector: np.ndarray, candidates: List[tuple[str, np.ndarray]]) -> None:
    """root.matches must be the candidates by clip_score, descending, with exact scores."""
    cosines = np.array([float(np.dot(root_vector, vector)) for _, vector in candidates])
    expected_scores = softmax(100 * cosines)
    by_key = {key: (score, cosine) for (key, _), score, cosine in zip(candidates, expected_scores, cosines)}
    keys = [match.text if match.text is not None else match.id for match in root.matches]
    assert sorted(keys) == sorted(by_key)
    clip_scores = [match.scores["clip_score"].value for match in root.matches]
    assert clip_scores == sorted(clip_scores, reverse=True)
    assert sum(clip_scores) == pytest.approx(1.0, abs=1e-5)
    for key, match in zip(keys, root.matches):
        score, cosine = by_key[key]
        assert match.scores["clip_score"].value == pytest.approx(score, abs=1e-5)
        assert match.scores["clip_score"].op_name == "softmax"
        assert match.scores["clip_score_cosine"].value == pytest.approx(cosine, abs=1e-6)
        assert match.scores["clip_score_cosine"].op_name == "cosine"
        assert match.embedding is None  # the server removes the matches' embeddings
    assert root.embedding is not None
    np.testing.assert_array_equal(root.embedding, root_vector)


async def test_rank_an_image_against_sentences(endpoint: Endpoint, tmp_path: pathlib.Path) -> None:
    image = png_bytes(seed=11)
    path = tmp_path / "rerank.png"
    path.write_bytes(image)
    texts = [f"a photo of a {place}" for place in ("control room", "lecture room", "conference room", "podium")]
    root = Document(uri=str(path), matches=DocumentList(Document(text=t) for t in texts))
    original_matches = root.matches
    async with endpoint.async_client() as client:
        result = await client.arank([root])
    assert result[0] is root  # the caller's own root, in place
    assert root.matches is not original_matches and len(original_matches) == 4  # a new list; theirs untouched
    check_ranking(root, expected_embedding(image), [(t, expected_text(t)) for t in texts])


async def test_rank_a_sentence_against_images(endpoint: Endpoint, tmp_path: pathlib.Path) -> None:
    blob = png_bytes(seed=12)
    tensor = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    path = tmp_path / "9.png"
    path.write_bytes(png_bytes(seed=13))
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes(seed=14)).decode()
    matches = [
        Document(id="blob", blob=blob),
        Document(id="tensor", tensor=tensor),
        Document(id="path", uri=str(path)),
        Document(id="data", uri=data_uri),
    ]
    roots = [Document(text="a photo of conference room", matches=DocumentList(matches)), Document(text="second")]
    roots[1].matches = DocumentList([Document(id="only", blob=blob), Document(id="other", tensor=tensor)])
    with endpoint.client() as client:
        result = client.rank(roots, batch_size=1)
    assert list(result) == roots
    candidates = [
        ("blob", expected_embedding(blob)),
        ("tensor", expected_tensor(tensor)),
        ("path", expected_embedding(path.read_bytes())),
        ("data", expected_embedding(png_bytes(seed=14))),
    ]
    check_ranking(roots[0], expected_text("a photo of conference room"), candidates)
    check_ranking(roots[1], expected_text("second"), [("only", candidates[0][1]), ("other", candidates[1][1])])


async def test_rank_refuses_roots_without_document_matches(server: ReferenceServer) -> None:
    received = server.stats.requests_received
    async with AsyncClient(server.url("grpc")) as client:
        with pytest.raises(InputError, match=r"input 1: .* has no matches to rank") as caught:
            await client.arank([Document(text="ok", matches=DocumentList([Document(text="m")])), Document(text="x")])
        assert caught.value.position == 1
        with pytest.raises(InputTypeError, match="match 0 is a str"):
            await client.arank([Document(text="x", matches=["not a document"])])  # type: ignore[arg-type]
        with pytest.raises(InputTypeError, match="rank takes Documents"):
            await client.arank(["a photo of a cat"])  # type: ignore[list-item]
    assert server.stats.requests_received == received  # nothing was sent


@pytest.fixture(scope="module")
def search_server() -> Iterator[ReferenceServer]:
    with serve_in_thread() as running:
        yield running


def nearest(query: np.ndarray, stored: List[tuple[str, np.ndarray]], limit: int) -> List[tuple[str, float]]:
    distances = [(key, 1.0 - float(np.dot(query.astype(np.float64), vector))) for key, vector in stored]
    return sorted(distances, key=lambda pair: pair[1])[:limit]  # sorted() is stable: ties keep index order


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_index_then_search_finds_the_exact_neighbours(
    search_server: ReferenceServer, protocol: str, tmp_path: pathlib.Path
) -> None:
    search_server.executor.clear_index()
    path = tmp_path / "apple.png"
    path.write_bytes(png_bytes(seed=21))
    texts = ["she smiled, with pain", "a cat on a mat", "the stock market fell", "a dog in the park"]
    async with AsyncClient(search_server.url(protocol)) as client:
        indexed = await client.aindex([*texts, str(path)], batch_size=2)
        assert [d.text for d in indexed[:4]] == texts and indexed[4].uri == str(path)
        for doc, text in zip(indexed, texts):
            np.testing.assert_array_equal(doc.embedding, expected_text(text))
        queries = ["smile", "a cat", "markets"]
        hits = await client.asearch(queries, limit=3)
    stored = [(text, expected_text(text)) for text in texts] + [(str(path), expected_embedding(path.read_bytes()))]
    assert [hit.text for hit in hits] == queries
    for hit, query in zip(hits, queries):
        want = nearest(expected_text(query), stored, limit=3)
        got = [(m.text if m.text is not None else m.uri, m.scores["cosine"].value) for m in hit.matches]
        assert [key for key, _ in got] == [key for key, _ in want]
        for (_, distance), (_, expected_distance) in zip(got, want):
            assert distance == pytest.approx(expected_distance, abs=1e-6)
        np.testing.assert_array_equal(hit.embedding, expected_text(query))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_search_limit_larger_than_the_store(search_server: ReferenceServer, protocol: str) -> None:
    search_server.executor.clear_index()
    with Client(search_server.url(protocol)) as client:
        client.index([Document(text="one", id="1"), Document(text="two", id="2")])
        client.index([Document(text="one again", id="1")])  # same id: replaces
        parameters = {"limit": 1}
        [hit] = client.search([Document(text="one")], limit=50, parameters=parameters)
    assert parameters == {"limit": 1}  # not changed, and the limit= argument won
    assert sorted(m.text for m in hit.matches) == ["one again", "two"]
    assert search_server.executor.indexed_count == 2


@pytest.mark.parametrize("limit", [0, -1, 2.5, True, "3"])
async def test_search_limit_must_be_a_positive_int(search_server: ReferenceServer, limit: object) -> None:
    async with AsyncClient(search_server.url("grpc")) as client:
        with pytest.raises((ValueError, TypeError), match="limit"):
            await client.asearch(["q"], limit=limit)  # type: ignore[arg-type]


async def test_profile_adds_up(endpoint: Endpoint, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "apple.png"
    path.write_bytes(png_bytes(seed=31))
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes(seed=32)).decode()
    async with endpoint.async_client() as client:
        for content in ("", "hello, world", str(path), data_uri):
            times = await client.aprofile(content)
            assert set(times) == {"Roundtrip", "Client-server network", "Server", "Gateway-CLIP network", "CLIP model"}
            assert all(value >= 0 for value in times.values()), times
            assert times["Server"] <= times["Roundtrip"] and times["Server"] > 0
            assert times["Client-server network"] + times["Server"] == pytest.approx(times["Roundtrip"])
            assert times["Gateway-CLIP network"] + times["CLIP model"] == pytest.approx(times["Server"])
        printed = capsys.readouterr().out
        assert printed.count("Roundtrip") == 4 and "CLIP model" in printed and "Client-server network" in printed
        await client.aprofile("quiet", show=False)
    assert capsys.readouterr().out == ""


async def test_callers_parameters_are_never_changed(endpoint: Endpoint) -> None:
    parameters = {"drop_image_content": True, "extra": {"nested": [1, 2]}}
    snapshot = {"drop_image_content": True, "extra": {"nested": [1, 2]}}
    async with endpoint.async_client() as client:
        await client.aencode(["x"], parameters=parameters)
        await client.arank([Document(text="x", matches=DocumentList([Document(text="y")]))], parameters=parameters)
        await client.aindex(["x"], parameters=parameters)
        await client.asearch(["x"], limit=1, parameters=parameters)
    assert parameters == snapshot
