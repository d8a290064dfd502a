"""MRT ingest: counts equal bgpdump -m's on real files, errors keep what came before, decoding details."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from bgpwatch.events import Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.ingest.mrt import MrtError, MrtReader, MrtStats, compression_of, read_mrt
from bgpwatch.ingest.replay import EXABGP_JSON, MRT, ReplayStats, detect_format, open_recording, replay_files
from bgpwatch.rib.attributes import AttributePool
from bgpwatch.rib.prefix import format_prefix, parse_prefix
from bgpwatch.rib.table import Rib

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mrt"
BGPDUMP = shutil.which("bgpdump")

# bgpdump -m 1.6.2 line counts (A, W, STATE, B), as recorded in fixtures/SOURCES.md.
EXPECTED = {
    "libbgpstream/ris.rrc06.updates.1427846400.gz": (1435, 122, 4, 0),
    "bgpdump/updates.20100722.2015.gz": (5067, 547, 40, 0),
    "bgpdump/updates.20020722.2238.gz": (825, 2419, 93, 0),
    "bgpdump/updates.long_withdrawal.gz": (0, 4096, 0, 0),
    "bgpdump/updates.nlri_mask_trailing_bits.gz": (1, 0, 0, 0),
    "bgpdump/bview.64k_stream_overflow.gz": (0, 0, 0, 23),
    "bgpdump/bview.ipv4_unicast_add_path.gz": (0, 0, 0, 62),
    "bgpdump/bview.ipv6_unicast_add_path.gz": (0, 0, 0, 62),
    "bgpkit-parser/examples-local_only/updates.bz2": (159, 109, 0, 0),
    "bgpkit-parser/ripe/rrc01/2000.11/updates.20001104.0124.gz": (378, 141, 364, 0),
    "bgpkit-parser/ripe/rrc00/2000.01/updates.20000102.2014.gz": (5668, 675, 16, 0),
    "mrtparse/bird-mrtdump_bgp": (12, 0, 12, 0),
    "mrtparse/bird6-mrtdump_bgp": (12, 0, 12, 0),
    "mrtparse/bird-mrtdump_rib": (0, 0, 0, 18),
    "mrtparse/bird6-mrtdump_rib": (0, 0, 0, 10),
    "mrtparse/openbgpd_rib_table": (0, 0, 0, 31),
    "mrtparse/openbgpd_rib_table-mp": (0, 0, 0, 0),
    "mrtparse/quagga_rib": (0, 0, 0, 9),
    "mrtparse/quagga_bgp": (18, 0, 20, 0),
    "pyasn/bview.20140112.1600_3samples.bz2": (0, 0, 0, 0),
    "dfz_name_and_shame/rrc23.updates.20220421.0200.gz": (51907, 4094, 58, 0),
    "derived/pyasn-complete-records/rib.20140523.0600_firstMB.complete-records.mrt.gz": (0, 0, 0, 270005),
}
SMALL = "libbgpstream/ris.rrc06.updates.1427846400.gz"


def decode(path: Path | str, pool: AttributePool | None = None) -> tuple[list, MrtStats]:
    stats = MrtStats()
    events = list(MrtReader(pool if pool is not None else AttributePool(), stats).read(path))
    return events, stats


def norm(events: list) -> list[tuple]:
    """Return comparable events: attributes from different pools compared by value."""
    out = []
    for event in events:
        attributes = getattr(event, "attributes", None)
        fields = tuple(getattr(event, name) for name in event.__slots__ if name != "attributes")
        out.append((type(event).__name__, fields, attributes.to_dict() if attributes else None))
    return out


def counts(stats: MrtStats) -> tuple[int, int, int, int]:
    return stats.announcements, stats.withdrawals, stats.state_changes, stats.rib_entries


def bgpdump_counts(path: Path) -> tuple[int, int, int, int]:
    out = subprocess.run([BGPDUMP, "-m", "-v", str(path)], capture_output=True, text=True, check=False).stdout
    kinds = Counter(line.split("|", 3)[2] for line in out.splitlines())
    return kinds["A"], kinds["W"], kinds["STATE"], kinds["B"]


def mrt_records(path: Path) -> list[tuple[int, bytes]]:
    """Return (offset, record bytes) of every MRT record of a (compressed) file."""
    data = decompressed(path)
    records = []
    pos = 0
    while pos < len(data):
        length = struct.unpack_from("!I", data, pos + 8)[0]
        records.append((pos, data[pos : pos + 12 + length]))
        pos += 12 + length
    return records


def decompressed(path: Path) -> bytes:
    raw = path.read_bytes()
    kind = compression_of(raw)
    if kind == "gzip":
        return gzip.decompress(raw)
    if kind == "bzip2":
        return bz2.decompress(raw)
    return raw


# -- parity with bgpdump -m ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_equal_bgpdump(name: str) -> None:
    path = FIXTURES / name
    events, stats = decode(path)
    assert counts(stats) == EXPECTED[name]
    assert stats.records == sum(stats.records_by_type.values())
    if BGPDUMP is None:
        pytest.skip("bgpdump not installed: compared with the counts recorded in SOURCES.md only")
    assert counts(stats) == bgpdump_counts(path)


def test_events_carry_every_unicast_element() -> None:
    events, stats = decode(FIXTURES / SMALL)
    announced = sum(len(e.prefixes) for e in events if isinstance(e, Announce))
    withdrawn = sum(len(e.prefixes) for e in events if isinstance(e, Withdraw))
    # No multicast, no collector-sent messages here: the events hold every element but
    # the prefixes repeated inside one UPDATE (deduplicated).
    assert announced <= stats.announcements and withdrawn <= stats.withdrawals
    assert announced > 0.95 * stats.announcements
    assert not stats.errors and not stats.unsupported
    assert stats.records_by_type == {"BGP4MP/MESSAGE_AS4": 791, "BGP4MP/STATE_CHANGE_AS4": 4}


# -- decoding details -------------------------------------------------------------------------
def test_ipv6_mp_reach_decoded() -> None:
    events, _ = decode(FIXTURES / SMALL)
    _, key = parse_prefix("2a02:2158::/32")
    first = next(e for e in events if isinstance(e, Announce) and e.family == 6 and key in e.prefixes)
    assert first.peer == "2001:200:0:fe00::6249:0"
    assert first.at == 1427846405.0
    assert first.attributes.as_path == (25152, 2497, 4725, 6939, 13237, 35226)
    assert first.attributes.next_hop == "2001:200:0:fe00::9c1:0"
    assert first.attributes.origin == "igp"


def test_as4_path_merged_into_two_octet_as_path() -> None:
    events, _ = decode(FIXTURES / "bgpdump/updates.20100722.2015.gz")
    _, key = parse_prefix("187.120.32.0/20")
    paths = {
        (e.peer, e.attributes.as_path)
        for e in events
        if isinstance(e, Announce) and key in e.prefixes and e.at == 1279829702
    }
    # The 2-octet MESSAGE carries "34347 1299 2914 4230 23456" + AS4_PATH ending in 262685.
    assert ("193.203.0.124", (34347, 1299, 2914, 4230, 262685)) in paths


def test_extended_timestamp_has_microseconds() -> None:
    events, _ = decode(FIXTURES / "bgpkit-parser/examples-local_only/updates.bz2")
    first = next(e for e in events if isinstance(e, Announce))
    assert first.at == pytest.approx(1726353018.908490, abs=1e-6)
    assert first.peer == "103.151.196.1"
    assert format_prefix(4, first.prefixes[0]) == "103.188.233.0/24"


def test_state_changes_map_to_session_states() -> None:
    events, _ = decode(FIXTURES / "mrtparse/bird-mrtdump_bgp")
    states = [(e.state, e.reason) for e in events if isinstance(e, SessionState)]
    assert ("up", "fsm OpenConfirm->Established") in states
    assert ("down", "fsm Established->Idle") in states
    assert ("connected", "fsm Active->Connect") in states
    # BIRD's steps logged before the address is known (peer 0.0.0.0) count but make no event.
    assert all(e.peer == "192.168.0.10" for e in events if isinstance(e, SessionState))
    assert all(e.peer_as == 65000 for e in events if isinstance(e, SessionState))


def test_addpath_updates_keep_one_route_per_prefix() -> None:
    pool = AttributePool()
    rib = Rib(pool)
    events, stats = decode(FIXTURES / "mrtparse/bird-mrtdump_bgp", pool)
    for event in events:
        rib.apply(event)
    assert stats.announcements == 12
    # Two paths per prefix, the last announced wins; the session came back up with all three.
    table = rib.peers["192.168.0.10"].tables[4]
    assert sorted(format_prefix(4, k) for k in table) == ["172.17.0.0/24", "172.17.1.0/24", "172.17.2.0/24"]
    assert {attrs.med for attrs in table.values()} == {20}


def test_addpath_withdraw_of_one_path_keeps_the_prefix() -> None:
    prefix = bytes([24, 10, 0, 0])
    announce_two = _update(
        attrs=_origin_path_nexthop(4, (65001,)),
        nlri=struct.pack("!I", 1) + prefix + struct.pack("!I", 2) + prefix,
    )
    withdraw_one = _update(withdrawn=struct.pack("!I", 1) + prefix)
    withdraw_other = _update(withdrawn=struct.pack("!I", 2) + prefix)
    data = b"".join(
        _bgp4mp(100 + i, 9, msg) for i, msg in enumerate((announce_two, withdraw_one, withdraw_other))
    )
    events, stats = _decode_bytes(data)
    assert [type(e).__name__ for e in events] == ["Announce", "Withdraw"]
    assert events[1].at == 102.0
    assert stats.withdrawals == 2 and stats.not_emitted["addpath_other_paths_remain"] == 1


def test_rib_dump_ends_with_end_of_rib_per_peer() -> None:
    events, stats = decode(FIXTURES / "bgpdump/bview.ipv4_unicast_add_path.gz")
    announces = [e for e in events if isinstance(e, Announce)]
    eors = [e for e in events if isinstance(e, EndOfRib)]
    assert stats.rib_entries == 62  # 2 entries without attributes included
    # ADD-PATH entries: 31 prefixes, 2 paths each (BIRD's own routes under peer 0.0.0.0).
    assert len({key for a in announces for key in a.prefixes}) == 31
    assert events[-len(eors) :] == eors
    assert {(e.peer, e.family) for e in eors} == {(a.peer, 4) for a in announces}


def test_rib_runs_of_equal_attributes_make_one_announce() -> None:
    pool = AttributePool()
    events, stats = decode(
        FIXTURES / "derived/pyasn-complete-records/rib.20140523.0600_firstMB.complete-records.mrt.gz", pool
    )
    announces = [e for e in events if isinstance(e, Announce)]
    assert sum(len(e.prefixes) for e in announces) == stats.rib_entries == 270005
    assert len(announces) < 0.6 * stats.rib_entries
    rib = Rib(pool)
    for event in events:
        rib.apply(event)
    assert sum(len(peer) for peer in rib.peers.values()) == 270005
    assert len(rib.peers) == 35
    _, key = parse_prefix("1.0.0.0/24")
    assert all(peer.tables[4].get(key) is not None for peer in rib.peers.values() if len(peer) > 9000)


def test_table_dump_v1_ipv6_next_hop() -> None:
    events, _ = decode(FIXTURES / "mrtparse/openbgpd_rib_table")
    v6 = [e for e in events if isinstance(e, Announce) and e.family == 6]
    assert sum(len(e.prefixes) for e in v6) == 20
    assert all(":" in e.attributes.next_hop for e in v6)


def test_large_communities_decoded() -> None:
    events, _ = decode(FIXTURES / "dfz_name_and_shame/rrc23.updates.20220421.0200.gz")
    large = [e for e in events if isinstance(e, Announce) and e.attributes.large_communities]
    assert large
    assert all(len(c) == 3 for e in large for c in e.attributes.large_communities)


def test_attributes_interned_once_per_update() -> None:
    pool = AttributePool()
    events, _ = decode(FIXTURES / SMALL, pool)
    announces = [e for e in events if isinstance(e, Announce)]
    distinct = {id(e.attributes) for e in announces}
    assert len(distinct) < len(announces)
    assert all(e.attributes in pool for e in announces)


def test_mask_trailing_bits_cleared() -> None:
    events, _ = decode(FIXTURES / "bgpdump/updates.nlri_mask_trailing_bits.gz")
    (announce,) = [e for e in events if isinstance(e, Announce)]
    key = announce.prefixes[0]
    assert parse_prefix(format_prefix(4, key)) == (4, key)


def test_unsupported_and_unusable_records_are_counted() -> None:
    _, stats = decode(FIXTURES / "mrtparse/openbgpd_rib_table-mp")
    assert stats.unsupported == {"BGP4MP/ENTRY": 31}
    _, stats = decode(FIXTURES / "pyasn/bview.20140112.1600_3samples.bz2")
    assert stats.errors == {"no_peer_index_table": 3}


def test_multicast_and_local_messages_counted_not_emitted() -> None:
    attrs = _origin_path_nexthop(4, (65001,))
    mp_multicast = _attr(0x80, 14, struct.pack("!HBB4sB", 1, 2, 4, bytes([192, 0, 2, 1]), 0) + bytes([8, 10]))
    data = _bgp4mp(1, 4, _update(attrs=attrs + mp_multicast)) + _bgp4mp(
        2, 7, _update(attrs=attrs, nlri=bytes([8, 11]))
    )
    events, stats = _decode_bytes(data)
    assert events == []
    assert stats.announcements == 2
    assert stats.not_emitted == {"multicast": 1, "local": 1}


def test_as4_path_ignored_when_aggregator_is_a_real_as() -> None:
    as_path = _attr(0x40, 2, bytes([2, 2]) + struct.pack("!HH", 65001, 23456))
    as4_path = _attr(0xC0, 17, bytes([2, 1]) + struct.pack("!I", 400000))
    aggregator = _attr(0xC0, 7, struct.pack("!H4s", 65002, bytes(4)))
    as4_aggregator = _attr(0xC0, 18, struct.pack("!I4s", 400000, bytes(4)))
    base = _attr(0x40, 1, b"\x00") + as_path + _attr(0x40, 3, bytes([192, 0, 2, 1])) + as4_path
    merged, _ = _decode_bytes(_bgp4mp(1, 1, _update(attrs=base, nlri=bytes([8, 10]))))
    assert merged[0].attributes.as_path == (65001, 400000)
    ignored, _ = _decode_bytes(
        _bgp4mp(1, 1, _update(attrs=base + aggregator + as4_aggregator, nlri=bytes([8, 10])))
    )
    assert ignored[0].attributes.as_path == (65001, 23456)


# -- damaged input ------------------------------------------------------------------------------
def test_truncated_copy_stops_with_offset_and_keeps_earlier_records(tmp_path: Path) -> None:
    source = FIXTURES / SMALL
    records = mrt_records(source)
    index = len(records) // 2
    offset, record = records[index]
    data = decompressed(source)[: offset + len(record) // 2]
    for name, payload in (("cut.mrt", data), ("cut.mrt.gz", gzip.compress(data))):
        path = tmp_path / name
        path.write_bytes(payload)
        stats = MrtStats()
        events = []
        with pytest.raises(MrtError) as info:
            for event in MrtReader(AttributePool(), stats).read(path):
                events.append(event)
        error = info.value
        assert (error.reason, error.offset, error.record) == ("truncated", offset, index)
        assert f"record {index} at byte {offset}" in str(error) and str(path) in str(error)
        assert stats.records == index and stats.errors == {"truncated": 1}
        expected, _ = decode(_write(tmp_path / "head.mrt", decompressed(source)[:offset]))
        assert norm(events) == norm(expected)


def test_cut_gzip_stream_keeps_what_was_decompressed(tmp_path: Path) -> None:
    source = FIXTURES / "bgpdump/updates.20100722.2015.gz"
    full, full_stats = decode(source)
    path = _write(tmp_path / "cut.gz", source.read_bytes()[: source.stat().st_size * 2 // 3])
    stats = MrtStats()
    events = []
    with pytest.raises(MrtError) as info:
        for event in MrtReader(AttributePool(), stats).read(path):
            events.append(event)
    assert info.value.reason == "decompression"
    assert 0 < stats.records < full_stats.records
    assert info.value.offset == sum(len(r) for _, r in mrt_records(source)[: stats.records])
    assert norm(events) == norm(full[: len(events)]) and len(events) > len(full) // 3


def test_corrupt_gzip_data_stops_with_error(tmp_path: Path) -> None:
    source = FIXTURES / "bgpdump/updates.20100722.2015.gz"
    raw = bytearray(source.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = bytes(64)
    stats = MrtStats()
    with pytest.raises(MrtError) as info:
        for _ in MrtReader(AttributePool(), stats).read(_write(tmp_path / "bad.gz", bytes(raw))):
            pass
    assert info.value.reason == "decompression"
    assert stats.records > 0 and stats.errors["decompression"] == 1


def test_corrupt_record_body_is_skipped_and_the_rest_read(tmp_path: Path) -> None:
    source = FIXTURES / SMALL
    records = mrt_records(source)
    # An IPv4-session UPDATE: type 16/4, AFI 1, BGP message type 2 after the 20-byte header.
    index = next(
        i
        for i, (_, r) in enumerate(records)
        if r[4:8] == b"\x00\x10\x00\x04" and r[22:24] == b"\x00\x01" and r[50] == 2
    )
    data = bytearray(decompressed(source))
    offset, record = records[index]
    marker_at = offset + 12 + 20  # after the AS4 BGP4MP header of an IPv4 session
    assert data[marker_at : marker_at + 16] == b"\xff" * 16
    data[marker_at : marker_at + 16] = bytes(16)
    events, stats = decode(_write(tmp_path / "corrupt.mrt", bytes(data)))
    full, full_stats = decode(source)
    assert stats.errors == {"bad_marker": 1} and stats.records == full_stats.records
    assert f"record {index} at byte {offset}" in stats.error_samples[0]
    assert 0 < len(full) - len(events) <= 2


def test_corrupt_record_length_stops_the_file(tmp_path: Path) -> None:
    source = FIXTURES / SMALL
    records = mrt_records(source)
    index = 100
    offset, _ = records[index]
    data = bytearray(decompressed(source))
    data[offset + 8 : offset + 12] = struct.pack("!I", 0x7FFFFFFF)
    stats = MrtStats()
    events = []
    with pytest.raises(MrtError) as info:
        for event in MrtReader(AttributePool(), stats).read(_write(tmp_path / "len.mrt", bytes(data))):
            events.append(event)
    assert (info.value.reason, info.value.offset, info.value.record) == ("bad_record_length", offset, index)
    assert stats.records == index and events
    expected, _ = decode(_write(tmp_path / "head.mrt", decompressed(source)[:offset]))
    assert norm(events) == norm(expected)


# -- compression and format detection ----------------------------------------------------------
def test_compression_found_from_magic_bytes_not_name(tmp_path: Path) -> None:
    data = decompressed(FIXTURES / SMALL)
    variants = {
        "plain.gz": data,
        "gzip.txt": gzip.compress(data),
        "bzip2": bz2.compress(data),
        "xz.mrt": lzma.compress(data),
        "two-members.gz": gzip.compress(data[:5000]) + gzip.compress(data[5000:]),
    }
    for name, payload in variants.items():
        _, stats = decode(_write(tmp_path / name, payload))
        assert counts(stats) == EXPECTED[SMALL], name
        assert not stats.errors, name


def test_read_mrt_function() -> None:
    events = list(read_mrt(FIXTURES / "mrtparse/quagga_rib"))
    assert sum(len(e.prefixes) for e in events if isinstance(e, Announce)) == 9


# -- replay input -------------------------------------------------------------------------------
def test_detect_format(tmp_path: Path) -> None:
    json_line = b'{"exabgp": "5.0.15", "time": 1.0, "type": "signal"}\n'
    assert detect_format(_write(tmp_path / "a.gz", gzip.compress(b"\n  " + json_line))) == EXABGP_JSON
    assert detect_format(FIXTURES / SMALL) == MRT
    assert detect_format(FIXTURES / "mrtparse/quagga_bgp") == MRT


def test_open_recording_counts_like_bgpdump() -> None:
    stats = ReplayStats()
    events = list(open_recording(FIXTURES / "bgpdump/updates.20100722.2015.gz", AttributePool(), stats))
    assert (stats.announcements, stats.withdrawals, stats.state_changes) == (5067, 547, 40)
    assert stats.formats == {MRT: 1} and stats.events == len(events)
    data = stats.to_dict()
    assert {"announcements", "withdrawals", "state_changes", "rib_entries", "seconds", "errors"} <= set(data)


def test_open_recording_reads_exabgp_json(tmp_path: Path) -> None:
    lines = [
        b'{"exabgp": "5.0.15", "time": 10.5, "host": "h", "pid": 1, "ppid": 1, "counter": 1, "type": "update",'
        b' "neighbor": {"address": {"local": "192.0.2.254", "peer": "192.0.2.2"},'
        b' "asn": {"local": 65000, "peer": 65001}, "direction": "receive", "message": {"update": {'
        b'"attribute": {"origin": "igp", "as-path": [65001]},'
        b' "announce": {"ipv4 unicast": {"192.0.2.2": [{"nlri": "203.0.113.0/26"}, {"nlri": "203.0.113.64/26"}]}}}}}}',
        b"not json",
        b"",
    ]
    path = _write(tmp_path / "rec.jsonl.bz2", bz2.compress(b"\n".join(lines) + b"\n"))
    stats = ReplayStats()
    events = list(open_recording(path, AttributePool(), stats))
    assert len(events) == 1 and isinstance(events[0], Announce)
    assert stats.announcements == 2 and stats.lines == 2
    assert stats.errors == {"invalid_json": 1}
    assert stats.formats == {EXABGP_JSON: 1}


def test_replay_files_goes_on_after_a_broken_file(tmp_path: Path) -> None:
    broken = _write(tmp_path / "broken.gz", (FIXTURES / SMALL).read_bytes()[:4000])
    stats = ReplayStats()
    events = list(replay_files([broken, FIXTURES / "mrtparse/quagga_rib", tmp_path / "missing"], stats=stats))
    assert sum(len(e.prefixes) for e in events if isinstance(e, Announce)) > 9
    assert stats.errors["decompression"] == 1 and stats.errors["io"] == 1
    assert stats.rib_entries == 9 and stats.seconds > 0


# -- the GC threshold raised while a file is read, restored after ------------------------------
def test_gc_threshold_raised_while_reading_and_restored_after(tmp_path: Path) -> None:
    import gc

    before = gc.get_threshold()
    seen = [gc.get_threshold()[0] for _ in MrtReader(AttributePool()).read(FIXTURES / "mrtparse/quagga_rib")]
    assert seen and min(seen) >= 100_000 and gc.get_threshold() == before and gc.isenabled()
    data = decompressed(FIXTURES / SMALL)
    with pytest.raises(MrtError):
        for _ in MrtReader(AttributePool()).read(_write(tmp_path / "cut.mrt", data[: len(data) // 2])):
            pass
    assert gc.get_threshold() == before
    events = MrtReader(AttributePool()).read(FIXTURES / SMALL)
    next(events)
    events.close()  # a consumer that stops early
    assert gc.get_threshold() == before
    events = MrtReader(AttributePool()).read(FIXTURES / SMALL)
    next(events)
    del events  # or drops the generator
    assert gc.get_threshold() == before


def test_gc_threshold_restored_when_the_last_of_interleaved_readers_ends() -> None:
    import gc

    before = gc.get_threshold()
    first = MrtReader(AttributePool()).read(FIXTURES / SMALL)
    second = MrtReader(AttributePool()).read(FIXTURES / "mrtparse/quagga_rib")
    next(first)
    list(second)
    assert gc.get_threshold()[0] >= 100_000  # the first reader is still reading
    list(first)
    assert gc.get_threshold() == before
    events = MrtReader(AttributePool()).read(FIXTURES / SMALL)
    next(events)
    gc.set_threshold(5000, 20, 20)  # someone else's choice meanwhile stays
    try:
        list(events)
        assert gc.get_threshold() == (5000, 20, 20)
    finally:
        gc.set_threshold(*before)


def test_reader_is_freed_without_the_cyclic_gc() -> None:
    import gc
    import weakref

    reader = MrtReader(AttributePool())
    list(reader.read(FIXTURES / "mrtparse/quagga_rib"))
    ref = weakref.ref(reader)
    gc.disable()
    try:
        del reader
        assert ref() is None
    finally:
        gc.enable()


def test_attributes_are_pooled_when_their_event_reaches_a_rib() -> None:
    # Each record is decoded after the consumer took the events before it: a set the RIB released
    # meanwhile is interned anew, never handed out stale (identity is equality in the pool).
    pool = AttributePool()
    rib = Rib(pool)
    stale = 0
    for event in MrtReader(pool).read(FIXTURES / SMALL):
        if isinstance(event, Announce) and event.attributes not in pool:
            stale += 1
        rib.apply(event)
    assert stale == 0


def test_events_of_a_broken_file_are_the_same_as_one_record_at_a_time(tmp_path: Path) -> None:
    source = FIXTURES / "bgpdump/updates.20100722.2015.gz"
    data = decompressed(source)
    offset = mrt_records(source)[len(mrt_records(source)) // 2 + 7][0]
    head, _ = decode(_write(tmp_path / "head.mrt", data[:offset]))
    path = _write(tmp_path / "cut.mrt", data[: offset + 5])
    events = []
    with pytest.raises(MrtError):
        for event in MrtReader(AttributePool()).read(path):
            events.append(event)
    assert len(events) > 500 and norm(events) == norm(head)


# -- helpers: synthetic BGP4MP records ---------------------------------------------------------
def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _decode_bytes(data: bytes) -> tuple[list, MrtStats]:
    stats = MrtStats()
    reader = MrtReader(AttributePool(), stats)
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".mrt") as handle:
        handle.write(data)
        handle.flush()
        return list(reader.read(handle.name)), stats


def _attr(flags: int, code: int, value: bytes) -> bytes:
    return bytes([flags, code, len(value)]) + value


def _origin_path_nexthop(asn_len: int, path: tuple[int, ...]) -> bytes:
    fmt = "!%d%s" % (len(path), "H" if asn_len == 2 else "I")  # noqa: UP031
    return (
        _attr(0x40, 1, b"\x00")
        + _attr(0x40, 2, bytes([2, len(path)]) + struct.pack(fmt, *path))
        + _attr(0x40, 3, bytes([192, 0, 2, 1]))
    )


def _update(withdrawn: bytes = b"", attrs: bytes = b"", nlri: bytes = b"") -> bytes:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body


def _bgp4mp(ts: int, subtype: int, message: bytes) -> bytes:
    as4 = subtype in (4, 5, 7, 9, 11)
    ases = struct.pack("!II", 65001, 65000) if as4 else struct.pack("!HH", 65001, 65000)
    body = ases + struct.pack("!HH", 0, 1) + bytes([192, 0, 2, 2, 192, 0, 2, 254]) + message
    return struct.pack("!IHHI", ts, 16, subtype, len(body)) + body
