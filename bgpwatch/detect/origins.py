"""Route-level detectors: who originates our prefixes, and routes or paths that should not exist.

All of them judge each route (peer, prefix) as the RIB's changes arrive, keep the offending
routes grouped by cause, and report a group only with the routes of *loaded* peers (initial
table in, see `DetectionEngine.peer_loaded`): nothing fires during a table load, a route that
is still there afterwards fires once the load is over, and MRT update files (no End-of-RIB,
sessions already running) are judged from their first UPDATE.  One alert per cause, never per
route: a hijack seen by 500 peers, or a full table through a private ASN, is one alert whose
annotations carry the counts (``routes``, ``peer_count``) and samples (``prefixes``,
``peers``, ``sample_path``).  A group resolves when its last route is gone (withdrawn, replaced,
or flushed with its session) and stays clear for ``keep`` seconds (default 60 here, not 2: in real
DFZ data an anomalous path often flaps back every 5-15 s, and each return must not page again).

- origin_change (critical): a route to a protected prefix -- a ``watched_prefixes`` entry or a
  site prefix, the prefix itself or a more-specific inside it -- whose origin AS is not expected.
  Expected: the entry's ``origins`` for a route inside a watched prefix (the longest covering
  entry; it wins over a site prefix it covers), else the ``peer_as`` of the site's peers.  An
  empty AS path (a route the iBGP peer originates itself) has the peer's AS as origin.  A path
  ending in an AS_SET (an aggregate) has an unknown origin among the set's members: it is
  accepted when any member is expected and reported as origin ``{a,b,...}`` otherwise.
  Labels ``{prefix: the watched or site prefix, origin: ASN}`` (+ ``site`` for a site prefix):
  one alert per (protected prefix, unexpected origin), whatever the number of peers and
  more-specifics; resolved when no route with that origin remains.
- more_specific (warning): a route strictly inside a watched prefix whose entry has
  ``allow_more_specifics: false`` (the longest covering entry decides, so a nested entry with
  ``allow_more_specifics: true`` is an exception; a route equal to a watched or site prefix is
  never unexpected), and with ``site_prefixes: true`` inside a site prefix too.  Labels
  ``{prefix: the watched one, more_specific}``; joins the origin_change incident of the same
  prefix when one is active (a more-specific hijack is both).
- bogon_route (warning): a route inside a special-purpose block (RFC 6890 and the usual bogon
  filters, `BOGONS`).  Routes equal to or inside a site prefix or a watched prefix are never
  bogons (the lab and the tests use documentation ranges for the operator's own prefixes), nor
  those inside ``ignore_prefixes``.  Labels ``{bogon: the block}``.
- reserved_asn (warning): an AS path (AS_SET members included) holding a reserved ASN
  (`RESERVED_ASNS`: 0, AS_TRANS, documentation, private, reserved, last).  Never flagged: the
  ASNs of the configured peers (``peer_as``), the collector's and peers' ``local_as``, the
  ``allowed_asns`` param, and the first ASN of a path when it is the sending peer's own AS (or
  its AS is unknown, as for MRT peers: an eBGP neighbour's own ASN is the operator's choice to
  peer with, not an anomaly of the path).  Labels ``{asn}``: one alert per reserved ASN.
- path_length_jump (info): a prefix's AS path from a peer grows by at least ``min_increase``
  hops in one UPDATE (an implicit replace; the length counts an AS_SET as one hop): a prepend
  typo or a leak through a detour.  The route stays flagged until its path is back within
  ``min_increase`` of the length before the jump, or it is withdrawn.  Labels ``{peer, site}``
  (``site`` only for a configured peer; MRT peers are named by address): one alert per peer.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.alerts.lifecycle import alert_key
from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.events import EndOfRib, SessionState
from bgpwatch.rib.prefix import MAX_LEN, format_prefix, parse_prefix

if TYPE_CHECKING:
    from bgpwatch.events import Event
    from bgpwatch.rib import RouteChanges
    from bgpwatch.rib.attributes import PathAttributes

SAMPLES = 10  # prefixes, peers listed in an alert's annotations
HEAD_BITS = {4: (8, 16), 6: (16, 40)}  # PrefixIndex's two-level filter: bits of each level
_FULL, _LONG = 1, 2
RouteId = tuple[str, int, int]  # (peer address, family, prefix key)
GroupKey = tuple[Any, ...]

# Special-purpose blocks that never belong in the DFZ (RFC 6890 registries, as bogon filters such
# as bgpfilterguide.nlnog.net list them), with what they are.
BOGONS: dict[str, str] = {
    "0.0.0.0/8": "this network (RFC 791)",
    "10.0.0.0/8": "private (RFC 1918)",
    "100.64.0.0/10": "shared CGN space (RFC 6598)",
    "127.0.0.0/8": "loopback (RFC 1122)",
    "169.254.0.0/16": "link local (RFC 3927)",
    "172.16.0.0/12": "private (RFC 1918)",
    "192.0.0.0/24": "IETF protocol assignments (RFC 6890)",
    "192.0.2.0/24": "documentation TEST-NET-1 (RFC 5737)",
    "192.88.99.0/24": "6to4 relay anycast (deprecated, RFC 7526)",
    "192.168.0.0/16": "private (RFC 1918)",
    "198.18.0.0/15": "benchmarking (RFC 2544)",
    "198.51.100.0/24": "documentation TEST-NET-2 (RFC 5737)",
    "203.0.113.0/24": "documentation TEST-NET-3 (RFC 5737)",
    "224.0.0.0/4": "multicast (RFC 5771)",
    "240.0.0.0/4": "reserved (RFC 1112)",
    "::/8": "loopback, unspecified, IPv4-mapped (RFC 4291)",
    "100::/64": "discard only (RFC 6666)",
    "2001:2::/48": "benchmarking (RFC 5180)",
    "2001:10::/28": "ORCHID (RFC 4843)",
    "2001:db8::/32": "documentation (RFC 3849)",
    "2002::/16": "6to4 (deprecated, RFC 7526)",
    "3ffe::/16": "6bone (returned, RFC 3701)",
    "fc00::/7": "unique local (RFC 4193)",
    "fe80::/10": "link local (RFC 4291)",
    "fec0::/10": "site local (deprecated, RFC 3879)",
    "ff00::/8": "multicast (RFC 4291)",
}

# Reserved AS numbers (IANA special-purpose AS registry), low, high, what.
RESERVED_ASNS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "AS0 (RFC 7607)"),
    (23456, 23456, "AS_TRANS (RFC 6793)"),
    (64496, 64511, "documentation (RFC 5398)"),
    (64512, 65534, "private (RFC 6996)"),
    (65535, 65535, "reserved (RFC 7300)"),
    (65536, 65551, "documentation (RFC 5398)"),
    (65552, 131071, "reserved (IANA)"),
    (4200000000, 4294967294, "private (RFC 6996)"),
    (4294967295, 4294967295, "reserved (RFC 7300)"),
)


def reserved_asn_kind(asn: int) -> str | None:
    """Return what a reserved ASN is reserved for, or None for an ordinary ASN."""
    if 131071 < asn < 4200000000 or (0 < asn < 64496 and asn != 23456):
        return None  # the common cases (32-bit and 16-bit public ASNs), kept cheap
    for low, high, what in RESERVED_ASNS:
        if low <= asn <= high:
            return what
    return None


def _check_prefix(value: Any) -> str | None:
    try:
        parse_prefix(value)
    except ValueError as exc:
        return f"expected a prefix such as 192.0.2.0/24, got {value!r} ({exc})"
    return None


class PrefixIndex:
    """Prefixes with a value each, looked up by the longest one covering (or equal to) a route."""

    def __init__(self, items: Iterable[tuple[int, int, Any]] = ()) -> None:
        self.table: dict[int, dict[int, Any]] = {4: {}, 6: {}}
        for family, key, value in items:
            self.table[family].setdefault(key, value)
        self.lengths = {f: tuple(sorted({k & 0xFF for k in t}, reverse=True)) for f, t in self.table.items()}
        # (length, mask keeping the network bits of that length), longest first: one AND, one OR
        # and one dict lookup per indexed length (hot path: every route goes through match).
        self._masks = {
            f: tuple((n, ((1 << (8 + MAX_LEN[f])) - 1) ^ ((1 << (8 + MAX_LEN[f] - n)) - 1)) for n in lengths)
            for f, lengths in self.lengths.items()
        }
        # A two-level filter ahead of the masks: most routes of a table are ruled out by one or two
        # lookups.  heads[first 8 (IPv4) / 16 (IPv6) bits] is 0 (no indexed prefix there), FULL (a
        # prefix shorter than the second level covers part of it: try the masks) or LONG (only
        # prefixes of at least 16 / 40 bits: the route's first 16 / 40 bits must be in `longs`).
        self._range_cache: dict[int, tuple[list[int], list[int]]] = {}
        self._heads: dict[int, tuple[int, bytearray, int, set[int]]] = {}
        for family, table in self.table.items():
            bits, long_bits = HEAD_BITS[family]
            top = MAX_LEN[family]
            heads = bytearray(1 << bits)
            longs: set[int] = set()
            for key in table:
                length, network = key & 0xFF, key >> 8
                first = network >> (top - bits)
                if length < bits:
                    span = 1 << (bits - length)
                    heads[first : first + span] = bytes([_FULL]) * span
                elif length < long_bits:
                    heads[first] = _FULL
                else:
                    heads[first] = heads[first] or _LONG
                    longs.add(network >> (top - long_bits))
            self._heads[family] = (8 + top - bits, heads, 8 + top - long_bits, longs)

    def __bool__(self) -> bool:
        return bool(self.table[4] or self.table[6])

    def match(self, family: int, key: int) -> tuple[int, Any] | None:
        """Return (prefix key, value) of the longest indexed prefix covering or equal to ``key``."""
        table = self.table[family]
        if not table:
            return None
        shift, heads, long_shift, longs = self._heads[family]
        head = heads[key >> shift]
        if not head or (head == _LONG and key >> long_shift not in longs):
            return None
        length = key & 0xFF
        for candidate_len, mask in self._masks[family]:
            if candidate_len <= length:
                candidate = (key & mask) | candidate_len
                value = table.get(candidate)
                if value is not None:
                    return candidate, value
        return None

    def select(self, family: int, items: list[tuple[int, Any, Any]]) -> list[tuple[int, Any, Any]]:
        """Return the ``(key, ...)`` items whose prefix an indexed prefix covers (or equals).

        Past the two-level filter, one bisection over the outermost indexed prefixes' address ranges
        (disjoint: prefixes nest or do not meet) instead of a lookup per indexed length.
        """
        if not self.table[family]:
            return []
        shift, heads, long_shift, longs = self._heads[family]
        starts, ends = self._ranges(family)
        top = MAX_LEN[family]
        found = []
        for item in items:
            key = item[0]
            head = heads[key >> shift]
            if not head or (head == _LONG and key >> long_shift not in longs):
                continue
            start = key >> 8
            i = bisect_right(starts, start) - 1
            if i >= 0 and start + (1 << (top - (key & 0xFF))) <= ends[i]:
                found.append(item)
        return found

    def _ranges(self, family: int) -> tuple[list[int], list[int]]:
        """Return the (starts, ends) of the outermost indexed prefixes' address ranges, sorted."""
        ranges = self._range_cache.get(family)
        if ranges is None:
            top = MAX_LEN[family]
            starts: list[int] = []
            ends: list[int] = []
            for start, end in sorted(
                ((k >> 8), (k >> 8) + (1 << (top - (k & 0xFF)))) for k in self.table[family]
            ):
                if ends and end <= ends[-1]:
                    continue  # nested in the previous outermost prefix
                starts.append(start)
                ends.append(end)
            ranges = self._range_cache[family] = (starts, ends)
        return ranges


def _path_length(attrs: PathAttributes) -> int:
    return len(attrs.as_path) + (1 if attrs.as_set else 0)


def _path_text(attrs: PathAttributes) -> list[Any]:
    path: list[Any] = list(attrs.as_path)
    if attrs.as_set:
        path.append(sorted(attrs.as_set))
    return path


class Group:
    """The routes that share one cause (one alert), by peer."""

    __slots__ = ("by_peer", "extra")

    def __init__(self) -> None:
        self.by_peer: dict[str, dict[tuple[int, int], Any]] = {}
        self.extra: dict[str, Any] = {}

    def add(self, route: RouteId, detail: Any) -> None:
        peer, family, key = route
        self.by_peer.setdefault(peer, {})[(family, key)] = detail

    def remove(self, route: RouteId) -> None:
        peer, family, key = route
        routes = self.by_peer.get(peer)
        if routes is None:
            return
        routes.pop((family, key), None)
        if not routes:
            del self.by_peer[peer]


class RouteDetector(Detector):
    """Base of the route-level detectors: per-route judgement, groups, load gating, publishing."""

    # A flapping route (real DFZ data: the same anomalous path back every 5-15 s) must not page at
    # every return: a route-level alert resolves only after a minute without offending routes.
    defaults: ClassVar[dict[str, Any]] = {"keep": 60.0}

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        self.routes: dict[RouteId, tuple[GroupKey, ...]] = {}  # offending route -> its groups
        self.groups: dict[GroupKey, Group] = {}
        self.published: set[GroupKey] = set()  # groups with an alert stated (pending or firing)
        self._loaded: dict[str, bool] = {}  # last load state seen per peer holding an offending route
        self._epoch = -1  # the session table's load_epoch when the load states were last checked
        self._setup()
        self._load_rib()

    def _load_rib(self) -> None:
        """Judge what the RIB already holds (a configuration reload rebuilds the detectors)."""
        from bgpwatch.rib import RouteChanges

        now = self.ctx.now
        if now is None:
            return
        changes = [
            RouteChanges(now, address, family, [(key, None, attrs) for key, attrs in table.items()])
            for address, family, table in self.ctx.tables()
        ]
        if changes:
            self.on_event(None, changes, now)  # type: ignore[arg-type]
        # Alerts of this kind whose routes are gone (or judged differently now) clear as usual.
        stated = {alert_key(self.kind, self._labels_only(g)[0]) for g in self.published}
        for key in list(self.ctx.book.active_keys()):
            if key[0] == self.kind and key not in stated:
                self.ctx.book.clear(key, now)

    # A judgement that depends on the peer and the attribute sets only, never on the prefix: judged
    # once per distinct (before, after) pair of a change instead of once per route.
    per_attributes: ClassVar[bool] = False

    # -- to implement ---------------------------------------------------------------------
    def _setup(self) -> None:
        """Build the indexes the judgement needs (from the engine's config and params)."""

    def scope(self) -> Iterable[tuple[int, int]] | None:
        """Return the prefixes whose routes (and more-specifics) alone this detector judges, or None
        for every route.  The engine passes a scoped detector only the routes in its scope: most of a
        table is skipped by one shared lookup per route instead of one judge call per detector."""
        return None

    def scope_exact(self) -> Iterable[tuple[int, int]]:
        """Return prefixes judged as well as ``scope``'s, these exactly (not their more-specifics)."""
        return ()

    def judge(
        self, peer: str, family: int, key: int, before: PathAttributes | None, after: PathAttributes
    ) -> Iterable[tuple[GroupKey, Any]]:
        """Return the groups a route now belongs to, each with a detail kept for the annotations."""
        return ()

    def describe(
        self, group_key: GroupKey, group: Group, peers: list[str]
    ) -> tuple[dict[str, str], str, dict]:
        """Return labels, summary and annotations of a group, counting only ``peers`` (loaded)."""
        raise NotImplementedError

    def cause_of(self, group_key: GroupKey, group: Group) -> Any:
        """Return the key of the alert this one is a consequence of, if any."""
        return None

    # -- machinery --------------------------------------------------------------------------
    def on_event(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        if not changes:
            if isinstance(event, SessionState | EndOfRib):
                self._recheck_loads(now)
            return
        touched: set[GroupKey] = set()
        routes, judge, per_attributes = self.routes, self.judge, self.per_attributes
        for change in changes:
            peer, family = change.peer, change.family
            judged: tuple[Any, Any, tuple] = (None, None, ())  # per_attributes: the last pair judged
            for key, before, after in change.items:
                if after is None:
                    new = ()
                elif not per_attributes:
                    new = judge(peer, family, key, before, after)
                elif after is judged[1] and before is judged[0]:
                    new = judged[2]  # the prefixes of one UPDATE share their attribute sets
                else:
                    new = tuple(judge(peer, family, key, before, after))
                    judged = (before, after, new)
                if not new and not routes:
                    continue  # the common case: an unremarkable route, and nothing offending held
                route = (peer, family, key)
                old = routes.get(route)
                if not old and not new:
                    continue
                new = tuple(new)
                for group_key in old or ():
                    group = self.groups.get(group_key)
                    if group is not None:
                        group.remove(route)
                        touched.add(group_key)
                for group_key, detail in new:
                    group = self.groups.get(group_key)
                    if group is None:
                        group = self.groups[group_key] = Group()
                    group.add(route, detail)
                    touched.add(group_key)
                if new:
                    self.routes[route] = tuple(g for g, _ in new)
                else:
                    del self.routes[route]
            if peer not in self._loaded:
                self._loaded[peer] = self.ctx.peer_loaded(peer)
        if isinstance(event, SessionState | EndOfRib):
            self._recheck_loads(now)  # republishes every group
            return
        # A load state changes only with the session table's epoch (a join mid-session, a state
        # change, a convergence): one integer compared per event, not every peer asked.
        epoch = self.ctx.load_epoch
        if epoch != self._epoch:
            self._epoch = epoch
            if self._recheck_loads(now):  # republished every group
                return
        for group_key in touched:
            self._publish(group_key, now)

    def _recheck_loads(self, now: float) -> bool:
        """Republish every group if a peer's load state changed; return True if one did."""
        changed = False
        for peer, was in list(self._loaded.items()):
            is_now = self.ctx.peer_loaded(peer)
            if is_now != was:
                self._loaded[peer] = is_now
                changed = True
        if changed:
            for group_key in list(self.groups):
                self._publish(group_key, now)
        return changed

    def evaluate(self, now: float) -> None:
        self._recheck_loads(now)

    def _publish(self, group_key: GroupKey, now: float) -> None:
        group = self.groups.get(group_key)
        loaded = self.ctx.peer_loaded
        peers = [p for p in group.by_peer if loaded(p)] if group is not None else []
        if not peers:
            if group is not None and not group.by_peer:
                del self.groups[group_key]
            if group_key in self.published:
                self.published.discard(group_key)
                labels, _, _ = self._labels_only(group_key)
                self.ctx.book.clear(alert_key(self.kind, labels), now)
            return
        labels, summary, annotations = self.describe(group_key, group, peers)
        subject = labels.get("prefix") or labels.get("peer") or labels.get("asn") or labels.get("bogon") or ""
        self.ctx.book.upsert(
            self.finding(labels, summary, subject, annotations, self.cause_of(group_key, group)), now
        )
        self.published.add(group_key)

    def _labels_only(self, group_key: GroupKey) -> tuple[dict[str, str], str, dict]:
        return self.describe(group_key, Group(), [])

    # -- helpers for describe -----------------------------------------------------------------
    def names(self, peers: list[str]) -> list[str]:
        """Return peer names (configured) or addresses, for the first SAMPLES peers."""
        return [self.ctx.peer_identity(p)[0] for p in peers[:SAMPLES]]

    @staticmethod
    def count(group: Group, peers: list[str]) -> int:
        """Return the number of routes of ``peers`` in a group."""
        return sum(len(group.by_peer[p]) for p in peers)

    @staticmethod
    def prefixes(group: Group, peers: list[str]) -> list[str]:
        """Return up to SAMPLES distinct prefixes of the group (routes of ``peers``)."""
        seen: dict[tuple[int, int], None] = {}
        for peer in peers:
            for route in group.by_peer[peer]:
                seen.setdefault(route)
                if len(seen) >= SAMPLES:
                    return [format_prefix(*r) for r in seen]
        return [format_prefix(*r) for r in seen]

    @staticmethod
    def details(group: Group, peers: list[str]) -> Iterator[Any]:
        """Yield the details of the group's routes (of ``peers``)."""
        for peer in peers:
            yield from group.by_peer[peer].values()

    def peer_as(self, peer: str) -> int | None:
        """Return the AS of a peer when known (config, or its last state change)."""
        return self.ctx.peer_identity(peer)[2]


class ProtectedPrefixes:
    """The prefixes bgpwatch protects (watched, site, anycast) and the origins expected for each.

    The one owner of "which origin may announce this": origin_change and rpki_invalid both ask it.
    """

    def __init__(self, ctx: Any) -> None:
        model = ctx.topology.model
        self.model = model
        self.watched = PrefixIndex((*w.prefix, w.origins) for w in model.watched)
        # An anycast prefix may be originated by any of its sites: the union of their ASes.
        self.anycast_origins: dict[tuple[int, int], frozenset[int]] = {
            prefix: frozenset().union(*(model.site_as[s] for s in model.owners_of(*prefix)))
            for prefix in model.anycast_prefixes()
        }

    def scope(self) -> list[tuple[int, int]]:
        """Return the protected prefixes (watched and site prefixes): ``expected`` is None outside them."""
        return self.model.protected_prefixes()

    def expected(self, family: int, key: int) -> tuple[int, int, frozenset[int], str | None] | None:
        """Return (family, anchor prefix, expected origins, site) for a route, None when unprotected."""
        found = self.watched.match(family, key)
        site_key = self.model.site_prefix(family, key)
        site = self.model.owner_of(family, site_key) if site_key is not None else None
        if found is not None:
            anchor, origins = found
            owner = site if site_key == anchor else None
            return family, anchor, origins, owner
        if site_key is None:
            return None
        origins = self.anycast_origins.get((family, site_key)) if self.anycast_origins else None
        return family, site_key, origins or self.model.site_as[site], site


@register
class OriginChangeDetector(RouteDetector):
    """A protected prefix (watched or site) announced with an unexpected origin AS."""

    name = "origin_change"
    kind = "origin_change"
    order = 40
    defaults: ClassVar[dict[str, Any]] = {"severity": "critical", "keep": 60.0}

    def _setup(self) -> None:
        self.protected = ProtectedPrefixes(self.ctx)
        self.model = self.protected.model
        self.expected = self.protected.expected

    def scope(self) -> Iterable[tuple[int, int]]:
        return self.protected.scope()

    def judge(
        self, peer: str, family: int, key: int, before: PathAttributes | None, after: PathAttributes
    ) -> Iterable[tuple[GroupKey, Any]]:
        rule = self.expected(family, key)
        if rule is None:
            return ()
        _, anchor, origins, site = rule
        if after.as_set:
            if origins & set(after.as_set):
                return ()
            origin = "{" + ",".join(str(a) for a in sorted(after.as_set)) + "}"
        else:
            asn = after.as_path[-1] if after.as_path else self.peer_as(peer)
            if asn is None or asn in origins:
                return ()
            origin = str(asn)
        return (((family, anchor, origin, site, tuple(sorted(origins))), after),)

    def describe(
        self, group_key: GroupKey, group: Group, peers: list[str]
    ) -> tuple[dict[str, str], str, dict]:
        family, anchor, origin, site, origins = group_key
        prefix = format_prefix(family, anchor)
        labels = {"prefix": prefix, "origin": origin}
        if site is not None:
            labels["site"] = site
        if not peers:
            return labels, "", {}
        routes = self.count(group, peers)
        prefixes = self.prefixes(group, peers)
        sample = next(self.details(group, peers))
        what = f"site {site} prefix" if site is not None else "watched prefix"
        if site is not None and self.model.is_anycast(family, anchor):
            what = f"anycast prefix (sites {', '.join(self.model.owners_of(family, anchor))})"
        expected = ", ".join(f"AS{a}" for a in origins)
        shown = ", ".join(prefixes) + (", ..." if len(prefixes) == SAMPLES else "")
        summary = (
            f"origin change: {what} {prefix} announced with origin AS{origin} (expected {expected}) "
            f"by {len(peers)} peer{'s' if len(peers) != 1 else ''}: {shown}"
        )
        annotations = {
            "origin": origin,
            "expected_origins": list(origins),
            "routes": routes,
            "peer_count": len(peers),
            "peers": self.names(peers),
            "prefixes": prefixes,
            "sample_path": _path_text(sample),
        }
        return labels, summary, annotations


@register
class MoreSpecificDetector(RouteDetector):
    """An unexpected more-specific of a watched prefix (or, if asked, of a site prefix)."""

    name = "more_specific"
    kind = "more_specific"
    order = 41
    params: ClassVar[dict[str, Param]] = {
        "site_prefixes": Param(bool, False, "also report more-specifics of the site prefixes"),
    }

    def _setup(self) -> None:
        model = self.ctx.topology.model
        self.model = model
        self.watched = PrefixIndex((*w.prefix, w.allow_more_specifics) for w in model.watched)

    def scope(self) -> Iterable[tuple[int, int]]:
        if self.p["site_prefixes"]:
            return self.model.protected_prefixes()
        return [w.prefix for w in self.model.watched]

    def judge(
        self, peer: str, family: int, key: int, before: PathAttributes | None, after: PathAttributes
    ) -> Iterable[tuple[GroupKey, Any]]:
        found = self.watched.match(family, key)
        site_key = self.model.site_prefix(family, key)
        if site_key == key:
            return ()  # a declared site prefix is expected
        if found is not None:
            anchor, allowed = found
            if anchor == key or allowed:
                return ()
        elif site_key is not None and self.p["site_prefixes"]:
            anchor = site_key
        else:
            return ()
        return (((family, anchor, key), after),)

    def describe(
        self, group_key: GroupKey, group: Group, peers: list[str]
    ) -> tuple[dict[str, str], str, dict]:
        family, anchor, key = group_key
        labels = {"prefix": format_prefix(family, anchor), "more_specific": format_prefix(family, key)}
        if not peers:
            return labels, "", {}
        origins = sorted({_origin_text(a) for a in self.details(group, peers)})
        summary = (
            f"unexpected more-specific {labels['more_specific']} of {labels['prefix']} "
            f"(origin {', '.join(origins)}) seen by {len(peers)} peer{'s' if len(peers) != 1 else ''}"
        )
        annotations = {
            "origins": origins,
            "peer_count": len(peers),
            "peers": self.names(peers),
            "sample_path": _path_text(next(self.details(group, peers))),
        }
        return labels, summary, annotations

    def cause_of(self, group_key: GroupKey, group: Group) -> Any:
        family, anchor, _ = group_key
        prefix = format_prefix(family, anchor)
        for key in self.ctx.book.active_keys():
            if key[0] == "origin_change" and ("prefix", prefix) in key[1]:
                return key
        return None


def _origin_text(attrs: PathAttributes) -> str:
    if attrs.as_set:
        return "{" + ",".join(str(a) for a in sorted(attrs.as_set)) + "}"
    return f"AS{attrs.as_path[-1]}" if attrs.as_path else "local"


@register
class BogonRouteDetector(RouteDetector):
    """A route to a special-purpose (bogon) address block."""

    name = "bogon_route"
    kind = "bogon_route"
    order = 42
    params: ClassVar[dict[str, Param]] = {
        "ignore_prefixes": Param(
            list,
            [],
            "prefixes whose routes (and more-specifics) are never bogons",
            item=Param(str, "", "a prefix", validate=_check_prefix),
        ),
    }

    def _setup(self) -> None:
        self.bogons = PrefixIndex((*parse_prefix(p), p) for p in BOGONS)
        own = [(family, key, True) for family, key in self.ctx.topology.model.protected_prefixes()]
        own += [(*parse_prefix(p), True) for p in self.p["ignore_prefixes"]]
        self.exempt = PrefixIndex(own)
        # First octet (IPv4) / first 16 bits (IPv6) of every block: most routes are ruled out by one lookup.
        self.heads: dict[int, set[int]] = {4: set(), 6: set()}
        for family, table in self.bogons.table.items():
            bits = 8 if family == 4 else 16
            for key in table:
                length = key & 0xFF
                network = key >> 8
                shift = MAX_LEN[family] - bits
                if length >= bits:
                    self.heads[family].add(network >> shift)
                else:
                    first = network >> shift
                    self.heads[family].update(range(first, first + (1 << (bits - length))))

    def scope(self) -> Iterable[tuple[int, int]]:
        """The bogon blocks less the exempt prefixes: a lab or an operator numbering its own sites (or
        a whole table, bench/e2e.py) in documentation space costs no judgement per route."""
        exempt = {
            family: [ipaddress.ip_network(format_prefix(family, key)) for key in table]
            for family, table in self.exempt.table.items()
        }
        found = []
        for family, table in self.bogons.table.items():
            for key in table:
                found += _exclude(ipaddress.ip_network(format_prefix(family, key)), exempt[family])
        return [parse_prefix(str(network)) for network in found]

    def scope_exact(self) -> Iterable[tuple[int, int]]:
        """The routes inside a block that cover an exempt prefix (the block itself, its halves...):
        bogons still, yet outside every network of ``scope``."""
        exempt = {
            family: [ipaddress.ip_network(format_prefix(family, key)) for key in table]
            for family, table in self.exempt.table.items()
        }
        found = set()
        for family, table in self.bogons.table.items():
            for key in table:
                block = ipaddress.ip_network(format_prefix(family, key))
                for hole in exempt[family]:
                    if hole.subnet_of(block) and hole != block:
                        for length in range(block.prefixlen, hole.prefixlen):
                            network = hole.supernet(new_prefix=length)
                            if not any(network.subnet_of(other) for other in exempt[family]):
                                found.add(parse_prefix(str(network)))
        return sorted(found)

    def judge(
        self, peer: str, family: int, key: int, before: PathAttributes | None, after: PathAttributes
    ) -> Iterable[tuple[GroupKey, Any]]:
        shift = 8 + MAX_LEN[family] - (8 if family == 4 else 16)
        if (key >> shift) not in self.heads[family]:
            return ()
        found = self.bogons.match(family, key)
        if found is None or self.exempt.match(family, key) is not None:
            return ()
        return ((found[1], after),)

    def describe(
        self, group_key: GroupKey, group: Group, peers: list[str]
    ) -> tuple[dict[str, str], str, dict]:
        block = group_key
        labels = {"bogon": str(block)}
        if not peers:
            return labels, "", {}
        routes = self.count(group, peers)
        prefixes = self.prefixes(group, peers)
        origins = sorted({_origin_text(a) for a in islice(self.details(group, peers), 1000)})
        summary = (
            f"bogon route: {', '.join(prefixes)}{'' if prefixes == [block] else f' inside {block}'} "
            f"({BOGONS[block]}), {routes} route"
            f"{'s' if routes != 1 else ''} from {len(peers)} peer{'s' if len(peers) != 1 else ''}, "
            f"origin {', '.join(origins[:SAMPLES])}"
        )
        annotations = {
            "block": block,
            "what": BOGONS[block],
            "routes": routes,
            "prefixes": prefixes,
            "origins": origins[:SAMPLES],
            "peer_count": len(peers),
            "peers": self.names(peers),
            "sample_path": _path_text(next(self.details(group, peers))),
        }
        return labels, summary, annotations


def _exclude(block: Any, holes: list[Any]) -> list[Any]:
    """Return the networks covering ``block`` less every network of ``holes`` (CIDR subtraction)."""
    left = [block]
    for hole in holes:
        rest = []
        for network in left:
            if network.subnet_of(hole):
                continue  # the whole network is exempt
            rest += network.address_exclude(hole) if hole.subnet_of(network) else [network]
        left = rest
    return left


@register
class ReservedAsnDetector(RouteDetector):
    """An AS path holding a reserved, private or documentation ASN that is not the operator's own."""

    name = "reserved_asn"
    kind = "reserved_asn"
    order = 43
    per_attributes = True  # the path and the peer decide
    params: ClassVar[dict[str, Param]] = {
        "allowed_asns": Param(
            list,
            [],
            "ASNs never flagged (besides the configured peers' and local ASNs)",
            item=Param(int, 0, "an ASN", 0, 4294967295),
        ),
    }

    def _setup(self) -> None:
        config = self.ctx.config
        allowed = {config.collector.local_as}
        for peer in config.peers:
            allowed.add(peer.peer_as)
            if peer.local_as is not None:
                allowed.add(peer.local_as)
        allowed.update(self.p["allowed_asns"])
        self.allowed = frozenset(allowed)
        self._cache: dict[tuple[Any, ...], tuple[int, ...]] = {}

    def offending(self, path: tuple[int, ...], as_set: tuple[int, ...], skip_first: bool) -> tuple[int, ...]:
        """Return the reserved ASNs of a path that are not allowed (cached per distinct path)."""
        cache_key = (path, as_set, skip_first)
        found = self._cache.get(cache_key)
        if found is not None:
            return found
        hops = path[1:] if skip_first else path
        if not as_set and (not hops or (min(hops) > 0 and max(hops) < 64496 and 23456 not in hops)):
            return ()  # public 16-bit ASNs only: the common case, tested in C
        allowed = self.allowed
        found = tuple(
            dict.fromkeys(
                a for a in (*hops, *as_set) if a not in allowed and reserved_asn_kind(a) is not None
            )
        )
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[cache_key] = found
        return found

    def judge(
        self, peer: str, family: int, key: int, before: PathAttributes | None, after: PathAttributes
    ) -> Iterable[tuple[GroupKey, Any]]:
        path = after.as_path
        if not path and not after.as_set:
            return ()
        peer_as = self.peer_as(peer)
        skip_first = bool(path) and (peer_as is None or path[0] == peer_as)
        return [(asn, after) for asn in self.offending(path, after.as_set, skip_first)]

    def describe(
        self, group_key: GroupKey, group: Group, peers: list[str]
    ) -> tuple[dict[str, str], str, dict]:
        asn = group_key
        labels = {"asn": str(asn)}
        if not peers:
            return labels, "", {}
        routes = self.count(group, peers)
        prefixes = self.prefixes(group, peers)
        as_origin = sum(
            1 for a in self.details(group, peers) if not a.as_set and a.as_path and a.as_path[-1] == asn
        )
        shown = ", ".join(prefixes) + (", ..." if len(prefixes) == SAMPLES else "")
        where = (
            "as origin"
            if as_origin == routes
            else ("in transit" if not as_origin else "as origin and in transit")
        )
        summary = (
            f"reserved AS{asn} ({reserved_asn_kind(asn)}) {where} in the AS path of {routes} route"
            f"{'s' if routes != 1 else ''} from {len(peers)} peer{'s' if len(peers) != 1 else ''}: {shown}"
        )
        annotations = {
            "asn": asn,
            "what": reserved_asn_kind(asn),
            "routes": routes,
            "as_origin": as_origin,
            "prefixes": prefixes,
            "peer_count": len(peers),
            "peers": self.names(peers),
            "sample_path": _path_text(next(self.details(group, peers))),
        }
        return labels, summary, annotations


@register
class PathLengthJumpDetector(RouteDetector):
    """A prefix's AS path from one peer grows by many hops at once."""

    name = "path_length_jump"
    kind = "path_length_jump"
    order = 44
    defaults: ClassVar[dict[str, Any]] = {"severity": "info", "keep": 60.0}
    params: ClassVar[dict[str, Param]] = {
        "min_increase": Param(int, 5, "AS hops a path must grow by in one UPDATE", 1, 1000),
    }

    def judge(
        self, peer: str, family: int, key: int, before: PathAttributes | None, after: PathAttributes
    ) -> Iterable[tuple[GroupKey, Any]]:
        group = self.groups.get(peer)
        held = group.by_peer.get(peer, {}).get((family, key)) if group is not None else None
        if held is not None:
            baseline = held[0]
        elif before is not None:
            baseline = _path_length(before)
        else:
            return ()
        if _path_length(after) - baseline < self.p["min_increase"]:
            return ()
        previous = held[2] if held is not None else _path_text(before)  # type: ignore[arg-type]
        return ((peer, (baseline, after, previous)),)

    def describe(
        self, group_key: GroupKey, group: Group, peers: list[str]
    ) -> tuple[dict[str, str], str, dict]:
        peer = group_key
        name, site, _ = self.ctx.peer_identity(peer)
        labels = {"peer": name}
        if site is not None:
            labels["site"] = site
        if not peers:
            return labels, "", {}
        routes = self.count(group, peers)
        prefixes = self.prefixes(group, peers)
        baseline, after, previous = next(self.details(group, peers))
        growth = max(_path_length(a) - b for b, a, _ in islice(self.details(group, peers), 1000))
        shown = ", ".join(prefixes) + (", ..." if len(prefixes) == SAMPLES else "")
        summary = (
            f"AS path length jump: {routes} route{'s' if routes != 1 else ''} from {name} grew by up to "
            f"{growth} AS hops at once: {shown}"
        )
        annotations = {
            "routes": routes,
            "max_increase": growth,
            "prefixes": prefixes,
            "sample_path_before": previous,
            "sample_path": _path_text(after),
        }
        return labels, summary, annotations
