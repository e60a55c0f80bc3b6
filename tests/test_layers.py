"""No import runs back up: the README's "How aclip is built" layers, checked on every import of the package.

Every ``import`` and ``from ... import`` of ``aclip/`` counts, the ones inside functions and under
``TYPE_CHECKING`` too (a lazy import is still a dependency). A module may import a module of a lower layer;
inside a package (``_engine``, ``_wire``, ``_transports``, ``_cli``) a module may import only the modules
listed after it. The one exception is ``__version__``, which the package root defines for every layer.
"""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "aclip"

#: From the top down: a module imports only modules of the layers below its own.
LAYERS: List[Tuple[str, ...]] = [
    ("aclip.__main__",),
    ("aclip._cli",),
    ("aclip.testing",),  # the reference server (aclip serve)
    ("aclip",),  # the public surface, loaded lazily
    ("aclip._sync",),
    ("aclip._client",),
    ("aclip._engine",),
    ("aclip._transports",),
    ("aclip._wire",),
    ("aclip._models", "aclip._deadline"),
    ("aclip._config", "aclip._display"),
    ("aclip._exceptions",),
    ("aclip._pb",),
]

#: Inside a package, from the top down: each module imports only the ones after it.
ORDER: Dict[str, List[str]] = {
    "aclip._engine": [
        *("__init__", "call", "stream", "loading", "fetch", "callbacks", "results", "batches", "inputs"),
        *("pool", "retry"),
    ],
    "aclip._wire": ["__init__", "formats", "json", "protobuf", "health", "status", "endpoints"],
    "aclip._transports": [
        *("__init__", "grpc", "websocket", "http", "memory", "_aiohttp", "_tasks"),
        *("_grpc_framing", "_closing", "_redirects", "base"),
    ],
    "aclip._cli": ["__init__", "_commands", "_files", "_parser"],
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> Iterator[Tuple[str, pathlib.Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_pb" not in path.parts:
            yield module_name(path), path


def imports_of(name: str, path: pathlib.Path) -> Set[str]:
    """The aclip modules ``name`` imports, wherever in the file the import is."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "aclip")
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names = [alias.name for alias in node.names]
            if target.split(".")[0] != "aclip" or (target == "aclip" and names == ["__version__"]):
                continue  # not ours; or the version, which the root defines for every layer
            for imported in names:  # ``from . import x`` imports the submodule x, when there is one
                found.add(f"{target}.{imported}" if _is_module(f"{target}.{imported}") else target)
    return found - {name}


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def layer_of(name: str) -> Tuple[int, str]:
    """The index of the layer a module belongs to, and the package (or module) that puts it there."""
    best = (-1, "")
    for index, members in enumerate(LAYERS):
        for member in members:
            if (name == member or name.startswith(member + ".")) and len(member) > len(best[1]):
                best = (index, member)
    assert best[0] >= 0, f"{name} is in no layer: add it to LAYERS"
    return best


def problem(name: str, target: str) -> Optional[str]:
    """Why ``name`` may not import ``target``; None when it may."""
    (layer, owner), (target_layer, target_owner) = layer_of(name), layer_of(target)
    if owner != target_owner:
        return None if target_layer > layer else f"{name} -> {target}: a layer may import only the layers below it"
    if owner not in ORDER:
        return None
    order = ORDER[owner]
    mine = "__init__" if name == owner else name.rsplit(".", 1)[-1]
    theirs = "__init__" if target == owner else target.rsplit(".", 1)[-1]
    if mine not in order or theirs not in order:
        return f"{name} -> {target}: add the module to ORDER[{owner!r}]"
    return None if order.index(theirs) > order.index(mine) else f"{name} -> {target}: runs back up inside {owner}"


def test_no_import_runs_back_up() -> None:
    found = [problem(name, target) for name, path in modules() for target in sorted(imports_of(name, path))]
    assert [reason for reason in found if reason] == []
    assert len(found) > 150  # the check saw the package's imports


def test_the_check_sees_lazy_imports_and_refuses_them(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lazy.py"
    path.write_text("def f():\n    from .._client import AsyncClient\n    from .. import __version__\n")
    assert imports_of("aclip._wire.lazy", path) == {"aclip._client"}
    assert problem("aclip._wire.lazy", "aclip._client") is not None
    assert problem("aclip._engine.results", "aclip._engine.callbacks") is not None  # inside a package, too
    assert problem("aclip._engine.callbacks", "aclip._engine.results") is None
    assert problem("aclip._client", "aclip._wire.protobuf") is None


@pytest.mark.parametrize("name", sorted(name for name, _ in modules()))
def test_every_module_has_a_layer(name: str) -> None:
    layer_of(name)
