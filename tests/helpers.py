"""Test helpers: an independent copy of the test encoder's formula, and small real images."""

from __future__ import annotations

import hashlib

import numpy as np

from aclip.testing import sample_png


def expected_embedding(payload: bytes) -> np.ndarray:
    """The deterministic test encoder of shared/reference/test-encoder.md, written out again for tests."""
    seed = hashlib.sha256(payload).digest()
    stream = b"".join(hashlib.sha256(seed + i.to_bytes(4, "little")).digest() for i in range(64))
    values = np.frombuffer(stream, "<u4") / 2**32 * 2 - 1
    return (values / np.linalg.norm(values)).astype(np.float32)


def expected_text(text: str) -> np.ndarray:
    return expected_embedding(text.encode("utf-8"))


def expected_tensor(tensor: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(np.asarray(tensor).astype(np.uint8).squeeze())
    return expected_embedding(repr(array.shape).encode() + array.tobytes())


def png_bytes(width: int = 4, height: int = 3, seed: int = 0) -> bytes:
    """A valid RGB PNG of the given size, different for each seed."""
    return sample_png(width, height, seed=seed)
