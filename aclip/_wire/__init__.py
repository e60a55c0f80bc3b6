"""The wire: Jina's DataRequest messages, as bytes (gRPC, WebSocket) or as JSON (HTTP). Pure functions, no I/O.

- :mod:`.protobuf`: items -> request messages, answers -> embeddings; ndarray (de)serialisation; the
  raw-bytes grpclib codec;
- :mod:`.json`: the same messages as the JSON that Jina's HTTP gateway speaks;
- :mod:`.formats`: :data:`~aclip._wire.formats.formats.PROTOBUF` and :data:`~aclip._wire.formats.formats.JSON`, the two
  frame formats a transport names;
- :mod:`.status`: why a request failed inside the server, parsed once from the answer;
- :mod:`.endpoints`: what aclip knows about each endpoint (which are retried, which keep the caller's ids);
- :mod:`.health`: reading a gateway's readiness answer.

Importing this package loads nothing heavy; protobuf loads with :mod:`.protobuf`.
"""
