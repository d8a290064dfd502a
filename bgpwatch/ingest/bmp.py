"""Decode BMP messages (RFC 7854; RFC 9069 Loc-RIB; RFC 8671 Adj-RIB-Out recognised) into typed events.

The station (`bgpwatch.ingest.sources.bmp`) frames the TCP stream with `message_length` and hands
each whole message to `BmpParser.parse` with its arrival time; the parser keeps, per connection
and monitored peer, what Peer Up negotiated, and turns:

* Initiation -> ``MonitorState(up=True)`` with the sysName (TLV 2) and sysDescr (TLV 1);
  Termination -> ``MonitorState(up=False)`` with its reason; `BmpParser.disconnect` the same when
  the TCP connection closes while the router was up.
* Peer Up / Peer Down -> ``MonitoredSession`` (UP with both OPENs' negotiation; DOWN with the
  reason code, the NOTIFICATION or FSM event and a typed ``cause``: hold_timer for a NOTIFICATION
  4 either way or FSM event 10 (HoldTimer_Expires), peer for reasons 3/4 otherwise, other else).
  What the lab routers really send for a hold timer expiry (fixtures/SOURCES.md): FRR 8.4 reason 2
  with FSM event 0, GoBGP 3.10 reason 3 with no NOTIFICATION (accepted, counted), so neither says
  "hold timer".  Loc-RIB (peer type 3) Peer Up / Down describe no BGP session: counted, no event.
* Route Monitoring -> the usual ``Announce`` / ``Withdraw`` / ``EndOfRib`` through the shared
  UPDATE decoder (`bgpwatch.ingest.bgp_update`), their ``peer`` a view key
  (``events.view_key(router, peer address, pre|post|loc)``).  ADD-PATH path ids are decoded where
  Peer Up shows the router receiving them (RFC 7911), checked against the first UPDATEs (FRR 8.4
  negotiates ADD-PATH and sends none); 2-octet AS paths where the A flag is set, or, without it,
  where Peer Up shows no 4-octet AS on both sides and the path parses only that way (FRR keeps
  2-octet paths without the flag, GoBGP re-encodes them).  Adj-RIB-Out (O flag) is counted, ignored.
* Statistics Report -> ``MonitorStats`` (per-AFI/SAFI gauges are summed per type: the event has no
  AFI field); Route Mirroring and unknown message types (RFC 7854 4: "MUST ignore") are counted.

Every malformed message raises `IngestError` with a ``bmp_*`` reason (`REASONS`) and a detail of at
most `MAX_DETAIL_CHARS` naming what is wrong, the byte offset and the message type; a message is
decoded whole before any state changes, so the parser stays consistent and decodes the next one.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from bgpwatch.events import (
    DOWN,
    LOC_RIB,
    POST_POLICY,
    PRE_POLICY,
    UP,
    EndOfRib,
    Event,
    MonitoredSession,
    MonitorState,
    MonitorStats,
    view_key,
)
from bgpwatch.ingest.bgp_open import (
    ADD_PATH_RECEIVE,
    ADD_PATH_SEND,
    CAP_ADD_PATH,
    MARKER,
    BgpMessageError,
    OpenMessage,
    decode_notification,
    decode_open,
)
from bgpwatch.ingest.bgp_update import (
    ADDPATH_IPV4,
    ADDPATH_IPV6,
    UpdateDecoder,
    UpdateStats,
    as_path_width,
    end_of_rib,
    nlri_fields,
    nlri_fits,
)
from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.ingest.reasons import HOLD_TIMER, OTHER, PEER
from bgpwatch.rib.attributes import AttributePool

VERSION = 3
COMMON_HEADER_BYTES = 6
PER_PEER_HEADER_BYTES = 42
# A Peer Up holds two OPENs (<= 4096 bytes each, 65535 with RFC 8654) and TLVs; a Route
# Monitoring message one UPDATE.  Anything longer is a damaged length field.
MAX_MESSAGE_BYTES = 1 << 18
MAX_TLVS = 256  # per message: real routers send a handful
MAX_PEERS = 1 << 16  # monitored peers per connection (a route server has a few thousand)
MAX_TEXT_CHARS = 255  # sysName, sysDescr, reason strings kept per TLV
MAX_DETAIL_CHARS = 200
_ROUTE_CACHE_LIMIT = 1 << 16  # per-peer header -> view decisions kept per connection

ROUTE_MONITORING, STATISTICS_REPORT, PEER_DOWN, PEER_UP, INITIATION, TERMINATION, ROUTE_MIRRORING = range(7)
TYPE_NAMES = (
    "Route Monitoring",
    "Statistics Report",
    "Peer Down",
    "Peer Up",
    "Initiation",
    "Termination",
    "Route Mirroring",
)
PEER_GLOBAL, PEER_RD, PEER_LOCAL, PEER_LOC_RIB = range(4)
FLAG_V = 0x80  # IPv6 peer (peer types 0-2)
FLAG_L = 0x40  # post-policy
FLAG_A = 0x20  # legacy 2-octet AS_PATH
FLAG_O = 0x10  # Adj-RIB-Out (RFC 8671)
LOC_RIB_PEER = "0.0.0.0"  # the peer address of Loc-RIB views (RFC 9069 sets it to zero)

# Every reason `parse` raises (a metric can export them all from zero).
REASONS = (
    "bmp_truncated",  # shorter than the fixed parts its type needs
    "bmp_bad_version",  # version other than 3
    "bmp_bad_length",  # length field below 6 or not the message's size
    "bmp_too_long",  # length field above max_message_bytes
    "bmp_bad_peer_header",  # unknown peer type
    "bmp_bad_tlv",  # a TLV cut, overrunning, too many, or with a bad value size
    "bmp_bad_open",  # a Peer Up OPEN that does not decode
    "bmp_bad_peer_up",  # a Peer Up cut before its OPENs
    "bmp_too_many_peers",  # a Peer Up beyond MAX_PEERS monitored peers on one connection
    "bmp_bad_peer_down",  # unknown reason code, bad NOTIFICATION or FSM event
    "bmp_bad_update",  # the Route Monitoring BGP message is not a well-formed UPDATE
    "bmp_bad_stats",  # a Statistics Report cut or with impossible counts or sizes
    "bmp_undecodable",  # any other decoding failure (a bug: never seen in tests or fuzzing)
)

PEER_DOWN_REASONS = {
    1: "local system closed",
    2: "local system closed",
    3: "remote system closed",
    4: "remote system closed, no NOTIFICATION",
    5: "peer de-configured",
    6: "local system closed (Loc-RIB)",
}
TERMINATION_REASONS = {
    0: "administratively closed",
    1: "unspecified reason",
    2: "out of resources",
    3: "redundant connection",
    4: "permanently administratively closed",
}
FSM_HOLD_TIMER_EXPIRES = 10  # RFC 4271 8.1.3 event 10
HOLD_TIMER_CODE = 4  # NOTIFICATION error code "Hold Timer Expired"
# Statistics types whose value is AFI (2) + SAFI (1) + 64-bit gauge (RFC 7854 4.8, 8671, 9069).
PER_AFI_STATS = frozenset({9, 10, 16, 17, 19})

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_U16x2 = struct.Struct("!HH")
_HEAD = struct.Struct("!BIB")
_RM_MIN = COMMON_HEADER_BYTES + PER_PEER_HEADER_BYTES + 19 + 4


def _error(reason: str, what: str, offset: int, msg_type: int) -> IngestError:
    """Return the IngestError of a malformed message, its detail bounded."""
    if msg_type < 0:
        name = "BMP"
    else:
        name = TYPE_NAMES[msg_type] if msg_type < len(TYPE_NAMES) else f"type {msg_type}"
    article = "an" if name[0] in "AEIOU" else "a"
    detail = f"{what} at byte {offset} of {article} {name} message"
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
    return IngestError(reason, detail)


def message_length(head: bytes, max_message_bytes: int = MAX_MESSAGE_BYTES) -> int:
    """Return a BMP message's total length from its first 6 bytes; raise IngestError if impossible."""
    if len(head) < COMMON_HEADER_BYTES:
        raise _error("bmp_truncated", f"common header of {len(head)} bytes (6 needed)", 0, -1)
    version, length, msg_type = _HEAD.unpack_from(head)
    if version != VERSION:
        raise _error("bmp_bad_version", f"version {version} (3 expected)", 0, msg_type)
    if length < COMMON_HEADER_BYTES:
        raise _error("bmp_bad_length", f"length {length} (6 at least)", 1, msg_type)
    if length > max_message_bytes:
        raise _error("bmp_too_long", f"length {length} (more than {max_message_bytes})", 1, msg_type)
    return length


def split_messages(data: bytes) -> list[bytes]:
    """Cut a stream of whole BMP messages (a capture file) into messages; raise IngestError if it is not."""
    messages, pos = [], 0
    while pos < len(data):
        length = message_length(data[pos : pos + COMMON_HEADER_BYTES])
        if pos + length > len(data):
            raise _error("bmp_truncated", f"{len(data) - pos} of {length} bytes", 1, -1)
        messages.append(data[pos : pos + length])
        pos += length
    return messages


class _BadUpdate(Exception):
    """Raised by the UPDATE decoder's ``bad`` callback in strict mode."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _raise_bad_update(reason: str, detail: str) -> None:
    raise _BadUpdate(reason, detail)


@dataclass(slots=True)
class _Peer:
    """What one monitored peer's Peer Up negotiated (for decoding its Route Monitoring)."""

    address: str
    four_byte_asn: bool
    addpath: int  # ADDPATH_IPV4 | ADDPATH_IPV6 mask of the families whose UPDATEs carry path ids
    # Families where an OPEN mentions ADD-PATH but the UPDATEs have not yet shown whether they carry
    # path ids: FRR 8.4 negotiates ADD-PATH and then sends Route Monitoring without them.
    unsure: int = 0


class _Router:
    """One BMP connection: the router's identity and its monitored peers."""

    __slots__ = ("address", "name", "sys_name", "sys_descr", "up", "peers", "routes")

    def __init__(self, address: str, name: str) -> None:
        self.address = address
        self.name = name
        self.sys_name = ""
        self.sys_descr = ""
        self.up = False
        self.peers: dict[bytes, _Peer] = {}  # peer type + distinguisher + address -> negotiation
        # Per-peer header bytes 6..32 (type, flags, distinguisher, address) -> (view, asn_len, peer).
        self.routes: dict[bytes, tuple[str | None, int, _Peer | None]] = {}


def _default_resolve(address: str, sys_name: str) -> str:
    return sys_name or address


def _text(raw: bytes) -> str:
    """Return a TLV's printable text: UTF-8 (bad bytes replaced), NULs dropped, bounded."""
    return raw[: MAX_TEXT_CHARS * 4].decode("utf-8", "replace").replace("\x00", "").strip()[:MAX_TEXT_CHARS]


class BmpParser:
    """Turn whole BMP messages of several router connections into events.

    ``resolve(address, sys_name)`` names a router in events (default: its sysName, else its
    address); it is asked again when the router's Initiation arrives.  ``counters`` counts what is
    valid but makes no event (route mirroring, Adj-RIB-Out, unknown TLVs, multicast prefixes...).
    """

    def __init__(
        self,
        pool: AttributePool,
        resolve: Callable[[str, str], str] | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.pool = pool
        self.resolve = resolve if resolve is not None else _default_resolve
        self.max_message_bytes = max_message_bytes
        self.counters: Counter[str] = Counter()
        self.update_stats = UpdateStats(not_emitted=self.counters)
        self._decoder = UpdateDecoder(pool, self.update_stats, _raise_bad_update, strict=True)
        self._routers: dict[str, _Router] = {}

    # -- connections -----------------------------------------------------------------------------
    def connect(self, conn: str, address: str, at: float) -> None:
        """Start a new TCP connection from a router (forgetting any earlier state of ``conn``)."""
        self._drop(conn)
        self._routers[conn] = _Router(address, self.resolve(address, ""))

    def disconnect(self, conn: str, at: float, reason: str) -> list[Event]:
        """End a connection; return its ``MonitorState(up=False)`` if the router was up."""
        router = self._routers.get(conn)
        if router is None:
            return []
        self._drop(conn)
        if not router.up:
            return []
        return [
            MonitorState(
                at, router.name, False, router.address, router.sys_name, router.sys_descr, reason[:200]
            )
        ]

    def router_name(self, conn: str) -> str | None:
        """Return the name events of ``conn`` carry (None for an unknown connection)."""
        router = self._routers.get(conn)
        return router.name if router is not None else None

    def _drop(self, conn: str) -> None:
        router = self._routers.pop(conn, None)
        if router is None:
            return
        for view, _, _ in router.routes.values():
            if view is not None:
                self._decoder.forget(view)
        for peer in router.peers.values():
            for policy in (PRE_POLICY, POST_POLICY, LOC_RIB):
                self._decoder.forget(view_key(router.name, peer.address, policy))

    # -- messages --------------------------------------------------------------------------------
    def parse(self, conn: str, message: bytes, at: float) -> list[Event]:
        """Decode one whole BMP message (common header included) of connection ``conn``."""
        if not isinstance(message, bytes):
            message = bytes(message)
        router = self._routers.get(conn)
        if router is None:
            # A message without connect(): accepted, the connection named after itself.
            router = self._routers[conn] = _Router(conn, self.resolve(conn, ""))
        size = len(message)
        if size < COMMON_HEADER_BYTES:
            raise _error("bmp_truncated", f"message of {size} bytes (6 needed)", 0, -1)
        version, length, msg_type = _HEAD.unpack_from(message)
        if version != VERSION:
            raise _error("bmp_bad_version", f"version {version} (3 expected)", 0, msg_type)
        if length != size:
            raise _error("bmp_bad_length", f"length field {length}, message of {size} bytes", 1, msg_type)
        if size > self.max_message_bytes:
            raise _error("bmp_too_long", f"length {size} (more than {self.max_message_bytes})", 1, msg_type)
        try:
            if msg_type == ROUTE_MONITORING:
                return self._route_monitoring(router, message, at)
            if msg_type == PEER_UP:
                return self._peer_up(router, message, at)
            if msg_type == PEER_DOWN:
                return self._peer_down(router, message, at)
            if msg_type == STATISTICS_REPORT:
                return self._statistics(router, message, at)
            if msg_type == INITIATION:
                return self._initiation(router, message, at)
            if msg_type == TERMINATION:
                return self._termination(router, message, at)
            if msg_type == ROUTE_MIRRORING:
                self._peer_header(router, message, msg_type)
                self.counters["route_mirroring"] += 1
                return []
        except IngestError:
            raise
        except (IndexError, KeyError, ValueError, struct.error, UnicodeError) as exc:
            # Never expected (the fuzz test looks for it): the message is rejected, not the daemon.
            raise _error("bmp_undecodable", f"{type(exc).__name__}: {exc}", 0, msg_type) from exc
        self.counters["unknown_message_type"] += 1
        return []

    def _peer_header(self, router: _Router, msg: bytes, msg_type: int) -> tuple[int, int, str, int, str]:
        """Return (peer type, flags, peer address, peer AS, peer BGP id) of the per-peer header."""
        if len(msg) < COMMON_HEADER_BYTES + PER_PEER_HEADER_BYTES:
            raise _error("bmp_truncated", f"per-peer header cut ({len(msg) - 6} of 42 bytes)", 6, msg_type)
        peer_type = msg[6]
        flags = msg[7]
        if peer_type > PEER_LOC_RIB:
            raise _error("bmp_bad_peer_header", f"peer type {peer_type}", 6, msg_type)
        address = self._decoder.address
        if peer_type == PEER_LOC_RIB:
            peer = LOC_RIB_PEER
        elif flags & FLAG_V:
            peer = address(msg[16:32])
        else:
            peer = address(msg[28:32])
        return peer_type, flags, peer, _U32.unpack_from(msg, 32)[0], address(msg[36:40])

    def _tlvs(self, msg: bytes, pos: int, end: int, msg_type: int) -> list[tuple[int, bytes]]:
        """Return the (type, value) TLVs of ``msg[pos:end]``."""
        out: list[tuple[int, bytes]] = []
        while pos < end:
            if end - pos < 4:
                raise _error("bmp_bad_tlv", f"TLV header cut ({end - pos} bytes left)", pos, msg_type)
            tlv_type, tlv_len = _U16x2.unpack_from(msg, pos)
            if pos + 4 + tlv_len > end:
                raise _error(
                    "bmp_bad_tlv",
                    f"TLV type {tlv_type} of {tlv_len} bytes, {end - pos - 4} left",
                    pos,
                    msg_type,
                )
            if len(out) >= MAX_TLVS:
                raise _error("bmp_bad_tlv", f"more than {MAX_TLVS} TLVs", pos, msg_type)
            out.append((tlv_type, msg[pos + 4 : pos + 4 + tlv_len]))
            pos += 4 + tlv_len
        return out

    # -- Initiation, Termination -------------------------------------------------------------------
    def _initiation(self, router: _Router, msg: bytes, at: float) -> list[Event]:
        sys_name = sys_descr = ""
        for tlv_type, value in self._tlvs(msg, COMMON_HEADER_BYTES, len(msg), INITIATION):
            if tlv_type == 2:
                sys_name = _text(value)
            elif tlv_type == 1:
                sys_descr = _text(value)
            elif tlv_type != 0:  # 0: free text, nothing to keep
                self.counters["unknown_initiation_tlv"] += 1
        name = self.resolve(router.address, sys_name)
        if name != router.name:
            self._rename(router, name)
        router.sys_name = sys_name
        router.sys_descr = sys_descr
        router.up = True
        return [MonitorState(at, router.name, True, router.address, sys_name, sys_descr)]

    def _rename(self, router: _Router, name: str) -> None:
        """Name the router anew: its views' ADD-PATH state moves with it."""
        paths = self._decoder.paths
        for peer in router.peers.values():
            for policy in (PRE_POLICY, POST_POLICY, LOC_RIB):
                state = paths.pop(view_key(router.name, peer.address, policy), None)
                if state is not None:
                    paths[view_key(name, peer.address, policy)] = state
        router.routes.clear()
        router.name = name

    def _termination(self, router: _Router, msg: bytes, at: float) -> list[Event]:
        texts: list[str] = []
        reason = ""
        for tlv_type, value in self._tlvs(msg, COMMON_HEADER_BYTES, len(msg), TERMINATION):
            if tlv_type == 1:
                if len(value) != 2:
                    raise _error(
                        "bmp_bad_tlv", f"reason TLV of {len(value)} bytes (2 expected)", 6, TERMINATION
                    )
                code = _U16.unpack_from(value)[0]
                reason = TERMINATION_REASONS.get(code, f"reason {code}")
            elif tlv_type == 0:
                texts.append(_text(value))
            else:
                self.counters["unknown_termination_tlv"] += 1
        text = "; ".join(part for part in (reason, *texts) if part) or "terminated"
        was_up = router.up
        router.up = False
        for key in list(router.peers):
            self._forget_peer(router, key)
        if not was_up:
            self.counters["termination_before_initiation"] += 1
        return [
            MonitorState(
                at, router.name, False, router.address, router.sys_name, router.sys_descr, text[:200]
            )
        ]

    # -- Peer Up, Peer Down -----------------------------------------------------------------------
    def _forget_peer(self, router: _Router, key: bytes) -> None:
        peer = router.peers.pop(key, None)
        router.routes.clear()
        if peer is not None:
            for policy in (PRE_POLICY, POST_POLICY, LOC_RIB):
                self._decoder.forget(view_key(router.name, peer.address, policy))

    def _peer_up(self, router: _Router, msg: bytes, at: float) -> list[Event]:
        peer_type, flags, peer, peer_as, peer_bgp_id = self._peer_header(router, msg, PEER_UP)
        size = len(msg)
        pos = COMMON_HEADER_BYTES + PER_PEER_HEADER_BYTES
        if size - pos < 20:
            raise _error(
                "bmp_bad_peer_up", f"local address and ports cut ({size - pos} of 20 bytes)", pos, PEER_UP
            )
        local_raw = msg[pos : pos + 16] if flags & FLAG_V else msg[pos + 12 : pos + 16]
        pos += 20
        try:
            sent, pos = decode_open(msg, pos, size, allow_empty=True)
        except BgpMessageError as exc:
            raise _error("bmp_bad_open", f"sent OPEN: {exc.what}", exc.offset, PEER_UP) from None
        if sent is None:
            raise _error("bmp_bad_open", "sent OPEN of 19 bytes (no body)", pos - 19, PEER_UP)
        try:
            received, pos = decode_open(msg, pos, size, allow_empty=True)
        except BgpMessageError as exc:
            raise _error("bmp_bad_open", f"received OPEN: {exc.what}", exc.offset, PEER_UP) from None
        tlvs = self._tlvs(msg, pos, size, PEER_UP)
        self.counters["peer_up_tlv"] += len(tlvs)
        loc = peer_type == PEER_LOC_RIB
        if received is None:
            # A bare OPEN header: the peer's capabilities are unknown; assume it agreed with ours.
            self.counters["peer_up_empty_open"] += 1
            received = sent
        key = msg[6:7] + msg[8:32]
        if key not in router.peers and len(router.peers) >= MAX_PEERS:
            raise _error("bmp_too_many_peers", f"more than {MAX_PEERS} monitored peers", 6, PEER_UP)
        self._forget_peer(router, key)
        four_byte = sent.four_byte_asn and received.four_byte_asn
        addpath, unsure = _addpath_masks(sent, received, loc)
        router.peers[key] = _Peer(peer, four_byte, addpath, unsure)
        if loc:
            self.counters["loc_rib_peer_up"] += 1
            return []
        hold = min(sent.hold_time, received.hold_time)
        return [
            MonitoredSession(
                at,
                router.name,
                peer,
                UP,
                peer_as=peer_as,
                peer_bgp_id=peer_bgp_id,
                local_bgp_id=sent.bgp_id,
                local_address=self._decoder.address(local_raw),
                graceful_restart=sent.graceful_restart and received.graceful_restart,
                add_path=bool(router.peers[key].addpath),
                four_byte_asn=four_byte,
                hold_time=hold,
            )
        ]

    def _peer_down(self, router: _Router, msg: bytes, at: float) -> list[Event]:
        peer_type, _, peer, peer_as, peer_bgp_id = self._peer_header(router, msg, PEER_DOWN)
        size = len(msg)
        pos = COMMON_HEADER_BYTES + PER_PEER_HEADER_BYTES
        if size <= pos:
            raise _error("bmp_truncated", "Peer Down without its reason code", pos, PEER_DOWN)
        code = msg[pos]
        pos += 1
        if code not in PEER_DOWN_REASONS:
            raise _error("bmp_bad_peer_down", f"reason code {code}", pos - 1, PEER_DOWN)
        text = PEER_DOWN_REASONS[code]
        cause = PEER if code in (3, 4) else OTHER
        if code in (1, 3) and size == pos:
            # GoBGP 3.10 reports a hold timer expiry as reason 3 with nothing after it.
            self.counters["peer_down_without_notification"] += 1
            text = f"{text}, no NOTIFICATION"
        elif code in (1, 3):
            try:
                notification, end = decode_notification(msg, pos, size)
            except BgpMessageError as exc:
                raise _error(
                    "bmp_bad_peer_down", f"NOTIFICATION: {exc.what}", exc.offset, PEER_DOWN
                ) from None
            if end != size:
                raise _error(
                    "bmp_bad_peer_down", f"{size - end} bytes after the NOTIFICATION", end, PEER_DOWN
                )
            text = f"{text}, {notification.text()}"
            if notification.code == HOLD_TIMER_CODE:
                cause = HOLD_TIMER
        elif code == 2:
            if size - pos != 2:
                raise _error(
                    "bmp_bad_peer_down", f"FSM event code of {size - pos} bytes (2 expected)", pos, PEER_DOWN
                )
            event = _U16.unpack_from(msg, pos)[0]
            text = f"{text}, FSM event {event}"
            if event == FSM_HOLD_TIMER_EXPIRES:
                text += " (hold timer expired)"
                cause = HOLD_TIMER
        elif code == 6:
            strings = [
                _text(value) for tlv_type, value in self._tlvs(msg, pos, size, PEER_DOWN) if tlv_type == 0
            ]
            if strings:
                text = f"{text}: {'; '.join(strings)}"
        elif size > pos:
            self.counters["peer_down_extra_data"] += 1
        self._forget_peer(router, msg[6:7] + msg[8:32])
        if peer_type == PEER_LOC_RIB:
            self.counters["loc_rib_peer_down"] += 1
            return []
        return [
            MonitoredSession(
                at,
                router.name,
                peer,
                DOWN,
                peer_as=peer_as,
                peer_bgp_id=peer_bgp_id,
                reason=text[:200],
                cause=cause,
                code=code,
            )
        ]

    # -- Route Monitoring ---------------------------------------------------------------------------
    def _route_monitoring(self, router: _Router, msg: bytes, at: float) -> list[Event]:
        size = len(msg)
        if size < _RM_MIN:
            if size < COMMON_HEADER_BYTES + PER_PEER_HEADER_BYTES:
                raise _error(
                    "bmp_truncated", f"per-peer header cut ({size - 6} of 42 bytes)", 6, ROUTE_MONITORING
                )
            raise _error(
                "bmp_bad_update", f"BGP message of {size - 48} bytes (23 at least)", 48, ROUTE_MONITORING
            )
        cached = router.routes.get(msg[6:32])
        if cached is None:
            cached = self._view(router, msg)
        view, asn_len, known = cached
        if view is None:
            self.counters["adj_rib_out"] += 1
            return []
        if msg[48:64] != MARKER:
            raise _error("bmp_bad_update", "BGP marker not all ones", 48, ROUTE_MONITORING)
        (length,) = _U16.unpack_from(msg, 64)
        if msg[66] != 2:
            raise _error(
                "bmp_bad_update", f"BGP message type {msg[66]} (UPDATE expected)", 66, ROUTE_MONITORING
            )
        if length != size - 48:
            raise _error(
                "bmp_bad_update",
                f"BGP length {length}, {size - 48} bytes in the message",
                64,
                ROUTE_MONITORING,
            )
        # The UPDATE's own framing: withdrawn routes and attributes inside the message.
        body = 67
        (wlen,) = _U16.unpack_from(msg, body)
        if body + 4 + wlen > size:
            raise _error(
                "bmp_bad_update",
                f"withdrawn routes length {wlen}, {size - body - 4} left",
                body,
                ROUTE_MONITORING,
            )
        (alen,) = _U16.unpack_from(msg, body + 2 + wlen)
        if body + 4 + wlen + alen > size:
            raise _error(
                "bmp_bad_update",
                f"path attributes length {alen}, {size - body - 4 - wlen} left",
                body + 2 + wlen,
                ROUTE_MONITORING,
            )
        if size - body <= 11:
            eor = end_of_rib(msg, body, size)
            if eor is not None:
                afi, safi = eor
                if safi == 1 and afi in (1, 2):
                    return [EndOfRib(at, view, 4 if afi == 1 else 6)]
                self.counters["end_of_rib_other_family"] += 1
                return []
        if not asn_len:
            asn_len = as_path_width(msg, body, size) or 2
        addpath = 0
        if known is not None:
            if known.unsure:
                self._settle_addpath(known, msg, body, size)
            addpath = known.addpath
        out: list[Event] = []
        try:
            self._decoder.update(at, view, asn_len, addpath, False, msg, body, size, out)
        except _BadUpdate as exc:
            raise _error("bmp_bad_update", f"{exc.reason}: {exc.detail}", body, ROUTE_MONITORING) from None
        return out

    def _view(self, router: _Router, msg: bytes) -> tuple[str | None, int, _Peer | None]:
        """Decide (view key, AS number size, Peer Up state) for a per-peer header; cache it."""
        peer_type, flags, peer, _, _ = self._peer_header(router, msg, ROUTE_MONITORING)
        known = router.peers.get(msg[6:7] + msg[8:32])
        if peer_type == PEER_LOC_RIB:
            result: tuple[str | None, int, _Peer | None] = (
                view_key(router.name, LOC_RIB_PEER, LOC_RIB),
                4,
                known,
            )
        elif flags & FLAG_O:
            result = (None, 4, None)  # Adj-RIB-Out: what the router sends, not what it learns
        else:
            policy = POST_POLICY if flags & FLAG_L else PRE_POLICY
            # A flag: 2-octet ASNs.  Without it, a session without 4-octet ASN on both sides is
            # unclear (GoBGP re-encodes with 4-octet ASNs, FRR 8.4 does not): 0 = look at each path.
            if flags & FLAG_A:
                asn_len = 2
            elif known is not None and not known.four_byte_asn:
                asn_len = 0
            else:
                asn_len = 4
            result = (view_key(router.name, peer, policy), asn_len, known)
        if len(router.routes) >= _ROUTE_CACHE_LIMIT:
            router.routes.clear()
        router.routes[msg[6:32]] = result
        return result

    def _settle_addpath(self, peer: _Peer, msg: bytes, body: int, size: int) -> None:
        """Learn from this UPDATE whether the families still unsure carry ADD-PATH path ids.

        A prefix list that parses whole one way only settles its family; one that parses both ways
        (or neither) leaves it to the next UPDATE, decoded meanwhile as Peer Up negotiated.
        """
        fields = nlri_fields(msg, body, size)
        if not fields:
            return
        for family, start, stop in fields:
            bit = ADDPATH_IPV4 if family == 4 else ADDPATH_IPV6
            if not peer.unsure & bit:
                continue
            with_ids = nlri_fits(msg, start, stop, family, True)
            without = nlri_fits(msg, start, stop, family, False)
            if with_ids == without:
                continue
            peer.unsure &= ~bit
            if with_ids:
                peer.addpath |= bit
            else:
                if peer.addpath & bit:
                    self.counters["addpath_negotiated_not_sent"] += 1
                peer.addpath &= ~bit

    # -- Statistics ---------------------------------------------------------------------------------
    def _statistics(self, router: _Router, msg: bytes, at: float) -> list[Event]:
        _, _, peer, _, _ = self._peer_header(router, msg, STATISTICS_REPORT)
        size = len(msg)
        pos = COMMON_HEADER_BYTES + PER_PEER_HEADER_BYTES
        if size - pos < 4:
            raise _error("bmp_bad_stats", "stats count cut", pos, STATISTICS_REPORT)
        (count,) = _U32.unpack_from(msg, pos)
        pos += 4
        if count > (size - pos) // 4 or count > MAX_TLVS:
            raise _error(
                "bmp_bad_stats", f"{count} counters in {size - pos} bytes", pos - 4, STATISTICS_REPORT
            )
        values: dict[int, int] = {}
        for _ in range(count):
            if size - pos < 4:
                raise _error("bmp_bad_stats", "counter header cut", pos, STATISTICS_REPORT)
            stat_type, stat_len = _U16x2.unpack_from(msg, pos)
            start = pos + 4
            pos = start + stat_len
            if pos > size:
                raise _error(
                    "bmp_bad_stats",
                    f"counter {stat_type} of {stat_len} bytes, {size - start} left",
                    start - 4,
                    STATISTICS_REPORT,
                )
            if stat_type in PER_AFI_STATS and stat_len == 11:
                value = _U64.unpack_from(msg, start + 3)[0]
                values[stat_type] = values.get(stat_type, 0) + value
            elif stat_len == 4:
                values[stat_type] = _U32.unpack_from(msg, start)[0]
            elif stat_len == 8:
                values[stat_type] = _U64.unpack_from(msg, start)[0]
            else:
                raise _error(
                    "bmp_bad_stats", f"counter {stat_type} of {stat_len} bytes", start - 4, STATISTICS_REPORT
                )
        if pos != size:
            raise _error("bmp_bad_stats", f"{size - pos} bytes after the counters", pos, STATISTICS_REPORT)
        return [MonitorStats(at, router.name, peer, tuple(values.items()))]


def _addpath_masks(sent: OpenMessage, received: OpenMessage, loc: bool) -> tuple[int, int]:
    """Return (families whose UPDATEs carry path ids as negotiated, families to check on the wire).

    Adj-RIB-In: the router (sent OPEN) receives paths and the peer (received OPEN) sends them.  A
    Loc-RIB's OPENs are fabricated copies (RFC 9069 5.2): the capability for a family says so.
    Every family an OPEN mentions ADD-PATH for is checked against the first UPDATEs (`nlri_fits`).
    """
    if CAP_ADD_PATH not in sent.capabilities and CAP_ADD_PATH not in received.capabilities:
        return 0, 0
    mask = unsure = 0
    for afi, bit in ((1, ADDPATH_IPV4), (2, ADDPATH_IPV6)):
        ours = sent.add_path.get((afi, 1), 0)
        theirs = received.add_path.get((afi, 1), 0)
        if ours or theirs:
            unsure |= bit
        if loc:
            if ours or theirs:
                mask |= bit
        elif ours & ADD_PATH_RECEIVE and theirs & ADD_PATH_SEND:
            mask |= bit
    return mask, unsure
