"""The ``aclip`` command line (also ``python -m aclip``).

Commands:

- ``aclip ping URL [URL ...]``: ask each server's readiness probe; one line per server, exit status 0
  when all are ready, 1 when one is not.

Errors are one line on standard error and a non-zero exit status (2 for a bad command line or option),
never a traceback.

Example::

    $ aclip ping grpc://127.0.0.1:51000 --timeout 2
    grpc://127.0.0.1:51000: ready (4.2 ms)
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional, Sequence

__all__ = ["main"]

EXIT_OK, EXIT_NOT_READY, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="aclip", description="A client for CLIP-as-service servers.")
    parser.add_argument("--version", action="version", version=f"aclip {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ping = commands.add_parser("ping", help="check that servers are ready (their gateway's dry run)")
    ping.add_argument("urls", nargs="+", metavar="URL", help="grpc://, http://, ws:// (or TLS forms) URL")
    ping.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    _add_connection_options(ping)
    return parser


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", default=None, help="auth token (default: $CLIP_AUTH_TOKEN)")
    parser.add_argument("--ca-file", default=None, help="CA certificates (PEM) to verify a TLS server with")


def _ping(options: argparse.Namespace) -> int:
    from . import Client

    credential = {"Authorization": options.token} if options.token else None
    tls = {"ca_file": options.ca_file} if options.ca_file else {}
    status = EXIT_OK
    for url in options.urls:
        started = time.perf_counter()
        with Client(url, credential=credential, **tls) as client:
            [reason] = client.readiness(timeout=options.timeout)
        elapsed = (time.perf_counter() - started) * 1000
        if reason is None:
            print(f"{client.server}: ready ({elapsed:.1f} ms)")
        else:
            print(f"{client.server}: not ready: {reason}")
            status = EXIT_NOT_READY
    return status


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Example::

        main(["ping", "grpc://127.0.0.1:51000"])   # 0 when the server is ready
    """
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    options = parser.parse_args(args)
    try:
        if options.command == "ping":
            return _ping(options)
    except (ValueError, TypeError, OSError) as err:  # bad URLs, options or files: one line, no traceback
        print(f"aclip: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("aclip: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {options.command!r}")
    return EXIT_USAGE  # not reached: parser.error exits
