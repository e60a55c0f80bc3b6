"""The duplex engine: batches go out while answers come in, at most ``prefetch`` requests in flight.

Three tasks share one call:

- the producer reads the caller's input, cuts it into batches of ``batch_size``, reads files and data
  URIs of each batch in a worker thread, serialises the request, and hands it over through a memory
  object stream with a buffer of one batch;
- the sender takes a slot in the in-flight window, records the batch under its request id, and sends it;
- the receiver reads answers in whatever order they come, finds their batch by request id (never by
  document id), frees the window slot and gives batch and answer to the call's result handler.

Memory is therefore bounded by (prefetch + 2) batches, whatever the length of the input. The first
error in any task cancels the others and is raised to the caller as it is (not as an exception group).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._codec import DataRequestProto, DocumentProto, build_request, executor_failure
from ._errors import ProtocolError, RequestTimeoutError, TransportError, describe_positions
from ._groups import BaseExceptionGroup, first_error
from ._inputs import Item, load_batch, needs_loading
from ._retry import backoff, is_idempotent, is_transient
from ._transports.base import DuplexStream, Received, Transport
from ._wire import WireFormat, wire_format

__all__ = ["Batch", "BatchSource", "FailureHandler", "ResultHandler", "run_stream"]

logger = logging.getLogger("aclip")


@dataclass
class Batch:
    """One request's worth of inputs: positions ``start .. start + len(items) - 1`` of the caller's input."""

    seq: int
    start: int
    items: List[Item]
    ids: List[str]
    sources: Optional[List[Any]] = None  # the caller's Documents, in Documents mode
    request_id: str = ""
    request: Any = field(default=None, repr=False)  # the DataRequest message, kept until answered (for retries)
    deadline: float = math.inf  # when it must have been answered (anyio's clock)

    @property
    def positions(self) -> range:
        return range(self.start, self.start + len(self.ids))


#: Yields the batches of one call, in input order, with items classified but not yet loaded.
BatchSource = Iterator[Batch]
#: Called once per answered batch with the batch, the parsed answer and its documents; may return an
#: awaitable (a coroutine callback, or a send into a bounded stream), which the receiver awaits.
ResultHandler = Callable[[Batch, DataRequestProto, List[DocumentProto]], Optional[Awaitable[None]]]
#: Called instead of raising when the server reports an executor failure for a batch (on_error given).
FailureHandler = Callable[[Batch, DataRequestProto], Optional[Awaitable[None]]]


@dataclass(frozen=True)
class CallSettings:
    """What a call sends: the endpoint, its parameters and the in-flight window."""

    endpoint: str
    parameters: Any  # Optional[Struct]
    prefetch: int
    fetch_remote: bool = False
    timeout: Optional[float] = None
    max_retries: int = 0


async def run_stream(
    transport: Transport,
    batches: BatchSource,
    settings: CallSettings,
    handle: ResultHandler,
    on_failure: Optional[FailureHandler] = None,
    *,
    on_answered: Optional[Callable[[int], None]] = None,
) -> None:
    """Stream every batch to the server and hand each answer to ``handle``; return when all are answered.

    A batch the server's executor failed raises ServerError, unless ``on_failure`` takes it.
    """
    call = _Call(batches, settings, handle, on_failure, wire_format(transport.wire_format), on_answered)
    retry = settings.max_retries > 0 and is_idempotent(settings.endpoint)
    try:
        async with anyio.create_task_group() as producer:
            prepared_in, prepared_out = anyio.create_memory_object_stream[Batch](1)
            producer.start_soon(call.produce, prepared_in)
            failures_in_a_row = 0
            while True:
                answered_before = call.answered
                try:
                    await call.one_stream(transport, prepared_out)
                    break
                except Exception as failure:
                    # A stream that got answers before it failed starts the count again: retries bound
                    # the failures in a row, not the number of streams a long call may need.
                    failures_in_a_row = 1 if call.answered > answered_before else failures_in_a_row + 1
                    if not (retry and failures_in_a_row <= settings.max_retries and is_transient(failure)):
                        raise
                    attempt = failures_in_a_row
                    wait = backoff(attempt)
                    logger.debug(
                        "%s: attempt %d failed (%s); resending %d requests in %.2f s",
                        settings.endpoint,
                        attempt,
                        failure,
                        call.unanswered,
                        wait,
                    )
                    call.requeue_unanswered()
                    await anyio.sleep(wait)
            prepared_out.close()  # every batch was answered, so the producer is done
    except BaseExceptionGroup as group:
        error = first_error(group)
        raise error from error.__cause__
    logger.debug("%s: %d requests answered over %s", settings.endpoint, call.answered, type(transport).__name__)


class _Call:
    """The per-call state shared by the producer, sender and receiver."""

    def __init__(
        self,
        batches: BatchSource,
        settings: CallSettings,
        handle: ResultHandler,
        on_failure: Optional[FailureHandler],
        wire: WireFormat,
        on_answered: Optional[Callable[[int], None]],
    ) -> None:
        self._batches = batches
        self._on_answered = on_answered
        self._on_failure = on_failure
        self._wire = wire
        self._settings = settings
        self._handle = handle
        self._in_flight: Dict[str, Batch] = {}
        self._resend: List[Batch] = []  # unanswered batches of a failed stream, for the next one
        self._input_done = False
        self.answered = 0

    @property
    def unanswered(self) -> int:
        return len(self._in_flight) + len(self._resend)

    def requeue_unanswered(self) -> None:
        """After a stream failed: its unanswered batches go first on the next stream (with new request ids)."""
        self._resend = [*self._resend, *self._in_flight.values()]
        self._in_flight = {}

    async def one_stream(self, transport: Transport, prepared: MemoryObjectReceiveStream[Batch]) -> None:
        """Send what is left over one stream and receive every answer; a failure leaves state for a retry."""
        self._window = anyio.Semaphore(self._settings.prefetch)
        self._all_sent = False
        self._activity = anyio.Event()  # set by the sender whenever it has sent a batch, or all of them
        async with transport.open_stream() as stream:
            try:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self.send_all, stream, prepared)
                    await self.receive_all(stream)
            except BaseExceptionGroup as group:
                # Unwrapped inside the stream's context, so the transport sees (and may translate) the error.
                error = first_error(group)
                raise error from error.__cause__

    async def produce(self, out: MemoryObjectSendStream[Batch]) -> None:
        settings = self._settings
        async with out:
            for batch in self._batches:
                if needs_loading(batch.items, fetch_remote=settings.fetch_remote):
                    load = functools.partial(load_batch, fetch_remote=settings.fetch_remote)
                    batch.items = await anyio.to_thread.run_sync(load, batch.items, batch.start)
                batch.request = build_request(
                    request_id="",
                    endpoint=settings.endpoint,
                    parameters=settings.parameters,
                    items=batch.items,
                    ids=batch.ids,
                )
                batch.items = []  # the message holds the content now
                await out.send(batch)

    async def send_all(self, stream: DuplexStream, prepared: MemoryObjectReceiveStream[Batch]) -> None:
        while True:
            await self._window.acquire()
            if self._resend:
                batch = self._resend.pop(0)
            elif self._input_done:
                self._window.release()
                break
            else:
                try:
                    batch = await prepared.receive()
                except anyio.EndOfStream:
                    self._input_done = True
                    self._window.release()
                    break
            # A new id on every attempt: a late answer to an abandoned attempt can never be taken for this one.
            batch.request_id = os.urandom(16).hex()
            batch.request.header.request_id = batch.request_id
            if self._settings.timeout is not None:
                batch.deadline = anyio.current_time() + self._settings.timeout
            self._in_flight[batch.request_id] = batch  # registered before sending: a failure requeues it
            self._activity.set()
            await stream.send(batch.request_id, self._wire.serialize(batch.request))
        await stream.end()
        self._all_sent = True
        self._activity.set()

    async def _receive_in_time(self, stream: DuplexStream) -> Optional[Received]:
        """The next answer, or RequestTimeoutError once the oldest request in flight is past its deadline."""
        while True:
            oldest = next(iter(self._in_flight.values()))  # dicts keep send order: the oldest comes first
            if oldest.deadline == math.inf:
                return await stream.receive()
            with anyio.move_on_after(oldest.deadline - anyio.current_time()):
                return await stream.receive()
            late = [batch for batch in self._in_flight.values() if batch.deadline <= anyio.current_time()]
            if late:
                unanswered = [position for batch in self._in_flight.values() for position in batch.positions]
                raise RequestTimeoutError(
                    f"{len(late)} requests got no answer within {self._settings.timeout:g} s; "
                    f"{len(unanswered)} inputs are unanswered (positions {describe_positions(unanswered)})",
                    positions=unanswered,
                )

    async def receive_all(self, stream: DuplexStream) -> None:
        while not (self._all_sent and not self._in_flight):
            if not self._in_flight:  # nothing can arrive yet: wait for the sender, not the stream
                await self._activity.wait()
                self._activity = anyio.Event()
                continue
            received = await self._receive_in_time(stream)
            if received is None:
                if self._in_flight:
                    missing = sum(len(batch.ids) for batch in self._in_flight.values())
                    raise TransportError(
                        f"the server ended the stream with {len(self._in_flight)} requests "
                        f"({missing} inputs) still unanswered"
                    )
                if not self._all_sent:
                    raise TransportError("the server ended the stream before aclip had sent all of its requests")
                return
            tag, frame = received
            response = self._wire.parse(frame)
            request_id = tag if tag is not None else response.header.request_id
            batch = self._in_flight.pop(request_id, None)
            if batch is None:
                raise ProtocolError(
                    f"the server answered a request id aclip did not send or already had: {request_id!r}"
                )
            batch.request = None  # answered: its content can go
            self._window.release()
            failure = executor_failure(response)
            if failure is not None:
                if self._on_failure is None:
                    raise failure.error(endpoint=self._settings.endpoint, positions=batch.positions)
                outcome = self._on_failure(batch, response)
            else:
                docs = list(response.data.docs.docs)
                if len(docs) != len(batch.ids):
                    raise ProtocolError(
                        f"the server answered a batch of {len(batch.ids)} inputs (positions {batch.start}.."
                        f"{batch.positions[-1]}) with {len(docs)} documents"
                    )
                outcome = self._handle(batch, response, docs)
            if outcome is not None:
                await outcome
            self.answered += 1
            if self._on_answered is not None:
                self._on_answered(len(batch.ids))
