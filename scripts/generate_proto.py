"""Regenerate aclip's protobuf modules (aclip/_pb/*_pb2.py and .pyi) from proto/.

The generated modules are committed, so users never need protoc. Run this after editing a file
under proto/:

    python scripts/generate_proto.py

It needs the generator pinned in the ``proto`` extra (grpcio-tools 1.62.x): code from that generator
imports on every protobuf runtime that pyproject allows (4.25 up to the newest), while code from newer
generators refuses older runtimes.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
EXPECTED_GENERATOR = "1.62."


def main() -> int:
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        print(
            "grpcio-tools is missing: pip install -e '.[proto]' (in a venv of its own: it pins protobuf < 5)",
            file=sys.stderr,
        )
        return 2
    from importlib.metadata import version

    found = version("grpcio-tools")
    if not found.startswith(EXPECTED_GENERATOR):
        print(
            f"grpcio-tools {found} found, {EXPECTED_GENERATOR}x expected (see pyproject's proto extra)", file=sys.stderr
        )
        return 2
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={ROOT}", f"--pyi_out={ROOT}", *sources]
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return int(code)
    print("generated:", ", ".join(sources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
