"""Jina's JSON <-> DataRequest messages, against the real gateway's captured bodies."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from aclip._exceptions import JsonError
from aclip._wire.json import dumps, loads, request_to_json, response_from_json, stdlib_dumps, stdlib_loads
from aclip._wire.protobuf import decode_ndarray
from aclip.testing._json import request_from_json, response_to_json
from tests.helpers import expected_text

DATA = pathlib.Path(__file__).parent / "data" / "http"


def captured_request(name: str) -> dict:
    return json.loads((DATA / name).read_text())["body"]


def test_captured_request_reads_and_writes_back() -> None:
    body = captured_request("encode.conn1.0.request.json")
    request = request_from_json(body)
    assert request.header.request_id == body["header"]["request_id"]
    assert request.header.exec_endpoint == "/encode"
    assert request.parameters.fields["drop_image_content"].bool_value is True
    text, image = request.data.docs.docs
    assert text.text == "hello, world" and image.blob.startswith(b"\xff\xd8") and image.uri == "img/00000.jpg"
    again = request_to_json(request)
    assert again["data"][0] == {"id": body["data"][0]["id"], "text": "hello, world"}
    assert again["data"][1]["blob"] == body["data"][1]["blob"]
    assert again["exec_endpoint"] == "/encode" and again["parameters"] == {"drop_image_content": True}


def test_tensor_as_nested_lists() -> None:
    body = captured_request("encode_docs.conn0.0.request.json")
    tensor_doc = request_from_json(body).data.docs.docs[2]
    array = decode_ndarray(tensor_doc.tensor, what="t")
    np.testing.assert_array_equal(array, np.arange(48).reshape(4, 4, 3))


def test_response_with_routes_status_and_null_scores() -> None:
    body = {
        "header": {"requestId": "r", "status": None, "execEndpoint": "/search", "targetExecutor": ""},
        "parameters": {"limit": 2},
        "routes": [{"executor": "gateway", "startTime": "2026-11-30T23:46:55.844924+00:00", "endTime": None}],
        "data": [
            {
                "id": "q",
                "text": "hello, world",
                "embedding": expected_text("hello, world").tolist(),
                "matches": [{"id": "m", "scores": {"cosine": {"value": None, "op_name": None}}}],
            }
        ],
    }
    response = response_from_json(body)
    assert response.header.request_id == "r" and response.header.exec_endpoint == "/search"
    assert response.routes[0].start_time.ToMicroseconds() % 1_000_000 == 844924
    doc = response.data.docs.docs[0]
    np.testing.assert_array_equal(decode_ndarray(doc.embedding, what="e"), expected_text("hello, world"))
    assert doc.matches[0].scores["cosine"].value == 0.0
    back = response_to_json(response)
    assert back["routes"][0]["startTime"] == "2026-11-30T23:46:55.844924+00:00"
    assert back["data"][0]["matches"][0]["scores"]["cosine"]["value"] is None  # 0.0 travels as null


def test_executor_error_status_from_json() -> None:
    body = {
        "header": {
            "requestId": "r",
            "status": {"code": 1, "description": "boom", "exception": {"name": "E", "args": ["boom"], "executor": "x"}},
        },
        "data": [],
    }
    status = response_from_json(body).header.status
    assert (status.code, status.description, status.exception.name, status.exception.executor) == (1, "boom", "E", "x")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"data": "not a list"}, "data must be a list"),
        ({"data": [{"text": 3}]}, r"data\[0\]\.text must be a str"),
        ({"data": [{"blob": "@@@"}]}, "must be base64"),
        ({"data": [{"granularity": -1}]}, "cannot be read"),
        ({"data": [{"text": "\ud800"}]}, "cannot be read"),
        ({"data": [{"tensor": [True, False]}]}, "list of numbers"),
        ({"header": [], "data": []}, "header must be a dict"),
    ],
)
def test_misshapen_bodies_are_json_errors(body: dict, message: str) -> None:
    with pytest.raises(JsonError, match=message):
        request_from_json(body)


@pytest.mark.parametrize(("dump", "load"), [(dumps, loads), (stdlib_dumps, stdlib_loads)], ids=["fast", "stdlib"])
def test_both_json_backends_agree(dump, load) -> None:  # type: ignore[no-untyped-def]
    body = captured_request("rank.conn0.0.request.json")
    assert load(dump(body)) == body
    with pytest.raises(JsonError, match="not JSON"):
        load(b"{not json")
