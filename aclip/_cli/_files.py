"""The command line's inputs and outputs (see :mod:`aclip._cli`).

Inputs: each argument or ``--file`` line is a sentence or an image, detected as :class:`aclip.Client`
detects strings. An image path with a wildcard (``images/*.png``) is a glob, expanded here (sorted, ``**``
recursive); an image path or glob that names no file is a :class:`UsageError` before anything is sent.

Outputs: embeddings as a numpy ``.npy`` file (one row per input, in input order) or as JSON lines
(``{"input": ..., "embedding": [...]}``).
"""

from __future__ import annotations

import glob
import json
import os
import sys
from typing import Iterable, List, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from .._engine.inputs import classify_string
from .._models import Kind

_WILDCARDS = frozenset("*?[")
_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")


class UsageError(ValueError):
    """A bad command line, or a file it names that is missing: exit status 2."""


def _expand(argument: str) -> List[str]:
    """The inputs one argument stands for: itself, or the files its glob matches (sorted)."""
    item = classify_string(argument)
    if item.kind is not Kind.LOCAL_FILE:
        return [argument]
    path = item.payload
    assert isinstance(path, str)
    if os.path.isfile(path):
        return [argument]
    if _WILDCARDS.intersection(path):
        matches = sorted(name for name in glob.glob(path, recursive=True) if os.path.isfile(name))
        if not matches:
            raise UsageError(f"no file matches {argument!r}")
        return matches
    raise UsageError(f"no such image file: {argument!r} (a name ending in an image extension is read as an image)")


def _read_lines(source: str) -> List[str]:
    """The non-blank lines of a file (``-``: standard input), without their line endings."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UsageError(f"cannot read --file {source!r}: {reason}") from None
    return [line for line in text.splitlines() if line.strip()]


def gather_inputs(arguments: Iterable[str], files: Optional[Sequence[str]] = None) -> List[str]:
    """The arguments, then the lines of each ``--file``, with globs expanded; at least one input.

    Example::

        gather_inputs(["a cat", "images/*.png"])   # ['a cat', 'images/1.png', 'images/2.png']
    """
    raw = list(arguments)
    for source in files or ():
        raw.extend(_read_lines(source))
    inputs = [expanded for argument in raw for expanded in _expand(argument)]
    if not inputs:
        raise UsageError("no inputs: give sentences or image paths as arguments, or --file FILE")
    return inputs


def one_input(argument: str, what: str) -> str:
    """A single sentence or image (a glob must match exactly one file).

    Example::

        one_input("a cat", "the query")   # 'a cat'
    """
    expanded = _expand(argument)
    if len(expanded) != 1:
        raise UsageError(f"{what} must be one sentence or image, but {argument!r} matches {len(expanded)} files")
    return expanded[0]


def output_format(output: Optional[str]) -> str:
    """``"npy"`` or ``"jsonl"``, from the name of ``--output`` (None or ``-``: JSON lines on stdout).

    Checked before anything is sent: an unknown suffix, or a folder that does not exist, is a UsageError.

    Example::

        output_format("out.npy")   # 'npy'
    """
    if output is None or output == "-":
        return "jsonl"
    folder = os.path.dirname(output)
    if folder and not os.path.isdir(folder):
        raise UsageError(f"cannot write --output {output!r}: there is no folder {folder!r}")
    suffix = os.path.splitext(output)[1].lower()
    if suffix == ".npy":
        return "npy"
    if suffix in _JSON_LINES_SUFFIXES:
        return "jsonl"
    raise UsageError(f"cannot tell the format of --output {output!r}: name it *.npy (numpy) or *.jsonl (JSON lines)")


def write_embeddings(inputs: Sequence[str], vectors: NDArray[np.float32], output: Optional[str]) -> Optional[str]:
    """Write one embedding per input, in input order; returns the file written (None: stdout).

    Example::

        write_embeddings(["a cat"], vectors, "out.npy")   # 'out.npy'
    """
    if output is not None and output_format(output) == "npy":
        np.save(output, vectors, allow_pickle=False)
        return output
    lines = (json.dumps({"input": text, "embedding": row.tolist()}) + "\n" for text, row in zip(inputs, vectors))
    if output is None or output == "-":
        sys.stdout.writelines(lines)
        sys.stdout.flush()
        return None
    with open(output, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    return output
