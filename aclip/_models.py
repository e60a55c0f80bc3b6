"""The values a caller holds: aclip's light Document and DocumentList, Part and Collected; and Item and Kind.

No docarray: a :class:`Document` is a plain dataclass with the fields a CLIP server reads and writes, and a
:class:`DocumentList` the list-like container Documents come back in (its :meth:`DocumentList.summary` is
drawn by :mod:`aclip._display`). A :class:`Part` is the results of one answered request (``encode_iter``);
:class:`Collected` is what ``encode_collect`` returns. An :class:`Item` of a :class:`Kind` is what one input
becomes before the codec encodes it: the classifier (:mod:`aclip._engine.inputs`) makes items, the loader
(:mod:`aclip._engine.loading`) turns files and URLs into bytes, and the codec (:mod:`aclip._wire.protobuf`)
encodes them; all three import these types from here, so no import runs back up, and a client is made
without loading protobuf.

Example::

    docs = DocumentList([Document(text="a cat"), Document(uri="apple.png")])
    docs.summary()
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import (
    Any,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Optional,
    SupportsIndex,
    Tuple,
    Union,
    overload,
)

import numpy as np
from numpy.typing import NDArray


def new_document_id() -> str:
    """A random 32-character hex id, the form Jina gateways use."""
    return os.urandom(16).hex()


@dataclass
class NamedScore:
    """One score on a document, e.g. ``doc.scores["clip_score"].value`` after ``rank``."""

    value: float = 0.0
    op_name: str = ""
    description: str = ""
    ref_id: str = ""


@dataclass(eq=False)
class Document:
    """One input or result: a sentence (``text``) or an image (``uri``, ``blob`` or ``tensor``).

    A Document with ``text`` is a sentence, even when it also has a ``uri``. Otherwise ``uri`` (a file
    path, an http(s) URL or a data URI), ``blob`` (encoded image bytes) or ``tensor`` (an array of
    shape [H, W, C]) make it an image. After ``encode`` the same object carries ``embedding``.

    Example::

        docs = client.encode([Document(text="a cat"), Document(uri="cat.png")])
        docs[1].embedding.shape   # (512,)
    """

    text: Optional[str] = None
    uri: Optional[str] = None
    blob: Optional[bytes] = None
    tensor: Optional[np.ndarray] = None
    mime_type: str = ""
    id: str = field(default_factory=new_document_id)
    embedding: Optional[np.ndarray] = None
    matches: DocumentList = field(default_factory=lambda: DocumentList())
    scores: Dict[str, NamedScore] = field(default_factory=dict)
    tags: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.matches, DocumentList):
            self.matches = DocumentList(self.matches)

    def __repr__(self) -> str:
        parts = [f"id={self.id!r}"]
        if self.text is not None:
            parts.append(f"text={_shorten(self.text)!r}")
        if self.uri is not None:
            parts.append(f"uri={_shorten(self.uri)!r}")
        if self.blob is not None:
            parts.append(f"blob=<{len(self.blob)} bytes>")
        if self.tensor is not None:
            parts.append(f"tensor=<{self.tensor.dtype} {list(self.tensor.shape)}>")
        if self.mime_type:
            parts.append(f"mime_type={self.mime_type!r}")
        if self.embedding is not None:
            parts.append(f"embedding=<{self.embedding.dtype} {list(self.embedding.shape)}>")
        if self.matches:
            parts.append(f"matches=<{len(self.matches)}>")
        if self.scores:
            parts.append(f"scores={sorted(self.scores)}")
        if self.tags:
            parts.append(f"tags={self.tags!r}")
        return f"Document({', '.join(parts)})"


class DocumentList(List[Document]):
    """The list of Documents that Documents-in calls return, in input order; ``Document.matches`` too.

    A ``list``, so indexing, slicing (which gives a DocumentList), ``len`` and iteration work as usual;
    plus ``embeddings``, ``texts``, ``uris`` and ``summary()`` to read it as a whole.

    Example::

        docs = client.encode([Document(text="a"), Document(text="b")])
        docs.embeddings.shape   # (2, 512)
        docs.texts              # ['a', 'b']
    """

    __slots__ = ()

    @overload
    def __getitem__(self, index: SupportsIndex) -> Document: ...

    @overload
    def __getitem__(self, index: slice) -> DocumentList: ...

    def __getitem__(self, index: Union[SupportsIndex, slice]) -> Union[Document, DocumentList]:
        if isinstance(index, slice):
            return DocumentList(super().__getitem__(index))
        return super().__getitem__(index)

    def __repr__(self) -> str:
        return f"DocumentList(<{len(self)} documents>)"

    @property
    def embeddings(self) -> Optional[NDArray[np.float32]]:
        """The embeddings as one float32 array [N, D]; None when no Document has one.

        When only some Documents have an embedding, MissingEmbeddingError names the others: a ragged or
        padded array would put rows in the wrong places.
        """
        vectors = [getattr(doc, "embedding", None) for doc in self]
        missing = [position for position, vector in enumerate(vectors) if vector is None]
        if len(missing) == len(vectors):
            return None
        if missing:
            from ._exceptions import MissingEmbeddingError

            raise MissingEmbeddingError(missing, total=len(vectors))
        return np.stack([np.asarray(vector, dtype=np.float32) for vector in vectors])

    @property
    def texts(self) -> List[Optional[str]]:
        """Each Document's ``text`` (None where it has none), in order."""
        return [getattr(doc, "text", None) for doc in self]

    @property
    def uris(self) -> List[Optional[str]]:
        """Each Document's ``uri`` (None where it has none), in order."""
        return [getattr(doc, "uri", None) for doc in self]

    def summary(self) -> None:
        """Print how many Documents there are, which fields they have set, and the embeddings' shape.

        Drawn with rich when it is installed (``aclip[rich]``), as plain text otherwise.

        Example::

            client.encode([Document(text="hi"), Document(uri="apple.png")]).summary()
        """
        from ._display import print_summary

        print_summary(self)


def _shorten(value: str, limit: int = 48) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


class Kind(enum.IntEnum):
    """What an input item is, as far as the wire is concerned."""

    TEXT = 0  # payload: the sentence
    BLOB = 1  # payload: encoded image bytes
    TENSOR = 2  # payload: a C-contiguous ndarray [H, W, C]
    REMOTE_URI = 3  # payload: None; the server loads ``uri`` (or aclip._engine.fetch, with fetch_remote_images)
    LOCAL_FILE = 4  # payload: the path; read by load_batch (regular files only)
    DATA_URI = 5  # payload: the data URI; decoded by load_batch
    EMPTY = 6  # payload: None; a document without content (the server returns no embedding)


class Item(NamedTuple):
    """One input item ready for the codec (after :func:`load_batch`, kind is never LOCAL_FILE/DATA_URI)."""

    kind: Kind
    payload: Union[str, bytes, np.ndarray, None]
    uri: str
    mime_type: str
    tags: Optional[Mapping[str, Any]] = None
    #: (id, item) of each match, for rank: the candidates a root document is compared with
    matches: Tuple[Tuple[str, Item], ...] = ()


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
