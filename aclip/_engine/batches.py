"""Cutting a call's input into batches, lazily, with every item's position recorded and its wire id chosen."""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, NoReturn, Optional, Tuple

from .._exceptions import InputTypeError
from .._models import Document, Item, Kind
from .inputs import (
    InputMode,
    check_encodable,
    classify_document,
    classify_string,
    document_id,
    is_document_like,
    mode_of,
    text_item,
)


@dataclass
class Batch:
    """One request's worth of inputs: positions ``start .. start + len(items) - 1`` of the caller's input."""

    seq: int
    start: int
    items: List[Item]
    ids: List[str]
    sources: Optional[List[Any]] = None  # the caller's Documents, in Documents mode
    request_id: str = ""
    request: Any = field(default=None, repr=False)  # the DataRequest message, kept until answered (for retries)
    deadline: float = math.inf  # when the current attempt must have been answered (anyio's clock)

    @property
    def positions(self) -> range:
        return range(self.start, self.start + len(self.ids))


class ChosenIds(List[str]):
    """The document ids aclip chose for one batch's wire: unique within the call, one per input position.

    Why not the caller's own ids: a real CLIP server addresses documents by id while it embeds them, so of
    two documents with id ``"x"`` in one request only the last gets an embedding, and a rank whose matches
    share ids goes wrong. And ids of aclip's own let the result handlers check, with one list comparison
    per batch, that the answer's documents are the batch's in order (a server that reorders them would
    otherwise give misplaced rows without an error). The caller's Documents keep their own ids: only the
    wire carries these. Where the caller's ids must stay on the wire (index stores them) the batch's ids
    are a plain list instead, and answers are matched by position only.

    ``match_ids[offset]`` maps the wire ids of the matches sent with the batch's document ``offset``
    (rank) to the caller's own match ids; it is empty when no document of the batch had matches.
    """

    __slots__ = ("match_ids",)

    def __init__(self, ids: Iterable[str], match_ids: Optional[List[Dict[str, str]]] = None) -> None:
        super().__init__(ids)
        self.match_ids: List[Dict[str, str]] = match_ids or []


def match_wire_id(root_id: str, index: int) -> str:
    """The wire id of match ``index`` of the document whose wire id is ``root_id``: unique as the root's is."""
    return f"{root_id}.{index}"


def iter_batches(
    items: Iterator[Any],
    *,
    mode: InputMode,
    batch_size: int,
    collected: Optional[List[Any]] = None,
    classify: Callable[[Any, int], Item] = classify_document,
    strings_are_text: bool = False,
    keep_ids: bool = False,
    from_strings: bool = False,
) -> Iterator[Batch]:
    """Yield batches of ``batch_size`` classified items, reading ``items`` only as batches are needed.

    On the wire every input gets an id of aclip's choosing (:class:`ChosenIds`: a per-call random prefix
    and its position; a rank match, its root's and its index), which the answer must carry back in order.
    With ``keep_ids`` (index, which stores them) Documents go with their own ids instead (duplicates and
    empty ids are fine: answers are matched by position). In Documents mode every
    Document is also appended to ``collected``, the call's result list, and turned into an item by
    ``classify`` (rank passes one that also takes the matches). With ``strings_are_text`` every string
    is a sentence (:func:`~aclip._engine.inputs.text_item`), else it is auto-detected. With ``from_strings``
    (index, search) a string in Documents mode becomes a new Document (a sentence, or an image by its ``uri``),
    classified once. Each batch's items are checked as it is made, so a bad item raises before its batch (or,
    in the first batch, anything) is sent.
    """
    classify_str = text_item if strings_are_text else classify_string
    prefix = os.urandom(8).hex()
    start = 0
    for seq in itertools.count():
        chunk = list(itertools.islice(items, batch_size))
        if not chunk:
            return
        if mode is InputMode.STRINGS:
            for offset, value in enumerate(chunk):
                if not isinstance(value, str):
                    _mismatch(value, start + offset, mode)
                if not value.isascii():
                    check_encodable(value, start + offset)
            batch_items: List[Item] = [classify_str(value) for value in chunk]
            yield Batch(seq=seq, start=start, items=batch_items, ids=_chosen_ids(prefix, start, len(chunk)))
        else:
            batch_items = []
            ids = []
            for offset, doc in enumerate(chunk):
                if from_strings and isinstance(doc, str):
                    item = _string_item(doc, start + offset, classify_str)
                    chunk[offset] = Document(text=doc) if item.kind is Kind.TEXT else Document(uri=doc)
                elif not is_document_like(doc):
                    _mismatch(doc, start + offset, mode)
                else:
                    item = classify(doc, start + offset)
                batch_items.append(item)
                ids.append(document_id(chunk[offset], start + offset))
            if collected is not None:
                collected.extend(chunk)
            if not keep_ids:
                batch_items, ids = _with_chosen_ids(batch_items, _chosen_ids(prefix, start, len(chunk)))
            yield Batch(seq=seq, start=start, items=batch_items, ids=ids, sources=chunk)
        start += len(chunk)


def _string_item(value: str, position: int, classify: Callable[[str], Item]) -> Item:
    if not value.isascii():
        check_encodable(value, position)
    return classify(value)


def _chosen_ids(prefix: str, start: int, count: int) -> ChosenIds:
    return ChosenIds(f"{prefix}{position:016x}" for position in range(start, start + count))


def _with_chosen_ids(items: List[Item], ids: ChosenIds) -> Tuple[List[Item], ChosenIds]:
    """The items with wire ids of aclip's for their matches too (rank), and ``ids`` knowing the caller's."""
    if not any(item.matches for item in items):
        return items, ids
    renamed: List[Item] = []
    for item, root_id in zip(items, ids):
        wire_to_caller: Dict[str, str] = {}
        matches = []
        for index, (caller_id, match) in enumerate(item.matches):
            wire_id = match_wire_id(root_id, index)
            wire_to_caller[wire_id] = caller_id
            matches.append((wire_id, match))
        ids.match_ids.append(wire_to_caller)
        renamed.append(item._replace(matches=tuple(matches)) if matches else item)
    return renamed, ids


def _mismatch(value: Any, position: int, mode: InputMode) -> NoReturn:
    mode_of(value, position)  # raises for a type that is neither str nor Document
    first = "str" if mode is InputMode.STRINGS else "Document"
    raise InputTypeError(
        f"input {position} is a {type(value).__name__} but input 0 is a {first}; pass all str or all "
        "Documents in one call (wrap sentences as Document(text=...))",
        position=position,
    )
