"""The BMP decoder (bgpwatch.ingest.bmp): hand-built messages, real FRR 8.4 / GoBGP 3.10 captures, a corpus, fuzzing.

Hand-built messages follow the RFC 7854 layouts (common header 4.1, per-peer header 4.2, TLVs 4.4,
Initiation 4.3, Termination 4.5, Route Monitoring 4.6, Statistics 4.8, Peer Down 4.9, Peer Up
4.10), RFC 9069 (Loc-RIB, peer type 3) and RFC 8671 (O flag).  The captures are H2's
(fixtures/SOURCES.md, "bmp/"); the facts asserted on them come from the lab's scenario there.
"""

from __future__ import annotations

import ipaddress
import json
import struct
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpwatch.events import (
    DOWN,
    UP,
    Announce,
    EndOfRib,
    MonitoredSession,
    MonitorState,
    MonitorStats,
    Withdraw,
)
from bgpwatch.ingest.bmp import MAX_DETAIL_CHARS, REASONS, BmpParser, message_length, split_messages
from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.ingest.reasons import HOLD_TIMER, OTHER, PEER
from bgpwatch.rib.attributes import AttributePool
from bgpwatch.rib.prefix import format_prefix, parse_prefix
from tests.test_bgp_update import (
    BASE,
    as_path,
    attr,
    bgp_message,
    cap,
    mp_reach,
    mp_unreach,
    nlri,
    open_message,
)
from tests.test_bgp_update import update as update_body

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "fixtures" / "bmp"
MALFORMED = CAPTURES / "malformed"


# -- builders (RFC 7854 layouts) ---------------------------------------------------------------------
def bmp(msg_type: int, body: bytes, version: int = 3) -> bytes:
    return struct.pack("!BIB", version, 6 + len(body), msg_type) + body


def peer_header(
    address: str = "198.51.100.2",
    peer_type: int = 0,
    flags: int = 0,
    asn: int = 65002,
    bgp_id: str = "192.0.2.6",
    distinguisher: int = 0,
) -> bytes:
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        flags |= 0x80
        raw = ip.packed
    else:
        raw = bytes(12) + ip.packed
    return (
        bytes([peer_type, flags])
        + struct.pack("!Q", distinguisher)
        + raw
        + struct.pack("!I", asn)
        + ipaddress.IPv4Address(bgp_id).packed
        + struct.pack("!II", 1796182727, 5)  # timestamps: ignored (the arrival time is used)
    )


def tlv(tlv_type: int, value: bytes) -> bytes:
    return struct.pack("!HH", tlv_type, len(value)) + value


def initiation(sys_name: str = "par1", sys_descr: str = "FRRouting 8.4.4") -> bytes:
    return bmp(4, tlv(1, sys_descr.encode()) + tlv(2, sys_name.encode()) + tlv(0, b"hello"))


def termination(reason: int = 0, text: str = "") -> bytes:
    return bmp(5, tlv(1, struct.pack("!H", reason)) + (tlv(0, text.encode()) if text else b""))


FOUR = cap(65, struct.pack("!I", 65001))
GR = cap(64, struct.pack("!H", 120) + struct.pack("!HBB", 1, 1, 0x80))
MP = cap(1, struct.pack("!HBB", 1, 0, 1)) + cap(1, struct.pack("!HBB", 2, 0, 1))


def add_path(mode: int) -> bytes:
    return cap(69, struct.pack("!HBB", 1, 1, mode) + struct.pack("!HBB", 2, 1, mode))


def peer_up(
    header: bytes | None = None,
    sent: bytes | None = None,
    received: bytes | None = None,
    local: str = "198.51.100.1",
    tlvs: bytes = b"",
) -> bytes:
    header = header if header is not None else peer_header()
    sent = sent if sent is not None else open_message(65001, 9, "192.0.2.2", MP + FOUR + GR)
    received = received if received is not None else open_message(65002, 90, "192.0.2.6", MP + FOUR + GR)
    ip = ipaddress.ip_address(local)
    raw = ip.packed if ip.version == 6 else bytes(12) + ip.packed
    return bmp(3, header + raw + struct.pack("!HH", 179, 40123) + sent + received + tlvs)


def peer_down(reason: int, data: bytes = b"", header: bytes | None = None) -> bytes:
    return bmp(2, (header if header is not None else peer_header()) + bytes([reason]) + data)


def notification(code: int, subcode: int, data: bytes = b"") -> bytes:
    return bgp_message(3, bytes([code, subcode]) + data)


def route_monitoring(body: bytes, header: bytes | None = None) -> bytes:
    return bmp(0, (header if header is not None else peer_header()) + bgp_message(2, body))


def statistics(counters: list[tuple[int, bytes]], header: bytes | None = None) -> bytes:
    body = struct.pack("!I", len(counters)) + b"".join(tlv(t, v) for t, v in counters)
    return bmp(1, (header if header is not None else peer_header()) + body)


ANNOUNCE = update_body(attributes=BASE, announced=nlri("203.0.113.64/27") + nlri("203.0.113.96/27"))


def key(text: str) -> int:
    return parse_prefix(text)[1]


class Station:
    """A parser with one connection from 192.0.2.2."""

    def __init__(self, **kwargs) -> None:
        self.parser = BmpParser(AttributePool(), **kwargs)
        self.parser.connect("c1", "192.0.2.2", 0.0)

    def __call__(self, message: bytes, at: float = 10.0) -> list:
        return self.parser.parse("c1", message, at)


# -- framing -------------------------------------------------------------------------------------------
def test_message_length() -> None:
    message = initiation()
    assert message_length(message[:6]) == len(message)
    for head, reason in (
        (bytes([1]) + message[1:6], "bmp_bad_version"),
        (message[:1] + struct.pack("!I", 5) + message[5:6], "bmp_bad_length"),
        (message[:1] + struct.pack("!I", 1 << 30) + message[5:6], "bmp_too_long"),
        (message[:4], "bmp_truncated"),
    ):
        with pytest.raises(IngestError) as info:
            message_length(head)
        assert info.value.reason == reason
    with pytest.raises(IngestError) as info:
        message_length(message[:6], max_message_bytes=len(message) - 1)
    assert info.value.reason == "bmp_too_long"


def test_split_messages_cuts_a_capture_into_its_messages() -> None:
    first, second = initiation(), initiation()
    assert split_messages(first + second) == [first, second]
    assert split_messages(b"") == []
    with pytest.raises(IngestError) as info:
        split_messages(first + second[:3])  # a capture cut inside a common header
    assert info.value.reason == "bmp_truncated"
    with pytest.raises(IngestError) as info:
        split_messages(first + second[:-1])  # ... or inside a message
    assert info.value.reason == "bmp_truncated"


def test_parse_checks_the_common_header() -> None:
    station = Station(max_message_bytes=200)
    for message, reason in (
        (initiation()[:-1], "bmp_bad_length"),
        (initiation() + b"x", "bmp_bad_length"),
        (bmp(4, b"", version=2), "bmp_bad_version"),
        (b"\x03\x00", "bmp_truncated"),
        (bmp(4, tlv(0, bytes(300))), "bmp_too_long"),
    ):
        with pytest.raises(IngestError) as info:
            station(message)
        assert info.value.reason == reason


# -- Initiation, Termination, disconnect ---------------------------------------------------------------
def test_initiation_names_the_router_and_resolve_is_asked() -> None:
    asked: list[tuple[str, str]] = []

    def resolve(address: str, sys_name: str) -> str:
        asked.append((address, sys_name))
        return f"site-{sys_name}" if sys_name else address

    station = Station(resolve=resolve)
    # Before Initiation: named after the address.
    events = station(peer_up())
    assert events[0].router == "192.0.2.2"
    events = station(initiation("par1", "FRRouting 8.4.4"), at=11.0)
    assert events == [MonitorState(11.0, "site-par1", True, "192.0.2.2", "par1", "FRRouting 8.4.4", "")]
    assert asked == [("192.0.2.2", ""), ("192.0.2.2", "par1")]
    assert station(route_monitoring(ANNOUNCE))[0].peer == "site-par1|198.51.100.2|pre"


def test_termination_and_disconnect() -> None:
    station = Station()
    station(initiation())
    events = station(termination(4, "bye"), at=12.0)
    assert events == [
        MonitorState(
            12.0,
            "par1",
            False,
            "192.0.2.2",
            "par1",
            "FRRouting 8.4.4",
            "permanently administratively closed; bye",
        )
    ]
    # Terminated: the TCP close that follows says nothing more.
    assert station.parser.disconnect("c1", 13.0, "closed by the router") == []
    station = Station()
    station(initiation("par2", "x"))
    assert station.parser.disconnect("c1", 14.0, "closed by the router") == [
        MonitorState(14.0, "par2", False, "192.0.2.2", "par2", "x", "closed by the router")
    ]
    assert station.parser.disconnect("c1", 15.0, "again") == []
    never_up = Station()
    assert never_up.parser.disconnect("c1", 1.0, "closed") == []


# -- Peer Up -----------------------------------------------------------------------------------------------
def test_peer_up_negotiation() -> None:
    station = Station()
    station(initiation())
    (event,) = station(peer_up(), at=20.0)
    assert event == MonitoredSession(
        20.0,
        "par1",
        "198.51.100.2",
        UP,
        peer_as=65002,
        peer_bgp_id="192.0.2.6",
        local_bgp_id="192.0.2.2",
        local_address="198.51.100.1",
        graceful_restart=True,
        add_path=False,
        four_byte_asn=True,
        hold_time=9,
    )
    # One side without GR or 4-octet AS: not negotiated.
    (event,) = station(peer_up(received=open_message(65002, 30, "192.0.2.6", MP)))
    assert not event.graceful_restart and not event.four_byte_asn and event.hold_time == 9


def test_peer_up_ipv6_peer_and_information_tlv() -> None:
    station = Station()
    header = peer_header("2001:db8::2", asn=65010, bgp_id="192.0.2.10")
    (event,) = station(peer_up(header, local="2001:db8::1", tlvs=tlv(0, b"info")))
    assert event.peer == "2001:db8::2" and event.local_address == "2001:db8::1" and event.peer_as == 65010
    assert station.parser.counters["peer_up_tlv"] == 1


def test_peer_up_with_a_bare_received_open_assumes_the_sent_capabilities() -> None:
    station = Station()
    (event,) = station(peer_up(received=bgp_message(1, b"")))
    assert event.four_byte_asn and station.parser.counters["peer_up_empty_open"] == 1


# -- Peer Down: every reason code ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reason", "data", "cause", "text"),
    [
        (1, notification(4, 0), HOLD_TIMER, "local system closed, NOTIFICATION 4/0 (hold timer expired)"),
        (
            1,
            notification(6, 2, b"\x04bye"),
            OTHER,
            "local system closed, NOTIFICATION 6/2 (cease, administrative shutdown)",
        ),
        (2, struct.pack("!H", 10), HOLD_TIMER, "local system closed, FSM event 10 (hold timer expired)"),
        (2, struct.pack("!H", 0), OTHER, "local system closed, FSM event 0"),
        (3, notification(6, 3), PEER, "remote system closed, NOTIFICATION 6/3 (cease, peer de-configured)"),
        (3, notification(4, 0), HOLD_TIMER, "remote system closed, NOTIFICATION 4/0 (hold timer expired)"),
        (3, b"", PEER, "remote system closed, no NOTIFICATION"),  # GoBGP 3.10's hold timer expiry
        (4, b"", PEER, "remote system closed, no NOTIFICATION"),
        (5, b"", OTHER, "peer de-configured"),
        (6, tlv(0, b"vrf gone"), OTHER, "local system closed (Loc-RIB): vrf gone"),
    ],
)
def test_peer_down_reasons(reason: int, data: bytes, cause: str, text: str) -> None:
    station = Station()
    station(initiation())
    station(peer_up())
    (event,) = station(peer_down(reason, data), at=30.0)
    assert event == MonitoredSession(
        30.0,
        "par1",
        "198.51.100.2",
        DOWN,
        peer_as=65002,
        peer_bgp_id="192.0.2.6",
        reason=text,
        cause=cause,
        code=reason,
    )


def test_peer_down_malformed() -> None:
    station = Station()
    for message in (
        peer_down(7),
        peer_down(0),
        peer_down(1, notification(4, 0)[:-1]),
        peer_down(1, notification(4, 0) + b"x"),
        peer_down(2, b"\x00"),
        peer_down(2, b"\x00\x01\x02"),
    ):
        with pytest.raises(IngestError) as info:
            station(message)
        assert info.value.reason == "bmp_bad_peer_down"


# -- Route Monitoring --------------------------------------------------------------------------------------
def test_route_monitoring_views_pre_post_loc_and_adj_rib_out() -> None:
    station = Station()
    station(initiation())
    pre = station(route_monitoring(ANNOUNCE), at=40.0)
    assert pre == [
        Announce(
            40.0,
            "par1|198.51.100.2|pre",
            4,
            (key("203.0.113.64/27"), key("203.0.113.96/27")),
            pre[0].attributes,
        )
    ]
    assert pre[0].attributes.as_path == (65001, 4200000001)
    post = station(route_monitoring(ANNOUNCE, peer_header(flags=0x40)))
    assert post[0].peer == "par1|198.51.100.2|post" and post[0].attributes is pre[0].attributes
    loc = station(
        route_monitoring(ANNOUNCE, peer_header("0.0.0.0", peer_type=3, asn=65001, bgp_id="192.0.2.2"))
    )
    assert loc[0].peer == "par1|0.0.0.0|loc"
    assert station(route_monitoring(ANNOUNCE, peer_header(flags=0x10))) == []  # Adj-RIB-Out (RFC 8671)
    assert station.parser.counters["adj_rib_out"] == 1
    withdraw = station(route_monitoring(update_body(withdrawn=nlri("203.0.113.64/27"))))
    assert withdraw == [Withdraw(10.0, "par1|198.51.100.2|pre", 4, (key("203.0.113.64/27"),))]


def test_route_monitoring_ipv6_and_end_of_rib() -> None:
    station = Station()
    station(initiation())
    nh = ipaddress.IPv6Address("2001:db8::2").packed
    v6 = update_body(
        attributes=attr(1, b"\x00")
        + attr(2, as_path((2, (65002,))))
        + mp_reach(2, 1, nh, nlri("2001:db8:1002::/48"))
    )
    (event,) = station(route_monitoring(v6, peer_header("2001:db8::2")))
    assert (
        event.family == 6
        and event.peer == "par1|2001:db8::2|pre"
        and event.attributes.next_hop == "2001:db8::2"
    )
    assert station(route_monitoring(update_body())) == [EndOfRib(10.0, "par1|198.51.100.2|pre", 4)]
    eor6 = update_body(attributes=mp_unreach(2, 1, b""))
    assert station(route_monitoring(eor6, peer_header(flags=0x40))) == [
        EndOfRib(10.0, "par1|198.51.100.2|post", 6)
    ]
    # End-of-RIB of a family bgpwatch does not keep: counted.
    assert station(route_monitoring(update_body(attributes=mp_unreach(1, 128, b"")))) == []
    assert station.parser.counters["end_of_rib_other_family"] == 1


TWO_BYTE = update_body(
    attributes=attr(1, b"\x00")
    + attr(2, as_path((2, (65001, 65000, 23456, 64512)), asn_len=2))
    + attr(3, bytes([192, 0, 2, 1]))
    + attr(17, as_path((2, (65000, 4200000001, 64512))), 0xC0),
    announced=nlri("203.0.113.224/28"),
)
FOUR_BYTE = update_body(
    attributes=attr(1, b"\x00")
    + attr(2, as_path((2, (65000, 4200000001, 64512))))
    + attr(3, bytes([192, 0, 2, 1])),
    announced=nlri("203.0.113.224/28"),
)
NO_AS4 = open_message(65000, 90, "192.0.2.254", MP + GR)


def test_two_octet_as_paths_by_a_flag_and_by_negotiation() -> None:
    station = Station()
    header = peer_header("192.0.2.1", asn=65000, bgp_id="192.0.2.254")
    # GoBGP: the A flag.
    (event,) = station(route_monitoring(TWO_BYTE, peer_header("192.0.2.1", flags=0x20, asn=65000)))
    assert event.attributes.as_path == (65001, 65000, 4200000001, 64512)
    # FRR 8.4: no A flag, only the Peer Up's received OPEN without 4-octet AS says so.
    station(peer_up(header, received=NO_AS4))
    (event,) = station(route_monitoring(TWO_BYTE, header))
    assert event.attributes.as_path == (65001, 65000, 4200000001, 64512)
    # GoBGP again: the same session, its paths re-encoded with 4-octet ASNs and no A flag.
    (event,) = station(route_monitoring(FOUR_BYTE, header))
    assert event.attributes.as_path == (65000, 4200000001, 64512)
    # Without Peer Up or A flag: 4-octet (RFC 7854 4.2), so the 2-octet path does not decode.
    fresh = Station()
    with pytest.raises(IngestError) as info:
        fresh(route_monitoring(TWO_BYTE, header))
    assert info.value.reason == "bmp_bad_update"


def test_add_path_ids_decoded_when_negotiated() -> None:
    station = Station()
    station(
        peer_up(
            sent=open_message(65001, 9, "192.0.2.2", MP + FOUR + add_path(1)),
            received=open_message(65002, 9, "192.0.2.6", MP + FOUR + add_path(2)),
        )
    )
    p = "203.0.113.64/27"
    (event,) = station(route_monitoring(update_body(attributes=BASE, announced=nlri(p, 1) + nlri(p, 2))))
    assert event.prefixes == (key(p),)
    assert station(route_monitoring(update_body(withdrawn=nlri(p, 1)))) == []  # path 2 remains
    assert station(route_monitoring(update_body(withdrawn=nlri(p, 2))))[0].prefixes == (key(p),)
    # Only one direction offered: the router does not receive path ids.
    other = Station()
    (up,) = other(
        peer_up(
            sent=open_message(65001, 9, "192.0.2.2", MP + FOUR + add_path(2)),
            received=open_message(65002, 9, "192.0.2.6", MP + FOUR + add_path(2)),
        )
    )
    assert not up.add_path
    assert other(route_monitoring(ANNOUNCE))[0].prefixes == (key("203.0.113.64/27"), key("203.0.113.96/27"))


def test_add_path_negotiated_but_not_sent_as_frr_does() -> None:
    station = Station()
    (up,) = station(
        peer_up(
            sent=open_message(65001, 9, "192.0.2.2", MP + FOUR + add_path(1)),
            received=open_message(65002, 9, "192.0.2.6", MP + FOUR + add_path(3)),
        )
    )
    assert up.add_path
    (event,) = station(route_monitoring(ANNOUNCE))
    assert event.prefixes == (key("203.0.113.64/27"), key("203.0.113.96/27"))
    assert station.parser.counters["addpath_negotiated_not_sent"] == 1


def test_peer_down_forgets_the_negotiation() -> None:
    station = Station()
    header = peer_header("192.0.2.1", asn=65000)
    station(peer_up(header, received=NO_AS4))
    station(peer_down(4, header=header))
    with pytest.raises(IngestError):
        station(route_monitoring(TWO_BYTE, header))  # 4-octet again


def test_loc_rib_peer_up_makes_no_session() -> None:
    station = Station()
    header = peer_header("0.0.0.0", peer_type=3, asn=65001, bgp_id="192.0.2.2")
    fabricated = open_message(65001, 0, "192.0.2.2", MP + FOUR + add_path(3))
    assert station(peer_up(header, fabricated, fabricated, local="0.0.0.0")) == []
    assert station.parser.counters["loc_rib_peer_up"] == 1
    p = "203.0.113.64/27"
    (event,) = station(route_monitoring(update_body(attributes=BASE, announced=nlri(p, 9)), header))
    assert event.peer == "192.0.2.2|0.0.0.0|loc" and event.prefixes == (key(p),)
    assert station(peer_down(6, tlv(0, b"x"), header)) == []


def test_route_mirroring_and_unknown_types_are_counted() -> None:
    station = Station()
    assert station(bmp(6, peer_header() + tlv(1, b"\x00\x00"))) == []
    assert station(bmp(42, b"future")) == []
    assert (
        station.parser.counters["route_mirroring"] == 1
        and station.parser.counters["unknown_message_type"] == 1
    )


# -- Statistics ----------------------------------------------------------------------------------------
def test_statistics_report() -> None:
    station = Station()
    station(initiation())
    counters = [
        (0, struct.pack("!I", 3)),
        (7, struct.pack("!Q", 1 << 40)),
        (9, struct.pack("!HBQ", 1, 1, 10)),
        (9, struct.pack("!HBQ", 2, 1, 5)),
        (65531, struct.pack("!I", 9)),
    ]
    (event,) = station(statistics(counters), at=50.0)
    assert event == MonitorStats(50.0, "par1", "198.51.100.2", ((0, 3), (7, 1 << 40), (9, 15), (65531, 9)))
    one = statistics([(0, struct.pack("!I", 1))])
    for bad in (
        statistics([(0, b"\x00\x00\x00")]),  # a counter of 3 bytes
        bmp(1, peer_header() + struct.pack("!I", 2) + tlv(0, struct.pack("!I", 1))),  # 2 announced, 1 there
        fix_length(one + b"\x00"),  # a byte after the counters
        bmp(1, peer_header() + struct.pack("!I", 1 << 31)),  # an impossible count
        bmp(1, peer_header() + b"\x00\x00"),  # the count cut
    ):
        with pytest.raises(IngestError) as info:
            station(bad)
        assert info.value.reason == "bmp_bad_stats"
    assert station(one)[0].counters == ((0, 1),)


def fix_length(message: bytes) -> bytes:
    return message[:1] + struct.pack("!I", len(message)) + message[5:]


# -- errors: bounded, typed, the parser goes on --------------------------------------------------------
def test_errors_are_bounded_and_the_parser_goes_on() -> None:
    station = Station()
    station(initiation())
    station(peer_up())
    long_name = "x" * 5000
    with pytest.raises(IngestError) as info:
        station(bmp(4, tlv(2, long_name.encode()) + b"\x00"))
    assert info.value.reason == "bmp_bad_tlv" and len(info.value.detail) <= MAX_DETAIL_CHARS
    assert "Initiation" in info.value.detail and "byte" in info.value.detail
    assert station(route_monitoring(ANNOUNCE))[0].peer == "par1|198.51.100.2|pre"
    # A sysName of 5000 bytes is cut, not refused.
    (state,) = station(bmp(4, tlv(2, long_name.encode())))
    assert len(state.sys_name) == 255


def corpus_files() -> list[Path]:
    return sorted(MALFORMED.glob("*.bmp"))


def good_messages(path: Path) -> list[bytes]:
    return split_messages(path.read_bytes())


def test_malformed_corpus() -> None:
    files = corpus_files()
    assert len(files) >= 25, "run fixtures/bmp/malformed/make_corpus.py"
    frr = good_messages(CAPTURES / "frr84" / "frr-par1-1.bmp")
    initiation_message = next(m for m in frr if m[5] == 4)
    announce = next(m for m in frr if m[5] == 0 and len(m) > 90)
    seen = Counter()
    for path in files:
        expected = path.name.split("--")[0]
        assert expected in REASONS, path.name
        parser = BmpParser(AttributePool())
        parser.connect("c", "192.0.2.2", 0.0)
        parser.parse("c", initiation_message, 1.0)
        with pytest.raises(IngestError) as info:
            parser.parse("c", path.read_bytes(), 2.0)
        assert info.value.reason == expected, (path.name, info.value.detail)
        assert len(info.value.detail) <= MAX_DETAIL_CHARS and "byte" in info.value.detail
        events = parser.parse("c", announce, 3.0)
        assert events and events[0].peer.startswith("par1|"), path.name
        seen[expected] += 1
    assert len(seen) >= 10  # every kind of damage is in the corpus


# -- the real captures (FRR 8.4, GoBGP 3.10) ------------------------------------------------------------
def capture(path: Path) -> list[tuple[bytes, float]]:
    """Return the messages of a capture with their arrival times (the .idx read holding their last byte)."""
    reads = []
    for line in path.with_suffix(".idx").read_text().splitlines():
        if line and not line.startswith("#"):
            at, offset, length = line.split()
            reads.append((int(offset) + int(length), float(at)))
    out = []
    index = 0
    for message in good_messages(path):
        end = sum(len(m) for m, _ in out) + len(message)
        while reads[index][0] < end:
            index += 1
        out.append((message, reads[index][1]))
    return out


def decode(path: Path) -> tuple[BmpParser, list]:
    parser = BmpParser(AttributePool())
    parser.connect("c", "192.0.2.2", 0.0)
    events = []
    for message, at in capture(path):
        events.extend(parser.parse("c", message, at))
    return parser, events


def ribs(events: list) -> dict[str, dict[str, tuple[int, ...]]]:
    table: dict[str, dict[str, tuple[int, ...]]] = {}
    for event in events:
        if isinstance(event, Announce):
            for prefix in event.prefixes:
                table.setdefault(event.peer, {})[format_prefix(event.family, prefix)] = (
                    event.attributes.as_path
                )
        elif isinstance(event, Withdraw):
            for prefix in event.prefixes:
                table.setdefault(event.peer, {}).pop(format_prefix(event.family, prefix), None)
    return table


def timeline(name: str) -> dict:
    return json.loads((CAPTURES / name).read_text())


ALL_CAPTURES = sorted(CAPTURES.glob("*/*.bmp"))


@pytest.mark.parametrize(
    "path", [p for p in ALL_CAPTURES if "malformed" not in p.parts], ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_every_capture_decodes_whole(path: Path) -> None:
    parser, events = decode(path)
    kinds = Counter(type(event).__name__ for event in events)
    assert kinds["MonitorState"] >= 1 and kinds["Announce"] >= 1 and kinds["MonitoredSession"] >= 2
    # FRR sends End-of-RIB per monitored peer; GoBGP only for its own routes of a first connection.
    assert kinds["EndOfRib"] >= (4 if path.parent.name.startswith("frr") else 0)
    assert isinstance(events[0], MonitorState) and events[0].up and events[0].sys_name.startswith("par")
    assert all(event.at > 1.7e9 for event in events)


def test_frr_capture_facts() -> None:
    parser, events = decode(CAPTURES / "frr84" / "frr-par1-1.bmp")
    assert events[0].sys_name == "par1" and events[0].sys_descr == "FRRouting 8.4.4"
    sessions = [e for e in events if isinstance(e, MonitoredSession)]
    assert sum(e.state == UP for e in sessions) == 6 and sum(e.state == DOWN for e in sessions) == 4
    eor = Counter(e.peer.rsplit("|", 1)[1] for e in events if isinstance(e, EndOfRib))
    assert eor == {"pre": 5, "post": 5}  # 3 IPv4 + 2 IPv6 each (SOURCES.md)
    # par3's silent power loss: par1's hold timer (9 s) ends the session, reported as reason 2.
    marks = {event["what"]: event["at"] for event in timeline("frr84/frr-timeline.json")["events"]}
    cut = marks["par3 powered off silently (nftables drop-all, SIGKILL)"]
    down = next(e for e in sessions if e.state == DOWN and e.peer == "198.51.100.6")
    assert down.code == 2 and cut + 6 < down.at < cut + 11
    # The ADD-PATH reset: reason 3 with Cease 6/6, then a Peer Up with ADD-PATH whose routes carry no ids.
    reset = next(e for e in sessions if e.code == 3)
    assert "NOTIFICATION 6/6" in reset.reason and reset.cause == PEER
    assert sessions[-1].add_path and parser.counters["addpath_negotiated_not_sent"] == 2
    table = ribs(events)
    # ExaBGP without asn4: 2-octet AS_PATH + AS4_PATH, no A flag; FRR puts its own AS first.
    assert table["par1|192.0.2.1|pre"] == {"203.0.113.224/28": (65001, 65000, 4200000001, 64512)}
    # par2's own prefixes (two /27 and a /48), post-policy from par2.
    from_par2 = {p for p, path in table["par1|198.51.100.2|post"].items() if path == (65001, 65002)}
    assert from_par2 == {"203.0.113.64/27", "203.0.113.96/27", "2001:db8:1002::/48"}
    assert set(table["par1|0.0.0.0|post"]) == {"203.0.113.0/27", "203.0.113.32/27", "2001:db8:1001::/48"}
    stats = [e for e in events if isinstance(e, MonitorStats)]
    assert stats and all([t for t, _ in e.counters] == [0, 4, 5, 3, 2, 11, 65531] for e in stats)


def test_gobgp_capture_facts() -> None:
    parser, events = decode(CAPTURES / "gobgp310" / "gobgp-par1-1.bmp")
    assert events[0].sys_name == "par1" and events[0].sys_descr == "GoBGP lab router par1"
    assert events[-1] == MonitorState(
        events[-1].at,
        "par1",
        False,
        "192.0.2.2",
        "par1",
        "GoBGP lab router par1",
        "permanently administratively closed",
    )
    sessions = [e for e in events if isinstance(e, MonitoredSession)]
    counts = timeline("gobgp310/gobgp-timeline.json")["files"]["gobgp-par1-1"]
    assert sum(e.state == UP for e in sessions) == counts["peer_up"] == 5
    downs = [e for e in sessions if e.state == DOWN]
    assert len(downs) == counts["peer_down"]
    # The hold timer expiry (par3 lost): reason 3 with no NOTIFICATION; the local disable: 1 with 6/2.
    assert (
        downs[0].peer == "198.51.100.6"
        and downs[0].code == 3
        and parser.counters["peer_down_without_notification"] == 1
    )
    assert downs[1].code == 1 and "NOTIFICATION 6/2" in downs[1].reason
    table = ribs(events)
    assert table["par1|0.0.0.0|loc"]["203.0.113.224/28"] == (65000, 4200000001, 64512)
    assert table["par1|192.0.2.1|pre"] == {"203.0.113.224/28": (65000, 4200000001, 64512)}
    assert set(table["par1|::|post"]) == {"203.0.113.0/27", "203.0.113.32/27", "2001:db8:1001::/48"}


# -- fuzzing: nothing but IngestError, and the parser goes on ---------------------------------------------
SEEDS = [m for m, _ in capture(CAPTURES / "frr84" / "frr-par1-1.bmp")][:40] + [
    m for m, _ in capture(CAPTURES / "gobgp310" / "gobgp-par1-1.bmp")
][:40]
GOOD = next(m for m in SEEDS if m[5] == 0 and len(m) > 90)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    message = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(len(message) - 1, 0)))
        if kind == "flip" and message:
            message[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and message:
            message[at] = draw(st.sampled_from([0, 1, 2, 3, 4, 6, 0x10, 0x20, 0x40, 0x80, 0xFE, 0xFF]))
        elif kind == "cut":
            del message[at:]
        elif kind == "insert":
            message[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del message[at : at + draw(st.integers(1, 8))]
    if draw(st.booleans()) and len(message) >= 6:
        struct.pack_into("!I", message, 1, len(message))  # keep the framing right half of the time
    return bytes(message)


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzz_only_ingest_errors(message: bytes) -> None:
    parser = BmpParser(AttributePool())
    parser.connect("c", "192.0.2.2", 0.0)
    parser.parse("c", SEEDS[0], 1.0)
    try:
        parser.parse("c", message, 2.0)
    except IngestError as exc:
        assert exc.reason in REASONS and exc.reason != "bmp_undecodable", exc
        assert len(exc.detail) <= MAX_DETAIL_CHARS
    assert parser.parse("c", GOOD, 3.0)


def test_monitored_peers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import bgpwatch.ingest.bmp as bmp_module

    monkeypatch.setattr(bmp_module, "MAX_PEERS", 2)
    station = Station()
    station(peer_up(peer_header("198.51.100.2")))
    station(peer_up(peer_header("198.51.100.6")))
    station(peer_up(peer_header("198.51.100.6")))  # the same peer again: not a new one
    with pytest.raises(IngestError) as info:
        station(peer_up(peer_header("198.51.100.10")))
    assert info.value.reason == "bmp_too_many_peers"
    station(peer_down(4, header=peer_header("198.51.100.6")))
    assert station(peer_up(peer_header("198.51.100.10")))[0].peer == "198.51.100.10"
