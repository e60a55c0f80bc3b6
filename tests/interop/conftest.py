"""Fixtures of the interop suite (tests/interop): the upstream stack offline, a reference server on 127.0.0.1.

Run only in ``.venv-interop``::

    bash scripts/interop_env.sh
    .venv-interop/bin/python -m pytest tests/interop -m interop

This file imports neither jina nor docarray, so aclip's own test run loads it without them; each test module
imports what it needs through :func:`tests.interop.support.import_upstream`, which skips the module when the
package is missing. (A skip raised here, in a conftest, would abort pytest when tests/interop is named on its
command line.)
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from typing import Dict, Iterator, List

import pytest

from aclip.testing import ReferenceServer, serve_in_thread
from tests.interop.support import PROTOCOLS, go_offline

go_offline()  # before any test module imports jina or docarray


@pytest.fixture(scope="session")
def reference_server() -> Iterator[ReferenceServer]:
    """aclip's reference server (grpc, http and websocket on 127.0.0.1), in its own thread."""
    with serve_in_thread() as running:
        yield running


@pytest.fixture(scope="session")
def server_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, str]]:
    """A reference server in another process, working in an empty folder: protocol name -> URL.

    It cannot read the test's files (relative paths), as a server on another machine could not: a test that
    passes a local file path proves the client read the file and sent its bytes.
    """
    folder = tmp_path_factory.mktemp("server-elsewhere")
    command = [sys.executable, "-m", "aclip.testing", "--grpc-port", "0", "--http-port", "0", "--websocket-port", "0"]
    with (folder / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert process.stdout is not None
        try:  # it prints its URLs once it listens
            lines = _read_lines(process.stdout.fileno(), len(PROTOCOLS), timeout=30.0)
        except (TimeoutError, EOFError) as exc:
            raise RuntimeError(f"{exc}; its stderr: {(folder / 'stderr.txt').read_text()[-2000:]}") from exc
        yield {_PROTOCOL_OF_SCHEME[url.split("://", 1)[0]]: url for url in lines}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


_PROTOCOL_OF_SCHEME = {"grpc": "grpc", "http": "http", "ws": "websocket"}


def _read_lines(fd: int, count: int, *, timeout: float) -> List[str]:
    """The first ``count`` lines from a pipe, waiting at most ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    received = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while received.count(b"\n") < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"the server printed {received!r} and no more within {timeout:g} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise EOFError(f"the server exited after printing {received!r}")
            received += chunk
    return [line.decode().strip() for line in received.splitlines()[:count]]
