"""Reading a gateway's readiness answer (its ``dry_run``): ready, or why not.

A Jina gateway answers its dry run with a ``jina.StatusProto``: on gRPC and WebSocket as protobuf bytes,
on HTTP as JSON, where a success may come as ``{}`` (protobuf's JSON leaves out the default code 0),
``{"code": 0}`` or ``{"code": "SUCCESS"}``. An error carries a description and an exception, which make
the reason a caller sees (a live gateway whose executor is down says so here).

Example::

    >>> reason_from_json({})
    >>> reason_from_json({"code": 1, "description": "executor clip_t is down"})
    'executor clip_t is down'
"""

from __future__ import annotations

from typing import Any, Optional

_SUCCESS = (None, 0, "SUCCESS")


def reason_from_proto(data: bytes) -> Optional[str]:
    """None for a SUCCESS ``StatusProto``; else what went wrong, in one line."""
    from google.protobuf.message import DecodeError

    from .._pb import jina_pb2

    status = jina_pb2.StatusProto()
    try:
        status.ParseFromString(data)
    except DecodeError:
        return f"the readiness answer is not a status message ({len(data)} bytes)"
    if status.code == jina_pb2.StatusProto.SUCCESS:
        return None
    exception = status.exception
    detail = f"{exception.name}: {', '.join(exception.args)}" if exception.name else ""
    return status.description or detail or f"status code {status.code}"


def reason_from_json(answer: Any) -> Optional[str]:
    """None for a success status as JSON; else what went wrong, in one line."""
    if not isinstance(answer, dict):
        return f"the readiness answer is not a status object: {str(answer)[:200]}"
    if answer.get("code") in _SUCCESS:
        return None
    exception = answer.get("exception") or {}
    detail = f"{exception.get('name', '')}: {exception.get('args', '')}" if isinstance(exception, dict) else ""
    return str(answer.get("description") or detail or f"status code {answer.get('code')}")
