"""Peak client memory for long inputs: results kept, results handed to a callback, results streamed.

    python scripts/bench_memory.py                 # 10,000 and 1,000,000 generated sentences
    python scripts/bench_memory.py --sizes 10000   # a quick run

The reference server runs in its own process; each scenario runs in a fresh client process, which reports
its resident memory before the call and its peak during it. The baseline is the result array itself
(N x 512 float32, about 2 KB per input): "kept" should grow by about that, "callback" and "streamed" by
almost nothing, whatever N is. Inputs come from a generator, so the input list never exists.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Dict, Iterator, List

SCENARIOS = ("kept", "callback", "streamed")
DIM = 512


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _sentences(count: int) -> Iterator[str]:
    for i in range(count):
        yield f"generated sentence number {i} for the memory benchmark"


def child(scenario: str, count: int, url: str) -> None:
    """Run one scenario in this process and print its memory figures as JSON."""
    from aclip import Client

    with Client(url) as client:
        client.encode(["warm up the connection and the imports"])
        idle = _rss_kib()
        started = time.perf_counter()
        rows = 0
        if scenario == "kept":
            rows = len(client.encode(_sentences(count), batch_size=64))
        elif scenario == "callback":

            def on_done(response: object) -> None:
                nonlocal rows
                rows += len(response.positions)  # type: ignore[attr-defined]

            client.encode(_sentences(count), batch_size=64, on_done=on_done)
        else:
            for part in client.encode_iter(_sentences(count), batch_size=64):
                rows += len(part.positions)
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"idle_kib": idle, "peak_kib": peak, "rows": rows, "seconds": seconds}))


def _start_server() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "aclip.testing", "--grpc-port", "0", "--protocols", "grpc"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    if not url.startswith("grpc://"):
        server.kill()
        raise SystemExit(f"the reference server did not start: {url!r}")
    return server, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--child", nargs=3, metavar=("SCENARIO", "COUNT", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    server, url = _start_server()
    results: List[Dict[str, object]] = []
    try:
        for count in args.sizes:
            result_mib = count * DIM * 4 / 2**20
            for scenario in SCENARIOS:
                run = subprocess.run(
                    [sys.executable, __file__, "--child", scenario, str(count), url],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=3600,
                )
                figures = json.loads(run.stdout.strip().splitlines()[-1])
                growth_mib = (figures["peak_kib"] - figures["idle_kib"]) / 1024
                results.append({"inputs": count, "scenario": scenario, "growth_mib": growth_mib, **figures})
                print(
                    f"{count:>9,} inputs  {scenario:9} peak growth {growth_mib:8.1f} MiB  "
                    f"= {growth_mib / result_mib:5.2f} x the result array ({result_mib:,.1f} MiB)  "
                    f"{figures['seconds']:6.1f} s",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
