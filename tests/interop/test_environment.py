"""The interop environment is the one these tests are written for, and importing it stays offline."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import pytest

from tests.interop.support import OFFLINE_ENVIRONMENT, import_upstream

jina = import_upstream("jina")
docarray = import_upstream("docarray")
clip_client = import_upstream("clip_client")
pydantic = import_upstream("pydantic")

pytestmark = pytest.mark.interop


def test_the_upstream_stack_is_the_generation_aclip_speaks_to() -> None:
    # jina 3 with docarray v1 and pydantic 1: the stack CLIP-as-service servers and clip-client run on.
    assert jina.__version__.startswith("3."), jina.__version__
    assert docarray.__version__.startswith("0."), docarray.__version__
    assert pydantic.VERSION.startswith("1."), pydantic.VERSION
    assert clip_client.__version__.startswith("0."), clip_client.__version__


def test_importing_the_stack_with_the_offline_switches_reaches_for_no_host() -> None:
    """With OFFLINE_ENVIRONMENT set, importing jina, docarray and clip_client looks up and connects to nothing.

    (Without NO_VERSION_CHECK, importing clip_client looks up pypi.python.org from a background thread.)
    """
    code = textwrap.dedent(
        """
        import sys
        import threading

        outbound = []

        def audit(event, args):
            if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"):
                outbound.append(f"{event} {args!r}"[:200])

        sys.addaudithook(audit)
        import clip_client, docarray, jina

        for thread in threading.enumerate():  # background version checks, if any, finish first
            if thread is not threading.current_thread():
                thread.join(timeout=10)
        print(repr(outbound))
        """
    )
    environment = {**os.environ, **OFFLINE_ENVIRONMENT}
    finished = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=90, check=False
    )
    assert finished.returncode == 0, finished.stderr
    assert ast.literal_eval(finished.stdout.strip().splitlines()[-1]) == []
