"""Input side of ``bgpwatch replay``: open recordings (ExaBGP JSON lines or MRT) as event streams.

The format is found from the content, never from the file name: after undoing gzip, bzip2 or
xz (magic bytes), a file whose first non-blank byte is ``{`` is ExaBGP JSON lines (parsed by
`bgpwatch.ingest.exabgp_json.ExaBGPJsonParser`), anything else is MRT (`bgpwatch.ingest.mrt`).

`ReplayStats` is what ``replay --stats`` prints.  ``announcements``, ``withdrawals`` and
``state_changes`` count per prefix the way ``bgpdump -m`` does: one per ``A``, ``W`` and
``STATE`` line it would print (for ExaBGP JSON, per prefix of the events).  RIB entries
(``bgpdump -m`` ``B`` lines, from TABLE_DUMP / TABLE_DUMP_V2) are counted apart in
``rib_entries``, not in ``announcements``, so the updates of a file compare to bgpdump's A lines
whether or not a RIB was replayed with them.  A bad line or record is counted in ``errors`` by
reason and skipped; a file that breaks off (truncated, corrupt compression) is counted, the
events before the break are kept, and replay goes on with the next file.
"""

from __future__ import annotations

import logging
import lzma
import os
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bgpwatch.events import Announce, Event, SessionState, Withdraw
from bgpwatch.ingest.mrt import MrtError, MrtReader, MrtStats, compression_of, open_decompressed
from bgpwatch.rib.attributes import AttributePool

log = logging.getLogger(__name__)

EXABGP_JSON = "exabgp-json"
MRT = "mrt"
_SNIFF_BYTES = 4096
_WHITESPACE = b" \t\r\n"
# What reading a damaged or cut gzip/bzip2/xz stream raises.
_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


@dataclass(slots=True)
class ReplayStats(MrtStats):
    """Counts of one replay (all files): MRT's bgpdump-compatible counts plus JSON lines and time.

    ``records`` counts MRT records and JSON lines; ``formats`` the files per format;
    ``seconds`` the wall time from the first event asked for to the end of the last file
    (the consumer's work between events included).
    """

    lines: int = 0
    seconds: float = 0.0
    formats: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (the ``replay --stats`` object)."""
        data = MrtStats.to_dict(self)
        data["lines"] = self.lines
        data["formats"] = dict(self.formats)
        data["seconds"] = round(self.seconds, 3)
        return data


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return EXABGP_JSON or MRT for a recording, looking at its (decompressed) first bytes."""
    with open_decompressed(path) as stream:
        try:
            head = stream.read(_SNIFF_BYTES)
        except _STREAM_ERRORS:
            head = b""  # a compressed file cut or damaged early: let the MRT reader say where
    text = head.lstrip(_WHITESPACE)
    # An MRT file starts with a 4-byte timestamp: "{" there would be the year 2035.
    if text[:1] == b"{":
        return EXABGP_JSON
    return MRT


def open_recording(
    path: str | os.PathLike[str], pool: AttributePool | None = None, stats: ReplayStats | None = None
) -> Iterator[Event]:
    """Yield the events of one recording (ExaBGP JSON lines or MRT, maybe compressed).

    Raises MrtError when an MRT file breaks off (after yielding everything before the break) and
    OSError when the file cannot be opened; bad JSON lines are counted in ``stats.errors`` only.
    """
    pool = pool if pool is not None else AttributePool()
    stats = stats if stats is not None else ReplayStats()
    kind = detect_format(path)
    stats.formats[kind] = stats.formats.get(kind, 0) + 1
    if kind == EXABGP_JSON:
        yield from _exabgp_json(path, pool, stats)
        return
    yield from MrtReader(pool, stats).read(path)


def replay_files(
    paths: Iterable[str | os.PathLike[str]],
    pool: AttributePool | None = None,
    stats: ReplayStats | None = None,
) -> Iterator[Event]:
    """Yield the events of several recordings in turn; a broken file is logged, counted and left."""
    pool = pool if pool is not None else AttributePool()
    stats = stats if stats is not None else ReplayStats()
    start = time.perf_counter()
    try:
        for path in paths:
            try:
                yield from open_recording(path, pool, stats)
            except MrtError as exc:
                log.error("replay: %s (events before it were replayed)", exc)
            except OSError as exc:
                stats.error("io", f"{path}: {exc}")
                log.error("replay: cannot read %s: %s", path, exc)
    finally:
        stats.seconds += time.perf_counter() - start


def _exabgp_json(path: str | os.PathLike[str], pool: AttributePool, stats: ReplayStats) -> Iterator[Event]:
    # Imported here: the JSON parser is only needed when a JSON recording is replayed.
    from bgpwatch.ingest.control import is_control, parse_control
    from bgpwatch.ingest.exabgp_json import ExaBGPJsonParser, IngestError

    parser = ExaBGPJsonParser(pool)
    stats.files += 1
    name = os.fspath(path)
    with open(path, "rb") as probe:
        compression = compression_of(probe.read(6))
    number = 0
    with open_decompressed(path) as stream:
        lines = iter(stream)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                break
            except _STREAM_ERRORS as exc:
                stats.error("decompression", f"{name}: line {number + 1}: {compression} stream broken: {exc}")
                log.error("replay: %s: line %d: %s stream broken: %s", name, number + 1, compression, exc)
                break
            number += 1
            stats.bytes += len(line)
            if not line.strip():
                continue
            stats.lines += 1
            stats.records += 1
            try:
                # Recordings made by `bgpwatch run` also hold the relay's and supervisor's control lines.
                events = parse_control(line) if is_control(line) else parser.parse(line)
            except IngestError as exc:
                stats.error(exc.reason, f"{name}: line {number}: {exc}")
                continue
            for event in events:
                kind = type(event)
                if kind is Announce:
                    stats.announcements += len(event.prefixes)
                elif kind is Withdraw:
                    stats.withdrawals += len(event.prefixes)
                elif kind is SessionState:
                    stats.state_changes += 1
                stats.events += 1
                yield event
    for reason, count in parser.ignored.items():
        stats.not_emitted[f"exabgp_{reason}"] += count
