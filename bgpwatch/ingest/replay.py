"""Input side of ``bgpwatch replay``: open recordings (ExaBGP JSON lines or MRT) as event streams.

The format is found from the content, never from the file name: after undoing gzip, bzip2 or
xz (magic bytes), a file whose first non-blank line is a RIS Live frame (``{"type": "ris_message"``
or another ``ris_`` frame type) is a RIS Live recording (`bgpwatch.ingest.rislive`), another file
whose first non-blank byte is ``{`` is ExaBGP JSON lines (parsed by
`bgpwatch.ingest.exabgp_json.ExaBGPJsonParser`), anything else is MRT (`bgpwatch.ingest.mrt`).

`ReplayStats` is what ``replay --stats`` prints.  ``announcements``, ``withdrawals`` and
``state_changes`` count per prefix the way ``bgpdump -m`` does: one per ``A``, ``W`` and
``STATE`` line it would print (for ExaBGP JSON, per prefix of the events).  RIB entries
(``bgpdump -m`` ``B`` lines, from TABLE_DUMP / TABLE_DUMP_V2) are counted apart in
``rib_entries``, not in ``announcements``, so the updates of a file compare to bgpdump's A lines
whether or not a RIB was replayed with them.  A bad line or record is counted in ``errors`` by
reason (with the file and line number in ``error_samples``) and skipped; a file that breaks off (truncated, corrupt compression) is counted, the
events before the break are kept, and replay goes on with the next file.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import re
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from bgpwatch.events import Announce, Event, SessionState, Withdraw
from bgpwatch.ingest.bmp_lines import BMP_TAG
from bgpwatch.ingest.bmp_lines import parse_line as parse_bmp_line
from bgpwatch.ingest.mrt import MrtError, MrtReader, MrtStats, compression_of, open_decompressed
from bgpwatch.ingest.ris_lines import RIS_TAG
from bgpwatch.ingest.ris_lines import parse_line as parse_ris_line
from bgpwatch.ingest.rpki_lines import RPKI_TAG
from bgpwatch.ingest.rpki_lines import parse_line as parse_rpki_line
from bgpwatch.rib.attributes import AttributePool

log = logging.getLogger(__name__)

EXABGP_JSON = "exabgp-json"
RIS_LIVE = "ris-live"
MRT = "mrt"
# A RIS Live frame, when the first line is too long to be decoded whole from the sniffed bytes.
_RIS_FRAME = re.compile(rb'^\{\s*"type"\s*:\s*"ris_')
_RIS_FRAME_TYPES = frozenset({"ris_message", "ris_error", "ris_subscribe_ok", "pong", "ris_rrc_list"})
_PROGRESS_LINES = 256  # JSON lines between two updates of ``input_bytes``
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
    """Return EXABGP_JSON, RIS_LIVE or MRT for a recording, looking at its (decompressed) first bytes."""
    with open_decompressed(path) as stream:
        try:
            head = stream.read(_SNIFF_BYTES)
        except _STREAM_ERRORS:
            head = b""  # a compressed file cut or damaged early: let the MRT reader say where
    text = head.lstrip(_WHITESPACE)
    # An MRT file starts with a 4-byte timestamp: "{" there would be the year 2035.
    if text[:1] != b"{":
        return MRT
    first, newline, _ = text.partition(b"\n")
    if newline:
        try:
            doc = orjson.loads(first)
        except orjson.JSONDecodeError:
            doc = None
        if type(doc) is dict:
            return RIS_LIVE if doc.get("type") in _RIS_FRAME_TYPES else EXABGP_JSON
    return RIS_LIVE if _RIS_FRAME.match(text) else EXABGP_JSON


def open_recording(
    path: str | os.PathLike[str], pool: AttributePool | None = None, stats: ReplayStats | None = None
) -> Iterator[Event]:
    """Yield the events of one recording (ExaBGP JSON lines, RIS Live frames or MRT, maybe compressed).

    Raises MrtError when an MRT file breaks off (after yielding everything before the break) and
    OSError when the file cannot be opened; bad JSON lines are counted in ``stats.errors`` only.
    """
    pool = pool if pool is not None else AttributePool()
    stats = stats if stats is not None else ReplayStats()
    kind = detect_format(path)
    stats.formats[kind] = stats.formats.get(kind, 0) + 1
    if kind == EXABGP_JSON:
        yield from _json_lines(path, pool, stats, kind)
        return
    if kind == RIS_LIVE:
        yield from _json_lines(path, pool, stats, kind)
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


def _open_counted(path: str | os.PathLike[str]) -> tuple[IO[bytes], IO[bytes], str]:
    """Return (raw file, decompressed stream, compression): ``raw.tell()`` is how far the file was read."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    try:
        compression = compression_of(raw.read(6))
        raw.seek(0)
        if compression == "gzip":
            return raw, gzip.GzipFile(fileobj=raw, mode="rb"), compression
        if compression == "bzip2":
            return raw, bz2.BZ2File(raw, "rb"), compression
        if compression == "xz":
            return raw, lzma.LZMAFile(raw, "rb"), compression
        return raw, raw, compression
    except BaseException:
        raw.close()
        raise


def _json_lines(
    path: str | os.PathLike[str], pool: AttributePool, stats: ReplayStats, kind: str
) -> Iterator[Event]:
    """Yield the events of a file of JSON lines: ExaBGP's API output (with bgpwatch's control lines) or RIS Live."""
    # Imported here: the JSON parsers are only needed when a JSON recording is replayed.
    from bgpwatch.ingest.exabgp_json import IngestError

    if kind == RIS_LIVE:
        from bgpwatch.ingest.rislive import RisLiveParser

        parser: Any = RisLiveParser(pool)
        is_control = parse_control = None
        ignored_prefix = "ris_live"
    else:
        from bgpwatch.ingest.control import is_control, parse_control
        from bgpwatch.ingest.exabgp_json import ExaBGPJsonParser

        parser = ExaBGPJsonParser(pool)
        ignored_prefix = "exabgp"
    stats.files += 1
    name = os.fspath(path)
    number = 0
    start_bytes = stats.input_bytes
    raw, stream, compression = _open_counted(path)
    with raw, stream:
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
            if number % _PROGRESS_LINES == 0:
                stats.input_bytes = start_bytes + raw.tell()
            if not line.strip():
                continue
            stats.lines += 1
            stats.records += 1
            try:
                # Recordings made by `bgpwatch run` also hold the relay's and supervisor's control lines.
                if is_control is not None and is_control(line):
                    events = parse_control(line)
                elif line.startswith(BMP_TAG):
                    # A BMP message as it arrived: decoded by the pipeline's BMP parser (it keeps state).
                    events = [parse_bmp_line(line)]
                    stats.not_emitted["bmp_records"] += 1
                elif line.startswith(RIS_TAG):
                    # A RIS Live frame as it arrived: applied by the pipeline to its outside view.
                    events = [parse_ris_line(line)]
                    stats.not_emitted["ris_records"] += 1
                elif line.startswith(RPKI_TAG):
                    # The RPKI state the live run judged against: applied by the pipeline to its table.
                    events = [parse_rpki_line(line)]
                    stats.not_emitted["rpki_records"] += 1
                else:
                    events = parser.parse(line)
            except IngestError as exc:
                stats.error(exc.reason, f"{name}: line {number}: {exc}")
                continue
            for event in events:
                kind_of = type(event)
                if kind_of is Announce:
                    stats.announcements += len(event.prefixes)
                elif kind_of is Withdraw:
                    stats.withdrawals += len(event.prefixes)
                elif kind_of is SessionState:
                    stats.state_changes += 1
                stats.events += 1
                yield event
        stats.input_bytes = start_bytes + raw.tell()
    for reason, count in parser.ignored.items():
        stats.not_emitted[f"{ignored_prefix}_{reason}"] += count
