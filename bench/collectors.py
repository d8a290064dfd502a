"""Collector comparison: the same lab table collected by BIRD 2 and by GoBGP (and optionally bgpwatch).

The senders are the lab's BIRD sites (tests/lab), with N bulk routes each (``extra_routes``, as
bench/e2e.py loads par1).  Each collector runs in the lab's collector namespace, AS 65000, router
id 192.0.2.254, on the addresses the routers peer with (``lab.collector_addresses``), one session
per site carrying IPv4 and IPv6, import all, export nothing.  Its sessions start disabled: CPU and
RSS are sampled idle, then the sessions are enabled and the collector is polled every
``--poll`` seconds (session states and per-peer received-route counters) until every route of
every peer is held.  Figures: seconds from the (first) session Established to all routes held,
the collector's CPU seconds (utime+stime) over the load, its RSS growth per route.

    sudo .venv/bin/python -m bench.collectors --v4 262143 --v6 737857 --group 4            # 1M, par1
    sudo .venv/bin/python -m bench.collectors --peers 4 --v4 200000 --v6 50000 --group 4   # 4 x 250k
    sudo .venv/bin/python -m bench.collectors --v4 100000 --with-bgpwatch --python PYPY   # + bgpwatch
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab, lab_available  # noqa: E402
from lab.netlab import COLLECTOR_AS, COLLECTOR_ROUTER_ID  # noqa: E402
from lab.routers import LabError, stop_process  # noqa: E402

from bench.e2e import cpu_seconds, rss_bytes  # noqa: E402

COLLECTORS = ("bird", "gobgp")
# Below this share of one core between two samples, a collector counts as idle (done or waiting).
IDLE_CPU_SHARE = 0.05


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _cmd(argv: list[str], timeout: float = 30.0) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise LabError(
            f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


class Collector:
    """One collector daemon in the lab's collector namespace, sessions disabled until ``enable``."""

    name = ""
    # True: poll() reads counters (cheap, every interval); False: it walks the table inside the
    # daemon, so it is called only once the daemon has gone idle (and at most every 10 s otherwise).
    cheap_poll = True

    def __init__(self, lab: Lab, directory: Path) -> None:
        self.lab = lab
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def peers(self) -> list[tuple[str, str, str, int]]:
        """Return (site, collector address, router address, site AS) per site."""
        addresses = self.lab.collector_addresses
        return [
            (site, addresses[site].v4, self.lab.router_address(site).v4, self.lab.site_as(site))
            for site in self.lab.site_names
        ]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM, 10.0)

    # Implemented per collector.
    def start(self) -> None:
        raise NotImplementedError

    def enable(self) -> None:
        raise NotImplementedError

    def poll(self) -> dict[str, tuple[bool, int]]:
        """Return {site: (Established, routes received and held)}."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def extra(self) -> dict[str, Any]:
        return {}


class BirdCollector(Collector):
    name = "bird"

    @property
    def sock(self) -> Path:
        return self.directory / "bird.ctl"

    def config_text(self) -> str:
        lab = self.lab
        timers = (
            f"hold time {lab.hold_time}; keepalive time {lab.keepalive_time}; "
            "connect delay time 1; connect retry time 2; error wait time 1, 10;"
        )
        lines = [
            "# bench/collectors.py: BIRD as the collector",
            f'log "{self.directory / "bird.log"}" all;',
            f"router id {COLLECTOR_ROUTER_ID};",
            "protocol device { scan time 10; }",
        ]
        for site, local, remote, asn in self.peers():
            lines += [
                "",
                f"protocol bgp {site} {{",
                f"  local {local} as {COLLECTOR_AS}; neighbor {remote} as {asn};",
                "  direct; disabled;",
                f"  {timers}",
                "  ipv4 { import all; export none; };",
                "  ipv6 { import all; export none; };",
                "}",
            ]
        return "\n".join(lines) + "\n"

    def birdc(self, *args: str) -> str:
        return _cmd(["birdc", "-s", str(self.sock), *args])

    def start(self) -> None:
        config = self.directory / "bird.conf"
        config.write_text(self.config_text())
        out = open(self.directory / "bird.out", "ab")  # noqa: SIM115 (the child keeps it)
        # `ip netns exec` execs bird in place: the Popen pid is BIRD's.
        self.proc = self.lab.collector_exec(
            ["bird", "-f", "-c", str(config), "-s", str(self.sock)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise LabError(f"collector bird exited: {(self.directory / 'bird.out').read_text()[-2000:]}")
            if self.sock.exists():
                try:
                    if "Daemon is up and running" in self.birdc("show", "status"):
                        return
                except LabError:
                    pass
            if time.monotonic() > deadline:
                raise LabError("collector bird did not answer within 30 s")
            time.sleep(0.05)

    def enable(self) -> None:
        for site in self.lab.site_names:
            self.birdc("enable", site)

    def poll(self) -> dict[str, tuple[bool, int]]:
        # `show protocols all` reads per-channel counters (O(1)); `show route count` would walk the
        # table inside BIRD's single thread and slow the very load it measures.
        result: dict[str, tuple[bool, int]] = {}
        current = None
        for line in self.birdc("show", "protocols", "all").splitlines():
            words = line.split()
            if words and words[0] in self.lab.site_names and len(words) >= 4:
                current = words[0]
                result[current] = ("Established" in line, 0)
                continue
            match = re.match(r"\s*Routes:\s+(\d+) imported", line)
            if match and current is not None:
                up, count = result[current]
                result[current] = (up, count + int(match.group(1)))
        return result

    def version(self) -> str:
        done = subprocess.run(["bird", "--version"], capture_output=True, text=True, check=False)
        return (done.stdout + done.stderr).strip()  # BIRD prints it on stderr

    def extra(self) -> dict[str, Any]:
        # BIRD's own accounting: "Routing tables: 123 MB" etc.
        memory = {}
        for line in self.birdc("show", "memory").splitlines():
            match = re.match(r"\s*([A-Za-z][A-Za-z ]+):\s+([\d.]+)\s+([kMG]?B)", line)
            if match:
                scale = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3}[match.group(3)]
                memory[match.group(1).strip().lower().replace(" ", "_")] = round(
                    float(match.group(2)) * scale
                )
        return {"bird_memory_bytes": memory}


class GobgpCollector(Collector):
    name = "gobgp"
    # `gobgp neighbor` counts each peer's Adj-RIB-In by walking it (0.27 s a call at 1M routes):
    # polled every 0.1 s it slowed the 1M load from 56 s to 148 s.
    cheap_poll = False

    @property
    def socket(self) -> Path:
        return self.directory / "gobgpd.sock"

    def config_text(self) -> str:
        lab = self.lab
        lines = [
            "# bench/collectors.py: GoBGP as the collector",
            "[global.config]",
            f"  as = {COLLECTOR_AS}",
            f'  router-id = "{COLLECTOR_ROUTER_ID}"',
            "  port = -1",  # no listener: the routers are passive, the collector connects
            "[global.apply-policy.config]",
            '  default-import-policy = "accept-route"',
            '  default-export-policy = "reject-route"',
        ]
        for _site, local, remote, asn in self.peers():
            lines += [
                "",
                "[[neighbors]]",
                "  [neighbors.config]",
                f'    neighbor-address = "{remote}"',
                f"    peer-as = {asn}",
                "    admin-down = true",
                "  [neighbors.timers.config]",
                f"    hold-time = {lab.hold_time}",
                f"    keepalive-interval = {lab.keepalive_time}",
                "    connect-retry = 1",
                "  [neighbors.transport.config]",
                f'    local-address = "{local}"',
                "  [neighbors.apply-policy.config]",
                '    default-import-policy = "accept-route"',
                '    default-export-policy = "reject-route"',
            ]
            for family in (4, 6):
                lines += [
                    "  [[neighbors.afi-safis]]",
                    "    [neighbors.afi-safis.config]",
                    f'      afi-safi-name = "ipv{family}-unicast"',
                ]
        return "\n".join(lines) + "\n"

    def gobgp(self, *args: str) -> str:
        return _cmd(["gobgp", "--target", f"unix://{self.socket}", *args])

    def start(self) -> None:
        config = self.directory / "gobgpd.toml"
        config.write_text(self.config_text())
        out = open(self.directory / "gobgpd.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = self.lab.collector_exec(
            [
                "gobgpd", "-f", str(config), "-t", "toml", "--api-hosts", f"unix://{self.socket}",
                "--pprof-disable", "-l", "warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        out.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise LabError(
                    f"collector gobgpd exited: {(self.directory / 'gobgpd.log').read_text()[-2000:]}"
                )
            if self.socket.exists():
                try:
                    if "AS:" in self.gobgp("global"):
                        return
                except LabError:
                    pass
            if time.monotonic() > deadline:
                raise LabError("collector gobgpd did not answer within 30 s")
            time.sleep(0.05)

    def enable(self) -> None:
        for _site, _local, remote, _asn in self.peers():
            self.gobgp("neighbor", remote, "enable")

    def poll(self) -> dict[str, tuple[bool, int]]:
        by_address = {remote: site for site, _local, remote, _asn in self.peers()}
        result: dict[str, tuple[bool, int]] = {}
        for peer in json.loads(self.gobgp("-j", "neighbor") or "[]"):
            address = peer.get("conf", {}).get("neighbor_address") or peer.get("state", {}).get(
                "neighbor_address"
            )
            site = by_address.get(address)
            if site is None:
                continue
            up = peer.get("state", {}).get("session_state") in (6, "ESTABLISHED", "established")
            count = sum(
                int(afi.get("state", {}).get("accepted", 0) or 0) for afi in peer.get("afi_safis", []) or []
            )
            result[site] = (up, count)
        return result

    def version(self) -> str:
        return _cmd(["gobgpd", "--version"]).strip()

    def extra(self) -> dict[str, Any]:
        tables = {}
        for family in (4, 6):
            out = self.gobgp("global", "rib", "summary", "-a", f"ipv{family}")
            match = re.search(r"Destination:\s*(\d+),\s*Path:\s*(\d+)", out)
            if match:
                tables[f"ipv{family}"] = {"destinations": int(match.group(1)), "paths": int(match.group(2))}
        return {"global_rib": tables}


def expected_per_peer(lab: Lab, bulk: dict[str, int]) -> dict[str, int]:
    """Routes each site sends the collector: its bulk routes and every site's own prefixes (full mesh)."""
    site_prefixes = sum(len(lab.site_prefixes(site)) for site in lab.site_names)
    return {site: bulk.get(site, 0) + site_prefixes for site in lab.site_names}


def wait_converged(lab: Lab, timeout: float) -> None:
    """Every inter-site session up and every site holding every other site's prefixes."""
    lab.wait_established(timeout)
    for site in lab.site_names:
        for other in lab.site_names:
            if other != site:
                for prefix in lab.site_prefixes(other):
                    lab.wait_route(site, prefix, timeout=timeout)


def collector_sessions_down(lab: Lab, timeout: float) -> None:
    """Wait until no site's router still has its collector session Established."""

    def done() -> bool:
        return all(lab.session_states(site).get("collector") != "Established" for site in lab.site_names)

    lab.wait_for(done, timeout, "the routers' collector sessions down", 0.2)


def measure(
    lab: Lab,
    kind: str,
    directory: Path,
    expected: dict[str, int],
    poll: float,
    timeout: float,
    keep_timeline: bool = False,
) -> dict[str, Any]:
    collector: Collector = (BirdCollector if kind == "bird" else GobgpCollector)(lab, directory)
    collector.start()
    try:
        time.sleep(0.5)  # start-up settles (Go's runtime, BIRD's first scans)
        pid = collector.pid
        senders = {site: lab.router_pid(site) for site in lab.site_names}
        sender_cpu0 = {site: cpu_seconds(p) for site, p in senders.items() if p}
        cpu0, rss0 = cpu_seconds(pid), rss_bytes(pid)
        enabled = time.monotonic()
        collector.enable()
        established: dict[str, float] = {}
        done_at: dict[str, float] = {}
        timeline: list[tuple[float, int | None]] = []
        polls = 0
        poll_seconds = 0.0
        total_expected = sum(expected.values())
        state: dict[str, tuple[bool, int]] = {}
        last_cpu, last_sample, last_busy = cpu0, enabled, enabled
        idle_samples, counted_since_busy, last_count = 0, False, enabled
        while True:
            before = time.monotonic()
            # Established as the sending routers see it (their BIRD, not the collector, answers).
            for site in expected:
                if site not in established and lab.session_states(site).get("collector") == "Established":
                    established[site] = before  # up at the latest when the poll was sent
            cpu_now = cpu_seconds(pid)
            if cpu_now - last_cpu >= IDLE_CPU_SHARE * (before - last_sample):
                last_busy, idle_samples, counted_since_busy = before, 0, False
            else:
                idle_samples += 1
            last_cpu, last_sample = cpu_now, before
            count_now = collector.cheap_poll or before - last_count > 10.0
            # A collector whose count walks its table is asked only once it has gone idle.
            count_now |= len(established) == len(expected) and idle_samples >= 3 and not counted_since_busy
            total = None
            if count_now:
                state = collector.poll()
                now = time.monotonic()
                polls += 1
                poll_seconds += now - before
                counted_since_busy, last_count = True, now
                total = sum(count for _up, count in state.values())
                for site, (_up, count) in state.items():
                    if count >= expected[site] and site not in done_at:
                        # Idle-gated: the load ended by the last sample that saw the collector busy.
                        done_at[site] = now if collector.cheap_poll else last_busy
                # Answering the poll is not load: sample the CPU afresh.
                last_cpu, last_sample = cpu_seconds(pid), time.monotonic()
            timeline.append((round(before - enabled, 2), total))
            if len(done_at) == len(expected):
                break
            if before - enabled > timeout:
                raise LabError(
                    f"{kind}: {sum(c for _u, c in state.values())} of {total_expected} routes after {timeout} s"
                )
            time.sleep(max(0.0, poll - (time.monotonic() - before)))
        cpu = cpu_seconds(pid) - cpu0
        rss = rss_bytes(pid)
        held = {site: count for site, (_up, count) in state.items()}
        routes = sum(held.values())
        # The figures follow the sites that send bulk routes (the others send a handful).
        bulk_sites = [site for site in expected if expected[site] == max(expected.values())]
        first_up = min(established[site] for site in bulk_sites)
        loaded = max(done_at[site] for site in bulk_sites)
        result: dict[str, Any] = {
            "version": collector.version(),
            "routes": routes,
            "routes_by_peer": held,
            "every_route_held": all(held[site] == expected[site] for site in expected),
            "seconds_enable_to_established": round(first_up - enabled, 2),
            # From the first bulk session Established to every bulk peer's routes held.
            "seconds_established_to_loaded": round(loaded - first_up, 2),
            # The last bulk session came up this long after the first (GoBGP retries connects late).
            "seconds_established_spread": round(max(established[site] for site in bulk_sites) - first_up, 2),
            "seconds_established_to_loaded_by_peer": {
                site: round(done_at[site] - established[site], 2) for site in bulk_sites
            },
            "prefixes_per_second": round(routes / max(loaded - first_up, 1e-3)),
            "cpu_seconds": round(cpu, 2),
            "cpu_us_per_route": round(cpu / routes * 1e6, 2),
            "sender_cpu_seconds": round(
                sum(cpu_seconds(p) - sender_cpu0[s] for s, p in senders.items() if p and s in sender_cpu0), 2
            ),
            "rss_idle_bytes": rss0,
            "rss_bytes": rss,
            "rss_peak_bytes": peak_rss_bytes(pid),
            "rss_bytes_per_route": round((rss - rss0) / routes, 1),
            "count_polls": polls,
            "done_detection": "counters every poll" if collector.cheap_poll else "count once idle",
            "mean_poll_seconds": round(poll_seconds / polls, 4),
        }
        if keep_timeline:
            result["timeline"] = timeline
        result.update(collector.extra())
        return result
    finally:
        collector.stop()


def run(
    v4: int,
    v6: int,
    group: int,
    *,
    peers: int = 1,
    collectors: tuple[str, ...] = COLLECTORS,
    poll: float = 0.1,
    timeout: float = 900.0,
    timeline: bool = False,
) -> dict[str, Any]:
    """One lab, the collectors one after the other; peers=1: a 2-site lab with par1's table (as e2e)."""
    if peers == 1:
        lab = Lab(2, extra_routes={"par1": (v4, v6, group)})
    else:
        lab = Lab(peers, extra_routes={f"par{n}": (v4, v6, group) for n in range(1, peers + 1)})
    started = time.monotonic()
    with lab:
        bulk = {site: v4 + v6 for site in (["par1"] if peers == 1 else lab.site_names)}
        wait_converged(lab, 120)
        expected = expected_per_peer(lab, bulk)
        result: dict[str, Any] = {
            "peers_with_bulk": len(bulk),
            "sites": len(lab.site_names),
            "v4": v4,
            "v6": v6,
            "group_size": group,
            "routes_expected": sum(expected.values()),
            "lab_setup_seconds": round(time.monotonic() - started, 1),
            "poll_interval": poll,
            "collectors": {},
        }
        for number, kind in enumerate(collectors):
            if number:
                collector_sessions_down(lab, 60)
            result["collectors"][kind] = measure(
                lab, kind, lab.tmpdir / f"collector-{kind}", expected, poll, timeout, timeline
            )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v4", type=int, default=100_000, help="bulk IPv4 routes per sending site")
    parser.add_argument("--v6", type=int, default=0, help="bulk IPv6 routes per sending site")
    parser.add_argument("--group", type=int, default=4, help="routes per attribute set (0: all in one)")
    parser.add_argument(
        "--peers", type=int, default=1, help="sending sites (1: par1 of a 2-site lab, as e2e)"
    )
    parser.add_argument("--collectors", default=",".join(COLLECTORS), help="comma-separated: bird,gobgp")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between collector polls")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--timeline", action="store_true", help="keep every poll's (seconds, routes)")
    parser.add_argument("--with-bgpwatch", action="store_true", help="also bench.e2e.run (peers=1 only)")
    parser.add_argument("--python", default=None, help="with --with-bgpwatch: interpreter for ExaBGP")
    parser.add_argument("--workers", type=int, default=None, help="with --with-bgpwatch: ExaBGP workers")
    args = parser.parse_args()
    kinds = tuple(k for k in args.collectors.split(",") if k)
    unknown = set(kinds) - set(COLLECTORS)
    if unknown:
        parser.error(f"unknown collectors {sorted(unknown)}; known: {list(COLLECTORS)}")
    if not 1 <= args.peers <= 4:
        parser.error("--peers: 1 to 4")
    if args.with_bgpwatch and args.peers != 1:
        parser.error("--with-bgpwatch: bench.e2e loads par1 only (use --peers 1)")
    reason = lab_available(("bird", "gobgp") if "gobgp" in kinds else ("bird",))
    if reason:
        print(f"cannot run the lab: {reason}", file=sys.stderr)
        return 2
    result = run(
        args.v4,
        args.v6,
        args.group,
        peers=args.peers,
        collectors=kinds,
        poll=args.poll,
        timeout=args.timeout,
        timeline=args.timeline,
    )
    if args.with_bgpwatch:
        from bench import e2e

        result["bgpwatch"] = e2e.run(args.v4, args.v6, args.group, args.workers, args.python, args.timeout)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
