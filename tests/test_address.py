"""Server URLs: every documented scheme, and clear errors for the rest."""

from __future__ import annotations

import pytest

from aclip._config import parse_server


@pytest.mark.parametrize(
    ("url", "protocol", "tls"),
    [
        ("grpc://127.0.0.1:51000", "grpc", False),
        ("grpcs://example.com:443", "grpc", True),
        ("http://localhost:8080", "http", False),
        ("https://h:1", "http", True),
        ("websocket://h:2", "websocket", False),
        ("websockets://h:3", "websocket", True),
        ("ws://h:4", "websocket", False),
        ("WSS://h:5", "websocket", True),
        ("grpc://[::1]:6", "grpc", False),
    ],
)
def test_accepted_forms(url: str, protocol: str, tls: bool) -> None:
    address = parse_server(url)
    assert (address.protocol, address.tls) == (protocol, tls)


def test_round_trips_to_a_url() -> None:
    assert str(parse_server("grpc://[::1]:6")) == "grpc://[::1]:6"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h:1", "unknown scheme 'ftp'"),
        ("127.0.0.1:51000", "unknown scheme"),
        ("grpc://h", "has no port"),
        ("grpc://h:99999", "not a number from 0 to 65535"),
        ("grpc://:51000", "no host"),
        ("grpc://h:1/path", "must not have a path"),
    ],
)
def test_rejected_forms_name_the_accepted_ones(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_server(url)
    assert "grpc, grpcs, http, https, websocket, websockets, ws, wss" in str(caught.value)
