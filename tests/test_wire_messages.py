"""Our generated protobuf layer reads the real gateway's captured messages field by field."""

from __future__ import annotations

import pathlib

import numpy as np

from aclip._pb.jina_pb2 import DataRequestProto, StatusProto
from aclip._wire.protobuf import decode_ndarray, executor_failure, parse_response
from tests.helpers import expected_embedding, expected_tensor

DATA = pathlib.Path(__file__).parent / "data" / "grpc"


def load(name: str) -> DataRequestProto:
    return parse_response((DATA / name).read_bytes())


def test_encode_request_from_the_upstream_client() -> None:
    request = load("encode.Call.request0.bin")
    assert request.header.request_id == "87c9b3d4524643cda41d2e97f65fec3c"
    assert request.header.exec_endpoint == "/encode"
    assert request.parameters.fields["drop_image_content"].bool_value is True
    text, image = request.data.docs.docs
    assert (text.id, text.text, text.WhichOneof("content")) == (
        "df5f2079a4b93a272722c057107fa95f",
        "hello, world",
        "text",
    )
    assert image.WhichOneof("content") == "blob"
    assert image.blob.startswith(b"\xff\xd8\xff\xe0") and len(image.blob) == 22577
    assert (image.uri, image.mime_type) == ("img/00000.jpg", "image/jpeg")


def test_encode_response_routes_and_embeddings() -> None:
    request = load("encode.Call.request0.bin")
    response = load("encode.Call.response0.bin")
    assert response.header.request_id == request.header.request_id
    assert response.header.target_executor == ""
    assert [route.executor for route in response.routes] == ["gateway", "clip_t"]
    gateway, executor = response.routes
    assert gateway.start_time.ToNanoseconds() <= executor.start_time.ToNanoseconds()
    assert executor.end_time.ToNanoseconds() <= gateway.end_time.ToNanoseconds()
    text, image = response.data.docs.docs
    assert text.mime_type == "text/plain"
    assert not image.HasField("blob") and image.uri == "img/00000.jpg"  # drop_image_content
    for doc, payload in ((text, b"hello, world"), (image, request.data.docs.docs[1].blob)):
        assert doc.embedding.cls_name == "numpy"
        assert list(doc.embedding.dense.shape) == [512] and doc.embedding.dense.dtype == "<f4"
        vector = decode_ndarray(doc.embedding, what="embedding")
        np.testing.assert_array_equal(vector, expected_embedding(payload))


def test_encode_documents_with_tags_blob_and_tensor() -> None:
    request = load("encode_docs.Call.request0.bin")
    response = load("encode_docs.Call.response0.bin")
    assert request.parameters.fields["drop_image_content"].bool_value is False
    text, blob, tensor = request.data.docs.docs
    assert text.tags.fields["k"].string_value == "v"
    assert blob.mime_type == "image/png" and blob.blob.startswith(b"\x89PNG")
    array = decode_ndarray(tensor.tensor, what="tensor")
    assert array.shape == (4, 4, 3) and array.dtype == np.uint8
    np.testing.assert_array_equal(array.ravel(), np.arange(48, dtype=np.uint8))
    answered = response.data.docs.docs
    assert [doc.id for doc in answered] == [doc.id for doc in request.data.docs.docs]
    assert answered[0].tags.fields["k"].string_value == "v"
    assert answered[1].blob == blob.blob  # kept: drop_image_content was false
    np.testing.assert_array_equal(decode_ndarray(answered[2].embedding, what="e"), expected_tensor(array))


def test_executor_failure_is_read_from_the_header() -> None:
    response = load("grpc_executor_exception.Call.response0.bin")
    assert response.header.status.code == StatusProto.ERROR
    failure = executor_failure(response)
    assert failure is not None
    assert failure.name == "UnidentifiedImageError"
    assert failure.executor == "FakeCLIP"
    assert "cannot identify image file" in failure.description
    assert all(not doc.HasField("embedding") for doc in response.data.docs.docs)


def test_document_without_content_gets_no_embedding() -> None:
    response = load("grpc_empty_doc.Call.response0.bin")
    assert executor_failure(response) is None
    (doc,) = response.data.docs.docs
    assert doc.id and not doc.HasField("embedding")
