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

__all__ = ["ArrayCollector", "DocumentCollector"]


def _embedding(doc: DocumentProto, position: int) -> Optional[np.ndarray]:
    if not doc.HasField("embedding"):
        return None
    vector = decode_ndarray(doc.embedding, what=f"the embedding of input {position}")
    if vector.ndim != 1:
        raise ProtocolError(f"the embedding of input {position} has shape {list(vector.shape)}, expected one axis")
    return vector


class ArrayCollector:
    """Collects one embedding row per input into a float32 array, written once at its final position.

    With a known input length the array is allocated once, at the first embedding; otherwise each batch
    gets its own block and the blocks are joined at the end.
    """

    def __init__(self, total: Optional[int]) -> None:
        self._total = total
        self._dim: Optional[int] = None
        self._array: Optional[np.ndarray] = None
        self._blocks: Dict[int, np.ndarray] = {}
        self._count = 0
        self._missing: List[int] = []

    def __call__(self, batch: Batch, response: DataRequestProto, docs: List[DocumentProto]) -> None:
        self._count += len(docs)
        rows: Optional[np.ndarray] = None
        for offset, doc in enumerate(docs):
            position = batch.start + offset
            vector = _embedding(doc, position)
            if vector is None:
                self._missing.append(position)
                continue
            if rows is None:
                rows = self._rows_for(batch, len(docs), vector.shape[0])
            elif vector.shape[0] != self._dim:
                raise ProtocolError(
                    f"the embedding of input {position} has {vector.shape[0]} values, others {self._dim}"
                )
            rows[offset] = vector

    def mark_failed(self, batch: Batch) -> None:
        """A batch the server failed on (and on_error took): its positions have no embedding."""
        self._count += len(batch.ids)
        self._missing.extend(batch.positions)

    def _rows_for(self, batch: Batch, size: int, dim: int) -> np.ndarray:
        if self._dim is None:
            self._dim = dim
        elif dim != self._dim:
            raise ProtocolError(f"the server sent embeddings of {dim} values after ones of {self._dim}")
        if self._total is not None and batch.start + size <= self._total:
            if self._array is None:
                self._array = np.empty((self._total, dim), dtype=np.float32)
            return self._array[batch.start : batch.start + size]
        block = np.empty((size, dim), dtype=np.float32)
        self._blocks[batch.seq] = block
        return block

    def result(self) -> np.ndarray:
        """The [N, D] array, or MissingEmbeddingError naming the inputs that got no embedding."""
        if self._missing:
            self._missing.sort()
            raise MissingEmbeddingError(self._missing, total=self._count)
        dim = self._dim or 0
        if self._array is not None and not self._blocks:
            return self._array if self._count == self._total else self._array[: self._count]
        if self._array is not None:  # the input was longer than its len() said
            parts = [self._array] + [self._blocks[seq] for seq in sorted(self._blocks)]
            return np.concatenate(parts)[: self._count]
        if not self._blocks:
            return np.empty((self._count, dim), dtype=np.float32)
        if len(self._blocks) == 1:
            return next(iter(self._blocks.values()))
        # Join block by block, freeing each as it is copied: np.empty's pages are only committed as they
        # are written, so the resident peak stays near one result array, not two.
        joined = np.empty((self._count, dim), dtype=np.float32)
        offset = 0
        for seq in sorted(self._blocks):
            block = self._blocks.pop(seq)
            joined[offset : offset + len(block)] = block
            offset += len(block)
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
