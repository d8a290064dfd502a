"""RIS Live frames into events: the real libbgpstream sample, shapes of the format, replay of recordings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgpwatch.cli import main
from bgpwatch.events import CONNECTED, DOWN, UP, Announce, SessionState, Withdraw
from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.ingest.replay import EXABGP_JSON, RIS_LIVE, ReplayStats, detect_format, open_recording
from bgpwatch.ingest.rislive import REASONS, RisLiveParser
from bgpwatch.rib.attributes import AttributePool
from bgpwatch.rib.prefix import parse_prefix

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "fixtures" / "rislive" / "ris-live-stream.json"
CONFIG = ROOT / "bgpwatch" / "data" / "paris.yaml"


def frame(kind: str = "UPDATE", **data) -> bytes:
    body = {
        "timestamp": 1700000000.5,
        "peer": "192.0.2.1",
        "peer_asn": "64500",
        "host": "rrc00",
        "type": kind,
    }
    body.update(data)
    return json.dumps({"type": "ris_message", "data": body}).encode()


def key(prefix: str) -> int:
    return parse_prefix(prefix)[1]


# -- the real sample (CAIDA libbgpstream test, captured 2019-03-26) ------------------------------


def test_sample_is_detected_as_ris_live() -> None:
    assert detect_format(SAMPLE) == RIS_LIVE


def test_sample_events_are_the_update_and_the_peer_down() -> None:
    pool = AttributePool()
    events = list(open_recording(SAMPLE, pool, ReplayStats()))
    assert len(events) == 2
    announce, down = events
    assert type(announce) is Announce
    assert (announce.at, announce.peer, announce.family) == (1553627987.89, "72.22.223.9", 4)
    assert announce.prefixes == (key("45.161.192.0/23"),)
    attrs = announce.attributes
    assert attrs.as_path == (
        11708,
        32097,
        1299,
        52320,
        263009,
        263009,
        263009,
        263009,
        263009,
        52993,
        268481,
        268481,
    )
    assert attrs.as_set == ()
    assert attrs.origin == "igp"
    assert attrs.next_hop == "72.22.223.9"
    assert attrs.communities == ()
    assert attrs.origin_as == 268481
    assert down == SessionState(1553625081.88, "195.66.224.59", DOWN, "ris-live rrc01 down", 24931)


def test_sample_stats_count_the_error_frame_and_the_truncated_line() -> None:
    stats = ReplayStats()
    list(open_recording(SAMPLE, AttributePool(), stats))
    assert stats.lines == 7
    assert (stats.announcements, stats.withdrawals, stats.state_changes, stats.events) == (1, 0, 1, 2)
    assert dict(stats.errors) == {"ris_error": 1, "invalid_json": 1}
    assert dict(stats.not_emitted) == {
        "ris_live_OPEN": 1,
        "ris_live_NOTIFICATION": 1,
        "ris_live_KEEPALIVE": 1,
    }
    assert stats.formats == {RIS_LIVE: 1}
    (error_frame,) = [s for s in stats.error_samples if "ris_error" in s]
    assert f"{SAMPLE}: line 3: " in error_frame and "this is a test error message" in error_frame
    (truncated,) = [s for s in stats.error_samples if "invalid_json" in s]
    assert f"{SAMPLE}: line 7: invalid_json" in truncated
    assert stats.input_bytes == SAMPLE.stat().st_size


def test_compressed_recording_reads_the_same(tmp_path: Path) -> None:
    packed = tmp_path / "rec.gz"
    packed.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    assert detect_format(packed) == RIS_LIVE
    stats = ReplayStats()
    events = list(open_recording(packed, AttributePool(), stats))
    assert [type(e) for e in events] == [Announce, SessionState]
    assert stats.input_bytes == packed.stat().st_size
    assert stats.bytes == SAMPLE.stat().st_size


def test_detection_of_a_first_frame_longer_than_the_sniffed_bytes(tmp_path: Path) -> None:
    prefixes = [f"10.{i // 256}.{i % 256}.0/24" for i in range(600)]  # a ~10 KiB first line
    path = tmp_path / "big.jsonl"
    path.write_bytes(frame(announcements=[{"next_hop": "192.0.2.1", "prefixes": prefixes}]) + b"\n")
    assert detect_format(path) == RIS_LIVE
    (event,) = list(open_recording(path))
    assert len(event.prefixes) == 600


def test_exabgp_lines_are_not_taken_for_ris_live(tmp_path: Path) -> None:
    path = tmp_path / "exa.jsonl"
    path.write_text('{"exabgp": "5.0.0", "time": 1.0, "type": "state", "neighbor": {}}\n')
    assert detect_format(path) == EXABGP_JSON


def test_replay_command_reads_a_ris_live_recording() -> None:
    result = CliRunner().invoke(main, ["replay", "--config", str(CONFIG), str(SAMPLE), "--stats"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stderr.strip().splitlines()[-1])
    assert stats["formats"] == {"ris-live": 1}
    assert (stats["announcements"], stats["state_changes"]) == (1, 1)
    assert stats["errors"] == {"ris_error": 1, "invalid_json": 1}


# -- shapes of the format --------------------------------------------------------------------


def test_withdrawals_come_first_then_one_announce_per_family_and_next_hop() -> None:
    parser = RisLiveParser(AttributePool())
    events = parser.parse(
        frame(
            path=[64500, 64501, [64510, 64511]],
            community=[[64500, 1], [64500, 2]],
            origin="IGP",
            med=50,
            announcements=[
                {"next_hop": "192.0.2.1", "prefixes": ["198.51.100.0/24", "203.0.113.0/24"]},
                {"next_hop": "2001:db8::1,fe80::1", "prefixes": ["2001:db8:1::/48"]},
            ],
            withdrawals=["198.51.100.128/25", "2001:db8:2::/48"],
        )
    )
    assert [type(e) for e in events] == [Withdraw, Withdraw, Announce, Announce]
    assert events[0].family == 4 and events[0].prefixes == (key("198.51.100.128/25"),)
    assert events[1].family == 6 and events[1].prefixes == (key("2001:db8:2::/48"),)
    v4, v6 = events[2], events[3]
    assert v4.prefixes == (key("198.51.100.0/24"), key("203.0.113.0/24"))
    assert v4.attributes.as_path == (64500, 64501)
    assert v4.attributes.as_set == (64510, 64511)
    assert v4.attributes.communities == ((64500, 1), (64500, 2))
    assert (v4.attributes.origin, v4.attributes.med, v4.attributes.next_hop) == ("igp", 50, "192.0.2.1")
    assert v6.family == 6 and v6.attributes.next_hop == "2001:db8::1"  # the link-local half dropped
    assert all(e.peer == "192.0.2.1" and e.at == 1700000000.5 for e in events)


def test_equal_attributes_are_shared_and_prefixes_deduplicated() -> None:
    pool = AttributePool()
    parser = RisLiveParser(pool)
    one = {
        "path": [64500],
        "announcements": [{"next_hop": "192.0.2.1", "prefixes": ["10.0.0.0/8", "10.0.0.0/8"]}],
    }
    (first,) = parser.parse(frame(**one))
    (second,) = parser.parse(frame(**one))
    assert first.prefixes == (key("10.0.0.0/8"),)
    assert first.attributes is second.attributes
    assert first.attributes.origin == "incomplete"  # no origin in the frame


@pytest.mark.parametrize(("state", "expected"), [("connected", CONNECTED), ("up", UP), ("down", DOWN)])
def test_peer_states(state: str, expected: str) -> None:
    (event,) = RisLiveParser(AttributePool()).parse(
        frame("RIS_PEER_STATE", state=state, peer="2001:DB8::0:1")
    )
    assert event == SessionState(1700000000.5, "2001:db8::1", expected, f"ris-live rrc00 {state}", 64500)


def test_server_frames_and_other_messages_are_counted_not_errors() -> None:
    parser = RisLiveParser(AttributePool())
    assert parser.parse(b'{"type": "ris_subscribe_ok", "data": {}}') == []
    assert parser.parse(b'{"type": "pong", "data": null}') == []
    assert parser.parse(frame("KEEPALIVE")) == []
    assert parser.parse(frame("UPDATE")) == []  # neither announcements nor withdrawals
    assert dict(parser.ignored) == {"ris_subscribe_ok": 1, "pong": 1, "KEEPALIVE": 1, "empty_update": 1}
    assert not parser.errors


@pytest.mark.parametrize(
    ("line", "reason", "in_detail"),
    [
        (b'{"type": "ris_message", "data": {"type": "UP', "invalid_json", ""),
        (b"   ", "invalid_json", "empty line"),
        (b"[1, 2]", "not_an_object", "list"),
        (b'{"type": "ris_message", "data": 3}', "not_an_object", "data"),
        (b'{"type": "ris_hello", "data": {}}', "unknown_type", "ris_hello"),
        (b'{"type": "ris_error", "data": {"message": "slow client"}}', "ris_error", "slow client"),
        (frame("ROUTE-REFRESH"), "unknown_type", "data.type"),
        (frame(timestamp=None), "missing_field", "data.timestamp"),
        (frame(peer="not-an-ip"), "bad_field", "data.peer"),
        (frame(peer_asn="AS1"), "bad_field", "data.peer_asn"),
        (frame("RIS_PEER_STATE", state="established"), "bad_field", "data.state"),
        (frame(withdrawals=["10.0.0.0/33"]), "bad_prefix", "data.withdrawals"),
        (frame(announcements=[{"next_hop": "x", "prefixes": ["10.0.0.0/8"]}]), "bad_next_hop", "next_hop"),
        (
            frame(path=[1, "2"], announcements=[{"next_hop": "192.0.2.1", "prefixes": ["10/8"]}]),
            "bad_prefix",
            "",
        ),
        (
            frame(path=[1, "2"], announcements=[{"next_hop": "192.0.2.1", "prefixes": ["10.0.0.0/8"]}]),
            "bad_attribute",
            "path",
        ),
        (
            frame(
                community=[[1, 70000]], announcements=[{"next_hop": "192.0.2.1", "prefixes": ["10.0.0.0/8"]}]
            ),
            "bad_attribute",
            "community",
        ),
        (
            frame(origin="bgp", announcements=[{"next_hop": "192.0.2.1", "prefixes": ["10.0.0.0/8"]}]),
            "bad_attribute",
            "origin",
        ),
    ],
)
def test_invalid_frames_raise_with_a_reason(line: bytes, reason: str, in_detail: str) -> None:
    pool = AttributePool()
    parser = RisLiveParser(pool)
    with pytest.raises(IngestError) as caught:
        parser.parse(line)
    assert caught.value.reason == reason
    assert reason in REASONS
    assert in_detail in caught.value.detail
    assert parser.errors == {reason: 1}
    assert len(pool) == 0  # a rejected frame leaves nothing behind


def test_line_too_long_is_refused_before_decoding() -> None:
    parser = RisLiveParser(AttributePool(), max_line_bytes=100)
    with pytest.raises(IngestError) as caught:
        parser.parse(b"{" + b" " * 200 + b"}")
    assert caught.value.reason == "line_too_long"
