"""What one input becomes before the codec encodes it: an :class:`Item` of a :class:`Kind`.

The classifier (:mod:`aclip._inputs`) makes items and the loader turns files and URLs into bytes; the
codec encodes them. Both import these types from here, so the codec never imports the classifier.
"""

from __future__ import annotations

import enum
from typing import Any, Mapping, NamedTuple, Optional, Tuple, Union

import numpy as np

__all__ = ["Item", "Kind"]


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
