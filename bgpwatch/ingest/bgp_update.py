"""Decode BGP UPDATE messages (RFC 4271, 4760, 6793, 7911) into `Announce` / `Withdraw` events.

The one UPDATE wire decoder of bgpwatch, shared by the MRT reader (`bgpwatch.ingest.mrt`) and
the BMP parser (`bgpwatch.ingest.bmp`).  An UPDATE's attributes are decoded once and interned
in the shared `AttributePool`; every prefix it carries shares that object.

Decoding follows ``bgpdump -m`` (the MRT reader's contract): withdrawals first (IPv4 withdrawn
routes, then MP_UNREACH per family), then one ``Announce`` per family (IPv4 NLRI, MP_REACH);
SAFI 1 and 3 make events, SAFI 2 (multicast) is counted and makes none; prefix keys have the
bits past the mask cleared.  AS_PATH: AS_SEQUENCE ASNs in ``as_path``, AS_SET ASNs in
``as_set``, confederation segments dropped; with 2-octet ASNs AS4_PATH is merged as RFC 6793
4.2.3 and bgpdump do.  ADD-PATH (RFC 7911): bgpwatch keeps one route per prefix and peer, so the
decoder tracks the live path ids per peer and withdraws a prefix only when its last path goes.

Problems are reported through the ``bad(reason, detail)`` callback and decoding goes on as
bgpdump does (the MRT reader counts them).  With ``strict=True`` (BMP, where the router already
accepted the UPDATE, so a bad one is a broken BMP message) a few lenient shortcuts report
instead: a cut MP_REACH / MP_UNREACH, a next hop or SNPA overrunning its attribute, and MRT's
abbreviated RIB-entry MP_REACH (RFC 6396 4.3.4) is not recognised.  A ``bad`` that raises stops
the decoding before any cache, ADD-PATH state or event is touched.

Speed: several decode caches (attribute blocks, AS paths, communities, addresses) keyed by the
raw bytes, each cleared when it reaches `CACHE_LIMIT` entries so memory stays bounded.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bgpwatch.events import Announce, Event, Withdraw
from bgpwatch.rib.attributes import AttributePool

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_ORIGINS = ("igp", "egp", "incomplete")
CACHE_LIMIT = 200_000  # entries per decode cache; cleared when full so memory stays bounded
_CACHE_LIMIT = CACHE_LIMIT
# Per prefix length: the network mask; per address byte count: the shift to the full width.
_MASK4 = tuple(((1 << 32) - 1) ^ ((1 << (32 - n)) - 1) for n in range(33))
_MASK6 = tuple(((1 << 128) - 1) ^ ((1 << (128 - n)) - 1) for n in range(129))
_SHIFT4 = tuple(32 - 8 * n for n in range(5))
_SHIFT6 = tuple(128 - 8 * n for n in range(17))
# Unpackers of an AS path segment of n ASNs (a segment holds at most 255).
_ASN2 = tuple(struct.Struct(f"!{n}H") for n in range(256))
_ASN4 = tuple(struct.Struct(f"!{n}I") for n in range(256))

# ``addpath`` is a bit mask: which families' NLRI carry a 4-byte path identifier (RFC 7911).
ADDPATH_NONE = 0
ADDPATH_IPV4 = 1
ADDPATH_IPV6 = 2
ADDPATH_ALL = ADDPATH_IPV4 | ADDPATH_IPV6  # a family's bit, inline on the hot path: (1 if family == 4 else 2)

# Every reason ``bad`` can be called with.
BAD_REASONS = (
    "invalid_prefix",  # a prefix length beyond 32/128 (counted like bgpdump, no event)
    "truncated_nlri",  # an NLRI or withdrawn list cut inside a prefix (the rest is dropped)
    "truncated_attribute",  # an attribute longer than the attribute block (the rest is dropped)
    "bad_as_path",  # an AS_PATH segment of unknown type or overrunning the attribute
    "bad_mp_attribute",  # strict only: MP_REACH / MP_UNREACH cut or overrun by its own fields
)


class UpdateCounts(Protocol):
    """What the decoder counts into (``MrtStats`` has these fields too)."""

    announcements: int
    withdrawals: int
    events: int
    not_emitted: Counter[str]


@dataclass(slots=True)
class UpdateStats:
    """Counts of a decoder: prefixes announced and withdrawn (as bgpdump prints them), events made."""

    announcements: int = 0
    withdrawals: int = 0
    events: int = 0
    not_emitted: Counter[str] = field(default_factory=Counter)


def _ignore(reason: str, detail: str) -> None:
    """Drop a decoding problem (the default ``bad``)."""


class UpdateDecoder:
    """Decode UPDATE bodies into events interned in ``pool``, counting into ``stats``.

    ``update(...)`` is the entry point; ``attributes(...)`` and ``address(...)`` are used by the
    MRT reader's RIB records too.  ``paths`` holds the live ADD-PATH ids per peer (``forget(peer)``
    drops a peer's, e.g. when its session goes down).
    """

    def __init__(
        self,
        pool: AttributePool,
        stats: UpdateCounts | None = None,
        bad: Callable[[str, str], None] | None = None,
        strict: bool = False,
    ) -> None:
        self.pool = pool
        self.stats: UpdateCounts = stats if stats is not None else UpdateStats()
        self._bad = bad if bad is not None else _ignore
        self.strict = strict
        self._addresses: dict[bytes, str] = {}
        self._as_paths: dict[int, dict[bytes, tuple]] = {2: {}, 4: {}}
        # Attribute block bytes -> decoded result, one cache per ASN size (2, 4).
        self.attr_blobs: dict[int, dict[bytes, tuple]] = {2: {}, 4: {}}
        self._communities: dict[bytes, tuple] = {}
        self._large: dict[bytes, tuple] = {}
        # Live ADD-PATH ids: peer -> (family, prefix key) -> path ids.
        self.paths: dict[str, dict[tuple[int, int], set[int]]] = {}

    def forget(self, peer: str) -> None:
        """Drop the ADD-PATH state of one peer."""
        self.paths.pop(peer, None)

    def address(self, raw: bytes) -> str:
        """Return the text form of a 4- or 16-byte address (cached)."""
        text = self._addresses.get(raw)
        if text is None:
            text = str(ipaddress.ip_address(raw))
            if len(self._addresses) > _CACHE_LIMIT:
                self._addresses.clear()
            self._addresses[raw] = text
        return text

    def update(
        self,
        at: float,
        peer: str,
        asn_len: int,
        addpath: int,
        local: bool,
        buf: bytes,
        pos: int,
        end: int,
        out: list[Event],
    ) -> None:
        """Decode one UPDATE body ``buf[pos:end]`` (after the 19-byte BGP header) into ``out``.

        ``asn_len`` is 2 or 4 (AS_PATH encoding), ``addpath`` the `ADDPATH_IPV4` / `ADDPATH_IPV6`
        mask, ``local`` marks a message the collector sent (counted, no event).
        """
        stats = self.stats
        # Withdrawn routes.
        if end - pos < 2:
            wlen = 0
            pos = end
        else:
            (wlen,) = _U16.unpack_from(buf, pos)
            pos += 2
        wend = min(pos + wlen, end)
        addpath4 = addpath & 1  # ADDPATH_IPV4
        withdrawn4 = self._prefixes(buf, pos, wend, 4, addpath4) if wend > pos else None
        pos = wend
        # Path attributes.
        if end - pos < 2:
            alen = 0
            pos = end
        else:
            (alen,) = _U16.unpack_from(buf, pos)
            pos += 2
        aend = min(pos + alen, end)
        attrs = self.attributes(buf, pos, aend, asn_len, addpath) if aend > pos else None
        pos = aend
        nlri4 = self._prefixes(buf, pos, end, 4, addpath4) if end > pos else None

        # Withdrawals first, bgpdump's order: IPv4 withdrawn, MP_UNREACH v4 (SAFI 1, 2, 3), v6.
        if withdrawn4:
            self._emit_withdraw(at, peer, 4, 1, withdrawn4, addpath4, local, out)
        if attrs is not None and attrs[1]:
            for family, safi, items in attrs[1]:
                self._emit_withdraw(
                    at, peer, family, safi, items, addpath & (1 if family == 4 else 2), local, out
                )
        if attrs is None:
            if nlri4:
                # NLRI with no attribute block at all: bgpdump prints them; nothing to intern.
                stats.announcements += len(nlri4)
                stats.not_emitted["no_attributes"] += len(nlri4)
            return
        args, _, reach, _ = attrs
        if nlri4:
            stats.announcements += len(nlri4)
            if local:
                stats.not_emitted["local"] += len(nlri4)
            else:
                keys = self._keys(nlri4, 4, peer, True) if addpath4 else _unique(nlri4, stats)
                if keys:
                    stats.events += 1
                    out.append(Announce(at, peer, 4, keys, self.pool.intern(*args)))
        if not reach:
            return
        for family, safi, next_hop, items in reach:
            stats.announcements += len(items)
            if local or safi == 2:
                stats.not_emitted["local" if local else "multicast"] += len(items)
                continue
            if addpath & (1 if family == 4 else 2):
                keys = self._keys(items, family, peer, True)
            else:
                keys = _unique(items, stats)
            if not keys:
                continue
            origin, as_path, as_set, _, med, local_pref, communities, large = args
            attributes = self.pool.intern(
                origin, as_path, as_set, next_hop, med, local_pref, communities, large
            )
            stats.events += 1
            out.append(Announce(at, peer, family, keys, attributes))

    def _emit_withdraw(
        self,
        at: float,
        peer: str,
        family: int,
        safi: int,
        items: list,
        addpath: int,
        local: bool,
        out: list[Event],
    ) -> None:
        stats = self.stats
        stats.withdrawals += len(items)
        if local or safi == 2:
            stats.not_emitted["local" if local else "multicast"] += len(items)
            return
        keys = self._keys(items, family, peer, False) if addpath else _unique(items, stats)
        if keys:
            stats.events += 1
            out.append(Withdraw(at, peer, family, keys))

    def _keys(self, items: list, family: int, peer: str, announce: bool) -> tuple[int, ...]:
        """Return the prefix keys of ADD-PATH items, deduplicated, with paths folded."""
        keys = self._fold_paths(items, family, peer, announce)
        if len(keys) > 1:
            return tuple(dict.fromkeys(keys))
        return tuple(keys)

    def _fold_paths(self, items: list, family: int, peer: str, announce: bool) -> list[int]:
        """Track live ADD-PATH ids: announce every path; withdraw a prefix when its last path goes."""
        paths = self.paths.setdefault(peer, {})
        keys = []
        for path_id, key in items:
            if key < 0:
                self.stats.not_emitted["invalid_prefix"] += 1
                continue
            live = paths.get((family, key))
            if announce:
                if live is None:
                    paths[(family, key)] = {path_id}
                else:
                    live.add(path_id)
                keys.append(key)
                continue
            if live is not None:
                live.discard(path_id)
                if live:
                    self.stats.not_emitted["addpath_other_paths_remain"] += 1
                    continue
                del paths[(family, key)]
            keys.append(key)
        return keys

    def _prefixes(self, buf: bytes, pos: int, end: int, family: int, addpath: int) -> list:
        """Decode an NLRI list: prefix keys (-1 for an invalid length), or (path id, key) pairs.

        Bits set past the mask are cleared, as `parse_prefix` does; bgpdump prints them as sent.
        """
        if family == 4:
            max_len, masks, shifts = 32, _MASK4, _SHIFT4
        else:
            max_len, masks, shifts = 128, _MASK6, _SHIFT6
        from_bytes = int.from_bytes
        out: list = []
        append = out.append
        path_id = 0
        while pos < end:
            if addpath:
                if end - pos < 5:
                    self._bad("truncated_nlri", f"ADD-PATH NLRI cut at {end - pos} bytes")
                    break
                (path_id,) = _U32.unpack_from(buf, pos)
                pos += 4
            plen = buf[pos]
            nbytes = (plen + 7) >> 3
            nxt = pos + 1 + nbytes
            if nxt > end:
                self._bad("truncated_nlri", f"prefix /{plen} needs {nbytes} bytes, {end - pos - 1} left")
                break
            if plen > max_len:
                self._bad("invalid_prefix", f"prefix length {plen} > {max_len}")
                key = -1
            else:
                key = ((from_bytes(buf[pos + 1 : nxt], "big") << shifts[nbytes]) & masks[plen]) << 8 | plen
            append((path_id, key) if addpath else key)
            pos = nxt
        return out

    # -- attributes ------------------------------------------------------------------------------
    def attributes(self, buf: bytes, pos: int, end: int, asn_len: int, addpath: int) -> tuple:
        """Return (intern args with the IPv4 next hop, MP_UNREACH list, MP_REACH list, IPv6 args).

        The args tuple is (origin, as_path, as_set, next_hop, med, local_pref, communities,
        large_communities); an attribute block without MP attributes is cached whole.
        """
        blob = buf[pos:end]
        blobs = self.attr_blobs[asn_len]
        hit = blobs.get(blob)
        if hit is not None:
            return hit
        origin = "incomplete"
        as_path: tuple[int, ...] = ()
        as_set: tuple[int, ...] = ()
        next_hop = ""
        med = local_pref = None
        communities: tuple = ()
        large: tuple = ()
        path_info = None
        as4_path_info = None
        aggregator_as = None
        as4_aggregator = False
        unreach: list | None = None
        reach: list | None = None
        while pos < end:
            if buf[pos] & 0x10:  # extended length
                alen = (buf[pos + 2] << 8) | buf[pos + 3] if pos + 4 <= end else 1 << 16
                code = buf[pos + 1]
                pos += 4
            else:
                alen = buf[pos + 2] if pos + 3 <= end else 1 << 16
                code = buf[pos + 1] if pos + 2 <= end else 0
                pos += 3
            aend = pos + alen
            if aend > end:
                self._bad("truncated_attribute", f"attribute {code} declares {alen} bytes, {end - pos} left")
                break
            if code == 2:
                path_info = self._as_path(buf[pos:aend], asn_len)
            elif code == 3:
                if alen >= 4:
                    next_hop = self.address(buf[pos : pos + 4])
            elif code == 1:
                if alen >= 1:
                    origin = _ORIGINS[buf[pos]] if buf[pos] < 3 else "incomplete"
            elif code == 4:
                if alen >= 4:
                    (med,) = _U32.unpack_from(buf, pos)
            elif code == 5:
                if alen >= 4:
                    (local_pref,) = _U32.unpack_from(buf, pos)
            elif code == 8:
                raw = buf[pos:aend]
                communities = self._communities.get(raw)
                if communities is None:
                    communities = _communities(raw, self._communities)
            elif code == 32:
                raw = buf[pos:aend]
                large = self._large.get(raw)
                if large is None:
                    large = _large_communities(raw, self._large)
            elif code == 14:
                if reach is None:
                    reach = []
                self._mp_reach(buf, pos, aend, addpath, reach)
            elif code == 15:
                if unreach is None:
                    unreach = []
                self._mp_unreach(buf, pos, aend, addpath, unreach)
            elif code == 17:
                as4_path_info = self._as_path(buf[pos:aend], 4)
            elif code == 7:
                if asn_len == 2 and alen >= 2:
                    (aggregator_as,) = _U16.unpack_from(buf, pos)
            elif code == 18:
                as4_aggregator = True
            pos = aend
        if path_info is not None:
            as_path, as_set, count, segments = path_info
            # RFC 6793 4.2.3: a real AS in AGGREGATOR beside AS4_AGGREGATOR voids AS4_PATH.
            real_aggregator = as4_aggregator and aggregator_as is not None and aggregator_as != 23456
            if asn_len == 2 and as4_path_info is not None and not real_aggregator:
                as_path, as_set = _merge_as4_path(segments, count, as4_path_info)
        args = (origin, as_path, as_set, next_hop, med, local_pref, communities, large)
        # The IPv6 next hop of a RIB entry (from its MP_REACH), ready for an IPv6 Announce.
        args6 = args
        for entry in reach or ():
            if entry[0] == 6:
                args6 = (origin, as_path, as_set, entry[2], med, local_pref, communities, large)
                break
        result = (args, unreach, reach, args6)
        # Cacheable when no prefix sits inside it: IPv4 UPDATEs and RIB entries (whose MP_REACH
        # holds only a next hop) repeat the same attribute bytes over and over.
        if unreach is None and (reach is None or not any(entry[3] for entry in reach)):
            if len(blobs) > _CACHE_LIMIT:
                blobs.clear()
            blobs[blob] = result
        return result

    def _as_path(self, raw: bytes, asn_len: int) -> tuple:
        """Return (as_path, as_set, bgpdump's count, segments) for an AS_PATH or AS4_PATH."""
        cache = self._as_paths[asn_len]
        hit = cache.get(raw)
        if hit is not None:
            return hit
        structs = _ASN2 if asn_len == 2 else _ASN4
        end = len(raw)
        if end >= 2 and raw[0] == 2 and 2 + raw[1] * asn_len == end:
            # The common case: one AS_SEQUENCE.
            asns = structs[raw[1]].unpack_from(raw, 2)
            result = (asns, (), len(asns), [(2, asns)])
            if len(cache) > _CACHE_LIMIT:
                cache.clear()
            cache[raw] = result
            return result
        segments: list[tuple[int, tuple[int, ...]]] = []
        pos = 0
        while pos < end:
            if end - pos < 2:
                self._bad("bad_as_path", "AS_PATH segment header cut")
                segments = []
                break
            seg_type = raw[pos]
            count = raw[pos + 1]
            seg_end = pos + 2 + count * asn_len
            if seg_type not in (1, 2, 3, 4) or seg_end > end:
                self._bad("bad_as_path", f"segment type {seg_type} of {count} ASNs in {end - pos} bytes")
                segments = []
                break
            segments.append((seg_type, structs[count].unpack_from(raw, pos + 2)))
            pos = seg_end
        as_path: list[int] = []
        as_set: list[int] = []
        total = 0
        for seg_type, asns in segments:
            if seg_type == 2:
                as_path.extend(asns)
                total += len(asns)
            elif seg_type == 1:
                as_set.extend(asns)
                total += 1
            else:
                total += len(asns) if seg_type == 4 else 1  # confederations: counted, not kept
        result = (tuple(as_path), tuple(as_set), total, segments)
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        cache[raw] = result
        return result

    def _mp_reach(self, buf: bytes, pos: int, end: int, addpath: int, out: list) -> None:
        """Decode MP_REACH_NLRI into (family, safi, next hop, items) entries of ``out``."""
        if pos >= end:
            if self.strict:
                self._bad("bad_mp_attribute", "empty MP_REACH_NLRI")
            return
        if buf[pos] != 0 and not self.strict:
            # RFC 6396 4.3.4: in RIB entries MP_REACH holds only the next-hop length and address.
            nh_len = buf[pos]
            out.append((6, 1, self._next_hop(buf[pos + 1 : pos + 1 + min(nh_len, 16)]), []))
            return
        if end - pos < 5:
            if self.strict:
                self._bad("bad_mp_attribute", f"MP_REACH_NLRI of {end - pos} bytes")
            return
        afi, safi, nh_len = struct.unpack_from("!HBB", buf, pos)
        if afi not in (1, 2) or safi not in (1, 2, 3):
            return  # VPN, flowspec, EVPN...: bgpdump ignores them too
        family = 4 if afi == 1 else 6
        if any(entry[0] == family and entry[1] == safi for entry in out):
            return  # a second MP_REACH for one AFI/SAFI: bgpdump keeps the first
        pos += 4
        if self.strict and pos + nh_len >= end:
            self._bad("bad_mp_attribute", f"MP_REACH_NLRI next hop of {nh_len} bytes, {end - pos} left")
            return
        next_hop = self._next_hop(buf[pos : pos + min(nh_len, 16)])
        pos += nh_len
        if pos >= end:
            out.append((family, safi, next_hop, []))
            return
        snpa = buf[pos]
        pos += 1
        for _ in range(snpa):
            if pos >= end:
                break
            pos += 1 + buf[pos]
        if self.strict and pos > end:
            self._bad("bad_mp_attribute", "MP_REACH_NLRI SNPA overruns the attribute")
            return
        items = (
            self._prefixes(buf, pos, end, family, addpath & (1 if family == 4 else 2)) if pos < end else []
        )
        out.append((family, safi, next_hop, items))

    def _mp_unreach(self, buf: bytes, pos: int, end: int, addpath: int, out: list) -> None:
        """Decode MP_UNREACH_NLRI into (family, safi, items) entries of ``out``."""
        if end - pos < 3:
            if self.strict:
                self._bad("bad_mp_attribute", f"MP_UNREACH_NLRI of {end - pos} bytes")
            return
        afi, safi = struct.unpack_from("!HB", buf, pos)
        if afi not in (1, 2) or safi not in (1, 2, 3):
            return
        family = 4 if afi == 1 else 6
        if any(entry[0] == family and entry[1] == safi for entry in out):
            return
        bit = addpath & (1 if family == 4 else 2)
        items = self._prefixes(buf, pos + 3, end, family, bit) if pos + 3 < end else []
        out.append((family, safi, items))

    def _next_hop(self, raw: bytes) -> str:
        if len(raw) == 4 or len(raw) == 16:
            return self.address(raw)
        return ""


def _unique(keys: list[int], stats: UpdateCounts) -> tuple[int, ...]:
    """Return prefix keys deduplicated in order, without the invalid ones (-1, counted)."""
    result = tuple(dict.fromkeys(keys)) if len(keys) > 1 else tuple(keys)
    if -1 in result:
        stats.not_emitted["invalid_prefix"] += keys.count(-1)
        result = tuple(key for key in result if key >= 0)
    return result


def _communities(raw: bytes, cache: dict[bytes, tuple]) -> tuple[tuple[int, int], ...]:
    values = struct.unpack_from(f"!{2 * (len(raw) // 4)}H", raw)
    result = tuple(zip(values[0::2], values[1::2], strict=True))
    if len(cache) > _CACHE_LIMIT:
        cache.clear()
    cache[raw] = result
    return result


def _large_communities(raw: bytes, cache: dict[bytes, tuple]) -> tuple[tuple[int, int, int], ...]:
    values = struct.unpack_from(f"!{3 * (len(raw) // 12)}I", raw)
    result = tuple(zip(values[0::3], values[1::3], values[2::3], strict=True))
    if len(cache) > _CACHE_LIMIT:
        cache.clear()
    cache[raw] = result
    return result


def _merge_as4_path(
    segments: list[tuple[int, tuple[int, ...]]], count: int, as4: tuple
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Merge AS_PATH and AS4_PATH (RFC 6793 4.2.3), as bgpdump's asn32_merge_paths does."""
    as4_path, as4_set, as4_count, _ = as4
    if count < as4_count:
        return _flatten(segments)
    keep = count - as4_count
    merged: list[tuple[int, tuple[int, ...]]] = []
    taken = 0
    for seg_type, asns in segments:
        if taken >= keep:
            break
        if seg_type in (1, 3):
            merged.append((seg_type, asns))
            taken += 1
        else:
            room = keep - taken
            merged.append((seg_type, asns[:room]))
            taken += min(room, len(asns))
    as_path, as_set = _flatten(merged)
    return as_path + as4_path, as_set + as4_set


def _flatten(segments: list[tuple[int, tuple[int, ...]]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    as_path: list[int] = []
    as_set: list[int] = []
    for seg_type, asns in segments:
        if seg_type == 2:
            as_path.extend(asns)
        elif seg_type == 1:
            as_set.extend(asns)
    return tuple(as_path), tuple(as_set)


def end_of_rib(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """Return (AFI, SAFI) when the UPDATE body ``buf[pos:end]`` is an End-of-RIB marker (RFC 4724 2).

    IPv4 unicast: an UPDATE with no withdrawn routes, no attributes and no NLRI.  Other families: an
    UPDATE holding only an MP_UNREACH_NLRI attribute with no withdrawn routes.
    """
    size = end - pos
    if size == 4:
        return (1, 1) if buf[pos : pos + 4] == b"\x00\x00\x00\x00" else None
    if size not in (10, 11) or buf[pos : pos + 2] != b"\x00\x00":
        return None
    (alen,) = _U16.unpack_from(buf, pos + 2)
    if alen != size - 4 or buf[pos + 5] != 15:
        return None
    flags = buf[pos + 4]
    if flags & 0x10:  # extended length: 2-octet attribute length
        if size != 11 or buf[pos + 6 : pos + 8] != b"\x00\x03":
            return None
    elif size != 10 or buf[pos + 6] != 3:
        return None
    return _U16.unpack_from(buf, end - 3)[0], buf[end - 1]


def _attribute_header(buf: bytes, at: int, aend: int) -> tuple[int, int, int] | None:
    """Return (type code, value start, value size) of the path attribute at ``at``; None when its header is cut."""
    if aend - at < 3:
        return None
    code = buf[at + 1]
    if buf[at] & 0x10:  # extended length
        if aend - at < 4:
            return None
        return code, at + 4, (buf[at + 2] << 8) | buf[at + 3]
    return code, at + 3, buf[at + 2]


def nlri_fields(buf: bytes, pos: int, end: int) -> list[tuple[int, int, int]] | None:
    """Return (family, start, stop) of the unicast prefix lists in the UPDATE body ``buf[pos:end]``.

    The IPv4 withdrawn routes and NLRI, and the prefixes of MP_REACH / MP_UNREACH for AFI 1/2 SAFI
    1; None when the body's framing does not decode.  Used to tell whether a sender really puts
    ADD-PATH path ids in its UPDATEs (see `nlri_fits`).
    """
    if end - pos < 4:
        return None
    (wlen,) = _U16.unpack_from(buf, pos)
    wstart = pos + 2
    astart = wstart + wlen + 2
    if astart > end:
        return None
    (alen,) = _U16.unpack_from(buf, astart - 2)
    aend = astart + alen
    if aend > end:
        return None
    fields = []
    if wlen:
        fields.append((4, wstart, wstart + wlen))
    if aend < end:
        fields.append((4, aend, end))
    at = astart
    while at < aend:
        header = _attribute_header(buf, at, aend)
        if header is None:
            return None
        code, at, size = header
        stop = at + size
        if stop > aend:
            return None
        if (
            (code == 14 or code == 15)
            and size >= 3
            and buf[at + 2] == 1
            and buf[at] == 0
            and buf[at + 1] in (1, 2)
        ):
            family = 4 if buf[at + 1] == 1 else 6
            start = at + 3
            if code == 14:
                if start >= stop:
                    return None
                start += 1 + buf[start]  # next hop
                if start >= stop:
                    return None
                for _ in range(buf[start]):  # SNPAs (RFC 4760 has them reserved: zero)
                    start += 1
                    if start >= stop:
                        return None
                    start += buf[start]
                start += 1
                if start > stop:
                    return None
            if start < stop:
                fields.append((family, start, stop))
        at = stop
    return fields


def nlri_fits(buf: bytes, start: int, stop: int, family: int, addpath: bool) -> bool:
    """Return whether ``buf[start:stop]`` is a whole list of valid prefixes (path ids first if addpath)."""
    max_len = 32 if family == 4 else 128
    pos = start
    while pos < stop:
        if addpath:
            pos += 4
            if pos >= stop:
                return False
        plen = buf[pos]
        if plen > max_len:
            return False
        pos += 1 + ((plen + 7) >> 3)
    return pos == stop


def as_path_width(buf: bytes, pos: int, end: int) -> int | None:
    """Return 2 or 4 when the AS_PATH of the UPDATE body ``buf[pos:end]`` parses with that ASN size only.

    None when there is no AS_PATH, the body does not frame, or both sizes (or neither) fit.  For
    senders whose encoding is unclear: GoBGP re-encodes a 2-octet peer's paths with 4-octet ASNs,
    FRR 8.4 keeps them 2-octet, neither sets the BMP A flag.
    """
    if end - pos < 4:
        return None
    (wlen,) = _U16.unpack_from(buf, pos)
    at = pos + 4 + wlen
    if at > end:
        return None
    aend = min(at + _U16.unpack_from(buf, at - 2)[0], end)
    while at < aend:
        header = _attribute_header(buf, at, aend)
        if header is None:
            return None
        code, at, size = header
        if code == 2:
            stop = min(at + size, aend)
            two, four = _segments_fit(buf, at, stop, 2), _segments_fit(buf, at, stop, 4)
            if two == four:
                return None
            return 2 if two else 4
        at += size
    return None


def _segments_fit(buf: bytes, pos: int, end: int, asn_len: int) -> bool:
    """Return whether ``buf[pos:end]`` is a whole list of AS path segments of ``asn_len``-byte ASNs."""
    while pos < end:
        if end - pos < 2 or buf[pos] not in (1, 2, 3, 4):
            return False
        pos += 2 + buf[pos + 1] * asn_len
    return pos == end
