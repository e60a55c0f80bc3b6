"""Placing answers where they belong: by the position the client assigned, never by document id.

:class:`ArrayCollector` builds the [N, D] float32 array of a strings-in call; :class:`DocumentCollector`
sets ``.embedding`` on the caller's own Documents. Both are handed each answered batch by the engine.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from ._codec import DataRequestProto, DocumentProto, decode_ndarray, document_from_proto, foreign_document_from_proto
from ._document import Document, DocumentList
from ._errors import MissingEmbeddingError, ProtocolError
from ._streaming import Batch

__all__ = ["ArrayCollector", "DocumentCollector", "embedding_rows"]


def _embedding(doc: DocumentProto, position: int) -> Optional[np.ndarray]:
    if not doc.HasField("embedding"):
        return None
    vector = decode_ndarray(doc.embedding, what=f"the embedding of input {position}")
    if vector.ndim != 1:
        raise ProtocolError(f"the embedding of input {position} has shape {list(vector.shape)}, expected one axis")
    return vector


def embedding_rows(batch: Batch, docs: List[DocumentProto]) -> np.ndarray:
    """One answered batch's embeddings as a float32 array, or MissingEmbeddingError naming the gaps."""
    vectors = [_embedding(doc, batch.start + offset) for offset, doc in enumerate(docs)]
    missing = [batch.start + offset for offset, vector in enumerate(vectors) if vector is None]
    if missing:
        raise MissingEmbeddingError(missing, total=len(docs))
    if not vectors:
        return np.empty((0, 0), dtype=np.float32)
    try:
        return np.stack(vectors).astype(np.float32, copy=False)  # type: ignore[arg-type]
    except ValueError as err:
        raise ProtocolError(f"the embeddings of inputs {batch.start}..{batch.positions[-1]} differ in length") from err


class ArrayCollector:
    """Collects one embedding row per input into a float32 array, each row written at its final position.

    With a known input length the array is allocated once, at the first embedding. Otherwise rows go into
    chunks of :attr:`CHUNK_ROWS` rows (large enough to be their own memory mappings), joined at the end
    chunk by chunk, each freed as it is copied: the resident peak stays near one result array.
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

    def __call__(self, batch: Batch, response: DataRequestProto, docs: List[DocumentProto]) -> None:
        self._count += len(docs)
        for offset, doc in enumerate(docs):
            position = batch.start + offset
            vector = _embedding(doc, position)
            if vector is None:
                self._missing.append(position)
            else:
                self._row(position, vector.shape[0])[...] = vector

    def mark_failed(self, batch: Batch) -> None:
        """A batch the server failed on (and on_error took): its positions have no embedding."""
        self._count += len(batch.ids)
        self._missing.extend(batch.positions)

    def _row(self, position: int, dim: int) -> np.ndarray:
        if self._dim is None:
            self._dim = dim
        elif dim != self._dim:
            raise ProtocolError(f"the embedding of input {position} has {dim} values, earlier ones {self._dim}")
        if position < self._base:
            if self._array is None:
                self._array = np.empty((self._base, dim), dtype=np.float32)
            return self._array[position]  # type: ignore[no-any-return]
        index, row = divmod(position - self._base, self.CHUNK_ROWS)
        chunk = self._chunks.get(index)
        if chunk is None:
            chunk = self._chunks[index] = np.empty((self.CHUNK_ROWS, dim), dtype=np.float32)
        return chunk[row]  # type: ignore[no-any-return]

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


def _matches_like(source: Any, matches: Iterable[DocumentProto]) -> Any:
    """New matches of the source's own kind: our Documents in a DocumentList, or the caller's document type."""
    if isinstance(source, Document):
        return DocumentList(document_from_proto(match) for match in matches)
    return [foreign_document_from_proto(type(source), match) for match in matches]


class DocumentCollector:
    """Sets ``.embedding`` (a writable copy) on the caller's Documents, and a missing ``mime_type``.

    With ``with_matches`` (rank, search) each Document's ``matches`` becomes a new list of the server's
    matches, in the server's order, with their scores.
    """

    def __init__(self, documents: DocumentList, *, with_matches: bool = False) -> None:
        self._documents = documents
        self._with_matches = with_matches

    def __call__(self, batch: Batch, response: DataRequestProto, docs: List[DocumentProto]) -> None:
        sources: List[Any] = batch.sources or []
        for offset, (source, doc) in enumerate(zip(sources, docs)):
            vector = _embedding(doc, batch.start + offset)
            if vector is not None:
                source.embedding = vector.copy()
            if doc.mime_type and not source.mime_type:
                source.mime_type = doc.mime_type
            if self._with_matches:
                source.matches = _matches_like(source, doc.matches)

    def result(self) -> DocumentList:
        return self._documents
