"""encode_collect: the successes and the failed positions with their errors, instead of an exception."""

from __future__ import annotations

import numpy as np
import pytest

from aclip import Document, MissingEmbeddingError, ServerError
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
