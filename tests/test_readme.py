"""The README's migration snippets run as they are against the reference server."""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import re
from typing import Iterator, List

import pytest

from aclip.testing import ReferenceServer, sample_png

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
README_SERVER = "grpc://127.0.0.1:51000"


def section_snippets(heading: str) -> List[str]:
    text = README.read_text()
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.DOTALL)


@pytest.fixture
def in_folder_with_apple(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    (tmp_path / "apple.png").write_bytes(sample_png(16, 16, seed=5))
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(previous)


SNIPPETS = section_snippets("Migrating from clip_client")


PRODUCTION_SNIPPETS = section_snippets("Running in production")


@pytest.mark.parametrize("snippet", PRODUCTION_SNIPPETS, ids=[f"snippet{i}" for i in range(len(PRODUCTION_SNIPPETS))])
def test_production_snippet_runs(snippet: str, server: ReferenceServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    code = snippet.replace(README_SERVER, server.url("grpc")).replace("http://127.0.0.1:51001", server.url("http"))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    printed = output.getvalue()
    expectations = re.findall(r"print\(.*\)  # (.*)", snippet)
    assert expectations
    for expected in expectations:
        assert expected in printed


def test_the_section_has_snippets() -> None:
    assert len(SNIPPETS) == 4
    assert all(README_SERVER in snippet for snippet in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_migration_snippet_runs(snippet: str, server: ReferenceServer, in_folder_with_apple: pathlib.Path) -> None:
    server.executor.clear_index()
    code = snippet.replace(README_SERVER, server.url("grpc"))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    printed = output.getvalue()
    for expected in re.findall(r"print\(.*\)  # (.*)", snippet):
        assert expected in printed
