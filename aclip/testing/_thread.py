"""``serve_in_thread``: a reference server on its own event loop in a daemon thread.

Tests should not run the server on their own event loop: its CPU work would make timing-sensitive tests
(timeouts, "the loop keeps ticking") flaky. This helper starts the server in a thread, waits a bounded time
for it to listen, and on exit stops it and joins the thread with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, Protocol, cast, overload

from aclip.testing._server import ReferenceServer

__all__ = ["serve_in_thread"]

logger = logging.getLogger("aclip.testing")

_P = ParamSpec("_P")

_Serving = AbstractContextManager[ReferenceServer]


class _ServeInThread(Protocol[_P]):
    """The type of :func:`serve_in_thread`: a ready server and the timeouts, or ``_P``, ReferenceServer's options.

    A ParamSpec cannot gain keyword arguments, so type checkers see the timeouts on the first form only.
    """

    @overload
    def __call__(
        self, server: ReferenceServer, /, *, start_timeout: float = 10.0, stop_timeout: float = 10.0
    ) -> _Serving: ...

    @overload
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _Serving: ...


def _typed_with_the_options_of(
    make: Callable[_P, ReferenceServer],
) -> Callable[[Callable[..., _Serving]], _ServeInThread[_P]]:
    """Type a ``serve_in_thread`` implementation with ``make``'s parameters, without restating them."""

    def typed(serve: Callable[..., _Serving]) -> _ServeInThread[_P]:
        return cast("_ServeInThread[_P]", serve)

    return typed


@_typed_with_the_options_of(ReferenceServer)
@contextlib.contextmanager
def serve_in_thread(
    *args: Any, start_timeout: float = 10.0, stop_timeout: float = 10.0, **options: Any
) -> Iterator[ReferenceServer]:
    """Run a :class:`ReferenceServer` in a daemon thread for the duration of the block.

    Pass a server you made, ``serve_in_thread(ReferenceServer(token="t"))``, or the options to make one with,
    ``serve_in_thread(token="t")`` (:class:`ReferenceServer`'s own parameters, which type checkers check
    against its signature). Either way this helper starts the server and stops it on exit.

    Raises TimeoutError when the server is not listening within ``start_timeout`` seconds, and the server's
    own error when it cannot start (a port in use, say). On exit the server stops, cancelling open calls,
    and the thread is joined for at most ``stop_timeout`` seconds. Type checkers accept the two timeouts
    beside a ready server only: ``serve_in_thread(ReferenceServer(delay=1.0), start_timeout=30)``.

    Example::

        with serve_in_thread(out_of_order=True) as server:
            grpc_url = server.url("grpc")  # grpc://127.0.0.1:54321
            ws_url = server.url("websocket")  # ws://127.0.0.1:54323
            ...
            assert server.stats.requests_received > 0

        with serve_in_thread(ReferenceServer(protocols="http", fail_status=503)) as server:
            ...  # every POST is answered 503
            server.faults.fail_status = 0  # recovered
    """
    if args and isinstance(args[0], ReferenceServer):
        if len(args) > 1 or options:
            raise TypeError("serve_in_thread() takes a ReferenceServer or the options to make one, not both")
        server = args[0]
    else:
        server = ReferenceServer(*args, **options)
    runner = _Runner(server)
    thread = threading.Thread(target=runner.run, name="aclip-reference-server", daemon=True)
    thread.start()
    try:
        if not runner.ready.wait(start_timeout):
            raise TimeoutError(f"the reference server did not start within {start_timeout:g} s")
        if runner.error is not None:
            raise runner.error
        yield server
    finally:
        runner.stop()
        thread.join(stop_timeout)
        if thread.is_alive():
            logger.warning("the reference server thread did not stop within %g s; leaving it", stop_timeout)


class _Runner:
    """Owns the thread's event loop: start the server, report readiness, serve until told to stop."""

    def __init__(self, server: ReferenceServer) -> None:
        self.server = server
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if self.ready.is_set():  # the caller has its server already: nobody to hand this to
                logger.exception("the reference server thread failed")
            self.error = self.error or exc  # before start: re-raised in the caller's thread
        finally:
            self.ready.set()

    async def _main(self) -> None:
        stop = asyncio.Event()
        with self._lock:
            self._loop, self._stop = asyncio.get_running_loop(), stop
            if self._stop_requested:
                return
        try:
            await self.server.start()
        except BaseException as exc:
            self.error = exc
            await self.server.aclose()
            return
        self.ready.set()
        try:
            await stop.wait()
        finally:
            await self.server.aclose()

    def stop(self) -> None:
        """Ask the server to stop (from any thread); returns at once."""
        with self._lock:
            self._stop_requested = True
            loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop.set)
