"""Small, valid PNG images made on the spot, for tests and demos that need an image file."""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["sample_png"]


def sample_png(width: int = 4, height: int = 3, *, seed: int = 0) -> bytes:
    """A valid 8-bit RGB PNG of random pixels; the same seed gives the same bytes.

    Example::

        >>> sample_png(2, 2, seed=1)[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    scanlines = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(scanlines))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
