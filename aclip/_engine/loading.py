"""Loading one batch before it is sent: the engine's only entry point for files, data URIs and downloads.

Local files and data URIs are read and decoded by :func:`load_batch` in a worker thread
that is abandoned when the call is cancelled or its deadline passes, so a read that blocks (a slow or
hung file system) cannot hold the call. Remote images (``fetch_remote_images``) are downloaded on the
event loop by the call's :class:`~aclip._engine.fetch.ImageFetcher`, a few at a time. All of it ends by the
deadline of the request the batch will become.

Example (what the engine's producer does when the client fetches remote images)::

    async with ImageFetcher(max_bytes=max_message_size, trust_env=trust_env, connect_timeout=10.0) as images:
        for batch in batches:
            batch.items = await load_batch_items(
                batch.items, batch.start, fetcher=images, until=deadline.for_new_request()
            )
"""

from __future__ import annotations

import base64
import binascii
import errno
import math
import os
import stat
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import anyio

from .._deadline import bounded
from .._exceptions import BaseExceptionGroup, InputError, RequestTimeoutError, describe_positions, first_error
from .._models import Item, Kind
from .fetch import ImageFetcher
from .inputs import _shown

#: Remote images of one batch downloaded at the same time (the batches themselves load one at a time).
DOWNLOADS_AT_ONCE = 4


async def load_batch_items(
    items: List[Item],
    start: int,
    *,
    fetcher: Optional[ImageFetcher] = None,
    until: float = math.inf,
) -> List[Item]:
    """The items of one batch with local files, data URIs and (given a ``fetcher``) remote images loaded.

    ``start`` is the input position of ``items[0]``. Matches of rank documents are loaded too. Without a
    ``fetcher`` remote images stay URLs, for the server to download.
    ``until`` is when the request this batch becomes must have been answered (anyio's clock; the
    engine's ``deadline.for_new_request()``): loading ends by then with RequestTimeoutError naming the
    batch's positions. Errors of single items are InputErrors naming their position. A batch with
    nothing to load (plain sentences) is returned as it is, at no cost.

    Example::

        loaded = await load_batch_items([classify_string("cat.png")], 0, until=math.inf)
    """
    if not needs_loading(items, fetch_remote=fetcher is not None):
        return items
    try:
        with bounded(None, until):
            return await _load(items, start, fetcher, until)
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


async def _load(items: List[Item], start: int, fetcher: Optional[ImageFetcher], until: float) -> List[Item]:
    if needs_loading(items):
        # Abandoned, not waited for, when the call is cancelled: a blocked read cannot hold the call.
        items = await anyio.to_thread.run_sync(load_batch, items, start, abandon_on_cancel=True)
    if fetcher is not None and needs_loading(items, fetch_remote=True):
        items = await _download_all(items, start, fetcher, until)
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


_LOADED_BY_CLIENT = (Kind.LOCAL_FILE, Kind.DATA_URI)


def _loaded_kinds(fetch_remote: bool) -> Tuple[Kind, ...]:
    return (*_LOADED_BY_CLIENT, Kind.REMOTE_URI) if fetch_remote else _LOADED_BY_CLIENT


def needs_loading(items: Sequence[Item], *, fetch_remote: bool = False) -> bool:
    """Whether a batch has items to read, decode or (with ``fetch_remote``) download before it is sent.

    Cheap, so that a batch of plain sentences pays nothing for loading.
    """
    kinds = _loaded_kinds(fetch_remote)
    return any(
        item.kind in kinds or needs_loading([m for _, m in item.matches], fetch_remote=fetch_remote) for item in items
    )


def load_batch(items: List[Item], start: int) -> List[Item]:
    """Read the local files and decode the data URIs of one batch (matches included); blocking.

    The engine does not call this on the event loop: :func:`aclip._engine.loading.load_batch_items` runs it in a
    worker thread it can abandon, and downloads remote images on the loop. ``start`` is the input position
    of ``items[0]``, for error messages.

    Example::

        loaded = load_batch([classify_string("cat.png")], start=0)  # [Item(Kind.BLOB, b"\\x89PNG...", ...)]
    """
    return [_load_with_matches(item, start + offset) for offset, item in enumerate(items)]


def _load_with_matches(item: Item, position: int) -> Item:
    loaded = _read(item, position) if item.kind in _LOADED_BY_CLIENT else item
    if item.matches:
        loaded = loaded._replace(matches=tuple((mid, _load_with_matches(m, position)) for mid, m in item.matches))
    return loaded


def _read(item: Item, position: int) -> Item:
    assert isinstance(item.payload, str)
    if item.kind == Kind.DATA_URI:
        return item._replace(kind=Kind.BLOB, payload=_decode_data_uri(item.payload, position))
    return item._replace(kind=Kind.BLOB, payload=_read_image_file(item.payload, position))


# Opening never blocks (a FIFO without a writer would block a plain open() for ever), never makes a
# terminal ours, and the descriptor does not leak into child processes.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_image_file(path: str, position: int) -> bytes:
    """The bytes of a regular file (a symlink to one included); anything else is an InputError at once.

    A FIFO, a character device or a socket named like an image would block a reader for ever, or stream
    without end: it is opened without blocking and refused on what ``fstat`` says, before any read.
    """
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise InputError(
            f"input {position}: {_shown(path)} looks like an image file, but there is no such file; "
            "fix the path, or pass Document(text=...) to send it as a sentence",
            position=position,
        ) from None
    except IsADirectoryError:
        raise _directory(path, position) from None
    except OSError as err:
        if err.errno == errno.ENXIO:  # a socket, or a device without a driver
            raise _not_regular(path, position, "a socket or a device") from None
        raise InputError(f"input {position}: cannot read image file {_shown(path)}: {err}", position=position) from err
    except ValueError as err:  # a NUL character in the path
        raise InputError(f"input {position}: {_shown(path)} is not a usable path: {err}", position=position) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise _directory(path, position)
        if not stat.S_ISREG(mode):
            raise _not_regular(path, position, _special_kind(mode))
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    with open(descriptor, "rb", closefd=True) as handle:
        try:
            return handle.read()
        except OSError as err:
            raise InputError(
                f"input {position}: cannot read image file {_shown(path)}: {err}", position=position
            ) from err


def _directory(path: str, position: int) -> InputError:
    return InputError(f"input {position}: {_shown(path)} is a directory, not an image file", position=position)


def _not_regular(path: str, position: int, kind: str) -> InputError:
    return InputError(
        f"input {position}: {_shown(path)} is not a regular file ({kind}); aclip reads images only from "
        "regular files (a FIFO, device or socket could block or never end); copy the image to a file",
        position=position,
    )


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _decode_data_uri(uri: str, position: int) -> bytes:
    comma = uri.find(",")
    if comma < 0:
        raise InputError(f"input {position}: malformed data URI {_shown(uri)} (no comma)", position=position)
    header, data = uri[5:comma], uri[comma + 1 :]
    if header.endswith(";base64"):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(
                f"input {position}: the data URI {_shown(uri)} is not valid base64", position=position
            ) from None
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(data)
