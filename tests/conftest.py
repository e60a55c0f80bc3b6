"""Shared fixtures: reference servers on 127.0.0.1, each on its own event loop in its own thread."""

from __future__ import annotations

from typing import Iterator

import pytest

from aclip.testing import ReferenceServer, serve_in_thread


@pytest.fixture(scope="session")
def server() -> Iterator[ReferenceServer]:
    with serve_in_thread() as running:
        yield running


@pytest.fixture(scope="session")
def out_of_order_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(out_of_order=True) as running:
        yield running


@pytest.fixture(scope="session")
def grpc_url(server: ReferenceServer) -> str:
    return server.url("grpc")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
