"""A hostile image host for tests of remote image downloads: aiohttp.web on 127.0.0.1, in its own thread.

Paths (every answer is bounded in time, and streams end when the client goes away)::

    /good.png       a small PNG (IMAGE), image/png
    /octet          the same bytes as application/octet-stream (how object stores serve files)
    /trickle.png    Content-Length 1000, then one byte a second
    /huge.png       400 MB announced in Content-Length, streamed lazily (never allocated)
    /endless.png    no Content-Length (chunked), up to 400 MB streamed lazily
    /short.png      Content-Length 1000, 10 bytes sent, then the connection is closed
    /gzip.png       IMAGE gzip-compressed, with Content-Encoding: gzip (whatever was asked for)
    /page.html      text/html
    /data.json      application/json
    /missing.png    404
    /redirect.png   302 to /good.png, setting a cookie on the way
    /loop.png       302 to itself, for ever

:attr:`ImageHost.requests` records ``(path, headers)`` of every request, headers with lower-case names;
:attr:`ImageHost.bytes_sent` counts the body bytes the streaming paths wrote.

Example::

    with ImageHost() as host:
        url = host.url("/good.png")   # http://127.0.0.1:54321/good.png
        ...
        assert "authorization" not in host.requests[0][1]
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
from types import TracebackType
from typing import Awaitable, Callable, Dict, List, Optional, Tuple, Type

from aiohttp import web

from aclip.testing import sample_png

IMAGE = sample_png(8, 6, seed=77)
HUGE_SIZE = 400 * 1024 * 1024
SHORT_ANNOUNCED = 1000
_CHUNK = bytes(1024 * 1024)  # one zero-filled chunk, written again and again
_STREAM_LIMIT = 60.0  # seconds any streaming answer may last
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class ImageHost:
    """Serves the paths above on 127.0.0.1 from a daemon thread; a context manager."""

    def __init__(self) -> None:
        self.requests: List[Tuple[str, Dict[str, str]]] = []
        self.bytes_sent = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="image-host", daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ImageHost:
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            raise TimeoutError(f"the image host did not start within {_START_TIMEOUT:g} s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(_STOP_TIMEOUT)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        app = web.Application()
        app.middlewares.append(self._record)
        for path, handler in [
            ("/good.png", self._good),
            ("/octet", self._octet),
            ("/trickle.png", self._trickle),
            ("/huge.png", self._huge),
            ("/endless.png", self._endless),
            ("/short.png", self._short),
            ("/gzip.png", self._gzip),
            ("/page.html", self._page),
            ("/data.json", self._json),
            ("/redirect.png", self._redirect),
            ("/loop.png", self._loop_redirect),
        ]:
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append((request.path_qs, {name.lower(): value for name, value in request.headers.items()}))
        return await handler(request)

    async def _good(self, request: web.Request) -> web.Response:
        return web.Response(body=IMAGE, content_type="image/png")

    async def _octet(self, request: web.Request) -> web.Response:
        return web.Response(body=IMAGE, content_type="application/octet-stream")

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = 1000
        await response.prepare(request)
        for index in range(int(_STREAM_LIMIT)):
            await response.write(IMAGE[index : index + 1] or b"\0")
            await asyncio.sleep(1.0)
        return response

    async def _stream_zeros(self, request: web.Request, *, announce: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        if announce:
            response.content_length = HUGE_SIZE
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        ends = asyncio.get_running_loop().time() + _STREAM_LIMIT
        sent = 0
        while sent < HUGE_SIZE and asyncio.get_running_loop().time() < ends:
            await response.write(_CHUNK)
            sent += len(_CHUNK)
            self.bytes_sent += len(_CHUNK)
        return response

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        return await self._stream_zeros(request, announce=True)

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        return await self._stream_zeros(request, announce=False)

    async def _short(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = SHORT_ANNOUNCED
        await response.prepare(request)
        await response.write(IMAGE[:10])
        assert request.transport is not None
        request.transport.close()  # fewer bytes than announced, then the connection ends
        return response

    async def _gzip(self, request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(IMAGE), headers={"Content-Type": "image/png", "Content-Encoding": "gzip"}
        )

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>not found, but nicely</body></html>", content_type="text/html")

    async def _json(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "no image here"})

    async def _redirect(self, request: web.Request) -> web.Response:
        response = web.Response(status=302, headers={"Location": "/good.png"})
        response.set_cookie("session", "tracked")
        return response

    async def _loop_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop.png")
