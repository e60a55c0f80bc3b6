"""The public surface: __all__ is honest and sorted, and importing aclip stays light."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import aclip


def test_all_is_sorted_and_every_name_exists() -> None:
    assert list(aclip.__all__) == sorted(aclip.__all__)
    for name in aclip.__all__:
        assert hasattr(aclip, name), name
    public = {
        name for name, value in vars(aclip).items() if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public <= set(aclip.__all__), public - set(aclip.__all__)


def test_errors_form_one_tree() -> None:
    assert issubclass(aclip.InputError, ValueError)
    assert issubclass(aclip.InputTypeError, TypeError) and issubclass(aclip.InputTypeError, aclip.InputError)
    for name in aclip.__all__:
        value = getattr(aclip, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, aclip.AclipError), name


def test_import_does_not_load_transports() -> None:
    code = (
        "import sys, aclip; "
        "print(','.join(m for m in ('grpclib', 'aiohttp', 'google.protobuf', 'h2') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == ""


def test_import_aclip_loads_no_heavy_library() -> None:
    """``import aclip`` stays fast (the benchmark measures it): numpy, anyio and the transports load on use."""
    import subprocess
    import sys

    code = (
        "import sys, aclip; heavy = ('numpy', 'anyio', 'grpclib', 'aiohttp', 'google.protobuf', 'asyncio');"
        "print(sorted(m for m in heavy if m in sys.modules)); aclip.Client; print('numpy' in sys.modules)"
    )
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded, numpy_after_client = finished.stdout.splitlines()
    assert loaded == "[]"
    assert numpy_after_client == "True"  # asking for a client loads what it needs
