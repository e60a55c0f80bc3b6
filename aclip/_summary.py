"""DocumentList.summary(): a short table of what a result holds."""

from __future__ import annotations

import importlib.util
from typing import Any, List, Sequence, Tuple

import numpy as np

__all__ = ["print_summary", "summary_rows"]

_FIELDS = ("id", "text", "uri", "blob", "tensor", "mime_type", "embedding", "matches", "scores", "tags")


def _is_set(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, np.ndarray):
        return True
    try:
        return len(value) > 0
    except TypeError:
        return True


def summary_rows(docs: Sequence[Any]) -> List[Tuple[str, str]]:
    """(label, value) rows: the length, the embeddings' shape, and how many Documents set each field.

    Example::

        summary_rows(DocumentList([Document(text="a")]))[0]   # ('Length', '1')
    """
    rows = [("Length", str(len(docs)))]
    embeddings = [getattr(doc, "embedding", None) for doc in docs]
    present = [np.asarray(vector) for vector in embeddings if vector is not None]
    if not present:
        rows.append(("Embeddings", "none"))
    else:
        shapes = sorted({vector.shape for vector in present})
        dtypes = sorted({str(vector.dtype) for vector in present})
        shape = " or ".join(str(list(s)) for s in shapes)
        rows.append(("Embeddings", f"{len(present)} of {len(docs)}, shape {shape}, {'/'.join(dtypes)}"))
    for field in _FIELDS:
        count = sum(1 for doc in docs if _is_set(getattr(doc, field, None)))
        if count:
            rows.append((f"  {field}", f"set on {count}"))
    return rows


def print_summary(docs: Sequence[Any]) -> None:
    """Print the summary table, with rich when it is installed."""
    rows = summary_rows(docs)
    if importlib.util.find_spec("rich") is None:
        width = max(len(label) for label, _ in rows)
        print("Documents summary")
        for label, value in rows:
            print(f"  {label.ljust(width)}  {value}")
        return
    from rich import print as rich_print
    from rich.table import Table

    table = Table(title="Documents summary", show_header=False)
    table.add_column("what")
    table.add_column("value")
    for label, value in rows:
        table.add_row(label, value)
    rich_print(table)
