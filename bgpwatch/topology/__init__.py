"""Sites, vantage points and the inter-site topology derived from the RIB's changes."""

from __future__ import annotations

from bgpwatch.topology.graph import DOWN, LIVE, SUSPECTED, UNKNOWN, SiteView, Topology, VantagePoint
from bgpwatch.topology.model import PeerInfo, ServiceInfo, SiteModel

__all__ = [
    "DOWN",
    "LIVE",
    "SUSPECTED",
    "UNKNOWN",
    "PeerInfo",
    "ServiceInfo",
    "SiteModel",
    "SiteView",
    "Topology",
    "VantagePoint",
]
