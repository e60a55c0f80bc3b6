"""aclip against a real Jina gateway: every call on every protocol, compared with aclip's reference server.

The gateway (fixture ``gateway``) is jina 3.27's own, in front of our test executor
(tests/interop/clip_test_executor.py), which implements the test encoder independently of aclip. Each test
makes the same call against the gateway and against the reference server (fixture ``reference_server``) and
checks that both agree: embeddings bit for bit, ranks and search hits in the same order with the same
scores (to float32 rounding: the two servers compute cosines with different but equally valid sums).
"""

import base64
import pathlib
from typing import Callable, Dict, Iterator, List, Tuple

import numpy as np
import pytest

from aclip import (
    AsyncClient,
    Client,
    Document,
    DocumentList,
    MissingEmbeddingError,
    ServerError,
)
from aclip.testing import ReferenceServer
from tests.helpers import expected_embedding, expected_tensor, expected_text, png_bytes
from tests.interop.support import PROTOCOLS, import_upstream

jina = import_upstream("jina")

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

SENTENCES = ["she smiled, with pain", "a cat on a mat", "the stock market fell", "a dog in the park", "héllo ✓"]


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def servers(protocol: str, gateway: Dict[str, str], reference_server: ReferenceServer) -> Dict[str, str]:
    """The URL of the real gateway and of the reference server, for one protocol."""
    return {"gateway": gateway[protocol], "reference": reference_server.url(protocol)}


@pytest.fixture
def empty_indexes(gateway: Dict[str, str], reference_server: ReferenceServer) -> Iterator[None]:
    """Both servers' indexes emptied, before the test and after it."""

    def clear() -> None:
        reference_server.executor.clear_index()
        grpc_port = int(gateway["grpc"].rsplit(":", 1)[1])
        answer = jina.Client(host="127.0.0.1", port=grpc_port, protocol="grpc").post("/clear", return_responses=False)
        assert "cleared" in answer[0].tags, answer[0].tags

    clear()
    yield
    clear()


def on_both(
    servers: Dict[str, str], call: str, make_inputs: Callable[[], object], **kwargs: object
) -> Tuple[object, object]:
    """``Client(url).<call>(make_inputs(), **kwargs)`` on the gateway, then on the reference server.

    The inputs are made afresh for each server: Documents in are updated in place and returned.
    """
    answers = []
    for url in (servers["gateway"], servers["reference"]):
        with Client(url, timeout=60) as client:
            answers.append(getattr(client, call)(make_inputs(), **kwargs))
    assert answers[0] is not answers[1]
    return answers[0], answers[1]


def test_encode_sentences_and_images(servers: Dict[str, str], tmp_path: pathlib.Path) -> None:
    path = tmp_path / "apple.png"
    path.write_bytes(png_bytes(seed=1))
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes(seed=2)).decode()
    inputs = [*SENTENCES, str(path), data_uri]
    from_gateway, from_reference = on_both(servers, "encode", lambda: inputs, batch_size=3)
    assert isinstance(from_gateway, np.ndarray) and isinstance(from_reference, np.ndarray)
    assert from_gateway.shape == (len(inputs), 512) and from_gateway.dtype == np.float32
    np.testing.assert_array_equal(from_gateway, from_reference)
    expected = [*(expected_text(s) for s in SENTENCES), expected_embedding(png_bytes(seed=1))]
    expected.append(expected_embedding(png_bytes(seed=2)))
    np.testing.assert_array_equal(from_gateway, np.stack(expected))


def test_encode_documents_keeps_order_and_fields(servers: Dict[str, str]) -> None:
    tensor = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes(seed=4)).decode()

    def documents() -> List[Document]:
        return [
            Document(text="a red apple", id="t", tags={"n": 1}),
            Document(blob=png_bytes(seed=3), id="b"),
            Document(tensor=tensor, id="x"),
            Document(uri=data_uri, id="u"),
        ]

    from_gateway, from_reference = on_both(servers, "encode", documents, batch_size=2)
    assert isinstance(from_gateway, DocumentList) and isinstance(from_reference, DocumentList)
    assert [d.id for d in from_gateway] == ["t", "b", "x", "u"]
    assert from_gateway[0].text == "a red apple" and from_gateway[0].tags == {"n": 1}
    assert from_gateway.embeddings is not None and from_reference.embeddings is not None
    np.testing.assert_array_equal(from_gateway.embeddings, from_reference.embeddings)
    np.testing.assert_array_equal(from_gateway[0].embedding, expected_text("a red apple"))
    np.testing.assert_array_equal(from_gateway[1].embedding, expected_embedding(png_bytes(seed=3)))
    np.testing.assert_array_equal(from_gateway[2].embedding, expected_tensor(tensor))
    np.testing.assert_array_equal(from_gateway[3].embedding, expected_embedding(png_bytes(seed=4)))


def test_an_empty_sentence_is_named_not_padded(servers: Dict[str, str]) -> None:
    for url in servers.values():
        with Client(url, timeout=60) as client, pytest.raises(MissingEmbeddingError) as raised:
            client.encode(["first", "", "third"])
        assert raised.value.positions == [1], url


def test_an_executor_error_is_a_server_error(servers: Dict[str, str]) -> None:
    """A blob that is no image fails inside the executor; the gateway reports it and aclip raises it typed."""
    with Client(servers["gateway"], timeout=60) as client:
        with pytest.raises(ServerError) as raised:
            client.encode([Document(text="fine"), Document(blob=b"not an image")], batch_size=1)
        assert raised.value.positions == [1] and raised.value.endpoint == "/encode"
        assert client.encode(["still works"]).shape == (1, 512)  # the connection survives


@pytest.mark.parametrize("root_is_image", [True, False])
def test_rank_agrees(servers: Dict[str, str], root_is_image: bool) -> None:
    images = [png_bytes(seed=seed) for seed in (11, 12, 13)]
    sentences = ["a photo of a cat", "a photo of a dog", "a diagram"]

    def roots() -> List[Document]:
        if root_is_image:
            return [Document(blob=images[0], matches=[Document(text=s, id=s) for s in sentences])]
        return [Document(text=sentences[0], matches=[Document(blob=b, id=f"img{i}") for i, b in enumerate(images)])]

    from_gateway, from_reference = on_both(servers, "rank", roots)
    assert isinstance(from_gateway, DocumentList) and isinstance(from_reference, DocumentList)
    [ranked], [expected] = from_gateway, from_reference
    assert [m.id for m in ranked.matches] == [m.id for m in expected.matches]
    assert sorted(m.id for m in ranked.matches) == sorted(m.id for m in roots()[0].matches)
    for got, want in zip(ranked.matches, expected.matches):
        assert got.scores["clip_score"].op_name == "softmax"
        assert got.scores["clip_score_cosine"].op_name == "cosine"
        for name in ("clip_score", "clip_score_cosine"):
            assert got.scores[name].value == pytest.approx(want.scores[name].value, rel=1e-5, abs=1e-6)
    values = [m.scores["clip_score"].value for m in ranked.matches]
    assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(1.0, abs=1e-5)


def search_hits(url: str, texts: List[str], queries: List[str]) -> List[List[Tuple[str, float]]]:
    documents = [Document(text=s, id=f"s{i}") for i, s in enumerate(texts)]
    documents.append(Document(blob=png_bytes(seed=21), id="image"))
    with Client(url, timeout=60) as client:
        indexed = client.index(documents, batch_size=2)
        assert [d.id for d in indexed] == [d.id for d in documents]
        hits = client.search(queries, limit=3)
    return [[(m.id, m.scores["cosine"].value) for m in hit.matches] for hit in hits]


@pytest.mark.usefixtures("empty_indexes")
def test_index_then_search_agrees(servers: Dict[str, str]) -> None:
    queries = ["smile", "a cat", "markets", "dogs"]
    from_gateway = search_hits(servers["gateway"], SENTENCES, queries)
    from_reference = search_hits(servers["reference"], SENTENCES, queries)
    assert all(len(hits) == 3 for hits in from_gateway)
    for got, want in zip(from_gateway, from_reference):
        assert [key for key, _ in got] == [key for key, _ in want]
        assert [value for _, value in got] == pytest.approx([value for _, value in want], abs=1e-6)
    for query, hits in zip(queries, from_gateway):  # and both agree with the test encoder
        stored = [(f"s{i}", expected_text(s)) for i, s in enumerate(SENTENCES)]
        stored.append(("image", expected_embedding(png_bytes(seed=21))))
        nearest = sorted(stored, key=lambda pair: 1 - float(np.dot(expected_text(query), pair[1])))[:3]
        assert [key for key, _ in hits] == [key for key, _ in nearest]


def test_profile_breaks_down_the_gateway_time(servers: Dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    with Client(servers["gateway"], timeout=60) as client:
        times = client.profile("hello, world")
    assert set(times) == {"Roundtrip", "Client-server network", "Server", "Gateway-CLIP network", "CLIP model"}
    assert all(value >= 0 for value in times.values()), times
    assert 0 < times["Server"] <= times["Roundtrip"]
    assert times["Gateway-CLIP network"] + times["CLIP model"] == pytest.approx(times["Server"])
    assert "CLIP model" in capsys.readouterr().out


@pytest.mark.anyio
async def test_async_client_streams_many_batches(servers: Dict[str, str]) -> None:
    sentences = [f"sentence number {i}" for i in range(300)]
    async with AsyncClient(servers["gateway"], timeout=60) as client:
        embeddings = await client.aencode(iter(sentences), batch_size=16, prefetch=4)
    np.testing.assert_array_equal(embeddings, np.stack([expected_text(s) for s in sentences]))


def test_the_gateway_is_ready(servers: Dict[str, str]) -> None:
    """The real gateway's dry run (gRPC RPC, GET /dry_run, the /dry_run socket) runs through the executor."""
    with Client(servers["gateway"]) as client:
        assert client.readiness(timeout=30) == [None]
        assert client.is_ready(timeout=30) is True
