"""The error tree: a broken connection (TransportError) is told apart from an answer that was not results
(ResponseError), and every error about inputs names them in ``positions``."""

from __future__ import annotations

import pytest

import aclip
from aclip import (
    AclipError,
    AuthenticationError,
    ConnectError,
    HTTPStatusError,
    InputError,
    InputTypeError,
    JsonError,
    MessageTooLargeError,
    MissingEmbeddingError,
    ProtocolError,
    RequestTimeoutError,
    ResponseError,
    ServerError,
    TLSError,
    TransportError,
)


@pytest.mark.parametrize("error", [ConnectError, TLSError, RequestTimeoutError])
def test_no_answer_is_a_transport_error(error: type) -> None:
    assert issubclass(error, TransportError) and not issubclass(error, ResponseError)


@pytest.mark.parametrize(
    "error", [AuthenticationError, HTTPStatusError, ServerError, MissingEmbeddingError, ProtocolError, JsonError]
)
def test_an_answer_that_is_not_results_is_a_response_error(error: type) -> None:
    assert issubclass(error, ResponseError) and not issubclass(error, TransportError)
    assert issubclass(error, AclipError)


def test_json_errors_are_protocol_errors_and_public() -> None:
    assert issubclass(JsonError, ProtocolError) and aclip.JsonError is JsonError
    from aclip._wire.json import JsonError as from_the_codec

    assert from_the_codec is JsonError  # one class, defined with the others


def test_every_error_about_inputs_spells_them_positions() -> None:
    errors = [
        InputError("bad", position=3),
        InputTypeError("bad type", position=3),
        RequestTimeoutError("late", positions=[3]),
        MessageTooLargeError("big", direction="request", size=2, limit=1, positions=[3]),
        ServerError(name="E", description="d", executor="x", endpoint="/encode", positions=[3]),
        MissingEmbeddingError([3], total=4),
    ]
    for error in errors:
        assert list(error.positions) == [3], type(error).__name__
    assert InputError("bad", position=3).position == 3  # the older spelling, kept as an alias
    whole = InputError("the input as a whole")
    assert whole.positions == [] and whole.position is None
