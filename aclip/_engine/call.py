"""One call of an operation: its options checked once, its input cut into batches, one stream run.

The operations of :class:`~aclip.AsyncClient` differ in what they send and where the answers go; the rest
of a call is the same for all of them and lives here. A :class:`CallRunner` holds what a client gives
every call (its pool of transports, its defaults); :meth:`CallRunner.options` checks one call's keywords
into a :class:`CallOptions`, and :meth:`CallRunner.run` streams the call: batches of the input (lazily,
each checked before it is sent) to the servers the pool hands out, each answer to the call's handler and
callbacks, a progress bar if asked.

Example (what ``aencode`` does for strings)::

    options = runner.options(batch_size=32, prefetch=100)
    collector = ArrayCollector(total=len(sentences))
    await runner.run(iter(sentences), InputMode.STRINGS, collector, "/encode", {}, options, total=len(sentences))
    vectors = collector.result()
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, TypedDict, Union

from .._config import NOT_GIVEN, NotGiven, checked_headers, checked_retries, checked_timeout, flag, positive_int
from .._models import DocumentList, Item
from .inputs import InputMode

if TYPE_CHECKING:
    from .._transports.base import TransportOptions
    from .callbacks import Callback, Callbacks
    from .fetch import ImageFetcher
    from .pool import TransportPool
    from .results import ArrayCollector, ResultHandler


class CallKeywords(TypedDict, total=False):
    """The keywords every operation takes besides its callbacks, for the overloads' signatures (see aencode)."""

    batch_size: int
    prefetch: int
    parameters: Optional[Mapping[str, Any]]
    show_progress: bool
    timeout: Union[float, NotGiven, None]
    max_retries: Union[int, NotGiven]
    headers: Optional[Mapping[str, str]]
    on_error: Optional[Callback]


@dataclass(frozen=True)
class CallOptions:
    """A call's checked options: the batches and the window, the progress bar, the callbacks, the deadline,
    the retries and the call's own headers (made by :meth:`CallRunner.options`)."""

    batch_size: int
    prefetch: int
    show_progress: bool
    callbacks: Callbacks
    timeout: Optional[float]
    max_retries: int
    headers: Dict[str, str]


class CallRunner:
    """How one client runs its calls: its pool of transports and what it gives every call by default."""

    def __init__(
        self,
        pool: TransportPool,
        *,
        timeout: Optional[float],
        max_retries: int,
        fetch_remote: bool,
        strings_are_text: bool,
    ) -> None:
        self.pool = pool
        self.strings_are_text = strings_are_text
        self._timeout = timeout
        self._max_retries = max_retries
        connection: TransportOptions = pool.options[0]  # the same for every server
        self._max_message_size = connection.max_message_size
        self._images: Optional[Callable[[], ImageFetcher]] = None
        if fetch_remote:
            from .fetch import ImageFetcher  # aiohttp loads with the first client that downloads images

            self._images = functools.partial(
                ImageFetcher,
                max_bytes=connection.max_message_size,
                trust_env=connection.trust_env,
                connect_timeout=connection.connect_timeout,
            )

    def options(
        self,
        *,
        batch_size: int,
        prefetch: int,
        show_progress: bool = False,
        timeout: Union[float, NotGiven, None] = NOT_GIVEN,
        max_retries: Union[int, NotGiven] = NOT_GIVEN,
        headers: Optional[Mapping[str, str]] = None,
        on_done: Optional[Callback] = None,
        on_error: Optional[Callback] = None,
        on_always: Optional[Callback] = None,
    ) -> CallOptions:
        """A call's options, checked; the client's own timeout and max_retries where the call gives none."""
        from .callbacks import Callbacks

        return CallOptions(
            batch_size=positive_int("batch_size", batch_size),
            prefetch=positive_int("prefetch", prefetch),
            show_progress=flag("show_progress", show_progress),
            callbacks=Callbacks(on_done, on_error, on_always),
            timeout=self._timeout if isinstance(timeout, NotGiven) else checked_timeout(timeout),
            max_retries=self._max_retries if isinstance(max_retries, NotGiven) else checked_retries(max_retries),
            headers=checked_headers(headers),
        )

    async def encode(
        self, content: Iterable[Any], endpoint: str, sent: Dict[str, Any], options: CallOptions
    ) -> Union[ArrayCollector, DocumentList, None]:
        """The call of aencode and aencode_collect: the Documents (None when callbacks take them), or for
        strings the collector of the rows, for the caller to take whole or in part. An empty DocumentList
        or DocumentArray gives an empty one back; another empty input, an empty array."""
        from .inputs import docarray_results, peek_mode
        from .results import ArrayCollector

        total = input_length(content)
        mode, items = peek_mode(content)
        empty_documents = mode is None and (isinstance(content, DocumentList) or docarray_results(content))
        if mode is InputMode.DOCUMENTS or empty_documents:
            return await self.documents(items, endpoint, sent, options, total=total, like=content)
        collector = ArrayCollector(total)
        if mode is not None:
            await self.run(items, mode, collector, endpoint, sent, options, total=total)
        return collector

    async def documents_from_strings(
        self, content: Iterable[Any], endpoint: str, parameters: Dict[str, Any], options: CallOptions, **extra: Any
    ) -> Optional[DocumentList]:
        """index and search: strings become new Documents (classified once, as they are batched)."""
        from .inputs import peek_mode

        _, items = peek_mode(content)
        total = input_length(content)
        return await self.documents(
            items, endpoint, parameters, options, total=total, like=content, from_strings=True, **extra
        )

    async def documents(
        self,
        documents: Iterable[Any],
        endpoint: str,
        parameters: Dict[str, Any],
        options: CallOptions,
        *,
        total: Optional[int],
        with_matches: bool = False,
        classify: Optional[Callable[[Any, int], Item]] = None,
        from_strings: bool = False,
        like: object = None,
    ) -> Optional[DocumentList]:
        """A call whose results are Documents: the caller's own (or, ``from_strings``, new ones made from
        strings), in input order, with what the answers set on them; None when callbacks take the results.

        They come in a DocumentList, or in a docarray ``DocumentArray`` when the caller's Documents (or
        ``like``, the container they came in) are docarray's: docarray in, docarray out, as upstream.
        """
        from .inputs import docarray_results
        from .results import DocumentCollector

        results = DocumentList()
        keep = not options.callbacks.replace_results
        await self.run(
            iter(documents),
            InputMode.DOCUMENTS,
            DocumentCollector(with_matches=with_matches),
            endpoint,
            parameters,
            options,
            total=total,
            collected=results if keep else None,
            classify=classify,
            from_strings=from_strings,
        )
        if not keep:
            return None
        container = docarray_results(like, results[0] if results else None)
        return results if container is None else container(results)

    async def run(
        self,
        items: Iterator[Any],
        mode: InputMode,
        handler: ResultHandler,
        endpoint: str,
        parameters: Dict[str, Any],
        options: CallOptions,
        *,
        total: Optional[int],
        collected: Optional[List[Any]] = None,
        classify: Optional[Callable[[Any, int], Item]] = None,
        from_strings: bool = False,
    ) -> None:
        """One call: batches of ``items`` to ``endpoint``, each answer to ``handler`` and the callbacks."""
        from .._deadline import Deadline
        from .._display import call_progress
        from .._wire.endpoints import rules_for
        from .._wire.protobuf import parameters_struct
        from .batches import iter_batches
        from .stream import CallSettings, run_stream

        settings = CallSettings(
            endpoint=endpoint,
            parameters=parameters_struct(parameters),
            prefetch=options.prefetch,
            images=self._images,
            deadline=Deadline(options.timeout),
            max_retries=options.max_retries,
            headers=options.headers,
            max_message_size=self._max_message_size,
        )
        batches = iter_batches(
            items,
            mode=mode,
            batch_size=options.batch_size,
            collected=collected,
            strings_are_text=self.strings_are_text,
            keep_ids=not rules_for(endpoint).own_ids,  # index stores the caller's ids; others send aclip's own
            from_strings=from_strings,
            **({"classify": classify} if classify is not None else {}),
        )
        first = next(batches, None)  # the first batch is checked before anything connects
        if first is None:
            return
        with call_progress(options.show_progress, total=total, description=endpoint) as progress:
            await run_stream(
                self.pool.for_endpoint(endpoint),
                itertools.chain([first], batches),
                settings,
                options.callbacks.around(handler),
                on_answered=progress.advance if progress is not None else None,
                set_aside=self.pool.set_aside,
            )


def endpoint_and_parameters(base: str, parameters: Optional[Mapping[str, Any]]) -> tuple[str, Dict[str, Any]]:
    """The endpoint to call and the parameters to send, from a caller's ``parameters`` (left unchanged).

    ``model_name`` selects ``<base>/<model_name>`` and is not sent on; ``drop_image_content`` defaults
    to true, so the server does not send image bytes back.
    """
    sent = with_defaults(parameters)
    model_name = sent.pop("model_name", None)
    return (f"{base}/{model_name}" if model_name else base), sent


def with_defaults(parameters: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """A copy of the caller's parameters with ``drop_image_content`` defaulting to true."""
    if parameters is not None and not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a dict, not {type(parameters).__name__}")
    sent: Dict[str, Any] = dict(parameters or {})
    sent.setdefault("drop_image_content", True)
    return sent


def input_length(content: object) -> Optional[int]:
    """The input's length when it has one (a list, a tuple), for the progress bar and the result array."""
    try:
        return len(content)  # type: ignore[arg-type]
    except TypeError:
        return None
