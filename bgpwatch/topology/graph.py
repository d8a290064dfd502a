"""The inter-site topology, kept up to date from the RIB's route changes.

Counts (all incremental; only changes to site-relevant prefixes touch anything):
- per vantage point: how many of its routes fall in each site prefix (``have``);
- per site s: for each site prefix, how many *active* vantage points of s have it
  (active = session up and converged: End-of-RIB for every family the sites use, or the
  convergence timeout passed), and per site t how many of t's prefixes s covers: so
  ``visibility[s][t] = covered / expected`` is a dict lookup;
- AS adjacencies (refcounted) on the AS paths of routes to site prefixes.

A vantage point's own site is not special-cased: the router of site s originates s's
prefixes and announces them to bgpwatch, so s sees s when its router still originates.

Site states (``evaluate``), from the views of the *observed* sites (with an active vantage point):
- ``live``: reachable.  An observed site that still announces updates is live even when the
  others lost it (then it is an island, or it stopped originating, see below);
- ``suspected``: the other live sites withdrew its prefixes while bgpwatch's own sessions to
  it are still up but *frozen*: its view still holds its own prefixes and the routes of sites
  that no longer see it (a silent death: a power cut, before bgpwatch's hold timer expires);
- ``down``: no live vantage point into it and at least one trusted live site lost its prefixes
  (confirmed: the first withdrawal elsewhere confirms a lost session); a site that comes back
  stays ``down`` until another live site sees it again (sessions up is not enough: a rebooted
  site is not reachable before its inter-site sessions are);
- ``unknown``: not yet seen since start (the initial load is never an incident); after the
  startup grace an unknown site is judged like the others.
A site whose own vantage points no longer hold its prefixes (it stopped originating) is
neither down nor an island: nobody can judge reachability of prefixes it does not announce,
so edges to it rely on its view of the others; visibility_loss reports the missing prefixes.

Site graph: an edge s-t between live sites when the visibility both ways is at least the
threshold; a direction that cannot be measured (s has no active vantage point, or t does not
originate) is left out, and an edge needs at least one measured direction.  Islands are the
connected components; more than one is a topology split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import networkx as nx

from bgpwatch.events import UP, Event
from bgpwatch.ingest.reasons import PEER
from bgpwatch.rib.prefix import format_prefix
from bgpwatch.topology.render import render_dot

if TYPE_CHECKING:
    from bgpwatch.rib import Rib, RouteChanges
    from bgpwatch.rib.attributes import PathAttributes
    from bgpwatch.sessions import Session, SessionChange, SessionTable
    from bgpwatch.topology.model import PeerInfo, PrefixId, SiteModel

LIVE = "live"
SUSPECTED = "suspected"
DOWN = "down"
UNKNOWN = "unknown"
INFINITY = float("inf")


class VantagePoint:
    """One configured session and what its Adj-RIB-In says about the sites.

    The session's state (up/down, convergence, ...) is read from its `Session` (the one owner,
    `bgpwatch.sessions`); the vantage point only keeps the counts derived from its routes and
    whether those counts are currently counted in the sites' views (``counted``).
    """

    __slots__ = ("info", "session", "counted", "have", "have_since", "svc_have", "last_update")

    def __init__(self, info: PeerInfo, session: Session) -> None:
        self.info = info
        self.session = session
        self.counted = False  # its routes are counted in its site's cover (it was active)
        self.have: dict[PrefixId, int] = {}  # site prefix -> routes of this peer counting toward it
        self.have_since: dict[PrefixId, float] = {}  # site prefix -> when this peer last gained a route to it
        self.svc_have: dict[PrefixId, int] = {}  # service prefix -> routes reaching it
        self.last_update: float | None = None

    @property
    def state(self) -> str:
        """Return the session's state."""
        return self.session.state

    @property
    def since(self) -> float | None:
        """Return when the session entered its state."""
        return self.session.since

    @property
    def up_since(self) -> float | None:
        """Return when the session was last established."""
        return self.session.up_since

    @property
    def reason(self) -> str:
        """Return why the session last went down."""
        return self.session.reason

    @property
    def ever_up(self) -> bool:
        """Tell whether the session was ever established since bgpwatch started."""
        return self.session.ever_up

    @property
    def eor_complete(self) -> bool:
        """Tell whether the session's initial table is in (End-of-RIB, quiet period or mid-session)."""
        return self.session.state == UP and self.session.complete

    @property
    def up(self) -> bool:
        """Tell whether the session is Established."""
        return self.session.state == UP

    @property
    def active(self) -> bool:
        """Tell whether this vantage point's view counts (up and converged or timed out)."""
        return self.session.active


class SiteView:
    """The derived state of one site."""

    __slots__ = (
        "name",
        "state",
        "since",
        "left_live_at",
        "settle_until",
        "observed",
        "frozen",
        "seen_by",
        "lost_by",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = UNKNOWN
        self.since: float | None = None
        self.left_live_at: float | None = None
        self.settle_until: float | None = None  # back from down/unknown: its own view is converging
        self.observed = False
        self.frozen = False
        self.seen_by: tuple[str, ...] = ()
        self.lost_by: tuple[str, ...] = ()

    @property
    def confirmation(self) -> str | None:
        """Return "suspected" or "confirmed" for a site that is not live, else None."""
        if self.state == SUSPECTED:
            return "suspected"
        if self.state == DOWN:
            return "confirmed"
        return None


class Topology:
    """Vantage points, visibility matrix, site states, islands and the AS view."""

    def __init__(
        self,
        model: SiteModel,
        sessions: SessionTable,
        threshold: float = 0.5,
        startup_grace: float = 60.0,
        rejoin_grace: float = 10.0,
    ) -> None:
        self.model = model
        self.sessions = sessions
        self.rejoin_grace = rejoin_grace
        self.threshold = threshold
        self.startup_grace = startup_grace
        self.vps: dict[str, VantagePoint] = {
            a: VantagePoint(info, sessions.by_address[a]) for a, info in model.peers.items()
        }
        self.vps_of_site: dict[str, tuple[VantagePoint, ...]] = {
            site: tuple(self.vps[a] for a in addresses) for site, addresses in model.peers_of_site.items()
        }
        sites = model.sites
        self.site_cover: dict[str, dict[PrefixId, int]] = {s: {} for s in sites}
        self.vis_count: dict[str, dict[str, int]] = {s: dict.fromkeys(sites, 0) for s in sites}
        self.svc_cover: dict[str, dict[PrefixId, int]] = {s: {} for s in sites}
        self.active_count: dict[str, int] = dict.fromkeys(sites, 0)
        self.as_edges: dict[tuple[int, int], int] = {}
        self._path_cache: dict[tuple[int, tuple[int, ...]], tuple[tuple[int, int], ...]] = {}
        self.states: dict[str, SiteView] = {s: SiteView(s) for s in sites}
        self.islands: list[list[str]] = []
        self.observers: list[str] = []  # live, active, not frozen, not settling: views that count
        self.graph: nx.Graph = nx.Graph()
        self.blind: list[str] = []  # sites up but sending no site prefix to bgpwatch
        self.unmeasured: list[str] = []  # live sites whose connectivity cannot be measured
        # The site graph when last whole (every site live, one island).
        self.whole_graph: nx.Graph | None = None
        self.missing: dict[str, dict[PrefixId, tuple[str, ...]]] = {}
        # BMP evidence (bgpwatch.monitors): per site, the inter-site sessions to it its neighbours
        # report down when all of them are; site pairs the sessions say are cut.
        self.lost_by_sessions: dict[str, tuple[str, ...]] = {}
        self.cut_by_sessions: list[tuple[str, str]] = []
        self.stale: dict[str, dict[str, int]] = {}
        self.service_reach: dict[tuple[str, str], bool | None] = {}
        self.started_at: float | None = None
        self.grace_over = startup_grace <= 0
        self.evaluated_at: float | None = None
        self.dirty = True
        self._next_deadline = INFINITY

    # -- input --------------------------------------------------------------------------
    def load(self, rib: Rib, now: float) -> None:
        """Count what a RIB already holds (start-up over a non-empty RIB, or a reload)."""
        from bgpwatch.rib import RouteChanges

        for address, adj in rib.peers.items():
            vp = self.vps.get(address)
            if vp is None or not len(adj):
                continue
            for family, table in adj.tables.items():
                items = [(key, None, attrs) for key, attrs in table.items()]
                self._apply_changes(RouteChanges(now, address, family, items))
        for vp in self.vps.values():
            self.sync_session(vp)
        self._schedule()

    def apply(
        self, event: Event, changes: list[RouteChanges], now: float, session: SessionChange | None = None
    ) -> bool:
        """Apply one event, the RIB changes and the session change it caused; return True when site state may differ."""
        if self.started_at is None:
            self.started_at = now
            self._schedule()
        for change in changes:
            self._apply_changes(change)
        if self.lost_by_sessions and changes:
            # Any route from a site its neighbours lost tells dead from isolated (see evaluate).
            vp = self.vps.get(changes[0].peer)
            if vp is not None and vp.info.site in self.lost_by_sessions:
                self.dirty = True
        if session is not None:
            self.session_changed(session)
        return self.dirty

    def session_changed(self, change: SessionChange) -> None:
        """Follow a session change (up, down, converged, joined) of a vantage point."""
        vp = self.vps.get(change.session.address)
        if vp is None:
            return
        self.sync_session(vp)
        self.dirty = True

    def sync_session(self, vp: VantagePoint) -> None:
        """Count or uncount a vantage point's routes in its site's view as its session is active or not."""
        if vp.session.active != vp.counted:
            self._activate(vp, +1 if vp.session.active else -1)

    def tick(self, now: float) -> bool:
        """Apply time-based changes (end of settling, end of start-up grace)."""
        if now < self._next_deadline:
            return self.dirty
        for view in self.states.values():
            if view.settle_until is not None and now >= view.settle_until:
                view.settle_until = None
                self.dirty = True
        if (
            not self.grace_over
            and self.started_at is not None
            and now - self.started_at >= self.startup_grace
        ):
            self.grace_over = True
            self.dirty = True
        self._schedule()
        return self.dirty

    @property
    def next_deadline(self) -> float:
        """Return when the next time-based change is due (infinity if none)."""
        return self._next_deadline

    def _schedule(self) -> None:
        deadline = INFINITY
        for view in self.states.values():
            if view.settle_until is not None:
                deadline = min(deadline, view.settle_until)
        if not self.grace_over and self.started_at is not None:
            deadline = min(deadline, self.started_at + self.startup_grace)
        self._next_deadline = deadline

    def _activate(self, vp: VantagePoint, delta: int) -> None:
        vp.counted = delta > 0
        site = vp.info.site
        self.active_count[site] += delta
        for prefix in vp.have:
            self._cover(site, prefix, delta)
        for prefix in vp.svc_have:
            self._svc_cover(site, prefix, delta)
        self.dirty = True

    def _apply_changes(self, change: RouteChanges) -> None:
        vp = self.vps.get(change.peer)
        if vp is None:
            return
        family = change.family
        model = self.model
        site_prefix = model.site_prefix
        with_services = bool(model.service_keys[family])
        have = vp.have
        active = vp.counted
        site = vp.info.site
        for key, before, after in change.items:
            site_key = site_prefix(family, key)
            if site_key is not None:
                prefix = (family, site_key)
                if before is None:
                    count = have.get(prefix, 0) + 1
                    have[prefix] = count
                    if count == 1:
                        vp.have_since[prefix] = change.at
                        self.dirty = True
                        if active:
                            self._cover(site, prefix, +1)
                elif after is None:
                    count = have.get(prefix, 0) - 1
                    if count > 0:
                        have[prefix] = count
                    elif prefix in have:
                        del have[prefix]
                        vp.have_since.pop(prefix, None)
                        self.dirty = True
                        if active:
                            self._cover(site, prefix, -1)
                if before is not None:
                    self._as_path(vp, before, -1)
                if after is not None:
                    self._as_path(vp, after, +1)
                vp.last_update = change.at
            if with_services:
                for service_key in model.service_prefixes_reached(family, key):
                    self._service_route(vp, (family, service_key), before, after, active)

    def _service_route(
        self,
        vp: VantagePoint,
        prefix: PrefixId,
        before: PathAttributes | None,
        after: PathAttributes | None,
        active: bool,
    ) -> None:
        svc_have = vp.svc_have
        if before is None:
            count = svc_have.get(prefix, 0) + 1
            svc_have[prefix] = count
            if count == 1 and active:
                self._svc_cover(vp.info.site, prefix, +1)
        elif after is None:
            count = svc_have.get(prefix, 0) - 1
            if count > 0:
                svc_have[prefix] = count
            elif prefix in svc_have:
                del svc_have[prefix]
                if active:
                    self._svc_cover(vp.info.site, prefix, -1)

    def _cover(self, site: str, prefix: PrefixId, delta: int) -> None:
        cover = self.site_cover[site]
        count = cover.get(prefix, 0) + delta
        if count > 0:
            cover[prefix] = count
            if count == delta:  # 0 -> n
                vis = self.vis_count[site]
                # An anycast prefix counts toward the visibility of every site that originates it.
                for owner in self.model.owners_of(*prefix):
                    vis[owner] += 1
                self.dirty = True
            return
        if cover.pop(prefix, None) is None:
            return
        vis = self.vis_count[site]
        for owner in self.model.owners_of(*prefix):
            vis[owner] -= 1
        self.dirty = True

    def _svc_cover(self, site: str, prefix: PrefixId, delta: int) -> None:
        cover = self.svc_cover[site]
        count = cover.get(prefix, 0) + delta
        if count > 0:
            cover[prefix] = count
        else:
            cover.pop(prefix, None)
        self.dirty = True

    def _as_path(self, vp: VantagePoint, attrs: PathAttributes, delta: int) -> None:
        peer_as = vp.info.peer_as
        cache_key = (peer_as, attrs.as_path)
        pairs = self._path_cache.get(cache_key)
        if pairs is None:
            path = attrs.as_path
            # iBGP sessions do not show the site's own AS: the path starts behind the router.
            hops = path if path and path[0] == peer_as else (peer_as, *path)
            found = []
            for a, b in zip(hops, hops[1:], strict=False):
                if a != b:
                    found.append((a, b) if a < b else (b, a))
            pairs = tuple(dict.fromkeys(found))
            if len(self._path_cache) > 10_000:
                self._path_cache.clear()
            self._path_cache[cache_key] = pairs
        edges = self.as_edges
        for pair in pairs:
            count = edges.get(pair, 0) + delta
            if count > 0:
                edges[pair] = count
                if count == delta:  # 0 -> 1: an adjacency appeared (path_detour judges it at once)
                    self.dirty = True
            elif edges.pop(pair, None) is not None:
                self.dirty = True  # an adjacency carries no route any more

    # -- derived state --------------------------------------------------------------------
    def visibility(self, from_site: str, to_site: str) -> float | None:
        """Return the share of ``to_site``'s prefixes that ``from_site`` has a route to (None: unmeasured)."""
        expected = len(self.model.expected[to_site])
        if not expected or not self.active_count[from_site]:
            return None
        return self.vis_count[from_site][to_site] / expected

    def _sees(self, s: str, t: str) -> bool:
        expected = len(self.model.expected[t])
        return bool(expected) and self.vis_count[s][t] >= self.threshold * expected

    def evaluate(self, now: float) -> bool:
        """Recompute site states, islands, stale routes, missing prefixes; return True if states changed."""
        self.dirty = False
        self.evaluated_at = now
        sites = self.model.sites
        expected = self.model.expected
        sees = self._sees
        prev = {s: view.state for s, view in self.states.items()}
        alive = {s for s in sites if self.active_count[s] > 0}
        # A site whose sessions are up but that sends bgpwatch no site prefix at all (an export policy
        # denying everything) is alive but blind: its empty view proves nothing about the others.
        blind = {s for s in alive if not any(vp.counted and vp.have for vp in self.vps_of_site[s])}
        observed = alive - blind
        # An observed site whose own view lacks its prefixes does not originate them now; a blind one
        # originates them as far as the others still see them.
        originates = {s: bool(expected[s]) and (s not in observed or sees(s, s)) for s in sites}
        for s in blind:
            originates[s] = bool(expected[s]) and any(sees(o, s) for o in observed if o != s)
        self.blind = sorted(blind)
        live_prev = {s for s in sites if prev[s] == LIVE}
        frozen = set()
        for t in observed:
            if not originates[t]:
                continue
            for s in observed:
                if s != t and s in live_prev and sees(t, s) and not sees(s, t):
                    frozen.add(t)
                    break
        bootstrap = not live_prev
        trusted = {s for s in observed if s not in frozen and (bootstrap or s in live_prev)}
        monitors = self.sessions.monitors
        lost_sessions = monitors.lost_by_sessions(set(sites))
        self.lost_by_sessions = {
            t: tuple(
                sorted(f"{router.name}->{peer.address} ({peer.cause or 'down'})" for router, peer in found)
            )
            for t, found in lost_sessions.items()
        }
        changed = False
        for t in sites:
            view = self.states[t]
            # Every neighbour that reports its sessions says they are all down: direct evidence that
            # graceful restart may hide from the routes for minutes.
            cut_off = t in lost_sessions and not self._restarting(t)
            if cut_off and t in alive:
                # Still talking to bgpwatch: isolated if it updates since, else probably dead (its own
                # hold timer at bgpwatch has not expired yet): suspected until one or the other.
                lost_at = max(peer.since or 0.0 for _router, peer in lost_sessions[t])
                updated = any(
                    vp.counted and (vp.session.last_route or 0.0) > lost_at for vp in self.vps_of_site[t]
                )
                # Its own view already lost the others (a cut link withdraws at once, often before the
                # routers report their sessions down): it lives, cut off; a dead site's view stays as it was.
                reflects_cut = t in observed and any(
                    not sees(t, s) for s in trusted if s != t and originates[s]
                )
                # Its own router reports losing them: only a live router says so (a dead one is silent).
                reports_cut = monitors.reports_cut(t, {router.site for router, _peer in lost_sessions[t]})
                cut_off = not (updated or reflects_cut or reports_cut)
            seers = tuple(s for s in sorted(trusted) if s != t and sees(s, t))
            losers = ()
            if originates[t]:
                losers = tuple(s for s in sorted(trusted) if s != t and not sees(s, t))
            p = prev[t]
            back = p == DOWN and view.left_live_at is not None and monitors.back_since(t, view.left_live_at)
            if t in alive:
                if (t in frozen and losers) or (cut_off and p in (LIVE, SUSPECTED, UNKNOWN)):
                    new = SUSPECTED
                elif p in (LIVE, SUSPECTED):
                    new = LIVE  # up and still updating: alive (an island, or not originating)
                elif p == DOWN:
                    # Back when another site learned its routes again, or when it is seen both ways:
                    # its own converged view sees every trusted site and none of them misses it.
                    both_ways = (
                        t in observed
                        and t not in frozen
                        and not losers
                        and bool(seers)
                        and all(sees(t, s) for s in trusted if s != t and originates[s])
                    )
                    new = LIVE if both_ways or back or self._fresh_seers(trusted, t) else DOWN
                elif seers or bootstrap or self.grace_over:
                    new = LIVE
                else:
                    new = p
            elif p == DOWN:
                # Back only when some site learned its routes again (not from routes held all along), or
                # when a neighbour's session to it is established again.
                new = LIVE if back or (trusted and self._fresh_seers(trusted, t)) else DOWN
            elif cut_off:
                new = DOWN  # its neighbours' sessions to it are all down: whatever routes are still held
            elif not trusted:
                new = p  # no live vantage point anywhere: no evidence either way
            elif losers:
                new = DOWN if (p != UNKNOWN or self.grace_over) else p
            elif seers:
                new = LIVE
            else:
                new = p
            view.observed, view.frozen, view.seen_by, view.lost_by = t in observed, t in frozen, seers, losers
            if new != p:
                changed = True
                view.state, view.since = new, now
                if new == LIVE:
                    view.left_live_at = None
                    if p in (DOWN, UNKNOWN) and self.rejoin_grace > 0:
                        # A site back from down (or first seen) is still learning the other sites'
                        # routes: its own view does not count against them for a while.
                        view.settle_until = now + self.rejoin_grace
                elif view.left_live_at is None:
                    view.left_live_at = now
        self._islands(observed, frozen, originates)
        if observed:  # with no vantage point at all (collector down) the last picture stands
            self.observers = self._observers(observed, frozen)
            self._missing(observed, frozen)
            self._stale()
            self._services(observed, frozen)
        self._schedule()
        return changed

    def _fresh_seers(self, trusted: set[str], t: str) -> bool:
        """Tell whether a trusted site re-learned enough of t's prefixes since t went away."""
        gone = self.states[t].left_live_at
        prefixes = self.model.expected[t]
        # An anycast prefix stays reachable through its other origins while t is away: a route to it
        # held all along says nothing about t, so judge on t's own prefixes when it has any.
        unicast = tuple(p for p in prefixes if not self.model.is_anycast(*p))
        prefixes = unicast or prefixes
        if gone is None or not prefixes:
            return False
        for s in trusted:
            if s == t:
                continue
            fresh = 0
            for prefix in prefixes:
                for vp in self.vps_of_site[s]:
                    if vp.active and prefix in vp.have and vp.have_since.get(prefix, gone) > gone:
                        fresh += 1
                        break
            if fresh >= self.threshold * len(prefixes):
                return True
        return False

    def _islands(self, observed: set[str], frozen: set[str], originates: dict[str, bool]) -> None:
        if not observed and self.islands:
            return  # no vantage point left (collector down): no evidence, keep the last picture
        live = [s for s in self.model.sites if self.states[s].state == LIVE]
        graph = nx.Graph()
        graph.add_nodes_from(live)
        measured: set[str] = set()
        for i, s in enumerate(live):
            for t in live[i + 1 :]:
                known = []
                if s in observed and originates[t]:
                    known.append(self._sees(s, t))
                if t in observed and originates[s]:
                    known.append(self._sees(t, s))
                if known:
                    measured.update((s, t))
                if known and all(known):
                    graph.add_edge(s, t)
        self.cut_by_sessions = self._session_cuts(graph, live)
        graph.remove_edges_from(self.cut_by_sessions)
        # A live site with no measurable direction to any other (blind, and not originating) is
        # neither connected nor cut off: nothing can be said, so it is not an island of its own.
        self.unmeasured = [s for s in live if s not in measured] if len(live) > 1 else []
        graph.remove_nodes_from(self.unmeasured)
        self.graph = graph
        self.islands = sorted(sorted(c) for c in nx.connected_components(graph))
        if len(self.islands) == 1 and len(live) == len(self.model.sites) and len(live) > 1:
            self.whole_graph = graph.copy()

    def _restarting(self, t: str) -> bool:
        """Tell whether site t's router was closed by a live kernel: a BGP process restart, not a death.

        A dead router (power cut, blackhole) goes silent: bgpwatch's session to it ends on its hold
        timer and its BMP connection hangs.  A restarting bgpd (crash, upgrade) is closed by its kernel:
        bgpwatch's session ends "closed by the peer" and its BMP connection is closed, at once.  Under
        graceful restart its neighbours keep its routes on purpose and expect it back.
        """
        vps = self.vps_of_site[t]
        if vps:
            return all(vp.state != UP for vp in vps) and any(vp.session.cause == PEER for vp in vps)
        return self.sessions.monitors.closed_cleanly(t)

    def _session_cuts(self, graph: nx.Graph, live: list[str]) -> list[tuple[str, str]]:
        """Return the edges of ``graph`` between live sites that BMP says no session path joins.

        Two sites whose routers both report to bgpwatch and report no established session between
        them have no adjacency; a pair where either is not heard is taken as possibly joined.  Sites in
        different components of that session graph cannot reach each other, whatever routes they hold.
        """
        covered, up_pairs, _down = self.sessions.monitors.session_links()
        if len(covered) < 2:
            return []
        sessions = nx.Graph()
        sessions.add_nodes_from(live)
        for i, s in enumerate(live):
            for t in live[i + 1 :]:
                if s not in covered or t not in covered or frozenset((s, t)) in up_pairs:
                    sessions.add_edge(s, t)
        component = {site: n for n, part in enumerate(nx.connected_components(sessions)) for site in part}
        return [(s, t) for s, t in graph.edges if component[s] != component[t]]

    def _observers(self, observed: set[str], frozen: set[str]) -> list[str]:
        states = self.states
        return [
            s
            for s in self.model.sites
            if s in observed
            and s not in frozen
            and states[s].state == LIVE
            and states[s].settle_until is None
        ]

    def _missing(self, observed: set[str], frozen: set[str]) -> None:
        observers = self._observers(observed, frozen)
        missing: dict[str, dict[PrefixId, tuple[str, ...]]] = {}
        for t in self.model.sites:
            if self.states[t].state == UNKNOWN:
                continue  # not seen since start: the initial load is not a loss
            found = {}
            for prefix in self.model.expected[t]:
                where = tuple(s for s in observers if prefix not in self.site_cover[s])
                if where:
                    found[prefix] = where
            if found:
                missing[t] = found
        self.missing = missing

    def _stale(self) -> None:
        stale: dict[str, dict[str, int]] = {}
        for t, view in self.states.items():
            if view.state not in (SUSPECTED, DOWN):
                continue
            holders = {}
            # An anycast prefix still announced by another origin site is held through it, not stale.
            prefixes = tuple(p for p in self.model.expected[t] if not self._held_elsewhere(t, p))
            if not prefixes:
                continue
            for vp in self.vps.values():
                if vp.state != UP:
                    continue
                if (
                    vp.up_since is not None
                    and view.left_live_at is not None
                    and vp.up_since > view.left_live_at
                ):
                    continue  # established after the site went away: what it holds is fresh
                gone = view.left_live_at
                count = sum(
                    vp.have.get(p, 0) for p in prefixes if gone is None or vp.have_since.get(p, gone) <= gone
                )
                if count:
                    holders[vp.info.name] = count
            if holders:
                stale[t] = holders
        self.stale = stale

    def _held_elsewhere(self, t: str, prefix: PrefixId) -> bool:
        """Tell whether another origin site of an anycast prefix of t still announces it."""
        owners = self.model.owners_of(*prefix)
        if len(owners) < 2:
            return False
        for owner in owners:
            if owner == t or self.states[owner].state in (SUSPECTED, DOWN):
                continue
            # Its own routers' view shows whether it still originates; with no view of its own, a
            # site that is not down is taken at its word.
            if not self.active_count[owner] or prefix in self.site_cover[owner]:
                return True
        return False

    def _services(self, observed: set[str], frozen: set[str]) -> None:
        observers = set(self._observers(observed, frozen))
        reach: dict[tuple[str, str], bool | None] = {}
        for service in self.model.services:
            for site in service.required_from:
                if site not in observers:
                    reach[(service.name, site)] = None
                    continue
                cover = self.svc_cover[site]
                reach[(service.name, site)] = all(p in cover for p in service.prefixes)
        self.service_reach = reach

    # -- views ------------------------------------------------------------------------------
    @property
    def known(self) -> bool:
        """Tell whether anything is known yet: some vantage point converged since start."""
        return any(self.active_count.values()) or any(v.state != UNKNOWN for v in self.states.values())

    def overall(self) -> str:
        """Return "unknown" (nothing converged yet), "split" (several islands) or "whole"."""
        if not self.known:
            return UNKNOWN
        return "split" if len(self.islands) > 1 else "whole"

    def live_sites(self) -> list[str]:
        """Return the live sites, in config order."""
        return [s for s in self.model.sites if self.states[s].state == LIVE]

    def as_graph(self) -> nx.Graph:
        """Return the AS adjacencies currently carrying routes to site prefixes (weight = routes)."""
        graph = nx.Graph()
        for (a, b), count in self.as_edges.items():
            graph.add_edge(a, b, routes=count)
        for asn in graph.nodes:
            graph.nodes[asn]["sites"] = list(self.model.sites_of_as.get(asn, ()))
        return graph

    def not_converged(self) -> list[str]:
        """Return the names of sessions up without a complete End-of-RIB."""
        return [vp.info.name for vp in self.vps.values() if vp.state == UP and not vp.eor_complete]

    def evidence(self, site: str) -> list[str]:
        """Return what a site's state rests on: bgpwatch's sessions, other sites' routes, BMP session state."""
        view = self.states[site]
        vps = self.vps_of_site[site]
        found = []
        if vps:
            up = sum(1 for vp in vps if vp.up)
            found.append(f"bgpwatch sessions: {up} of {len(vps)} up")
        if view.frozen:
            found.append("its view is frozen (holds routes the others withdrew)")
        if view.lost_by:
            found.append(f"withdrawals: its prefixes lost by {', '.join(view.lost_by)}")
        if view.seen_by:
            found.append(f"routes: its prefixes still seen by {', '.join(view.seen_by)}")
        lost = self.lost_by_sessions.get(site)
        if lost:
            found.append(f"BMP: every neighbour session to it is down: {', '.join(lost)}")
        cuts = [t for pair in self.cut_by_sessions if site in pair for t in pair if t != site]
        if cuts:
            found.append(f"BMP: no established session path to {', '.join(sorted(cuts))}")
        return found

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Return a JSON-ready view: sites, sessions, visibility matrix, islands, stale routes, AS edges."""
        model = self.model
        sites = []
        for name in model.sites:
            view = self.states[name]
            sites.append(
                {
                    "name": name,
                    "state": view.state,
                    "confirmation": view.confirmation,
                    "since": view.since,
                    "observed": view.observed,
                    "frozen": view.frozen,
                    "settling": view.settle_until is not None,
                    "seen_by": list(view.seen_by),
                    "lost_by": list(view.lost_by),
                    "prefixes": [format_prefix(f, k) for f, k in model.expected[name]],
                    "evidence": self.evidence(name),
                    "sessions": [
                        {
                            "name": vp.info.name,
                            "address": vp.info.address,
                            "state": vp.state,
                            "since": vp.since,
                            "converged": vp.eor_complete,
                            "active": vp.active,
                            "site_prefixes": len(vp.have),
                        }
                        for vp in self.vps_of_site[name]
                    ],
                }
            )
        visibility = {
            s: {t: self.visibility(s, t) for t in model.sites if model.expected[t]} for s in model.sites
        }
        edges = []
        for (a, b), count in sorted(self.as_edges.items()):
            edges.append(
                {
                    "a": a,
                    "b": b,
                    "routes": count,
                    "sites_a": list(model.sites_of_as.get(a, ())),
                    "sites_b": list(model.sites_of_as.get(b, ())),
                }
            )
        return {
            "at": now if now is not None else self.evaluated_at,
            "threshold": self.threshold,
            "sites": sites,
            "live": self.live_sites(),
            "visibility": visibility,
            "edges": sorted([sorted(e) for e in self.graph.edges]),
            "islands": self.islands,
            "split": None if self.known is False else len(self.islands) > 1,
            "state": self.overall(),
            "blind": list(self.blind),
            "unmeasured": list(self.unmeasured),
            "cut_by_sessions": [sorted(pair) for pair in self.cut_by_sessions],
            "bmp_routers_heard": sorted(r.name for r in self.sessions.monitors.routers.values() if r.heard),
            "stale": [{"site": s, "holders": holders} for s, holders in sorted(self.stale.items())],
            "missing": [
                {"site": t, "prefix": format_prefix(*p), "missing_at": list(where)}
                for t, found in self.missing.items()
                for p, where in found.items()
            ],
            "not_converged": self.not_converged(),
            "services": [
                {"service": svc, "site": site, "reachable": ok}
                for (svc, site), ok in self.service_reach.items()
            ],
            "as_graph": {"edges": edges},
        }

    def to_dot(self) -> str:
        """Return the site graph in Graphviz syntax (islands, states, visibility both ways, BMP cuts)."""
        return render_dot(self.snapshot())
