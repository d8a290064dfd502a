"""Network-namespace lab (BIRD 2 routers around a collector namespace) for tests and benchmarks."""

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
)

__all__ = [
    "BULK_V4_CAPACITY",
    "BULK_V6_CAPACITY",
    "DEFAULT_SITES",
    "Addresses",
    "Lab",
    "LabError",
    "SiteSpec",
    "bulk_v4_prefixes",
    "bulk_v6_prefixes",
    "cleanup_stale",
    "lab_available",
]
