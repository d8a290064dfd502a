"""End to end: a real BIRD router announces a big table to bgpwatch (managed ExaBGP) in a netns lab.

Measures, in one run: prefixes/s from the session coming up to the whole table in bgpwatch's
RIB, CPU seconds of ExaBGP vs the relay vs the bgpwatch daemon, and the daemon's RSS per route.
The sending routers' sessions to the collector are held down until bgpwatch, its ExaBGP workers
and relays have started and gone idle, so every CPU figure is the load's alone (start-up, imports
and PyPy's warm-up excluded; before 2026-12-03 the relays' and ExaBGP's start-up was counted:
~1.5 CPU s per relay process, two of them).

    sudo .venv/bin/python -m bench.e2e --v4 200000 --v6 0 --group 4
    sudo .venv/bin/python -m bench.e2e --v4 262143 --v6 737857 --group 0 --python pypy   # 1M
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab, lab_available  # noqa: E402
from lab.daemon import LabDaemon  # noqa: E402
from lab.netlab import BULK_V4_NET, BULK_V6_NET  # noqa: E402

# The bulk routes stand in for the Internet's table, but live in benchmarking/documentation space.
BULK_NOT_BOGON = {"bogon_route": {"ignore_prefixes": [str(BULK_V4_NET), str(BULK_V6_NET)]}}

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def settled(pids_of, timeout: float = 60.0, quiet: float = 0.05) -> list[int]:
    """Wait until the processes ``pids_of()`` returns exist and use (almost) no CPU; return them."""
    deadline = time.monotonic() + timeout
    before: dict[int, float] = {}
    while time.monotonic() < deadline:
        pids = pids_of()
        now = {pid: cpu_seconds(pid) for pid in pids}
        if pids and now.keys() == before.keys() and all(now[p] - before[p] <= quiet for p in pids):
            return pids
        before = now
        time.sleep(0.5)
    raise TimeoutError("bgpwatch's processes did not settle after start-up")


def find_pids(needle: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmdline:
            pids.append(int(entry.name))
    return pids


def run(
    v4: int, v6: int, group: int, workers: int | None, python: str | None, timeout: float, peers: int = 1
) -> dict:
    overrides: dict = {"collector": {}, "detectors": BULK_NOT_BOGON}
    if workers:
        overrides["collector"]["exabgp_workers"] = workers
    if python:
        overrides["collector"]["exabgp_python"] = python
    sites = max(2, peers)
    senders = [f"par{n}" for n in range(1, peers + 1)]  # each sends the bulk table (a full table each)
    with (
        Lab(sites, extra_routes={site: (v4, v6, group) for site in senders}) as lab,
        tempfile.TemporaryDirectory() as tmp,
    ):
        lab.wait_established(60)
        total = v4 + v6 + sum(len(lab.site_prefixes(s)) for s in lab.site_names)
        held = {site: [n.name for n in lab.neighbors(site) if n.collector] for site in senders}
        for site, names in held.items():  # the tables wait until bgpwatch has started
            lab.shutdown_sessions(site, names, "bench: held until bgpwatch is idle")
        daemon = LabDaemon(lab, Path(tmp), **overrides)
        daemon_start = time.monotonic()
        daemon.start(log_level="info")
        daemon_pid = daemon.process.pid

        def processes() -> list[int]:
            workers = [w["pid"] for w in daemon.cli("status")["workers"] if w["pid"]]
            return [daemon_pid, *workers, *find_pids(f"relay --config {daemon.config}")]

        started = settled(processes)
        rss_idle = rss_bytes(daemon_pid)
        cpu_idle = {pid: cpu_seconds(pid) for pid in started}  # imports and start-up, not ingest
        for site, names in held.items():
            lab.enable_sessions(site, names)

        def loaded():
            found = daemon.peers()
            chosen = [found[f"{site}-rr1"] for site in senders]
            if all(p["routes"] >= total and len(p["end_of_rib"]) == 2 for p in chosen):
                return chosen
            return None

        chosen = daemon.wait_for(loaded, timeout, f"{total} routes from {', '.join(senders)}")
        done = time.monotonic()
        routes = sum(p["routes"] for p in chosen)
        status = daemon.cli("status")
        exabgp_pids = [w["pid"] for w in status["workers"] if w["pid"]]
        relay_pids = [p for p in find_pids(f"relay --config {daemon.config}")]
        first_up = min(p["since"] for p in chosen)
        last_line = max(p["last_message"] for p in chosen)
        alerts = daemon.cli("alerts") or []
        result = {
            "peers": peers,
            "routes": routes,
            "v4": v4,
            "v6": v6,
            "group_size": group,
            "exabgp_python": status["workers"][0].get("python"),
            "workers": len(exabgp_pids),
            "wall_seconds_from_daemon_start": round(done - daemon_start, 2),
            # ExaBGP's own time stamps: session up -> the last line of the table (its End-of-RIB).
            "seconds_up_to_loaded": round(last_line - first_up, 2),
            # The daemon's own lag: ExaBGP's last line (End-of-RIB) -> the table seen whole by the CLI
            # poll (an upper bound: the poll runs every ~0.2 s and the CLI takes its own time).
            "seconds_last_line_to_seen_loaded": round(time.time() - (time.monotonic() - done) - last_line, 2),
            # Over the load only: what each process used since it settled after start-up.
            "cpu_seconds": {
                "exabgp": round(sum(cpu_seconds(p) - cpu_idle.get(p, 0.0) for p in exabgp_pids), 2),
                "relay": round(sum(cpu_seconds(p) - cpu_idle.get(p, 0.0) for p in relay_pids), 2),
                "bgpwatch": round(cpu_seconds(daemon_pid) - cpu_idle[daemon_pid], 2),
            },
            "cpu_seconds_start_up": {
                "exabgp": round(sum(cpu_idle.get(p, 0.0) for p in exabgp_pids), 2),
                "relay": round(sum(cpu_idle.get(p, 0.0) for p in relay_pids), 2),
                "bgpwatch": round(cpu_idle[daemon_pid], 2),
            },
            "bgpwatch_rss_bytes": rss_bytes(daemon_pid),
            "bgpwatch_rss_idle_bytes": rss_idle,
            "alerts_firing": len(alerts),
        }
        result["prefixes_per_second"] = round(routes / max(result["seconds_up_to_loaded"], 1e-3))
        result["rss_bytes_per_route"] = round((result["bgpwatch_rss_bytes"] - rss_idle) / routes, 1)
        daemon.stop()
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v4", type=int, default=100_000)
    parser.add_argument("--v6", type=int, default=0)
    parser.add_argument("--group", type=int, default=4, help="routes per attribute set (0: all in one)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--python", default=None, help="interpreter for ExaBGP (e.g. a PyPy venv's python)")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--peers", type=int, default=1, help="sites each sending the table (4: 4 x N)")
    args = parser.parse_args()
    reason = lab_available()
    if reason:
        print(f"cannot run the lab: {reason}", file=sys.stderr)
        return 2
    print(json.dumps(run(args.v4, args.v6, args.group, args.workers, args.python, args.timeout, args.peers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
