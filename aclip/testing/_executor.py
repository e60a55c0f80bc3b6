"""What the reference server does with one request, independent of the protocol that carried it.

:meth:`ReferenceExecutor.handle` takes a parsed ``DataRequestProto`` and returns the response a Jina
gateway in front of a CLIP executor would send: the header echoed (``request_id``, ``exec_endpoint``, an
empty ``target_executor``), the parameters echoed, two routes ``gateway`` and ``clip_t`` with real
timestamps, and the documents with their embeddings. Frontends (gRPC, HTTP, WebSocket) only move bytes
to and from this class.

The ``gateway`` route always ends in a later whole millisecond than it started: when the work took less,
the answer waits for the next millisecond to begin (under a millisecond) before it is stamped, and answers
waiting for the same millisecond resume in the order they started waiting. A real gateway's hop to its
executor takes a few milliseconds, and the upstream ``clip_client.Client.profile()`` divides by the
gateway's span in whole milliseconds (``ToMilliseconds()``), so a shorter span would make it fail with
``ZeroDivisionError``.

Endpoints are looked up in a dispatch table, with CLIP-as-service's semantics:

- ``/``, ``/encode`` and ``/encode/<model_name>`` encode, and so does any unknown endpoint (the real
  executor's default handler encodes);
- ``/rank`` and ``/rank/<model_name>`` embed every root and its matches, then score and sort the matches
  (:mod:`aclip.testing._rank`);
- ``/index`` encodes and stores the documents in the executor's in-memory
  :class:`~aclip.testing._store.IndexStore` (an upsert by id); :meth:`ReferenceExecutor.clear_index` empties
  it and :attr:`ReferenceExecutor.indexed_count` tells how many documents it holds;
- ``/search`` encodes the queries and gives each the ``limit`` (default 10) nearest stored documents as
  matches, scored by cosine distance (:mod:`aclip.testing._store`, :mod:`aclip.testing._scoring`).

Documents that share an id are merged as a CLIP server merges them: of the documents of one modality
(texts; images) in one request that have the same non-empty id, only the last gets an embedding (its
own); the others come back without one. The reason is in the real server, not in the protocol:
``clip_server`` gathers each modality's documents in a docarray ``DocumentArray`` and sets their embeddings
through it (``minibatch.embeddings = ...``), and docarray addresses documents by id there, so every row
meant for ``"x"`` lands on the last ``"x"`` (measured with docarray 0.21.1, which jina 3.27's CLIP servers
run; ``tests/interop`` shows it on a real gateway). ``/rank`` embeds roots and matches together, as the
real ``rank`` does (``encode(docs['@r,m'])``), so there a match that lost its embedding fails the request.
An empty id is never shared: docarray gives a document without an id a random one. Clients that reuse ids
must not put them on the wire; the merge is here so that tests notice when they do.

An exception inside a handler never fails the stream: that one response carries ``header.status`` ERROR
with ``exception {name, args, stacks, executor}`` (the executor's route carries the same status) and the
request's documents unchanged, without embeddings.

The executor applies two of the server's :class:`~aclip.testing._faults.Faults`: ``fail_every`` (an
``InjectedFailure`` raised inside the handler, reported as any executor error) and ``never_answer``
(:meth:`ReferenceExecutor.handle` waits until cancelled).

Example::

    >>> import anyio
    >>> from aclip._pb import jina_pb2
    >>> request = jina_pb2.DataRequestProto()
    >>> request.header.request_id = "r1"
    >>> _ = request.data.docs.docs.add(text="hello")
    >>> response = anyio.run(ReferenceExecutor().handle, request)
    >>> [route.executor for route in response.routes], len(response.data.docs.docs[0].embedding.dense.buffer)
    (['gateway', 'clip_t'], 2048)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, MutableSequence

import anyio.to_thread
from google.protobuf import struct_pb2

from aclip._pb import docarray_pb2, jina_pb2
from aclip._wire.protobuf import decode_ndarray, encode_ndarray
from aclip.testing._encoder import check_image, tensor_payload, test_embedding
from aclip.testing._faults import Faults, InjectedFailure
from aclip.testing._loader import DEFAULT_FETCH_TIMEOUT, load_uri
from aclip.testing._rank import rank_matches
from aclip.testing._stats import ServerStats
from aclip.testing._store import IndexStore, set_matches

__all__ = [
    "DEFAULT_SEARCH_LIMIT",
    "EXECUTOR_NAME",
    "ROUTE_NAME",
    "EndpointHandler",
    "ReferenceExecutor",
    "bool_parameter",
    "error_status",
    "limit_parameter",
]

logger = logging.getLogger("aclip.testing")

#: Name of the executor's route in every response (the name CLIP-as-service Flows give it).
ROUTE_NAME = "clip_t"
#: ``exception.executor`` in error responses: the class name of the real CLIP executor.
EXECUTOR_NAME = "CLIPEncoder"
#: How many matches ``/search`` returns per query without a ``limit`` parameter.
DEFAULT_SEARCH_LIMIT = 10

Docs = MutableSequence[docarray_pb2.DocumentProto]
#: An endpoint: fills in ``docs`` (the response's own copy) in place, may raise to fail the request.
EndpointHandler = Callable[[Docs, struct_pb2.Struct], Awaitable[None]]

# Above either limit the CPU part of a request runs in a worker thread instead of on the event loop.
_INLINE_MAX_DOCS = 32
_INLINE_MAX_BYTES = 1 << 20


class ReferenceExecutor:
    """Answers Jina DataRequests like a gateway in front of a CLIP executor with the test encoder.

    The executor owns the index that ``/index`` fills and ``/search`` searches (``executor.store``); it
    lives as long as the executor, i.e. the server. Tests reset it with :meth:`clear_index`.

    Example::

        executor = ReferenceExecutor()
        response = await executor.handle(request)  # DataRequestProto in, DataRequestProto out
        executor.indexed_count  # documents stored by /index so far
        executor.clear_index()
    """

    def __init__(
        self,
        *,
        stats: ServerStats | None = None,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        delay: float = 0.0,
        faults: Faults | None = None,
    ) -> None:
        self.stats = stats if stats is not None else ServerStats()
        #: The server's fault options (``fail_every`` and ``never_answer`` are applied here).
        self.faults = faults if faults is not None else Faults()
        self._requests_handled = 0  # numbers the requests for fail_every
        self._fetch_timeout = fetch_timeout
        self._delay = delay
        #: The documents ``/index`` stored, searched by ``/search``.
        self.store = IndexStore()
        self._millisecond_waits = _MillisecondWaits()  # the gateway route's end (see the module docstring)
        self._endpoints: dict[str, EndpointHandler] = {
            "/": self.encode,
            "/encode": self.encode,
            "/rank": self.rank,
            "/index": self.index,
            "/search": self.search,
        }

    @property
    def indexed_count(self) -> int:
        """How many documents ``/index`` has stored (distinct ids; re-indexing an id replaces it)."""
        return self.store.count

    def clear_index(self) -> None:
        """Forget every document ``/index`` stored; safe to call from any thread.

        Example::

            with serve_in_thread() as server:
                ...  # index, search
                server.executor.clear_index()
                assert server.executor.indexed_count == 0
        """
        self.store.clear()

    def handler_for(self, endpoint: str) -> EndpointHandler:
        """The handler for ``exec_endpoint``: ``/encode/<model>`` is ``/encode`` and ``/rank/<model>`` is
        ``/rank``; unknown endpoints encode."""
        for base in ("/encode", "/rank"):
            if endpoint.startswith(base + "/"):
                endpoint = base
        return self._endpoints.get(endpoint, self.encode)

    async def hang_while_dead(self) -> None:
        """With ``faults.never_answer`` (a dead model), wait until cancelled; otherwise return at once."""
        if self.faults.never_answer:
            self.stats.add("requests_unanswered")
            await asyncio.Event().wait()  # nobody sets it: until cancelled

    async def handle(self, request: jina_pb2.DataRequestProto) -> jina_pb2.DataRequestProto:
        """Process one request; exceptions become an error response, never propagate (except cancellation).

        With ``faults.never_answer`` it never returns: it waits until cancelled (the server stops).
        """
        self._requests_handled += 1
        number = self._requests_handled  # before any await: requests are numbered in the order they arrive
        await self.hang_while_dead()
        clock = _Clock()
        response = jina_pb2.DataRequestProto()
        gateway = response.routes.add(executor="gateway")
        gateway.start_time.FromNanoseconds(clock.now())
        response.header.CopyFrom(request.header)
        response.header.ClearField("status")
        response.header.target_executor = ""
        response.parameters.CopyFrom(request.parameters)
        executor = response.routes.add(executor=ROUTE_NAME)
        executor.start_time.FromNanoseconds(clock.now())
        if self._delay > 0:  # a slow model (tests of concurrency, timeouts, profile): the executor's time
            await asyncio.sleep(self._delay)
        try:
            if self.faults.fails(number):
                every = self.faults.fail_every
                raise InjectedFailure(
                    f"failure injected by the reference server (fail_every={every}, request {number})"
                )
            response.data.docs.CopyFrom(_request_docs(request))
            handler = self.handler_for(request.header.exec_endpoint)
            await handler(response.data.docs.docs, request.parameters)
        except Exception as exc:
            if isinstance(exc, InjectedFailure):
                self.stats.injected_failures.append(request.header.request_id)
            logger.info("request %r failed: %r", request.header.request_id, exc)
            self.stats.add("error_responses")  # after injected_failures: wakes wait_for
            status = error_status(exc)
            response.header.status.CopyFrom(status)
            executor.status.CopyFrom(status)
            response.data.Clear()
            response.data.docs.CopyFrom(_request_docs(request, strict=False))
        executor.end_time.FromNanoseconds(clock.now())
        gateway_end = await self._millisecond_waits.reading_after(clock, gateway.start_time.ToNanoseconds())
        gateway.end_time.FromNanoseconds(gateway_end)
        return response

    async def encode(self, docs: Docs, parameters: struct_pb2.Struct) -> None:
        """``/encode``: fill ``embedding`` of every text and image doc; honour ``drop_image_content``."""
        drop_image_content = bool_parameter(parameters, "drop_image_content", default=False)
        await self.embed(docs)
        if drop_image_content:
            for doc in docs:
                doc.ClearField("blob")
                doc.ClearField("tensor")

    async def embed(self, docs: Iterable[docarray_pb2.DocumentProto]) -> None:
        """Fill ``embedding`` (and a missing ``mime_type``) of every doc with content, as ``/encode`` does.

        Docs without content are left alone; a URI is loaded, a blob that is no image raises. Docs that
        share an id are merged as a CLIP server merges them (see the module docstring): only the last of
        each modality gets an embedding.
        """
        jobs = _merge_shared_ids([job for doc in docs if (job := await self._plan(doc)) is not None])
        if len(jobs) > _INLINE_MAX_DOCS or sum(job.size for job in jobs) > _INLINE_MAX_BYTES:
            await anyio.to_thread.run_sync(_run_jobs, jobs)
        else:
            _run_jobs(jobs)

    async def rank(self, docs: Docs, parameters: struct_pb2.Struct) -> None:
        """``/rank``: embed roots and matches, then score and sort each root's matches (see ``_rank``).

        ``drop_image_content`` is not applied: the real server returns the blobs of ranked documents.
        """
        await self.embed([doc for root in docs for doc in (root, *root.matches)])
        rank_matches(docs)

    async def index(self, docs: Docs, parameters: struct_pb2.Struct) -> None:
        """``/index``: encode as ``/encode`` does, then store the embedded docs (an upsert by id)."""
        await self.encode(docs, parameters)
        self.store.upsert(docs)

    async def search(self, docs: Docs, parameters: struct_pb2.Struct) -> None:
        """``/search``: encode the queries, then give each its ``limit`` nearest stored docs as matches."""
        limit = limit_parameter(parameters)
        await self.encode(docs, parameters)
        for query, found in zip(docs, self.store.search(docs, limit)):
            set_matches(query, found)

    async def _plan(self, doc: docarray_pb2.DocumentProto) -> _Job | None:
        """What to embed for ``doc`` (None: nothing). Loads a URI; raises for a blob that is no image."""
        content = doc.WhichOneof("content")
        if content == "text" and doc.text:
            return _Job(doc, doc.text.encode("utf-8"), mime_type="text/plain", modality="text")
        if content == "blob" and doc.blob:
            check_image(doc.blob)
            return _Job(doc, doc.blob)
        if content == "tensor":
            return _Job(doc, doc.tensor)
        if doc.uri:
            data, mime_type = await load_uri(doc.uri, timeout=self._fetch_timeout)
            check_image(data)
            return _Job(doc, data, mime_type=None if doc.mime_type else mime_type)
        return None


@dataclasses.dataclass
class _Job:
    doc: docarray_pb2.DocumentProto
    source: bytes | docarray_pb2.NdArrayProto  # the payload, or a tensor the payload is derived from
    mime_type: str | None = None  # set on the doc when not None
    modality: str = "image"  # or "text": a CLIP server embeds (and merges ids) by modality

    @property
    def size(self) -> int:
        return len(self.source) if isinstance(self.source, bytes) else len(self.source.dense.buffer)


def _merge_shared_ids(jobs: list[_Job]) -> list[_Job]:
    """The jobs a CLIP server carries out: of those of one modality with one non-empty id, only the last.

    The others' documents get no embedding, as on a real CLIP server (see the module docstring).
    """
    last = {(job.modality, job.doc.id): index for index, job in enumerate(jobs) if job.doc.id}
    return [job for index, job in enumerate(jobs) if not job.doc.id or last[(job.modality, job.doc.id)] == index]


def _run_jobs(jobs: list[_Job]) -> None:
    """The CPU part of encoding: payloads, embeddings, writing them into the docs."""
    for job in jobs:
        source = job.source
        payload = source if isinstance(source, bytes) else tensor_payload(decode_ndarray(source, what="the tensor"))
        encode_ndarray(test_embedding(payload), job.doc.embedding)
        if job.mime_type:
            job.doc.mime_type = job.mime_type


def bool_parameter(parameters: struct_pb2.Struct, name: str, *, default: bool) -> bool:
    """Read a boolean request parameter (true/false, a number, or "true"/"false"); ``default`` if absent."""
    if name not in parameters.fields:
        return default
    value = parameters.fields[name]
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        return value.number_value != 0
    if kind == "string_value":
        return value.string_value.strip().lower() in ("true", "1", "yes")
    return default


def limit_parameter(parameters: struct_pb2.Struct, name: str = "limit") -> int:
    """Read ``/search``'s ``limit``: a positive whole number (``2`` or ``2.0``); absent or null is the default.

    Anything else (0, -1, 2.5, "2", true) raises ValueError: an executor error.

    Example::

        >>> from google.protobuf import struct_pb2
        >>> limit_parameter(struct_pb2.Struct(fields={"limit": struct_pb2.Value(number_value=2.0)}))
        2
        >>> limit_parameter(struct_pb2.Struct())
        10
    """
    value = parameters.fields.get(name)
    kind = None if value is None else value.WhichOneof("kind")
    if value is None or kind in (None, "null_value"):
        return DEFAULT_SEARCH_LIMIT
    number = value.number_value if kind == "number_value" else math.nan
    if not (math.isfinite(number) and number == int(number) and number >= 1):
        shown = repr(getattr(value, kind)) if kind in ("number_value", "string_value", "bool_value") else f"a {kind}"
        raise ValueError(f"parameter {name!r} must be a positive integer, got {shown}")
    return int(number)


def error_status(exc: BaseException) -> jina_pb2.StatusProto:
    """The ``StatusProto`` (code ERROR) that reports ``exc`` as a Jina executor does."""
    status = jina_pb2.StatusProto(code=jina_pb2.StatusProto.ERROR, description=repr(exc))
    status.exception.name = type(exc).__name__
    status.exception.args.extend(str(arg) for arg in exc.args)
    status.exception.stacks.extend(traceback.format_exception(type(exc), exc, exc.__traceback__))
    status.exception.executor = EXECUTOR_NAME
    return status


def _request_docs(request: jina_pb2.DataRequestProto, *, strict: bool = True) -> docarray_pb2.DocumentArrayProto:
    """The request's documents, from ``data.docs`` or the (gateway-unused) ``data.docs_bytes`` variant."""
    if request.data.WhichOneof("documents") != "docs_bytes":
        return request.data.docs
    try:
        return docarray_pb2.DocumentArrayProto.FromString(request.data.docs_bytes)
    except Exception:
        if strict:
            raise
        return docarray_pb2.DocumentArrayProto()


class _Clock:
    """Wall-clock nanoseconds that strictly increase within one request, so route times nest as a real
    gateway's do (gateway start < executor start < executor end < gateway end: every span is positive, and a
    client's profile() can split the time into network and server parts).

    Whole microseconds, as a real gateway's timestamps are (its JSON answers show six fraction digits); a
    reading within the same microsecond as the previous one is moved one microsecond on.
    """

    def __init__(self) -> None:
        self._last = 0

    def now(self) -> int:
        self._last = max(self._last + 1000, time.time_ns() // 1000 * 1000)
        return self._last

    def at_least(self, floor: int) -> int:
        """A reading, moved on to ``floor`` (nanoseconds) if the wall clock is not there yet."""
        self._last = max(self.now(), floor)
        return self._last


class _MillisecondWaits:
    """Waits until the wall clock's next whole millisecond, without reordering answers.

    Requests pass one at a time, in the order they got here: each first waits for the one before it on the
    same event loop to pass, then (if its own millisecond has not ended yet) for the next millisecond. So
    answers that were finished in arrival order still go out in it, and a request whose millisecond has
    ended meanwhile does not wait at all.

    Example::

        waits = _MillisecondWaits()
        end = await waits.reading_after(clock, start)  # end // 1_000_000 > start // 1_000_000
    """

    def __init__(self) -> None:
        #: Per event loop, an event set once the last request to get here has passed.
        self._last: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}

    async def reading_after(self, clock: _Clock, start: int) -> int:
        """A reading of ``clock`` in a later whole millisecond than ``start`` (nanoseconds).

        The wait is shorter than a millisecond. Should the event loop (whose clock is not the wall clock)
        wake a hair early, the reading is moved on to the millisecond's first microsecond.
        """
        boundary = (start // 1_000_000 + 1) * 1_000_000
        loop = asyncio.get_running_loop()
        before, passed = self._last.get(loop), asyncio.Event()
        self._last[loop] = passed
        try:
            if before is not None:
                await before.wait()
            reading = clock.now()
            if reading < boundary:
                await asyncio.sleep((boundary - reading) / 1e9)
            return clock.at_least(boundary)
        finally:
            passed.set()
            if self._last.get(loop) is passed:
                del self._last[loop]
