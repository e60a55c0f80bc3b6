"""HTTP transport on aiohttp: one ``POST /post`` per request, several in flight at once.

HTTP has no stream, so a call's "stream" is a set of concurrent POSTs whose answers are handed to the
engine in completion order, each tagged with the request id of the POST that carried it (the gateway
assigns its own request ids, so the body's id cannot be used for matching).
"""

from __future__ import annotations

import asyncio
import math
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, ClassVar, Dict, Optional, Union

import aiohttp
import anyio
from anyio.abc import TaskGroup

from .._address import ServerAddress
from .._errors import AclipError, AuthenticationError, HTTPStatusError
from .._groups import BaseExceptionGroup, first_error
from ._aiohttp import AiohttpTransport, translate_error
from .base import DuplexStream, Received, too_large_answer

__all__ = ["HttpTransport"]

_JSON = "application/json"


class _End:
    """Put on the answer queue by end(), to wake a receiver that waits with nothing left in flight."""


_Outcome = Union[Received, AclipError, _End]


def _detail(body: bytes) -> Any:
    from .._jsonwire import JsonError, loads

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


class _HttpDuplex(DuplexStream):
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Dict[str, str],
        address: ServerAddress,
        tasks: TaskGroup,
        max_message_size: int,
    ) -> None:
        self._session = session
        self._url = url
        self._headers = headers
        self._address = address
        self._tasks = tasks
        self._max_message_size = max_message_size
        self._outcomes_in, self._outcomes = anyio.create_memory_object_stream[_Outcome](math.inf)
        self._sent = 0
        self._received = 0
        self._ended = False

    async def send(self, request_id: str, frame: bytes) -> None:
        self._sent += 1
        self._tasks.start_soon(self._post, request_id, frame)

    async def _post(self, request_id: str, frame: bytes) -> None:
        outcome: _Outcome
        try:
            async with self._session.post(self._url, data=frame, headers=self._headers) as answer:
                body = await self._read(answer)
                if 200 <= answer.status < 300:
                    outcome = (request_id, body)
                else:
                    outcome = status_error(self._address, answer.status, body)
        except AclipError as err:
            outcome = err
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
            outcome = translate_error(err, self._address)
            outcome.__cause__ = err
        await self._outcomes_in.send(outcome)

    async def _read(self, answer: aiohttp.ClientResponse) -> bytes:
        """The body, refused once it is over ``max_message_size`` (at once when Content-Length says so)."""
        limit = self._max_message_size
        if answer.content_length is not None:
            if answer.content_length > limit:
                raise too_large_answer(self._address, answer.content_length, limit)
            return await answer.read()
        body = bytearray()
        async for chunk in answer.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise too_large_answer(self._address, None, limit)
        return bytes(body)

    def close(self) -> None:
        self._outcomes_in.close()
        self._outcomes.close()

    async def end(self) -> None:
        self._ended = True
        await self._outcomes_in.send(_End())

    async def receive(self) -> Optional[Received]:
        while True:
            if self._ended and self._received == self._sent:
                return None
            outcome = await self._outcomes.receive()
            if isinstance(outcome, _End):
                continue
            self._received += 1
            if isinstance(outcome, AclipError):
                raise outcome
            return outcome


class HttpTransport(AiohttpTransport):
    """POSTs JSON DataRequests to ``/post`` over one aiohttp session (created on first use)."""

    wire_format = "json"
    schemes = ("http", "https")
    path = "/post"
    extra_headers: ClassVar[Dict[str, str]] = {"Content-Type": _JSON, "Accept": _JSON}

    async def check_ready(self) -> Optional[str]:
        """``GET /dry_run``: the status as JSON."""
        from .._health import reason_from_json
        from .._jsonwire import JsonError, loads

        try:
            async with self._get_session().get(self._base_url + "/dry_run", headers=self._headers) as answer:
                body = await answer.read()
                if not 200 <= answer.status < 300:
                    raise status_error(self._address, answer.status, body)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
            raise translate_error(err, self._address) from err
        try:
            return reason_from_json(loads(body))
        except JsonError:
            return f"the readiness answer is not JSON: {body[:200]!r}"

    @asynccontextmanager
    async def open_stream(self, headers: Optional[Dict[str, str]] = None) -> AsyncIterator[DuplexStream]:
        session = self._get_session()
        limit = self._options.max_message_size
        duplex: Optional[_HttpDuplex] = None
        try:
            async with anyio.create_task_group() as tasks:
                duplex = _HttpDuplex(session, self._url, self._headers_with(headers), self._address, tasks, limit)
                try:
                    yield duplex
                finally:
                    tasks.cancel_scope.cancel()  # POSTs still running when the call ends are abandoned
        except BaseExceptionGroup as group:  # the POST tasks never raise: this is the caller's own error
            error = first_error(group)
            raise error from error.__cause__
        finally:
            if duplex is not None:
                duplex.close()
