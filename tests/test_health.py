"""Health checks: is_ready / ais_ready / readiness on every protocol, and ``aclip ping``."""

from __future__ import annotations

import subprocess
import sys
from typing import Iterator

import pytest

from aclip import AsyncClient, Client
from aclip._cli import main
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS, Endpoint

TOKEN = "ready-token"


@pytest.fixture(scope="module")
def dead_model() -> Iterator[ReferenceServer]:
    """A live gateway whose model never answers: every request, the dry run included, waits forever."""
    with serve_in_thread(never_answer=True) as running:
        yield running


@pytest.fixture(scope="module")
def guarded() -> Iterator[ReferenceServer]:
    with serve_in_thread(token=TOKEN) as running:
        yield running


def unused_url(protocol: str) -> str:
    """A URL nobody listens on: a server started and stopped again."""
    with serve_in_thread(protocols=[protocol]) as running:
        url = running.url(protocol)
    return url


@pytest.mark.anyio
async def test_a_healthy_server_is_ready(endpoint: Endpoint) -> None:
    async with endpoint.async_client() as client:
        assert await client.ais_ready() is True
        assert await client.readiness() == [None]
    with endpoint.client() as client:
        assert client.is_ready() is True


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_dead_model_is_not_ready_within_the_timeout(dead_model: ReferenceServer, protocol: str) -> None:
    with Client(dead_model.url(protocol)) as client:
        assert client.is_ready(timeout=0.3) is False
        assert client.readiness(timeout=0.3) == ["no answer within 0.3 s"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_nothing_listening_is_not_ready_and_says_why(protocol: str) -> None:
    with Client(unused_url(protocol)) as client:
        [reason] = client.readiness(timeout=5)
    assert reason is not None and "cannot connect" in reason


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_readiness_probe_carries_the_token(guarded: ReferenceServer, protocol: str) -> None:
    with Client(guarded.url(protocol)) as client:
        [reason] = client.readiness()
    assert reason is not None and "credentials" in reason and TOKEN not in reason
    with Client(guarded.url(protocol), credential={"Authorization": TOKEN}) as client:
        assert client.is_ready() is True


@pytest.mark.anyio
async def test_several_servers_are_ready_only_when_all_are(server: ReferenceServer) -> None:
    async with AsyncClient([server.url("grpc"), unused_url("http")]) as client:
        first, second = await client.readiness(timeout=5)
        assert first is None and second is not None
        assert await client.ais_ready(timeout=5) is False


@pytest.mark.parametrize("value", [0, -1, "5"])
def test_the_timeout_must_be_positive(server: ReferenceServer, value: object) -> None:
    with Client(server.url("grpc")) as client, pytest.raises(ValueError, match="timeout"):
        client.is_ready(timeout=value)  # type: ignore[arg-type]


def test_ping_says_ready(server: ReferenceServer, capsys: pytest.CaptureFixture[str]) -> None:
    urls = [server.url(protocol) for protocol in PROTOCOLS]
    assert main(["ping", *urls]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines] == urls
    assert all(": ready (" in line for line in lines)


def test_ping_says_not_ready_with_status_1(dead_model: ReferenceServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", dead_model.url("http"), "--timeout", "0.3"]) == 1
    assert capsys.readouterr().out.strip() == f"{dead_model.url('http')}: not ready: no answer within 0.3 s"


def test_ping_takes_a_token(guarded: ReferenceServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", guarded.url("websocket"), "--token", TOKEN]) == 0
    assert main(["ping", guarded.url("websocket")]) == 1
    assert TOKEN not in capsys.readouterr().out


def test_ping_refuses_a_bad_url_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ping", "ftp://127.0.0.1:1"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("aclip: error: ") and "ftp" in error and len(error.strip().splitlines()) == 1


def test_python_dash_m_aclip_pings(server: ReferenceServer) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "aclip", "ping", server.url("grpc")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith(f"{server.url('grpc')}: ready (")
