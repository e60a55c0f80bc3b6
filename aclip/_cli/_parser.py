"""The command line's grammar: each command, its arguments and options, their defaults (see :mod:`aclip._cli`).

Defaults come from :mod:`aclip._config`, as the client's do. This module imports neither numpy nor
anyio, so that ``aclip --help`` and ``aclip --version`` answer at once.
"""

from __future__ import annotations

import argparse
from typing import Callable, List, Union

from .._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PREFETCH,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_TIMEOUT,
    TOKEN_ENVIRONMENT_VARIABLE,
)

#: The environment variable ``--server`` defaults to, and the URL used when it is not set either.
SERVER_ENVIRONMENT_VARIABLE = "ACLIP_SERVER"
DEFAULT_SERVER = "grpc://127.0.0.1:51000"


def _more_than_zero(number: Callable[[str], Union[int, float]]) -> Callable[[str], Union[int, float]]:
    """An argparse ``type``: a number (``int`` or ``float``) that must be more than 0."""

    def parse(text: str) -> Union[int, float]:
        try:
            value = number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{' whole' if number is int else ''} number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
        return value

    return parse


_COUNT, _SECONDS = _more_than_zero(int), _more_than_zero(float)


def _connection(timeout: float, waits_for: str) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("connection")
    default_server = f"${SERVER_ENVIRONMENT_VARIABLE}, else {DEFAULT_SERVER}"
    group.add_argument("--server", "-s", metavar="URL", help=f"the server (default: {default_server})")
    group.add_argument(
        "--timeout", type=_SECONDS, default=timeout, metavar="SECONDS", help=f"{waits_for} (default %(default)g)"
    )
    group.add_argument("--token", help=f"auth token (default: ${TOKEN_ENVIRONMENT_VARIABLE})")
    group.add_argument("--ca-file", metavar="PEM", help="CA certificates to verify a TLS server with")
    return options


def _requests() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("requests")
    group.add_argument(
        "--batch-size", type=_COUNT, default=DEFAULT_BATCH_SIZE, metavar="N", help="inputs per request (%(default)s)"
    )
    group.add_argument(
        "--prefetch", type=_COUNT, default=DEFAULT_PREFETCH, metavar="N", help="requests in flight (%(default)s)"
    )
    group.add_argument("--progress", action="store_true", help="show progress bars on stderr (needs aclip[rich])")
    return options


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="a sentence, an image path or a quoted glob")
    parser.add_argument(
        "--file", "-f", action="append", metavar="FILE", help="one input per line (-: standard input); repeatable"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``aclip`` parser; ``parse_known_args`` leaves ``aclip serve``'s options to the reference server."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="aclip",
        description="A client for CLIP-as-service servers.",
        epilog="aclip COMMAND --help describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"aclip {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection = _connection(DEFAULT_TIMEOUT, "per request")
    client: List[argparse.ArgumentParser] = [connection, _requests()]
    add = commands.add_parser

    encode = add("encode", parents=client, help="embed sentences and images")
    _add_inputs(encode)
    encode.add_argument(
        "--output", "-o", metavar="OUT", help="OUT.npy (numpy) or OUT.jsonl (JSON lines); default: JSON lines on stdout"
    )

    rank = add("rank", parents=client, help="rank candidates against a query, best first")
    rank.add_argument("query", metavar="QUERY", help="a sentence or an image path")
    rank.add_argument("candidates", nargs="+", metavar="CANDIDATE", help="sentences, image paths or quoted globs")
    rank.add_argument("--json", action="store_true", help="print one JSON object")

    _add_inputs(add("index", parents=client, help="embed inputs and store them in the server's index"))

    search = add("search", parents=client, help="find the indexed documents nearest to a query")
    search.add_argument("query", metavar="QUERY", help="a sentence or an image path")
    search.add_argument("--limit", "-n", type=_COUNT, default=10, metavar="N", help="matches to show (%(default)s)")
    search.add_argument("--json", action="store_true", help="print one JSON object")

    profile = add("profile", parents=[connection], help="time one request, print where time went")
    profile.add_argument("content", nargs="?", default="", metavar="CONTENT", help="a sentence or an image path")

    ready = _connection(DEFAULT_READY_TIMEOUT, "for each answer")
    ping = add("ping", parents=[ready], help="check that servers are ready")
    ping.add_argument(
        "urls", nargs="*", metavar="URL", help="servers to ask besides --server (neither: the default server)"
    )

    help_serve = "run the reference server (options of python -m aclip.testing; aclip serve --help lists them)"
    add("serve", add_help=False, help=help_serve)
    return parser
