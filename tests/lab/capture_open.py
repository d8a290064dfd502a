r"""Capture the OPEN (and what follows it) that ExaBGP reports for FRR, BIRD and GoBGP peers.

Run as root from the repository root (writes ``fixtures/exabgp/open-<scenario>.jsonl``)::

    .venv/bin/python tests/lab/capture_open.py [--out DIR] [--only frr-gr bird ...] [--exabgp PATH]

Per scenario: two fresh namespaces ``bwo<hex>-c`` (ExaBGP) and ``bwo<hex>-r`` (the router), one
veth 192.0.2.1/30 + 2001:db8:c0:1::1/64 <-> 192.0.2.2/30 + 2001:db8:c0:1::2/64 (documentation
addresses only), eBGP AS65000 (collector) <-> AS65001 (router, passive), the router originating
203.0.113.0/27 and 2001:db8:1001::/48.  ExaBGP runs the configuration bgpwatch generates
(``render_worker``) with only its API process replaced by ``cat >> FILE``.  After the session is
up and the End-of-RIBs are in (or 8 s passed), ExaBGP is stopped with SIGTERM, and the router's
view of the session is recorded before and after the stop (``open-router-views.json``, also
printed).  Everything started is killed by pid and both namespaces are deleted, also on error
(``CAPTURE_KEEP=1`` keeps the directory with the configurations and logs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bgpwatch.collector.exabgp_config import plan_workers, render_worker, worker_environment  # noqa: E402
from bgpwatch.config import load_config  # noqa: E402

COLL_V4, ROUTER_V4 = "192.0.2.1", "192.0.2.2"
COLL_V6, ROUTER_V6 = "2001:db8:c0:1::1", "2001:db8:c0:1::2"
COLL_AS, ROUTER_AS = 65000, 65001
PREFIX_V4, PREFIX_V6 = "203.0.113.0/27", "2001:db8:1001::/48"
HOLD = 9
SETTLE = 8.0  # seconds after `up` to wait for End-of-RIBs that may never come


@dataclass(frozen=True)
class Scenario:
    """One capture: which router, whether it runs graceful restart, what bgpwatch advertises."""

    name: str
    router: str  # frr | bird | gobgp
    router_gr: bool
    collector_gr: int  # collector.graceful_restart
    restart_router: bool = False  # SIGKILL the router's BGP daemon once the table is in, start it again


SCENARIOS = (
    Scenario("frr-gr", "frr", True, 120),
    Scenario("frr-gr-collector-nogr", "frr", True, 0),
    Scenario("bird", "bird", False, 120),
    Scenario("bird-gr", "bird", True, 120),
    Scenario("gobgp", "gobgp", False, 120),
    Scenario("gobgp-gr", "gobgp", True, 120),
    Scenario("frr-gr-bgpd-restart", "frr", True, 120, restart_router=True),
)


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
    """Run a command and return its stdout; raise RuntimeError with its stderr if it fails."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


class Capture:
    """Namespaces, processes and files of one scenario; ``close`` releases them all."""

    def __init__(self, scenario: Scenario, exabgp: Path) -> None:
        self.scenario = scenario
        self.exabgp = exabgp
        tag = "bwo" + secrets.token_hex(2)
        self.coll_ns, self.router_ns = f"{tag}-c", f"{tag}-r"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[Any]] = []
        self.dir = Path(tempfile.mkdtemp(prefix=tag + "-"))
        self.dir.chmod(0o755)
        self.api = self.dir / "api.jsonl"

    # -- plumbing ---------------------------------------------------------------------------------
    def build(self) -> None:
        for namespace in (self.coll_ns, self.router_ns):
            run(["ip", "netns", "add", namespace])
            self.namespaces.append(namespace)
            run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        run(
            [
                "ip",
                "-n",
                self.coll_ns,
                "link",
                "add",
                "r",
                "type",
                "veth",
                "peer",
                "name",
                "c",
                "netns",
                self.router_ns,
            ]
        )
        for namespace, ifname, v4, v6 in (
            (self.coll_ns, "r", COLL_V4, COLL_V6),
            (self.router_ns, "c", ROUTER_V4, ROUTER_V6),
        ):
            run(["ip", "-n", namespace, "addr", "add", f"{v4}/30", "dev", ifname])
            run(["ip", "-n", namespace, "-6", "addr", "add", f"{v6}/64", "dev", ifname, "nodad"])
            run(["ip", "-n", namespace, "link", "set", ifname, "up"])

    def start(self, argv: Sequence[str], namespace: str, log: str, **kwargs: Any) -> subprocess.Popen[Any]:
        out = open(self.dir / log, "ab")  # noqa: SIM115 - the child keeps it
        proc = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        out.close()
        self.procs.append(proc)
        return proc

    def close(self, keep_files: bool = False) -> None:
        """Kill what was started, delete the namespaces, remove the directory (unless ``keep_files``)."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        for namespace in self.namespaces:
            for word in run(["ip", "netns", "pids", namespace], check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(word), signal.SIGKILL)
            run(["ip", "netns", "del", namespace], check=False)
        if keep_files:
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- routers ----------------------------------------------------------------------------------
    def start_router(self) -> None:
        getattr(self, f"_start_{self.scenario.router}")()

    def _start_frr(self) -> None:
        frr = self.dir / "frr"
        frr.mkdir()
        gr = (
            ["bgp graceful-restart", "bgp graceful-restart preserve-fw-state"]
            if self.scenario.router_gr
            else []
        )
        (frr / "zebra.conf").write_text("hostname r\n")
        (frr / "bgpd.conf").write_text(
            "\n".join(
                [
                    "frr defaults traditional",
                    "hostname r",
                    f"log file {frr / 'bgpd.log'} debugging",
                    f"router bgp {ROUTER_AS}",
                    f" bgp router-id {ROUTER_V4}",
                    " no bgp default ipv4-unicast",
                    " no bgp network import-check",
                    " no bgp ebgp-requires-policy",
                    *[" " + line for line in gr],
                    f" neighbor {COLL_V4} remote-as {COLL_AS}",
                    f" neighbor {COLL_V4} passive",
                    f" neighbor {COLL_V4} timers 3 {HOLD}",
                    " address-family ipv4 unicast",
                    f"  network {PREFIX_V4}",
                    f"  neighbor {COLL_V4} activate",
                    " exit-address-family",
                    " address-family ipv6 unicast",
                    f"  network {PREFIX_V6}",
                    f"  neighbor {COLL_V4} activate",
                    " exit-address-family",
                    "",
                ]
            )
        )
        shutil.chown(frr, "frr", "frr")
        for path in frr.iterdir():
            shutil.chown(path, "frr", "frr")
        common = ["-z", str(frr / "zserv.api"), "--vty_socket", str(frr), "-P", "0"]
        self.start(
            ["/usr/lib/frr/zebra", "-f", str(frr / "zebra.conf"), "-i", str(frr / "zebra.pid"), *common],
            self.router_ns,
            "zebra.out",
        )
        wait(lambda: (frr / "zserv.api").exists(), 15, "zebra's zserv socket")
        self._start_bgpd()

    def _start_bgpd(self) -> None:
        frr = self.dir / "frr"
        with contextlib.suppress(FileNotFoundError):
            (frr / "bgpd.vty").unlink()
        common = ["-z", str(frr / "zserv.api"), "--vty_socket", str(frr), "-P", "0"]
        self.bgpd = self.start(
            ["/usr/lib/frr/bgpd", "-n", "-f", str(frr / "bgpd.conf"), "-i", str(frr / "bgpd.pid"), *common],
            self.router_ns,
            "bgpd.out",
        )
        wait(lambda: (frr / "bgpd.vty").exists(), 15, "bgpd's vty socket")

    def restart_bgpd(self) -> None:
        """Crash FRR's bgpd (SIGKILL: the kernel resets the TCP session) and start it again."""
        self.bgpd.kill()
        self.bgpd.wait(timeout=10)
        self._start_bgpd()

    def _start_bird(self) -> None:
        gr = ["  graceful restart on;"] if self.scenario.router_gr else []
        conf = self.dir / "bird.conf"
        conf.write_text(
            "\n".join(
                [
                    f'log "{self.dir / "bird.log"}" all;',
                    f"router id {ROUTER_V4};",
                    "protocol device { scan time 10; }",
                    f"protocol static static4 {{ ipv4; route {PREFIX_V4} unreachable; }}",
                    f"protocol static static6 {{ ipv6; route {PREFIX_V6} unreachable; }}",
                    "protocol bgp collector {",
                    f"  local {ROUTER_V4} as {ROUTER_AS}; neighbor {COLL_V4} as {COLL_AS};",
                    f"  passive on; hold time {HOLD}; keepalive time 3;",
                    *gr,
                    "  ipv4 { import none; export all; };",
                    f"  ipv6 {{ import none; export all; next hop address {ROUTER_V6}; }};",
                    "}",
                    "",
                ]
            )
        )
        sock = self.dir / "bird.ctl"
        self.start(["bird", "-f", "-c", str(conf), "-s", str(sock)], self.router_ns, "bird.out")
        wait(lambda: sock.exists(), 15, "BIRD's control socket")

    def _start_gobgp(self) -> None:
        gr = self.scenario.router_gr
        lines = [
            "[global.config]",
            f"  as = {ROUTER_AS}",
            f'  router-id = "{ROUTER_V4}"',
            f'  local-address-list = ["{ROUTER_V4}"]',
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{COLL_V4}"',
            f"    peer-as = {COLL_AS}",
            "  [neighbors.timers.config]",
            f"    hold-time = {HOLD}",
            "    keepalive-interval = 3",
            "  [neighbors.transport.config]",
            "    passive-mode = true",
            f'    local-address = "{ROUTER_V4}"',
        ]
        if gr:
            lines += ["  [neighbors.graceful-restart.config]", "    enabled = true", "    restart-time = 120"]
        for family in ("ipv4-unicast", "ipv6-unicast"):
            lines += [
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f'      afi-safi-name = "{family}"',
            ]
            if gr:
                lines += ["    [neighbors.afi-safis.mp-graceful-restart.config]", "      enabled = true"]
        conf = self.dir / "gobgpd.toml"
        conf.write_text("\n".join(lines) + "\n")
        self.start(
            ["gobgpd", "-f", str(conf), "-p", "--api-hosts", "127.0.0.1:50051", "--pprof-disable"],
            self.router_ns,
            "gobgpd.out",
        )
        wait(lambda: self._gobgp("global", check=False) is not None, 15, "gobgpd's API")
        self._gobgp("global", "rib", "add", PREFIX_V4, "-a", "ipv4")
        self._gobgp("global", "rib", "add", PREFIX_V6, "nexthop", ROUTER_V6, "-a", "ipv6")

    def _gobgp(self, *args: str, check: bool = True) -> str | None:
        argv = ["ip", "netns", "exec", self.router_ns, "gobgp", "-u", "127.0.0.1", "-p", "50051", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
        if done.returncode != 0:
            if check:
                raise RuntimeError(f"gobgp {' '.join(args)}: {done.stderr.strip()}")
            return None
        return done.stdout

    def router_view(self) -> Any:
        """Return what the router says about its session with the collector."""
        if self.scenario.router == "frr":
            text = run(
                ["vtysh", "--vty_socket", str(self.dir / "frr"), "-c", f"show bgp neighbors {COLL_V4} json"],
                check=False,
            )
            try:
                neighbor = json.loads(text).get(COLL_V4, {})
            except json.JSONDecodeError:
                return text
            keys = (
                "bgpState",
                "lastResetDueTo",
                "lastNotificationReason",
                "gracefulRestartInfo",
                "gracefulRestartRemoteTimerMsecs",
            )
            view = {key: neighbor[key] for key in keys if key in neighbor}
            view["gracefulRestart"] = {
                k: v for k, v in neighbor.get("neighborCapabilities", {}).items() if "raceful" in k
            }
            return view
        if self.scenario.router == "bird":
            return run(
                ["birdc", "-s", str(self.dir / "bird.ctl"), "show", "protocols", "all", "collector"],
                check=False,
            )
        return self._gobgp("neighbor", COLL_V4, check=False)

    # -- collector --------------------------------------------------------------------------------
    def start_exabgp(self) -> subprocess.Popen[Any]:
        sink = self.dir / "sink.sh"
        # fd 3 keeps the pipe ExaBGP reads commands from open: at EOF it counts the helper as dead.
        sink.write_text(f"#!/bin/sh\nexec 3>&1\nexec cat >> {self.api}\n")
        sink.chmod(0o755)
        config_path = self.dir / "bgpwatch.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "collector": {
                        "local_as": COLL_AS,
                        "router_id": "192.0.2.254",
                        "runtime_dir": str(self.dir / "run"),
                        "graceful_restart": self.scenario.collector_gr,
                        "hold_time": HOLD,
                        "local_address": COLL_V4,
                    },
                    "sites": [
                        {
                            "name": "par1",
                            "prefixes": [PREFIX_V4, PREFIX_V6],
                            "peers": [{"name": "par1-r1", "address": ROUTER_V4, "peer_as": ROUTER_AS}],
                        }
                    ],
                }
            )
        )
        config = load_config(config_path)
        (plan,) = plan_workers(config)
        text = render_worker(config, plan)
        lines = [f"  run {sink};" if line.startswith("  run ") else line for line in text.splitlines()]
        exa_conf = self.dir / "exabgp.conf"
        exa_conf.write_text("\n".join(lines) + "\n")
        env = worker_environment(config, plan)
        return self.start([str(self.exabgp), "server", str(exa_conf)], self.coll_ns, "exabgp.out", env=env)

    def lines(self) -> list[dict[str, Any]]:
        if not self.api.exists():
            return []
        return [json.loads(line) for line in self.api.read_text().splitlines() if line.strip()]


def wait(done: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _state(doc: dict[str, Any]) -> str | None:
    return doc.get("neighbor", {}).get("state") if doc.get("type") == "state" else None


def _eors(docs: list[dict[str, Any]]) -> list[str]:
    found = []
    for doc in docs:
        eor = doc.get("neighbor", {}).get("message", {}).get("eor")
        if doc.get("type") == "update" and eor:
            found.append(f"{eor['afi']} {eor['safi']}")
    return found


def capture(scenario: Scenario, exabgp: Path, out_dir: Path) -> dict[str, Any]:
    """Run one scenario; write its API lines to ``out_dir``; return a summary."""
    cap = Capture(scenario, exabgp)
    try:
        cap.build()
        cap.start_router()
        exa = cap.start_exabgp()
        wait(lambda: any(_state(d) == "up" for d in cap.lines()), 40, "state up")
        up_at = time.monotonic()
        while time.monotonic() - up_at < SETTLE and len(_eors(cap.lines())) < 2:
            time.sleep(0.2)
        time.sleep(0.5)  # anything right behind the End-of-RIBs
        restart: dict[str, Any] = {}
        if scenario.restart_router:
            cap.restart_bgpd()
            wait(lambda: [_state(d) for d in cap.lines()].count("up") >= 2, 60, "the second state up")
            second_up = time.monotonic()
            while time.monotonic() - second_up < 30 and len(_eors(cap.lines())) < 4:
                time.sleep(0.2)
            docs = cap.lines()
            ups = [d["time"] for d in docs if _state(d) == "up"]
            eor_times = [d["time"] for d in docs if d.get("neighbor", {}).get("message", {}).get("eor")]
            restart = {
                "second_up_to_last_eor_s": round(eor_times[-1] - ups[1], 3) if len(eor_times) >= 4 else None
            }
            time.sleep(0.5)
        before = cap.router_view()
        exa.send_signal(signal.SIGTERM)
        exa.wait(timeout=20)
        time.sleep(1.5)  # let the router notice the closed connection
        after = cap.router_view()
        raw = cap.api.read_bytes()
        docs = cap.lines()
        (out_dir / f"open-{scenario.name}.jsonl").write_bytes(raw)
        return {
            "scenario": scenario.name,
            "lines": len(docs),
            "types": [d.get("type") + (f":{_state(d)}" if _state(d) else "") for d in docs],
            "eor": _eors(docs),
            "open": [d["neighbor"]["open"] for d in docs if d.get("type") == "open"],
            "router_before_stop": before,
            "router_after_stop": after,
            **restart,
        }
    except Exception:
        for log in sorted(cap.dir.glob("*.out")) + sorted(cap.dir.glob("frr/*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        raise
    finally:
        cap.close(keep_files=bool(os.environ.get("CAPTURE_KEEP")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures" / "exabgp")
    parser.add_argument("--only", nargs="*", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--exabgp", type=Path, default=ROOT / ".venv" / "bin" / "exabgp")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    wanted = [s for s in SCENARIOS if not args.only or s.name in args.only]
    summaries = [capture(scenario, args.exabgp, args.out) for scenario in wanted]
    versions = {
        "exabgp": run([str(args.exabgp), "version"], check=False).split("\n", 1)[0].strip(),
        "bird": run(["bird", "--version"], check=False).strip()
        or subprocess.run(["bird", "--version"], capture_output=True, text=True, check=False).stderr.strip(),
        "frr": run(["/usr/lib/frr/bgpd", "--version"], check=False).split("\n", 1)[0].strip(),
        "gobgpd": run(["gobgpd", "--version"], check=False).strip(),
        "captured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps({"versions": versions, "scenarios": summaries}, indent=1, default=str) + "\n"
    (args.out / "open-router-views.json").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
