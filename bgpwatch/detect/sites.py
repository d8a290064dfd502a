"""Site-level detectors, read from the topology's derived state.

- site_down: the site is ``suspected`` (the other live sites withdrew its prefixes while
  bgpwatch's own sessions to it are still up but frozen: a silent death before the hold
  timer) or ``down`` (confirmed: no live session into it and its prefixes gone elsewhere);
  the summary and the ``confirmation`` annotation say which.  Root of its incident.
- stale_routes: the site is suspected or down but some established sessions still hold routes
  to its prefixes (the hold-timer window of the 2025-03-03 post-mortem); resolves when they
  are gone, with ``duration_seconds`` = the window.  Starts when the site left ``live``.
- topology_split: the live sites form more than one island; labels {"islands": "par1 | par2,par3"}.
  Root named after the first site of the smallest island, unless a down site was what connected
  the islands (in the site graph as last seen whole): then it joins that site's incident.  A split
  between sites that had a direct adjacency is its own root cause (a link cut), titled as a split.
- visibility_loss: some of a site's prefixes are missing at a live site (including its own:
  a site that stops originating shows as missing everywhere, not as down, because its sessions
  are up and still updating).  One alert per site; the prefixes and where they are missing are
  in the annotations.  Consequence of site_down or topology_split when one is active.
- service_unreachable: a service's prefixes are not all reachable from a site that needs them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import networkx as nx

from bgpwatch.alerts.lifecycle import AlertKey, Finding, alert_key
from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.rib.prefix import format_prefix
from bgpwatch.topology import DOWN, SUSPECTED, UNKNOWN


@register
class TopologySettings(Detector):
    """Settings of the topology model (not a detector)."""

    name = "topology"
    params_only = True
    params: ClassVar[dict[str, Param]] = {
        "visibility_threshold": Param(
            float, 0.5, "share of a site's prefixes another site must see for an edge", 0.01, 1
        ),
        "startup_grace": Param(
            float, 60.0, "seconds after start before sites never seen are judged", 0, 86400
        ),
        "rejoin_grace": Param(
            float, 10.0, "seconds a site back from down does not count as a vantage point", 0, 3600
        ),
    }


def planned_keys(site: str, peers: list[str]) -> tuple[AlertKey, ...]:
    """Return the keys of the planned_work alerts about a site or its sessions (its incident is theirs)."""
    return (alert_key("planned_work", {"site": site}),) + tuple(
        alert_key("planned_work", {"peer": peer, "site": site}) for peer in peers
    )


def _split_key(book: Any) -> AlertKey | None:
    for key in book.active_keys():
        if key[0] == "topology_split":
            return key
    return None


@register
class SiteDownDetector(Detector):
    """A site's routers are unreachable."""

    name = "site_down"
    kind = "site_down"
    order = 20
    defaults: ClassVar[dict[str, Any]] = {"severity": "critical"}

    def evaluate(self, now: float) -> None:
        topology = self.ctx.topology
        findings = []
        for name, view in topology.states.items():
            if view.state not in (SUSPECTED, DOWN):
                continue
            sessions = [
                {"peer": vp.info.name, "state": vp.state, "since": vp.since}
                for vp in topology.vps_of_site[name]
            ]
            lost_by = ", ".join(view.lost_by) or "the other sites"
            by_sessions = topology.lost_by_sessions.get(name, ())
            if by_sessions and view.state == SUSPECTED:
                summary = (
                    f"site {name} down (suspected): every session of its neighbours to it is down "
                    f"({', '.join(by_sessions)}), bgpwatch's own session to it is still up"
                )
            elif by_sessions and not any(vp.state == "up" for vp in topology.vps_of_site[name]):
                summary = (
                    f"site {name} down (confirmed): every session of its neighbours to it is down "
                    f"({', '.join(by_sessions)}) and bgpwatch's sessions to it are down"
                )
            elif view.state == SUSPECTED:
                summary = (
                    f"site {name} down (suspected): {lost_by} withdrew its prefixes; bgpwatch's sessions to it "
                    "are still up but frozen (its view still holds routes the others withdrew), "
                    "the hold timer will confirm"
                )
            elif any(vp.state == "up" for vp in topology.vps_of_site[name]):
                summary = (
                    f"site {name} down (confirmed), sessions back up but not reachable from {lost_by} yet"
                )
            else:
                summary = f"site {name} down (confirmed): its prefixes are gone from {lost_by} and its sessions are down"
            annotations = {
                "confirmation": view.confirmation,
                "lost_by": list(view.lost_by),
                "still_seen_by": list(view.seen_by),
                "sessions": sessions,
                "evidence": topology.evidence(name),
            }
            if by_sessions:
                annotations["bmp_sessions_lost"] = list(by_sessions)
            finding = self.finding({"site": name}, summary, name, annotations, since=view.left_live_at)
            finding.title = f"site {name} down"
            # bgpwatch's own session to the site may have died first (hold timer, graceful restart
            # hiding the death from the others): that incident is this one, now confirmed.
            peers = [vp.info.name for vp in topology.vps_of_site[name]]
            finding.adopts = (
                tuple(alert_key("session_down", {"peer": peer, "site": name}) for peer in peers)
                + planned_keys(name, peers)
                + tuple(
                    alert_key("monitor_lost", {"router": router.name, "site": name})
                    for router in self.ctx.sessions.monitors.routers.values()
                    if router.site == name
                )
                + tuple(
                    alert_key("path_detour", {"link": "-".join(pair)})
                    for other in topology.model.sites
                    if other != name
                    for pair in ((name, other), (other, name))
                )
            )
            findings.append(finding)
        self.sync(findings, now)


@register
class StaleRoutesDetector(Detector):
    """A site is gone but routes to it linger in established sessions."""

    name = "stale_routes"
    kind = "stale_routes"
    order = 21
    defaults: ClassVar[dict[str, Any]] = {"severity": "critical"}

    def evaluate(self, now: float) -> None:
        topology = self.ctx.topology
        findings = []
        for site, holders in sorted(topology.stale.items()):
            view = topology.states[site]
            held = ", ".join(f"{peer} ({n})" for peer, n in sorted(holders.items()))
            summary = (
                f"stale routes: site {site} is down ({view.confirmation}) but established sessions still hold "
                f"routes to its prefixes: {held}"
            )
            annotations = {"holders": dict(holders), "confirmation": view.confirmation}
            cause = self.cause_if_active("site_down", {"site": site})
            findings.append(
                self.finding({"site": site}, summary, site, annotations, cause, view.left_live_at)
            )
        self.sync(findings, now)


@register
class TopologySplitDetector(Detector):
    """The live sites no longer form one connected network."""

    name = "topology_split"
    kind = "topology_split"
    order = 22
    defaults: ClassVar[dict[str, Any]] = {"severity": "critical"}
    params: ClassVar[dict[str, Param]] = {
        "correlation_window": Param(
            float, 30.0, "a site down this many seconds before a split is taken as its cause", 0, 3600
        ),
    }

    def evaluate(self, now: float) -> None:
        topology = self.ctx.topology
        islands = topology.islands
        if len(islands) < 2:
            self.sync((), now)
            return
        label = " | ".join(",".join(island) for island in islands)
        smallest = min(range(len(islands)), key=lambda i: (len(islands[i]), i))
        subject = islands[smallest][0]
        described = " and ".join("{" + ", ".join(island) + "}" for island in islands)
        summary = f"live sites form {len(islands)} islands: {described}"
        cause = self._site_cause(islands, now)
        annotations = {
            "islands": [list(island) for island in islands],
            "down_sites": [n for n, v in topology.states.items() if v.state in (SUSPECTED, DOWN)],
        }
        finding = self.finding({"islands": label}, summary, subject, annotations, cause)
        finding.title = f"topology split: {label}"
        self.sync([finding], now)

    def _site_cause(self, islands: list[list[str]], now: float) -> AlertKey | None:
        """Return the site_down alert of the site whose loss split the others, if one did.

        A down site caused the split when, in the site graph as it was when last whole, the live
        islands were connected only through it (a transit site on a ring).  A split between sites that
        had a direct adjacency is a root cause of its own (a link cut), even if a site died meanwhile.
        Without a whole picture since start, a site down within ``correlation_window`` is taken.
        """
        topology = self.ctx.topology
        down = [
            name
            for name, view in topology.states.items()
            if view.state in (SUSPECTED, DOWN) and self.cause_if_active("site_down", {"site": name})
        ]
        if not down:
            return None
        whole = topology.whole_graph
        live = [site for island in islands for site in island]
        if whole is None:
            window = self.p["correlation_window"]
            for name in down:
                view = topology.states[name]
                if view.left_live_at is not None and now - view.left_live_at <= window:
                    return self.cause_if_active("site_down", {"site": name})
            return None
        without = whole.subgraph([s for s in live if s in whole])
        if nx.number_connected_components(without) < len(islands):
            return None  # the islands had direct adjacencies of their own: something else cut them
        for name in down:
            through = whole.subgraph([s for s in (*live, name) if s in whole])
            if nx.number_connected_components(through) < nx.number_connected_components(without):
                return self.cause_if_active("site_down", {"site": name})
        return None


@register
class VisibilityLossDetector(Detector):
    """Some of a site's prefixes are missing at live sites."""

    name = "visibility_loss"
    kind = "visibility_loss"
    order = 23

    def evaluate(self, now: float) -> None:
        topology = self.ctx.topology
        book = self.ctx.book
        findings = []
        observers = topology.observers
        split = _split_key(book)
        for site, found in topology.missing.items():
            view = topology.states[site]
            if view.state == UNKNOWN:
                continue
            if view.settle_until is not None and not self.ctx.book.is_active(
                alert_key(self.kind, {"site": site})
            ):
                continue  # just back: the others are still learning its routes
            expected = len(topology.model.expected[site])
            where = sorted({s for sites in found.values() for s in sites})
            everywhere = all(len(sites) == len(observers) for sites in found.values())
            prefixes = {format_prefix(*p): list(sites) for p, sites in found.items()}
            families = sorted({f for f, _key in found})
            family = f" IPv{families[0]}" if len(families) == 1 else ""
            if everywhere:
                summary = f"{len(found)} of {expected}{family} prefixes of {site} missing everywhere: {', '.join(prefixes)}"
            else:
                summary = (
                    f"{len(found)} of {expected}{family} prefixes of {site} missing at {', '.join(where)}"
                )
            annotations = {"missing": prefixes, "everywhere": everywhere}
            cause = self.cause_if_active("site_down", {"site": site}) or split
            finding = self.finding({"site": site}, summary, site, annotations, cause)
            finding.title = f"{site}:{family} prefixes missing" + (
                " everywhere" if everywhere else f" at {', '.join(where)}"
            )
            findings.append((finding, set(where)))
        self._group(findings)
        self.sync([finding for finding, _where in findings], now)

    def _group(self, findings: list[tuple[Finding, set[str]]]) -> None:
        """Root the losses of one event at the site they all involve.

        One site shutting its IPv6 sessions makes its IPv6 prefixes missing everywhere *and* the
        other sites' IPv6 prefixes missing at it: every loss involves that site (as the owner of the
        missing prefixes, or as the only place they are missing).  Those losses are one incident about
        that site, rooted at its own loss (or the first one); bgpwatch's session to it that went down
        for the same reason joins it too.
        """
        free = [(f, where) for f, where in findings if f.cause is None]
        if not free:
            return
        sites = self.ctx.model.sites
        pivot = None
        for candidate in sites:
            if all(f.labels["site"] == candidate or where <= {candidate} for f, where in free):
                pivot = candidate
                break
        if pivot is None:
            return
        root = next((f for f, _where in free if f.labels["site"] == pivot), free[0][0])
        root.adopts = tuple(
            alert_key("session_down", {"peer": vp.info.name, "site": pivot})
            for vp in self.ctx.topology.vps_of_site[pivot]
        )
        if len(free) > 1:
            root.title = f"{pivot}: prefixes missing to and from the other sites"
            root.annotations["grouped_at"] = pivot
        for finding, _where in free:
            if finding is not root:
                finding.cause = root.key


@register
class ServiceUnreachableDetector(Detector):
    """A service is not reachable from a site that needs it."""

    name = "service_unreachable"
    kind = "service_unreachable"
    order = 24
    defaults: ClassVar[dict[str, Any]] = {"severity": "critical"}

    def evaluate(self, now: float) -> None:
        topology = self.ctx.topology
        model = topology.model
        book = self.ctx.book
        services = {s.name: s for s in model.services}
        findings = []
        for (name, site), reachable in topology.service_reach.items():
            if reachable is not False:
                continue
            service = services[name]
            cover = topology.svc_cover[site]
            missing = [p for p in service.prefixes if p not in cover]
            owners = sorted({o for o in (self._owner(model, p) for p in missing) if o})
            if any(topology.states[o].state == UNKNOWN for o in owners):
                continue  # the owner has not been seen yet: start-up, not an incident
            cause = None
            for owner in owners:
                cause = cause or self.cause_if_active("site_down", {"site": owner})
            cause = cause or _split_key(book)
            for owner in owners:
                cause = cause or self.cause_if_active("visibility_loss", {"site": owner})
            text = ", ".join(format_prefix(*p) for p in missing)
            summary = f"service {name} unreachable from {site}: no route to {text}"
            annotations = {"missing": [format_prefix(*p) for p in missing], "owners": owners}
            findings.append(self.finding({"service": name, "site": site}, summary, site, annotations, cause))
        self.sync(findings, now)

    @staticmethod
    def _owner(model: Any, prefix: tuple[int, int]) -> str | None:
        site_key = model.site_prefix(*prefix)
        return model.owner_of(prefix[0], site_key) if site_key is not None else None
