"""Compare MRT decoders on speed and on bgpdump -m parity: bgpwatch's own, mrtparse, pybgpkit, bgpdump.

Run: ``.venv/bin/python bench/mrt_decoders.py [--all] [--bgpkit-python PATH] FILE...``

Every candidate turns each file into elements counted as ``bgpdump -m`` prints them (A, W,
STATE, B).  Speed is bgpdump's element count divided by the candidate's wall time, including
decompression; bgpdump's own time is its best of three runs of ``bgpdump -m FILE > /dev/null``.
The candidates:

* ``bgpwatch``: `bgpwatch.ingest.mrt.MrtReader`, events with interned attributes (the full job).
* ``bgpdump-pipe``: ``bgpdump -m`` as a subprocess, its lines parsed into the same events.
* ``mrtparse``: mrtparse's ``Reader``, its record dicts walked to count elements (no events).
* ``pybgpkit``: pybgpkit-parser's ``Parser(...)`` elements, counted (no events; it has no state
  changes).  Runs in another interpreter (``--bgpkit-python``) as it is not a bgpwatch dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bgpwatch.events import Announce, SessionState, Withdraw
from bgpwatch.ingest.mrt import MrtError, MrtReader, MrtStats
from bgpwatch.rib.attributes import AttributePool
from bgpwatch.rib.prefix import parse_prefix

KINDS = ("A", "W", "STATE", "B")

BGPKIT_SNIPPET = r"""
import json, sys, time
import pybgpkit_parser
path = sys.argv[1]
counts = {"A": 0, "W": 0}
t = time.perf_counter()
error = ""
try:
    for elem in pybgpkit_parser.Parser(url=path):
        counts[elem.elem_type] = counts.get(elem.elem_type, 0) + 1
except Exception as exc:  # noqa: BLE001 - measuring, not handling
    error = f"{type(exc).__name__}: {exc}"
print(json.dumps({"seconds": time.perf_counter() - t, "counts": counts, "error": error}))
"""


def bgpdump_counts(path: str) -> tuple[dict[str, int], float]:
    """Return bgpdump -m's line counts by kind and its best-of-3 time to /dev/null."""
    out = subprocess.run(["bgpdump", "-m", "-v", path], capture_output=True, text=True, check=False).stdout
    counts = Counter(line.split("|", 3)[2] for line in out.splitlines())
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            subprocess.run(["bgpdump", "-m", "-v", path], stdout=sink, stderr=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - start)
    return {kind: counts.get(kind, 0) for kind in KINDS}, best


def run_bgpwatch(path: str) -> tuple[dict[str, int], float, str]:
    """Decode with bgpwatch's reader into events; return its counts, seconds and error."""
    stats = MrtStats()
    reader = MrtReader(AttributePool(), stats)
    error = ""
    start = time.perf_counter()
    try:
        for _ in reader.read(path):
            pass
    except MrtError as exc:
        error = exc.reason
    seconds = time.perf_counter() - start
    counts = {
        "A": stats.announcements,
        "W": stats.withdrawals,
        "STATE": stats.state_changes,
        "B": stats.rib_entries,
    }
    return counts, seconds, error


def run_bgpdump_pipe(path: str) -> tuple[dict[str, int], float, str]:
    """Drive bgpdump -m and turn its lines into events (one per line, attributes interned)."""
    pool = AttributePool()
    attrs_cache: dict[str, object] = {}
    counts = Counter()
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["bgpdump", "-m", "-v", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 20
    )
    assert proc.stdout is not None
    events = []
    for raw in proc.stdout:
        parts = raw.decode().rstrip("\n").split("|")
        kind = parts[2]
        if parts[0].endswith("_AP") and kind != "STATE":
            del parts[6]  # ADD-PATH lines carry the path id after the prefix
        counts[kind] += 1
        at = float(parts[1])
        if kind in ("A", "B", "W"):
            try:
                family, key = parse_prefix(parts[5])
            except ValueError:
                continue  # bgpdump prints prefixes longer than /32 or /128 as they are
        if kind in ("A", "B"):
            tail = "|".join(parts[6:])
            attributes = attrs_cache.get(tail)
            if attributes is None:
                as_path = tuple(int(a) for a in parts[6].split() if a.isdigit())
                med = int(parts[10]) if parts[10:11] and parts[10].isdigit() else None
                local_pref = int(parts[9]) if parts[9:10] and parts[9].isdigit() else None
                attributes = pool.intern(parts[7].lower(), as_path, (), parts[8], med, local_pref)
                attrs_cache[tail] = attributes
            events.append(Announce(at, parts[3], family, (key,), attributes))
        elif kind == "W":
            events.append(Withdraw(at, parts[3], family, (key,)))
        elif kind == "STATE":
            events.append(SessionState(at, parts[3], "up" if parts[6] == "6" else "down"))
        if len(events) > 10000:
            events.clear()
    proc.wait()
    seconds = time.perf_counter() - start
    return {kind: counts.get(kind, 0) for kind in KINDS}, seconds, ""


def run_mrtparse(path: str) -> tuple[dict[str, int], float, str]:
    """Iterate mrtparse records and count the elements bgpdump would print from them."""
    import mrtparse

    counts = Counter()
    error = ""
    start = time.perf_counter()
    try:
        for entry in mrtparse.Reader(path):
            entry.err = None  # mrtparse 2.2.0 never clears it (see fixtures SOURCES.md)
            data = entry.data
            mrt_type = next(iter(data["type"]))
            subtype = next(iter(data["subtype"]))
            if mrt_type in (16, 17):
                if subtype in (0, 5):
                    counts["STATE"] += 1
                    continue
                message = data.get("bgp_message")
                if not message or next(iter(message.get("type", {0: 0}))) != 2:
                    continue
                counts["W"] += len(message.get("withdrawn_routes", []))
                counts["A"] += len(message.get("nlri", []))
                for attr in message.get("path_attributes", []):
                    code = next(iter(attr["type"]))
                    if code == 14:
                        counts["A"] += len(attr["value"].get("nlri", []))
                    elif code == 15:
                        counts["W"] += len(attr["value"].get("withdrawn_routes", []))
            elif mrt_type == 13 and subtype in (2, 4, 8, 10):
                counts["B"] += len(data.get("rib_entries", []))
            elif mrt_type == 12:
                counts["B"] += 1
    except Exception as exc:  # noqa: BLE001 - measuring, not handling
        error = f"{type(exc).__name__}: {exc}"[:80]
    seconds = time.perf_counter() - start
    return {kind: counts.get(kind, 0) for kind in KINDS}, seconds, error


def run_pybgpkit(path: str, python: str) -> tuple[dict[str, int], float, str]:
    """Count pybgpkit-parser elements in its own interpreter."""
    out = subprocess.run([python, "-c", BGPKIT_SNIPPET, path], capture_output=True, text=True, check=False)
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return dict.fromkeys(KINDS, 0), 0.0, f"crashed: {out.stderr.strip()[-80:]}"
    counts = {kind: result["counts"].get(kind, 0) for kind in KINDS}
    return counts, result["seconds"], result["error"][:80]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--bgpkit-python", default=os.environ.get("BGPKIT_PYTHON", ""))
    parser.add_argument("--skip", default="", help="comma-separated candidates to skip")
    parser.add_argument("--json", action="store_true", help="one JSON object per file and candidate")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    candidates = {
        "bgpwatch": run_bgpwatch,
        "bgpdump-pipe": run_bgpdump_pipe,
        "mrtparse": run_mrtparse,
    }
    if args.bgpkit_python:
        candidates["pybgpkit"] = lambda path: run_pybgpkit(path, args.bgpkit_python)
    for path in args.files:
        reference, bgpdump_seconds = bgpdump_counts(path)
        elements = sum(reference.values())
        name = Path(path).name
        rate = elements / bgpdump_seconds if bgpdump_seconds else 0.0
        print(f"{name}: {elements} elements; bgpdump -m {bgpdump_seconds:.2f} s = {rate / 1000:.0f}k elem/s")
        for candidate, run in candidates.items():
            if candidate in skip:
                continue
            counts, seconds, error = run(path)
            compared = reference
            if candidate == "pybgpkit":
                # pybgpkit has no state changes and calls RIB entries "A": compare A+B and W.
                compared = {"A+B": reference["A"] + reference["B"], "W": reference["W"]}
                counts = {"A+B": counts["A"] + counts["B"], "W": counts["W"]}
            exact = all(counts[k] == v for k, v in compared.items())
            speed = elements / seconds if seconds else 0.0
            ratio = bgpdump_seconds / seconds if seconds else 0.0
            line = {
                "file": name,
                "candidate": candidate,
                "seconds": round(seconds, 3),
                "elem_per_s": round(speed),
                "ratio_to_bgpdump": round(ratio, 2),
                "exact": exact,
                "counts": counts,
                "bgpdump": reference,
                "error": error,
            }
            if args.json:
                print(json.dumps(line))
            else:
                diff = "" if exact else f" counts {counts} != {compared}"
                print(
                    f"  {candidate:13s} {seconds:7.2f} s {speed / 1000:6.0f}k elem/s "
                    f"x{ratio:.2f} {'exact' if exact else 'DIFF'}{diff} {error}"
                )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
