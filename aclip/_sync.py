"""Client: the blocking facade. Its methods are built from AsyncClient's, so each signature is written once.

The blocking methods run the AsyncClient coroutine of the same name (``encode`` runs ``aencode``) on one
event loop in a daemon thread, behind an anyio blocking portal started on first use. Because the caller's
thread only waits on a future, a Client works in plain scripts, from code already inside a running event
loop (Jupyter, a sync FastAPI route), and from many threads at once.

The ``a*`` methods are AsyncClient's own, run on the caller's event loop instead. Both kinds share one
AsyncClient, and so one closed state: ``close()`` and ``aclose()`` end every call of either kind.

Each forwarder is typed from the AsyncClient method it is built from (``ParamSpec``), overloads included:
strings give an ndarray and Documents a DocumentList, from ``encode`` as from ``aencode``, and a misspelt
keyword is an error for a type checker (``tests/typing_check.py`` holds the proof).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import re
import threading
import weakref
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Concatenate,
    Coroutine,
    Iterator,
    Optional,
    ParamSpec,
    Type,
    TypeVar,
)

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._client import AsyncClient
from ._engine.pool import abandon, forget_after_fork
from ._exceptions import ClientClosedError

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: How long close() and an interrupted call wait for the loop thread to finish its cleanup.
_SHUTDOWN_WAIT = 10.0


logger = logging.getLogger("aclip")

#: Clients still open when the interpreter exits: their loop threads would keep it from exiting.
_CLOSE_AT_EXIT: weakref.WeakSet[Client] = weakref.WeakSet()


def _close_clients_at_exit() -> None:
    for client in list(_CLOSE_AT_EXIT):
        try:
            client.close()
        except Exception:  # at exit, a client that cannot close cleanly must not stop the others
            logger.debug("closing %r at exit failed", client, exc_info=True)


# Run at interpreter exit *before* non-daemon threads (a client's loop thread) are joined, which the
# standard atexit module would run after: a client left open in a script must not hang its exit.
_register_at_exit = getattr(threading, "_register_atexit", None)
if _register_at_exit is not None:
    _register_at_exit(_close_clients_at_exit)


def _twin(function: F, method: Callable[..., Any], name: str, doc: Optional[str]) -> F:
    """``function``, named ``Client.<name>`` and documented by ``doc``; its signature shown as ``method``'s."""
    function.__name__ = name
    function.__qualname__ = f"Client.{name}"
    function.__doc__ = doc
    function.__wrapped__ = method  # type: ignore[attr-defined]  # for inspect.signature() and help()
    return function


def _blocking_doc(method: Callable[..., Any]) -> str:
    """A blocking method's docstring, made from its coroutine's: the same text, the examples without
    ``await`` (``await client.aencode(`` reads ``client.encode(``), and a line saying where it runs."""
    doc = inspect.cleandoc(method.__doc__ or "")
    doc = re.sub(r"await client\.a(\w+)\(", r"client.\1(", doc)
    doc = re.sub(r":meth:`a(\w+)`", r":meth:`\1`", doc)
    summary, _, rest = doc.partition("\n")
    runs = f"Blocking: runs :meth:`AsyncClient.{method.__name__}` on the client's event-loop thread."
    return f"{summary}\n\n{runs}\n{rest}"


# Each forwarder below takes the AsyncClient method as its only argument: that is what lets a type checker
# (mypy, pyright) carry every overload of the method over to the forwarder; with a second argument mypy keeps
# only the first overload. So a blocking method's docstring is made from its coroutine's (_blocking_doc).


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Client, P], T]:
    """The blocking twin of the AsyncClient coroutine ``method`` (``aencode`` gives ``encode``), run on its loop."""

    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(functools.partial(method, self._async, *args, **kwargs))

    return _twin(call, method, method.__name__[1:], _blocking_doc(method))


def _iterated(
    method: Callable[Concatenate[AsyncClient, P], AbstractAsyncContextManager[AsyncIterator[T]]],
) -> Callable[Concatenate[Client, P], Iterator[T]]:
    """As :func:`_blocking`, for a ``method`` whose async context manager gives an async iterator: a generator.

    The context manager is entered and left in one task on the client's loop (anyio's wrapper does that), and
    each item is one ``portal.call``: no async generator or task group is carried across portal calls.
    """

    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        streamed = method(self._async, *args, **kwargs)
        portal = self._get_portal()
        with portal.wrap_async_context_manager(streamed) as items:
            while True:
                try:
                    item = portal.call(items.__anext__)
                except StopAsyncIteration:
                    return
                yield item

    return _twin(call, method, method.__name__[1:], None)  # its docstring is set in the class


def _awaited(
    method: Callable[Concatenate[AsyncClient, P], Awaitable[T]],
) -> Callable[Concatenate[Client, P], Coroutine[Any, Any, T]]:
    """The AsyncClient coroutine ``method`` as a Client coroutine of the same name, on the caller's event loop."""

    async def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        self._check_open()
        return await method(self._async, *args, **kwargs)

    return _twin(call, method, method.__name__, method.__doc__)


def _entered(method: Callable[Concatenate[AsyncClient, P], T]) -> Callable[Concatenate[Client, P], T]:
    """The AsyncClient method ``method`` (an async context manager's) as a Client method, for the caller's loop."""

    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        self._check_open()
        return method(self._async, *args, **kwargs)

    return _twin(call, method, method.__name__, method.__doc__)


def _arguments_of(
    cls: Callable[P, AsyncClient],
) -> Callable[[Callable[..., None]], Callable[Concatenate[Client, P], None]]:
    """Type the decorated ``__init__`` with the parameters of ``cls``, to which it passes them on."""

    def build(init: Callable[..., None]) -> Callable[Concatenate[Client, P], None]:
        init.__wrapped__ = cls.__init__  # type: ignore[attr-defined]  # inspect.signature(Client) shows them
        return init

    return build


class Client:
    """A blocking client for a CLIP-as-service server, safe to share between threads.

    Takes the same arguments as :class:`AsyncClient` (``strings_are_text=True`` for a service that
    passes its users' text on). Use it as a context manager, or call :meth:`close` when done.

    Each blocking method is built from the AsyncClient coroutine it names (``_blocking(AsyncClient.aencode)``),
    whose parameters, overloads and docstring it takes (its examples without ``await``). Each ``a*`` method
    is that AsyncClient coroutine, awaited on the caller's own event loop.

    Example::

        with Client("grpc://127.0.0.1:51000") as client:
            vectors = client.encode(["she smiled, with pain", "apple.png"])
    """

    @_arguments_of(AsyncClient)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._async = AsyncClient(*args, **kwargs)
        self._lock = threading.Lock()
        self._portal_cm: Optional[AbstractContextManager[BlockingPortal]] = None
        self._portal: Optional[BlockingPortal] = None
        self._portal_loop: Optional[asyncio.AbstractEventLoop] = None
        forget_after_fork(self)
        _CLOSE_AT_EXIT.add(self)

    def _after_fork_in_child(self) -> None:
        """After ``os.fork()``, in the child: the loop thread did not come along; the next call starts one."""
        self._lock = threading.Lock()
        abandon((self._portal, self._portal_cm, self._portal_loop))  # its loop never runs again here; never closed
        self._portal = self._portal_cm = self._portal_loop = None

    def __repr__(self) -> str:
        return f"Client({self._async.server!r})"

    @property
    def server(self) -> str:
        """The server URL this client talks to (never the token)."""
        return self._async.server

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._async._closed:
            raise ClientClosedError(f"{self!r} is closed; create a new client")

    def _get_portal(self) -> BlockingPortal:
        with self._lock:
            self._check_open()
            if self._portal is None:
                portal_cm = start_blocking_portal()
                portal = portal_cm.__enter__()
                self._portal_loop = portal.call(asyncio.get_running_loop)
                self._portal, self._portal_cm = portal, portal_cm
            return self._portal

    def _run(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run ``function()`` on the client's loop; an interrupt cancels it there."""
        future = self._get_portal().start_task_soon(function)
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                concurrent.futures.wait([future], timeout=_SHUTDOWN_WAIT)
            raise

    def close(self) -> None:
        """Close the connections and stop the client's event-loop thread; later calls raise ClientClosedError.

        It closes the connections the ``a*`` methods made on other event loops too (each on its own loop).

        Example::

            client = Client("grpc://127.0.0.1:51000")
            try:
                client.encode(["hello"])
            finally:
                client.close()
        """
        with self._lock:  # no call starts a loop thread or a connection once the client is marked closed
            portal, portal_cm, loop = self._portal, self._portal_cm, self._portal_loop
            self._portal = self._portal_cm = self._portal_loop = None
            closer = self._async._pool.close_soon(loop)
        if portal is not None and portal_cm is not None:
            try:
                if closer is not None:
                    portal.call(closer.aclose)  # the loop thread's connections, closed there
            finally:
                portal_cm.__exit__(None, None, None)

    async def aclose(self) -> None:
        """Close the client from inside an event loop (the loop thread is stopped too).

        Example::

            await client.aclose()
        """
        with self._lock:
            portal_running = self._portal is not None
            closer = None if portal_running else self._async._pool.close_soon(asyncio.get_running_loop())
        if portal_running:
            import anyio.to_thread

            await anyio.to_thread.run_sync(self.close)
        elif closer is not None:
            await closer.aclose()

    encode = _blocking(AsyncClient.aencode)
    aencode = _awaited(AsyncClient.aencode)

    encode_collect = _blocking(AsyncClient.aencode_collect)
    aencode_collect = _awaited(AsyncClient.aencode_collect)

    encode_iter = _iterated(AsyncClient.aencode_iter)
    encode_iter.__doc__ = """Encode, yielding each request's :class:`Part` as it is answered.

        Breaking out of the loop (or closing the generator) cancels the rest cleanly. See
        :meth:`AsyncClient.aencode_iter`.

        Example::

            for part in client.encode_iter(open("sentences.txt").read().splitlines(), batch_size=64):
                vectors[part.positions.start : part.positions.stop] = part.embeddings
        """
    aencode_iter = _entered(AsyncClient.aencode_iter)

    rank = _blocking(AsyncClient.arank)
    arank = _awaited(AsyncClient.arank)

    index = _blocking(AsyncClient.aindex)
    aindex = _awaited(AsyncClient.aindex)

    search = _blocking(AsyncClient.asearch)
    asearch = _awaited(AsyncClient.asearch)

    is_ready = _blocking(AsyncClient.ais_ready)
    ais_ready = _awaited(AsyncClient.ais_ready)

    readiness = _blocking(AsyncClient.areadiness)
    areadiness = _awaited(AsyncClient.areadiness)

    profile = _blocking(AsyncClient.aprofile)
    aprofile = _awaited(AsyncClient.aprofile)
