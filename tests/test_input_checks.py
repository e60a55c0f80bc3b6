"""Inputs the wire cannot carry are InputErrors naming their position, raised before their batch is sent.

Each case goes end to end through ``AsyncClient.aencode`` against the reference server, on every protocol:
HTTP builds its JSON from the same protobuf message, so a check that runs before the codec covers both.
Also the document-like protocol: what an object must have to be taken as a Document, checked up front.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, Dict, List, Optional

import numpy as np
import pytest

from aclip import AsyncClient, Document, InputError, InputTypeError
from aclip.testing import ReferenceServer
from tests.conftest import Endpoint
from tests.helpers import expected_text, png_bytes

pytestmark = pytest.mark.anyio


async def refused(
    server: ReferenceServer, endpoint: Endpoint, inputs: Any, *, batch_size: int = 8, sent_at_most: int = 0
) -> InputError:
    """The InputError ``aencode(inputs)`` raises, after checking that at most ``sent_at_most`` requests went out."""
    before = server.stats.requests_received
    async with endpoint.async_client(max_retries=0) as client:
        with pytest.raises(InputError) as raised:
            await client.aencode(inputs, batch_size=batch_size)
    assert server.stats.requests_received - before <= sent_at_most
    return raised.value


# -- lone surrogates (item 11): UTF-8 cannot encode them, so neither protobuf nor JSON can carry them ---------


@pytest.mark.parametrize("text", ["caf\udce9", "\ud83d cut emoji", "a\udfff"])
async def test_a_string_with_a_lone_surrogate_is_refused_before_anything_is_sent(
    server: ReferenceServer, plain_endpoint: Endpoint, text: str
) -> None:
    error = await refused(server, plain_endpoint, ["fine", "ça va", text])
    assert not isinstance(error, UnicodeError)
    assert error.position == 2
    assert "input 2" in str(error) and "lone surrogate" in str(error) and "errors='replace'" in str(error)


async def test_a_surrogate_in_a_later_batch_stops_the_call_before_that_batch(
    server: ReferenceServer, plain_endpoint: Endpoint
) -> None:
    inputs = [f"sentence {i}" for i in range(4)] + ["bad \udc80", "never sent"]
    error = await refused(server, plain_endpoint, inputs, batch_size=2, sent_at_most=2)
    assert error.position == 4


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (Document(text="caf\udce9"), "Document.text"),
        (Document(uri="photo\udc80.png"), "Document.uri"),
        (Document(text="ok", id="id\ud800"), "Document.id"),
        (Document(text="ok", tags={"caption": "caf\udce9"}), "Document.tags['caption']"),
        (Document(text="ok", tags={"caf\udce9": 1}), "Document.tags"),
    ],
)
async def test_a_document_with_a_lone_surrogate_is_refused_before_anything_is_sent(
    server: ReferenceServer, plain_endpoint: Endpoint, document: Document, field: str
) -> None:
    error = await refused(server, plain_endpoint, [Document(text="fine"), document])
    assert error.position == 1 and field in str(error) and "lone surrogate" in str(error)


# -- a NUL in an image path (item 11): os.open raises a bare ValueError for it ---------------------------------


async def test_a_nul_in_an_image_path_is_an_input_error_with_its_position(
    server: ReferenceServer, plain_endpoint: Endpoint
) -> None:
    error = await refused(server, plain_endpoint, ["a photo of a cat", "cat\x00.png"])
    assert error.position == 1 and "not a usable path" in str(error)
    error = await refused(server, plain_endpoint, [Document(text="ok"), Document(text="ok"), Document(uri="x\x00")])
    assert error.position == 2


# -- a ragged tensor (item 11): numpy raises a bare ValueError for nested lists of different lengths ------------


async def test_a_ragged_nested_list_tensor_is_refused_before_anything_is_sent(
    server: ReferenceServer, plain_endpoint: Endpoint
) -> None:
    ragged = [[[0, 0, 0], [1, 1, 1]], [[2, 2, 2]]]
    error = await refused(server, plain_endpoint, [Document(text="ok"), Document(tensor=ragged)])  # type: ignore[arg-type]
    assert error.position == 1 and "Document.tensor" in str(error) and "rectangular" in str(error)


async def test_a_rectangular_nested_list_tensor_still_works(plain_endpoint: Endpoint) -> None:
    nested = [[[0, 10, 20], [30, 40, 50]], [[60, 70, 80], [90, 100, 110]]]
    async with plain_endpoint.async_client() as client:
        [doc] = await client.aencode([Document(tensor=np.asarray(nested))])
    assert doc.embedding is not None and doc.embedding.shape == (512,)


# -- tags JSON cannot carry (item 11): the protobuf Struct refuses some, and Jina reads tags as JSON ----------


class Opaque:
    pass


@pytest.mark.parametrize(
    ("tags", "where", "hint"),
    [
        ({"labels": {"cat", "dog"}}, "Document.tags['labels']", "list"),
        ({"raw": b"\x89PNG"}, "Document.tags['raw']", "decode"),
        ({"owner": Opaque()}, "Document.tags['owner']", "JSON values"),
        ({"score": math.nan}, "Document.tags['score']", "NaN"),
        ({"score": -math.inf}, "Document.tags['score']", "Infinity"),
        ({"score": np.float32(0.5)}, "Document.tags['score']", ".item()"),
        ({"box": np.zeros(4)}, "Document.tags['box']", ".tolist()"),
        ({"meta": {"sizes": [1, 2, {3, 4}]}}, "Document.tags['meta']['sizes'][2]", "list"),
        ({"meta": {7: "seven"}}, "Document.tags['meta']", "keys must be str"),
        ({"huge": 10**400}, "Document.tags['huge']", "as a str"),
    ],
)
async def test_tags_that_json_cannot_carry_are_refused_naming_position_and_key(
    server: ReferenceServer, plain_endpoint: Endpoint, tags: Dict[str, Any], where: str, hint: str
) -> None:
    docs = [Document(text="ok", tags={"fine": [1, 2.5, None, True, {"x": "y"}]}), Document(text="bad", tags=tags)]
    error = await refused(server, plain_endpoint, docs)
    assert error.position == 1
    assert f"input 1: {where}" in str(error) and hint in str(error)


async def test_tags_that_are_not_a_dict_are_refused(server: ReferenceServer, plain_endpoint: Endpoint) -> None:
    error = await refused(server, plain_endpoint, [Document(text="ok", tags=["a", "b"])])  # type: ignore[arg-type]
    assert isinstance(error, InputTypeError) and error.position == 0 and "Document.tags must be a dict" in str(error)


async def test_json_tags_still_go_through(plain_endpoint: Endpoint) -> None:
    tags = {"n": 3, "x": 0.5, "ok": True, "none": None, "list": [1, "a", (2, 3)], "nested": {"deep": {"k": "v"}}}
    async with plain_endpoint.async_client() as client:
        [doc] = await client.aencode([Document(text="tagged", tags=tags)])
    assert doc.embedding is not None and doc.tags == tags  # the caller's tags are left as they were


# -- other fields of the wrong type: checked up front, not a TypeError from protobuf mid-call ---------------


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (Document(text="ok", id=7), "Document.id must be a str"),  # type: ignore[arg-type]
        (Document(text="ok", mime_type=b"text/plain"), "Document.mime_type must be a str"),  # type: ignore[arg-type]
        (Document(uri=pathlib.Path("cat.png")), "Document.uri must be a str"),  # type: ignore[arg-type]
    ],
)
async def test_fields_of_the_wrong_type_are_refused_before_their_batch(
    server: ReferenceServer, plain_endpoint: Endpoint, document: Document, field: str
) -> None:
    docs = [Document(text="first"), Document(text="second"), document]
    error = await refused(server, plain_endpoint, docs, batch_size=2, sent_at_most=1)
    assert isinstance(error, InputTypeError) and error.position == 2 and field in str(error)


# -- the document-like protocol (item 12) -------------------------------------------------------------------


class Note:
    """Document-like with the least it needs: a content attribute and ``embedding``; slots, so nothing else."""

    __slots__ = ("embedding", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.embedding: Optional[np.ndarray] = None


class Picture:
    """Document-like image without ``mime_type``, ``id`` or ``tags``; docarray-style empty values."""

    __slots__ = ("blob", "embedding", "text")

    def __init__(self, blob: bytes) -> None:
        self.text = ""  # docarray v1: an empty value means unset
        self.blob = blob
        self.embedding: Optional[np.ndarray] = None


async def test_document_like_objects_without_mime_type_get_their_embeddings(plain_endpoint: Endpoint) -> None:
    image = png_bytes(seed=21)
    cat, picture, dog = Note("a cat"), Picture(image), Note("a dog")
    inputs: List[Any] = [cat, picture, dog]
    async with plain_endpoint.async_client() as client:
        result = await client.aencode(inputs, batch_size=1)
    assert list(result) == inputs
    np.testing.assert_array_equal(cat.embedding, expected_text("a cat"))
    assert picture.embedding is not None and picture.embedding.shape == (512,)
    np.testing.assert_array_equal(dog.embedding, expected_text("a dog"))
    assert not hasattr(cat, "mime_type")  # nothing but embedding is set


async def test_an_object_with_content_but_no_embedding_attribute_is_refused_with_the_fix(
    server: ReferenceServer, plain_endpoint: Endpoint
) -> None:
    class Caption:
        def __init__(self, text: str) -> None:
            self.text = text

    error = await refused(server, plain_endpoint, [Note("ok"), Caption("no embedding")])
    assert isinstance(error, InputTypeError) and error.position == 1 and "`embedding` attribute" in str(error)


async def test_a_document_like_object_with_a_bad_field_is_refused_before_its_batch(
    server: ReferenceServer, grpc_url: str
) -> None:
    class Odd:
        def __init__(self, uri: object) -> None:
            self.uri, self.embedding = uri, None

    before = server.stats.requests_received
    async with AsyncClient(grpc_url, max_retries=0) as client:
        with pytest.raises(InputTypeError, match=r"input 1: Document.uri must be a str, not int") as raised:
            await client.aencode([Note("ok"), Odd(42)])  # type: ignore[list-item]
    assert raised.value.position == 1 and server.stats.requests_received == before


# -- parameters: the same JSON rule as tags (HTTP used to fail with a raw ValueError while serialising) -------


@pytest.mark.parametrize("value", [math.nan, math.inf, {"deep": [1.0, -math.inf]}])
async def test_parameters_json_cannot_carry_are_refused_before_anything_is_sent(
    server: ReferenceServer, plain_endpoint: Endpoint, value: Any
) -> None:
    before = server.stats.requests_received
    async with plain_endpoint.async_client(max_retries=0) as client:
        with pytest.raises(InputError, match=r"parameters\['threshold'\] = .* cannot be sent"):
            await client.aencode(["ok"], parameters={"threshold": value})
    assert server.stats.requests_received == before
