"""Transports: the only place that knows which protocol a server speaks (see ``base.py``)."""

from __future__ import annotations

import ssl
from typing import Optional

from .._address import ServerAddress
from .base import DuplexStream, Received, Transport

__all__ = ["DuplexStream", "Received", "Transport", "create_transport"]


def create_transport(
    address: ServerAddress,
    *,
    token: Optional[str],
    connect_timeout: float,
) -> Transport:
    """The transport for ``address``'s protocol; its third-party library is imported only now."""
    if address.protocol == "grpc":
        from .grpc import GrpcTransport

        ssl_context: Optional[ssl.SSLContext] = None
        if address.tls:
            ssl_context = ssl.create_default_context()
            ssl_context.set_alpn_protocols(["h2"])
        return GrpcTransport(address, token=token, ssl_context=ssl_context, connect_timeout=connect_timeout)
    raise NotImplementedError(
        f"the {address.protocol} protocol is not available in this version of aclip yet; use a grpc:// server"
    )
