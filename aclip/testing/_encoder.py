"""The deterministic test encoder: a stand-in for a CLIP model.

Our machines cannot download model weights, so the reference server does not run CLIP. It maps every piece
of content to a 512-d float32 unit vector derived from SHA-256 of the content's bytes instead. The vector
says nothing about meaning, but it is exact and cheap: a test can compute the embedding it expects from
the input alone, and two servers that follow this recipe (ours, or a real Jina gateway running a test
executor) return bit-identical embeddings for the same content.

The recipe (``shared/reference/test-encoder.md`` is the normative text):

- the payload is ``text.encode("utf-8")`` for a text, the raw bytes for an image (a URI is loaded first),
  and ``repr(a.shape).encode() + a.tobytes()`` for a tensor, where ``a`` is the tensor cast to uint8,
  squeezed and made C-contiguous;
- a 32-byte seed is ``sha256(payload)``; 64 more SHA-256 digests of ``seed + i`` (``i`` as 4 little-endian
  bytes) give 2048 bytes, read as 512 little-endian uint32 values;
- each value is scaled to ``[-1, 1)`` and the vector is normalised to unit length, then cast to float32.

An empty text is no content (it gets no embedding), and an image blob must look like an image: its magic
bytes must say PNG, JPEG, GIF, BMP or WEBP, or the server raises :class:`UnidentifiedImageError`.

Example::

    >>> from aclip.testing import embed_text
    >>> v = embed_text("hello, world")
    >>> v.shape, v.dtype
    ((512,), dtype('float32'))
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

__all__ = [
    "EMBEDDING_DIM",
    "UnidentifiedImageError",
    "check_image",
    "embed_image_bytes",
    "embed_tensor",
    "embed_text",
    "image_format",
    "tensor_payload",
    "test_embedding",
]

#: Length of every embedding the test encoder produces.
EMBEDDING_DIM = 512

_BLOCKS = EMBEDDING_DIM * 4 // hashlib.sha256().digest_size  # 64 digests of 32 bytes = 2048 bytes


class UnidentifiedImageError(ValueError):
    """Image bytes that are not PNG, JPEG, GIF, BMP or WEBP (named after Pillow's error, as the real server).

    Example::

        >>> embed_image_bytes(b"not an image")
        Traceback (most recent call last):
        ...
        aclip.testing._encoder.UnidentifiedImageError: cannot identify image file (12 bytes starting b'not an i')
    """


def test_embedding(payload: bytes) -> npt.NDArray[np.float32]:
    """Return the 512-d float32 unit vector the test encoder assigns to ``payload``.

    Example::

        >>> v = test_embedding(b"hello, world")
        >>> round(float((v * v).sum()), 5)
        1.0
    """
    seed = hashlib.sha256(payload).digest()
    stream = b"".join(hashlib.sha256(seed + i.to_bytes(4, "little")).digest() for i in range(_BLOCKS))
    values = np.frombuffer(stream, dtype="<u4") / 2**32 * 2 - 1
    return (values / np.linalg.norm(values)).astype(np.float32)


# Keep pytest from collecting this function when a test module imports it by name.
test_embedding.__test__ = False  # type: ignore[attr-defined]


def embed_text(text: str) -> npt.NDArray[np.float32]:
    """Embedding of a (non-empty) text document, as the reference server computes it.

    Example::

        >>> bool((embed_text("a cat") == test_embedding(b"a cat")).all())
        True
    """
    return test_embedding(text.encode("utf-8"))


def image_format(data: bytes) -> str | None:
    """Name the image format of ``data`` from its magic bytes: "png", "jpeg", "gif", "bmp", "webp" or None.

    Example::

        >>> image_format(b"\\x89PNG\\r\\n\\x1a\\n..."), image_format(b"hello")
        ('png', None)
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_image(data: bytes) -> None:
    """Raise :class:`UnidentifiedImageError` unless ``data`` starts like a PNG, JPEG, GIF, BMP or WEBP file."""
    if image_format(data) is None:
        raise UnidentifiedImageError(f"cannot identify image file ({len(data)} bytes starting {data[:8]!r})")


def embed_image_bytes(data: bytes) -> npt.NDArray[np.float32]:
    """Embedding of an image given as its encoded file bytes (a blob, or what a URI loads to).

    Raises :class:`UnidentifiedImageError` when the bytes are not a known image format.

    Example::

        >>> png = b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8)
        >>> bool((embed_image_bytes(png) == test_embedding(png)).all())
        True
    """
    check_image(data)
    return test_embedding(data)


def tensor_payload(tensor: npt.ArrayLike) -> bytes:
    """The bytes a tensor is embedded from: ``repr(shape)`` of the squeezed uint8 array, then its data.

    Example::

        >>> tensor_payload(np.zeros((1, 2, 3)))
        b'(2, 3)\\x00\\x00\\x00\\x00\\x00\\x00'
    """
    a = np.ascontiguousarray(np.asarray(tensor).astype(np.uint8).squeeze())
    return repr(a.shape).encode() + a.tobytes()


def embed_tensor(tensor: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Embedding of an image given as an array (any dtype; cast to uint8 as the server does).

    Example::

        >>> img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
        >>> bool((embed_tensor(img) == embed_tensor(img[None])).all())  # squeezed first
        True
    """
    return test_embedding(tensor_payload(tensor))
