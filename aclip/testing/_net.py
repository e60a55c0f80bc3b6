"""Network pieces every frontend shares: the listening socket, the server's TLS context, the token check.

Example::

    sock = listen("127.0.0.1", 0)  # a free port: sock.getsockname()[1]
    context = server_tls_context("cert.pem", "key.pem", alpn="h2", client_ca_file=None)
    assert token_matches("s3cret", "s3cret") and not token_matches(None, "s3cret")
"""

from __future__ import annotations

import hmac
import socket
import ssl
from typing import Optional

__all__ = ["listen", "server_tls_context", "token_matches", "url_host"]


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 picks a free port); IPv4 first when ``host`` has both.

    Example::

        >>> sock = listen("127.0.0.1", 0)
        >>> sock.getsockname()[1] > 0
        True
        >>> sock.close()
    """
    addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # IPv4 first: "localhost" should bind where clients resolving it usually connect
    family, _, _, _, address = min(addresses, key=lambda info: info[0] != socket.AF_INET)
    return socket.create_server(address[:2], family=family)


def server_tls_context(
    certfile: str, keyfile: Optional[str], *, alpn: str, client_ca_file: Optional[str] = None
) -> ssl.SSLContext:
    """A server-side TLS context with the PEM certificate chain and key, offering the ALPN protocol ``alpn``.

    gRPC needs ``alpn="h2"`` (HTTP/2); the HTTP and WebSocket frontends use ``"http/1.1"``. ``keyfile``
    may be None when ``certfile`` holds the key too. With ``client_ca_file`` (PEM) every client must show
    a certificate that CA signed (mutual TLS).

    Example::

        context = server_tls_context("server.pem", "server.key", alpn="h2", client_ca_file="clients-ca.pem")
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols([alpn])
    if client_ca_file is not None:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def token_matches(given: Optional[str], token: str) -> bool:
    """Whether the credential a client sent equals ``token`` (compared in constant time).

    Example::

        >>> token_matches("s3cret", "s3cret"), token_matches("Bearer s3cret", "s3cret"), token_matches(None, "x")
        (True, False, False)
    """
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))


def url_host(host: str) -> str:
    """``host`` as it appears in a URL: IPv6 addresses in brackets.

    Example::

        >>> url_host("::1"), url_host("127.0.0.1")
        ('[::1]', '127.0.0.1')
    """
    return f"[{host}]" if ":" in host else host
