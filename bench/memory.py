"""Memory per Adj-RIB-In route: `--peers` full tables through the pipeline, as `bgpwatch run` holds them.

    python -m bench.memory [--peers 4] [--routes 1000000] [--packing real] [--no-tracemalloc]

Each peer sends `--routes` prefixes (80 % IPv4 /24, 20 % IPv6 /48; every peer the same
prefixes with its own paths and next hop, ~5 prefixes per attribute set, a few communities,
~30 % with a large community: `bench.workload`).  Lines are generated in batches and fed to a
`Pipeline` with its `DetectionEngine`, so the figure includes everything the daemon keeps for
a route: the RIB's tables and interned attribute sets, the parser's caches, the topology and
the detectors' state.  Two measurements:

- RSS growth (``/proc/self/statm``) from before the pipeline exists to after the load, per route;
- tracemalloc (a second, separate load, traced from the start): bytes still allocated per
  route, split by the source file that allocated them.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from collections import Counter
from typing import Any

import orjson

from bench import workload
from bench.pipeline import build_pipeline
from bgpwatch.pipeline import Pipeline

TARGET = 200  # bytes per Adj-RIB-In route
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def load(work: workload.Workload, batch: int) -> tuple[Pipeline, float]:
    """Feed every peer's table to a fresh pipeline; return it and the CPU seconds it took."""
    pipeline = build_pipeline(work.config())
    feed = pipeline.feed_line
    cpu = 0.0
    for index in range(work.peers):
        for lines in work.table_batches(index, batch):
            start = time.process_time()
            for line in lines:
                feed(line, "relay", 0)
            cpu += time.process_time() - start
    return pipeline, cpu


def _routes(pipeline: Pipeline) -> int:
    return sum(len(adj) for adj in pipeline.rib.peers.values())


def _structure(pipeline: Pipeline) -> dict[str, Any]:
    """Return sizes that explain the figure (tables' own dicts, attribute sets, caches)."""
    tables = sum(sys.getsizeof(t) for adj in pipeline.rib.peers.values() for t in adj.tables.values())
    parser = pipeline.parser
    prefix_cache = getattr(parser, "_prefix_cache", None)
    return {
        "attribute_sets": len(pipeline.pool),
        "routes_per_attribute_set": round(_routes(pipeline) / max(1, len(pipeline.pool)), 2),
        "table_dicts_bytes_per_route": round(tables / max(1, _routes(pipeline)), 1),
        "prefix_cache_entries": sum(len(c) for c in prefix_cache.values()) if prefix_cache else 0,
    }


def run(
    peers: int,
    routes: int,
    packing: str = "real",
    v6_share: float = 0.2,
    traced: bool = True,
    batch: int = 50_000,
) -> dict[str, Any]:
    """Run the benchmark; return the report."""
    v4, v6 = workload.split(routes, v6_share)
    work = workload.Workload(peers, v4, v6, packing)
    work.config()  # imports and builds everything once, outside the measurement
    gc.collect()
    before = rss_bytes()
    pipeline, cpu = load(work, batch)
    gc.collect()
    after = rss_bytes()
    total = _routes(pipeline)
    report: dict[str, Any] = {
        "bench": "memory",
        "machine": workload.machine(),
        "peers": peers,
        "routes_per_peer": work.routes,
        "packing": packing,
        "adj_rib_in_routes": total,
        "rss_growth_bytes": after - before,
        "rss_bytes_per_route": round((after - before) / max(1, total), 1),
        "load_cpu_s": round(cpu, 2),
        "load_rate": round(total / cpu) if cpu else None,
        **_structure(pipeline),
    }
    del pipeline
    gc.collect()
    if traced:
        tracemalloc.start()
        pipeline, _ = load(work, batch)
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        current, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        by_file: Counter[str] = Counter()
        for stat in snapshot.statistics("filename"):
            name = stat.traceback[0].filename
            for marker in ("bgpwatch/", "bench/", "site-packages/", "python3"):
                if marker in name:
                    name = name[name.index(marker) :]
                    break
            by_file[name] += stat.size
        total = _routes(pipeline)
        report["tracemalloc_bytes_per_route"] = round(current / max(1, total), 1)
        report["tracemalloc_by_file_bytes_per_route"] = {
            name: round(size / max(1, total), 1) for name, size in by_file.most_common(8)
        }
        del pipeline
    per_route = report["rss_bytes_per_route"]
    report["target_bytes_per_route"] = TARGET
    report["target_met"] = per_route <= TARGET
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--routes", type=int, default=1_000_000, help="routes per peer (default 1M)")
    parser.add_argument("--packing", choices=("real", "single", "unique"), default="real")
    parser.add_argument("--v6-share", type=float, default=0.2)
    parser.add_argument("--no-tracemalloc", action="store_true", help="RSS only (half the run time)")
    args = parser.parse_args(argv)
    report = run(args.peers, args.routes, args.packing, args.v6_share, not args.no_tracemalloc)
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
