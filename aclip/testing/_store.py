"""The in-memory index behind ``/index`` and ``/search``: embedded documents and brute-force cosine search.

:class:`IndexStore` keeps the embeddings as the rows of one growing float32 matrix (capacity doubles as
needed) and, beside it, one stored document per row. A search is a single matrix product of the queries
against every stored row (:func:`~aclip.testing._scoring.cosine_distance`), then a stable sort per query:
the nearest first, equal distances in row order.

Storing is an upsert by document id: a document whose id is already stored replaces that row in place
(it keeps its position, so ties still fall in the order ids were first indexed); a new id is appended.
What is stored of a document is what a search must give back as a match: everything the executor returned
for it (id, text, uri, mime_type, tags, embedding, ...) except its image content (blob and tensor, which
``/index`` answers usually drop anyway), its own matches and chunks, and its scores. Documents without an
embedding (nothing to embed) are not stored.

All methods are thread-safe (one lock, never held across an ``await``): the server's event loop indexes and
searches while a test thread may :meth:`~IndexStore.clear` it or read :attr:`~IndexStore.count`.

Example::

    >>> from aclip._wire.protobuf import encode_ndarray
    >>> from aclip._pb import docarray_pb2
    >>> from aclip.testing import embed_text
    >>> store = IndexStore()
    >>> docs = [docarray_pb2.DocumentProto(id=text, text=text) for text in ("a cat", "a dog", "a car")]
    >>> for doc in docs:
    ...     encode_ndarray(embed_text(doc.text), doc.embedding)
    >>> store.upsert(docs)
    3
    >>> [[(match.id, round(distance, 6)) for match, distance in found] for found in store.search(docs[1:2], 2)]
    [[('a dog', 0.0), ('a cat', 0.973099)]]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from aclip._pb import docarray_pb2
from aclip.testing._rank import embedding_vector
from aclip.testing._scoring import cosine_distance

__all__ = ["Found", "IndexStore", "set_matches"]

_INITIAL_CAPACITY = 64

#: One query's result: (stored document, cosine distance), nearest first.
Found = list[tuple[docarray_pb2.DocumentProto, float]]


class IndexStore:
    """Embedded documents in memory, searchable by cosine distance; see the module docstring.

    Example::

        store = IndexStore()
        store.upsert(embedded_docs)  # returns how many were stored
        [found] = store.search([embedded_query], limit=5)  # [(stored doc, distance), ...], nearest first
        store.clear()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._matrix: npt.NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self._docs: list[docarray_pb2.DocumentProto] = []
        self._rows: dict[str, int] = {}  # document id -> row

    @property
    def count(self) -> int:
        """How many documents are stored (distinct ids)."""
        return len(self._docs)

    @property
    def dim(self) -> int | None:
        """The length of the stored embeddings; None while the store is empty (the first document sets it)."""
        with self._lock:
            return self._matrix.shape[1] if self._docs else None

    def ids(self) -> list[str]:
        """The stored document ids, in row order (the order in which ties are reported)."""
        with self._lock:
            return [doc.id for doc in self._docs]

    def clear(self) -> None:
        """Forget every stored document."""
        with self._lock:
            self._matrix = np.zeros((0, 0), dtype=np.float32)
            self._docs = []
            self._rows = {}

    def upsert(self, docs: Sequence[docarray_pb2.DocumentProto]) -> int:
        """Store every document that has an embedding (replacing a stored one with its id); return how many
        were written (an id given twice counts twice).

        All-or-nothing: an embedding that cannot be read, or whose length differs from the stored ones, raises
        ValueError (or :class:`~aclip.ProtocolError`) before anything is stored. Within one call, a later
        document with the same id wins.
        """
        pending: list[tuple[docarray_pb2.DocumentProto, npt.NDArray[np.float32]]] = []
        for position, doc in enumerate(docs):
            if doc.HasField("embedding"):
                vector = embedding_vector(doc, what=f"document {position} ({doc.id!r})", dim=None)
                pending.append((_stored_copy(doc), vector))
        if not pending:
            return 0
        with self._lock:
            dim = self._matrix.shape[1] if self._docs else pending[0][1].shape[0]
            for stored, vector in pending:
                if vector.shape[0] != dim:
                    raise ValueError(
                        f"the embedding of document {stored.id!r} has {vector.shape[0]} values; the index holds {dim}"
                    )
            for stored, vector in pending:
                row = self._rows.get(stored.id)
                if row is None:
                    row = len(self._docs)
                    self._reserve(row + 1, dim)
                    self._rows[stored.id] = row
                    self._docs.append(stored)
                else:
                    self._docs[row] = stored
                self._matrix[row] = vector
        return len(pending)

    def search(self, queries: Sequence[docarray_pb2.DocumentProto], limit: int) -> list[Found]:
        """For each query, the ``limit`` nearest stored documents with their cosine distances, nearest first.

        A query without an embedding finds nothing, and so does every query while the store is empty. The
        stored documents are returned as they are stored (not copies): copy them before changing them.
        """
        if limit < 1:
            raise ValueError(f"limit must be a positive integer, not {limit}")
        results: list[Found] = [[] for _ in queries]
        with self._lock:
            if not self._docs:
                return results
            matrix = self._matrix[: len(self._docs)]
            wanted = [
                (position, embedding_vector(query, what=f"query {position} ({query.id!r})", dim=matrix.shape[1]))
                for position, query in enumerate(queries)
                if query.HasField("embedding")
            ]
            if not wanted:
                return results
            distances = cosine_distance(np.stack([vector for _, vector in wanted]), matrix)
            # Stable: equal distances come in row order. A full sort is fine at a reference server's sizes.
            order = np.argsort(distances, axis=1, kind="stable")[:, : min(limit, len(self._docs))]
            for (position, _), rows, row_distances in zip(wanted, order.tolist(), distances):
                results[position] = [(self._docs[row], float(row_distances[row])) for row in rows]
        return results

    def _reserve(self, rows: int, dim: int) -> None:
        """Make room for ``rows`` rows of ``dim`` values (doubling the capacity); called with the lock held."""
        capacity, current_dim = self._matrix.shape
        if current_dim == dim and capacity >= rows:
            return
        grown = np.zeros((max(rows, 2 * capacity, _INITIAL_CAPACITY), dim), dtype=np.float32)
        if current_dim == dim:
            grown[: len(self._docs)] = self._matrix[: len(self._docs)]
        self._matrix = grown


def _stored_copy(doc: docarray_pb2.DocumentProto) -> docarray_pb2.DocumentProto:
    """What the store keeps of an embedded document: everything but image content, matches, chunks, scores."""
    stored = docarray_pb2.DocumentProto()
    stored.CopyFrom(doc)
    for name in ("blob", "tensor", "matches", "chunks", "scores", "evaluations"):
        stored.ClearField(name)
    return stored


def set_matches(query: docarray_pb2.DocumentProto, found: Found) -> None:
    """Replace ``query``'s matches by copies of the found documents, each scored as ``/search`` answers do.

    A match gets ``adjacency`` one more than the query's and ``scores["cosine"].value`` = its cosine distance
    (no op_name, as the real server sends it; a distance of 0.0 is simply the default value).

    Example::

        >>> query = docarray_pb2.DocumentProto(id="q")
        >>> set_matches(query, [(docarray_pb2.DocumentProto(id="d", text="hi"), 0.25)])
        >>> match = query.matches[0]
        >>> match.id, match.adjacency, match.scores["cosine"].value, match.scores["cosine"].op_name
        ('d', 1, 0.25, '')
    """
    del query.matches[:]
    for stored, distance in found:
        match = query.matches.add()
        match.CopyFrom(stored)
        match.adjacency = query.adjacency + 1
        match.scores["cosine"].value = distance
