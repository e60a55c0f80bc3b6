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
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._codec import DataRequestProto, DocumentProto, build_request, executor_failure
from ._constants import MAX_MESSAGE_SIZE
from ._errors import MessageTooLargeError, ProtocolError, RequestTimeoutError, TransportError, describe_positions
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
    headers: Dict[str, str] = field(default_factory=dict)  # the call's own, on top of the client's
    max_message_size: int = MAX_MESSAGE_SIZE


async def run_stream(
    transports: Sequence[Transport],
    batches: BatchSource,
    settings: CallSettings,
    handle: ResultHandler,
    on_failure: Optional[FailureHandler] = None,
    *,
    on_answered: Optional[Callable[[int], None]] = None,
    set_aside: Optional[Callable[[Transport], None]] = None,
) -> None:
    """Stream every batch to the servers and hand each answer to ``handle``; return when all are answered.

    Each transport (one per server) gets a lane: a stream whose sender takes the next batch whenever the
    call's window has room, so batches spread over the servers. A lane whose stream fails transiently
    hands its unanswered batches to the others (or to its own next stream) and waits a backoff before it
    tries its server again; the call fails when every lane has failed more than ``max_retries`` times in
    a row. A batch the server's executor failed raises ServerError, unless ``on_failure`` takes it.
    """
    call = _Call(batches, settings, handle, on_failure, on_answered, lanes=len(transports), set_aside=set_aside)
    try:
        prepared_in, prepared_out = anyio.create_memory_object_stream[Batch](1)
        with prepared_in, prepared_out:  # closed however the call ends (the producer closes its end first)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call.produce, prepared_in)
                async with anyio.create_task_group() as lanes:
                    for transport in transports:
                        lanes.start_soon(call.run_lane, transport, prepared_out)
                prepared_out.close()  # every batch was answered, so the producer is done
    except BaseExceptionGroup as group:
        error = first_error(group)
        raise error from error.__cause__
    logger.debug("%s: %d requests answered over %d server(s)", settings.endpoint, call.answered, len(transports))


class _Lane:
    """One stream to one server within a call: what it has in flight."""

    def __init__(self, wire: WireFormat) -> None:
        self.wire = wire
        self.in_flight: Dict[str, Batch] = {}
        self.all_sent = False
        self.activity = anyio.Event()  # set by the sender whenever it has sent a batch, or all of them


class _Call:
    """The per-call state shared by the producer and every lane's sender and receiver."""

    def __init__(
        self,
        batches: BatchSource,
        settings: CallSettings,
        handle: ResultHandler,
        on_failure: Optional[FailureHandler],
        on_answered: Optional[Callable[[int], None]],
        *,
        lanes: int,
        set_aside: Optional[Callable[[Transport], None]],
    ) -> None:
        self._batches = batches
        self._on_answered = on_answered
        self._on_failure = on_failure
        self._set_aside = set_aside
        self._settings = settings
        self._handle = handle
        self._window = anyio.Semaphore(settings.prefetch)
        self._resend: List[Batch] = []  # unanswered batches of failed streams, sent first by any lane
        self._input_done = False
        self._outstanding = 0  # batches taken from the input and not answered yet
        self._work = anyio.Event()  # set when batches are requeued or the call is complete
        self._lanes_alive = lanes
        self._streaming: List[_Lane] = []  # lanes with an open stream, for least-in-flight-first
        self._retry = settings.max_retries > 0 and is_idempotent(settings.endpoint)
        self.answered = 0

    @property
    def complete(self) -> bool:
        return self._input_done and self._outstanding == 0

    def _notify(self) -> None:
        self._work.set()
        self._work = anyio.Event()

    async def run_lane(self, transport: Transport, prepared: MemoryObjectReceiveStream[Batch]) -> None:
        """Streams to one server until the call is complete, retrying transient failures with backoff."""
        failures_in_a_row = 0
        wire = wire_format(transport.wire_format)
        while not self.complete:
            lane = _Lane(wire)
            answered_before = self.answered
            try:
                await self._one_stream(transport, lane, prepared)
            except Exception as failure:
                self._resend.extend(lane.in_flight.values())  # another lane (or the next stream) sends them
                for _ in lane.in_flight:
                    self._window.release()
                lane.in_flight.clear()
                self._notify()
                failures_in_a_row = 1 if self.answered > answered_before else failures_in_a_row + 1
                if not is_transient(failure):
                    raise
                if not self._retry or failures_in_a_row > self._settings.max_retries:
                    if self._set_aside is not None:
                        self._set_aside(transport)  # later calls skip this server for a while
                    self._lanes_alive -= 1
                    if self._lanes_alive == 0 or not self._retry:
                        raise
                    logger.debug("%s: giving up on %r after %d failures: %s", self._settings.endpoint, transport,
                                 failures_in_a_row, failure)  # fmt: skip
                    return  # the other lanes take its batches
                wait = backoff(failures_in_a_row)
                logger.debug(
                    "%s: %r failed (%s); %d requests go back to the queue; retrying it in %.2f s",
                    self._settings.endpoint,
                    transport,
                    failure,
                    len(self._resend),
                    wait,
                )
                with anyio.move_on_after(wait):  # a set-aside server waits, unless the call completes first
                    while not self.complete:
                        await self._work.wait()

    async def _one_stream(self, transport: Transport, lane: _Lane, prepared: MemoryObjectReceiveStream[Batch]) -> None:
        self._streaming.append(lane)
        try:
            await self._stream_lane(transport, lane, prepared)
        finally:
            self._streaming.remove(lane)
            self._notify()  # a lane that waited for its turn behind this one may go on

    async def _stream_lane(self, transport: Transport, lane: _Lane, prepared: MemoryObjectReceiveStream[Batch]) -> None:
        async with transport.open_stream(self._settings.headers) as stream:
            try:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._send_all, stream, lane, prepared)
                    await self._receive_all(stream, lane)
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

    async def _next_batch(self, prepared: MemoryObjectReceiveStream[Batch]) -> Optional[Batch]:
        """A requeued batch, else the next one from the input; None once the call is complete."""
        while True:
            if self._resend:
                return self._resend.pop(0)
            if not self._input_done:
                try:
                    batch = await prepared.receive()
                except anyio.EndOfStream:
                    self._input_done = True
                    self._notify()
                    continue
                self._outstanding += 1
                return batch
            if self.complete:
                return None
            await self._work.wait()

    async def _my_turn(self, lane: _Lane) -> None:
        """Wait while another open lane has fewer requests in flight: the least busy server goes first."""
        while not self.complete and len(lane.in_flight) > min(len(other.in_flight) for other in self._streaming):
            await self._work.wait()

    async def _send_all(self, stream: DuplexStream, lane: _Lane, prepared: MemoryObjectReceiveStream[Batch]) -> None:
        while True:
            await self._my_turn(lane)
            await self._window.acquire()
            try:
                batch = await self._next_batch(prepared)
            except BaseException:
                self._window.release()  # the window is the call's: a failing lane must not keep a place
                raise
            if batch is None:
                self._window.release()
                break
            # A new id on every attempt: a late answer to an abandoned attempt can never be taken for this one.
            batch.request_id = os.urandom(16).hex()
            batch.request.header.request_id = batch.request_id
            if self._settings.timeout is not None:
                batch.deadline = anyio.current_time() + self._settings.timeout
            frame = lane.wire.serialize(batch.request)
            if len(frame) > self._settings.max_message_size:
                self._window.release()
                raise _too_large_request(len(frame), self._settings.max_message_size, batch)
            lane.in_flight[batch.request_id] = batch  # registered before sending: a failure requeues it
            lane.activity.set()
            await stream.send(batch.request_id, frame)
        await stream.end()
        lane.all_sent = True
        lane.activity.set()

    async def _receive_in_time(self, stream: DuplexStream, lane: _Lane) -> Optional[Received]:
        """The next answer, or RequestTimeoutError once the oldest request in flight is past its deadline."""
        while True:
            oldest = next(iter(lane.in_flight.values()))  # dicts keep send order: the oldest comes first
            if oldest.deadline == math.inf:
                return await stream.receive()
            with anyio.move_on_after(oldest.deadline - anyio.current_time()):
                return await stream.receive()
            late = [batch for batch in lane.in_flight.values() if batch.deadline <= anyio.current_time()]
            if late:
                unanswered = [position for batch in lane.in_flight.values() for position in batch.positions]
                raise RequestTimeoutError(
                    f"{len(late)} requests got no answer within {self._settings.timeout:g} s; "
                    f"{len(unanswered)} inputs are unanswered (positions {describe_positions(unanswered)})",
                    positions=unanswered,
                )

    async def _receive_all(self, stream: DuplexStream, lane: _Lane) -> None:
        while not (lane.all_sent and not lane.in_flight):
            if not lane.in_flight:  # nothing can arrive yet: wait for the sender, not the stream
                await lane.activity.wait()
                lane.activity = anyio.Event()
                continue
            received = await self._receive_in_time(stream, lane)
            if received is None:
                if lane.in_flight:
                    missing = sum(len(batch.ids) for batch in lane.in_flight.values())
                    raise TransportError(
                        f"the server ended the stream with {len(lane.in_flight)} requests "
                        f"({missing} inputs) still unanswered"
                    )
                if not lane.all_sent:
                    raise TransportError("the server ended the stream before aclip had sent all of its requests")
                return
            tag, frame = received
            response = lane.wire.parse(frame)
            request_id = tag if tag is not None else response.header.request_id
            batch = lane.in_flight.pop(request_id, None)
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
            self._outstanding -= 1
            if self.complete or len(self._streaming) > 1:
                self._notify()  # idle senders can end their streams, or a waiting lane may have its turn
            if self._on_answered is not None:
                self._on_answered(len(batch.ids))


def _too_large_request(size: int, limit: int, batch: Batch) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"the request for inputs {describe_positions(batch.positions)} is {size} bytes, over "
        f"max_message_size={limit}; lower batch_size or raise the client's max_message_size",
        direction="request",
        size=size,
        limit=limit,
        positions=batch.positions,
    )
