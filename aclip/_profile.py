"""profile(): where the time of one request goes, from the server's own route timestamps.

The gateway's route spans the server's whole handling of the request; the model's route (the last hop)
spans the model alone. So: server = gateway span, model = model span, gateway-to-model network = server -
model, client-server network = round trip - server. Durations come from one clock each, so the client's
and the server's clocks need not agree.
"""

from __future__ import annotations

import importlib.util
from typing import Dict, List, Sequence

from ._pb.jina_pb2 import RouteProto

#: (key, label, parent key) of each line of the tree, in display order.
_LINES = (
    ("roundtrip", "Roundtrip", None),
    ("client_server_network", "Client-server network", "roundtrip"),
    ("server", "Server", "roundtrip"),
    ("gateway_clip_network", "Gateway-CLIP network", "server"),
    ("clip_model", "CLIP model", "server"),
)


def _span_ms(route: RouteProto) -> float:
    if not (route.HasField("start_time") and route.HasField("end_time")):
        return 0.0
    nanos: int = route.end_time.ToNanoseconds() - route.start_time.ToNanoseconds()
    return max(nanos, 0) / 1e6


def breakdown(roundtrip_seconds: float, routes: Sequence[RouteProto]) -> Dict[str, float]:
    """Milliseconds for each part; parts the server did not report (no routes) count as network.

    Example::

        breakdown(0.016, response.routes)
        # {'roundtrip': 16.0, 'client_server_network': 12.0, 'server': 4.0, ...}
    """
    roundtrip = max(roundtrip_seconds, 0.0) * 1e3
    server = min(_span_ms(routes[0]), roundtrip) if routes else 0.0
    model = min(_span_ms(routes[-1]), server) if len(routes) > 1 else 0.0
    return {
        "roundtrip": roundtrip,
        "client_server_network": roundtrip - server,
        "server": server,
        "gateway_clip_network": server - model,
        "clip_model": model,
    }


def _percent(part: float, whole: float) -> int:
    return round(100 * part / whole) if whole > 0 else 0


def tree_lines(times: Dict[str, float]) -> List[str]:
    """The tree as plain text lines, e.g. ``"├── Client-server network  12ms  75%"``."""
    lines = []
    for key, label, parent in _LINES:
        value = times[key]
        share = _percent(value, times[parent]) if parent else 100
        prefix = {None: "", "roundtrip": "├── " if key != "server" else "└── ", "server": "    "}[parent]
        if parent == "server":
            prefix += "├── " if key != "clip_model" else "└── "
        lines.append(f"{prefix}{label}  {value:.0f}ms  {share}%")
    return lines


def render(times: Dict[str, float]) -> None:
    """Print the tree: with rich when it is installed, as plain text otherwise."""
    if importlib.util.find_spec("rich") is None:
        print("\n".join(tree_lines(times)))
        return
    from rich import print as rich_print
    from rich.tree import Tree

    def label(key: str, text: str, parent: str | None) -> str:
        share = _percent(times[key], times[parent]) if parent else 100
        return f"[bold]{text}[/]  {times[key]:.0f}ms  {share}%"

    root = Tree(label("roundtrip", "Roundtrip", None))
    root.add(label("client_server_network", "Client-server network", "roundtrip"))
    server = root.add(label("server", "Server", "roundtrip"))
    server.add(label("gateway_clip_network", "Gateway-CLIP network", "server"))
    server.add(label("clip_model", "CLIP model", "server"))
    rich_print(root)
