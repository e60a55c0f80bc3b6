"""What the upstream clip_client needs from the reference server beyond what aclip's client uses.

- ``GET /openapi.json`` over HTTP, whose ``paths`` Jina's HTTP client reads to pick its POST route;
- a ``gateway`` route that never starts and ends within one whole millisecond: clip_client's ``profile()``
  divides by ``end_time.ToMilliseconds() - start_time.ToMilliseconds()``.

Raw clients only (aiohttp, grpclib); tests/interop/test_upstream_client.py runs clip_client itself.
"""

from __future__ import annotations

import datetime
from typing import Any

import anyio
import pytest

from aclip import __version__
from aclip._pb.docarray_pb2 import DocumentProto
from aclip._pb.jina_pb2 import DataRequestProto
from aclip.testing import ReferenceExecutor, ReferenceServer, serve_in_thread
from tests.testing.test_http_ws import get, post, session, ws_bytes
from tests.testing.test_server import exchange, make_request

TOKEN = "openapi-s3cret"


# --- GET /openapi.json ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_openapi_lists_the_routes(server: ReferenceServer) -> None:
    status, document, _ = await get(server.url("http"), "/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.") and document["info"]["version"] == __version__
    methods = {path: sorted(operations) for path, operations in document["paths"].items()}
    assert methods == {
        "/post": ["post"],
        "/index": ["post"],
        "/search": ["post"],
        "/": ["get"],
        "/dry_run": ["get"],
        "/status": ["get"],
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            assert operation["summary"] and "200" in operation["responses"]


@pytest.mark.anyio
async def test_every_route_the_openapi_document_lists_is_served(server: ReferenceServer) -> None:
    url = server.url("http")
    _, document, _ = await get(url, "/openapi.json")
    for path, operations in document["paths"].items():
        for method in operations:
            if method == "post":
                status, answer = await post(url, {"data": [{"text": "listed"}]}, path=path)
                assert (status, answer["header"]["status"]) == (200, None), path
            else:
                async with session() as client, client.request(method, url + path) as answer:
                    assert answer.status == 200, (method, path)


@pytest.mark.anyio
async def test_openapi_needs_the_token_like_every_route() -> None:
    with serve_in_thread(protocols="http", token=TOKEN) as guarded:
        url = guarded.url("http")
        refused, _, _ = await get(url, "/openapi.json")
        status, document, _ = await get(url, "/openapi.json", headers={"Authorization": TOKEN})
    assert (refused, status) == (401, 200)
    assert "/post" in document["paths"]


# --- the gateway route spans a millisecond boundary -----------------------------------------------------------


def check_gateway_crosses_a_millisecond(response: DataRequestProto) -> None:
    gateway, executor = response.routes
    assert gateway.end_time.ToMilliseconds() > gateway.start_time.ToMilliseconds()
    times = [route.ToNanoseconds() for route in (gateway.start_time, executor.start_time)]
    times += [route.ToNanoseconds() for route in (executor.end_time, gateway.end_time)]
    assert times == sorted(times) and len(set(times)) == 4


def requests(count: int) -> list[DataRequestProto]:
    # An empty document, as clip_client's profile() sends: the quickest request there is.
    return [make_request(DocumentProto(id=f"d{i}"), request_id=f"r{i}", endpoint="/") for i in range(count)]


@pytest.mark.anyio
async def test_the_gateway_route_spans_a_millisecond_boundary_one_request_at_a_time() -> None:
    executor = ReferenceExecutor()
    for request in requests(50):
        check_gateway_crosses_a_millisecond(await executor.handle(request))


@pytest.mark.anyio
async def test_the_gateway_route_spans_a_millisecond_boundary_many_at_once_in_order() -> None:
    executor = ReferenceExecutor()
    responses: list[DataRequestProto] = []

    async def answer(request: DataRequestProto) -> None:
        responses.append(await executor.handle(request))

    async with anyio.create_task_group() as tasks:
        for request in requests(50):
            tasks.start_soon(answer, request)
    # The wait never reorders answers: requests finished in arrival order are answered in it.
    assert [response.header.request_id for response in responses] == [f"r{i}" for i in range(50)]
    for response in responses:
        check_gateway_crosses_a_millisecond(response)


def json_milliseconds(stamp: str) -> int:
    """Whole milliseconds since the epoch of an ISO 8601 route time, as ``Timestamp.ToMilliseconds()``."""
    since_epoch = datetime.datetime.fromisoformat(stamp) - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return since_epoch // datetime.timedelta(milliseconds=1)


@pytest.mark.anyio
async def test_the_gateway_route_spans_a_millisecond_boundary_on_every_protocol(server: ReferenceServer) -> None:
    for response in await exchange(server.url("grpc"), requests(10)):
        check_gateway_crosses_a_millisecond(response)
    for response in await ws_bytes(server.url("websocket"), requests(10)):
        check_gateway_crosses_a_millisecond(response)
    for _ in range(10):
        status, answer = await post(server.url("http"), {"data": [{}], "exec_endpoint": "/"})
        assert status == 200
        gateway: dict[str, Any] = answer["routes"][0]
        assert gateway["executor"] == "gateway"
        assert json_milliseconds(gateway["endTime"]) > json_milliseconds(gateway["startTime"])
