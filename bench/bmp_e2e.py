"""End to end over BMP: one table reaches bgpwatch's RIB through FRR's BMP and through ExaBGP, in one run.

A 2-site netns lab (tests/lab): par1's BIRD holds N bulk routes and sends them over BGP to par2's FRR
8.4 (``bgpd -M bmp``, ``soft-reconfiguration inbound``: FRR's pre-policy BMP reads the kept
Adj-RIB-In) and to bgpwatch's ExaBGP.  FRR monitors its Adj-RIB-In pre- and post-policy towards
bgpwatch's BMP station.  FRR's session to the collector is never opened (no peer for it in bgpwatch's
config), so ExaBGP gets the table once, from par1.  The two paths are measured one after the other in
the same daemon (2 shared cores: loads at the same time would measure each other), BMP first:

1. the lab starts, FRR learns the table from BIRD (timed: FRR's own BGP load), BMP target removed;
2. bgpwatch starts (ExaBGP + BMP station; par1's BIRD session to the collector disabled);
3. BMP: FRR's target is added back; FRR connects, sends Peer Up and its table dump; timed from the
   Peer Up's arrival (the monitored session's ``since``) to both views (pre and post) holding N routes;
4. ExaBGP: par1's collector session is enabled; timed from ExaBGP's ``up`` stamp to its last line
   (End-of-RIB), and to the poll that saw the N routes.

CPU = utime+stime deltas per process over each phase (bgpwatch daemon, ExaBGP worker(s), relay, FRR
bgpd, BIRD); RSS per route = the daemon's RSS growth over the phase / routes (BMP: per route of the
table and per route of the views, pre+post).

    sudo .venv/bin/python -m bench.bmp_e2e --v4 4000 --v6 1000            # smoke size
    sudo .venv/bin/python -m bench.bmp_e2e --v4 262143 --v6 737857 --python .venv/exabgp-pypy/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab, SiteSpec, lab_available  # noqa: E402
from lab.daemon import LabDaemon  # noqa: E402
from lab.netlab import BULK_V4_NET, BULK_V6_NET, DEFAULT_SITES  # noqa: E402

from bench.workload import machine  # noqa: E402

BMP_PORT = 11019
SENDER, MONITOR = "par1", "par2"  # BIRD with the table, FRR monitoring its Adj-RIB-In over BMP
BULK_NOT_BOGON = {"bogon_route": {"ignore_prefixes": [str(BULK_V4_NET), str(BULK_V6_NET)]}}
TICKS = os.sysconf("SC_CLK_TCK")
POLL = 0.1
TRACE = bool(os.environ.get("BMP_E2E_TRACE"))  # progress lines on stderr


def trace(*words: Any) -> None:
    """Print a progress line on stderr when BMP_E2E_TRACE is set."""
    if TRACE:
        print(f"{time.time():.3f}", *words, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """Return utime+stime of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    """Return the resident set size of a process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def find_pids(needle: str) -> list[int]:
    """Return the pids whose command line contains ``needle``."""
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


class Meter:
    """CPU seconds per named group of processes, and the peak RSS of each, over one phase."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = self._cpu()
        self.peak = dict.fromkeys(groups, 0)
        self.sample()

    def _cpu(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.groups.items()}

    def sample(self) -> None:
        for name, pids in self.groups.items():
            self.peak[name] = max(self.peak[name], sum(rss_bytes(p) for p in pids))

    def cpu(self) -> dict[str, float]:
        now = self._cpu()
        return {name: round(now[name] - self.start[name], 2) for name in self.groups}


def wait(predicate: Callable[[], Any], timeout: float, what: str, meter: Meter | None = None) -> Any:
    """Poll ``predicate`` every POLL s (sampling RSS); return its first truthy result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if meter is not None:
            meter.sample()
        result = predicate()
        if result:
            return result
        time.sleep(POLL)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def frr_received(lab: Lab, address: str) -> int:
    """Return the prefixes FRR accepted from the neighbour at ``address``, both families."""
    router = lab.router(MONITOR)
    total = 0
    for family in (4, 6):
        summary = router.show_json(f"show bgp ipv{family} unicast summary json")  # type: ignore[attr-defined]
        total += int(summary.get("peers", {}).get(address, {}).get("pfxRcd", 0))
    return total


def bmp_session(daemon: LabDaemon, router: str, peer: str) -> dict[str, Any] | None:
    """Return the monitored session ``peer`` of BMP router ``router`` from /api/v1/routers."""
    for entry in daemon.get("/api/v1/routers") or []:
        if entry["name"] != router:
            continue
        for session in entry["sessions"]:
            if session["address"] == peer:
                return session
    return None


def exabgp_peer(daemon: LabDaemon, name: str) -> dict[str, Any] | None:
    """Return the peer ``name`` from /api/v1/peers."""
    return next((p for p in daemon.get("/api/v1/peers") or [] if p["name"] == name), None)


def write_config(daemon: LabDaemon, lab: Lab) -> None:
    """Keep only the sender's ExaBGP session (FRR's collector session stays closed); add the BMP station."""
    config = yaml.safe_load(daemon.config.read_text())
    for site in config["sites"]:
        if site["name"] != SENDER:
            site["peers"] = []
    router = {"name": f"{MONITOR}-r1", "site": MONITOR, "address": lab.router_address(MONITOR).v4}
    config["inputs"] = [
        {"type": "exabgp"},
        {"type": "bmp", "listen": f"0.0.0.0:{BMP_PORT}", "routers": [router]},
    ]
    daemon.config.write_text(yaml.safe_dump(config, sort_keys=False))


def run(
    v4: int,
    v6: int,
    group: int,
    python: str | None,
    timeout: float,
    post_policy: bool = True,
    log_level: str = "info",
) -> dict[str, Any]:
    """Run the whole benchmark once; return its figures."""
    specs = [
        SiteSpec(SENDER, 65001, DEFAULT_SITES[0].prefixes, router="bird"),
        SiteSpec(MONITOR, 65002, DEFAULT_SITES[1].prefixes, router="frr"),
    ]
    overrides: dict[str, Any] = {"collector": {}, "detectors": BULK_NOT_BOGON}
    if python:
        overrides["collector"]["exabgp_python"] = python
    started = time.monotonic()
    result: dict[str, Any] = {"machine": machine(), "v4": v4, "v6": v6, "group_size": group}
    with (
        Lab(
            specs, extra_routes={SENDER: (v4, v6, group)}, share_bulk=True, bmp=BMP_PORT, prefix="bwtbe"
        ) as lab,
        tempfile.TemporaryDirectory() as tmp,
    ):
        frr = lab.router(MONITOR)
        bgpd = frr.pids()["bgpd"]  # type: ignore[attr-defined]
        bird = lab.router_pid(SENDER)
        assert bird is not None
        sender_at_monitor = lab.link_address(SENDER, MONITOR).v4
        total = v4 + v6 + len(lab.site_prefixes(SENDER))
        result["routes"] = total
        result["lab_start_seconds"] = round(time.monotonic() - started, 2)
        # Phase 1: FRR learns the table over BGP (BIRD had it before start() returned).
        frr.set_bmp(False)  # type: ignore[attr-defined]
        lab.birdc(SENDER, "disable", "collector")  # ExaBGP's turn comes later
        meter = Meter({"frr_bgpd": [bgpd], "bird": [bird]})
        began = time.monotonic()
        lab.wait_established(120)
        wait(lambda: frr_received(lab, sender_at_monitor) >= total, timeout, "FRR to hold the table", meter)
        meter.sample()
        result["frr_bgp_load"] = {
            "seconds_from_lab_start": round(time.monotonic() - began, 2),
            "cpu_seconds": meter.cpu(),
            "frr_bgpd_rss_bytes": rss_bytes(bgpd),
        }

        daemon = LabDaemon(lab, Path(tmp), **overrides)
        write_config(daemon, lab)
        daemon.start(log_level=log_level)
        pid = daemon.process.pid  # type: ignore[union-attr]
        status = daemon.get("/api/v1/status") or {}
        time.sleep(1.0)  # start-up settles (imports, ExaBGP workers), not ingest
        exabgp = [w["pid"] for w in status.get("workers", []) if w.get("pid")]
        relay = find_pids(f"relay --config {daemon.config}")
        groups = {"bgpwatch": [pid], "exabgp": exabgp, "relay": relay, "frr_bgpd": [bgpd], "bird": [bird]}
        result["exabgp_python"] = (status.get("workers") or [{}])[0].get("python")
        rss_idle = rss_bytes(pid)
        result["bgpwatch_rss_idle_bytes"] = rss_idle
        views = 2 if post_policy else 1

        # Phase 2: BMP.  The target comes back: FRR connects, Peer Up, its whole Adj-RIB-In, End-of-RIB.
        lines = [line.strip() for line in frr.bmp_lines()]  # type: ignore[attr-defined]
        if not post_policy:
            lines = [line for line in lines if "post-policy" not in line]
        meter = Meter(groups)
        began = time.monotonic()
        frr.configure(*lines)  # type: ignore[attr-defined]

        def bmp_loaded() -> dict[str, Any] | None:
            session = bmp_session(daemon, f"{MONITOR}-r1", sender_at_monitor)
            trace("bmp", session and session["state"], session and session["routes"])
            if session is None or session["state"] != "up":
                return None
            routes = session["routes"]
            if routes["pre"] >= total and (not post_policy or routes["post"] >= total):
                return session
            return None

        session = wait(bmp_loaded, timeout, f"{total} routes over BMP", meter)
        done = time.time()
        meter.sample()
        bmp_rss = rss_bytes(pid)
        result["bmp"] = {
            "routes_pre": session["routes"]["pre"],
            "routes_post": session["routes"]["post"],
            "seconds_from_target_added": round(time.monotonic() - began, 2),
            # The Peer Up's arrival time (bgpwatch's clock) to the poll that saw every route.
            "seconds_peer_up_to_loaded": round(done - session["since"], 2),
            "cpu_seconds": meter.cpu(),
            "peak_rss_bytes": meter.peak,
            "bgpwatch_rss_growth_bytes": bmp_rss - rss_idle,
            "rss_bytes_per_route": round((bmp_rss - rss_idle) / total, 1),
            "rss_bytes_per_view_route": round((bmp_rss - rss_idle) / (views * total), 1),
        }
        result["bmp"]["prefixes_per_second"] = round(
            total / max(result["bmp"]["seconds_peer_up_to_loaded"], 1e-3)
        )

        # Phase 3: ExaBGP.  par1's collector session comes up: the same table as ExaBGP JSON.
        meter = Meter(groups)
        began = time.monotonic()
        lab.birdc(SENDER, "enable", "collector")

        def exabgp_loaded() -> dict[str, Any] | None:
            peer = exabgp_peer(daemon, f"{SENDER}-rr1")
            trace("exabgp", peer and (peer["state"], peer["since"], peer["routes"], peer.get("end_of_rib")))
            if peer and peer["routes"] >= total and len(peer.get("end_of_rib") or ()) == 2:
                return peer
            return None

        peer = wait(exabgp_loaded, timeout, f"{total} routes over ExaBGP", meter)
        done = time.time()
        meter.sample()
        exa_rss = rss_bytes(pid)
        result["exabgp"] = {
            "routes": peer["routes"],
            "seconds_from_enable": round(time.monotonic() - began, 2),
            # ExaBGP's own stamps: session up -> its last line (End-of-RIB), as bench/e2e.py.
            "seconds_up_to_loaded": round(peer["last_message"] - peer["since"], 2),
            "seconds_up_to_seen_loaded": round(done - peer["since"], 2),
            "cpu_seconds": meter.cpu(),
            "peak_rss_bytes": meter.peak,
            "bgpwatch_rss_growth_bytes": exa_rss - bmp_rss,
            "rss_bytes_per_route": round((exa_rss - bmp_rss) / total, 1),
        }
        result["exabgp"]["prefixes_per_second"] = round(
            total / max(result["exabgp"]["seconds_up_to_loaded"], 1e-3)
        )
        final = daemon.get("/api/v1/status") or {}
        result["bgpwatch_status"] = {
            key: final.get(key) for key in ("rejected", "ingest", "inputs", "sources") if key in final
        }
        result["bmp_view_routes"] = session["routes"]
        result["alerts_firing"] = len(daemon.get("/api/v1/alerts") or [])
        result["wall_seconds"] = round(time.monotonic() - started, 2)
        result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        daemon.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v4", type=int, default=100_000)
    parser.add_argument("--v6", type=int, default=0)
    parser.add_argument("--group", type=int, default=4, help="routes per attribute set (0: all in one)")
    parser.add_argument("--python", default=None, help="interpreter for ExaBGP (e.g. a PyPy venv's python)")
    parser.add_argument("--pre-only", action="store_true", help="FRR monitors pre-policy only")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    reason = lab_available(("bird", "frr"))
    if reason:
        print(f"cannot run the lab: {reason}", file=sys.stderr)
        return 2
    print(json.dumps(run(args.v4, args.v6, args.group, args.python, args.timeout, not args.pre_only)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
