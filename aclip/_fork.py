"""After ``os.fork()``: what a child process must drop of the clients it inherited.

A forked child (gunicorn's pre-fork workers, multiprocessing's "fork") inherits each client's event-loop
thread as a dead copy, and its connections as sockets shared with the parent. The child may neither use
them (no thread runs their loop) nor close them (that would end the parent's connections), so each client
forgets them and starts afresh on its next call. What it forgot is kept in :data:`_ABANDONED`, never
collected, so that no finaliser closes the parent's sockets from the child.

Example::

    class Client:
        def __init__(self) -> None:
            forget_after_fork(self)          # self._after_fork_in_child() runs in every forked child

        def _after_fork_in_child(self) -> None:
            abandon((self._thread, self._loop))
            self._thread = self._loop = None
"""

from __future__ import annotations

import os
import weakref
from typing import Any, List, Protocol

__all__ = ["abandon", "forget_after_fork"]


class _ForgetsAfterFork(Protocol):
    def _after_fork_in_child(self) -> None: ...


_ABANDONED: List[Any] = []
_REGISTERED: weakref.WeakSet[Any] = weakref.WeakSet()


def forget_after_fork(client: _ForgetsAfterFork) -> None:
    """Call ``client._after_fork_in_child()`` in every child forked while ``client`` is alive."""
    _REGISTERED.add(client)


def abandon(resources: Any) -> None:
    """Keep ``resources`` referenced for good, closed never (they belong to another process or loop)."""
    _ABANDONED.append(resources)


def _after_fork_in_child() -> None:
    for client in list(_REGISTERED):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
