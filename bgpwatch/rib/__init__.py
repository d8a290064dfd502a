"""Adj-RIB-In per vantage point, with interned attributes and explicit before/after changes."""

from __future__ import annotations

from bgpwatch.rib.attributes import AttributePool, PathAttributes
from bgpwatch.rib.prefix import format_prefix, parse_prefix
from bgpwatch.rib.table import AdjRibIn, Rib, RouteChanges

__all__ = [
    "AdjRibIn",
    "AttributePool",
    "PathAttributes",
    "Rib",
    "RouteChanges",
    "format_prefix",
    "parse_prefix",
]
