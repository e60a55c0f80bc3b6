"""A true drop-in: code written for clip_client, run with aclip imported in its place, against the real gateway.

Each test is written the way upstream users write their code (docarray objects in, docarray selectors on the
results, callbacks reading ``resp.data.docs``, profile keys, empty inputs, image URLs on 127.0.0.1) and runs
twice on every protocol: once with the real ``clip_client.Client`` and once with ``aclip.Client``, against
the same Jina 3.27 gateway (fixture ``gateway``). Both clients are held to the same expectations; where aclip differs on
purpose, the test says so and README's migration table has the row.
"""

from __future__ import annotations

import pathlib
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest

import aclip
from aclip.testing import EMBEDDING_DIM
from tests.helpers import expected_embedding, expected_text
from tests.image_host import IMAGE, ImageHost
from tests.interop.support import PROTOCOLS, import_docarray_v1, import_upstream

docarray = import_docarray_v1()
clip_client = import_upstream("clip_client")
jina = import_upstream("jina")
Document = docarray.Document
DocumentArray = docarray.DocumentArray

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

CLIENTS = {"clip_client": clip_client.Client, "aclip": aclip.Client}
PROFILE_KEYS = {"Roundtrip", "Client-server network", "Server", "Gateway-CLIP network", "CLIP model"}


@pytest.fixture(params=PROTOCOLS)
def url(request: pytest.FixtureRequest, gateway: Dict[str, str]) -> str:
    return gateway[str(request.param)]


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest, url: str) -> Iterator[Any]:
    """``Client(server=url)`` of upstream or of aclip: the only line a migrating user changes."""
    made = CLIENTS[str(request.param)](server=url)
    yield made
    if hasattr(made, "close"):
        made.close()


@pytest.fixture
def empty_index(gateway: Dict[str, str]) -> Iterator[None]:
    def clear() -> None:
        grpc_port = int(gateway["grpc"].rsplit(":", 1)[1])
        jina.Client(host="127.0.0.1", port=grpc_port, protocol="grpc").post("/clear")

    clear()
    yield
    clear()


def texts(n: int) -> Any:
    return DocumentArray([Document(text=f"sentence number {i}") for i in range(n)])


def test_documents_in_give_the_same_documents_back_in_a_document_array(client: Any) -> None:
    inputs = texts(5)
    result = client.encode(inputs, batch_size=2)
    assert isinstance(result, DocumentArray)
    assert all(a is b for a, b in zip(inputs, result)) and len(result) == 5
    assert result.embeddings.shape[0] == 5
    assert np.asarray(result[:, "embedding"]).shape == result.embeddings.shape  # a docarray selector


def test_a_list_of_docarray_documents_gives_a_document_array(client: Any) -> None:
    inputs = [Document(id=str(i), text="hello, world") for i in range(4)]
    result = client.encode(inputs)
    assert isinstance(result, DocumentArray)
    assert [d.id for d in result] == ["0", "1", "2", "3"]
    assert inputs[0] is result[0]


@pytest.mark.anyio
async def test_aencode_in_an_executor_like_flow_returns_a_document_array(client: Any) -> None:
    inputs = texts(3)
    result = await client.aencode(inputs)
    assert isinstance(result, DocumentArray) and result.embeddings.shape[0] == 3


def test_strings_give_an_array(client: Any) -> None:
    result = client.encode(["hello, world", "goodbye, world"])
    assert isinstance(result, np.ndarray) and result.shape[0] == 2


@pytest.mark.parametrize("call", ["encode", "rank", "index", "search"])
def test_an_empty_document_array_gives_an_empty_document_array(client: Any, call: str, empty_index: None) -> None:
    result = getattr(client, call)(DocumentArray())
    assert isinstance(result, DocumentArray) and len(result) == 0


def test_an_empty_list_gives_an_empty_result(client: Any) -> None:
    """Upstream gives ``[]``, aclip an empty array (strings in, an array out): README's migration table."""
    result = client.encode([])
    assert len(result) == 0
    assert isinstance(result, np.ndarray if isinstance(client, aclip.Client) else list)


@pytest.mark.parametrize("container", [DocumentArray, list], ids=["DocumentArray", "list"])
def test_rank_with_docarray_selectors(client: Any, container: Any) -> None:
    roots = container(
        [
            Document(text="a photo of a cat", matches=[Document(text=t) for t in ("a cat", "a dog", "a car")]),
            Document(text="a photo of a dog", matches=[Document(text=t) for t in ("a car", "a dog")]),
        ]
    )
    result = client.rank(roots)
    assert isinstance(result, DocumentArray) and result[0] is roots[0]
    for root in result:
        scores = root.matches[:, "scores__clip_score__value"]
        assert scores == sorted(scores, reverse=True)
        assert all(isinstance(match, Document) for match in root.matches)
    pairs = result["@m", ["text", "scores__clip_score__value"]]  # upstream's guide reads ranks this way
    assert len(pairs) == 2 and len(pairs[0]) == 5


def test_index_then_search_with_docarray_selectors(client: Any, empty_index: None) -> None:
    client.index(DocumentArray([Document(text=t) for t in ("a red apple", "a blue car", "a green tree")]))
    result = client.search(DocumentArray([Document(text="a red apple")]), limit=2)
    assert isinstance(result, DocumentArray)
    assert result["@m", "text"][0] == "a red apple" and len(result[0].matches) == 2


def test_profile_returns_upstreams_keys(client: Any) -> None:
    times = client.profile()
    assert set(times) == PROFILE_KEYS
    assert times["Server"] <= times["Roundtrip"]


def test_callbacks_read_the_answer_as_upstream_code_does(client: Any) -> None:
    seen: List[Any] = []

    def on_done(resp: Any) -> None:
        docs = resp.data.docs  # docarray in, docarray out: new docarray Documents, with their embeddings
        assert isinstance(docs, DocumentArray) and docs[:, "text"] == [d.text for d in docs]
        seen.append((len(docs), docs.embeddings.shape[0], resp.header.status.code))

    inputs = texts(4)
    assert client.encode(inputs, batch_size=2, on_done=on_done) is None
    assert sorted(seen) == [(2, 2, 0), (2, 2, 0)]


def test_the_credential_may_be_positional(url: str) -> None:
    for make in CLIENTS.values():
        made = make(url, {})  # upstream's default; no token: the gateway has no auth
        assert made.encode(["positional"]).shape[0] == 1


@pytest.fixture(scope="module")
def image_host() -> Iterator[ImageHost]:
    with ImageHost() as running:
        yield running


def test_image_urls_are_downloaded_by_the_client(client: Any, image_host: ImageHost) -> None:
    """Upstream downloads http(s) images itself and sends their bytes; aclip does the same by default."""
    url = image_host.url("/good.png")
    seen_before = len(image_host.requests)
    vectors = client.encode([url, "a sentence"])
    np.testing.assert_array_equal(vectors[0], expected_embedding(IMAGE))
    result = client.encode(DocumentArray([Document(uri=url)]))
    np.testing.assert_array_equal(result[0].embedding, expected_embedding(IMAGE))
    agents = [headers.get("user-agent", "") for _, headers in image_host.requests[seen_before:]]
    assert len(agents) == 2
    if isinstance(client, aclip.Client):
        assert all(agent.startswith("aclip/") for agent in agents)  # not the gateway's download


@pytest.mark.parametrize("call", ["encode", "rank", "index", "search"])
def test_with_on_done_and_on_always_the_call_returns_none(client: Any, call: str, empty_index: None) -> None:
    done: List[Any] = []
    always: List[Any] = []
    failed: List[Any] = []
    inputs = DocumentArray([Document(text="hello", matches=DocumentArray([Document(text="jina")]))])
    result = getattr(client, call)(inputs, on_done=done.append, on_error=failed.append, on_always=always.append)
    assert result is None
    assert (len(done), len(always), len(failed)) == (1, 1, 0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ["hello, world", "goodbye, world"],
        lambda: ("hello, world", "goodbye, world"),
        lambda: (f"sentence {i}" for i in range(10)),
    ],
    ids=["list", "tuple", "generator"],
)
def test_plain_strings_in_every_container(client: Any, make: Any) -> None:
    result = client.encode(make())
    expected_rows = len(list(make()))
    if isinstance(client, aclip.Client) or not hasattr(result, "embeddings"):
        assert np.asarray(result).shape[0] == expected_rows
    else:  # upstream gives a generator of strings a DocumentArray: README's migration table
        assert result.embeddings.shape[0] == expected_rows


def test_files_tensors_and_urls_keep_the_callers_documents(
    client: Any, image_host: ImageHost, tmp_path: pathlib.Path
) -> None:
    for index in range(3):
        (tmp_path / f"{index:05d}.png").write_bytes(IMAGE)
    from_files = DocumentArray.from_files(str(tmp_path / "*.png"))
    with_tensor = Document(uri=str(tmp_path / "00000.png")).load_uri_to_image_tensor()
    inputs = DocumentArray(
        [Document(uri=image_host.url("/good.png")), Document(text="hello, world"), with_tensor, *from_files]
    )
    contents = inputs.contents
    result = client.encode(inputs)
    assert isinstance(result, DocumentArray) and all(a is b for a, b in zip(inputs, result))
    assert result.embeddings.shape[0] == 6
    assert result.contents == contents or isinstance(client, clip_client.Client)  # aclip leaves content alone
    assert not result[0].tensor


def test_profile_of_a_sentence_and_of_an_image_file(client: Any, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "00000.png"
    path.write_bytes(IMAGE)
    for content in ("hello world", str(path)):
        assert set(client.profile(content=content)) == PROFILE_KEYS


def test_a_single_string_is_refused(client: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017  # upstream raises some Exception; aclip an InputTypeError
        client.encode("hello")


def test_an_executor_may_return_what_aencode_returns(gateway: Dict[str, str]) -> None:
    """A Jina Executor returning ``await aclip_client.aencode(docs)`` (tests/interop/aclip_executor.py): jina
    takes only a DocumentArray, so this works only with docarray in, docarray out. Several callers at once,
    each getting its own documents back."""
    from multiprocessing.pool import ThreadPool

    grpc_port = int(gateway["grpc"].rsplit(":", 1)[1])

    def post(tag: str) -> Any:
        inputs = DocumentArray([Document(id=f"{tag}_{i}", text=f"hello {i}") for i in range(6)])
        return jina.Client(host="127.0.0.1", port=grpc_port, protocol="grpc").post(
            "/aclip-encode", inputs=inputs, request_size=2
        )

    with ThreadPool(3) as pool:
        answers = pool.map(post, [f"t{k}" for k in range(3)])
    for tag, answer in zip([f"t{k}" for k in range(3)], answers):
        assert [d.id for d in answer] == [f"{tag}_{i}" for i in range(6)]
        for i, doc in enumerate(answer):
            np.testing.assert_array_equal(doc.embedding, expected_text(f"hello {i}"))


@pytest.mark.parametrize("call", ["encode", "rank", "index", "search"])
def test_a_failed_request_goes_to_on_error(client: Any, call: str, empty_index: None) -> None:
    """The test executor fails on a blob that is no image, as a CLIP server does."""
    done: List[Any] = []
    always: List[Any] = []
    failed: List[str] = []
    inputs = DocumentArray([Document(blob=b"not an image", matches=DocumentArray([Document(text="jina")]))])
    result = getattr(client, call)(
        inputs,
        on_done=done.append,
        on_error=lambda resp: failed.append(resp.header.status.description),
        on_always=always.append,
    )
    assert result is None
    assert (len(done), len(always), len(failed)) == (0, 1, 1)
    assert "cannot identify image file" in failed[0]


def test_an_unknown_scheme_is_a_value_error() -> None:
    for make in CLIENTS.values():
        with pytest.raises(ValueError):
            make(server="other://127.0.0.1:8000")


def _search_inputs(kind: str, folder: pathlib.Path, image_url: str) -> Any:
    """The inputs of clip_client's own index/search tests, with files of our own and a URL on 127.0.0.1."""
    for index in range(2):
        (folder / f"{index:05d}.png").write_bytes(IMAGE)
    first = str(folder / "00000.png")
    made = {
        "list": lambda: [Document(text="hello, world"), Document(text="goodbye, world")],
        "DocumentArray": lambda: DocumentArray([Document(text="hello, world"), Document(text="goodbye, world")]),
        "generator": lambda: (Document(text="hello, world") for _ in range(10)),
        "mixed": lambda: DocumentArray(
            [
                Document(uri=image_url),
                Document(uri=first),
                Document(text="hello, world"),
                Document(uri=first).load_uri_to_image_tensor(),
            ]
        ),
        "from_files": lambda: DocumentArray.from_files(str(folder / "*.png")),
    }
    return made[kind]()


@pytest.mark.parametrize("kind", ["list", "DocumentArray", "generator", "mixed", "from_files"])
@pytest.mark.parametrize("limit", [1, 2])
def test_index_then_search_each_kind_of_input(
    client: Any, kind: str, limit: int, empty_index: None, image_host: ImageHost, tmp_path: pathlib.Path
) -> None:
    url = image_host.url("/good.png")
    indexed = client.index(_search_inputs(kind, tmp_path, url))
    assert isinstance(indexed, DocumentArray) and indexed.embeddings.shape[1] == EMBEDDING_DIM
    found = client.search(_search_inputs(kind, tmp_path, url), limit=limit)
    assert isinstance(found, DocumentArray)
    assert all(len(doc.matches) == limit for doc in found)


@pytest.mark.anyio
async def test_aindex_then_asearch(client: Any, empty_index: None) -> None:
    indexed = await client.aindex(DocumentArray([Document(text="hello, world"), Document(text="goodbye, world")]))
    assert isinstance(indexed, DocumentArray) and indexed.embeddings.shape[1] == EMBEDDING_DIM
    found = await client.asearch((Document(text="hello, world") for _ in range(3)), limit=2)
    assert isinstance(found, DocumentArray) and [len(doc.matches) for doc in found] == [2, 2, 2]


@pytest.mark.parametrize("kind", ["list", "DocumentArray", "generator", "image_matches"])
def test_rank_each_kind_of_input(client: Any, kind: str, image_host: ImageHost, tmp_path: pathlib.Path) -> None:
    """clip_client's own rank inputs: an image URL root with text matches, or a text root with image matches."""
    url = image_host.url("/good.png")
    path = tmp_path / "00000.png"
    path.write_bytes(IMAGE)

    def image_root() -> Any:
        return Document(uri=url, matches=[Document(text="hello, world"), Document(text="goodbye, world")])

    made = {
        "list": lambda: [image_root()],
        "DocumentArray": lambda: DocumentArray([image_root()]),
        "generator": lambda: (image_root() for _ in range(2)),
        "image_matches": lambda: DocumentArray(
            [Document(text="hello, world", matches=[Document(uri=url), Document(uri=str(path))])]
        ),
    }
    result = client.rank(made[kind]())
    assert isinstance(result, DocumentArray) and not result[0].tensor
    clip_scores = result["@m", "scores__clip_score__value"]
    cosines = result["@m", "scores__clip_score_cosine__value"]
    assert clip_scores and all(value is not None and value > 0 for value in clip_scores)
    assert all(value is not None for value in cosines)


@pytest.mark.anyio
async def test_aencode_keeps_the_callers_order_beside_other_tasks(client: Any) -> None:
    import asyncio

    inputs = DocumentArray([Document(id=str(i), text="hello, world") for i in range(20)])
    other = asyncio.create_task(asyncio.sleep(0.2))
    result = await client.aencode(inputs, batch_size=1)
    await other
    assert isinstance(result, DocumentArray)
    assert all(inputs[i] is result[i] and result[i].id == str(i) for i in range(20))


def test_the_guides_callbacks_with_strings(client: Any) -> None:
    """The client guide's callback example: a dict as the database, one count per request."""
    db: Dict[str, Any] = {}
    counts: List[int] = []

    def my_on_done(resp: Any) -> None:
        for doc in resp.docs:
            db[doc.id] = doc

    def my_on_always(resp: Any) -> None:
        counts.append(len(resp.docs))

    client.encode(["hello", "world"], on_done=my_on_done, on_error=lambda resp: None, on_always=my_on_always)
    assert len(db) == 2 and all(doc.embedding is not None for doc in db.values())
    assert counts == [2]


def test_a_glob_of_image_paths_as_the_guide_encodes_them(client: Any, tmp_path: pathlib.Path) -> None:
    from glob import iglob

    for index in range(3):
        (tmp_path / f"{index}.png").write_bytes(IMAGE)
    result = client.encode(iglob(str(tmp_path / "*.png")))
    rows = result if isinstance(client, aclip.Client) else result.embeddings  # README's migration table
    np.testing.assert_array_equal(np.asarray(rows), np.stack([expected_embedding(IMAGE)] * 3))
