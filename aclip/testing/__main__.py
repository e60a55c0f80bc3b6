"""Command line: ``python -m aclip.testing [--host H] [--grpc-port P] [--http-port P] [--websocket-port P]
[--protocols grpc,http,websocket] [--out-of-order] [--token T] [--certfile PEM --keyfile PEM
[--client-ca-file PEM]] [--fail-every N] [--close-after N] [--never-answer] [--fail-status S]
[--grpc-status NAME]``.

Prints one line per URL (``grpc://127.0.0.1:51000``, ``http://127.0.0.1:51001``, ``ws://127.0.0.1:51002``;
``grpcs``/``https``/``wss`` with TLS), then serves until SIGINT or SIGTERM and exits 0. Exits 1 with a
message on stderr when it cannot serve (a port in use, an unreadable certificate, say).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import anyio

from aclip.testing._server import PROTOCOLS, ReferenceServer

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None, prog: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the aclip reference CLIP server (deterministic test encoder, Jina protocol).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--grpc-port", type=int, default=51000, help="gRPC port, 0 for a free one (%(default)s)")
    parser.add_argument("--http-port", type=int, default=51001, help="HTTP port, 0 for a free one (%(default)s)")
    parser.add_argument(
        "--websocket-port", type=int, default=51002, help="WebSocket port, 0 for a free one (%(default)s)"
    )
    parser.add_argument(
        "--protocols", default=",".join(PROTOCOLS), help="comma-separated protocols to serve (%(default)s)"
    )
    parser.add_argument(
        "--out-of-order", action="store_true", help="answer each gRPC/WebSocket stream's requests in swapped pairs"
    )
    parser.add_argument("--token", default=None, help="require this token (gRPC metadata / HTTP header authorization)")
    parser.add_argument("--certfile", default=None, help="PEM certificate chain: serve TLS on every protocol")
    parser.add_argument("--keyfile", default=None, help="PEM private key of --certfile (if not inside it)")
    parser.add_argument("--client-ca-file", default=None, help="PEM CA: require client certificates it signed")
    faults = parser.add_argument_group("faults (for clients' failure tests; see aclip.testing.ReferenceServer)")
    faults.add_argument(
        "--fail-every", type=int, default=0, metavar="N", help="every N-th request is an executor error"
    )
    faults.add_argument(
        "--close-after", type=int, default=0, metavar="N", help="drop a stream/connection after N responses"
    )
    faults.add_argument("--never-answer", action="store_true", help="read requests, never answer them")
    faults.add_argument("--fail-status", type=int, default=0, metavar="S", help="HTTP: answer every POST with S")
    faults.add_argument("--grpc-status", default="", metavar="NAME", help="gRPC: end every call with NAME")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: %(default)s)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    server = ReferenceServer(
        args.host,
        args.grpc_port,
        http_port=args.http_port,
        websocket_port=args.websocket_port,
        protocols=args.protocols,
        out_of_order=args.out_of_order,
        token=args.token,
        certfile=args.certfile,
        keyfile=args.keyfile,
        client_ca_file=args.client_ca_file,
        fail_every=args.fail_every,
        close_after=args.close_after,
        never_answer=args.never_answer,
        fail_status=args.fail_status,
        grpc_status=args.grpc_status,
    )
    async with server:
        # Catch the signals before announcing the URLs: a caller may signal as soon as it has read them.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            for url in server.urls.values():
                print(url)
            sys.stdout.flush()
            async for signum in signals:
                logging.getLogger("aclip.testing").info("%s received, stopping", signal.Signals(signum).name)
                break


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m aclip.testing") -> int:
    """Run the CLI (``prog`` names it in help and errors, e.g. ``aclip serve``); returns the exit status.

    Example::

        $ python -m aclip.testing --grpc-port 0 --http-port 0 --websocket-port 0
        grpc://127.0.0.1:40731
        http://127.0.0.1:40733
        ws://127.0.0.1:40735
    """
    args = _parse_args(argv, prog)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # hpack logs every HTTP/2 header at DEBUG, the gRPC authorization token included: never let it.
    logging.getLogger("hpack").setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))
    try:
        anyio.run(_serve, args)
    except (OSError, ValueError) as exc:  # most often: a port in use
        print(f"python -m aclip.testing: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
