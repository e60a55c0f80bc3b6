"""A Jina Executor that embeds by calling a CLIP server through aclip, as upstream users write them.

clip_client's own tests run an Executor that returns ``await client.aencode(docs)``; jina accepts only a
DocumentArray (or a dict, or None) from an Executor, so this works only if aclip gives docarray in,
docarray out. It serves ``/aclip-encode`` in the interop gateway's Flow (tests/interop/gateway.py), calling
that same gateway's ``/encode``.
"""

from __future__ import annotations

from typing import Any

from docarray import DocumentArray
from jina import Executor, requests

import aclip


class AclipEncoder(Executor):
    """``/aclip-encode``: the documents' embeddings, asked of ``server`` through ``aclip.AsyncClient``."""

    def __init__(self, server: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client = aclip.AsyncClient(server)

    @requests(on="/aclip-encode")
    async def encode(self, docs: DocumentArray, **kwargs: Any) -> DocumentArray:
        for doc in docs:
            doc.embedding = None  # the embedding must come from the call below
        return await self._client.aencode(docs, batch_size=2)  # type: ignore[no-any-return]
