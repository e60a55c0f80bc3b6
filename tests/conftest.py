"""Shared fixtures: reference servers on 127.0.0.1, each on its own event loop in its own thread.

``endpoint`` runs a test once per protocol, plain and over TLS (certificates made at test time).
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator

import pytest
import trustme

from aclip import AsyncClient, Client
from aclip.testing import ReferenceServer, serve_in_thread

PROTOCOLS = ("grpc", "http", "websocket")


@dataclass(frozen=True)
class Endpoint:
    """A server URL and the client options it needs (the CA bundle for TLS)."""

    url: str
    protocol: str
    options: Dict[str, Any] = field(default_factory=dict)

    def async_client(self, **extra: Any) -> AsyncClient:
        return AsyncClient(self.url, **self.options, **extra)

    def client(self, **extra: Any) -> Client:
        return Client(self.url, **self.options, **extra)


@dataclass(frozen=True)
class Certificates:
    ca: trustme.CA
    ca_file: str
    certfile: str
    keyfile: str


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder: pathlib.Path = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, certfile, keyfile = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert.cert_chain_pems[0].write_to_path(str(certfile))
    for extra in server_cert.cert_chain_pems[1:]:
        extra.write_to_path(str(certfile), append=True)
    server_cert.private_key_pem.write_to_path(str(keyfile))
    return Certificates(ca, str(ca_file), str(certfile), str(keyfile))


@pytest.fixture(scope="session")
def server() -> Iterator[ReferenceServer]:
    with serve_in_thread() as running:
        yield running


@pytest.fixture(scope="session")
def tls_server(certificates: Certificates) -> Iterator[ReferenceServer]:
    with serve_in_thread(certfile=certificates.certfile, keyfile=certificates.keyfile) as running:
        yield running


@pytest.fixture(scope="session")
def out_of_order_server() -> Iterator[ReferenceServer]:
    with serve_in_thread(out_of_order=True) as running:
        yield running


@pytest.fixture(scope="session")
def grpc_url(server: ReferenceServer) -> str:
    return server.url("grpc")


@pytest.fixture(
    scope="session",
    params=[(protocol, tls) for tls in (False, True) for protocol in PROTOCOLS],
    ids=lambda param: f"{param[0]}{'+tls' if param[1] else ''}",
)
def endpoint(request: pytest.FixtureRequest, certificates: Certificates) -> Endpoint:
    protocol, tls = request.param
    if tls:
        running: ReferenceServer = request.getfixturevalue("tls_server")
        return Endpoint(running.url(protocol), protocol, {"ca_file": certificates.ca_file})
    running = request.getfixturevalue("server")
    return Endpoint(running.url(protocol), protocol)


@pytest.fixture(scope="session", params=PROTOCOLS)
def plain_endpoint(request: pytest.FixtureRequest, server: ReferenceServer) -> Endpoint:
    """One endpoint per protocol, without TLS, for tests whose subject is not the connection."""
    return Endpoint(server.url(request.param), request.param)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
