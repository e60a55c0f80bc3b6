"""AsyncClient: the operations (encode, rank, index, search, readiness, profile); the sync Client forwards to it.

Each operation says what it sends and where the answers go; the rest of a call (its options checked once,
batches, the stream, callbacks, progress) is :class:`aclip._engine.call.CallRunner`'s, over the servers
that :mod:`aclip._engine.pool` hands out: the transports of each event loop, what a forked child drops, and
the servers set aside after repeated failures.
"""

from __future__ import annotations

import dataclasses
import ssl
import time
from contextlib import asynccontextmanager
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Type,
    Union,
    overload,
)

import anyio
import numpy as np
from numpy.typing import NDArray

from ._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PREFETCH,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_TIMEOUT,
    MAX_MESSAGE_SIZE,
    NOT_GIVEN,
    NotGiven,
    TLSOptions,
    checked_headers,
    checked_retries,
    checked_timeout,
    flag,
    parse_servers,
    positive_int,
    positive_seconds,
    token_from,
)
from ._engine.call import CallKeywords, CallRunner, endpoint_and_parameters, input_length, with_defaults
from ._engine.inputs import InputMode
from ._engine.pool import TransportPool
from ._exceptions import AclipError, InputTypeError
from ._models import Collected, Document, DocumentList, Part

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._engine.batches import Batch
    from ._engine.callbacks import Callback, Response
    from ._transports.base import Transport
    from ._wire.protobuf import DataRequestProto, DocumentProto


EncodeResult = Union[NDArray[np.float32], DocumentList]


class AsyncClient:
    """An asyncio client for a CLIP-as-service server.

    ``server`` is ``scheme://host:port`` with a scheme of grpc, grpcs, http, https, websocket, websockets,
    ws or wss, or a list of such URLs: encode and rank then spread their batches over every server (each
    server's stream takes the next batch whenever the call's window has room, so the least busy takes
    most), move a failed server's batches to the others, and set a server that keeps failing aside for
    30 s; index and search use the first healthy server, since each server may keep its own index.
    ``credential={"Authorization": token}`` (or the ``CLIP_AUTH_TOKEN`` environment variable)
    authenticates every call. Connections are made on first use, one per event loop, and reused.

    TLS schemes verify the server's certificate against the system's CAs, or against ``ca_file``; pass
    ``client_cert`` (and ``client_key``) for mutual TLS, or a ready ``ssl_context`` instead of all three.

    ``timeout`` bounds how long each request may wait for its answer (default 120 s; None: no bound);
    every call can set its own. A request that gets no answer in time ends the call with
    RequestTimeoutError, so a server whose model is down cannot hang a caller forever.

    ``max_retries`` (default 2; every call can set its own) resends the unanswered requests of a stream
    that failed transiently — the server unreachable, a connection reset, a proxy's 502/503/504, a
    timeout — after an exponential backoff with jitter, on a new stream. encode, rank and search are
    retried; index is not, since it stores. Answers are placed exactly once.

    An http(s) image URL is downloaded by the client, as clip_client does (``fetch_remote_images``, on by
    default), on the event loop: image/* (or untyped) answers only, at most ``max_message_size`` bytes and
    30 s each, through environment proxies only with ``trust_env``, and never with the client's token or
    headers. ``fetch_remote_images=False`` sends the URL for the server to download instead. A service
    whose strings come from its users turns every string into a sentence (``strings_are_text``, below): a
    client that downloads what its users name makes requests from the service's own network.

    ``transport=`` replaces the network for the one server given: ``MemoryTransport(handler)`` answers each
    request in this process (``aclip.testing.ReferenceExecutor().handle`` is the reference server as a
    handler), for fast unit tests of code that uses a client.

    ``strings_are_text=True`` makes every str input a sentence, whatever it looks like: ``"cat.png"``,
    ``"/etc/passwd.png"``, ``"https://example.com/x.png"`` and ``"data:image/png;base64,..."`` are all
    embedded as text, and nothing is read from disk or fetched because of a string. Use it in a service
    that passes its users' text on: by default (the upstream rule, meant for scripts) a string that ends in
    an image extension is read as a local file, so a user could have the server embed (and so probe) any
    image-named file or symlink the service can read. It covers encode, encode_collect, encode_iter, index,
    search and profile. Documents are unchanged: their fields say what they are (``Document(uri=...)`` is
    still an image). The name says what changes: how a str is read, not which inputs are allowed.

    Example::

        async with AsyncClient("grpc://127.0.0.1:51000") as client:
            vectors = await client.aencode(["a photo of a cat", "cat.png"])
    """

    def __init__(
        self,
        server: Union[str, Sequence[str]],
        credential: Optional[Mapping[str, str]] = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ssl_context: Optional[ssl.SSLContext] = None,
        ca_file: Optional[str] = None,
        client_cert: Optional[str] = None,
        client_key: Optional[str] = None,
        fetch_remote_images: bool = True,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        headers: Optional[Mapping[str, str]] = None,
        trust_env: bool = False,
        max_message_size: int = MAX_MESSAGE_SIZE,
        strings_are_text: bool = False,
        transport: Optional[Transport] = None,
    ) -> None:
        from ._transports import ssl_context_for
        from ._transports.base import TransportOptions

        addresses = parse_servers(server)
        if transport is not None and len(addresses) != 1:
            raise ValueError("transport= serves one server: give one server URL with it (it names the server)")
        self._server = ", ".join(str(address) for address in addresses)
        token = token_from(credential)
        tls = TLSOptions(ssl_context=ssl_context, ca_file=ca_file, client_cert=client_cert, client_key=client_key)
        connection = TransportOptions(
            ssl_context=None,
            connect_timeout=positive_seconds("connect_timeout", connect_timeout),
            headers={**({"authorization": token} if token else {}), **checked_headers(headers)},
            trust_env=flag("trust_env", trust_env),
            max_message_size=positive_int("max_message_size", max_message_size),
        )
        calls = CallRunner(
            TransportPool(
                addresses,
                [dataclasses.replace(connection, ssl_context=ssl_context_for(address, tls)) for address in addresses],
                given=transport,
                owner=repr(self),
            ),
            timeout=checked_timeout(timeout),
            max_retries=checked_retries(max_retries),
            fetch_remote=bool(fetch_remote_images),
            strings_are_text=flag("strings_are_text", strings_are_text),
        )
        self._calls = calls
        self._pool = calls.pool

    def __repr__(self) -> str:
        return f"AsyncClient({self.server!r})"

    @property
    def server(self) -> str:
        """The server URL this client talks to (never the token); several are joined with ", "."""
        return self._server

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    @property
    def _closed(self) -> bool:  # the sync Client's closed state too
        return self._pool.closed

    async def aclose(self) -> None:
        """Close the client's connections; later calls raise ClientClosedError, and so do calls in flight.

        The client is marked closed first, and every transport of every event loop with it, before any
        connection closes: a call in flight then ends with ClientClosedError (never retried) rather than
        reconnecting, and no connection is made after ``aclose()`` began.

        Example::

            client = AsyncClient("grpc://127.0.0.1:51000")
            try:
                await client.aencode(["hello"])
            finally:
                await client.aclose()
        """
        await self._pool.aclose()

    @overload
    async def aencode(
        self, content: Iterable[str], *, on_done: None = ..., on_always: None = ..., **options: Unpack[CallKeywords]
    ) -> NDArray[np.float32]: ...

    @overload
    async def aencode(
        self,
        content: Iterable[Document],
        *,
        on_done: None = ...,
        on_always: None = ...,
        **options: Unpack[CallKeywords],
    ) -> DocumentList: ...

    @overload
    async def aencode(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        on_done: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
        **options: Unpack[CallKeywords],
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
        """Embed sentences and images.

        ``content`` is an iterable (list, tuple, generator) of ``str`` — each auto-detected as an image
        (a file path or http(s) URL ending in an image extension, or an image data URI) or a sentence, or
        always a sentence with the client's ``strings_are_text`` — or of :class:`Document`. Strings give a
        float32 array [N, D] in input order; Documents give the same Document objects back, in input
        order, in a :class:`DocumentList`, with ``.embedding`` set.

        ``batch_size`` inputs go in each request, at most ``prefetch`` requests are in flight.
        ``parameters`` are sent to the server; ``model_name`` in them selects ``/encode/<model_name>``.
        ``show_progress`` draws a progress bar (needs ``aclip[rich]``). ``on_done``, ``on_error`` and
        ``on_always`` are called once per answered request with a :class:`Response`; with ``on_done`` or
        ``on_always`` nothing is collected and the call returns None; with ``on_error`` a failed request
        goes to it and the stream goes on.

        Example::

            vectors = await client.aencode(["she smiled, with pain", "apple.png"])
            vectors.shape   # (2, 512)
        """
        from ._engine.results import ArrayCollector

        options = self._calls.options(
            batch_size=batch_size,
            prefetch=prefetch,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )
        outcome = await self._calls.encode(content, *endpoint_and_parameters("/encode", parameters), options)
        if not isinstance(outcome, ArrayCollector):
            return outcome
        return None if options.callbacks.replace_results else outcome.result()

    async def aencode_collect(
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
        """Encode as :meth:`aencode` does, but collect failed inputs instead of raising.

        A batch the server's executor fails on, or an input that gets no embedding (an empty text), is
        recorded in ``failed`` with its error and the other results are kept: strings give an array whose
        failed rows are NaN, Documents keep ``embedding = None``. A failure of the connection itself (after
        the retries) still raises: nothing can be collected past it.

        Example::

            outcome = await client.aencode_collect(["fine", "", "also fine"])
            outcome.failed   # {1: MissingEmbeddingError(...)}
        """
        from ._engine.results import ArrayCollector
        from ._exceptions import MissingEmbeddingError

        failed: Dict[int, Exception] = {}
        endpoint, sent = endpoint_and_parameters("/encode", parameters)

        def record(response: Response) -> None:
            assert response.status is not None
            error = response.status.error(endpoint=endpoint, positions=response.positions)
            failed.update(dict.fromkeys(response.positions, error))

        options = self._calls.options(
            batch_size=batch_size,
            prefetch=prefetch,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_error=record,
        )
        outcome = await self._calls.encode(content, endpoint, sent, options)
        assert outcome is not None  # no callback replaces the results here
        if isinstance(outcome, ArrayCollector):
            array, missing = outcome.partial()
            results: EncodeResult = array
        else:
            results, missing = outcome, [at for at, doc in enumerate(outcome) if doc.embedding is None]
        for position in missing:
            failed.setdefault(position, MissingEmbeddingError([position], total=len(results)))
        return Collected(results, dict(sorted(failed.items())))

    @asynccontextmanager
    async def aencode_iter(
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
    ) -> AsyncIterator[AsyncIterator[Part]]:
        """Encode as :meth:`aencode` does, handing out each request's results as soon as it is answered.

        Yields an async iterator of :class:`Part` objects, in completion order; each says which input
        positions it covers. Memory stays bounded by ``prefetch`` requests however long the input: a part
        not yet taken holds the stream back. Leaving the block early cancels the rest cleanly.

        Example::

            async with client.aencode_iter(sentence_generator(), batch_size=32) as parts:
                async for part in parts:
                    await store.write(part.positions, part.embeddings)
        """
        from ._engine.inputs import peek_mode
        from ._engine.results import ForwardAnswers, part_of
        from ._exceptions import BaseExceptionGroup, first_error

        options = self._calls.options(
            batch_size=batch_size,
            prefetch=prefetch,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
        )
        endpoint, sent = endpoint_and_parameters("/encode", parameters)
        total = input_length(content)
        mode, items = peek_mode(content)
        parts_in, parts_out = anyio.create_memory_object_stream[Part](0)

        async def hand_over(batch: Batch, message: DataRequestProto, docs: List[DocumentProto]) -> None:
            await parts_in.send(part_of(batch, message, docs))

        async def produce() -> None:
            async with parts_in:
                if mode is not None:
                    await self._calls.run(items, mode, ForwardAnswers(hand_over), endpoint, sent, options, total=total)

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(produce)
                async with parts_out:
                    try:
                        yield parts_out
                    finally:
                        tasks.cancel_scope.cancel()  # the caller is done: stop sending, close the stream
        except BaseExceptionGroup as group:
            error = first_error(group)
            raise error from error.__cause__

    @overload
    async def arank(
        self, docs: Iterable[Document], *, on_done: None = ..., on_always: None = ..., **options: Unpack[CallKeywords]
    ) -> DocumentList: ...

    @overload
    async def arank(
        self,
        docs: Iterable[Document],
        *,
        on_done: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
        **options: Unpack[CallKeywords],
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
        """Rank each Document's ``matches`` against it by CLIP similarity.

        Each root Document (a sentence or an image) carries ``matches``: Documents of the other modality.
        The result is the same root Documents, in input order, each with ``.embedding`` and a new
        ``.matches`` list sorted by ``scores["clip_score"]`` (softmax over that root's matches, highest
        first) with ``scores["clip_score_cosine"]`` beside it. A root without matches, or with a match
        that is not a Document, is an InputError before anything is sent. ``model_name`` in
        ``parameters`` selects ``/rank/<model_name>``. Progress and callbacks as in :meth:`aencode`.

        Example::

            d = Document(uri="rerank.png", matches=[Document(text=f"a photo of a {p}") for p in ("cat", "dog")])
            [r] = await client.arank([d])
            [(m.text, m.scores["clip_score"].value) for m in r.matches]
        """
        from ._engine.inputs import check_iterable, classify_rank_root

        options = self._calls.options(
            batch_size=batch_size,
            prefetch=prefetch,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )
        check_iterable(docs, what="docs")
        roots = list(docs)
        for position, root in enumerate(roots):
            classify_rank_root(root, position)  # every root is checked before anything is sent
        endpoint, sent = endpoint_and_parameters("/rank", parameters)
        return await self._calls.documents(
            roots, endpoint, sent, options, total=len(roots), with_matches=True, classify=classify_rank_root, like=docs
        )

    @overload
    async def aindex(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        on_done: None = ...,
        on_always: None = ...,
        **options: Unpack[CallKeywords],
    ) -> DocumentList: ...

    @overload
    async def aindex(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        on_done: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
        **options: Unpack[CallKeywords],
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
        """Embed and store sentences and images in the server's index (a Flow with an indexer).

        Strings become Documents (a sentence, or an image ``uri``) as :meth:`aencode` detects them; the
        result is the Documents, in input order, with ``.embedding``. A document indexed again under the
        same id replaces the stored one. Progress and callbacks as in :meth:`aencode`.

        Example::

            docs = await client.aindex(["she smiled, with pain", "apple.png"])
        """
        options = self._calls.options(
            batch_size=batch_size,
            prefetch=prefetch,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )
        return await self._calls.documents_from_strings(content, "/index", with_defaults(parameters), options)

    @overload
    async def asearch(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        limit: int = ...,
        on_done: None = ...,
        on_always: None = ...,
        **options: Unpack[CallKeywords],
    ) -> DocumentList: ...

    @overload
    async def asearch(
        self,
        content: Union[Iterable[str], Iterable[Document]],
        *,
        limit: int = ...,
        on_done: Optional[Callback] = ...,
        on_always: Optional[Callback] = ...,
        **options: Unpack[CallKeywords],
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
        """Find the ``limit`` indexed documents nearest to each query.

        Returns one Document per query, in input order (your own Documents, or new ones made from
        strings), whose ``matches`` are the nearest indexed documents, closest first, each with
        ``scores["cosine"].value``: a cosine *distance*, so lower is closer. ``limit`` wins over a
        ``limit`` inside ``parameters``. Progress and callbacks as in :meth:`aencode`.

        Example::

            [hit] = await client.asearch(["smile"], limit=2)
            [(m.text, m.scores["cosine"].value) for m in hit.matches]
        """
        limit = positive_int("limit", limit)
        options = self._calls.options(
            batch_size=batch_size,
            prefetch=prefetch,
            show_progress=show_progress,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            on_done=on_done,
            on_error=on_error,
            on_always=on_always,
        )
        sent = {**with_defaults(parameters), "limit": limit}
        return await self._calls.documents_from_strings(content, "/search", sent, options, with_matches=True)

    async def ais_ready(self, timeout: float = DEFAULT_READY_TIMEOUT) -> bool:
        """Whether every server is ready to serve calls, asked of its gateway's readiness probe (dry run).

        gRPC calls ``jina.JinaGatewayDryRunRPC/dry_run``, HTTP ``GET /dry_run``, WebSocket the ``/dry_run``
        socket. A real gateway runs an empty request through its executors, so a live gateway in front of
        a dead model is not ready; such a gateway usually never answers, and so the answer is False after
        ``timeout`` seconds at most (default 5). Never raises for an unreachable or refusing server.

        Example::

            if not await client.ais_ready(timeout=2):
                raise RuntimeError("the CLIP server is not ready")
        """
        return all(reason is None for reason in await self.areadiness(timeout))

    async def areadiness(self, timeout: float = DEFAULT_READY_TIMEOUT) -> List[Optional[str]]:
        """For each server, in order: None when it is ready, else why not (one line, never raises).

        Example::

            for url, reason in zip(urls, await client.areadiness()):
                print(url, reason or "ready")
        """
        wait = checked_timeout(timeout)
        transports = self._pool.transports()
        reasons: List[Optional[str]] = [f"no answer within {wait:g} s"] * len(transports)

        async def ask(index: int, transport: Any) -> None:
            try:
                with anyio.move_on_after(wait):
                    reasons[index] = await transport.check_ready()
            except AclipError as err:
                reasons[index] = str(err)

        async with anyio.create_task_group() as tasks:
            for index, transport in enumerate(transports):
                tasks.start_soon(ask, index, transport)
        return reasons

    #: The former name of :meth:`areadiness`, kept: ``await client.readiness()`` works as before.
    readiness = areadiness

    async def aprofile(self, content: str = "", *, show: bool = True) -> Dict[str, float]:
        """Time one request and break the time down by the server's own route timestamps.

        Sends one Document (empty by default; or a sentence, an image path, an image URL or a data URI)
        and returns milliseconds under upstream clip_client's names: ``"Roundtrip"``, ``"Client-server
        network"``, ``"Server"``, ``"Gateway-CLIP network"`` and ``"CLIP model"``. With ``show`` it also
        prints them as a tree (with rich when it is installed).

        Example::

            times = await client.aprofile("hello, world")
            times["Server"] <= times["Roundtrip"]   # True
        """
        from ._display import breakdown, render
        from ._engine.results import ForwardAnswers

        if not isinstance(content, str):
            raise InputTypeError(f"profile takes one str (a sentence or an image), not {type(content).__name__}")
        routes: List[Any] = []
        started = time.perf_counter()
        await self._calls.run(
            iter([content or Document()]),
            InputMode.DOCUMENTS,
            ForwardAnswers(lambda batch, message, docs: routes.extend(message.routes)),
            "/",
            {},
            self._calls.options(batch_size=1, prefetch=1),
            total=1,
            from_strings=True,
        )
        times = breakdown(time.perf_counter() - started, routes)
        if show:
            render(times)
        return times
