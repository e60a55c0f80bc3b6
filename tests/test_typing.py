"""The Client's forwarders keep AsyncClient's types: checked with mypy (and pyright, when it is on PATH).

``tests/typing_check.py`` must check clean; each line of ``MISTAKES`` must be an error, and no other line.
mypy is in the ``dev`` extra, not ``test``: without it these tests are skipped.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Dict, Iterator, List, Tuple

import pytest

pytest.importorskip("mypy")

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKED = ROOT / "tests" / "typing_check.py"

#: Each line marked ``# error: <part of the message>`` is a mistake that a type checker must report.
MISTAKES = """from aclip import AsyncClient, Client, Document, DocumentList

client = Client("grpc://127.0.0.1:51000")
client.encode(["a"], bach_size=8)  # error: "bach_size"
client.encode_iter(["a"], on_done=print)  # error: "on_done"
client.rank(["a sentence, not a Document"])  # error: expected "Document"
client.readiness(timeout="5")  # error: expected "float"
documents: DocumentList = client.encode(["strings give an array"])  # error: "DocumentList"
Client("grpc://127.0.0.1:51000", timout=5)  # error: "timout"
AsyncClient("grpc://127.0.0.1:51000", credentials={})  # error: "credentials"


async def awaited() -> None:
    await client.aencode([Document(text="a")], prefech=2)  # error: "prefech"
    await client.asearch(["a"], limt=2)  # error: "limt"
"""


def expected_mistakes() -> Dict[int, str]:
    return {
        number: match.group(1)
        for number, line in enumerate(MISTAKES.splitlines(), start=1)
        if (match := re.search(r"  # error: (.+)$", line))
    }


def errors_by_line(output: str, path: pathlib.Path) -> Dict[int, List[str]]:
    found: Dict[int, List[str]] = {}
    for match in re.finditer(rf"^{re.escape(str(path))}:(\d+): error: (.*)$", output, flags=re.MULTILINE):
        found.setdefault(int(match.group(1)), []).append(match.group(2))
    return found


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, pathlib.Path]]:
    """One mypy run (strict, the project's settings) over both files; its output and the mistakes' file."""
    folder = tmp_path_factory.mktemp("typing")
    mistakes = folder / "typing_mistakes.py"
    mistakes.write_text(MISTAKES)
    options = [
        "--cache-dir",
        str(folder / "cache"),
        "--no-error-summary",
        "--hide-error-context",
        "--show-absolute-path",
    ]
    finished = subprocess.run(
        [sys.executable, "-m", "mypy", *options, str(CHECKED), str(mistakes)],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    yield finished.stdout + finished.stderr, mistakes


def test_the_forwarders_keep_every_overload_and_parameter(mypy_run: Tuple[str, pathlib.Path]) -> None:
    output, _ = mypy_run
    assert errors_by_line(output, CHECKED) == {}, output


def test_a_misspelt_keyword_or_a_wrong_input_is_an_error(mypy_run: Tuple[str, pathlib.Path]) -> None:
    output, mistakes = mypy_run
    expected = expected_mistakes()
    found = errors_by_line(output, mistakes)
    assert sorted(found) == sorted(expected), output
    for number, part in expected.items():
        assert any(part in message for message in found[number]), (number, found[number])


@pytest.mark.skipif(shutil.which("pyright") is None, reason="pyright (npm install -g pyright) is not on PATH")
def test_pyright_agrees(tmp_path: pathlib.Path) -> None:
    mistakes = tmp_path / "typing_mistakes.py"
    mistakes.write_text(MISTAKES)
    checked = subprocess.run(
        ["pyright", "--pythonpath", sys.executable, str(CHECKED)], cwd=ROOT, capture_output=True, text=True, timeout=110
    )
    assert checked.returncode == 0, checked.stdout
    wrong = subprocess.run(
        ["pyright", "--pythonpath", sys.executable, str(mistakes)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    lines = {int(number) for number in re.findall(rf"{re.escape(str(mistakes))}:(\d+):\d+ - error", wrong.stdout)}
    assert lines == set(expected_mistakes()), wrong.stdout
