"""The exceptions aclip raises.

Every error aclip raises on purpose derives from :class:`AclipError`, so ``except aclip.AclipError``
catches them all. Third-party exceptions (grpclib, aiohttp, ssl, OSError) are translated where a
transport meets the network and chained with ``from``; they never reach the caller raw.

    AclipError
    ├── InputError (also ValueError)         an input item cannot be sent; names its position
    │   └── InputTypeError (also TypeError)  an input of the wrong type, e.g. a bare str
    ├── ClientClosedError                    the client was closed before or during the call
    ├── TransportError                       the connection to the server failed
    │   ├── ConnectError                     the server could not be reached at all
    │   ├── TLSError                         the TLS handshake failed (e.g. the certificate did not verify)
    │   ├── AuthenticationError              the server refused the token (or its absence)
    │   ├── RequestTimeoutError              no answer within the timeout (also a builtin TimeoutError)
    │   └── HTTPStatusError                  an HTTP answer other than 2xx: ``.status``, ``.detail``
    ├── ProtocolError                        the server's answer cannot be understood or does not fit
    ├── MessageTooLargeError                 a request or an answer is over ``max_message_size``
    ├── ServerError                          the server reported a failure inside its executor
    └── MissingEmbeddingError                the server answered, but without embeddings for some inputs

Example::

    try:
        vectors = client.encode(sentences)
    except aclip.MissingEmbeddingError as err:
        print("no embedding for inputs", err.positions)
"""

from __future__ import annotations

from typing import Sequence

__all__ = [
    "AclipError",
    "AuthenticationError",
    "ClientClosedError",
    "ConnectError",
    "HTTPStatusError",
    "InputError",
    "InputTypeError",
    "MessageTooLargeError",
    "MissingEmbeddingError",
    "ProtocolError",
    "RequestTimeoutError",
    "ServerError",
    "TLSError",
    "TransportError",
]

_MAX_LISTED_POSITIONS = 20


def describe_positions(positions: Sequence[int]) -> str:
    """``[3, 7]`` -> ``"3, 7"``; a long list is cut after the first few with a count of the rest."""
    shown = ", ".join(str(p) for p in positions[:_MAX_LISTED_POSITIONS])
    rest = len(positions) - _MAX_LISTED_POSITIONS
    return f"{shown} and {rest} more" if rest > 0 else shown


class AclipError(Exception):
    """The base of every error aclip raises on purpose."""


class InputError(AclipError, ValueError):
    """An input item cannot be sent as it is.

    ``position`` is the item's index in the caller's input (None when the problem is with the input as
    a whole); the message says what to change.
    """

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class InputTypeError(InputError, TypeError):
    """An input of the wrong type, such as a bare ``str`` where an iterable of them is expected."""


class ClientClosedError(AclipError):
    """The client was used after ``close()``/``aclose()``."""


class TransportError(AclipError):
    """The connection to the server failed or broke off."""


class ConnectError(TransportError):
    """The server could not be reached (refused, unresolvable, unreachable)."""


class TLSError(TransportError):
    """The TLS handshake with the server failed: an untrusted or mismatched certificate, or no TLS there."""


class RequestTimeoutError(TransportError, TimeoutError):
    """A request got no answer within its timeout (the client's ``timeout``, or the call's).

    ``positions`` are the input positions of the unanswered requests. A server whose model is down
    typically accepts requests and never answers them: this is how that ends.
    """

    def __init__(self, message: str, *, positions: Sequence[int]) -> None:
        super().__init__(message)
        self.positions = list(positions)


class AuthenticationError(TransportError):
    """The server refused the call for its credentials (gRPC UNAUTHENTICATED, HTTP 401/403, WebSocket 401).

    Pass ``credential={"Authorization": token}`` or set ``CLIP_AUTH_TOKEN``. The token never appears in
    the message.
    """


class HTTPStatusError(TransportError):
    """An HTTP answer other than 2xx (other than 401/403): ``status`` and the server's ``detail``."""

    def __init__(self, message: str, *, status: int, detail: object) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class ProtocolError(AclipError):
    """The server's answer cannot be decoded, or does not fit the request it claims to answer."""


class MessageTooLargeError(AclipError):
    """A request or an answer is larger than the client's ``max_message_size``; never retried.

    ``direction`` is ``"request"`` (nothing was sent: lower ``batch_size``, or raise the limit) or
    ``"answer"``; ``size`` and ``limit`` are in bytes (``size`` is None when the server did not say how
    large its answer was); ``positions`` are the input positions of the batch concerned.
    """

    def __init__(self, message: str, *, direction: str, size: int | None, limit: int, positions: Sequence[int]) -> None:
        super().__init__(message)
        self.direction = direction
        self.size = size
        self.limit = limit
        self.positions = list(positions)


class ServerError(AclipError):
    """The server reported a failure inside its executor for one request.

    Attributes: ``name`` (the exception class raised in the executor), ``description``, ``executor``
    (which executor raised it), ``endpoint`` and ``positions`` (the caller's input positions of the
    failed batch).
    """

    def __init__(
        self,
        *,
        name: str,
        description: str,
        executor: str,
        endpoint: str,
        positions: Sequence[int],
    ) -> None:
        where = f" in executor {executor!r}" if executor else ""
        span = f"inputs {positions[0]}..{positions[-1]}" if positions else "an empty batch"
        super().__init__(f"the server failed on {endpoint} for {span}{where}: {name or 'error'}: {description}")
        self.name = name
        self.description = description
        self.executor = executor
        self.endpoint = endpoint
        self.positions = list(positions)


class MissingEmbeddingError(AclipError):
    """The server returned some inputs without an embedding, so no complete [N, D] array exists.

    A real CLIP server does this for an empty text or a document without content. ``positions`` lists
    the input positions concerned. Pass Documents instead of strings to receive the partial result.
    """

    def __init__(self, positions: Sequence[int], *, total: int) -> None:
        super().__init__(
            f"the server returned no embedding for {len(positions)} of {total} inputs, at positions "
            f"{describe_positions(positions)} (an empty text or an item without content gets none); "
            "remove them, or pass Documents to receive the others"
        )
        self.positions = list(positions)
