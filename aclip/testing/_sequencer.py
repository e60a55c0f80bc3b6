"""When each finished response of one stream goes out: completion order, or deliberately out of order.

One :class:`ResponseSequencer` serves one bidirectional stream (a gRPC call or a WebSocket). The
frontend tells it about every request it reads (:meth:`~ResponseSequencer.received`), every response the
executor finishes (:meth:`~ResponseSequencer.finished`) and the end of the client's input
(:meth:`~ResponseSequencer.end_of_input`); :meth:`~ResponseSequencer.run` is the stream's only writer.

Normally a response goes out as soon as it is finished, as a Jina gateway does. With ``out_of_order`` the
responses are swapped in pairs: the answer to request 0 waits until the answer to request 1 has been sent,
2 waits for 3, and so on. A held answer is released anyway when its partner request has not arrived within
``hold`` seconds or the client has ended its input, so a client that keeps one request in flight is only
slowed down, never deadlocked. A partner that has arrived is always waited for (it always gets a response).

Example::

    sequencer = ResponseSequencer(stream.send_message, stats=stats, out_of_order=True)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sequencer.run)
        async for message in stream:
            seq = sequencer.received()
            tg.start_soon(answer, seq, message)  # calls sequencer.finished(seq, response_bytes)
        sequencer.end_of_input()
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio

from aclip.testing._stats import ServerStats

__all__ = ["DEFAULT_HOLD", "ResponseSequencer"]

#: Seconds an out-of-order server holds an answer while waiting for the partner request to arrive.
DEFAULT_HOLD = 0.05


class ResponseSequencer:
    """Orders the responses of one stream and sends them; see the module docstring.

    Example::

        sequencer = ResponseSequencer(send, stats=ServerStats())
        seq = sequencer.received()
        sequencer.finished(seq, b"...")
        sequencer.end_of_input()
        await sequencer.run()  # sends b"..." and returns
    """

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[None]],
        *,
        stats: ServerStats,
        out_of_order: bool = False,
        hold: float = DEFAULT_HOLD,
    ) -> None:
        self._send = send
        self._stats = stats
        self._out_of_order = out_of_order
        self._hold = hold
        self._n_received = 0
        self._n_sent = 0
        self._lowest_unsent = 0  # every seq below this one has been sent
        self._sent: set[int] = set()
        self._ready: dict[int, bytes] = {}  # finished, not yet sent; insertion order = completion order
        self._held_since: dict[int, float] = {}  # out_of_order: when an even seq started waiting
        self._ended = False
        self._wake = anyio.Event()

    def received(self) -> int:
        """Register a request read from the client; return its sequence number on this stream (0, 1, ...)."""
        seq = self._n_received
        self._n_received += 1
        self._stats.requests_received += 1
        self._wake.set()
        return seq

    def finished(self, seq: int, response: bytes) -> None:
        """Hand over the serialised response to request ``seq``; :meth:`run` sends it when its turn comes."""
        self._ready[seq] = response
        self._wake.set()

    def end_of_input(self) -> None:
        """The client will send no more requests: :meth:`run` returns once every request is answered."""
        self._ended = True
        self._wake.set()

    async def run(self) -> None:
        """Send responses until the input has ended and every received request has been answered."""
        while True:
            # A fresh event before looking at the state: a change made while we send wakes the wait below.
            self._wake = anyio.Event()
            while (seq := self._next_sendable()) is not None:
                await self._send_one(seq)
            if self._ended and self._n_sent == self._n_received:
                return
            with anyio.move_on_after(self._next_deadline() - anyio.current_time()):
                await self._wake.wait()

    def _next_sendable(self) -> int | None:
        for seq in self._ready:
            if not self._must_hold(seq):
                return seq
        return None

    def _must_hold(self, seq: int) -> bool:
        if not self._out_of_order or seq % 2 == 1:
            return False
        partner = seq + 1
        if partner < self._lowest_unsent or partner in self._sent:
            return False  # already sent: nothing left to wait for
        if partner < self._n_received:
            return True  # the partner has arrived and will be answered: wait for it
        if self._ended:
            return False  # no partner will ever come
        since = self._held_since.setdefault(seq, anyio.current_time())
        return anyio.current_time() < since + self._hold

    def _next_deadline(self) -> float:
        pending = [since + self._hold for seq, since in self._held_since.items() if seq + 1 >= self._n_received]
        return min(pending, default=math.inf)

    async def _send_one(self, seq: int) -> None:
        response = self._ready.pop(seq)
        self._held_since.pop(seq, None)
        if self._lowest_unsent < seq:
            self._stats.responses_out_of_order += 1
        await self._send(response)
        self._sent.add(seq)
        self._n_sent += 1
        while self._lowest_unsent in self._sent:
            self._sent.discard(self._lowest_unsent)
            self._lowest_unsent += 1
        self._stats.responses_sent += 1
