"""Detectors of the outside view: what public peers (RIS Live) see of our prefixes.

They read `bgpwatch.outside.OutsideView` (``ctx.outside``) beside the topology, and never judge
while the feed is down: a silent or closed feed freezes what they stated (nothing fires, nothing
resolves) and is reported once, as the feed's fault (``outside_feed_down``).

- outside_feed_down: the RIS Live feed is down (closed, refused, silent) for ``for`` seconds.
- external_visibility_loss: an own prefix lost by public peers: fewer than ``min_peers`` see it, or
  more than ``max_loss`` of the public peers that routed it since the feed came up withdrew it
  (relative, needing ``min_baseline`` peers: RIS Live sends no table, only what changes).  Per site
  or per prefix overrides in ``outside.visibility``.  Part of the site's incident when the site is
  down (the outside converging, as it should); its own root cause when our sites are live ("the
  internet lost it while our sites still see it": the problem is upstream).
- external_stale_routes ★: a site bgpwatch knows is down (or suspected) while public peers still
  route its prefixes: which upstreams keep announcing them, since when; resolved when the outside
  converges.  Always part of the site's incident.
- upstream_change: an AS not in ``outside.upstreams`` appears as the first hop after ours (the AS
  before the origin) for a site's or a prefix's routes, or an expected upstream seen since the
  feed came up is seen by no public peer any more (BGPalerter's path-neighbour monitor).

Hijacks seen from the outside (origin change, more-specifics) are judged by the ``origin_change``
and ``more_specific`` detectors themselves, fed the public peers' route changes too
(`JUDGE_OUTSIDE_ROUTES`): one alert per hijack whoever saw it, the public peers named in it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.alerts.lifecycle import Finding, iso_ms
from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.topology import DOWN, LIVE, SUSPECTED

if TYPE_CHECKING:
    from bgpwatch.outside import OutsideView, OwnPrefix

# Route-level detectors that also judge the public peers' routes (by their on_event).
JUDGE_OUTSIDE_ROUTES = ("origin_change", "more_specific", "rpki_invalid")
SAMPLES = 10


def _asns(counts: Counter[int]) -> str:
    return ", ".join(f"AS{asn} ({n})" for asn, n in counts.most_common(5))


class OutsideDetector(Detector):
    """Base of the outside-view detectors: re-derive only when the view or the site states changed."""

    order = 70  # after the site detectors, whose alerts they join
    frozen_while_down: ClassVar[bool] = True  # the feed down: what was stated stays as it was

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        self._seen: tuple[Any, ...] | None = None

    @property
    def outside(self) -> OutsideView:
        """Return the outside view."""
        return self.ctx.outside

    def evaluate(self, now: float) -> None:
        outside = self.outside
        if not outside.configured and not outside.peers:
            return
        topology = self.ctx.topology
        signature = (
            outside.version,
            outside.feed_up,
            tuple(view.state for view in topology.states.values()),
            tuple((site, tuple(found.items())) for site, found in topology.missing.items()),
            tuple(sorted(k for k in self.ctx.book.active_keys() if k[0] == "site_down")),
        )
        if signature == self._seen:
            return
        self._seen = signature
        if not outside.feed_up and self.frozen_while_down:
            return  # the feed's fault: what was stated stays as it was
        self.sync(self.findings(now), now)

    def findings(self, now: float) -> list[Finding]:
        """Return the conditions holding now."""
        return []

    def site_cause(self, sites: tuple[str, ...]) -> Any:
        """Return the key of an active site_down of one of ``sites`` (their incident), or None."""
        for site in sites:
            key = self.cause_if_active("site_down", {"site": site})
            if key is not None:
                return key
        return None

    def site_state(self, site: str) -> str | None:
        view = self.ctx.topology.states.get(site)
        return view.state if view is not None else None


@register
class OutsideFeedDetector(OutsideDetector):
    """The RIS Live feed is down: the outside view is frozen until it is back."""

    name = "outside_feed"
    kind = "outside_feed_down"
    defaults: ClassVar[dict[str, Any]] = {"for": 30.0, "keep": 5.0}
    frozen_while_down = False

    def findings(self, now: float) -> list[Finding]:
        outside = self.outside
        if outside.feed_up or not outside.feed_changes:
            return []
        since = outside.feed_since
        summary = (
            f"RIS Live feed down since {iso_ms(since) if since is not None else '?'}: {outside.feed_reason}; "
            "the outside view is frozen (no external alert fires or resolves until it is back)"
        )
        annotations = {"reason": outside.feed_reason, "frames": outside.frames}
        return [self.finding({"feed": "rislive"}, summary, "rislive", annotations, since=since)]


def _rule_for(rules: list[Any], item: OwnPrefix) -> Any:
    """Return the most specific rule (prefix before site) for an own prefix, or None."""
    for rule in rules:
        if rule.prefix is not None and rule.prefix == item.text:
            return rule
    for rule in rules:
        if rule.prefix is None and rule.site is not None and rule.site in item.sites:
            return rule
    return None


@register
class ExternalVisibilityDetector(OutsideDetector):
    """An own prefix lost by the public peers (absolute or relative thresholds)."""

    name = "external_visibility"
    kind = "external_visibility_loss"
    defaults: ClassVar[dict[str, Any]] = {"severity": "critical", "for": 10.0, "keep": 30.0}
    params: ClassVar[dict[str, Param]] = {
        "min_peers": Param(int, 0, "fire when fewer public peers than this see a prefix (0: off)", 0, 100000),
        "max_loss": Param(float, 0.5, "fire when this share of the peers that saw a prefix lost it", 0, 1),
        "min_baseline": Param(
            int, 3, "public peers that must have seen a prefix for a relative loss", 1, 100000
        ),
    }

    def findings(self, now: float) -> list[Finding]:
        rules = list(self.ctx.config.outside.visibility) if hasattr(self.ctx.config, "outside") else []
        found = []
        for item in self.outside.own.values():
            seeing, baseline = len(item.seeing), len(item.ever)
            if not baseline:
                continue  # never seen from the outside (since the feed came up): nothing to lose
            rule = _rule_for(rules, item)
            min_peers = (
                rule.min_peers if rule is not None and rule.min_peers is not None else self.p["min_peers"]
            )
            max_loss = rule.max_loss if rule is not None and rule.max_loss is not None else self.p["max_loss"]
            lost = baseline - seeing
            relative = baseline >= self.p["min_baseline"] and lost / baseline > max_loss
            absolute = min_peers > 0 and seeing < min_peers
            if not (relative or absolute):
                continue
            labels = {"prefix": item.text}
            if len(item.sites) == 1:
                labels["site"] = item.sites[0]
            down = [s for s in item.sites if self.cause_if_active("site_down", {"site": s}) is not None]
            cause = self.site_cause(tuple(down))
            where = f"site {', '.join(item.sites)} prefix" if item.sites else "watched prefix"
            inside = [s for s in item.sites if self.site_state(s) == LIVE]
            if cause is not None:
                context = f"site {', '.join(down)} is down: the outside converging"
            elif inside:
                context = "our sites still route it: the problem is upstream, not inside"
            else:
                context = "the inside view does not say why"
            first_lost = min(item.lost.values()) if item.lost else None
            summary = (
                f"external visibility loss: {where} {item.text} is seen by {seeing} of {baseline} public peers "
                f"({lost} lost it{' since ' + iso_ms(first_lost) if first_lost is not None else ''}); {context}"
            )
            annotations = {
                "public_peers": seeing,
                "public_peers_seen": baseline,
                "lost": lost,
                "upstreams": {str(asn): n for asn, n in item.upstreams().most_common()},
                "lost_peers": self.outside.lost_peer_names(item, SAMPLES),
                "threshold": {"min_peers": min_peers, "max_loss": max_loss},
            }
            found.append(self.finding(labels, summary, item.text, annotations, cause=cause, since=first_lost))
        return found


@register
class ExternalStaleRoutesDetector(OutsideDetector):
    """A site is down, yet public peers still route its prefixes: who keeps announcing them."""

    name = "external_stale_routes"
    kind = "external_stale_routes"
    defaults: ClassVar[dict[str, Any]] = {"severity": "critical", "for": 30.0, "keep": 10.0}
    params: ClassVar[dict[str, Param]] = {
        "min_peers": Param(
            int, 1, "public peers still routing a prefix of a down site that make it stale", 1, 100000
        ),
    }

    def findings(self, now: float) -> list[Finding]:
        outside = self.outside
        topology = self.ctx.topology
        enough = self.p["min_peers"]
        found = []
        for site, view in topology.states.items():
            if view.state in (DOWN, SUSPECTED):
                # Only the prefixes the site alone originates: an anycast prefix is still rightly announced.
                items = [i for i in outside.own.values() if i.sites == (site,) and len(i.seeing) >= enough]
                what = f"site {site} is {view.state}"
                cause, since = self.site_cause((site,)), view.left_live_at
            elif view.state == LIVE:
                # The site is up but our own sites no longer route some of its prefixes (withdrawn
                # everywhere: an export policy, a drained prefix), while the internet still does.
                gone = [
                    p
                    for p, where in topology.missing.get(site, {}).items()
                    if len(where) == len(topology.observers)
                ]
                items = [
                    i
                    for i in outside.own.values()
                    if i.sites == (site,) and (i.family, i.key) in gone and len(i.seeing) >= enough
                ]
                what = f"site {site} withdrew them (missing at every site)"
                cause, since = self.cause_if_active("visibility_loss", {"site": site}), None
            else:
                continue
            if items:
                found.append(self._finding(site, what, items, cause, since))
        return found

    def _finding(
        self, site: str, what: str, items: list[OwnPrefix], cause: Any, since: float | None
    ) -> Finding:
        outside = self.outside
        by_upstream: dict[int, set[str]] = {}
        peers: set[str] = set()
        seen: set[str] = set()
        prefixes = []
        for item in items:
            holders_by_upstream = item.upstream_peers()
            for asn, holders in holders_by_upstream.items():
                by_upstream.setdefault(asn, set()).update(holders)
            peers.update(item.seeing)
            seen.update(item.ever)
            prefixes.append(
                {
                    "prefix": item.text,
                    "public_peers": len(item.seeing),
                    "public_peers_seen": len(item.ever),
                    "upstreams": {
                        str(a): len(h)
                        for a, h in sorted(holders_by_upstream.items(), key=lambda i: -len(i[1]))
                    },
                }
            )
        upstreams = Counter({asn: len(holders) for asn, holders in by_upstream.items()})
        worst = max(prefixes, key=lambda p: p["public_peers"])
        top = max(upstreams, key=upstreams.get) if upstreams else None
        through = f" through AS{top}" if top is not None else ""
        summary = (
            f"external stale routes: {what}, yet {worst['public_peers']} of "
            f"{worst['public_peers_seen']} public peers still route {worst['prefix']}{through}"
            + (f" ({len(items)} prefixes of the site still announced outside)" if len(items) > 1 else "")
            + (f"; upstreams: {_asns(upstreams)}" if upstreams else "")
        )
        annotations = {
            "public_peers": len(peers),
            "public_peers_seen": len(seen),
            "upstreams": {str(a): n for a, n in upstreams.most_common()},
            "prefixes": prefixes[:SAMPLES],
            "peers": [outside.peer_name(p) for p in sorted(peers)][:SAMPLES],
            "site_left_live_at": iso_ms(since) if since is not None else None,
        }
        return self.finding({"site": site}, summary, site, annotations, cause=cause, since=since)


@register
class UpstreamChangeDetector(OutsideDetector):
    """A new upstream (not expected) or an expected upstream lost, for a site's or a prefix's routes."""

    name = "upstream_change"
    kind = "upstream_change"
    defaults: ClassVar[dict[str, Any]] = {"for": 10.0, "keep": 30.0}

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        self.seen_upstreams: dict[tuple[str, str], set[int]] = {}  # rule subject -> expected ones seen

    def findings(self, now: float) -> list[Finding]:
        config = self.ctx.config
        rules = list(config.outside.upstreams) if hasattr(config, "outside") else []
        outside = self.outside
        found = []
        for rule in rules:
            if rule.prefix is not None:
                subject = ("prefix", rule.prefix)
                items = [i for i in outside.own.values() if i.text == rule.prefix]
                sites = tuple(s for i in items for s in i.sites)
            else:
                subject = ("site", rule.site)
                items = [i for i in outside.own.values() if rule.site in i.sites]
                sites = (rule.site,)
            allowed = frozenset(rule.asns)
            counts: Counter[int] = Counter()
            for item in items:
                counts.update(item.upstreams())
            seen = self.seen_upstreams.setdefault(subject, set())
            seen.update(a for a in counts if a in allowed)
            labels_base = {subject[0]: subject[1]}
            cause = self.site_cause(sites)
            for asn, n in counts.items():
                if asn in allowed:
                    continue
                paths = [list(s.path) for i in items for s in i.seeing.values() if s.upstream == asn][:3]
                summary = (
                    f"new upstream: AS{asn} is the first hop after ours for {subject[0]} {subject[1]} "
                    f"at {n} public peer{'s' if n != 1 else ''} (expected {', '.join(f'AS{a}' for a in sorted(allowed))})"
                )
                labels = dict(labels_base, upstream=f"AS{asn}", change="new")
                annotations = {"public_peers": n, "expected": sorted(allowed), "sample_paths": paths}
                found.append(self.finding(labels, summary, str(subject[1]), annotations))
            for asn in sorted(seen - set(counts)):
                summary = (
                    f"upstream lost: AS{asn}, an expected upstream of {subject[0]} {subject[1]}, is seen by no public peer "
                    f"any more (now: {_asns(counts) or 'none'})"
                )
                labels = dict(labels_base, upstream=f"AS{asn}", change="lost")
                annotations = {"expected": sorted(allowed), "now": {str(a): n for a, n in counts.items()}}
                found.append(self.finding(labels, summary, str(subject[1]), annotations, cause=cause))
        return found
