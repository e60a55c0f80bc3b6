"""TLS settings: certificates are verified by default; a CA bundle, an SSLContext or a client certificate
(mutual TLS) can be given."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import List, Optional

__all__ = ["TLSOptions", "build_ssl_context"]


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
