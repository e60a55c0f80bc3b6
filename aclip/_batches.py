"""Cutting a call's input into batches, lazily, with every item's position recorded."""

from __future__ import annotations

import itertools
import os
from typing import Any, Callable, Iterator, List, NoReturn, Optional

from ._errors import InputTypeError
from ._inputs import InputMode, Item, classify_document, classify_string, is_document_like, mode_of
from ._streaming import Batch

__all__ = ["iter_batches"]


def iter_batches(
    items: Iterator[Any],
    *,
    mode: InputMode,
    batch_size: int,
    collected: Optional[List[Any]] = None,
    classify: Callable[[Any, int], Item] = classify_document,
) -> Iterator[Batch]:
    """Yield batches of ``batch_size`` classified items, reading ``items`` only as batches are needed.

    Strings get ids made of a per-call random prefix and their position; Documents keep their own ids
    (duplicates and empty ids are fine: answers are matched by position). In Documents mode every
    Document is also appended to ``collected``, the call's result list, and turned into an item by
    ``classify`` (rank passes one that also takes the matches).
    """
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
            batch_items: List[Item] = [classify_string(value) for value in chunk]
            ids = [f"{prefix}{position:016x}" for position in range(start, start + len(chunk))]
            yield Batch(seq=seq, start=start, items=batch_items, ids=ids)
        else:
            batch_items = []
            for offset, doc in enumerate(chunk):
                if not is_document_like(doc):
                    _mismatch(doc, start + offset, mode)
                batch_items.append(classify(doc, start + offset))
            if collected is not None:
                collected.extend(chunk)
            ids = [getattr(doc, "id", "") or "" for doc in chunk]
            yield Batch(seq=seq, start=start, items=batch_items, ids=ids, sources=chunk)
        start += len(chunk)


def _mismatch(value: Any, position: int, mode: InputMode) -> NoReturn:
    mode_of(value, position)  # raises for a type that is neither str nor Document
    first = "str" if mode is InputMode.STRINGS else "Document"
    raise InputTypeError(
        f"input {position} is a {type(value).__name__} but input 0 is a {first}; pass all str or all "
        "Documents in one call (wrap sentences as Document(text=...))",
        position=position,
    )
