"""HTTP transport on aiohttp: one ``POST /post`` per request, several in flight at once.

HTTP has no stream, so a call's "stream" is a set of concurrent POSTs whose answers are handed to the
engine in completion order, each tagged with the request id of the POST that carried it (the gateway
assigns its own request ids, so the body's id cannot be used for matching).

Every body is read through :func:`read_body`, which bounds it by its decoded size: aiohttp does not
decompress (see :func:`~aclip._transports._aiohttp.new_session`), aclip asks only for the encodings it can
inflate within a bound (gzip and deflate, not br or zstd), and inflates them itself, never producing more
than the limit and one byte. An answer is bounded by ``max_message_size``, an error's body by 64 KiB
(only its ``detail`` is shown), the readiness answer by 1 MiB.

Redirects are not followed (``allow_redirects=False``): a 3xx answer is an HTTPStatusError that names
where it pointed (:mod:`._redirects`), so neither the body nor the token and headers go anywhere else.
"""

from __future__ import annotations

import asyncio
import zlib
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, ClassVar, Dict, Iterator, Optional, Union

import aiohttp
import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from .._config import ServerAddress
from .._exceptions import AclipError, AuthenticationError, HTTPStatusError, ProtocolError
from .._wire.formats import JSON
from ._aiohttp import AiohttpTransport, translate_error
from ._closing import client_closed, reported_as_closed
from ._redirects import is_redirect, refused_redirect
from ._tasks import TaskDuplex, duplex_in_tasks
from .base import DuplexStream, Received, StreamDeadline, no_deadline, too_large_answer

_JSON = "application/json"
#: The Content-Encodings aclip can inflate within a bound (zlib's ``max_length``); aiohttp would also ask
#: for br and zstd when their libraries are installed.
ACCEPTED_ENCODINGS = "gzip, deflate"
#: How much of an error answer's body is read: only its ``detail`` is shown.
ERROR_BODY_LIMIT = 64 * 1024
#: How much of a readiness answer is read: a small JSON object.
READINESS_LIMIT = 1024 * 1024
#: Inflate at most this much at a time, so that a large answer lets the loop (and a cancellation) in.
_INFLATE_STEP = 1024 * 1024
_ZLIB_WBITS = zlib.MAX_WBITS
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class _Inflater:
    """Inflates a gzip or deflate body chunk by chunk, never past the limit it is given.

    zlib's ``max_length`` caps each step's output and keeps the input not yet inflated in
    ``unconsumed_tail``, so memory never holds more than the limit and one byte of inflated data. gzip may
    be several members one after another; ``deflate`` is zlib-wrapped as HTTP says, or raw as some servers
    send it (told apart by the first byte, as aiohttp and browsers do).
    """

    def __init__(self, encoding: str, address: ServerAddress) -> None:
        self._encoding = encoding
        self._address = address
        self._stream: Optional[zlib._Decompress] = None
        self.produced = 0

    def _start(self, first: bytes) -> zlib._Decompress:
        if self._encoding == "gzip":
            return zlib.decompressobj(_GZIP_WBITS)
        zlib_wrapped = first[0] & 0x0F == zlib.DEFLATED
        return zlib.decompressobj(_ZLIB_WBITS if zlib_wrapped else -_ZLIB_WBITS)

    def pieces(self, data: bytes, limit: int) -> Iterator[bytes]:
        """The inflated pieces of ``data``; stops once ``limit + 1`` bytes came out in all (the caller refuses)."""
        while data:
            if self._stream is None:
                self._stream = self._start(data)
            elif self._stream.eof:
                if self._encoding != "gzip":
                    raise ProtocolError(f"{self._address} sent more data after the end of its deflate answer")
                self._stream = self._start(data)  # the next gzip member
            room = min(_INFLATE_STEP, limit + 1 - self.produced)
            if room <= 0:
                return
            try:
                piece = self._stream.decompress(data, room)
            except zlib.error as err:
                raise ProtocolError(f"{self._address} sent a corrupt {self._encoding} answer: {err}") from err
            data = self._stream.unused_data if self._stream.eof else self._stream.unconsumed_tail
            self.produced += len(piece)
            if piece:
                yield piece

    def check_complete(self) -> None:
        """A ProtocolError when the body ended inside a compressed stream (it was cut short)."""
        if self._stream is not None and not self._stream.eof:
            raise ProtocolError(f"{self._address} sent a {self._encoding} answer that ends before its stream does")


def _inflater_for(answer: aiohttp.ClientResponse, address: ServerAddress) -> Optional[_Inflater]:
    """How to decode the body (None: as it is); a ProtocolError for an encoding aclip did not ask for."""
    encoding = answer.headers.get(aiohttp.hdrs.CONTENT_ENCODING, "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater("deflate" if encoding == "deflate" else "gzip", address)
    raise ProtocolError(
        f"{address} answered with Content-Encoding {encoding!r}; aclip asks for {ACCEPTED_ENCODINGS} only"
    )


async def read_body(
    answer: aiohttp.ClientResponse, address: ServerAddress, limit: int, *, truncate: bool = False
) -> bytes:
    """The body, decoded, refused (MessageTooLargeError) once it is over ``limit`` bytes, or with
    ``truncate`` cut to its first ``limit`` bytes. A plain body is refused at once when its Content-Length
    says so; a compressed one is inflated a step at a time (Content-Length says nothing of its size).
    An unknown encoding, or a corrupt or truncated compressed stream, is a ProtocolError.
    """
    inflater = _inflater_for(answer, address)
    if inflater is None and answer.content_length is not None:
        if answer.content_length <= limit:
            return await answer.read()
        if not truncate:
            raise too_large_answer(address, answer.content_length, limit)
    body = bytearray()
    async for chunk in answer.content.iter_any():
        for piece in inflater.pieces(chunk, limit) if inflater is not None else (chunk,):
            body += piece
            if len(body) > limit:
                if truncate:
                    return bytes(body[:limit])
                raise too_large_answer(address, None, limit)
            await anyio.lowlevel.checkpoint()
    if inflater is not None:
        inflater.check_complete()
    return bytes(body)


async def read_error_body(answer: aiohttp.ClientResponse, address: ServerAddress) -> bytes:
    """The first ERROR_BODY_LIMIT bytes of an error answer's body, decoded; when it cannot be decoded,
    why not (the answer's status matters more than its body)."""
    try:
        return await read_body(answer, address, ERROR_BODY_LIMIT, truncate=True)
    except ProtocolError as err:
        return str(err).encode()


def _detail(body: bytes) -> Any:
    from .._exceptions import JsonError
    from .._wire.json import loads

    try:
        parsed = loads(body)
    except JsonError:
        return body[:500].decode("utf-8", "replace")
    return parsed.get("detail", parsed) if isinstance(parsed, dict) else parsed


def status_error(address: ServerAddress, status: int, body: bytes) -> AclipError:
    """The typed error for a non-2xx answer, with the server's ``detail``."""
    detail = _detail(body)
    if status in (401, 403):
        return AuthenticationError(f"{address} refused the credentials (HTTP {status}): {detail}")
    return HTTPStatusError(f"{address} answered HTTP {status}: {detail}", status=status, detail=detail)


async def answer_error(answer: aiohttp.ClientResponse, address: ServerAddress) -> AclipError:
    """The typed error for a non-2xx answer: a redirect, which is not followed (:mod:`._redirects`), or
    :func:`status_error` with the first part of its body."""
    if is_redirect(answer):
        return refused_redirect(address, answer.status, answer.headers[aiohttp.hdrs.LOCATION], answer.url)
    return status_error(address, answer.status, await read_error_body(answer, address))


class _HttpDuplex(TaskDuplex):
    """Each request is one POST, in a task of its own; its answer belongs to it (the server sets the ids)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Dict[str, str],
        address: ServerAddress,
        tasks: TaskGroup,
        max_message_size: int,
    ) -> None:
        super().__init__(tasks)
        self._session = session
        self._url = url
        self._headers = headers
        self._address = address
        self._max_message_size = max_message_size

    async def answer(self, request_id: str, frame: bytes) -> Union[Received, AclipError]:
        try:
            post = self._session.post(self._url, data=frame, headers=self._headers, allow_redirects=False)
            async with post as answer:
                if 200 <= answer.status < 300:
                    return request_id, await read_body(answer, self._address, self._max_message_size)
                return await answer_error(answer, self._address)
        except AclipError as err:
            return err
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
            failure = translate_error(err, self._address)
            failure.__cause__ = err
        except RuntimeError as err:  # aiohttp's "Session is closed": the client was closed under this POST
            if not self._session.closed:
                raise
            failure = client_closed(self._address)
            failure.__cause__ = err
        return failure


class HttpTransport(AiohttpTransport):
    """POSTs JSON DataRequests to ``/post`` over one aiohttp session (created on first use)."""

    wire_format = JSON
    schemes = ("http", "https")
    path = "/post"
    extra_headers: ClassVar[Dict[str, str]] = {
        "Content-Type": _JSON,
        "Accept": _JSON,
        "Accept-Encoding": ACCEPTED_ENCODINGS,
    }

    async def check_ready(self) -> Optional[str]:
        """``GET /dry_run``: the status as JSON."""
        from .._exceptions import JsonError
        from .._wire.health import reason_from_json
        from .._wire.json import loads

        url = self._base_url + "/dry_run"
        with reported_as_closed(self, self._address):
            try:
                async with self._get_session().get(url, headers=self._headers, allow_redirects=False) as answer:
                    if not 200 <= answer.status < 300:
                        raise await answer_error(answer, self._address)
                    limit = min(READINESS_LIMIT, self._options.max_message_size)
                    body = await read_body(answer, self._address, limit)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
                raise translate_error(err, self._address) from err
        try:
            return reason_from_json(loads(body))
        except JsonError:
            return f"the readiness answer is not JSON: {body[:200]!r}"

    @asynccontextmanager
    async def open_stream(
        self, headers: Optional[Dict[str, str]] = None, *, deadline: StreamDeadline = no_deadline
    ) -> AsyncIterator[DuplexStream]:
        """Nothing to wait for here: each POST connects when it is sent, and the engine bounds its answer
        (connecting included) by its request's deadline, so ``deadline`` is not needed."""
        with reported_as_closed(self, self._address):
            session = self._get_session()
            limit = self._options.max_message_size
            sent = self._headers_with(headers)
            # POSTs still running when the call ends are abandoned.
            async with duplex_in_tasks(
                lambda tasks: _HttpDuplex(session, self._url, sent, self._address, tasks, limit)
            ) as duplex:
                yield duplex
