"""Make the BMP fixtures (fixtures/bmp/): real BMP streams from FRR 8.4 and GoBGP 3.10 lab routers.

Run as root from the repository root: ``.venv/bin/python -m tests.lab.make_bmp_fixtures frr|gobgp OUT``.
Builds a 3-site lab whose routers send BMP to ``capture_bmp`` in the collector namespace, plus an
ExaBGP peer without the 4-byte ASN capability on par1's collector session (so par1 monitors a
session with 2-byte AS paths and AS4_PATH), and plays: the initial tables, a silent power loss of
par3 (its neighbours' hold timers expire; graceful restart keeps its routes for the restart time),
par3 back, an administrative shutdown (Cease) of par1-par2 and its return, ADD-PATH turned on
(FRR: par2 ``addpath-tx-all-paths`` towards par1), then the BMP target removed at par1 and a
graceful stop (SIGTERM) of par2.  Each connection's stream goes to ``OUT/<kind>-<site>-<n>.bmp``
(+ ``.idx``: arrival time, offset, length per read), the actions with their times to
``OUT/<kind>-timeline.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .capture_bmp import count_messages
from .netlab import Lab, sites

BMP_PORT = 11019
EXABGP = str(Path(sys.executable).with_name("exabgp"))
TWO_BYTE_PREFIX = "203.0.113.224/28"  # free in a 3-site lab (par4's range)
# 4200000001 cannot be said in 2 bytes: the wire carries AS_TRANS 23456 and an AS4_PATH.
TWO_BYTE_PATH = "[ 65000 4200000001 64512 ]"
HOLD = 9
RESTART = 20


def exabgp_config(lab: Lab) -> str:
    """Return an ExaBGP config peering with par1 as AS 65000 without the 4-byte ASN capability."""
    collector = lab.collector_addresses["par1"].v4
    router = lab.router_address("par1").v4
    return f"""
neighbor {router} {{
  router-id 192.0.2.254;
  local-address {collector};
  local-as 65000;
  peer-as {lab.site_as("par1")};
  hold-time {HOLD};
  capability {{ asn4 disable; graceful-restart {RESTART}; }}
  family {{ ipv4 unicast; }}
  static {{ route {TWO_BYTE_PREFIX} next-hop {collector} as-path {TWO_BYTE_PATH} community [ 65000:2 ]; }}
}}
"""


class Timeline:
    """Actions with their epoch times, printed as they happen."""

    def __init__(self) -> None:
        self.start = time.time()
        self.events: list[dict[str, object]] = []

    def mark(self, what: str, **extra: object) -> None:
        now = time.time()
        self.events.append({"at": round(now, 6), "what": what, **extra})
        print(f"+{now - self.start:7.2f}s {what} {extra or ''}", flush=True)


def wait_state(lab: Lab, site: str, name: str, up: bool, timeout: float) -> None:
    lab.wait_for(
        lambda: (lab.session_states(site).get(name) == "Established") == up,
        timeout,
        f"{site} {name} {'up' if up else 'down'}",
        0.2,
    )


def run(kind: str, out: Path, *, soft_reconfiguration: bool = True) -> None:
    """Play the capture scenario with ``kind`` routers; write the streams and timeline into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    raw = Path(tempfile.mkdtemp(prefix="bmpcap-"))
    timeline = Timeline()
    lab = Lab(
        sites(3, kind),
        bmp=BMP_PORT,
        prefix="bwtcap",
        hold_time=HOLD,
        keepalive_time=3,
        connect_retry=2,
        graceful_restart=True,
        restart_time=RESTART,
        bmp_soft_reconfiguration=soft_reconfiguration,
    )
    with lab:
        timeline.mark("lab started", routers={s: lab.router_address(s).v4 for s in lab.site_names})
        env = dict(os.environ)
        env.update(
            {
                "exabgp.daemon.user": "root",
                "exabgp.daemon.drop": "false",
                "exabgp.daemon.daemonize": "false",
                "exabgp.log.destination": "stdout",
                "exabgp.api.cli": "false",
            }
        )
        conf = lab.tmpdir / "exabgp-2byte.conf"
        conf.write_text(exabgp_config(lab))
        lab.collector_exec(
            [sys.executable, "-m", "tests.lab.capture_bmp", "--out", str(raw), "--port", str(BMP_PORT)],
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        with open(lab.tmpdir / "exabgp.out", "wb") as log:
            lab.collector_exec([EXABGP, str(conf)], env=env, stdout=log, stderr=subprocess.STDOUT)
        timeline.mark("capture and ExaBGP (no asn4) started")
        lab.wait_established(90)
        lab.wait_route("par1", TWO_BYTE_PREFIX, timeout=60)
        timeline.mark("mesh established, ExaBGP's route at par1")
        time.sleep(5)
        timeline.mark("initial tables sent")

        # Silent power loss: par1 and par2 notice on their hold timers, keep par3's routes (GR).
        lab.power_off("par3", carrier=False)
        timeline.mark("par3 powered off silently (nftables drop-all, SIGKILL)")
        for site in ("par1", "par2"):
            wait_state(lab, site, "peer_par3", False, HOLD + 10)
            timeline.mark(f"{site}: session to par3 down (hold timer)")
        lab.wait_route("par1", lab.site_prefixes("par3")[0], present=False, timeout=RESTART + 15)
        timeline.mark("par1: par3's routes gone (restart timer ended)")
        time.sleep(2)
        lab.power_on("par3")
        timeline.mark("par3 powered on")
        lab.wait_established(90)
        timeline.mark("mesh established again")
        time.sleep(4)

        # Administrative shutdown (Cease 6/2 with a shutdown message) and back.
        lab.shutdown_sessions("par1", ["peer_par2"], "bgpwatch capture: planned")
        timeline.mark("par1: peer_par2 shut (Cease)")
        time.sleep(3)
        lab.enable_sessions("par1", ["peer_par2"])
        wait_state(lab, "par1", "peer_par2", True, 60)
        timeline.mark("par1: peer_par2 up again")
        time.sleep(3)

        if kind == "frr":
            # ADD-PATH: par2 sends par1 every path (the session resets to negotiate it).
            par1 = lab.link_address("par1", "par2").v4
            lab.router("par2").configure(  # type: ignore[attr-defined]
                "address-family ipv4 unicast",
                f"neighbor {par1} addpath-tx-all-paths",
                "exit-address-family",
                "address-family ipv6 unicast",
                f"neighbor {par1} addpath-tx-all-paths",
                "exit-address-family",
            )
            timeline.mark("par2: addpath-tx-all-paths towards par1")
            time.sleep(2)
            wait_state(lab, "par1", "peer_par2", True, 60)
            timeline.mark("par1: peer_par2 up with ADD-PATH")
            time.sleep(4)

        lab.set_bmp("par1", False)
        timeline.mark("par1: BMP target removed")
        time.sleep(2)
        proc = lab.processes("par2").get("bgpd" if kind == "frr" else "gobgpd")
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        timeline.mark("par2: BGP daemon stopped with SIGTERM")
        time.sleep(2)
    timeline.mark("lab closed")
    names = {lab.router_address(s).v4.replace(":", "_"): s for s in lab.site_names}
    counts = {}
    seen: dict[str, int] = {}
    for path in sorted(raw.glob("*.bmp")):
        address = path.stem.split("-", 1)[1]
        site = names.get(address, address)
        seen[site] = seen.get(site, 0) + 1
        stem = f"{kind}-{site}-{seen[site]}"
        shutil.copy(path, out / f"{stem}.bmp")
        shutil.copy(path.with_suffix(".idx"), out / f"{stem}.idx")
        counts[stem] = {"bytes": path.stat().st_size, **count_messages(path.read_bytes())}
        print(stem, counts[stem])
    (out / f"{kind}-timeline.json").write_text(
        json.dumps({"events": timeline.events, "files": counts}, indent=1) + "\n"
    )
    shutil.rmtree(raw, ignore_errors=True)


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]), soft_reconfiguration="--no-soft-reconfiguration" not in sys.argv)
