"""The gateway's readiness probe, ``dry_run``: what every frontend answers, on every protocol.

A Jina gateway's dry run sends an empty request through the whole Flow and reports a ``StatusProto``:
SUCCESS when the executors answered, ERROR (with the exception) when one failed. The reference server
has no Flow behind it; its "model" is dead exactly when the ``never_answer`` fault is on, and then the
dry run, like every request, is never answered (as a real gateway in front of a dead executor behaves).
A client's readiness check must therefore bound its wait.

Frontends: gRPC ``/jina.JinaGatewayDryRunRPC/dry_run`` (unary, ``google.protobuf.Empty`` in,
``jina.StatusProto`` out), HTTP ``GET /dry_run`` (the status as JSON), WebSocket ``GET /dry_run`` (the client
sends one message, the server answers the status as one binary frame and closes).

Example::

    >>> import anyio
    >>> from aclip.testing._executor import ReferenceExecutor
    >>> anyio.run(dry_run_status, ReferenceExecutor()).code == jina_pb2.StatusProto.SUCCESS
    True
"""

from __future__ import annotations

from aclip._pb import jina_pb2
from aclip.testing._executor import ReferenceExecutor

__all__ = ["JINA_DRY_RUN", "dry_run_status"]

#: The gRPC method of a gateway's readiness probe.
JINA_DRY_RUN = "/jina.JinaGatewayDryRunRPC/dry_run"


async def dry_run_status(executor: ReferenceExecutor) -> jina_pb2.StatusProto:
    """SUCCESS, or never (until cancelled) while the executor's ``never_answer`` fault is on."""
    await executor.hang_while_dead()
    return jina_pb2.StatusProto(code=jina_pb2.StatusProto.SUCCESS)
