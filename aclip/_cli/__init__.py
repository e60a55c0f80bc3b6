"""The ``aclip`` command line (also ``python -m aclip``): :func:`main` runs a command, and gives its exit status.

Commands (``aclip COMMAND --help`` lists each one's options):

``aclip encode INPUT... [--file F] [--output OUT]``
    Embed sentences and images. An input is a sentence or an image, detected as ``Client.encode`` detects
    strings (a name ending in an image extension is an image file; ``http(s)://`` URLs and ``data:image/``
    URIs are images too). A quoted wildcard image path is a glob, expanded by aclip in sorted order
    (``'images/*.png'``, ``'photos/**/*.jpg'``). ``--file F`` adds one input per line of F (``-``: standard
    input; blank lines are skipped). An image path or glob that names no file is an error before anything
    is sent. ``--output out.npy`` writes a numpy float32 array, one row per input in input order;
    ``--output out.jsonl`` (or no ``--output``: standard output) writes JSON lines
    ``{"input": ..., "embedding": [...]}``::

        $ aclip encode "a photo of a cat" 'images/*.png' --output vectors.npy
        wrote 3 embeddings of 512 dimensions to vectors.npy
        $ find photos -name '*.jpg' | aclip encode --file - > vectors.jsonl

``aclip rank QUERY CANDIDATE...``
    Score each candidate against the query (sentences and images, globs too) and print them best first,
    with ``clip_score`` (softmax over the candidates) and ``clip_score_cosine``; ``--json`` for one JSON
    object ``{"query": ..., "matches": [{"candidate", "clip_score", "clip_score_cosine"}, ...]}``::

        $ aclip rank photo.png "a cat" "a dog" "a room"
        clip_score     cosine  candidate
          0.973205   0.312210  a cat
          ...

``aclip index INPUT... [--file F]``
    Embed the inputs (as for ``encode``) and store them in the server's index; prints how many::

        $ aclip index "she smiled, with pain" 'images/*.png'
        indexed 3 inputs

``aclip search QUERY [--limit N]``
    The ``N`` (default 10) indexed documents nearest to the query, nearest first: the cosine distance
    (lower is closer) and the document's text or uri; ``--json`` for ``{"query": ..., "matches": [{"id",
    "text", "uri", "cosine"}, ...]}``::

        $ aclip search "smile" --limit 2
         distance  match
         0.123456  she smiled, with pain
         ...

``aclip profile [CONTENT]``
    Send one request (empty, or CONTENT: a sentence or an image) and print where its time went, as a tree
    (Roundtrip, Client-server network, Server, Gateway-CLIP network, CLIP model)::

        $ aclip profile "hello, world"

``aclip ping [URL...]``
    Ask the readiness probe of each URL and of ``--server`` (neither: the default server); one line per
    server, exit status 1 when one is not ready::

        $ aclip ping -s grpc://127.0.0.1:51000 --timeout 2
        grpc://127.0.0.1:51000: ready (4.2 ms)

``aclip serve [OPTIONS]``
    Run the reference server (:mod:`aclip.testing`, a deterministic test encoder, not a CLIP model) until
    interrupted, with the options of ``python -m aclip.testing``: ``--host``, ``--grpc-port``,
    ``--http-port``, ``--websocket-port`` (0: a free port), ``--protocols``, ``--token``, ``--certfile``,
    ``--keyfile``, ``--client-ca-file``, ... It prints its URLs, one a line, then serves::

        $ aclip serve --grpc-port 51000 --http-port 51001 --websocket-port 51002
        grpc://127.0.0.1:51000
        ...

Options of the commands that talk to a server (all but serve):

- ``--server URL``: the server (default: the ``ACLIP_SERVER`` environment variable, else
  ``grpc://127.0.0.1:51000``); grpc://, http://, ws:// or their TLS forms grpcs://, https://, wss://.
- ``--token TOKEN``: the auth token (default: the ``CLIP_AUTH_TOKEN`` environment variable).
- ``--timeout SECONDS``: how long each request may wait for its answer (default 120; ping: 5).
- ``--ca-file PEM``: CA certificates to verify a TLS server with (default: the system's).
- encode, rank, index and search also take ``--batch-size N`` (default 8), ``--prefetch N`` (requests in
  flight, default 100) and ``--progress`` (progress bars on stderr; needs ``aclip[rich]``).

Exit status: 0 on success; 1 when the client or server fails (an ``aclip.AclipError``: the server cannot
be reached, refuses the token, reports an error, ...) or ``ping`` finds a server not ready; 2 for a bad
command line, a missing or unreadable file, or an input that cannot be sent; 130 when interrupted. Errors
are one line on standard error (``aclip: error: ...``; a malformed command line also gets its usage line
first), never a traceback.

The package: :mod:`._parser` (the commands and their options; it imports neither numpy nor anyio, so
``aclip --help`` and ``aclip --version`` answer at once), :mod:`._commands` (one function per command) and
:mod:`._files` (inputs from arguments, globs and files; embeddings to .npy or JSON lines). ``main`` loads
the last two, and the client with them, only when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Callable, Optional, Sequence

from .._exceptions import AclipError, InputError
from ._parser import build_parser

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Example::

        main(["ping", "grpc://127.0.0.1:51000"])   # 0 when the server is ready
        main(["encode", "a cat", "--output", "cat.npy", "--server", "grpc://127.0.0.1:51000"])
    """
    parser = build_parser()
    try:
        options, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
        if options.command == "serve":  # the reference server's own command line takes the rest
            from ..testing.__main__ import main as serve

            return serve(extra, prog="aclip serve")
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        from . import _commands  # the client, numpy and anyio: only now that a command runs

        command: Callable[[argparse.Namespace], bool] = getattr(_commands, options.command)
        return EXIT_OK if command(options) else EXIT_FAILED
    except SystemExit as exit_:  # --help, --version, or a usage error (which argparse has printed)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except InputError as err:  # an input the client cannot send (also an AclipError)
        return _fail(err, EXIT_USAGE)
    except AclipError as err:  # the server is down, refused the token, failed, ...
        return _fail(err, EXIT_FAILED)
    except BrokenPipeError:  # e.g. `aclip encode ... | head`: the reader left; say nothing more, and point
        with contextlib.suppress(OSError, ValueError, AttributeError):  # stdout at /dev/null for the final flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except (ValueError, TypeError, OSError, ImportError) as err:  # bad options, URLs or files (UsageError too)
        return _fail(err, EXIT_USAGE)
    except KeyboardInterrupt:
        print("aclip: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug: still one line, with the exception's type to report
        return _fail(err, EXIT_FAILED, f"unexpected {type(err).__name__}: ")


def _fail(error: BaseException, status: int, prefix: str = "") -> int:
    text = " ".join(str(error).split()) or type(error).__name__
    print(f"aclip: error: {prefix}{text}", file=sys.stderr)
    return status
