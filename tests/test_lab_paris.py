"""The Paris-like incident against real routers: a site loses power, the survivors split, all recover.

3 March 2025, PAR6 (DESIGN.md): a zone's power cut, its routes lingering elsewhere until hold
timers expired (stale routes), the network topology split, the Metrics API unreachable.  Here:
par2 (which hosts metrics-api) loses power silently; 12 s later the par1-par3 link is cut too,
so the surviving sites form two islands; then the link heals and par2 powers back on.  Two root
causes, so two incidents: par2's (site down, stale routes, session, services) and the split's.

With BGPWATCH_SAVE_FIXTURES=DIR the input recording is saved there as paris.jsonl.gz: the
bundled demo (`bgpwatch demo`) replays it.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.lab import Lab, lab_available
from tests.lab.daemon import LabDaemon
from tests.test_lab_scenarios import SERVICE, all_converged, brief, labels, transitions

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None, reason=str(lab_available()))]

EXPECTED = {
    ("site_down", labels(site="par2")),
    ("stale_routes", labels(site="par2")),
    ("session_down", labels(peer="par2-rr1", site="par2")),
    ("service_unreachable", labels(service="metrics-api", site="par1")),
    ("service_unreachable", labels(service="metrics-api", site="par3")),
    ("topology_split", labels(islands="par1 | par3")),
    # During the split each surviving island misses the other's prefixes: consequences of the split.
    ("visibility_loss", labels(site="par1")),
    ("visibility_loss", labels(site="par3")),
}
OPTIONAL = {("visibility_loss", labels(site="par2"))}


def test_paris_incident(tmp_path):
    with Lab(3) as lab:
        lab.wait_established(60)
        daemon = LabDaemon(lab, tmp_path, services=[SERVICE], recording={"path": str(tmp_path / "recording")})
        daemon.start()
        daemon.wait_for(lambda: all_converged(daemon), 90, "every session up with End-of-RIB")
        time.sleep(3)
        start = time.time()
        lab.power_off("par2")
        daemon.wait_for(
            lambda: any(
                t["kind"] == "stale_routes" and t["state"] == "resolved" for t in transitions(daemon, start)
            ),
            40,
            "par2's stale routes gone (hold timer)",
        )
        time.sleep(2)
        lab.split("par1", "par3")
        daemon.wait_for(
            lambda: any(t["kind"] == "topology_split" for t in transitions(daemon, start)),
            30,
            "the topology split",
        )
        time.sleep(10)
        lab.heal("par1", "par3")
        time.sleep(8)
        lab.power_on("par2")
        lab.wait_established(60)
        daemon.wait_for(lambda: all_converged(daemon), 90, "recovery")
        daemon.wait_for(lambda: daemon.cli("alerts") == [], 40, "every alert resolved")
        time.sleep(4)
        got = transitions(daemon, start)
        incidents = daemon.cli("incidents")
        timeline = daemon.cli("incidents", "show", got[0]["incident"], json_output=False)[1]
        assert daemon.stop() == 0
        seen = {(kind, lab_) for kind, _state, lab_ in map(brief, got)}
        assert EXPECTED <= seen <= EXPECTED | OPTIONAL, json.dumps(got, indent=1)
        for kind, lab_ in seen:  # each fired once and resolved once
            states = [
                t["state"] for t in got if (t["kind"], tuple(sorted(t["labels"].items()))) == (kind, lab_)
            ]
            assert states == ["firing", "resolved"], (kind, lab_, states)
        roots = {t["incident"] for t in got if t["kind"] == "site_down"}
        assert len(roots) == 1
        assert {
            t["incident"] for t in got if t["kind"] in ("stale_routes", "session_down", "service_unreachable")
        } == roots
        # Two root causes (the power cut, then the link cut), two incidents: the split is its own.
        split = {t["incident"] for t in got if t["kind"] == "topology_split"}
        assert len(split) == 1 and split != roots
        assert len({t["incident"] for t in got}) == 2
        assert incidents and "par2" in timeline, timeline
        print("\n" + timeline)
        for t in got:
            print(t["at"], t["state"], t["kind"], t["labels"], t["incident"])
        daemon.save_recording("paris", got)
