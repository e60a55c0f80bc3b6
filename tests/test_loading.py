"""Loading a batch: special files refused before they block, abandonable reads, bounded remote downloads."""

from __future__ import annotations

import base64
import contextlib
import math
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from typing import Any, Iterator, List

import anyio
import numpy as np
import pytest

import aclip._engine.loading
from aclip import AsyncClient, Document, DocumentList, InputError, RequestTimeoutError
from aclip._engine.fetch import ImageFetcher, is_image_content_type
from aclip._engine.inputs import Item, Kind, classify_rank_root, classify_string
from aclip._engine.loading import load_batch, load_batch_items
from aclip.testing import ReferenceServer
from tests.helpers import expected_embedding, png_bytes
from tests.image_host import IMAGE, ImageHost

pytestmark = pytest.mark.anyio
REPO = pathlib.Path(__file__).resolve().parent.parent
FAST = 5.0  # seconds within which every refusal and every bounded wait here must end


@pytest.fixture(scope="module")
def host() -> Iterator[ImageHost]:
    with ImageHost() as running:
        yield running


@pytest.fixture
def fifo(tmp_path: pathlib.Path) -> Iterator[str]:
    """A FIFO named like an image, with no writer. Should a regression block a reader in open(), a writer
    comes after 20 s and lets it go, so that the test fails instead of hanging the test run."""
    path = tmp_path / "x.png"
    os.mkfifo(path)
    rescue = threading.Timer(20.0, _open_for_writing, [str(path)])
    rescue.daemon = True
    rescue.start()
    yield str(path)
    rescue.cancel()


def _open_for_writing(path: str) -> None:
    with contextlib.suppress(OSError):  # ENXIO: no reader is blocked, nothing to rescue
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _fetcher(**options: Any) -> ImageFetcher:
    return ImageFetcher(**{"max_bytes": 8 << 20, "trust_env": False, "connect_timeout": 5.0, **options})


# --- local files: special files refused before anything blocks ---------------------------------------


async def test_a_fifo_is_refused_at_once_naming_its_position(fifo: str) -> None:
    items = [classify_string("a sentence"), classify_string(fifo)]
    with (
        anyio.fail_after(FAST),
        pytest.raises(InputError, match=r"input 4: .*x\.png.* not a regular file \(a FIFO\)") as caught,
    ):
        await load_batch_items(items, 3)
    assert caught.value.position == 4


def test_the_blocking_loader_refuses_a_fifo_too(fifo: str) -> None:
    """load_batch itself checks before reading, so any caller of it is safe (the engine of today included)."""
    started = time.monotonic()
    with pytest.raises(InputError, match="not a regular file"):
        load_batch([classify_string(fifo)], start=0)
    assert time.monotonic() - started < FAST


async def test_a_device_and_a_socket_are_refused() -> None:
    folder = tempfile.mkdtemp(prefix="aclip-")  # short: a socket path has at most ~107 characters
    socket_path = os.path.join(folder, "s.png")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(socket_path)
        items = [Item(Kind.LOCAL_FILE, "/dev/zero", "/dev/zero", "image/png"), classify_string(socket_path)]
        for offset, expected in enumerate(["a device", "a socket"]):
            with anyio.fail_after(FAST), pytest.raises(InputError, match=f"not a regular file \\({expected}"):
                await load_batch_items(items[offset : offset + 1], offset)
    finally:
        listener.close()
        os.unlink(socket_path)
        os.rmdir(folder)


async def test_a_symlink_to_an_image_still_loads_and_one_to_a_fifo_does_not(tmp_path: pathlib.Path, fifo: str) -> None:
    image = png_bytes(seed=5)
    (tmp_path / "real.png").write_bytes(image)
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    (tmp_path / "pipe-link.png").symlink_to(fifo)
    loaded = await load_batch_items([classify_string(str(tmp_path / "link.png"))], 0)
    assert loaded[0].kind is Kind.BLOB and loaded[0].payload == image
    with anyio.fail_after(FAST), pytest.raises(InputError, match="a FIFO"):
        await load_batch_items([classify_string(str(tmp_path / "pipe-link.png"))], 0)


async def test_missing_files_and_directories_keep_their_messages(tmp_path: pathlib.Path) -> None:
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(InputError, match=r"input 2: .*folder\.png.* is a directory, not an image file"):
        await load_batch_items([classify_string(str(tmp_path / "folder.png"))], 2)
    with pytest.raises(InputError, match=r"input 0: .*gone\.png.* no such file"):
        await load_batch_items([classify_string(str(tmp_path / "gone.png"))], 0)


async def test_a_fifo_ends_the_call_with_an_input_error(server: ReferenceServer, fifo: str) -> None:
    async with AsyncClient(server.url("grpc")) as client:
        with anyio.fail_after(10), pytest.raises(InputError, match=r"input 1: .*not a regular file") as caught:
            await client.aencode(["a sentence", fifo])
    assert caught.value.position == 1


_CANCELLED_WHILE_LOADING = """
import asyncio, sys
from aclip import AsyncClient, InputError

async def main():
    async with AsyncClient(sys.argv[1]) as client:
        try:
            await asyncio.wait_for(client.aencode([sys.argv[2]]), 2)
        except (InputError, asyncio.TimeoutError) as err:
            print(type(err).__name__)

asyncio.run(main())
"""


def test_a_process_whose_call_met_a_fifo_exits_promptly(server: ReferenceServer, fifo: str) -> None:
    """Before: the call took 14.6 s and the process never exited (a worker thread stuck in open())."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CANCELLED_WHILE_LOADING, server.url("grpc"), fifo],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit within 30 s: a worker thread kept it alive")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "InputError"
    assert time.monotonic() - started < 15  # the interpreter's start and the import included


# --- local files: a read that blocks is abandoned --------------------------------------------------------


@pytest.fixture
def blocked_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every file read blocks (as on a hung network file system) until the returned event is set."""
    release = threading.Event()

    def read_for_ever(path: str, position: int) -> bytes:
        release.wait(30)
        return b""

    monkeypatch.setattr(aclip._engine.loading, "_read_image_file", read_for_ever)
    yield release
    release.set()  # the abandoned worker thread ends


async def test_a_blocked_read_ends_at_the_deadline_naming_the_batch(blocked_reads: threading.Event) -> None:
    items = [classify_string("a.png"), classify_string("b.png")]
    with anyio.fail_after(FAST), pytest.raises(RequestTimeoutError, match="loading inputs 6, 7 did not") as caught:
        await load_batch_items(items, 6, until=anyio.current_time() + 0.3)
    assert caught.value.positions == [6, 7]


async def test_a_blocked_read_is_abandoned_when_the_call_is_cancelled(blocked_reads: threading.Event) -> None:
    started = anyio.current_time()
    with anyio.fail_after(FAST), anyio.move_on_after(0.3):
        await load_batch_items([classify_string("a.png")], 0)
    assert anyio.current_time() - started < 2


async def test_plain_sentences_are_returned_as_they_are() -> None:
    items = [classify_string("a sentence"), classify_string("another one")]
    assert await load_batch_items(items, 0, fetcher=_fetcher()) is items  # no thread, no download


async def test_files_data_uris_and_remote_images_of_matches_are_loaded(tmp_path: pathlib.Path, host: ImageHost) -> None:
    image = png_bytes(seed=9)
    (tmp_path / "m.png").write_bytes(image)
    data_uri = "data:image/png;base64," + base64.b64encode(image).decode()
    root = Document(
        text="a query",
        matches=DocumentList(
            [Document(uri=str(tmp_path / "m.png")), Document(uri=data_uri), Document(uri=host.url("/good.png"))]
        ),
    )
    async with _fetcher() as fetcher:
        loaded = await load_batch_items([classify_rank_root(root, 0)], 0, fetcher=fetcher)
    payloads = [match.payload for _, match in loaded[0].matches]
    assert payloads == [image, image, IMAGE]
    assert all(match.kind is Kind.BLOB for _, match in loaded[0].matches)


# --- remote images ------------------------------------------------------------------------------------


async def test_each_url_of_a_batch_is_downloaded_once(host: ImageHost) -> None:
    url = host.url("/good.png?once")
    items = [classify_string(url), classify_string("text"), classify_string(url)]
    async with _fetcher() as fetcher:
        loaded = await load_batch_items(items, 0, fetcher=fetcher)
    assert [item.kind for item in loaded] == [Kind.BLOB, Kind.TEXT, Kind.BLOB]
    assert [path for path, _ in host.requests].count("/good.png?once") == 1


async def test_a_fetcher_opens_a_session_only_for_a_remote_image(host: ImageHost) -> None:
    async with _fetcher() as fetcher:
        await load_batch_items([classify_string("text"), classify_string("/local/a.txt")], 0, fetcher=fetcher)
        assert fetcher._session is None
        await load_batch_items([classify_string(host.url("/good.png"))], 0, fetcher=fetcher)
        session = fetcher._session
        assert session is not None and not session.closed
        await load_batch_items([classify_string(host.url("/good.png?again"))], 1, fetcher=fetcher)
        assert fetcher._session is session  # one session for the call
    assert fetcher._session is None and session.closed  # closed with the block
    with pytest.raises(RuntimeError, match="open fetcher"):
        await fetcher.fetch(host.url("/good.png"), 0, until=math.inf)
    never_entered = _fetcher()
    with pytest.raises(RuntimeError, match="open fetcher"):  # a session made here would never be closed
        await never_entered.fetch(host.url("/good.png"), 0, until=math.inf)
    assert never_entered._session is None


async def test_a_trickling_host_is_bounded_by_the_deadline(host: ImageHost) -> None:
    async with _fetcher() as images:
        with anyio.fail_after(FAST), pytest.raises(RequestTimeoutError, match="input 7: ") as caught:
            await images.fetch(host.url("/trickle.png"), 7, until=anyio.current_time() + 0.5)
    assert caught.value.positions == [7]


async def test_a_trickling_host_ends_a_batch_by_its_deadline(host: ImageHost) -> None:
    items = [classify_string("text"), classify_string(host.url("/trickle.png"))]
    async with _fetcher() as fetcher:
        with anyio.fail_after(FAST), pytest.raises(RequestTimeoutError) as caught:
            await load_batch_items(items, 10, fetcher=fetcher, until=anyio.current_time() + 0.5)
    assert caught.value.positions == [10, 11]


async def test_a_trickling_host_is_bounded_by_the_download_limit(host: ImageHost) -> None:
    async with _fetcher(time_limit=0.5) as images:
        with anyio.fail_after(FAST), pytest.raises(InputError, match=r"input 2: .*within 0\.5 s") as caught:
            await images.fetch(host.url("/trickle.png"), 2, until=math.inf)
    assert caught.value.position == 2


async def test_an_announced_oversize_body_is_refused_before_reading(host: ImageHost) -> None:
    async with _fetcher(max_bytes=1 << 20) as images:
        with anyio.fail_after(FAST), pytest.raises(InputError, match=r"input 1: .*max_message_size=1048576.*announced"):
            await images.fetch(host.url("/huge.png"), 1, until=math.inf)


async def test_an_endless_body_is_refused_with_memory_bounded(host: ImageHost) -> None:
    limit = 4 << 20
    tracemalloc.start()
    try:
        async with _fetcher(max_bytes=limit) as images:
            with anyio.fail_after(FAST), pytest.raises(InputError, match=r"input 0: .*more than 4194304 bytes sent"):
                await images.fetch(host.url("/endless.png"), 0, until=math.inf)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit  # the host offered 400 MB


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/short.png", "the body ended after 10 of 1000 bytes"),
        ("/page.html", "'text/html; charset=utf-8' content, not an image"),
        ("/data.json", "application/json"),
        ("/missing.png", "HTTP 404"),
        ("/gzip.png", "gzip-encoded"),
        ("/loop.png", "more than 5 redirects"),
    ],
)
async def test_a_bad_answer_is_an_input_error_naming_the_position(host: ImageHost, path: str, reason: str) -> None:
    async with _fetcher() as images:
        with (
            anyio.fail_after(FAST),
            pytest.raises(InputError, match=f"input 5: cannot fetch the image .*{path}") as caught,
        ):
            await images.fetch(host.url(path), 5, until=math.inf)
    assert reason in str(caught.value)
    assert caught.value.position == 5


async def test_a_refused_connection_is_an_input_error() -> None:
    async with _fetcher() as images:
        with anyio.fail_after(FAST), pytest.raises(InputError, match="input 3: cannot fetch the image") as caught:
            await images.fetch(f"http://127.0.0.1:{_dead_port()}/x.png", 3, until=math.inf)
    assert caught.value.position == 3


@pytest.mark.parametrize(
    ("content_type", "image"),
    [
        ("image/png", True),
        ("IMAGE/JPEG; q=1", True),
        ("application/octet-stream", True),
        ("binary/octet-stream", True),
        (None, True),
        ("", True),
        ("text/html; charset=utf-8", False),
        ("text/plain", False),
        ("application/json", False),
    ],
)
def test_which_content_types_may_be_images(content_type: str, image: bool) -> None:
    assert is_image_content_type(content_type) is image


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dead_proxy_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "NO_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")


@pytest.mark.usefixtures("dead_proxy_in_environment")
async def test_without_trust_env_the_environment_proxy_is_ignored(host: ImageHost) -> None:
    async with _fetcher(trust_env=False) as images:
        with anyio.fail_after(FAST):
            assert await images.fetch(host.url("/good.png"), 0, until=math.inf) == IMAGE


@pytest.mark.usefixtures("dead_proxy_in_environment")
async def test_with_trust_env_the_environment_proxy_is_used(host: ImageHost) -> None:
    async with _fetcher(trust_env=True) as images:
        with anyio.fail_after(FAST), pytest.raises(InputError, match=r"input 0: cannot fetch the image .*proxy"):
            await images.fetch(host.url("/good.png"), 0, until=math.inf)


async def test_no_credential_header_or_cookie_of_ours_reaches_the_image_host(
    server: ReferenceServer, host: ImageHost
) -> None:
    url = host.url("/redirect.png?credentials")  # sets a cookie, then sends the client to /good.png
    options: List[Any] = [{"Authorization": "secret-token"}, {"x-team": "ours"}]
    async with AsyncClient(
        server.url("grpc"), fetch_remote_images=True, credential=options[0], headers=options[1]
    ) as client:
        with anyio.fail_after(10):
            vectors = await client.aencode([url, url])
    np.testing.assert_array_equal(vectors[1], expected_embedding(IMAGE))
    start = next(index for index, (path, _) in enumerate(host.requests) if path == "/redirect.png?credentials")
    seen = host.requests[start : start + 2]
    assert [path for path, _ in seen] == ["/redirect.png?credentials", "/good.png"]
    for _, headers in seen:
        assert headers["user-agent"].startswith("aclip/")  # the client downloaded it, not the server
        assert not {"authorization", "x-team", "cookie"} & set(headers), headers
