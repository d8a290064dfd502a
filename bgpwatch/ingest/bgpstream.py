"""Read public collectors' data through CAIDA BGPStream (pybgpstream) as bgpwatch events.

The outside view: what RIPE RIS and RouteViews collectors saw of a prefix in a time window.
``bgpstream_events`` opens a ``pybgpstream.BGPStream`` (collectors, window, prefix filter,
updates or RIBs) and maps each element with ``element_to_events``:

* ``A`` (announcement) and ``R`` (RIB entry) -> one ``Announce`` of one prefix; ``W`` -> one
  ``Withdraw``; ``S`` (peer state) -> ``SessionState``: new state ESTABLISHED is "up", leaving
  ESTABLISHED or entering IDLE/CLEARING/DELETED is "down", the other states "connected" (the
  rule of the MRT reader).  Other element types make no event.
* ``fields["as-path"]`` is libbgpstream's text form: ASNs separated by spaces, an AS_SET as
  ``{1,2}`` (its ASNs go to ``as_set``), confederation segments ``(1 2)`` and ``[1,2]`` dropped
  (as the other readers do).  ``communities`` may be a set or list of ``"a:b"`` strings
  (pybgpstream 2), of ``{"asn", "value"}`` dicts (1.x) or one space-separated string (old).
  BGPStream gives no ORIGIN, MED or LOCAL_PREF per element: ORIGIN reads "incomplete".
* The peer is ``elem.peer_address`` in canonical text form, as everywhere in bgpwatch; the
  collector is not part of it.

BGPStream gives one element per prefix: UPDATEs are not grouped back.  The attributes are
interned per element; the pool returns the same object for equal attributes, so memory is
shared as with the other inputs, only the events are smaller and more numerous.

Availability: pybgpstream is a binding to the C library libbgpstream.  Neither is installable
here (libbgpstream is not in Debian bookworm; PyPI has only the pybgpstream sdist, which needs
libbgpstream's headers to build), so this module imports ``pybgpstream`` lazily and raises
`BGPStreamUnavailable` saying how to install it.  Install (CAIDA's instructions,
https://bgpstream.caida.org/docs/install):

* Debian/Ubuntu with CAIDA's packages: add the wandio repository
  (``curl -1sLf 'https://dl.cloudsmith.io/public/wand/libwandio/cfg/setup/bash.deb.sh' | sudo -E bash``),
  add ``deb https://pkg.caida.org/os/<distro> <codename> main`` with the key
  ``https://pkg.caida.org/os/ubuntu/keyring.gpg`` in ``/etc/apt/trusted.gpg.d/caida.gpg``, then
  ``sudo apt-get install bgpstream``.
* From source: libcurl and wandio first, then libbgpstream (``./configure && make && sudo make
  install && sudo ldconfig``; ``./autogen.sh`` first in a git clone).
* Then, in bgpwatch's virtualenv: ``pip install pybgpstream``.

Tested here on the mapping only: the unit tests feed ``element_to_events`` small stand-in
element objects (a dataclass defined in the test) and drive ``bgpstream_events`` with a fake
``pybgpstream`` module; nothing has been run against a live BGPStream.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from bgpwatch.events import CONNECTED, DOWN, UP, Announce, Event, SessionState, Withdraw
from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.rib.attributes import AttributePool
from bgpwatch.rib.prefix import parse_prefix

INSTALL_HINT = (
    "pybgpstream is not installed: bgpwatch --bgpstream needs CAIDA's libbgpstream C library and its "
    "Python binding (install libbgpstream from https://bgpstream.caida.org/docs/install, "
    "then 'pip install pybgpstream' in bgpwatch's virtualenv)"
)
RECORD_TYPES = ("updates", "ribs")
_DOWN_STATES = frozenset({"IDLE", "CLEARING", "DELETED"})
_CACHE_LIMIT = 4096


class BGPStreamUnavailable(RuntimeError):
    """pybgpstream (and so libbgpstream) cannot be imported."""


def require_pybgpstream() -> Any:
    """Return the pybgpstream module; raise BGPStreamUnavailable with install steps when it is missing."""
    try:
        import pybgpstream
    except ImportError as exc:
        raise BGPStreamUnavailable(f"{INSTALL_HINT} ({exc})") from exc
    return pybgpstream


def _bad(field: str, value: Any, expected: str, reason: str = "bad_attribute") -> IngestError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return IngestError(reason, f"{field}: {expected} expected, got {shown}")


# One AS path segment as libbgpstream prints it: ASN, {AS_SET}, (CONFED SEQ), [CONFED,SET], <UNKNOWN>.
_SEGMENT = re.compile(r"\s*(?:(\d+)|\{([\d,\s]*)\}|\(([\d\s]*)\)|\[([\d,\s]*)\]|<([\d\s]*)>)")


def _asn(text: str, field: str) -> int:
    value = int(text)
    if value <= 0xFFFFFFFF:
        return value
    raise _bad(field, text, "an AS number (0-4294967295)")


def parse_as_path(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return (as_path, as_set) from libbgpstream's AS path text ("1 2 {3,4}"; confederations dropped)."""
    sequence: list[int] = []
    as_set: list[int] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise _bad("as-path", text, "ASNs, {AS_SET}, (confed sequence) or [confed set]")
        asn, members = match.group(1, 2)
        if asn is not None:
            sequence.append(_asn(asn, "as-path"))
        elif members is not None:
            as_set.extend(_asn(part, "as-path AS_SET") for part in members.replace(",", " ").split())
        # Confederation (and unknown) segments are dropped, as the MRT and ExaBGP readers do.
        pos = match.end()
    return tuple(sequence), tuple(as_set)


def parse_communities(value: Any) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int, int], ...]]:
    """Return (communities, large communities), sorted, from the shapes pybgpstream versions give."""
    if value is None:
        return (), ()
    items: Iterable[Any] = value.split() if isinstance(value, str) else value
    standard: set[tuple[int, int]] = set()
    large: set[tuple[int, int, int]] = set()
    for item in items:
        if isinstance(item, dict):
            parts: list[Any] = [item.get("asn"), item.get("value")]
        elif isinstance(item, str):
            parts = item.split(":")
        else:
            raise _bad("communities", item, '"asn:value" or {"asn", "value"}')
        try:
            numbers = [int(part) for part in parts]
        except (TypeError, ValueError) as exc:
            raise _bad("communities", item, '"asn:value" with integers') from exc
        if len(numbers) == 2 and all(0 <= n <= 0xFFFF for n in numbers):
            standard.add((numbers[0], numbers[1]))
        elif len(numbers) == 3 and all(0 <= n <= 0xFFFFFFFF for n in numbers):
            large.add((numbers[0], numbers[1], numbers[2]))
        else:
            raise _bad("communities", item, "16-bit asn:value (or a 32-bit large community a:b:c)")
    # A set has no order: sorted, so equal sets intern to one attribute object.
    return tuple(sorted(standard)), tuple(sorted(large))


_PEERS: dict[str, str] = {}


def _peer(raw: Any) -> str:
    known = _PEERS.get(raw) if isinstance(raw, str) else None
    if known is not None:
        return known
    try:
        peer = str(ipaddress.ip_address(raw))
    except ValueError as exc:
        raise _bad("peer_address", raw, "an IP address", "bad_field") from exc
    if len(_PEERS) >= _CACHE_LIMIT:
        _PEERS.clear()
    _PEERS[raw] = peer
    return peer


def _state(old: str, new: str) -> str:
    if new == "ESTABLISHED":
        return UP
    if old == "ESTABLISHED" or new in _DOWN_STATES:
        return DOWN
    return CONNECTED


def element_to_events(elem: Any, pool: AttributePool) -> list[Event]:
    """Return the events of one BGPStream element; raise IngestError if a field it needs is invalid."""
    kind = elem.type
    if kind not in ("A", "R", "W", "S"):
        return []
    try:
        at = float(elem.time)
    except (TypeError, ValueError) as exc:
        raise IngestError("bad_field", f"time: a number expected, got {elem.time!r}") from exc
    peer = _peer(elem.peer_address)
    fields = elem.fields
    if kind == "S":
        old = str(fields.get("old-state", "")).upper()
        new = str(fields.get("new-state", "")).upper()
        peer_as = elem.peer_asn if isinstance(elem.peer_asn, int) else None
        return [SessionState(at, peer, _state(old, new), f"bgpstream {old or '?'}->{new or '?'}", peer_as)]
    text = fields.get("prefix")
    try:
        family, key = parse_prefix(text)
    except (ValueError, AttributeError, TypeError) as exc:
        raise IngestError("bad_prefix", f"prefix: a prefix expected, got {text!r}") from exc
    if kind == "W":
        return [Withdraw(at, peer, family, (key,))]
    next_hop_text = fields.get("next-hop", "")
    try:
        next_hop = str(ipaddress.ip_address(next_hop_text)) if next_hop_text else ""
    except ValueError as exc:
        raise IngestError("bad_next_hop", f"next-hop: an IP address expected, got {next_hop_text!r}") from exc
    path_text = fields.get("as-path") or ""
    if not isinstance(path_text, str):
        raise _bad("as-path", path_text, "a string")
    as_path, as_set = parse_as_path(path_text)
    communities, large = parse_communities(fields.get("communities"))
    attributes = pool.intern("incomplete", as_path, as_set, next_hop, None, None, communities, large)
    return [Announce(at, peer, family, (key,), attributes)]


def filter_string(prefixes: Iterable[str] | None) -> str | None:
    """Return the BGPStream filter for elements about these prefixes or their more-specifics.

    BGPStream ORs filter terms of the same type, so "prefix more A and prefix more B" means A or B.
    """
    terms = [f"prefix more {prefix}" for prefix in prefixes or ()]
    return " and ".join(terms) if terms else None


def bgpstream_events(
    collectors: Iterable[str],
    start: int | float,
    end: int | float,
    prefixes: Iterable[str] | None = None,
    record_type: str = "updates",
    pool: AttributePool | None = None,
    stats: Any = None,
) -> Iterator[Event]:
    """Yield the events of public collectors' data in [start, end] (epoch seconds) through pybgpstream.

    ``stats`` (a `bgpwatch.ingest.replay.ReplayStats`) counts elements as ``replay --stats`` does:
    A as announcements, R as rib_entries, W as withdrawals, S as state_changes; an element that
    cannot be mapped is counted in ``errors`` by reason and skipped.  Raises BGPStreamUnavailable
    (before any event) when pybgpstream is missing, ValueError on a bad record type or window.
    """
    if record_type not in RECORD_TYPES:
        raise ValueError(f"record type {record_type!r}: one of {', '.join(RECORD_TYPES)} expected")
    if end < start:
        raise ValueError(f"the window ends ({end}) before it starts ({start})")
    pybgpstream = require_pybgpstream()
    pool = pool if pool is not None else AttributePool()
    stream = pybgpstream.BGPStream(
        from_time=math.floor(start),
        until_time=math.ceil(end),
        collectors=list(collectors),
        record_type=record_type,
        filter=filter_string(prefixes),
    )
    began = time.perf_counter()
    if stats is not None:
        stats.files += 1
        stats.formats["bgpstream"] = stats.formats.get("bgpstream", 0) + 1
    try:
        for elem in stream:
            if stats is not None:
                stats.records += 1
            try:
                events = element_to_events(elem, pool)
            except IngestError as exc:
                if stats is not None:
                    stats.error(exc.reason, f"bgpstream {getattr(elem, 'collector', '?')}: {exc}")
                continue
            if stats is not None:
                _count(stats, elem.type, events)
            yield from events
    finally:
        if stats is not None:
            stats.seconds += time.perf_counter() - began


def _count(stats: Any, kind: str, events: list[Event]) -> None:
    if kind == "A":
        stats.announcements += 1
    elif kind == "R":
        stats.rib_entries += 1
    elif kind == "W":
        stats.withdrawals += 1
    elif kind == "S":
        stats.state_changes += 1
    else:
        stats.not_emitted[f"bgpstream_type_{kind or 'unknown'}"] += 1
    stats.events += len(events)
