"""The codec: requests built from items, arrays checked on the way in, parameters left untouched."""

from __future__ import annotations

import numpy as np
import pytest

from aclip import InputError, ProtocolError
from aclip._engine.inputs import Item, Kind
from aclip._pb.docarray_pb2 import NdArrayProto
from aclip._pb.jina_pb2 import DataRequestProto
from aclip._wire.protobuf import build_request, decode_ndarray, encode_ndarray, parameters_struct, parse_response


def test_request_carries_header_parameters_and_every_kind_of_item() -> None:
    tensor = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    items = [
        Item(Kind.TEXT, "hello", "", ""),
        Item(Kind.BLOB, b"\x89PNG...", "a.png", "image/png"),
        Item(Kind.TENSOR, tensor, "", ""),
        Item(Kind.REMOTE_URI, None, "https://example.com/x.jpg", "image/jpeg"),
        Item(Kind.EMPTY, None, "", ""),
        Item(Kind.TEXT, "tagged", "", "", tags={"k": "v", "n": 2}),
    ]
    request = build_request(
        request_id="r1",
        endpoint="/encode",
        parameters=parameters_struct({"drop_image_content": True, "limit": 3}),
        items=items,
        ids=["a", "b", "c", "d", "", "a"],
    )
    assert request.header.request_id == "r1" and request.header.exec_endpoint == "/encode"
    assert request.parameters.fields["drop_image_content"].bool_value is True
    assert request.parameters.fields["limit"].number_value == 3.0
    docs = request.data.docs.docs
    assert [d.id for d in docs] == ["a", "b", "c", "d", "", "a"]
    assert [d.WhichOneof("content") for d in docs] == ["text", "blob", "tensor", None, None, "text"]
    assert (docs[1].uri, docs[1].mime_type) == ("a.png", "image/png")
    np.testing.assert_array_equal(decode_ndarray(docs[2].tensor, what="t"), tensor)
    assert docs[2].tensor.dense.dtype == "|u1"
    assert docs[3].uri == "https://example.com/x.jpg"
    assert docs[5].tags.fields["n"].number_value == 2.0


def test_parameters_dict_is_not_changed() -> None:
    parameters = {"drop_image_content": False, "nested": {"a": [1, 2]}}
    snapshot = {"drop_image_content": False, "nested": {"a": [1, 2]}}
    struct = parameters_struct(parameters)
    assert (
        struct is not None and struct.fields["nested"].struct_value.fields["a"].list_value.values[1].number_value == 2
    )
    assert parameters == snapshot


def test_unserialisable_parameter_names_the_key() -> None:
    with pytest.raises(InputError, match="parameters\\['when'\\]"):
        parameters_struct({"when": object()})


@pytest.mark.parametrize("dtype", ["<f4", "<f2", "<f8", "|u1", "<i8"])
def test_ndarray_round_trip(dtype: str) -> None:
    array = (np.arange(12) * 3).astype(dtype).reshape(3, 4)
    proto = NdArrayProto()
    encode_ndarray(array, proto)
    decoded = decode_ndarray(proto, what="x")
    assert decoded.dtype == np.dtype(dtype) and decoded.shape == (3, 4)
    np.testing.assert_array_equal(decoded, array)


def malformed(buffer: bytes, shape: list[int], dtype: str) -> NdArrayProto:
    proto = NdArrayProto()
    proto.dense.buffer = buffer
    proto.dense.shape.extend(shape)
    proto.dense.dtype = dtype
    return proto


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        (malformed(b"\x00" * 10, [512], "<f4"), "needs 2048 bytes, the buffer has 10"),
        (malformed(b"\x00" * 8, [2], "no-such-dtype"), "unknown dtype"),
        (malformed(b"\x00" * 8, [2], "<U1"), "non-numeric dtype"),
        (NdArrayProto(), "empty array"),
    ],
)
def test_malformed_arrays_are_protocol_errors(proto: NdArrayProto, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_ndarray(proto, what="the embedding of input 7")


def test_sparse_arrays_are_refused() -> None:
    proto = NdArrayProto()
    proto.sparse.shape.append(3)
    with pytest.raises(ProtocolError, match="sparse"):
        decode_ndarray(proto, what="e")


def test_garbage_bytes_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not a DataRequest"):
        parse_response(b"\xff\xff\xff\xff garbage")


def test_docs_bytes_answers_are_refused() -> None:
    response = DataRequestProto()
    response.data.docs_bytes = b"\x01"
    with pytest.raises(ProtocolError, match="docs_bytes"):
        parse_response(response.SerializeToString())


def test_decoded_embedding_is_a_view_on_the_message_bytes() -> None:
    proto = NdArrayProto()
    encode_ndarray(np.ones(4, dtype=np.float32), proto)
    view = decode_ndarray(proto, what="e")
    assert not view.flags.writeable  # zero-copy; callers copy once into their result
