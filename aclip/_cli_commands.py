"""What each ``aclip`` command does, once its command line is parsed (see :mod:`aclip._cli` for the usage).

Each ``run_*`` function takes the parsed options and returns the exit status; errors propagate as
exceptions, which :func:`aclip._cli.main` turns into one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence

from ._cli_inputs import UsageError, gather_inputs, one_input, output_format, write_embeddings
from ._document import Document, DocumentList
from ._inputs import Kind, classify_string
from ._sync import Client

__all__ = [
    "DEFAULT_SERVER",
    "SERVER_ENVIRONMENT_VARIABLE",
    "run_encode",
    "run_index",
    "run_ping",
    "run_profile",
    "run_rank",
    "run_search",
    "run_serve",
]

#: The environment variable ``--server`` defaults to, and the URL used when it is not set either.
SERVER_ENVIRONMENT_VARIABLE = "ACLIP_SERVER"
DEFAULT_SERVER = "grpc://127.0.0.1:51000"

EXIT_OK, EXIT_NOT_READY = 0, 1


def _credential(options: argparse.Namespace) -> Optional[Dict[str, str]]:
    token: Optional[str] = options.token
    return {"Authorization": token} if token else None  # None: the client reads $CLIP_AUTH_TOKEN


def _client(options: argparse.Namespace) -> Client:
    server: str = options.server or os.environ.get(SERVER_ENVIRONMENT_VARIABLE) or DEFAULT_SERVER
    extra: Dict[str, Any] = {}
    if options.ca_file:
        extra["ca_file"] = options.ca_file
    if options.timeout is not None:
        extra["timeout"] = options.timeout
    return Client(server, credential=_credential(options), **extra)


@contextmanager
def _progress(show: bool) -> Iterator[None]:
    """With ``--progress``, draw the bars on stderr, so that stdout keeps only the results."""
    if not show:
        yield
        return
    if importlib.util.find_spec("rich") is None:
        raise UsageError("--progress draws with rich, which is not installed: pip install 'aclip[rich]'")
    from rich.console import Console

    from . import _progress

    saved, _progress.console = _progress.console, Console(stderr=True)
    try:
        yield
    finally:
        _progress.console = saved


def _document(value: str, **fields: Any) -> Document:
    """The Document a string stands for, as the client reads strings: a sentence, or an image by its uri."""
    if classify_string(value).kind is Kind.TEXT:
        return Document(text=value, **fields)
    return Document(uri=value, **fields)


def _oneline(value: Optional[str]) -> str:
    return (value or "").replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def run_ping(options: argparse.Namespace) -> int:
    """``aclip ping URL...``: each server's readiness; 1 when one is not ready."""
    tls = {"ca_file": options.ca_file} if options.ca_file else {}
    status = EXIT_OK
    for url in options.urls:
        started = time.perf_counter()
        with Client(url, credential=_credential(options), **tls) as client:
            [reason] = client.readiness(timeout=options.timeout)
        elapsed = (time.perf_counter() - started) * 1000
        if reason is None:
            print(f"{client.server}: ready ({elapsed:.1f} ms)")
        else:
            print(f"{client.server}: not ready: {reason}")
            status = EXIT_NOT_READY
    return status


def run_encode(options: argparse.Namespace) -> int:
    """``aclip encode INPUT...``: embeddings to ``--output`` (.npy or JSON lines) or to stdout."""
    output: Optional[str] = options.output
    output_format(output)  # a bad --output name fails before anything is sent
    inputs = gather_inputs(options.inputs, options.file)
    with _client(options) as client, _progress(options.progress):
        vectors = client.encode(
            inputs, batch_size=options.batch_size, prefetch=options.prefetch, show_progress=options.progress
        )
    written = write_embeddings(inputs, vectors, output)
    if written is not None:
        rows, dim = vectors.shape
        print(f"wrote {rows} embeddings of {dim} dimensions to {written}")
    return EXIT_OK


def run_rank(options: argparse.Namespace) -> int:
    """``aclip rank QUERY CANDIDATE...``: the candidates by clip_score, best first."""
    query = one_input(options.query, "the query")
    candidates = gather_inputs(options.candidates)
    root = _document(query, matches=[_document(c, id=str(i)) for i, c in enumerate(candidates)])
    with _client(options) as client, _progress(options.progress):
        [ranked] = client.rank(
            [root], batch_size=options.batch_size, prefetch=options.prefetch, show_progress=options.progress
        )
    rows: List[Dict[str, Any]] = []
    for match in ranked.matches:
        position = int(match.id) if match.id.isdigit() else -1
        candidate = candidates[position] if 0 <= position < len(candidates) else (match.text or match.uri or match.id)
        rows.append(
            {
                "candidate": candidate,
                "clip_score": match.scores["clip_score"].value,
                "clip_score_cosine": match.scores["clip_score_cosine"].value,
            }
        )
    if options.json:
        print(json.dumps({"query": query, "matches": rows}))
        return EXIT_OK
    print(f"{'clip_score':>10}  {'cosine':>9}  candidate")
    for row in rows:
        print(f"{row['clip_score']:>10.6f}  {row['clip_score_cosine']:>9.6f}  {_oneline(row['candidate'])}")
    return EXIT_OK


def run_index(options: argparse.Namespace) -> int:
    """``aclip index INPUT...``: store the inputs in the server's index; prints how many."""
    inputs = gather_inputs(options.inputs, options.file)
    with _client(options) as client, _progress(options.progress):
        indexed = client.index(
            inputs, batch_size=options.batch_size, prefetch=options.prefetch, show_progress=options.progress
        )
    print(f"indexed {len(indexed)} {'input' if len(indexed) == 1 else 'inputs'}")
    return EXIT_OK


def _match_row(match: Document) -> Dict[str, Any]:
    score = match.scores.get("cosine")
    return {
        "id": match.id,
        "text": match.text,
        "uri": match.uri,
        "cosine": score.value if score is not None else None,
    }


def run_search(options: argparse.Namespace) -> int:
    """``aclip search QUERY``: the nearest indexed documents, nearest first, with their cosine distance."""
    query = one_input(options.query, "the query")
    with _client(options) as client, _progress(options.progress):
        found: DocumentList = client.search(
            [query],
            limit=options.limit,
            batch_size=options.batch_size,
            prefetch=options.prefetch,
            show_progress=options.progress,
        )
    rows: List[Dict[str, Any]] = [_match_row(match) for match in found[0].matches]
    if options.json:
        print(json.dumps({"query": query, "matches": rows}))
        return EXIT_OK
    if not rows:
        print("no matches (is the index empty?)")
    else:
        print(f"{'distance':>9}  match")
    for row in rows:
        distance = "" if row["cosine"] is None else f"{row['cosine']:.6f}"
        print(f"{distance:>9}  {_oneline(row['text'] if row['text'] is not None else row['uri'] or row['id'])}")
    return EXIT_OK


def run_profile(options: argparse.Namespace) -> int:
    """``aclip profile [CONTENT]``: time one request and print where the time went."""
    content = one_input(options.content, "the content") if options.content else ""
    with _client(options) as client:
        client.profile(content, show=True)
    return EXIT_OK


def run_serve(arguments: Sequence[str]) -> int:
    """``aclip serve [OPTIONS]``: the reference server, with the options of ``python -m aclip.testing``."""
    from .testing.__main__ import main as serve_main

    return serve_main(list(arguments), prog="aclip serve")
