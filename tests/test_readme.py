"""Every code block of the README runs, as written, against reference servers on 127.0.0.1.

Python blocks run with top-level ``await`` allowed, in a folder holding ``apple.png`` and ``rerank.png``; a
line ``print(...)  # text`` must print ``text``. Console blocks hold ``$ aclip ...`` commands, each of which
must exit with status 0. The README's URLs (ports 51000, 51001, 51002, the reference server's defaults)
and the CLI's default server are pointed at the test's server. A fenced block in any other language fails
the test: no block goes unchecked. (The two fresh-machine commands at the top are indented, not fenced: CI runs them.)
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import pathlib
import re
import shlex
from typing import Dict, Iterator, List, Tuple

import pytest

from aclip._cli import main
from aclip.testing import ReferenceServer, sample_png

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
README_URLS = {
    "grpc": "grpc://127.0.0.1:51000",
    "http": "http://127.0.0.1:51001",
    "websocket": "ws://127.0.0.1:51002",
}

Block = Tuple[str, str, int]  # (language, code, line number)


def readme_blocks() -> List[Block]:
    text = README.read_text()
    blocks = []
    for match in re.finditer(r"^```([a-z]*)\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE):
        blocks.append((match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1))
    return blocks


BLOCKS = readme_blocks()


def local(code: str, server: ReferenceServer) -> str:
    for protocol, url in README_URLS.items():
        code = code.replace(url, server.url(protocol))
    return code


@pytest.fixture
def readme_folder(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """A folder with the files the README names, as the working directory; no proxies from the environment."""
    (tmp_path / "apple.png").write_bytes(sample_png(16, 16, seed=5))
    (tmp_path / "rerank.png").write_bytes(sample_png(16, 16, seed=6))
    (tmp_path / "sentences.txt").write_text("she smiled, with pain\na cat on a mat\n")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "ACLIP_SERVER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_every_block_is_python_or_console() -> None:
    languages = {language for language, _, _ in BLOCKS}
    assert languages == {"python", "console"}, [(language, line) for language, _, line in BLOCKS]
    assert len(BLOCKS) >= 15


def run_python(code: str) -> str:
    output = io.StringIO()
    namespace: Dict[str, object] = {"__name__": "__readme__"}
    compiled = compile(code, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    with contextlib.redirect_stdout(output):
        result = eval(compiled, namespace)  # a coroutine when the block awaits at top level
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    return output.getvalue()


@pytest.mark.parametrize(
    ("language", "code", "line"), BLOCKS, ids=[f"line{line}-{language}" for language, _, line in BLOCKS]
)
def test_readme_block_runs(
    language: str,
    code: str,
    line: int,
    server: ReferenceServer,
    readme_folder: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.executor.clear_index()
    code = local(code, server)
    if language == "console":
        monkeypatch.setenv("ACLIP_SERVER", server.url("grpc"))  # the commands' default server
        commands = [command[2:] for command in code.splitlines() if command.startswith("$ ")]
        assert commands, "a console block without commands"
        for command in commands:
            words = shlex.split(command)
            assert words[0] == "aclip", command
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(words[1:]) == 0, command
        return
    printed = run_python(code)
    for expected in re.findall(r"print\(.*\)  # (.*)", code):
        assert expected in printed, (expected, printed)


def test_the_readme_shows_the_examples_as_they_are() -> None:
    """The web-service examples in the README are the files the example tests run."""
    text = README.read_text()
    for name in ("fastapi_app.py", "aiohttp_app.py"):
        source = (README.parent / "examples" / name).read_text()
        body = source.split('"""', 2)[2].lstrip("\n").split('\n\nif __name__ == "__main__":')[0]
        assert body.rstrip() in text, name
