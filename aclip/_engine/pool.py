"""The pool: a client's transports, one per server on each event loop, and the servers set aside for now.

A transport's connections belong to the event loop that opened them, yet one client is used from many loops:
``asyncio.run`` after ``asyncio.run``, a thread per loop, a test framework's loop per test, the sync Client's
loop thread beside the caller's own. So the pool, not the client, owns:

- the transports of each loop, one per server, made on first use there and reused by every call on that
  loop. They close when the loop shuts down: ``asyncio.run`` and the other runners finalise async
  generators before they close the loop, and one generator per loop, started and never resumed, closes
  them in its ``finally``;
- closing, once for every loop: every transport is marked closed before any connection closes, so a call in
  flight ends with ClientClosedError instead of reconnecting; each loop's connections close on that loop;
- what a forked child inherits: the parent's connections and loops, which the child may neither use nor
  close; it forgets them (:func:`forget_after_fork`) and makes its own on its next call;
- the set-aside rule: a server whose stream kept failing is skipped by the calls of every loop for
  :data:`SET_ASIDE_SECONDS`; when every server is set aside, all are tried again.

A caller's own transport (``transport=``) serves every loop and closes only with the client.

Example::

    pool = TransportPool(addresses, options, given=None, owner="AsyncClient('grpc://127.0.0.1:51000')")
    await run_stream(pool.for_endpoint("/encode"), batches, settings, handler, set_aside=pool.set_aside)
    await pool.aclose()

After ``os.fork()`` a child (gunicorn's pre-fork workers, multiprocessing's "fork") inherits each
client's event-loop thread as a dead copy, and its connections as sockets shared with the parent. The
child may neither use them (no thread runs their loop) nor close them (that would end the parent's
connections), so each client forgets them (:func:`forget_after_fork`, :func:`abandon`) and starts afresh
on its next call. What it forgot is kept in :data:`_ABANDONED`, never collected, so that no finaliser
closes the parent's sockets from the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, AsyncGenerator, Dict, List, Optional, Protocol, Sequence

from .._exceptions import ClientClosedError
from .._wire.endpoints import rules_for

if TYPE_CHECKING:
    from .._config import ServerAddress
    from .._transports.base import Transport, TransportOptions


logger = logging.getLogger("aclip")


#: How long a server that keeps failing is skipped by later calls.
SET_ASIDE_SECONDS = 30.0


class LoopTransports:
    """One event loop's transports, and the async generator whose finalisation closes them."""

    def __init__(self, transports: List[Transport], closer: AsyncGenerator[None, None]) -> None:
        self.transports = transports
        self.closer = closer
        # Run it to its yield now: that registers it with the running loop's async-generator hooks.
        with contextlib.suppress(StopIteration):
            closer.__anext__().send(None)


class TransportPool:
    """The transports of one client: per event loop, per server; ``owner`` names the client in errors."""

    def __init__(
        self,
        addresses: Sequence[ServerAddress],
        options: Sequence[TransportOptions],
        *,
        given: Optional[Transport],
        owner: str,
    ) -> None:
        self._addresses = list(addresses)
        self.options = list(options)  # how each server's transports connect, in the order of ``addresses``
        self.loops: Dict[asyncio.AbstractEventLoop, LoopTransports] = {}
        self.closed = False
        self._given = given  # the caller's: used on every loop, closed only with the client
        self._owner = owner
        self._set_aside_until: Dict[int, float] = {}  # server index -> monotonic time it may be tried again
        self._lock = threading.Lock()
        forget_after_fork(self)

    def transports(self) -> List[Transport]:
        """One transport per server for the running event loop, created on first use.

        They are closed when the loop shuts down, so one client can serve ``asyncio.run`` after
        ``asyncio.run``, or a test framework's loop per test.
        """
        from .._transports import create_transport

        loop = asyncio.get_running_loop()
        with self._lock:
            if self.closed:
                raise ClientClosedError(f"{self._owner} is closed; create a new client")
            entry = self.loops.get(loop)
            if entry is None:
                for stale in [known for known in self.loops if known.is_closed()]:
                    # A loop closed without finalising: nothing can run there now, not even the finaliser
                    # of its async generator, which is therefore kept rather than collected.
                    abandon(self.loops.pop(stale))
                transports = [
                    self._given or create_transport(address, options)
                    for address, options in zip(self._addresses, self.options)
                ]
                entry = self.loops[loop] = LoopTransports(transports, self._close_at_loop_end(loop, transports))
            return entry.transports

    def for_endpoint(self, endpoint: str) -> List[Transport]:
        """The servers a call uses: every healthy one for encode and rank, the first healthy one otherwise.

        A server set aside after repeated failures is skipped until its time is up; when every server
        is set aside, all are tried again.
        """
        transports = self.transports()
        now = time.monotonic()
        healthy = [t for i, t in enumerate(transports) if self._set_aside_until.get(i, 0.0) <= now] or transports
        return healthy if rules_for(endpoint).spread else healthy[:1]

    def set_aside(self, transport: Transport) -> None:
        """Skip ``transport``'s server, on every loop, for :data:`SET_ASIDE_SECONDS` (it keeps failing)."""
        for entry in self.loops.values():
            if transport in entry.transports:
                self._set_aside_until[entry.transports.index(transport)] = time.monotonic() + SET_ASIDE_SECONDS
                logger.debug("%r is set aside for %g s after repeated failures", transport, SET_ASIDE_SECONDS)

    async def aclose(self) -> None:
        """Close the pool (see :meth:`close_soon`), and the running loop's connections before returning."""
        closer = self.close_soon(asyncio.get_running_loop())
        if closer is not None:
            await closer.aclose()  # runs its ``finally``: the transports close

    def close_soon(self, keep: Optional[asyncio.AbstractEventLoop]) -> Optional[AsyncGenerator[None, None]]:
        """Mark the pool closed, and every transport with it; start closing each loop's connections on that loop.

        Returns the closer of loop ``keep`` instead, for the caller to run there. The synchronous half of
        :meth:`aclose`, safe from any thread: the sync Client's ``close()`` calls it under its own lock, so
        the client has one closed state, and no call starts a connection once it returned.
        """
        with self._lock:
            self.closed = True
            loops, self.loops = self.loops, {}
            for entry in loops.values():
                for transport in entry.transports:
                    transport.mark_closed()
            if self._given is not None:  # kept across loops: closed with the client, not a loop
                self._given.mark_closed()
        kept = None
        for loop, entry in loops.items():
            if loop is keep:
                kept = entry.closer
            elif not loop.is_closed():
                asyncio.run_coroutine_threadsafe(entry.closer.aclose(), loop)
            else:
                abandon(entry)
        return kept

    async def _close_at_loop_end(
        self, loop: asyncio.AbstractEventLoop, transports: List[Transport]
    ) -> AsyncGenerator[None, None]:
        """Started once per loop and never resumed: the loop's shutdown closes it, and so the transports."""
        try:
            yield
        finally:
            with self._lock:
                entry = self.loops.get(loop)
                if entry is not None and entry.transports is transports:
                    del self.loops[loop]
            owned = [transport for transport in transports if transport is not self._given]
            for transport in owned:
                transport.mark_closed()  # all of them before any closes: none reconnects meanwhile
            for transport in owned:
                await transport.aclose()

    def _after_fork_in_child(self) -> None:
        """After ``os.fork()``, in the child: the parent's connections and loops are not ours to use or close."""
        self._lock = threading.Lock()
        abandon(self.loops)  # kept, never closed: closing would end the parent's connections
        self.loops = {}


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
