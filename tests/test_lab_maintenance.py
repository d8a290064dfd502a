"""A maintenance window against real routers: planned work is reported, never paged.

Three FRR 8.4 sites (full mesh, graceful restart), bgpwatch managing ExaBGP.  The operator opens a
window on par3 with the CLI (`bgpwatch maintenance start par3 --for 10m --reason ...`), then par3 is
switched off (carrier lost: its neighbours withdraw its prefixes at once).  Expected: one incident (the
maintenance, escalated to site_down), every transition at info severity with ``planned`` = maintenance,
nothing critical; once the window is ended and par3 is back, nothing is left open.  Then the same
failure outside any window pages (site_down critical) as usual.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from tests.lab import Lab, SiteSpec, lab_available
from tests.lab.daemon import LabDaemon

UNAVAILABLE = lab_available(("frr",))
pytestmark = [
    pytest.mark.lab,
    pytest.mark.solo,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE)),
]

SITES = [
    SiteSpec("par1", 65001, ("203.0.113.0/27", "2001:db8:1001::/48"), router="frr"),
    SiteSpec("par2", 65002, ("203.0.113.64/27", "2001:db8:1002::/48"), router="frr"),
    SiteSpec("par3", 65003, ("203.0.113.128/27", "2001:db8:1003::/48"), router="frr"),
]


def ts(at: str) -> float:
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def converged(daemon: LabDaemon) -> bool:
    peers = daemon.get("/api/v1/peers") or []
    return len(peers) == 3 and all(p["state"] == "up" and p.get("converged") for p in peers)


def back(lab: Lab) -> None:
    """Wait until par1 and par2 route to par3's prefixes again (a rebooted FRR under graceful restart
    may defer its updates until it has every neighbour's End-of-RIB)."""
    for site in ("par1", "par2"):
        for prefix in SITES[2].prefixes:
            lab.wait_route(site, prefix, present=True, timeout=120)


def since(daemon: LabDaemon, start: float) -> list[dict]:
    return [t for t in daemon.cli("alerts", "--transitions") if ts(t["at"]) >= start]


def test_maintenance_window_is_reported_not_paged(tmp_path):
    with Lab(
        SITES, hold_time=9, keepalive_time=3, graceful_restart=True, restart_time=20, prefix="bwtmw"
    ) as lab:
        lab.wait_established(60)
        daemon = LabDaemon(lab, tmp_path, recording={"path": str(tmp_path / "recording")}).start()
        try:
            daemon.wait_for(lambda: converged(daemon), 90, "every session up and converged")
            time.sleep(3)
            assert daemon.cli("alerts") == []

            # 1. Inside a window: planned.
            start = time.time() - 1
            code, out, err = daemon.cli(
                "maintenance",
                "start",
                "par3",
                "--for",
                "10m",
                "--reason",
                "router upgrade",
                json_output=False,
            )
            assert code == 0, err
            lab.power_off("par3", carrier=True)
            # Off for real: until bgpwatch's own session to par3 is gone too (a power cycle shorter than
            # bgpwatch's hold timer is another scenario).
            daemon.wait_for(
                lambda: (
                    {t["kind"] for t in since(daemon, start)} >= {"planned_work", "site_down", "session_down"}
                ),
                40,
                "site_down and session_down inside the window",
            )
            lab.power_on("par3")
            lab.wait_established(60)
            back(lab)
            daemon.wait_for(lambda: converged(daemon), 90, "par3 back")
            assert daemon.cli("maintenance", "end", "par3", json_output=False)[0] == 0
            try:
                daemon.wait_for(lambda: daemon.cli("alerts") == [], 60, "nothing open after the window")
            except AssertionError:
                print(json.dumps(daemon.cli("topology"), indent=1)[:6000])
                print(json.dumps(daemon.get("/api/v1/peers"), indent=1)[:3000])
                raise
            planned = since(daemon, start)
            print("\ninside the window:")
            for t in planned:
                print(" ", t["at"], t["state"], t["severity"], t["kind"], t["labels"], t["incident"])
            assert all(t["severity"] == "info" for t in planned), planned
            assert all(
                (t.get("planned") or {}).get("by") == "maintenance"
                for t in planned
                if t["kind"] != "planned_work"
            )
            assert len({t["incident"] for t in planned}) == 1, "one root cause: the maintenance"
            for key in {(t["kind"], tuple(sorted(t["labels"].items()))) for t in planned}:
                states = [
                    t["state"] for t in planned if (t["kind"], tuple(sorted(t["labels"].items()))) == key
                ]
                assert states == ["firing", "resolved"], (key, states)

            # 2. The same failure outside any window pages as usual.  The window opens after the last
            # transition of step 1 (its resolutions can land within a second of the wait above).
            start = max(time.time() - 1, max(ts(t["at"]) for t in planned) + 0.001)
            lab.power_off("par3", carrier=True)
            daemon.wait_for(
                lambda: {t["kind"] for t in since(daemon, start)} >= {"site_down", "session_down"},
                40,
                "site_down and session_down, unplanned",
            )
            outside = since(daemon, start)
            site_down = next(t for t in outside if t["kind"] == "site_down")
            assert site_down["severity"] == "critical" and "planned" not in site_down
            lab.power_on("par3")
            lab.wait_established(60)
            back(lab)
            daemon.wait_for(lambda: daemon.cli("alerts") == [], 90, "recovered")
            assert len({t["incident"] for t in since(daemon, start)}) == 1
        finally:
            if daemon.process.poll() is None:
                daemon.stop()
