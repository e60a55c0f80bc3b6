"""Result containers read as a whole, and document-like objects of other libraries accepted as input."""

from __future__ import annotations

import importlib.util
import pathlib
from collections import defaultdict
from typing import Any, DefaultDict, Dict, List, Optional

import numpy as np
import pytest

from aclip import AsyncClient, Document, DocumentList, MissingEmbeddingError
from aclip.testing import ReferenceServer
from tests.conftest import Endpoint
from tests.helpers import expected_embedding, expected_tensor, expected_text, png_bytes

pytestmark = pytest.mark.anyio


def test_slicing_keeps_the_container_and_matches_use_it_too() -> None:
    docs = DocumentList(Document(text=str(i)) for i in range(5))
    part = docs[1:4]
    assert isinstance(part, DocumentList) and part.texts == ["1", "2", "3"]
    assert isinstance(docs[0], Document)
    assert isinstance(Document(text="q", matches=[Document(text="m")]).matches, DocumentList)  # type: ignore[arg-type]


def test_embeddings_texts_and_uris() -> None:
    docs = DocumentList([Document(text="a"), Document(uri="b.png"), Document(text="c")])
    assert docs.embeddings is None
    assert docs.texts == ["a", None, "c"] and docs.uris == [None, "b.png", None]
    for position, doc in enumerate(docs):
        doc.embedding = np.full(4, position, dtype=np.float64)
    stacked = docs.embeddings
    assert stacked is not None and stacked.dtype == np.float32 and stacked.shape == (3, 4)
    np.testing.assert_array_equal(stacked[:, 0], [0, 1, 2])


def test_partial_embeddings_name_the_positions_without() -> None:
    docs = DocumentList([Document(text="a"), Document(text=""), Document(text="c"), Document()])
    docs[0].embedding = np.ones(2, dtype=np.float32)
    docs[2].embedding = np.ones(2, dtype=np.float32)
    with pytest.raises(MissingEmbeddingError, match="positions 1, 3") as caught:
        _ = docs.embeddings
    assert caught.value.positions == [1, 3]


@pytest.mark.parametrize("with_rich", [True, False], ids=["rich", "plain"])
def test_summary(with_rich: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    if not with_rich:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "rich" else real(name))
    docs = DocumentList([Document(text="hi", embedding=np.zeros(512, np.float32)), Document(uri="a.png")])
    docs.summary()
    printed = capsys.readouterr().out
    assert "Documents summary" in printed
    assert "1 of 2, shape [512], float32" in printed
    for field, count in (("id", 2), ("text", 1), ("uri", 1), ("embedding", 1)):
        rows = [line.replace("│", " ").split() for line in printed.splitlines()]
        assert [field, "set", "on", str(count)] in rows, field


async def test_results_read_as_a_whole(endpoint: Endpoint, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "apple.png"
    path.write_bytes(png_bytes(seed=41))
    async with endpoint.async_client() as client:
        docs = await client.aencode([Document(text="she smiled"), Document(uri=str(path))])
        [ranked] = await client.arank(
            [Document(text="q", matches=DocumentList([Document(text="a"), Document(uri=str(path))]))]
        )
    assert isinstance(docs, DocumentList)
    embeddings = docs.embeddings
    assert embeddings is not None
    np.testing.assert_array_equal(
        embeddings, np.stack([expected_text("she smiled"), expected_embedding(path.read_bytes())])
    )
    assert docs.texts == ["she smiled", None] and docs.uris == [None, str(path)]
    assert isinstance(ranked.matches, DocumentList) and sorted(map(str, ranked.matches.texts)) == ["None", "a"]


class ForeignScore:
    """Shaped like docarray v1's NamedScore."""

    def __init__(self) -> None:
        self.value: float = 0.0
        self.op_name: str = ""


class ForeignDocument:
    """Shaped like a docarray v1 Document: content attributes, an embedding to set, defaultdict scores."""

    def __init__(self, **fields: Any) -> None:
        self.id: str = fields.pop("id", "foreign-id")
        self.text: Optional[str] = None
        self.uri: Optional[str] = None
        self.blob: Optional[bytes] = None
        self.tensor: Optional[np.ndarray] = None
        self.mime_type: Optional[str] = None
        self.embedding: Optional[np.ndarray] = None
        self.tags: Dict[str, Any] = {}
        self.scores: DefaultDict[str, ForeignScore] = defaultdict(ForeignScore)
        self.matches: List[ForeignDocument] = []
        for name, value in fields.items():
            setattr(self, name, value)


async def test_document_like_objects_are_encoded_in_place(plain_endpoint: Endpoint) -> None:
    tensor = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    blob = png_bytes(seed=42)
    docs = [ForeignDocument(text="foreign"), ForeignDocument(blob=blob), ForeignDocument(tensor=tensor)]
    with plain_endpoint.client() as client:
        result = client.encode(docs)  # type: ignore[call-overload]
    assert [id(doc) for doc in result] == [id(doc) for doc in docs]
    np.testing.assert_array_equal(docs[0].embedding, expected_text("foreign"))
    np.testing.assert_array_equal(docs[1].embedding, expected_embedding(blob))
    np.testing.assert_array_equal(docs[2].embedding, expected_tensor(tensor))
    assert docs[1].blob == blob  # nothing else of theirs changed


async def test_document_like_objects_get_matches_of_their_own_type(server: ReferenceServer) -> None:
    root = ForeignDocument(
        text="a photo of a cat", matches=[ForeignDocument(id="x", text="x"), ForeignDocument(id="y", text="y")]
    )
    async with AsyncClient(server.url("websocket")) as client:
        [ranked] = await client.arank([root])  # type: ignore[list-item]
        server.executor.clear_index()
        await client.aindex([ForeignDocument(id="stored", text="stored")])  # type: ignore[list-item]
        [hit] = await client.asearch([ForeignDocument(text="stored")], limit=1)  # type: ignore[list-item]
    assert ranked is root and all(isinstance(match, ForeignDocument) for match in root.matches)
    values = [match.scores["clip_score"].value for match in root.matches]
    assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(1.0, abs=1e-5)
    assert {match.scores["clip_score_cosine"].op_name for match in root.matches} == {"cosine"}
    [found] = hit.matches
    assert isinstance(found, ForeignDocument) and found.id == "stored" and found.text == "stored"
    assert found.scores["cosine"].value == pytest.approx(0.0, abs=1e-6)
