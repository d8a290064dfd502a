"""Read MRT files (RFC 6396, RFC 8050) into bgpwatch events, counting what ``bgpdump -m`` counts.

A hand-written ``struct`` decoder, chosen by measurement (``bench/mrt_decoders.py``) over
mrtparse 2.2.0, pybgpkit-parser 0.6.2 and ``bgpdump -m`` driven as a subprocess: it gives the
same A, W, STATE and B counts as ``bgpdump -m`` 1.6.2 on all 49 real MRT fixtures, and is the
fastest of the four (on update files, as fast as bgpdump itself).  Compression is found from
the magic bytes (gzip, bzip2, xz, else plain), never from the file name.

What becomes an event:

* BGP4MP / BGP4MP_ET ``MESSAGE*`` UPDATEs received from a peer: one ``Withdraw`` per family
  (IPv4 withdrawn routes and MP_UNREACH), then one ``Announce`` per family (IPv4 NLRI and
  MP_REACH), the attributes decoded once per UPDATE and interned in the pool.  Withdrawals come
  first (RFC 4271 3.1).  SAFI 1 (unicast) and 3 (unicast+multicast, RFC 4760 first edition) make
  events; SAFI 2 (multicast) is counted like bgpdump does but makes no event.  ``*_LOCAL``
  messages (sent by the collector) are counted, never events: they are not the peer's routes.
  Prefix keys have the bits past the mask cleared (bgpdump prints them as sent).
* ADD-PATH messages: bgpwatch keeps one route per prefix and peer, so the reader tracks the live
  path ids and emits a ``Withdraw`` only when the last path of a prefix goes; the last announced
  path's attributes win.
* AS_PATH: AS_SEQUENCE ASNs in ``as_path``, AS_SET ASNs in ``as_set``, confederation segments
  dropped.  With 2-octet ASNs (``MESSAGE``, ``STATE_CHANGE``, TABLE_DUMP v1) AS4_PATH is merged
  as RFC 6793 4.2.3 and bgpdump do: ignored when AGGREGATOR holds a real AS while AS4_AGGREGATOR
  is present, or when AS4_PATH is longer than AS_PATH; else the leading AS_PATH ASNs + AS4_PATH.
* STATE_CHANGE(_AS4) -> ``SessionState``: new state Established (6) is "up"; leaving Established,
  or entering Idle (1) or Quagga's Clearing/Deleted (7/8), is "down" (a "down" makes the RIB flush
  the peer; a peer that was not up has nothing to flush); Connect/Active/OpenSent/OpenConfirm are
  "connected" (trying, not up).  ``reason`` reads "fsm OpenConfirm->Established".  State changes
  without a peer address (old Zebra's 8-byte records, BIRD's 0.0.0.0) are counted, no event.
* TABLE_DUMP (v1) and TABLE_DUMP_V2 RIB_IPV4/IPV6_UNICAST(_ADDPATH): ``Announce`` events, one per
  run of consecutive entries of one peer with identical attribute bytes (a RIB is in prefix
  order and neighbouring prefixes often share a path: 1.4-1.9x fewer events on real RIBs).  A
  dump is a snapshot: when it ends complete (next PEER_INDEX_TABLE, a record of another type, or
  the end of the file) an ``EndOfRib`` is emitted for every (peer, family) it held; a dump cut by
  an error gets none.  Routes absent from the dump are not withdrawn: replay a RIB before the
  updates that follow it.  RIB entries without attributes are routes with empty attributes.

Errors: a record whose header or body is cut (truncated file, gzip/bzip2/xz stream ended early
or corrupt) or whose header declares an impossible length stops the file with an `MrtError`
naming the file, record index and byte offset (in the decompressed stream); everything decoded
before it has been yielded (a corrupt gzip stream is decoded up to the damage).  A record whose
body does not decode is counted in ``stats.errors`` and skipped (MRT records are length-framed,
so the next one is still found).  Types and subtypes the reader does not decode are counted in
``stats.unsupported`` (by name) so that a silent skip shows in the stats.
"""

from __future__ import annotations

import bz2
import gc
import gzip
import lzma
import os
import struct
import weakref
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from bgpwatch.events import CONNECTED, DOWN, UP, Announce, EndOfRib, Event, SessionState
from bgpwatch.ingest.bgp_update import ADDPATH_ALL, ADDPATH_NONE, CACHE_LIMIT, UpdateDecoder
from bgpwatch.rib.attributes import AttributePool

# MRT types (RFC 6396 section 4; type 5 is the deprecated MRTD "BGP" type bgpdump still reads).
T_BGP = 5
T_TABLE_DUMP = 12
T_TABLE_DUMP_V2 = 13
T_BGP4MP = 16
T_BGP4MP_ET = 17

TYPE_NAMES = {
    0: "NULL",
    1: "START",
    2: "DIE",
    3: "I_AM_DEAD",
    4: "PEER_DOWN",
    T_BGP: "BGP",
    6: "RIP",
    7: "IDRP",
    8: "RIPNG",
    9: "BGP4PLUS",
    10: "BGP4PLUS_01",
    11: "OSPFv2",
    T_TABLE_DUMP: "TABLE_DUMP",
    T_TABLE_DUMP_V2: "TABLE_DUMP_V2",
    T_BGP4MP: "BGP4MP",
    T_BGP4MP_ET: "BGP4MP_ET",
    32: "ISIS",
    33: "ISIS_ET",
    48: "OSPFv3",
    49: "OSPFv3_ET",
}
BGP4MP_SUBTYPES = {
    0: "STATE_CHANGE",
    1: "MESSAGE",
    2: "ENTRY",
    3: "SNAPSHOT",
    4: "MESSAGE_AS4",
    5: "STATE_CHANGE_AS4",
    6: "MESSAGE_LOCAL",
    7: "MESSAGE_AS4_LOCAL",
    8: "MESSAGE_ADDPATH",
    9: "MESSAGE_AS4_ADDPATH",
    10: "MESSAGE_LOCAL_ADDPATH",
    11: "MESSAGE_AS4_LOCAL_ADDPATH",
}
TABLE_DUMP_V2_SUBTYPES = {
    1: "PEER_INDEX_TABLE",
    2: "RIB_IPV4_UNICAST",
    3: "RIB_IPV4_MULTICAST",
    4: "RIB_IPV6_UNICAST",
    5: "RIB_IPV6_MULTICAST",
    6: "RIB_GENERIC",
    7: "GEO_PEER_TABLE",
    8: "RIB_IPV4_UNICAST_ADDPATH",
    9: "RIB_IPV4_MULTICAST_ADDPATH",
    10: "RIB_IPV6_UNICAST_ADDPATH",
    11: "RIB_IPV6_MULTICAST_ADDPATH",
    12: "RIB_GENERIC_ADDPATH",
}
TABLE_DUMP_SUBTYPES = {1: "AFI_IPv4", 2: "AFI_IPv6", 3: "AFI_IPv4_32BIT_AS", 4: "AFI_IPv6_32BIT_AS"}
BGP_SUBTYPES = {
    0: "NULL",
    1: "UPDATE",
    2: "PREF_UPDATE",
    3: "STATE_CHANGE",
    4: "SYNC",
    5: "OPEN",
    6: "NOTIFY",
    7: "KEEPALIVE",
}
_SUBTYPE_NAMES = {
    T_BGP: BGP_SUBTYPES,
    T_TABLE_DUMP: TABLE_DUMP_SUBTYPES,
    T_TABLE_DUMP_V2: TABLE_DUMP_V2_SUBTYPES,
    T_BGP4MP: BGP4MP_SUBTYPES,
    T_BGP4MP_ET: BGP4MP_SUBTYPES,
}
FSM_STATES = (
    "Unknown",
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
    "Clearing",
    "Deleted",
)
_ESTABLISHED = 6
_DOWN_STATES = frozenset({1, 7, 8})

# Every reason stats.errors can hold, so a metric can export them all from zero.
ERROR_REASONS = (
    "truncated",  # the file ends inside a record header or body (the file stops there)
    "bad_record_length",  # a record header declares an impossible length (the file stops there)
    "decompression",  # the gzip/bzip2/xz stream is corrupt or ends early (the file stops there)
    "io",  # the file could not be read
    "bad_marker",  # a BGP message without the all-ones marker (record skipped)
    "bad_length",  # a record too short for its fixed fields (record skipped)
    "bad_afi",  # an address family other than IPv4/IPv6 in a BGP4MP or TABLE_DUMP header
    "no_peer_index_table",  # a TABLE_DUMP_V2 RIB record before any PEER_INDEX_TABLE
    "bad_peer_index",  # a RIB entry naming a peer the index table does not have
    "invalid_prefix",  # a prefix length beyond 32/128 (counted like bgpdump, no event)
    "truncated_nlri",  # an NLRI or withdrawn list cut inside a prefix (the rest is dropped)
    "truncated_attribute",  # an attribute longer than the attribute block (the rest is dropped)
    "bad_as_path",  # an AS_PATH segment of unknown type or overrunning the attribute
)

_HEADER = struct.Struct("!IHHI")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U16x2 = struct.Struct("!HH")
_MARKER = b"\xff" * 16
_CHUNK = 1 << 20
# Far above any real record (a BGP message is <= 64 KiB; a RIB record with thousands of peers a
# few MiB) and low enough that a damaged length does not make the reader buffer a whole file.
MAX_RECORD_LENGTH = 64 << 20
_CACHE_LIMIT = CACHE_LIMIT
_SAMPLE_ERRORS = 20
_GROUP_LIMIT = 4096  # prefixes per Announce made from a run of RIB entries
# A RIB entry without attributes (BIRD dumps some) is still a route of the peer's table.
_NO_ATTRIBUTES_ARGS = ("incomplete", (), (), "", None, None, (), ())
_NO_ATTRIBUTES = (_NO_ATTRIBUTES_ARGS, None, None, _NO_ATTRIBUTES_ARGS)


# While a file is read, the cyclic GC's first threshold is at least this (CPython's default: 700).
_GC_THRESHOLD0 = 100_000
_gc_scope = [0, None]  # readers inside `_gc_relaxed`; the thresholds before the first one entered


class _gc_relaxed:  # noqa: N801 - used like a function, as contextlib's context managers are
    """Raise the cyclic GC's first threshold for a block, then restore the thresholds as they were.

    A RIB load grows the decoder caches and the attribute pool by ~10 tracked objects per distinct
    path, and each young-generation pass (every 700 allocations by default) leads by steps to full
    passes over all of them: about a third of a TABLE_DUMP_V2 load.  The reader makes no reference
    cycles.  `MrtReader.read` holds it for the whole file (the consumer's code between two events
    runs with it too, i.e. a replay, never the daemon's live ingest); the previous thresholds are
    back when the last reader inside leaves, whether the file ended, broke off, or the consumer
    stopped or dropped the generator, unless someone else changed them meanwhile (then theirs stay).
    """

    __slots__ = ()

    def __enter__(self) -> None:
        if _gc_scope[0] == 0:
            before = gc.get_threshold()
            _gc_scope[1] = before
            gc.set_threshold(max(before[0], _GC_THRESHOLD0), *before[1:])
        _gc_scope[0] += 1

    def __exit__(self, *exc: object) -> None:
        _gc_scope[0] -= 1
        if _gc_scope[0] == 0:
            before = _gc_scope[1]
            _gc_scope[1] = None
            if before is not None and gc.get_threshold() == (max(before[0], _GC_THRESHOLD0), *before[1:]):
                gc.set_threshold(*before)


class MrtError(ValueError):
    """A file that cannot be read on: where it stopped and why."""

    def __init__(self, path: str, reason: str, offset: int, record: int, detail: str) -> None:
        self.path = path
        self.reason = reason
        self.offset = offset
        self.record = record
        self.detail = detail
        super().__init__(f"{path}: record {record} at byte {offset}: {reason}: {detail}")


@dataclass(slots=True)
class MrtStats:
    """What one or more MRT files held, counted as ``bgpdump -m`` prints it, plus what was skipped.

    ``announcements``, ``withdrawals``, ``state_changes`` and ``rib_entries`` are the numbers of
    ``A``, ``W``, ``STATE`` and ``B`` lines ``bgpdump -m`` prints for the same input (multicast and
    collector-sent messages included).  ``not_emitted`` counts those elements that made no event,
    by reason.  ``records_by_type`` is keyed "TYPE/SUBTYPE".  ``input_bytes`` counts the bytes read
    from the files as stored (compressed), for a progress display; it is not in `to_dict`.
    """

    files: int = 0
    records: int = 0
    bytes: int = 0
    input_bytes: int = 0
    announcements: int = 0
    withdrawals: int = 0
    state_changes: int = 0
    rib_entries: int = 0
    events: int = 0
    records_by_type: Counter[str] = field(default_factory=Counter)
    unsupported: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    not_emitted: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def error(self, reason: str, message: str) -> None:
        """Count one error and keep the first few messages for the log."""
        self.errors[reason] += 1
        if len(self.error_samples) < _SAMPLE_ERRORS:
            self.error_samples.append(message)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view."""
        return {
            "files": self.files,
            "records": self.records,
            "bytes": self.bytes,
            "announcements": self.announcements,
            "withdrawals": self.withdrawals,
            "state_changes": self.state_changes,
            "rib_entries": self.rib_entries,
            "events": self.events,
            "records_by_type": dict(self.records_by_type),
            "unsupported": dict(self.unsupported),
            "errors": dict(self.errors),
            "not_emitted": dict(self.not_emitted),
        }


def record_type_name(mrt_type: int, subtype: int) -> str:
    """Return "TYPE/SUBTYPE" for an MRT record type, numbers where the name is unknown."""
    type_name = TYPE_NAMES.get(mrt_type, str(mrt_type))
    subtype_name = _SUBTYPE_NAMES.get(mrt_type, {}).get(subtype, str(subtype))
    return f"{type_name}/{subtype_name}"


def compression_of(head: bytes) -> str:
    """Return "gzip", "bzip2", "xz" or "plain" from the first bytes of a file."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return "plain"


def open_decompressed(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file for reading, decompressing it when its magic bytes say gzip, bzip2 or xz."""
    with open(path, "rb") as probe:
        head = probe.read(6)
    kind = compression_of(head)
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bzip2":
        return bz2.open(path, "rb")
    if kind == "xz":
        return lzma.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


_READ_SIZE = 1 << 16  # compressed bytes per step: a corrupt stream loses at most this much output


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(wbits=47)  # 32 + 15: gzip header, checked CRC and length
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    return lzma.LZMADecompressor()


_DECOMPRESSION_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)


def _salvage(engine: Any, data: bytes) -> bytes:
    """Return what a zlib decompressor yields from ``data`` before it fails."""
    parts = []
    for start in range(0, len(data), 256):
        try:
            parts.append(engine.decompress(data[start : start + 256]))
        except _DECOMPRESSION_ERRORS:
            break
    return b"".join(parts)


def _chunks(path: str, stats: MrtStats, state: list[int]) -> Iterator[bytes]:
    """Yield the decompressed file in chunks; raise MrtError where the stream breaks.

    Decompressing step by step (not through gzip.open) keeps every byte decoded before a
    corrupt or cut stream, so the records before the damage are still read.  Concatenated
    gzip members and bzip2 streams (as ``cat a.gz b.gz`` makes) are read one after the other.
    ``state`` is [record index, decompressed offset of the first byte not yet parsed].
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, also when the consumer stops early
    except OSError as exc:
        raise MrtError(path, "io", 0, 0, str(exc)) from exc
    with raw:
        try:
            data = raw.read(_READ_SIZE)
        except OSError as exc:
            raise MrtError(path, "io", 0, 0, str(exc)) from exc
        kind = compression_of(data)
        if kind == "plain":
            while data:
                stats.bytes += len(data)
                stats.input_bytes += len(data)
                yield data
                data = raw.read(_CHUNK)
            return
        engine = _decompressor(kind)
        while True:
            # zlib can snapshot its state: on corrupt data, redo the step in small pieces so that
            # everything before the damage is still decoded (bzip2/xz lose at most one step).
            snapshot = engine.copy() if kind == "gzip" else None
            stats.input_bytes += len(data)
            try:
                out = engine.decompress(data)
                if engine.eof:
                    rest = engine.unused_data
                    if rest.strip(b"\x00"):
                        engine = _decompressor(compression_of(rest))
                        out += engine.decompress(rest)
            except _DECOMPRESSION_ERRORS as exc:
                if snapshot is not None:
                    salvaged = _salvage(snapshot, data)
                    stats.bytes += len(salvaged)
                    yield salvaged
                raise MrtError(
                    path, "decompression", state[1], state[0], f"{kind} stream corrupt ({exc})"
                ) from exc
            if out:
                stats.bytes += len(out)
                yield out
            data = raw.read(_READ_SIZE)
            if not data:
                break
        if not engine.eof:
            raise MrtError(
                path,
                "decompression",
                state[1],
                state[0],
                f"{kind} stream ended before its end marker (file cut short?)",
            )


class MrtReader:
    """Decode MRT files into events, interning attributes in ``pool`` and counting into ``stats``.

    One reader may read several files in turn (``read(path)``); ADD-PATH state and the TABLE_DUMP_V2
    peer index are per file.
    """

    def __init__(self, pool: AttributePool, stats: MrtStats | None = None) -> None:
        self.pool = pool
        self.stats = stats if stats is not None else MrtStats()
        # The shared UPDATE decoder (its caches live as long as the reader); it counts into stats.
        # The decoder reports through a weak reference: no reader <-> decoder cycle, so a reader
        # and its caches are freed as soon as it is dropped, not by a later full GC pass.
        self._decoder = UpdateDecoder(pool, self.stats, _weak_report(self))
        self._address = self._decoder.address
        self._attributes = self._decoder.attributes
        self._update = self._decoder.update
        self._reset_file()

    def _reset_file(self) -> None:
        self._peer_index: list[tuple[str, int]] | None = None
        self._rib_seen: dict[tuple[str, int], float] = {}
        # Open runs of RIB entries: family -> peer -> [attribute bytes, at, prefix keys, intern args].
        self._pending: dict[int, dict[str, list]] = {4: {}, 6: {}}
        self._decoder.paths = {}
        self._path = ""
        self._offset = 0
        self._record = 0
        self._by_type: Counter[tuple[int, int]] = Counter()
        self._out: list[Event] = []  # events of the record being decoded

    # -- public ----------------------------------------------------------------------------------
    def read(self, path: str | os.PathLike[str]) -> Iterator[Event]:
        """Yield the events of one MRT file; raise MrtError (counted) where the file breaks off."""
        with _gc_relaxed():
            self._reset_file()
            self._path = str(path)
            self.stats.files += 1
            try:
                for batch in self._read():
                    yield from batch
            except MrtError as exc:
                self.stats.error(exc.reason, str(exc))
                # Keep what was decoded before the break; a cut dump gets no EndOfRib.
                self._flush_pending()
                self._rib_seen = {}
                yield from self._out
                self._out.clear()
                raise
            finally:
                for (mrt_type, subtype), count in self._by_type.items():
                    self.stats.records_by_type[record_type_name(mrt_type, subtype)] += count
                self._by_type.clear()
            self._end_of_rib()
            yield from self._out
            self._out.clear()

    # -- framing ---------------------------------------------------------------------------------
    def _read(self) -> Iterator[list[Event]]:
        stats = self.stats
        path = self._path
        state = [0, 0]
        buf = b""
        pos = 0
        offset = 0  # decompressed offset of buf[0]
        chunks = _chunks(path, stats, state)
        header = _HEADER.unpack_from
        by_type = self._by_type
        decode = self._decode
        out = self._out
        ended = False
        while True:
            if len(buf) - pos < 12:
                buf, pos, offset, ended = self._refill(chunks, buf, pos, offset, ended, 12, state)
                if len(buf) - pos < 12:
                    if len(buf) > pos:
                        raise MrtError(
                            path,
                            "truncated",
                            offset + pos,
                            self._record,
                            f"{len(buf) - pos} bytes left, a 12-byte MRT header expected",
                        )
                    return
            ts, mrt_type, subtype, length = header(buf, pos)
            if length > MAX_RECORD_LENGTH:
                # A damaged header: reading on would swallow the rest of the file as one record.
                raise MrtError(
                    path,
                    "bad_record_length",
                    offset + pos,
                    self._record,
                    f"record {record_type_name(mrt_type, subtype)} declares {length} bytes "
                    f"(more than {MAX_RECORD_LENGTH}): header damaged, cannot find the next record",
                )
            if len(buf) - pos < 12 + length:
                buf, pos, offset, ended = self._refill(chunks, buf, pos, offset, ended, 12 + length, state)
                if len(buf) - pos < 12 + length:
                    raise MrtError(
                        path,
                        "truncated",
                        offset + pos,
                        self._record,
                        f"record {record_type_name(mrt_type, subtype)} declares {length} bytes, "
                        f"{len(buf) - pos - 12} left",
                    )
            start = pos + 12
            end = start + length
            self._offset = offset + pos
            stats.records += 1
            by_type[(mrt_type, subtype)] += 1
            decode(ts, mrt_type, subtype, buf, start, end)
            if out:
                yield out  # the record's events, consumed before the next record is decoded
                out.clear()
            self._record += 1
            pos = end
            state[0] = self._record
            state[1] = offset + pos

    @staticmethod
    def _refill(
        chunks: Iterator[bytes], buf: bytes, pos: int, offset: int, ended: bool, need: int, state: list[int]
    ) -> tuple[bytes, int, int, bool]:
        """Return (buffer, position, offset of buffer[0], ended) with at least ``need`` bytes from pos."""
        if ended:
            return buf, pos, offset, ended
        parts = [buf[pos:]]
        have = len(parts[0])
        offset += pos
        state[1] = offset
        while have < need:
            chunk = next(chunks, b"")
            if not chunk:
                ended = True
                break
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts), 0, offset, ended

    # -- dispatch --------------------------------------------------------------------------------
    def _decode(self, ts: int, mrt_type: int, subtype: int, buf: bytes, start: int, end: int) -> None:
        if mrt_type in (T_BGP4MP, T_BGP4MP_ET):
            if self._rib_seen:
                self._end_of_rib()
            at: float = ts
            if mrt_type == T_BGP4MP_ET:
                if end - start < 4:
                    self._bad("bad_length", "BGP4MP_ET record shorter than its microsecond field")
                    return
                at = ts + _U32.unpack_from(buf, start)[0] / 1e6
                start += 4
            if subtype in (1, 4, 6, 7, 8, 9, 10, 11):
                self._message(at, subtype, buf, start, end)
            elif subtype == 0 or subtype == 5:
                self._state_change(at, subtype == 5, buf, start, end)
            else:
                self._unsupported(mrt_type, subtype)
            return
        if mrt_type == T_TABLE_DUMP_V2:
            if subtype in (2, 4, 8, 10):
                self._rib_v2(ts, subtype, buf, start, end)
            elif subtype == 1:
                self._end_of_rib()
                self._peer_index_table(buf, start, end)
            else:
                self._unsupported(mrt_type, subtype)
            return
        if self._rib_seen and mrt_type != T_TABLE_DUMP:
            self._end_of_rib()
        if mrt_type == T_TABLE_DUMP:
            if 1 <= subtype <= 4:
                self._rib_v1(ts, subtype, buf, start, end)
            else:
                self._unsupported(mrt_type, subtype)
            return
        if mrt_type == T_BGP:
            if subtype == 1:
                self._mrtd_update(ts, buf, start, end)
                return
            if subtype == 3:
                self._mrtd_state_change(ts, buf, start, end)
                return
            if subtype == 7:
                return  # KEEPALIVE: nothing to count (bgpdump prints nothing either)
        self._unsupported(mrt_type, subtype)

    def _unsupported(self, mrt_type: int, subtype: int) -> None:
        self.stats.unsupported[record_type_name(mrt_type, subtype)] += 1

    def _bad(self, reason: str, detail: str) -> None:
        self.stats.error(
            reason, f"{self._path}: record {self._record} at byte {self._offset}: {reason}: {detail}"
        )

    # -- BGP4MP ----------------------------------------------------------------------------------
    def _message(self, at: float, subtype: int, buf: bytes, pos: int, end: int) -> None:
        as4 = subtype in (4, 7, 9, 11)
        local = subtype in (6, 7, 10, 11)
        addpath = subtype >= 8
        asn_len = 4 if as4 else 2
        fixed = 2 * asn_len + 4
        if end - pos < fixed:
            self._bad("bad_length", f"{end - pos} bytes, a BGP4MP message header expected")
            return
        pos += 2 * asn_len  # peer and local AS: an UPDATE event carries neither
        ifindex, afi = _U16x2.unpack_from(buf, pos)
        pos += 4
        if afi == 1:
            # A *_LOCAL message was sent by the collector: the peer is the destination.
            peer_raw = buf[pos + 4 : pos + 8] if local else buf[pos : pos + 4]
            pos += 8
        elif afi == 2:
            peer_raw = buf[pos + 16 : pos + 32] if local else buf[pos : pos + 16]
            pos += 32
        elif afi == 0xFFFF and ifindex == 0xFFFF:
            # Old Zebra wrote OPENs with no ifindex, AFI or addresses; bgpdump reads the 4 bytes
            # it took for them as the start of the marker.  No peer address is known.
            peer_raw = b""
            pos -= 4
        else:
            self._bad("bad_afi", f"BGP4MP address family {afi}")
            return
        if end - pos < 19:
            self._bad("bad_length", "BGP4MP record ends before the BGP message header")
            return
        if not buf.startswith(_MARKER, pos):
            self._bad("bad_marker", f"BGP marker {buf[pos : pos + 16].hex()}")
            return
        (size,) = _U16.unpack_from(buf, pos + 16)
        msg_type = buf[pos + 18]
        if msg_type != 2:
            return  # OPEN, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH: bgpdump -m prints nothing
        body_end = min(end, pos + size)
        pos += 19
        if not peer_raw:
            self._bad("bad_afi", "UPDATE without a peer address (Zebra OPEN workaround)")
            return
        peer = self._address(peer_raw)
        self._update(
            at, peer, asn_len, ADDPATH_ALL if addpath else ADDPATH_NONE, local, buf, pos, body_end, self._out
        )

    # -- STATE_CHANGE ----------------------------------------------------------------------------
    def _state_change(self, at: float, as4: bool, buf: bytes, pos: int, end: int) -> None:
        length = end - pos
        asn_len = 4 if as4 else 2
        if as4:
            if length < 8:
                self._bad("bad_length", f"STATE_CHANGE_AS4 of {length} bytes")
                return
            peer_as = _U32.unpack_from(buf, pos)[0]
        else:
            if length < 4:
                self._bad("bad_length", f"STATE_CHANGE of {length} bytes")
                return
            peer_as = _U16.unpack_from(buf, pos)[0]
        pos += 2 * asn_len
        if length == 8:
            # Old Zebra wrote 8-byte state changes with no interface, AFI or addresses; bgpdump
            # prints them with peer 0.0.0.0.  Counted; no event, the peer is unknown.
            self.stats.state_changes += 1
            self.stats.not_emitted["state_change_without_peer"] += 1
            return
        if length - 2 * asn_len < 4:
            self._bad("bad_length", f"STATE_CHANGE of {length} bytes")
            return
        afi = _U16.unpack_from(buf, pos + 2)[0]
        pos += 4
        if afi == 1:
            if length not in (20, 24):
                self._bad("bad_length", f"IPv4 STATE_CHANGE of {length} bytes (20 or 24 expected)")
                return
            peer_raw = buf[pos : pos + 4]
            pos += 8
        elif afi == 2:
            if length not in (44, 48):
                self._bad("bad_length", f"IPv6 STATE_CHANGE of {length} bytes (44 or 48 expected)")
                return
            peer_raw = buf[pos : pos + 16]
            pos += 32
        else:
            self._bad("bad_afi", f"STATE_CHANGE address family {afi}")
            return
        old, new = _U16x2.unpack_from(buf, pos) if end - pos >= 4 else (0, 0)
        if not peer_raw.strip(b"\x00"):
            # BIRD logs FSM steps before it knows the peer's address (bgpdump prints 0.0.0.0).
            self.stats.state_changes += 1
            self.stats.not_emitted["state_change_without_peer"] += 1
            return
        self._out.append(self._session(at, self._address(peer_raw), peer_as, old, new))

    def _session(self, at: float, peer: str, peer_as: int, old: int, new: int) -> SessionState:
        self.stats.state_changes += 1
        if new == _ESTABLISHED:
            state = UP
        elif old == _ESTABLISHED or new in _DOWN_STATES:
            state = DOWN
            self._decoder.forget(peer)
        else:
            state = CONNECTED
        self.stats.events += 1
        return SessionState(at, peer, state, f"fsm {_fsm_name(old)}->{_fsm_name(new)}", peer_as)

    # -- MRT type 5 (BGP, deprecated) --------------------------------------------------------------
    def _mrtd_update(self, ts: int, buf: bytes, pos: int, end: int) -> None:
        if end - pos < 12:
            self._bad("bad_length", f"BGP/UPDATE of {end - pos} bytes")
            return
        peer_raw = buf[pos + 2 : pos + 6]
        peer = self._address(peer_raw)
        self._update(float(ts), peer, 2, ADDPATH_NONE, False, buf, pos + 12, end, self._out)

    def _mrtd_state_change(self, ts: int, buf: bytes, pos: int, end: int) -> None:
        if end - pos < 10:
            self._bad("bad_length", f"BGP/STATE_CHANGE of {end - pos} bytes")
            return
        peer_as = _U16.unpack_from(buf, pos)[0]
        peer = self._address(buf[pos + 2 : pos + 6])
        old, new = _U16x2.unpack_from(buf, pos + 6)
        self._out.append(self._session(float(ts), peer, peer_as, old, new))

    # -- TABLE_DUMP v1 -----------------------------------------------------------------------------
    def _rib_v1(self, ts: int, subtype: int, buf: bytes, pos: int, end: int) -> None:
        v6 = subtype in (2, 4)
        asn_len = 4 if subtype >= 3 else 2
        alen = 16 if v6 else 4
        need = 4 + alen + 6 + alen + asn_len + 2
        if end - pos < need:
            self._bad("bad_length", f"TABLE_DUMP entry of {end - pos} bytes, {need} expected")
            return
        prefix_raw = buf[pos + 4 : pos + 4 + alen]
        pos += 4 + alen
        plen = buf[pos]
        pos += 6
        peer_raw = buf[pos : pos + alen]
        pos += alen + asn_len
        (attr_len,) = _U16.unpack_from(buf, pos)
        pos += 2
        aend = min(pos + attr_len, end)
        self.stats.rib_entries += 1
        family = 6 if v6 else 4
        key = _network_key(prefix_raw, plen, 128 if v6 else 32)
        if key < 0:
            self._bad("invalid_prefix", f"prefix length {plen}")
            self.stats.not_emitted["invalid_prefix"] += 1
            return
        peer = self._address(peer_raw)
        pending = self._pending[family]
        blob = buf[pos:aend]
        group = pending.get(peer)
        if group is not None:
            if group[0] == blob and len(group[2]) < _GROUP_LIMIT:
                group[2].append(key)
                return
            self._flush_group(family, peer, group)
        attrs = self._attributes(buf, pos, aend, asn_len, ADDPATH_NONE) if blob else _NO_ATTRIBUTES
        at = float(ts)
        pending[peer] = [blob, at, [key], attrs[3 if v6 else 0]]
        self._rib_seen[(peer, family)] = at

    # -- TABLE_DUMP_V2 -----------------------------------------------------------------------------
    def _peer_index_table(self, buf: bytes, pos: int, end: int) -> None:
        try:
            pos += 4
            (name_len,) = _U16.unpack_from(buf, pos)
            pos += 2 + name_len
            (count,) = _U16.unpack_from(buf, pos)
            pos += 2
            peers: list[tuple[str, int]] = []
            for _ in range(count):
                peer_type = buf[pos]
                alen = 16 if peer_type & 1 else 4
                pos += 5
                if pos + alen > end:
                    raise IndexError("peer entry cut")
                address = self._address(buf[pos : pos + alen])
                pos += alen
                if peer_type & 2:
                    (asn,) = _U32.unpack_from(buf, pos)
                    pos += 4
                else:
                    (asn,) = _U16.unpack_from(buf, pos)
                    pos += 2
                peers.append((address, asn))
        except (IndexError, struct.error) as exc:
            self._bad("bad_length", f"PEER_INDEX_TABLE cut ({exc})")
            self._peer_index = None
            return
        self._peer_index = peers

    def _rib_v2(self, ts: int, subtype: int, buf: bytes, pos: int, end: int) -> None:
        peers = self._peer_index
        if peers is None:
            self._bad("no_peer_index_table", record_type_name(T_TABLE_DUMP_V2, subtype))
            return
        family = 4 if subtype in (2, 8) else 6
        addpath = subtype >= 8
        if end - pos < 5:
            self._bad("bad_length", "RIB record cut in its prefix")
            return
        pos += 4
        plen = buf[pos]
        nbytes = (plen + 7) >> 3
        key = _network_key(buf[pos + 1 : pos + 1 + nbytes], plen, 32 if family == 4 else 128)
        pos += 1 + nbytes
        if end - pos < 2:
            self._bad("bad_length", "RIB record cut before its entry count")
            return
        (count,) = _U16.unpack_from(buf, pos)
        pos += 2
        if key < 0:
            # bgpdump prints the entries of a prefix it cannot hold; count them, no events.
            self._bad("invalid_prefix", f"prefix length {plen}")
            self.stats.rib_entries += count
            self.stats.not_emitted["invalid_prefix"] += count
            return
        at = float(ts)
        fixed = 10 if addpath else 6  # peer index, originated time [, path id]
        need = fixed + 2
        n_peers = len(peers)
        attributes = self._attributes
        blobs = self._decoder.attr_blobs[4]
        seen = self._rib_seen
        pending = self._pending[family]
        intern = self.pool.intern
        emit = self._out.append
        arg_index = 0 if family == 4 else 3
        entries = events = 0
        for _ in range(count):
            if end - pos < need:
                self._bad("bad_length", "RIB entry cut")
                break
            index = (buf[pos] << 8) | buf[pos + 1]
            pos += fixed
            aend = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
            pos += 2
            if aend > end:
                self._bad("bad_length", f"RIB entry attributes declare {aend - pos} bytes, {end - pos} left")
                break
            if index >= n_peers:
                self._bad("bad_peer_index", f"peer index {index} >= {n_peers}")
                pos = aend
                continue
            entries += 1
            # Runs of one peer's entries with the same attributes become one Announce (RIBs are
            # in prefix order, and neighbouring prefixes often share a path): fewer events, and
            # the attributes are looked up and interned once per run.
            blob = buf[pos:aend]
            peer = peers[index][0]
            group = pending.get(peer)
            if group is not None:
                if group[0] == blob and len(group[2]) < _GROUP_LIMIT:
                    group[2].append(key)
                    pos = aend
                    continue
                # The run ends: its Announce (as `_flush_group` makes it).
                _, old_at, keys, args = group
                del pending[peer]
                events += 1
                emit(
                    Announce(
                        old_at,
                        peer,
                        family,
                        tuple(dict.fromkeys(keys)) if len(keys) > 1 else (keys[0],),
                        intern(*args),
                    )
                )
            attrs = (
                (blobs.get(blob) or attributes(buf, pos, aend, 4, ADDPATH_NONE)) if blob else _NO_ATTRIBUTES
            )
            pos = aend
            pending[peer] = [blob, at, [key], attrs[arg_index]]
            seen[(peer, family)] = at
        stats = self.stats
        stats.rib_entries += entries
        stats.events += events

    def _flush_group(self, family: int, peer: str, group: list) -> None:
        """Emit the Announce of one run of RIB entries (and forget the run)."""
        _, at, keys, args = group
        del self._pending[family][peer]
        self.stats.events += 1
        prefixes = tuple(dict.fromkeys(keys)) if len(keys) > 1 else (keys[0],)
        self._out.append(Announce(at, peer, family, prefixes, self.pool.intern(*args)))

    def _flush_pending(self) -> None:
        """Emit every RIB run still open (a dump ends, or the file breaks off)."""
        for family, pending in self._pending.items():
            for peer, group in list(pending.items()):
                self._flush_group(family, peer, group)

    def _end_of_rib(self) -> None:
        """Close a complete table dump: its last runs, then one EndOfRib per (peer, family) it held."""
        seen = self._rib_seen
        if not seen:
            return
        self._flush_pending()
        self._rib_seen = {}
        for (peer, family), at in seen.items():
            self.stats.events += 1
            self._out.append(EndOfRib(at, peer, family))


def _weak_report(reader: MrtReader) -> Any:
    """Return a ``bad(reason, detail)`` callback calling ``reader._bad`` through a weak reference."""
    ref = weakref.ref(reader)

    def bad(reason: str, detail: str) -> None:
        target = ref()
        if target is not None:
            target._bad(reason, detail)

    return bad


def _fsm_name(state: int) -> str:
    return FSM_STATES[state] if 0 <= state < len(FSM_STATES) else str(state)


def _network_key(raw: bytes, plen: int, max_len: int) -> int:
    """Return the key of a prefix given as (leading) address bytes and a length, -1 if invalid."""
    if plen > max_len:
        return -1
    nbytes = (plen + 7) >> 3
    network = int.from_bytes(raw[:nbytes], "big") << (max_len - 8 * nbytes)
    host_bits = max_len - plen
    return (((network >> host_bits) << host_bits) << 8) | plen


def read_mrt(
    path: str | os.PathLike[str], pool: AttributePool | None = None, stats: MrtStats | None = None
) -> Iterator[Event]:
    """Yield the events of one MRT file (see `MrtReader`); raise MrtError where it breaks off."""
    reader = MrtReader(pool if pool is not None else AttributePool(), stats)
    yield from reader.read(path)
