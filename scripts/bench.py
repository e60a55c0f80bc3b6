"""aclip against the upstream clip_client: throughput, client CPU per document, peak client memory, import time.

How to run. One command from a fresh checkout: it builds (or reuses) ``.venv-interop`` with
``scripts/interop_env.sh`` (Python 3.11: jina 3.27, docarray 0.21, clip-client 0.8.3 and aclip, editable),
adds the bench-only tools, and runs this script with that environment's Python, so both libraries run under
the same interpreter::

    bash scripts/bench.sh                      # the default bench (about 26 min on 2 cores): docs/bench/
    bash scripts/bench.sh --quick              # CI smoke, a small subset (about 1 minute): build/bench-quick/
    bash scripts/bench.sh --reps 5 --servers reference --protocols grpc --batch-sizes 32   # any subset
    bash scripts/bench.sh --report-only docs/bench/results.json    # redraw the table and plot, no runs

Time, on this project's 2-core machines: ``--quick`` about 1 minute; ``--reps 2 --sentences 5000 --images 500``
took 10.2 minutes, 4.5 of them the Jina gateway's HTTP cells (its HTTP serves about 250 documents a second,
whoever the client); the default (3 repetitions, twice the inputs) about 26 minutes, estimated from that run.

Bench-only tools (``scripts/bench.sh`` installs them): matplotlib for the plot (already in ``.venv-interop``'s
pin list); orjson (aclip's ``fast`` extra: aclip's HTTP runs use it) and py-spy (the profile) go into
``.venv-interop/bench-site``, a ``pip install --target`` directory put on ``PYTHONPATH`` for the bench only, so
the interop test environment stays as its pin list says. Without orjson the bench still runs (aclip then
decodes HTTP with the standard library), without matplotlib there is no plot, without py-spy no profile.

What runs. Two servers, one after the other, each in its own process group: aclip's reference server
(``python -m aclip.testing``) and a real Jina 3.27 gateway in front of the interop test executor
(``tests/interop/gateway.py``); both embed with the same deterministic test encoder. Against each, on gRPC,
HTTP and WebSocket, with 10,000 short sentences and with 1,000 small PNG files (48x48 random pixels, about
7 KB, passed as file paths), at batch sizes 8, 32 and 128, aclip's sync ``Client.encode`` and upstream's
``clip_client.Client.encode`` encode the same inputs. Every run is a fresh subprocess; within a cell the
clients alternate, and their order rotates from one repetition to the next. On HTTP against the reference
server a third client, "aclip-stdjson" (aclip with orjson hidden), shows what the ``fast`` extra buys.

What one run measures, in the child process, after importing the library, creating the client and encoding
8 inputs to connect and warm up (not counted): wall time and CPU time (``time.process_time``: user + system
of every thread of the process) of the one measured ``encode`` call; the process's peak resident memory over
its whole life (``ru_maxrss``: imports included); a checksum of the result, so that every run of a cell is
checked to return the same embeddings. The clients' own output goes to a log file, never to the report.

Import time: the statements ``import aclip``, ``from aclip import Client``, ``import clip_client``, ``from
clip_client import Client``, each timed inside a fresh process (interpreter start excluded), the libraries
alternating, the median of several; and the cold first call (import, create a client, encode one sentence
over gRPC), which includes what each library loads lazily.

Profile: three cells (reference server, batch 32: gRPC sentences, gRPC images, HTTP sentences), each encoding
30,000 inputs in as many calls as it takes, with py-spy attached to the client process during those calls
only, every thread, waiting samples dropped: aclip's CPU by library, by function (self time) and by aclip
function (inclusive time).

How to read ``results.md``: each row is a cell (server, protocol, inputs, batch size), the medians of its
repetitions. docs/s is documents per second of wall time, which the server bounds too (both clients wait on
the same server: the Jina gateway's HTTP is slow whoever calls it). CPU µs/doc is the client's CPU per
document, the figure the goals are about. ratio is aclip / upstream: above 1 is better for docs/s, below 1
for CPU and memory; "x less" is upstream / aclip CPU, checked against the goals (10x on gRPC and WebSocket,
20x on HTTP). spread is (max - min) / median of aclip's CPU per document over the repetitions: a large one
means something else used the cores meanwhile. ``results.json`` keeps every run for a closer look.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, astuple, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
ACLIP = "aclip"
UPSTREAM = "upstream"
ACLIP_STDJSON = "aclip-stdjson"
SERVERS = ("reference", "jina")
PROTOCOLS = ("grpc", "http", "websocket")
KINDS = ("sentences", "images")
SCHEME_PROTOCOL = {"grpc": "grpc", "http": "http", "ws": "websocket"}
#: How many times less client CPU per document than upstream aclip aims for.
CPU_GOALS = {"grpc": 10.0, "http": 20.0, "websocket": 10.0}
IMPORT_GOAL_S = 0.15
#: Keep jina and docarray offline and quiet (telemetry, version check, survey banner).
OFFLINE_ENV = {"JINA_OPTOUT_TELEMETRY": "1", "NO_VERSION_CHECK": "1", "JINA_HIDE_SURVEY": "1"}
#: Inputs encoded before the measured call, to connect and warm up (not counted).
WARMUP = 8
SERVER_START_TIMEOUT = 180.0
#: Inputs encoded while profiling (in as many calls as it takes): enough samples for images too.
PROFILE_DOCS = 30_000


class BenchError(RuntimeError):
    """A run, a server or the environment failed; the message says where to look."""


@dataclass(frozen=True, order=True)
class Cell:
    server: str
    protocol: str
    kind: str
    batch: int

    @property
    def label(self) -> str:
        return f"{self.server} {self.protocol} {self.kind} b{self.batch}"


#: The cells profiled: where aclip's CPU goes, for texts and images over gRPC, and for texts over HTTP.
PROFILE_CELLS = (
    Cell("reference", "grpc", "sentences", 32),
    Cell("reference", "grpc", "images", 32),
    Cell("reference", "http", "sentences", 32),
)


@dataclass(frozen=True)
class Measurement:
    """One client run: one fresh process, one measured ``encode`` call."""

    cell: Cell
    client: str
    rep: int
    docs: int
    wall_s: float
    cpu_s: float
    process_cpu_s: float
    peak_rss_kib: int
    checksum: float

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.wall_s

    @property
    def cpu_us_per_doc(self) -> float:
        return self.cpu_s / self.docs * 1e6


@dataclass(frozen=True)
class Stat:
    """The medians of one client's repetitions in one cell."""

    docs_per_s: float
    cpu_us_per_doc: float
    peak_rss_mib: float
    cpu_spread: float
    runs: int


@dataclass(frozen=True)
class Row:
    cell: Cell
    stats: Dict[str, Stat]
    same_embeddings: bool


@dataclass(frozen=True)
class Config:
    servers: Tuple[str, ...]
    protocols: Tuple[str, ...]
    kinds: Tuple[str, ...]
    batch_sizes: Tuple[int, ...]
    sentences: int
    images: int
    image_size: int
    reps: int
    import_reps: int
    stdjson: bool
    profile: bool
    timeout: float
    out: Path
    py_spy: Optional[str]


# --- the child processes: each measures one thing and writes a JSON file --------------------------------------


def _contents(kind: str, count: int, images_dir: str) -> List[str]:
    if kind == "sentences":
        return [f"sentence number {i}: a photo of a small red bicycle" for i in range(count)]
    names = sorted(os.listdir(images_dir))[:count]
    return [os.path.join(images_dir, name) for name in names]


def _open_client(client: str, url: str) -> Tuple[Callable[[List[str], int], Any], Callable[[], None]]:
    """An ``encode(items, batch_size)`` function and a ``close()`` for one client library."""
    if client == UPSTREAM:
        from clip_client import Client as UpstreamClient

        upstream = UpstreamClient(url)
        return (lambda items, batch: upstream.encode(items, batch_size=batch, show_progress=False)), lambda: None
    if client == ACLIP_STDJSON:
        sys.modules["orjson"] = None  # type: ignore[assignment]  # makes `import orjson` fail inside aclip
    from aclip import Client

    ours = Client(url)
    return (lambda items, batch: ours.encode(items, batch_size=batch)), ours.close


def child_run(spec: Mapping[str, Any]) -> Dict[str, Any]:
    """Measure one ``encode`` call of one client in this (fresh) process."""
    import resource

    import numpy as np

    items = _contents(spec["kind"], spec["count"], spec["images_dir"])
    encode, close = _open_client(spec["client"], spec["url"])
    try:
        encode(items[:WARMUP], spec["batch"])
        wall, cpu = time.perf_counter(), time.process_time()
        result = encode(items, spec["batch"])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        close()
    array = np.asarray(result, dtype=np.float64)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "docs": len(items),
        "wall_s": wall,
        "cpu_s": cpu,
        "process_cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_kib": usage.ru_maxrss,
        "checksum": float(array.sum()) if array.shape == (len(items), 512) else float("nan"),
    }


def child_profile(spec: Mapping[str, Any]) -> Dict[str, Any]:
    """Encode like :func:`child_run`, several rounds, with py-spy attached to this process for those only."""
    items = _contents(spec["kind"], spec["count"], spec["images_dir"])
    encode, close = _open_client(ACLIP, spec["url"])
    try:
        encode(items[:WARMUP], spec["batch"])
        command = [spec["py_spy"], "record", "--pid", str(os.getpid()), "--format", "raw", "--function"]
        command += ["--rate", "1000", "--output", spec["stacks"]]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # let py-spy attach
        cpu = time.process_time()
        for _ in range(spec["rounds"]):
            encode(items, spec["batch"])
        cpu = time.process_time() - cpu
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    finally:
        close()
    return {"cpu_us_per_doc": cpu / (len(items) * spec["rounds"]) * 1e6, "py_spy_status": spy.returncode}


CHILD_MODES: Dict[str, Callable[[Mapping[str, Any]], Dict[str, Any]]] = {
    "--child-run": child_run,
    "--child-profile": child_profile,
}


def _child_main(mode: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    result = CHILD_MODES[mode](spec)
    Path(spec["result"]).write_text(json.dumps(result))


def _child_env() -> Dict[str, str]:
    env = dict(os.environ, **OFFLINE_ENV)
    env.pop("CLIP_AUTH_TOKEN", None)
    return env


def run_child(mode: str, spec: Mapping[str, Any], workdir: Path, timeout: float) -> Dict[str, Any]:
    """Run this script in ``mode`` in a fresh process; its output goes to ``workdir/child.log``."""
    result = workdir / f"result-{uuid.uuid4().hex}.json"
    command = [sys.executable, str(Path(__file__).resolve()), mode, json.dumps(dict(spec, result=str(result)))]
    data: Dict[str, Any] = json.loads(_run_fresh(command, result, workdir, timeout))
    return data


#: Run by ``python -c``: times ``exec(argv[1])`` and writes the seconds to the file ``argv[2]``. Nothing but the
#: built-in ``sys`` and ``time`` is imported first, so the statement's imports are all counted.
EXEC_TIMER = (
    "import sys, time\n"
    "started = time.perf_counter()\n"
    "exec(sys.argv[1], {})\n"
    "seconds = time.perf_counter() - started\n"
    "open(sys.argv[2], 'w').write(repr(seconds))\n"
)


def time_in_fresh_process(code: str, workdir: Path, timeout: float) -> float:
    """Seconds ``exec(code)`` takes in a fresh interpreter (its start excluded): an import, or a first call."""
    result = workdir / f"result-{uuid.uuid4().hex}.txt"
    return float(_run_fresh([sys.executable, "-c", EXEC_TIMER, code, str(result)], result, workdir, timeout))


def _run_fresh(command: Sequence[str], result: Path, workdir: Path, timeout: float) -> str:
    """Run ``command``, output to ``workdir/child.log``; return (and delete) the ``result`` file it writes."""
    log_path = workdir / "child.log"
    with open(log_path, "w") as log:
        try:
            child = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=_child_env(),
                timeout=timeout,
                check=False,
            )
            status = child.returncode
        except subprocess.TimeoutExpired:
            status = -1
    if status != 0 or not result.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BenchError(f"{list(command)[1:]} failed (status {status}); its output ends with:\n{tail}")
    text = result.read_text()
    result.unlink()
    return text


# --- the servers ----------------------------------------------------------------------------------------------


def _server_command(server: str) -> Tuple[List[str], Dict[str, str], str]:
    """Command, environment and the prefix of the lines that announce its URLs."""
    if server == "reference":
        ports = ["--grpc-port", "0", "--http-port", "0", "--websocket-port", "0"]
        return [sys.executable, "-m", "aclip.testing", *ports], _child_env(), ""
    env = _child_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return [sys.executable, "-m", "tests.interop.gateway", "--lifetime", "86400"], env, "listening: "


def parse_urls(text: str, prefix: str) -> Dict[str, str]:
    """``{protocol: url}`` from a server's output: the lines ``prefix + scheme://host:port``."""
    urls = {}
    for line in text.splitlines():
        match = re.fullmatch(re.escape(prefix) + r"(grpc|http|ws)://\S+", line.strip())
        if match:
            urls[SCHEME_PROTOCOL[match.group(1)]] = line.strip()[len(prefix) :]
    return urls


def _wait_for_urls(process: subprocess.Popen[bytes], log_path: Path, prefix: str) -> Dict[str, str]:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        urls = parse_urls(log_path.read_text(errors="replace"), prefix)
        if len(urls) == len(PROTOCOLS):
            return urls
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise BenchError(f"the server did not start; see {log_path}:\n{log_path.read_text(errors='replace')[-3000:]}")


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    """Close its stdin (the jina gateway stops), SIGTERM it (the reference server stops), then the group."""
    assert process.stdin is not None
    with contextlib.suppress(OSError):
        process.stdin.close()
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its own session: jina's gateway and executor processes too
    process.wait(timeout=30)


@contextlib.contextmanager
def serving(server: str, workdir: Path) -> Iterator[Dict[str, str]]:
    """Start ``server`` ("reference" or "jina") in its own session; yield ``{protocol: url}``; stop it."""
    command, env, prefix = _server_command(server)
    log_path = workdir / f"{server}-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    try:
        yield _wait_for_urls(process, log_path, prefix)
    finally:
        _stop_server(process)


# --- the plan -------------------------------------------------------------------------------------------------


def cells_for(server: str, config: Config) -> List[Cell]:
    combos = itertools.product(config.protocols, config.kinds, config.batch_sizes)
    return [Cell(server, protocol, kind, batch) for protocol, kind, batch in combos]


def clients_for(cell: Cell, rep: int, stdjson: bool) -> List[str]:
    """The clients of one cell in this repetition's order: the order rotates, so neither always goes first."""
    with_stdjson = stdjson and cell.protocol == "http" and cell.server == "reference"
    clients = [ACLIP, UPSTREAM] + ([ACLIP_STDJSON] if with_stdjson else [])
    shift = rep % len(clients)
    return clients[shift:] + clients[:shift]


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure_cell(cell: Cell, client: str, rep: int, url: str, config: Config, workdir: Path) -> Measurement:
    count = config.sentences if cell.kind == "sentences" else config.images
    spec = {"client": client, "url": url, "kind": cell.kind, "count": count, "batch": cell.batch}
    data = run_child("--child-run", dict(spec, images_dir=str(workdir / "images")), workdir, config.timeout)
    fields = ("docs", "wall_s", "cpu_s", "process_cpu_s", "peak_rss_kib", "checksum")
    return Measurement(cell, client, rep, **{name: data[name] for name in fields})


def measure_server(server: str, urls: Mapping[str, str], config: Config, workdir: Path) -> List[Measurement]:
    cells = cells_for(server, config)
    results: List[Measurement] = []
    for rep in range(config.reps):
        for cell in cells:
            for client in clients_for(cell, rep, config.stdjson):
                run = measure_cell(cell, client, rep, urls[cell.protocol], config, workdir)
                results.append(run)
                _progress(
                    f"  rep {rep + 1}/{config.reps} {cell.label:<34} {client:<14} {run.docs_per_s:>8,.0f} docs/s "
                    f"{run.cpu_us_per_doc:>8,.1f} us/doc CPU {run.peak_rss_kib / 1024:>6.0f} MiB"
                )
    return results


IMPORT_CODE = {
    "import aclip": "import aclip",
    "from aclip import Client": "from aclip import Client",
    "import clip_client": "import clip_client",
    "from clip_client import Client": "from clip_client import Client",
}
FIRST_CALL_CODE = {
    ACLIP: "from aclip import Client\nwith Client({url!r}) as c:\n    c.encode(['hello'])",
    UPSTREAM: "from clip_client import Client\nClient({url!r}).encode(['hello'])",
}


def measure_imports(config: Config, workdir: Path, server: str, grpc_url: str) -> Dict[str, List[float]]:
    """Seconds of each import statement (and cold first call), in fresh processes, the libraries alternating."""
    codes = dict(IMPORT_CODE)
    for name, code in FIRST_CALL_CODE.items():
        codes[f"{name}: import, Client(url), encode 1 sentence ({server} server, gRPC)"] = code.format(url=grpc_url)
    timings: Dict[str, List[float]] = {label: [] for label in codes}
    for _ in range(config.import_reps):
        for label, code in codes.items():
            timings[label].append(time_in_fresh_process(code, workdir, config.timeout))
    return timings


def write_images(directory: Path, count: int, size: int) -> None:
    from aclip.testing import sample_png

    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"image-{i:05d}.png").write_bytes(sample_png(size, size, seed=i))


# --- the profile ----------------------------------------------------------------------------------------------


def profile_cell(cell: Cell, config: Config, url: str, workdir: Path) -> Optional[Dict[str, Any]]:
    """py-spy's stacks of aclip during the measured calls of one cell, summarised; None if py-spy failed."""
    assert config.py_spy
    count = config.sentences if cell.kind == "sentences" else config.images
    rounds = max(3, -(-PROFILE_DOCS // count))
    stacks = workdir / "py-spy-stacks.txt"
    spec = {"url": url, "kind": cell.kind, "count": count, "batch": cell.batch, "rounds": rounds}
    spec.update(images_dir=str(workdir / "images"), py_spy=config.py_spy, stacks=str(stacks))
    try:
        data = run_child("--child-profile", spec, workdir, config.timeout)
    except BenchError as error:
        _progress(f"  the profile failed, skipped: {error}")
        return None
    if not stacks.exists():
        _progress(f"  py-spy wrote no stacks (status {data['py_spy_status']}): the profile is skipped")
        return None
    summary = summarize_stacks(stacks.read_text())
    summary.update(data, cell=asdict(cell), count=count, rounds=rounds)
    stacks.unlink()
    return summary


def profile_server(server: str, urls: Mapping[str, str], config: Config, workdir: Path) -> List[Dict[str, Any]]:
    cells = [cell for cell in PROFILE_CELLS if cell.server == server and cell.kind in config.kinds]
    cells = [cell for cell in cells if cell.protocol in config.protocols]
    if cells and not config.py_spy:
        _progress("  no py-spy: the profile is skipped (scripts/bench.sh installs it)")
        return []
    profiles = []
    for cell in cells:
        _progress(f"profile: {cell.label}")
        profiles.append(profile_cell(cell, config, urls[cell.protocol], workdir))
    return [profile for profile in profiles if profile]


def _split_frame(frame: str) -> Tuple[str, str]:
    """``"function (path/module.py:12)"`` -> ``("path/module.py:function", "path/module.py")``."""
    match = re.fullmatch(r"(.*) \((.*?)(?::\d+)?\)", frame)
    if not match:
        return frame, ""
    function, path = match.groups()
    return f"{path}:{function}", path


AREAS = (
    ("aclip", r"(^|/)aclip/"),
    ("protobuf", r"google/protobuf|_pb2\.py"),
    ("grpclib / h2 / hpack", r"(^|/)(grpclib|h2|hpack|hyperframe)/"),
    ("aiohttp / yarl / multidict", r"(^|/)(aiohttp|yarl|multidict)/"),
    ("anyio", r"(^|/)anyio/"),
    ("numpy", r"(^|/)numpy/"),
    ("asyncio, ssl, selectors", r"(^|/)(asyncio/|selectors\.py|ssl\.py|socket\.py)"),
    ("threading, concurrent.futures", r"threading\.py|concurrent/"),
)


def _area(path: str) -> str:
    for area, pattern in AREAS:
        if re.search(pattern, path):
            return area
    return "other"


#: Innermost frames that wait rather than compute: py-spy's own idle detection lets some through.
IDLE_LEAVES = re.compile(
    r"selectors\.py:\w+\.select|threading\.py:(Condition\.wait|Thread\.join|Lock\.acquire)|bench\.py:\w+"
)


def _parse_stacks(text: str) -> List[Tuple[List[str], int]]:
    samples = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples.append((stack.split(";"), int(count)))
    return samples


def summarize_stacks(text: str, top: int = 15) -> Dict[str, Any]:
    """Self time by function, by library area (the innermost frame's), and aclip functions' inclusive time.

    ``text`` is py-spy's ``--format raw`` output: one line per stack, root first, frames joined by ``;``, then
    a space and the sample count. Shares are of the samples left once those waiting (:data:`IDLE_LEAVES`) are
    dropped.
    """
    every = _parse_stacks(text)
    samples = [(frames, count) for frames, count in every if not IDLE_LEAVES.fullmatch(_split_frame(frames[-1])[0])]
    total = sum(count for _, count in samples) or 1
    own: Dict[str, int] = {}
    areas: Dict[str, int] = {}
    inclusive: Dict[str, int] = {}
    for frames, count in samples:
        parsed = [_split_frame(frame) for frame in frames]
        leaf, leaf_path = parsed[-1]
        own[leaf] = own.get(leaf, 0) + count
        areas[_area(leaf_path)] = areas.get(_area(leaf_path), 0) + count
        for name in {name for name, path in parsed if _area(path) == "aclip"}:
            inclusive[name] = inclusive.get(name, 0) + count

    def shares(counts: Dict[str, int], limit: int) -> List[Tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return [(name, count / total) for name, count in ranked]

    return {
        "samples": total,
        "dropped": sum(count for _, count in every) - total,
        "self": shares(own, top),
        "areas": shares(areas, len(areas)),
        "aclip_inclusive": shares(inclusive, top),
    }


# --- the summary ----------------------------------------------------------------------------------------------


def _stat(runs: Sequence[Measurement]) -> Stat:
    cpu = [run.cpu_us_per_doc for run in runs]
    median_cpu = statistics.median(cpu)
    return Stat(
        docs_per_s=statistics.median(run.docs_per_s for run in runs),
        cpu_us_per_doc=median_cpu,
        peak_rss_mib=statistics.median(run.peak_rss_kib / 1024 for run in runs),
        cpu_spread=(max(cpu) - min(cpu)) / median_cpu if median_cpu else 0.0,
        runs=len(runs),
    )


def _same_embeddings(runs: Sequence[Measurement]) -> bool:
    checksums = [run.checksum for run in runs]
    return all(abs(value - checksums[0]) <= 1e-6 * max(1.0, abs(checksums[0])) for value in checksums)


def summarize(measurements: Sequence[Measurement]) -> List[Row]:
    """One row per cell: each client's medians, and whether every run returned the same embeddings."""
    by_cell: Dict[Cell, Dict[str, List[Measurement]]] = {}
    for run in measurements:
        by_cell.setdefault(run.cell, {}).setdefault(run.client, []).append(run)
    rows = []
    for cell in sorted(by_cell, key=_cell_order):
        runs = by_cell[cell]
        everything = [run for client_runs in runs.values() for run in client_runs]
        rows.append(Row(cell, {client: _stat(r) for client, r in runs.items()}, _same_embeddings(everything)))
    return rows


def _cell_order(cell: Cell) -> Tuple[int, int, int, int]:
    return SERVERS.index(cell.server), PROTOCOLS.index(cell.protocol), KINDS.index(cell.kind), cell.batch


def cpu_advantage(row: Row, client: str = ACLIP) -> float:
    """How many times less CPU per document ``client`` spends than upstream in this cell."""
    return row.stats[UPSTREAM].cpu_us_per_doc / row.stats[client].cpu_us_per_doc


# --- the report -----------------------------------------------------------------------------------------------


def _fmt_ratio(value: float) -> str:
    return f"{value:.2f}"


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("aclip", "clip-client", "jina", "docarray", "protobuf", "grpcio", "grpclib", "aiohttp", "orjson"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    with contextlib.suppress(Exception):
        from google.protobuf.internal import api_implementation

        found["protobuf backend"] = api_implementation.Type()
    return found


def machine_facts() -> Dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "versions": _versions(),
    }


def goals_table(rows: Sequence[Row]) -> List[str]:
    lines = [
        "| server | protocol | goal: x less CPU/doc | aclip's advantage, min / median / max | cells meeting it |",
        "|---|---|---:|---:|---:|",
    ]
    for server, protocol in itertools.product(SERVERS, PROTOCOLS):
        selected = [cpu_advantage(row) for row in rows if (row.cell.server, row.cell.protocol) == (server, protocol)]
        if not selected:
            continue
        goal = CPU_GOALS[protocol]
        met = sum(value >= goal for value in selected)
        spread = f"{min(selected):.1f}x / {statistics.median(selected):.1f}x / {max(selected):.1f}x"
        lines.append(f"| {server} | {protocol} | {goal:.0f}x | {spread} | {met}/{len(selected)} |")
    return lines


def main_table(rows: Sequence[Row]) -> List[str]:
    lines = [
        "| server | protocol | inputs | batch | aclip docs/s | upstream docs/s | ratio "
        "| aclip CPU µs/doc | upstream CPU µs/doc | ratio | x less (goal) | spread "
        "| aclip peak MiB | upstream peak MiB | ratio | same embeddings |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        ours, theirs = row.stats[ACLIP], row.stats[UPSTREAM]
        advantage = cpu_advantage(row)
        goal = CPU_GOALS[row.cell.protocol]
        mark = "✓" if advantage >= goal else "✗"
        lines.append(
            f"| {row.cell.server} | {row.cell.protocol} | {row.cell.kind} | {row.cell.batch} "
            f"| {ours.docs_per_s:,.0f} | {theirs.docs_per_s:,.0f} | {_fmt_ratio(ours.docs_per_s / theirs.docs_per_s)} "
            f"| {ours.cpu_us_per_doc:,.1f} | {theirs.cpu_us_per_doc:,.1f} "
            f"| {_fmt_ratio(ours.cpu_us_per_doc / theirs.cpu_us_per_doc)} | {advantage:.1f}x ({goal:.0f}x {mark}) "
            f"| {ours.cpu_spread:.0%} | {ours.peak_rss_mib:,.0f} | {theirs.peak_rss_mib:,.0f} "
            f"| {_fmt_ratio(ours.peak_rss_mib / theirs.peak_rss_mib)} | {'yes' if row.same_embeddings else 'NO'} |"
        )
    return lines


def stdjson_table(rows: Sequence[Row]) -> List[str]:
    selected = [row for row in rows if ACLIP_STDJSON in row.stats]
    if not selected:
        return []
    lines = [
        "| server | inputs | batch | aclip + orjson CPU µs/doc | aclip, stdlib json | upstream "
        "| x less with orjson | x less without |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in selected:
        fast, slow, theirs = (row.stats[name].cpu_us_per_doc for name in (ACLIP, ACLIP_STDJSON, UPSTREAM))
        lines.append(
            f"| {row.cell.server} | {row.cell.kind} | {row.cell.batch} | {fast:,.1f} | {slow:,.1f} | {theirs:,.1f} "
            f"| {cpu_advantage(row):.1f}x | {cpu_advantage(row, ACLIP_STDJSON):.1f}x |"
        )
    return lines


def import_table(timings: Mapping[str, Sequence[float]]) -> List[str]:
    lines = ["| what, in a fresh process | median s | min s | max s | runs |", "|---|---:|---:|---:|---:|"]
    for label, seconds in timings.items():
        if seconds:
            lines.append(
                f"| `{label}` | {statistics.median(seconds):.3f} | {min(seconds):.3f} "
                f"| {max(seconds):.3f} | {len(seconds)} |"
            )
    return lines


def profile_section(profile: Mapping[str, Any]) -> List[str]:
    cell = Cell(**profile["cell"])
    lines = [
        f"### {cell.label}",
        "",
        f"Cell: {cell.server} server, {cell.protocol}, {cell.kind}, batch {cell.batch}; {profile['count']:,} inputs x "
        f"{profile['rounds']} calls of the sync `Client.encode`, py-spy at 1 kHz on every thread of the client "
        f"process; {profile['samples']:,} samples of CPU work ({profile.get('dropped', 0):,} more, waiting in "
        f"`select` or a thread lock, dropped); {profile['cpu_us_per_doc']:.1f} µs/doc CPU while profiled (py-spy "
        "slows the process a little).",
        "",
        "Where the CPU goes, by library (the innermost frame of each sample):",
        "",
        "| library | share |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {share:.1%} |" for name, share in profile["areas"]]
    lines += ["", "Top functions by self time:", "", "| function | self share |", "|---|---:|"]
    lines += [f"| `{name}` | {share:.1%} |" for name, share in profile["self"]]
    lines += ["", "aclip functions by inclusive time (their callees included):", ""]
    lines += ["| function | inclusive share |", "|---|---:|"]
    lines += [f"| `{name}` | {share:.1%} |" for name, share in profile["aclip_inclusive"]]
    return lines


def _config_lines(config: Mapping[str, Any], facts: Mapping[str, Any], elapsed_s: float) -> List[str]:
    versions = ", ".join(f"{name} {value}" for name, value in facts["versions"].items())
    return [
        f"- Machine: {facts['cpus']} CPUs ({facts['cpu_model']}), Python {facts['python']}, {facts['platform']}.",
        f"- Libraries: {versions}.",
        f"- Inputs: {config['sentences']:,} sentences, {config['images']:,} PNG files of {config['image_size']}x"
        f"{config['image_size']} random pixels; batch sizes {', '.join(map(str, config['batch_sizes']))}; "
        f"{config['reps']} repetitions per client and cell (medians shown); imports {config['import_reps']} times.",
        f"- Load average (1, 5, 15 min) at the start {_load(facts['load_average'])}, at the end "
        f"{_load(facts.get('load_average_end', facts['load_average']))}; the bench took {elapsed_s / 60:.1f} min.",
    ]


def _load(values: Sequence[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values)


READING_GUIDE = [
    "How to read: each row is one cell, the median of its repetitions. docs/s is wall-clock throughput, which the",
    "server bounds too (both clients wait on the same one). CPU µs/doc is the client process's CPU (every thread,",
    "user + system) during the measured `encode` call, divided by the documents: the figure the goals are about.",
    "ratio is aclip / upstream (above 1 is better for docs/s, below 1 for CPU and memory); x less is upstream /",
    "aclip CPU, against the goal. spread is (max - min) / median of aclip's CPU over the repetitions. Peak MiB is",
    "the client process's peak resident memory over its whole life, imports included. same embeddings: every run",
    "of the cell, both clients, returned the same array (checksum).",
]


def import_goal_lines(imports: Mapping[str, Sequence[float]]) -> List[str]:
    ours = _median(imports.get("import aclip"))
    verdict = "met" if ours < IMPORT_GOAL_S else "NOT met"
    client = _median(imports.get("from aclip import Client"))
    theirs = _median(imports.get("from clip_client import Client"))
    return [
        f"`import aclip` goal < {IMPORT_GOAL_S} s: median {ours:.3f} s, {verdict}. But `import aclip` loads only the",
        f"exceptions: `from aclip import Client`, what users write, takes {client:.3f} s (numpy, anyio; the transports",
        f"load on the first call), against {theirs:.3f} s for `from clip_client import Client` (see Import time).",
    ]


def render_markdown(report: Mapping[str, Any], notes: str = "") -> str:
    """The results page; ``notes`` (hand-written findings, markdown) goes under the goals when given."""
    rows = summarize([_measurement(item) for item in report["measurements"]])
    imports = report["imports"]
    lines = ["# aclip vs clip_client: client CPU, throughput, memory, import time", ""]
    lines += ["Generated by `bash scripts/bench.sh` (`scripts/bench.py`; its docstring explains every column).", ""]
    lines += _config_lines(report["config"], report["machine"], report["elapsed_s"])
    lines += ["", "## Goals", "", *goals_table(rows), ""]
    lines += [*import_goal_lines(imports), ""]
    if notes.strip():
        lines += ["## Findings", "", notes.strip(), ""]
    lines += ["## Every cell", "", *main_table(rows), "", *READING_GUIDE, ""]
    extra = stdjson_table(rows)
    if extra:
        lines += ["## HTTP with and without orjson (aclip's `fast` extra)", "", *extra, ""]
    lines += ["## Import time", "", *import_table(imports), ""]
    lines += ["## Profile of aclip's hot path", ""]
    for profile in report.get("profiles") or []:
        lines += [*profile_section(profile), ""]
    if not report.get("profiles"):
        lines += [
            "No profile this time (skipped, py-spy missing or not allowed to attach: see the bench's output).",
            "",
        ]
    return "\n".join(lines)


def _median(values: Optional[Sequence[float]]) -> float:
    return statistics.median(values) if values else float("nan")


def _measurement(item: Mapping[str, Any]) -> Measurement:
    return Measurement(**dict(item, cell=Cell(**item["cell"])))


# --- the plot -------------------------------------------------------------------------------------------------


def write_plot(report: Mapping[str, Any], path: Path) -> bool:
    """Bar charts of the aclip / upstream ratios per cell; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = summarize([_measurement(item) for item in report["measurements"]])
    short = {"reference": "ref", "websocket": "ws", "sentences": "text", "images": "img"}
    labels = [" ".join(short.get(str(part), str(part)) for part in astuple(r.cell)) for r in rows]
    panels = [
        ("x less client CPU per doc (upstream / aclip); goal lines", [cpu_advantage(r) for r in rows], True),
        ("throughput ratio (aclip / upstream docs/s)", [_ratio(r, "docs_per_s") for r in rows], False),
        ("peak memory ratio (aclip / upstream)", [_ratio(r, "peak_rss_mib") for r in rows], False),
    ]
    figure, axes = plt.subplots(len(panels), 1, figsize=(max(10, len(rows) * 0.35), 11), sharex=True)
    for axis, (title, values, with_goals) in zip(axes, panels):
        bars = axis.bar(range(len(rows)), values, color=[_colour(r.cell.protocol) for r in rows])
        axis.bar_label(bars, fmt="%.1f", fontsize=6)
        axis.set_title(title, fontsize=10)
        axis.axhline(1.0, color="grey", linewidth=0.8)
        if with_goals:
            axis.plot(range(len(rows)), [CPU_GOALS[r.cell.protocol] for r in rows], "k_", markersize=12)
            axis.set_yscale("log")
    axes[-1].set_xticks(range(len(rows)), labels, rotation=90, fontsize=7)
    figure.suptitle("aclip vs clip_client 0.8.3 (blue grpc, orange http, green websocket)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _ratio(row: Row, field: str) -> float:
    return float(getattr(row.stats[ACLIP], field) / getattr(row.stats[UPSTREAM], field))


def _colour(protocol: str) -> str:
    return {"grpc": "tab:blue", "http": "tab:orange", "websocket": "tab:green"}[protocol]


# --- the command line -----------------------------------------------------------------------------------------


def _csv(kind: Callable[[str], Any], allowed: Optional[Sequence[str]] = None) -> Callable[[str], Tuple[Any, ...]]:
    def parse(text: str) -> Tuple[Any, ...]:
        values = tuple(kind(part) for part in text.split(",") if part)
        if allowed is not None and not set(values) <= set(allowed):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return values

    return parse


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--quick", action="store_true", help="CI smoke: 500 sentences, 50 images, batch 32, 1 rep, no profile")
    add("--servers", type=_csv(str, SERVERS), default=SERVERS, help="comma-separated (default: both)")
    add("--protocols", type=_csv(str, PROTOCOLS), default=PROTOCOLS, help="comma-separated (default: all)")
    add("--inputs", type=_csv(str, KINDS), default=KINDS, dest="kinds", help="sentences,images (default: both)")
    add("--batch-sizes", type=_csv(int), default=(8, 32, 128), help="comma-separated (default: 8,32,128)")
    add("--sentences", type=int, default=10_000, help="sentences per run (default: %(default)s)")
    add("--images", type=int, default=1_000, help="images per run (default: %(default)s)")
    add("--image-size", type=int, default=48, help="image width and height in pixels (default: %(default)s)")
    add("--reps", type=int, default=3, help="repetitions per client and cell (default: %(default)s)")
    add("--import-reps", type=int, default=7, help="fresh processes per import figure (default: %(default)s)")
    add("--no-stdjson", action="store_true", help="skip the HTTP runs of aclip without orjson")
    add("--no-profile", action="store_true", help="skip the py-spy profile")
    add("--py-spy", default=None, help="py-spy executable (default: .venv-interop/bench-site/bin/py-spy or PATH)")
    add("--timeout", type=float, default=900.0, help="seconds one client run may take (default: %(default)s)")
    add("--out", type=Path, default=None, help="output directory (default: docs/bench, or build/bench-quick)")
    add("--report-only", type=Path, default=None, metavar="JSON", help="rewrite the report from a results.json")
    for mode in CHILD_MODES:
        add(mode, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _find_py_spy(option: Optional[str]) -> Optional[str]:
    import shutil

    candidates = [option, str(REPO / ".venv-interop" / "bench-site" / "bin" / "py-spy"), shutil.which("py-spy")]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


def make_config(args: argparse.Namespace) -> Config:
    quick = args.quick
    return Config(
        servers=args.servers,
        protocols=args.protocols,
        kinds=args.kinds,
        batch_sizes=(32,) if quick else args.batch_sizes,
        sentences=500 if quick else args.sentences,
        images=50 if quick else args.images,
        image_size=args.image_size,
        reps=1 if quick else args.reps,
        import_reps=3 if quick else args.import_reps,
        stdjson=not (quick or args.no_stdjson),
        profile=not (quick or args.no_profile),
        timeout=args.timeout,
        out=args.out or REPO / ("build/bench-quick" if quick else "docs/bench"),
        py_spy=_find_py_spy(args.py_spy),
    )


def check_environment(config: Config) -> None:
    import importlib.util

    needed = ["aclip", "clip_client"] + (["jina"] if "jina" in config.servers else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise BenchError(
            f"{', '.join(missing)} not importable by {sys.executable}: run `bash scripts/bench.sh`, which builds "
            ".venv-interop (aclip, clip-client 0.8.3, jina 3.27) and runs this script with its Python"
        )


def run_bench(config: Config) -> Dict[str, Any]:
    started = time.monotonic()
    facts = machine_facts()
    if "orjson" not in facts["versions"]:
        _progress("note: orjson is not installed: aclip's HTTP runs decode with the standard library's json")
    measurements: List[Measurement] = []
    imports: Dict[str, List[float]] = {}
    profiles: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aclip-bench-") as tmp:
        workdir = Path(tmp)
        write_images(workdir / "images", config.images, config.image_size)
        for server in config.servers:
            _progress(f"{server} server: starting")
            with serving(server, workdir) as urls:
                _progress(f"{server} server: {', '.join(urls.values())}")
                if not imports:
                    _progress("import times")
                    imports = measure_imports(config, workdir, server, urls["grpc"])
                if config.profile:
                    profiles += profile_server(server, urls, config, workdir)
                measurements += measure_server(server, urls, config, workdir)
    facts["load_average_end"] = os.getloadavg()
    settings = {key: value for key, value in asdict(config).items() if key not in ("out", "py_spy")}
    return {
        "config": settings,
        "machine": facts,
        "elapsed_s": time.monotonic() - started,
        "measurements": [asdict(run) for run in measurements],
        "imports": imports,
        "profiles": profiles,
    }


def write_outputs(report: Mapping[str, Any], out: Path) -> None:
    """results.json, results.md (with ``out/notes.md``, hand-written findings, if there is one), results.png."""
    out.mkdir(parents=True, exist_ok=True)
    notes = out / "notes.md"
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "results.md").write_text(render_markdown(report, notes.read_text() if notes.exists() else ""))
    plotted = write_plot(report, out / "results.png")
    written = ["results.md", "results.json"] + (["results.png"] if plotted else [])
    _progress(f"wrote {', '.join(str(out / name) for name in written)}")
    if not plotted:
        _progress("no plot: matplotlib is not installed (scripts/bench.sh installs it)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    for mode in CHILD_MODES:
        spec = getattr(args, mode.lstrip("-").replace("-", "_"))
        if spec is not None:
            _child_main(mode, spec)
            return 0
    config = make_config(args)
    if args.report_only:
        write_outputs(json.loads(args.report_only.read_text()), args.out or args.report_only.parent)
        return 0
    try:
        check_environment(config)
        report = run_bench(config)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    write_outputs(report, config.out)
    print((config.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
