"""encode_collect: the successes and the failed positions with their errors, instead of an exception."""

from __future__ import annotations

import numpy as np
import pytest

from aclip import AsyncClient, Document, MissingEmbeddingError, ServerError
from tests.conftest import Endpoint
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio
NOT_AN_IMAGE = "data:image/png;base64,AAAA"  # the server cannot decode it: its batch fails


async def test_strings_failed_rows_are_nan_and_named(plain_endpoint: Endpoint) -> None:
    texts = ["a", "b", "c", NOT_AN_IMAGE, "e", "", "g"]
    async with plain_endpoint.async_client() as client:
        outcome = await client.aencode_collect(texts, batch_size=2)
    assert not outcome.ok and sorted(outcome.failed) == [2, 3, 5]  # batch [2, 3] failed; 5 is empty
    assert isinstance(outcome.failed[2], ServerError) and outcome.failed[2] is outcome.failed[3]
    assert isinstance(outcome.failed[5], MissingEmbeddingError)
    results = outcome.results
    assert isinstance(results, np.ndarray) and results.shape == (7, 512)
    for position in (0, 1, 4, 6):
        np.testing.assert_array_equal(results[position], expected_text(texts[position]))
    assert np.isnan(results[[2, 3, 5]]).all()


def test_documents_keep_none_where_they_failed(plain_endpoint: Endpoint) -> None:
    docs = [Document(text="a"), Document(blob=b"not an image"), Document(text="c"), Document(text="")]
    with plain_endpoint.client() as client:
        outcome = client.encode_collect(docs, batch_size=1)
        clean = client.encode_collect(["x", "y"])
    assert sorted(outcome.failed) == [1, 3] and list(outcome.results) == docs
    assert [d.embedding is None for d in docs] == [False, True, False, True]
    assert clean.ok and clean.failed == {}


@pytest.mark.parametrize("protocol", ["grpc", "http", "websocket"])
async def test_every_position_once_right_or_reported_under_injected_failures(protocol: str) -> None:
    from aclip.testing import serve_in_thread

    texts = [f"p{i}" for i in range(30)]
    with serve_in_thread(fail_every=4) as failing:
        async with AsyncClient(failing.url(protocol)) as client:
            outcome = await client.aencode_collect(texts, batch_size=3)
    assert len(outcome.failed) == 3 * (10 // 4)  # batches 4 and 8 of 10 failed, 3 inputs each
    results = outcome.results
    assert isinstance(results, np.ndarray)
    for position, text in enumerate(texts):
        if position in outcome.failed:
            assert np.isnan(results[position]).all()
        else:
            np.testing.assert_array_equal(results[position], expected_text(text))
