"""A Jina executor with CLIP-as-service's endpoints and the deterministic test encoder, for a real Jina Flow.

It runs inside the interop environment (jina 3.27, docarray 0.21) behind a real Jina gateway
(:mod:`tests.interop.gateway`), so aclip's tests can check the client against the gateway CLIP servers run,
not only against aclip's own reference server. It is written from the two normative texts in
``shared/reference`` (``WIRE.md`` for what each endpoint does, ``test-encoder.md`` for the embedding) with
docarray's own tools, and deliberately imports nothing from :mod:`aclip`: the embeddings it returns are an
independent second opinion, and a test that compares them with the reference server's compares two
implementations.

Endpoints, as a CLIP server has them:

- ``/``, ``/encode`` (and any other name): embed every document with content; ``drop_image_content`` drops
  blobs and tensors from the answer; a document without content (an empty text too) stays without embedding;
  documents that share an id are merged as on a real CLIP server (see :func:`_embed`);
- ``/rank``: embed roots and matches (all of the request's together, as CLIP servers do), score each match
  with ``clip_score`` (softmax of ``LOGIT_SCALE * cosine`` over one root's matches) and
  ``clip_score_cosine``, sort by ``clip_score`` descending, drop the matches' embeddings;
- ``/index``: embed and keep the documents (upsert by id); ``/search``: embed the queries and give each the
  ``limit`` (default 10) nearest kept documents by cosine distance, ascending;
- ``/clear`` (ours, for tests): forget the kept documents; the answer is one document whose
  ``tags["cleared"]`` says how many there were.

Example (what :mod:`tests.interop.gateway` does)::

    Flow(protocol=["grpc", "http", "websocket"], port=[p1, p2, p3], host="127.0.0.1").add(
        uses=ClipTestExecutor, name="clip_t"
    )

(No ``from __future__ import annotations`` here: jina reads the endpoints' annotations as classes.)
"""

import hashlib
import threading
from typing import Any, Dict, Optional

import numpy as np
from docarray import Document, DocumentArray
from jina import Executor, requests

#: Embedding length of the test encoder.
DIM = 512
#: CLIP's learned logit scale as CLIP servers write it: exp(4.60517), about 100.
LOGIT_SCALE = float(np.exp(4.60517))
#: Search results per query without a ``limit`` parameter.
DEFAULT_LIMIT = 10

_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def test_encoder(payload: bytes) -> np.ndarray:
    """The test encoder of ``shared/reference/test-encoder.md``: 512 float32 values of unit norm."""
    seed = hashlib.sha256(payload).digest()
    stream = b"".join(hashlib.sha256(seed + i.to_bytes(4, "little")).digest() for i in range(64))
    values = np.frombuffer(stream, "<u4") / 2**32 * 2 - 1
    return (values / np.linalg.norm(values)).astype(np.float32)


def _is_image(data: bytes) -> bool:
    return data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _payload(doc: Document) -> Optional[bytes]:
    """What the encoder reads from one document, or None when it has no content."""
    if doc.text:
        return doc.text.encode("utf-8")
    if doc.blob:
        if not _is_image(doc.blob):
            raise ValueError(f"cannot identify image file (document {doc.id})")
        return doc.blob
    if doc.tensor is not None:
        array = np.ascontiguousarray(np.asarray(doc.tensor).astype(np.uint8).squeeze())
        return repr(array.shape).encode() + array.tobytes()
    if doc.uri:
        doc.load_uri_to_blob(timeout=10)
        return _payload(doc)
    return None


def _embed(docs: DocumentArray) -> None:
    """Embed every document with content the way CLIP-as-service's executor does: through docarray.

    clip_server gathers the documents of each modality in a DocumentArray of their own and sets their
    embeddings through it (``minibatch.embeddings = ...``). docarray addresses documents by id there, so of
    several documents that share an id only the last gets an embedding (its own) and the others none: what
    a real CLIP server does to duplicate ids. Doing it with docarray's own code keeps that behaviour here
    (a per-document ``doc.embedding = ...`` would hide it). clip_server does it per minibatch (32
    documents by default); here a request's documents of one modality are one minibatch.
    """
    gathered = {"text": (DocumentArray(), []), "image": (DocumentArray(), [])}
    for doc in docs:
        payload = _payload(doc)
        if payload is not None:
            modality, vectors = gathered["text" if doc.text else "image"]
            modality.append(doc)
            vectors.append(test_encoder(payload))
    for modality, vectors in gathered.values():
        if vectors:
            modality.embeddings = np.stack(vectors)


def _cosine(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cosine similarity of every query row with every candidate row, in float32."""
    queries = np.asarray(queries, dtype=np.float32)
    candidates = np.asarray(candidates, dtype=np.float32)
    norms = np.outer(np.linalg.norm(queries, axis=1), np.linalg.norm(candidates, axis=1))
    return np.clip((queries @ candidates.T + 1e-7) / (norms + 1e-7), -1, 1).astype(np.float32)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "yes"))


class ClipTestExecutor(Executor):
    """CLIP-as-service's endpoints over the test encoder; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kept_lock = threading.Lock()
        self._kept = DocumentArray()

    @requests(on="/rank")
    def rank(self, docs: DocumentArray, **kwargs: Any) -> DocumentArray:
        _embed(docs["@r,m"])  # roots and matches together, as clip_server's rank does
        for root in docs:
            if root.embedding is None or not len(root.matches):
                continue
            candidates = root.matches.embeddings
            if candidates is None:
                raise ValueError(f"a match of root {root.id} has no embedding")
            cosines = _cosine(root.embedding[None, :], candidates)[0]
            logits = LOGIT_SCALE * cosines.astype(np.float64)
            softmax = np.exp(logits - logits.max())
            softmax /= softmax.sum()
            for match, cosine, probability in zip(root.matches, cosines, softmax):
                match.scores["clip_score"].value = float(probability)
                match.scores["clip_score"].op_name = "softmax"
                match.scores["clip_score_cosine"].value = float(cosine)
                match.scores["clip_score_cosine"].op_name = "cosine"
                match.embedding = None
            root.matches = sorted(root.matches, key=lambda m: m.scores["clip_score"].value, reverse=True)
        return docs

    @requests(on="/index")
    def index(self, docs: DocumentArray, parameters: Dict[str, Any], **kwargs: Any) -> DocumentArray:
        self._encode(docs, parameters)
        with self._kept_lock:
            for doc in docs:
                if doc.embedding is None:
                    continue
                kept = Document(doc, copy=True)
                if kept.blob or kept.tensor is not None:  # image content is not kept (a text is: blob, tensor
                    kept.blob, kept.tensor = b"", None  # and text share one field, so clearing one clears all)
                kept.matches = DocumentArray()
                if doc.id in self._kept:
                    self._kept[doc.id] = kept
                else:
                    self._kept.append(kept)
        return docs

    @requests(on="/search")
    def search(self, docs: DocumentArray, parameters: Dict[str, Any], **kwargs: Any) -> DocumentArray:
        _embed(docs)
        limit = int(parameters.get("limit", DEFAULT_LIMIT))
        with self._kept_lock:
            kept = DocumentArray(self._kept)
        for query in docs:
            if query.embedding is None or not len(kept):
                continue
            distances = 1 - _cosine(query.embedding[None, :], kept.embeddings)[0]
            order = np.argsort(distances, kind="stable")[:limit]
            matches = DocumentArray()
            for row in order:
                match = Document(kept[int(row)], copy=True)
                match.scores["cosine"].value = float(distances[row])
                matches.append(match)
            query.matches = matches
        return docs

    @requests(on="/clear")
    def clear(self, docs: DocumentArray, **kwargs: Any) -> DocumentArray:
        with self._kept_lock:
            cleared = len(self._kept)
            self._kept = DocumentArray()
        return DocumentArray([Document(tags={"cleared": cleared})])

    @requests
    def encode(self, docs: DocumentArray, parameters: Dict[str, Any], **kwargs: Any) -> DocumentArray:
        self._encode(docs, parameters)
        return docs

    def _encode(self, docs: DocumentArray, parameters: Dict[str, Any]) -> None:
        _embed(docs)
        if _truthy(parameters.get("drop_image_content", False)):
            for doc in docs:
                if doc.blob or doc.tensor is not None:  # not a text's: blob, tensor and text share one field
                    doc.blob, doc.tensor = b"", None
