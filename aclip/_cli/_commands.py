"""What each ``aclip`` command does once its command line is parsed (see :mod:`aclip._cli` for the usage).

One function per command, named as the command: it takes the parsed options, prints its results on stdout
and returns whether all went well (False only when ``ping`` finds a server not ready). Errors propagate
as exceptions, which :func:`aclip._cli.main` turns into one line on stderr and an exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
from typing import Any, ContextManager, Dict, List, Optional

from .._engine.inputs import classify_string
from .._models import Document, Kind
from .._sync import Client
from ._files import UsageError, gather_inputs, one_input, output_format, write_embeddings
from ._parser import DEFAULT_SERVER, SERVER_ENVIRONMENT_VARIABLE


def _client(options: argparse.Namespace, url: Optional[str] = None) -> Client:
    """A client of ``url`` (default: ``--server``, else ``$ACLIP_SERVER``, else the default server)."""
    server = url or options.server or os.environ.get(SERVER_ENVIRONMENT_VARIABLE) or DEFAULT_SERVER
    token: Optional[str] = options.token
    credential = {"Authorization": token} if token else None  # None: the client reads $CLIP_AUTH_TOKEN
    return Client(server, credential=credential, ca_file=options.ca_file, timeout=options.timeout)


def _progress(options: argparse.Namespace) -> ContextManager[None]:
    """With ``--progress``, the calls draw their bars on stderr, so that stdout keeps only the results."""
    if not options.progress:
        return contextlib.nullcontext()
    if importlib.util.find_spec("rich") is None:
        raise UsageError("--progress draws with rich, which is not installed: pip install 'aclip[rich]'")
    from .._display import drawing_on

    return drawing_on(sys.stderr)


def _document(value: str, **fields: Any) -> Document:
    """The Document a string stands for, as the client reads strings: a sentence, or an image by its uri."""
    if classify_string(value).kind is Kind.TEXT:
        return Document(text=value, **fields)
    return Document(uri=value, **fields)


def _oneline(value: Optional[str]) -> str:
    return (value or "").replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def ping(options: argparse.Namespace) -> bool:
    """``aclip ping [URL...]``: the readiness of each URL and ``--server`` (neither: the default server)."""
    urls: List[Optional[str]] = [*options.urls, options.server] if options.server else options.urls
    ready = True
    for url in urls or [None]:
        started = time.perf_counter()
        with _client(options, url) as client:
            [reason] = client.readiness(timeout=options.timeout)
        elapsed = (time.perf_counter() - started) * 1000
        print(f"{client.server}: " + (f"ready ({elapsed:.1f} ms)" if reason is None else f"not ready: {reason}"))
        ready = ready and reason is None
    return ready


def encode(options: argparse.Namespace) -> bool:
    """``aclip encode INPUT...``: embeddings to ``--output`` (.npy or JSON lines) or to stdout."""
    output_format(options.output)  # a bad --output name fails before anything is sent
    inputs = gather_inputs(options.inputs, options.file)
    with _client(options) as client, _progress(options):
        vectors = client.encode(
            inputs, batch_size=options.batch_size, prefetch=options.prefetch, show_progress=options.progress
        )
    written = write_embeddings(inputs, vectors, options.output)
    if written is not None:
        rows, dim = vectors.shape
        print(f"wrote {rows} embeddings of {dim} dimensions to {written}")
    return True


def rank(options: argparse.Namespace) -> bool:
    """``aclip rank QUERY CANDIDATE...``: the candidates by clip_score, best first."""
    query = one_input(options.query, "the query")
    candidates = gather_inputs(options.candidates)
    root = _document(query, matches=[_document(c, id=str(i)) for i, c in enumerate(candidates)])
    with _client(options) as client, _progress(options):
        [ranked] = client.rank(
            [root], batch_size=options.batch_size, prefetch=options.prefetch, show_progress=options.progress
        )
    rows: List[Dict[str, Any]] = []
    for match in ranked.matches:
        position = int(match.id) if match.id.isdigit() else -1
        candidate = candidates[position] if 0 <= position < len(candidates) else (match.text or match.uri or match.id)
        scores = {name: match.scores[name].value for name in ("clip_score", "clip_score_cosine")}
        rows.append({"candidate": candidate, **scores})
    if options.json:
        print(json.dumps({"query": query, "matches": rows}))
        return True
    print(f"{'clip_score':>10}  {'cosine':>9}  candidate")
    for row in rows:
        print(f"{row['clip_score']:>10.6f}  {row['clip_score_cosine']:>9.6f}  {_oneline(row['candidate'])}")
    return True


def index(options: argparse.Namespace) -> bool:
    """``aclip index INPUT...``: store the inputs in the server's index; prints how many."""
    inputs = gather_inputs(options.inputs, options.file)
    with _client(options) as client, _progress(options):
        indexed = client.index(
            inputs, batch_size=options.batch_size, prefetch=options.prefetch, show_progress=options.progress
        )
    print(f"indexed {len(indexed)} {'input' if len(indexed) == 1 else 'inputs'}")
    return True


def search(options: argparse.Namespace) -> bool:
    """``aclip search QUERY``: the nearest indexed documents, nearest first, with their cosine distance."""
    query = one_input(options.query, "the query")
    with _client(options) as client, _progress(options):
        [found] = client.search(
            [query],
            limit=options.limit,
            batch_size=options.batch_size,
            prefetch=options.prefetch,
            show_progress=options.progress,
        )
    rows: List[Dict[str, Any]] = []
    for match in found.matches:
        score = match.scores.get("cosine")
        rows.append(
            {"id": match.id, "text": match.text, "uri": match.uri, "cosine": None if score is None else score.value}
        )
    if options.json:
        print(json.dumps({"query": query, "matches": rows}))
        return True
    print(f"{'distance':>9}  match" if rows else "no matches (is the index empty?)")
    for row in rows:
        distance = "" if row["cosine"] is None else f"{row['cosine']:.6f}"
        print(f"{distance:>9}  {_oneline(row['text'] if row['text'] is not None else row['uri'] or row['id'])}")
    return True


def profile(options: argparse.Namespace) -> bool:
    """``aclip profile [CONTENT]``: time one request and print where the time went."""
    content = one_input(options.content, "the content") if options.content else ""
    with _client(options) as client:
        client.profile(content, show=True)
    return True
