"""What a client is configured with, checked where it is given: servers, TLS, headers, limits, defaults.

Every option a caller passes to a client or a call is checked here once, before anything connects, and a
bad one is a TypeError or ValueError that names it and shows the accepted form:

- the defaults (``DEFAULT_*``) and :data:`NOT_GIVEN` ("the client's own value"), in one place;
- :func:`parse_server`: a server URL, ``scheme://host:port``, to a :class:`ServerAddress`;
- :class:`TLSOptions` and :func:`build_ssl_context`: certificates are verified by default; a CA bundle,
  an SSLContext or a client certificate (mutual TLS) can be given;
- :func:`checked_headers`: the extra headers (HTTP, WebSocket) and metadata (gRPC) of a client or call.
  Names are compared without regard to case; gRPC sends them in lower case, as HTTP/2 requires. Names the
  protocols own (``content-type``, ``te``, ``grpc-*``, pseudo-headers, ...) are refused, and so are binary
  gRPC metadata (``-bin``) and values with line breaks. An ``authorization`` header replaces the client's
  token for the requests it goes with (a gateway that wants ``Bearer <token>``);
- :func:`token_from`, :func:`checked_timeout`, :func:`checked_retries`, :func:`positive_int`: the rest.

This module imports neither numpy nor anyio: the command line's ``--help`` reads its defaults from here.

Example::

    >>> checked_headers({"X-Request-Source": "batch-job", "Authorization": "Bearer abc"})
    {'x-request-source': 'batch-job', 'authorization': 'Bearer abc'}
    >>> parse_server("grpcs://example.com:443").tls
    True
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

#: Documents per request. Small batches overlap sending with the server's work; large ones cut overhead.
DEFAULT_BATCH_SIZE = 8


#: Requests in flight at once per call: memory holds about this many batches of inputs and answers.
DEFAULT_PREFETCH = 100


#: Seconds to wait for a connection to be established before failing with ConnectError.
DEFAULT_CONNECT_TIMEOUT = 10.0


#: The environment variable read for an auth token when no ``credential`` is given.
TOKEN_ENVIRONMENT_VARIABLE = "CLIP_AUTH_TOKEN"


#: The largest single message aclip accepts (WebSocket frames): a batch of large images needs far more
#: than aiohttp's 4 MiB default.
MAX_MESSAGE_SIZE = 1024 * 1024 * 1024


#: Seconds a request may wait for its answer before the call fails with RequestTimeoutError (None: no bound).
DEFAULT_TIMEOUT = 120.0


#: Seconds a readiness check (is_ready) waits for the gateway's dry run before answering False.
DEFAULT_READY_TIMEOUT = 5.0


#: How often a stream that failed transiently is retried (idempotent endpoints only).
DEFAULT_MAX_RETRIES = 2


class NotGiven:
    """The type of NOT_GIVEN: "use the client's default", as distinct from None ("no bound")."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()


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


@dataclass(frozen=True)
class TLSOptions:
    """What the caller said about TLS. All None means: verify against the system's trusted CAs."""

    ssl_context: Optional[ssl.SSLContext] = None
    ca_file: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None

    @property
    def given(self) -> bool:
        return any(value is not None for value in (self.ssl_context, self.ca_file, self.client_cert, self.client_key))


def build_ssl_context(options: TLSOptions, *, alpn: Optional[List[str]]) -> ssl.SSLContext:
    """The SSLContext for one transport; ``alpn`` is ``["h2"]`` for gRPC, None for HTTP/1.1 transports.

    A caller's own ``ssl_context`` is used as it is, except that gRPC needs ALPN ``h2`` set on it.
    Unreadable certificate files are a ValueError naming the file.
    """
    if options.ssl_context is not None:
        if options.ca_file or options.client_cert or options.client_key:
            raise ValueError("pass either ssl_context or ca_file/client_cert/client_key, not both")
        context = options.ssl_context
    else:
        if options.client_key and not options.client_cert:
            raise ValueError("client_key needs client_cert (the certificate it belongs to)")
        try:
            context = ssl.create_default_context(cafile=options.ca_file)
        except (OSError, ssl.SSLError) as err:
            raise ValueError(f"cannot load the CA bundle ca_file={options.ca_file!r}: {err}") from err
        if options.client_cert:
            try:
                context.load_cert_chain(options.client_cert, options.client_key)
            except (OSError, ssl.SSLError) as err:
                raise ValueError(
                    f"cannot load the client certificate {options.client_cert!r} / key {options.client_key!r}: {err}"
                ) from err
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


#: Header names, lower-cased, mapped to their values.
Headers = Dict[str, str]


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$")  # an HTTP header name (RFC 9110 token)


_RESERVED = frozenset(
    {
        "accept",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "host",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
    }
)


_RESERVED_PREFIXES = ("grpc-", "sec-websocket-")


def checked_headers(headers: Optional[Mapping[str, str]]) -> Headers:
    """``headers`` validated, names lower-cased (None gives ``{}``); TypeError/ValueError naming the bad one."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise TypeError(
            f"headers must be a dict of str to str, such as {{'X-Team': 'search'}}, not {type(headers).__name__}"
        )
    checked: Headers = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"headers must map str to str; {name!r}: {value!r} is not")
        key = name.strip().lower()
        if not _TOKEN.match(key):
            raise ValueError(f"headers: {name!r} is not a valid header name (letters, digits and -_.!#$%&'*+^`|~)")
        if key in _RESERVED or key.startswith(_RESERVED_PREFIXES):
            raise ValueError(f"headers: {name!r} is set by the protocol itself and cannot be given")
        if key.endswith("-bin"):
            raise ValueError(f"headers: {name!r} is binary gRPC metadata, which aclip does not send; use a text name")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"headers: the value of {name!r} contains a line break or NUL")
        checked[key] = value
    return checked


def token_from(credential: Optional[Mapping[str, str]]) -> Optional[str]:
    """The token of ``credential={"Authorization": token}``, else of the ``CLIP_AUTH_TOKEN`` variable, else None.

    ``{}`` (upstream clip_client's default) counts as no credential.
    """
    if credential is None or (isinstance(credential, Mapping) and not credential):
        return os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None
    if not isinstance(credential, Mapping):
        raise TypeError("credential must be a dict such as {'Authorization': '<token>'}")
    for key, value in credential.items():
        if isinstance(key, str) and key.lower() == "authorization":
            if not isinstance(value, str):
                raise TypeError("credential['Authorization'] must be a str token")
            return value or None
    raise ValueError(f"credential must have an 'Authorization' key, got keys {sorted(map(str, credential))}")


def parse_servers(server: Union[str, Sequence[str]]) -> List[ServerAddress]:
    """One server URL, or a non-empty list of them, parsed."""
    if isinstance(server, str):
        return [parse_server(server)]
    if not isinstance(server, Sequence) or not server:
        raise ValueError("server must be a URL such as 'grpc://127.0.0.1:51000', or a non-empty list of them")
    return [parse_server(url) for url in server]


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def positive_seconds(name: str, value: object, or_else: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds{or_else}, not {value!r}")
    return float(value)


def checked_timeout(timeout: Optional[float]) -> Optional[float]:
    """None (no bound) or a positive number of seconds."""
    return None if timeout is None else positive_seconds("timeout", timeout, " or None")


def checked_retries(max_retries: int) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, not {max_retries!r}")
    return max_retries


def flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return value
