"""An RTR client (RFC 8210 version 1, falling back to RFC 6810 version 0): VRPs from RPKI caches.

The RTR source keeps the pipeline's VRP table (`bgpwatch.rpki.state.RpkiState`) in step with one
cache at a time, taken from ``rpki.rtr`` in order of preference:

* connect, send a Reset Query; the cache answers Cache Response, the VRPs (IPv4/IPv6 Prefix PDUs),
  End of Data; the table becomes exactly those VRPs at End of Data (never half a transfer);
* then every ``refresh`` seconds (the End of Data's, else the config's), or at once on a Serial
  Notify, a Serial Query for what changed since the last serial; a Cache Reset answer means "start
  over": a Reset Query;
* version: the client speaks 1; a cache that answers with version 0 PDUs, or with an Error Report
  "Unsupported Protocol Version", is spoken to in version 0 from then on (RFC 8210 7);
* the data is usable from the first End of Data until ``expire`` seconds after the last one
  (RFC 8210 6): when no cache gave an End of Data for that long, the table is emptied and the
  RPKI detectors freeze (origin validation off, said by ``rpki_cache_down``);
* a cache that fails (refused, closed, silent in a transfer, garbage, an Error Report) is left for
  the next one in the list; after a round where none answered, the client waits 1 s, then twice as
  long after each such round, up to ``retry`` seconds; reconnecting to the cache the table came
  from, it sends a Serial Query (a cache that restarted answers Cache Reset: then a full load).

Every malformed PDU (bad length, a prefix with host bits, max length out of range, a duplicate
announcement, a withdrawal of an unknown VRP, an unknown PDU type) is counted by reason, answered
with an Error Report where RFC 8210 5.11 says so, and ends that connection: the table keeps what
the last End of Data gave until it expires.  Nothing here raises into the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bgpwatch.ingest.rpki_lines import rpki_line
from bgpwatch.ingest.sources import Source
from bgpwatch.rpki.vrps import Vrp
from bgpwatch.topology.model import SiteModel

log = logging.getLogger(__name__)

# PDU types (RFC 8210 5)
SERIAL_NOTIFY = 0
SERIAL_QUERY = 1
RESET_QUERY = 2
CACHE_RESPONSE = 3
IPV4_PREFIX = 4
IPV6_PREFIX = 6
END_OF_DATA = 7
CACHE_RESET = 8
ROUTER_KEY = 9
ERROR_REPORT = 10
ASPA = 11  # draft 8210bis (version 2): never sent to a version 0/1 client, ignored if it is

PDU_NAMES = {
    SERIAL_NOTIFY: "Serial Notify",
    SERIAL_QUERY: "Serial Query",
    RESET_QUERY: "Reset Query",
    CACHE_RESPONSE: "Cache Response",
    IPV4_PREFIX: "IPv4 Prefix",
    IPV6_PREFIX: "IPv6 Prefix",
    END_OF_DATA: "End of Data",
    CACHE_RESET: "Cache Reset",
    ROUTER_KEY: "Router Key",
    ERROR_REPORT: "Error Report",
    ASPA: "ASPA",
}

# Error codes (RFC 8210 12)
CORRUPT_DATA = 0
INTERNAL_ERROR = 1
NO_DATA_AVAILABLE = 2
INVALID_REQUEST = 3
UNSUPPORTED_VERSION = 4
UNSUPPORTED_PDU_TYPE = 5
WITHDRAWAL_OF_UNKNOWN = 6
DUPLICATE_ANNOUNCEMENT = 7
UNEXPECTED_VERSION = 8

ERROR_NAMES = {
    CORRUPT_DATA: "Corrupt Data",
    INTERNAL_ERROR: "Internal Error",
    NO_DATA_AVAILABLE: "No Data Available",
    INVALID_REQUEST: "Invalid Request",
    UNSUPPORTED_VERSION: "Unsupported Protocol Version",
    UNSUPPORTED_PDU_TYPE: "Unsupported PDU Type",
    WITHDRAWAL_OF_UNKNOWN: "Withdrawal of Unknown Record",
    DUPLICATE_ANNOUNCEMENT: "Duplicate Announcement Received",
    UNEXPECTED_VERSION: "Unexpected Protocol Version",
}

# Timer ranges of an End of Data (RFC 8210 6); a value outside is clamped into it and counted.
TIMER_RANGES: dict[str, tuple[int, int]] = {
    "refresh": (1, 86400),
    "retry": (1, 7200),
    "expire": (600, 172800),
}

HEADER = struct.Struct("!BBHI")  # version, type, session id (or error code, or zero), length
MAX_PDU = 1 << 16  # no PDU of versions 0/1 is near this; an Error Report's texts are bounded by it
CONNECT_TIMEOUT = 10.0
ANSWER_TIMEOUT = 10.0  # seconds for the first PDU of an answer (a cache still starting may say nothing)
TRANSFER_TIMEOUT = 60.0  # seconds without a PDU in the middle of a transfer: the cache is stuck
MAX_TEXT = 200


class RtrProtocolError(Exception):
    """The cache sent something RFC 8210 forbids: answered with an Error Report, the connection ends."""

    def __init__(self, code: int, text: str, pdu: bytes = b"", reason: str = "corrupt_pdu") -> None:
        super().__init__(text)
        self.code, self.text, self.pdu, self.reason = code, text, pdu, reason


class CacheError(Exception):
    """The cache sent an Error Report."""

    def __init__(self, code: int, text: str) -> None:
        name = ERROR_NAMES.get(code, f"error code {code}")
        super().__init__(f"{name}{': ' + text if text else ''}")
        self.code = code


@dataclass(slots=True)
class Pdu:
    version: int
    type: int
    session: int  # session id, error code, or zero, by type
    body: bytes
    raw: bytes


# -- encoding ---------------------------------------------------------------------------------
def reset_query(version: int) -> bytes:
    return HEADER.pack(version, RESET_QUERY, 0, 8)


def serial_query(version: int, session: int, serial: int) -> bytes:
    return HEADER.pack(version, SERIAL_QUERY, session, 12) + struct.pack("!I", serial)


def error_report(version: int, code: int, pdu: bytes, text: str) -> bytes:
    message = text.encode("utf-8", "replace")[:MAX_TEXT]
    pdu = pdu[: MAX_PDU // 2]
    body = struct.pack("!I", len(pdu)) + pdu + struct.pack("!I", len(message)) + message
    return HEADER.pack(version, ERROR_REPORT, code, 8 + len(body)) + body


# -- decoding ---------------------------------------------------------------------------------
async def read_pdu(reader: asyncio.StreamReader) -> Pdu:
    """Read one PDU; raise RtrProtocolError for an impossible length, IncompleteReadError at EOF."""
    header = await reader.readexactly(HEADER.size)
    version, kind, session, length = HEADER.unpack(header)
    if length < HEADER.size or length > MAX_PDU:
        raise RtrProtocolError(
            CORRUPT_DATA, f"{_pdu_name(kind)} PDU with length {length}", header, "bad_length"
        )
    body = await reader.readexactly(length - HEADER.size) if length > HEADER.size else b""
    return Pdu(version, kind, session, body, header + body)


def _pdu_name(kind: int) -> str:
    return PDU_NAMES.get(kind, f"type {kind}")


def decode_prefix(pdu: Pdu) -> tuple[bool, Vrp]:
    """Return (announce, VRP) of an IPv4/IPv6 Prefix PDU; raise RtrProtocolError when it is malformed."""
    family, size = (4, 4) if pdu.type == IPV4_PREFIX else (6, 16)
    bits = 32 if family == 4 else 128
    if len(pdu.body) != 8 + size:
        raise RtrProtocolError(
            CORRUPT_DATA, f"{_pdu_name(pdu.type)} PDU of {len(pdu.raw)} bytes", pdu.raw, "bad_length"
        )
    flags, length, max_length = pdu.body[0], pdu.body[1], pdu.body[2]
    network = int.from_bytes(pdu.body[4 : 4 + size], "big")
    (asn,) = struct.unpack_from("!I", pdu.body, 4 + size)
    if not length <= max_length <= bits:
        raise RtrProtocolError(
            CORRUPT_DATA,
            f"prefix length {length}, max length {max_length} (0-{bits}, length <= max)",
            pdu.raw,
            "bad_prefix",
        )
    if network & ((1 << (bits - length)) - 1):
        raise RtrProtocolError(CORRUPT_DATA, f"prefix /{length} with host bits set", pdu.raw, "bad_prefix")
    return bool(flags & 1), Vrp(family, (network << 8) | length, max_length, asn)


def decode_end_of_data(pdu: Pdu) -> tuple[int, dict[str, int] | None]:
    """Return (serial, timers) of an End of Data; timers only in version 1."""
    if pdu.version == 0:
        if len(pdu.body) != 4:
            raise RtrProtocolError(
                CORRUPT_DATA, f"End of Data v0 of {len(pdu.raw)} bytes", pdu.raw, "bad_length"
            )
        return struct.unpack("!I", pdu.body)[0], None
    if len(pdu.body) != 16:
        raise RtrProtocolError(CORRUPT_DATA, f"End of Data v1 of {len(pdu.raw)} bytes", pdu.raw, "bad_length")
    serial, refresh, retry, expire = struct.unpack("!IIII", pdu.body)
    return serial, {"refresh": refresh, "retry": retry, "expire": expire}


def decode_error_report(pdu: Pdu) -> tuple[int, str]:
    """Return (error code, text) of an Error Report (the text printable, bounded)."""
    body = pdu.body
    try:
        (pdu_len,) = struct.unpack_from("!I", body, 0)
        (text_len,) = struct.unpack_from("!I", body, 4 + pdu_len)
        text = body[8 + pdu_len : 8 + pdu_len + text_len].decode("utf-8", "replace")
    except struct.error:
        text = ""
    return pdu.session, "".join(c if c.isprintable() else "?" for c in text[:MAX_TEXT])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed by the cache"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


# -- one cache ----------------------------------------------------------------------------------
@dataclass
class CacheServer:
    """One RTR cache and what the client knows of it."""

    address: str
    host: str
    port: int
    timers: dict[str, int]  # refresh, retry, expire in use: the config's, then the last End of Data's
    version: int = 1
    session_id: int | None = None
    serial: int | None = None
    state: str = "idle"  # idle | connecting | syncing | up | down
    since: float | None = None
    last_error: str = ""
    last_eod: float | None = None
    vrps: int = 0  # the table's size after its last End of Data
    connects: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": self.state,
            "since": self.since,
            "version": self.version,
            "session_id": self.session_id,
            "serial": self.serial,
            "last_end_of_data": self.last_eod,
            "last_error": self.last_error,
            "vrps": self.vrps,
            "connects": self.connects,
            "timers": dict(self.timers),
            "counts": dict(self.counts),
        }


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class RtrSource(Source):
    """The RTR client: keeps the pipeline's RPKI state from the caches of ``rpki.rtr``."""

    type: ClassVar[str] = "rtr"

    def __init__(self, host: Any, params: Any) -> None:
        super().__init__(host, params)
        self.state = host.pipeline.rpki
        self.state.configured = True
        self.servers = [
            CacheServer(
                s.address,
                *_split_address(s.address),
                {"refresh": s.refresh, "retry": s.retry, "expire": s.expire},
            )
            for s in params.rtr
        ]
        self.active: CacheServer | None = None  # the cache the table comes from
        self.counts: Counter[str] = Counter()
        self.started_at: float | None = None
        self._tasks: list[asyncio.Task] = []
        self._recorded: tuple[Any, ...] | None = None
        self._recorded_line: bytes | None = None  # opens every new recording file (Recorder.headers)
        self._unusable = "no End of Data from any RTR cache yet"
        self._protected = SiteModel(host.config).protected_prefixes()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self.started_at = time.time()
        recorder = getattr(self.host, "recorder", None)
        if recorder is not None and hasattr(recorder, "headers"):
            recorder.headers.append(lambda: self._recorded_line)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name="rtr"),
            loop.create_task(self._expiry(), name="rtr-expiry"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks = []

    # -- the client loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 1.0
        while True:
            synced = False
            for server in self.servers:
                synced = await self._connect(server)
                if synced:
                    break  # it served and then failed: start again from the most preferred cache
            if synced:
                backoff = 1.0
                await asyncio.sleep(1.0)  # back to the most preferred cache, after a breath
            else:
                # None answered: back off from 1 s, doubling, up to RFC 8210 6's retry interval
                # (a cache restarting is back within seconds; one that is gone is not hammered).
                retry = self.servers[0].timers["retry"]
                await asyncio.sleep(min(backoff, retry) * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, retry)

    async def _connect(self, server: CacheServer) -> bool:
        """Hold one connection to a cache until it fails; return True if it gave an End of Data."""
        for _attempt in range(2):  # a second time only after a downgrade to version 0
            server.state, server.since = "connecting", time.time()
            server.connects += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(server.host, server.port), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                self._failed(server, f"connect: {_describe(exc)}", "connect_failed")
                return False
            synced = [False]
            try:
                await self._session(server, reader, writer, synced)
            except RtrProtocolError as exc:
                self._failed(server, f"{exc.text} (sent Error Report {ERROR_NAMES[exc.code]})", exc.reason)
                try:
                    writer.write(error_report(server.version, exc.code, exc.pdu, exc.text))
                    await asyncio.wait_for(writer.drain(), 2.0)
                except (OSError, TimeoutError):
                    pass
            except CacheError as exc:
                if exc.code == UNSUPPORTED_VERSION and server.version == 1:
                    server.version = 0  # RFC 8210 7: the cache speaks version 0 only
                    server.counts["downgraded"] += 1
                    log.info("RTR cache %s speaks version 0 only: downgrading", server.address)
                    await _close(writer)
                    continue
                reason = "no_data" if exc.code == NO_DATA_AVAILABLE else "cache_error_report"
                self._failed(server, f"the cache sent an Error Report: {exc}", reason)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                self._failed(server, f"connection lost: {_describe(exc)}", "connection_lost")
            await _close(writer)
            return synced[0]
        return False

    async def _session(
        self,
        server: CacheServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        synced: list[bool],
    ) -> None:
        """Synchronise, then follow the cache (refresh timer, Serial Notify) until the connection fails."""
        serial = server.session_id is not None and self.state.origin == server.address and self.state.usable
        writer.write(
            serial_query(server.version, server.session_id, server.serial)  # type: ignore[arg-type]
            if serial
            else reset_query(server.version)
        )
        await writer.drain()
        server.state = "syncing"
        loop = asyncio.get_running_loop()
        while True:
            await self._transfer(server, reader, writer, serial)
            synced[0] = True
            if server.state != "up":
                server.state, server.since = "up", time.time()
            deadline = loop.time() + server.timers["refresh"]
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pdu = await asyncio.wait_for(read_pdu(reader), remaining)
                except TimeoutError:
                    break  # refresh time: ask what changed
                self._check_version(server, pdu)
                if pdu.type == SERIAL_NOTIFY:
                    server.counts["serial_notify"] += 1
                    break
                if pdu.type == ERROR_REPORT:
                    raise CacheError(*decode_error_report(pdu))
                raise RtrProtocolError(
                    CORRUPT_DATA, f"{_pdu_name(pdu.type)} PDU outside a transfer", pdu.raw, "unexpected_pdu"
                )
            writer.write(serial_query(server.version, server.session_id, server.serial))  # type: ignore[arg-type]
            await writer.drain()
            serial = True

    def _check_version(self, server: CacheServer, pdu: Pdu) -> None:
        if pdu.version == server.version:
            return
        if pdu.version == 0 and server.version == 1 and server.session_id is None:
            server.version = 0  # a version 0 cache answering our version 1 query (RFC 8210 7)
            server.counts["downgraded"] += 1
            log.info("RTR cache %s answers in version 0: downgrading", server.address)
            return
        if pdu.type == ERROR_REPORT:
            return  # read it whatever its version: it says why
        raise RtrProtocolError(
            UNEXPECTED_VERSION,
            f"{_pdu_name(pdu.type)} PDU of version {pdu.version} in a version {server.version} session",
            pdu.raw,
            "unexpected_version",
        )

    async def _transfer(
        self, server: CacheServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, serial: bool
    ) -> None:
        """Read one answer to a query, up to its End of Data, and apply it (or start over on Cache Reset)."""
        try:
            await self._read_answer(server, reader, writer, serial)
        except BaseException:
            # No End of Data for a Serial Query (the cache closed, e.g. it restarted with a new
            # session and drops the old one's queries): the next connection starts with a Reset Query.
            if serial:
                server.session_id = None
            raise

    async def _read_answer(
        self, server: CacheServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, serial: bool
    ) -> None:
        table = self.state.table
        announced: set[Vrp] = set()
        withdrawn: set[Vrp] = set()
        session: int | None = None
        reset = not serial
        while True:
            pdu = await asyncio.wait_for(
                read_pdu(reader), TRANSFER_TIMEOUT if session is not None else ANSWER_TIMEOUT
            )
            self._check_version(server, pdu)
            kind = pdu.type
            if kind in (IPV4_PREFIX, IPV6_PREFIX):
                if session is None:
                    raise RtrProtocolError(
                        CORRUPT_DATA, "Prefix PDU before Cache Response", pdu.raw, "unexpected_pdu"
                    )
                announce, vrp = decode_prefix(pdu)
                if announce:
                    if vrp in announced or (not reset and vrp in table and vrp not in withdrawn):
                        raise RtrProtocolError(
                            DUPLICATE_ANNOUNCEMENT,
                            f"{vrp} announced twice",
                            pdu.raw,
                            "duplicate_announcement",
                        )
                    announced.add(vrp)
                elif vrp in announced:
                    announced.discard(vrp)  # announced, then withdrawn in the same answer
                elif not reset and vrp in table and vrp not in withdrawn:
                    withdrawn.add(vrp)
                else:
                    raise RtrProtocolError(
                        WITHDRAWAL_OF_UNKNOWN,
                        f"withdrawal of unknown {vrp}",
                        pdu.raw,
                        "withdrawal_of_unknown",
                    )
            elif kind == CACHE_RESPONSE:
                if session is not None:
                    raise RtrProtocolError(
                        CORRUPT_DATA, "second Cache Response in a transfer", pdu.raw, "unexpected_pdu"
                    )
                if serial and pdu.session != server.session_id:
                    text = f"session id changed from {server.session_id} to {pdu.session}"
                    server.session_id = None  # the next connection starts over with a Reset Query
                    raise RtrProtocolError(CORRUPT_DATA, text, pdu.raw, "session_changed")
                session = pdu.session
            elif kind == END_OF_DATA:
                if session is None or pdu.session != session:
                    raise RtrProtocolError(
                        CORRUPT_DATA, "End of Data without its Cache Response", pdu.raw, "unexpected_pdu"
                    )
                number, timers = decode_end_of_data(pdu)
                self._end_of_data(server, session, number, timers, announced, withdrawn, reset)
                return
            elif kind == CACHE_RESET:
                if not serial or session is not None:
                    raise RtrProtocolError(
                        CORRUPT_DATA, "Cache Reset not in answer to a Serial Query", pdu.raw
                    )
                server.counts["cache_reset"] += 1
                writer.write(reset_query(server.version))
                await writer.drain()
                serial, reset = False, True
                announced.clear()
                withdrawn.clear()
            elif kind == ERROR_REPORT:
                raise CacheError(*decode_error_report(pdu))
            elif kind in (ROUTER_KEY, ASPA):
                server.counts["ignored_" + _pdu_name(kind).lower().replace(" ", "_")] += 1
            elif kind == SERIAL_NOTIFY:
                server.counts["serial_notify"] += 1  # the answer in progress brings it anyway
            else:
                raise RtrProtocolError(
                    UNSUPPORTED_PDU_TYPE, f"unknown PDU type {kind}", pdu.raw, "unsupported_pdu_type"
                )

    def _end_of_data(
        self,
        server: CacheServer,
        session: int,
        number: int,
        timers: dict[str, int] | None,
        announced: set[Vrp],
        withdrawn: set[Vrp],
        reset: bool,
    ) -> None:
        now = time.time()
        state = self.state
        if reset:
            changed = state.load(announced, now, server.address)
        else:
            changed = state.table.apply(announced, withdrawn)
            state.updated_at, state.origin = now, server.address
        for name, value in (timers or {}).items():
            low, high = TIMER_RANGES[name]
            if not low <= value <= high:
                server.counts["timer_out_of_range"] += 1
                value = min(max(value, low), high)
            server.timers[name] = value
        server.session_id, server.serial, server.last_eod = session, number, now
        server.vrps, server.last_error = len(state.table), ""
        server.counts["end_of_data"] += 1
        was_active, self.active = self.active, server
        if was_active is not server:
            log.info(
                "RPKI: %d VRPs from RTR cache %s (version %d)",
                len(state.table),
                server.address,
                server.version,
            )
        became = state.set_usable(True, now, f"End of Data serial {number} from {server.address}")
        if changed or became:
            self._changed(now)

    def _failed(self, server: CacheServer, what: str, reason: str) -> None:
        first = server.state != "down" or server.last_error != what
        server.state, server.last_error = "down", what
        server.since = time.time()
        server.counts[reason] += 1
        self.counts[reason] += 1
        # `active` stays: its data is used until it expires, and a reconnect to it asks only what
        # changed (a Serial Query; a cache that restarted answers Cache Reset, then a full load).
        if not self.state.usable:  # why it is not usable (never loaded, expired), and the latest failure
            self.state.reason = f"{self._unusable} (last: {server.address}: {what})"
        (log.warning if first else log.debug)("RTR cache %s: %s", server.address, what)

    async def _expiry(self) -> None:
        """Empty the table when no cache gave an End of Data within its expire interval."""
        while True:
            await asyncio.sleep(1.0)
            state = self.state
            if not state.usable or state.updated_at is None:
                continue
            source = next((s for s in self.servers if s.address == state.origin), None)
            expire = source.timers["expire"] if source is not None else TIMER_RANGES["expire"][0]
            now = time.time()
            if now - state.updated_at < expire:
                continue
            state.table.clear()
            reason = f"RPKI data expired: no End of Data for {expire} s (the last from {state.origin})"
            self._unusable = reason
            state.set_usable(False, now, reason)
            log.warning("%s: origin validation is off until a cache answers", reason)
            self._changed(now)

    def _changed(self, now: float) -> None:
        """The table or its usability changed: record what decides the protected prefixes, re-judge."""
        state = self.state
        if getattr(self.host, "recorder", None) is not None:
            relevant = state.relevant(self._protected)
            signature = (state.usable, tuple(relevant))
            if signature != self._recorded:
                self._recorded = signature
                line = rpki_line(now, state.usable, state.reason, state.origin, len(state.table), relevant)
                self._recorded_line = line
                self.host.record(line)
        self.host.pipeline.rpki_changed(now)

    # -- views ---------------------------------------------------------------------------------------
    def health(self) -> list[str]:
        state = self.state
        if state.usable or self.started_at is None:
            return []
        since = state.since if state.since is not None else self.started_at
        if time.time() - since < 60:
            return []
        return [f"RPKI: no usable RTR data for {time.time() - since:.0f} s: {state.reason}"]

    def status(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "usable": self.state.usable,
            "reason": self.state.reason,
            "active": self.active.address if self.active is not None else None,
            "vrps": len(self.state.table),
            "servers": [server.to_dict() for server in self.servers],
            "counts": dict(self.counts),
        }


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (OSError, TimeoutError):
        pass
