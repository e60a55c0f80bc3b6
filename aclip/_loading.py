"""Loading one batch before it is sent: the engine's only entry point for files, data URIs and downloads.

Local files and data URIs are read and decoded by :func:`aclip._inputs.load_batch` in a worker thread
that is abandoned when the call is cancelled or its deadline passes, so a read that blocks (a slow or
hung file system) cannot hold the call. Remote images (``fetch_remote_images``) are downloaded on the
event loop by the call's :class:`~aclip._fetch.ImageFetcher`, a few at a time. All of it ends by the
deadline of the request the batch will become.

Example (what the engine's producer does)::

    make = functools.partial(ImageFetcher, max_bytes=max_message_size, trust_env=trust_env, connect_timeout=10.0)
    async with LazyFetcher(make) as images:
        for batch in batches:
            batch.items = await load_batch_items(
                batch.items, batch.start, fetch_remote=fetch_remote, fetcher=images,
                until=deadline.for_new_request(),
            )
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Type

import anyio

from ._deadline import bounded
from ._errors import RequestTimeoutError, describe_positions
from ._fetch import ImageFetcher
from ._groups import BaseExceptionGroup, first_error
from ._inputs import load_batch, needs_loading
from ._items import Item, Kind

__all__ = ["DOWNLOADS_AT_ONCE", "LazyFetcher", "load_batch_items"]

#: Remote images of one batch downloaded at the same time (the batches themselves load one at a time).
DOWNLOADS_AT_ONCE = 4
_CLOSE_LIMIT = 5.0  # seconds closing the fetcher's session may take


class LazyFetcher:
    """The :class:`ImageFetcher` of one call, made on the first remote image and closed when the call ends.

    A call without remote images (or without ``fetch_remote_images``) never opens a session. ``make``
    builds the fetcher (``functools.partial(ImageFetcher, ...)`` with the client's options).

    Example::

        make = functools.partial(ImageFetcher, max_bytes=1 << 30, trust_env=False, connect_timeout=10.0)
        async with LazyFetcher(make) as images:
            data = await (await images.get()).fetch(url, 0, until=math.inf)
    """

    def __init__(self, make: Callable[[], ImageFetcher]) -> None:
        self._make = make
        self._fetcher: Optional[ImageFetcher] = None
        self._lock = anyio.Lock()
        self._closed = False

    async def get(self) -> ImageFetcher:
        """The call's fetcher, opened on the first use."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("LazyFetcher.get() after the block that owns it ended")
            if self._fetcher is None:
                self._fetcher = await self._make().__aenter__()
            return self._fetcher

    async def __aenter__(self) -> LazyFetcher:
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self._closed = True
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            # Closed even when the call was cancelled, but never waited for without end.
            with anyio.move_on_after(_CLOSE_LIMIT, shield=True):
                await fetcher.__aexit__(exc_type, exc, tb)


async def load_batch_items(
    items: List[Item],
    start: int,
    *,
    fetch_remote: bool,
    fetcher: Optional[LazyFetcher] = None,
    until: float = math.inf,
) -> List[Item]:
    """The items of one batch with local files, data URIs and (with ``fetch_remote``) remote images loaded.

    ``start`` is the input position of ``items[0]``. Matches of rank documents are loaded too. ``fetcher``
    is needed when ``fetch_remote`` is true (it is opened only if the batch has a remote image).
    ``until`` is when the request this batch becomes must have been answered (anyio's clock; the
    engine's ``deadline.for_new_request()``): loading ends by then with RequestTimeoutError naming the
    batch's positions. Errors of single items are InputErrors naming their position. A batch with
    nothing to load (plain sentences) is returned as it is, at no cost.

    Example::

        loaded = await load_batch_items([classify_string("cat.png")], 0, fetch_remote=False, until=math.inf)
    """
    if not needs_loading(items, fetch_remote=fetch_remote):
        return items
    try:
        with bounded(None, until):
            return await _load(items, start, fetch_remote=fetch_remote, fetcher=fetcher, until=until)
    except RequestTimeoutError as late:
        raise _late(items, start, str(late)) from late
    raise _late(items, start, "")


def _late(items: List[Item], start: int, detail: str) -> RequestTimeoutError:
    positions = list(range(start, start + len(items)))
    because = f" ({detail})" if detail else ""
    return RequestTimeoutError(
        f"loading inputs {describe_positions(positions)} did not finish before the request's deadline{because}",
        positions=positions,
    )


async def _load(
    items: List[Item], start: int, *, fetch_remote: bool, fetcher: Optional[LazyFetcher], until: float
) -> List[Item]:
    if needs_loading(items):
        # Abandoned, not waited for, when the call is cancelled: a blocked read cannot hold the call.
        items = await anyio.to_thread.run_sync(load_batch, items, start, abandon_on_cancel=True)
    if fetch_remote and needs_loading(items, fetch_remote=True):
        if fetcher is None:
            raise ValueError("load_batch_items(fetch_remote=True) needs a fetcher (a LazyFetcher)")
        items = await _download_all(items, start, await fetcher.get(), until)
    return items


async def _download_all(items: List[Item], start: int, images: ImageFetcher, until: float) -> List[Item]:
    """Every remote image of the batch (matches included), each URL once, a few at a time."""
    first_position: Dict[str, int] = {}
    for item, position in _remote_items(items, start):
        first_position.setdefault(item.uri, position)
    downloaded: Dict[str, bytes] = {}
    slots = anyio.Semaphore(DOWNLOADS_AT_ONCE)

    async def download(url: str, position: int) -> None:
        async with slots:
            downloaded[url] = await images.fetch(url, position, until=until)

    try:
        async with anyio.create_task_group() as tasks:
            for url, position in first_position.items():
                tasks.start_soon(download, url, position)
    except BaseExceptionGroup as group:
        error = first_error(group)
        raise error from error.__cause__
    return [_with_downloads(item, downloaded) for item in items]


def _remote_items(items: List[Item], start: int) -> Iterator[Tuple[Item, int]]:
    for offset, item in enumerate(items):
        yield from _remote_in(item, start + offset)


def _remote_in(item: Item, position: int) -> Iterator[Tuple[Item, int]]:
    if item.kind is Kind.REMOTE_URI:
        yield item, position
    for _, match in item.matches:
        yield from _remote_in(match, position)


def _with_downloads(item: Item, downloaded: Dict[str, bytes]) -> Item:
    if item.kind is Kind.REMOTE_URI:
        item = item._replace(kind=Kind.BLOB, payload=downloaded[item.uri])
    if item.matches:
        item = item._replace(matches=tuple((mid, _with_downloads(m, downloaded)) for mid, m in item.matches))
    return item
