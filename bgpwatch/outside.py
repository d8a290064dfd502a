"""The outside view: what the internet sees of our prefixes, through public route collectors (RIS Live).

bgpwatch's own sessions say what our sites see; RIS Live says what hundreds of public peers (ISPs
peering with RIPE's route collectors) see.  This module is the one owner of that second picture:

* the public peers' routes, in a RIB of their own (`OutsideView.rib`, peers keyed
  ``<collector>|<address>``, e.g. ``rrc00|2001:7f8::3b41:0:1``), never mixed with bgpwatch's
  vantage points: a public peer never makes a site down;
* per own prefix (a site prefix or a watched prefix, `OwnPrefix`), the public peers routing it
  now, each with its upstream (the AS just before the origin, prepends of the origin skipped),
  and the peers that routed it since the feed came up (the baseline a loss is measured against:
  RIS Live sends no table, only what changes);
* the feed's own state: up (subscribed) or down (closed, silent, refused), said by the RIS Live
  source (`bgpwatch.ingest.sources.rislive`), the one owner of the feed's liveness.  While the feed
  is down, nothing here changes: a silent feed is the feed's fault, never prefixes lost.

Filters (``inputs[type=rislive]``: ``hosts``, ``peers_allow``, ``peers_deny``) apply here, when a
frame is applied, so that a recording keeps everything and a replay follows the configuration.
Time: events are applied at their arrival time (bgpwatch's clock, the same as the inside view's);
the collector's own timestamp is kept as the sighting's ``seen``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bgpwatch.events import DOWN, Announce, Event, SessionState
from bgpwatch.ingest.rislive import RisLiveParser
from bgpwatch.rib import Rib, RouteChanges
from bgpwatch.rib.prefix import format_prefix, parse_prefix, supernet

if TYPE_CHECKING:
    from bgpwatch.config import Config
    from bgpwatch.rib import AttributePool, PathAttributes

PrefixId = tuple[int, int]  # (family, key)


def upstream_of(as_path: tuple[int, ...]) -> int | None:
    """Return the AS before the origin in a path (the origin's prepends skipped); None if there is none."""
    if not as_path:
        return None
    origin = as_path[-1]
    for asn in reversed(as_path):
        if asn != origin:
            return asn
    return None


@dataclass(slots=True)
class PublicPeer:
    """A peer of a public route collector, as RIS Live reports it."""

    key: str  # "<host>|<address>"
    host: str
    address: str
    asn: int | None
    first_seen: float
    last_seen: float
    up: bool = True

    @property
    def name(self) -> str:
        """Return how the peer is shown: collector, AS and address."""
        asn = f" AS{self.asn}" if self.asn is not None else ""
        return f"{self.host}{asn} {self.address}"


@dataclass(slots=True)
class Sighting:
    """One public peer's route to an own prefix."""

    upstream: int | None
    origin: int | None  # None: the path ends in an AS_SET
    path: tuple[int, ...]
    at: float  # when it was announced (arrival)


@dataclass(slots=True)
class OwnPrefix:
    """A prefix of ours (a site's, or watched) and what the outside sees of it."""

    family: int
    key: int
    text: str
    sites: tuple[str, ...]  # the sites originating it (none for a watched prefix)
    origins: frozenset[int]
    seeing: dict[str, Sighting] = field(default_factory=dict)  # public peer key -> its route now
    ever: dict[str, float] = field(default_factory=dict)  # public peers that routed it, last announced
    lost: dict[str, float] = field(default_factory=dict)  # peers that withdrew it -> when

    def upstream_peers(self) -> dict[int, set[str]]:
        """Return the public peers routing it through each upstream AS (routes with our origin only:
        behind a foreign origin, the AS before it is the hijacker's neighbour, not our upstream)."""
        found: dict[int, set[str]] = {}
        for peer, s in self.seeing.items():
            if s.upstream is not None and s.origin in self.origins:
                found.setdefault(s.upstream, set()).add(peer)
        return found

    def upstreams(self) -> Counter[int]:
        """Return how many public peers route it through each upstream AS (our origin only)."""
        return Counter({asn: len(peers) for asn, peers in self.upstream_peers().items()})


class OutsideView:
    """The public peers' routes and what they say of our prefixes (see the module doc)."""

    def __init__(self, config: Config, pool: AttributePool) -> None:
        self.pool = pool
        self.rib = Rib(pool)
        source = getattr(config, "rislive", None)
        limit = getattr(source, "max_frame_bytes", None)
        self.parser = RisLiveParser(pool, **({"max_line_bytes": limit} if limit else {}))
        self.peers: dict[str, PublicPeer] = {}
        self.frames = 0
        self.filtered: Counter[str] = Counter()  # events dropped by the filters, by filter
        self.feed_up = False
        self.feed_since: float | None = None
        self.feed_reason = "not connected yet"
        self.feed_changes = 0
        self.last_frame_at: float | None = None
        self.version = 0  # bumped whenever what the detectors read changed
        self.reconfigure(config)

    # -- configuration ------------------------------------------------------------------------
    def reconfigure(self, config: Config) -> None:
        """Take the own prefixes and the filters from a (re)loaded configuration."""
        source = getattr(config, "rislive", None)
        self.configured = source is not None
        if source is not None:
            self.parser.max_line_bytes = source.max_frame_bytes  # a reload may change it
        self.hosts = frozenset(source.hosts) if source is not None else frozenset()
        allow = list(source.peers_allow) if source is not None else []
        deny = list(source.peers_deny) if source is not None else []
        self.allow_addresses = frozenset(a for a in allow if isinstance(a, str))
        self.allow_asns = frozenset(a for a in allow if isinstance(a, int))
        self.deny_addresses = frozenset(a for a in deny if isinstance(a, str))
        self.deny_asns = frozenset(a for a in deny if isinstance(a, int))
        old = getattr(self, "own", {})
        own: dict[PrefixId, OwnPrefix] = {}
        sites_of: dict[PrefixId, list[str]] = {}
        origins: dict[PrefixId, set[int]] = {}
        for site in getattr(config, "sites", ()):
            asns = {peer.peer_as for peer in site.peers}
            for text in site.prefixes:
                prefix = parse_prefix(text)
                sites_of.setdefault(prefix, []).append(site.name)
                origins.setdefault(prefix, set()).update(asns)
        for entry in getattr(config, "watched_prefixes", ()) or ():
            prefix = parse_prefix(entry.prefix)
            sites_of.setdefault(prefix, [])
            origins.setdefault(prefix, set()).update(entry.origins)
        for prefix, sites in sites_of.items():
            family, key = prefix
            item = OwnPrefix(
                family, key, format_prefix(family, key), tuple(sites), frozenset(origins[prefix])
            )
            previous = old.get(prefix)
            if previous is not None:
                item.seeing, item.ever, item.lost = previous.seeing, previous.ever, previous.lost
            own[prefix] = item
        self.own = own
        self.lengths = {
            family: sorted({key & 0xFF for f, key in own if f == family}, reverse=True) for family in (4, 6)
        }
        self.version += 1

    def covering(self, family: int, key: int) -> OwnPrefix | None:
        """Return the most specific own prefix covering ``key`` (itself included), or None."""
        own = self.own
        length = key & 0xFF
        for candidate in self.lengths.get(family, ()):
            if candidate > length:
                continue
            found = own.get((family, supernet(family, key, candidate)))
            if found is not None:
                return found
        return None

    # -- input ----------------------------------------------------------------------------------
    def parse(self, frame: bytes, at: float) -> list[Event]:
        """Return the events of one frame that pass the filters, keyed by public peer, at arrival time.

        Raises `IngestError` (from the RIS Live parser) for an invalid frame.
        """
        self.frames += 1
        self.last_frame_at = at
        parser = self.parser
        events = parser.parse(frame)
        if not events:
            return events
        host = parser.host or "ris"
        if self.hosts and host not in self.hosts:
            self.filtered["host"] += len(events)
            return []
        address = events[0].peer
        asn = parser.peer_asn
        if (self.allow_addresses or self.allow_asns) and not (
            address in self.allow_addresses or asn in self.allow_asns
        ):
            self.filtered["allow"] += len(events)
            return []
        if address in self.deny_addresses or asn in self.deny_asns:
            self.filtered["deny"] += len(events)
            return []
        key = f"{host}|{address}"
        peer = self.peers.get(key)
        if peer is None:
            peer = self.peers[key] = PublicPeer(key, host, address, asn, at, at)
        else:
            peer.last_seen = at
            if asn is not None:
                peer.asn = asn
        for event in events:
            event.peer = key
            event.at = at
        return events

    def apply(self, event: Event) -> list[RouteChanges]:
        """Apply one accepted event to the public RIB and to the own prefixes; return the route changes."""
        changes = self.rib.apply(event)
        own = self.own
        touched = False
        if own:
            for change in changes:
                for key, _before, after in change.items:
                    item = own.get((change.family, key))
                    if item is not None:
                        touched = True
                        self._sighting(item, change.peer, after, change.at)
        kind = type(event)
        if kind is SessionState:
            touched = True
            peer = self.peers.get(event.peer)
            if peer is not None:
                peer.up = event.state != DOWN
            if event.state == DOWN:
                # The peer's session to the collector went: its fault, not our prefixes'.
                for item in own.values():
                    item.ever.pop(event.peer, None)
                    item.lost.pop(event.peer, None)
                self.rib.peers.pop(event.peer, None)
        elif kind is Announce:
            peer = self.peers.get(event.peer)
            if peer is not None:
                peer.up = True
        if touched:
            self.version += 1
        return changes

    @staticmethod
    def _sighting(item: OwnPrefix, peer: str, after: PathAttributes | None, at: float) -> None:
        if after is None:
            if item.seeing.pop(peer, None) is not None:
                item.lost[peer] = at
            return
        path = after.as_path
        if after.as_set:  # the origin is one of a set: the upstream is the last AS of the sequence
            origin, upstream = None, (path[-1] if path else None)
        else:
            origin, upstream = (path[-1] if path else None), upstream_of(path)
        item.seeing[peer] = Sighting(upstream, origin, path, at)
        item.ever[peer] = at
        item.lost.pop(peer, None)

    def feed_changed(self, up: bool, at: float, reason: str) -> bool:
        """Follow the feed's state; return True when it changed."""
        self.feed_reason = reason
        if up == self.feed_up and self.feed_since is not None:
            return False
        self.feed_up = up
        self.feed_since = at
        self.feed_changes += 1
        self.version += 1
        return True

    # -- views ------------------------------------------------------------------------------------
    def peer_name(self, key: str) -> str:
        """Return how a public peer is shown (its key when unknown)."""
        peer = self.peers.get(key)
        return peer.name if peer is not None else key

    def peer_as(self, key: str) -> int | None:
        """Return a public peer's AS, if known."""
        peer = self.peers.get(key)
        return peer.asn if peer is not None else None

    def prefix(self, text: str) -> OwnPrefix | None:
        """Return the own prefix written ``text`` (any spelling of it), or None."""
        try:
            return self.own.get(parse_prefix(text))
        except ValueError:
            return None

    def describe_prefix(self, item: OwnPrefix, samples: int = 10) -> dict[str, Any]:
        """Return what the outside sees of one own prefix, JSON-ready."""
        upstreams = item.upstreams()
        more_specifics = self.more_specifics(item)
        return {
            "prefix": item.text,
            "sites": list(item.sites),
            "expected_origins": sorted(item.origins),
            "public_peers": len(item.seeing),
            "public_peers_seen": len(item.ever),
            "lost": len(item.lost),
            "upstreams": {str(asn): count for asn, count in upstreams.most_common()},
            "origins": {
                str(origin): count
                for origin, count in Counter(
                    s.origin for s in item.seeing.values() if s.origin is not None
                ).most_common()
            },
            "lost_peers": self.lost_peer_names(item, samples),
            "more_specifics": more_specifics[:samples],
        }

    def lost_peer_names(self, item: OwnPrefix, samples: int = 10) -> list[str]:
        """Return the first public peers (by time) that withdrew an own prefix."""
        return [self.peer_name(p) for p in sorted(item.lost, key=item.lost.get)][:samples]

    def more_specifics(self, item: OwnPrefix) -> list[dict[str, Any]]:
        """Return the more-specifics of an own prefix that public peers route, with their origins."""
        found: dict[int, set[int]] = {}
        length = item.key & 0xFF
        for adj in self.rib.peers.values():
            table = adj.tables.get(item.family)
            if not table:
                continue
            for key, attrs in table.items():
                if (key & 0xFF) > length and supernet(item.family, key, length) == item.key:
                    origins = found.setdefault(key, set())
                    if attrs.as_path:
                        origins.add(attrs.as_path[-1])
        return [
            {"prefix": format_prefix(item.family, key), "origins": sorted(origins)}
            for key, origins in sorted(found.items())
        ]

    def feed_status(self) -> dict[str, Any]:
        """Return the feed's state, JSON-ready."""
        return {
            "configured": self.configured,
            "up": self.feed_up,
            "since": self.feed_since,
            "reason": self.feed_reason,
            "frames": self.frames,
            "last_frame_at": self.last_frame_at,
            "public_peers": len(self.peers),
            "rejected": dict(self.parser.errors),
            "filtered": dict(self.filtered),
        }

    def to_dict(self, prefix: str | None = None) -> dict[str, Any]:
        """Return the outside view (every own prefix, or one), JSON-ready."""
        items = list(self.own.values())
        if prefix is not None:
            found = self.prefix(prefix)
            items = [found] if found is not None else []
        return {"feed": self.feed_status(), "prefixes": [self.describe_prefix(i) for i in items]}
