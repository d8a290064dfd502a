"""BMP evidence in the model: routers' own session reports (MonitorState / MonitoredSession events).

Scenarios are typed events, as the BMP decoder produces them (its wire decoding is tested in
tests/test_ingest_bmp.py, the real routers in tests/test_lab_bmp.py): what must follow in the
topology, the alerts and the incidents when a site's neighbours report their sessions to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpwatch.config import load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.events import (
    DOWN,
    UP,
    Announce,
    EndOfRib,
    MonitoredSession,
    MonitorState,
    SessionState,
    Withdraw,
    view_key,
)
from bgpwatch.ingest.reasons import HOLD_TIMER, OTHER, PEER
from bgpwatch.pipeline import Pipeline
from bgpwatch.rib.prefix import parse_prefix
from bgpwatch.topology.render import render_text

T0 = 1_764_000_000.0
CONFIG = """
collector: {local_as: 65000, router_id: 192.0.2.254}
sites:
  - name: par1
    prefixes: [203.0.113.0/26]
    peers: [{name: par1-rr1, address: 192.0.2.2, peer_as: 65001, router_id: 10.0.0.1}]
  - name: par2
    prefixes: [203.0.113.64/26]
    peers: [{name: par2-rr1, address: 192.0.2.6, peer_as: 65002, router_id: 10.0.0.2}]
  - name: par3
    prefixes: [203.0.113.128/26]
    peers: [{name: par3-rr1, address: 192.0.2.10, peer_as: 65003, router_id: 10.0.0.3}]
inputs:
  - type: exabgp
  - type: bmp
    listen: 127.0.0.1:11019
    routers:
      - {name: r1, site: par1, address: 192.0.2.2}
      - {name: r2, site: par2, address: 192.0.2.6}
      - {name: r3, site: par3, sys_name: par3-router}
"""
SITES = {"par1": ("192.0.2.2", 65001), "par2": ("192.0.2.6", 65002), "par3": ("192.0.2.10", 65003)}
PREFIXES = {"par1": "203.0.113.0/26", "par2": "203.0.113.64/26", "par3": "203.0.113.128/26"}
ROUTER_ID = {"par1": "10.0.0.1", "par2": "10.0.0.2", "par3": "10.0.0.3"}
ROUTER = {"par1": "r1", "par2": "r2", "par3": "r3"}
LINK = {  # the address of site b's router on its link with site a
    ("par1", "par2"): "198.51.100.2",
    ("par2", "par1"): "198.51.100.1",
    ("par1", "par3"): "198.51.100.6",
    ("par3", "par1"): "198.51.100.5",
    ("par2", "par3"): "198.51.100.10",
    ("par3", "par2"): "198.51.100.9",
}


class World:
    """A pipeline and engine fed typed events in stream time; transitions collected."""

    def __init__(self, tmp_path: Path) -> None:
        path = tmp_path / "bgpwatch.yaml"
        path.write_text(CONFIG)
        self.config = load_config(path)
        self.pipeline = Pipeline(self.config)
        self.transitions: list[dict] = []
        self.engine = DetectionEngine(
            self.config, self.pipeline.rib, self.transitions.append, sessions=self.pipeline.sessions
        )
        self.pipeline.consumer = self.engine
        self.now = T0

    def at(self, seconds: float) -> float:
        self.now = T0 + seconds
        self.engine.tick(self.now)
        return self.now

    def feed(self, event) -> None:
        self.pipeline.feed_event(event)

    def update(self, site: str, at: float) -> None:
        """The site's router sends bgpwatch a new route (a customer's prefix): it is alive."""
        address, asn = SITES[site]
        attrs = self.pipeline.pool.intern("igp", (asn, 174), (), address)
        self.feed(Announce(at, address, 4, (parse_prefix("185.0.0.0/24")[1],), attrs))

    def announce(self, site: str, seen: list[str], at: float) -> None:
        address, asn = SITES[site]
        for other in seen:
            path = (asn,) if other == site else (asn, SITES[other][1])
            attrs = self.pipeline.pool.intern("igp", path, (), address)
            self.feed(Announce(at, address, 4, (parse_prefix(PREFIXES[other])[1],), attrs))

    def start(self) -> None:
        """Every session up with every site's prefix; every router reports its inter-site sessions."""
        at = self.at(0)
        for site, (address, asn) in SITES.items():
            self.feed(SessionState(at, address, UP, peer_as=asn))
            self.announce(site, list(SITES), at)
            self.feed(EndOfRib(at, address, 4))
        at = self.at(1)
        for site, router in ROUTER.items():
            self.feed(MonitorState(at, router, True, SITES[site][0], sys_name=f"{site}-router"))
            for other in SITES:
                if other != site:
                    self.peer(site, other, UP, at)
        self.at(70)  # past the start-up grace

    def peer(self, site: str, other: str, state: str, at: float, cause: str = "") -> None:
        self.feed(
            MonitoredSession(
                at,
                ROUTER[site],
                LINK[(site, other)],
                state,
                peer_as=SITES[other][1],
                peer_bgp_id=ROUTER_ID[other],
                local_bgp_id=ROUTER_ID[site],
                cause=cause,
                reason="hold timer expired" if cause == HOLD_TIMER else "",
                graceful_restart=True,
            )
        )

    def firing(self, kind: str) -> list[dict]:
        return [t for t in self.transitions if t["kind"] == kind and t["state"] == "firing"]

    def state(self, site: str) -> str:
        return self.engine.topology.states[site].state


def test_routers_sessions_are_classified_inter_site(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.start()
    monitors = world.pipeline.sessions.monitors
    assert {r.name: r.heard for r in monitors.routers.values()} == {"r1": True, "r2": True, "r3": True}
    assert monitors.routers["r1"].bgp_id == "10.0.0.1"  # learnt from its Peer Up (its sent OPEN)
    r1 = monitors.to_dict(monitors.routers["r1"], world.now)
    assert [(p["address"], p["kind"], p["site"], p["state"]) for p in r1["sessions"]] == [
        ("198.51.100.2", "inter-site", "par2", "up"),
        ("198.51.100.6", "inter-site", "par3", "up"),
    ]
    # A peer that is no router of ours (a transit) is external.
    world.feed(
        MonitoredSession(world.at(71), "r1", "203.0.113.250", UP, peer_as=3356, peer_bgp_id="4.69.0.1")
    )
    kinds = {p["address"]: p["kind"] for p in monitors.to_dict(monitors.routers["r1"], world.now)["sessions"]}
    assert kinds["203.0.113.250"] == "external"
    assert world.transitions == []  # a healthy start is no incident
    assert all(world.state(s) == "live" for s in SITES)


def test_silent_death_under_graceful_restart_is_confirmed_by_the_neighbours_sessions(tmp_path: Path) -> None:
    """par2 loses power: GR keeps its routes at par1/par3 for 20 s more, BMP says it at hold-timer expiry."""
    world = World(tmp_path)
    world.start()
    cut = T0 + 100  # power cut: par2 goes silent, nothing is said for a hold time (9 s)
    world.at(109)
    world.peer("par1", "par2", DOWN, world.at(109.0), HOLD_TIMER)
    assert world.state("par2") == "live"  # one neighbour of two: not yet
    world.peer("par3", "par2", DOWN, world.at(109.2), HOLD_TIMER)
    assert world.state("par2") == "suspected"  # every neighbour lost it; bgpwatch's own session still up
    world.feed(SessionState(world.at(109.5), "192.0.2.6", DOWN, "notification sent (4,0)"))
    assert world.state("par2") == "down"  # confirmed, although par1 and par3 still hold its routes
    world.at(111)
    site_down = world.firing("site_down")
    assert len(site_down) == 1
    assert site_down[0]["labels"] == {"site": "par2"}
    assert 9.0 <= _epoch(site_down[0]["at"]) - cut <= 10.5
    assert "every session of its neighbours to it is down" in site_down[0]["summary"]
    topology = world.engine.topology.snapshot(world.now)
    evidence = next(s for s in topology["sites"] if s["name"] == "par2")["evidence"]
    assert any(line.startswith("BMP: every neighbour session to it is down") for line in evidence)
    # `bgpwatch topology` prints what the conclusion rests on: bgpwatch's sessions, routes, BMP.
    text = render_text(topology, width=None)
    shown = text[text.index("evidence:") :].splitlines()
    assert "  par2: bgpwatch sessions: 0 of 1 up" in shown, text
    assert any(line.startswith("  par2: BMP: every neighbour session to it is down") for line in shown), text
    # The stale-route window is open from that moment: par1 and par3 still hold par2's prefix (GR).
    stale = world.firing("stale_routes")
    assert len(stale) == 1 and set(stale[0]["annotations"]["holders"]) == {"par1-rr1", "par3-rr1"}
    # par2's BMP connection dies by TCP keepalive later: part of the same incident.
    world.feed(MonitorState(world.at(125), "r2", False, reason="connection lost: TimeoutError"))
    world.at(128)
    lost = world.firing("monitor_lost")
    assert len(lost) == 1 and lost[0]["incident"] == site_down[0]["incident"]
    # GR ends at par1/par3 (restart time 20 s after their hold timers): the routes go, stale resolves.
    at = world.at(129.1)
    for site in ("par1", "par3"):
        world.pipeline.feed_event(Withdraw(at, SITES[site][0], 4, (parse_prefix(PREFIXES["par2"])[1],)))
    world.at(135)
    resolved = [t for t in world.transitions if t["kind"] == "stale_routes" and t["state"] == "resolved"]
    assert len(resolved) == 1 and 19.0 <= resolved[0]["duration_seconds"] <= 22.0
    # One root cause, one incident: everything joined par2's.
    incidents = {t["incident"] for t in world.transitions}
    assert incidents == {site_down[0]["incident"]}, world.transitions


def test_without_bmp_the_same_death_waits_for_graceful_restart(tmp_path: Path) -> None:
    """Control: the same events without the routers' reports give no confirmed site_down before GR ends."""
    world = World(tmp_path)
    world.start()
    world.feed(SessionState(world.at(109.5), "192.0.2.6", DOWN, "notification sent (4,0)"))
    world.at(120)
    assert world.state("par2") == "live"  # par1 and par3 still route to it (GR): a lost vantage point
    assert world.firing("site_down") == []


def test_a_bmp_router_lost_alone_is_not_a_site_down(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.start()
    world.feed(MonitorState(world.at(100), "r3", False, reason="connection lost: ConnectionResetError"))
    world.at(110)
    assert [t["kind"] for t in world.transitions] == ["monitor_lost"]
    assert "r3" in world.transitions[0]["summary"] and world.transitions[0]["labels"]["site"] == "par3"
    assert all(world.state(s) == "live" for s in SITES)
    # Its reports no longer count: nothing it said before its loss makes a site down.
    world.peer("par1", "par3", DOWN, world.at(111), PEER)
    world.peer("par2", "par3", DOWN, world.at(111.5), PEER)
    # par3 is alive for bgpwatch and updates at once (a cut link withdraws routes): isolated, a split.
    world.update("par3", world.at(111.6))
    world.at(116)
    assert world.state("par3") == "live"
    assert world.firing("site_down") == []
    # Back: the router reconnects and re-reports; monitor_lost resolves.
    world.feed(MonitorState(world.at(120), "r3", True, "192.0.2.10", sys_name="par3-router"))
    world.at(125)
    assert [t["state"] for t in world.transitions if t["kind"] == "monitor_lost"] == ["firing", "resolved"]


def test_a_split_is_seen_from_the_sessions_while_graceful_restart_keeps_every_route(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.start()
    # par3's links are blackholed: every session around it expires on the hold timer.
    for site in ("par1", "par2"):
        world.peer(site, "par3", DOWN, world.at(100), HOLD_TIMER)
    world.at(100.05)
    assert world.state("par3") == "suspected"  # its neighbours lost it, it said nothing: dead or cut
    world.peer("par3", "par1", DOWN, world.at(100.1), HOLD_TIMER)
    world.peer("par3", "par2", DOWN, world.at(100.1), HOLD_TIMER)
    world.at(100.2)
    # Its own router reports losing them both: a dead router reports nothing, so par3 lives, cut off.
    assert world.state("par3") == "live"
    world.update("par3", world.at(100.3))  # it still talks to bgpwatch as well
    world.at(104)
    topology = world.engine.topology
    assert world.state("par3") == "live"
    assert topology.islands == [["par1", "par2"], ["par3"]]
    assert sorted(map(sorted, topology.cut_by_sessions)) == [["par1", "par3"], ["par2", "par3"]]
    text = render_text(topology.snapshot(world.now), width=None)
    for pair in topology.cut_by_sessions:
        a, b = sorted(pair)
        assert f"  {a} - {b}: no established BGP session path (BMP)" in text.splitlines(), text
    assert len(world.firing("topology_split")) == 1
    assert world.firing("site_down") == []  # suspected for 0.2 s only (less than site_down's 'for')
    # Sessions back: one island again.
    for site in ("par1", "par2"):
        world.peer(site, "par3", UP, world.at(110))
    world.at(115)
    assert topology.islands == [["par1", "par2", "par3"]]
    assert [t["state"] for t in world.transitions if t["kind"] == "topology_split"] == ["firing", "resolved"]
    assert len({t["incident"] for t in world.transitions}) == 1  # one root cause (the cut), one incident


def test_route_monitoring_views_are_kept_apart_and_flushed_with_their_session(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.start()
    pipeline = world.pipeline
    key = view_key("r1", LINK[("par1", "par2")], "pre")
    attrs = pipeline.pool.intern("igp", (65002,), (), LINK[("par1", "par2")])
    pipeline._bmp_events([Announce(world.at(80), key, 4, (parse_prefix(PREFIXES["par2"])[1],), attrs)], "c1")
    assert len(pipeline.bmp_rib.peers[key]) == 1
    assert key not in pipeline.rib.peers and key not in pipeline.sessions.strangers  # not a vantage point
    pipeline._bmp_events(
        [MonitoredSession(world.at(81), "r1", LINK[("par1", "par2")], DOWN, cause=PEER)], "c1"
    )
    assert key not in pipeline.bmp_rib.peers


def _epoch(text: str) -> float:
    from bgpwatch.alerts.lifecycle import parse_iso

    value = parse_iso(text)
    assert value is not None
    return value


@pytest.mark.parametrize("reported", [PEER, HOLD_TIMER, OTHER])
def test_a_router_restart_under_graceful_restart_is_one_warning(tmp_path: Path, reported: str) -> None:
    """bgpd of par3 killed and restarted: a live kernel closes its sessions; not a dead site.

    Whatever the neighbours report (FRR 8.4 reports a neighbour's bgpd crash like a hold-timer
    expiry, reason 2): bgpwatch's own session and the BMP connection were closed by par3's kernel.
    """
    world = World(tmp_path)
    world.start()
    at = world.at(100)
    world.feed(SessionState(at, "192.0.2.10", DOWN, "closing connection"))
    world.feed(MonitorState(at, "r3", False, reason="closed by the router"))
    world.peer("par1", "par3", DOWN, world.at(100.01), reported)
    world.peer("par2", "par3", DOWN, world.at(100.02), reported)
    world.at(105)
    assert world.state("par3") == "live"  # its routes are kept on purpose; it is expected back
    assert world.firing("site_down") == []
    kinds = sorted(t["kind"] for t in world.firing("session_down") + world.firing("monitor_lost"))
    assert kinds == ["monitor_lost", "session_down"]
    assert all(t["severity"] == "warning" for t in world.transitions)
    assert len({t["incident"] for t in world.transitions}) == 1  # one root cause: par3's router restarted


def test_a_router_heard_on_a_new_connection_before_the_old_one_closes(tmp_path: Path) -> None:
    """A quick power cycle: the router reconnects while its old connection waits for TCP keepalive."""
    world = World(tmp_path)
    world.start()
    pipeline = world.pipeline
    router = pipeline.sessions.monitors.routers["r3"]
    pipeline._bmp_events([MonitorState(world.at(80), "r3", True, "192.0.2.10")], "old")
    key = view_key("r3", LINK[("par3", "par1")], "pre")
    attrs = pipeline.pool.intern("igp", (65001,), (), LINK[("par3", "par1")])
    pipeline._bmp_events([Announce(world.at(81), key, 4, (parse_prefix(PREFIXES["par1"])[1],), attrs)], "old")
    assert key in pipeline.bmp_rib.peers
    connects = router.connects
    pipeline._bmp_events([MonitorState(world.at(100), "r3", True, "192.0.2.10")], "new")
    assert router.heard and router.connects == connects + 1
    assert key not in pipeline.bmp_rib.peers  # the old connection's views are stale: flushed
    assert all(peer.state == "idle" for peer in router.peers.values())  # until re-reported
    pipeline._bmp_events([MonitorState(world.at(126), "r3", False, reason="keepalive timeout")], "old")
    world.at(130)
    assert router.heard and pipeline.bmp_superseded == 1
    assert world.firing("monitor_lost") == []


def test_a_power_loss_reported_as_closed_by_the_peer_is_still_a_site_down(tmp_path: Path) -> None:
    """GoBGP 3.10 reports its hold-timer expiry as Peer Down reason 3 without NOTIFICATION (cause peer)."""
    world = World(tmp_path)
    world.start()
    world.peer("par1", "par2", DOWN, world.at(106.0), PEER)
    world.peer("par3", "par2", DOWN, world.at(106.1), PEER)
    world.feed(SessionState(world.at(106.5), "192.0.2.6", DOWN, "notification sent (4,0)"))
    world.at(108)
    assert world.state("par2") == "down"
    assert len(world.firing("site_down")) == 1


def test_a_zero_bgp_identifier_in_a_later_peer_down_keeps_the_session_inter_site(tmp_path: Path) -> None:
    """FRR 8.4's repeated Peer Downs of a session that failed to come back carry identifier 0.0.0.0."""
    world = World(tmp_path)
    world.start()
    world.feed(MonitoredSession(world.at(100), "r1", LINK[("par1", "par2")], DOWN, peer_bgp_id="0.0.0.0"))
    monitors = world.pipeline.sessions.monitors
    sessions = {p["address"]: p for p in monitors.to_dict(monitors.routers["r1"], world.now)["sessions"]}
    assert sessions[LINK[("par1", "par2")]]["kind"] == "inter-site"
    assert sessions[LINK[("par1", "par2")]]["bgp_id"] == ROUTER_ID["par2"]


def test_a_cut_seen_in_the_routes_before_the_routers_report_it_is_a_split(tmp_path: Path) -> None:
    """par3's links go down: its router withdraws the others at once, the Peer Downs come seconds later."""
    world = World(tmp_path)
    world.start()
    at = world.at(100)
    for other in ("par1", "par2"):
        key = (parse_prefix(PREFIXES[other])[1],)
        world.feed(Withdraw(at, SITES["par3"][0], 4, key))  # par3 lost them
    for site in ("par1", "par2"):
        world.feed(
            Withdraw(at, SITES[site][0], 4, (parse_prefix(PREFIXES["par3"])[1],))
        )  # and they lost par3
    world.at(102)
    assert world.engine.topology.islands == [["par1", "par2"], ["par3"]]
    for site in ("par1", "par2"):  # the routers' reports arrive later; par3 has nothing more to say
        world.peer(site, "par3", DOWN, world.at(104), OTHER)
    world.at(110)
    assert world.state("par3") == "live"
    assert world.firing("site_down") == []
    assert len(world.firing("topology_split")) == 1


def test_a_cut_that_only_the_hold_timers_see_is_a_split_not_a_site_down(tmp_path: Path) -> None:
    """GoBGP 3.10 ignores the carrier: a cut of par3's links shows when the hold timers expire, on both
    sides at once, reported as closed by the peer; graceful restart keeps every route on both sides and
    par3 sends bgpwatch nothing new.  Only par3's own router reporting its sessions down tells that it
    lives (the lab's GoBGP split paged site_down par3 before this)."""
    world = World(tmp_path)
    world.start()
    for site in ("par1", "par2"):
        world.peer(site, "par3", DOWN, world.at(100.0), PEER)
    world.peer("par3", "par1", DOWN, world.at(100.3), PEER)
    world.peer("par3", "par2", DOWN, world.at(100.4), PEER)
    world.at(110)
    topology = world.engine.topology
    assert world.state("par3") == "live"
    assert topology.islands == [["par1", "par2"], ["par3"]]
    assert world.firing("site_down") == [] and world.firing("stale_routes") == []
    assert len(world.firing("topology_split")) == 1
    # The same reports from par1 and par2 with par3's router silent (its last reports: established)
    # stay a dead site: a silent power loss is not turned into a split.
    (tmp_path / "dead").mkdir()
    other = World(tmp_path / "dead")
    other.start()
    for site in ("par1", "par2"):
        other.peer(site, "par3", DOWN, other.at(100.0), PEER)
    other.feed(SessionState(other.at(106.0), SITES["par3"][0], DOWN, "hold timer expired"))
    other.at(110)
    assert other.state("par3") == "down"
    assert len(other.firing("site_down")) == 1
