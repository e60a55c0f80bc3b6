"""A small forward HTTP proxy on 127.0.0.1 for tests of ``trust_env``: plain requests and CONNECT tunnels.

It reads the head of the first request on each connection, records it, opens a connection to the target
and from then on copies bytes both ways. A plain request's target is absolute (``GET http://host:port/p``)
and is passed on as it is (aiohttp's server takes the absolute form); CONNECT is answered 200 and tunnelled.

Example::

    async with ForwardProxy() as proxy:
        os.environ["HTTP_PROXY"] = proxy.url
        ...
        assert proxy.requests  # [("POST", "http://127.0.0.1:51001/post"), ...]
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import List, Optional, Tuple, Type
from urllib.parse import urlsplit


class ForwardProxy:
    """Records ``(method, target)`` of the first request of every connection in :attr:`requests`."""

    def __init__(self) -> None:
        self.requests: List[Tuple[str, str]] = []
        self.headers: List[dict[str, str]] = []
        self._server: Optional[asyncio.base_events.Server] = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: Optional[asyncio.StreamWriter] = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            self.requests.append((method, target))
            self.headers.append(
                {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines if line)}
            )
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, upstream = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                parts = urlsplit(target)
                up_reader, upstream = await asyncio.open_connection(parts.hostname, parts.port)
                upstream.write(head)
            await asyncio.gather(_copy(reader, upstream), _copy(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
            self._tasks.discard(task)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if sink.can_write_eof():
            sink.write_eof()
