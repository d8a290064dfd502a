"""path_detour: an inter-site link stopped carrying routes while its sites still reach each other.

An inter-site adjacency is a pair of sites (X, Y) whose ASes are adjacent on the AS paths of
routes to site prefixes (the topology's ``as_edges``).  The detector learns the *direct* ones:
an adjacency that carried routes for ``learn_after`` seconds while the network was whole (one
island, every site live and not settling, the collector healthy, no detour pending or firing).
When a learned adjacency carries no route any more while both its sites are live, in the same
island and at least one of them has an active vantage point, the traffic between them takes a
longer path: a warning, labels {"link": "X-Y"} (sites in config order), root of its own incident
(a cut link is a root cause) unless one of its sites is down or lost its session to bgpwatch (then
it joins that incident).  It resolves when the adjacency carries routes again.

What it leaves to the others: a site down or a split (a site not live, or the two sites in
different islands) is not a detour and ends the condition; a collector fault freezes it (nothing
new fires, what fires stays).  After the two sites were apart (a split, a site back) they are
judged only ``join_grace`` seconds later, while their inter-site sessions come back one by one.

Times come from the stream: the topology marks itself dirty when an AS adjacency appears or
disappears, so the engine evaluates this detector right after the event that moved the last route
off a link (or brought one back), whatever the tick rate; no per-event hook (hot path).
``for`` is 2 s: path hunting on a ring lasts 50-560 ms (lab NOTES section 6).

Limits: an AS shared by several sites says nothing about which site a path crosses, so its
adjacencies are ignored; an iBGP design (every site in one AS) has no inter-site AS adjacency at
all and this detector stays silent.  Adjacencies through an AS of no site (a transit provider)
are not inter-site links.  Learning starts afresh at each start or reload, seeded by the detours
still active in the alert book (restored after a restart, or carried over a reload).
"""

from __future__ import annotations

from typing import Any, ClassVar

from bgpwatch.alerts.lifecycle import alert_key
from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.topology import LIVE

SitePair = tuple[str, str]
AsPair = tuple[int, int]


class _Link:
    """What is known about one learned inter-site adjacency."""

    __slots__ = ("as_pairs", "carrying", "routes", "lost_at")

    def __init__(self, as_pairs: tuple[AsPair, ...], routes: int) -> None:
        self.as_pairs = as_pairs
        self.carrying = routes > 0
        self.routes = routes  # routes it carried when the network was last seen whole
        self.lost_at: float | None = None  # when its last route moved off it


@register
class PathDetourDetector(Detector):
    """A learned inter-site adjacency carries no routes while its sites still reach each other."""

    name = "path_detour"
    kind = "path_detour"
    order = 25  # after the site detectors: a split or a site down is theirs
    defaults: ClassVar[dict[str, Any]] = {"for": 2.0}
    params: ClassVar[dict[str, Param]] = {
        "learn_after": Param(
            float, 5.0, "seconds an adjacency must carry routes in a whole network to be learned", 0, 86400
        ),
        "join_grace": Param(
            float, 10.0, "seconds two sites must be together again before their link is judged", 0, 3600
        ),
    }

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        model = ctx.model
        self._rank = {site: i for i, site in enumerate(model.sites)}
        # Only ASes of exactly one site tell which site a path crosses.
        own = {asn: sites[0] for asn, sites in model.sites_of_as.items() if len(sites) == 1}
        self._pair_of_as: dict[AsPair, SitePair] = {}
        as_pairs: dict[SitePair, list[AsPair]] = {}
        for a, site_a in own.items():
            for b, site_b in own.items():
                if a < b and site_a != site_b:
                    pair = self._pair(site_a, site_b)
                    self._pair_of_as[(a, b)] = pair
                    as_pairs.setdefault(pair, []).append((a, b))
        self._as_pairs = {pair: tuple(sorted(found)) for pair, found in as_pairs.items()}
        self.learned: dict[SitePair, _Link] = {}
        self._carried_since: dict[SitePair, float] = {}  # not learned yet: carrying in a whole network since
        self._judged_since: dict[SitePair, float] = {}  # learned: its sites together and judgeable since
        self._apart_at: dict[SitePair, float] = {}  # learned, judged, but its sites apart since
        self._seeded: set[SitePair] = set()  # learned from an active alert, not judged yet

    def _pair(self, x: str, y: str) -> SitePair:
        return (x, y) if self._rank[x] < self._rank[y] else (y, x)

    @staticmethod
    def _label(pair: SitePair) -> dict[str, str]:
        return {"link": f"{pair[0]}-{pair[1]}"}

    # -- hooks ----------------------------------------------------------------------------
    def evaluate(self, now: float) -> None:
        self._observe(now)
        self._seed_from_book(now)
        topology = self.ctx.topology
        states = topology.states
        book = self.ctx.book
        degraded = bool(self.ctx.collector_lost) or book.is_active(alert_key("collector_degraded", {}))
        island_of = {site: i for i, island in enumerate(topology.islands) for site in island}

        def together(x: str, y: str) -> bool:
            vx, vy = states[x], states[y]
            return (
                vx.state == LIVE
                and vy.state == LIVE
                and vx.settle_until is None
                and vy.settle_until is None
                and x in island_of
                and island_of[x] == island_of.get(y)
                and (vx.observed or vy.observed)
            )

        wobble = float(self.p["for"])
        grace = float(self.p["join_grace"])
        for pair in self.learned:
            if not degraded and together(*pair):
                apart = self._apart_at.pop(pair, None)
                if pair in self._seeded:
                    # Taken from an alert restored after a restart: judged at once (the re-learn decides).
                    self._seeded.discard(pair)
                    self._judged_since[pair] = now - grace
                elif apart is not None and now - apart > wobble:
                    self._judged_since.pop(pair, None)  # really apart: a rejoin, judged after the grace
                self._judged_since.setdefault(pair, now)
            elif pair in self._judged_since:
                # Apart for less than `for` (a site state flickering during path hunting) is no rejoin.
                self._apart_at.setdefault(pair, now)
        self._learn(now, degraded, len(topology.islands) == 1, together)

        findings = []
        for pair, link in self.learned.items():
            if link.carrying:
                continue
            judged = self._judged_since.get(pair)
            if judged is None or pair in self._apart_at or now < judged + grace:
                continue
            since = max(link.lost_at if link.lost_at is not None else now, judged + grace)
            findings.append(self._finding(pair, link, since))
        if degraded:
            # Freeze: nothing new fires while bgpwatch's own view is broken, what fires stays.
            book.sync(self.kind, (), now, scope=lambda alert: alert.fired_at is None)
            return
        self.sync(findings, now)

    # -- learning ---------------------------------------------------------------------------
    def _observe(self, now: float) -> None:
        """Note which learned adjacencies carry routes now (a change happened at ``now``: see the module doc).

        A detour ends at the event that brought a route back onto the link, even in a recording
        with no event (so no tick) for a while after it.
        """
        edges = self.ctx.topology.as_edges
        for pair, link in self.learned.items():
            routes = 0
            for as_pair in link.as_pairs:
                routes += edges.get(as_pair, 0)
            if routes:
                if not link.carrying:
                    link.carrying, link.lost_at = True, None
                    key = alert_key(self.kind, self._label(pair))
                    if self.ctx.book.is_active(key):
                        self.ctx.book.clear(key, now)
            elif link.carrying:
                link.carrying, link.lost_at = False, now

    def _seed_from_book(self, now: float) -> None:
        """Take as learned the links of detours still active (restored after a restart, or a reload)."""
        for kind, labels in self.ctx.book.active_keys():
            if kind != self.kind:
                continue
            link = dict(labels).get("link", "")
            # Site names may hold a dash: try every split into two known sites.
            pairs = [
                (link[:i], link[i + 1 :])
                for i, char in enumerate(link)
                if char == "-" and link[:i] in self._rank and link[i + 1 :] in self._rank
            ]
            if len(pairs) != 1:
                continue
            pair = self._pair(*pairs[0])
            if pair not in self.learned and pair in self._as_pairs:
                self.learned[pair] = _Link(self._as_pairs[pair], 0)
                self._seeded.add(pair)
                self._observe(now)

    def _learn(self, now: float, degraded: bool, one_island: bool, together: Any) -> None:
        topology = self.ctx.topology
        whole = (
            not degraded
            and one_island
            and all(v.state == LIVE and v.settle_until is None for v in topology.states.values())
            and all(link.carrying for link in self.learned.values())
            and not any(kind == self.kind for kind, _ in self.ctx.book.active_keys())
        )
        if not whole:
            self._carried_since.clear()  # learning needs a whole network throughout
            return
        edges = topology.as_edges
        for link in self.learned.values():
            # What it carries in a whole network (not midway through a cut, seen event by event).
            link.routes = sum(edges.get(as_pair, 0) for as_pair in link.as_pairs)
        carried: dict[SitePair, int] = {}
        for as_pair, routes in topology.as_edges.items():
            pair = self._pair_of_as.get(as_pair)
            if pair is not None and pair not in self.learned:
                carried[pair] = carried.get(pair, 0) + routes
        for pair in [p for p in self._carried_since if p not in carried]:
            del self._carried_since[pair]
        after = float(self.p["learn_after"])
        for pair, routes in carried.items():
            # From now, not from the last route change: it must carry routes while the network is whole.
            since = self._carried_since.setdefault(pair, now)
            if now - since >= after:
                del self._carried_since[pair]
                self.learned[pair] = _Link(self._as_pairs[pair], routes)
                if together(*pair):
                    self._judged_since[pair] = now - float(self.p["join_grace"])

    # -- reporting ----------------------------------------------------------------------------
    def _finding(self, pair: SitePair, link: _Link, since: float) -> Any:
        x, y = pair
        name = f"{x}-{y}"
        avoid = frozenset(link.as_pairs)
        detour = self._detour(x, y, avoid) or self._detour(y, x, avoid)
        if detour is not None:
            source, target, hops = detour
            via = ", ".join(self._site_of(asn) for asn in hops[1:-1]) or "another path"
            path = " ".join(str(asn) for asn in hops)
            summary = f"link {name} carries no routes: {source} reaches {target} via {via} ({path})"
        else:
            summary = (
                f"link {name} carries no routes ({link.routes} before): {x} and {y} still reach "
                "each other over a longer path"
            )
        annotations = {
            "sites": [x, y],
            "as_adjacencies": [f"{a}-{b}" for a, b in link.as_pairs],
            "routes_before": link.routes,
            "detour": " ".join(str(asn) for asn in detour[2]) if detour is not None else None,
        }
        # A link that went quiet because one of its sites is dying (graceful restart keeping its routes
        # stale elsewhere, bgpwatch's session to it lost) belongs to that site's incident.
        cause = None
        for site in (x, y):
            cause = (
                cause
                or self.cause_if_active("site_down", {"site": site})
                or next(
                    (
                        key
                        for vp in self.ctx.topology.vps_of_site[site]
                        if (key := self.cause_if_active("session_down", {"peer": vp.info.name, "site": site}))
                    ),
                    None,
                )
            )
        finding = self.finding(self._label(pair), summary, name, annotations, cause, since=since)
        finding.title = f"link {name} carries no routes (detour)"
        return finding

    def _site_of(self, asn: int) -> str:
        sites = self.ctx.model.sites_of_as.get(asn, ())
        return sites[0] if len(sites) == 1 else f"AS{asn}"

    def _detour(
        self, source: str, target: str, avoid: frozenset[AsPair]
    ) -> tuple[str, str, tuple[int, ...]] | None:
        """Return the AS path one of ``source``'s vantage points has to a prefix of ``target`` around the link."""
        model = self.ctx.model
        addresses = set(model.peers_of_site[source])
        wanted = model.expected[target]
        for address, family, table in self.ctx.tables():
            if address not in addresses or not self.ctx.topology.vps[address].active:
                continue
            for prefix_family, key in wanted:
                attrs = table.get(key) if prefix_family == family else None
                if attrs is None:
                    continue
                peer_as = model.peers[address].peer_as
                path = tuple(attrs.as_path)
                # iBGP sessions do not show the site's own AS: the path starts behind the router.
                hops = path if path and path[0] == peer_as else (peer_as, *path)
                # Prepending repeats an AS: show each hop once.
                hops = tuple(a for i, a in enumerate(hops) if i == 0 or hops[i - 1] != a)
                # A tick runs before the topology follows an event the RIB already holds: a route
                # back on the link itself is no detour.
                if any((min(a, b), max(a, b)) in avoid for a, b in zip(hops, hops[1:], strict=False)):
                    continue
                return source, target, hops
        return None
