"""The ``aclip`` command line: encode, rank, index, search, profile, ping and serve, against the reference server.

``aclip ping``'s answers are tested with the health checks (tests/test_health.py); here, how it picks servers.
"""

from __future__ import annotations

import io
import json
import pathlib
import queue
import shutil
import signal
import subprocess
import sys
import threading
from typing import Dict, Iterator, List

import numpy as np
import pytest
from numpy.typing import NDArray

import aclip
from aclip._cli import main
from aclip.testing import ReferenceServer, embed_image_bytes, embed_text, sample_png, serve_in_thread
from tests.conftest import PROTOCOLS, Certificates

TOKEN = "cli-token"
WAIT = 30.0
REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def url(server: ReferenceServer) -> str:
    return server.url("grpc")


@pytest.fixture
def images(tmp_path: pathlib.Path) -> Dict[str, bytes]:
    """Three PNG files under tmp_path/images (made in an order that is not sorted), by path."""
    folder = tmp_path / "images"
    folder.mkdir()
    made: Dict[str, bytes] = {}
    for name, seed in (("b.png", 1), ("c.png", 2), ("a.png", 3)):
        data = sample_png(seed=seed)
        (folder / name).write_bytes(data)
        made[str(folder / name)] = data
    return dict(sorted(made.items()))


@pytest.fixture(scope="module")
def guarded() -> Iterator[ReferenceServer]:
    with serve_in_thread(token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def down_url() -> str:
    """A URL nobody listens on: a server started and stopped again."""
    with serve_in_thread(protocols=["grpc"]) as running:
        address = running.url("grpc")
    return address


def expected_row(value: str, images: Dict[str, bytes]) -> NDArray[np.float32]:
    return embed_image_bytes(images[value]) if value in images else embed_text(value)


def json_lines(text: str) -> List[Dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def assert_rows(rows: List[Dict[str, object]], inputs: List[str], images: Dict[str, bytes]) -> None:
    assert [row["input"] for row in rows] == inputs
    for row, value in zip(rows, inputs):
        vector = np.asarray(row["embedding"], dtype=np.float32)
        assert vector.tobytes() == expected_row(value, images).tobytes(), value


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("aclip: error: ")
    return lines[0]


# encode


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encode_writes_npy_rows_in_input_order_bit_for_bit(
    server: ReferenceServer,
    protocol: str,
    images: Dict[str, bytes],
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "vectors.npy"
    glob = str(tmp_path / "images" / "*.png")
    status = main(["encode", "a cat", glob, "she smiled, with pain", "-o", str(out), "--server", server.url(protocol)])
    assert status == 0, capsys.readouterr().err
    inputs = ["a cat", *images, "she smiled, with pain"]  # the glob's files, sorted, in its place
    vectors = np.load(out)
    assert vectors.dtype == np.float32 and vectors.shape == (5, 512)
    expected = np.stack([expected_row(value, images) for value in inputs])
    assert vectors.tobytes() == expected.tobytes()
    assert capsys.readouterr().out.strip() == f"wrote 5 embeddings of 512 dimensions to {out}"


def test_encode_prints_json_lines_by_default(
    url: str, images: Dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    first_image = next(iter(images))
    assert main(["encode", "hello", first_image, "--server", url, "--batch-size", "1", "--prefetch", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert_rows(json_lines(captured.out), ["hello", first_image], images)


def test_encode_reads_files_and_stdin_and_writes_jsonl(
    url: str,
    images: Dict[str, bytes],
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    listing = tmp_path / "inputs.txt"
    paths = list(images)
    listing.write_text(
        f"first line\n\n{paths[1]}\n   \n{tmp_path / 'images' / '[ab].png'}\r\nlast line\n", encoding="utf-8"
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin\n" + paths[2] + "\n"))
    out = tmp_path / "vectors.jsonl"
    assert main(["encode", "an argument", "--file", str(listing), "-f", "-", "--output", str(out), "-s", url]) == 0
    inputs = ["an argument", "first line", paths[1], paths[0], paths[1], "last line", "from stdin", paths[2]]
    assert_rows(json_lines(out.read_text(encoding="utf-8")), inputs, images)
    assert capsys.readouterr().out.strip() == f"wrote 8 embeddings of 512 dimensions to {out}"


def test_encode_expands_recursive_globs_sorted(
    url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made: Dict[str, bytes] = {}
    for relative in ("z/deep/b.jpg", "a.jpg", "m/c.jpg"):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sample_png(seed=len(made)))
        made[str(path)] = path.read_bytes()
    assert main(["encode", str(tmp_path / "**" / "*.jpg"), "--server", url]) == 0
    assert_rows(json_lines(capsys.readouterr().out), sorted(made), made)


def test_encode_takes_the_server_from_the_environment(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACLIP_SERVER", url)
    assert main(["encode", "from the environment"]) == 0
    assert_rows(json_lines(capsys.readouterr().out), ["from the environment"], {})


def test_encode_progress_goes_to_stderr(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encode", "one", "two", "--progress", "--server", url]) == 0
    captured = capsys.readouterr()
    assert_rows(json_lines(captured.out), ["one", "two"], {})
    assert "2/2" in captured.err


# rank


def test_rank_prints_candidates_best_first_with_both_scores(
    url: str, images: Dict[str, bytes], tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = next(iter(images))
    candidates = ["a cat", "a dog", str(tmp_path / "images" / "[bc].png"), "a room"]
    assert main(["rank", query, *candidates, "--server", url, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["query"] == query
    expanded = ["a cat", "a dog", *list(images)[1:], "a room"]
    query_vector = embed_image_bytes(images[query]).astype(np.float64)
    vectors = [expected_row(value, images).astype(np.float64) for value in expanded]
    cosines = [float(v @ query_vector / np.linalg.norm(v) / np.linalg.norm(query_vector)) for v in vectors]
    logits = 100 * np.array(cosines)
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    order = sorted(range(len(expanded)), key=lambda i: -softmax[i])
    assert [m["candidate"] for m in answer["matches"]] == [expanded[i] for i in order]
    for match, i in zip(answer["matches"], order):
        assert match["clip_score"] == pytest.approx(softmax[i], abs=1e-5)
        assert match["clip_score_cosine"] == pytest.approx(cosines[i], abs=1e-5)
    assert sum(m["clip_score"] for m in answer["matches"]) == pytest.approx(1.0, abs=1e-5)

    assert main(["rank", query, *candidates, "--server", url]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["clip_score", "cosine", "candidate"]
    for line, match in zip(lines, answer["matches"], strict=True):
        score, cosine, candidate = line.split(maxsplit=2)
        assert candidate == match["candidate"]
        assert float(score) == pytest.approx(match["clip_score"], abs=1e-6)
        assert float(cosine) == pytest.approx(match["clip_score_cosine"], abs=1e-6)


def test_rank_puts_the_identical_sentence_first(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rank", "a photo of a cat", "a dog", "a photo of a cat", "--server", url]) == 0
    _, best, worst = capsys.readouterr().out.splitlines()
    assert best.split(maxsplit=2) == ["1.000000", "1.000000", "a photo of a cat"]
    assert worst.endswith("  a dog")


# index and search


def test_index_then_search(
    server: ReferenceServer, url: str, images: Dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    server.executor.clear_index()
    first_image = next(iter(images))
    texts = ["she smiled, with pain", "a cat on a mat", "the stock market"]
    assert main(["index", *texts, first_image, "--server", url, "--batch-size", "2"]) == 0
    assert capsys.readouterr().out.strip() == "indexed 4 inputs"
    assert server.executor.indexed_count == 4

    assert main(["search", "a cat on a mat", "--limit", "3", "--json", "--server", url]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["query"] == "a cat on a mat"
    matches = answer["matches"]
    assert len(matches) == 3 and matches[0]["text"] == "a cat on a mat"
    assert matches[0]["cosine"] == pytest.approx(0.0, abs=1e-6)
    distances = [m["cosine"] for m in matches]
    assert distances == sorted(distances)
    query = embed_text("a cat on a mat").astype(np.float64)
    for match in matches:
        stored = expected_row(match["text"] or match["uri"], images).astype(np.float64)
        cosine = stored @ query / np.linalg.norm(stored) / np.linalg.norm(query)
        assert match["cosine"] == pytest.approx(1 - cosine, abs=1e-5)

    assert main(["search", first_image, "-n", "2", "--server", url]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["distance", "match"] and len(lines) == 2
    distance, shown = lines[0].split(maxsplit=1)
    assert shown == first_image and float(distance) == pytest.approx(0.0, abs=1e-6)


def test_search_an_empty_index_says_so(server: ReferenceServer, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    server.executor.clear_index()
    assert main(["search", "anything", "--server", url]) == 0
    assert capsys.readouterr().out.strip() == "no matches (is the index empty?)"


# profile


@pytest.mark.parametrize("content", [[], ["hello, world"]])
def test_profile_prints_the_tree(url: str, content: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", *content, "--server", url]) == 0
    out = capsys.readouterr().out
    for label in ("Roundtrip", "Client-server network", "Server", "Gateway-CLIP network", "CLIP model"):
        assert label in out
    assert "ms" in out and "%" in out


# ping


def test_ping_takes_the_server_option_like_every_command(
    server: ReferenceServer, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ping", "-s", url]) == 0
    assert capsys.readouterr().out.startswith(f"{url}: ready (")
    other = server.url("http")
    assert main(["ping", other, "--server", url]) == 0  # the URLs, then --server
    assert [line.split(": ")[0] for line in capsys.readouterr().out.splitlines()] == [other, url]
    monkeypatch.setenv("ACLIP_SERVER", url)  # neither: the default server, as every command has it
    assert main(["ping"]) == 0
    assert capsys.readouterr().out.startswith(f"{url}: ready (")


# connection options


def test_token_from_the_option_or_the_environment(
    guarded: ReferenceServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CLIP_AUTH_TOKEN", raising=False)
    address = guarded.url("http")
    assert main(["encode", "hi", "--server", address]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and TOKEN not in captured.err
    assert "credentials" in one_error_line(captured.err)
    assert main(["encode", "hi", "--server", address, "--token", TOKEN]) == 0
    assert_rows(json_lines(capsys.readouterr().out), ["hi"], {})
    monkeypatch.setenv("CLIP_AUTH_TOKEN", TOKEN)
    assert main(["encode", "hi", "--server", address]) == 0
    assert_rows(json_lines(capsys.readouterr().out), ["hi"], {})


def test_tls_with_a_ca_file(
    tls_server: ReferenceServer, certificates: Certificates, capsys: pytest.CaptureFixture[str]
) -> None:
    address = tls_server.url("grpc")
    assert main(["encode", "secret", "--server", address, "--ca-file", certificates.ca_file]) == 0
    assert_rows(json_lines(capsys.readouterr().out), ["secret"], {})
    assert main(["encode", "secret", "--server", address, "--timeout", "10"]) == 1
    one_error_line(capsys.readouterr().err)


# errors


@pytest.mark.parametrize(
    "command",
    [["encode", "hi"], ["rank", "a", "b"], ["index", "hi"], ["search", "hi"], ["profile"]],
    ids=lambda command: command[0],
)
def test_a_server_that_is_down_is_one_line_and_status_1(
    down_url: str, command: List[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--server", down_url]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cannot connect" in one_error_line(captured.err)


@pytest.mark.parametrize(
    "command, message",
    [
        (["encode", "missing.png"], "no such image file: 'missing.png'"),
        (["encode", "nothing/*.png"], "no file matches 'nothing/*.png'"),
        (["encode", "--file", "missing.txt"], "cannot read --file 'missing.txt'"),
        (["index", "hi", "missing.jpg"], "no such image file"),
        (["rank", "missing.png", "a cat"], "no such image file"),
        (["search", "nothing/*.png"], "no file matches"),
        (["profile", "missing.png"], "no such image file"),
        (["encode"], "no inputs"),
        (["encode", "hi", "--output", "out.txt"], "*.npy"),
        (["encode", "hi", "--output", "no/such/folder/out.npy"], "there is no folder 'no/such/folder'"),
    ],
)
def test_missing_files_and_bad_inputs_are_status_2(
    url: str,
    command: List[str],
    message: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--server", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in one_error_line(captured.err)


def test_a_query_must_be_one_input(
    url: str, images: Dict[str, bytes], tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", str(tmp_path / "images" / "*.png"), "--server", url]) == 2
    assert "matches 3 files" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["encode", "hi", "--batch-size", "0"],
        ["encode", "hi", "--timeout", "-1"],
        ["search", "hi", "--limit", "x"],
        ["ping", "--timeout", "0"],
        ["encode", "hi", "--no-such-option"],
        ["rank", "only-a-query"],
        ["frobnicate"],
    ],
)
def test_bad_command_lines_are_status_2(command: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error: " in err.strip().splitlines()[-1]


def test_a_bad_url_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encode", "hi", "--server", "ftp://127.0.0.1:1"]) == 2
    assert "ftp" in one_error_line(capsys.readouterr().err)


def test_a_server_error_is_status_1(url: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "not-an-image.png"
    fake.write_bytes(b"plain text, not a PNG")
    assert main(["encode", str(fake), "--server", url]) == 1
    assert "the server failed" in one_error_line(capsys.readouterr().err)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("encode", "rank", "index", "search", "profile", "ping", "serve"):
        assert command in out
    assert main(["encode", "--help"]) == 0
    assert "ACLIP_SERVER" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["--help"], ["--version"], ["encode", "--help"], ["ping", "--help"]])
def test_help_and_version_load_neither_numpy_nor_anyio(command: List[str]) -> None:
    code = (
        "import sys\n"
        "from aclip._cli import main\n"
        "status = main(sys.argv[1:])\n"
        "print(status, sorted(name for name in ('numpy', 'anyio') if name in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=WAIT)
    assert done.stderr.strip() == "0 []"
    assert done.stdout.startswith("usage: aclip" if "--help" in command else f"aclip {aclip.__version__}")


# serve, and the installed console script


def test_serve_runs_the_reference_server_until_interrupted(capsys: pytest.CaptureFixture[str]) -> None:
    command = [sys.executable, "-m", "aclip", "serve", "--grpc-port", "0", "--http-port", "0", "--websocket-port", "0"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()

        def pump() -> None:
            for line in proc.stdout or ():
                lines.put(line.strip())

        threading.Thread(target=pump, daemon=True).start()
        urls = [lines.get(timeout=WAIT) for _ in range(3)]
        assert [u.split("://")[0] for u in urls] == ["grpc", "http", "ws"]
        assert main(["ping", *urls]) == 0
        assert main(["encode", "served", "--server", urls[1]]) == 0
        out = capsys.readouterr().out
        assert out.count(": ready (") == 3
        assert_rows(json_lines(out.split("\n", 3)[3]), ["served"], {})
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WAIT) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)


def test_serve_help_shows_the_server_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    assert "--grpc-port" in capsys.readouterr().out


def test_the_installed_console_script(url: str, down_url: str) -> None:
    script = shutil.which("aclip", path=str(pathlib.Path(sys.executable).parent))
    if script is None:
        pytest.skip("the aclip console script is not installed next to this interpreter")
    done = subprocess.run([script, "encode", "console", "--server", url], capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr
    assert_rows(json_lines(done.stdout), ["console"], {})
    done = subprocess.run([script, "search", "x", "--server", down_url], capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 1 and done.stdout == ""
    assert "cannot connect" in one_error_line(done.stderr)
