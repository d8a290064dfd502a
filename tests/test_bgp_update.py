"""The shared BGP UPDATE decoder (bgpwatch.ingest.bgp_update) and the OPEN decoder, on hand-built messages.

Every message is built byte by byte from the RFC layouts (RFC 4271 4.3, 4760, 6793, 7911, 8092,
1997, 4724, 5492), so a test fails when the decoder reads a field from the wrong place.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest

from bgpwatch.events import Announce, Withdraw
from bgpwatch.ingest.bgp_open import BgpMessageError, decode_notification, decode_open
from bgpwatch.ingest.bgp_update import (
    ADDPATH_ALL,
    ADDPATH_IPV4,
    ADDPATH_IPV6,
    ADDPATH_NONE,
    UpdateDecoder,
    UpdateStats,
    as_path_width,
    end_of_rib,
    nlri_fields,
    nlri_fits,
)
from bgpwatch.ingest.mrt import MrtReader
from bgpwatch.rib.attributes import AttributePool
from bgpwatch.rib.prefix import format_prefix, parse_prefix


# -- builders (RFC layouts) --------------------------------------------------------------------------
def attr(code: int, value: bytes, flags: int = 0x40) -> bytes:
    """One path attribute: flags, type code, 1- or 2-octet length (extended-length bit), value."""
    if len(value) > 255 or flags & 0x10:
        return bytes([flags | 0x10, code]) + struct.pack("!H", len(value)) + value
    return bytes([flags, code, len(value)]) + value


def nlri(text: str, path_id: int | None = None, raw_bits: bytes | None = None) -> bytes:
    """One NLRI entry: [path id,] length, the leading address bytes."""
    network = ipaddress.ip_network(text, strict=False)
    plen = network.prefixlen
    body = raw_bits if raw_bits is not None else network.network_address.packed[: (plen + 7) // 8]
    head = struct.pack("!I", path_id) if path_id is not None else b""
    return head + bytes([plen]) + body


def as_path(*segments: tuple[int, tuple[int, ...]], asn_len: int = 4) -> bytes:
    fmt = "!I" if asn_len == 4 else "!H"
    return b"".join(
        bytes([kind, len(asns)]) + b"".join(struct.pack(fmt, a) for a in asns) for kind, asns in segments
    )


def update(withdrawn: bytes = b"", attributes: bytes = b"", announced: bytes = b"") -> bytes:
    """An UPDATE body (after the 19-byte header): withdrawn length, withdrawn, attributes length, attributes, NLRI."""
    return (
        struct.pack("!H", len(withdrawn))
        + withdrawn
        + struct.pack("!H", len(attributes))
        + attributes
        + announced
    )


def mp_reach(afi: int, safi: int, next_hop: bytes, prefixes: bytes) -> bytes:
    return attr(14, struct.pack("!HBB", afi, safi, len(next_hop)) + next_hop + b"\x00" + prefixes, 0x80)


def mp_unreach(afi: int, safi: int, prefixes: bytes) -> bytes:
    return attr(15, struct.pack("!HB", afi, safi) + prefixes, 0x80)


BASE = (
    attr(1, b"\x00")  # ORIGIN igp
    + attr(2, as_path((2, (65001, 4200000001))))
    + attr(3, bytes([192, 0, 2, 1]))
)


def key(text: str) -> int:
    return parse_prefix(text)[1]


class Decoder:
    """An UpdateDecoder that records its bad() calls."""

    def __init__(self, strict: bool = False) -> None:
        self.problems: list[tuple[str, str]] = []
        self.stats = UpdateStats()
        self.pool = AttributePool()
        self.decoder = UpdateDecoder(self.pool, self.stats, self._bad, strict=strict)

    def _bad(self, reason: str, detail: str) -> None:
        self.problems.append((reason, detail))

    def __call__(self, body: bytes, asn_len: int = 4, addpath: int = ADDPATH_NONE, peer: str = "p") -> list:
        out: list = []
        self.decoder.update(1.0, peer, asn_len, addpath, False, body, 0, len(body), out)
        return out


# -- announcements and attributes ----------------------------------------------------------------------
def test_ipv4_announce_with_every_attribute() -> None:
    decode = Decoder()
    attributes = (
        attr(1, b"\x01")  # ORIGIN egp
        + attr(2, as_path((2, (65001, 4200000001, 64512))))
        + attr(3, bytes([198, 51, 100, 9]))
        + attr(4, struct.pack("!I", 50), 0x80)
        + attr(5, struct.pack("!I", 200))
        + attr(8, struct.pack("!HHHH", 65001, 100, 65535, 65281), 0xC0)
        + attr(32, struct.pack("!III", 4200000001, 1, 2), 0xC0)
    )
    events = decode(update(attributes=attributes, announced=nlri("203.0.113.0/24") + nlri("10.0.0.0/8")))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Announce) and event.family == 4 and event.peer == "p"
    assert event.prefixes == (key("203.0.113.0/24"), key("10.0.0.0/8"))
    a = event.attributes
    assert a.origin == "egp" and a.as_path == (65001, 4200000001, 64512) and a.as_set == ()
    assert a.next_hop == "198.51.100.9" and a.med == 50 and a.local_pref == 200
    assert a.communities == ((65001, 100), (65535, 65281))
    assert a.large_communities == ((4200000001, 1, 2),)
    assert decode.problems == [] and decode.stats.announcements == 2


def test_withdrawals_come_first_and_prefixes_are_deduplicated() -> None:
    decode = Decoder()
    body = update(
        withdrawn=nlri("192.0.2.0/25") + nlri("192.0.2.0/25"),
        attributes=BASE,
        announced=nlri("198.51.100.0/24") + nlri("198.51.100.0/24"),
    )
    events = decode(body)
    assert [type(e) for e in events] == [Withdraw, Announce]
    assert events[0].prefixes == (key("192.0.2.0/25"),)
    assert events[1].prefixes == (key("198.51.100.0/24"),)
    assert decode.stats.withdrawals == 2 and decode.stats.announcements == 2  # bgpdump counts both


def test_bits_past_the_mask_are_cleared() -> None:
    decode = Decoder()
    events = decode(update(attributes=BASE, announced=nlri("10.1.2.0/23", raw_bits=bytes([10, 1, 3]))))
    assert format_prefix(4, events[0].prefixes[0]) == "10.1.2.0/23"


def test_same_attribute_bytes_share_one_interned_object() -> None:
    decode = Decoder()
    first = decode(update(attributes=BASE, announced=nlri("10.0.0.0/8")))[0]
    second = decode(update(attributes=BASE, announced=nlri("11.0.0.0/8")), peer="q")[0]
    assert first.attributes is second.attributes
    other = decode(update(attributes=BASE + attr(5, struct.pack("!I", 1)), announced=nlri("12.0.0.0/8")))[0]
    assert other.attributes is not first.attributes


def test_as_set_and_confederation_segments() -> None:
    decode = Decoder()
    path = as_path((3, (64600,)), (2, (65001, 65002)), (1, (64496, 64497)))
    events = decode(update(attributes=attr(1, b"\x00") + attr(2, path), announced=nlri("10.0.0.0/8")))
    assert events[0].attributes.as_path == (65001, 65002)
    assert events[0].attributes.as_set == (64496, 64497)
    assert events[0].attributes.origin_as is None  # ends in an AS_SET


# -- MP_REACH / MP_UNREACH -----------------------------------------------------------------------------
def test_mp_reach_ipv6_with_link_local_next_hop_and_mp_unreach() -> None:
    decode = Decoder()
    global_nh = ipaddress.IPv6Address("2001:db8::1").packed
    link_local = ipaddress.IPv6Address("fe80::1").packed
    attributes = (
        attr(1, b"\x00")
        + attr(2, as_path((2, (65002,))))
        + mp_unreach(2, 1, nlri("2001:db8:dead::/48"))
        + mp_reach(2, 1, global_nh + link_local, nlri("2001:db8:1::/48") + nlri("2001:db8:2::/47"))
    )
    events = decode(update(attributes=attributes))
    assert [type(e) for e in events] == [Withdraw, Announce]
    assert events[0].family == 6 and events[0].prefixes == (key("2001:db8:dead::/48"),)
    announce = events[1]
    assert announce.family == 6 and announce.attributes.next_hop == "2001:db8::1"
    assert announce.prefixes == (key("2001:db8:1::/48"), key("2001:db8:2::/47"))
    assert announce.attributes.as_path == (65002,)


def test_multicast_safi_is_counted_without_events() -> None:
    decode = Decoder()
    attributes = BASE + mp_reach(1, 2, bytes([192, 0, 2, 1]), nlri("233.252.0.0/24"))
    assert decode(update(attributes=attributes)) == []
    assert decode.stats.announcements == 1 and decode.stats.not_emitted["multicast"] == 1


def test_attribute_with_extended_length() -> None:
    decode = Decoder()
    communities = b"".join(struct.pack("!HH", 65001, n) for n in range(80))  # 320 bytes
    events = decode(update(attributes=BASE + attr(8, communities, 0xD0), announced=nlri("10.0.0.0/8")))
    assert len(events[0].attributes.communities) == 80 and events[0].attributes.communities[79] == (65001, 79)


# -- 2-octet ASNs and AS4_PATH (RFC 6793 4.2.3) -------------------------------------------------------
def two_byte_update(as4: tuple[int, ...], aggregator: bytes = b"", as4_aggregator: bytes = b"") -> bytes:
    attributes = (
        attr(1, b"\x00")
        + attr(2, as_path((2, (65001, 65000, 23456, 64512)), asn_len=2))
        + attr(3, bytes([192, 0, 2, 1]))
        + (attr(7, aggregator, 0xC0) if aggregator else b"")
        + attr(17, as_path((2, as4)), 0xC0)
        + (attr(18, as4_aggregator, 0xC0) if as4_aggregator else b"")
    )
    return update(attributes=attributes, announced=nlri("203.0.113.224/28"))


def test_as4_path_is_merged_with_a_2_octet_as_path() -> None:
    events = Decoder()(two_byte_update((65000, 4200000001, 64512)), asn_len=2)
    assert events[0].attributes.as_path == (65001, 65000, 4200000001, 64512)


def test_as4_path_longer_than_as_path_is_ignored() -> None:
    events = Decoder()(two_byte_update((1, 2, 3, 4, 5)), asn_len=2)
    assert events[0].attributes.as_path == (65001, 65000, 23456, 64512)


def test_as4_path_ignored_when_aggregator_holds_a_real_as_beside_as4_aggregator() -> None:
    aggregator = struct.pack("!H", 64999) + bytes([192, 0, 2, 9])
    as4_aggregator = struct.pack("!I", 4200000009) + bytes([192, 0, 2, 9])
    events = Decoder()(two_byte_update((65000, 4200000001, 64512), aggregator, as4_aggregator), asn_len=2)
    assert events[0].attributes.as_path == (65001, 65000, 23456, 64512)
    trans = struct.pack("!H", 23456) + bytes([192, 0, 2, 9])
    events = Decoder()(two_byte_update((65000, 4200000001, 64512), trans, as4_aggregator), asn_len=2)
    assert events[0].attributes.as_path == (65001, 65000, 4200000001, 64512)


def test_as4_path_is_not_merged_with_4_octet_asns() -> None:
    body = update(
        attributes=attr(1, b"\x00")
        + attr(2, as_path((2, (65001, 65002))))
        + attr(17, as_path((2, (7,))), 0xC0),
        announced=nlri("10.0.0.0/8"),
    )
    assert Decoder()(body, asn_len=4)[0].attributes.as_path == (65001, 65002)


# -- ADD-PATH (RFC 7911) -------------------------------------------------------------------------------
def test_add_path_keeps_a_prefix_until_its_last_path_is_withdrawn() -> None:
    decode = Decoder()
    p = "10.0.0.0/8"
    events = decode(update(attributes=BASE, announced=nlri(p, 1) + nlri(p, 2)), addpath=ADDPATH_ALL)
    assert len(events) == 1 and events[0].prefixes == (key(p),)
    assert decode.decoder.paths["p"][(4, key(p))] == {1, 2}
    assert decode(update(withdrawn=nlri(p, 1)), addpath=ADDPATH_ALL) == []
    assert decode.stats.not_emitted["addpath_other_paths_remain"] == 1
    events = decode(update(withdrawn=nlri(p, 2)), addpath=ADDPATH_ALL)
    assert [type(e) for e in events] == [Withdraw] and events[0].prefixes == (key(p),)
    assert (4, key(p)) not in decode.decoder.paths["p"]


def test_add_path_mask_is_per_family() -> None:
    decode = Decoder()
    nh = ipaddress.IPv6Address("2001:db8::1").packed
    body = update(
        attributes=BASE + mp_reach(2, 1, nh, nlri("2001:db8:1::/48", 7)),
        announced=nlri("10.0.0.0/8"),  # no path id: IPv4 is not in the mask
    )
    events = decode(body, addpath=ADDPATH_IPV6)
    assert [(e.family, e.prefixes) for e in events] == [
        (4, (key("10.0.0.0/8"),)),
        (6, (key("2001:db8:1::/48"),)),
    ]
    assert decode.decoder.paths["p"] == {(6, key("2001:db8:1::/48")): {7}}
    assert decode.problems == []
    # The same bytes with the IPv4 bit set read the IPv4 NLRI as a path id: cut.
    bad = Decoder()
    bad(body, addpath=ADDPATH_IPV4)
    assert bad.problems and bad.problems[0][0] == "truncated_nlri"


def test_forget_drops_a_peers_paths() -> None:
    decode = Decoder()
    decode(update(attributes=BASE, announced=nlri("10.0.0.0/8", 1)), addpath=ADDPATH_ALL)
    decode.decoder.forget("p")
    assert "p" not in decode.decoder.paths


# -- malformed input -----------------------------------------------------------------------------------
def test_truncated_nlri_keeps_the_prefixes_before_the_cut() -> None:
    decode = Decoder()
    events = decode(update(attributes=BASE, announced=nlri("10.0.0.0/8") + bytes([24, 192, 0])))
    assert events[0].prefixes == (key("10.0.0.0/8"),)
    assert [reason for reason, _ in decode.problems] == ["truncated_nlri"]


def test_invalid_prefix_length_is_reported_and_skipped() -> None:
    decode = Decoder()
    events = decode(update(attributes=BASE, announced=bytes([33, 1, 2, 3, 4, 5]) + nlri("10.0.0.0/8")))
    assert events[0].prefixes == (key("10.0.0.0/8"),)
    assert decode.problems[0][0] == "invalid_prefix" and decode.stats.not_emitted["invalid_prefix"] == 1


def test_attribute_overrunning_the_block() -> None:
    decode = Decoder()
    attributes = BASE + bytes([0x40, 5, 10, 0, 0])  # LOCAL_PREF declaring 10 bytes, 2 there
    decode(update(attributes=attributes, announced=nlri("10.0.0.0/8")))
    assert decode.problems[0][0] == "truncated_attribute"


def test_bad_as_path_segment() -> None:
    decode = Decoder()
    decode(update(attributes=attr(2, bytes([9, 1, 0, 0, 0, 1])), announced=nlri("10.0.0.0/8")))
    assert decode.problems[0][0] == "bad_as_path"
    decode = Decoder()
    decode(update(attributes=attr(2, bytes([2, 3, 0, 0, 0, 1])), announced=nlri("10.0.0.0/8")))
    assert decode.problems[0][0] == "bad_as_path"  # 3 ASNs announced, 1 there


def test_nlri_without_attributes_is_counted_not_emitted() -> None:
    decode = Decoder()
    assert decode(update(announced=nlri("10.0.0.0/8"))) == []
    assert decode.stats.not_emitted["no_attributes"] == 1


class Stop(Exception):
    pass


def test_strict_mode_reports_cut_mp_attributes_and_a_raising_bad_changes_nothing() -> None:
    problems: list[str] = []

    def bad(reason: str, detail: str) -> None:
        problems.append(reason)
        raise Stop(detail)

    decoder = UpdateDecoder(AttributePool(), UpdateStats(), bad, strict=True)
    cut = update(attributes=BASE + attr(14, struct.pack("!HB", 2, 1), 0x80))
    out: list = []
    with pytest.raises(Stop):
        decoder.update(1.0, "p", 4, ADDPATH_NONE, False, cut, 0, len(cut), out)
    assert problems == ["bad_mp_attribute"] and out == []
    # A next hop longer than the attribute.
    overrun = update(attributes=BASE + attr(14, struct.pack("!HBB", 2, 1, 32) + bytes(16), 0x80))
    with pytest.raises(Stop):
        decoder.update(1.0, "p", 4, ADDPATH_NONE, False, overrun, 0, len(overrun), out)
    # ADD-PATH state is untouched by an UPDATE whose later prefix is bad.
    body = update(attributes=BASE, announced=nlri("10.0.0.0/8", 1) + bytes([0, 0, 0, 2, 40]))
    with pytest.raises(Stop):
        decoder.update(1.0, "p", 4, ADDPATH_ALL, False, body, 0, len(body), out)
    assert decoder.paths == {} and out == []
    # The lenient decoder reads RFC 6396's abbreviated RIB MP_REACH (next-hop length first); strict does not.
    rib_form = attr(14, bytes([16]) + ipaddress.IPv6Address("2001:db8::9").packed, 0x80)
    lenient = UpdateDecoder(AttributePool())
    assert lenient.attributes(rib_form, 0, len(rib_form), 4, ADDPATH_NONE)[3][3] == "2001:db8::9"
    assert decoder.attributes(rib_form, 0, len(rib_form), 4, ADDPATH_NONE)[2] == []


def test_the_mrt_reader_uses_the_shared_decoder() -> None:
    reader = MrtReader(AttributePool())
    assert isinstance(reader._decoder, UpdateDecoder)
    assert reader._decoder.stats is reader.stats


# -- framing helpers used by BMP -----------------------------------------------------------------------
def test_end_of_rib_markers() -> None:
    assert end_of_rib(update(), 0, 4) == (1, 1)
    v6 = update(attributes=mp_unreach(2, 1, b""))
    assert end_of_rib(v6, 0, len(v6)) == (2, 1)
    v6_extended = update(attributes=attr(15, struct.pack("!HB", 2, 1), 0x90))
    assert len(v6_extended) == 11 and end_of_rib(v6_extended, 0, len(v6_extended)) == (2, 1)
    not_empty = update(attributes=mp_unreach(2, 1, nlri("2001:db8::/32")))
    assert end_of_rib(not_empty, 0, len(not_empty)) is None
    withdrawal = update(withdrawn=nlri("10.0.0.0/8"))
    assert end_of_rib(withdrawal, 0, len(withdrawal)) is None


def test_nlri_fields_and_fits() -> None:
    nh = ipaddress.IPv6Address("2001:db8::1").packed
    v4 = nlri("10.0.0.0/8") + nlri("192.0.2.0/24")
    v6 = nlri("2001:db8:1::/48", 5)
    body = update(withdrawn=nlri("10.9.0.0/16"), attributes=BASE + mp_reach(2, 1, nh, v6), announced=v4)
    fields = nlri_fields(body, 0, len(body))
    assert fields is not None
    assert [(family, body[start:stop]) for family, start, stop in fields] == [
        (4, nlri("10.9.0.0/16")),
        (4, v4),
        (6, v6),
    ]
    assert nlri_fits(v4, 0, len(v4), 4, False) and not nlri_fits(v4, 0, len(v4), 4, True)
    assert nlri_fits(v6, 0, len(v6), 6, True) and not nlri_fits(v6, 0, len(v6), 6, False)
    assert nlri_fields(b"\x00\x05\x00", 0, 3) is None


def test_as_path_width() -> None:
    two = update(attributes=attr(2, as_path((2, (65001, 23456)), asn_len=2)), announced=nlri("10.0.0.0/8"))
    four = update(attributes=attr(2, as_path((2, (65000, 4200000001, 64512)))), announced=nlri("10.0.0.0/8"))
    assert as_path_width(two, 0, len(two)) == 2
    assert as_path_width(four, 0, len(four)) == 4
    assert as_path_width(update(), 0, 4) is None


# -- OPEN and NOTIFICATION ---------------------------------------------------------------------------
def bgp_message(msg_type: int, body: bytes) -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), msg_type) + body


def open_message(asn: int, hold: int, bgp_id: str, capabilities: bytes, extended: bool = False) -> bytes:
    param = bytes([2]) + (struct.pack("!H", len(capabilities)) if extended else bytes([len(capabilities)]))
    params = param + capabilities
    my_as = asn if asn < 65536 else 23456
    fixed = struct.pack("!BHH4s", 4, my_as, hold, ipaddress.IPv4Address(bgp_id).packed)
    if extended:
        return bgp_message(1, fixed + bytes([255, 255]) + struct.pack("!H", len(params)) + params)
    return bgp_message(1, fixed + bytes([len(params)]) + params)


def cap(code: int, value: bytes) -> bytes:
    return bytes([code, len(value)]) + value


CAPS = (
    cap(1, struct.pack("!HBB", 1, 0, 1))
    + cap(1, struct.pack("!HBB", 2, 0, 1))
    + cap(65, struct.pack("!I", 4200000001))
    + cap(64, struct.pack("!H", 0x8000 | 120) + struct.pack("!HBB", 1, 1, 0x80))
    + cap(69, struct.pack("!HBB", 1, 1, 3) + struct.pack("!HBB", 2, 1, 1))
    + cap(2, b"")  # route refresh: listed by code only
)


@pytest.mark.parametrize("extended", [False, True])
def test_open_capabilities(extended: bool) -> None:
    raw = b"junk" + open_message(4200000001, 90, "192.0.2.2", CAPS, extended)
    message, end = decode_open(raw, 4, len(raw))
    assert end == len(raw) and message is not None
    assert message.my_as == 23456 and message.asn == 4200000001 and message.four_byte_asn
    assert message.hold_time == 90 and message.bgp_id == "192.0.2.2"
    assert message.families == ((1, 1), (2, 1))
    assert message.graceful_restart and message.restart_time == 120 and message.gr_families == ((1, 1),)
    assert message.add_path == {(1, 1): 3, (2, 1): 1}
    assert message.capabilities == (1, 1, 65, 64, 69, 2)


def test_open_errors_name_the_byte() -> None:
    good = open_message(65001, 9, "192.0.2.2", CAPS)
    cases = {
        "marker": b"\x00" + good[1:],
        "cut": good[:-3],
        "capability overrun": good[:-2] + bytes([2, 9]),
        "bad 4-octet AS": open_message(65001, 9, "192.0.2.2", cap(65, b"\x00\x01")),
        "not an OPEN": bgp_message(4, b""),
    }
    for name, raw in cases.items():
        with pytest.raises(BgpMessageError) as info:
            decode_open(raw, 0, len(raw))
        assert info.value.offset >= 0, name
    empty = bgp_message(1, b"")
    assert decode_open(empty, 0, len(empty), allow_empty=True) == (None, 19)
    with pytest.raises(BgpMessageError):
        decode_open(empty, 0, len(empty))


def test_notification() -> None:
    raw = bgp_message(3, bytes([6, 2]) + b"\x05bye!")
    message, end = decode_notification(raw, 0, len(raw))
    assert (message.code, message.subcode, message.data, end) == (6, 2, b"\x05bye!", len(raw))
    assert message.text() == "NOTIFICATION 6/2 (cease, administrative shutdown)"
    with pytest.raises(BgpMessageError):
        decode_notification(bgp_message(3, b"\x04"), 0, 20)
