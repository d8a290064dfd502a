"""BMP ingest speed: the same real UPDATEs through bgpwatch's BMP decoder, its MRT reader and ``bgpdump -m``.

The UPDATEs are the BGP4MP MESSAGE_AS4 records of a real MRT updates file (default: RIPE RIS rrc01,
2024-10-01 00:55, fixtures/mrt/dfz_name_and_shame).  From them the bench writes, in a temporary
directory, (1) a plain MRT file of just those records and (2) a BMP stream: an Initiation, one Peer
Up per RIS peer (4-octet AS on both sides, IPv4+IPv6 multiprotocol) before its first UPDATE, then one
pre-policy Route Monitoring message per UPDATE.  Then, on one core (the process and bgpdump pinned
to the first usable CPU), alternately ``--repeat`` times:

* ``bmp``: `BmpParser.parse` on every message (framed with `message_length` as the station does),
  events with interned attributes;
* ``pipeline``: the same messages through `Pipeline.feed_bmp` wired as the daemon wires it (a
  `DetectionEngine` consumer, the router a configured BMP router of a site): decoding, the BMP views'
  RIB, the monitored-session table;
* ``mrt``: `MrtReader.read` on the MRT file (the file read and framed too), the same events;
* ``bgpdump``: ``bgpdump -m FILE > /dev/null`` (Debian bgpdump 1.6.2).

Elements are counted as bgpdump prints them (A + W lines: one per prefix announced or withdrawn);
each candidate's rate is elements / its best time, wall and CPU (CPU: this process's
``process_time``, bgpdump's child rusage).  Ratios come from the same run.  ``parity`` says whether
the three count the same elements and BMP and MRT made the same prefix events.

    .venv/bin/python -m bench.bmp_ingest                          # the whole rrc01 file (~185k elements)
    .venv/bin/python -m bench.bmp_ingest --limit 300 --repeat 1   # smoke size
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.pipeline import build_pipeline
from bench.workload import machine
from bgpwatch.config import load_config_text
from bgpwatch.events import Announce, Withdraw
from bgpwatch.ingest.bmp import BmpParser, message_length
from bgpwatch.ingest.mrt import MrtReader, MrtStats, open_decompressed
from bgpwatch.rib.attributes import AttributePool

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = ROOT / "fixtures" / "mrt" / "dfz_name_and_shame" / "rrc01.updates.20241001.0055.gz"
BGP4MP, BGP4MP_ET, MESSAGE_AS4 = 16, 17, 4
ROUTER = ("192.0.2.99", 12654)  # the monitoring router: a RIS collector stand-in (address, AS)
CONFIG = f"""
collector: {{local_as: 65000, router_id: 192.0.2.254}}
sites:
  - name: par1
    prefixes: [203.0.113.0/26]
    peers: [{{name: par1-rr1, address: 192.0.2.2, peer_as: 65001}}]
inputs:
  - type: exabgp
  - type: bmp
    listen: 127.0.0.1:11019
    routers: [{{name: bench-router, site: par1, address: {ROUTER[0]}}}]
"""


def extract(path: Path, limit: int) -> list[tuple[float, int, int, bytes, bytes]]:
    """Return (time, peer AS, local AS, peer address bytes, BGP UPDATE message) of MESSAGE_AS4 UPDATEs."""
    out = []
    with open_decompressed(path) as handle:
        data = handle.read()
    pos = 0
    while pos + 12 <= len(data) and (not limit or len(out) < limit):
        ts, mrt_type, subtype, length = struct.unpack_from("!IHHI", data, pos)
        body = pos + 12
        pos = body + length
        if mrt_type not in (BGP4MP, BGP4MP_ET) or subtype != MESSAGE_AS4:
            continue
        at = float(ts)
        if mrt_type == BGP4MP_ET:
            at += struct.unpack_from("!I", data, body)[0] / 1e6
            body += 4
        peer_as, local_as, _, afi = struct.unpack_from("!IIHH", data, body)
        size = 4 if afi == 1 else 16
        peer_raw = data[body + 12 : body + 12 + size]
        message = data[body + 12 + 2 * size : pos]
        if len(message) >= 19 and message[18] == 2:
            out.append((at, peer_as, local_as, peer_raw, message))
    return out


def write_mrt(records: list[tuple[float, int, int, bytes, bytes]], path: Path) -> None:
    """Write the records as BGP4MP MESSAGE_AS4 (RFC 6396 4.4.3), local address 0."""
    with open(path, "wb") as out:
        for at, peer_as, local_as, peer_raw, message in records:
            afi = 1 if len(peer_raw) == 4 else 2
            body = struct.pack("!IIHH", peer_as, local_as, 0, afi) + peer_raw + bytes(len(peer_raw)) + message
            out.write(struct.pack("!IHHI", int(at), BGP4MP, MESSAGE_AS4, len(body)) + body)


def _bmp(msg_type: int, body: bytes) -> bytes:
    return struct.pack("!BIB", 3, 6 + len(body), msg_type) + body


def _peer_header(peer_raw: bytes, peer_as: int, at: float) -> bytes:
    v6 = len(peer_raw) == 16
    address = peer_raw if v6 else bytes(12) + peer_raw
    bgp_id = peer_raw if not v6 else bytes(4)
    return (
        bytes([0, 0x80 if v6 else 0])
        + bytes(8)
        + address
        + struct.pack("!I", peer_as)
        + bgp_id
        + struct.pack("!II", int(at), 0)
    )


def _open(asn: int, bgp_id: bytes) -> bytes:
    caps = (
        bytes([1, 4, 0, 1, 0, 1])  # multiprotocol IPv4 unicast
        + bytes([1, 4, 0, 2, 0, 1])  # IPv6 unicast
        + bytes([65, 4])
        + struct.pack("!I", asn)
    )
    params = bytes([2, len(caps)]) + caps
    my_as = asn if asn < 65536 else 23456
    body = struct.pack("!BHH4sB", 4, my_as, 180, bgp_id, len(params)) + params
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 1) + body


def bmp_stream(records: list[tuple[float, int, int, bytes, bytes]]) -> list[bytes]:
    """Return the BMP messages: Initiation, a Peer Up per peer before its first UPDATE, Route Monitoring."""
    sys_name = b"bench-router"
    messages = [_bmp(4, struct.pack("!HH", 2, len(sys_name)) + sys_name)]
    up: set[bytes] = set()
    router_id = ipaddress.IPv4Address(ROUTER[0]).packed
    for at, peer_as, _, peer_raw, message in records:
        header = _peer_header(peer_raw, peer_as, at)
        if peer_raw not in up:
            up.add(peer_raw)
            local = bytes(16) if len(peer_raw) == 16 else bytes(12) + router_id
            ports = struct.pack("!HH", 179, 179)
            opens = _open(ROUTER[1], router_id) + _open(peer_as, header[34:38])
            messages.append(_bmp(3, header + local + ports + opens))
        messages.append(_bmp(0, header + message))
    return messages


def _prefixes(events: list) -> Counter[str]:
    counts: Counter[str] = Counter()
    for event in events:
        if isinstance(event, Announce):
            counts[f"announce{event.family}"] += len(event.prefixes)
        elif isinstance(event, Withdraw):
            counts[f"withdraw{event.family}"] += len(event.prefixes)
    return counts


def run_bmp(stream: bytes) -> tuple[float, float, int, Counter[str]]:
    """Decode the BMP stream; return (wall s, CPU s, elements, prefix events by kind)."""
    parser = BmpParser(AttributePool())
    events: list = []
    wall, cpu = time.perf_counter(), time.process_time()
    parser.connect("bench", ROUTER[0], 0.0)
    parse = parser.parse
    extend = events.extend
    pos, size = 0, len(stream)
    while pos < size:
        end = pos + message_length(stream[pos : pos + 6])
        extend(parse("bench", stream[pos:end], 1.0))
        pos = end
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = parser.update_stats
    return wall, cpu, stats.announcements + stats.withdrawals, _prefixes(events)


def run_pipeline(stream: bytes) -> tuple[float, float, int, int]:
    """Feed the BMP stream to a daemon-wired pipeline; return (wall s, CPU s, rejected, routes in its views)."""
    pipeline = build_pipeline(load_config_text(CONFIG, "<bench>"))
    wall, cpu = time.perf_counter(), time.process_time()
    pipeline.bmp_connected("bench", ROUTER[0], 0.0)
    feed = pipeline.feed_bmp
    rejected = 0
    pos, size = 0, len(stream)
    while pos < size:
        end = pos + message_length(stream[pos : pos + 6])
        rejected += not feed("bench", stream[pos:end], 1.0)
        pos = end
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, rejected, sum(len(view) for view in pipeline.bmp_rib.peers.values())


def run_mrt(path: Path) -> tuple[float, float, int, Counter[str]]:
    """Read the MRT file; return (wall s, CPU s, elements, prefix events by kind)."""
    stats = MrtStats()
    wall, cpu = time.perf_counter(), time.process_time()
    events = list(MrtReader(AttributePool(), stats).read(path))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, stats.announcements + stats.withdrawals, _prefixes(events)


def run_bgpdump(path: Path, binary: str) -> tuple[float, float]:
    """Run ``bgpdump -m`` to /dev/null; return (wall s, its CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        subprocess.run([binary, "-m", str(path)], stdout=sink, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bgpdump_elements(path: Path, binary: str) -> int:
    """Return how many A and W lines ``bgpdump -m`` prints for the file."""
    out = subprocess.run([binary, "-m", str(path)], capture_output=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.split(b"|", 3)[2:3] in ([b"A"], [b"W"]))


def _pin() -> int | None:
    """Run on one CPU (bgpdump inherits it); return which, None where affinity is not available."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return None
    return cpu


def _figures(best: tuple[float, float], elements: int) -> dict[str, Any]:
    wall, cpu = best
    return {
        "seconds": round(wall, 4),
        "cpu_seconds": round(cpu, 4),
        "rate": round(elements / wall) if wall > 0 else 0,
        "cpu_rate": round(elements / cpu) if cpu > 0 else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default=str(DEFAULT_INPUT), help="an MRT updates file")
    parser.add_argument("--limit", type=int, default=0, help="UPDATEs to take (0: all)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per candidate (best kept)")
    parser.add_argument("--bgpdump", default=shutil.which("bgpdump") or "/usr/bin/bgpdump")
    args = parser.parse_args()

    cpu = _pin()
    records = extract(Path(args.input), args.limit)
    if not records:
        print(f"no BGP4MP MESSAGE_AS4 UPDATE in {args.input}", file=sys.stderr)
        return 1
    has_bgpdump = os.access(args.bgpdump, os.X_OK)
    names = ("bmp", "pipeline", "mrt", "bgpdump") if has_bgpdump else ("bmp", "pipeline", "mrt")
    rejected = view_routes = 0
    with tempfile.TemporaryDirectory(prefix="bmp-ingest-") as tmp:
        mrt_path = Path(tmp) / "updates.mrt"
        write_mrt(records, mrt_path)
        messages = bmp_stream(records)
        stream = b"".join(messages)
        best: dict[str, tuple[float, float]] = {}
        elements: dict[str, int] = {}
        prefixes: dict[str, Counter[str]] = {}
        for _ in range(max(args.repeat, 1)):
            for name in names:  # interleaved: a load change on the shared machine hits all three
                if name == "bmp":
                    wall, cpu_s, elements[name], prefixes[name] = run_bmp(stream)
                elif name == "pipeline":
                    wall, cpu_s, rejected, view_routes = run_pipeline(stream)
                elif name == "mrt":
                    wall, cpu_s, elements[name], prefixes[name] = run_mrt(mrt_path)
                else:
                    wall, cpu_s = run_bgpdump(mrt_path, args.bgpdump)
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, cpu_s)
        if has_bgpdump:
            elements["bgpdump"] = bgpdump_elements(mrt_path, args.bgpdump)
        mrt_bytes = mrt_path.stat().st_size
    count = elements["bgpdump"] if has_bgpdump else elements["mrt"]
    report: dict[str, Any] = {
        "machine": machine(),
        "cpu_pinned": cpu,
        "input": os.path.relpath(args.input, ROOT),
        "updates": len(records),
        "peers": len({r[3] for r in records}),
        "bmp_messages": len(messages),
        "bmp_bytes": len(stream),
        "mrt_bytes": mrt_bytes,
        "elements": elements,
        "prefix_events": {name: dict(value) for name, value in prefixes.items()},
        "parity": len(set(elements.values())) == 1 and prefixes["bmp"] == prefixes["mrt"],
        "pipeline_rejected": rejected,
        "pipeline_view_routes": view_routes,  # routes left in the BMP views' RIB at the end
        "repeat": args.repeat,
    }
    for name, figures in best.items():
        report[name] = _figures(figures, count)
    ratios: dict[str, float | None] = {}
    for a, b in (
        ("bmp", "mrt"),
        ("bmp", "bgpdump"),
        ("mrt", "bgpdump"),
        ("pipeline", "bmp"),
        ("pipeline", "bgpdump"),
    ):
        if a in best and b in best:
            ratios[f"{a}_vs_{b}"] = round(best[b][0] / best[a][0], 3)
            ratios[f"{a}_vs_{b}_cpu"] = round(best[b][1] / best[a][1], 3) if best[a][1] > 0 else None
    report["ratios"] = ratios  # > 1: the first is faster
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
