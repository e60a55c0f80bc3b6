"""What a type checker must see of the Client's methods; checked by mypy in tests/test_typing.py, never run.

The blocking methods and the ``a*`` twins are built from AsyncClient's coroutines: each must keep every
overload (strings give an ndarray, Documents a DocumentList, callbacks an optional result) and every
parameter of the method it is built from. The misspelt keywords that must fail are in tests/test_typing.py.
"""

from __future__ import annotations

from typing import AsyncIterator, Dict, Iterator, List, Optional, assert_type

import numpy as np
from numpy.typing import NDArray

from aclip import AsyncClient, Client, Collected, Document, DocumentList, Part, Response
from aclip._client import EncodeResult


def done(response: Response) -> None:
    """A callback."""


def blocking_calls(client: Client, docs: List[Document]) -> None:
    assert_type(client.encode(["a sentence", "apple.png"]), NDArray[np.float32])
    assert_type(client.encode(iter(["a generator of str"]), batch_size=4, prefetch=2), NDArray[np.float32])
    assert_type(client.encode(docs, timeout=None, max_retries=0, headers={"x": "y"}), DocumentList)
    assert_type(client.encode(["a"], on_done=done), Optional[EncodeResult])
    assert_type(client.encode_collect(["a"]), Collected)
    assert_type(client.encode_iter(["a"], batch_size=2), Iterator[Part])
    assert_type(client.rank(docs), DocumentList)
    assert_type(client.rank(docs, on_always=done), Optional[DocumentList])
    assert_type(client.index(["a"]), DocumentList)
    assert_type(client.search(["a"], limit=3), DocumentList)
    assert_type(client.search(["a"], on_done=done), Optional[DocumentList])
    assert_type(client.is_ready(timeout=2), bool)
    assert_type(client.readiness(), List[Optional[str]])
    assert_type(client.profile("apple.png", show=False), Dict[str, float])
    client.close()


async def awaited_calls(client: Client, docs: List[Document]) -> None:
    assert_type(await client.aencode(["a"]), NDArray[np.float32])
    assert_type(await client.aencode(docs), DocumentList)
    assert_type(await client.aencode(docs, on_error=done, on_done=done), Optional[EncodeResult])
    assert_type(await client.aencode_collect(docs), Collected)
    async with client.aencode_iter(["a"]) as parts:
        assert_type(parts, AsyncIterator[Part])
    assert_type(await client.arank(docs), DocumentList)
    assert_type(await client.aindex(docs), DocumentList)
    assert_type(await client.asearch(docs, limit=1), DocumentList)
    assert_type(await client.ais_ready(), bool)
    assert_type(await client.areadiness(timeout=1), List[Optional[str]])
    assert_type(await client.aprofile(), Dict[str, float])
    await client.aclose()


async def async_client(client: AsyncClient) -> None:
    assert_type(await client.areadiness(), List[Optional[str]])
    assert_type(await client.readiness(), List[Optional[str]])  # the former name, kept


def constructed() -> None:
    with Client(["grpc://127.0.0.1:51000"], timeout=None, max_retries=0, strings_are_text=True) as client:
        assert_type(client, Client)
