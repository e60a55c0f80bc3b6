"""From what the caller passes to what the codec sends: input checks, auto-detection, lazy loading.

A call's input is an iterable of ``str`` (each auto-detected as a sentence or an image) or of
:class:`~aclip.Document`. Each item becomes an :class:`Item`: a sentence, image bytes, a tensor, or a
uri that the server loads itself. Local files and data URIs are turned into bytes only when their batch
is about to be sent (:func:`load_batch`, which :mod:`aclip._loading` runs in a worker thread it can
abandon), so memory holds at most the batches in flight, never the whole input.
"""

from __future__ import annotations

import base64
import binascii
import enum
import errno
import itertools
import os
import stat
from typing import Any, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from ._document import Document
from ._errors import InputError, InputTypeError

__all__ = [
    "InputMode",
    "Item",
    "Kind",
    "classify_document",
    "classify_string",
    "load_batch",
    "needs_loading",
    "peek_mode",
]

_IMAGE_MIME_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "jfif": "image/jpeg",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "ico": "image/vnd.microsoft.icon",
    "avif": "image/avif",
    "heic": "image/heic",
    "heif": "image/heif",
    "ppm": "image/x-portable-pixmap",
    "pgm": "image/x-portable-graymap",
    "pbm": "image/x-portable-bitmap",
    "svg": "image/svg+xml",
}
_MAX_PATH_LENGTH = 4096
_SHOWN_INPUT_LENGTH = 60


class Kind(enum.IntEnum):
    """What an input item is, as far as the wire is concerned."""

    TEXT = 0  # payload: the sentence
    BLOB = 1  # payload: encoded image bytes
    TENSOR = 2  # payload: a C-contiguous ndarray [H, W, C]
    REMOTE_URI = 3  # payload: None; the server loads ``uri`` (or aclip._fetch, with fetch_remote_images)
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


class InputMode(enum.Enum):
    """Strings in give an array out; Documents in give Documents out."""

    STRINGS = "strings"
    DOCUMENTS = "documents"


def _shown(value: str) -> str:
    """The value for an error message: long ones keep their start and their end (a file's name)."""
    if len(value) > _SHOWN_INPUT_LENGTH:
        value = value[:20] + "..." + value[-(_SHOWN_INPUT_LENGTH - 23) :]
    return repr(value)


def check_iterable(inputs: object, *, what: str = "inputs") -> None:
    """Refuse a bare str/bytes or a non-iterable with a TypeError that shows the fix."""
    if isinstance(inputs, (str, bytes)):
        raise InputTypeError(
            f"{what} must be an iterable of str or Document, not a single {type(inputs).__name__}; "
            f"wrap it in a list: [{_shown(inputs) if isinstance(inputs, str) else '...'}]"
        )
    if is_document_like(inputs):
        raise InputTypeError(f"{what} must be an iterable of Documents, not a single Document; wrap it in a list")
    if not hasattr(inputs, "__iter__"):
        raise InputTypeError(
            f"{what} must be an iterable (list, tuple, generator) of str or Document, not {type(inputs).__name__}"
        )


def peek_mode(inputs: Iterable[Any]) -> Tuple[Optional[InputMode], Iterator[Any]]:
    """Find the input mode from the first item; return it and an iterator over all items.

    The mode is None for an empty input. The returned iterator yields the first item again.
    """
    check_iterable(inputs)
    iterator = iter(inputs)
    for first in iterator:
        return mode_of(first, 0), itertools.chain((first,), iterator)
    return None, iter(())


def mode_of(item: object, position: int) -> InputMode:
    """The input mode an item belongs to, or an InputTypeError naming its position."""
    if isinstance(item, str):
        return InputMode.STRINGS
    if is_document_like(item):
        return InputMode.DOCUMENTS
    hint = "; wrap image bytes as Document(blob=...)" if isinstance(item, (bytes, bytearray)) else ""
    raise InputTypeError(
        f"input {position} is a {type(item).__name__}; every input must be a str or a Document{hint}",
        position=position,
    )


def _image_mime_from_path(path: str) -> str:
    """``"a/b.PNG"`` -> ``"image/png"``; ``""`` when the name does not end in an image extension."""
    dot = path.rfind(".")
    if dot < 0:
        return ""
    return _IMAGE_MIME_BY_EXTENSION.get(path[dot + 1 :].lower(), "")


def _data_uri_media_type(uri: str) -> str:
    header = uri[5 : uri.find(",")] if "," in uri else ""
    return header.split(";", 1)[0].strip().lower()


def _url_path(url: str) -> str:
    end = len(url)
    for mark in ("?", "#"):
        cut = url.find(mark)
        if cut >= 0:
            end = min(end, cut)
    return url[:end]


def classify_string(value: str) -> Item:
    """Auto-detect a string: an image (file path, http(s) URL, data URI of an image type) or a sentence.

    - ``data:image/...`` is an image; any other data URI is a sentence.
    - A single ``http://`` or ``https://`` URL is an image, which the server loads.
    - A line that ends in an image file extension (``.png``, ``.jpg``, ...) is a local image file, read
      when its batch is sent; ``file://`` is stripped.
    - Anything else, ``""`` included, is a sentence.
    """
    if value.startswith("data:"):
        media_type = _data_uri_media_type(value)
        if media_type.startswith("image/"):
            return Item(Kind.DATA_URI, value, "", media_type)
        return Item(Kind.TEXT, value, "", "")
    if value.startswith(("http://", "https://")) and not any(c.isspace() for c in value):
        return Item(Kind.REMOTE_URI, None, value, _image_mime_from_path(_url_path(value)))
    if "." in value and len(value) <= _MAX_PATH_LENGTH and "\n" not in value:
        mime = _image_mime_from_path(value)
        if mime:
            path = value[7:] if value.startswith("file://") else value
            return Item(Kind.LOCAL_FILE, path, value, mime)
    return Item(Kind.TEXT, value, "", "")


def is_document_like(value: object) -> bool:
    """Our Document, or anything shaped like one: content attributes and a settable ``embedding``.

    docarray v1 Documents are the case that matters; aclip reads and sets their attributes without
    importing docarray.
    """
    if isinstance(value, Document):
        return True
    if isinstance(value, (str, bytes, type)) or not hasattr(value, "embedding"):
        return False
    return any(hasattr(value, name) for name in _CONTENT_ATTRIBUTES)


_CONTENT_ATTRIBUTES = ("text", "uri", "blob", "tensor")


def classify_document(doc: Any, position: int) -> Item:
    """Turn a Document (or a document-like object) into an Item: text wins over uri; then blob, tensor, uri."""
    item = _document_content(doc, position)
    tags = getattr(doc, "tags", None)
    return item._replace(tags=tags) if tags else item


def _document_content(doc: Any, position: int) -> Item:
    text = getattr(doc, "text", None)
    uri = getattr(doc, "uri", None) or ""
    mime_type = getattr(doc, "mime_type", None) or ""
    blob = getattr(doc, "blob", None)
    if not isinstance(doc, Document):
        # docarray v1 reports unset fields as empty values ("" and b""), not None: empty means absent there.
        text = text or None
        blob = blob or None
    if text is not None:
        if not isinstance(text, str):
            raise InputTypeError(
                f"input {position}: Document.text must be a str, not {type(text).__name__}", position=position
            )
        return Item(Kind.TEXT, text, uri, mime_type)
    if blob is not None:
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise InputTypeError(
                f"input {position}: Document.blob must be bytes, not {type(blob).__name__}", position=position
            )
        return Item(Kind.BLOB, bytes(blob), uri, mime_type)
    tensor = getattr(doc, "tensor", None)
    if tensor is not None:
        return Item(Kind.TENSOR, _checked_tensor(tensor, position), uri, mime_type)
    if uri:
        if uri.startswith("data:"):
            return Item(Kind.DATA_URI, uri, "", mime_type or _data_uri_media_type(uri))
        if "://" in uri and not uri.startswith("file://"):
            return Item(Kind.REMOTE_URI, None, uri, mime_type or _image_mime_from_path(_url_path(uri)))
        path = uri[7:] if uri.startswith("file://") else uri
        return Item(Kind.LOCAL_FILE, path, uri, mime_type or _image_mime_from_path(path))
    return Item(Kind.EMPTY, None, "", mime_type)


def _checked_tensor(tensor: object, position: int) -> np.ndarray:
    array = np.asarray(tensor)
    if array.ndim != 3:
        raise InputError(
            f"input {position}: Document.tensor must have shape [H, W, C], got shape {list(array.shape)}; "
            "add a channel axis for a grey image (tensor[..., None])",
            position=position,
        )
    if array.dtype.kind not in "biuf":
        raise InputError(
            f"input {position}: Document.tensor must hold numbers, got dtype {array.dtype}", position=position
        )
    return np.ascontiguousarray(array)


def classify_rank_root(doc: Any, position: int) -> Item:
    """A root Document for rank: its content, plus its matches (each a Document) to be scored against it."""
    if not is_document_like(doc):
        raise InputTypeError(
            f"input {position}: rank takes Documents whose .matches hold the candidates, not {type(doc).__name__}",
            position=position,
        )
    if not getattr(doc, "matches", None):
        raise InputError(
            f"input {position}: Document {getattr(doc, 'id', '')!r} has no matches to rank; set .matches to a "
            "list of Documents of the other modality (texts for an image, images for a text)",
            position=position,
        )
    matches = []
    for index, match in enumerate(doc.matches):
        if not is_document_like(match):
            raise InputTypeError(
                f"input {position}: match {index} is a {type(match).__name__}; every match must be a Document",
                position=position,
            )
        matches.append((getattr(match, "id", "") or "", classify_document(match, position)))
    return classify_document(doc, position)._replace(matches=tuple(matches))


_LOADED_BY_CLIENT = (Kind.LOCAL_FILE, Kind.DATA_URI)


def _loaded_kinds(fetch_remote: bool) -> Tuple[Kind, ...]:
    return (*_LOADED_BY_CLIENT, Kind.REMOTE_URI) if fetch_remote else _LOADED_BY_CLIENT


def needs_loading(items: Sequence[Item], *, fetch_remote: bool = False) -> bool:
    """Whether a batch has items to read, decode or (with ``fetch_remote``) download before it is sent.

    Cheap, so that a batch of plain sentences pays nothing for loading.
    """
    kinds = _loaded_kinds(fetch_remote)
    return any(
        item.kind in kinds or needs_loading([m for _, m in item.matches], fetch_remote=fetch_remote) for item in items
    )


def load_batch(items: List[Item], start: int) -> List[Item]:
    """Read the local files and decode the data URIs of one batch (matches included); blocking.

    The engine does not call this on the event loop: :func:`aclip._loading.load_batch_items` runs it in a
    worker thread it can abandon, and downloads remote images on the loop. ``start`` is the input position
    of ``items[0]``, for error messages.

    Example::

        loaded = load_batch([classify_string("cat.png")], start=0)  # [Item(Kind.BLOB, b"\\x89PNG...", ...)]
    """
    return [_load_with_matches(item, start + offset) for offset, item in enumerate(items)]


def _load_with_matches(item: Item, position: int) -> Item:
    loaded = _load(item, position) if item.kind in _LOADED_BY_CLIENT else item
    if item.matches:
        loaded = loaded._replace(matches=tuple((mid, _load_with_matches(m, position)) for mid, m in item.matches))
    return loaded


def _load(item: Item, position: int) -> Item:
    assert isinstance(item.payload, str)
    if item.kind == Kind.DATA_URI:
        return item._replace(kind=Kind.BLOB, payload=_decode_data_uri(item.payload, position))
    return item._replace(kind=Kind.BLOB, payload=_read_image_file(item.payload, position))


# Opening never blocks (a FIFO without a writer would block a plain open() for ever), never makes a
# terminal ours, and the descriptor does not leak into child processes.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_image_file(path: str, position: int) -> bytes:
    """The bytes of a regular file (a symlink to one included); anything else is an InputError at once.

    A FIFO, a character device or a socket named like an image would block a reader for ever, or stream
    without end: it is opened without blocking and refused on what ``fstat`` says, before any read.
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise InputError(
            f"input {position}: {_shown(path)} looks like an image file, but there is no such file; "
            "fix the path, or pass Document(text=...) to send it as a sentence",
            position=position,
        ) from None
    except IsADirectoryError:
        raise _directory(path, position) from None
    except OSError as err:
        if err.errno == errno.ENXIO:  # a socket, or a device without a driver
            raise _not_regular(path, position, "a socket or a device") from None
        raise InputError(f"input {position}: cannot read image file {_shown(path)}: {err}", position=position) from err
    except ValueError as err:  # a NUL character in the path
        raise InputError(f"input {position}: {_shown(path)} is not a usable path: {err}", position=position) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise _directory(path, position)
        if not stat.S_ISREG(mode):
            raise _not_regular(path, position, _special_kind(mode))
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    with open(descriptor, "rb", closefd=True) as handle:
        try:
            return handle.read()
        except OSError as err:
            raise InputError(
                f"input {position}: cannot read image file {_shown(path)}: {err}", position=position
            ) from err


def _directory(path: str, position: int) -> InputError:
    return InputError(f"input {position}: {_shown(path)} is a directory, not an image file", position=position)


def _not_regular(path: str, position: int, kind: str) -> InputError:
    return InputError(
        f"input {position}: {_shown(path)} is not a regular file ({kind}); aclip reads images only from "
        "regular files (a FIFO, device or socket could block or never end); copy the image to a file",
        position=position,
    )


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _decode_data_uri(uri: str, position: int) -> bytes:
    comma = uri.find(",")
    if comma < 0:
        raise InputError(f"input {position}: malformed data URI {_shown(uri)} (no comma)", position=position)
    header, data = uri[5:comma], uri[comma + 1 :]
    if header.endswith(";base64"):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(
                f"input {position}: the data URI {_shown(uri)} is not valid base64", position=position
            ) from None
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(data)
