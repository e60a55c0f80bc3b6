"""on_done / on_error / on_always: called once per answered request while the call streams.

The engine hands each answered request, checked, to the call's one handler (a
:class:`~aclip._engine.results.ResultHandler`); :meth:`Callbacks.around` makes the callbacks that handler,
around the call's collector when the results are kept.

Each callback receives a :class:`Response`: the request's documents (converted when first read), its
parameters, status and routes, and the input positions it covers. Plain functions and coroutine functions
are both accepted. A callback that raises ends the call with that exception; no callback runs after it.
"""

from __future__ import annotations

import datetime
import inspect
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Optional

from .._models import DocumentList
from .._wire.status import ResponseStatus
from .results import ResultHandler, answer_documents

if TYPE_CHECKING:  # protobuf stays unimported until a call needs it
    from .._wire.protobuf import DataRequestProto, DocumentProto
    from .batches import Batch


@dataclass(frozen=True)
class Route:
    """One hop of a request (the gateway, then each executor) with its start and end times."""

    executor: str
    start: Optional[datetime.datetime]
    end: Optional[datetime.datetime]


class Response:
    """One answered request, as callbacks see it.

    ``positions`` are the caller's input positions it covers; ``ok`` is False when the server's executor
    failed, and ``status`` then says why. ``docs`` (a :class:`~aclip.DocumentList` of new Documents with
    their embeddings) and ``parameters`` are converted only when read.

    Code written for upstream clip_client reads jina's DataRequest instead, and those paths work too:
    ``response.data.docs`` is ``response.docs``, and ``response.header`` is the answer's header as sent
    (``response.header.status.description``, ``.code``, ``response.header.request_id``, ...).

    Example::

        def on_done(response):
            for position, doc in zip(response.positions, response.docs):
                store[position] = doc.embedding
    """

    def __init__(self, batch: Batch, message: DataRequestProto, status: Optional[ResponseStatus]) -> None:
        self._message = message
        self._batch = batch  # to check the documents and give them the caller's ids back, when read
        self.request_id: str = batch.request_id
        self.positions: range = batch.positions
        self.status = status  # parsed once, by the engine
        self._docs: Optional[DocumentList] = None

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"failed: {self.status}"
        return f"Response(positions={self.positions!r}, {state})"

    @property
    def ok(self) -> bool:
        """True unless the server's executor failed on this request."""
        return self.status is None

    @property
    def docs(self) -> DocumentList:
        """The request's documents as the server returned them (new Documents, not the caller's), with the
        caller's own ids (aclip's stand in for them on the wire), checked as results are."""
        if self._docs is None:
            self._docs = answer_documents(self._batch, self._documents())
        return self._docs

    @property
    def data(self) -> SimpleNamespace:
        """``data.docs`` is :attr:`docs`: the read path of jina's DataRequest, which upstream callbacks use."""
        return SimpleNamespace(docs=self.docs)

    @property
    def header(self) -> Any:
        """The answer's header as the server sent it (jina's ``HeaderProto``): ``header.status.description``,
        ``header.status.code``, ``header.request_id``, ``header.exec_endpoint``. Read it; do not change it."""
        return self._message.header

    def _documents(self) -> List[DocumentProto]:
        return list(self._message.data.docs.docs)

    @property
    def parameters(self) -> Dict[str, Any]:
        """The parameters the server echoed back."""
        from google.protobuf import json_format

        return json_format.MessageToDict(self._message.parameters) if self._message.HasField("parameters") else {}

    @property
    def routes(self) -> List[Route]:
        """The request's hops with their times (what profile() reads)."""

        def moment(route: Any, name: str) -> Optional[datetime.datetime]:
            if not route.HasField(name):
                return None
            stamp = getattr(route, name)
            return stamp.ToDatetime(tzinfo=datetime.timezone.utc)  # type: ignore[no-any-return]

        return [Route(r.executor, moment(r, "start_time"), moment(r, "end_time")) for r in self._message.routes]


#: A callback takes the Response; it may be a coroutine function.
Callback = Callable[[Response], Any]


def _checked(name: str, callback: Optional[Callback]) -> Optional[Callback]:
    if callback is not None and not callable(callback):
        raise TypeError(f"{name} must be a function taking the Response, not {type(callback).__name__}")
    return callback


async def _call(callback: Callback, response: Response) -> None:
    outcome = callback(response)
    if inspect.isawaitable(outcome):
        await outcome


class Callbacks:
    """The checked callbacks of one call; :meth:`around` makes them the engine's result handler.

    Example::

        handler = Callbacks(on_done, None, None).around(ArrayCollector(total))
    """

    def __init__(
        self, on_done: Optional[Callback], on_error: Optional[Callback], on_always: Optional[Callback]
    ) -> None:
        self.on_done = _checked("on_done", on_done)
        self.on_error = _checked("on_error", on_error)
        self.on_always = _checked("on_always", on_always)

    @property
    def replace_results(self) -> bool:
        """With on_done or on_always, the caller handles results: none are collected (as upstream)."""
        return self.on_done is not None or self.on_always is not None

    def around(self, results: ResultHandler) -> ResultHandler:
        """The call's handler: ``results`` alone without callbacks, else the callbacks (after ``results``,
        unless they replace them)."""
        if self.on_done is None and self.on_error is None and self.on_always is None:
            return results
        return _WithCallbacks(self, None if self.replace_results else results)


class _WithCallbacks(ResultHandler):
    """A call's callbacks, run for each answered (or failed) request after its results were placed."""

    def __init__(self, callbacks: Callbacks, results: Optional[ResultHandler]) -> None:
        self._callbacks = callbacks
        self._results = results  # the call's own collector while results are kept; it hears of failures too
        self.takes_failures = callbacks.on_error is not None or callbacks.on_always is not None

    async def answered(self, batch: Batch, message: DataRequestProto, docs: List[DocumentProto]) -> None:
        if self._results is not None:
            outcome = self._results.answered(batch, message, docs)
            if outcome is not None:
                await outcome
        if self._callbacks.replace_results:
            await self._after(Response(batch, message, None), self._callbacks.on_done)

    def failed(self, batch: Batch, message: DataRequestProto, status: ResponseStatus) -> Awaitable[None]:
        if self._results is not None:
            self._results.failed(batch, message, status)  # an array result must not look complete without these
        return self._after(Response(batch, message, status), self._callbacks.on_error)

    async def _after(self, response: Response, first: Optional[Callback]) -> None:
        if first is not None:
            await _call(first, response)
        if self._callbacks.on_always is not None:
            await _call(self._callbacks.on_always, response)
        if response.status is not None and self._callbacks.on_error is None:
            endpoint = response._message.header.exec_endpoint
            raise response.status.error(endpoint=endpoint, positions=response.positions)
