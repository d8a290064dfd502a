"""Mutation fuzzing of the binary parsers: real MRT files and BMP messages, corrupted.

    python -m bench.fuzz_binary [--mrt 100000] [--bmp 200000] [--seed 12]

The longer run of the seeded, bounded hypothesis properties of the CI (tests/test_mrt_fuzz.py,
200 examples; tests/test_ingest_bmp.py ``test_fuzz_only_ingest_errors``, 400 examples), with the
same inputs and the same mutations drawn from ``random.Random(seed)``:

- MRT: one of four real files (the first 20,000 bytes of bgpdump's ``updates.20020722.2238``,
  mrtparse's ``bird6-mrtdump_bgp``, ``openbgpd_rib_table-mp`` and ``quagga_bgp``), uncompressed so
  that the mutations reach the records, with 1-6 mutations (a byte flipped, up to 64 bytes cut, up
  to 32 random bytes inserted, the first record's length rewritten), written to a file and read
  with `MrtReader`: it yields well-formed events (time in [0, 2**32)) or raises `MrtError`;
- BMP: one of the first 40 messages of the FRR 8.4 and GoBGP 3.10 captures (fixtures/bmp) with 1-4
  mutations (a bit flipped, a byte set to a boundary value, the tail cut, bytes inserted or
  deleted; the length field fixed half of the time), given to a `BmpParser` after the capture's
  Initiation: it returns events or raises `IngestError` with a known reason and a bounded detail,
  and parses a good Route Monitoring message after it.

Printed (JSON): inputs tried, exceptions that escaped (anything else: must be 0, by type with a
sample), MRT files by where they stopped and damage counted by reason, BMP outcomes by reason.
Exit status 1 if anything escaped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from bgpwatch.events import Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.ingest.bmp import MAX_DETAIL_CHARS, REASONS, BmpParser, split_messages
from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.ingest.mrt import MrtError, MrtReader, MrtStats
from bgpwatch.rib.attributes import AttributePool

ROOT = Path(__file__).resolve().parent.parent
MRT = ROOT / "fixtures" / "mrt"
BMP = ROOT / "fixtures" / "bmp"
KINDS = (Announce, Withdraw, EndOfRib, SessionState)
BOUNDARY_BYTES = [0, 1, 2, 3, 4, 6, 0x10, 0x20, 0x40, 0x80, 0xFE, 0xFF]


def mrt_sources() -> list[bytes]:
    return [
        gzip.decompress((MRT / "bgpdump" / "updates.20020722.2238.gz").read_bytes())[:20000],
        (MRT / "mrtparse" / "bird6-mrtdump_bgp").read_bytes(),
        (MRT / "mrtparse" / "openbgpd_rib_table-mp").read_bytes(),
        (MRT / "mrtparse" / "quagga_bgp").read_bytes(),
    ]


def bmp_messages(path: Path) -> list[bytes]:
    return split_messages(path.read_bytes())


def mutate_mrt(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.choice(("flip", "cut", "insert", "header"))
        pos = rng.randint(0, max(0, len(out) - 1))
        if op == "flip" and out:
            out[pos] ^= rng.randint(1, 255)
        elif op == "cut":
            del out[pos : pos + rng.randint(1, 64)]
        elif op == "insert":
            out[pos:pos] = rng.randbytes(rng.randint(1, 32))
        elif op == "header" and len(out) >= 12:
            out[8:12] = rng.randbytes(4)  # the first record's length
    return bytes(out)


def mutate_bmp(message: bytes, rng: random.Random) -> bytes:
    out = bytearray(message)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(("flip", "set", "cut", "insert", "delete"))
        at = rng.randint(0, max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[at] ^= 1 << rng.randint(0, 7)
        elif kind == "set" and out:
            out[at] = rng.choice(BOUNDARY_BYTES)
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif kind == "delete":
            del out[at : at + rng.randint(1, 8)]
    if rng.random() < 0.5 and len(out) >= 6:
        struct.pack_into("!I", out, 1, len(out))  # keep the framing right half of the time
    return bytes(out)


def _escape(escaped: Counter[str], samples: dict[str, str], exc: BaseException) -> None:
    name = type(exc).__name__
    escaped[name] += 1
    samples.setdefault(name, "".join(traceback.format_exception(exc))[-1500:])


def fuzz_mrt(count: int, rng: random.Random) -> dict[str, Any]:
    sources = mrt_sources()
    stopped: Counter[str] = Counter()
    counted: Counter[str] = Counter()
    escaped: Counter[str] = Counter()
    samples: dict[str, str] = {}
    events = 0
    start = time.perf_counter()
    handle, name = tempfile.mkstemp(suffix=".mrt")
    os.close(handle)
    try:
        for _ in range(count):
            Path(name).write_bytes(mutate_mrt(rng.choice(sources), rng))
            stats = MrtStats()
            try:
                for event in MrtReader(AttributePool(), stats).read(name):
                    if not isinstance(event, KINDS) or not 0 <= event.at < 2**32:
                        raise AssertionError(f"ill-formed event {event!r}")
                    events += 1
                stopped["read to its end"] += 1
            except MrtError as exc:
                stopped[exc.reason] += 1
            except Exception as exc:  # noqa: BLE001 - what the campaign is looking for
                _escape(escaped, samples, exc)
            counted.update(stats.errors)
    finally:
        os.unlink(name)
    return {
        "files_tried": count,
        "exceptions_escaped": sum(escaped.values()),
        "escaped_by_type": dict(escaped),
        "escaped_samples": samples,
        "events": events,
        "files_by_end": dict(stopped.most_common()),
        "damage_counted_by_reason": dict(counted.most_common()),
        "seconds": round(time.perf_counter() - start, 1),
    }


def fuzz_bmp(count: int, rng: random.Random) -> dict[str, Any]:
    seeds = (
        bmp_messages(BMP / "frr84" / "frr-par1-1.bmp")[:40]
        + bmp_messages(BMP / "gobgp310" / "gobgp-par1-1.bmp")[:40]
    )
    good = next(m for m in seeds if m[5] == 0 and len(m) > 90)
    outcomes: Counter[str] = Counter()
    escaped: Counter[str] = Counter()
    samples: dict[str, str] = {}
    start = time.perf_counter()
    parser = None
    for i in range(count):
        if i % 1000 == 0:  # a fresh connection now and then, as a station sees them
            parser = BmpParser(AttributePool())
            parser.connect("c", "192.0.2.2", 0.0)
            parser.parse("c", seeds[0], 1.0)
        assert parser is not None
        try:
            parser.parse("c", mutate_bmp(rng.choice(seeds), rng), 2.0)
            outcomes["accepted"] += 1
        except IngestError as exc:
            if exc.reason not in REASONS or len(exc.detail) > MAX_DETAIL_CHARS:
                _escape(escaped, samples, AssertionError(f"unknown reason or long detail: {exc}"))
            outcomes[exc.reason] += 1
        except Exception as exc:  # noqa: BLE001
            _escape(escaped, samples, exc)
        try:
            if not parser.parse("c", good, 3.0):
                raise AssertionError("a good message after a mutated one gave no event")
        except Exception as exc:  # noqa: BLE001
            _escape(escaped, samples, exc)
    return {
        "messages_tried": count,
        "exceptions_escaped": sum(escaped.values()),
        "escaped_by_type": dict(escaped),
        "escaped_samples": samples,
        "outcomes": dict(outcomes.most_common()),
        "seconds": round(time.perf_counter() - start, 1),
    }


def campaign(mrt: int, bmp: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    return {"seed": seed, "mrt": fuzz_mrt(mrt, rng), "bmp": fuzz_bmp(bmp, rng)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mrt", type=int, default=100_000, help="mutated MRT files to read")
    parser.add_argument("--bmp", type=int, default=200_000, help="mutated BMP messages to parse")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    result = campaign(args.mrt, args.bmp, args.seed)
    print(json.dumps(result, indent=2))
    return 1 if result["mrt"]["exceptions_escaped"] or result["bmp"]["exceptions_escaped"] else 0


if __name__ == "__main__":
    sys.exit(main())
