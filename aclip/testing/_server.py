"""``ReferenceServer``: the reference executor behind its protocol frontends, on the current event loop."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Optional, Union

import anyio
import anyio.to_thread

from aclip.testing._executor import ReferenceExecutor
from aclip.testing._faults import Faults
from aclip.testing._grpc import GrpcFrontend
from aclip.testing._http import HttpFrontend
from aclip.testing._loader import DEFAULT_FETCH_TIMEOUT
from aclip.testing._net import server_tls_context, url_host
from aclip.testing._sequencer import DEFAULT_HOLD
from aclip.testing._stats import ServerStats
from aclip.testing._web import WebFrontend
from aclip.testing._websocket import WebSocketFrontend

__all__ = ["PROTOCOLS", "ReferenceServer"]

logger = logging.getLogger("aclip.testing")

#: Every protocol a reference server can serve, in the order ``server.urls`` lists them.
PROTOCOLS = ("grpc", "http", "websocket")
_SCHEMES = {"grpc": ("grpc", "grpcs"), "http": ("http", "https"), "websocket": ("ws", "wss")}


class ReferenceServer:
    """A Jina-protocol server with CLIP semantics and the deterministic test encoder.

    It runs on the event loop that starts it; use :func:`~aclip.testing.serve_in_thread` to keep it off a
    test's own loop. It serves gRPC, HTTP and WebSocket at once, each on its own port (``protocols``
    chooses some; a port of 0 picks a free one); ``server.urls`` tells where, e.g. ``{"grpc":
    "grpc://127.0.0.1:54321", "http": "http://127.0.0.1:54322", "websocket": "ws://127.0.0.1:54323"}``.
    All frontends share one executor and one ``server.stats``.

    Options for tests: ``out_of_order`` swaps the responses of each gRPC or WebSocket stream in pairs (see
    ``aclip.testing._sequencer``; a held response waits at most ``out_of_order_hold`` seconds for its
    partner request to arrive; each HTTP POST is one request, so HTTP ignores it); ``token`` makes every
    protocol require it (gRPC ``authorization`` metadata, HTTP and WebSocket ``Authorization`` header, the
    raw token without "Bearer"); ``certfile`` and ``keyfile`` (PEM paths) make every frontend speak TLS,
    with the URL schemes grpcs, https and wss, and ``client_ca_file`` (PEM) also makes it require a client
    certificate signed by that CA (mutual TLS); ``delay`` makes every request take that many seconds more
    (a slow model: the time shows in the ``clip_t`` route); ``fetch_timeout`` bounds the download of an
    http(s) document URI.

    Fault options, for clients' failure tests (all off by default; ``aclip.testing._faults`` tells more):

    - ``fail_every=N``: every N-th request the server receives (numbered from 1 across the whole server and
      every protocol, in arrival order) fails as an executor error: ``header.status`` ERROR with the
      exception ``InjectedFailure`` (executor ``CLIPEncoder``), its documents returned without embeddings,
      the stream going on. HTTP answers it 200, as any executor error. Counted in ``stats.error_responses``;
      ``stats.injected_failures`` lists the failed requests' ``request_id``.
    - ``close_after=N``: a gRPC stream or a WebSocket connection carries at most N responses; where it
      would carry one more the server drops it: gRPC resets the stream (RST_STREAM; a grpclib client raises
      ``StreamTerminatedError`` and may lose responses received but not yet read), WebSocket closes the TCP
      connection without a close frame (the client reads the N responses, then sees code 1006). HTTP: once
      N POSTs were answered on a keep-alive connection, the next POST on it closes the connection
      unanswered (aiohttp raises ``ServerDisconnectedError``). Counted in ``stats.connections_dropped``.
    - ``never_answer=True``: requests are read and counted (``stats.requests_received`` and
      ``stats.requests_unanswered``) but never answered, on every protocol; those calls stay open until the
      client gives up or the server stops (then they end as at any shutdown: gRPC UNAVAILABLE, WebSocket
      1001, HTTP 503).
    - ``fail_status=503`` (HTTP only): every POST is answered with that status (400-599) and
      ``{"detail": "..."}``, without reaching the executor. Counted in ``stats.status_failures``.
    - ``grpc_status="UNAVAILABLE"`` (gRPC only; a ``grpclib.const.Status`` name, any case): every call ends
      with that status before any request is read. Counted in ``stats.status_failures``.

    The options are only initial values: ``server.faults`` (a :class:`~aclip.testing.Faults`) is read on every
    request and response, and a test may assign its attributes from its own thread while the server runs,
    e.g. ``server.faults.fail_every = 1`` (fail from now on), then ``= 0`` (recovered). Requests already
    waiting under ``never_answer`` stay unanswered when it is switched off.

    ``/index`` stores documents in ``server.executor`` for later ``/search`` requests, for the server's
    lifetime; ``server.executor.clear_index()`` empties that index and ``server.executor.indexed_count``
    tells how many documents it holds.

    Documents of one request that share an id are merged as a real CLIP server merges them: of those of
    one modality with the same non-empty id only the last gets an embedding (``aclip.testing._executor``
    says why).

    The server loads document URIs itself, local files and URLs included: bind it to a loopback address
    (the default) unless every client may read what the server's user can read.

    Example::

        async with ReferenceServer(out_of_order=True) as server:
            url = server.url("websocket")  # "ws://127.0.0.1:54323"
            ...
            assert server.stats.responses_out_of_order > 0

        async with ReferenceServer(fail_every=2) as server:
            ...  # requests 2, 4, 6, ... fail with an executor error
            server.faults.fail_every = 0  # from the next request on, nothing fails
    """

    def __init__(
        self,
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
    ) -> None:
        self.host = host
        self.protocols = _check_protocols(protocols)
        if certfile is None and (keyfile is not None or client_ca_file is not None):
            raise ValueError("keyfile and client_ca_file need a certfile")
        self.tls = certfile is not None
        self.stats = ServerStats()
        #: The fault options, read on every request: tests may change them while the server runs.
        self.faults = Faults(
            fail_every=fail_every,
            close_after=close_after,
            never_answer=never_answer,
            fail_status=fail_status,
            grpc_status=grpc_status,
        )
        self.executor = ReferenceExecutor(
            stats=self.stats, fetch_timeout=fetch_timeout, delay=delay, faults=self.faults
        )
        self._ports = {"grpc": grpc_port, "http": http_port, "websocket": websocket_port}

        def tls(alpn: str) -> Optional[ssl.SSLContext]:
            if certfile is None:
                return None
            return server_tls_context(certfile, keyfile, alpn=alpn, client_ca_file=client_ca_file)

        web_tls = tls("http/1.1")
        frontends: dict[str, Union[GrpcFrontend, WebFrontend]] = {
            "grpc": GrpcFrontend(
                self.executor,
                token=token,
                out_of_order=out_of_order,
                out_of_order_hold=out_of_order_hold,
                ssl_context=tls("h2"),
            ),
            "http": HttpFrontend(self.executor, token=token, ssl_context=web_tls),
            "websocket": WebSocketFrontend(
                self.executor,
                token=token,
                ssl_context=web_tls,
                out_of_order=out_of_order,
                out_of_order_hold=out_of_order_hold,
            ),
        }
        self._frontends = {name: frontends[name] for name in self.protocols}
        self._urls: dict[str, str] = {}
        self._started = False
        self._closed = False

    @property
    def urls(self) -> dict[str, str]:
        """Protocol name -> URL of every frontend, e.g. ``{"grpc": "grpc://127.0.0.1:54321", ...}`` (a copy).

        The keys are the protocol names ``grpc``, ``http`` and ``websocket`` whatever the schemes (with TLS:
        ``grpcs://``, ``https://``, ``wss://``).
        """
        if not self._started:
            raise RuntimeError("the server has not been started")
        return dict(self._urls)

    def url(self, protocol: str = "grpc") -> str:
        """The URL clients use for ``protocol``.

        Example::

            client_url = server.url()  # "grpc://127.0.0.1:54321"
            http_url = server.url("http")  # "http://127.0.0.1:54322", or "https://..." with TLS
        """
        urls = self.urls
        if protocol not in urls:
            raise ValueError(f"this server has no {protocol!r} frontend; it serves {sorted(urls)}")
        return urls[protocol]

    async def start(self) -> None:
        """Bind and start every frontend. A server starts once; ``async with`` calls this for you.

        When a frontend cannot listen (a port in use, say) the ones already started are stopped and the
        OSError, naming the protocol and the address, propagates.
        """
        if self._started or self._closed:
            raise RuntimeError("a ReferenceServer can be started only once")
        self._started = True
        try:
            for name, frontend in self._frontends.items():
                port = await self._start_one(name, frontend)
                self._urls[name] = f"{_SCHEMES[name][self.tls]}://{url_host(self.host)}:{port}"
        except BaseException:
            await self.aclose()
            raise
        logger.info("reference server listening on %s", ", ".join(self._urls.values()))

    async def _start_one(self, name: str, frontend: Union[GrpcFrontend, WebFrontend]) -> int:
        try:
            return await frontend.start(self.host, self._ports[name])
        except OSError as exc:
            where = f"{url_host(self.host)}:{self._ports[name]}"
            raise OSError(exc.errno, f"cannot serve {name} on {where}: {exc.strerror or exc}") from exc

    async def aclose(self) -> None:
        """Stop every frontend, cancelling the calls in progress. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        async with anyio.create_task_group() as tg:
            for frontend in self._frontends.values():
                tg.start_soon(frontend.close)
        logger.info("reference server stopped")

    async def wait_for_idle(self, *, timeout: float = 10.0) -> None:
        """Wait until no call is open on any protocol; TimeoutError after ``timeout`` seconds.

        Calls are gRPC streams, WebSocket connections and HTTP requests.

        Works from any thread and event loop (the waiting happens in a worker thread), so a test can call it
        while the server runs in :func:`~aclip.testing.serve_in_thread`.

        Example::

            await server.wait_for_idle(timeout=10)
            assert server.stats.calls_open == 0
        """
        if not await anyio.to_thread.run_sync(self.stats.wait_for_idle, timeout, abandon_on_cancel=True):
            raise TimeoutError(f"{self.stats.calls_open} call(s) still open after {timeout:g} s")

    async def wait_for_stats(self, predicate: Callable[[ServerStats], bool], *, timeout: float = 10.0) -> None:
        """Wait until ``predicate(server.stats)`` holds; TimeoutError after ``timeout`` seconds.

        Checked at once and whenever a call opens or ends or a fault is counted (see
        :meth:`ServerStats.wait_for`). Works from any thread and event loop, as :meth:`wait_for_idle` does.

        Example::

            server.faults.never_answer = True
            ...  # a client sends a request
            await server.wait_for_stats(lambda stats: stats.requests_unanswered == 1, timeout=10)
        """
        if not await anyio.to_thread.run_sync(self.stats.wait_for, predicate, timeout, abandon_on_cancel=True):
            raise TimeoutError(f"the server's stats did not reach the expected state within {timeout:g} s")

    async def __aenter__(self) -> ReferenceServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _check_protocols(protocols: Union[str, Iterable[str]]) -> tuple[str, ...]:
    """The protocols to serve, in the order of :data:`PROTOCOLS`; a string may list them comma-separated."""
    names = protocols.split(",") if isinstance(protocols, str) else list(protocols)
    wanted = {name.strip().lower() for name in names if name.strip()}
    unknown = wanted.difference(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; choose from {list(PROTOCOLS)}")
    if not wanted:
        raise ValueError(f"serve at least one protocol of {list(PROTOCOLS)}")
    return tuple(name for name in PROTOCOLS if name in wanted)
