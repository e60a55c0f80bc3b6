"""scripts/bench.py: its pure parts (plan, statistics, profile summary, report) and one real aclip run.

The bench itself needs the upstream stack (``bash scripts/bench.sh``); these tests need only aclip.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys
from types import ModuleType
from typing import Any, Dict, List

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aclip_bench_script", ROOT / "scripts" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def _run(client: str, cpu_us: float, *, rep: int = 0, checksum: float = 1.5, cell: Any = None) -> Any:
    cell = cell or bench.Cell("reference", "grpc", "sentences", 32)
    return bench.Measurement(
        cell=cell,
        client=client,
        rep=rep,
        docs=1000,
        wall_s=0.5,
        cpu_s=cpu_us * 1000 / 1e6,
        process_cpu_s=1.0,
        peak_rss_kib=64 * 1024,
        checksum=checksum,
    )


def test_parse_urls_reads_both_servers_announcements() -> None:
    reference = "grpc://127.0.0.1:1\nhttp://127.0.0.1:2\nws://127.0.0.1:3\n"
    assert bench.parse_urls(reference, "") == {
        "grpc": "grpc://127.0.0.1:1",
        "http": "http://127.0.0.1:2",
        "websocket": "ws://127.0.0.1:3",
    }
    jina = "banner http://0.0.0.0:9 in a sentence\nlistening: grpc://127.0.0.1:4\nlistening: ws://127.0.0.1:6\n"
    assert bench.parse_urls(jina, "listening: ") == {"grpc": "grpc://127.0.0.1:4", "websocket": "ws://127.0.0.1:6"}


def test_clients_alternate_and_rotate_and_stdjson_only_on_reference_http() -> None:
    grpc = bench.Cell("reference", "grpc", "sentences", 8)
    http = bench.Cell("reference", "http", "sentences", 8)
    jina_http = bench.Cell("jina", "http", "sentences", 8)
    assert bench.clients_for(grpc, 0, True) == ["aclip", "upstream"]
    assert bench.clients_for(grpc, 1, True) == ["upstream", "aclip"]
    assert bench.clients_for(http, 1, True) == ["upstream", "aclip-stdjson", "aclip"]
    assert bench.clients_for(http, 0, False) == ["aclip", "upstream"]
    assert bench.clients_for(jina_http, 0, True) == ["aclip", "upstream"]


def test_summarize_takes_medians_and_checks_the_embeddings_agree() -> None:
    runs = [_run("aclip", us, rep=i) for i, us in enumerate((10.0, 30.0, 20.0))]
    runs += [_run("upstream", us, rep=i) for i, us in enumerate((200.0, 300.0, 250.0))]
    [row] = bench.summarize(runs)
    assert row.stats["aclip"].cpu_us_per_doc == pytest.approx(20.0)
    assert row.stats["aclip"].cpu_spread == pytest.approx(1.0)
    assert row.stats["upstream"].docs_per_s == pytest.approx(2000.0)
    assert bench.cpu_advantage(row) == pytest.approx(12.5)
    assert row.same_embeddings
    [other] = bench.summarize([_run("aclip", 10.0), _run("upstream", 100.0, checksum=2.5)])
    assert not other.same_embeddings


def test_summarize_stacks_drops_waiting_and_shares_the_rest() -> None:
    raw = "\n".join(
        [
            "run (asyncio/base_events.py:1);_receive_all (aclip/_streaming.py:5);decode_ndarray (aclip/_codec.py:9) 6",
            "run (asyncio/base_events.py:1);_receive_all (aclip/_streaming.py:5);read (grpclib/protocol.py:3) 2",
            "run (asyncio/base_events.py:1);EpollSelector.select (selectors.py:2) 50",
            "child_profile (bench.py:7) 40",
            "_bootstrap (threading.py:1);Condition.wait (threading.py:3) 30",
            "run (asyncio/base_events.py:1);_run_once (asyncio/base_events.py:3) 2",
        ]
    )
    summary = bench.summarize_stacks(raw)
    assert summary["samples"] == 10
    assert summary["dropped"] == 120
    assert summary["self"][0] == ("aclip/_codec.py:decode_ndarray", pytest.approx(0.6))
    assert dict(summary["areas"]) == pytest.approx(
        {"aclip": 0.6, "grpclib / h2 / hpack": 0.2, "asyncio, ssl, selectors": 0.2}
    )
    assert dict(summary["aclip_inclusive"])["aclip/_streaming.py:_receive_all"] == pytest.approx(0.8)


def _report() -> Dict[str, Any]:
    measurements: List[Any] = []
    for protocol, ours in (("grpc", 20.0), ("http", 40.0), ("websocket", 5.0)):
        cell = bench.Cell("reference", protocol, "sentences", 32)
        measurements += [_run("aclip", ours, cell=cell), _run("upstream", 200.0, cell=cell)]
    http = bench.Cell("reference", "http", "sentences", 32)
    measurements.append(_run("aclip-stdjson", 100.0, cell=http))
    profile = bench.summarize_stacks("a (aclip/_codec.py:1) 3\nb (h2/connection.py:2) 1")
    profile.update(cell=vars(bench.PROFILE_CELLS[0]), count=1000, rounds=3, cpu_us_per_doc=21.0, py_spy_status=0)
    return {
        "config": {"sentences": 1000, "images": 10, "image_size": 48, "batch_sizes": [32], "reps": 1, "import_reps": 1},
        "machine": {
            "cpus": 2,
            "cpu_model": "test",
            "python": "3.11",
            "platform": "test",
            "load_average": [0.5, 0.5, 0.5],
            "versions": {"aclip": "0"},
        },
        "elapsed_s": 60.0,
        "measurements": [dict(vars(run), cell=vars(run.cell)) for run in measurements],  # as in results.json
        "imports": {"import aclip": [0.01, 0.02, 0.03], "from aclip import Client": [0.2]},
        "profiles": [profile],
    }


def test_the_report_states_each_goal_and_the_profile() -> None:
    text = bench.render_markdown(_report())
    assert "| reference | grpc | 10x | 10.0x / 10.0x / 10.0x | 1/1 |" in text
    assert "| reference | http | 20x | 5.0x / 5.0x / 5.0x | 0/1 |" in text
    assert "| reference | websocket | 10x | 40.0x / 40.0x / 40.0x | 1/1 |" in text
    assert "median 0.020 s, met" in text
    assert "| reference | sentences | 32 | 40.0 | 100.0 | 200.0 | 5.0x | 2.0x |" in text  # with and without orjson
    assert "| `aclip/_codec.py:a` | 75.0% |" in text
    assert "| aclip | 75.0% |" in text


def test_time_in_fresh_process_times_the_statement_only(tmp_path: pathlib.Path) -> None:
    seconds = bench.time_in_fresh_process("import time; time.sleep(0.2)", tmp_path, 60.0)
    assert 0.2 <= seconds < 5.0
    with pytest.raises(bench.BenchError, match="ZeroDivisionError"):
        bench.time_in_fresh_process("1 / 0", tmp_path, 60.0)


@pytest.mark.timeout(120)
def test_one_aclip_run_against_the_reference_server_in_its_own_process(tmp_path: pathlib.Path) -> None:
    with bench.serving("reference", tmp_path) as urls:
        assert set(urls) == {"grpc", "http", "websocket"}
        spec = {"client": "aclip", "url": urls["grpc"], "kind": "sentences", "count": 40, "batch": 16}
        data = bench.run_child("--child-run", dict(spec, images_dir=str(tmp_path)), tmp_path, 60.0)
    assert data["docs"] == 40
    assert data["cpu_s"] > 0 and data["wall_s"] > 0 and data["peak_rss_kib"] > 0
    assert math.isfinite(data["checksum"])
