"""From what the caller passes to what the codec sends: input checks and auto-detection.

A call's input is an iterable of ``str`` (each auto-detected as a sentence or an image) or of
:class:`~aclip.Document`. Each item becomes an :class:`~aclip._models.Item`: a sentence, image bytes, a
tensor, or a uri that the server loads itself. Local files and data URIs are turned into bytes only when
their batch is about to be sent (:func:`aclip._engine.loading.load_batch`, in a worker thread the loader
can abandon), so memory holds at most the batches in flight, never the whole input.

Every item is checked when it is classified, which is before its batch is sent (the first batch is
classified before anything is sent): a str that UTF-8 cannot encode, a tensor that is no array, tags
that JSON cannot carry are each an :class:`~aclip.InputError` naming the item's position.

With ``strings_are_text`` (a client option) every str is a sentence, whatever it looks like: nothing is
read from disk or fetched because of a string. Services that embed their users' text use it.

The document-like protocol
--------------------------

Besides :class:`~aclip.Document`, any object with an ``embedding`` attribute and at least one of
``text``, ``uri``, ``blob``, ``tensor`` is taken as a document (docarray v1 Documents are the case that
matters; aclip never imports docarray). When it is classified, aclip reads these attributes, each
optional (a missing one counts as None; outside aclip's own Document ``""`` and ``b""`` do too):

==============  ===========================================================================
``text``        a str: the document is a sentence (it wins over everything else)
``blob``        bytes-like: encoded image bytes
``tensor``      an array (or nested lists) of numbers of shape [H, W, C]
``uri``         a str: a file path, an http(s) URL or a data URI of an image
``mime_type``   a str, sent along
``tags``        a dict of JSON values (str, int, float, bool, None, lists and dicts of them)
``id``          a str: index sends it (it is stored); encode, rank and search send ids of aclip's own
                and leave the caller's as they are (duplicates are fine either way)
``matches``     for rank only: the candidates, each document-like
==============  ===========================================================================

A value of another type is an :class:`~aclip.InputError` naming the position, raised before the
document's batch is sent. On the answer aclip sets ``embedding``; ``mime_type`` only when the object has
that attribute and it is empty; and ``matches`` after rank and search. It sets nothing else.

Example::

    class Note:  # document-like: an embedding to fill, and a text
        def __init__(self, text):
            self.text, self.embedding = text, None

    notes = await client.aencode([Note("a cat"), Note("a dog")])   # each note gets .embedding
"""

from __future__ import annotations

import enum
import itertools
import math
import os
import sys
from typing import Any, Callable, Iterable, Iterator, List, Mapping, NoReturn, Optional, Tuple

import numpy as np

from .._exceptions import InputError, InputTypeError
from .._models import Document, Item, Kind

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
    if isinstance(item, (bytes, bytearray)):
        hint = "; wrap image bytes as Document(blob=...)"
    elif any(hasattr(item, name) for name in _CONTENT_ATTRIBUTES):
        hint = "; a document-like object also needs an `embedding` attribute (None until aclip sets it)"
    else:
        hint = ""
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

    This is the upstream rule, right for scripts. A service that passes its users' text on takes
    :func:`text_item` instead (the client option ``strings_are_text``), so that a user's ``/etc/x.png``
    is never read from disk.
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


def text_item(value: str) -> Item:
    """A string as a sentence, whatever it looks like: paths, URLs and data URIs included.

    Example::

        text_item("https://example.com/x.png").kind   # Kind.TEXT
    """
    return Item(Kind.TEXT, value, "", "")


def check_encodable(value: str, position: int, what: str = "the string") -> None:
    """Refuse a str that UTF-8 cannot encode (a lone surrogate) with an InputError naming the position.

    Such strings come from a bad decode: ``os.fsdecode`` of a non-UTF-8 name, ``errors="surrogateescape"``,
    or a JSON ``"\\ud83d"`` escape cut in half. Cheap for ASCII. ``what`` names the value in the message.

    Example::

        check_encodable("caf\\udce9", 3)   # InputError: input 3: the string holds a lone surrogate ...
    """
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InputError(
            f"input {position}: {what} holds a lone surrogate {value[err.start]!r} at character {err.start}, "
            "which UTF-8 (and so the server) cannot take; it comes from a bad decode: decode the source "
            "with errors='replace', or drop it",
            position=position,
        ) from None


def docarray_results(*values: object) -> Optional[Callable[[List[Any]], Any]]:
    """docarray's ``DocumentArray`` when any of ``values`` (the caller's container, a Document of theirs)
    comes from docarray v1, else None. Found by the objects' type: docarray is loaded already then, and
    aclip never imports it itself. docarray v2 has no ``DocumentArray`` (its documents are typed models):
    its Documents come back in a DocumentList.

    Example::

        docarray_results(DocumentArray(), None)   # DocumentArray
        docarray_results([], Document(text="x"))  # None: aclip's own Document
    """
    for value in values:
        if type(value).__module__.split(".", 1)[0] == "docarray":
            return getattr(sys.modules.get("docarray"), "DocumentArray", None)
    return None


def is_document_like(value: object) -> bool:
    """Our Document, or anything shaped like one: an ``embedding`` attribute and a content attribute.

    A content attribute is one of ``text``, ``uri``, ``blob``, ``tensor``. The whole protocol (what is
    read, what is set) is in this module's docstring. docarray v1 Documents are the case that matters;
    aclip reads and sets their attributes without importing docarray.
    """
    if isinstance(value, Document):
        return True
    if isinstance(value, (str, bytes, type)) or not hasattr(value, "embedding"):
        return False
    return any(hasattr(value, name) for name in _CONTENT_ATTRIBUTES)


_CONTENT_ATTRIBUTES = ("text", "uri", "blob", "tensor")


def classify_document(doc: Any, position: int) -> Item:
    """Turn a Document (or a document-like object) into a checked Item: text wins; then blob, tensor, uri.

    Every attribute it reads is checked here, before the document's batch is sent (see the module's
    docstring for the protocol); a bad one is an InputError naming ``position``.

    Example::

        classify_document(Document(text="a cat", tags={"n": 1}), 0).kind   # Kind.TEXT
    """
    item = _document_content(doc, position)
    tags = _checked_tags(getattr(doc, "tags", None), position)
    return item._replace(tags=tags) if tags else item


def document_id(doc: Any, position: int) -> str:
    """A document's ``id`` as sent (``""`` when it has none), checked to be a str UTF-8 can encode."""
    doc_id = getattr(doc, "id", None) or ""
    return _checked_str(doc_id, position, "id")


def _checked_str(value: object, position: int, name: str) -> str:
    if not isinstance(value, str):
        hint = f"; pass {name}=str(...)" if isinstance(value, os.PathLike) or name == "id" else ""
        raise InputTypeError(
            f"input {position}: Document.{name} must be a str, not {type(value).__name__}{hint}", position=position
        )
    check_encodable(value, position, f"Document.{name}")
    return value


def _document_content(doc: Any, position: int) -> Item:
    text = getattr(doc, "text", None)
    uri = _checked_str(getattr(doc, "uri", None) or "", position, "uri")
    mime_type = _checked_str(getattr(doc, "mime_type", None) or "", position, "mime_type")
    blob = getattr(doc, "blob", None)
    if not isinstance(doc, Document):
        # docarray v1 reports unset fields as empty values ("" and b""), not None: empty means absent there.
        text = text or None
        blob = blob or None
    if text is not None:
        return Item(Kind.TEXT, _checked_str(text, position, "text"), uri, mime_type)
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
    try:
        array = np.asarray(tensor)
    except (ValueError, TypeError) as err:  # nested lists of different lengths, above all
        raise InputError(
            f"input {position}: Document.tensor is not an array ({str(err).rstrip('.')}); nested lists must "
            "be rectangular (every row of the same length), of shape [H, W, C]",
            position=position,
        ) from None
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


def _checked_tags(tags: object, position: int) -> Optional[Mapping[str, Any]]:
    """The tags to send (None when there are none), every value checked to be one JSON can carry.

    The wire holds tags as a protobuf Struct, which Jina reads as JSON: no NaN or Infinity, no set, no
    bytes, no numpy scalar, str keys only.
    """
    if tags is None:
        return None
    if not isinstance(tags, Mapping):
        raise InputTypeError(
            f"input {position}: Document.tags must be a dict, not {type(tags).__name__}", position=position
        )
    for key, value in tags.items():
        _check_tag_key(key, position, "Document.tags")
        _check_tag_value(value, position, f"Document.tags[{key!r}]")
    return tags or None


def _check_tag_key(key: object, position: int, where: str) -> None:
    if not isinstance(key, str):
        raise InputError(
            f"input {position}: {where} has the key {key!r} ({type(key).__name__}); tag keys must be str",
            position=position,
        )
    check_encodable(key, position, f"the key {key!r} of {where}")


def _check_tag_value(value: object, position: int, where: str) -> None:
    if value is None or isinstance(value, (bool, str, int, float)):
        if isinstance(value, str):
            check_encodable(value, position, where)
        elif isinstance(value, float) and not math.isfinite(value):
            _bad_tag(value, position, where, "JSON has no NaN or Infinity, so the server cannot read it; use None")
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not -_LARGEST_TAG_INT <= value <= _LARGEST_TAG_INT
        ):
            _bad_tag(value, position, where, "tag numbers travel as 64-bit floats; send it as a str")
    elif isinstance(value, dict):  # the wire takes dicts, not other mappings, inside tags
        for key, inner in value.items():
            _check_tag_key(key, position, where)
            _check_tag_value(inner, position, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, inner in enumerate(value):
            _check_tag_value(inner, position, f"{where}[{index}]")
    else:
        _bad_tag(value, position, where, _TAG_HINTS.get(type(value).__name__, ""))


#: Beyond this an int does not fit the float a tag number travels as.
_LARGEST_TAG_INT = int(np.finfo(np.float64).max)
_TAG_HINTS = {
    "set": "use a sorted list",
    "frozenset": "use a sorted list",
    "bytes": "decode it to a str (or base64-encode it)",
    "bytearray": "decode it to a str (or base64-encode it)",
    "ndarray": "use .tolist()",
}


def _bad_tag(value: object, position: int, where: str, hint: str) -> NoReturn:
    if not hint and type(value).__module__ == "numpy":
        hint = "use .item() for a numpy number"
    shown = repr(value)
    if len(shown) > _SHOWN_INPUT_LENGTH:
        shown = f"a value of type {type(value).__name__}"
    raise InputError(
        f"input {position}: {where} is {shown}, which a tag cannot hold: tags take JSON values (str, int, "
        f"float, bool, None, and lists and dicts of them){'; ' + hint if hint else ''}",
        position=position,
    )


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
        matches.append((document_id(match, position), classify_document(match, position)))
    return classify_document(doc, position)._replace(matches=tuple(matches))
