"""Turn RIS Live messages (RIPE NCC's streaming JSON, one frame per line) into bgpwatch events.

RIS Live (https://ris-live.ripe.net/manual/) sends every BGP message a RIS route collector sees as
``{"type": "ris_message", "data": {...}}``.  A recording is those frames, one per line (as a
websocket client writes them); ``bgpwatch replay`` recognises them by their first line.

What becomes an event:

* ``UPDATE``: one ``Withdraw`` per family for ``withdrawals`` (processed first, RFC 4271 3.1),
  then one ``Announce`` per (family, next hop) of ``announcements`` ``[{"next_hop", "prefixes"}]``;
  the attributes (``path``, ``community``, ``origin``, ``med``) are decoded once per message and
  interned in the shared pool.  ``path`` is a list of ASNs in which an AS_SET is a nested list
  (its ASNs go to ``as_set``).  A next hop written ``"global,link-local"`` (IPv6) keeps the
  global address.  A missing ORIGIN reads as "incomplete" (as in the ExaBGP parser).
* ``RIS_PEER_STATE``: ``SessionState`` with the state as written: "connected" (TCP up, not
  Established: the ExaBGP meaning, which libbgpstream's RIS Live reader also maps to CONNECT),
  "up" (Established) or "down" (the RIB flushes the peer).
* ``OPEN``, ``KEEPALIVE``, ``NOTIFICATION`` and the server's ``ris_subscribe_ok``/``pong``/
  ``ris_rrc_list`` frames make no event; they are counted in ``ignored`` by type.
* A ``ris_error`` frame (the server reports a problem, e.g. a client too slow for the stream)
  raises `IngestError` with reason ``ris_error``: input was probably lost there.

The peer is the peer's address in canonical text form, as everywhere in bgpwatch; the collector
(``host``, e.g. rrc00) is not part of it.  A line is accepted or rejected as a whole (the same
rule as `bgpwatch.ingest.exabgp_json`): any invalid field raises `IngestError` with a ``reason``
(a metric label) and a ``detail`` naming the field.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

import orjson

from bgpwatch.events import CONNECTED, DOWN, UP, Announce, Event, SessionState, Withdraw
from bgpwatch.ingest.exabgp_json import (
    DEFAULT_MAX_LINE_BYTES,
    IngestError,
    _unexpected,
    brief,
    check_time,
    excerpt,
)
from bgpwatch.rib.attributes import AttributePool
from bgpwatch.rib.prefix import parse_prefix

REASONS = (
    "invalid_json",  # not JSON: truncated, garbage, empty line, not UTF-8
    "line_too_long",  # longer than max_line_bytes
    "not_an_object",  # JSON, but not an object (top level or "data")
    "missing_field",  # a required field is absent
    "bad_field",  # an envelope field has the wrong type or value (timestamp, peer, state...)
    "unknown_type",  # neither a known frame type nor a known BGP message type
    "bad_prefix",  # a prefix is not a prefix
    "bad_next_hop",  # a next hop is not an IP address
    "bad_attribute",  # path, community, origin or med malformed
    "ris_error",  # the server sent a ris_error frame
    "time_out_of_range",  # the timestamp is not a finite time in [0, 2**32)
    "too_deep",  # nested deeper than the checks can walk
)
IGNORED_MESSAGES = frozenset({"OPEN", "KEEPALIVE", "NOTIFICATION"})
IGNORED_FRAMES = frozenset({"ris_subscribe_ok", "pong", "ris_rrc_list"})
_STATES = {"connected": CONNECTED, "up": UP, "down": DOWN}
_ORIGINS = {"igp": "igp", "egp": "egp", "incomplete": "incomplete"}
_CACHE_LIMIT = 4096


def _missing(field: str) -> IngestError:
    return IngestError("missing_field", f"{field} is missing")


def _bad(reason: str, field: str, value: Any, expected: str) -> IngestError:
    return IngestError(reason, f"{field}: {expected} expected, got {brief(value)}")


def _asn(value: Any, field: str) -> int:
    if type(value) is int and 0 <= value <= 0xFFFFFFFF:
        return value
    raise _bad("bad_attribute", field, value, "an AS number (0-4294967295)")


def _path(value: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return (as_path, as_set) from RIS Live's ``path``: ASNs, an AS_SET as a nested list."""
    if type(value) is not list:
        raise _bad("bad_attribute", "path", value, "a list of AS numbers")
    sequence: list[int] = []
    as_set: list[int] = []
    for item in value:
        if type(item) is list:
            as_set.extend(_asn(asn, "path (AS_SET)") for asn in item)
        else:
            sequence.append(_asn(item, "path"))
    return tuple(sequence), tuple(as_set)


def _communities(value: Any) -> tuple[tuple[int, int], ...]:
    try:
        result = tuple([(high, low) for high, low in value])
    except (TypeError, ValueError) as exc:
        raise _bad("bad_attribute", "community", value, "a list of [asn, value]") from exc
    for high, low in result:
        if type(high) is not int or type(low) is not int or not (0 <= high <= 0xFFFF and 0 <= low <= 0xFFFF):
            raise _bad("bad_attribute", "community", [high, low], "16-bit integers")
    return result


def _attributes(data: dict[str, Any]) -> tuple[str, tuple[int, ...], tuple[int, ...], int | None, tuple]:
    """Return (origin, as_path, as_set, med, communities) of an UPDATE."""
    origin_text = data.get("origin", "incomplete")
    origin = _ORIGINS.get(origin_text.lower()) if type(origin_text) is str else None
    if origin is None:
        raise _bad("bad_attribute", "origin", origin_text, "igp, egp or incomplete")
    path = data.get("path")
    as_path, as_set = ((), ()) if path is None else _path(path)
    med = data.get("med")
    if med is not None and (type(med) is not int or not 0 <= med <= 0xFFFFFFFF):
        raise _bad("bad_attribute", "med", med, "an integer 0-4294967295")
    communities = data.get("community")
    return origin, as_path, as_set, med, () if communities is None else _communities(communities)


def _prefix_keys(prefixes: Any, field: str) -> dict[int, list[int]]:
    """Return the prefix keys of a list of prefix strings, by family, in order."""
    if type(prefixes) is not list:
        raise _bad("bad_field", field, prefixes, "a list of prefixes")
    by_family: dict[int, list[int]] = {}
    for text in prefixes:
        if type(text) is not str:
            raise _bad("bad_prefix", field, text, "a prefix string")
        try:
            family, key = parse_prefix(text)
        except ValueError as exc:
            raise _bad("bad_prefix", field, text, "an IPv4 or IPv6 prefix") from exc
        by_family.setdefault(family, []).append(key)
    return by_family


class RisLiveParser:
    """Parse RIS Live frames into events, interning attributes in a shared pool.

    Counters: ``lines`` (every call), ``errors`` (rejected lines by reason, ``ris_error`` frames
    included), ``ignored`` (frames that make no event, by BGP message or frame type, and
    "empty_update").
    """

    def __init__(self, pool: AttributePool, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.pool = pool
        self.max_line_bytes = max_line_bytes
        self.lines = 0
        self.errors: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        self._addresses: dict[str, str] = {}
        # The envelope of the last message parsed: its collector and its peer's AS (the outside view's).
        self.host: str | None = None
        self.peer_asn: int | None = None

    def parse(self, line: bytes | str) -> list[Event]:
        """Return the events of one frame; raise IngestError (counted in ``errors``) if it is invalid."""
        self.lines += 1
        try:
            return self._parse(line)
        except IngestError as exc:
            self._reject(exc, line)
            raise
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError, OverflowError) as exc:
            error = _unexpected(exc)
            self._reject(error, line)
            raise error from None if isinstance(exc, RecursionError) else exc

    def _reject(self, exc: IngestError, line: bytes | str) -> None:
        self.errors[exc.reason] += 1
        exc.detail = f"{exc.detail}; line {excerpt(line)}"
        exc.args = (f"{exc.reason}: {exc.detail}",)

    def _parse(self, line: bytes | str) -> list[Event]:
        if len(line) > self.max_line_bytes:
            raise IngestError("line_too_long", f"{len(line)} > {self.max_line_bytes} allowed")
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            stripped = line.strip() if isinstance(line, str) else bytes(line).strip()
            raise IngestError("invalid_json", str(exc) if stripped else "empty line") from exc
        if type(doc) is not dict:
            raise IngestError(
                "not_an_object", f"top level is a JSON {type(doc).__name__}, an object expected"
            )
        frame = doc.get("type")
        data = doc.get("data")
        if frame == "ris_message":
            if type(data) is not dict:
                if data is None:
                    raise _missing("data")
                raise _bad("not_an_object", "data", data, "an object")
            return self._message(data)
        if frame == "ris_error":
            message = data.get("message") if type(data) is dict else data
            raise IngestError("ris_error", f"the RIS Live server reported an error: {brief(message, 200)}")
        if frame in IGNORED_FRAMES:
            self.ignored[frame] += 1
            return []
        if frame is None:
            raise _missing("type")
        raise _bad("unknown_type", "type", frame, "ris_message or ris_error")

    # -- envelope -------------------------------------------------------------------------------
    @staticmethod
    def _time(data: dict[str, Any]) -> float:
        return check_time(data.get("timestamp"), "data.timestamp")

    def _address(self, raw: Any, field: str, reason: str = "bad_field") -> str:
        if type(raw) is not str:
            if raw is None:
                raise _missing(field)
            raise _bad(reason, field, raw, "an IP address string")
        known = self._addresses.get(raw)
        if known is not None:
            return known
        try:
            address = str(ipaddress.ip_address(raw))
        except ValueError as exc:
            raise _bad(reason, field, raw, "an IP address") from exc
        if len(self._addresses) >= _CACHE_LIMIT:
            self._addresses.clear()
        self._addresses[raw] = address
        return address

    @staticmethod
    def _peer_as(data: dict[str, Any]) -> int | None:
        value = data.get("peer_asn")
        if value is None:
            return None
        # RIS Live writes the peer ASN as a string ("11708").
        if type(value) is str and len(value) <= 10 and value.isascii() and value.isdigit():
            value = int(value)
        if type(value) is not int or not 0 <= value <= 0xFFFFFFFF:
            raise _bad("bad_field", "data.peer_asn", data.get("peer_asn"), "an AS number")
        return value

    # -- BGP messages ---------------------------------------------------------------------------
    def _message(self, data: dict[str, Any]) -> list[Event]:
        kind = data.get("type")
        host = data.get("host")
        self.host = host if type(host) is str and len(host) <= 64 else None
        self.peer_asn = self._peer_as(data)  # validated here: a line is accepted or rejected as a whole
        if kind == "UPDATE":
            return self._update(data)
        if kind == "RIS_PEER_STATE":
            return self._state(data)
        if kind in IGNORED_MESSAGES:
            self.ignored[kind] += 1
            return []
        if kind is None:
            raise _missing("data.type")
        raise _bad(
            "unknown_type", "data.type", kind, "UPDATE, RIS_PEER_STATE, OPEN, KEEPALIVE or NOTIFICATION"
        )

    def _state(self, data: dict[str, Any]) -> list[Event]:
        at = self._time(data)
        peer = self._address(data.get("peer"), "data.peer")
        text = data.get("state")
        state = _STATES.get(text) if type(text) is str else None
        if state is None:
            if text is None:
                raise _missing("data.state")
            raise _bad("bad_field", "data.state", text, "connected, up or down")
        host = data.get("host")
        reason = f"ris-live {host} {text}" if type(host) is str else f"ris-live {text}"
        return [SessionState(at, peer, state, reason, self.peer_asn)]

    def _update(self, data: dict[str, Any]) -> list[Event]:
        at = self._time(data)
        peer = self._address(data.get("peer"), "data.peer")
        events: list[Event] = []
        withdrawals = data.get("withdrawals")
        if withdrawals is not None:
            for family, keys in _prefix_keys(withdrawals, "data.withdrawals").items():
                events.append(Withdraw(at, peer, family, tuple(dict.fromkeys(keys))))
        announcements = data.get("announcements")
        if announcements is None:
            if withdrawals is None:
                self.ignored["empty_update"] += 1
            return events
        if type(announcements) is not list:
            raise _bad("bad_field", "data.announcements", announcements, "a list")
        # Validate everything before interning: a rejected line leaves nothing in the pool.
        routes: list[tuple[int, str, tuple[int, ...]]] = []
        seen: set[tuple[int, int]] = set()
        for index, item in enumerate(announcements):
            field = f"data.announcements.{index}"
            if type(item) is not dict:
                raise _bad("bad_field", field, item, "an object {next_hop, prefixes}")
            next_hop = self._next_hop(item.get("next_hop"), f"{field}.next_hop")
            for family, keys in _prefix_keys(item.get("prefixes"), f"{field}.prefixes").items():
                fresh = []
                for key in keys:
                    if (family, key) not in seen:
                        seen.add((family, key))
                        fresh.append(key)
                if fresh:
                    routes.append((family, next_hop, tuple(fresh)))
        if not routes:
            return events
        origin, as_path, as_set, med, communities = _attributes(data)
        intern = self.pool.intern
        for family, next_hop, keys in routes:
            attributes = intern(origin, as_path, as_set, next_hop, med, None, communities, ())
            events.append(Announce(at, peer, family, keys, attributes))
        return events

    def _next_hop(self, raw: Any, field: str) -> str:
        if type(raw) is str and "," in raw:
            # IPv6: "global,link-local"; keep the global one (as the ExaBGP parser does).
            candidates = [self._address(part.strip(), field, "bad_next_hop") for part in raw.split(",")]
            for candidate in candidates:
                if not ipaddress.ip_address(candidate).is_link_local:
                    return candidate
            return candidates[0]
        return self._address(raw, field, "bad_next_hop")
