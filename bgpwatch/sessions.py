"""Every BGP session bgpwatch knows of: the one owner of session state.

`SessionTable.apply(event)` updates the session an event belongs to and returns a `SessionChange`
when something the rest of bgpwatch cares about changed (up, down, converged, joined mid-session);
`SessionTable.tick(now)` returns the changes the clock alone causes (convergence by a quiet period or
the convergence timeout).  The topology, the detectors and the API read sessions from here; none of
them keeps its own copy of a session's state.

Convergence ("the table is in"): a session that is up is *converged* when
- it sent End-of-RIB for every family the sites use (``end-of-rib``), or
- it sent no route for ``quiet`` seconds after ``up`` or after its last route (``quiet``): some routers
  send no End-of-RIB at all (FRR and GoBGP to a peer without the graceful-restart capability; bgpwatch
  advertises it, so they do, but other stacks may not), or
- its routes arrived without any ``up`` before them (``mid-session``: an MRT update file, a recording
  cut mid-session: there is no table load to wait for), or
- ``timeout`` seconds passed since ``up`` while routes kept coming (``timeout``): its view is used
  anyway, and ``not_converged`` reports it until the table is in (End-of-RIB or quiet).
Sessions of peers that are not configured (the peers of an MRT file) are kept too, in ``strangers``.

Why a session went down is a typed ``cause`` (`DownCause`), not a reason string matched by prefix:
``collector`` (bgpwatch's side closed it: ExaBGP stopped or died), ``hold_timer`` (our hold timer
expired: the peer went silent), ``peer`` (the peer closed it: NOTIFICATION received or TCP closed),
``other``.  A session lost on the collector's side is marked ``collector_lost`` until it is up and
converged again (or handed back as an ordinary down by the collector detector).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bgpwatch.events import (
    DOWN,
    UP,
    Announce,
    EndOfRib,
    Event,
    MonitoredSession,
    MonitorState,
    MonitorStats,
    Notification,
    PeerOpen,
    SessionState,
    Withdraw,
)
from bgpwatch.ingest import reasons
from bgpwatch.ingest.reasons import down_cause
from bgpwatch.monitors import MonitorChange, MonitorTable

if TYPE_CHECKING:
    from bgpwatch.config import Config

IDLE = "idle"  # never heard of since bgpwatch started
_MONITOR_EVENTS = frozenset({MonitorState, MonitoredSession, MonitorStats})
INFINITY = float("inf")

# How a session converged (Session.converged_by).
BY_EOR = "end-of-rib"
BY_QUIET = "quiet"
BY_TIMEOUT = "timeout"  # in use, but its table may be incomplete (not_converged says so)
BY_MID_SESSION = "mid-session"
BY_NOTHING_TO_WAIT_FOR = "no-families"
COMPLETE = frozenset({BY_EOR, BY_QUIET, BY_MID_SESSION, BY_NOTHING_TO_WAIT_FOR})

# SessionChange kinds.
CHANGE_UP = "up"
CHANGE_DOWN = "down"
CHANGE_CONVERGED = "converged"  # now counts (converged_by set)
CHANGE_COMPLETE = "complete"  # was counting on the timeout, now the table is in
CHANGE_JOINED = "joined"  # first heard of through its routes: up and converged at once


class DownCause:
    """Why a session went down (typed; see the module doc)."""

    COLLECTOR = reasons.COLLECTOR
    HOLD_TIMER = reasons.HOLD_TIMER
    PEER = reasons.PEER
    OTHER = reasons.OTHER


@dataclass(slots=True, eq=False)  # one object per session: identity is equality (and it hashes)
class Session:
    """State of one BGP session (a vantage point when configured)."""

    name: str
    address: str
    site: str | None
    peer_as: int | None
    configured: bool = True
    state: str = IDLE
    since: float | None = None
    up_since: float | None = None
    ever_up: bool = False
    reason: str = ""
    cause: str = ""
    last_message: float | None = None
    last_route: float | None = None
    eor: set[int] = field(default_factory=set)
    converged_by: str | None = None
    mid_session: bool = False
    collector_lost_at: float | None = None
    downs: deque = field(default_factory=lambda: deque(maxlen=1000))
    last_notification: str = ""
    # Why and when the session last went down from established: kept once it is up again (`peers`).
    last_down_reason: str = ""
    last_down_at: float | None = None
    # From the peer's OPEN (PeerOpen): whether it offered graceful restart, and its restart time.
    gr_offered: bool | None = None
    restart_time: int | None = None
    open_at: float | None = None
    router_id: str | None = None  # the peer's BGP identifier (configured, else from its OPEN)

    @property
    def up(self) -> bool:
        """Tell whether the session is Established."""
        return self.state == UP

    @property
    def converged(self) -> bool:
        """Tell whether the session's view counts (its table is in, or the timeout passed)."""
        return self.converged_by is not None

    @property
    def complete(self) -> bool:
        """Tell whether the initial table is known to be in (not only timed out)."""
        return self.converged_by in COMPLETE

    @property
    def active(self) -> bool:
        """Tell whether this session is up and converged: its routes count as a view."""
        return self.state == UP and self.converged_by is not None

    def flaps(self, now: float, window: float) -> int:
        """Return how many times the session went down within `window` seconds before `now`."""
        return sum(1 for at in self.downs if now - at <= window)


@dataclass(slots=True)
class SessionChange:
    """Something that changed about a session (see the kinds above)."""

    kind: str
    session: Session
    at: float


class SessionTable:
    """Sessions by peer address, configured ones and strangers; the only place session state changes."""

    def __init__(self, config: Config | None = None) -> None:
        self.by_address: dict[str, Session] = {}
        self.strangers: dict[str, Session] = {}
        self.unknown_peers: dict[str, int] = {}  # messages from peers that are not configured
        self.families: frozenset[int] = frozenset()
        self.quiet = 10.0
        self.timeout = 60.0
        self.flap_window = 300.0
        self.graceful_restart = 0  # restart time bgpwatch advertises (0: not advertised)
        self._pending: set[Session] = set()  # up, table not yet complete
        # Bumped whenever what `loaded` answers may have changed for any peer (a state change, a
        # convergence, a join): a detector compares it per event instead of asking every peer.
        self.load_epoch = 0
        # What BMP routers report about their own sessions (bgpwatch.monitors): a fact of its own.
        self.monitors = MonitorTable(self)
        if config is not None:
            self.reconfigure(config)

    # -- configuration ------------------------------------------------------------------------
    def reconfigure(self, config: Config) -> None:
        """Take the configured peers of ``config``; sessions of peers still configured keep their state."""
        old = self.by_address
        sessions: dict[str, Session] = {}
        families: set[int] = set()
        for site in config.sites:
            for prefix in site.prefixes:
                families.add(6 if ":" in str(prefix) else 4)
            for peer in site.peers:
                session = old.get(peer.address)
                if session is None:
                    session = Session(peer.name, peer.address, site.name, peer.peer_as)
                else:
                    session.name, session.site, session.peer_as = peer.name, site.name, peer.peer_as
                if peer.router_id is not None:
                    session.router_id = peer.router_id
                sessions[peer.address] = session
        self.by_address = sessions
        self.load_epoch += 1
        self.monitors.reconfigure(config)
        self._pending = {s for s in self._pending if s.address in sessions or s.address in self.strangers}
        self.families = frozenset(families)
        self.graceful_restart = int(getattr(config.collector, "graceful_restart", 0) or 0)

    def configure(self, *, quiet: float, timeout: float, flap_window: float) -> None:
        """Set the convergence and flap parameters (declared by the not_converged and session_down detectors)."""
        self.quiet, self.timeout, self.flap_window = quiet, timeout, flap_window

    # -- lookup -------------------------------------------------------------------------------
    def get(self, address: str) -> Session | None:
        """Return a configured session by peer address."""
        return self.by_address.get(address)

    def find(self, address: str) -> Session | None:
        """Return any known session (configured or stranger) by peer address."""
        return self.by_address.get(address) or self.strangers.get(address)

    def __iter__(self) -> Iterator[Session]:
        return iter(self.by_address.values())

    def loaded(self, address: str) -> bool:
        """Tell whether a peer's routes may be judged: its initial table is in (unknown peers: yes)."""
        session = self.by_address.get(address) or self.strangers.get(address)
        if session is None:
            return True
        if session.configured:
            return session.active
        return session.converged or session.state != UP

    def is_up(self, address: str) -> bool:
        """Tell whether a peer's session is up (peers never heard of: yes, unless told down)."""
        session = self.by_address.get(address) or self.strangers.get(address)
        return session is None or session.state in (UP, IDLE)

    def identity(self, address: str) -> tuple[str, str | None, int | None]:
        """Return a peer's name (its address when not configured), site and AS, if known."""
        session = self.by_address.get(address)
        if session is not None:
            return session.name, session.site, session.peer_as
        stranger = self.strangers.get(address)
        return address, None, stranger.peer_as if stranger is not None else None

    def gr_negotiated(self, session: Session) -> bool:
        """Tell whether graceful restart was negotiated on a session (both sides offered it)."""
        return bool(self.graceful_restart) and bool(session.gr_offered)

    def collector_lost(self) -> dict[str, float]:
        """Return the sessions lost on the collector's side: address -> when."""
        return {a: s.collector_lost_at for a, s in self.by_address.items() if s.collector_lost_at is not None}

    # -- changes ------------------------------------------------------------------------------
    def apply(self, event: Event) -> SessionChange | MonitorChange | None:
        """Update the session an event belongs to; return what changed, if anything that matters."""
        kind = type(event)
        if kind in _MONITOR_EVENTS:
            return self.monitors.apply(event)  # type: ignore[arg-type]
        if kind is Announce or kind is Withdraw:
            address = event.peer
            session = self.by_address.get(address)
            if session is None:
                session = self._stranger(address, None)
            at = event.at
            session.last_message = session.last_route = at
            if session.state == UP:
                return None
            return self._join(session, at)
        address = getattr(event, "peer", None)
        if address is None:
            return None
        session = self.by_address.get(address)
        if session is None:
            session = self._stranger(address, getattr(event, "peer_as", None))
        session.last_message = event.at
        if kind is SessionState:
            return self._state(session, event)
        if kind is EndOfRib:
            session.eor.add(event.family)
            if session.state == UP and not session.complete and self.families <= session.eor:
                return self._converge(session, BY_EOR, event.at)
            return None
        if kind is Notification:
            session.last_notification = (
                f"{event.direction} {event.code}/{event.subcode} {event.message}".strip()
            )
            return None
        if kind is PeerOpen:
            session.gr_offered = event.graceful_restart
            session.restart_time = event.restart_time
            session.open_at = event.at
            if event.router_id and (session.router_id is None or not session.configured):
                session.router_id = event.router_id
        return None

    def _stranger(self, address: str, peer_as: int | None) -> Session:
        self.unknown_peers[address] = self.unknown_peers.get(address, 0) + 1
        session = self.strangers.get(address)
        if session is None:
            session = self.strangers[address] = Session(address, address, None, peer_as, configured=False)
        elif peer_as is not None:
            session.peer_as = peer_as
        return session

    def _join(self, session: Session, at: float) -> SessionChange:
        # Routes come only over an established session: we missed its "up" (an MRT update file, a
        # recording cut mid-session, bgpwatch restarted while ExaBGP kept running): believe the data.
        session.state, session.since, session.up_since, session.ever_up = UP, at, at, True
        session.reason, session.cause, session.mid_session = "", "", True
        session.eor = set(self.families)
        session.converged_by = BY_MID_SESSION
        self._pending.discard(session)
        self.load_epoch += 1
        return SessionChange(CHANGE_JOINED, session, at)

    def join(self, address: str, at: float) -> SessionChange | None:
        """Count a session never heard of, whose routes are already in the RIB, as joined mid-session."""
        session = self.find(address)
        if session is None or session.state != IDLE:
            return None
        return self._join(session, at)

    def _state(self, session: Session, event: SessionState) -> SessionChange | None:
        at = event.at
        self.load_epoch += 1
        if event.state == UP:
            if session.state == UP:
                return None
            session.state, session.since, session.up_since, session.ever_up = UP, at, at, True
            session.reason, session.cause, session.mid_session = "", "", False
            session.eor, session.converged_by, session.last_route = set(), None, None
            if not self.families:
                session.converged_by = BY_NOTHING_TO_WAIT_FOR
            else:
                self._pending.add(session)
            return SessionChange(CHANGE_UP, session, at)
        session.reason = event.reason
        if session.state != UP:
            if session.state == IDLE:
                session.since = at
            session.state = event.state  # connected / down: attempts, not a change of what is known
            return None
        # An established session that is no longer: down (ExaBGP also says "connected" only when not up).
        cause = event.cause or down_cause(event.reason)
        session.state, session.since, session.cause = event.state, at, cause
        session.last_down_reason, session.last_down_at = event.reason or cause, at
        if cause != DownCause.COLLECTOR:
            session.downs.append(at)
        session.eor, session.converged_by = set(), None
        session.gr_offered = None if cause == DownCause.COLLECTOR else session.gr_offered
        self._pending.discard(session)
        return SessionChange(CHANGE_DOWN, session, at)

    def _converge(self, session: Session, by: str, at: float) -> SessionChange:
        was = session.converged_by
        session.converged_by = by
        self.load_epoch += 1
        if by in COMPLETE:
            self._pending.discard(session)
        return SessionChange(CHANGE_CONVERGED if was is None else CHANGE_COMPLETE, session, at)

    def seed_down(self, address: str, since: float, reason: str) -> bool:
        """Count a session reported down before a restart of bgpwatch as down (not never-established)."""
        session = self.by_address.get(address)
        if session is None or session.state != IDLE:
            return False
        session.state, session.since, session.reason, session.ever_up = DOWN, since, reason, True
        session.last_down_reason, session.last_down_at = reason, since
        self.load_epoch += 1
        return True

    def mark_collector_lost(self, address: str, at: float) -> None:
        """Say that a session was lost on bgpwatch's side (the collector detector decides)."""
        session = self.by_address.get(address)
        if session is not None and session.collector_lost_at is None:
            session.collector_lost_at = at

    def forget_collector_lost(self, address: str | None = None) -> None:
        """End the collector-lost mark of one session (or of all)."""
        for session in self.by_address.values() if address is None else [self.by_address[address]]:
            session.collector_lost_at = None

    # -- clock --------------------------------------------------------------------------------
    def _deadline(self, session: Session) -> float:
        start = session.up_since if session.up_since is not None else INFINITY
        deadline = INFINITY
        if self.quiet > 0:
            last = session.last_route if session.last_route is not None else start
            deadline = max(last, start) + self.quiet
        if session.converged_by is None:
            deadline = min(deadline, start + self.timeout)
        return deadline

    def next_deadline(self) -> float:
        """Return when the next time-based convergence is due (infinity if none)."""
        return min((self._deadline(s) for s in self._pending), default=INFINITY)

    def tick(self, now: float) -> list[SessionChange]:
        """Converge the sessions whose quiet period or timeout ended at or before ``now``."""
        changes = []
        for session in sorted(self._pending, key=lambda s: s.address):
            if session.state != UP:
                self._pending.discard(session)
                continue
            start = session.up_since if session.up_since is not None else now
            last = max(session.last_route if session.last_route is not None else start, start)
            if self.quiet > 0 and now >= last + self.quiet:
                changes.append(self._converge(session, BY_QUIET, last + self.quiet))
            elif session.converged_by is None and now >= start + self.timeout:
                changes.append(self._converge(session, BY_TIMEOUT, start + self.timeout))
        return changes

    # -- views --------------------------------------------------------------------------------
    def to_dict(self, session: Session, now: float) -> dict[str, Any]:
        """Return the API's view of one session."""
        return {
            "name": session.name,
            "address": session.address,
            "site": session.site,
            "peer_as": session.peer_as,
            "state": session.state,
            "since": session.since,
            "reason": session.reason,
            "down_cause": session.cause or None,
            "last_message": session.last_message,
            "seconds_since_last_message": None
            if session.last_message is None
            else max(0.0, now - session.last_message),
            "end_of_rib": sorted(f"ipv{f}" for f in session.eor if session.state == UP),
            "converged": session.active,
            "converged_by": session.converged_by,
            "graceful_restart": {
                "peer_offered": session.gr_offered,
                "negotiated": self.gr_negotiated(session) if session.gr_offered is not None else None,
                "restart_time": session.restart_time,
            },
            "flaps": session.flaps(now, self.flap_window),
            "flap_window_seconds": self.flap_window,
            "collector_lost": session.collector_lost_at is not None,
            "last_notification": session.last_notification,
            "last_down_reason": session.last_down_reason,
            "last_down_at": session.last_down_at,
        }
