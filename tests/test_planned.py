"""PlannedWork: maintenance windows, GRACEFUL_SHUTDOWN drains, what they cover; the store's maintenance table."""

from __future__ import annotations

import sqlite3
import time
import tracemalloc
from pathlib import Path

import pytest

from bgpwatch.alerts import store as store_module
from bgpwatch.alerts.store import SCHEMA_VERSION, Store
from bgpwatch.events import DOWN, Announce, SessionState, Withdraw
from bgpwatch.planned import (
    GRACEFUL_SHUTDOWN,
    PlannedWork,
    format_duration,
    iso,
    parse_duration,
    sites_from_config,
)
from bgpwatch.rib import AttributePool, Rib
from bgpwatch.rib.prefix import parse_prefix

T0 = 1_795_699_700.0
SITES = {"par1": {"par1-rr1"}, "par2": {"par2-rr1", "par2-rr2"}, "par3": {"par3-rr1"}}
ANNOTATION_KEYS = {"by", "reason", "target", "since", "until"}


@pytest.fixture()
def planned() -> PlannedWork:
    return PlannedWork(SITES)


class Feed:
    """A real RIB and attribute pool producing the RouteChanges the engine hands to PlannedWork."""

    def __init__(self, planned: PlannedWork) -> None:
        self.pool = AttributePool()
        self.rib = Rib(self.pool)
        self.planned = planned
        self.plain = self.pool.intern(as_path=(65002,), next_hop="192.0.2.6", communities=((65002, 100),))
        self.drain = self.pool.intern(
            as_path=(65002,), next_hop="192.0.2.6", communities=((65002, 100), GRACEFUL_SHUTDOWN)
        )
        self.bare = self.pool.intern(as_path=(65002,), next_hop="192.0.2.6")

    def announce(self, peer: str, site: str, at: float, attrs, *prefixes: str) -> None:
        keys = tuple(parse_prefix(p)[1] for p in prefixes)
        changes = self.rib.apply(Announce(at, address(peer), 4, keys, attrs))
        self.planned.observe_routes(peer, site, changes, at)

    def withdraw(self, peer: str, site: str, at: float, *prefixes: str) -> None:
        keys = tuple(parse_prefix(p)[1] for p in prefixes)
        changes = self.rib.apply(Withdraw(at, address(peer), 4, keys))
        self.planned.observe_routes(peer, site, changes, at)

    def down(self, peer: str, site: str, at: float, routes_first: bool = True) -> None:
        changes = self.rib.apply(SessionState(at, address(peer), DOWN, "hold timer expired"))
        if routes_first:
            self.planned.observe_routes(peer, site, changes, at)
            self.planned.session_down(peer, at)
        else:
            self.planned.session_down(peer, at)
            self.planned.observe_routes(peer, site, changes, at)


def address(peer: str) -> str:
    return {
        "par1-rr1": "192.0.2.2",
        "par2-rr1": "192.0.2.6",
        "par2-rr2": "192.0.2.7",
        "par3-rr1": "192.0.2.10",
    }[peer]


# -- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("45", 45), (" 2H ", 7200)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5m", "0s", "5x", "m30", "1h 30m", "inf", "nan"])
def test_parse_duration_refuses_with_the_input_named(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (90, 1800, 5400, 7200, 0)] == ["1m30s", "30m", "1h30m", "2h", "0s"]


# -- maintenance windows -----------------------------------------------------------------


def test_start_returns_the_window_and_refuses_an_unknown_target(planned: PlannedWork) -> None:
    window = planned.start("par2", T0, 1800.0, "fibre works", by="noc")
    assert window == {
        "target": "par2",
        "scope": "site",
        "site": "par2",
        "reason": "fibre works",
        "by": "noc",
        "since": iso(T0),
        "until": iso(T0 + 1800),
        "since_ts": T0,
        "until_ts": T0 + 1800,
    }
    peer = planned.start("par3-rr1", T0, None, "")
    assert (peer["scope"], peer["site"], peer["until"], peer["by"]) == ("peer", "par3", None, "operator")
    assert peer["reason"] == "planned maintenance"  # never an empty text next to an alert
    with pytest.raises(ValueError, match="'par9'"):
        planned.start("par9", T0, None, "")
    with pytest.raises(ValueError, match="positive"):
        planned.start("par1", T0, 0.0, "")
    assert [w["target"] for w in planned.windows(T0)] == ["par2", "par3-rr1"]


def test_windows_expire_by_stream_time_and_end_closes_them(planned: PlannedWork) -> None:
    planned.start("par2", T0, 600.0, "upgrade")
    planned.start("par1-rr1", T0 + 1, None, "reboot")
    assert [w["target"] for w in planned.windows(T0 + 599)] == ["par2", "par1-rr1"]
    assert [w["target"] for w in planned.windows(T0 + 600)] == ["par1-rr1"]  # expired at its end
    assert planned.match("par2", None, T0 + 600) is None
    ended = planned.end("par1-rr1", T0 + 700)
    assert ended is not None and ended["until"] == iso(T0 + 700)
    assert planned.end("par1-rr1", T0 + 701) is None
    assert planned.end("par2", T0 + 701) is None  # expired already
    assert planned.windows(T0 + 701) == []


def test_a_new_window_on_the_same_target_replaces_the_old_one(planned: PlannedWork) -> None:
    planned.start("par2", T0, 60.0, "first")
    planned.start("par2", T0 + 30, 3600.0, "extended")
    windows = planned.windows(T0 + 120)
    assert len(windows) == 1 and windows[0]["reason"] == "extended"


def test_a_site_window_covers_its_peers_not_the_other_sites(planned: PlannedWork) -> None:
    planned.start("par2", T0, 3600.0, "power works")
    expected = {
        "by": "maintenance",
        "reason": "power works",
        "target": "par2",
        "since": iso(T0),
        "until": iso(T0 + 3600),
    }
    assert planned.match("par2", None, T0 + 1) == expected
    assert planned.match(None, "par2-rr2", T0 + 1) == expected  # the peer's site is known from config
    assert planned.match("par2", "par2-rr1", T0 + 1) == expected
    assert planned.match("par1", None, T0 + 1) is None
    assert planned.match(None, "par1-rr1", T0 + 1) is None
    assert planned.match(None, None, T0 + 1) is None


def test_a_peer_window_covers_the_peer_and_the_site_only_when_every_peer_is_in_one(
    planned: PlannedWork,
) -> None:
    planned.start("par2-rr1", T0, None, "line card swap")
    found = planned.match(None, "par2-rr1", T0 + 5)
    assert found is not None and found["target"] == "par2-rr1" and set(found) == ANNOTATION_KEYS
    assert planned.match("par2", None, T0 + 5) is None  # par2-rr2 still watches par2
    planned.start("par2-rr2", T0 + 10, 600.0, "line card swap")
    site = planned.match("par2", None, T0 + 15)
    assert site is not None
    assert (site["by"], site["target"], site["since"], site["until"]) == (
        "maintenance",
        "par2",
        iso(T0 + 10),
        iso(T0 + 610),
    )


def test_restore_takes_back_open_windows_only(planned: PlannedWork) -> None:
    row = {"target": "par2", "scope": "site", "reason": "r", "by": "noc", "since_ts": T0, "until_ts": T0 + 60}
    assert planned.restore(row, T0 + 61) is None  # expired while bgpwatch was down
    assert planned.restore({**row, "target": "gone"}, T0) is None  # no longer configured
    restored = planned.restore(row, T0 + 30)
    assert restored is not None and restored["since"] == iso(T0) and restored["by"] == "noc"
    assert planned.match("par2", None, T0 + 30)["until"] == iso(T0 + 60)


def test_set_sites_follows_a_reload(planned: PlannedWork) -> None:
    planned.set_sites({"par1": {"par1-rr1"}, "par4": {"par4-rr1"}})
    assert planned.target_scope("par4-rr1") == "peer" and planned.target_scope("par2") is None
    with pytest.raises(ValueError):
        planned.start("par2", T0, None, "")


# -- GRACEFUL_SHUTDOWN drains ------------------------------------------------------------


def test_a_graceful_shutdown_route_marks_the_session_draining(planned: PlannedWork) -> None:
    feed = Feed(planned)
    feed.announce("par2-rr1", "par2", T0, feed.plain, "203.0.113.64/27", "203.0.113.96/27")
    assert planned.match("par2", "par2-rr1", T0) is None and planned.drains(T0) == []
    feed.announce("par2-rr1", "par2", T0 + 10, feed.drain, "203.0.113.64/27", "203.0.113.96/27")
    found = planned.match(None, "par2-rr1", T0 + 11)
    assert found == {
        "by": "graceful_shutdown",
        "reason": "2 route(s) carry GRACEFUL_SHUTDOWN (65535:0)",
        "target": "par2-rr1",
        "since": iso(T0 + 10),
        "until": None,
    }
    assert planned.drains(T0 + 11) == [
        {
            "peer": "par2-rr1",
            "site": "par2",
            "since": iso(T0 + 10),
            "until": None,
            "routes": 2,
            "state": "draining",
        }
    ]
    # One session of two: the site itself is still watched through par2-rr2.
    assert planned.match("par2", None, T0 + 11) is None
    assert planned.match(None, "par2-rr2", T0 + 11) is None


def test_re_announced_without_the_community_the_drain_is_called_off(planned: PlannedWork) -> None:
    feed = Feed(planned)
    feed.announce("par1-rr1", "par1", T0, feed.drain, "203.0.113.0/27", "203.0.113.32/27")
    feed.announce("par1-rr1", "par1", T0 + 5, feed.bare, "203.0.113.0/27")
    assert planned.match(None, "par1-rr1", T0 + 5)["reason"].startswith("1 route(s)")
    feed.announce("par1-rr1", "par1", T0 + 6, feed.plain, "203.0.113.32/27")
    assert planned.match(None, "par1-rr1", T0 + 6) is None
    assert planned.drains(T0 + 6) == []


def test_withdrawn_drained_routes_stay_planned_for_the_linger(planned: PlannedWork) -> None:
    feed = Feed(planned)
    feed.announce("par1-rr1", "par1", T0, feed.drain, "203.0.113.0/27")
    feed.withdraw("par1-rr1", "par1", T0 + 20, "203.0.113.0/27")
    found = planned.match(None, "par1-rr1", T0 + 21)
    assert found is not None and found["by"] == "graceful_shutdown" and "withdrawn" in found["reason"]
    assert planned.match(None, "par1-rr1", T0 + 20 + planned.linger + 1) is None


@pytest.mark.parametrize("routes_first", [True, False], ids=["routes-then-down", "down-then-routes"])
def test_a_drained_session_going_down_stays_planned_for_the_linger(
    planned: PlannedWork, routes_first
) -> None:
    feed = Feed(planned)
    feed.announce("par3-rr1", "par3", T0, feed.drain, "203.0.113.128/27", "203.0.113.160/27")
    feed.down("par3-rr1", "par3", T0 + 30, routes_first=routes_first)
    expected_until = iso(T0 + 30 + 300)
    found = planned.match("par3", "par3-rr1", T0 + 31)
    assert found is not None and found["until"] == expected_until and found["since"] == iso(T0)
    # every session of par3 drained: the site itself is planned (a site_down about par3 is not an outage)
    site = planned.match("par3", None, T0 + 31)
    assert site is not None and (site["by"], site["target"], site["until"]) == (
        "graceful_shutdown",
        "par3",
        expected_until,
    )
    assert planned.match("par3", None, T0 + 329) is not None
    assert planned.match("par3", None, T0 + 330) is None
    assert planned.drains(T0 + 330) == []


def test_a_session_going_down_without_a_drain_is_not_planned(planned: PlannedWork) -> None:
    feed = Feed(planned)
    feed.announce("par3-rr1", "par3", T0, feed.plain, "203.0.113.128/27")
    feed.down("par3-rr1", "par3", T0 + 30)
    assert planned.match("par3", "par3-rr1", T0 + 31) is None
    # nor one that was drained long before and re-announced normally
    feed.announce("par1-rr1", "par1", T0, feed.drain, "203.0.113.0/27")
    feed.announce("par1-rr1", "par1", T0 + 10, feed.plain, "203.0.113.0/27")
    feed.down("par1-rr1", "par1", T0 + 40)
    assert planned.match("par1", "par1-rr1", T0 + 41) is None


def test_a_site_is_covered_only_when_every_session_of_it_drains(planned: PlannedWork) -> None:
    feed = Feed(planned)
    feed.announce("par2-rr1", "par2", T0, feed.drain, "203.0.113.64/27")
    assert planned.match("par2", None, T0 + 1) is None
    feed.announce("par2-rr2", "par2", T0 + 2, feed.drain, "203.0.113.64/27")
    site = planned.match("par2", None, T0 + 3)
    assert site is not None and site["target"] == "par2" and site["since"] == iso(T0 + 2)
    assert site["reason"] == "every session of par2 drained with GRACEFUL_SHUTDOWN"
    # a maintenance window wins over a drain: it says what the operator said
    planned.start("par2", T0 + 4, None, "decommission")
    assert planned.match("par2", "par2-rr1", T0 + 5)["by"] == "maintenance"


def test_an_uncounted_withdrawal_does_not_invent_a_drain(planned: PlannedWork) -> None:
    other = Feed(PlannedWork(SITES))  # the routes arrived before this PlannedWork watched
    other.announce("par1-rr1", "par1", T0, other.drain, "203.0.113.0/27")
    other.planned = planned
    other.withdraw("par1-rr1", "par1", T0 + 1, "203.0.113.0/27")
    assert planned.drains(T0 + 1) == [] and planned.match(None, "par1-rr1", T0 + 1) is None


def test_the_hot_path_allocates_nothing_per_route_without_the_community(planned: PlannedWork) -> None:
    feed = Feed(planned)
    prefixes = [f"10.{i >> 8}.{i & 255}.0/24" for i in range(2000)]
    keys = tuple(parse_prefix(p)[1] for p in prefixes)
    first = feed.rib.apply(Announce(T0, address("par1-rr1"), 4, keys, feed.plain))
    second = feed.rib.apply(Announce(T0 + 1, address("par1-rr1"), 4, keys, feed.bare))
    planned.observe_routes("par1-rr1", "par1", first, T0)  # warms the per-community-list cache
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            planned.observe_routes("par1-rr1", "par1", first, T0)
            planned.observe_routes("par1-rr1", "par1", second, T0 + 1)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 2048, grown  # 200,000 route changes seen
    assert len(planned._gs) == 1  # one distinct community list, one cache entry
    started = time.perf_counter()
    for _ in range(50):
        planned.observe_routes("par1-rr1", "par1", first, T0)
    per_route = (time.perf_counter() - started) / (50 * len(keys))
    assert per_route < 5e-6, per_route  # ~0.1 us measured; a generous bound for a loaded CI host


def test_sites_from_config() -> None:
    from bgpwatch.config import load_config

    config = load_config(Path(__file__).resolve().parent.parent / "bgpwatch" / "data" / "paris.yaml")
    assert sites_from_config(config) == {"par1": {"par1-rr1"}, "par2": {"par2-rr1"}, "par3": {"par3-rr1"}}


# -- the store ---------------------------------------------------------------------------


def test_store_keeps_windows_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bgpwatch.db"
    planned = PlannedWork(SITES)
    with Store(path) as store:
        store.start_maintenance(planned.start("par2", T0, 600.0, "power works"))
        store.start_maintenance(planned.start("par1-rr1", T0, None, "reboot"))
        store.start_maintenance(planned.start("par3", T0, 60.0, "short"))
        store.start_maintenance(planned.start("par2", T0 + 10, 3600.0, "longer"))  # replaces the first
        assert store.end_maintenance("par1-rr1", T0 + 20) is True
        assert store.end_maintenance("par1-rr1", T0 + 21) is False
    with Store(path) as store:
        active = store.active_maintenance(T0 + 100)  # par3's expired meanwhile
        assert [(w["target"], w["reason"], w["until_ts"]) for w in active] == [("par2", "longer", T0 + 3610)]
        again = PlannedWork(SITES)
        for window in active:
            again.restore(window, T0 + 100)
        assert again.match(None, "par2-rr1", T0 + 100)["reason"] == "longer"
        assert store.prune(1.0, now=T0 + 2 * 86400) == 0
        assert store.active_maintenance(T0) == []  # ended and expired rows pruned with the rest


def test_store_migrates_a_version_1_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    store_module.MIGRATIONS[0](raw)
    raw.execute("PRAGMA user_version = 1")
    raw.execute(
        "INSERT INTO incidents (id, root_kind, root_labels, severity, summary, opened_at, opened_ts, status)"
        " VALUES ('x', 'site_down', '{}', 'critical', 's', 'a', 1.0, 'closed')"
    )
    raw.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        assert [i["id"] for i in store.incidents()] == ["x"]
        assert store.active_maintenance(T0) == []
        store.start_maintenance(PlannedWork(SITES).start("par1", T0, None, "x"))
        assert len(store.active_maintenance(T0 + 1e6)) == 1  # open-ended: until ended


def test_counting_follows_every_list_when_they_alternate(planned: PlannedWork) -> None:
    from bgpwatch.rib import RouteChanges

    pool = AttributePool()
    plain = pool.intern(as_path=(65001,), communities=((65001, 1),))
    gs_a = pool.intern(as_path=(65001,), communities=((65001, 1), GRACEFUL_SHUTDOWN))
    gs_b = pool.intern(as_path=(65001, 65009), communities=(GRACEFUL_SHUTDOWN,))
    items = [(1, None, gs_a), (2, None, plain), (3, None, gs_b), (4, None, plain), (5, None, gs_a)]
    planned.observe_routes("par1-rr1", "par1", [RouteChanges(T0, "192.0.2.2", 4, items)], T0)
    assert planned.drains(T0)[0]["routes"] == 3
    items = [(1, gs_a, plain), (2, plain, gs_b), (3, gs_b, plain), (4, plain, plain), (5, gs_a, None)]
    planned.observe_routes("par1-rr1", "par1", [RouteChanges(T0 + 1, "192.0.2.2", 4, items)], T0 + 1)
    assert planned.drains(T0 + 1)[0]["routes"] == 1  # only prefix 2 carries it now
    items = [(2, gs_b, plain)]
    planned.observe_routes("par1-rr1", "par1", [RouteChanges(T0 + 2, "192.0.2.2", 4, items)], T0 + 2)
    assert planned.drains(T0 + 2) == [] and planned.match(None, "par1-rr1", T0 + 2) is None
