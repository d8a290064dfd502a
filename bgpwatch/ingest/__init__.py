"""Inputs normalised at the edge: ExaBGP JSON lines become typed `bgpwatch.events`."""

from __future__ import annotations

from bgpwatch.ingest.exabgp_json import (
    DEFAULT_MAX_LINE_BYTES,
    IGNORED_TYPES,
    REASONS,
    ExaBGPJsonParser,
    IngestError,
)

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "IGNORED_TYPES",
    "REASONS",
    "ExaBGPJsonParser",
    "IngestError",
]
