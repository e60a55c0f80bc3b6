"""Transports: the only place that knows which protocol a server speaks (see ``base.py``)."""

from __future__ import annotations

import ssl
from typing import Optional

from .._config import ServerAddress, TLSOptions, build_ssl_context
from .base import Transport, TransportOptions


def ssl_context_for(address: ServerAddress, tls: TLSOptions) -> Optional[ssl.SSLContext]:
    """The SSLContext for ``address`` (None without TLS); TLS options with a plain scheme are a ValueError."""
    if not address.tls:
        if tls.given:
            raise ValueError(
                f"TLS options were given for {address}, which is not a TLS scheme; use grpcs://, https:// or wss://"
            )
        return None
    return build_ssl_context(tls, alpn=["h2"] if address.protocol == "grpc" else None)


def create_transport(address: ServerAddress, options: TransportOptions) -> Transport:
    """The transport for ``address``'s protocol; its third-party library is imported only now."""
    if address.protocol == "grpc":
        from .grpc import GrpcTransport

        return GrpcTransport(address, options)
    if address.protocol == "http":
        from .http import HttpTransport

        return HttpTransport(address, options)
    from .websocket import WebSocketTransport

    return WebSocketTransport(address, options)
