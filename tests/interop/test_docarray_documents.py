"""aclip takes real docarray v1 (0.21) Documents as they are, by duck typing: it never imports docarray.

What a user of the upstream client expects when they switch to aclip and keep their docarray Documents:

- ``encode(DocumentArray or list of Documents)`` returns those same Document objects, in input order, each
  with ``.embedding`` (a float32 numpy array), for text, blob, tensor [H, W, C] and uri Documents;
- ``rank`` gives each root a new ``.matches`` of docarray Documents, by ``clip_score`` descending, with the
  ``clip_score`` and ``clip_score_cosine`` scores;
- ``index`` then ``search`` gives each docarray query Document ``.matches`` with ``scores["cosine"]``.

Expected embeddings come from ``aclip.testing``'s encoder functions, expected scores from numpy.
"""

from __future__ import annotations

import base64
import pathlib
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pytest

import aclip
from aclip import Client
from aclip.testing import ReferenceServer, embed_image_bytes, embed_tensor, embed_text, sample_png
from tests.interop.support import PROTOCOLS, import_docarray_v1

docarray = import_docarray_v1()
Document = docarray.Document
DocumentArray = docarray.DocumentArray

pytestmark = pytest.mark.interop


def mixed_documents(folder: pathlib.Path) -> Tuple[List[Any], List[np.ndarray]]:
    """docarray Documents of every kind of content aclip sends, and the embedding each must get."""
    blob = sample_png(4, 3, seed=1)
    path = folder / "uri.png"
    path.write_bytes(sample_png(5, 2, seed=2))
    tensor = np.random.default_rng(3).integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
    data_uri_png = sample_png(2, 2, seed=4)
    data_uri = "data:image/png;base64," + base64.b64encode(data_uri_png).decode()
    documents = [
        Document(text="she smiled, with pain"),
        Document(blob=blob),
        Document(tensor=tensor),
        Document(uri=str(path)),
        Document(uri=data_uri),
        Document(text="a second sentence, in a second batch"),
    ]
    expected = [
        embed_text("she smiled, with pain"),
        embed_image_bytes(blob),
        embed_tensor(tensor),
        embed_image_bytes(path.read_bytes()),
        embed_image_bytes(data_uri_png),
        embed_text("a second sentence, in a second batch"),
    ]
    return documents, expected


def check_same_documents(result: Sequence[Any], documents: Sequence[Any]) -> None:
    """The result holds the caller's own Document objects, in input order."""
    assert len(result) == len(documents)
    for position, (got, given) in enumerate(zip(result, documents)):
        assert got is given, f"position {position}: {got!r} is not the caller's Document {given!r}"


def check_embedding(document: Any, expected: np.ndarray, what: str) -> None:
    assert isinstance(document.embedding, np.ndarray), f"{what}: embedding is {type(document.embedding).__name__}"
    assert document.embedding.dtype == np.float32, what
    np.testing.assert_array_equal(document.embedding, expected, err_msg=what)


@pytest.mark.parametrize("container", ["DocumentArray", "list"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encode_fills_the_callers_docarray_documents(
    reference_server: ReferenceServer, protocol: str, container: str, tmp_path: pathlib.Path
) -> None:
    documents, expected = mixed_documents(tmp_path)
    ids = [document.id for document in documents]
    blob, tensor = documents[1].blob, documents[2].tensor.copy()
    given = DocumentArray(documents) if container == "DocumentArray" else list(documents)
    with Client(reference_server.url(protocol)) as client:
        result = client.encode(given, batch_size=2)
    check_same_documents(result, documents)
    for position, (document, vector) in enumerate(zip(documents, expected)):
        check_embedding(document, vector, f"{protocol}, document {position}")
    assert [document.id for document in documents] == ids  # ids are the caller's, never replaced
    assert documents[1].blob == blob  # content is left as it was: no image dropped, no file bytes added
    np.testing.assert_array_equal(documents[2].tensor, tensor)
    assert not documents[3].blob and not documents[4].blob


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


def check_ranking(root: Any, root_vector: np.ndarray, candidates: List[Tuple[str, np.ndarray]]) -> None:
    """root.matches: docarray Documents, the candidates by clip_score descending, with exact scores.

    A candidate's key is its text, or its id for an image.
    """
    cosines = np.array([float(np.dot(root_vector.astype(np.float64), vector)) for _, vector in candidates])
    expected = dict(zip((key for key, _ in candidates), zip(softmax(100 * cosines), cosines)))
    matches = list(root.matches)
    assert all(isinstance(match, Document) for match in matches), [type(match) for match in matches]
    keys = [match.text or match.id for match in matches]
    assert sorted(keys) == sorted(expected)
    clip_scores = [match.scores["clip_score"].value for match in matches]
    assert clip_scores == sorted(clip_scores, reverse=True)
    assert sum(clip_scores) == pytest.approx(1.0, abs=1e-5)
    for key, match in zip(keys, matches):
        score, cosine = expected[key]
        assert match.scores["clip_score"].value == pytest.approx(score, abs=1e-5), key
        assert match.scores["clip_score"].op_name == "softmax", key
        assert match.scores["clip_score_cosine"].value == pytest.approx(cosine, abs=1e-6), key
        assert match.scores["clip_score_cosine"].op_name == "cosine", key
    check_embedding(root, root_vector, "the root")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rank_an_image_against_sentences(
    reference_server: ReferenceServer, protocol: str, tmp_path: pathlib.Path
) -> None:
    image = sample_png(6, 4, seed=11)
    path = tmp_path / "rerank.png"
    path.write_bytes(image)
    texts = [f"a photo of a {place}" for place in ("control room", "lecture room", "conference room", "podium")]
    root = Document(uri=str(path), matches=[Document(text=text) for text in texts])
    original_matches = root.matches
    roots = DocumentArray([root])
    with Client(reference_server.url(protocol)) as client:
        result = client.rank(roots)
    check_same_documents(result, [root])
    assert root.matches is not original_matches  # a new list of matches...
    assert [match.text for match in original_matches] == texts  # ...and the caller's own is as it was
    check_ranking(root, embed_image_bytes(image), [(text, embed_text(text)) for text in texts])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rank_sentences_against_images(
    reference_server: ReferenceServer, protocol: str, tmp_path: pathlib.Path
) -> None:
    blob = sample_png(3, 3, seed=12)
    tensor = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    path = tmp_path / "candidate.png"
    path.write_bytes(sample_png(4, 4, seed=13))
    first = Document(
        text="a photo of a conference room",
        matches=[
            Document(id="blob", blob=blob),
            Document(id="tensor", tensor=tensor),
            Document(id="uri", uri=str(path)),
        ],
    )
    second = Document(text="second", matches=[Document(id="only", blob=blob), Document(id="other", tensor=tensor)])
    roots = [first, second]
    with Client(reference_server.url(protocol)) as client:
        result = client.rank(roots, batch_size=1)
    check_same_documents(result, roots)
    candidates = [
        ("blob", embed_image_bytes(blob)),
        ("tensor", embed_tensor(tensor)),
        ("uri", embed_image_bytes(path.read_bytes())),
    ]
    check_ranking(first, embed_text("a photo of a conference room"), candidates)
    check_ranking(second, embed_text("second"), [("only", candidates[0][1]), ("other", candidates[1][1])])


def nearest(query: np.ndarray, stored: List[Tuple[str, np.ndarray]], limit: int) -> List[Tuple[str, float]]:
    """The ``limit`` stored keys nearest to ``query``, with their cosine distances, nearest first."""
    distances = [(key, 1.0 - float(np.dot(query.astype(np.float64), vector))) for key, vector in stored]
    return sorted(distances, key=lambda pair: pair[1])[:limit]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_index_then_search_with_docarray_documents(
    reference_server: ReferenceServer, protocol: str, tmp_path: pathlib.Path
) -> None:
    reference_server.executor.clear_index()
    path = tmp_path / "apple.png"
    path.write_bytes(sample_png(4, 4, seed=21))
    texts = ["she smiled, with pain", "a cat on a mat", "the stock market fell", "a dog in the park"]
    to_index = DocumentArray([*(Document(text=text) for text in texts), Document(uri=str(path))])
    queries = [Document(text=text) for text in ("smile", "a cat", "markets")]
    with Client(reference_server.url(protocol)) as client:
        indexed = client.index(to_index, batch_size=2)
        hits = client.search(queries, limit=2)
    check_same_documents(indexed, list(to_index))
    stored = [(text, embed_text(text)) for text in texts] + [(str(path), embed_image_bytes(path.read_bytes()))]
    for document, (key, vector) in zip(to_index, stored):
        check_embedding(document, vector, f"indexed {key!r}")
    assert reference_server.executor.indexed_count == len(stored)
    check_same_documents(hits, queries)
    for query in queries:
        check_embedding(query, embed_text(query.text), f"query {query.text!r}")
        want = nearest(embed_text(query.text), stored, limit=2)
        got = [(match.text or match.uri, match.scores["cosine"].value) for match in query.matches]
        assert [key for key, _ in got] == [key for key, _ in want], query.text
        for (key, distance), (_, expected_distance) in zip(got, want):
            assert distance == pytest.approx(expected_distance, abs=1e-6), (query.text, key)


def test_aclip_itself_never_imports_docarray_or_jina(reference_server: ReferenceServer) -> None:
    """With the whole upstream stack installed, aclip's own imports and calls load none of it."""
    code = textwrap.dedent(
        f"""
        import sys

        from aclip import Client, Document

        with Client({reference_server.url("grpc")!r}) as client:
            client.encode(["a sentence"])
            client.encode([Document(text="a document")])
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("docarray", "jina", "clip_client")))
        """
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_uri_documents_are_read_by_the_client(
    server_elsewhere: Dict[str, str], protocol: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A docarray Document with a local path: aclip sends the file's bytes, which a remote server needs.

    The server runs in another process and another folder, so the relative path means nothing to it.
    """
    monkeypatch.chdir(tmp_path)
    image = sample_png(3, 5, seed=31)
    pathlib.Path("picture.png").write_bytes(image)
    texts = ["a photo of a cat", "a photo of a dog"]
    with Client(server_elsewhere[protocol]) as client:
        [own] = client.encode([aclip.Document(uri="picture.png")])  # the control: aclip's own Document
        check_embedding(own, embed_image_bytes(image), "aclip.Document(uri=...)")
        encoded = Document(uri="picture.png")
        ranked = Document(uri="picture.png", matches=[Document(text=text) for text in texts])
        client.encode([encoded])
        client.rank([ranked])
    check_embedding(encoded, embed_image_bytes(image), "docarray Document(uri=...)")
    check_ranking(ranked, embed_image_bytes(image), [(text, embed_text(text)) for text in texts])
