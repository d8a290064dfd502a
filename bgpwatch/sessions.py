"""What bgpwatch knows about each configured BGP session (vantage point)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bgpwatch.events import (
    DOWN,
    UP,
    Announce,
    EndOfRib,
    Event,
    Notification,
    SessionState,
    Withdraw,
)

if TYPE_CHECKING:
    from bgpwatch.config import Config

IDLE = "idle"  # never heard of since bgpwatch started
FLAP_WINDOW = 600.0


@dataclass(slots=True)
class Session:
    """State of one configured peer, as seen through ExaBGP."""

    name: str
    address: str
    site: str
    peer_as: int
    state: str = IDLE
    since: float | None = None
    reason: str = ""
    last_message: float | None = None
    established_at: float | None = None
    eor: set[int] = field(default_factory=set)
    downs: deque = field(default_factory=lambda: deque(maxlen=64))
    last_notification: str = ""

    @property
    def up(self) -> bool:
        return self.state == UP

    def flaps(self, now: float, window: float = FLAP_WINDOW) -> int:
        """Return how many times the session went down within `window` seconds before `now`."""
        return sum(1 for at in self.downs if now - at <= window)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "site": self.site,
            "peer_as": self.peer_as,
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "last_message": self.last_message,
            "seconds_since_last_message": None
            if self.last_message is None
            else max(0.0, now - self.last_message),
            "end_of_rib": sorted(f"ipv{f}" for f in self.eor),
            "flaps_10m": self.flaps(now),
            "last_notification": self.last_notification,
        }


class SessionTable:
    """Sessions by peer address; updated from events, unknown peers counted, not created."""

    def __init__(self, config: Config) -> None:
        self.by_address: dict[str, Session] = {}
        for site in config.sites:
            for peer in site.peers:
                self.by_address[peer.address] = Session(peer.name, peer.address, site.name, peer.peer_as)
        self.unknown_peers: dict[str, int] = {}

    def get(self, address: str) -> Session | None:
        return self.by_address.get(address)

    def observe(self, event: Event) -> Session | None:
        """Update the session an event belongs to; return it (None for unknown or peer-less events)."""
        kind = type(event)
        address = event.peer if kind is Announce or kind is Withdraw else getattr(event, "peer", None)
        if address is None:
            return None
        session = self.by_address.get(address)
        if session is None:
            self.unknown_peers[address] = self.unknown_peers.get(address, 0) + 1
            return None
        session.last_message = event.at
        if kind is Announce or kind is Withdraw:
            if session.state != UP:
                # Routes can only come over an established session: we missed its "up" (e.g.
                # bgpwatch restarted while ExaBGP kept running), so believe the data.
                session.state = UP
                session.since = event.at
            return session
        if isinstance(event, SessionState):
            if event.state != session.state:
                if event.state == DOWN and session.state == UP:
                    session.downs.append(event.at)
                if event.state == UP:
                    session.established_at = event.at
                    session.eor.clear()
                if event.state == DOWN:
                    session.eor.clear()
                session.state = event.state
                session.since = event.at
            session.reason = event.reason
        elif isinstance(event, EndOfRib):
            session.eor.add(event.family)
        elif isinstance(event, Notification):
            session.last_notification = (
                f"{event.direction} {event.code}/{event.subcode} {event.message}".strip()
            )
        elif isinstance(event, Announce | Withdraw) and session.state != UP:
            # Routes can only come over an established session: we missed its "up" (e.g. bgpwatch
            # restarted while ExaBGP kept running), so believe the data.
            session.state = UP
            session.since = event.at
        return session
