"""End to end over BMP: one table reaches bgpwatch's RIB through FRR's BMP and through ExaBGP, in one run.

A 2-site netns lab (tests/lab): par1's BIRD holds N bulk routes and sends them over BGP to par2's FRR
8.4 (``bgpd -M bmp``, ``soft-reconfiguration inbound``: FRR's pre-policy BMP reads the kept
Adj-RIB-In) and to bgpwatch's ExaBGP.  FRR monitors its Adj-RIB-In pre- and post-policy towards
bgpwatch's BMP station and exports nothing (it would send the table back to BIRD).  FRR's session to
the collector is never opened (no peer for it in bgpwatch's config), so ExaBGP gets the table once,
from par1.  The two paths are measured one after the other in the same daemon (2 shared cores: loads
at the same time would measure each other), BMP first:

1. BIRD loads the table (FRR's session to it shut), then FRR learns it over BGP with no BMP station
   (timed: FRR's own load, its CPU without BMP);
2. bgpwatch starts (ExaBGP + BMP station; par1's BIRD session to the collector disabled); in ``dump``
   mode FRR's BMP connects are refused (nftables reset) until bgpwatch's start-up is over;
3. BMP, ``dump`` (default): FRR, holding the table, connects: Initiation, Peer Up, its whole
   Adj-RIB-In pre- and post-policy, End-of-RIB (what bgpwatch sees at its own (re)start);
   ``live``: FRR (empty: step 1 only with ``--frr-baseline``, FRR then drops the table) is connected,
   and its session to BIRD comes up:
   Peer Up, then every route FRR takes in is mirrored (what a session reset looks like).  Timed from
   the Peer Up's arrival (the monitored session's ``since``, bgpwatch's clock) to the poll (every
   0.1 s) that saw both views (pre, post) hold the N routes;
4. ExaBGP: par1's collector session is enabled; timed from ExaBGP's ``up`` stamp to its last line
   (End-of-RIB), as bench/e2e.py, and to the poll that saw the N routes.

CPU = utime+stime deltas per process over each phase (bgpwatch daemon, ExaBGP worker(s), relay, FRR
bgpd, BIRD); RSS per route = the daemon's RSS growth over the phase / routes (BMP: per route of the
table and per route of the views, pre+post).  One JSON object on stdout (exit 1 with "error" in it
when a phase timed out); BMP_E2E_TRACE=1 prints the counts polled on stderr.

    sudo .venv/bin/python -m bench.bmp_e2e --v4 4000 --v6 1000            # smoke size, ~10 s
    sudo .venv/bin/python -m bench.bmp_e2e --v4 262143 --v6 737857         # 1M routes
    sudo .venv/bin/python -m bench.bmp_e2e --v4 100000 --mode live [--pre-only] [--record DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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
from lab.frr import BMP_TARGET  # noqa: E402
from lab.netlab import BULK_V4_NET, BULK_V6_NET, DEFAULT_SITES  # noqa: E402

from bench.workload import machine  # noqa: E402

BMP_PORT = 11019
SENDER, MONITOR = "par1", "par2"  # BIRD with the table, FRR monitoring its Adj-RIB-In over BMP
BULK_NOT_BOGON = {"bogon_route": {"ignore_prefixes": [str(BULK_V4_NET), str(BULK_V6_NET)]}}
TICKS = os.sysconf("SC_CLK_TCK")
POLL = 0.1
BLOCK_TABLE = "bwbench_bmp"  # nftables table refusing FRR's BMP connects during bgpwatch's start-up
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


def router_state(daemon: LabDaemon) -> str | None:
    """Return the state of the BMP router (``up``, ``down``, ``idle``) from /api/v1/routers."""
    return next(
        (r["state"] for r in daemon.get("/api/v1/routers") or [] if r["name"] == f"{MONITOR}-r1"), None
    )


def bmp_messages(daemon: LabDaemon) -> int:
    """Return the messages read on the BMP station's open connections."""
    status = daemon.get("/api/v1/status") or {}
    station = next((i for i in status.get("inputs", []) if i.get("type") == "bmp"), {})
    return sum(c.get("messages", 0) for c in station.get("connections", []))


def block_bmp(lab: Lab, blocked: bool) -> None:
    """Refuse (TCP reset) the monitoring router's BMP connects, or stop refusing them.

    ``lab.bmp_block`` drops (a silent station); a reset makes FRR retry on its 1-10 s schedule.
    """
    namespace = lab.site_ns(MONITOR)
    if blocked:
        rules = (
            f"table inet {BLOCK_TABLE} {{\n chain out {{\n  type filter hook output priority 0;\n"
            f"  tcp dport {BMP_PORT} reject with tcp reset\n }}\n}}\n"
        )
        argv = ["ip", "netns", "exec", namespace, "nft", "-f", "-"]
        subprocess.run(argv, input=rules, text=True, check=True, timeout=30)
    else:
        argv = ["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", BLOCK_TABLE]
        subprocess.run(argv, check=True, timeout=30)


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
    frr_baseline: bool = False,
    mode: str = "dump",
    log_level: str = "info",
    record: Path | None = None,
) -> dict[str, Any]:
    """Run the whole benchmark once; return its figures."""
    specs = [
        SiteSpec(SENDER, 65001, DEFAULT_SITES[0].prefixes, router="bird"),
        SiteSpec(MONITOR, 65002, DEFAULT_SITES[1].prefixes, router="frr"),
    ]
    overrides: dict[str, Any] = {"collector": {}, "detectors": BULK_NOT_BOGON}
    if python:
        overrides["collector"]["exabgp_python"] = python
    if record is not None:
        overrides["recording"] = {"path": str(record)}  # ExaBGP lines and BMP messages, as `run` records
    started = time.monotonic()
    result: dict[str, Any] = {"machine": machine(), "v4": v4, "v6": v6, "group_size": group}
    with (
        Lab(specs, share_bulk=True, bmp=BMP_PORT, prefix="bwtbe") as lab,
        tempfile.TemporaryDirectory() as tmp,
    ):
        frr = lab.router(MONITOR)
        bgpd = frr.pids()["bgpd"]  # type: ignore[attr-defined]
        bird = lab.router_pid(SENDER)
        assert bird is not None
        sender_at_monitor = lab.link_address(SENDER, MONITOR).v4
        session_name = f"peer_{SENDER}"
        total = v4 + v6 + len(lab.site_prefixes(SENDER))
        result["routes"] = total
        views = 2 if post_policy else 1
        # FRR sends nothing on (it would send the whole table back to BIRD, which drops it: AS loop).
        frr.set_export(False)  # type: ignore[attr-defined]
        if not post_policy:
            frr.configure(  # type: ignore[attr-defined]
                f"bmp targets {BMP_TARGET}", *(f"no bmp monitor ipv{f} unicast post-policy" for f in (4, 6))
            )
        # BIRD loads the table with FRR's session to it shut (BIRD busy sending answers birdc late).
        lab.shutdown_sessions(MONITOR, [session_name])
        loading = time.monotonic()
        lab.add_static_routes(SENDER, v4, v6, group)
        result["bird_load_seconds"] = round(time.monotonic() - loading, 2)
        lab.birdc(SENDER, "disable", "collector")  # ExaBGP's turn comes last
        result["lab_ready_seconds"] = round(time.monotonic() - started, 2)

        def frr_holds(count: int) -> Callable[[], bool]:
            return lambda: frr_received(lab, sender_at_monitor) >= count

        if mode == "dump" or frr_baseline:
            # Phase 1: FRR learns the table over BGP with no BMP station listening (its cost without BMP).
            meter = Meter({"frr_bgpd": [bgpd], "bird": [bird]})
            began = time.monotonic()
            lab.enable_sessions(MONITOR, [session_name])
            wait(frr_holds(total), timeout, "FRR to hold the table", meter)
            meter.sample()
            result["frr_without_bmp"] = {
                "seconds_enable_to_table": round(time.monotonic() - began, 2),
                "cpu_seconds": meter.cpu(),
                "peak_rss_bytes": meter.peak,
            }
            if mode == "live":
                lab.shutdown_sessions(MONITOR, [session_name])  # FRR forgets it again
                wait(lambda: frr_received(lab, sender_at_monitor) == 0, timeout, "FRR to drop the table")
        if mode == "dump":
            block_bmp(lab, True)  # FRR's connects are refused until bgpwatch has started

        daemon = LabDaemon(lab, Path(tmp), **overrides)
        write_config(daemon, lab)
        daemon.start(log_level=log_level)
        try:
            pid = daemon.process.pid  # type: ignore[union-attr]
            if mode == "live":
                wait(lambda: router_state(daemon) == "up", 30, "FRR's BMP connection")  # retries 1-10 s
            time.sleep(1.0)  # start-up settles (imports, ExaBGP workers, FRR's Initiation), not ingest
            status = daemon.get("/api/v1/status") or {}
            workers = status.get("workers") or [
                w for i in status.get("inputs", []) for w in i.get("workers", [])
            ]
            exabgp = [w["pid"] for w in workers if w.get("pid")]
            relay = find_pids(f"relay --config {daemon.config}")
            groups = {"bgpwatch": [pid], "exabgp": exabgp, "relay": relay, "frr_bgpd": [bgpd], "bird": [bird]}
            result["exabgp_python"] = next((w.get("python") for w in workers), None)
            rss_idle = rss_bytes(pid)
            result["bgpwatch_rss_idle_bytes"] = rss_idle

            # Phase 2: BMP.  dump: FRR (holding the table) may connect: Initiation, Peer Up, its whole
            # Adj-RIB-In pre- and post-policy, End-of-RIB.  live: FRR's session to BIRD comes up: Peer
            # Up, then every route FRR takes in is mirrored as Route Monitoring.
            meter = Meter(groups)
            began = time.monotonic()
            if mode == "dump":
                block_bmp(lab, False)
            else:
                lab.enable_sessions(MONITOR, [session_name])
            frr_done: list[float] = []
            post_seen: list[tuple[float, int]] = []

            def bmp_loaded() -> dict[str, Any] | None:
                if mode == "live" and not frr_done and frr_received(lab, sender_at_monitor) >= total:
                    frr_done.append(time.time())
                session = bmp_session(daemon, f"{MONITOR}-r1", sender_at_monitor)
                trace("bmp", session and session["state"], session and session["routes"])
                if session is None or session["state"] != "up":
                    return None
                routes = session["routes"]
                if routes["pre"] < total:
                    return None
                if not post_policy or routes["post"] >= total:
                    return session
                # FRR 8.4 live: a few post-policy routes come as withdrawals and are never re-sent
                # (bench/README.md): the post view is loaded once it stops changing for 2 s.
                if mode == "live":
                    if not post_seen or post_seen[-1][1] != routes["post"]:
                        post_seen.append((time.time(), routes["post"]))
                    elif time.time() - post_seen[-1][0] >= 2.0:
                        session["settled_at"] = post_seen[-1][0]
                        return session
                return None

            session = wait(bmp_loaded, timeout, f"{total} routes over BMP", meter)
            done = session.pop("settled_at", None) or time.time()
            meter.sample()
            bmp_rss = rss_bytes(pid)
            result["bmp"] = {
                "mode": mode,
                "routes_pre": session["routes"]["pre"],
                "routes_post": session["routes"]["post"],
                "seconds_from_start": round(time.monotonic() - began, 2),
                # The Peer Up's arrival time (bgpwatch's clock) to the poll that saw every route.
                "seconds_peer_up_to_loaded": round(done - session["since"], 2),
                "cpu_seconds": meter.cpu(),
                "peak_rss_bytes": meter.peak,
                "bgpwatch_rss_growth_bytes": bmp_rss - rss_idle,
                "rss_bytes_per_route": round((bmp_rss - rss_idle) / total, 1),
                "rss_bytes_per_view_route": round((bmp_rss - rss_idle) / (views * total), 1),
                "bmp_messages": bmp_messages(daemon),
            }
            if mode == "live":
                # ... and to the poll that saw FRR itself hold the table (FRR's own BGP load).
                result["bmp"]["seconds_peer_up_to_frr_loaded"] = round(
                    (frr_done or [done])[0] - session["since"], 2
                )
            result["bmp"]["prefixes_per_second"] = round(
                total / max(result["bmp"]["seconds_peer_up_to_loaded"], 1e-3)
            )

            # Phase 3: ExaBGP.  par1's collector session comes up: the same table as ExaBGP JSON.
            meter = Meter(groups)
            began = time.monotonic()
            lab.birdc(SENDER, "enable", "collector")

            def exabgp_loaded() -> dict[str, Any] | None:
                peer = exabgp_peer(daemon, f"{SENDER}-rr1")
                trace(
                    "exabgp", peer and (peer["state"], peer["since"], peer["routes"], peer.get("end_of_rib"))
                )
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
        except TimeoutError as exc:  # say what arrived, in the same JSON
            result["error"] = str(exc)
            result["bgpwatch_status"] = daemon.get("/api/v1/status")
            result["bmp_routers"] = daemon.get("/api/v1/routers")
        finally:
            daemon.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v4", type=int, default=100_000)
    parser.add_argument("--v6", type=int, default=0)
    parser.add_argument("--group", type=int, default=4, help="routes per attribute set (0: all in one)")
    parser.add_argument("--python", default=None, help="interpreter for ExaBGP (e.g. a PyPy venv's python)")
    parser.add_argument("--pre-only", action="store_true", help="FRR monitors pre-policy only")
    parser.add_argument(
        "--frr-baseline",
        action="store_true",
        help="live: let FRR learn and drop the table first (FRR 8.4 then crawls: bench/README.md)",
    )
    parser.add_argument(
        "--mode",
        choices=("dump", "live"),
        default="dump",
        help="dump: FRR holds the table when BMP connects; live: FRR's session comes up under BMP",
    )
    parser.add_argument(
        "--record", type=Path, default=None, help="record bgpwatch's input into this directory"
    )
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    reason = lab_available(("bird", "frr"))
    if reason:
        print(f"cannot run the lab: {reason}", file=sys.stderr)
        return 2
    result = run(
        args.v4,
        args.v6,
        args.group,
        args.python,
        args.timeout,
        post_policy=not args.pre_only,
        frr_baseline=args.frr_baseline,
        mode=args.mode,
        record=args.record,
    )
    print(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
