"""Network-namespace lab (BIRD 2, FRR, GoBGP routers around a collector namespace) for tests and benchmarks."""

from __future__ import annotations

from .netlab import (
    BULK_V4_CAPACITY,
    BULK_V6_CAPACITY,
    DEFAULT_SITES,
    Addresses,
    Lab,
    LabError,
    SiteSpec,
    bulk_v4_prefixes,
    bulk_v6_prefixes,
    cleanup_stale,
    lab_available,
    ring,
    sites,
)
from .routers import ROUTER_KINDS, Neighbor, Router, router_class

__all__ = [
    "BULK_V4_CAPACITY",
    "BULK_V6_CAPACITY",
    "DEFAULT_SITES",
    "ROUTER_KINDS",
    "Addresses",
    "Lab",
    "LabError",
    "Neighbor",
    "Router",
    "SiteSpec",
    "bulk_v4_prefixes",
    "bulk_v6_prefixes",
    "cleanup_stale",
    "lab_available",
    "ring",
    "router_class",
    "sites",
]
