"""The VRP table: RFC 6811 origin validation, the change log, the JSON reader."""

from __future__ import annotations

import pytest

from bgpwatch.rib.prefix import parse_prefix
from bgpwatch.rpki.vrps import INVALID, NOT_FOUND, VALID, Vrp, VrpTable, make_vrp, parse_vrp_json


def _table(*vrps: tuple[str, int, int]) -> VrpTable:
    table = VrpTable()
    for prefix, max_length, asn in vrps:
        table.add(make_vrp(prefix, max_length, asn))
    return table


def _check(table: VrpTable, prefix: str, origin: int | None) -> str:
    return table.validate(*parse_prefix(prefix), origin)


def test_rfc6811_max_length_and_origin() -> None:
    table = _table(("192.0.2.0/24", 24, 64496), ("198.51.100.0/22", 24, 64497))
    assert _check(table, "192.0.2.0/24", 64496) == VALID
    assert _check(table, "192.0.2.0/24", 64497) == INVALID  # wrong origin
    assert _check(table, "192.0.2.128/25", 64496) == INVALID  # longer than maxLength
    assert _check(table, "198.51.101.0/24", 64497) == VALID  # within the /22, up to /24
    assert _check(table, "198.51.101.0/25", 64497) == INVALID
    assert _check(table, "203.0.113.0/24", 64496) == NOT_FOUND
    assert _check(table, "192.0.0.0/16", 64496) == NOT_FOUND  # a VRP for a more-specific does not cover


def test_several_vrps_any_match_wins() -> None:
    table = _table(("203.0.113.0/24", 24, 64496), ("203.0.113.0/24", 24, 64498), ("203.0.0.0/16", 24, 64499))
    for origin in (64496, 64498, 64499):
        assert _check(table, "203.0.113.0/24", origin) == VALID
    assert _check(table, "203.0.113.0/24", 64500) == INVALID
    assert [str(v) for v in table.covering(*parse_prefix("203.0.113.0/25"))] == [
        "203.0.0.0/16-24 AS64499",
        "203.0.113.0/24-24 AS64496",
        "203.0.113.0/24-24 AS64498",
    ]


def test_as0_and_unknown_origin_never_valid() -> None:
    table = _table(("192.0.2.0/24", 24, 0))
    assert _check(table, "192.0.2.0/24", 0) == INVALID
    assert _check(table, "192.0.2.0/24", 64496) == INVALID
    table.add(make_vrp("192.0.2.0/24", 24, 64496))
    assert _check(table, "192.0.2.0/24", None) == INVALID  # AS_SET origin
    assert _check(table, "192.0.2.0/24", 64496) == VALID


def test_ipv6() -> None:
    table = _table(("2001:db8::/32", 48, 65000))
    assert _check(table, "2001:db8:1::/48", 65000) == VALID
    assert _check(table, "2001:db8:1::/49", 65000) == INVALID
    assert _check(table, "2001:db9::/32", 65000) == NOT_FOUND
    assert _check(table, "192.0.2.0/24", 65000) == NOT_FOUND  # families never mix


def test_add_remove_version_and_drain_changes() -> None:
    table = VrpTable()
    vrp = make_vrp("192.0.2.0/24", 24, 64496)
    assert table.add(vrp) and not table.add(vrp)
    assert len(table) == 1 and table.version == 1
    assert table.drain_changes() == [parse_prefix("192.0.2.0/24")]
    assert table.drain_changes() == []
    assert table.remove(vrp) and not table.remove(vrp)
    assert table.version == 2 and len(table) == 0
    assert table.drain_changes() == [parse_prefix("192.0.2.0/24")]
    assert _check(table, "192.0.2.0/24", 64496) == NOT_FOUND


def test_replace_is_a_diff_and_overflow_means_everything() -> None:
    table = _table(("192.0.2.0/24", 24, 64496), ("198.51.100.0/24", 24, 64497))
    table.drain_changes()
    changed = table.replace([make_vrp("192.0.2.0/24", 24, 64496), make_vrp("203.0.113.0/24", 24, 64498)])
    assert changed == 2
    assert table.drain_changes() == sorted([parse_prefix("198.51.100.0/24"), parse_prefix("203.0.113.0/24")])
    table.replace(Vrp(6, (n << 96 << 8) | 32, 48, 65001) for n in range(10_001))
    assert table.drain_changes() is None
    assert table.drain_changes() == []
    table.clear()
    assert len(table) == 0 and table.drain_changes() is None


def test_impossible_vrp_rejected() -> None:
    with pytest.raises(ValueError):
        make_vrp("192.0.2.0/24", 23, 64496)
    with pytest.raises(ValueError):
        VrpTable().add(Vrp(4, parse_prefix("192.0.2.0/24")[1], 33, 64496))


def test_parse_vrp_json_counts_bad_entries() -> None:
    vrps, errors = parse_vrp_json(
        {
            "roas": [
                {"prefix": "192.0.2.0/24", "maxLength": 24, "asn": "AS64496", "ta": "test"},
                {"prefix": "2001:db8::/32", "maxLength": 48, "asn": 64497},
                {"prefix": "not a prefix", "maxLength": 24, "asn": 1},
                {"prefix": "192.0.2.0/24", "maxLength": 20, "asn": 1},
                "garbage",
            ]
        }
    )
    assert [str(v) for v in vrps] == ["192.0.2.0/24-24 AS64496", "2001:db8::/32-48 AS64497"]
    assert [e.split(":")[0] for e in errors] == ["roas[2]", "roas[3]", "roas[4]"]
    assert parse_vrp_json([]) == ([], ['expected an object with a "roas" list'])
