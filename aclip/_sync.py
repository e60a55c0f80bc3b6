"""Client: the blocking facade. Each method forwards to AsyncClient on one event loop in its own thread.

The loop runs in a daemon thread behind an anyio blocking portal, started on first use. Because the
caller's thread only waits on a future, a Client works in plain scripts, from code already inside a
running event loop (Jupyter, a sync FastAPI route), and from many threads at once.

The ``a*`` methods are coroutines that run on the caller's own event loop instead, as on AsyncClient.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import ssl
import threading
import weakref
from contextlib import AbstractContextManager
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    TypeVar,
    Union,
    overload,
)

import numpy as np
from anyio.from_thread import BlockingPortal, start_blocking_portal
from numpy.typing import NDArray

from ._callbacks import Callback
from ._client import AsyncClient, EncodeResult
from ._constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PREFETCH,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_MESSAGE_SIZE,
    NOT_GIVEN,
    NotGiven,
)
from ._document import Document, DocumentList
from ._errors import ClientClosedError
from ._fork import abandon, forget_after_fork
from ._parts import Collected, Part

__all__ = ["Client"]

T = TypeVar("T")

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


class Client:
    """A blocking client for a CLIP-as-service server, safe to share between threads.

    Takes the same arguments as :class:`AsyncClient` (``strings_are_text=True`` for a service that
    passes its users' text on). Use it as a context manager, or call :meth:`close` when done.

    Example::

        with Client("grpc://127.0.0.1:51000") as client:
            vectors = client.encode(["she smiled, with pain", "apple.png"])
    """

    def __init__(
        self,
        server: Union[str, Sequence[str]],
        *,
        credential: Optional[Mapping[str, str]] = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ssl_context: Optional[ssl.SSLContext] = None,
        ca_file: Optional[str] = None,
        client_cert: Optional[str] = None,
        client_key: Optional[str] = None,
        fetch_remote_images: bool = False,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Optional[Mapping[str, str]] = None,
        trust_env: bool = False,
        max_message_size: int = MAX_MESSAGE_SIZE,
        strings_are_text: bool = False,
    ) -> None:
        self._async = AsyncClient(
            server,
            credential=credential,
            connect_timeout=connect_timeout,
            ssl_context=ssl_context,
            ca_file=ca_file,
            client_cert=client_cert,
            client_key=client_key,
            fetch_remote_images=fetch_remote_images,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            trust_env=trust_env,
            max_message_size=max_message_size,
            strings_are_text=strings_are_text,
        )
        self._lock = threading.Lock()
        self._portal_cm: Optional[AbstractContextManager[BlockingPortal]] = None
        self._portal: Optional[BlockingPortal] = None
        self._closed = False
        forget_after_fork(self)
        _CLOSE_AT_EXIT.add(self)

    def _after_fork_in_child(self) -> None:
        """After ``os.fork()``, in the child: the loop thread did not come along; the next call starts one."""
        self._lock = threading.Lock()
        abandon((self._portal, self._portal_cm))  # its loop never runs again here; never closed
        self._portal = self._portal_cm = None

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

    def _get_portal(self) -> BlockingPortal:
        with self._lock:
            if self._closed:
                raise ClientClosedError(f"{self!r} is closed; create a new client")
            if self._portal is None:
                portal_cm = start_blocking_portal()
                self._portal = portal_cm.__enter__()
                self._portal_cm = portal_cm
            return self._portal

    def _run(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run ``function(*args, **kwargs)`` on the client's loop; an interrupt cancels it there."""
        future = self._get_portal().start_task_soon(functools.partial(function, *args, **kwargs))
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                concurrent.futures.wait([future], timeout=_SHUTDOWN_WAIT)
            raise

    def close(self) -> None:
        """Close the connections and stop the client's event-loop thread; later calls raise ClientClosedError.

        Example::

            client = Client("grpc://127.0.0.1:51000")
            try:
                client.encode(["hello"])
            finally:
                client.close()
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            portal, portal_cm = self._portal, self._portal_cm
            self._portal = self._portal_cm = None
        if portal is not None and portal_cm is not None:
            try:
                portal.call(self._async.aclose)
            finally:
                portal_cm.__exit__(None, None, None)

    async def aclose(self) -> None:
        """Close the client from inside an event loop (the loop thread is stopped too).

        Example::

            await client.aclose()
        """
        with self._lock:
            portal_running = self._portal is not None
        if portal_running:
            import anyio.to_thread

            await anyio.to_thread.run_sync(self.close)
        else:
            self._closed = True
            await self._async.aclose()

    @overload
    def encode(
        self,
        content: Iterable[str],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> NDArray[np.float32]: ...

    @overload
    def encode(
        self,
        content: Iterable[Document],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> DocumentList: ...

    @overload
    def encode(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: Optional[Callback] = ...,
        on_error: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
    ) -> Optional[EncodeResult]: ...

    def encode(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> Optional[EncodeResult]:
        """Embed sentences and images; blocking. See :meth:`AsyncClient.aencode` for the details.

        Example::

            vectors = client.encode(["she smiled, with pain", "apple.png"])   # ndarray [2, 512]
            docs = client.encode([Document(text="hi")])                     # docs[0].embedding
        """
        return self._run(
            self._async.aencode,
            content,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )

    @overload
    async def aencode(
        self,
        content: Iterable[str],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> NDArray[np.float32]: ...

    @overload
    async def aencode(
        self,
        content: Iterable[Document],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> DocumentList: ...

    @overload
    async def aencode(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: Optional[Callback] = ...,
        on_error: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
    ) -> Optional[EncodeResult]: ...

    async def aencode(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> Optional[EncodeResult]:
        """:meth:`AsyncClient.aencode` on the caller's own event loop.

        Example::

            vectors = await client.aencode(["hello world"] * 100)
        """
        self._check_open()
        return await self._async.aencode(
            content,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )

    def encode_collect(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Collected:
        """Encode, collecting failed inputs instead of raising; see :meth:`AsyncClient.aencode_collect`.

        Example::

            outcome = client.encode_collect(["fine", "", "also fine"])
            sorted(outcome.failed)   # [1]
        """
        return self._run(
            self._async.aencode_collect,
            content,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )

    def encode_iter(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Iterator[Part]:
        """Encode, yielding each request's :class:`Part` as it is answered; see :meth:`AsyncClient.aencode_iter`.

        Breaking out of the loop (or closing the generator) cancels the rest cleanly.

        Example::

            for part in client.encode_iter(open("sentences.txt").read().splitlines(), batch_size=64):
                vectors[part.positions.start : part.positions.stop] = part.embeddings
        """
        streamed = self._async.aencode_iter(
            content,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )
        portal = self._get_portal()
        with portal.wrap_async_context_manager(streamed) as parts:
            while True:
                try:
                    part = portal.call(parts.__anext__)
                except StopAsyncIteration:
                    return
                yield part

    @overload
    def rank(
        self,
        docs: Iterable[Document],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> DocumentList: ...

    @overload
    def rank(
        self,
        docs: Iterable[Document],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: Optional[Callback] = ...,
        on_error: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
    ) -> Optional[DocumentList]: ...

    def rank(
        self,
        docs: Iterable[Document],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> Optional[DocumentList]:
        """Rank each Document's matches against it; blocking. See :meth:`AsyncClient.arank`.

        Example::

            [r] = client.rank([Document(uri="rerank.png", matches=[Document(text="a cat"), Document(text="a dog")])])
            r.matches[0].scores["clip_score"].value
        """
        return self._run(
            self._async.arank,
            docs,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )

    @overload
    async def arank(
        self,
        docs: Iterable[Document],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> DocumentList: ...

    @overload
    async def arank(
        self,
        docs: Iterable[Document],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: Optional[Callback] = ...,
        on_error: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
    ) -> Optional[DocumentList]: ...

    async def arank(
        self,
        docs: Iterable[Document],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> Optional[DocumentList]:
        """:meth:`AsyncClient.arank` on the caller's own event loop.

        Example::

            ranked = await client.arank(docs)
        """
        self._check_open()
        return await self._async.arank(
            docs,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )

    @overload
    def index(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> DocumentList: ...

    @overload
    def index(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: Optional[Callback] = ...,
        on_error: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
    ) -> Optional[DocumentList]: ...

    def index(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> Optional[DocumentList]:
        """Embed and store sentences and images in the server's index; blocking. See :meth:`AsyncClient.aindex`.

        Example::

            client.index(["she smiled, with pain", "apple.png"])
        """
        return self._run(
            self._async.aindex,
            content,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )

    @overload
    async def aindex(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> DocumentList: ...

    @overload
    async def aindex(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: Optional[Callback] = ...,
        on_error: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
    ) -> Optional[DocumentList]: ...

    async def aindex(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> Optional[DocumentList]:
        """:meth:`AsyncClient.aindex` on the caller's own event loop.

        Example::

            await client.aindex(["she smiled, with pain"])
        """
        self._check_open()
        return await self._async.aindex(
            content,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )

    @overload
    def search(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        limit: int = ...,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> DocumentList: ...

    @overload
    def search(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        limit: int = ...,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: Optional[Callback] = ...,
        on_error: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
    ) -> Optional[DocumentList]: ...

    def search(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        limit: int = 10,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> Optional[DocumentList]:
        """Find the ``limit`` nearest indexed documents for each query; blocking. See :meth:`AsyncClient.asearch`.

        Example::

            [hit] = client.search(["smile"], limit=2)
            [(m.text, m.scores["cosine"].value) for m in hit.matches]
        """
        return self._run(
            self._async.asearch,
            content,
            limit=limit,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )

    @overload
    async def asearch(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        limit: int = ...,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: None = ...,
        on_error: Optional[Callback] = ...,
        on_always: None = ...,
    ) -> DocumentList: ...

    @overload
    async def asearch(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        limit: int = ...,
        batch_size: int = ...,
        prefetch: int = ...,
        parameters: Optional[Mapping[str, Any]] = ...,
        show_progress: bool = ...,
        timeout: Union[float, NotGiven, None] = ...,
        max_retries: Union[int, NotGiven] = ...,
        headers: Optional[Mapping[str, str]] = ...,
        on_done: Optional[Callback] = ...,
        on_error: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
    ) -> Optional[DocumentList]: ...

    async def asearch(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        limit: int = 10,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prefetch: int = DEFAULT_PREFETCH,
        parameters: Optional[Mapping[str, Any]] = None,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> Optional[DocumentList]:
        """:meth:`AsyncClient.asearch` on the caller's own event loop.

        Example::

            hits = await client.asearch(["smile"], limit=2)
        """
        self._check_open()
        return await self._async.asearch(
            content,
            limit=limit,
            batch_size=batch_size,
            prefetch=prefetch,
            parameters=parameters,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )

    def is_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> bool:
        """Whether every server is ready; blocking. See :meth:`AsyncClient.ais_ready`.

        Example::

            client.is_ready(timeout=2)   # True, or False within about 2 s
        """
        return self._run(self._async.ais_ready, timeout)

    async def ais_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> bool:
        """:meth:`AsyncClient.ais_ready` on the caller's own event loop.

        Example::

            ready = await client.ais_ready()
        """
        self._check_open()
        return await self._async.ais_ready(timeout)

    def readiness(self, timeout: float = DEFAULT_READY_TIMEOUT) -> List[Optional[str]]:
        """For each server, None when it is ready, else why not; blocking. See :meth:`AsyncClient.readiness`.

        Example::

            client.readiness()   # [None] for one ready server
        """
        return self._run(self._async.readiness, timeout)

    def profile(self, content: str = "", *, show: bool = True) -> Dict[str, float]:
        """Time one request and print where the time went; blocking. See :meth:`AsyncClient.aprofile`.

        Example::

            client.profile()               # an empty Document
            client.profile("apple.png")    # an image
        """
        return self._run(self._async.aprofile, content, show=show)

    async def aprofile(self, content: str = "", *, show: bool = True) -> Dict[str, float]:
        """:meth:`AsyncClient.aprofile` on the caller's own event loop.

        Example::

            times = await client.aprofile("hello, world")
        """
        self._check_open()
        return await self._async.aprofile(content, show=show)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"{self!r} is closed; create a new client")
