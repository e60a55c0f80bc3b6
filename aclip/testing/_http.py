"""The HTTP frontend: Jina's HTTP gateway routes on an aiohttp application.

``POST /post`` takes the JSON request body (``exec_endpoint`` or ``execEndpoint`` names the endpoint,
default ``/``); ``POST /index`` and ``POST /search`` do the same with the route as the endpoint unless the
body names one. The answer is 200 with the gateway's JSON (camelCase header, every document key, nulls),
executor errors included: they are reported in ``header.status``, as a real gateway does. As the real one,
the server assigns each request its own ``requestId`` (a client knows which POST an answer belongs to)
and each document without an ``id`` a fresh one.

Bad JSON or a body of the wrong shape is 422 ``{"detail": [...]}``; ``GET /``, ``GET /dry_run`` and
``GET /status`` answer small JSON objects; other paths are 404 and other methods 405, with JSON bodies.
Each POST is one request, processed as soon as it arrives (many POSTs run concurrently); ``out_of_order``
has no meaning here. A POST still in progress when the server stops is answered 503.

``GET /openapi.json`` answers a minimal OpenAPI 3.1 document (:func:`openapi_document`): each route above
under ``paths`` with its method, a summary and its responses, no schemas. Jina's HTTP client (inside the
upstream ``clip_client``) reads it once before its first POST and sends each request to the POST route
named like its endpoint (``/index``, ``/search``), to ``/post`` otherwise, as it does with a real gateway.

Of the server's :class:`~aclip.testing._faults.Faults` this frontend applies ``fail_status`` (every POST is
answered with that status and ``{"detail": ...}``, its body unread) and ``close_after`` (once that many
POSTs were answered on one keep-alive connection, the next POST on it closes the connection unanswered:
the client sees a disconnect, e.g. aiohttp's ``ServerDisconnectedError``).

Example::

    frontend = HttpFrontend(ReferenceExecutor(), token=None)
    port = await frontend.start("127.0.0.1", 0)
    # POST http://127.0.0.1:<port>/post {"data": [{"text": "hello"}], "exec_endpoint": "/encode"}
    await frontend.close()
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from aclip import __version__
from aclip._exceptions import JsonError
from aclip._pb import jina_pb2
from aclip._wire.json import dumps, loads
from aclip.testing._dry_run import dry_run_status
from aclip.testing._executor import EXECUTOR_NAME
from aclip.testing._json import request_from_json, response_to_json
from aclip.testing._web import INLINE_MAX_BYTES, WebFrontend, assign_ids, json_response, off_loop

__all__ = ["HttpFrontend", "openapi_document", "parse_post"]

logger = logging.getLogger("aclip.testing")

#: POST routes of the gateway; on the ones other than /post the route is the default endpoint.
POST_ROUTES = ("/post", "/index", "/search")
#: GET routes besides /openapi.json, with the summaries :func:`openapi_document` gives them.
GET_ROUTES = {
    "/": "An empty JSON object: the server is up",
    "/dry_run": "Readiness: a success status",
    "/status": "The server's name and versions",
}


class Unprocessable(Exception):
    """A POST body that is not a DataRequest; ``detail`` is the 422 answer's ``detail`` list."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail[0]["msg"])
        self.detail = detail


class HttpFrontend(WebFrontend):
    """Serves Jina's HTTP routes for one :class:`ReferenceExecutor` (see the module docstring).

    Example::

        frontend = HttpFrontend(executor, token="s3cret")
        port = await frontend.start("127.0.0.1", 0)
    """

    protocol = "http"

    def add_routes(self, app: web.Application) -> None:
        for route in POST_ROUTES:
            app.router.add_post(route, self._post)
        app.router.add_get("/", self._root)
        app.router.add_get("/dry_run", self._dry_run)
        app.router.add_get("/status", self._status)
        app.router.add_get("/openapi.json", self._openapi)

    async def _post(self, request: web.Request) -> web.StreamResponse:
        faults = self.executor.faults
        connection = request.transport  # one per keep-alive connection
        if connection is not None and self.budget.exhausted(connection):
            self.stats.add("connections_dropped")
            logger.info("HTTP connection from %s closed before answering (close_after)", request.remote)
            connection.close()
            return web.Response()  # aiohttp cannot send it: the connection is gone
        if faults.fail_status:
            self.stats.add("status_failures")
            status = faults.fail_status
            return json_response({"detail": f"HTTP {status} injected by the reference server (fail_status)"}, status)
        with self.cancellable():
            return await self._answer(request)
        # Only reached when close() cancelled the handler: the server is stopping.
        return json_response({"detail": "the server is stopping"}, 503)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            message = await off_loop(lambda: parse_post(body, request.path), heavy=len(body) > INLINE_MAX_BYTES)
        except Unprocessable as exc:
            logger.info("HTTP %s from %s: 422, %s", request.path, request.remote, exc)
            return json_response({"detail": exc.detail}, 422)
        self.stats.requests_received += 1
        answer = await self.executor.handle(message)
        # JSON number lists are about five times the size of the protobuf they come from.
        payload = await off_loop(
            lambda: dumps(response_to_json(answer)), heavy=answer.ByteSize() * 5 > INLINE_MAX_BYTES
        )
        response = web.Response(body=payload, content_type="application/json")
        await response.prepare(request)
        await response.write_eof()
        self.stats.responses_sent += 1
        if request.transport is not None:
            self.budget.sent(request.transport)
        return response

    async def _root(self, request: web.Request) -> web.StreamResponse:
        return json_response({})

    async def _dry_run(self, request: web.Request) -> web.StreamResponse:
        with self.cancellable():
            status = await dry_run_status(self.executor)
        return json_response({"code": status.code, "description": status.description, "exception": None})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        return json_response({"server": "aclip.testing", "aclip": __version__, "executor": EXECUTOR_NAME})

    async def _openapi(self, request: web.Request) -> web.StreamResponse:
        return json_response(openapi_document())


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document ``GET /openapi.json`` answers: the server's routes, without schemas.

    Example::

        >>> paths = openapi_document()["paths"]
        >>> sorted(path for path, methods in paths.items() if "post" in methods)
        ['/index', '/post', '/search']
        >>> sorted(paths["/dry_run"])
        ['get']
    """
    ok = {"description": "Successful Response", "content": {"application/json": {}}}
    invalid = {"description": "Validation Error", "content": {"application/json": {}}}
    paths: dict[str, Any] = {}
    for route in POST_ROUTES:
        endpoint = "the body's exec_endpoint" + ("" if route == "/post" else f", {route} by default")
        operation = {
            "summary": f"Post a data request to {endpoint}",
            "operationId": f"post{route.replace('/', '_')}",
            "requestBody": {"required": True, "content": {"application/json": {}}},
            "responses": {"200": ok, "422": invalid},
        }
        paths[route] = {"post": operation}
    for route, summary in GET_ROUTES.items():
        name = route.strip("/") or "root"
        paths[route] = {"get": {"summary": summary, "operationId": f"get_{name}", "responses": {"200": ok}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "aclip.testing reference server", "version": __version__},
        "paths": paths,
    }


def parse_post(body: bytes, route: str = "/post") -> jina_pb2.DataRequestProto:
    """The DataRequest a POST body to ``route`` asks for, with fresh ids; :class:`Unprocessable` if none.

    Example::

        >>> request = parse_post(b'{"data": [{"text": "hi"}]}', "/search")
        >>> request.header.exec_endpoint, request.data.docs.docs[0].text, len(request.header.request_id)
        ('/search', 'hi', 32)
    """
    try:
        value = loads(body)
    except JsonError as exc:
        detail = {"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error", "ctx": {"error": str(exc)}}
        raise Unprocessable([detail]) from exc
    try:
        request = request_from_json(value)
    except (JsonError, ValueError, TypeError) as exc:  # the JSON codec lets a few ValueErrors through (out of range)
        raise Unprocessable([{"type": "value_error", "loc": ["body"], "msg": str(exc)}]) from exc
    if route != "/post" and not _names_endpoint(value):
        request.header.exec_endpoint = route
    assign_ids(request, fresh_request_id=True)
    return request


def _names_endpoint(body: dict[str, Any]) -> bool:
    header = body.get("header")
    in_header = isinstance(header, dict) and bool(header.get("exec_endpoint"))
    return bool(body.get("exec_endpoint") or body.get("execEndpoint") or in_header)
