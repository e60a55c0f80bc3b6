"""Documents that share an id, against a real Jina gateway: each gets its own embedding and scores.

A CLIP server sets embeddings through a docarray DocumentArray, which addresses documents by id, so of
the documents of a request that share an id only the last gets one (the test executor does it with
docarray's own code, as clip_server does; :func:`test_the_gateway_merges_documents_that_share_an_id` shows
it). aclip puts ids of its own on the wire for encode and rank, and gives the caller's back: these tests
check that on the gateway, and that the reference server, which merges the same way, agrees.
"""

from typing import Dict, List

import numpy as np
import pytest

from aclip import Client, Document, DocumentList
from aclip.testing import ReferenceServer
from tests.helpers import expected_text
from tests.interop.support import PROTOCOLS, import_docarray_v1, import_upstream

jina = import_upstream("jina")
docarray = import_docarray_v1()

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def servers(protocol: str, gateway: Dict[str, str], reference_server: ReferenceServer) -> Dict[str, str]:
    """The URL of the real gateway and of the reference server, for one protocol."""
    return {"gateway": gateway[protocol], "reference": reference_server.url(protocol)}


def test_the_gateway_merges_documents_that_share_an_id(gateway: Dict[str, str]) -> None:
    """What the fix is for: sent as they are, the first of two documents with id "x" gets no embedding."""
    grpc_port = int(gateway["grpc"].rsplit(":", 1)[1])
    sent = docarray.DocumentArray([docarray.Document(id="x", text="first"), docarray.Document(id="x", text="second")])
    answer = jina.Client(host="127.0.0.1", port=grpc_port, protocol="grpc").post("/encode", sent)
    assert [doc.id for doc in answer] == ["x", "x"]
    assert answer[0].embedding is None
    np.testing.assert_array_equal(answer[1].embedding, expected_text("second"))


def test_encode_gives_every_duplicate_its_embedding(servers: Dict[str, str]) -> None:
    for name, url in servers.items():
        docs = [Document(text="first", id="x"), Document(text="second", id="x"), Document(text="third", id="x")]
        with Client(url, timeout=60) as client:
            encoded = client.encode(docs, batch_size=3)
        assert list(encoded) == docs and [doc.id for doc in docs] == ["x", "x", "x"], name
        for doc in docs:
            assert doc.embedding is not None, (name, doc.text)
            np.testing.assert_array_equal(doc.embedding, expected_text(doc.text or ""))


def test_rank_scores_every_duplicate_and_keeps_the_callers_ids(servers: Dict[str, str]) -> None:
    rankings: List[List[tuple[str, str, float]]] = []
    for name, url in servers.items():
        candidates = [Document(text="a photo of a cat", id="m"), Document(text="a photo of a dog", id="m")]
        roots = [
            Document(text="a cat", id="r", matches=DocumentList(candidates)),
            Document(text="a dog", id="r", matches=DocumentList(candidates)),  # the same candidates again
        ]
        with Client(url, timeout=60) as client:
            ranked = client.rank(roots, batch_size=2)
        assert list(ranked) == roots and [root.id for root in roots] == ["r", "r"], name
        for root in roots:
            np.testing.assert_array_equal(root.embedding, expected_text(root.text or ""))
            assert [match.id for match in root.matches] == ["m", "m"], name
            for match in root.matches:  # each scored with its own embedding, not the other's
                cosine = float(expected_text(root.text or "") @ expected_text(match.text or ""))
                assert match.scores["clip_score_cosine"].value == pytest.approx(cosine, abs=1e-6), name
            values = [match.scores["clip_score"].value for match in root.matches]
            assert sum(values) == pytest.approx(1.0, abs=1e-5), name
            rankings.append([(m.id, str(m.text), m.scores["clip_score_cosine"].value) for m in root.matches])
    gateway, reference = rankings[:2], rankings[2:]
    for got, want in zip(gateway, reference):
        assert [key[:2] for key in got] == [key[:2] for key in want]
        assert [key[2] for key in got] == pytest.approx([key[2] for key in want], abs=1e-6)
