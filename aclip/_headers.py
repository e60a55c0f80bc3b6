"""Extra headers (HTTP, WebSocket) and metadata (gRPC) that callers add to every request of a client or call.

:func:`checked_headers` validates a caller's mapping once, where it is given, so that a bad name fails
at once with a clear error rather than as an obscure failure inside a transport. Names are compared
without regard to case; gRPC sends them in lower case, as HTTP/2 requires. Names that the protocols
themselves own (``content-type``, ``te``, ``grpc-*``, pseudo-headers, ...) are refused, and so are binary
gRPC metadata (``-bin``) and values with line breaks.

An ``authorization`` header replaces the client's token for the requests it goes with: that is how a
gateway that wants ``Bearer <token>`` gets it, although ``credential={"Authorization": "Bearer <token>"}``
does the same for every call.

Example::

    >>> checked_headers({"X-Request-Source": "batch-job", "Authorization": "Bearer abc"})
    {'x-request-source': 'batch-job', 'authorization': 'Bearer abc'}
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

__all__ = ["Headers", "checked_headers"]

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
