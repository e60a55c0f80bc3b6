"""``/rank``: score each root document's matches against it, as a CLIP server does, and sort them.

The executor first embeds every root and every match (exactly as ``/encode`` would, content loaded from a
URI included); :func:`rank_matches` then works on the embedded documents alone. For each root, on each of
its matches:

- ``scores["clip_score"]`` = NamedScore(value = softmax over this root's matches of ``LOGIT_SCALE x
  cosine``, op_name ``"softmax"``);
- ``scores["clip_score_cosine"]`` = NamedScore(value = cosine similarity, op_name ``"cosine"``);

the matches are sorted by ``clip_score``, descending (a stable sort: equal scores keep the order the client
sent), and lose their embeddings; the root keeps its own. Nothing else changes: ids, adjacency, uri,
mime_type and blobs stay as they came (the real server keeps a match's blob even with
``drop_image_content``). See :mod:`aclip.testing._scoring` for how the numbers are computed.

A root without matches is left as it is (embedded, no error). A root or match without an embedding (no
content to embed) is an error: a softmax over a partial set of candidates would be meaningless.

Example::

    >>> from aclip._wire.protobuf import encode_ndarray
    >>> from aclip._pb import docarray_pb2
    >>> from aclip.testing import embed_text
    >>> root = docarray_pb2.DocumentProto(id="q")
    >>> encode_ndarray(embed_text("a dog"), root.embedding)
    >>> for text in ("a cat", "a dog"):
    ...     encode_ndarray(embed_text(text), root.matches.add(id=text).embedding)
    >>> rank_matches([root])
    >>> [(m.id, round(m.scores["clip_score"].value, 3), m.HasField("embedding")) for m in root.matches]
    [('a dog', 1.0, False), ('a cat', 0.0, False)]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from aclip._pb import docarray_pb2
from aclip._wire.protobuf import decode_ndarray
from aclip.testing._scoring import clip_softmax, cosine_similarity

__all__ = ["CLIP_SCORE", "CLIP_SCORE_COSINE", "embedding_vector", "rank_matches"]

#: Score name and op_name of the softmax score.
CLIP_SCORE = "clip_score"
#: Score name of the cosine similarity (op_name ``"cosine"``).
CLIP_SCORE_COSINE = "clip_score_cosine"


def rank_matches(roots: Iterable[docarray_pb2.DocumentProto]) -> None:
    """Score, sort and strip the (already embedded) matches of every root in place; see the module docstring."""
    for position, root in enumerate(roots):
        if not root.matches:
            continue
        where = f"root document {position} ({root.id!r})"
        query = embedding_vector(root, what=where)
        candidates = np.stack(
            [
                embedding_vector(match, what=f"match {index} ({match.id!r}) of {where}", dim=query.shape[0])
                for index, match in enumerate(root.matches)
            ]
        )
        cosines = cosine_similarity(query[np.newaxis, :], candidates)[0]
        probabilities = clip_softmax(cosines)
        for match, cosine, probability in zip(root.matches, cosines.tolist(), probabilities.tolist()):
            score = match.scores[CLIP_SCORE]
            score.value, score.op_name = probability, "softmax"
            score = match.scores[CLIP_SCORE_COSINE]
            score.value, score.op_name = cosine, "cosine"
            match.ClearField("embedding")
        # Sorted by the stored (float32) value; list.sort is stable, reverse=True included.
        root.matches.sort(key=lambda match: match.scores[CLIP_SCORE].value, reverse=True)


def embedding_vector(doc: docarray_pb2.DocumentProto, *, what: str, dim: int | None = None) -> npt.NDArray[np.float32]:
    """The document's embedding as a 1-D float32 vector; ValueError when it has none (or not ``dim`` long).

    Example::

        >>> doc = docarray_pb2.DocumentProto(id="empty")
        >>> embedding_vector(doc, what="the query")
        Traceback (most recent call last):
        ...
        ValueError: the query has no embedding: it has no text, image or tensor to embed
    """
    if not doc.HasField("embedding"):
        raise ValueError(f"{what} has no embedding: it has no text, image or tensor to embed")
    vector = np.asarray(decode_ndarray(doc.embedding, what=f"the embedding of {what}"), dtype=np.float32)
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(f"the embedding of {what} has shape {list(vector.shape)}; a non-empty vector is needed")
    if dim is not None and vector.shape[0] != dim:
        raise ValueError(f"the embedding of {what} has {vector.shape[0]} values; {dim} are needed")
    return vector
