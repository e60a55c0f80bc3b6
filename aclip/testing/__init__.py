"""A Jina-protocol reference server with CLIP semantics and a deterministic test encoder.

No CLIP weights can be downloaded on our machines, so this server embeds content with a deterministic
function of its bytes (see :func:`test_embedding`) instead of a model. Everything else follows a real
CLIP-as-service server behind a Jina gateway, on all three of its protocols at once (each on its own port,
TLS and a token optional): the ``/jina.JinaRPC/Call`` gRPC stream, the HTTP routes (``POST /post`` with
the gateway's JSON) and the WebSocket stream (subprotocols ``bytes`` and ``json``); the response shape
(header, parameters, routes ``gateway`` and ``clip_t``), server-side URI loading, ``drop_image_content``,
and executor errors reported in ``header.status`` without failing the stream. The endpoints behave as
CLIP-as-service's: ``/encode`` embeds, ``/rank`` scores each document's matches against it (``clip_score``,
``clip_score_cosine``) and sorts them, ``/index`` stores embedded documents in the server's memory and
``/search`` returns the nearest stored ones by cosine distance, with the real server's numbers bit for bit
(``server.executor.clear_index()`` empties the index, ``server.executor.indexed_count`` counts it).

Use it in tests (on its own thread, off the test's event loop)::

    from aclip.testing import embed_text, serve_in_thread

    with serve_in_thread() as server:
        url = server.url("grpc")      # "grpc://127.0.0.1:54321"; also "http", "websocket"
        ...                           # a client encodes "hello" through url
        expected = embed_text("hello")

Fault options make it fail on purpose, for clients' failure tests (see :class:`ReferenceServer`)::

    with serve_in_thread(fail_every=3) as server:  # requests 3, 6, 9, ... are executor errors
        ...
        server.faults.fail_every = 0  # recovered; also close_after, never_answer, fail_status, grpc_status

or from a shell: ``python -m aclip.testing --grpc-port 51000 --http-port 51001 --websocket-port 51002``.
"""

from aclip.testing._encoder import (
    EMBEDDING_DIM,
    UnidentifiedImageError,
    embed_image_bytes,
    embed_tensor,
    embed_text,
    image_format,
    tensor_payload,
    test_embedding,
)
from aclip.testing._executor import ReferenceExecutor
from aclip.testing._faults import Faults, InjectedFailure
from aclip.testing._images import sample_png
from aclip.testing._server import ReferenceServer
from aclip.testing._stats import ServerStats
from aclip.testing._thread import serve_in_thread

__all__ = [
    "EMBEDDING_DIM",
    "Faults",
    "InjectedFailure",
    "ReferenceExecutor",
    "ReferenceServer",
    "ServerStats",
    "UnidentifiedImageError",
    "embed_image_bytes",
    "embed_tensor",
    "embed_text",
    "image_format",
    "sample_png",
    "serve_in_thread",
    "tensor_payload",
    "test_embedding",
]
