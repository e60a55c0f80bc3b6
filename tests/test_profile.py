"""profile()'s arithmetic and drawing, without a server: the parts add up, the tree reads like the spec."""

from __future__ import annotations

import importlib.util

import pytest

from aclip import _display
from aclip._pb.jina_pb2 import RouteProto


def route(name: str, start_ns: int, end_ns: int) -> RouteProto:
    hop = RouteProto(executor=name)
    hop.start_time.FromNanoseconds(start_ns)
    hop.end_time.FromNanoseconds(end_ns)
    return hop


def test_breakdown_from_route_timestamps() -> None:
    routes = [route("gateway", 1_000_000_000, 1_004_000_000), route("clip_t", 1_000_500_000, 1_003_500_000)]
    times = _display.breakdown(0.016, routes)
    assert times == pytest.approx(
        {
            "Roundtrip": 16.0,
            "Client-server network": 12.0,
            "Server": 4.0,
            "Gateway-CLIP network": 1.0,
            "CLIP model": 3.0,
        }
    )


def test_breakdown_never_goes_negative() -> None:
    skewed = [route("gateway", 0, 50_000_000), route("clip_t", 0, 80_000_000)]  # claims more than the round trip
    times = _display.breakdown(0.010, skewed)
    assert all(value >= 0 for value in times.values())
    assert times["Server"] == times["Roundtrip"] == pytest.approx(10.0)
    assert _display.breakdown(0.002, [])["Client-server network"] == pytest.approx(2.0)  # no routes: all network


def test_plain_text_tree_without_rich(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    times = {"Roundtrip": 16.0, "Client-server network": 12.0, "Server": 4.0, "Gateway-CLIP network": 0.0,
             "CLIP model": 4.0}  # fmt: skip
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "rich" else real_find_spec(name))
    _display.render(times)
    assert capsys.readouterr().out.splitlines() == [
        "Roundtrip  16ms  100%",
        "├── Client-server network  12ms  75%",
        "└── Server  4ms  25%",
        "    ├── Gateway-CLIP network  0ms  0%",
        "    └── CLIP model  4ms  100%",
    ]
