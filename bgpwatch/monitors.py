"""BMP routers and the BGP sessions they report: the one owner of what routers say about their sessions.

bgpwatch's own sessions (`bgpwatch.sessions.Session`) say whether bgpwatch reaches a site's router.
BMP (RFC 7854) adds what bgpwatch cannot see through them: every router's sessions to the others.
Each BMP router belongs to a site (config ``inputs: [{type: bmp, routers: [...]}]``); each of its
monitored peers is either an *inter-site* session (the peer is a router of another site) or an
*external* one (transit, customers).  A monitored peer is recognised as a router of site t by:
- its BGP identifier (BMP per-peer header) being the identifier of a router of t: a BMP router's own
  identifier (from the OPEN it sent, in its Peer Up messages), the identifier in the OPEN of
  bgpwatch's own session to t (`Session.router_id`), or ``router_id:`` in the config;
- or its address being one of a router entry's ``addresses:``, or the address of bgpwatch's session to t.

What the topology reads (`MonitorTable.lost_by_sessions`, `session_links`): only routers bgpwatch
currently hears count; a router that is no longer heard proves nothing about its sessions (its own
loss is reported as such, never as a site down).  After a router reconnects its peers are unknown
until it reports them again (it sends Peer Up for every established session after Initiation).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bgpwatch.events import DOWN, UP, MonitoredSession, MonitorState, MonitorStats

if TYPE_CHECKING:
    from bgpwatch.config import Config
    from bgpwatch.sessions import SessionTable

IDLE = "idle"  # not reported since the router (re)connected

# MonitorChange kinds.
ROUTER_UP = "router_up"
ROUTER_DOWN = "router_down"
PEER_UP = "peer_up"
PEER_DOWN = "peer_down"

# How the station says a router closed its BMP connection itself (TCP FIN): its kernel is alive.
CLOSED_BY_ROUTER = "closed by the router"
# How the station records the connections it closes when bgpwatch stops: not the router's doing.
STATION_STOPPING = "bgpwatch stopping"

INTER_SITE = "inter-site"
EXTERNAL = "external"


@dataclass(slots=True, eq=False)
class MonitoredPeer:
    """One BGP session of a BMP router, as the router reports it."""

    router: str
    address: str
    peer_as: int | None = None
    bgp_id: str | None = None
    state: str = IDLE
    since: float | None = None
    up_since: float | None = None
    reason: str = ""
    cause: str = ""
    code: int | None = None
    graceful_restart: bool = False
    hold_time: int | None = None
    downs: deque = field(default_factory=lambda: deque(maxlen=100))
    stats: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Router:
    """A router that streams BMP to bgpwatch."""

    name: str
    site: str | None  # None: connected but matches no configured router
    configured: bool = True
    address: str = ""  # configured or where it connected from
    sys_name: str = ""
    sys_descr: str = ""
    bgp_id: str | None = None  # configured router_id, else learnt from its Peer Up messages
    heard: bool = False  # its monitoring session is up
    since: float | None = None
    reason: str = ""
    connects: int = 0
    peers: dict[str, MonitoredPeer] = field(default_factory=dict)


@dataclass(slots=True)
class MonitorChange:
    """Something that changed about a BMP router or one of its sessions."""

    kind: str
    router: Router
    peer: MonitoredPeer | None
    at: float


class MonitorTable:
    """BMP routers by name, their monitored peers, and which site each peer belongs to."""

    def __init__(self, sessions: SessionTable, config: Config | None = None) -> None:
        self.sessions = sessions
        self.routers: dict[str, Router] = {}
        self._by_address: dict[str, str] = {}
        self._by_sys_name: dict[str, str] = {}
        self._ids: dict[str, str] = {}  # configured BGP identifier -> site
        self._addresses: dict[str, str] = {}  # configured inter-site address -> site
        if config is not None:
            self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Take the routers of a (re)loaded configuration; what is known about them carries over."""
        bmp = getattr(config, "bmp", None)
        old = self.routers
        self.routers = {}
        self._by_address, self._by_sys_name, self._ids, self._addresses = {}, {}, {}, {}
        for peer in getattr(config, "peers", ()):
            site = config.site_of_address[peer.address]
            self._addresses[peer.address] = site
            if peer.router_id is not None:
                self._ids[peer.router_id] = site
        for entry in bmp.routers if bmp is not None else ():
            router = old.get(entry.name) or Router(entry.name, entry.site)
            router.site, router.configured = entry.site, True
            if entry.address is not None:
                router.address = entry.address
                self._by_address[entry.address] = entry.name
            if entry.sys_name is not None:
                self._by_sys_name[entry.sys_name] = entry.name
            if entry.router_id is not None:
                router.bgp_id = entry.router_id
                self._ids[entry.router_id] = entry.site
            for address in entry.addresses:
                self._addresses[address] = entry.site
            self.routers[entry.name] = router
        for name, router in old.items():
            if name not in self.routers and not router.configured:
                self.routers[name] = router  # strangers stay visible

    # -- naming (the BMP parser asks) ------------------------------------------------------------
    def resolve(self, address: str, sys_name: str) -> str:
        """Return the name of the router that connected from ``address`` and calls itself ``sys_name``."""
        name = self._by_address.get(address) or (self._by_sys_name.get(sys_name) if sys_name else None)
        if name is not None:
            return name
        return sys_name or address

    def known(self, address: str, sys_name: str) -> bool:
        """Tell whether a connecting router matches a configured entry."""
        return address in self._by_address or (bool(sys_name) and sys_name in self._by_sys_name)

    def _router(self, name: str) -> Router:
        router = self.routers.get(name)
        if router is None:
            router = self.routers[name] = Router(name, None, configured=False)
        return router

    # -- events ----------------------------------------------------------------------------------
    def apply(self, event: MonitorState | MonitoredSession | MonitorStats) -> MonitorChange | None:
        """Update the router or peer an event is about; return what changed."""
        router = self._router(event.router)
        if isinstance(event, MonitorState):
            return self._router_state(router, event)
        if isinstance(event, MonitorStats):
            peer = router.peers.get(event.peer)
            if peer is not None:
                peer.stats.update(event.counters)
            return None
        return self._peer_state(router, event)

    def _router_state(self, router: Router, event: MonitorState) -> MonitorChange | None:
        if event.address and not router.address:
            router.address = event.address
        if event.sys_name:
            router.sys_name = event.sys_name
        if event.sys_descr:
            router.sys_descr = event.sys_descr
        if event.up == router.heard:
            return None
        router.heard, router.since = event.up, event.at
        router.reason = event.reason
        if event.up:
            router.connects += 1
            # It reports every established session again; until then nothing is known of them.
            for peer in router.peers.values():
                peer.state, peer.since = IDLE, event.at
            return MonitorChange(ROUTER_UP, router, None, event.at)
        return MonitorChange(ROUTER_DOWN, router, None, event.at)

    def _peer_state(self, router: Router, event: MonitoredSession) -> MonitorChange | None:
        if not router.heard:
            # Messages before Initiation are accepted (some routers skip it): the router is heard.
            router.heard, router.since = True, event.at
        if event.local_bgp_id and router.bgp_id is None:
            router.bgp_id = event.local_bgp_id
        peer = router.peers.get(event.peer)
        if peer is None:
            peer = router.peers[event.peer] = MonitoredPeer(router.name, event.peer)
        if event.peer_as is not None:
            peer.peer_as = event.peer_as
        if event.peer_bgp_id and event.peer_bgp_id != "0.0.0.0":
            # FRR's repeated Peer Downs of a session that failed to come back carry 0.0.0.0: keep
            # the identifier learnt before, or the session stops counting as inter-site.
            peer.bgp_id = event.peer_bgp_id
        if event.state == UP:
            peer.graceful_restart, peer.hold_time = event.graceful_restart, event.hold_time
            if peer.state == UP:
                return None
            peer.state, peer.since, peer.up_since = UP, event.at, event.at
            # reason, cause and code stay: the last down's, shown like birdc's "Last error".
            return MonitorChange(PEER_UP, router, peer, event.at)
        peer.reason, peer.cause, peer.code = event.reason, event.cause, event.code
        if peer.state == DOWN:
            return None
        was_up = peer.state == UP
        peer.state, peer.since = DOWN, event.at
        if was_up:
            peer.downs.append(event.at)
        return MonitorChange(PEER_DOWN, router, peer, event.at)

    # -- what the topology reads -----------------------------------------------------------------
    def site_of_peer(self, peer: MonitoredPeer) -> str | None:
        """Return the site whose router a monitored peer is, or None for an external peer."""
        if peer.bgp_id:
            site = self._ids.get(peer.bgp_id)
            if site is not None:
                return site
            for router in self.routers.values():
                if router.bgp_id == peer.bgp_id and router.site is not None:
                    return router.site
            for session in self.sessions.by_address.values():
                if session.router_id == peer.bgp_id and session.site is not None:
                    return session.site
        return self._addresses.get(peer.address)

    def kind_of(self, router: Router, peer: MonitoredPeer) -> str:
        """Return INTER_SITE when the peer is a router of another site, else EXTERNAL."""
        site = self.site_of_peer(peer)
        return INTER_SITE if site is not None and site != router.site else EXTERNAL

    def heard_sites(self) -> set[str]:
        """Return the sites with at least one BMP router bgpwatch hears now."""
        return {r.site for r in self.routers.values() if r.heard and r.site is not None}

    def inter_site(self) -> list[tuple[Router, MonitoredPeer, str]]:
        """Return (router, peer, peer's site) for every known inter-site session of a heard router."""
        found = []
        for router in self.routers.values():
            if not router.heard or router.site is None:
                continue
            for peer in router.peers.values():
                if peer.state == IDLE:
                    continue
                site = self.site_of_peer(peer)
                if site is not None and site != router.site:
                    found.append((router, peer, site))
        return found

    def lost_by_sessions(self, among: set[str]) -> dict[str, list[tuple[Router, MonitoredPeer]]]:
        """Return, per site, the down sessions to it when every heard session of ``among``'s routers to it is down.

        Whatever the reported cause: routers do not tell a dead peer from a restarting one reliably
        (FRR reports a neighbour's bgpd crash like a hold-timer expiry, GoBGP a hold-timer expiry as a
        close by the peer).  What tells them apart is how the site's own router left bgpwatch: the
        topology checks that (`Topology.evaluate`, `restarting`).
        """
        reports: dict[str, list[tuple[Router, MonitoredPeer]]] = {}
        alive: set[str] = set()
        for router, peer, site in self.inter_site():
            if router.site not in among:
                continue
            if peer.state == UP:
                alive.add(site)
            else:
                reports.setdefault(site, []).append((router, peer))
        return {site: found for site, found in reports.items() if site not in alive}

    def reports_cut(self, site: str, from_sites: set[str]) -> bool:
        """Tell whether a heard router of ``site`` itself reports its sessions to ``from_sites`` down.

        Only a live router sends a Peer Down: a dead one goes silent, and the last state it reported
        (established) stands until its BMP connection is found dead.  So a site whose own router says
        it lost the neighbours that lost it is alive and cut off from them, whatever routes graceful
        restart still keeps on both sides (GoBGP sees a cut only when the hold timers expire, on both
        sides at once, so no route has moved yet).
        """
        down: set[str] = set()
        for router, peer, peer_site in self.inter_site():
            if router.site != site or peer_site not in from_sites:
                continue
            if peer.state == UP:
                return False  # its own router still has a session to one of them: not a cut
            down.add(peer_site)
        return bool(down)

    def closed_cleanly(self, site: str) -> bool:
        """Tell whether every BMP router of a site closed its connection itself (a live kernel closed it)."""
        routers = [r for r in self.routers.values() if r.site == site]
        return bool(routers) and all(
            not r.heard and r.since is not None and r.reason.startswith(CLOSED_BY_ROUTER) for r in routers
        )

    def back_since(self, site: str, since: float) -> bool:
        """Tell whether a heard router reports a session to ``site`` established after ``since``."""
        return any(
            peer.state == UP and peer.up_since is not None and peer.up_since > since
            for _router, peer, peer_site in self.inter_site()
            if peer_site == site
        )

    def session_links(self) -> tuple[set[str], set[frozenset[str]], set[frozenset[str]]]:
        """Return (sites with a heard router, site pairs with an established session, pairs reported down)."""
        up: set[frozenset[str]] = set()
        down: set[frozenset[str]] = set()
        for router, peer, site in self.inter_site():
            pair = frozenset((router.site, site))
            (up if peer.state == UP else down).add(pair)
        return self.heard_sites(), up, down - up

    # -- views -----------------------------------------------------------------------------------
    def to_dict(self, router: Router, now: float | None) -> dict[str, Any]:
        """Return one router and its monitored sessions, JSON-ready (the peers API)."""
        peers = []
        for peer in sorted(router.peers.values(), key=lambda p: p.address):
            site = self.site_of_peer(peer)
            peers.append(
                {
                    "address": peer.address,
                    "peer_as": peer.peer_as,
                    "bgp_id": peer.bgp_id,
                    "kind": INTER_SITE if site is not None and site != router.site else EXTERNAL,
                    "site": site,
                    # A router no longer heard says nothing of its sessions now.
                    "state": peer.state if router.heard else "unknown",
                    "since": peer.since,
                    "last_down_reason": peer.reason or None,
                    "last_down_cause": peer.cause or None,
                    "graceful_restart": peer.graceful_restart,
                    "hold_time": peer.hold_time,
                    "stats": {str(k): v for k, v in sorted(peer.stats.items())},
                }
            )
        return {
            "name": router.name,
            "site": router.site,
            "configured": router.configured,
            "address": router.address,
            "sys_name": router.sys_name,
            "sys_descr": router.sys_descr,
            "bgp_id": router.bgp_id,
            "state": "up" if router.heard else ("down" if router.since is not None else IDLE),
            "since": router.since,
            "reason": router.reason or None,
            "connects": router.connects,
            "sessions": peers,
        }
