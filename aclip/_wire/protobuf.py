"""Items <-> Jina DataRequest messages, and ndarray (de)serialisation. Pure functions, no I/O.

aclip builds and parses DataRequest messages itself, so gRPC and the reference server hand grpclib
ready-made bytes through :class:`RawBytesCodec` and take raw bytes back; WebSocket frames carry the same
bytes, and HTTP's JSON (:mod:`aclip._wire.json`) is converted from and to these messages.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import Struct
from grpclib.encoding.base import CodecBase

from .._exceptions import InputError, ProtocolError
from .._models import Document, Item, Kind, NamedScore
from .._pb.docarray_pb2 import DocumentProto as DocumentProto  # re-exported: the codec's message types
from .._pb.docarray_pb2 import NdArrayProto
from .._pb.jina_pb2 import DataRequestProto as DataRequestProto
from .._pb.jina_pb2 import StatusProto
from .status import ResponseStatus

_NUMERIC_KINDS = frozenset("biuf")


def parameters_struct(parameters: Optional[Mapping[str, Any]]) -> Optional[Struct]:
    """A caller's ``parameters`` dict as a protobuf Struct (numbers become floats, as on the real wire).

    The caller's dict is only read, never changed.
    """
    if not parameters:
        return None
    struct = Struct()
    for key, value in parameters.items():
        if not isinstance(key, str):
            raise InputError(f"parameters keys must be str, got {key!r}")
        try:
            _check_json_numbers(value)
            struct.update({key: value})
        except (ValueError, TypeError) as err:
            raise InputError(
                f"parameters[{key!r}] = {value!r} cannot be sent: values must be JSON-like "
                "(str, finite number, bool, None, list, dict)"
            ) from err
    return struct


def _check_json_numbers(value: Any) -> None:
    """ValueError for a NaN or an infinity anywhere in ``value``: JSON (HTTP, and Jina's reading of the
    Struct) has no such numbers."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
    elif isinstance(value, Mapping):
        for inner in value.values():
            _check_json_numbers(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            _check_json_numbers(inner)


def encode_ndarray(array: np.ndarray, target: NdArrayProto) -> None:
    """Write ``array`` into ``target`` as a dense C-order buffer with shape and numpy dtype string."""
    dense = target.dense
    dense.buffer = np.ascontiguousarray(array).tobytes()
    dense.shape.extend(array.shape)
    dense.dtype = array.dtype.str
    target.cls_name = "numpy"


@functools.lru_cache(maxsize=64)
def _dtype(name: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(name)
    except TypeError:
        raise ProtocolError(f"the server sent an array of unknown dtype {name!r}") from None
    if dtype.kind not in _NUMERIC_KINDS:
        raise ProtocolError(f"the server sent an array of non-numeric dtype {name!r}")
    return dtype


def decode_ndarray(proto: NdArrayProto, *, what: str) -> np.ndarray:
    """A read-only view on the message's array bytes, after checking dtype and shape against its length.

    ``what`` names the array in error messages (e.g. ``"the embedding of document 3"``).
    """
    content = proto.WhichOneof("content")
    if content != "dense":
        raise ProtocolError(f"{what} is a {content or 'empty'} array; only dense arrays are supported")
    dense = proto.dense
    dtype = _dtype(dense.dtype or "<f4")
    shape = tuple(dense.shape)
    buffer = dense.buffer
    expected = dtype.itemsize
    for size in shape:
        expected *= size
    if expected != len(buffer):
        raise ProtocolError(
            f"{what} does not fit its header: shape {list(shape)} of {dtype.str} needs {expected} bytes, "
            f"the buffer has {len(buffer)}"
        )
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


def check_embeddings(
    vectors: Sequence[np.ndarray], describe: Callable[[List[int]], str], *, out: Optional[np.ndarray] = None
) -> Optional[np.ndarray]:
    """Refuse embeddings no caller can use, checked once for a whole batch of 1-D ``vectors``.

    An embedding must be of a float dtype (an int, bool or complex one is no model's output: a server that
    sends one is broken) and finite once converted to float32, the type results come in: NaN and infinity,
    and a float64 beyond float32's range (1e300 becomes inf), would poison every similarity computed
    with it, silently. Either is a ProtocolError naming the offending vectors, as ``describe(indexes)``
    words them (e.g. the input positions). The common case costs a few set insertions per vector and one
    pass over the batch's numbers.

    Returns the vectors stacked into one [n, D] array: ``out`` (float32, written in place) when given,
    else a new writable array of their common dtype; None when their lengths differ (each was then
    checked on its own, and ``out`` is left alone).
    """
    if not vectors:
        return None
    dtype_lengths = {(vector.dtype, len(vector)) for vector in vectors}  # one pass over the vectors
    if any(dtype.kind != "f" for dtype, _ in dtype_lengths):
        bad = [index for index, vector in enumerate(vectors) if vector.dtype.kind != "f"]
        names = ", ".join(sorted({str(vectors[index].dtype) for index in bad}))
        raise ProtocolError(f"the server sent embeddings of dtype {names}, not a float type, for {describe(bad)}")
    lengths = {length for _, length in dtype_lengths}
    if len(lengths) > 1:
        for index, vector in enumerate(vectors):
            _check_finite(vector.reshape(1, -1), describe, [index])
        return None
    if out is not None and not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous, so that its flat view is no copy")
    if all(dtype == _FLOAT32 for dtype, _ in dtype_lengths):  # the common case: no conversion, nothing to overflow
        stacked = _stacked(vectors, lengths.pop(), out)
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow to inf is reported below instead
            stacked = _stacked(vectors, lengths.pop(), out)
    _check_finite(stacked, describe)
    return stacked


_FLOAT32 = np.dtype(np.float32)


def _stacked(vectors: Sequence[np.ndarray], length: int, out: Optional[np.ndarray]) -> np.ndarray:
    if out is None:
        return np.concatenate(vectors).reshape(len(vectors), length)
    np.concatenate(vectors, out=out.reshape(-1))
    return out


def _check_finite(
    rows: np.ndarray, describe: Callable[[List[int]], str], indexes: Optional[Sequence[int]] = None
) -> None:
    """ProtocolError unless every row is finite as float32; ``indexes`` are the rows' own, for ``describe``."""
    if rows.dtype != _FLOAT32:
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 becomes inf: refused below, not warned about
            rows = rows.astype(np.float32)
    if np.isfinite(rows).all():
        return
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1)).tolist()
    if indexes is not None:
        bad = [indexes[row] for row in bad]
    raise ProtocolError(
        f"the server sent embeddings that are not finite as float32 (NaN or infinity) for {describe(bad)}"
    )


def build_request(
    *,
    request_id: str,
    endpoint: str,
    parameters: Optional[Struct],
    items: Sequence[Item],
    ids: Iterable[str],
) -> DataRequestProto:
    """One batch as a DataRequest message: header (request id, endpoint), parameters, documents."""
    request = DataRequestProto()
    header = request.header
    header.request_id = request_id
    header.exec_endpoint = endpoint
    if parameters is not None:
        request.parameters.CopyFrom(parameters)
    docs = request.data.docs.docs
    for item, doc_id in zip(items, ids):
        _write_item(item, doc_id, docs.add())
    return request


def _write_item(item: Item, doc_id: str, doc: DocumentProto) -> None:
    doc.id = doc_id
    kind = item.kind
    if kind == Kind.TEXT:
        doc.text = item.payload  # type: ignore[assignment]
    elif kind == Kind.BLOB:
        doc.blob = item.payload  # type: ignore[assignment]
    elif kind == Kind.TENSOR:
        encode_ndarray(item.payload, doc.tensor)  # type: ignore[arg-type]
    elif kind in (Kind.LOCAL_FILE, Kind.DATA_URI):
        raise AssertionError("load_batch() must run before build_request()")
    if item.uri:
        doc.uri = item.uri
    if item.mime_type:
        doc.mime_type = item.mime_type
    if item.tags:
        try:
            doc.tags.update(item.tags)
        except (ValueError, TypeError) as err:
            raise InputError(f"Document.tags of id {doc_id!r} must be JSON-like: {err}") from err
    for match_id, match in item.matches:
        match_doc = doc.matches.add()
        _write_item(match, match_id, match_doc)
        match_doc.adjacency = 1  # one hop from its root, as Jina marks matches


def document_from_proto(doc: DocumentProto, *, doc_id: Optional[str] = None, name: str = "") -> Document:
    """A new Document from a message: content, embedding (a writable copy), tags, scores and matches.

    ``doc_id`` is the id it gets instead of the message's (the caller's own, where aclip's was on the
    wire); ``name`` says which document error messages are about (default: its id). An embedding that
    :func:`check_embeddings` refuses is a ProtocolError.
    """
    name = name or repr(doc.id)
    content = doc.WhichOneof("content")
    result = Document(
        id=doc.id if doc_id is None else doc_id,
        text=doc.text if content == "text" else None,
        blob=doc.blob if content == "blob" else None,
        tensor=decode_ndarray(doc.tensor, what=f"the tensor of {name}").copy() if content == "tensor" else None,
        uri=doc.uri or None,
        mime_type=doc.mime_type,
    )
    if doc.HasField("embedding"):
        result.embedding = _checked_embedding(doc, name)
    if doc.HasField("tags"):
        result.tags = json_format.MessageToDict(doc.tags)
    for score_name, score in doc.scores.items():
        result.scores[score_name] = NamedScore(score.value, score.op_name, score.description, score.ref_id)
    result.matches.extend(document_from_proto(match) for match in doc.matches)
    return result


def foreign_document_from_proto(factory: Callable[[], Any], doc: DocumentProto, *, doc_id: Optional[str] = None) -> Any:
    """A new document of a caller's own type (docarray's, say), filled through its attributes.

    ``factory()`` makes an empty one; only the attributes it has are set (a duck-typed class without
    ``mime_type`` or ``scores`` just does not get them). Scores go through ``doc.scores[name]`` when that
    mapping makes its own score objects (docarray's does), else are set as :class:`NamedScore`.
    ``doc_id`` is the id it gets instead of the message's.
    """
    result = factory()
    _set_present(result, "id", doc.id if doc_id is None else doc_id)
    content = doc.WhichOneof("content")
    if content == "text":
        _set_present(result, "text", doc.text)
    elif content == "blob":
        _set_present(result, "blob", doc.blob)
    elif content == "tensor" and hasattr(result, "tensor"):
        result.tensor = decode_ndarray(doc.tensor, what=f"the tensor of {doc.id!r}").copy()
    if doc.uri:
        _set_present(result, "uri", doc.uri)
    if doc.mime_type:
        _set_present(result, "mime_type", doc.mime_type)
    if doc.HasField("embedding"):
        _set_present(result, "embedding", _checked_embedding(doc, repr(doc.id)))
    if doc.HasField("tags"):
        _set_present(result, "tags", json_format.MessageToDict(doc.tags))
    scores = getattr(result, "scores", None)
    if scores is not None:
        _fill_scores(scores, doc)
    if doc.matches:
        _set_present(result, "matches", [foreign_document_from_proto(factory, match) for match in doc.matches])
    return result


def _fill_scores(scores: Any, doc: DocumentProto) -> None:
    """Copy the message's scores into a caller's ``scores`` mapping."""
    for name, score in doc.scores.items():
        if hasattr(scores, "__missing__"):  # a defaultdict of the caller's own score type
            slot = scores[name]
            slot.value, slot.op_name = score.value, score.op_name
            if score.description:
                slot.description = score.description
            if score.ref_id:
                slot.ref_id = score.ref_id
        else:
            scores[name] = NamedScore(score.value, score.op_name, score.description, score.ref_id)


def _set_present(target: Any, name: str, value: Any) -> None:
    """Set an attribute the object has; one it lacks is left out (it is optional for a document-like)."""
    if hasattr(target, name):
        setattr(target, name, value)


def _checked_embedding(doc: DocumentProto, name: str) -> np.ndarray:
    """A writable copy of the document's embedding, refused as :func:`check_embeddings` refuses one."""
    vector = decode_ndarray(doc.embedding, what=f"the embedding of {name}")
    check_embeddings([vector.reshape(-1)], lambda _: f"the embedding of {name}")
    return vector.copy()


def parse_response(data: bytes) -> DataRequestProto:
    """Parse a serialised DataRequest answer; undecodable bytes are a ProtocolError."""
    try:
        response = DataRequestProto.FromString(data)
    except DecodeError as err:
        raise ProtocolError(f"the server sent a message that is not a DataRequest ({len(data)} bytes): {err}") from err
    if response.data.WhichOneof("documents") == "docs_bytes":
        raise ProtocolError("the server sent its documents as docs_bytes, which aclip does not read")
    return response


def executor_failure(response: DataRequestProto) -> Optional[ResponseStatus]:
    """None when the response reports success, else the executor's exception name, message and executor."""
    status = response.header.status
    if status.code != StatusProto.ERROR:
        return None
    exception = status.exception
    description = status.description or "; ".join(exception.args)
    return ResponseStatus(exception.name, description, exception.executor)


#: The bidirectional streaming method every Jina gateway serves.
JINA_CALL = "/jina.JinaRPC/Call"


#: The gateway's readiness probe: unary, ``google.protobuf.Empty`` in, ``jina.StatusProto`` out.
JINA_DRY_RUN = "/jina.JinaGatewayDryRunRPC/dry_run"


class RawBytesCodec(CodecBase):
    """Messages are ``bytes`` on both sides; content type ``application/grpc`` as protobuf uses."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        if not isinstance(message, (bytes, bytearray, memoryview)):
            raise TypeError(f"RawBytesCodec sends bytes, got {type(message).__name__}")
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> bytes:
        return bytes(data)
