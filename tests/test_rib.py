"""RIB: prefix keys, attribute interning and release, before/after changes, implicit withdraw."""

from __future__ import annotations

import random

import pytest

from bgpwatch.events import DOWN, UP, Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.rib import AttributePool, Rib, format_prefix, parse_prefix
from bgpwatch.rib.prefix import covers, parse_address, supernet


@pytest.mark.parametrize(
    "text, family, canonical",
    [
        ("203.0.113.0/24", 4, "203.0.113.0/24"),
        ("0.0.0.0/0", 4, "0.0.0.0/0"),
        ("10.1.2.3/8", 4, "10.0.0.0/8"),
        ("192.0.2.1", 4, "192.0.2.1/32"),
        ("2001:db8:1001::/48", 6, "2001:db8:1001::/48"),
        ("2001:DB8:0:0::/32", 6, "2001:db8::/32"),
        ("::/0", 6, "::/0"),
    ],
)
def test_prefix_round_trip(text, family, canonical):
    fam, key = parse_prefix(text)
    assert fam == family
    assert format_prefix(fam, key) == canonical


@pytest.mark.parametrize(
    "bad", ["203.0.113.0/33", "2001:db8::/129", "300.1.1.1/8", "1.2.3.4/-1", "x/8", "1.2.3.4/", ""]
)
def test_bad_prefixes_raise(bad):
    with pytest.raises(ValueError):
        parse_prefix(bad)


def test_covers_and_supernet():
    _, outer = parse_prefix("203.0.113.0/26")
    _, inner = parse_prefix("203.0.113.32/27")
    _, other = parse_prefix("203.0.113.64/27")
    assert covers(4, outer, inner)
    assert covers(4, outer, outer)
    assert not covers(4, outer, other)
    assert not covers(4, inner, outer)
    assert supernet(4, inner, 26) == outer
    with pytest.raises(ValueError):
        parse_address("192.0.2.0/24")


def make_attrs(pool, path=(65001,), nh="192.0.2.2"):
    return pool.intern("igp", tuple(path), (), nh, None, None, (), ())


def keys(*prefixes):
    return tuple(parse_prefix(p)[1] for p in prefixes)


def test_interning_shares_and_releases():
    pool = AttributePool()
    rib = Rib(pool)
    a = make_attrs(pool)
    assert make_attrs(pool) is a
    rib.apply(Announce(1.0, "192.0.2.2", 4, keys("203.0.113.0/27", "203.0.113.32/27"), a))
    # The same attributes announced by another peer are the same object.
    b = make_attrs(pool)
    rib.apply(Announce(1.0, "192.0.2.6", 4, keys("203.0.113.0/27"), b))
    assert b is a and a.refs == 3 and len(pool) == 1
    # Replacing the path moves references; the old set is freed when its last route goes.
    c = make_attrs(pool, (65002, 65001))
    rib.apply(Announce(2.0, "192.0.2.6", 4, keys("203.0.113.0/27"), c))
    assert a.refs == 2 and c.refs == 1
    rib.apply(Withdraw(3.0, "192.0.2.2", 4, keys("203.0.113.0/27", "203.0.113.32/27")))
    assert a.refs == 0 and a not in pool and c in pool and len(pool) == 1


def test_changes_carry_before_and_after():
    pool = AttributePool()
    rib = Rib(pool)
    a, b = make_attrs(pool), make_attrs(pool, (65009, 65001))
    (first,) = rib.apply(Announce(1.0, "p", 4, keys("203.0.113.0/27"), a))
    assert first.items == [(keys("203.0.113.0/27")[0], None, a)] and first.family == 4
    assert rib.apply(Announce(1.5, "p", 4, keys("203.0.113.0/27"), a)) == []  # duplicate: no change
    (second,) = rib.apply(Announce(2.0, "p", 4, keys("203.0.113.0/27"), b))
    assert second.items == [(keys("203.0.113.0/27")[0], a, b)]
    (third,) = rib.apply(Withdraw(3.0, "p", 4, keys("203.0.113.0/27", "198.51.100.0/24")))
    assert third.items == [(keys("203.0.113.0/27")[0], b, None)]  # unknown prefix: no change
    assert len(pool) == 0


def test_session_down_withdraws_everything_per_family():
    pool = AttributePool()
    rib = Rib(pool)
    a = make_attrs(pool)
    v6 = pool.intern("igp", (65001,), (), "2001:db8:c0:1::2", None, None, (), ())
    rib.apply(SessionState(0.0, "p", UP))
    rib.apply(Announce(1.0, "p", 4, keys("203.0.113.0/27", "203.0.113.32/27"), a))
    rib.apply(Announce(1.0, "p", 6, keys("2001:db8:1001::/48"), v6))
    rib.apply(EndOfRib(1.1, "p", 4))
    assert rib.peers["p"].eor == {4}
    changes = rib.apply(SessionState(5.0, "p", DOWN, "notification received (6,2)"))
    assert sorted((c.family, len(c.items), c.reason) for c in changes) == [
        (4, 2, "session_down"),
        (6, 1, "session_down"),
    ]
    assert all(after is None for c in changes for _, _, after in c.items)
    assert len(rib.peers["p"]) == 0 and rib.peers["p"].eor == set() and len(pool) == 0
    assert rib.apply(SessionState(6.0, "p", DOWN)) == []


def test_longest_prefix_match():
    pool = AttributePool()
    rib = Rib(pool)
    rib.apply(Announce(1.0, "p", 4, keys("203.0.113.0/24"), make_attrs(pool, (1,))))
    rib.apply(Announce(1.0, "p", 4, keys("203.0.113.0/26"), make_attrs(pool, (2,))))
    table = rib.peers["p"]
    key, attrs = table.lookup(*parse_address("203.0.113.10"))
    assert format_prefix(4, key) == "203.0.113.0/26" and attrs.as_path == (2,)
    key, attrs = table.lookup(*parse_address("203.0.113.200"))
    assert format_prefix(4, key) == "203.0.113.0/24"
    assert table.lookup(*parse_address("198.51.100.1")) is None


def test_refcounts_match_table_after_random_churn():
    pool = AttributePool()
    rib = Rib(pool)
    rng = random.Random(7)
    prefixes = [parse_prefix(f"10.{i // 256}.{i % 256}.0/24")[1] for i in range(300)]
    peers = ["a", "b", "c"]
    for step in range(3000):
        peer = rng.choice(peers)
        batch = tuple(rng.sample(prefixes, rng.randint(1, 5)))
        roll = rng.random()
        if roll < 0.6:
            attrs = make_attrs(pool, (rng.randint(1, 20),))
            rib.apply(Announce(float(step), peer, 4, batch, attrs))
        elif roll < 0.95:
            rib.apply(Withdraw(float(step), peer, 4, batch))
        else:
            rib.apply(SessionState(float(step), peer, DOWN))
    counts: dict[int, int] = {}
    for table in rib.peers.values():
        for attrs in table.tables[4].values():
            counts[id(attrs)] = counts.get(id(attrs), 0) + 1
            assert attrs in pool
    live = {id(a): a for t in rib.peers.values() for a in t.tables[4].values()}
    assert all(live[i].refs == n for i, n in counts.items())
    assert len(pool) == len(live)  # nothing unused is kept


def test_value_tables_share_paths_and_communities_and_stay_bounded(monkeypatch):
    from bgpwatch.rib import attributes

    pool = AttributePool()
    # Fresh tuples and ints each time, as a JSON decoder hands them over.
    path = lambda: tuple(int(text) for text in ["65001", "3356", "15169"])  # noqa: E731
    community = lambda n: ((int("65001"), int("100")), (int("65001"), n))  # noqa: E731
    large = lambda n: ((int("65001"), 1, int(str(n))),)  # noqa: E731
    first = pool.intern(
        as_path=path(), next_hop="192.0.2.2", communities=community(1), large_communities=large(1)
    )
    second = pool.intern(
        as_path=path(), next_hop="192.0.2.6", communities=community(2), large_communities=large(2)
    )
    assert first is not second
    assert second.as_path is first.as_path  # one tuple for the path
    assert second.communities[0] is first.communities[0]  # one tuple for the common community
    # large communities are kept packed as on the wire (12 bytes each), decoded when read
    assert first.large == bytes.fromhex("0000fde90000000100000001")
    assert (
        pool.intern(as_path=path(), large_communities=large(7)).large
        is pool.intern(as_path=(65001, 1), large_communities=large(7)).large
    )  # an equal packed list is one object, even across attribute sets
    assert first.communities == ((65001, 100), (65001, 1)) and second.large_communities == ((65001, 1, 2),)
    # A community's unique data does not grow the integer table.
    before = len(pool._ints)
    for n in range(3, 50):
        pool.intern(as_path=path(), large_communities=large(1000 + n))
    assert len(pool._ints) == before
    # The tables of whole values are cleared when full: sharing starts over, nothing else changes.
    monkeypatch.setattr(attributes, "RECENT_TABLE_LIMIT", 8)
    made = [pool.intern(as_path=(65001, n), large_communities=large(n)) for n in range(100)]
    assert len(pool._paths) <= 8 and len(pool._lists) <= 8 and len(pool._items) <= 8
    again = [pool.intern(as_path=(65001, n), large_communities=large(n)) for n in range(100)]
    assert all(a is b for a, b in zip(made, again, strict=True))
    assert [a.to_dict()["large_communities"] for a in again[:2]] == [["65001:1:0"], ["65001:1:1"]]


def test_pool_keys_are_small_ints_and_collisions_are_kept_apart(monkeypatch):
    from bgpwatch.rib import attributes

    pool = AttributePool()
    attrs = [pool.intern(as_path=(65001, n)) for n in range(20)]
    assert all(0 <= key < 1 << 60 for key in pool._pool)
    # Every set in one bucket: still told apart by their fields, and released one by one.
    monkeypatch.setattr(attributes, "_DIGEST_MASK", 0)
    pool = AttributePool()
    attrs = [pool.intern(as_path=(65001, n)) for n in range(5)]
    assert [pool.intern(as_path=(65001, n)) for n in range(5)] == attrs and len(pool) == 5
    for a in attrs[:4]:
        pool.release_if_unused(a)
        assert a not in pool
    assert attrs[4] in pool and len(pool) == 1
