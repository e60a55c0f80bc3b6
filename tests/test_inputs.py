"""Auto-detection of strings, Documents as items, lazy loading and input errors."""

from __future__ import annotations

import base64
import pathlib

import numpy as np
import pytest

from aclip import Document, InputError, InputTypeError
from aclip._engine.inputs import InputMode, Kind, classify_document, classify_string, peek_mode
from aclip._engine.loading import load_batch
from tests.helpers import png_bytes


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("she smiled, with pain", Kind.TEXT),
        ("", Kind.TEXT),
        ("apple.png", Kind.LOCAL_FILE),
        ("/abs/path/Photo.JPEG", Kind.LOCAL_FILE),
        ("file:///tmp/x.webp", Kind.LOCAL_FILE),
        ("https://example.com/favicon.png", Kind.REMOTE_URI),
        ("http://example.com/image?id=3", Kind.REMOTE_URI),
        ("see https://example.com/x.png now", Kind.TEXT),
        ("data:image/png;base64,iVBORw0KGgo=", Kind.DATA_URI),
        ("data:text/plain,hello", Kind.TEXT),
        ("version 1.2 is out", Kind.TEXT),
        ("two lines\nend.png", Kind.TEXT),
        ("archive.tar.gz", Kind.TEXT),
    ],
)
def test_string_auto_detection(value: str, kind: Kind) -> None:
    assert classify_string(value).kind is kind


def test_file_scheme_is_stripped_and_mime_guessed() -> None:
    item = classify_string("file:///tmp/x.webp")
    assert (item.payload, item.uri, item.mime_type) == ("/tmp/x.webp", "file:///tmp/x.webp", "image/webp")


def test_document_text_wins_over_uri() -> None:
    item = classify_document(Document(text="caption", uri="cat.png"), 0)
    assert (item.kind, item.payload) == (Kind.TEXT, "caption")


def test_document_kinds() -> None:
    assert classify_document(Document(blob=b"xx"), 0).kind is Kind.BLOB
    assert classify_document(Document(tensor=np.zeros((2, 2, 3))), 0).kind is Kind.TENSOR
    assert classify_document(Document(uri="https://h/x"), 0).kind is Kind.REMOTE_URI
    assert classify_document(Document(uri="no_extension_file"), 0).kind is Kind.LOCAL_FILE
    assert classify_document(Document(uri="data:image/gif;base64,R0lG"), 0).kind is Kind.DATA_URI
    assert classify_document(Document(uri=""), 0).kind is Kind.EMPTY
    assert classify_document(Document(), 0).kind is Kind.EMPTY


def test_tensor_must_be_hwc() -> None:
    with pytest.raises(InputError, match=r"input 4: .*\[H, W, C\], got shape \[2, 2\]") as caught:
        classify_document(Document(tensor=np.zeros((2, 2))), 4)
    assert caught.value.position == 4


def test_bare_string_is_a_type_error_showing_the_fix() -> None:
    with pytest.raises(TypeError, match=r"wrap it in a list: \['hello'\]"):
        peek_mode("hello")


def test_wrong_item_type_names_the_position() -> None:
    with pytest.raises(InputTypeError, match="input 0 is a int"):
        peek_mode([3])


def test_mode_comes_from_the_first_item_and_is_not_consumed() -> None:
    mode, items = peek_mode(x for x in ["a", "b"])
    assert mode is InputMode.STRINGS and list(items) == ["a", "b"]
    mode, items = peek_mode(iter(()))
    assert mode is None and list(items) == []


def test_files_and_data_uris_load_only_in_load_batch(tmp_path: pathlib.Path) -> None:
    image = png_bytes(seed=1)
    path = tmp_path / "a.png"
    path.write_bytes(image)
    data_uri = "data:image/png;base64," + base64.b64encode(image).decode()
    items = [classify_string(str(path)), classify_string(data_uri), classify_string("text")]
    assert items[0].payload == str(path)  # not read yet
    loaded = load_batch(items, start=10)
    assert [item.kind for item in loaded] == [Kind.BLOB, Kind.BLOB, Kind.TEXT]
    assert loaded[0].payload == image and loaded[1].payload == image
    assert (loaded[0].uri, loaded[0].mime_type) == (str(path), "image/png")
    assert loaded[1].uri == ""  # the data URI is not sent twice


def test_missing_file_is_an_input_error_with_position_and_fix(tmp_path: pathlib.Path) -> None:
    items = [classify_string("text"), classify_string(str(tmp_path / "nope.jpg"))]
    with pytest.raises(InputError, match=r"input 6: .*nope\.jpg.* no such file.*Document\(text=") as caught:
        load_batch(items, start=5)
    assert caught.value.position == 6


def test_bad_base64_data_uri() -> None:
    with pytest.raises(InputError, match="not valid base64"):
        load_batch([classify_string("data:image/png;base64,@@@")], start=0)
