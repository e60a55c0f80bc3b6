"""Serve :class:`~tests.interop.clip_test_executor.ClipTestExecutor` behind a real Jina gateway on 127.0.0.1.

One Flow whose gateway speaks gRPC, HTTP and WebSocket at once, each on its own port; the executor runs in
its own process as CLIP-as-service Flows do. Once the Flow is ready this prints one line per protocol,
``READY_PREFIX`` and a URL (grpc, http, ws; jina's own banner goes to the same standard output), and then
waits; it stops when its standard input closes or it is sent SIGTERM once ready, and exits by itself after
``--lifetime`` seconds so a forgotten one cannot linger. Jina starts more processes (gateway, executor):
start this one in a session of its own and end the whole process group if it does not stop in time. Run
it with the interop environment's Python::

    .venv-interop/bin/python -m tests.interop.gateway --ports 0 0 0

Port 0 means "a free one": the ports are picked here, before jina starts.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from typing import List

from tests.interop.support import go_offline

go_offline()

SCHEMES = ("grpc", "http", "ws")
#: Starts each line that names a URL the gateway listens on.
READY_PREFIX = "listening: "


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, nargs=3, default=[0, 0, 0], help="grpc, http and websocket ports")
    parser.add_argument("--lifetime", type=float, default=1800.0, help="exit after this many seconds")
    options = parser.parse_args(argv)
    ports = [port or free_port() for port in options.ports]

    from jina import Flow  # after go_offline(): importing jina may reach for the network otherwise

    from tests.interop.aclip_executor import AclipEncoder
    from tests.interop.clip_test_executor import ClipTestExecutor

    flow = Flow(protocol=["grpc", "http", "websocket"], port=ports, host="127.0.0.1")
    flow = flow.add(uses=ClipTestExecutor, name="clip_t")  # the executor listens on 127.0.0.1 too
    # /aclip-encode: an Executor that calls this gateway's /encode through aclip (upstream users write these).
    flow = flow.add(uses=AclipEncoder, uses_with={"server": f"grpc://127.0.0.1:{ports[0]}"}, name="aclip_in_jina")
    stop = threading.Event()
    with flow:
        # Only now: a thread blocked reading stdin while jina forks its processes would deadlock them (the
        # forked child closes sys.stdin, whose lock the thread holds).
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # from now on, a clean stop of the Flow
        for scheme, port in zip(SCHEMES, ports):
            print(f"{READY_PREFIX}{scheme}://127.0.0.1:{port}", flush=True)
        stop.wait(options.lifetime)
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
