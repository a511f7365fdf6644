"""Helpers shared by the benchmarks: ports, percentiles, and the gateway as a uvicorn factory."""

from __future__ import annotations

import socket
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (not necessarily sorted); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def gateway_app() -> Any:
    """`uvicorn --factory _common:gateway_app`: the gateway exactly as `omniroute gateway`
    builds and serves it (settings from OMNIROUTE_* variables, the same collector settings),
    so both apps of the throughput bench are served by the same uvicorn command line."""
    from omniroute.services.apps import create_gateway_app
    from omniroute.services.bootstrap import load_settings
    from omniroute.shared.http import prepare_gc_for_serving

    app = create_gateway_app(load_settings())
    prepare_gc_for_serving()
    return app
