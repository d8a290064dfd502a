"""The hot path's shortcuts keep the results of the straightforward code.

Compact interned attributes (no key of their own, shared parts, hash collisions), the RIB's
table-load and one-prefix paths, the parser's prefix-text and attribute caches, events as
plain slots dataclasses.
"""

from __future__ import annotations

import random

import orjson
import pytest

import bgpwatch.rib.attributes as attributes_module
from bgpwatch.events import Announce, Withdraw
from bgpwatch.ingest import ExaBGPJsonParser, IngestError
from bgpwatch.rib import AttributePool, Rib, parse_prefix


def keys(*prefixes: str) -> tuple[int, ...]:
    return tuple(parse_prefix(p)[1] for p in prefixes)


def test_equal_sets_share_their_parts() -> None:
    pool = AttributePool()
    # Fresh objects each time, as orjson makes them: equal values, different identities.
    path_a = tuple(int(str(x)) for x in (65001, 3356, 1299))
    path_b = tuple(int(str(x)) for x in (65002, 3356, 1299))
    comms = lambda: ((int("65001"), int("1001")), (int("65001"), int("4242")))  # noqa: E731
    a = pool.intern("igp", path_a, (), "192.0.2.2", 100, None, comms(), ())
    b = pool.intern("igp", path_b, (), "192.0.2.6", 100, None, comms(), ())
    assert a is not b and len(pool) == 2
    assert a.as_path[1] is b.as_path[1] and a.as_path[2] is b.as_path[2]  # one int per ASN
    assert a.communities is b.communities  # one tuple per community list
    assert a.communities == ((65001, 1001), (65001, 4242)) and a.as_path == (65001, 3356, 1299)
    assert not hasattr(a, "_key") and not hasattr(a, "__dict__")
    assert pool.intern("igp", path_a, (), "192.0.2.2", 100, None, comms(), ()) is a


def test_hash_collisions_keep_sets_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every set in one bucket: the pool must still tell them apart and release the right one.
    monkeypatch.setattr(attributes_module, "hash", lambda _fields: 7, raising=False)
    pool = AttributePool()
    sets = [pool.intern("igp", (65001, n), (), "192.0.2.2") for n in range(5)]
    assert len({id(s) for s in sets}) == 5 and len(pool) == 5
    assert [pool.intern("igp", (65001, n), (), "192.0.2.2") for n in range(5)] == sets
    assert all(s in pool for s in sets)
    pool.release_if_unused(sets[2])
    assert sets[2] not in pool and len(pool) == 4 and all(s in pool for s in sets if s is not sets[2])
    for s in sets:
        pool.release_if_unused(s)
    assert len(pool) == 0 and pool._pool == {}


def test_duplicate_prefixes_in_one_event_count_once() -> None:
    pool = AttributePool()
    rib = Rib(pool)
    a = pool.intern("igp", (65001,), (), "192.0.2.2")
    b = pool.intern("igp", (65002,), (), "192.0.2.2")
    k1, k2 = keys("203.0.113.0/27", "203.0.113.32/27")
    (load,) = rib.apply(Announce(1.0, "p", 4, (k1, k2, k1), a))  # all new: the table-load path
    assert load.items == [(k1, None, a), (k2, None, a)] and a.refs == 2
    (replace,) = rib.apply(Announce(2.0, "p", 4, (k1, k1), b))  # the replace path
    assert replace.items == [(k1, a, b)] and a.refs == 1 and b.refs == 1
    (single,) = rib.apply(Announce(3.0, "p", 4, (k2,), b))  # the one-prefix path
    assert single.items == [(k2, a, b)] and a.refs == 0 and a not in pool and b.refs == 2
    assert rib.apply(Announce(4.0, "p", 4, (k2,), b)) == []
    (gone,) = rib.apply(Withdraw(5.0, "p", 4, (k1, k1, k2)))
    assert gone.items == [(k1, b, None), (k2, b, None)] and len(pool) == 0


def test_refcounts_after_random_churn_with_one_prefix_updates() -> None:
    pool = AttributePool()
    rib = Rib(pool)
    rng = random.Random(11)
    prefixes = [parse_prefix(f"10.{i // 256}.{i % 256}.0/24")[1] for i in range(200)]
    for step in range(4000):
        peer = rng.choice("ab")
        batch = tuple(rng.choice(prefixes) for _ in range(rng.choice((1, 1, 3, 8))))  # duplicates too
        if rng.random() < 0.7:
            attrs = pool.intern("igp", (rng.randint(1, 30),), (), "192.0.2.2")
            rib.apply(Announce(float(step), peer, 4, batch, attrs))
        else:
            rib.apply(Withdraw(float(step), peer, 4, batch))
    counts: dict[int, int] = {}
    live = {}
    for table in rib.peers.values():
        for attrs in table.tables[4].values():
            counts[id(attrs)] = counts.get(id(attrs), 0) + 1
            live[id(attrs)] = attrs
    assert all(live[i].refs == n for i, n in counts.items())
    assert len(pool) == len(live) and all(a in pool for a in live.values())


def line(peer: str, prefixes: list[str], attribute: dict, next_hop: str = "192.0.2.2") -> bytes:
    family = "ipv6 unicast" if ":" in prefixes[0] else "ipv4 unicast"
    return orjson.dumps(
        {
            "exabgp": "5.0.0",
            "time": 1000.5,
            "type": "update",
            "neighbor": {
                "address": {"local": "192.0.2.1", "peer": peer},
                "direction": "receive",
                "message": {
                    "update": {
                        "attribute": attribute,
                        "announce": {family: {next_hop: [{"nlri": p} for p in prefixes]}},
                    }
                },
            },
        }
    )


ATTRIBUTE = {"origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65001, 3356]}}, "med": 10}


def test_prefix_keys_are_parsed_once_and_shared_across_peers() -> None:
    parser = ExaBGPJsonParser(AttributePool())
    (first,) = parser.parse(line("192.0.2.2", ["203.0.113.0/24"], ATTRIBUTE))
    (second,) = parser.parse(line("192.0.2.6", ["203.0.113.0/24"], ATTRIBUTE, "192.0.2.6"))
    assert first.prefixes == second.prefixes == keys("203.0.113.0/24")
    assert first.prefixes[0] is second.prefixes[0]
    # A cached IPv4 text is still refused under the IPv6 family, and in compact mode it is the same key.
    with pytest.raises(IngestError) as error:
        parser.parse(
            line("192.0.2.2", ["203.0.113.0/24"], ATTRIBUTE).replace(b"ipv4 unicast", b"ipv6 unicast")
        )
    assert error.value.reason == "bad_prefix"
    compact = line("192.0.2.2", ["203.0.113.0/24"], ATTRIBUTE).replace(
        b'[{"nlri":"203.0.113.0/24"}]', b'["203.0.113.0/24"]'
    )
    (third,) = parser.parse(compact)
    assert third.prefixes[0] is first.prefixes[0]


def test_repeated_attributes_reuse_the_set_but_only_for_the_same_json() -> None:
    pool = AttributePool()
    parser = ExaBGPJsonParser(pool)
    rib = Rib(pool)
    (a,) = parser.parse(line("192.0.2.2", ["203.0.113.0/24"], ATTRIBUTE))
    rib.apply(a)
    (b,) = parser.parse(line("192.0.2.2", ["203.0.113.1/32"], dict(ATTRIBUTE)))
    assert b.attributes is a.attributes and len(pool) == 1
    # Equal in Python (10 == 10.0) but not the same JSON: judged on its own, and refused.
    with pytest.raises(IngestError) as error:
        parser.parse(line("192.0.2.2", ["203.0.113.2/32"], {**ATTRIBUTE, "med": 10.0}))
    assert error.value.reason == "bad_attribute"
    with pytest.raises(IngestError):
        parser.parse(line("192.0.2.2", ["203.0.113.2/32"], {**ATTRIBUTE, "med": True}))
    # Another next hop with the same attributes is another set; a set the pool dropped is re-made.
    (c,) = parser.parse(line("192.0.2.2", ["203.0.113.3/32"], ATTRIBUTE, "192.0.2.99"))
    assert c.attributes is not a.attributes and c.attributes.next_hop == "192.0.2.99"
    rib.apply(Withdraw(2.0, "192.0.2.2", 4, a.prefixes))
    assert a.attributes not in pool
    (d,) = parser.parse(line("192.0.2.2", ["203.0.113.0/24"], ATTRIBUTE))
    assert d.attributes in pool and d.attributes.as_path == (65001, 3356) and d.attributes.med == 10


def test_events_compare_and_hash_by_value() -> None:
    a = Announce(1.0, "p", 4, (1, 2), None)  # type: ignore[arg-type]
    b = Announce(1.0, "p", 4, (1, 2), None)  # type: ignore[arg-type]
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert Withdraw(1.0, "p", 4, (1,)) != Withdraw(1.0, "p", 6, (1,))
