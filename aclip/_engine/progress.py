"""show_progress=True: a progress bar per call, drawn with rich (the optional extra ``aclip[rich]``).

rich draws one live display per console, so all calls in a process share one display while each call
gets a bar (a rich task) of its own, removed when the call ends. The display stops with the last call.
It draws on rich's default console, or on the stream given to :func:`drawing_on` (the CLI: stderr).
"""

from __future__ import annotations

import importlib.util
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional, TextIO

_lock = threading.Lock()
_display: Any = None  # the shared rich.progress.Progress while any call shows progress
_users = 0
#: The console to draw on; None is rich's default (stderr-aware stdout). Tests point it elsewhere.
console: Any = None


class CallProgress:
    """One call's bar: counts documents done, knows the total when the input has a length."""

    def __init__(self, display: Any, task: Any) -> None:
        self._display = display
        self._task = task

    def advance(self, documents: int) -> None:
        self._display.advance(self._task, documents)


def _require_rich() -> None:
    if importlib.util.find_spec("rich") is None:
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
        _release(task)


@contextmanager
def drawing_on(stream: TextIO) -> Iterator[None]:
    """Within the block, the calls' bars draw on ``stream`` (unless a display runs already)."""
    _require_rich()
    from rich.console import Console

    _acquire(Console(file=stream))
    try:
        yield
    finally:
        _release(None)


def _acquire(target: Any = None) -> Any:
    global _display, _users
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Documents per second."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} docs/s" if speed else "- docs/s")

    with _lock:
        if _display is None:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                RateColumn(),
                TimeElapsedColumn(),
            )
            _display = Progress(*columns, console=console if target is None else target, transient=False)
            _display.start()
        _users += 1
        return _display


def _release(task: Any) -> None:
    global _display, _users
    with _lock:
        _users -= 1
        if _users == 0 and _display is not None:
            _display.stop()
            _display = None
