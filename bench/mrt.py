"""MRT replay speed relative to ``bgpdump -m``: bgpwatch's MrtReader vs bgpdump on the same file.

Run: ``.venv/bin/python -m bench.mrt [--repeat N] [--rev REV] [FILE...]``

For each file, runs alternate (bgpdump, bgpwatch[, bgpwatch at REV]) ``--repeat`` times, so a load
change on the shared machine hits every candidate; each run's rate is ``bgpdump -m``'s element
count (its A, W, STATE and B lines; the reader's stats count the same) divided by process CPU
time.  ``bgpdump``: ``bgpdump -m FILE > /dev/null`` as a child process (its CPU from
``RUSAGE_CHILDREN``).  ``bgpwatch``: a fresh `MrtReader` reads the file and the events are
dropped; the reader's creation and its teardown (a ``gc.collect()`` after it is dropped) are inside
the timing, as in ``bgpwatch replay``.
The ratio is bgpwatch's elements/s over bgpdump's: per round (the two runs next to each other),
their median, and best against best.  ``--rev REV`` adds ``bgpwatch/ingest/mrt.py`` as
committed at REV (the rest of bgpwatch as in the working tree), to compare before and after in
one run.  Runs on one CPU (bgpdump inherits it).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.workload import machine
from bgpwatch.ingest import mrt as mrt_module
from bgpwatch.rib.attributes import AttributePool

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = (
    ROOT / "fixtures/mrt/derived/pyasn-complete-records/rib.20140523.0600_firstMB.complete-records.mrt.gz"
)


def load_rev(rev: str, into: str) -> ModuleType:
    """Return bgpwatch/ingest/mrt.py as committed at ``rev``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{rev}:bgpwatch/ingest/mrt.py"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    path = Path(into) / "mrt_at_rev.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("bench_mrt_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_reader(module: ModuleType, path: str) -> tuple[float, int, int]:
    """Read the file with a fresh reader; return (CPU s, bgpdump-style elements, events)."""
    gc.collect()  # start each run with the previous run's garbage gone
    start = time.process_time()
    reader = module.MrtReader(AttributePool())
    events = 0
    for _ in reader.read(path):
        events += 1
    stats = reader.stats
    elements = stats.announcements + stats.withdrawals + stats.state_changes + stats.rib_entries
    del reader, stats
    gc.collect()  # a reader whose caches only a GC pass frees pays for it here
    return time.process_time() - start, elements, events


def run_bgpdump(binary: str, path: str) -> float:
    """Run ``bgpdump -m FILE > /dev/null``; return its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.devnull, "wb") as sink:
        subprocess.run([binary, "-m", path], stdout=sink, stderr=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bgpdump_elements(binary: str, path: str) -> int:
    """Return how many A, W, STATE and B lines ``bgpdump -m`` prints for the file."""
    out = subprocess.run([binary, "-m", path], capture_output=True, check=True).stdout
    kinds = ([b"A"], [b"W"], [b"STATE"], [b"B"])
    return sum(1 for line in out.splitlines() if line.split(b"|", 3)[2:3] in kinds)


def _pin() -> int | None:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return None
    return cpu


def measure(path: str, binary: str, candidates: dict[str, ModuleType], repeat: int) -> dict[str, Any]:
    """Interleaved runs of bgpdump and every candidate on one file; return the figures."""
    elements = bgpdump_elements(binary, path)
    seconds: dict[str, list[float]] = {"bgpdump": [], **{name: [] for name in candidates}}
    counts: dict[str, int] = {}
    events: dict[str, int] = {}
    for _ in range(max(repeat, 1)):
        seconds["bgpdump"].append(run_bgpdump(binary, path))
        for name, module in candidates.items():
            cpu, counts[name], events[name] = run_reader(module, path)
            seconds[name].append(cpu)
    report: dict[str, Any] = {
        "file": os.path.relpath(path, ROOT) if path.startswith(str(ROOT)) else path,
        "elements": elements,
        "parity": all(count == elements for count in counts.values()),
        "events": events,
    }
    for name, runs in seconds.items():
        best = min(runs)
        report[name] = {
            "cpu_seconds": [round(s, 4) for s in runs],
            "best_rate": round(elements / best) if best > 0 else 0,
        }
    dump = seconds["bgpdump"]
    for name in candidates:
        per_round = [d / s for d, s in zip(dump, seconds[name], strict=True) if s > 0]
        report[name]["ratio_per_round"] = [round(r, 3) for r in per_round]
        report[name]["ratio_median"] = round(statistics.median(per_round), 3)
        report[name]["ratio_best"] = round(min(dump) / min(seconds[name]), 3)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", default=[str(DEFAULT_INPUT)], help="MRT files")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of interleaved runs")
    parser.add_argument("--rev", help="also time bgpwatch/ingest/mrt.py as committed at this revision")
    parser.add_argument("--bgpdump", default="/usr/bin/bgpdump")
    args = parser.parse_args()
    cpu = _pin()
    with tempfile.TemporaryDirectory(prefix="bench-mrt-") as tmp:
        candidates: dict[str, ModuleType] = {"bgpwatch": mrt_module}
        if args.rev:
            candidates[f"bgpwatch@{args.rev}"] = load_rev(args.rev, tmp)
        files = [measure(str(Path(f).resolve()), args.bgpdump, candidates, args.repeat) for f in args.files]
    print(
        json.dumps({"machine": machine(), "cpu_pinned": cpu, "repeat": args.repeat, "files": files}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
