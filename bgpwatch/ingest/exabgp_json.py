"""Turn ExaBGP's JSON API lines (5.x and 4.x schemas) into bgpwatch events.

This is the edge: nothing past it knows the wire format.  One line in, a list of events out,
or `IngestError` with a short ``reason`` (a metric label) and a ``detail`` for the log.

Decisions, with the ExaBGP behaviour they answer (see lab NOTES.md section 2):

* A line is accepted or rejected as a whole.  If any field the events need is invalid (one bad
  prefix among a hundred good ones, a bad next hop, an AS path of strings...) the line raises
  and yields nothing, so the RIB never holds half an UPDATE.
* In one UPDATE the withdrawn routes are processed before the NLRI (RFC 4271 section 3.1), so
  ``Withdraw`` events come before ``Announce`` events of the same line.
* One ``Announce`` per (family, next hop): every prefix in it shares one interned attribute set.
  A prefix appears in one ``Announce`` only: ExaBGP lists an IPv6 prefix under the global AND
  the link-local next hop when the router sent both; the global one is kept.
* Only ``ipv4 unicast`` and ``ipv6 unicast`` make events.  Other families (flow, vpn, evpn,
  bgp-ls...) are counted in ``ignored["unsupported_family"]`` (and ``ignored_families``), not
  errors.  So are the types keepalive/negotiated/fsm/signal/refresh/operational, UPDATEs and
  OPENs ExaBGP *sent* (``direction`` "send": our own announcements are not the peer's Adj-RIB-In)
  and UPDATEs with neither announce nor withdraw.
* A received ``open`` (needs ``receive { open; }``) becomes one ``PeerOpen``: what the peer
  offered, not what was negotiated (the consumer knows what bgpwatch itself advertised).
  Capabilities are found by code (received OPENs are keyed "1", "64"...) or by name (ExaBGP 4.x
  keys the OPENs it sent by name).  No multiprotocol capability means IPv4 unicast only (RFC 4760
  section 8), so ``families`` is then (4,).  ``peer_as`` is the asn4 capability's AS when present
  (the OPEN's own field holds AS_TRANS 23456 for a 4-byte AS).  ``gr_families`` are the unicast
  families listed in the graceful-restart capability, whatever their flags: ExaBGP prints the
  per-family forwarding-state bit as "restart" and the Restart State bit as "forwarding"
  (swapped labels, ``capability/graceful.py``).  ``add_path`` is true when the peer offers to
  *send* several paths (``send`` or ``send/receive``) for a unicast family: FRR offers
  ``receive`` only, which changes nothing bgpwatch receives.
* ADD-PATH: an NLRI's ``path-information`` is dropped; bgpwatch keeps one route per prefix
  and peer, so several paths for one prefix overwrite each other.
* AS paths: 5.x ``{"0": {"element": "as-sequence", "value": [...]}}`` and 4.x flat lists with
  ``as-set``; confederation segments are ignored (5.0.15 prints them as ``as-sequence``, which
  cannot be told apart).  A missing ORIGIN reads as "incomplete".
* Compact mode (``exabgp.api.compact``: NLRI as bare strings) and object NLRI both work.
* ExaBGP 4.x wrote NOTIFICATION data raw into state reasons (invalid JSON); such a line is
  accepted after escaping its control characters and counted in ``repaired``.
* Details carry the field path and an excerpt of at most 120 characters of the line; values are
  shown by `brief`, which never recurses (an AS path nested 1,000 deep is one clean error), and a
  structure too deep for the checks themselves is rejected as ``too_deep``.
* Times are finite numbers in [0, 2**32) (what an MRT timestamp can hold), else
  ``time_out_of_range``; whether a time is plausible *now* is `StreamClock`'s job (the pipeline's).
* An UPDATE that makes no event and names no unsupported family (no announce nor withdraw, or
  empty ones) is counted in ``ignored["empty_update"]``: every accepted line leaves a trace.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from operator import itemgetter
from typing import Any

import orjson

from bgpwatch.events import (
    CONNECTED,
    DOWN,
    UP,
    Announce,
    CollectorShutdown,
    EndOfRib,
    Event,
    Notification,
    PeerOpen,
    SessionState,
    Withdraw,
)
from bgpwatch.rib.attributes import AttributePool, PathAttributes
from bgpwatch.rib.prefix import parse_prefix

# Every reason IngestError can carry, so a metric can export them all from zero.
REASONS = (
    "invalid_json",  # not JSON: truncated, garbage, empty line, not UTF-8
    "line_too_long",  # longer than max_line_bytes (refused before decoding)
    "not_an_object",  # JSON, but not an object
    "missing_field",  # a required field is absent
    "bad_field",  # an envelope field has the wrong type or value (time, neighbor, peer, state...)
    "unknown_type",  # "type" is not an ExaBGP message type
    "bad_prefix",  # an NLRI is not a prefix of its family
    "bad_next_hop",  # a next hop is not an IP address
    "bad_attribute",  # origin, as-path, med, local-preference or communities malformed
    "time_out_of_range",  # not a finite time in [0, 2**32), or too far from the receiving clock
    "too_deep",  # nested deeper than the checks can walk
)
IGNORED_TYPES = frozenset({"keepalive", "negotiated", "fsm", "signal", "refresh", "operational"})
DEFAULT_MAX_LINE_BYTES = 4 << 20  # an extended (64 KiB) UPDATE prints well under 1 MiB
EXCERPT_CHARS = 120
SHOWN_CHARS = 60  # a value quoted in an error detail
# Times: finite, not before the epoch, before 2106 (MRT's 32-bit seconds); the clock skew allowed
# between an input's time and the receiving clock (collector.max_clock_skew) by default.
MAX_TIME = float(1 << 32)
DEFAULT_MAX_CLOCK_SKEW = 300.0

_FAMILIES = {"ipv4 unicast": 4, "ipv6 unicast": 6}
_OPEN_FAMILIES = {"ipv4/unicast": 4, "ipv6/unicast": 6}  # as capabilities print them
# Capability codes (RFC 5492 registry) and the names ExaBGP gives them where it keys by name.
_MULTIPROTOCOL, _GRACEFUL_RESTART, _ASN4, _ADD_PATH = 1, 64, 65, 69
_CAPABILITY_NAMES = {
    "multiprotocol": _MULTIPROTOCOL,
    "graceful restart": _GRACEFUL_RESTART,
    "graceful-restart": _GRACEFUL_RESTART,
    "asn4": _ASN4,
    "addpath": _ADD_PATH,
    "add-path": _ADD_PATH,
}
_ADD_PATH_SENDS = frozenset({"send", "send/receive"})
_EOR_FAMILIES = {("ipv4", "unicast"): 4, ("ipv6", "unicast"): 6}
_OUTGOING = frozenset({"send", "out"})
_DIRECTIONS = {"receive": "receive", "in": "receive", "send": "send", "out": "send"}
_STATES = {"connected": CONNECTED, "up": UP, "down": DOWN}
_ORIGINS = {"igp": "igp", "egp": "egp", "incomplete": "incomplete"}
_CONFED_ELEMENTS = frozenset({"as-confed-sequence", "as-confed-set", "confed-sequence", "confed-set"})
# Control characters JSON forbids inside strings (tab included; CR and LF end a line anyway).
_CONTROL_TEXT = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x09\x0b\x0c\x0e-\x1f]")
_PEER_CACHE = 4096
_NEXT_HOP_CACHE = 65536
# Prefix text -> key, per family: the prefixes of recent UPDATEs (a flapping prefix, peers sending
# the same table in the same order at the same time) cost one dict lookup instead of a parse.
# Small on purpose (~7 MiB full): a cache of whole tables would hold every prefix's text, ~110 B per
# prefix for good (bench/memory.py --packing lab: 421 -> 329 B/route), to save a parse (~1 us) and
# an int (~40 B) per route of the *other* peers' tables: with 4 full tables the memory came out even
# (162 vs 161.5 B/route) for 6 % more CPU during the load.  It starts over when full.
PREFIX_CACHE = 1 << 16
_NLRI = itemgetter("nlri")
VALUE_CACHE = 1 << 14  # distinct community lists remembered (each holds its JSON text)


class IngestError(ValueError):
    """A line that cannot be turned into events; ``reason`` is a metric label, ``detail`` a log text."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def excerpt(line: bytes | bytearray | memoryview | str, limit: int = EXCERPT_CHARS) -> str:
    """Return a short printable excerpt of a line for error details and logs."""
    text = line[:limit] if isinstance(line, str) else bytes(line[:limit]).decode("utf-8", "replace")
    shown = repr(text.rstrip("\r\n"))
    if len(line) > limit:
        shown += f"... ({len(line)} {'chars' if isinstance(line, str) else 'bytes'})"
    return shown


class _Text(str):
    """Text `brief` writes as is (brackets, separators), not quoted."""


_CLOSE = {list: _Text("]"), dict: _Text("}"), tuple: _Text(")")}
_OPEN = {list: "[", dict: "{", tuple: "("}


def brief(value: Any, limit: int = SHOWN_CHARS) -> str:
    """Return a repr-like text of a decoded JSON value, at most ``limit`` characters, without recursion."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack and size <= limit:
        item = stack.pop()
        kind = type(item)
        if kind is _Text:
            text = str(item)
        elif kind is list or kind is tuple or kind is dict:
            text = _OPEN[kind]
            stack.append(_CLOSE[kind])
            # Only what can be shown: each item takes at least one character.
            items = list(item.items())[:limit] if kind is dict else list(item[:limit])
            for index in range(len(items) - 1, -1, -1):
                if kind is dict:
                    stack.append(items[index][1])
                    stack.append(_Text(": "))
                    stack.append(items[index][0])
                else:
                    stack.append(items[index])
                if index:
                    stack.append(_Text(", "))
        elif kind is str:
            text = repr(item[: limit + 1])
        elif kind is int and item.bit_length() > 128:
            text = f"<integer of {item.bit_length()} bits>"  # str() of a huge int is slow, or refused
        else:
            text = repr(item)
        out.append(text)
        size += len(text)
    shown = "".join(out)
    if stack or len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return shown


def check_time(at: Any, field: str = "time") -> float:
    """Return an input's time as a float: a finite number in [0, 2**32); raise IngestError otherwise."""
    if type(at) is float or type(at) is int:
        if 0 <= at < MAX_TIME and (type(at) is int or math.isfinite(at)):
            return float(at)
        raise _bad("time_out_of_range", field, at, f"a time in [0, {MAX_TIME:.0f})")
    if at is None:
        raise _missing(field)
    raise _bad("bad_field", field, at, "a number")


def _missing(field: str) -> IngestError:
    return IngestError("missing_field", f"{field} is missing")


def _bad(reason: str, field: str, value: Any, expected: str) -> IngestError:
    return IngestError(reason, f"{field}: {expected} expected, got {brief(value)}")


def _unexpected(exc: BaseException) -> IngestError:
    """Return the error for a shape no check anticipated (or one too deep to check)."""
    if isinstance(exc, RecursionError):
        return IngestError("too_deep", "nested too deep to check")
    text = str(exc)
    if len(text) > SHOWN_CHARS:
        text = text[: SHOWN_CHARS - 3] + "..."
    return IngestError("bad_field", f"unexpected shape ({type(exc).__name__}: {text})")


class StreamClock:
    """Whether an input's time is plausible: within ``skew`` seconds of the receiving clock.

    The receiving clock is the latest of: the wall clock when one is given (live input), the last
    tick (`advance`), the latest time accepted.  A time more than ``skew`` ahead of it is from the
    future (``AHEAD``); one more than ``skew`` behind the latest accepted time would move the
    stream back (``BEHIND``).  A replay has no other clock than the stream: its first time sets
    the clock, and later ones are judged against the latest accepted.  A rejected time never
    moves the clock.
    """

    OK, AHEAD, BEHIND = 0, 1, 2

    def __init__(self, skew: float = DEFAULT_MAX_CLOCK_SKEW) -> None:
        self.skew = float(skew)
        self.latest: float | None = None  # the latest time accepted
        self.ticked: float | None = None  # the latest tick of a wall clock

    def judge(self, at: float, now: float | None = None) -> int:
        """Return OK (and take ``at`` in), AHEAD or BEHIND for a time; ``now``: the wall clock, if live."""
        latest = self.latest
        if latest is None:
            reference = now if now is not None else self.ticked
            if reference is not None and at > reference + self.skew:
                return self.AHEAD
            self.latest = at
            return self.OK
        reference = latest
        if now is not None and now > reference:
            reference = now
        if self.ticked is not None and self.ticked > reference:
            reference = self.ticked
        if at > reference + self.skew:
            return self.AHEAD
        if at < latest - self.skew:
            return self.BEHIND
        if at > latest:
            self.latest = at
        return self.OK

    def advance(self, now: float) -> None:
        """Take a tick of the wall clock (the daemon's timer): quiet periods are not jumps."""
        if math.isfinite(now) and (self.ticked is None or now > self.ticked):
            self.ticked = now

    def jump(self, at: float) -> None:
        """Accept that the stream jumped ahead to ``at`` (a gap in a recording, confirmed by what followed)."""
        self.latest = at

    def describe(self, at: float, verdict: int, now: float | None = None) -> str:
        """Return why a time was judged out of range, for the log."""
        if verdict == self.AHEAD:
            reference = max(x for x in (self.latest, self.ticked, now) if x is not None)
            return f"time {at:.6g} is {at - reference:.6g} s ahead of the clock (max {self.skew:g} s)"
        assert self.latest is not None
        return f"time {at:.6g} is {self.latest - at:.6g} s behind the stream (max {self.skew:g} s)"


def _asns(value: Any, field: str) -> tuple[int, ...]:
    if type(value) is not list:
        raise _bad("bad_attribute", field, value, "a list of AS numbers")
    for asn in value:
        if type(asn) is not int or not 0 <= asn <= 0xFFFFFFFF:
            raise _bad("bad_attribute", field, asn, "an AS number (0-4294967295)")
    return tuple(value)


def _segment_position(item: tuple[str, Any]) -> int:
    try:
        return int(item[0])
    except ValueError as exc:
        raise _bad("bad_attribute", "as-path", item[0], "a segment position") from exc


def _as_path_5x(path: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return (as_path, as_set) from 5.x segments ``{"0": {"element": ..., "value": [...]}}``."""
    if len(path) == 1:  # the common case: one AS_SEQUENCE
        segment = path.get("0")
        if type(segment) is dict and segment.get("element") == "as-sequence":
            return _asns(segment.get("value"), "as-path.0.value"), ()
    sequence: tuple[int, ...] = ()
    as_set: tuple[int, ...] = ()
    for position, segment in sorted(path.items(), key=_segment_position):
        field = f"as-path.{position}"
        if type(segment) is not dict:
            raise _bad("bad_attribute", field, segment, "a segment object")
        asns = _asns(segment.get("value"), f"{field}.value")
        element = segment.get("element")
        if element == "as-sequence":
            sequence += asns
        elif element == "as-set":
            as_set += asns
        elif element not in _CONFED_ELEMENTS:
            raise _bad("bad_attribute", f"{field}.element", element, "as-sequence or as-set")
    return sequence, as_set


def _communities(value: Any) -> tuple[tuple[int, int], ...]:
    """Validate RFC 1997 communities ``[[asn, value], ...]`` and return them as tuples."""
    try:
        result = tuple([(high, low) for high, low in value])
    except (TypeError, ValueError) as exc:
        raise _bad("bad_attribute", "community", value, "a list of [asn, value]") from exc
    for high, low in result:
        if type(high) is not int or type(low) is not int or not (0 <= high <= 0xFFFF and 0 <= low <= 0xFFFF):
            raise _bad("bad_attribute", "community", [high, low], "16-bit integers")
    return result


def _large_communities(value: Any) -> tuple[tuple[int, int, int], ...]:
    """Validate RFC 8092 large communities ``[[asn, data1, data2], ...]`` and return them as tuples."""
    try:
        result = tuple([(asn, one, two) for asn, one, two in value])
    except (TypeError, ValueError) as exc:
        raise _bad("bad_attribute", "large-community", value, "a list of [asn, data1, data2]") from exc
    for item in result:
        for part in item:
            if type(part) is not int or not 0 <= part <= 0xFFFFFFFF:
                raise _bad("bad_attribute", "large-community", list(item), "32-bit integers")
    return result


def _decode_attributes(
    attributes: Any, caches: dict[str, dict[str, tuple]] | None = None
) -> tuple[str, tuple[int, ...], tuple[int, ...], int | None, int | None, tuple, tuple]:
    """Return (origin, as_path, as_set, med, local_pref, communities, large) from an UPDATE's attributes.

    ``caches`` (by attribute name) keep the validated communities by their exact JSON.
    """
    if attributes is None:
        attributes = {}
    elif type(attributes) is not dict:
        raise _bad("bad_attribute", "attribute", attributes, "an object")
    origin_text = attributes.get("origin", "incomplete")
    origin = _ORIGINS.get(origin_text) if type(origin_text) is str else None
    if origin is None:
        raise _bad("bad_attribute", "origin", origin_text, "igp, egp or incomplete")
    path = attributes.get("as-path")
    as_path: tuple[int, ...] = ()
    as_set: tuple[int, ...] = ()
    if type(path) is dict:  # 5.x: segments by position
        as_path, as_set = _as_path_5x(path)
    elif type(path) is list:  # 4.x: flat list, the AS_SET apart
        as_path = _asns(path, "as-path")
        legacy_set = attributes.get("as-set")
        if legacy_set is not None:
            as_set = _asns(legacy_set, "as-set")
    elif path is not None:
        raise _bad("bad_attribute", "as-path", path, "segments (5.x) or a list (4.x)")
    med = attributes.get("med")
    if med is not None and (type(med) is not int or not 0 <= med <= 0xFFFFFFFF):
        raise _bad("bad_attribute", "med", med, "an integer 0-4294967295")
    local_pref = attributes.get("local-preference")
    if local_pref is not None and (type(local_pref) is not int or not 0 <= local_pref <= 0xFFFFFFFF):
        raise _bad("bad_attribute", "local-preference", local_pref, "an integer 0-4294967295")
    communities = attributes.get("community")
    if communities is not None:
        communities = _cached(communities, _communities, caches, "community")
    large = attributes.get("large-community")
    if large is not None:
        large = _cached(large, _large_communities, caches, "large-community")
    return (origin, as_path, as_set, med, local_pref, communities or (), large or ())


def _cached(value: Any, decode: Any, caches: dict[str, dict[str, tuple]] | None, name: str) -> tuple:
    """Return ``decode(value)``, from the cache when the same JSON was decoded before."""
    if caches is None or type(value) is not list:
        return decode(value)
    cache = caches[name]
    # As text: orjson's bytes keep a 4 KiB buffer each (65,536 cached lists would hold 256 MiB).
    exact = orjson.dumps(value).decode()
    found = cache.get(exact)
    if found is None:
        found = decode(value)
        if len(cache) >= VALUE_CACHE:
            cache.clear()
        cache[exact] = found
    return found


class ExaBGPJsonParser:
    """Parse ExaBGP JSON API lines into events, interning attributes in a shared pool.

    Counters: ``lines`` (every call), ``errors`` (rejected lines by reason), ``ignored`` (lines
    or family blocks that make no event: the ignored type name, "unsupported_family",
    "update_sent", "empty_update"), ``ignored_families`` (by ExaBGP family name).
    """

    def __init__(self, pool: AttributePool, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.pool = pool
        self.max_line_bytes = max_line_bytes
        self.lines = 0
        self.errors: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        self.ignored_families: Counter[str] = Counter()
        self.repaired = 0  # lines accepted after escaping raw control characters (ExaBGP 4.x)
        # Address text -> canonical form; ExaBGP repeats a handful of addresses in every line.
        self._peers: dict[str, str] = {}
        self._next_hops: dict[str, tuple[str, bool]] = {}
        self._prefix_cache: dict[int, dict[str, int]] = {4: {}, 6: {}}
        # Per peer: the last UPDATE's attribute object, its JSON (once needed), its decoding and
        # the sets interned from it by next hop.  A router that does not pack sends runs of
        # UPDATEs with the same attributes.
        self._last_attributes: dict[str, list[Any]] = {}
        # Exact JSON of a community list -> its validated tuples (networks reuse a few lists).
        self._value_caches: dict[str, dict[str, tuple]] = {"community": {}, "large-community": {}}

    # -- entry point ----------------------------------------------------------------------------
    def parse(self, line: bytes | str) -> list[Event]:
        """Return the events of one JSON line; raise IngestError (counted in ``errors``) if it is invalid."""
        self.lines += 1
        try:
            if len(line) > self.max_line_bytes:
                raise IngestError("line_too_long", f"{len(line)} > {self.max_line_bytes} allowed")
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                doc = _loads_repaired(line, exc)
                events = self._dispatch(doc)
                self.repaired += 1
                return events
            if type(doc) is dict and doc.get("type") == "update":  # the hot path, one call less
                return self._update(doc)
            return self._dispatch(doc)
        except IngestError as exc:
            self._reject(exc, line)
            raise
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError, OverflowError) as exc:
            # A shape no check above anticipated: still one rejected line, never a dead pipeline.
            error = _unexpected(exc)
            self._reject(error, line)
            raise error from None if isinstance(exc, RecursionError) else exc

    def _reject(self, exc: IngestError, line: bytes | str) -> None:
        self.errors[exc.reason] += 1
        exc.detail = f"{exc.detail}; line {excerpt(line)}"
        exc.args = (f"{exc.reason}: {exc.detail}",)

    def _dispatch(self, doc: Any) -> list[Event]:
        if type(doc) is not dict:
            raise IngestError(
                "not_an_object", f"top level is a JSON {type(doc).__name__}, an object expected"
            )
        kind = doc.get("type")
        if kind == "update":
            return self._update(doc)
        if kind == "state":
            return self._state(doc)
        if kind == "notification":
            return self._notification(doc)
        if kind == "open":
            return self._open(doc)
        if kind in IGNORED_TYPES:
            self.ignored[kind] += 1
            return []
        if kind is None:
            raise _missing("type")
        raise _bad("unknown_type", "type", kind, "an ExaBGP message type")

    # -- envelope -------------------------------------------------------------------------------
    @staticmethod
    def _time(doc: dict[str, Any]) -> float:
        return check_time(doc.get("time"))

    def _neighbor(self, doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
        neighbor = doc.get("neighbor")
        if type(neighbor) is not dict:
            if neighbor is None:
                raise _missing("neighbor")
            raise _bad("bad_field", "neighbor", neighbor, "an object")
        address = neighbor.get("address")
        raw = address.get("peer") if type(address) is dict else None
        if type(raw) is str:
            peer = self._peers.get(raw)
            if peer is not None:
                return neighbor, peer
        return neighbor, self._canonical_peer(address, raw)

    def _canonical_peer(self, address: Any, raw: Any) -> str:
        if address is None:
            raise _missing("neighbor.address")
        if type(address) is not dict:
            raise _bad("bad_field", "neighbor.address", address, "an object")
        if raw is None:
            raise _missing("neighbor.address.peer")
        if type(raw) is not str:
            raise _bad("bad_field", "neighbor.address.peer", raw, "an IP address string")
        try:
            peer = str(ipaddress.ip_address(raw))
        except ValueError as exc:
            raise _bad("bad_field", "neighbor.address.peer", raw, "an IP address") from exc
        if len(self._peers) >= _PEER_CACHE:
            self._peers.clear()
        self._peers[raw] = peer
        return peer

    def _next_hop(self, raw: str, family_name: str) -> tuple[str, bool]:
        """Return (canonical next hop, is IPv6 link-local)."""
        known = self._next_hops.get(raw)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(raw)
        except ValueError as exc:
            raise _bad("bad_next_hop", f"announce.{family_name} next hop", raw, "an IP address") from exc
        known = (str(address), address.version == 6 and address.is_link_local)
        if len(self._next_hops) >= _NEXT_HOP_CACHE:
            self._next_hops.clear()
        self._next_hops[raw] = known
        return known

    # -- message types --------------------------------------------------------------------------
    def _state(self, doc: dict[str, Any]) -> list[Event]:
        at = self._time(doc)
        neighbor, peer = self._neighbor(doc)
        state_text = neighbor.get("state")
        state = _STATES.get(state_text) if type(state_text) is str else None
        if state is None:
            if state_text is None:
                raise _missing("neighbor.state")
            raise _bad("bad_field", "neighbor.state", state_text, "connected, up or down")
        reason = neighbor.get("reason", "")
        if type(reason) is not str:
            raise _bad("bad_field", "neighbor.reason", reason, "a string")
        peer_as = None
        asn = neighbor.get("asn")
        if type(asn) is dict:
            peer_as = asn.get("peer")
            if peer_as is not None and (type(peer_as) is not int or not 0 <= peer_as <= 0xFFFFFFFF):
                raise _bad("bad_field", "neighbor.asn.peer", peer_as, "an AS number")
        return [SessionState(at, peer, state, reason, peer_as)]

    def _notification(self, doc: dict[str, Any]) -> list[Event]:
        at = self._time(doc)
        if doc.get("notification") == "shutdown" and "neighbor" not in doc:
            return [CollectorShutdown(at)]
        neighbor, peer = self._neighbor(doc)
        body = neighbor.get("notification")
        if type(body) is not dict:
            if body is None:
                raise _missing("neighbor.notification")
            raise _bad("bad_field", "neighbor.notification", body, "an object")
        direction_text = neighbor.get("direction", "receive")
        direction = _DIRECTIONS.get(direction_text) if type(direction_text) is str else None
        if direction is None:
            raise _bad("bad_field", "neighbor.direction", direction_text, "receive or send")
        code = body.get("code")
        subcode = body.get("subcode")
        for name, value in (("code", code), ("subcode", subcode)):
            if type(value) is not int or value < 0 or value > 255:
                if value is None:
                    raise _missing(f"neighbor.notification.{name}")
                raise _bad("bad_field", f"neighbor.notification.{name}", value, "an integer 0-255")
        message = body.get("message", "")  # absent in 4.x
        if type(message) is not str:
            raise _bad("bad_field", "neighbor.notification.message", message, "a string")
        return [Notification(at, peer, direction, code, subcode, message)]

    def _open(self, doc: dict[str, Any]) -> list[Event]:
        at = self._time(doc)
        neighbor, peer = self._neighbor(doc)
        direction_text = neighbor.get("direction", "receive")
        direction = _DIRECTIONS.get(direction_text) if type(direction_text) is str else None
        if direction is None:
            raise _bad("bad_field", "neighbor.direction", direction_text, "receive or send")
        if direction == "send":
            self.ignored["open_sent"] += 1
            return []
        body = neighbor.get("open")
        if type(body) is not dict:
            if body is None:
                raise _missing("neighbor.open")
            raise _bad("bad_field", "neighbor.open", body, "an object")
        asn = _optional_int(body, "asn", 0xFFFF, "neighbor.open.asn")
        hold_time = _optional_int(body, "hold_time", 0xFFFF, "neighbor.open.hold_time")
        router_id = body.get("router_id")
        if router_id is not None:
            try:
                if type(router_id) is not str:  # IPv4Address would take an int
                    raise TypeError(router_id)
                router_id = str(ipaddress.IPv4Address(router_id))
            except (TypeError, ValueError) as exc:
                raise _bad("bad_field", "neighbor.open.router_id", router_id, "an IPv4 address") from exc
        capabilities = body.get("capabilities", {})
        if type(capabilities) is not dict:
            raise _bad("bad_field", "neighbor.open.capabilities", capabilities, "an object")
        families: tuple[int, ...] = (4,)  # without multiprotocol: IPv4 unicast only
        graceful_restart = four_byte_asn = add_path = False
        restart_time: int | None = None
        gr_families: tuple[int, ...] = ()
        for key, value in capabilities.items():
            field = f"neighbor.open.capabilities.{key}"
            if type(value) is not dict:
                raise _bad("bad_field", field, value, "an object")
            code = _capability_code(key, value)
            if code == _MULTIPROTOCOL:
                listed = value.get("families", [])
                if type(listed) is not list or any(type(name) is not str for name in listed):
                    raise _bad("bad_field", f"{field}.families", listed, "a list of AFI/SAFI names")
                families = _afis(listed)
            elif code == _GRACEFUL_RESTART:
                graceful_restart = True
                restart_time = _optional_int(value, "time", 0x0FFF, f"{field}.time")
                if restart_time is None:
                    raise _missing(f"{field}.time")
                flags = value.get("address-family-flags", {})
                if type(flags) is not dict:
                    raise _bad("bad_field", f"{field}.address-family-flags", flags, "an object")
                gr_families = _afis(flags)
            elif code == _ASN4:
                four_byte_asn = True
                asn4 = _optional_int(value, "asn4", 0xFFFFFFFF, f"{field}.asn4")
                if asn4 is not None:
                    asn = asn4
            elif code == _ADD_PATH:
                for name, mode in value.items():
                    if name == "name":
                        continue
                    if type(mode) is not str:
                        raise _bad("bad_field", f"{field}.{name}", mode, "receive, send or send/receive")
                    if name in _OPEN_FAMILIES and mode in _ADD_PATH_SENDS:
                        add_path = True
        return [
            PeerOpen(
                at,
                peer,
                asn,
                router_id,
                hold_time,
                graceful_restart,
                restart_time,
                gr_families,
                families,
                four_byte_asn,
                add_path,
            )
        ]

    def _update(self, doc: dict[str, Any]) -> list[Event]:
        # The hot path: the checks of _time and _neighbor inlined for the usual valid line.
        at = doc.get("time")
        if type(at) is not float or not 0.0 <= at < MAX_TIME:  # NaN fails the comparison too
            at = self._time(doc)
        neighbor = doc.get("neighbor")
        try:
            peer = self._peers[neighbor["address"]["peer"]]
        except (KeyError, TypeError):
            neighbor, peer = self._neighbor(doc)
        if neighbor.get("direction") in _OUTGOING:
            self.ignored["update_sent"] += 1
            return []
        message = neighbor.get("message")
        if type(message) is not dict:
            if message is None:
                raise _missing("neighbor.message")
            raise _bad("bad_field", "neighbor.message", message, "an object")
        update = message.get("update")
        if update is None:
            eor = message.get("eor")
            if eor is None:
                raise _missing("neighbor.message.update")
            return self._eor(at, peer, eor)
        if type(update) is not dict:
            raise _bad("bad_field", "neighbor.message.update", update, "an object")
        withdraw = update.get("withdraw")
        announce = update.get("announce")
        events: list[Event] = []
        unsupported: list[str] = []
        if withdraw is not None:
            self._withdraw(at, peer, withdraw, events, unsupported)
        if announce is not None:
            self._announce(at, peer, announce, update, events, unsupported)
        # Counted only now: a rejected line leaves every counter but `errors` untouched.
        if unsupported:
            self.ignored["unsupported_family"] += len(unsupported)
            self.ignored_families.update(unsupported)
        elif not events:  # no announce nor withdraw, or empty ones
            self.ignored["empty_update"] += 1
        return events

    def _eor(self, at: float, peer: str, eor: Any) -> list[Event]:
        if type(eor) is not dict:
            raise _bad("bad_field", "neighbor.message.eor", eor, "an object")
        afi = eor.get("afi")
        safi = eor.get("safi")
        if type(afi) is not str or type(safi) is not str:
            raise _bad("bad_field", "neighbor.message.eor", eor, "afi and safi strings")
        family = _EOR_FAMILIES.get((afi, safi))
        if family is None:
            self.ignored["unsupported_family"] += 1
            self.ignored_families[f"{afi} {safi}"] += 1
            return []
        return [EndOfRib(at, peer, family)]

    def _withdraw(
        self, at: float, peer: str, withdraw: Any, events: list[Event], unsupported: list[str]
    ) -> None:
        if type(withdraw) is not dict:
            raise _bad("bad_field", "neighbor.message.update.withdraw", withdraw, "an object")
        for family_name, nlris in withdraw.items():
            family = _FAMILIES.get(family_name)
            if family is None:
                unsupported.append(family_name)
                continue
            keys = self._prefix_keys(nlris, family, "withdraw", family_name)
            if keys:
                events.append(
                    Withdraw(at, peer, family, tuple(dict.fromkeys(keys)) if len(keys) > 1 else keys)
                )

    def _announce(
        self,
        at: float,
        peer: str,
        announce: Any,
        update: dict[str, Any],
        events: list[Event],
        unsupported: list[str],
    ) -> None:
        if type(announce) is not dict:
            raise _bad("bad_field", "neighbor.message.update.announce", announce, "an object")
        if len(announce) == 1:
            # The usual UPDATE: one family, one next hop.  Same steps as below, fewer of them.
            ((family_name, by_next_hop),) = announce.items()
            family = _FAMILIES.get(family_name)
            if family is not None and type(by_next_hop) is dict and len(by_next_hop) == 1:
                ((raw_next_hop, nlris),) = by_next_hop.items()
                known = self._next_hops.get(raw_next_hop) if type(raw_next_hop) is str else None
                next_hop = (known or self._next_hop(raw_next_hop, family_name))[0]
                keys = self._prefix_keys(nlris, family, "announce", family_name, raw_next_hop)
                if len(keys) > 1 and len(set(keys)) != len(keys):
                    keys = tuple(dict.fromkeys(keys))
                if keys:
                    attrs = self._interned(peer, update.get("attribute"), next_hop)
                    events.append(Announce(at, peer, family, keys, attrs))
                return
        # Validate everything first and intern last: a rejected line must not leave unused entries
        # in the pool (the RIB frees an attribute set only when a route releases it).
        routes: list[tuple[int, str, tuple[int, ...]]] = []
        for family_name, by_next_hop in announce.items():
            family = _FAMILIES.get(family_name)
            if family is None:
                unsupported.append(family_name)
                continue
            if type(by_next_hop) is not dict:
                raise _bad(
                    "bad_field", f"announce.{family_name}", by_next_hop, "an object {next hop: [nlri]}"
                )
            if len(by_next_hop) == 1:
                ((raw_next_hop, nlris),) = by_next_hop.items()
                next_hop = self._next_hop(raw_next_hop, family_name)[0]
                keys = self._prefix_keys(nlris, family, "announce", family_name, raw_next_hop)
                if len(keys) > 1:
                    keys = tuple(dict.fromkeys(keys))
                if keys:
                    routes.append((family, next_hop, keys))
                continue
            # Several next hops: global ones first, so that a prefix ExaBGP also lists under the
            # link-local next hop keeps the global one; no prefix goes into two Announces.
            groups = []
            for raw_next_hop, nlris in by_next_hop.items():
                next_hop, link_local = self._next_hop(raw_next_hop, family_name)
                keys = self._prefix_keys(nlris, family, "announce", family_name, raw_next_hop)
                groups.append((link_local, next_hop, keys))
            groups.sort(key=_link_local_last)
            seen: set[int] = set()
            for _, next_hop, keys in groups:
                fresh = []
                for key in keys:
                    if key not in seen:
                        seen.add(key)
                        fresh.append(key)
                if fresh:
                    routes.append((family, next_hop, tuple(fresh)))
        if not routes:
            return
        attributes = update.get("attribute")
        for family, next_hop, keys in routes:
            events.append(Announce(at, peer, family, keys, self._interned(peer, attributes, next_hop)))

    def _interned(self, peer: str, attributes: Any, next_hop: str) -> PathAttributes:
        """Return the interned set of an UPDATE's attributes with one of its next hops.

        Decoded once per message, and only when a supported family announces something; a run
        of UPDATEs with the same attributes (a router that does not pack) reuses the decoding
        and the interned sets of the previous one.
        """
        last = self._last_attributes.get(peer)
        if last is not None and (
            attributes is last[0] or (attributes == last[0] and self._same_json(last, attributes))
        ):
            made = last[3]
            attrs = made.get(next_hop)
            if attrs is not None and attrs.refs > 0:  # else not in a table: the pool may have dropped it
                return attrs
            decoded = last[2]
        else:
            decoded = _decode_attributes(attributes, self._value_caches)
            made = {}
            if type(attributes) is dict:
                self._last_attributes[peer] = [attributes, None, decoded, made]
        origin, as_path, as_set, med, local_pref, communities, large = decoded
        attrs = made[next_hop] = self.pool.intern(
            origin, as_path, as_set, next_hop, med, local_pref, communities, large
        )
        return attrs

    @staticmethod
    def _same_json(last: list[Any], attributes: dict[str, Any]) -> bool:
        """Tell whether equal attribute objects are the same JSON (``==`` takes 100.0 and true for ints)."""
        if last[1] is None:
            last[1] = orjson.dumps(last[0])
        return orjson.dumps(attributes) == last[1]

    def _prefix_keys(
        self, nlris: Any, family: int, action: str, family_name: str, next_hop: str | None = None
    ) -> tuple[int, ...]:
        """Return the prefix keys of an NLRI list (bare strings in compact mode, else {"nlri": ...})."""
        if type(nlris) is not list:
            raise _bad("bad_field", _nlri_field(action, family_name, next_hop), nlris, "a list of NLRI")
        cache = self._prefix_cache[family]
        try:
            texts = list(map(_NLRI, nlris))
            keys = list(map(cache.get, texts))
        except (TypeError, KeyError, IndexError):  # compact mode (bare strings), or a bad item
            texts = [
                item if type(item) is str else (item.get("nlri") if type(item) is dict else None)
                for item in nlris
            ]
            keys = [cache.get(text) if type(text) is str else None for text in texts]
        if None in keys:
            for index, key in enumerate(keys):
                if key is None:
                    keys[index] = self._new_prefix(
                        nlris[index], texts[index], family, action, family_name, next_hop
                    )
        return tuple(keys)

    def _new_prefix(
        self, item: Any, text: Any, family: int, action: str, family_name: str, next_hop: str | None
    ) -> int:
        try:
            prefix_family, key = parse_prefix(text)
        except (ValueError, AttributeError, TypeError) as exc:
            field = _nlri_field(action, family_name, next_hop)
            raise _bad("bad_prefix", field, item, f"an IPv{family} prefix") from exc
        if prefix_family != family:
            raise _bad(
                "bad_prefix", _nlri_field(action, family_name, next_hop), text, f"an IPv{family} prefix"
            )
        cache = self._prefix_cache[family]
        if len(cache) >= PREFIX_CACHE:
            cache.clear()
        cache[text] = key
        return key


def _optional_int(body: dict[str, Any], key: str, high: int, field: str) -> int | None:
    """Return ``body[key]`` checked to be an integer 0..high, or None when it is absent."""
    value = body.get(key)
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= high:
        raise _bad("bad_field", field, value, f"an integer 0-{high}")
    return value


def _capability_code(key: str, value: dict[str, Any]) -> int | None:
    """Return a capability's code: from its key ("64"), else from its name (4.x sent OPENs)."""
    if key.isdigit():
        return int(key)
    name = value.get("name", key)
    return _CAPABILITY_NAMES.get(name) if type(name) is str else None


def _afis(names: Any) -> tuple[int, ...]:
    """Return the unicast AFIs (4, 6) among AFI/SAFI names, sorted, each once."""
    return tuple(sorted({_OPEN_FAMILIES[name] for name in names if name in _OPEN_FAMILIES}))


def _link_local_last(group: tuple[bool, str, tuple[int, ...]]) -> bool:
    return group[0]


def _nlri_field(action: str, family_name: str, next_hop: str | None) -> str:
    if next_hop is None:
        return f"{action}.{family_name}"
    return f"{action}.{family_name}.{next_hop}"


def _loads_repaired(line: bytes | str, exc: orjson.JSONDecodeError) -> Any:
    """Decode a line that failed only because of raw control characters inside strings.

    ExaBGP 4.x printed NOTIFICATION data raw inside the "reason" of a state line (seen in the
    exabgp_exporter fixture: ``... Unsupported Capability / \\x01\\x04...``); 5.x escapes it.
    JSON forbids them unescaped, and only a string can hold them, so escaping them is lossless.
    """
    if isinstance(line, str):
        repaired, count = _CONTROL_TEXT.subn(_escape_text, line)
    else:
        repaired, count = _CONTROL_BYTES.subn(_escape_byte, bytes(line))
    if count:
        try:
            return orjson.loads(repaired)
        except orjson.JSONDecodeError:
            pass
    raise IngestError("invalid_json", _json_problem(line, exc)) from exc


def _escape_text(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _escape_byte(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % match.group()[0]


def _json_problem(line: bytes | str, exc: orjson.JSONDecodeError) -> str:
    if not (line.strip() if isinstance(line, str) else bytes(line).strip()):
        return "empty line"
    if not isinstance(line, str):
        try:
            bytes(line).decode("utf-8")
        except UnicodeDecodeError as decode_exc:
            return f"not valid UTF-8 at byte {decode_exc.start}"
    return str(exc)
