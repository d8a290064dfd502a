"""Synthetic ExaBGP 5.0.15 JSON with real-like attribute variety, for benchmarks.

Shapes are those ExaBGP 5.0.15 prints (lab NOTES, section 2), spaced as ExaBGP spaces them
(``{ "key": value, ... }``, about 20 % longer than compact JSON; ``spaced=False`` gives compact
lines).  Packing follows the real RIBs measured in the lab NOTES ("Real RIB packing"): 3-6
prefixes per attribute set, most sets small: group sizes are drawn from {1: 50 %, 2-4: 28 %,
5-16: 16 %, 17-50: 6 %} (mean ~5 prefixes per set, between the 2002 RIS full table's 5.65 and
RouteViews' 3.1).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

ENVELOPE = {"exabgp": "5.0.0", "host": "bench", "pid": 1, "ppid": 1, "counter": 0, "type": "update"}
PACKINGS = ("real", "single", "unique")


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
    # /48s (the commonest IPv6 length in the DFZ) in 2a00::/12, clear of special-purpose blocks.
    return f"2a00:{index >> 16 & 0xFFFF:x}:{index & 0xFFFF:x}::/48"


def transit_as(rng: random.Random) -> int:
    """Return a random public 16-bit ASN (no AS_TRANS 23456, no private or documentation ASN)."""
    asn = rng.randint(1, 64000)
    return asn if asn != 23456 else 23457


def spaced_json(value: Any) -> str:
    """Return JSON text spaced the way ExaBGP prints it (``{ "a": 1, "b": [ 2, 3 ] }``)."""
    if type(value) is dict:
        if not value:
            return "{ }"
        return "{ " + ", ".join(f'"{key}": {spaced_json(item)}' for key, item in value.items()) + " }"
    if type(value) is list:
        if not value:
            return "[ ]"
        return "[ " + ", ".join(spaced_json(item) for item in value) + " ]"
    return orjson.dumps(value).decode()


def _dump(doc: dict[str, Any], spaced: bool) -> bytes:
    return spaced_json(doc).encode() if spaced else orjson.dumps(doc)


def _neighbor(peer: str, peer_as: int, **rest: Any) -> dict[str, Any]:
    return {
        "address": {"local": "192.0.2.1", "peer": peer},
        "asn": {"local": 65000, "peer": peer_as},
        "router-id": "192.0.2.254",
        **rest,
    }


def update_lines(
    peer: str,
    count: int,
    family: int = 4,
    seed: int = 1,
    start_time: float = 1.7e9,
    offset: int = 0,
    *,
    packing: str = "real",
    peer_as: int = 65001,
    next_hop: str | None = None,
    spaced: bool = True,
    step: float = 1e-4,
    exclude: frozenset[int] = frozenset(),
) -> list[bytes]:
    """Return ExaBGP JSON lines announcing `count` prefixes from `peer`, grouped by attribute set.

    `packing`: "real" = one UPDATE per attribute set (sizes as `group_sizes`); "single" = the
    same attribute sets, but one prefix per UPDATE (a router that does not pack); "unique" =
    one prefix per UPDATE and a distinct attribute set for every prefix (the lab's worst case).
    Every path starts with `peer_as` (each peer prepends its own AS).  Prefix number i is sent
    at ``start_time + i * step``; the numbers in `exclude` are skipped (sent apart by the caller).
    """
    if packing not in PACKINGS:
        raise ValueError(f"packing: expected one of {', '.join(PACKINGS)}, got {packing!r}")
    rng = random.Random(seed)
    sizes = group_sizes(rng) if packing != "unique" else iter(lambda: 1, 0)
    lines = []
    index = 0
    fam = "ipv4 unicast" if family == 4 else "ipv6 unicast"
    if next_hop is None:
        next_hop = peer if family == 4 else "2001:db8:c0:1::2"
    make = v4_prefix if family == 4 else v6_prefix
    per_line = 1 if packing != "real" else 0
    while index < count:
        size = min(next(sizes), count - index)
        path = [peer_as] + [transit_as(rng) for _ in range(rng.randint(1, 5))]
        attribute: dict[str, Any] = {
            "origin": "igp",
            "as-path": {"0": {"element": "as-sequence", "value": path}},
            "confederation-path": [],
            "med": rng.choice([0, 10, 100]),
            "community": [[65001, rng.randint(1, 400)], [65001, 1001]],
        }
        if rng.random() < 0.3:
            attribute["large-community"] = [[65001, 1, rng.randint(1, 50)]]
        nlri = [{"nlri": make(offset + index + i)} for i in range(size) if offset + index + i not in exclude]
        chunk = per_line or max(1, len(nlri))
        for start in range(0, len(nlri), chunk):
            doc = dict(
                ENVELOPE,
                time=start_time + (index + start) * step,
                counter=len(lines),
                neighbor=_neighbor(
                    peer,
                    peer_as,
                    direction="receive",
                    message={
                        "update": {
                            "attribute": attribute,
                            "announce": {fam: {next_hop: nlri[start : start + chunk]}},
                        }
                    },
                ),
            )
            lines.append(_dump(doc, spaced))
        index += size
    return lines


def route_line(
    peer: str,
    prefixes: list[str],
    path: list[int],
    at: float,
    *,
    peer_as: int = 65001,
    next_hop: str | None = None,
    spaced: bool = True,
) -> bytes:
    """Return one UPDATE announcing `prefixes` (one family) with `path` (empty: the peer's own)."""
    family = 6 if ":" in prefixes[0] else 4
    if next_hop is None:
        next_hop = peer if family == 4 else "2001:db8:c0:1::2"
    attribute: dict[str, Any] = {"origin": "igp"}
    if path:
        attribute["as-path"] = {"0": {"element": "as-sequence", "value": path}}
    attribute["community"] = [[65001, 1001]]
    doc = dict(
        ENVELOPE,
        time=at,
        neighbor=_neighbor(
            peer,
            peer_as,
            direction="receive",
            message={
                "update": {
                    "attribute": attribute,
                    "announce": {
                        f"ipv{family} unicast": {next_hop: [{"nlri": prefix} for prefix in prefixes]}
                    },
                }
            },
        ),
    )
    return _dump(doc, spaced)


def withdraw_lines(
    peer: str,
    numbers: list[int],
    family: int = 4,
    start_time: float = 1.7e9,
    *,
    per_line: int = 1,
    peer_as: int = 65001,
    spaced: bool = True,
    step: float = 1e-4,
) -> list[bytes]:
    """Return ExaBGP JSON lines withdrawing the prefixes numbered `numbers`, `per_line` in each UPDATE."""
    fam = "ipv4 unicast" if family == 4 else "ipv6 unicast"
    make = v4_prefix if family == 4 else v6_prefix
    lines = []
    for index in range(0, len(numbers), per_line):
        nlri = [{"nlri": make(n)} for n in numbers[index : index + per_line]]
        doc = dict(
            ENVELOPE,
            time=start_time + index * step,
            counter=len(lines),
            neighbor=_neighbor(
                peer, peer_as, direction="receive", message={"update": {"withdraw": {fam: nlri}}}
            ),
        )
        lines.append(_dump(doc, spaced))
    return lines


def state_line(peer: str, state: str, at: float = 1.7e9, peer_as: int = 65001, spaced: bool = True) -> bytes:
    """Return a neighbor state line (connected, up, down)."""
    return _dump(
        dict(ENVELOPE, type="state", time=at, neighbor=_neighbor(peer, peer_as, state=state)), spaced
    )


def eor_line(
    peer: str, family: int = 4, at: float = 1.7e9, peer_as: int = 65001, spaced: bool = True
) -> bytes:
    """Return the End-of-RIB line of one family."""
    return _dump(
        dict(
            ENVELOPE,
            time=at,
            neighbor=_neighbor(
                peer,
                peer_as,
                direction="receive",
                message={"eor": {"afi": f"ipv{family}", "safi": "unicast"}},
            ),
        ),
        spaced,
    )
