"""The exceptions aclip raises.

Every error aclip raises on purpose derives from :class:`AclipError`, so ``except aclip.AclipError``
catches them all. Third-party exceptions (grpclib, aiohttp, ssl, OSError) are translated where a
transport meets the network and chained with ``from``; they never reach the caller raw. The tree tells
a broken connection (no answer came: :class:`TransportError`, worth a retry) from an answer that came but
was not results (:class:`ResponseError`: a refusal, an HTTP status, an executor failure, an answer aclip
cannot use). Every error about particular inputs names them in ``positions``, a list of input positions.

    AclipError
    ├── InputError (also ValueError)         an input item cannot be sent; ``positions`` (and ``position``)
    │   └── InputTypeError (also TypeError)  an input of the wrong type, e.g. a bare str
    ├── ClientClosedError                    the client was closed before or during the call
    ├── MessageTooLargeError                 a request or an answer is over ``max_message_size``
    ├── TransportError                       no answer: the connection failed, broke off or timed out
    │   ├── ConnectError                     the server could not be reached at all
    │   ├── TLSError                         the TLS handshake failed (e.g. the certificate did not verify)
    │   └── RequestTimeoutError              no answer within the timeout (also a builtin TimeoutError)
    └── ResponseError                        the server answered, but not with the results asked for
        ├── AuthenticationError              the server refused the token (or its absence)
        ├── HTTPStatusError                  an HTTP answer other than 2xx: ``.status``, ``.detail``
        ├── ServerError                      the server reported a failure inside its executor
        ├── MissingEmbeddingError            the server answered, but without embeddings for some inputs
        └── ProtocolError                    the server's answer cannot be understood or does not fit
            └── JsonError                    a JSON body without the DataRequest shape

Example::

    try:
        vectors = client.encode(sentences)
    except aclip.MissingEmbeddingError as err:
        print("no embedding for inputs", err.positions)

Task groups raise exception groups; :func:`first_error` picks the one error a caller should see.
"""

from __future__ import annotations

import sys
from typing import List, Sequence

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

    ``positions`` holds the item's index in the caller's input (empty when the problem is with the input
    as a whole); ``position`` is the same index, or None. The message says what to change.
    """

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.positions = [] if position is None else [position]

    @property
    def position(self) -> int | None:
        """The one input position concerned, or None (the same as ``positions``, which every error has)."""
        return self.positions[0] if self.positions else None


class InputTypeError(InputError, TypeError):
    """An input of the wrong type, such as a bare ``str`` where an iterable of them is expected."""


class ClientClosedError(AclipError):
    """The client was used after ``close()``/``aclose()``."""


class TransportError(AclipError):
    """No answer came: the connection to the server failed, broke off, or timed out. Worth a retry."""


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


class ResponseError(AclipError):
    """The server answered, but not with the results asked for: a refusal, an HTTP status, an executor
    failure, or an answer aclip cannot use. Retrying the same request rarely helps (a proxy's 502, 503 or
    504 is the exception, and is retried)."""


class AuthenticationError(ResponseError):
    """The server refused the call for its credentials (gRPC UNAUTHENTICATED, HTTP 401/403, WebSocket 401).

    Pass ``credential={"Authorization": token}`` or set ``CLIP_AUTH_TOKEN``. The token never appears in
    the message.
    """


class HTTPStatusError(ResponseError):
    """An HTTP answer other than 2xx (other than 401/403): ``status`` and the server's ``detail``."""

    def __init__(self, message: str, *, status: int, detail: object) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class ProtocolError(ResponseError):
    """The server's answer cannot be decoded, or does not fit the request it claims to answer."""


class JsonError(ProtocolError):
    """A JSON body that does not have the DataRequest shape (a server answers such a request with 422)."""


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


class ServerError(ResponseError):
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


class MissingEmbeddingError(ResponseError):
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


if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup as BaseExceptionGroup
else:  # pragma: no cover - exercised on older Pythons only
    from exceptiongroup import BaseExceptionGroup as BaseExceptionGroup


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to show the caller: the first aclip error in the group, else its first leaf."""
    leaves: List[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    import anyio  # here, not at the top: ``import aclip`` loads this module and must stay light

    cancelled = anyio.get_cancelled_exc_class()
    meaningful = [leaf for leaf in leaves if not isinstance(leaf, cancelled)]
    for leaf in meaningful:
        if isinstance(leaf, AclipError):
            return leaf
    return (meaningful or leaves)[0]
