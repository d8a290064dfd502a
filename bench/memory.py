"""Memory per Adj-RIB-In route: `--peers` full tables through the pipeline, as `bgpwatch run` holds them.

    python -m bench.memory [--peers 4] [--routes 1000000] [--packing real] [--no-tracemalloc]
    python -m bench.memory --packing lab [--routes 1000000] [--group 4]

`--packing lab` is the lab's BIRD table instead (bench/e2e.py): one peer, IPv4 from
198.18.0.0/15 (the /32s, then /31s...: at most 262,143) and the rest IPv6 /56s from
2001:db8:4000::/34, `--group` consecutive routes per UPDATE sharing one attribute set: the
peer's AS as the path, one community and a distinct large community per group, as BIRD sends
them to the collector (so 1M routes at 4 per set are 250k distinct attribute sets).

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
import ipaddress
import os
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from bench import synth, workload
from bench.pipeline import build_pipeline
from bgpwatch.config import Config, load_config_text
from bgpwatch.pipeline import Pipeline

TARGET = 200  # bytes per Adj-RIB-In route
LAB_TARGET = 190  # the lab table: BIRD's own figure for it
SITE_PREFIXES = ("203.0.113.0/24", "2001:db8:1::/48")  # the lab table's site, outside the bulk ranges
LAB_V4_CAPACITY = (1 << 18) - 1  # prefixes of 198.18.0.0/15, every length
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def _lab_prefixes(v4: int, v6: int) -> list[tuple[int, list[str]]]:
    """Return the lab's bulk prefixes by family (tests/lab/netlab.py's ranges)."""
    texts: list[str] = []
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    for length in range(32, 14, -1):
        step = 1 << (32 - length)
        for number in range(1 << (length - 15)):
            if len(texts) == v4:
                break
            texts.append(f"{ipaddress.IPv4Address(base + number * step)}/{length}")
    base6 = int(ipaddress.IPv6Address("2001:db8:4000::"))
    texts6 = [f"{ipaddress.IPv6Address(base6 + (n << 72))}/56" for n in range(v6)]
    return [(4, texts), (6, texts6)]


@dataclass
class LabTable:
    """The lab's BIRD bulk table as ExaBGP prints it: one peer, `group` routes per attribute set."""

    v4: int
    v6: int
    group: int = 4
    peers: int = 1

    @property
    def routes(self) -> int:
        return self.v4 + self.v6

    def config(self) -> Config:
        # As bench/e2e.py configures the lab's daemon: a site with its own prefixes (so the session's
        # table is awaited up to its End-of-RIB, as live), the bulk ranges no bogons.
        address, asn = workload.peer_address(0), workload.peer_as(0)
        text = (
            "collector: {local_as: 65000, router_id: 192.0.2.254, exabgp: external}\n"
            f"sites:\n  - name: site1\n    prefixes: [{', '.join(SITE_PREFIXES)}]\n"
            f"    peers: [{{name: rr1, address: {address}, peer_as: {asn}, local_as: {asn}}}]\n"
            "detectors: {bogon_route: {ignore_prefixes: [198.18.0.0/15, 2001:db8:4000::/34]}}\n"
        )
        return load_config_text(text, "<bench>")

    def table_batches(self, index: int, batch: int = 50_000) -> Iterator[list[bytes]]:
        address, asn = workload.peer_address(index), workload.peer_as(index)
        at = workload.T0
        yield [synth.state_line(address, "up", at, asn)]
        lines: list[bytes] = [
            synth.route_line(address, [prefix], [asn], at=at, peer_as=asn) for prefix in SITE_PREFIXES
        ]
        for family, texts in _lab_prefixes(self.v4, self.v6):
            next_hop = address if family == 4 else workload.v6_next_hop(index)
            fam = f"ipv{family} unicast"
            for number, start in enumerate(range(0, len(texts), self.group)):
                attribute = {
                    "origin": "igp",
                    "as-path": {"0": {"element": "as-sequence", "value": [asn]}},
                    "confederation-path": [],
                    "community": [[asn, 200]],
                    "large-community": [[asn, family, number]],
                }
                nlri = [{"nlri": text} for text in texts[start : start + self.group]]
                at += workload.STEP * len(nlri)
                doc = dict(
                    synth.ENVELOPE,
                    time=at,
                    neighbor=synth._neighbor(
                        address,
                        asn,
                        direction="receive",
                        message={"update": {"attribute": attribute, "announce": {fam: {next_hop: nlri}}}},
                    ),
                )
                lines.append(synth.spaced_json(doc).encode())
                if len(lines) >= batch:
                    yield lines
                    lines = []
        lines += [synth.eor_line(address, 4, at, asn), synth.eor_line(address, 6, at, asn)]
        yield lines


def load(work: workload.Workload | LabTable, batch: int) -> tuple[Pipeline, float]:
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
    group: int = 4,
) -> dict[str, Any]:
    """Run the benchmark; return the report."""
    work: workload.Workload | LabTable
    if packing == "lab":
        v4 = min(routes, LAB_V4_CAPACITY)
        work = LabTable(v4, routes - v4, max(1, group))
        peers = 1
    else:
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
    target = LAB_TARGET if packing == "lab" else TARGET
    report["target_bytes_per_route"] = target
    report["target_met"] = per_route <= target
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--routes", type=int, default=1_000_000, help="routes per peer (default 1M)")
    parser.add_argument("--packing", choices=("real", "single", "unique", "lab"), default="real")
    parser.add_argument("--group", type=int, default=4, help="lab: routes per attribute set")
    parser.add_argument("--v6-share", type=float, default=0.2)
    parser.add_argument("--no-tracemalloc", action="store_true", help="RSS only (half the run time)")
    args = parser.parse_args(argv)
    report = run(
        args.peers, args.routes, args.packing, args.v6_share, not args.no_tracemalloc, group=args.group
    )
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
