"""The ``aclip`` command line's parser: commands, their arguments and options (see :mod:`aclip._cli`)."""

from __future__ import annotations

import argparse

from ._cli_commands import DEFAULT_SERVER, SERVER_ENVIRONMENT_VARIABLE

__all__ = ["build_parser"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def _connection_options(*, with_server: bool) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("connection")
    if with_server:
        group.add_argument(
            "--server",
            "-s",
            metavar="URL",
            default=None,
            help=f"the server (default: ${SERVER_ENVIRONMENT_VARIABLE}, else {DEFAULT_SERVER})",
        )
        group.add_argument(
            "--timeout", type=_positive_float, default=None, metavar="SECONDS", help="per request (default 120)"
        )
    group.add_argument("--token", default=None, help="auth token (default: $CLIP_AUTH_TOKEN)")
    group.add_argument("--ca-file", default=None, metavar="PEM", help="CA certificates to verify a TLS server with")
    return options


def _call_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("requests")
    group.add_argument("--batch-size", type=_positive_int, default=8, metavar="N", help="inputs per request (8)")
    group.add_argument("--prefetch", type=_positive_int, default=100, metavar="N", help="requests in flight (100)")
    group.add_argument("--progress", action="store_true", help="show progress bars on stderr (needs aclip[rich])")
    return options


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="a sentence, an image path or a quoted glob")
    parser.add_argument(
        "--file", "-f", action="append", metavar="FILE", help="one input per line (-: standard input); repeatable"
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="aclip",
        description="A client for CLIP-as-service servers.",
        epilog="aclip COMMAND --help describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"aclip {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    client = [_connection_options(with_server=True), _call_options()]

    encode = commands.add_parser("encode", parents=client, help="embed sentences and images")
    _add_inputs(encode)
    encode.add_argument(
        "--output", "-o", metavar="OUT", help="OUT.npy (numpy) or OUT.jsonl (JSON lines); default: JSON lines on stdout"
    )

    rank = commands.add_parser("rank", parents=client, help="rank candidates against a query, best first")
    rank.add_argument("query", metavar="QUERY", help="a sentence or an image path")
    rank.add_argument("candidates", nargs="+", metavar="CANDIDATE", help="sentences, image paths or quoted globs")
    rank.add_argument("--json", action="store_true", help="print one JSON object")

    index = commands.add_parser("index", parents=client, help="embed inputs and store them in the server's index")
    _add_inputs(index)

    search = commands.add_parser("search", parents=client, help="find the indexed documents nearest to a query")
    search.add_argument("query", metavar="QUERY", help="a sentence or an image path")
    search.add_argument("--limit", "-n", type=_positive_int, default=10, metavar="N", help="matches to show (10)")
    search.add_argument("--json", action="store_true", help="print one JSON object")

    profile = commands.add_parser(
        "profile", parents=[_connection_options(with_server=True)], help="time one request, print where time went"
    )
    profile.add_argument("content", nargs="?", default="", metavar="CONTENT", help="a sentence or an image path")

    ping = commands.add_parser(
        "ping", parents=[_connection_options(with_server=False)], help="check that servers are ready"
    )
    ping.add_argument("urls", nargs="+", metavar="URL", help="grpc://, http://, ws:// (or TLS forms) URL")
    ping.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")

    commands.add_parser(
        "serve",
        add_help=False,
        help="run the reference server (options of python -m aclip.testing; aclip serve --help lists them)",
    )
    return parser
