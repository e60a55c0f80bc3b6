"""The duplex engine: batches go out while answers come in, at most ``prefetch`` requests in flight.

One call runs these tasks:

- the producer reads the caller's input, cuts it into batches of ``batch_size``, loads the files, data
  URIs and (when asked) remote images of each batch, serialises the request, and hands it over through
  a memory object stream with a buffer of one batch;
- one lane per server: its sender takes a slot in the call's window, records the batch under a new
  request id and sends it; its receiver reads answers in whatever order they come and finds their batch
  by request id (never by document id);
- the deliverer hands each answer, with its batch, to the call's result handler (which may be slow: an
  ``aencode_iter`` consumer, a coroutine callback) and only then frees the batch's window slot.

Every batch taken from the input ends in exactly one of three ways: handled once by the deliverer, resent
(a stream failed before its answer arrived: it goes back to the queue for any lane), or reported in the
error that ends the call. A received answer belongs to the call, not to its stream: moving it from the
lane's ``in_flight`` to the deliverer's queue happens without an ``await`` in between, so a stream that
fails while the handler is busy can neither lose that answer nor send it again.

Memory is bounded by (prefetch + 2) batches, whatever the length of the input: a batch holds its window
slot from the moment a lane takes it until its answer was handled. Every wait has a bound from the call's
:class:`~aclip._deadline.Deadline` (or is a wait for the caller's own handler). The first error in any task
cancels the others and is raised to the caller as it is (not as an exception group).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._config import MAX_MESSAGE_SIZE
from .._deadline import Deadline, remaining
from .._exceptions import (
    BaseExceptionGroup,
    MessageTooLargeError,
    ProtocolError,
    RequestTimeoutError,
    TransportError,
    describe_positions,
    first_error,
)
from .._transports.base import DuplexStream, Received, Transport
from .._wire.formats import WireFormat
from .._wire.protobuf import DataRequestProto, build_request, executor_failure
from .batches import Batch
from .loading import load_batch_items
from .results import ResultHandler, check_answer_ids
from .retry import backoff, is_idempotent, is_transient

if TYPE_CHECKING:
    from .fetch import ImageFetcher

logger = logging.getLogger("aclip")


#: Yields the batches of one call, in input order, with items classified but not yet loaded.
BatchSource = Iterator[Batch]
#: An answer on its way from a lane's receiver to the deliverer.
_Answer = Tuple[Batch, DataRequestProto]


@dataclass(frozen=True)
class CallSettings:
    """What a call sends and how long it may wait: the endpoint, its parameters, the window, the deadline."""

    endpoint: str
    parameters: Any  # Optional[Struct]
    prefetch: int
    #: Makes the call's image downloader when the client fetches remote images (None: the server fetches).
    images: Optional[Callable[[], ImageFetcher]] = None
    deadline: Deadline = field(default_factory=lambda: Deadline(None))
    max_retries: int = 0
    headers: Dict[str, str] = field(default_factory=dict)  # the call's own, on top of the client's
    max_message_size: int = MAX_MESSAGE_SIZE


async def run_stream(
    transports: Sequence[Transport],
    batches: BatchSource,
    settings: CallSettings,
    handler: ResultHandler,
    *,
    on_answered: Optional[Callable[[int], None]] = None,
    set_aside: Optional[Callable[[Transport], None]] = None,
) -> None:
    """Stream every batch to the servers and hand each answer to ``handler``; return when all are handled.

    Each transport (one per server) gets a lane: a stream whose sender takes the next batch whenever the
    call's window has room, so batches spread over the servers. A lane whose stream fails transiently
    hands its unanswered batches to the others (or to its own next stream) and waits a backoff before it
    tries its server again; the call fails when every lane has failed more than ``max_retries`` times in
    a row. An answer's documents are checked to be the batch's, in order, before the handler sees them.
    """
    prepared_in, prepared_out = anyio.create_memory_object_stream[Batch](1)
    # Every queued answer holds a window slot, so the queue never holds more than ``prefetch`` of them.
    answers_in, answers_out = anyio.create_memory_object_stream[_Answer](settings.prefetch)
    call = _Call(batches, settings, handler, on_answered, answers_in, lanes=len(transports), set_aside=set_aside)
    try:
        with prepared_in, prepared_out, answers_in, answers_out:  # closed however the call ends
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(call.produce, prepared_in)
                tasks.start_soon(call.deliver, answers_out)
                async with anyio.create_task_group() as lanes:
                    for transport in transports:
                        lanes.start_soon(call.run_lane, transport, prepared_out)
                # Every batch was handled: the producer is done and the deliverer's queue is empty.
                prepared_out.close()
                answers_in.close()
    except BaseExceptionGroup as group:
        error = first_error(group)
        raise error from error.__cause__
    logger.debug("%s: %d requests answered over %d server(s)", settings.endpoint, call.answered, len(transports))


class _Lane:
    """One stream to one server within a call: what it has in flight."""

    def __init__(self, wire: WireFormat, deadline: Deadline) -> None:
        self.wire = wire
        self.in_flight: Dict[str, Batch] = {}
        self.received = 0
        self.all_sent = False
        self.activity = anyio.Event()  # set by the sender whenever it has taken a batch, or ended
        self._deadline = deadline

    def wait_deadline(self) -> float:
        """When a wait of this stream (connect, handshake, trailers) must end: the deadline of the earliest
        request it serves, or of a request sent now when it serves none."""
        for batch in self.in_flight.values():
            # Each deadline is set as its batch enters in_flight (every attempt anew), from a clock that only
            # goes forward: the dict's first batch has the earliest. No scan of the window per answer.
            return batch.deadline
        return self._deadline.for_new_request()

    def positions(self) -> List[int]:
        return [position for batch in self.in_flight.values() for position in batch.positions]


class _Call:
    """The per-call state shared by the producer, the deliverer and every lane's sender and receiver."""

    def __init__(
        self,
        batches: BatchSource,
        settings: CallSettings,
        handler: ResultHandler,
        on_answered: Optional[Callable[[int], None]],
        answers: MemoryObjectSendStream[_Answer],
        *,
        lanes: int,
        set_aside: Optional[Callable[[Transport], None]],
    ) -> None:
        self._batches = batches
        self._on_answered = on_answered
        self._set_aside = set_aside
        self._settings = settings
        self._deadline = settings.deadline
        self._handler = handler
        self._answers = answers
        self._window = anyio.Semaphore(settings.prefetch)
        self._resend: List[Batch] = []  # unanswered batches of failed streams, sent first by any lane
        self._input_done = False
        self._outstanding = 0  # batches taken from the input and not handled yet
        self._delivering = 0  # answers queued for the deliverer or being handled by it
        self._work = anyio.Event()  # set when batches are requeued, answers handled, or the call is complete
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

    async def _idle(self) -> None:
        """Wait for another task's progress. Bounded: a call with a timeout re-checks every so often that
        some batch is still on its way, so that a batch lost to a bug fails the call instead of hanging it."""
        event = self._work
        limit = self._deadline.request_timeout
        with anyio.move_on_after(math.inf if limit is None else limit):
            await event.wait()
            return
        self._check_progress()

    def _check_progress(self) -> None:
        if self.complete or not self._input_done or self._resend or self._delivering:
            return
        if any(lane.in_flight for lane in self._streaming):
            return
        raise TransportError(
            f"aclip lost track of {self._outstanding} requests of this call (a bug: please report it); "
            "they were neither in flight, nor queued to be resent, nor answered"
        )

    # -- the producer -----------------------------------------------------------------------------------

    async def produce(self, out: MemoryObjectSendStream[Batch]) -> None:
        settings = self._settings
        images = None if settings.images is None else settings.images()  # its session opens on a remote image
        async with out, images or contextlib.nullcontext():
            for batch in self._batches:
                # Loading ends by the deadline of the request the batch becomes; a blocked read is abandoned.
                batch.items = await load_batch_items(
                    batch.items,
                    batch.start,
                    fetcher=images,
                    until=self._deadline.for_new_request(),
                )
                batch.request = build_request(
                    request_id="",
                    endpoint=settings.endpoint,
                    parameters=settings.parameters,
                    items=batch.items,
                    ids=batch.ids,
                )
                batch.items = []  # the message holds the content now
                await out.send(batch)

    # -- the deliverer ----------------------------------------------------------------------------------

    async def deliver(self, answers: MemoryObjectReceiveStream[_Answer]) -> None:
        """Hand each answer to the result handler, in arrival order, one at a time; then free its slot."""
        async for batch, response in answers:
            outcome = self._outcome(batch, response)
            if outcome is not None:
                await outcome
            self.answered += 1
            self._outstanding -= 1
            self._delivering -= 1
            self._window.release()
            if self.complete:
                self._notify()  # idle senders can end their streams
            if self._on_answered is not None:
                self._on_answered(len(batch.ids))

    def _outcome(self, batch: Batch, response: DataRequestProto) -> Optional[Awaitable[None]]:
        failure = executor_failure(response)
        if failure is not None:
            if not self._handler.takes_failures:
                raise failure.error(endpoint=self._settings.endpoint, positions=batch.positions)
            return self._handler.failed(batch, response, failure)
        docs = list(response.data.docs.docs)
        if len(docs) != len(batch.ids):
            raise ProtocolError(
                f"the server answered a batch of {len(batch.ids)} inputs (positions {batch.start}.."
                f"{batch.positions[-1]}) with {len(docs)} documents"
            )
        check_answer_ids(batch, docs)
        return self._handler.answered(batch, response, docs)

    # -- the lanes --------------------------------------------------------------------------------------

    async def run_lane(self, transport: Transport, prepared: MemoryObjectReceiveStream[Batch]) -> None:
        """Streams to one server until the call is complete, retrying transient failures with backoff."""
        failures_in_a_row = 0
        wire = transport.wire_format
        while not self.complete:
            lane = _Lane(wire, self._deadline)
            try:
                await self._one_stream(transport, lane, prepared)
            except Exception as raised:
                failure = self._with_positions(raised, lane)
                self._requeue(lane)
                failures_in_a_row = 1 if lane.received else failures_in_a_row + 1
                if not is_transient(failure):
                    raise failure from failure.__cause__
                if not self._retry or failures_in_a_row > self._settings.max_retries:
                    if self._set_aside is not None:
                        self._set_aside(transport)  # later calls skip this server for a while
                    self._lanes_alive -= 1
                    if self._lanes_alive == 0 or not self._retry:
                        raise failure from failure.__cause__
                    logger.debug("%s: giving up on %r after %d failures: %s", self._settings.endpoint, transport,
                                 failures_in_a_row, failure)  # fmt: skip
                    return  # the other lanes take its batches
                await self._back_off(transport, failure, failures_in_a_row)

    def _requeue(self, lane: _Lane) -> None:
        """A failed stream's unanswered batches go back to the queue (answers it received are kept)."""
        self._resend.extend(lane.in_flight.values())  # another lane (or the next stream) sends them
        for _ in lane.in_flight:
            self._window.release()
        lane.in_flight.clear()
        self._notify()

    def _with_positions(self, failure: Exception, lane: _Lane) -> Exception:
        """A transport's RequestTimeoutError for a wait (connect, handshake) names no inputs: name the lane's."""
        if isinstance(failure, RequestTimeoutError) and not failure.positions and lane.in_flight:
            positions = lane.positions()
            timed_out = RequestTimeoutError(
                f"{failure} (within {self._deadline.describe()}); {len(positions)} inputs are unanswered "
                f"(positions {describe_positions(positions)})",
                positions=positions,
            )
            timed_out.__cause__ = failure.__cause__
            return timed_out
        return failure

    async def _back_off(self, transport: Transport, failure: Exception, failures_in_a_row: int) -> None:
        wait = backoff(failures_in_a_row)
        logger.debug(
            "%s: %r failed (%s); %d requests go back to the queue; retrying it in %.2f s",
            self._settings.endpoint,
            transport,
            failure,
            len(self._resend),
            wait,
        )
        # A set-aside server waits, unless the call completes first; never past the call's deadline.
        with anyio.move_on_after(min(wait, remaining(self._deadline.for_new_request()))):
            while not self.complete:
                await self._work.wait()

    async def _one_stream(self, transport: Transport, lane: _Lane, prepared: MemoryObjectReceiveStream[Batch]) -> None:
        self._streaming.append(lane)
        try:
            first = await self._take(lane, prepared)
            if first is None:
                return  # the call is complete
            # The stream is opened for a batch, so that connecting counts against that request's deadline.
            async with transport.open_stream(self._settings.headers, deadline=lane.wait_deadline) as stream:
                try:
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(self._send_all, stream, lane, first, prepared)
                        await self._receive_all(stream, lane)
                except BaseExceptionGroup as group:
                    # Unwrapped inside the stream's context, so the transport sees (and may translate) the error.
                    error = first_error(group)
                    raise error from error.__cause__
        finally:
            self._streaming.remove(lane)
            self._notify()  # a lane that waited for its turn behind this one may go on

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
            await self._idle()

    async def _my_turn(self, lane: _Lane) -> None:
        """Wait while another open lane has fewer requests in flight: the least busy server goes first."""
        while not self.complete and len(lane.in_flight) > min(len(other.in_flight) for other in self._streaming):
            await self._idle()

    async def _take(self, lane: _Lane, prepared: MemoryObjectReceiveStream[Batch]) -> Optional[Batch]:
        """The lane's next batch, registered in flight under a new request id with a new deadline; None once
        the call is complete. Holds a window slot from here until the answer was handled (or requeued)."""
        await self._my_turn(lane)
        await self._window.acquire()
        try:
            batch = await self._next_batch(prepared)
        except BaseException:
            self._window.release()  # the window is the call's: a failing lane must not keep a place
            raise
        if batch is None:
            self._window.release()
            return None
        # A new id on every attempt: a late answer to an abandoned attempt can never be taken for this one.
        batch.request_id = os.urandom(16).hex()
        batch.request.header.request_id = batch.request_id
        batch.deadline = self._deadline.for_new_request()
        lane.in_flight[batch.request_id] = batch  # registered before sending: a failure requeues it
        lane.activity.set()
        return batch

    async def _send_all(
        self, stream: DuplexStream, lane: _Lane, first: Batch, prepared: MemoryObjectReceiveStream[Batch]
    ) -> None:
        batch: Optional[Batch] = first
        while batch is not None:
            frame = lane.wire.serialize(batch.request)
            if len(frame) > self._settings.max_message_size:
                raise _too_large_request(len(frame), self._settings.max_message_size, batch)
            await stream.send(batch.request_id, frame)
            batch = await self._take(lane, prepared)
        await stream.end()
        lane.all_sent = True
        lane.activity.set()

    async def _receive_in_time(self, stream: DuplexStream, lane: _Lane) -> Optional[Received]:
        """The next answer, or RequestTimeoutError once a request in flight is past its deadline."""
        while True:
            earliest = lane.wait_deadline()
            if earliest == math.inf:
                return await stream.receive()
            with anyio.move_on_after(remaining(earliest)):
                return await stream.receive()
            now = anyio.current_time()
            late = [batch for batch in lane.in_flight.values() if batch.deadline <= now]
            if late:
                unanswered = lane.positions()
                raise RequestTimeoutError(
                    f"{len(late)} requests got no answer within {self._deadline.describe()}; "
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
                missing = sum(len(batch.ids) for batch in lane.in_flight.values())
                raise TransportError(
                    f"the server ended the stream with {len(lane.in_flight)} requests "
                    f"({missing} inputs) still unanswered"
                )
            tag, frame = received
            response = lane.wire.parse(frame)
            request_id = tag if tag is not None else response.header.request_id
            batch = lane.in_flight.pop(request_id, None)
            if batch is None:
                raise ProtocolError(
                    f"the server answered a request id aclip did not send or already had: {request_id!r}"
                )
            # From here the answer is the call's: no await until it is queued for the deliverer, so a
            # failing stream can neither lose it nor resend its batch.
            batch.request = None  # answered: its content can go
            lane.received += 1
            self._delivering += 1
            self._answers.send_nowait((batch, response))
            if len(self._streaming) > 1:
                self._notify()  # a lane waiting for its turn may go on


def _too_large_request(size: int, limit: int, batch: Batch) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"the request for inputs {describe_positions(batch.positions)} is {size} bytes, over "
        f"max_message_size={limit}; lower batch_size or raise the client's max_message_size",
        direction="request",
        size=size,
        limit=limit,
        positions=batch.positions,
    )
