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
  Extended communities, as pybgpstream-compatible libraries print them (``type:subtype:global:
  local``, e.g. ``0:2:24482:00000136``), are accepted and ignored: the event model has no place
  for them; each is counted in ``not_emitted["bgpstream_extended_communities"]``.
  BGPStream gives no ORIGIN, MED or LOCAL_PREF per element: ORIGIN reads "incomplete".
* Data: libbgpstream's broker (the default, ``broker_url`` to choose another) or, with ``file``,
  one local MRT file through the ``singlefile`` data interface.  A stream that cannot start
  (broker unreachable, file unreadable) raises `BGPStreamError` with one line saying which.
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
``pybgpstream`` module; nothing has been run against a live BGPStream.  The tests that need the
real module (broker at a closed loopback port, a real MRT file through ``singlefile``) skip here.
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
FILE_HINT = (
    "--bgpstream-file needs pybgpstream (CAIDA's libbgpstream C library, not installed); "
    "bgpwatch reads MRT itself: bgpwatch replay --config CONFIG {path}"
)
RECORD_TYPES = ("updates", "ribs")
EXTENDED = "bgpstream_extended_communities"
_DOWN_STATES = frozenset({"IDLE", "CLEARING", "DELETED"})
_CACHE_LIMIT = 4096


class BGPStreamUnavailable(RuntimeError):
    """pybgpstream (and so libbgpstream) cannot be imported."""


class BGPStreamError(RuntimeError):
    """The stream could not start (no broker, unreadable file) or broke off; the message is one line."""


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


# type:subtype:global:local; the administrators are numbers, hex digits or an IPv4 address.
_EXTENDED = re.compile(r"\d{1,3}:\d{1,3}:[0-9A-Fa-f.]+:[0-9A-Fa-f]+")


def parse_communities(
    value: Any, counts: Any = None
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int, int], ...]]:
    """Return (communities, large communities), sorted, from the shapes pybgpstream versions give.

    Extended communities (``0:2:24482:00000136``) are skipped, counted in ``counts[EXTENDED]``.
    """
    if value is None:
        return (), ()
    items: Iterable[Any] = value.split() if isinstance(value, str) else value
    standard: set[tuple[int, int]] = set()
    large: set[tuple[int, int, int]] = set()
    extended = 0
    for item in items:
        if isinstance(item, dict):
            parts: list[Any] = [item.get("asn"), item.get("value")]
        elif isinstance(item, str):
            parts = item.split(":")
            if _EXTENDED.fullmatch(item) and int(parts[0]) <= 0xFF and int(parts[1]) <= 0xFF:
                extended += 1  # no place for them in the event model: ignored on purpose, counted
                continue
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
            raise _bad(
                "communities", item, "16-bit asn:value, a 32-bit large community a:b:c or extended t:s:g:l"
            )
    if extended and counts is not None:  # counted once the whole list is known good
        counts[EXTENDED] += extended
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


def element_to_events(elem: Any, pool: AttributePool, counts: Any = None) -> list[Event]:
    """Return the events of one BGPStream element; raise IngestError if a field it needs is invalid.

    ``counts`` (a Counter, e.g. ``ReplayStats.not_emitted``) counts what is deliberately dropped.
    """
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
    communities, large = parse_communities(fields.get("communities"), counts)
    attributes = pool.intern("incomplete", as_path, as_set, next_hop, None, None, communities, large)
    return [Announce(at, peer, family, (key,), attributes)]


def filter_string(prefixes: Iterable[str] | None) -> str | None:
    """Return the BGPStream filter for elements about these prefixes or their more-specifics.

    BGPStream ORs filter terms of the same type, so "prefix more A and prefix more B" means A or B.
    """
    terms = [f"prefix more {prefix}" for prefix in prefixes or ()]
    return " and ".join(terms) if terms else None


def open_bgpstream(
    collectors: Iterable[str],
    start: int | float | None,
    end: int | float | None,
    prefixes: Iterable[str] | None = None,
    record_type: str = "updates",
    broker_url: str | None = None,
    file: str | None = None,
) -> Iterator[Any]:
    """Start a pybgpstream stream and return its elements; raise BGPStreamError if it cannot start.

    With ``file``, the one local MRT file is read through the ``singlefile`` data interface (as an
    updates or a RIB file by ``record_type``; no collector, the window optional); otherwise the
    broker at ``broker_url`` (libbgpstream's default when None) is asked for ``collectors``' data.
    The stream is started here, not at the first event, so a missing broker is known before replay.
    """
    if record_type not in RECORD_TYPES:
        raise ValueError(f"record type {record_type!r}: one of {', '.join(RECORD_TYPES)} expected")
    if start is not None and end is not None and end < start:
        raise ValueError(f"the window ends ({end}) before it starts ({start})")
    pybgpstream = require_pybgpstream()
    options: dict[str, Any] = {"filter": filter_string(prefixes)}
    if start is not None or end is not None:
        options["from_time"] = math.floor(start) if start is not None else None
        options["until_time"] = math.ceil(end) if end is not None else None
    if file is not None:
        options["data_interface"] = "singlefile"
    else:
        options["collectors"] = list(collectors)
        options["record_type"] = record_type
    try:
        stream = pybgpstream.BGPStream(**options)
        if file is not None:
            option = "rib-file" if record_type == "ribs" else "upd-file"
            stream.set_data_interface_option("singlefile", option, str(file))
        elif broker_url is not None:
            stream.set_data_interface_option("broker", "url", broker_url)
        elements = iter(stream)
        # pybgpstream starts the stream (and so asks the broker) at the first element.
        first = next(elements, _END)
    except (RuntimeError, ValueError, OSError) as exc:
        if file is not None:
            where = f"cannot read {file} through pybgpstream's singlefile interface (a readable MRT file?)"
        else:
            where = f"cannot reach the BGPStream broker {broker_url or '(libbgpstream default)'}"
        raise BGPStreamError(f"bgpstream: {where}: {exc}") from exc
    return _chain(first, elements)


_END = object()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    """Yield the peeked first element then the rest; a libbgpstream read error becomes BGPStreamError."""
    if first is _END:
        return
    yield first
    try:
        yield from rest
    except RuntimeError as exc:  # libbgpstream: "Could not get next record"
        raise BGPStreamError(f"bgpstream: the stream broke off: {exc}") from exc


def stream_events(
    elements: Iterable[Any], pool: AttributePool | None = None, stats: Any = None
) -> Iterator[Event]:
    """Yield the events of started BGPStream elements (from `open_bgpstream`), counted in ``stats``.

    ``stats`` (a `bgpwatch.ingest.replay.ReplayStats`) counts elements as ``replay --stats`` does:
    A as announcements, R as rib_entries, W as withdrawals, S as state_changes; an element that
    cannot be mapped is counted in ``errors`` by reason and skipped.  A stream that breaks off is
    counted in ``errors["bgpstream_read"]`` and ends: the events before stay.
    """
    pool = pool if pool is not None else AttributePool()
    counts = stats.not_emitted if stats is not None else None
    began = time.perf_counter()
    if stats is not None:
        stats.files += 1
        stats.formats["bgpstream"] = stats.formats.get("bgpstream", 0) + 1
    try:
        for elem in elements:
            if stats is not None:
                stats.records += 1
            try:
                events = element_to_events(elem, pool, counts)
            except IngestError as exc:
                if stats is not None:
                    stats.error(exc.reason, f"bgpstream {getattr(elem, 'collector', '?')}: {exc}")
                continue
            if stats is not None:
                _count(stats, elem.type, events)
            yield from events
    except BGPStreamError as exc:
        if stats is None:
            raise
        stats.error("bgpstream_read", str(exc))
    finally:
        if stats is not None:
            stats.seconds += time.perf_counter() - began


def bgpstream_events(
    collectors: Iterable[str],
    start: int | float | None,
    end: int | float | None,
    prefixes: Iterable[str] | None = None,
    record_type: str = "updates",
    pool: AttributePool | None = None,
    stats: Any = None,
    broker_url: str | None = None,
    file: str | None = None,
) -> Iterator[Event]:
    """Yield the events of public collectors' data in [start, end] (epoch seconds) through pybgpstream.

    `open_bgpstream` then `stream_events`, started at the first ``next()``.  Raises
    BGPStreamUnavailable when pybgpstream is missing, BGPStreamError when the stream cannot start,
    ValueError on a bad window or record type.
    """
    yield from stream_events(
        open_bgpstream(collectors, start, end, prefixes, record_type, broker_url, file), pool, stats
    )


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
