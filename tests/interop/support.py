"""Shared by the interop tests: the switches that keep the upstream stack offline, and importing it or skipping.

The interop tests run in ``.venv-interop`` (``bash scripts/interop_env.sh``), which holds jina 3.27,
docarray 0.21 and clip-client 0.8 beside aclip. In aclip's own ``.venv`` none of them is installed, and every
interop test module is reported as skipped.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

#: Without these, importing jina or docarray sends telemetry, checks PyPI for a newer version, or prints a
#: survey link. Set before the first import of either (tests/interop/conftest.py sets them at collection).
OFFLINE_ENVIRONMENT = {"JINA_OPTOUT_TELEMETRY": "1", "NO_VERSION_CHECK": "1", "JINA_HIDE_SURVEY": "1"}

PROTOCOLS = ("grpc", "http", "websocket")

_HOW_TO_GET_IT = "build .venv-interop with scripts/interop_env.sh and run the interop suite with its Python"


def go_offline() -> None:
    """Set :data:`OFFLINE_ENVIRONMENT` in this process (and so in its subprocesses)."""
    os.environ.update(OFFLINE_ENVIRONMENT)


def import_upstream(name: str) -> ModuleType:
    """Import jina, docarray or clip_client offline, or skip the calling test module when it is not installed."""
    go_offline()
    return pytest.importorskip(name, reason=f"{name} is not installed: {_HOW_TO_GET_IT}")


def import_docarray_v1() -> ModuleType:
    """docarray, skipping the calling test module unless it is docarray v1 (0.x), the API these tests use."""
    docarray = import_upstream("docarray")
    if not docarray.__version__.startswith("0."):
        pytest.skip(f"needs docarray v1 (0.x), found {docarray.__version__}: {_HOW_TO_GET_IT}", allow_module_level=True)
    return docarray
