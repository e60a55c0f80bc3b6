"""``ReferenceServer``: the reference executor behind its protocol frontends, on the current event loop."""

from __future__ import annotations

import logging
from types import TracebackType

import anyio.to_thread

from aclip.testing._executor import ReferenceExecutor
from aclip.testing._grpc import GrpcFrontend
from aclip.testing._loader import DEFAULT_FETCH_TIMEOUT
from aclip.testing._sequencer import DEFAULT_HOLD
from aclip.testing._stats import ServerStats

__all__ = ["ReferenceServer"]

logger = logging.getLogger("aclip.testing")


class ReferenceServer:
    """A Jina-protocol server with CLIP semantics and the deterministic test encoder.

    It runs on the event loop that starts it; use :func:`~aclip.testing.serve_in_thread` to keep it off a
    test's own loop. ``grpc_port=0`` picks a free port; ``server.urls`` tells which one.

    Options for tests: ``out_of_order`` swaps the responses of each stream in pairs (see
    ``aclip.testing._sequencer``; a held response waits at most ``out_of_order_hold`` seconds for its partner
    request to arrive); ``token`` makes the server require ``authorization: <token>`` metadata;
    ``fetch_timeout`` bounds the download of an http(s) document URI. ``server.stats`` counts requests,
    responses and reordered responses.

    The server loads document URIs itself, local files and URLs included: bind it to a loopback address
    (the default) unless every client may read what the server's user can read.

    Example::

        async with ReferenceServer(out_of_order=True) as server:
            url = server.url("grpc")  # "grpc://127.0.0.1:54321"
            ...
            assert server.stats.responses_out_of_order > 0
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        *,
        out_of_order: bool = False,
        out_of_order_hold: float = DEFAULT_HOLD,
        token: str | None = None,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
    ) -> None:
        self.host = host
        self.stats = ServerStats()
        self.executor = ReferenceExecutor(stats=self.stats, fetch_timeout=fetch_timeout)
        self._grpc_port = grpc_port
        self._grpc = GrpcFrontend(
            self.executor, token=token, out_of_order=out_of_order, out_of_order_hold=out_of_order_hold
        )
        self._urls: dict[str, str] = {}
        self._started = False
        self._closed = False

    @property
    def urls(self) -> dict[str, str]:
        """Protocol name -> URL of every frontend, e.g. ``{"grpc": "grpc://127.0.0.1:54321"}`` (a copy)."""
        if not self._started:
            raise RuntimeError("the server has not been started")
        return dict(self._urls)

    def url(self, protocol: str = "grpc") -> str:
        """The URL clients use for ``protocol``.

        Example::

            client_url = server.url()  # "grpc://127.0.0.1:54321"
        """
        urls = self.urls
        if protocol not in urls:
            raise ValueError(f"this server has no {protocol!r} frontend; it serves {sorted(urls)}")
        return urls[protocol]

    async def start(self) -> None:
        """Bind and start every frontend. A server starts once; ``async with`` calls this for you."""
        if self._started or self._closed:
            raise RuntimeError("a ReferenceServer can be started only once")
        self._started = True
        port = await self._grpc.start(self.host, self._grpc_port)
        self._urls["grpc"] = f"grpc://{_url_host(self.host)}:{port}"
        logger.info("reference server listening on %s", ", ".join(self._urls.values()))

    async def aclose(self) -> None:
        """Stop every frontend, cancelling the calls in progress. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        await self._grpc.close()
        logger.info("reference server stopped")

    async def wait_for_idle(self, *, timeout: float = 10.0) -> None:
        """Wait until the server has finished every open call; TimeoutError after ``timeout`` seconds.

        Works from any thread and event loop (the waiting happens in a worker thread), so a test can call it
        while the server runs in :func:`~aclip.testing.serve_in_thread`.

        Example::

            await server.wait_for_idle(timeout=10)
            assert server.stats.calls_open == 0
        """
        if not await anyio.to_thread.run_sync(self.stats.wait_for_idle, timeout, abandon_on_cancel=True):
            raise TimeoutError(f"{self.stats.calls_open} call(s) still open after {timeout:g} s")

    async def __aenter__(self) -> ReferenceServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
