"""Streamed results: the parts of a call, handed out as each request is answered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Union

import numpy as np
from numpy.typing import NDArray

from ._document import DocumentList

if TYPE_CHECKING:
    from ._batches import Batch
    from ._codec import DataRequestProto, DocumentProto

__all__ = ["Collected", "Part", "part_of"]


@dataclass(frozen=True)
class Part:
    """The results of one answered request: the input ``positions`` it covers, in order.

    Strings in: ``embeddings`` is a float32 array with one row per position. Documents in: ``documents``
    are the caller's own Documents of those positions, with ``.embedding`` set.

    Example::

        async with client.aencode_iter(sentences) as parts:
            async for part in parts:
                store[part.positions.start : part.positions.stop] = part.embeddings
    """

    positions: range
    embeddings: Optional[NDArray[np.float32]] = None
    documents: Optional[DocumentList] = None


@dataclass(frozen=True)
class Collected:
    """All that succeeded, and what failed where: what ``encode_collect`` returns instead of raising.

    ``results`` is the float32 array [N, D] (strings in; failed rows are NaN) or the caller's Documents
    (failed ones keep ``embedding = None``); ``failed`` maps each failed input position to its error.

    Example::

        outcome = client.encode_collect(sentences)
        good = np.delete(outcome.results, list(outcome.failed), axis=0)
    """

    results: Union[NDArray[np.float32], DocumentList]
    failed: Dict[int, Exception]

    @property
    def ok(self) -> bool:
        """True when every input got its embedding."""
        return not self.failed


def part_of(batch: Batch, message: DataRequestProto, docs: List[DocumentProto]) -> Part:
    """The Part for one answered batch (Documents mode sets the embeddings on the caller's Documents)."""
    from ._results import embedding_rows, place_on_documents

    if batch.sources is not None:
        place_on_documents(batch, docs)
        return Part(batch.positions, documents=DocumentList(batch.sources))
    return Part(batch.positions, embeddings=embedding_rows(batch, docs))
