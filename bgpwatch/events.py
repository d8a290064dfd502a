"""Typed events: the one shape every input (ExaBGP JSON, MRT, recordings) is normalised into.

Nothing downstream of `bgpwatch.ingest` knows which wire format an event came from.
Prefixes travel as compact integer keys (see `bgpwatch.rib.prefix`); attributes are
interned `PathAttributes`, decoded once per UPDATE and shared by every prefix in it.

Events are values: never modify one after creating it.  They are not frozen dataclasses
because creating a frozen one costs ~4x more (every field goes through ``object.__setattr__``),
and one is created per UPDATE on the hot path; they stay hashable and comparable by value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bgpwatch.rib.attributes import PathAttributes

# Session states as bgpwatch understands them.  Only UP means Established:
# ExaBGP emits "connected" at every outgoing TCP attempt, even failed ones.
CONNECTED = "connected"
UP = "up"
DOWN = "down"


@dataclass(slots=True, unsafe_hash=True)
class SessionState:
    """A BGP session changed state (connected, up or down, with ExaBGP's reason)."""

    at: float
    peer: str  # peer address as written in the config (canonical text form)
    state: str  # CONNECTED | UP | DOWN
    reason: str = ""
    peer_as: int | None = None
    cause: str = ""  # typed cause when the input knows it ("collector": bgpwatch's side closed it)


@dataclass(slots=True, unsafe_hash=True)
class Announce:
    """One UPDATE's announced prefixes, all sharing one interned attribute set."""

    at: float
    peer: str
    family: int  # 4 or 6
    prefixes: tuple[int, ...]  # prefix keys, deduplicated within the message
    attributes: PathAttributes


@dataclass(slots=True, unsafe_hash=True)
class Withdraw:
    """Prefixes withdrawn by a peer for one address family."""

    at: float
    peer: str
    family: int
    prefixes: tuple[int, ...]


@dataclass(slots=True, unsafe_hash=True)
class EndOfRib:
    """The peer finished sending its initial table for one family."""

    at: float
    peer: str
    family: int


@dataclass(slots=True, unsafe_hash=True)
class Notification:
    """A BGP NOTIFICATION sent to or received from a peer."""

    at: float
    peer: str
    direction: str  # "receive" | "send"
    code: int
    subcode: int
    message: str = ""


@dataclass(slots=True, unsafe_hash=True)
class PeerOpen:
    """The peer's OPEN: what it offered (received direction only)."""

    at: float
    peer: str
    peer_as: int | None
    router_id: str | None
    hold_time: int | None
    graceful_restart: bool  # the peer advertised the GR capability
    restart_time: int | None  # its GR restart time (seconds)
    gr_families: tuple[int, ...]  # AFIs (4, 6) the peer preserves forwarding state for / lists in GR
    families: tuple[int, ...]  # unicast AFIs offered in multiprotocol (4, 6)
    four_byte_asn: bool
    add_path: bool  # the peer offered to send several paths per prefix (ADD-PATH send, any unicast AFI)


@dataclass(slots=True, unsafe_hash=True)
class CollectorShutdown:
    """The ExaBGP process announced its own shutdown."""

    at: float
    reason: str = "shutdown"


@dataclass(slots=True, unsafe_hash=True)
class CollectorStatus:
    """An ExaBGP worker process started, stopped or died (from the supervisor, not from BGP)."""

    at: float
    worker: int
    up: bool
    reason: str = ""


@dataclass(slots=True, unsafe_hash=True)
class FeedGap:
    """Input was lost between ExaBGP and bgpwatch (the relay dropped lines)."""

    at: float
    lost: int
    source: str = "relay"


@dataclass(slots=True, unsafe_hash=True)
class Tick:
    """The clock advanced without a BGP message (live: timer; replay: stream time)."""

    at: float


# -- BMP (RFC 7854): what routers report about their own sessions -------------------------------
# A route-monitoring view is named "<router>|<peer address>|<policy>" (policy: pre, post, loc):
# BMP routes live in their own RIB (`Pipeline.bmp_rib`), never mixed with bgpwatch's sessions.
PRE_POLICY = "pre"
POST_POLICY = "post"
LOC_RIB = "loc"


def view_key(router: str, peer: str, policy: str) -> str:
    """Return the RIB key of one BMP route-monitoring view."""
    return f"{router}|{peer}|{policy}"


def split_view_key(key: str) -> tuple[str, str, str]:
    """Return (router, peer, policy) of a view key made by `view_key`."""
    router, peer, policy = key.rsplit("|", 2)
    return router, peer, policy


@dataclass(slots=True, unsafe_hash=True)
class MonitorState:
    """A BMP router's monitoring session: up (Initiation seen), or gone (Termination, TCP closed)."""

    at: float
    router: str  # the configured router name, else the address it connected from
    up: bool
    address: str = ""  # where the router connected from
    sys_name: str = ""
    sys_descr: str = ""
    reason: str = ""


@dataclass(slots=True, unsafe_hash=True)
class MonitoredSession:
    """A router reported one of its own BGP sessions Established or closed (BMP Peer Up / Peer Down).

    ``cause`` is typed like `SessionState.cause` (`bgpwatch.ingest.reasons`): hold_timer when the
    NOTIFICATION says Hold Timer Expired, peer when the peer closed it, other otherwise.
    """

    at: float
    router: str
    peer: str  # the monitored peer's address (canonical text)
    state: str  # UP | DOWN
    peer_as: int | None = None
    peer_bgp_id: str | None = None  # from the per-peer header (the peer's BGP identifier)
    local_bgp_id: str | None = None  # the router's own identifier (its sent OPEN, Peer Up only)
    local_address: str = ""
    reason: str = ""  # human text: "hold timer expired (local NOTIFICATION 4/0)"
    cause: str = ""
    code: int | None = None  # BMP Peer Down reason code (1..6)
    graceful_restart: bool = False  # both OPENs carry the GR capability (Peer Up)
    add_path: bool = False
    four_byte_asn: bool = False
    hold_time: int | None = None  # the negotiated hold time (Peer Up)


@dataclass(slots=True, unsafe_hash=True)
class MonitorStats:
    """A BMP Statistics Report: counters a router keeps for one monitored peer."""

    at: float
    router: str
    peer: str
    counters: tuple[tuple[int, int], ...]  # (stat type, value), RFC 7854 4.8


Event = (
    SessionState
    | Announce
    | Withdraw
    | EndOfRib
    | Notification
    | PeerOpen
    | CollectorShutdown
    | CollectorStatus
    | FeedGap
    | Tick
    | MonitorState
    | MonitoredSession
    | MonitorStats
)
