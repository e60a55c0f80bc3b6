"""Fixtures of tests/testing, the tests of aclip.testing (the reference server itself).

``server`` here is one reference server per test module (tests/conftest.py has one for the whole session):
a module's tests may count on its stats and index being theirs alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aclip.testing import ReferenceServer, serve_in_thread


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    """A reference server on 127.0.0.1 (gRPC, HTTP and WebSocket), in its own thread, for one test module."""
    with serve_in_thread() as running:
        yield running
