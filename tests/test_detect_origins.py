"""Route-level detectors (bgpwatch.detect.origins): synthetic events, then real anomalies in RIS MRT files.

Synthetic: the lab config (tests/test_detect_scenarios.py) plus watched prefixes; every test
states when the alert must fire (trigger + the 0.5 s default ``for``) and that it resolves
``keep`` (60 s for these detectors) after the last offending route went.
Real: `bgpwatch.playback.replay` over the RIS update files of fixtures/mrt/dfz_name_and_shame/
(provenance in fixtures/SOURCES.md) with a small config written here.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpwatch.alerts.lifecycle import iso_ms
from bgpwatch.config import load_config
from bgpwatch.detect import validate_detector_params
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.detect.origins import BOGONS, reserved_asn_kind
from bgpwatch.events import UP, Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.playback import replay
from bgpwatch.rib import Rib
from bgpwatch.rib.prefix import format_prefix, parse_prefix

ROOT = Path(__file__).resolve().parent.parent
LAB_CONFIG = ROOT / "fixtures" / "scenarios" / "lab-config.yaml"
MRT = ROOT / "fixtures" / "mrt"
DNAS = MRT / "dfz_name_and_shame"
T0 = 1795691300.0
P1, P2, P3 = "192.0.2.2", "192.0.2.6", "192.0.2.10"  # par1-rr1, par2-rr1, par3-rr1 (AS65001-65003)
NEW_KINDS = {"origin_change", "more_specific", "bogon_route", "reserved_asn", "path_length_jump"}


class Lab:
    """The lab config through the real loader, a RIB and an engine; times are seconds from T0."""

    def __init__(self, tmp_path: Path, **extra: Any) -> None:
        data = yaml.safe_load(LAB_CONFIG.read_text())
        data.update(extra)
        path = tmp_path / "bgpwatch.yaml"
        path.write_text(yaml.safe_dump(data))
        self.config = load_config(path)
        self.rib = Rib()
        self.out: list[dict[str, Any]] = []
        self.engine = DetectionEngine(self.config, self.rib, self.out.append)

    def feed(self, event: Any) -> None:
        self.engine.process(event, self.rib.apply(event))

    def up(self, t: float, *peers: str) -> None:
        for peer in peers or (P1, P2, P3):
            self.feed(SessionState(T0 + t, peer, UP))
            self.feed(EndOfRib(T0 + t, peer, 4))
            self.feed(EndOfRib(T0 + t, peer, 6))

    def announce(self, t: float, peer: str, prefixes: list[str], path: list[int], as_set: tuple = ()) -> None:
        attrs = self.rib.pool.intern(origin="igp", as_path=tuple(path), as_set=as_set, next_hop=peer)
        keys = [parse_prefix(p) for p in prefixes]
        for family in (4, 6):
            chosen = tuple(k for f, k in keys if f == family)
            if chosen:
                self.feed(Announce(T0 + t, peer, family, chosen, attrs))

    def withdraw(self, t: float, peer: str, prefixes: list[str]) -> None:
        keys = [parse_prefix(p) for p in prefixes]
        for family in (4, 6):
            chosen = tuple(k for f, k in keys if f == family)
            if chosen:
                self.feed(Withdraw(T0 + t, peer, family, chosen))

    def run_until(self, t: float) -> None:
        self.engine.tick(T0 + t)

    def got(self, kinds: set[str] = NEW_KINDS) -> list[tuple[str, str, str, dict[str, str]]]:
        return [(x["at"], x["kind"], x["state"], x["labels"]) for x in self.out if x["kind"] in kinds]


def at(t: float) -> str:
    return iso_ms(T0 + t)


WATCHED = [
    {"prefix": "198.51.100.0/24", "origins": [64500], "allow_more_specifics": False},
    {"prefix": "2001:db8:ffff::/48", "origins": [64500], "allow_more_specifics": True},
]


# -- origin_change -----------------------------------------------------------------------------
def test_origin_change_one_alert_per_prefix_and_origin(tmp_path: Path) -> None:
    lab = Lab(tmp_path, watched_prefixes=WATCHED)
    lab.up(0)
    lab.announce(1, P1, ["198.51.100.0/24"], [65001, 64500])  # expected origin
    lab.announce(1, P1, ["2001:db8:ffff::/48"], [65001, 64500])
    lab.announce(2, P2, ["198.51.100.0/24"], [65002, 174, 64666])  # hijack, exact prefix
    lab.announce(2.2, P3, ["198.51.100.0/25", "198.51.100.128/25"], [65003, 64666])  # and more-specifics
    lab.announce(2.3, P3, ["2001:db8:ffff:1::/64"], [65003, 64666])  # allowed more-specific, wrong origin
    lab.run_until(10)
    origin = [x for x in lab.out if x["kind"] == "origin_change"]
    assert [(x["at"], x["state"], x["labels"]) for x in origin] == [
        (at(2.5), "firing", {"prefix": "198.51.100.0/24", "origin": "64666"}),
        (at(2.8), "firing", {"prefix": "2001:db8:ffff::/48", "origin": "64666"}),
    ]
    assert origin[0]["severity"] == "critical"
    active = {tuple(sorted(a["labels"].items())): a for a in lab.engine.active_alerts()}
    v4 = active[(("origin", "64666"), ("prefix", "198.51.100.0/24"))]["annotations"]
    assert v4["routes"] == 3 and v4["peer_count"] == 2 and v4["peers"] == ["par2-rr1", "par3-rr1"]
    assert v4["expected_origins"] == [64500] and v4["sample_path"] == [65002, 174, 64666]
    # The hijack ends: resolved keep (60 s) after its last route went, not before.
    lab.withdraw(20, P2, ["198.51.100.0/24"])
    lab.announce(21, P3, ["198.51.100.0/25", "198.51.100.128/25"], [65003, 64500])  # fixed, origin ok
    lab.run_until(80.9)
    assert [x for x in lab.got({"origin_change"}) if x[2] == "resolved"] == []
    lab.run_until(82)
    assert (
        at(81),
        "origin_change",
        "resolved",
        {"prefix": "198.51.100.0/24", "origin": "64666"},
    ) in lab.got()


def test_site_prefix_origins_are_the_site_peers_as(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.up(0)
    lab.announce(1, P1, ["203.0.113.0/27"], [])  # par1's router originates it (iBGP: empty path)
    lab.announce(1, P2, ["203.0.113.0/27"], [65001])
    lab.announce(1, P3, ["203.0.113.0/27"], [65002, 65001])
    lab.announce(1, P2, ["203.0.113.64/27"], [])  # par2's own
    lab.run_until(5)
    assert lab.got() == []
    lab.announce(6, P3, ["203.0.113.32/28"], [65003, 3356, 64999])
    lab.run_until(8)
    assert lab.got({"origin_change"}) == [
        (at(6.5), "origin_change", "firing", {"prefix": "203.0.113.32/27", "origin": "64999", "site": "par1"})
    ]


def test_as_set_origin(tmp_path: Path) -> None:
    lab = Lab(tmp_path, watched_prefixes=WATCHED)
    lab.up(0)
    # An aggregate whose AS_SET holds an expected origin is accepted; one without it is reported.
    lab.announce(1, P1, ["198.51.100.0/24"], [65001, 3356], as_set=(64500, 64777))
    lab.announce(1, P2, ["198.51.100.0/24"], [65002, 3356], as_set=(64777, 64778))
    lab.run_until(3)
    assert lab.got({"origin_change"}) == [
        (at(1.5), "origin_change", "firing", {"prefix": "198.51.100.0/24", "origin": "{64777,64778}"})
    ]


def test_nothing_fires_before_end_of_rib(tmp_path: Path) -> None:
    lab = Lab(tmp_path, watched_prefixes=WATCHED)
    lab.feed(SessionState(T0, P2, UP))
    lab.announce(0.1, P2, ["198.51.100.0/24"], [65002, 64666])
    lab.announce(0.1, P2, ["10.1.0.0/16"], [65002, 64512])
    lab.run_until(5)
    assert lab.got() == []  # still loading: no End-of-RIB
    lab.feed(EndOfRib(T0 + 5, P2, 4))
    lab.feed(EndOfRib(T0 + 5.2, P2, 6))
    lab.run_until(7)
    # 64666 and 64512 are reserved ASNs (documentation, private): reserved_asn fires for both.
    assert sorted((x[0], x[1], tuple(x[3].values())) for x in lab.got()) == [
        (at(5.7), "bogon_route", ("10.0.0.0/8",)),
        (at(5.7), "origin_change", ("198.51.100.0/24", "64666")),
        (at(5.7), "reserved_asn", ("64512",)),
        (at(5.7), "reserved_asn", ("64666",)),
    ]


def test_peer_without_up_joins_mid_session(tmp_path: Path) -> None:
    """An MRT update file: routes come without any 'up' and no End-of-RIB: judged at once."""
    lab = Lab(tmp_path, watched_prefixes=WATCHED)
    lab.announce(1, "198.51.100.77", ["198.51.100.0/24"], [64496, 64666])  # not a configured peer
    lab.run_until(3)
    assert lab.got({"origin_change"}) == [
        (at(1.5), "origin_change", "firing", {"prefix": "198.51.100.0/24", "origin": "64666"})
    ]
    # A peer that is seen coming up is loading until End-of-RIB, a quiet period (10 s without a route,
    # not_converged.quiet) or the convergence timeout (60 s).
    lab.feed(SessionState(T0 + 10, "198.51.100.78", UP))
    lab.announce(10.1, "198.51.100.78", ["10.0.0.0/8"], [64497, 3356])
    for second in range(11, 23):  # a live daemon ticks every second
        lab.run_until(second)
        if second == 20:
            assert [x for x in lab.got() if x[1] == "bogon_route"] == []
    # Loaded at 20.1 (its last route + 10 s, exactly, whatever the tick), fired 0.5 s later.
    assert [x[:3] for x in lab.got() if x[1] == "bogon_route"] == [(at(20.6), "bogon_route", "firing")]
    # A configured peer heard first through its routes counts as up and converged.
    vp = lab.engine.topology.vps[P1]
    lab.announce(80, P1, ["203.0.113.0/27"], [])
    assert vp.state == UP and vp.active


def test_reload_keeps_and_rejudges(tmp_path: Path) -> None:
    """A configuration reload rebuilds the detectors: they judge the RIB again, alerts carry on."""
    lab = Lab(tmp_path, watched_prefixes=WATCHED)
    lab.up(0)
    lab.announce(1, P2, ["198.51.100.0/24"], [65002, 174, 3356])
    lab.announce(1, P2, ["2001:db8:ffff::/48"], [65002, 174, 3356])
    lab.run_until(3)
    assert len(lab.got()) == 2
    lab.engine.reconfigure(lab.config)  # same config: nothing new, nothing resolved
    lab.run_until(100)
    assert len(lab.got()) == 2
    data = yaml.safe_load(LAB_CONFIG.read_text())
    data["watched_prefixes"] = WATCHED[:1]  # the IPv6 entry is no longer watched
    path = tmp_path / "reloaded.yaml"
    path.write_text(yaml.safe_dump(data))
    lab.engine.reconfigure(load_config(path))
    lab.run_until(200)
    # No longer watched, the documentation-range route is a bogon now; its origin alert resolves.
    assert lab.got()[2:] == [
        (at(100.5), "bogon_route", "firing", {"bogon": "2001:db8::/32"}),
        (at(160), "origin_change", "resolved", {"prefix": "2001:db8:ffff::/48", "origin": "3356"}),
    ]


# -- more_specific -----------------------------------------------------------------------------
def test_more_specific(tmp_path: Path) -> None:
    lab = Lab(tmp_path, watched_prefixes=WATCHED)
    lab.up(0)
    lab.announce(1, P1, ["198.51.100.0/24", "2001:db8:ffff:1::/64"], [65001, 64500])  # allowed
    lab.announce(1, P1, ["203.0.113.0/28"], [])  # inside a site prefix: not watched by default
    lab.run_until(3)
    assert lab.got({"more_specific"}) == []
    lab.announce(4, P1, ["198.51.100.0/25"], [65001, 64500])  # the expected origin, but not allowed
    lab.run_until(6)
    assert lab.got({"more_specific"}) == [
        (
            at(4.5),
            "more_specific",
            "firing",
            {"prefix": "198.51.100.0/24", "more_specific": "198.51.100.0/25"},
        )
    ]
    lab.withdraw(7, P1, ["198.51.100.0/25"])
    lab.run_until(68)
    assert lab.got({"more_specific"})[-1] == (
        at(67),
        "more_specific",
        "resolved",
        {"prefix": "198.51.100.0/24", "more_specific": "198.51.100.0/25"},
    )


def test_more_specific_of_site_prefixes_when_asked(tmp_path: Path) -> None:
    lab = Lab(tmp_path, detectors={"more_specific": {"site_prefixes": True}})
    lab.up(0)
    lab.announce(1, P1, ["203.0.113.0/27"], [])
    lab.announce(1, P2, ["203.0.113.16/28"], [65001])
    lab.run_until(3)
    assert lab.got() == [
        (at(1.5), "more_specific", "firing", {"prefix": "203.0.113.0/27", "more_specific": "203.0.113.16/28"})
    ]


# -- bogon_route -------------------------------------------------------------------------------
def test_bogon_route(tmp_path: Path) -> None:
    lab = Lab(
        tmp_path,
        watched_prefixes=WATCHED,
        detectors={"bogon_route": {"ignore_prefixes": ["100.64.0.0/16"]}},
    )
    lab.up(0)
    # Documentation ranges used as the operator's own (site, watched) prefixes are not bogons.
    lab.announce(1, P1, ["203.0.113.0/27", "2001:db8:1001::/48"], [])
    lab.announce(1, P1, ["198.51.100.0/24"], [65001, 64500])
    lab.announce(1, P2, ["100.64.1.0/24"], [65002, 3356])  # ignored by the param
    lab.announce(1, P2, ["0.0.0.0/0", "192.0.0.0/3", "8.8.8.0/24"], [65002, 3356])  # not bogons
    lab.run_until(3)
    assert lab.got({"bogon_route"}) == []
    lab.announce(4, P2, ["192.88.99.0/24"], [65002, 6939])
    lab.announce(4.1, P3, ["192.88.99.0/24", "10.20.0.0/16"], [65003, 6939])
    lab.announce(4.2, P3, ["fd00:1::/48"], [65003, 6939])
    lab.run_until(6)
    assert lab.got({"bogon_route"}) == [
        (at(4.5), "bogon_route", "firing", {"bogon": "192.88.99.0/24"}),
        (at(4.6), "bogon_route", "firing", {"bogon": "10.0.0.0/8"}),
        (at(4.7), "bogon_route", "firing", {"bogon": "fc00::/7"}),
    ]
    six_to_four = next(x for x in lab.out if x["labels"] == {"bogon": "192.88.99.0/24"})
    assert "6to4 relay" in six_to_four["summary"]
    assert six_to_four["annotations"]["peer_count"] == 2  # par3's route came before it fired
    assert six_to_four["annotations"]["routes"] == 2 and six_to_four["annotations"]["origins"] == ["AS6939"]


def test_bogon_blocks_with_exempt_holes_still_catch_the_rest(tmp_path: Path) -> None:
    """An exempt prefix inside a bogon block (a lab's table in 2001:db8:4000::/34) takes only itself and
    its more-specifics out: the block's other parts and the routes covering the hole are still bogons,
    and the engine's scope skips the exempt routes before any judgement."""
    lab = Lab(
        tmp_path, detectors={"bogon_route": {"ignore_prefixes": ["2001:db8:4000::/34", "100.64.0.0/10"]}}
    )
    detector = next(d for d in lab.engine.detectors if d.name == "bogon_route")
    scope = [ipaddress.ip_network(format_prefix(*p)) for p in detector.scope()]

    def covered(text: str) -> bool:
        network = ipaddress.ip_network(text)
        return any(network.version == n.version and network.subnet_of(n) for n in scope)

    assert covered("2001:db8:8000::/33") and covered("2001:db8::/40") and covered("10.1.0.0/16")
    assert (
        not covered("2001:db8:4000::/34")
        and not covered("2001:db8:4000::/56")
        and not covered("2001:db8::/32")
    )
    assert not covered("100.64.3.0/24")  # a whole block exempt
    exact = {format_prefix(*p) for p in detector.scope_exact()}
    assert {"2001:db8::/32", "2001:db8::/33"} <= exact  # the routes covering the hole, in the block
    assert not any(
        ipaddress.ip_network(text).subnet_of(ipaddress.ip_network("2001:db8:4000::/34"))
        for text in exact
        if ":" in text
    )
    lab.up(0)
    lab.announce(1, P1, ["2001:db8:4000::/56", "2001:db8:7fff:ff00::/56", "100.64.3.0/24"], [])
    lab.run_until(3)
    assert lab.got({"bogon_route"}) == []
    lab.announce(4, P2, ["2001:db8::/32"], [65002, 6939])  # covers the exempt hole: a bogon
    lab.run_until(6)
    lab.announce(7, P2, ["2001:db8:8000::/48"], [65002, 6939])  # the block's other half
    lab.run_until(9)
    assert lab.got({"bogon_route"}) == [(at(4.5), "bogon_route", "firing", {"bogon": "2001:db8::/32"})]
    routes = {
        format_prefix(*route)
        for by_peer in detector.groups["2001:db8::/32"].by_peer.values()
        for route in by_peer
    }
    assert routes == {"2001:db8::/32", "2001:db8:8000::/48"}  # the same alert holds both


def test_bogon_table_is_well_formed() -> None:
    for text in BOGONS:
        family, key = parse_prefix(text)
        assert (family == 6) == (":" in text)


# -- reserved_asn ------------------------------------------------------------------------------
def test_reserved_asn(tmp_path: Path) -> None:
    lab = Lab(tmp_path, detectors={"reserved_asn": {"allowed_asns": [64700]}})
    lab.up(0)
    # The lab's own private ASNs (peers 65001-65003, collector 65000) and allowed_asns: never flagged.
    lab.announce(1, P2, ["8.8.8.0/24"], [65002, 65001, 65000, 64700, 3356, 15169])
    lab.run_until(3)
    assert lab.got() == []
    lab.announce(4, P2, ["9.9.9.0/24", "9.9.10.0/24"], [65002, 3356, 64512, 9999])
    lab.announce(4.1, P3, ["103.109.236.0/24"], [65003, 137464, 65551])
    lab.run_until(6)
    assert lab.got() == [
        (at(4.5), "reserved_asn", "firing", {"asn": "64512"}),
        (at(4.6), "reserved_asn", "firing", {"asn": "65551"}),
    ]
    doc = next(x for x in lab.out if x["labels"] == {"asn": "65551"})
    assert "103.109.236.0/24" in doc["summary"] and "as origin" in doc["summary"]
    assert doc["annotations"]["as_origin"] == 1 and doc["annotations"]["what"] == "documentation (RFC 5398)"
    private = next(x for x in lab.out if x["labels"] == {"asn": "64512"})
    assert private["annotations"]["routes"] == 2 and "in transit" in private["summary"]


def test_reserved_ranges() -> None:
    assert [reserved_asn_kind(a) for a in (0, 23456, 64496, 64512, 65534, 65535, 65551, 65552, 131071)] == [
        "AS0 (RFC 7607)",
        "AS_TRANS (RFC 6793)",
        "documentation (RFC 5398)",
        "private (RFC 6996)",
        "private (RFC 6996)",
        "reserved (RFC 7300)",
        "documentation (RFC 5398)",
        "reserved (IANA)",
        "reserved (IANA)",
    ]
    assert [reserved_asn_kind(a) for a in (1, 64495, 131072, 3288824, 4199999999)] == [None] * 5
    assert reserved_asn_kind(4200000000) == reserved_asn_kind(4294967294) == "private (RFC 6996)"
    assert reserved_asn_kind(4294967295) == "reserved (RFC 7300)"


def test_first_hop_is_the_peer_itself(tmp_path: Path) -> None:
    """An MRT peer using a private ASN is the collector's choice: only the path behind it is judged."""
    lab = Lab(tmp_path)
    lab.announce(1, "198.51.100.9", ["8.8.8.0/24"], [64512, 3356, 15169])
    lab.feed(SessionState(T0 + 2, "198.51.100.10", "connected", peer_as=65100))
    lab.announce(2, "198.51.100.10", ["8.8.4.0/24"], [3356, 65100, 15169])  # 65100 not first: flagged
    lab.run_until(4)
    assert lab.got() == [(at(2.5), "reserved_asn", "firing", {"asn": "65100"})]


# -- path_length_jump --------------------------------------------------------------------------
def test_path_length_jump(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.up(0)
    lab.announce(1, P2, ["8.8.8.0/24", "8.8.4.0/24"], [65002, 6939, 3288])
    lab.announce(2, P2, ["8.8.4.0/24"], [65002, 6939, 3288, 3288, 3288, 3288])  # +3: a prepend
    lab.announce(3, P2, ["8.8.4.0/24"], [65002, 6939, 3288])  # a withdrawn-then-back is no jump either
    lab.run_until(5)
    assert lab.got() == []
    lab.announce(6, P2, ["8.8.8.0/24"], [65002, 6939, 3288, 3288824, 3288824, 3288824, 3288824, 3288824])
    lab.run_until(8)
    assert lab.got() == [(at(6.5), "path_length_jump", "firing", {"peer": "par2-rr1", "site": "par2"})]
    alert = lab.out[-1]
    assert alert["severity"] == "info" and alert["annotations"]["max_increase"] == 5
    assert alert["annotations"]["sample_path_before"] == [65002, 6939, 3288]
    lab.announce(9, P2, ["8.8.8.0/24"], [65002, 6939, 3288, 3288824, 3288824, 3288824, 3288824, 3288824, 1])
    lab.announce(10, P2, ["8.8.8.0/24"], [65002, 6939, 3288, 3288824, 3288824, 3288824, 3288824])  # +4: back
    lab.run_until(69.9)
    assert lab.got()[-1][2] == "firing"
    lab.run_until(71)
    assert lab.got()[-1] == (at(70), "path_length_jump", "resolved", {"peer": "par2-rr1", "site": "par2"})


def test_list_params_are_validated() -> None:
    problems = validate_detector_params(
        {
            "bogon_route": {"ignore_prefixes": ["10.0.0.0/8", "10.0.0.300/8"]},
            "reserved_asn": {"allowed_asns": "65000"},
            "path_length_jump": {"min_increase": 0},
        },
        "cfg.yaml",
    )
    assert problems == [
        "cfg.yaml: detectors.bogon_route.ignore_prefixes: item 1: expected a prefix such as 192.0.2.0/24, "
        "got '10.0.0.300/8' (invalid address '10.0.0.300' in prefix '10.0.0.300/8')",
        "cfg.yaml: detectors.reserved_asn.allowed_asns: expected a list, got '65000'",
        "cfg.yaml: detectors.path_length_jump.min_increase: expected an integer between 1 and 1000, got 0",
    ]


# -- real MRT files ------------------------------------------------------------------------------
def replay_file(tmp_path: Path, path: Path, **extra: Any) -> list[dict[str, Any]]:
    """Replay one MRT file with a dummy site (documentation prefix, one peer that never speaks)."""
    data: dict[str, Any] = {
        "collector": {"local_as": 65000, "router_id": "192.0.2.254"},
        "sites": [
            {
                "name": "lab",
                "prefixes": ["192.0.2.0/24"],
                "peers": [{"name": "lab-rr1", "address": "192.0.2.1", "peer_as": 65001}],
            }
        ],
    }
    data.update(extra)
    config_path = tmp_path / "bgpwatch.yaml"
    config_path.write_text(yaml.safe_dump(data))
    out: list[dict[str, Any]] = []
    replay(load_config(config_path), [path], out.append)
    return out


def firing(out: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [x for x in out if x["kind"] == kind and x["state"] == "firing"]


def test_rrc23_2022_04_21_documentation_asn_origin(tmp_path: Path) -> None:
    out = replay_file(tmp_path, DNAS / "rrc23.updates.20220421.0200.gz")
    by_asn = {x["labels"]["asn"]: x for x in firing(out, "reserved_asn")}
    leak = by_asn["65551"]
    assert leak["at"].startswith("2022-04-21T02:00:18.")  # first seen 02:00:18 (shared SOURCES.md)
    assert "103.109.236.0/24" in leak["summary"] and leak["annotations"]["prefixes"] == ["103.109.236.0/24"]
    assert leak["annotations"]["as_origin"] == leak["annotations"]["routes"]
    assert leak["annotations"]["sample_path"][-2:] == [137464, 65551]
    # The others, all in transit: private 4-byte ASNs (89.30.150.0/23 flapping between two paths every
    # few seconds), a private and two documentation 2-byte ASNs; each fires once (60 s hold-down).
    assert sorted(by_asn) == ["4204811501", "4204821501", "64645", "65541", "65542", "65551"]
    assert len(firing(out, "reserved_asn")) == len(by_asn)
    assert [x["labels"] for x in firing(out, "bogon_route")] == [{"bogon": "100.64.0.0/10"}]
    assert firing(out, "origin_change") == [] and firing(out, "more_specific") == []


def test_rrc23_2022_05_01_bogon_6to4_relay(tmp_path: Path) -> None:
    out = replay_file(tmp_path, DNAS / "rrc23.updates.20220501.2305.gz")
    bogons = firing(out, "bogon_route")
    assert [x["labels"] for x in bogons] == [{"bogon": "192.88.99.0/24"}]
    assert bogons[0]["at"].startswith("2022-05-01T23:09:")
    assert bogons[0]["annotations"]["prefixes"] == ["192.88.99.0/24"]
    assert bogons[0]["annotations"]["origins"] == ["AS6939"]
    assert bogons[0]["annotations"]["sample_path"][0] == 133210  # via peer AS133210


def test_rrc01_2024_10_01_prepend_typo(tmp_path: Path) -> None:
    """`328882 3288824 x5` for `328882 x6`: AS3288824 (unallocated, not reserved) became the origin."""
    watched = [
        {"prefix": "102.208.228.0/22", "origins": [328882], "allow_more_specifics": True},
        {"prefix": "102.219.84.0/23", "origins": [328882], "allow_more_specifics": True},
    ]
    out = replay_file(tmp_path, DNAS / "rrc01.updates.20241001.0055.gz", watched_prefixes=watched)
    hijacks = firing(out, "origin_change")
    assert sorted(tuple(sorted(x["labels"].items())) for x in hijacks) == [
        (("origin", "3288824"), ("prefix", "102.208.228.0/22")),
        (("origin", "3288824"), ("prefix", "102.219.84.0/23")),
    ]
    first = min(hijacks, key=lambda x: x["at"])
    assert first["at"].startswith("2024-10-01T00:55:38.")  # first typo UPDATE at 00:55:38 (bgpdump -m)
    assert first["annotations"]["sample_path"][-6:] == [328882] + [3288824] * 5
    assert all(x["annotations"]["peer_count"] >= 1 for x in hijacks)
    # path_length_jump cannot see it: each peer's first UPDATE for these prefixes in the file already
    # carries the typo (no earlier path from the same peer to compare with), and it adds 4 hops, not 5.
    typo = {f"102.208.{n}.0/24" for n in range(228, 232)} | {"102.219.84.0/24", "102.219.85.0/24"}
    assert [x for x in firing(out, "path_length_jump") if typo & set(x["annotations"]["prefixes"])] == []
    assert firing(out, "reserved_asn") == firing(out, "bogon_route") == []  # 3288824 is not reserved


def test_rrc01_2010_08_27_ripe_duke_experiment(tmp_path: Path) -> None:
    """The attribute-99 experiment (first UPDATE 08:42:16) and the withdrawal wave it caused.

    The file holds no session leaving Established (its 66 state changes are Active/Connect/OpenSent
    retries of sessions already down), so no session_down can come from it.  Its peers' tables predate
    the file: mass_withdrawal judges the share of what each peer announced within the file.
    """
    out = replay_file(tmp_path, DNAS / "rrc01.updates.20100827.0840.gz")
    mass = firing(out, "mass_withdrawal")
    assert len({x["labels"]["peer"] for x in mass}) >= 2
    assert all("2010-08-27T08:42:16" <= x["at"] < "2010-08-27T08:45" for x in mass)
    assert all(x["annotations"]["share"] >= 0.5 and x["annotations"]["withdrawn"] >= 100 for x in mass)
    assert [x for x in firing(out, "session_down") if x["labels"]["peer"] != "lab-rr1"] == []
    assert [x["labels"] for x in firing(out, "bogon_route")] == [{"bogon": "192.88.99.0/24"}]
    assert {x["labels"]["asn"] for x in firing(out, "reserved_asn")} == {"23456", "65069", "65329"}


@pytest.mark.parametrize(
    "path",
    [
        MRT / "bgpdump" / "updates.20100722.2015.gz",
        MRT / "bgpkit-parser/ripe/rrc00/2000.01/updates.20000102.2014.gz",
    ],
    ids=["bgpdump-20100722", "rrc00-2000.01"],
)
def test_quiet_files(tmp_path: Path, path: Path) -> None:
    """No bogon, reserved ASN or origin anomaly; only real path-length jumps (reroutes via prepends)."""
    out = replay_file(tmp_path, path)
    assert [x for x in out if x["kind"] in NEW_KINDS - {"path_length_jump"}] == []
    for alert in firing(out, "path_length_jump"):
        notes = alert["annotations"]
        assert len(notes["sample_path"]) - len(notes["sample_path_before"]) >= 5
        assert alert["severity"] == "info"
