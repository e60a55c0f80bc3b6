"""The wheel and the sdist that ``python -m build`` makes: what they hold, and that the wheel works alone."""

from __future__ import annotations

import email
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile
from typing import Iterator, Tuple

import pytest

import aclip

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[pathlib.Path, pathlib.Path]]:
    """(wheel, sdist), built from this checkout by ``python -m build`` (the sdist first, the wheel from it)."""
    pytest.importorskip("build", reason="python -m build needs the 'build' package (the test extra has it)")
    out = tmp_path_factory.mktemp("dist")
    finished = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    yield wheel, sdist


@pytest.mark.timeout(600)
def test_the_wheel_holds_the_package_and_its_metadata(dist: Tuple[pathlib.Path, pathlib.Path]) -> None:
    wheel, _ = dist
    assert wheel.name == f"aclip-{aclip.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"aclip-{aclip.__version__}.dist-info"
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    for needed in ("aclip/__init__.py", "aclip/py.typed", "aclip/_pb/jina_pb2.py", "aclip/_pb/jina_pb2.pyi"):
        assert needed in names
    assert "aclip/testing/__init__.py" in names  # the reference server ships, for users' own tests
    assert not any(name.startswith(("tests/", "scripts/")) for name in names)
    assert metadata["Name"] == "aclip" and metadata["Version"] == aclip.__version__
    assert metadata["Requires-Python"] == ">=3.10"
    required = {
        requirement.split(">")[0].split("<")[0].split("=")[0] for requirement in metadata.get_all("Requires-Dist")
    }
    assert {"aiohttp", "grpclib", "protobuf", "numpy", "anyio"} <= required
    assert "Programming Language :: Python :: 3.13" in metadata.get_all("Classifier")
    assert "aclip = aclip._cli:main" in entry_points


@pytest.mark.timeout(600)
def test_the_sdist_holds_the_schema_and_the_changelog(dist: Tuple[pathlib.Path, pathlib.Path]) -> None:
    _, sdist = dist
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "proto/aclip/_pb/jina.proto"):
        assert needed in names


@pytest.mark.timeout(600)
def test_the_installed_wheel_imports_and_runs_alone(
    dist: Tuple[pathlib.Path, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    """Installed on its own (this environment supplies the dependencies), away from the checkout."""
    wheel, _ = dist
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, timeout=300, capture_output=True)
    environment = {**os.environ, "PYTHONPATH": str(target)}
    code = "import aclip, aclip.testing; print(aclip.__version__, aclip.__file__)"
    finished = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 0, finished.stderr
    version, location = finished.stdout.split()
    assert version == aclip.__version__ and location.startswith(str(target))
    cli = subprocess.run(
        [sys.executable, "-m", "aclip", "--version"], cwd=tmp_path, env=environment, capture_output=True, text=True
    )
    assert cli.stdout.strip() == f"aclip {aclip.__version__}"
