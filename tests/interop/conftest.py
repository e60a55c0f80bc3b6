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

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Dict, Iterator, List, Optional

import pytest

from aclip.testing import ReferenceServer, serve_in_thread
from tests.interop.gateway import READY_PREFIX
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


#: How long a real Jina Flow may take to come up (on 2 busy cores it takes about 10 s).
GATEWAY_START_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, str]]:
    """A real Jina Flow (tests/interop/gateway.py): protocol name -> URL of its gateway on 127.0.0.1.

    The gateway speaks gRPC, HTTP and WebSocket at once, in front of
    :class:`~tests.interop.clip_test_executor.ClipTestExecutor`. It runs in a process group of its own (jina
    starts a gateway and an executor process), which is stopped on exit: standard input closed, then the
    whole group killed if it is still there after 30 s.
    """
    folder = tmp_path_factory.mktemp("gateway")
    command = [sys.executable, "-m", "tests.interop.gateway", "--lifetime", "1800"]
    root = Path(__file__).resolve().parents[2]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    with (folder / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        try:
            lines = _read_lines(
                process.stdout.fileno(), len(PROTOCOLS), timeout=GATEWAY_START_TIMEOUT, prefix=READY_PREFIX
            )
        except (TimeoutError, EOFError) as exc:
            log = (folder / "stderr.txt").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the Jina gateway did not come up: {exc}; its stderr ends with:\n{log}") from exc
        # jina keeps logging to stdout: drain it, or a full pipe would stall the gateway.
        threading.Thread(target=_drain, args=(process.stdout, folder / "stdout.txt"), daemon=True).start()
        yield {_PROTOCOL_OF_SCHEME[url.split("://", 1)[0]]: url for url in lines}
    finally:
        _stop_group(process, grace=30.0)


def _drain(stream: IO[bytes], path: Path) -> None:
    with path.open("ab") as sink:
        for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
            sink.write(chunk)


def _stop_group(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """Ask the process to stop (its stdin closed), then kill its whole process group after ``grace`` s."""
    if process.stdin is not None:
        process.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):  # its own session: the group holds only what it started
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


_PROTOCOL_OF_SCHEME = {"grpc": "grpc", "http": "http", "ws": "websocket"}


def _read_lines(fd: int, count: int, *, timeout: float, prefix: Optional[str] = None) -> List[str]:
    """The first ``count`` lines from a pipe (those that start with ``prefix``, without it), within ``timeout``."""
    deadline = time.monotonic() + timeout
    received = b""
    wanted: List[str] = []
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(wanted) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"it printed {received[-2000:]!r} and no more within {timeout:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError(f"it exited after printing {received[-2000:]!r}")
            received += chunk
            lines = [line.decode(errors="replace").strip() for line in received.split(b"\n")[:-1]]
            wanted = [
                line[len(prefix) :] if prefix else line for line in lines if not prefix or line.startswith(prefix)
            ]
    return wanted[:count]
