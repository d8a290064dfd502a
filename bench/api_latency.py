"""/metrics scrape and prefix lookup latency with full tables loaded, in-process.

    python -m bench.api_latency [--peers 4] [--routes 1000000] [--repeat 50]

Builds a `Daemon` (external ExaBGP mode, state in a temporary directory) exactly as `bgpwatch
run` does, loads `--peers` full tables of `--routes` routes through its pipeline
(`bench.workload`), then times, over `--repeat` calls each (median and worst):

- ``metrics``: `generate_latest` on the daemon's registry: the daemon collector
  (`bgpwatch.api.metrics`), the detection collector, the sink and ingest-lag metrics;
- ``lookup``: `select_routes(daemon, {"lookup": ADDR})` plus its JSON encoding, what
  ``bgpwatch prefixes --lookup ADDR`` asks for, for an IPv4 and an IPv6 address inside the
  tables and one outside them (the longest-prefix match tries every length);
- the same two through HTTP on loopback (aiohttp test server, the real `build_app`).

Prints one JSON object.  Targets: scrape < 100 ms, lookup < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import generate_latest

from bench import synth, workload

METRICS_TARGET_MS = 100.0
LOOKUP_TARGET_MS = 50.0


def _timings(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(samples), 3), "max_ms": round(max(samples), 3)}


async def _http(daemon: Any, addresses: list[str], repeat: int) -> dict[str, Any]:
    from aiohttp.test_utils import TestClient, TestServer

    from bgpwatch.api.server import build_app

    out: dict[str, Any] = {}
    async with TestClient(TestServer(build_app(daemon), host="127.0.0.1")) as client:

        async def timed(path: str) -> dict[str, float]:
            samples = []
            for _ in range(repeat):
                start = time.perf_counter()
                response = await client.get(path)
                await response.read()
                samples.append((time.perf_counter() - start) * 1000)
                if response.status != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status}")
            return {"median_ms": round(statistics.median(samples), 3), "max_ms": round(max(samples), 3)}

        out["metrics"] = await timed("/metrics")
        for address in addresses:
            out[f"lookup {address}"] = await timed(f"/api/v1/prefixes?lookup={address}")
    return out


def run(peers: int, routes: int, repeat: int = 50, v6_share: float = 0.2) -> dict[str, Any]:
    """Run the benchmark; return the report."""
    from bgpwatch.api.server import select_routes
    from bgpwatch.config import load_config_text
    from bgpwatch.daemon import Daemon

    v4, v6 = workload.split(routes, v6_share)
    work = workload.Workload(peers, v4, v6)
    with tempfile.TemporaryDirectory() as tmp:
        # The API is served by a test server on a free port; the configured one is never opened.
        text = work.config_text(tmp, f"storage: {{path: {Path(tmp) / 'bgpwatch.db'}}}\n")
        daemon = Daemon(load_config_text(text, "<bench>"))
        try:
            feed = daemon.pipeline.feed_line
            cpu = time.process_time()
            for index in range(peers):
                for lines in work.table_batches(index):
                    for line in lines:
                        feed(line, "relay", 0)
            load_s = time.process_time() - cpu
            addresses = [
                synth.v4_prefix(max(0, v4 // 2)).replace(".0/24", ".77"),
                synth.v6_prefix(max(0, v6 // 2)).replace("::/48", "::77") if v6 else "2a00::77",
                "198.51.100.77",
            ]
            body = generate_latest(daemon.registry)
            direct: dict[str, Any] = {"metrics": _timings(lambda: generate_latest(daemon.registry), repeat)}
            found = {}
            for address in addresses:

                def lookup(address: str = address) -> bytes:
                    return orjson.dumps(select_routes(daemon, {"lookup": address}))

                direct[f"lookup {address}"] = _timings(lookup, repeat)
                found[address] = len(select_routes(daemon, {"lookup": address}))
            http = asyncio.run(_http(daemon, addresses, repeat))
            total = sum(len(adj) for adj in daemon.pipeline.rib.peers.values())
        finally:
            daemon.store.close()
    lookups = [
        v["median_ms"]
        for k, v in {**direct, **{f"http {k}": v for k, v in http.items()}}.items()
        if "lookup" in k
    ]
    report = {
        "bench": "api_latency",
        "machine": workload.machine(),
        "peers": peers,
        "routes_per_peer": work.routes,
        "adj_rib_in_routes": total,
        "load_cpu_s": round(load_s, 2),
        "metrics_body_bytes": len(body),
        "routes_found": found,
        "direct": direct,
        "http": http,
        "targets": {
            "metrics_ms": METRICS_TARGET_MS,
            "lookup_ms": LOOKUP_TARGET_MS,
            "metrics_met": max(direct["metrics"]["median_ms"], http["metrics"]["median_ms"])
            < METRICS_TARGET_MS,
            "lookup_met": max(lookups) < LOOKUP_TARGET_MS,
        },
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--routes", type=int, default=1_000_000, help="routes per peer (default 1M)")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--v6-share", type=float, default=0.2)
    args = parser.parse_args(argv)
    report = run(args.peers, args.routes, args.repeat, args.v6_share)
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
