"""Parsing the server URL a Client is given: ``scheme://host:port``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["PROTOCOL_BY_SCHEME", "ServerAddress", "parse_server"]

#: scheme -> (protocol, uses TLS)
PROTOCOL_BY_SCHEME = {
    "grpc": ("grpc", False),
    "grpcs": ("grpc", True),
    "http": ("http", False),
    "https": ("http", True),
    "websocket": ("websocket", False),
    "websockets": ("websocket", True),
    "ws": ("websocket", False),
    "wss": ("websocket", True),
}

_ACCEPTED = ", ".join(PROTOCOL_BY_SCHEME)


@dataclass(frozen=True)
class ServerAddress:
    """A parsed server URL. ``protocol`` is one of ``grpc``, ``http``, ``websocket``."""

    scheme: str
    protocol: str
    tls: bool
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_server(server: str) -> ServerAddress:
    """Parse ``"grpc://127.0.0.1:51000"`` and friends; anything else is a ValueError naming the forms.

    Example::

        parse_server("grpcs://example.com:443").tls   # True
    """
    if not isinstance(server, str):
        raise TypeError(f"server must be a URL string such as 'grpc://127.0.0.1:51000', not {type(server).__name__}")
    form = f"use scheme://host:port with a scheme of {_ACCEPTED}, e.g. 'grpc://127.0.0.1:51000'"
    parts = urlsplit(server.strip())
    scheme = parts.scheme.lower()
    if scheme not in PROTOCOL_BY_SCHEME:
        raise ValueError(f"unsupported server URL {server!r}: unknown scheme {parts.scheme!r}; {form}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"malformed server URL {server!r}: the port is not a number from 0 to 65535; {form}") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"malformed server URL {server!r}: no host; {form}")
    if port is None:
        raise ValueError(f"server URL {server!r} has no port; {form}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"server URL {server!r} must not have a path, query or fragment; {form}")
    protocol, tls = PROTOCOL_BY_SCHEME[scheme]
    return ServerAddress(scheme=scheme, protocol=protocol, tls=tls, host=host, port=port)
