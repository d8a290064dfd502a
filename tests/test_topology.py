"""Topology: site-prefix mapping, incremental counts vs a brute-force recount, views and metrics."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from bgpwatch.config import ConfigError, load_config
from bgpwatch.detect import validate_detector_params
from bgpwatch.detect.engine import DetectionEngine, DetectorConfigError
from bgpwatch.events import DOWN, UP, Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.rib import Rib
from bgpwatch.rib.prefix import covers, parse_prefix
from bgpwatch.sessions import SessionTable
from bgpwatch.topology import SiteModel, Topology

CONFIG = """
collector: {local_as: 65000, router_id: 192.0.2.254}
sites:
  - name: par1
    prefixes: [203.0.113.0/26, 2001:db8:1001::/48, 10.0.0.0/16]
    peers: [{name: par1-rr1, address: 192.0.2.2, peer_as: 65001}, {name: par1-rr2, address: 192.0.2.3, peer_as: 65001}]
  - name: par2
    prefixes: [203.0.113.64/26, 10.0.8.0/24]
    peers: [{name: par2-rr1, address: 192.0.2.6, peer_as: 65002}]
  - name: par3
    prefixes: [203.0.113.128/25, 2001:db8:1003::/48]
    peers: [{name: par3-rr1, address: 192.0.2.10, peer_as: 65003}]
services:
  - {name: api, prefixes: [203.0.113.10/32], required_from: [par2, par3]}
  - {name: db, prefixes: [10.0.8.0/25, 2001:db8:1003::/64], required_from: [par1]}
"""
PEERS = ["192.0.2.2", "192.0.2.3", "192.0.2.6", "192.0.2.10"]


@pytest.fixture
def config(tmp_path: Path):
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def key(text: str) -> tuple[int, int]:
    return parse_prefix(text)


def test_site_prefix_mapping(config) -> None:
    model = SiteModel(config)
    f, k = key("203.0.113.0/26")
    assert model.site_prefix(f, k) == k  # exact
    assert model.site_prefix(*key("203.0.113.16/28")) == k  # more-specific counts
    assert model.site_prefix(*key("203.0.113.0/24")) is None  # covering aggregate does not
    assert model.site_prefix(*key("0.0.0.0/0")) is None
    assert model.site_prefix(*key("198.51.100.0/24")) is None
    # nested site prefixes: the longest one containing the route wins
    assert model.site_prefix(*key("10.0.8.128/25")) == key("10.0.8.0/24")[1]
    assert model.owner_of(4, key("10.0.8.0/24")[1]) == "par2"
    assert model.site_prefix(*key("10.0.9.0/24")) == key("10.0.0.0/16")[1]
    assert model.site_prefix(*key("2001:db8:1001:5::/64")) == key("2001:db8:1001::/48")[1]
    assert model.lengths[4] == (26, 25, 24, 16)


def test_service_prefix_reach(config) -> None:
    model = SiteModel(config)
    api = key("203.0.113.10/32")[1]
    assert model.service_prefixes_reached(*key("203.0.113.0/26")) == (api,)  # the site prefix covers it
    assert model.service_prefixes_reached(*key("203.0.113.8/29")) == (api,)
    assert model.service_prefixes_reached(*key("203.0.113.0/24")) == ()  # aggregate above the site prefix
    assert model.service_prefixes_reached(*key("203.0.113.64/26")) == ()
    db = key("10.0.8.0/25")[1]
    assert model.service_prefixes_reached(*key("10.0.8.0/26")) == (db,)  # more-specific inside


def brute_force(topology: Topology, rib: Rib) -> dict:
    """Recount everything from the RIB with naive scans (no index, no incremental state)."""
    model = topology.model
    site_prefixes = [(site, f, k) for site in model.sites for f, k in model.expected[site]]
    service_prefixes = {p for s in model.services for p in s.prefixes}
    have: dict[str, dict] = {}
    svc_have: dict[str, dict] = {}
    edges: dict = {}
    for address, adj in rib.peers.items():
        vp = topology.vps.get(address)
        if vp is None:
            continue
        counts: dict = {}
        svc: dict = {}
        for family, table in adj.tables.items():
            for route, attrs in table.items():
                containing = [
                    (k & 0xFF, k) for _, f, k in site_prefixes if f == family and covers(f, k, route)
                ]
                if containing:
                    site_key = max(containing)[1]
                    counts[(family, site_key)] = counts.get((family, site_key), 0) + 1
                    hops = (
                        attrs.as_path
                        if attrs.as_path[:1] == (vp.info.peer_as,)
                        else (vp.info.peer_as, *attrs.as_path)
                    )
                    pairs = {tuple(sorted(p)) for p in zip(hops, hops[1:], strict=False) if p[0] != p[1]}
                    for pair in pairs:
                        edges[pair] = edges.get(pair, 0) + 1
                for f, s in service_prefixes:
                    if f != family:
                        continue
                    anchor = model.site_prefix(f, s)
                    floor = (anchor & 0xFF) if anchor is not None else 1
                    if covers(f, route, s) and (route & 0xFF) >= floor or covers(f, s, route):
                        svc[(f, s)] = svc.get((f, s), 0) + 1
        have[address] = counts
        svc_have[address] = svc
    site_cover = {s: {} for s in model.sites}
    svc_cover = {s: {} for s in model.sites}
    for address, vp in topology.vps.items():
        if not vp.active:
            continue
        for prefix in have.get(address, {}):
            site_cover[vp.info.site][prefix] = site_cover[vp.info.site].get(prefix, 0) + 1
        for prefix in svc_have.get(address, {}):
            svc_cover[vp.info.site][prefix] = svc_cover[vp.info.site].get(prefix, 0) + 1
    vis = {
        s: {t: sum(1 for p in model.expected[t] if p in site_cover[s]) for t in model.sites}
        for s in model.sites
    }
    return {
        "have": {a: c for a, c in have.items() if c},
        "svc_have": {a: c for a, c in svc_have.items() if c},
        "site_cover": site_cover,
        "svc_cover": svc_cover,
        "vis": vis,
        "edges": edges,
    }


def incremental(topology: Topology) -> dict:
    return {
        "have": {a: dict(vp.have) for a, vp in topology.vps.items() if vp.have},
        "svc_have": {a: dict(vp.svc_have) for a, vp in topology.vps.items() if vp.svc_have},
        "site_cover": {s: dict(c) for s, c in topology.site_cover.items()},
        "svc_cover": {s: dict(c) for s, c in topology.svc_cover.items()},
        "vis": {s: dict(c) for s, c in topology.vis_count.items()},
        "edges": dict(topology.as_edges),
    }


ROUTES = [
    "203.0.113.0/26", "203.0.113.0/27", "203.0.113.8/29", "203.0.113.10/32", "203.0.113.0/24",
    "203.0.113.64/26", "203.0.113.96/27", "203.0.113.128/25", "203.0.113.192/26", "203.0.113.0/25",
    "10.0.0.0/16", "10.0.8.0/24", "10.0.8.0/25", "10.0.8.0/26", "10.0.9.0/24", "10.0.0.0/8", "0.0.0.0/0",
    "198.51.100.0/24", "2001:db8:1001::/48", "2001:db8:1001:1::/64", "2001:db8::/32",
    "2001:db8:1003::/48", "2001:db8:1003::/64", "2001:db8:ffff::/48",
]  # fmt: skip
PATHS = [(), (65002,), (65003,), (65002, 65003), (65003, 65001), (65001, 65001, 65002), (64999, 65003)]


@pytest.mark.parametrize("seed", range(12))
def test_incremental_counts_match_a_recount(config, seed: int) -> None:
    rng = random.Random(seed)
    rib = Rib()
    sessions = SessionTable(config)
    topology = Topology(SiteModel(config), sessions, startup_grace=5.0)
    now = 1000.0
    for _ in range(400):
        now += rng.random() * 0.5
        peer = rng.choice(PEERS)
        roll = rng.random()
        if roll < 0.05:
            event = SessionState(now, peer, rng.choice([UP, DOWN, "connected"]), "test")
        elif roll < 0.12:
            event = EndOfRib(now, peer, rng.choice([4, 6]))
        else:
            chosen = [parse_prefix(p) for p in rng.sample(ROUTES, rng.randint(1, 5))]
            family = rng.choice([4, 6])
            keys = tuple(dict.fromkeys(k for f, k in chosen if f == family))
            if not keys:
                continue
            if roll < 0.6:
                attrs = rib.pool.intern(as_path=rng.choice(PATHS), next_hop=peer)
                event = Announce(now, peer, family, keys, attrs)
            else:
                event = Withdraw(now, peer, family, keys)
        session = sessions.apply(event)
        changes = rib.apply(event)
        topology.apply(event, changes, now, session)
        for change in sessions.tick(now):
            topology.session_changed(change)
        topology.tick(now)
        if rng.random() < 0.2:
            topology.evaluate(now)
    assert incremental(topology) == brute_force(topology, rib)
    # a full reload of the same RIB (what a config reload does) counts the same
    # (the sessions keep their state: one owner, read by both topologies)
    fresh = Topology(SiteModel(config), sessions)
    fresh.load(rib, now)
    assert incremental(fresh) == incremental(topology)


def test_unrelated_routes_touch_nothing(config) -> None:
    rib = Rib()
    topology = Topology(SiteModel(config), SessionTable(config))
    attrs = rib.pool.intern(as_path=(64999, 64998), next_hop="192.0.2.2")
    keys = tuple(parse_prefix(f"100.{i // 256}.{i % 256}.0/24")[1] for i in range(20_000))
    event = Announce(1.0, "192.0.2.2", 4, keys, attrs)
    topology.dirty = False
    assert topology.apply(event, rib.apply(event), 1.0) is False
    assert topology.vps["192.0.2.2"].have == {} and topology.as_edges == {}


def feed(topology: Topology, rib: Rib, event) -> None:
    session = topology.sessions.apply(event)
    topology.apply(event, rib.apply(event), event.at, session)
    topology.evaluate(event.at)


def converge(topology: Topology, rib: Rib, at: float, paths: dict[str, dict[str, tuple[int, ...]]]) -> None:
    """Bring every peer up with a table: paths[peer][site] = AS path to that site's prefixes."""
    model = topology.model
    for peer, by_site in paths.items():
        feed(topology, rib, SessionState(at, peer, UP))
        for site, path in by_site.items():
            attrs = rib.pool.intern(as_path=path, next_hop=peer)
            for family in (4, 6):
                keys = tuple(k for f, k in model.expected[site] if f == family)
                if keys:
                    feed(topology, rib, Announce(at, peer, family, keys, attrs))
        for family in (4, 6):
            feed(topology, rib, EndOfRib(at, peer, family))


FULL = {
    "192.0.2.2": {"par1": (), "par2": (65002,), "par3": (65003,)},
    "192.0.2.3": {"par1": (), "par2": (65002,), "par3": (65003,)},
    "192.0.2.6": {"par1": (65001,), "par2": (), "par3": (65003,)},
    "192.0.2.10": {"par1": (65001,), "par2": (65002,), "par3": ()},
}


def test_states_islands_snapshot_and_dot(config) -> None:
    rib = Rib()
    topology = Topology(SiteModel(config), SessionTable(config))
    converge(topology, rib, 10.0, FULL)
    assert [v.state for v in topology.states.values()] == ["live"] * 3
    assert topology.islands == [["par1", "par2", "par3"]]
    assert topology.visibility("par1", "par3") == 1.0
    assert topology.as_edges[(65001, 65003)] > 0
    # link par1-par3 cut, detour through par2: still one island, the AS view moved
    detour = rib.pool.intern(as_path=(65002, 65003), next_hop="192.0.2.2")
    for peer in ("192.0.2.2", "192.0.2.3"):
        for family in (4, 6):
            keys = tuple(k for f, k in topology.model.expected["par3"] if f == family)
            feed(topology, rib, Announce(11.0, peer, family, keys, detour))
    assert topology.islands == [["par1", "par2", "par3"]]
    assert (65002, 65003) in topology.as_edges
    # par3 isolated: both sides withdraw
    for peer in ("192.0.2.2", "192.0.2.3", "192.0.2.6"):
        for family in (4, 6):
            keys = tuple(k for f, k in topology.model.expected["par3"] if f == family)
            feed(topology, rib, Withdraw(12.0, peer, family, keys))
    for site in ("par1", "par2"):
        for family in (4, 6):
            keys = tuple(k for f, k in topology.model.expected[site] if f == family)
            if keys:
                feed(topology, rib, Withdraw(12.0, "192.0.2.10", family, keys))
    assert topology.islands == [["par1", "par2"], ["par3"]]
    assert (65001, 65003) not in topology.as_edges
    snap = topology.snapshot(12.0)
    assert snap["split"] is True
    assert snap["visibility"]["par1"]["par3"] == 0.0
    assert {s["name"]: s["state"] for s in snap["sites"]} == {"par1": "live", "par2": "live", "par3": "live"}
    assert snap["sites"][0]["sessions"][0]["name"] == "par1-rr1"
    dot = topology.to_dot()
    assert dot.startswith("graph bgpwatch {") and '"par1" -- "par2"' in dot and "dashed" in dot


def test_engine_metrics_and_views(config) -> None:
    rib = Rib()
    registry = CollectorRegistry()
    emitted: list = []
    engine = DetectionEngine(config, rib, emitted.append, registry=registry)
    model = engine.model
    for peer, by_site in FULL.items():
        for event in [SessionState(10.0, peer, UP)]:
            engine.process(event, rib.apply(event))
        for site, path in by_site.items():
            attrs = rib.pool.intern(as_path=path, next_hop=peer)
            for family in (4, 6):
                keys = tuple(k for f, k in model.expected[site] if f == family)
                if keys:
                    event = Announce(10.0, peer, family, keys, attrs)
                    engine.process(event, rib.apply(event))
        for family in (4, 6):
            event = EndOfRib(10.1, peer, family)
            engine.process(event, rib.apply(event))
    engine.tick(30.0)  # past the settling time of sites seen for the first time
    text = generate_latest(registry).decode()
    assert 'bgpwatch_site_up{site="par2"} 1.0' in text
    assert 'bgpwatch_site_visibility_ratio{from_site="par1",to_site="par3"} 1.0' in text
    assert "bgpwatch_topology_islands 1.0" in text
    assert 'bgpwatch_service_reachable{service="api",site="par2"} 1.0' in text
    assert 'bgpwatch_site_stale_routes{site="par1"} 0.0' in text
    assert "bgpwatch_alerts_firing" in text
    snapshot = engine.snapshot()
    assert snapshot["islands"] == [["par1", "par2", "par3"]] and snapshot["alerts"] == []
    assert engine.to_dot().startswith("graph bgpwatch")
    assert emitted == [] and engine.active_alerts() == [] and engine.incidents() == []


def test_detector_params_are_validated(tmp_path: Path, config) -> None:
    problems = validate_detector_params(
        {"site_down": {"for": "soon", "bogus": 1}, "nope": {}, "topology": {"visibility_threshold": 2}},
        "cfg.yaml",
    )
    assert problems == [
        "cfg.yaml: detectors.site_down.for: expected a number between 0 and 3600, got 'soon'",
        "cfg.yaml: detectors.site_down.bogus: unknown parameter (expected one of: enabled, for, keep, severity)",
        "cfg.yaml: detectors.nope: unknown detector (expected one of: bogon_route, collector_degraded, "
        "external_stale_routes, external_visibility, "
        "mass_withdrawal, monitor_lost, more_specific, not_converged, origin_change, outside_feed, path_detour, "
        "path_length_jump, planned_work, "
        "reserved_asn, rpki_cache, rpki_invalid, rpki_not_found, "
        "service_unreachable, session_down, site_down, stale_routes, topology, topology_split, "
        "update_storm, upstream_change, visibility_loss)",
        "cfg.yaml: detectors.topology.visibility_threshold: expected a number between 0.01 and 1, got 2",
    ]
    assert (
        validate_detector_params(
            {"session_down": {"flap_count": 5, "for": 1}, "update_storm": {"enabled": False}}
        )
        == []
    )
    path = tmp_path / "bad.yaml"
    path.write_text(CONFIG + "detectors: {site_down: {keep: -1}}\n")
    # load_config already refuses it, in the configuration's own words; the engine checks again
    # for configurations built in code.
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"{path}: detectors.site_down.keep: expected a number between 0 and 3600, got -1"
    ]
    with pytest.raises(DetectorConfigError):
        DetectionEngine(
            config.model_copy(update={"detectors": {"site_down": {"keep": -1}}}), Rib(), lambda t: None
        )


def test_reconfigure_keeps_state_and_counts(tmp_path: Path, config) -> None:
    rib = Rib()
    engine = DetectionEngine(config, rib, lambda t: None)
    model = engine.model
    for peer, by_site in FULL.items():
        event = SessionState(10.0, peer, UP)
        engine.process(event, rib.apply(event))
        for site, path in by_site.items():
            attrs = rib.pool.intern(as_path=path, next_hop=peer)
            for family in (4, 6):
                keys = tuple(k for f, k in model.expected[site] if f == family)
                if keys:
                    event = Announce(10.0, peer, family, keys, attrs)
                    engine.process(event, rib.apply(event))
        for family in (4, 6):
            event = EndOfRib(10.1, peer, family)
            engine.process(event, rib.apply(event))
    before = incremental(engine.topology)
    path = tmp_path / "reloaded.yaml"
    path.write_text(CONFIG + "detectors: {topology: {visibility_threshold: 0.9}}\n")
    engine.reconfigure(load_config(path))
    assert engine.topology.threshold == 0.9
    assert incremental(engine.topology) == before
    assert [v.state for v in engine.topology.states.values()] == ["live"] * 3
