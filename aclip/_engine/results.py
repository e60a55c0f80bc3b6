"""Placing answers where they belong: by the position the client assigned, never by the caller's ids.

:class:`ResultHandler` is where a call's answers go. :class:`ArrayCollector` builds the [N, D] float32
array of a strings-in call; :class:`DocumentCollector` sets ``.embedding`` on the caller's own Documents;
:class:`ForwardAnswers` hands each answer to a function; :func:`answer_documents` gives callbacks new
Documents. Answers are checked once per batch, never per document:

- where aclip chose the documents' wire ids (:class:`~aclip._engine.batches.ChosenIds`), the answer must carry
  them back in the order sent (:func:`check_answer_ids`): a server that reorders a batch would otherwise
  give misplaced rows without an error;
- every embedding must be of a float dtype and finite as float32 (:func:`~aclip._wire.protobuf.check_embeddings`).

Either failure is a ProtocolError naming the input positions. Where aclip's ids were on the wire the
caller's own come back: the caller's Documents never lose theirs, and new Documents (rank's matches,
callbacks' ``Response.docs``) get the caller's ids, not aclip's.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, cast

import numpy as np

from .._exceptions import MissingEmbeddingError, ProtocolError, describe_positions
from .._models import Document, DocumentList, Part
from .._wire.protobuf import (
    DataRequestProto,
    DocumentProto,
    check_embeddings,
    decode_ndarray,
    document_from_proto,
    foreign_document_from_proto,
)
from .._wire.status import ResponseStatus
from .batches import Batch, ChosenIds
from .inputs import docarray_results


class ResultHandler:
    """Where a call's answers go: the engine hands it each answered batch once, in arrival order.

    :meth:`answered` may return an awaitable (a coroutine callback, a send into a bounded stream), which the
    engine awaits before it frees the batch's window slot. A batch the server's executor failed on ends the
    call with its ServerError, unless :attr:`takes_failures` (on_error or on_always given): then it goes to
    :meth:`failed`, with the failure's status parsed once.
    """

    takes_failures = False

    def answered(self, batch: Batch, message: DataRequestProto, docs: List[DocumentProto]) -> Optional[Awaitable[None]]:
        raise NotImplementedError

    def failed(self, batch: Batch, message: DataRequestProto, status: ResponseStatus) -> Optional[Awaitable[None]]:
        """Note that ``batch`` got no results; what else happens is the callbacks' to say."""
        return None


class ForwardAnswers(ResultHandler):
    """Each answered batch to a function: ``aencode_iter``'s parts, ``profile``'s routes.

    Example::

        routes = []
        handler = ForwardAnswers(lambda batch, message, docs: routes.extend(message.routes))
    """

    def __init__(
        self, forward: Callable[[Batch, DataRequestProto, List[DocumentProto]], Optional[Awaitable[None]]]
    ) -> None:
        self._forward = forward

    def answered(self, batch: Batch, message: DataRequestProto, docs: List[DocumentProto]) -> Optional[Awaitable[None]]:
        return self._forward(batch, message, docs)


def check_answer_ids(batch: Batch, docs: Sequence[DocumentProto]) -> None:
    """ProtocolError unless the answer's documents carry the wire ids aclip chose, in the order sent.

    One list comparison per batch. Where the caller's own ids went on the wire (index), there is nothing
    to check them against: a server may give a document without an id one of its own, and answers are
    matched by position.
    """
    sent = batch.ids
    if not isinstance(sent, ChosenIds):
        return
    answered = [doc.id for doc in docs]
    if answered == sent:
        return
    offset = next((o for o, (got, wanted) in enumerate(zip(answered, sent)) if got != wanted), len(sent))
    if offset >= min(len(answered), len(sent)):
        found = f"{len(answered)} documents for {len(sent)} inputs"
    else:
        other = {wire_id: o for o, wire_id in enumerate(sent)}.get(answered[offset])
        found = (
            f"input {batch.start + offset} got the document sent for input {batch.start + other}"
            if other is not None
            else f"input {batch.start + offset} got a document of id {answered[offset]!r}, which aclip did not send"
        )
    raise ProtocolError(
        f"the server's answer for inputs {_span(batch.positions)} does not hold the documents sent, in the "
        f"order sent ({found}); aclip refuses it rather than place results on the wrong inputs"
    )


def _span(positions: Sequence[int]) -> str:
    return f"{positions[0]}..{positions[-1]}" if positions else "(none)"


def _embedding(doc: DocumentProto, position: int) -> Optional[np.ndarray]:
    if not doc.HasField("embedding"):
        return None
    vector = decode_ndarray(doc.embedding, what=f"the embedding of input {position}")
    if vector.ndim != 1:
        raise ProtocolError(f"the embedding of input {position} has shape {list(vector.shape)}, expected one axis")
    return vector


def _checked(
    vectors: Sequence[np.ndarray], positions: Sequence[int], out: Optional[np.ndarray] = None
) -> Optional[np.ndarray]:
    """The vectors stacked after :func:`check_embeddings` (into ``out`` if given); None when lengths differ."""
    return check_embeddings(vectors, lambda bad: f"inputs {describe_positions([positions[i] for i in bad])}", out=out)


def _float32_rows(
    vectors: Sequence[np.ndarray], positions: Sequence[int], out: Optional[np.ndarray] = None
) -> np.ndarray:
    """The checked vectors as one float32 [n, D] array (``out`` if given); ProtocolError when lengths differ."""
    stacked = _checked(vectors, positions, out)
    if stacked is None:
        raise ProtocolError(f"the embeddings of inputs {_span(positions)} differ in length")
    return stacked.astype(np.float32, copy=False)


def embedding_rows(batch: Batch, docs: List[DocumentProto]) -> np.ndarray:
    """One answered batch's embeddings as a float32 array, or MissingEmbeddingError naming the gaps."""
    vectors = [_embedding(doc, batch.start + offset) for offset, doc in enumerate(docs)]
    missing = [batch.start + offset for offset, vector in enumerate(vectors) if vector is None]
    if missing:
        raise MissingEmbeddingError(missing, total=len(docs))
    if not vectors:
        return np.empty((0, 0), dtype=np.float32)
    return _float32_rows(cast(List[np.ndarray], vectors), batch.positions)


class ArrayCollector(ResultHandler):
    """Collects one embedding row per input into a float32 array, each row written at its final position.

    With a known input length the array is allocated once, at the first embedding. Otherwise rows go into
    chunks of :attr:`CHUNK_ROWS` rows (large enough to be their own memory mappings), joined at the end
    chunk by chunk, each freed as it is copied: the resident peak stays near one result array. A batch's
    rows are checked together and written as a block.
    """

    CHUNK_ROWS = 4096

    def __init__(self, total: Optional[int]) -> None:
        self._total = total
        self._base = total or 0  # positions from here on go into chunks
        self._dim: Optional[int] = None
        self._array: Optional[np.ndarray] = None
        self._chunks: Dict[int, np.ndarray] = {}
        self._count = 0
        self._missing: List[int] = []

    def answered(self, batch: Batch, message: DataRequestProto, docs: List[DocumentProto]) -> None:
        vectors = [_embedding(doc, batch.start + offset) for offset, doc in enumerate(docs)]
        missing = [batch.start + offset for offset, vector in enumerate(vectors) if vector is None]
        if not missing:
            if vectors:
                self._write(batch.start, cast(List[np.ndarray], vectors))
        else:  # rare: a server leaves out empty texts; the others are placed one by one
            present = [(batch.start + offset, vector) for offset, vector in enumerate(vectors) if vector is not None]
            if present:
                rows = _float32_rows([vector for _, vector in present], [position for position, _ in present])
                for (position, _), row in zip(present, rows):
                    self._place(position, row[np.newaxis])
            self._missing.extend(missing)
        self._count += len(docs)

    def failed(self, batch: Batch, message: DataRequestProto, status: ResponseStatus) -> None:
        """A batch the server failed on (and on_error took): its positions have no embedding."""
        self._count += len(batch.ids)
        self._missing.extend(batch.positions)

    def _write(self, start: int, vectors: List[np.ndarray]) -> None:
        """Check a whole batch's vectors and write them at positions ``start``, ``start + 1``, ...

        Straight into their block of the result array (or chunk), unless they straddle two chunks.
        """
        positions = range(start, start + len(vectors))
        block = self._block(start, len(vectors), self._checked_dim(start, len(vectors[0])))
        if len(block) == len(vectors):
            _float32_rows(vectors, positions, out=block)
        else:
            self._place(start, _float32_rows(vectors, positions))

    def _checked_dim(self, position: int, dim: int) -> int:
        if self._dim is None:
            self._dim = dim
        elif dim != self._dim:
            raise ProtocolError(f"the embedding of input {position} has {dim} values, earlier ones {self._dim}")
        return dim

    def _place(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` at positions ``start``, ``start + 1``, ... (the result array, or the chunks)."""
        dim = self._checked_dim(start, rows.shape[1])
        done = 0
        while done < len(rows):
            block = self._block(start + done, len(rows) - done, dim)
            block[...] = rows[done : done + len(block)]
            done += len(block)

    def _block(self, position: int, count: int, dim: int) -> np.ndarray:
        """Up to ``count`` rows from ``position`` on that lie in one array (the result array, or one chunk)."""
        if position < self._base:
            if self._array is None:
                self._array = np.empty((self._base, dim), dtype=np.float32)
            return self._array[position : min(position + count, self._base)]
        index, row = divmod(position - self._base, self.CHUNK_ROWS)
        chunk = self._chunks.get(index)
        if chunk is None:
            chunk = self._chunks[index] = np.empty((self.CHUNK_ROWS, dim), dtype=np.float32)
        return chunk[row : row + count]

    def partial(self) -> tuple[np.ndarray, List[int]]:
        """The [N, D] array with NaN rows where no embedding came, and those positions."""
        missing, self._missing = sorted(self._missing), []
        array = self.result()
        if missing and array.shape[1]:
            array[missing] = np.nan
        return array, missing

    def result(self) -> np.ndarray:
        """The [N, D] array, or MissingEmbeddingError naming the inputs that got no embedding."""
        if self._missing:
            self._missing.sort()
            raise MissingEmbeddingError(self._missing, total=self._count)
        dim = self._dim or 0
        if not self._chunks:
            if self._array is None:
                return np.empty((self._count, dim), dtype=np.float32)
            return self._array if self._count == self._base else self._array[: self._count]
        joined = np.empty((self._count, dim), dtype=np.float32)  # its pages are committed as they are written
        if self._array is not None:
            joined[: self._base] = self._array
            self._array = None
        for index in sorted(self._chunks):
            chunk = self._chunks.pop(index)
            start = self._base + index * self.CHUNK_ROWS
            stop = min(start + self.CHUNK_ROWS, self._count)
            joined[start:stop] = chunk[: stop - start]
        return joined


def _caller_match_ids(batch: Batch, offset: int, doc: DocumentProto) -> Optional[List[str]]:
    """The caller's ids of the matches the answer gives document ``offset``, in the answer's order.

    None where the matches are not the caller's (search's are stored documents, with their own ids). A
    rank match reordered by score is found by its wire id; one aclip did not send is a ProtocolError.
    """
    sent = batch.ids
    if not isinstance(sent, ChosenIds) or not sent.match_ids:
        return None
    wire_to_caller = sent.match_ids[offset]
    ids = [wire_to_caller.get(match.id) for match in doc.matches]
    if None in ids:
        unknown = next(match.id for match, caller_id in zip(doc.matches, ids) if caller_id is None)
        raise ProtocolError(
            f"the server answered input {batch.start + offset} with a match of id {unknown!r}, which is none "
            "of the matches aclip sent with it"
        )
    return cast(List[str], ids)


def _matches_like(source: Any, matches: Sequence[DocumentProto], ids: Optional[List[str]]) -> Any:
    """New matches of the source's own kind: our Documents in a DocumentList, or the caller's document type.

    ``ids`` (the caller's match ids, rank) replace the wire ids the matches came back with.
    """
    wanted: Sequence[Optional[str]] = ids if ids is not None else [None] * len(matches)
    if isinstance(source, Document):
        return DocumentList(document_from_proto(match, doc_id=doc_id) for match, doc_id in zip(matches, wanted))
    return [foreign_document_from_proto(type(source), match, doc_id=doc_id) for match, doc_id in zip(matches, wanted)]


class DocumentCollector(ResultHandler):
    """Sets ``.embedding`` on the caller's Documents, and ``mime_type`` where they have one and it is empty.

    Each embedding is a writable row of a new array of the batch's (after :func:`check_embeddings`). With
    ``with_matches`` (rank, search) each Document's ``matches`` becomes a new list of the server's matches,
    in the server's order, with their scores (rank's with the caller's own match ids). Nothing else of the
    caller's objects is touched, and an optional attribute a document-like object lacks is left out.
    """

    def __init__(self, *, with_matches: bool = False) -> None:
        self._with_matches = with_matches

    def answered(self, batch: Batch, message: DataRequestProto, docs: List[DocumentProto]) -> None:
        place_on_documents(batch, docs, with_matches=self._with_matches)


def place_on_documents(batch: Batch, docs: List[DocumentProto], *, with_matches: bool = False) -> None:
    """Set one answered batch's embeddings (and ``mime_type``, and with ``with_matches`` the matches) on
    the caller's Documents of that batch, as :class:`DocumentCollector` describes."""
    sources: List[Any] = batch.sources or []
    vectors = [_embedding(doc, batch.start + offset) for offset, doc in enumerate(docs)]
    present = [offset for offset, vector in enumerate(vectors) if vector is not None]
    if present:
        kept = [cast(np.ndarray, vectors[offset]) for offset in present]
        stacked = _checked(kept, [batch.start + offset for offset in present])
        for index, offset in enumerate(present):  # a row of the new array, or (lengths differ) a copy
            sources[offset].embedding = stacked[index] if stacked is not None else kept[index].copy()
    for offset, (source, doc) in enumerate(zip(sources, docs)):
        if doc.mime_type and hasattr(source, "mime_type") and not source.mime_type:
            source.mime_type = doc.mime_type
        if with_matches:
            source.matches = _matches_like(source, doc.matches, _caller_match_ids(batch, offset, doc))


def answer_documents(batch: Batch, docs: List[DocumentProto]) -> DocumentList:
    """An answer's documents as new Documents (what callbacks' ``Response.docs`` are), checked once.

    Where aclip's ids were on the wire, each gets its input's own id back (the caller's Document's; in
    strings mode there is none, and aclip's stays), and rank's matches the caller's match ids. An answer
    with another number of documents than the batch (a failed request's may be) is taken as it is. When the
    caller's Documents are docarray's, these are docarray Documents in a ``DocumentArray`` (as upstream's
    ``resp.data.docs`` is); else aclip's in a DocumentList.
    """
    container = docarray_results(*(batch.sources or [])[:1])
    if len(docs) != len(batch.ids):
        if container is None or not batch.sources:
            return DocumentList(document_from_proto(doc) for doc in docs)
        return container([foreign_document_from_proto(type(batch.sources[0]), doc) for doc in docs])  # type: ignore[no-any-return]
    check_answer_ids(batch, docs)
    sources = batch.sources if isinstance(batch.ids, ChosenIds) else None
    result: List[Any] = []
    for offset, doc in enumerate(docs):
        own_id = None if sources is None else getattr(sources[offset], "id", None) or ""
        if container is not None and batch.sources is not None:
            document = foreign_document_from_proto(type(batch.sources[offset]), doc, doc_id=own_id)
        else:
            document = document_from_proto(doc, doc_id=own_id, name=f"input {batch.start + offset}")
        match_ids = _caller_match_ids(batch, offset, doc)
        if match_ids is not None:
            for match, match_id in zip(document.matches, match_ids):
                match.id = match_id
        result.append(document)
    return DocumentList(result) if container is None else container(result)


def part_of(batch: Batch, message: DataRequestProto, docs: List[DocumentProto]) -> Part:
    """The Part for one answered batch (Documents mode sets the embeddings on the caller's Documents)."""
    if batch.sources is not None:
        place_on_documents(batch, docs)
        return Part(batch.positions, documents=DocumentList(batch.sources))
    return Part(batch.positions, embeddings=embedding_rows(batch, docs))
