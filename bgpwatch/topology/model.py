"""What the configuration says the network should look like: sites, their prefixes, vantage points.

How a route counts toward a site
--------------------------------
Each site declares the prefixes it originates ("site prefixes").  A route held by a vantage
point counts toward a site prefix P when its prefix is P itself or a more-specific inside P:
a router that has 203.0.113.0/28 can reach part of 203.0.113.0/27, and a site announcing its
/27 as two /28s is still visible.  When site prefixes nest (one site's /24 holds another
site's /26), a route counts toward the longest site prefix containing it only.

A covering aggregate does NOT count: a /16 aggregate (or a default route) proves nothing
about the /26 inside it, which is exactly what disappears when a site dies behind an
aggregating transit.  Visibility is therefore about the site's own announcements.

Services are the exception, because they are about forwarding: a service prefix (often a
/32) is reachable from a vantage point that holds a route equal to it, inside it, or
covering it -- but a covering route counts only if it is at least as specific as the site
prefix that contains the service (no aggregates, no default route).  A service prefix
outside every site prefix accepts any covering route except a default route.

Anycast: a prefix listed by several sites (declared under ``anycast:``; an undeclared one
is accepted with a config warning and treated the same) has every such site as an owner.  It
is in each owner's ``expected`` prefixes, so a route to it counts toward the visibility of
every owner; the topology holds it reachable while any owner still announces it.

Cost: mapping a route to its site prefix takes one dict lookup per distinct site-prefix
length (usually one or two per family), so a full table of unrelated routes costs about a
dict lookup per route and touches nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bgpwatch.rib.prefix import MAX_LEN, format_prefix, parse_prefix, supernet

if TYPE_CHECKING:
    from bgpwatch.config import Config

PrefixId = tuple[int, int]  # (family, key)
_UNSEEN = object()
_RECENT = 512  # site_prefix answers remembered (a few UPDATEs' worth)


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One configured vantage point (a BGP session into a site)."""

    name: str
    address: str
    site: str
    peer_as: int


@dataclass(frozen=True, slots=True)
class WatchedInfo:
    """A ``watched_prefixes`` entry: a prefix bgpwatch protects beyond the sites' own."""

    prefix: PrefixId
    origins: frozenset[int]
    allow_more_specifics: bool


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """A named set of prefixes that must be reachable from the listed sites."""

    name: str
    prefixes: tuple[PrefixId, ...]
    required_from: tuple[str, ...]


class SiteModel:
    """Sites, expected prefixes, peers and services, indexed for the hot path."""

    def __init__(self, config: Config) -> None:
        self.sites: tuple[str, ...] = tuple(site.name for site in config.sites)
        self.expected: dict[str, tuple[PrefixId, ...]] = {}
        # First owner of each site prefix (old callers); ``owners`` holds all of them (anycast).
        self.owner: dict[int, dict[int, str]] = {4: {}, 6: {}}
        self.owners: dict[int, dict[int, tuple[str, ...]]] = {4: {}, 6: {}}
        self.peers: dict[str, PeerInfo] = {}
        self.peers_of_site: dict[str, tuple[str, ...]] = {}
        self.site_as: dict[str, frozenset[int]] = {}
        for site in config.sites:
            expected = []
            for text in site.prefixes:
                family, key = parse_prefix(text)
                self.owner[family].setdefault(key, site.name)
                owners = self.owners[family].get(key, ())
                if site.name not in owners:
                    self.owners[family][key] = (*owners, site.name)
                expected.append((family, key))
            self.expected[site.name] = tuple(expected)
            self.peers_of_site[site.name] = tuple(peer.address for peer in site.peers)
            self.site_as[site.name] = frozenset(peer.peer_as for peer in site.peers)
            for peer in site.peers:
                self.peers[peer.address] = PeerInfo(peer.name, peer.address, site.name, peer.peer_as)
        # Longest first, so the first hit is the most specific site prefix containing a route.
        self.lengths: dict[int, tuple[int, ...]] = {
            family: tuple(sorted({key & 0xFF for key in owner}, reverse=True))
            for family, owner in self.owner.items()
        }
        # (length, mask keeping the network bits of that length), longest first, for site_prefix.
        self._masks: dict[int, tuple[tuple[int, int], ...]] = {
            family: tuple(
                (n, ((1 << (8 + MAX_LEN[family])) - 1) ^ ((1 << (8 + MAX_LEN[family] - n)) - 1))
                for n in lengths
            )
            for family, lengths in self.lengths.items()
        }
        self._recent: dict[int, dict[int, int | None]] = {4: {}, 6: {}}  # site_prefix's last answers
        self.families: frozenset[int] = frozenset(f for f, owner in self.owner.items() if owner)
        self.sites_of_as: dict[int, tuple[str, ...]] = {}
        for name, asns in self.site_as.items():
            for asn in asns:
                self.sites_of_as[asn] = (*self.sites_of_as.get(asn, ()), name)
        self.services: tuple[ServiceInfo, ...] = tuple(
            ServiceInfo(s.name, tuple(parse_prefix(p) for p in s.prefixes), tuple(s.required_from))
            for s in getattr(config, "services", ())
        )
        self._build_service_index()
        self.watched: tuple[WatchedInfo, ...] = tuple(
            WatchedInfo(parse_prefix(w.prefix), frozenset(w.origins), bool(w.allow_more_specifics))
            for w in getattr(config, "watched_prefixes", None) or ()
        )

    def protected_prefixes(self) -> list[PrefixId]:
        """Return the prefixes bgpwatch protects, each once: the site prefixes (anycast ones included),
        then the watched prefixes, in config order.

        The one definition of "our prefixes": their origins are checked (origin_change), their RPKI
        validity (rpki_*), their more-specifics (more_specific), they are never bogons.
        """
        found = dict.fromkeys(prefix for _site, prefix in self.all_site_prefixes())
        found.update(dict.fromkeys(w.prefix for w in self.watched))
        return list(found)

    # -- site prefixes ----------------------------------------------------------------
    def site_prefix(self, family: int, key: int) -> int | None:
        """Return the site prefix a route counts toward (itself or the one containing it), or None."""
        owner = self.owner[family]
        if not owner:
            return None
        # The topology and two route detectors ask about each route of an UPDATE in turn.
        recent = self._recent[family]
        found = recent.get(key, _UNSEEN)
        if found is not _UNSEEN:
            return found
        found = None
        length = key & 0xFF
        # One AND, one OR and one dict lookup per distinct site-prefix length (hot path).
        for site_len, mask in self._masks[family]:
            if site_len <= length and (candidate := (key & mask) | site_len) in owner:
                found = candidate
                break
        if len(recent) >= _RECENT:
            recent.clear()
        recent[key] = found
        return found

    def owner_of(self, family: int, site_key: int) -> str:
        """Return the first site that declares a site prefix (one of several for anycast)."""
        return self.owner[family][site_key]

    def owners_of(self, family: int, site_key: int) -> tuple[str, ...]:
        """Return every site that declares a site prefix, in config order."""
        return self.owners[family][site_key]

    def is_anycast(self, family: int, site_key: int) -> bool:
        """Tell whether a site prefix is originated by more than one site."""
        owners = self.owners[family].get(site_key)
        return owners is not None and len(owners) > 1

    def anycast_prefixes(self) -> list[PrefixId]:
        """Return the site prefixes with more than one owner site."""
        return [(f, k) for f, owners in self.owners.items() for k, names in owners.items() if len(names) > 1]

    def all_site_prefixes(self) -> list[tuple[str, PrefixId]]:
        """Return (site, prefix) for every declared site prefix, in config order."""
        return [(site, prefix) for site in self.sites for prefix in self.expected[site]]

    # -- services ---------------------------------------------------------------------
    def _build_service_index(self) -> None:
        # covering[family][route key] -> service prefixes that this exact route reaches
        # (the service prefix itself and its allowed supernets); inside[family][service key]
        # for routes more specific than a service prefix.
        self.service_covering: dict[int, dict[int, tuple[int, ...]]] = {4: {}, 6: {}}
        self.service_keys: dict[int, set[int]] = {4: set(), 6: set()}
        for service in self.services:
            for family, key in service.prefixes:
                if key in self.service_keys[family]:
                    continue
                self.service_keys[family].add(key)
                anchor = self.site_prefix(family, key)
                floor = (anchor & 0xFF) if anchor is not None else 1
                covering = self.service_covering[family]
                for length in range(floor, (key & 0xFF) + 1):
                    route = supernet(family, key, length)
                    covering[route] = (*covering.get(route, ()), key)
        self.service_lengths: dict[int, tuple[int, ...]] = {
            family: tuple(sorted({key & 0xFF for key in keys})) for family, keys in self.service_keys.items()
        }

    def service_prefixes_reached(self, family: int, key: int) -> tuple[int, ...]:
        """Return the service prefixes that a route to ``key`` makes reachable (usually none)."""
        if not self.service_keys[family]:
            return ()
        found = self.service_covering[family].get(key, ())
        length = key & 0xFF
        keys = self.service_keys[family]
        for service_len in self.service_lengths[family]:
            if service_len >= length:
                break
            candidate = supernet(family, key, service_len)
            if candidate in keys:
                found = (*found, candidate)
        return found

    # -- views --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready summary of the model."""
        return {
            "sites": [
                {
                    "name": site,
                    "prefixes": [format_prefix(f, k) for f, k in self.expected[site]],
                    "peers": [self.peers[a].name for a in self.peers_of_site[site]],
                    "asns": sorted(self.site_as[site]),
                    "anycast": [format_prefix(f, k) for f, k in self.expected[site] if self.is_anycast(f, k)],
                }
                for site in self.sites
            ],
            "services": [
                {
                    "name": s.name,
                    "prefixes": [format_prefix(f, k) for f, k in s.prefixes],
                    "required_from": list(s.required_from),
                }
                for s in self.services
            ],
        }
