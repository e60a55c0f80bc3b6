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
from collections.abc import Iterable, Iterator
from typing import Optional, Union

from aclip.testing._loader import DEFAULT_FETCH_TIMEOUT
from aclip.testing._sequencer import DEFAULT_HOLD
from aclip.testing._server import PROTOCOLS, ReferenceServer

__all__ = ["serve_in_thread"]

logger = logging.getLogger("aclip.testing")


@contextlib.contextmanager
def serve_in_thread(
    host: str = "127.0.0.1",
    grpc_port: int = 0,
    *,
    http_port: int = 0,
    websocket_port: int = 0,
    protocols: Union[str, Iterable[str]] = PROTOCOLS,
    out_of_order: bool = False,
    out_of_order_hold: float = DEFAULT_HOLD,
    token: Optional[str] = None,
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
    delay: float = 0.0,
    certfile: Optional[str] = None,
    keyfile: Optional[str] = None,
    client_ca_file: Optional[str] = None,
    fail_every: int = 0,
    close_after: int = 0,
    never_answer: bool = False,
    fail_status: int = 0,
    grpc_status: str = "",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[ReferenceServer]:
    """Run a :class:`ReferenceServer` (same options) in a daemon thread for the duration of the block.

    Raises TimeoutError when the server is not listening within ``start_timeout`` seconds, and the server's
    own error when it cannot start (a port in use, say). On exit the server stops, cancelling open calls,
    and the thread is joined for at most ``stop_timeout`` seconds.

    Example::

        with serve_in_thread(out_of_order=True) as server:
            grpc_url = server.url("grpc")  # grpc://127.0.0.1:54321
            ws_url = server.url("websocket")  # ws://127.0.0.1:54323
            ...
            assert server.stats.requests_received > 0

        with serve_in_thread(protocols="http", fail_status=503) as server:
            ...  # every POST is answered 503
            server.faults.fail_status = 0  # recovered
    """
    server = ReferenceServer(
        host,
        grpc_port,
        http_port=http_port,
        websocket_port=websocket_port,
        protocols=protocols,
        out_of_order=out_of_order,
        out_of_order_hold=out_of_order_hold,
        token=token,
        fetch_timeout=fetch_timeout,
        delay=delay,
        certfile=certfile,
        keyfile=keyfile,
        client_ca_file=client_ca_file,
        fail_every=fail_every,
        close_after=close_after,
        never_answer=never_answer,
        fail_status=fail_status,
        grpc_status=grpc_status,
    )
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
