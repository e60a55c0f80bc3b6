"""The numbers behind ``/rank`` and ``/search``: cosine similarity and distance, and CLIP's softmax.

A CLIP server computes them with docarray's numpy helpers, in float32, and the captured answers of a real
server (made with the same test encoder as ours) pin down every detail, so ours agree bit for bit:

- the cosine *distance* of two vectors is ``1 - clip((a . b + eps) / (|a| |b| + eps), -1, 1)`` with
  ``eps = 1e-7``, every step in float32 (the epsilon keeps zero vectors finite; it shifts a value by at most
  about 1e-7). Only the sums inside ``a . b`` and ``|a|`` run in float64, rounded to float32 once, so that
  every machine gets the same bits;
- ``/search`` reports that distance; ``/rank`` reports the cosine *similarity* as ``1 - distance``, so the
  value goes through float32 twice (that is what the real server's ``clip_score_cosine`` values show);
- ``/rank``'s ``clip_score`` is a softmax over one query's candidates of ``LOGIT_SCALE * cosine``, taken in
  float64 (the float32 cosines times a float64 scale) and stored as the float32 of a ``NamedScore``.
  :data:`LOGIT_SCALE` is ``exp(4.60517)``, CLIP's learned logit scale ``ln 100`` as the server writes it:
  about 99.99998, not exactly 100.

Example::

    >>> import numpy as np
    >>> a = np.array([[1.0, 0.0]], dtype=np.float32)
    >>> b = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]], dtype=np.float32)
    >>> cosine_distance(a, b).tolist()  # the epsilon shows in the last bit of the middle one
    [[0.0, 0.9999999403953552, 2.0]]
    >>> [round(float(p), 6) for p in clip_softmax(np.array([0.5, 0.5], dtype=np.float32))]
    [0.5, 0.5]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["COSINE_EPS", "LOGIT_SCALE", "clip_softmax", "cosine_distance", "cosine_similarity"]

#: Added to the dot product and to the product of the norms, as docarray's cosine does.
COSINE_EPS = 1e-7
#: The factor applied to cosines before ``/rank``'s softmax: CLIP's logit scale, ``exp(4.60517)``.
LOGIT_SCALE = float(np.exp(4.60517))

Float32Array = npt.NDArray[np.float32]


def cosine_distance(queries: npt.ArrayLike, candidates: npt.ArrayLike) -> Float32Array:
    """The ``[len(queries), len(candidates)]`` float32 matrix of cosine distances (0 same direction, 2 opposite).

    Both arguments are 2-D (one vector a row) and are cast to float32; the work is one matrix product.

    Example::

        >>> cosine_distance([[3.0, 4.0]], [[3.0, 4.0], [-4.0, 3.0]]).tolist()
        [[0.0, 1.0]]
    """
    a = np.asarray(queries, dtype=np.float32)
    b = np.asarray(candidates, dtype=np.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"cannot compare vectors of shapes {a.shape} and {b.shape}")
    # Dot products and norms are accumulated in float64 and rounded to float32 once: the correctly rounded
    # float32 values, the same on every machine (a float32 BLAS may differ in the last bit from CPU to CPU).
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    dots = (a64 @ b64.T).astype(np.float32)
    norms = np.outer(_norms(a64), _norms(b64))
    similarity = np.clip((dots + np.float32(COSINE_EPS)) / (norms + np.float32(COSINE_EPS)), -1, 1)
    distance: Float32Array = (np.float32(1) - similarity).astype(np.float32, copy=False)
    return distance


def _norms(rows: npt.NDArray[np.float64]) -> Float32Array:
    norms: Float32Array = np.sqrt(np.einsum("ij,ij->i", rows, rows)).astype(np.float32)
    return norms


def cosine_similarity(queries: npt.ArrayLike, candidates: npt.ArrayLike) -> Float32Array:
    """Cosine similarities as ``/rank`` reports them: ``1 - cosine_distance`` in float32.

    Example::

        >>> np.round(cosine_similarity([[1.0, 1.0]], [[2.0, 2.0], [1.0, -1.0]]), 6).tolist()
        [[1.0, 0.0]]
    """
    similarity: Float32Array = (np.float32(1) - cosine_distance(queries, candidates)).astype(np.float32, copy=False)
    return similarity


def clip_softmax(cosines: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``softmax(LOGIT_SCALE * cosines)`` over one query's candidates, in float64; sums to 1.

    Example::

        >>> p = clip_softmax(np.array([0.30, 0.25], dtype=np.float32))
        >>> round(float(p.sum()), 12), bool(p[0] > 0.99)
        (1.0, True)
    """
    logits = LOGIT_SCALE * np.asarray(cosines, dtype=np.float64)
    if logits.size == 0:
        return logits
    exp = np.exp(logits - logits.max())
    probabilities: npt.NDArray[np.float64] = exp / exp.sum()
    return probabilities
