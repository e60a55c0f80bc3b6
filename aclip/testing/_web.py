"""What the HTTP and WebSocket frontends share: an aiohttp application on its own socket.

:class:`WebFrontend` binds the application (TLS optional), counts every HTTP request (a WebSocket
connection starts as one) in the server's stats for as long as it runs, refuses a request whose
``Authorization`` header does not equal the token with 401 before any handler runs, and answers aiohttp's
own errors (404, 405, 413, ...) with the JSON ``{"detail": ...}`` body a Jina gateway sends.

On shutdown every handler in progress is cancelled first (each frontend decides what the client then
sees), and aiohttp's cleanup waits at most :data:`SHUTDOWN_TIMEOUT` seconds for the handlers to return.

Example::

    class EchoFrontend(WebFrontend):
        protocol = "http"

        def add_routes(self, app: web.Application) -> None:
            app.router.add_get("/", lambda request: json_response({}))

    port = await EchoFrontend(executor, token=None).start("127.0.0.1", 0)
"""

from __future__ import annotations

import abc
import contextlib
import logging
import ssl
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Optional, TypeVar

import anyio
import anyio.to_thread
from aiohttp import web
from aiohttp.typedefs import Handler

from aclip._pb import docarray_pb2, jina_pb2
from aclip._wire.json import dumps
from aclip.testing._executor import ReferenceExecutor
from aclip.testing._faults import ResponseBudget
from aclip.testing._net import listen, token_matches

__all__ = [
    "INLINE_MAX_BYTES",
    "MAX_MESSAGE_SIZE",
    "SHUTDOWN_TIMEOUT",
    "WebFrontend",
    "assign_ids",
    "json_response",
    "off_loop",
]

logger = logging.getLogger("aclip.testing")

#: Largest request body (HTTP) or message (WebSocket) the server accepts: a batch of large images fits.
MAX_MESSAGE_SIZE = 256 * 1024 * 1024
#: Seconds aiohttp waits for the (already cancelled) handlers when a frontend closes.
SHUTDOWN_TIMEOUT = 2.0
#: Messages above this size are converted (JSON, protobuf) in a worker thread, not on the event loop.
INLINE_MAX_BYTES = 1 << 20

T = TypeVar("T")


async def off_loop(func: Callable[[], T], *, heavy: bool) -> T:
    """``func()``, in a worker thread when ``heavy`` (so other connections keep being served meanwhile).

    Example::

        request = await off_loop(lambda: DataRequestProto.FromString(frame), heavy=len(frame) > INLINE_MAX_BYTES)
    """
    if heavy:
        return await anyio.to_thread.run_sync(func, abandon_on_cancel=True)
    return func()


def json_response(value: Any, status: int = 200, *, headers: Optional[dict[str, str]] = None) -> web.Response:
    """``value`` as an ``application/json`` response, as a Jina gateway sends it.

    Example::

        >>> json_response({"detail": "Not Found"}, 404).status
        404
    """
    return web.Response(body=dumps(value), status=status, headers=headers, content_type="application/json")


def assign_ids(request: jina_pb2.DataRequestProto, *, fresh_request_id: bool) -> None:
    """Give a request read from JSON the ids a gateway gives it: every document without one gets a fresh id
    (docarray documents always have one), and the request a fresh id if it has none or ``fresh_request_id``.

    Example::

        >>> request = jina_pb2.DataRequestProto()
        >>> _ = request.data.docs.docs.add(text="hi")
        >>> assign_ids(request, fresh_request_id=False)
        >>> len(request.header.request_id), len(request.data.docs.docs[0].id)
        (32, 32)
    """
    if fresh_request_id or not request.header.request_id:
        request.header.request_id = uuid.uuid4().hex
    _assign_doc_ids(request.data.docs.docs)


def _assign_doc_ids(docs: Iterable[docarray_pb2.DocumentProto]) -> None:
    for doc in docs:
        if not doc.id:
            doc.id = uuid.uuid4().hex
        _assign_doc_ids(doc.chunks)
        _assign_doc_ids(doc.matches)


class WebFrontend(abc.ABC):
    """An aiohttp application serving one protocol for a :class:`ReferenceExecutor`; see the module docstring.

    Subclasses set :attr:`protocol` and implement :meth:`add_routes`; their handlers run inside
    :meth:`cancellable` so that :meth:`close` can stop them.

    Example::

        frontend = HttpFrontend(executor, token="s3cret", ssl_context=context)
        port = await frontend.start("127.0.0.1", 0)
        ...
        await frontend.close()
    """

    #: The protocol's name in ``ReferenceServer.urls`` and in log messages.
    protocol: ClassVar[str]

    def __init__(
        self, executor: ReferenceExecutor, *, token: Optional[str] = None, ssl_context: Optional[ssl.SSLContext] = None
    ) -> None:
        self.executor = executor
        self.stats = executor.stats
        #: Responses sent per connection, for the ``close_after`` fault (:mod:`aclip.testing._faults`).
        self.budget = ResponseBudget(executor.faults)
        self._token = token
        self._ssl_context = ssl_context
        self._runner: Optional[web.AppRunner] = None
        self._scopes: set[anyio.CancelScope] = set()
        self.closing = False

    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Register the protocol's handlers on ``app``."""

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the port actually bound."""

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._guard(request, handler)

        app = web.Application(client_max_size=MAX_MESSAGE_SIZE, middlewares=[guard])
        self.add_routes(app)
        sock = listen(host, port)
        runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
        try:
            await runner.setup()
            await web.SockSite(runner, sock, ssl_context=self._ssl_context).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        bound: int = sock.getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening, cancel the handlers in progress and wait (bounded) until they have returned."""
        self.closing = True
        for scope in list(self._scopes):
            scope.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    @contextlib.contextmanager
    def cancellable(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope that :meth:`close` cancels; ``scope.cancelled_caught`` tells a handler it happened."""
        scope = anyio.CancelScope()
        if self.closing:
            scope.cancel()
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        with self.stats.track_call():
            self.stats.saw_headers(request.headers.items())
            if self._token is not None and not token_matches(request.headers.get("Authorization"), self._token):
                self.stats.calls_rejected += 1
                logger.info(
                    "%s request from %s refused: missing or wrong authorization token", self.protocol, request.remote
                )
                return json_response({"detail": "missing or invalid authorization token"}, 401)
            try:
                return await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
                return json_response({"detail": exc.reason}, exc.status, headers=headers)
