"""What aclip draws for a person: progress bars, profile()'s tree, DocumentList.summary()'s table.

Each is drawn with rich when it is installed (the optional extra ``aclip[rich]``), else as plain text (the
progress bar needs rich). These are the only places the library prints.

- Progress (``show_progress=True``): rich draws one live display per console, so all calls in a process
  share one display while each call gets a bar (a rich task) of its own, removed when the call ends. The
  display stops with the last call. It draws on rich's default console, or on the stream given to
  :func:`drawing_on` (the CLI: stderr).
- Profile: the gateway's route spans the server's whole handling of the request; the model's route (the
  last hop) spans the model alone. So: server = gateway span, model = model span, gateway-to-model network
  = server - model, client-server network = round trip - server. Durations come from one clock each, so
  the client's and the server's clocks need not agree.
- Summary: the length, the embeddings' shape, and how many Documents set each field.

Example::

    with call_progress(True, total=1000, description="/encode") as bar:
        bar.advance(8)
"""

from __future__ import annotations

import importlib.util
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple

import numpy as np

if TYPE_CHECKING:
    from ._pb.jina_pb2 import RouteProto

_lock = threading.Lock()
_progress: Any = None  # the shared rich.progress.Progress while any call shows progress
_users = 0
#: The console to draw on; None is rich's default (stderr-aware stdout). Tests point it elsewhere.
console: Any = None


def _has_rich() -> bool:
    return importlib.util.find_spec("rich") is not None


def _show(plain: List[str], rich_renderable: Callable[[], Any]) -> None:
    """Print ``rich_renderable()`` with rich when it is installed, else the ``plain`` lines."""
    if not _has_rich():
        print("\n".join(plain))
        return
    from rich import print as rich_print

    rich_print(rich_renderable())


# -- progress --------------------------------------------------------------------------------------------


class CallProgress:
    """One call's bar: counts documents done, knows the total when the input has a length."""

    def __init__(self, display: Any, task: Any) -> None:
        self._display = display
        self._task = task

    def advance(self, documents: int) -> None:
        self._display.advance(self._task, documents)


def _require_rich() -> None:
    if not _has_rich():
        raise ImportError("show_progress=True draws with rich, which is not installed: pip install 'aclip[rich]'")


@contextmanager
def call_progress(show: bool, *, total: Optional[int], description: str) -> Iterator[Optional[CallProgress]]:
    """A bar for the duration of the block when ``show``; None otherwise."""
    if not show:
        yield None
        return
    _require_rich()
    display = _acquire()
    task = display.add_task(description, total=total)
    try:
        yield CallProgress(display, task)
    finally:
        display.refresh()
        _release()


@contextmanager
def drawing_on(stream: TextIO) -> Iterator[None]:
    """Within the block, the calls' bars draw on ``stream`` (unless a display runs already)."""
    _require_rich()
    from rich.console import Console

    _acquire(Console(file=stream))
    try:
        yield
    finally:
        _release()


def _acquire(target: Any = None) -> Any:
    global _progress, _users
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Documents per second."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} docs/s" if speed else "- docs/s")

    with _lock:
        if _progress is None:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TimeElapsedColumn(),
            )
            _progress = Progress(*columns, console=console if target is None else target, transient=False)
            _progress.start()
        _users += 1
        return _progress


def _release() -> None:
    global _progress, _users
    with _lock:
        _users -= 1
        if _users == 0 and _progress is not None:
            _progress.stop()
            _progress = None


# -- profile ---------------------------------------------------------------------------------------------

#: (key, parent key) of each line of the tree, in display order; the keys are upstream clip_client's.
_PROFILE_LINES = (
    ("Roundtrip", None),
    ("Client-server network", "Roundtrip"),
    ("Server", "Roundtrip"),
    ("Gateway-CLIP network", "Server"),
    ("CLIP model", "Server"),
)


def _span_ms(route: RouteProto) -> float:
    if not (route.HasField("start_time") and route.HasField("end_time")):
        return 0.0
    nanos: int = route.end_time.ToNanoseconds() - route.start_time.ToNanoseconds()
    return max(nanos, 0) / 1e6


def breakdown(roundtrip_seconds: float, routes: Sequence[RouteProto]) -> Dict[str, float]:
    """Milliseconds for each part; parts the server did not report (no routes) count as network.

    Example::

        breakdown(0.016, response.routes)
        # {'Roundtrip': 16.0, 'Client-server network': 12.0, 'Server': 4.0, ...}
    """
    roundtrip = max(roundtrip_seconds, 0.0) * 1e3
    server = min(_span_ms(routes[0]), roundtrip) if routes else 0.0
    model = min(_span_ms(routes[-1]), server) if len(routes) > 1 else 0.0
    return {
        "Roundtrip": roundtrip,
        "Client-server network": roundtrip - server,
        "Server": server,
        "Gateway-CLIP network": server - model,
        "CLIP model": model,
    }


def _share(times: Dict[str, float], key: str, parent: Optional[str]) -> str:
    """``"12ms  75%"``: the part's milliseconds and its share of its parent's."""
    whole = times[parent] if parent else 0.0
    percent = 100 if parent is None else (round(100 * times[key] / whole) if whole > 0 else 0)
    return f"{times[key]:.0f}ms  {percent}%"


def tree_lines(times: Dict[str, float]) -> List[str]:
    """The tree as plain text lines, e.g. ``"├── Client-server network  12ms  75%"``."""
    last = {"Roundtrip": "Server", "Server": "CLIP model"}  # each parent's last child
    lines = []
    for key, parent in _PROFILE_LINES:
        indent = "    " if parent == "Server" else ""
        branch = "" if parent is None else ("└── " if last[parent] == key else "├── ")
        lines.append(f"{indent}{branch}{key}  {_share(times, key, parent)}")
    return lines


def render(times: Dict[str, float]) -> None:
    """Print the tree: with rich when it is installed, as plain text otherwise."""

    def tree() -> Any:
        from rich.tree import Tree

        nodes: Dict[Optional[str], Any] = {}
        for key, parent in _PROFILE_LINES:
            text = f"[bold]{key}[/]  {_share(times, key, parent)}"
            nodes[key] = Tree(text) if parent is None else nodes[parent].add(text)
        return nodes["Roundtrip"]

    _show(tree_lines(times), tree)


# -- summary ---------------------------------------------------------------------------------------------

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
    for name in _FIELDS:
        count = sum(1 for doc in docs if _is_set(getattr(doc, name, None)))
        if count:
            rows.append((f"  {name}", f"set on {count}"))
    return rows


def print_summary(docs: Sequence[Any]) -> None:
    """Print the summary table, with rich when it is installed."""
    rows = summary_rows(docs)

    def table() -> Any:
        from rich.table import Table

        drawn = Table(title="Documents summary", show_header=False)
        drawn.add_column("what")
        drawn.add_column("value")
        for label, value in rows:
            drawn.add_row(label, value)
        return drawn

    width = max(len(label) for label, _ in rows)
    _show(["Documents summary", *(f"  {label.ljust(width)}  {value}" for label, value in rows)], table)
