"""Synthetic ExaBGP 5.0.15 JSON with real-like attribute variety, for benchmarks.

Shapes are those ExaBGP 5.0.15 prints (lab NOTES, section 2).  Packing follows the real
RIBs measured in the lab NOTES ("Real RIB packing"): 3-6 prefixes per attribute set, most
sets small: group sizes are drawn from {1: 50 %, 2-4: 28 %, 5-16: 16 %, 17-50: 6 %}
(mean ~5 prefixes per set, between the 2002 RIS full table's 5.65 and RouteViews' 3.1).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson

ENVELOPE = {"exabgp": "5.0.0", "host": "bench", "pid": 1, "ppid": 1, "counter": 0, "type": "update"}


def group_sizes(rng: random.Random) -> Iterator[int]:
    """Yield attribute-set sizes with the real-RIB distribution."""
    while True:
        roll = rng.random()
        if roll < 0.50:
            yield 1
        elif roll < 0.78:
            yield rng.randint(2, 4)
        elif roll < 0.94:
            yield rng.randint(5, 16)
        else:
            yield rng.randint(17, 50)


def v4_prefix(index: int) -> str:
    # /24s from 20.0.0.0 upward, as the lab's throughput runs did.
    base = (20 << 24) + (index << 8)
    return f"{base >> 24 & 255}.{base >> 16 & 255}.{base >> 8 & 255}.0/24"


def v6_prefix(index: int) -> str:
    return f"2001:db8:{index >> 16 & 0xFFFF:x}:{index & 0xFFFF:x}::/64"


def update_lines(
    peer: str, count: int, family: int = 4, seed: int = 1, start_time: float = 1.7e9, offset: int = 0
) -> list[bytes]:
    """Return ExaBGP JSON lines announcing `count` prefixes from `peer`, grouped by attribute set."""
    rng = random.Random(seed)
    sizes = group_sizes(rng)
    lines = []
    index = 0
    fam = "ipv4 unicast" if family == 4 else "ipv6 unicast"
    next_hop = peer if family == 4 else "2001:db8:c0:1::2"
    make = v4_prefix if family == 4 else v6_prefix
    while index < count:
        size = min(next(sizes), count - index)
        path = [65001] + [rng.randint(1, 64000) for _ in range(rng.randint(1, 5))]
        attribute = {
            "origin": "igp",
            "as-path": {"0": {"element": "as-sequence", "value": path}},
            "confederation-path": [],
            "med": rng.choice([0, 10, 100]),
            "community": [[65001, rng.randint(1, 400)], [65001, 1001]],
        }
        if rng.random() < 0.3:
            attribute["large-community"] = [[65001, 1, rng.randint(1, 50)]]
        nlri = [{"nlri": make(offset + index + i)} for i in range(size)]
        doc = dict(
            ENVELOPE,
            time=start_time + index * 1e-4,
            counter=len(lines),
            neighbor={
                "address": {"local": "192.0.2.1", "peer": peer},
                "asn": {"local": 65000, "peer": 65001},
                "router-id": "192.0.2.254",
                "direction": "receive",
                "message": {"update": {"attribute": attribute, "announce": {fam: {next_hop: nlri}}}},
            },
        )
        lines.append(orjson.dumps(doc))
        index += size
    return lines


def state_line(peer: str, state: str, at: float = 1.7e9) -> bytes:
    return orjson.dumps(
        dict(
            ENVELOPE,
            type="state",
            time=at,
            neighbor={
                "address": {"local": "192.0.2.1", "peer": peer},
                "asn": {"local": 65000, "peer": 65001},
                "state": state,
            },
        )
    )


def eor_line(peer: str, family: int = 4, at: float = 1.7e9) -> bytes:
    return orjson.dumps(
        dict(
            ENVELOPE,
            time=at,
            neighbor={
                "address": {"local": "192.0.2.1", "peer": peer},
                "asn": {"local": 65000, "peer": 65001},
                "direction": "receive",
                "message": {"eor": {"afi": f"ipv{family}", "safi": "unicast"}},
            },
        )
    )
