"""The benchmarks' common workload: N peers each sending a full table, and the config naming them.

Every peer announces the same prefixes (full tables overlap: IPv4 /24s from 20.0.0.0, IPv6
/48s in 2a00::/12), each with its own attributes: its own AS first in every path, its own next
hop, its own random draw of paths, MEDs and communities (`bench.synth`, real-like packing).
Each of the N sites owns a few of the announced prefixes at two lengths per family (a /22 and
a /24, a /44 and a /48), originated by the site's AS, so the topology and the route-level
detectors count some routes and map every other one with a lookup per distinct site-prefix
length, as in production, and a healthy load fires no alert.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench import synth
from bgpwatch.config import Config, load_config_text
from bgpwatch.rib.prefix import format_prefix, parse_prefix

T0 = 1.7e9
STEP = 1e-4  # stream seconds between prefixes of a table load (10k prefixes/s, as the lab's BIRD)
CHURN_STEP = 2e-3  # after End-of-RIB: 500 prefix updates/s per peer (under update_storm's floor)


def peer_address(index: int) -> str:
    return f"192.0.2.{4 * index + 2}"


def peer_as(index: int) -> int:
    return 65001 + index


def v6_next_hop(index: int) -> str:
    return f"2001:db8:c0:{index + 1:x}::2"


def split(routes: int, v6_share: float) -> tuple[int, int]:
    """Return (IPv4, IPv6) prefix counts of a table of `routes` routes."""
    v6 = int(routes * v6_share)
    return routes - v6, v6


@dataclass
class Workload:
    """`peers` peers with a table of `v4` + `v6` prefixes each, packed as `packing` says."""

    peers: int
    v4: int
    v6: int
    packing: str = "real"
    spaced: bool = True
    # site -> family -> (site prefix texts, announced prefix numbers inside them)
    sites: list[dict[int, tuple[list[str], list[int]]]] = field(init=False)

    def __post_init__(self) -> None:
        self.sites = [self._site(i) for i in range(self.peers)]
        self.site_numbers = {
            family: frozenset(n for site in self.sites for n in site.get(family, ((), ()))[1])
            for family in (4, 6)
        }

    def _site(self, index: int) -> dict[int, tuple[list[str], list[int]]]:
        step = self.peers + 1
        site: dict[int, tuple[list[str], list[int]]] = {}
        if self.v4 >= 64:
            base = ((index + 1) * self.v4 // step) & ~3
            _, key = parse_prefix(synth.v4_prefix(base))
            texts = [format_prefix(4, ((key >> 8) << 8) | 22), synth.v4_prefix(base + 8)]
            site[4] = (texts, [base, base + 1, base + 2, base + 3, base + 8])
        if self.v6 >= 64:
            base = ((index + 1) * self.v6 // step) & ~15
            _, key = parse_prefix(synth.v6_prefix(base))
            texts = [format_prefix(6, ((key >> 8) << 8) | 44), synth.v6_prefix(base + 16)]
            site[6] = (texts, [*range(base, base + 16), base + 16])
        return site

    @property
    def routes(self) -> int:
        return self.v4 + self.v6

    def config_text(self, runtime_dir: str | None = None, extra: str = "") -> str:
        """Return the YAML of a config with one site (and one iBGP peer) per synthetic peer."""
        runtime = f", runtime_dir: {runtime_dir}" if runtime_dir else ""
        lines = [
            f"collector: {{local_as: 65000, router_id: 192.0.2.254, exabgp: external{runtime}}}",
            "sites:",
        ]
        for i, site in enumerate(self.sites):
            prefixes = ", ".join(text for texts, _ in site.values() for text in texts)
            lines.append(f"  - name: site{i + 1}")
            lines.append(f"    prefixes: [{prefixes}]")
            lines.append(
                f"    peers: [{{name: rr{i + 1}, address: {peer_address(i)}, "
                f"peer_as: {peer_as(i)}, local_as: {peer_as(i)}}}]"
            )
        return "\n".join(lines) + "\n" + extra

    def config(self) -> Config:
        """Return the validated config of the workload (through the real loader)."""
        return load_config_text(self.config_text(), "<bench>")

    def start(self, index: int) -> float:
        return T0 + index * (self.routes * STEP + 10.0)

    def _site_routes(self, index: int, family: int, at: float) -> list[bytes]:
        """Return peer `index`'s routes to the sites' prefixes (originated by each site's AS)."""
        make = synth.v4_prefix if family == 4 else synth.v6_prefix
        lines = []
        for owner, site in enumerate(self.sites):
            if family not in site:
                continue
            path = [] if owner == index else [peer_as(index), peer_as(owner)]
            prefixes = [make(n) for n in site[family][1]]
            per_line = len(prefixes) if self.packing == "real" else 1
            for start in range(0, len(prefixes), per_line):
                lines.append(
                    synth.route_line(
                        peer_address(index),
                        prefixes[start : start + per_line],
                        path,
                        at,
                        peer_as=peer_as(index),
                        next_hop=None if family == 4 else v6_next_hop(index),
                        spaced=self.spaced,
                    )
                )
        return lines

    def table_batches(self, index: int, batch: int = 50_000) -> Iterator[list[bytes]]:
        """Yield peer `index`'s session up, table (IPv4 then IPv6) and End-of-RIBs, in batches."""
        address, asn = peer_address(index), peer_as(index)
        start = self.start(index)
        yield [synth.state_line(address, "up", start, asn, self.spaced)]
        for family, count, first in ((4, self.v4, 0), (6, self.v6, self.v4)):
            if not count:
                continue
            for offset in range(0, count, batch):
                size = min(batch, count - offset)
                yield synth.update_lines(
                    address,
                    size,
                    family,
                    (1 + 2 * index) * 1_000_003 + offset + family,
                    start + (first + offset) * STEP,
                    offset,
                    packing=self.packing,
                    peer_as=asn,
                    next_hop=None if family == 4 else v6_next_hop(index),
                    spaced=self.spaced,
                    exclude=self.site_numbers[family],
                )
            yield self._site_routes(index, family, start + (first + count) * STEP)
        end = start + self.routes * STEP + 0.01
        yield [
            synth.eor_line(address, 4, end, asn, self.spaced),
            synth.eor_line(address, 6, end, asn, self.spaced),
        ]

    def table_lines(self, index: int) -> list[bytes]:
        """Return peer `index`'s whole table load as one list of lines."""
        return [line for batch in self.table_batches(index, batch=max(1, self.routes)) for line in batch]

    def churn_lines(self, index: int, share: float = 0.1) -> list[bytes]:
        """Return post-End-of-RIB churn: `share` of the IPv4 table re-announced with new paths, half as many withdrawn."""
        address, asn = peer_address(index), peer_as(index)
        start = self.start(index) + self.routes * STEP + 5.0
        count = max(1, int(self.v4 * share))
        lines = synth.update_lines(
            address,
            count,
            4,
            1000 + index,
            start,
            packing=self.packing,
            peer_as=asn,
            spaced=self.spaced,
            step=CHURN_STEP,
            exclude=self.site_numbers[4],
        )
        withdrawn = max(1, count // 2)
        numbers = [n for n in range(count, count + withdrawn) if n not in self.site_numbers[4]]
        lines += synth.withdraw_lines(
            address,
            numbers,
            4,
            start + count * CHURN_STEP,
            per_line=1 if self.packing != "real" else 5,
            peer_as=asn,
            spaced=self.spaced,
            step=CHURN_STEP,
        )
        return lines


def prefix_events(lines: list[bytes]) -> int:
    """Return the number of prefixes announced or withdrawn in ExaBGP lines (counted on the text)."""
    return sum(line.count(b'"nlri"') for line in lines)


def machine() -> dict[str, Any]:
    """Return what the figures depend on: CPUs, load, interpreter, date."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "cpu_model": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
