"""Command line: ``python -m aclip.testing [--host H] [--grpc-port P] [--out-of-order] [--token T]``.

Prints one line per URL (``grpc://127.0.0.1:51000``), then serves until SIGINT or SIGTERM and exits 0.
Exits 1 with a message on stderr when it cannot listen (a port in use, say).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import anyio

from aclip.testing._server import ReferenceServer

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m aclip.testing",
        description="Serve the aclip reference CLIP server (deterministic test encoder, Jina protocol).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--grpc-port", type=int, default=51000, help="gRPC port, 0 for a free one (%(default)s)")
    parser.add_argument("--out-of-order", action="store_true", help="answer each stream's requests in swapped pairs")
    parser.add_argument("--token", default=None, help="require this value in the 'authorization' metadata")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default: %(default)s)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    async with ReferenceServer(args.host, args.grpc_port, out_of_order=args.out_of_order, token=args.token) as server:
        # Catch the signals before announcing the URLs: a caller may signal as soon as it has read them.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            for url in server.urls.values():
                print(url)
            sys.stdout.flush()
            async for signum in signals:
                logging.getLogger("aclip.testing").info("%s received, stopping", signal.Signals(signum).name)
                break


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status.

    Example::

        $ python -m aclip.testing --grpc-port 0
        grpc://127.0.0.1:40731
    """
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        anyio.run(_serve, args)
    except OSError as exc:  # most often: the port is in use
        print(f"python -m aclip.testing: cannot serve on {args.host}:{args.grpc_port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
