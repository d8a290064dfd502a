"""ExaBGP JSON ingest: real fixtures, golden shapes (5.0.15 and 4.x), and a malformed-line corpus.

Expected counts below were taken by reading the fixture files with the standard-library json module
(independently of the parser): see the comment above each constant.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from bgpwatch.events import (
    Announce,
    CollectorShutdown,
    EndOfRib,
    Notification,
    PeerOpen,
    SessionState,
    Withdraw,
)
from bgpwatch.ingest import IGNORED_TYPES, REASONS, ExaBGPJsonParser, IngestError
from bgpwatch.rib import AttributePool, format_prefix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "exabgp"
LAB = FIXTURES / "lab-shapes-5.0.15.jsonl"
QA = FIXTURES / "qa-decoding-5.0"
EXPORTER = FIXTURES / "exabgp_exporter-4.0.1"
DERIVED = FIXTURES / "derived-4.2.21"
RRC01 = DERIVED / "exabgp-4.2.21-decoded.rrc01.updates.20100827.0842.jsonl.gz"
RRC23 = DERIVED / "exabgp-4.2.21-decoded.rrc23.updates.20220421.0200.jsonl.gz"


@pytest.fixture
def parser() -> ExaBGPJsonParser:
    return ExaBGPJsonParser(AttributePool())


def describe(event: Any) -> tuple:
    """Return a readable, comparable view of an event (prefixes as text, attributes as fields)."""
    if isinstance(event, Announce):
        a = event.attributes
        return (
            "announce",
            event.at,
            event.peer,
            event.family,
            [format_prefix(event.family, key) for key in event.prefixes],
            {
                "origin": a.origin,
                "as_path": a.as_path,
                "as_set": a.as_set,
                "next_hop": a.next_hop,
                "med": a.med,
                "local_pref": a.local_pref,
                "communities": a.communities,
                "large_communities": a.large_communities,
            },
        )
    if isinstance(event, Withdraw):
        return (
            "withdraw",
            event.at,
            event.peer,
            event.family,
            [format_prefix(event.family, k) for k in event.prefixes],
        )
    if isinstance(event, SessionState):
        return ("state", event.at, event.peer, event.state, event.reason, event.peer_as)
    if isinstance(event, EndOfRib):
        return ("eor", event.at, event.peer, event.family)
    if isinstance(event, Notification):
        return (
            "notification",
            event.at,
            event.peer,
            event.direction,
            event.code,
            event.subcode,
            event.message,
        )
    if isinstance(event, CollectorShutdown):
        return ("shutdown", event.at, event.reason)
    if isinstance(event, PeerOpen):
        return ("open", event)
    raise AssertionError(f"unexpected event {event!r}")


def attrs(
    next_hop: str,
    origin: str = "igp",
    as_path: tuple = (),
    as_set: tuple = (),
    med: int | None = None,
    local_pref: int | None = None,
    communities: tuple = (),
    large: tuple = (),
) -> dict[str, Any]:
    return {
        "origin": origin,
        "as_path": as_path,
        "as_set": as_set,
        "next_hop": next_hop,
        "med": med,
        "local_pref": local_pref,
        "communities": communities,
        "large_communities": large,
    }


def update_line(
    update: dict[str, Any] | None = None,
    *,
    peer: str = "192.0.2.2",
    at: Any = 1000.5,
    direction: str | None = "receive",
    message: dict[str, Any] | None = None,
    kind: str = "update",
) -> bytes:
    """Return a 5.0.15-shaped line (envelope as in lab NOTES.md section 2)."""
    neighbor: dict[str, Any] = {
        "address": {"local": "192.0.2.1", "peer": peer},
        "asn": {"local": 65001, "peer": 65001},
        "router-id": "192.0.2.254",
    }
    if direction is not None:
        neighbor["direction"] = direction
    neighbor["message"] = message if message is not None else {"update": update}
    doc = {
        "exabgp": "5.0.0",
        "time": at,
        "host": "vm",
        "pid": 1,
        "ppid": 1,
        "counter": 1,
        "type": kind,
        "neighbor": neighbor,
    }
    return orjson.dumps(doc)


def read_lines(path: Path) -> list[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return [line for line in handle.read().split(b"\n") if line]


# -- lab shapes (ExaBGP 5.0.15, transcribed from the lab notes) ----------------------------------

T0 = 1795691315.7427633
P1, P2, P3 = "192.0.2.2", "192.0.2.6", "192.0.2.10"


def test_lab_shapes_golden(parser: ExaBGPJsonParser) -> None:
    lines = read_lines(LAB)
    events = [describe(e) for line in lines for e in parser.parse(line)]
    times = [orjson.loads(line)["time"] for line in lines]
    assert times[0] == T0
    expected = [
        ("state", times[0], P1, "connected", "", 65001),
        ("state", times[1], P1, "up", "", 65001),
        (
            "announce",
            times[2],
            P1,
            4,
            ["203.0.113.0/27"],
            attrs(
                "192.0.2.2",
                as_path=(65002, 65003),
                med=10,
                local_pref=100,
                communities=((65001, 100), (65001, 1001)),
                large=((65001, 1, 1),),
            ),
        ),
        ("eor", times[3], P1, 4),
        # Listed under the global and the link-local next hop: one route, the global next hop.
        ("announce", times[4], P1, 6, ["2001:db8:1001::/48"], attrs("2001:db8:c0:1::2", local_pref=100)),
        ("eor", times[5], P1, 6),
        ("withdraw", times[6], P1, 6, ["2001:db8:1001::/48", "2001:db8:2001::/48"]),
        # exabgp.api.compact=true: bare strings.
        ("announce", times[7], P1, 4, ["203.0.113.128/27"], attrs("192.0.2.2", local_pref=100)),
        (
            "notification",
            times[8],
            P2,
            "receive",
            6,
            2,
            'Shutdown Communication: "bgpwatch lab flap"',
        ),
        ("state", times[9], P2, "down", "notification received (6,2)", 65002),
        ("state", times[10], P2, "connected", "", 65002),
        ("state", times[11], P2, "down", "closing connection", 65002),
        ("notification", times[12], P3, "send", 4, 0, ""),
        ("state", times[13], P3, "down", "notification sent (4,0)", 65003),
        ("state", times[14], P1, "down", "stop, message [shutting down]", 65001),
        ("shutdown", times[15], "shutdown"),
    ]
    assert events == expected
    assert parser.lines == 16
    assert parser.errors == Counter()
    assert parser.ignored == Counter()


def test_link_local_duplicate_is_dropped_but_a_link_local_only_prefix_is_kept(
    parser: ExaBGPJsonParser,
) -> None:
    line = update_line(
        {
            "attribute": {"origin": "igp"},
            "announce": {
                "ipv6 unicast": {
                    # link-local listed first on purpose: the global next hop still wins
                    "fe80::c094:83ff:fe17:3963": [
                        {"nlri": "2001:db8:1001::/48"},
                        {"nlri": "2001:db8:9999::/48"},
                    ],
                    "2001:db8:c0:1::2": [{"nlri": "2001:db8:1001::/48"}, {"nlri": "2001:db8:2001::/48"}],
                }
            },
        }
    )
    events = [describe(e) for e in parser.parse(line)]
    assert events == [
        ("announce", 1000.5, P1, 6, ["2001:db8:1001::/48", "2001:db8:2001::/48"], attrs("2001:db8:c0:1::2")),
        ("announce", 1000.5, P1, 6, ["2001:db8:9999::/48"], attrs("fe80::c094:83ff:fe17:3963")),
    ]
    only_link_local = update_line(
        {"announce": {"ipv6 unicast": {"fe80::1": ["2001:db8:7::/48"]}}, "attribute": {"origin": "igp"}}
    )
    assert [describe(e)[4:] for e in parser.parse(only_link_local)] == [
        (["2001:db8:7::/48"], attrs("fe80::1"))
    ]


def test_attributes_are_interned_once_per_next_hop(parser: ExaBGPJsonParser) -> None:
    line = read_lines(LAB)[2]
    first = parser.parse(line)[0]
    second = parser.parse(line)[0]
    assert first.attributes is second.attributes
    assert len(parser.pool) == 1


# -- real fixtures ----------------------------------------------------------------------------------

# Families per qa-decoding file (line 3 of each file, read with json): all but ipv4-unicast-1 make no event.
QA_IGNORED_FAMILIES = {
    "bgp-ls bgp-ls": 9,  # bgp-ls-2 .. bgp-ls-10
    "ipv4 flow": 4,  # bgp-flow-2 .. 5
    "ipv6 flow": 1,  # bgp-flow-1
    "ipv4 sr-policy": 2,
    "l2vpn evpn": 1,  # a withdraw
    "ipv4 mpls-vpn": 1,  # vpnv4-extended-nexthop-1
}


def test_qa_decoding_5x_files_parse_without_errors(parser: ExaBGPJsonParser) -> None:
    files = sorted(QA.iterdir())
    assert len(files) == 21
    results = {}
    for path in files:
        lines = path.read_bytes().split(b"\n")
        results[path.name] = parser.parse(lines[2])  # line 1 = kind, line 2 = wire hex, line 3 = JSON
    assert parser.errors == Counter()
    assert {name for name, events in results.items() if events} == {
        "ipv4-unicast-1",
        "bgp-open-sofware-version",
    }
    # A received OPEN ("direction": "in") of a 5.0 development build: capability 75 is software-version.
    assert results["bgp-open-sofware-version"] == [
        PeerOpen(1721069327.773314, "127.0.0.1", 65533, "10.0.0.2", 180, False, None, (), (4,), True, False)
    ]
    # The wire message carries 0.0.0.0/0 four times then 1.1.1.1/32: deduplicated within the message.
    assert [describe(e) for e in results["ipv4-unicast-1"]] == [
        (
            "announce",
            1653384088.2516758,
            "127.0.0.1",
            4,
            ["0.0.0.0/0", "1.1.1.1/32"],
            attrs("101.1.101.1", med=200, local_pref=100),
        )
    ]
    assert parser.ignored_families == Counter(QA_IGNORED_FAMILIES)
    # ipv4-unicast-2 has attributes and no NLRI.
    assert parser.ignored == Counter(
        {"unsupported_family": sum(QA_IGNORED_FAMILIES.values()), "empty_update": 1}
    )


def test_qa_decoding_5x_as_path_segments(parser: ExaBGPJsonParser) -> None:
    line = (QA / "ipv4-unicast-2").read_bytes().split(b"\n")[2]
    doc = orjson.loads(line)
    # Same attributes, given NLRI so that they are decoded (the fixture itself has none).
    doc["neighbor"]["message"]["update"]["announce"] = {"ipv4 unicast": {"10.10.10.10": ["10.0.0.0/8"]}}
    (event,) = parser.parse(orjson.dumps(doc))
    assert describe(event)[5] == attrs("10.10.10.10", as_path=(43690, 43690, 43690), med=0, local_pref=100)


# exabgp.log (ExaBGP 4.0.1), read with json: 368 lines; state: 89 connected, 37 up, 83 down;
# 118 updates, of which 7 received ipv4 unicast announces of 1 prefix each and 111 with
# direction "send" (13 announces, 91 withdraws, 7 EORs); 22 keepalive, 17 open, 1 signal,
# 1 notification (receive, 2/7, no "message" key in 4.x).  Of the 17 opens 12 were received (all
# the same OPEN of 192.168.1.2: AS64496, hold 180, router-id 192.168.1.2, ipv4/unicast, asn4,
# route-refresh, no graceful restart) and 5 sent (keyed by capability name, with graceful restart).
def test_exabgp_exporter_log_4_0_1(parser: ExaBGPJsonParser) -> None:
    events = [e for line in read_lines(EXPORTER / "exabgp.log") for e in parser.parse(line)]
    assert parser.lines == 368
    assert parser.errors == Counter()
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds == Counter({"SessionState": 209, "Announce": 7, "Notification": 1, "PeerOpen": 12})
    opens = [e for e in events if isinstance(e, PeerOpen)]
    assert opens[0] == PeerOpen(
        1554851252.6501951, "192.168.1.2", 64496, "192.168.1.2", 180, False, None, (), (4,), True, False
    )
    assert {(e.peer, e.peer_as, e.router_id, e.hold_time, e.graceful_restart, e.families) for e in opens} == {
        ("192.168.1.2", 64496, "192.168.1.2", 180, False, (4,))
    }
    states = Counter(e.state for e in events if isinstance(e, SessionState))
    assert states == Counter({"connected": 89, "up": 37, "down": 83})
    announces = [e for e in events if isinstance(e, Announce)]
    assert all(e.family == 4 and len(e.prefixes) == 1 for e in announces)
    assert describe(announces[0]) == (
        "announce",
        1554843224.518079,
        "192.168.1.2",
        4,
        ["0.0.0.0/0"],
        attrs("75.138.131.57", origin="incomplete", local_pref=100),
    )
    (note,) = [describe(e) for e in events if isinstance(e, Notification)]
    assert note == ("notification", 1554957921.8339317, "192.168.1.2", "receive", 2, 7, "")
    assert parser.ignored == Counter({"update_sent": 111, "keepalive": 22, "open_sent": 5, "signal": 1})


def test_exabgp_exporter_log_1_state_down(parser: ExaBGPJsonParser) -> None:
    events = [describe(e) for line in read_lines(EXPORTER / "exabgp.log.1") for e in parser.parse(line)]
    # ExaBGP 4.0.1 wrote the NOTIFICATION data raw into the string (invalid JSON): escaped and accepted.
    reason = (
        "peer reset, message (notification received (2,7)) error(OPEN message error / Unsupported Capability / "
        "\x01\x04\x00\x00\x00\x01)"
    )
    assert events == [("state", 1555092200.9878001, "192.168.1.2", "down", reason, 64496)] * 2
    assert (parser.repaired, parser.errors) == (2, Counter())


# Read with json; per message and family, a prefix counts once (the link-local copies removed):
#   rrc01: 999 lines; ipv4: 924 announce groups / 2,666 prefixes, 74 withdraws / 726 prefixes;
#          ipv6: 5 announce groups / 5 prefixes (3 messages list them under a fe80:: next hop too),
#          1 withdraw / 1 prefix; 5 messages carry both announce and withdraw.
#   rrc23: 326 lines; ipv4: 90 groups / 103 prefixes, 5 withdraws / 7 prefixes;
#          ipv6: 226 groups / 501 prefixes (969 NLRI entries before dropping the 200 link-local
#          groups, all exact duplicates), 6 withdraws / 9 prefixes; 1 message has both.
DERIVED_COUNTS = {
    RRC01: (999, {4: (924, 2666, 74, 726), 6: (5, 5, 1, 1)}),
    RRC23: (326, {4: (90, 103, 5, 7), 6: (226, 501, 6, 9)}),
}


@pytest.mark.parametrize("path", list(DERIVED_COUNTS), ids=lambda p: p.name.split(".")[1])
def test_derived_4_2_21_files(parser: ExaBGPJsonParser, path: Path) -> None:
    lines, per_family = DERIVED_COUNTS[path]
    events = [e for line in read_lines(path) for e in parser.parse(line)]
    assert parser.lines == lines
    assert parser.errors == Counter()
    assert parser.ignored == Counter()
    for family, (announces, announced, withdraws, withdrawn) in per_family.items():
        mine = [e for e in events if getattr(e, "family", None) == family]
        assert sum(isinstance(e, Announce) for e in mine) == announces
        assert sum(len(e.prefixes) for e in mine if isinstance(e, Announce)) == announced
        assert sum(isinstance(e, Withdraw) for e in mine) == withdraws
        assert sum(len(e.prefixes) for e in mine if isinstance(e, Withdraw)) == withdrawn
    assert not any(e.attributes.next_hop.startswith("fe80") for e in events if isinstance(e, Announce))


def test_4x_as_set_golden(parser: ExaBGPJsonParser) -> None:
    line = next(line for line in read_lines(RRC01) if b'"counter": 83,' in line)
    (event,) = parser.parse(line)
    assert describe(event) == (
        "announce",
        1282898537.0,
        "195.66.224.175",
        4,
        ["195.82.160.0/19"],
        attrs(
            "195.66.224.175",
            as_path=(13030, 3549, 3356, 13293, 15744),
            as_set=(8508, 24748, 35434),
            med=1,
            communities=((3549, 2524), (3549, 31826), (13030, 2), (13030, 3549), (13030, 51701)),
        ),
    )
    assert event.attributes.origin_as is None  # the path ends in an AS_SET


def test_4x_large_community_and_link_local_golden(parser: ExaBGPJsonParser) -> None:
    line = read_lines(RRC23)[32]
    assert b'"counter": 33,' in line
    assert [describe(e) for e in parser.parse(line)] == [
        (
            "announce",
            1650506400.0,
            "2001:de8:4::13:3210:1",
            6,
            ["2a01:9e00:44f4::/48"],
            attrs(
                "2001:de8:4::13:3210:1",
                as_path=(133210, 24482, 41495),
                communities=(
                    (8714, 8714),
                    (8714, 65010),
                    (8714, 65012),
                    (24482, 2),
                    (24482, 12010),
                    (24482, 12011),
                    (24482, 65201),
                ),
                large=((8714, 1000, 1), (8714, 1001, 2)),
            ),
        )
    ]


def test_withdraw_comes_before_announce_in_one_update(parser: ExaBGPJsonParser) -> None:
    # rrc01 line 19 prints "announce" before "withdraw"; RFC 4271 processes withdrawn routes first.
    line = read_lines(RRC01)[18]
    assert line.index(b'"announce"') < line.index(b'"withdraw"')
    assert [describe(e)[0:5] for e in parser.parse(line)] == [
        ("withdraw", 1282898534.0, "195.66.224.132", 4, ["216.253.77.0/24", "216.253.117.0/24"]),
        ("announce", 1282898534.0, "195.66.224.132", 4, ["200.107.214.0/24"]),
    ]


# -- shapes -----------------------------------------------------------------------------------------


def test_4x_and_5x_as_paths_give_the_same_attribute_object(parser: ExaBGPJsonParser) -> None:
    common = {"origin": "igp", "med": 5}
    five = update_line(
        {
            "attribute": {
                **common,
                "as-path": {
                    "0": {"element": "as-sequence", "value": [65002, 65003]},
                    "1": {"element": "as-set", "value": [65010, 65011]},
                },
            },
            "announce": {"ipv4 unicast": {"192.0.2.2": [{"nlri": "198.51.100.0/24"}]}},
        }
    )
    four = update_line(
        {
            "attribute": {
                **common,
                "as-path": [65002, 65003],
                "as-set": [65010, 65011],
                "confederation-path": [],
            },
            "announce": {"ipv4 unicast": {"192.0.2.2": [{"nlri": "198.51.100.0/24"}]}},
        }
    )
    (a,) = parser.parse(five)
    (b,) = parser.parse(four)
    assert a.attributes is b.attributes
    assert (a.attributes.as_path, a.attributes.as_set) == ((65002, 65003), (65010, 65011))


def test_5x_segments_in_position_order_and_confed_ignored(parser: ExaBGPJsonParser) -> None:
    line = update_line(
        {
            "attribute": {
                "origin": "egp",
                "as-path": {
                    "2": {"element": "as-sequence", "value": [65003]},
                    "0": {"element": "as-confed-sequence", "value": [64512]},
                    "1": {"element": "as-sequence", "value": [65001, 65002]},
                },
            },
            "announce": {"ipv4 unicast": {"192.0.2.2": ["198.51.100.0/24"]}},
        }
    )
    (event,) = parser.parse(line)
    assert event.attributes.as_path == (65001, 65002, 65003)
    assert event.attributes.origin == "egp"


def test_compact_and_object_nlri_give_the_same_events(parser: ExaBGPJsonParser) -> None:
    body = {"attribute": {"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65002]}}}}
    objects = update_line(
        {
            **body,
            "announce": {
                "ipv4 unicast": {"192.0.2.2": [{"nlri": "203.0.113.0/27"}, {"nlri": "203.0.113.32/27"}]}
            },
            "withdraw": {"ipv6 unicast": [{"nlri": "2001:db8:1::/48"}]},
        }
    )
    compact = update_line(
        {
            **body,
            "announce": {"ipv4 unicast": {"192.0.2.2": ["203.0.113.0/27", "203.0.113.32/27"]}},
            "withdraw": {"ipv6 unicast": ["2001:db8:1::/48"]},
        }
    )
    assert parser.parse(objects) == parser.parse(compact)
    assert [describe(e)[0] for e in parser.parse(compact)] == ["withdraw", "announce"]


def test_add_path_keeps_the_prefix(parser: ExaBGPJsonParser) -> None:
    line = update_line(
        {
            "attribute": {"origin": "igp"},
            "announce": {
                "ipv4 unicast": {
                    "192.0.2.2": [
                        {"nlri": "203.0.113.0/27", "path-information": "0.0.0.1"},
                        {"nlri": "203.0.113.0/27", "path-information": "0.0.0.2"},
                    ]
                }
            },
            "withdraw": {"ipv4 unicast": [{"nlri": "203.0.113.64/27", "path-information": "0.0.0.1"}]},
        }
    )
    assert [describe(e)[0:5] for e in parser.parse(line)] == [
        ("withdraw", 1000.5, P1, 4, ["203.0.113.64/27"]),
        ("announce", 1000.5, P1, 4, ["203.0.113.0/27"]),  # one route per prefix
    ]


def test_updates_we_sent_are_ignored(parser: ExaBGPJsonParser) -> None:
    announce = {"attribute": {"origin": "igp"}, "announce": {"ipv4 unicast": {"192.0.2.1": ["10.0.0.0/8"]}}}
    assert parser.parse(update_line(announce, direction="send")) == []
    eor = update_line(message={"eor": {"afi": "ipv4", "safi": "unicast"}}, direction="send")
    assert parser.parse(eor) == []
    assert parser.ignored == Counter({"update_sent": 2})
    # 5.x qa files and the 4.2.21 decodes say "in"; a missing direction is a received UPDATE too.
    for direction in ("in", "receive", None):
        assert len(parser.parse(update_line(announce, direction=direction))) == 1


@pytest.mark.parametrize("kind", sorted(IGNORED_TYPES))
def test_ignored_types(parser: ExaBGPJsonParser, kind: str) -> None:
    assert parser.parse(update_line(message={"whatever": 1}, kind=kind)) == []
    assert parser.ignored == Counter({kind: 1})
    assert parser.errors == Counter()


def test_unsupported_families_are_counted_not_errors(parser: ExaBGPJsonParser) -> None:
    eor = update_line(message={"eor": {"afi": "l2vpn", "safi": "evpn"}})
    assert parser.parse(eor) == []
    mixed = update_line(
        {
            "attribute": {"origin": "igp"},
            "announce": {
                "ipv4 flow": {"no-nexthop": [{"destination-ipv4": ["10.0.0.0/8"]}]},
                "ipv6 unicast": {"2001:db8::1": ["2001:db8:5::/48"]},
            },
        }
    )
    assert [describe(e)[3:5] for e in parser.parse(mixed)] == [(6, ["2001:db8:5::/48"])]
    assert parser.ignored == Counter({"unsupported_family": 2})
    assert parser.ignored_families == Counter({"l2vpn evpn": 1, "ipv4 flow": 1})
    assert parser.errors == Counter()


def test_addresses_are_canonicalised(parser: ExaBGPJsonParser) -> None:
    line = update_line(
        {
            "attribute": {"origin": "igp"},
            "announce": {"ipv6 unicast": {"2001:DB8:0:0::0001": ["2001:db8:5::/48"]}},
        },
        peer="2001:0DB8::0002",
    )
    (event,) = parser.parse(line)
    assert (event.peer, event.attributes.next_hop) == ("2001:db8::2", "2001:db8::1")


def test_missing_origin_reads_incomplete_and_str_input_works(parser: ExaBGPJsonParser) -> None:
    line = update_line({"announce": {"ipv4 unicast": {"192.0.2.2": ["10.0.0.0/8"]}}}).decode()
    (event,) = parser.parse(line)
    assert event.attributes.origin == "incomplete"
    assert parser.parse(line + "\n") == [event]


def test_integer_time_is_a_float(parser: ExaBGPJsonParser) -> None:
    (event,) = parser.parse(update_line(message={"eor": {"afi": "ipv6", "safi": "unicast"}}, at=0))
    assert event == EndOfRib(0.0, P1, 6) and type(event.at) is float


# -- OPEN: real captures of ExaBGP 5.0.15 against FRR 8.4, BIRD 2.0.12 and GoBGP 3.10 ------------

R = "192.0.2.2"  # the router of every capture (tests/lab/capture_open.py), AS65001


def capture(name: str) -> list[bytes]:
    return read_lines(FIXTURES / f"open-{name}.jsonl")


def capture_times(name: str) -> list[float]:
    return [orjson.loads(line)["time"] for line in capture(name)]


def router_open(at: float, gr: bool, restart_time: int | None, gr_families: tuple[int, ...]) -> PeerOpen:
    return PeerOpen(at, R, 65001, R, 9, gr, restart_time, gr_families, (4, 6), True, False)


V4, V6 = ["203.0.113.0/27"], ["2001:db8:1001::/48"]
FRR_V4 = attrs(R, as_path=(65001,), med=0)
FRR_V6 = attrs("2001:db8:c0:1::2", as_path=(65001,), med=0)
BIRD_V4 = attrs(R, as_path=(65001,))
BIRD_V6 = attrs("2001:db8:c0:1::2", as_path=(65001,))
GOBGP_V4 = attrs(R, origin="incomplete", as_path=(65001,))
GOBGP_V6 = attrs("2001:db8:c0:1::2", origin="incomplete", as_path=(65001,))
STOP = "stop, message [shutting down]"

# Per capture: (GR offered, restart time, GR families) and the messages after `up`, read with json.
# FRR and GoBGP send no End-of-RIB without GR negotiated (frr-gr-collector-nogr: bgpwatch did not
# advertise it; gobgp: GoBGP not configured for it); BIRD sends one either way.
OPEN_CAPTURES = {
    "frr-gr": (
        (True, 120, (4, 6)),
        [("announce", 4, V4, FRR_V4), ("announce", 6, V6, FRR_V6), ("eor", 4), ("eor", 6)],
    ),
    "frr-gr-collector-nogr": (
        (True, 120, (4, 6)),
        [("announce", 4, V4, FRR_V4), ("announce", 6, V6, FRR_V6)],
    ),
    # BIRD's default is "graceful restart aware": the capability with no families.
    "bird": (
        (True, 120, ()),
        [("announce", 4, V4, BIRD_V4), ("eor", 4), ("announce", 6, V6, BIRD_V6), ("eor", 6)],
    ),
    "bird-gr": (
        (True, 120, (4, 6)),
        [("announce", 4, V4, BIRD_V4), ("eor", 4), ("announce", 6, V6, BIRD_V6), ("eor", 6)],
    ),
    "gobgp": ((False, None, ()), [("announce", 4, V4, GOBGP_V4), ("announce", 6, V6, GOBGP_V6)]),
    "gobgp-gr": (
        (True, 120, (4, 6)),
        [("announce", 4, V4, GOBGP_V4), ("eor", 4), ("announce", 6, V6, GOBGP_V6), ("eor", 6)],
    ),
}


@pytest.mark.parametrize("name", list(OPEN_CAPTURES))
def test_open_captures_golden(parser: ExaBGPJsonParser, name: str) -> None:
    (gr, restart_time, gr_families), after_up = OPEN_CAPTURES[name]
    times = capture_times(name)
    events = [describe(e) for line in capture(name) for e in parser.parse(line)]
    expected: list[tuple] = [
        ("state", times[0], R, "connected", "", 65001),
        ("open", router_open(times[1], gr, restart_time, gr_families)),
        ("state", times[2], R, "up", "", 65001),
    ]
    for offset, message in enumerate(after_up, start=3):
        if message[0] == "eor":
            expected.append(("eor", times[offset], R, message[1]))
        else:
            _, family, prefixes, attributes = message
            expected.append(("announce", times[offset], R, family, prefixes, attributes))
    expected += [("state", times[-2], R, "down", STOP, 65001), ("shutdown", times[-1], "shutdown")]
    assert events == expected
    assert parser.errors == Counter() and parser.ignored == Counter()


def test_open_capture_bgpd_restart_under_gr(parser: ExaBGPJsonParser) -> None:
    # FRR's bgpd SIGKILLed once its table was in, then started again: ExaBGP sees the TCP reset
    # ("closing connection"), one failed retry, a second OPEN (same capabilities) and the whole
    # table with both End-of-RIBs again ~1.1 s after the second `up`: FRR, restarting under GR,
    # did not defer its table waiting for ExaBGP's End-of-RIB (ExaBGP sends it at once).
    times = capture_times("frr-gr-bgpd-restart")
    events = [describe(e) for line in capture("frr-gr-bgpd-restart") for e in parser.parse(line)]
    table = [("announce", 4, V4, FRR_V4), ("announce", 6, V6, FRR_V6), ("eor", 4), ("eor", 6)]

    def session(first: int) -> list[tuple]:
        out: list[tuple] = [
            ("state", times[first], R, "connected", "", 65001),
            ("open", router_open(times[first + 1], True, 120, (4, 6))),
            ("state", times[first + 2], R, "up", "", 65001),
        ]
        for offset, message in enumerate(table, start=first + 3):
            if message[0] == "eor":
                out.append(("eor", times[offset], R, message[1]))
            else:
                out.append(("announce", times[offset], R, message[1], message[2], message[3]))
        return out

    assert events == [
        *session(0),
        ("state", times[7], R, "down", "closing connection", 65001),
        ("state", times[8], R, "connected", "", 65001),
        ("state", times[9], R, "down", "closing connection", 65001),
        *session(10),
        ("state", times[17], R, "down", STOP, 65001),
        ("shutdown", times[18], "shutdown"),
    ]
    assert 0.5 < times[16] - times[12] < 5.0  # second `up` -> last End-of-RIB


def test_open_capture_capabilities_beyond_the_event_do_not_matter(parser: ExaBGPJsonParser) -> None:
    # FRR's OPEN also carries ADD-PATH receive-only, extended message, hostname and LLGR (71,
    # "unknown" to ExaBGP 5.0.15); GoBGP's carries extended next hop (5): none changes the event.
    frr = orjson.loads(capture("frr-gr")[1])["neighbor"]["open"]["capabilities"]
    assert frr["69"] == {"name": "addpath", "ipv4/unicast": "receive", "ipv6/unicast": "receive"}
    assert frr["71"]["name"] == "unknown"
    (event,) = parser.parse(capture("frr-gr")[1])
    assert event.add_path is False and event.four_byte_asn is True


def open_line(
    body: dict[str, Any] | None = None, *, direction: str | None = "receive", **changes: Any
) -> bytes:
    """Return the FRR capture's OPEN line, its open body replaced or changed."""
    doc = orjson.loads(capture("frr-gr")[1])
    neighbor = doc["neighbor"]
    if body is not None:
        neighbor["open"] = body
    neighbor["open"].update(changes)
    if direction is None:
        del neighbor["direction"]
    else:
        neighbor["direction"] = direction
    return orjson.dumps(doc)


def capabilities_line(**capabilities: Any) -> bytes:
    return open_line(capabilities=capabilities)


def test_sent_open_is_ignored_and_direction_defaults_to_receive(parser: ExaBGPJsonParser) -> None:
    assert parser.parse(open_line(direction="send")) == []
    assert parser.parse(open_line(direction="out")) == []
    assert parser.ignored == Counter({"open_sent": 2})
    for direction in ("in", "receive", None):
        (event,) = parser.parse(open_line(direction=direction))
        assert (event.graceful_restart, event.restart_time) == (True, 120)


def test_open_without_capabilities_is_ipv4_unicast_only(parser: ExaBGPJsonParser) -> None:
    body = {"version": 4, "asn": 65001, "hold_time": 90, "router_id": "192.0.2.2"}
    (event,) = parser.parse(open_line(body))
    assert event == PeerOpen(event.at, R, 65001, R, 90, False, None, (), (4,), False, False)
    (event,) = parser.parse(open_line({}))
    assert (event.peer_as, event.router_id, event.hold_time, event.families) == (None, None, None, (4,))


def test_open_four_byte_asn_replaces_as_trans(parser: ExaBGPJsonParser) -> None:
    (event,) = parser.parse(open_line(asn=23456, capabilities={"65": {"name": "asn4", "asn4": 4200000001}}))
    assert (event.peer_as, event.four_byte_asn) == (4200000001, True)


def test_open_capabilities_by_name_and_other_families(parser: ExaBGPJsonParser) -> None:
    # ExaBGP 4.x keyed the OPENs it sent by capability name; other families are not unicast AFIs.
    line = capabilities_line(
        **{
            "multiprotocol": {
                "name": "multiprotocol",
                "families": ["ipv6/unicast", "ipv4/flow", "l2vpn/evpn"],
            },
            "graceful-restart": {
                "name": "graceful restart",
                "time": 0,
                "address-family-flags": {"ipv6/unicast": [], "ipv4/mpls-vpn": ["restart"]},
                "restart-flags": [],
            },
            "asn4": {"name": "asn4", "asn4": 65001},
        }
    )
    (event,) = parser.parse(line)
    assert (event.families, event.graceful_restart, event.restart_time, event.gr_families) == (
        (6,),
        True,
        0,
        (6,),
    )
    assert event.four_byte_asn is True


@pytest.mark.parametrize(
    ("modes", "sends"),
    [
        ({"ipv4/unicast": "receive", "ipv6/unicast": "receive"}, False),
        ({"ipv4/unicast": "send"}, True),
        ({"ipv6/unicast": "send/receive"}, True),
        ({"ipv4/flow": "send"}, False),  # not a family bgpwatch reads
        ({}, False),
    ],
)
def test_open_add_path_means_the_peer_sends_paths(parser: ExaBGPJsonParser, modes: dict, sends: bool) -> None:
    (event,) = parser.parse(capabilities_line(**{"69": {"name": "addpath", **modes}}))
    assert event.add_path is sends


def test_open_of_a_4x_line_with_raw_header_and_body(parser: ExaBGPJsonParser) -> None:
    # 4.0.1 put "header" and "body" (hex) beside "neighbor" and had no "router-id" of ours.
    line = next(line for line in read_lines(EXPORTER / "exabgp.log") if b'"type": "open"' in line)
    doc = orjson.loads(line)
    assert "header" in doc and "router-id" not in doc["neighbor"]
    (event,) = parser.parse(line)
    assert event.peer == "192.168.1.2" and event.families == (4,)


# -- malformed lines ------------------------------------------------------------------------------

GOOD = read_lines(LAB)[2]
_ANN = {"ipv4 unicast": {"192.0.2.2": [{"nlri": "203.0.113.0/27"}]}}


def _with(attribute: dict[str, Any]) -> bytes:
    return update_line({"attribute": {"origin": "igp", **attribute}, "announce": _ANN})


def _without(key: str) -> bytes:
    doc = orjson.loads(GOOD)
    del doc[key]
    return orjson.dumps(doc)


MALFORMED = [
    ("truncated", GOOD[:150], "invalid_json", "unexpected end of data"),
    ("not_utf8", b'{"type": "state", "x": "\xff\xfe"}', "invalid_json", "not valid UTF-8"),
    ("empty", b"", "invalid_json", "empty line"),
    ("blank", b"  \n", "invalid_json", "empty line"),
    ("garbage", b"neighbor 192.0.2.2 up", "invalid_json", "line 1"),
    ("string", b'"update"', "not_an_object", "JSON str"),
    ("array", b"[1, 2, 3]", "not_an_object", "JSON list"),
    ("huge", b'{"type": "update", "pad": "' + b"x" * (5 << 20) + b'"}', "line_too_long", "allowed"),
    ("no_type", _without("type"), "missing_field", "type"),
    ("unknown_type", update_line(kind="teapot", message={}), "unknown_type", "'teapot'"),
    ("no_time", _without("time"), "missing_field", "time"),
    ("time_string", update_line(_ANN, at="yesterday"), "bad_field", "time"),
    ("no_neighbor", _without("neighbor"), "missing_field", "neighbor"),
    ("neighbor_list", orjson.dumps({"type": "state", "time": 1.0, "neighbor": []}), "bad_field", "neighbor"),
    (
        "bad_peer",
        update_line(message={"eor": {"afi": "ipv4", "safi": "unicast"}}, peer="par1"),
        "bad_field",
        "neighbor.address.peer",
    ),
    ("no_message", update_line(message={}), "missing_field", "neighbor.message.update"),
    ("bad_eor", update_line(message={"eor": "ipv4"}), "bad_field", "neighbor.message.eor"),
    (
        "bad_prefix",
        update_line({"announce": {"ipv4 unicast": {"192.0.2.2": ["203.0.113.0/33"]}}}),
        "bad_prefix",
        "announce.ipv4 unicast.192.0.2.2",
    ),
    (
        "v6_in_v4",
        update_line({"withdraw": {"ipv4 unicast": [{"nlri": "2001:db8::/32"}]}}),
        "bad_prefix",
        "withdraw.ipv4 unicast",
    ),
    (
        "nlri_missing",
        update_line({"withdraw": {"ipv6 unicast": [{"prefix": "2001:db8::/32"}]}}),
        "bad_prefix",
        "withdraw.ipv6 unicast",
    ),
    (
        "one_bad_of_many",
        update_line({"announce": {"ipv4 unicast": {"192.0.2.2": ["10.0.0.0/8", "10.0.0.0/x"]}}}),
        "bad_prefix",
        "'10.0.0.0/x'",
    ),
    (
        "bad_next_hop",
        update_line({"announce": {"ipv4 unicast": {"null": ["10.0.0.0/8"]}}}),
        "bad_next_hop",
        "next hop",
    ),
    (
        "as_path_strings_5x",
        _with({"as-path": {"0": {"element": "as-sequence", "value": ["65001", "65002"]}}}),
        "bad_attribute",
        "as-path.0.value",
    ),
    ("as_path_strings_4x", _with({"as-path": ["65001 65002"]}), "bad_attribute", "as-path"),
    ("as_path_string", _with({"as-path": "[ 65001 65002 ]"}), "bad_attribute", "as-path"),
    (
        "as_path_element",
        _with({"as-path": {"0": {"element": "as-bag", "value": [1]}}}),
        "bad_attribute",
        "as-path.0.element",
    ),
    ("asn_too_big", _with({"as-path": [4294967296]}), "bad_attribute", "as-path"),
    ("origin", _with({"origin": "bgp"}), "bad_attribute", "origin"),
    ("med_negative", _with({"med": -1}), "bad_attribute", "med"),
    ("local_pref_float", _with({"local-preference": 100.5}), "bad_attribute", "local-preference"),
    ("community_triple", _with({"community": [[65001, 1, 2]]}), "bad_attribute", "community"),
    ("community_range", _with({"community": [[65001, 65536]]}), "bad_attribute", "community"),
    ("large_pair", _with({"large-community": [[65001, 1]]}), "bad_attribute", "large-community"),
    ("state_unknown", update_line(kind="state", message={}), "missing_field", "neighbor.state"),
    (
        "notification_code",
        update_line(kind="notification", message={}),
        "missing_field",
        "neighbor.notification",
    ),
]

# OPEN lines: the FRR capture's OPEN, one field broken at a time.
_OPEN_BASE = read_lines(FIXTURES / "open-frr-gr.jsonl")[1]


def _open_with(path: list[str], value: Any) -> bytes:
    doc = orjson.loads(_OPEN_BASE)
    node = doc["neighbor"]
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return orjson.dumps(doc)


_DELETE = object()
_GR = ["open", "capabilities", "64"]
MALFORMED += [
    ("open_missing", _open_with(["open"], _DELETE), "missing_field", "neighbor.open"),
    ("open_list", _open_with(["open"], []), "bad_field", "neighbor.open"),
    ("open_direction", _open_with(["direction"], "sideways"), "bad_field", "neighbor.direction"),
    ("open_asn_string", _open_with(["open", "asn"], "65001"), "bad_field", "neighbor.open.asn"),
    ("open_asn_too_big", _open_with(["open", "asn"], 65536), "bad_field", "neighbor.open.asn"),
    ("open_hold_negative", _open_with(["open", "hold_time"], -1), "bad_field", "neighbor.open.hold_time"),
    (
        "open_router_id",
        _open_with(["open", "router_id"], "2001:db8::1"),
        "bad_field",
        "neighbor.open.router_id",
    ),
    ("open_router_id_int", _open_with(["open", "router_id"], 3221225986), "bad_field", "router_id"),
    ("open_capabilities_list", _open_with(["open", "capabilities"], []), "bad_field", "capabilities"),
    ("open_capability_string", _open_with([*_GR], "graceful"), "bad_field", "neighbor.open.capabilities.64"),
    ("open_gr_no_time", _open_with([*_GR, "time"], _DELETE), "missing_field", "capabilities.64.time"),
    ("open_gr_time_13_bits", _open_with([*_GR, "time"], 4096), "bad_field", "capabilities.64.time"),
    ("open_gr_time_float", _open_with([*_GR, "time"], 120.0), "bad_field", "capabilities.64.time"),
    (
        "open_gr_flags_list",
        _open_with([*_GR, "address-family-flags"], []),
        "bad_field",
        "address-family-flags",
    ),
    (
        "open_mp_families_string",
        _open_with(["open", "capabilities", "1", "families"], "ipv4/unicast"),
        "bad_field",
        "capabilities.1.families",
    ),
    (
        "open_mp_family_number",
        _open_with(["open", "capabilities", "1", "families"], [1, 2]),
        "bad_field",
        "capabilities.1.families",
    ),
    ("open_asn4_big", _open_with(["open", "capabilities", "65", "asn4"], 1 << 32), "bad_field", "65.asn4"),
    (
        "open_add_path_mode",
        _open_with(["open", "capabilities", "69", "ipv4/unicast"], 3),
        "bad_field",
        "69.ipv4",
    ),
]


@pytest.mark.parametrize(("name", "line", "reason", "in_detail"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_lines_are_rejected_and_the_parser_carries_on(
    parser: ExaBGPJsonParser, name: str, line: bytes, reason: str, in_detail: str
) -> None:
    assert reason in REASONS
    with pytest.raises(IngestError) as caught:
        parser.parse(line)
    error = caught.value
    assert error.reason == reason
    assert in_detail in error.detail
    assert "line " in error.detail  # an excerpt of the offending line
    assert len(error.detail) < 400  # never the whole (possibly huge) line
    assert parser.errors == Counter({reason: 1})
    # Nothing half-applied: no other counter moved and no attribute set was left in the pool.
    assert parser.ignored == Counter() and len(parser.pool) == 0
    # The next good line parses as if nothing had happened.
    (event,) = parser.parse(GOOD)
    assert describe(event)[4] == ["203.0.113.0/27"]
    assert parser.lines == 2


def test_rejected_line_with_a_good_family_first_interns_nothing(parser: ExaBGPJsonParser) -> None:
    line = update_line(
        {
            "attribute": {"origin": "igp"},
            "announce": {
                "ipv4 unicast": {"192.0.2.2": ["10.0.0.0/8"]},
                "ipv6 unicast": {"2001:db8::1": ["not-a-prefix"]},
            },
        }
    )
    with pytest.raises(IngestError, match="bad_prefix"):
        parser.parse(line)
    assert len(parser.pool) == 0


def test_non_utf8_str_and_detail_of_bad_notification(parser: ExaBGPJsonParser) -> None:
    with pytest.raises(IngestError) as caught:
        parser.parse('{"type": "state", "x": "\udc80"}')
    assert caught.value.reason == "invalid_json"
    bad = update_line(kind="notification", message={}).replace(
        b'"message":{}', b'"notification":{"code":"six","subcode":2}'
    )
    with pytest.raises(IngestError) as caught:
        parser.parse(bad)
    assert caught.value.reason == "bad_field"
    assert "neighbor.notification.code" in caught.value.detail


def _open_paths(node: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [path] + [p for key, value in node.items() for p in _open_paths(value, (*path, key))]
    if isinstance(node, list):
        return [path] + [p for index, value in enumerate(node) for p in _open_paths(value, (*path, index))]
    return [path]


def test_any_wrong_type_anywhere_in_an_open_is_an_ingest_error_or_an_event(parser: ExaBGPJsonParser) -> None:
    base = orjson.loads(read_lines(FIXTURES / "open-frr-gr.jsonl")[1])
    paths = _open_paths(base["neighbor"]["open"])
    assert len(paths) > 40
    outcomes: Counter[str] = Counter()
    for path in paths:
        for value in (None, "x", 1.5, -1, True, [], {}, [None], {"1": 1}):
            doc = orjson.loads(orjson.dumps(base))
            node = doc["neighbor"]["open"]
            if not path:
                doc["neighbor"]["open"] = value
            else:
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = value
            try:
                events = parser.parse(orjson.dumps(doc))
            except IngestError as exc:
                assert exc.reason in REASONS
                outcomes["rejected"] += 1
            else:
                assert [type(e) for e in events] == [PeerOpen]
                outcomes["accepted"] += 1
    # Both happen: unknown capabilities and names are not checked, the fields the event needs are.
    assert outcomes["rejected"] > 100 and outcomes["accepted"] > 100
