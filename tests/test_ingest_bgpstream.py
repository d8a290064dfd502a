"""The BGPStream adapter, tested on the mapping only.

libbgpstream/pybgpstream cannot be installed on this machine, so nothing here runs against a live
BGPStream: ``Elem`` below is a minimal stand-in for pybgpstream's element object (the attributes
the adapter reads, with the value shapes libbgpstream prints), and ``fake_pybgpstream`` stands
in for the module to check how the stream is configured (broker URL, singlefile), how elements
are counted and how a stream that cannot start is reported.  The fake only tests the code around
pybgpstream.  What runs for real: the missing-module lines (a subprocess with this virtualenv's
Python, where pybgpstream really is missing) and, where pybgpstream is installed, a broker at a
closed loopback port and libbgpstream's own test MRT file through ``singlefile`` (skipped here).
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bgpwatch.cli import main
from bgpwatch.events import CONNECTED, DOWN, UP, Announce, SessionState, Withdraw
from bgpwatch.ingest.bgpstream import (
    EXTENDED,
    BGPStreamError,
    BGPStreamUnavailable,
    bgpstream_events,
    element_to_events,
    filter_string,
    parse_as_path,
    parse_communities,
    require_pybgpstream,
)
from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.ingest.replay import ReplayStats
from bgpwatch.rib.attributes import AttributePool
from bgpwatch.rib.prefix import parse_prefix

CONFIG = Path(__file__).resolve().parent.parent / "bgpwatch" / "data" / "paris.yaml"
# libbgpstream's own test file (fixtures/SOURCES.md): RIS rrc06 updates, 2015-04-01 00:00-00:05.
MRT = (
    Path(__file__).resolve().parent.parent
    / "fixtures"
    / "mrt"
    / "libbgpstream"
    / "ris.rrc06.updates.1427846400.gz"
)
HAVE_PYBGPSTREAM = importlib.util.find_spec("pybgpstream") is not None


@dataclass
class Elem:
    """Stand-in for pybgpstream's BGPElem (test only): type, time, peer, peer ASN, fields."""

    type: str
    time: float = 1427846404.0
    peer_address: str = "202.249.2.185"
    peer_asn: int = 25152
    fields: dict[str, Any] = field(default_factory=dict)
    collector: str = "rrc06"


def announce(prefix: str = "193.0.0.0/21", path: str = "25152 3333", **extra: Any) -> Elem:
    fields = {"prefix": prefix, "next-hop": "202.249.2.185", "as-path": path, "communities": set()}
    fields.update(extra)
    return Elem("A", fields=fields)


def key(prefix: str) -> int:
    return parse_prefix(prefix)[1]


# -- element_to_events -------------------------------------------------------------------------


def test_announcement_becomes_one_announce_of_one_prefix() -> None:
    pool = AttributePool()
    elem = announce(path="25152 2914 {64512,3333}", communities={"2914:420", "2914:1008", "25152:1"})
    (event,) = element_to_events(elem, pool)
    assert type(event) is Announce
    assert (event.at, event.peer, event.family, event.prefixes) == (
        1427846404.0,
        "202.249.2.185",
        4,
        (key("193.0.0.0/21"),),
    )
    attrs = event.attributes
    assert attrs.as_path == (25152, 2914)
    assert attrs.as_set == (64512, 3333)
    assert attrs.communities == ((2914, 420), (2914, 1008), (25152, 1))  # the set, sorted
    assert (attrs.origin, attrs.next_hop, attrs.med, attrs.local_pref) == (
        "incomplete",
        "202.249.2.185",
        None,
        None,
    )


def test_one_element_per_prefix_shares_interned_attributes() -> None:
    pool = AttributePool()
    (a,) = element_to_events(announce("193.0.0.0/21", communities={"1:1", "1:2"}), pool)
    (b,) = element_to_events(announce("193.0.8.0/23", communities=["1:2", "1:1"]), pool)
    assert a.prefixes != b.prefixes
    assert a.attributes is b.attributes
    assert len(pool) == 1


def test_ipv6_rib_entry_with_canonical_addresses() -> None:
    elem = Elem(
        "R",
        peer_address="2001:DB8:0::1",
        fields={
            "prefix": "2001:db8:100::/40",
            "next-hop": "2001:DB8::1",
            "as-path": "64500",
            "communities": [],
        },
    )
    (event,) = element_to_events(elem, AttributePool())
    assert type(event) is Announce
    assert (event.peer, event.family, event.attributes.next_hop) == ("2001:db8::1", 6, "2001:db8::1")


def test_withdrawal() -> None:
    (event,) = element_to_events(Elem("W", fields={"prefix": "10.1.0.0/16"}), AttributePool())
    assert event == Withdraw(1427846404.0, "202.249.2.185", 4, (key("10.1.0.0/16"),))


@pytest.mark.parametrize(
    ("old", "new", "state"),
    [
        ("OPENCONFIRM", "ESTABLISHED", UP),
        ("ESTABLISHED", "IDLE", DOWN),
        ("ESTABLISHED", "ACTIVE", DOWN),
        ("ACTIVE", "IDLE", DOWN),
        ("ACTIVE", "CONNECT", CONNECTED),
        ("IDLE", "CLEARING", DOWN),
    ],
)
def test_peer_state(old: str, new: str, state: str) -> None:
    elem = Elem("S", fields={"old-state": old, "new-state": new})
    (event,) = element_to_events(elem, AttributePool())
    assert event == SessionState(1427846404.0, "202.249.2.185", state, f"bgpstream {old}->{new}", 25152)


def test_unknown_element_type_makes_no_event() -> None:
    assert element_to_events(Elem("", fields={}), AttributePool()) == []


def test_as_path_segments() -> None:
    assert parse_as_path("") == ((), ())
    assert parse_as_path("3333") == ((3333,), ())
    assert parse_as_path("65000 (65001 65002) [65003,65004] 3356 {1,2}") == ((65000, 3356), (1, 2))
    assert parse_as_path("1 4294967295 {7}") == ((1, 4294967295), (7,))


@pytest.mark.parametrize("text", ["1 x 2", "1 {2,a}", "1 4294967296", "1 {2", "AS1"])
def test_bad_as_path(text: str) -> None:
    with pytest.raises(IngestError) as caught:
        parse_as_path(text)
    assert caught.value.reason == "bad_attribute"


def test_community_shapes_of_pybgpstream_versions() -> None:
    assert parse_communities({"1:2", "1:1"}) == (((1, 1), (1, 2)), ())
    assert parse_communities([{"asn": 3356, "value": 3}, {"asn": 174, "value": 21000}]) == (
        ((174, 21000), (3356, 3)),
        (),
    )
    assert parse_communities("11666:1000 3356:3") == (((3356, 3), (11666, 1000)), ())
    assert parse_communities(["206924:1:2", "1:1"]) == (((1, 1),), ((206924, 1, 2),))
    assert parse_communities(None) == ((), ())


@pytest.mark.parametrize("value", [["1"], ["1:x"], ["70000:1"], [3]])
def test_bad_communities(value: Any) -> None:
    with pytest.raises(IngestError) as caught:
        parse_communities(value)
    assert caught.value.reason == "bad_attribute"


@pytest.mark.parametrize(
    ("elem", "reason"),
    [
        (announce(prefix="10.0.0.0/33"), "bad_prefix"),
        (Elem("W", fields={}), "bad_prefix"),
        (announce(**{"next-hop": "nowhere"}), "bad_next_hop"),
        (Elem("W", peer_address="bogus", fields={"prefix": "10.0.0.0/8"}), "bad_field"),
        (announce(path="1 two"), "bad_attribute"),
    ],
)
def test_invalid_elements_raise(elem: Elem, reason: str) -> None:
    pool = AttributePool()
    with pytest.raises(IngestError) as caught:
        element_to_events(elem, pool)
    assert caught.value.reason == reason
    assert len(pool) == 0


# -- bgpstream_events with a stand-in module ----------------------------------------------------


@pytest.fixture
def fake_pybgpstream(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Install a stand-in ``pybgpstream`` module whose BGPStream yields ``state.elems``."""
    state = types.SimpleNamespace(kwargs=None, elems=[], options=[], fail_start=None, fail_after=None)

    class BGPStream:
        def __init__(self, **kwargs: Any) -> None:
            state.kwargs = kwargs

        def set_data_interface_option(self, interface: str, option: str, value: str) -> None:
            state.options.append((interface, option, value))

        def __iter__(self):
            # As pybgpstream: the stream starts (libbgpstream asks the broker) at the first element.
            if state.fail_start is not None:
                raise RuntimeError(state.fail_start)
            for index, elem in enumerate(state.elems):
                if index == state.fail_after:
                    raise RuntimeError("Could not get next record (is the stream started?)")
                yield elem

    module = types.ModuleType("pybgpstream")
    module.BGPStream = BGPStream  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pybgpstream", module)
    return state


def test_stream_configuration_and_counts(fake_pybgpstream: types.SimpleNamespace) -> None:
    fake_pybgpstream.elems = [
        Elem("S", fields={"old-state": "OPENCONFIRM", "new-state": "ESTABLISHED"}),
        announce("193.0.0.0/21"),
        announce("193.0.8.0/23"),
        announce("193.0.16.0/33"),  # skipped, counted as an error
        Elem("W", fields={"prefix": "193.0.8.0/23"}),
        Elem("X", fields={}),
    ]
    stats = ReplayStats()
    events = list(
        bgpstream_events(
            ["rrc06", "route-views.jinx"],
            1427846400,
            1427846700.9,
            ["193.0.0.0/16", "2001:db8::/32"],
            stats=stats,
        )
    )
    assert fake_pybgpstream.kwargs == {
        "from_time": 1427846400,
        "until_time": 1427846701,  # rounded up: the window is never cut short
        "collectors": ["rrc06", "route-views.jinx"],
        "record_type": "updates",
        "filter": "prefix more 193.0.0.0/16 and prefix more 2001:db8::/32",
    }
    assert [type(e) for e in events] == [SessionState, Announce, Announce, Withdraw]
    # The element that could not be mapped is in errors only, not in announcements.
    assert (stats.announcements, stats.withdrawals, stats.state_changes, stats.events) == (2, 1, 1, 4)
    assert stats.records == 6
    assert dict(stats.errors) == {"bad_prefix": 1}
    assert stats.not_emitted == {"bgpstream_type_X": 1}
    assert stats.formats == {"bgpstream": 1}
    assert "bgpstream rrc06: " in stats.error_samples[0]


def test_ribs_are_counted_as_rib_entries(fake_pybgpstream: types.SimpleNamespace) -> None:
    fake_pybgpstream.elems = [
        Elem("R", fields={"prefix": "10.0.0.0/8", "next-hop": "192.0.2.1", "as-path": "1"})
    ]
    stats = ReplayStats()
    (event,) = bgpstream_events(["rrc00"], 0, 1, record_type="ribs", stats=stats)
    assert type(event) is Announce
    assert (stats.rib_entries, stats.announcements) == (1, 0)
    assert fake_pybgpstream.kwargs["record_type"] == "ribs"
    assert fake_pybgpstream.kwargs["filter"] is None


def test_bad_arguments_are_refused(fake_pybgpstream: types.SimpleNamespace) -> None:
    with pytest.raises(ValueError, match="record type"):
        next(bgpstream_events(["rrc00"], 0, 1, record_type="rib"))
    with pytest.raises(ValueError, match="before it starts"):
        next(bgpstream_events(["rrc00"], 10, 1))


def test_filter_string() -> None:
    assert filter_string(None) is None
    assert filter_string(["10.0.0.0/8"]) == "prefix more 10.0.0.0/8"


def test_missing_pybgpstream_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pybgpstream", None)  # makes `import pybgpstream` fail
    with pytest.raises(BGPStreamUnavailable) as caught:
        require_pybgpstream()
    message = str(caught.value)
    assert "libbgpstream" in message and "pip install pybgpstream" in message
    with pytest.raises(BGPStreamUnavailable):
        next(bgpstream_events(["rrc00"], 0, 1))


# -- bgpwatch replay --bgpstream -----------------------------------------------------------------


def replay(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", "--config", str(CONFIG), *args])


def test_replay_bgpstream_runs_the_pipeline(fake_pybgpstream: types.SimpleNamespace) -> None:
    fake_pybgpstream.elems = [announce("193.0.0.0/21"), Elem("W", fields={"prefix": "193.0.0.0/21"})]
    result = replay(
        "--bgpstream", "--collector", "rrc06", "--start", "2015-04-01T00:00:00Z", "--end", "1427846700",
        "--prefix", "193.0.0.0/16", "--type", "updates", "--stats",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stderr.strip().splitlines()[-1])
    assert (stats["announcements"], stats["withdrawals"], stats["formats"]) == (1, 1, {"bgpstream": 1})
    assert fake_pybgpstream.kwargs["from_time"] == 1427846400  # 2015-04-01T00:00:00Z
    assert fake_pybgpstream.kwargs["until_time"] == 1427846700
    assert "\r" not in result.stderr  # no progress line for a stream


def test_replay_bgpstream_naive_iso_time_is_utc(fake_pybgpstream: types.SimpleNamespace) -> None:
    result = replay(
        "--bgpstream",
        "--collector",
        "rrc06",
        "--start",
        "2015-04-01 00:00",
        "--end",
        "2015-04-01T01:00+01:00",
    )
    assert result.exit_code == 0, result.output
    assert (fake_pybgpstream.kwargs["from_time"], fake_pybgpstream.kwargs["until_time"]) == (
        1427846400,
        1427846400,
    )


def test_replay_bgpstream_without_pybgpstream_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pybgpstream", None)
    result = replay("--bgpstream", "--collector", "rrc00", "--start", "0", "--end", "60")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bgpwatch replay: pybgpstream is not installed")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give FILE"),
        (
            (str(CONFIG), "--bgpstream", "--collector", "rrc00", "--start", "0", "--end", "1"),
            "mutually exclusive",
        ),
        (("--bgpstream", "--start", "0", "--end", "1"), "--bgpstream needs --collector"),
        (("--bgpstream", "--collector", "rrc00"), "--bgpstream needs --start, --end"),
        (
            (str(CONFIG), "--collector", "rrc00", "--type", "ribs"),
            "--collector, --type only go with --bgpstream",
        ),
        (("--bgpstream", "--collector", "rrc00", "--start", "yesterday", "--end", "1"), "ISO-8601"),
        (("--bgpstream", "--collector", "rrc00", "--start", "100", "--end", "1"), "ends before it starts"),
        (
            ("--bgpstream", "--collector", "rrc00", "--start", "0", "--end", "1", "--prefix", "10.0.0.0/40"),
            "--prefix",
        ),
        (("--bgpstream", "--collector", "rrc00", "--start", "0", "--end", "1", "--type", "rib"), "--type"),
    ],
)
def test_replay_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = replay(*args)
    assert result.exit_code == 2
    assert message in result.stderr


# -- extended communities -----------------------------------------------------------------------


def test_extended_communities_are_accepted_ignored_and_counted() -> None:
    counts: Counter[str] = Counter()
    value = ["0:2:24482:00000136", "1:1", "0:3:192.0.2.1:0000000a", "206924:1:2"]
    assert parse_communities(value, counts) == (((1, 1),), ((206924, 1, 2),))
    assert counts == {EXTENDED: 2}
    assert parse_communities(["0:2:24482:00000136"]) == ((), ())  # no counter: still accepted


@pytest.mark.parametrize("text", ["300:2:24482:1", "0:2:24482:zz", "0:2::1", "0:2:1:2:3"])
def test_bad_extended_communities(text: str) -> None:
    counts: Counter[str] = Counter()
    with pytest.raises(IngestError):
        parse_communities([text, "0:2:24482:00000136"], counts)
    assert counts == {}  # a rejected list counts nothing


def test_element_with_extended_communities_is_announced(fake_pybgpstream: types.SimpleNamespace) -> None:
    fake_pybgpstream.elems = [announce(communities={"0:2:24482:00000136", "24482:1", "0:2:24482:00000137"})]
    stats = ReplayStats()
    (event,) = bgpstream_events(["rrc06"], 0, 1, stats=stats)
    assert event.attributes.communities == ((24482, 1),)
    assert dict(stats.errors) == {}
    assert stats.not_emitted[EXTENDED] == 2
    result = replay("--bgpstream", "--collector", "rrc06", "--start", "0", "--end", "1", "--stats")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stderr.strip().splitlines()[-1])
    assert (printed["announcements"], printed["not_emitted"][EXTENDED]) == (1, 2)


# -- broker, singlefile, a stream that cannot start or breaks off (fake module) ------------------


def closed_port() -> int:
    """Return a loopback TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_stream_that_cannot_start_raises_one_line(fake_pybgpstream: types.SimpleNamespace) -> None:
    fake_pybgpstream.fail_start = "Could not start stream"
    url = f"http://127.0.0.1:{closed_port()}/broker"
    with pytest.raises(BGPStreamError) as caught:
        next(bgpstream_events(["rrc00"], 0, 60, broker_url=url))
    assert fake_pybgpstream.options == [("broker", "url", url)]
    message = str(caught.value)
    assert "\n" not in message
    assert f"cannot reach the BGPStream broker {url}" in message and "Could not start stream" in message


def test_replay_bgpstream_without_broker_is_one_line_exit_1(fake_pybgpstream: types.SimpleNamespace) -> None:
    fake_pybgpstream.fail_start = "Could not start stream"
    url = f"http://127.0.0.1:{closed_port()}/broker"
    result = replay(
        "--bgpstream", "--collector", "rrc00", "--start", "0", "--end", "60", "--bgpstream-broker", url,
    )  # fmt: skip
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"bgpwatch replay: bgpstream: cannot reach the BGPStream broker {url}")
    assert "Traceback" not in result.output


def test_stream_that_breaks_off_keeps_the_events_before(fake_pybgpstream: types.SimpleNamespace) -> None:
    fake_pybgpstream.elems = [announce("193.0.0.0/21"), announce("193.0.8.0/23"), announce("193.0.16.0/22")]
    fake_pybgpstream.fail_after = 2
    stats = ReplayStats()
    events = list(bgpstream_events(["rrc06"], 0, 1, stats=stats))
    assert len(events) == 2
    assert stats.errors["bgpstream_read"] == 1
    with pytest.raises(BGPStreamError, match="broke off"):
        list(bgpstream_events(["rrc06"], 0, 1))  # without stats, the caller hears of it
    result = replay("--bgpstream", "--collector", "rrc06", "--start", "0", "--end", "1", "--stats")
    assert result.exit_code == 1
    assert "bgpwatch replay: bgpstream: the stream broke off" in result.stderr
    assert json.loads(result.stderr.strip().splitlines()[-1])["announcements"] == 2


@pytest.mark.parametrize(("record_type", "option"), [("updates", "upd-file"), ("ribs", "rib-file")])
def test_singlefile_mode(fake_pybgpstream: types.SimpleNamespace, record_type: str, option: str) -> None:
    fake_pybgpstream.elems = [announce("193.0.0.0/21")]
    result = replay(
        "--bgpstream-file", str(MRT), "--type", record_type, "--prefix", "193.0.0.0/16", "--stats"
    )
    assert result.exit_code == 0, result.output
    assert fake_pybgpstream.kwargs == {"filter": "prefix more 193.0.0.0/16", "data_interface": "singlefile"}
    assert fake_pybgpstream.options == [("singlefile", option, str(MRT))]
    assert json.loads(result.stderr.strip().splitlines()[-1])["announcements"] == 1


def test_singlefile_mode_with_a_window(fake_pybgpstream: types.SimpleNamespace) -> None:
    result = replay(
        "--bgpstream", "--bgpstream-file", str(MRT), "--start", "1427846400", "--end", "1427846460"
    )
    assert result.exit_code == 0, result.output
    assert (fake_pybgpstream.kwargs["from_time"], fake_pybgpstream.kwargs["until_time"]) == (
        1427846400,
        1427846460,
    )
    assert "collectors" not in fake_pybgpstream.kwargs


def test_unreadable_singlefile_is_one_line(fake_pybgpstream: types.SimpleNamespace) -> None:
    fake_pybgpstream.fail_start = "Could not start stream"
    result = replay("--bgpstream-file", str(MRT))
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"cannot read {MRT} through pybgpstream's singlefile interface" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--bgpstream-file", str(MRT), "--collector", "rrc06"),
            "--collector and --bgpstream-file are mutually",
        ),
        (
            ("--bgpstream-file", str(MRT), "--bgpstream-broker", "http://127.0.0.1:1/"),
            "--bgpstream-broker and",
        ),
        (("--bgpstream-file", str(MRT), "--start", "0"), "both --start and --end, or neither"),
        ((str(MRT), "--bgpstream-file", str(MRT)), "mutually exclusive"),
        ((str(MRT), "--bgpstream-broker", "http://127.0.0.1:1/"), "--bgpstream-broker only goes with"),
    ],
)
def test_bgpstream_file_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    result = replay(*args)
    assert result.exit_code == 2
    assert message in result.stderr


# -- for real: this virtualenv's pybgpstream (missing here), no broker, singlefile -----------------


def run_replay(*args: str) -> subprocess.CompletedProcess[str]:
    """Run bgpwatch replay in a fresh interpreter: the real import of pybgpstream, no fake."""
    command = [
        sys.executable,
        "-c",
        "from bgpwatch.cli import main; main()",
        "replay",
        "--config",
        str(CONFIG),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(
    HAVE_PYBGPSTREAM, reason="pybgpstream is installed: the missing-module lines cannot happen"
)
def test_real_missing_pybgpstream_lines() -> None:
    broker = f"http://127.0.0.1:{closed_port()}/broker"
    stream = run_replay(
        "--bgpstream", "--collector", "rrc06", "--start", "0", "--end", "60", "--bgpstream-broker", broker
    )
    assert stream.returncode == 2
    (line,) = stream.stderr.strip().splitlines()
    assert line.startswith("bgpwatch replay: pybgpstream is not installed") and "libbgpstream" in line
    single = run_replay("--bgpstream-file", str(MRT))
    assert single.returncode == 2
    (line,) = single.stderr.strip().splitlines()
    assert "--bgpstream-file needs pybgpstream" in line
    assert f"bgpwatch replay --config CONFIG {MRT}" in line


@pytest.mark.skipif(not HAVE_PYBGPSTREAM, reason="pybgpstream (libbgpstream) is not installed here")
def test_real_broker_at_a_closed_loopback_port() -> None:
    broker = f"http://127.0.0.1:{closed_port()}/broker"
    result = run_replay(
        "--bgpstream",
        "--collector",
        "rrc06",
        "--start",
        "1427846400",
        "--end",
        "1427846700",
        "--bgpstream-broker",
        broker,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"bgpwatch replay: bgpstream: cannot reach the BGPStream broker {broker}")
    )
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not HAVE_PYBGPSTREAM, reason="pybgpstream (libbgpstream) is not installed here")
def test_real_singlefile_counts_as_bgpwatchs_own_mrt_reader() -> None:
    through_bgpstream = run_replay("--bgpstream-file", str(MRT), "--stats")
    own = run_replay(str(MRT), "--stats")
    assert through_bgpstream.returncode == 0 == own.returncode, through_bgpstream.stderr
    ours, theirs = (json.loads(r.stderr.strip().splitlines()[-1]) for r in (own, through_bgpstream))
    assert theirs["announcements"] > 0
    assert (theirs["announcements"], theirs["withdrawals"]) == (ours["announcements"], ours["withdrawals"])
