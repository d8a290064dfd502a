"""Planned work through the detection engine: a GRACEFUL_SHUTDOWN drain and a maintenance window.

The lab config (fixtures/scenarios/lab-config.yaml: par1..par3, one session each) fed event by event:
what follows a drain or happens inside a window is reported (info, ``planned``), never paged.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bgpwatch.config import load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.events import DOWN, UP, Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.rib import Rib
from bgpwatch.rib.prefix import parse_prefix

ROOT = Path(__file__).resolve().parent.parent
T0 = 1795691300.0
PEERS = {"par1": "192.0.2.2", "par2": "192.0.2.6", "par3": "192.0.2.10"}
GS = (65535, 0)


class Engine:
    def __init__(self, tmp_path: Path) -> None:
        data = yaml.safe_load((ROOT / "fixtures" / "scenarios" / "lab-config.yaml").read_text())
        # A service inside par2's prefixes, needed from par1 and par3 (par2 is the site that goes away).
        data["services"] = [
            {"name": "metrics-api", "prefixes": ["203.0.113.70/32"], "required_from": ["par1", "par3"]}
        ]
        path = tmp_path / "bgpwatch.yaml"
        path.write_text(yaml.safe_dump(data))
        self.config = load_config(path)
        self.rib = Rib()
        self.out: list[dict] = []
        self.engine = DetectionEngine(self.config, self.rib, self.out.append)
        self.prefixes = {s.name: [parse_prefix(p) for p in s.prefixes] for s in self.config.sites}
        self.asn = {s.name: s.peers[0].peer_as for s in self.config.sites}

    def feed(self, event) -> None:
        self.engine.process(event, self.rib.apply(event))

    def announce(self, t: float, peer_site: str, site: str, communities: tuple = ()) -> None:
        path = (self.asn[peer_site],) if peer_site == site else (self.asn[peer_site], self.asn[site])
        attrs = self.rib.pool.intern(
            origin="igp", as_path=path, next_hop=PEERS[peer_site], communities=communities
        )
        for family in (4, 6):
            keys = tuple(k for f, k in self.prefixes[site] if f == family)
            if keys:
                self.feed(Announce(T0 + t, PEERS[peer_site], family, keys, attrs))

    def withdraw(self, t: float, peer_site: str, site: str) -> None:
        for family in (4, 6):
            keys = tuple(k for f, k in self.prefixes[site] if f == family)
            if keys:
                self.feed(Withdraw(T0 + t, PEERS[peer_site], family, keys))

    def converge(self) -> None:
        for peer_site in PEERS:
            self.feed(SessionState(T0, PEERS[peer_site], UP))
            for site in PEERS:
                self.announce(0.01, peer_site, site)
            self.feed(EndOfRib(T0 + 0.02, PEERS[peer_site], 4))
            self.feed(EndOfRib(T0 + 0.02, PEERS[peer_site], 6))
        self.engine.tick(T0 + 70)  # past the start-up grace and the rejoin settling

    def got(self) -> list[tuple]:
        return [(t["kind"], t["state"], t["severity"], (t.get("planned") or {}).get("by")) for t in self.out]


def test_a_drained_site_going_away_is_planned_not_paged(tmp_path: Path) -> None:
    lab = Engine(tmp_path)
    lab.converge()
    assert lab.out == []
    # par2 drains (RFC 8326): it re-announces everything it sends with 65535:0 ...
    for site in PEERS:
        lab.announce(80, "par2", site, communities=(GS,))
    # par1 and par3 pass par2's tagged routes on: that says par2 drains, not their sessions.
    lab.announce(80.01, "par1", "par2", communities=(GS,))
    lab.announce(80.01, "par3", "par2", communities=(GS,))
    lab.engine.tick(T0 + 81)
    assert lab.got() == [("planned_work", "firing", "info", "graceful_shutdown")]
    assert [d["peer"] for d in lab.engine.planned.drains(T0 + 81)] == ["par2-rr1"]
    # ... then shuts its sessions: the others withdraw its prefixes, bgpwatch's session closes.
    lab.withdraw(90, "par1", "par2")
    lab.withdraw(90, "par3", "par2")
    lab.feed(SessionState(T0 + 90.1, PEERS["par2"], DOWN, "notification received (6,2)"))
    lab.engine.tick(T0 + 95)
    fired = [g for g in lab.got() if g[1] == "firing" and g[0] != "planned_work"]
    assert fired and all(
        severity == "info" and by == "graceful_shutdown" for _k, _s, severity, by in fired
    ), fired
    assert {k for k, *_ in fired} >= {"site_down", "session_down", "service_unreachable"}  # consequences too
    assert not [t for t in lab.out if t["severity"] == "critical"]
    # One root cause (the drain), one incident: the drain's, which site_down escalated.
    assert len({t["incident"] for t in lab.out}) == 1, lab.out
    # par2 is back with a new session and untagged routes: the planned work is over.
    lab.feed(SessionState(T0 + 120, PEERS["par2"], UP))
    for site in PEERS:
        lab.announce(120.01, "par2", site)
    lab.feed(EndOfRib(T0 + 120.02, PEERS["par2"], 4))
    lab.feed(EndOfRib(T0 + 120.02, PEERS["par2"], 6))
    lab.engine.tick(T0 + 125)
    assert lab.engine.planned.drains(T0 + 125) == []
    assert ("planned_work", "resolved", "info", "graceful_shutdown") in lab.got()


def test_a_maintenance_window_marks_what_happens_inside_it(tmp_path: Path) -> None:
    lab = Engine(tmp_path)
    lab.converge()
    lab.engine.planned.start("par3", T0 + 75, 600, "router upgrade")
    lab.engine.tick(T0 + 76)
    assert lab.got() == [("planned_work", "firing", "info", "maintenance")]
    lab.withdraw(80, "par1", "par3")
    lab.withdraw(80, "par2", "par3")
    lab.feed(SessionState(T0 + 80.1, PEERS["par3"], DOWN, "closing connection"))
    lab.engine.tick(T0 + 85)
    site_down = [t for t in lab.out if t["kind"] == "site_down"]
    assert site_down and site_down[0]["severity"] == "info"
    assert (
        site_down[0]["planned"]["by"] == "maintenance"
        and site_down[0]["planned"]["reason"] == "router upgrade"
    )
    assert site_down[0]["annotations"]["severity_unplanned"] == "critical"
    assert len({t["incident"] for t in lab.out}) == 1  # the maintenance is the root cause
    (incident,) = lab.engine.incidents()
    assert incident["severity"] == "info" and incident["root"]["kind"] == "site_down", incident
    # Outside any window the same failure pages as usual.
    lab.engine.planned.end("par3", T0 + 86)
    lab.engine.tick(T0 + 87)
    assert ("planned_work", "resolved", "info", "maintenance") in lab.got()
