"""The hot path: one line in, events out, RIB and sessions updated, detectors fed.

The session table (`bgpwatch.sessions`, the one owner of session state) belongs to the pipeline;
the detection engine, when there is one, applies each event to it after catching its clock up to
the event, so that no timer due before the event sees a session state from its future.

The daemon (live) and `bgpwatch replay` (recorded) drive the same `Pipeline`; only the
clock differs: live time comes from ExaBGP's "time" field and a wall-clock tick, replay
time only from the recording.

Edge validation (`bgpwatch.ingest.exabgp_json.StreamClock`): a line or event whose time is more
than ``collector.max_clock_skew`` seconds ahead of the receiving clock (the wall clock for
`feed_line`, the relay's input; the ticks and the stream for `feed_event`) or behind the latest
accepted time is rejected as ``time_out_of_range`` and moves no clock.  `feed_event` (replays)
holds an event far ahead of the stream instead of dropping it at once: when the next events, at
two more times, are as far ahead (a gap in a recording, the next file), the stream jumped and the
held events are applied; when one is back on time, the held ones were out of range (they are
counted rejected while held, so the counts add up at any moment).  Neither `feed_line` nor
`feed_event` raises: an internal error is counted (``internal_error``) and logged with its
traceback once per minute.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from bgpwatch.events import (
    DOWN,
    LOC_RIB,
    Announce,
    CollectorShutdown,
    CollectorStatus,
    EndOfRib,
    Event,
    FeedGap,
    MonitoredSession,
    MonitorState,
    SessionState,
    Withdraw,
)
from bgpwatch.ingest.bmp_lines import BMP_TAG, BmpLine
from bgpwatch.ingest.bmp_lines import parse_line as parse_bmp_line
from bgpwatch.ingest.control import RELAY_TAG, parse_control
from bgpwatch.ingest.exabgp_json import DEFAULT_MAX_CLOCK_SKEW, ExaBGPJsonParser, IngestError, StreamClock
from bgpwatch.ingest.reasons import COLLECTOR
from bgpwatch.ingest.ris_lines import FEED_UP, RIS_TAG, RisLine
from bgpwatch.ingest.ris_lines import parse_line as parse_ris_line
from bgpwatch.ingest.rpki_lines import RPKI_TAG, RpkiLine
from bgpwatch.ingest.rpki_lines import parse_line as parse_rpki_line
from bgpwatch.monitors import STATION_STOPPING
from bgpwatch.outside import OutsideView
from bgpwatch.rib import AttributePool, Rib, RouteChanges
from bgpwatch.rpki.state import RpkiState
from bgpwatch.sessions import IDLE, SessionTable

if TYPE_CHECKING:
    from bgpwatch.config import Config

log = logging.getLogger("bgpwatch.ingest")

SAMPLE_EVERY = 60.0  # log at most one rejected line per reason per minute
_ROUTE_EVENTS = frozenset({Announce, Withdraw})
_BMP_ROUTE_EVENTS = frozenset({Announce, Withdraw, EndOfRib})
OUT_OF_RANGE = "time_out_of_range"
HOLD_MAX = 4096  # events held far ahead of a replay's stream before the jump counts as confirmed
# Lines (distinct times) far ahead, and within the skew of each other, that make a jump: one stray
# line, or two, never move a replay's clock; a real gap loses nothing (the held lines are applied).
JUMP_LINES = 3
MAX_LOST_TOTAL = 1 << 62  # the dropped-lines counter stays a 64-bit integer (the store's)


class Consumer(Protocol):
    """What the detection layer implements to receive the stream."""

    def process(self, event: Event, changes: list[RouteChanges]) -> None: ...

    def process_outside(self, event: Event, changes: list[RouteChanges], now: float) -> None: ...

    def outside_changed(self, now: float) -> None: ...

    def rpki_changed(self, now: float) -> None: ...

    def tick(self, now: float) -> None: ...


class Pipeline:
    """Parse, apply to the RIB, track sessions, hand every event and its changes to the consumer."""

    def __init__(self, config: Config, consumer: Consumer | None = None) -> None:
        self.config = config
        self.pool = AttributePool()
        self.rib = Rib(self.pool)
        self.parser = ExaBGPJsonParser(self.pool)
        self.sessions = SessionTable(config)
        self.consumer = consumer
        self.errors: Counter[str] = Counter()
        self.lines = 0
        self.events = 0
        self.lost_lines = 0
        self.last_event_at: float | None = None
        self._last_sample: dict[str, float] = {}
        self.worker_peers: dict[int, set[str]] = {}  # ExaBGP worker -> peer addresses it holds
        collector = getattr(config, "collector", None)
        self.clock = StreamClock(getattr(collector, "max_clock_skew", DEFAULT_MAX_CLOCK_SKEW))
        self.applied = 0  # lines accepted (events applied, or counted as ignored by the parser)
        self._held: list[tuple[Event, int | None]] = []  # see feed_event
        self._held_lines = 0
        # BMP (bgpwatch.ingest.bmp): routers' own views, in a RIB of their own (view keys, not peers).
        self.bmp_rib = Rib(self.pool)
        self.bmp_messages = 0
        self.bmp_superseded = 0  # closes of a router's old connection after it reconnected
        self._bmp: Any = None
        self._bmp_addresses: dict[str, str] = {}  # connection -> router address (recordings)
        self._bmp_current: dict[str, str] = {}  # router name -> the connection it is heard on
        # The outside view (RIS Live): public peers' routes, in a RIB of their own (bgpwatch.outside).
        self.outside = OutsideView(config, self.pool)
        # RPKI (bgpwatch.rpki.state): the VRP table the detectors validate against; live, the RTR
        # client writes it, in a replay the recorded bgpwatch-rpki lines do.
        self.rpki = RpkiState(configured=bool(getattr(getattr(config, "rpki", None), "rtr", None)))

    # -- input ------------------------------------------------------------------------
    def feed_line(self, line: bytes, source: str = "exabgp", worker: int | None = None) -> None:
        """Handle one line from ExaBGP (or a relay control line); never raises for bad input."""
        self.lines += 1
        try:
            if line.startswith(RELAY_TAG):
                self._relay_control(line)
                return
            if line.startswith(BMP_TAG):
                self._bmp_record(line)
                return
            if line.startswith(RIS_TAG):
                self._ris_record(line)
                return
            if line.startswith(RPKI_TAG):
                self._rpki_record(line)
                return
            try:
                events = self.parser.parse(line)
            except IngestError as exc:
                self.reject(exc.reason, exc.detail, source)
                return
            if events:
                # One time per line (the parser stamps every event of a line alike), judged on arrival.
                at = events[0].at
                verdict = self.clock.judge(at, time.time())
                if verdict:
                    self.reject(OUT_OF_RANGE, self.clock.describe(at, verdict, time.time()), source)
                    return
            self.applied += 1
            for event in events:
                if type(event) in _ROUTE_EVENTS:
                    # _apply for an UPDATE, inlined: this runs for every line of a table load.
                    self.events += 1
                    self.last_event_at = event.at
                    changes = self.rib.apply(event)
                    if self.consumer is not None:
                        self.consumer.process(event, changes)  # it applies the event to self.sessions
                    else:
                        self.sessions.apply(event)
                else:
                    self._apply(event, worker)
        except Exception:  # a bug, never the input's fault: the line is lost, counted, shown
            self._internal_error(source)

    # -- BMP ----------------------------------------------------------------------------
    @property
    def bmp_parser(self) -> Any:
        """Return the BMP decoder (created at first use: ExaBGP-only deployments never load it)."""
        if self._bmp is None:
            from bgpwatch.ingest.bmp import BmpParser

            bmp = getattr(self.config, "bmp", None)
            limit = getattr(bmp, "max_message_bytes", None)
            kwargs = {"max_message_bytes": limit} if limit else {}
            self._bmp = BmpParser(self.pool, resolve=self.sessions.monitors.resolve, **kwargs)
        return self._bmp

    def bmp_connected(self, conn: str, address: str, at: float) -> None:
        """A router opened a BMP connection (nothing is known of it until it speaks)."""
        try:
            self._bmp_addresses[conn] = address
            self.bmp_parser.connect(conn, address, at)
        except Exception:
            self._internal_error(f"bmp {address}")

    def feed_bmp(self, conn: str, message: bytes, at: float) -> bool:
        """Apply one whole BMP message; return False when it was rejected (never raises)."""
        self.bmp_messages += 1
        source = f"bmp {self._bmp_addresses.get(conn, conn)}"
        try:
            events = self.bmp_parser.parse(conn, message, at)
        except IngestError as exc:
            self.reject(exc.reason, exc.detail, source)
            return False
        except Exception:
            self._internal_error(source)
            return False
        try:
            self._bmp_events(events, conn)
        except Exception:
            self._internal_error(source)
        return True

    def bmp_disconnected(self, conn: str, at: float, reason: str) -> None:
        """A router's BMP connection closed: it is no longer heard, its views are flushed."""
        try:
            self._bmp_events(self.bmp_parser.disconnect(conn, at, reason), conn)
        except Exception:
            self._internal_error(f"bmp {self._bmp_addresses.get(conn, conn)}")
        self._bmp_addresses.pop(conn, None)

    def _bmp_events(self, events: list[Event], conn: str) -> None:
        bmp_rib = self.bmp_rib
        current = self._bmp_current
        for event in events:
            kind = type(event)
            if kind in _BMP_ROUTE_EVENTS:
                # A router's view: kept for `prefixes --router`, not a vantage point of bgpwatch's own.
                bmp_rib.apply(event)
                continue
            if kind is MonitorState:
                # A router that reconnects before its old connection is found dead (a quick power
                # cycle: the old one closes on TCP keepalive later) is heard on the new one.
                was = current.get(event.router)
                if not event.up and was is not None and was != conn:
                    self.bmp_superseded += 1
                    continue  # the old connection's close: the router is heard on a newer one
                if event.up:
                    if was is not None and was != conn:
                        # What the old connection said is stale: it starts over on this one.
                        self._flush_views(f"{event.router}|", event.at, keep_loc=False)
                        self.feed_event(
                            MonitorState(
                                event.at, event.router, False, reason="reconnected (new BMP connection)"
                            )
                        )
                    current[event.router] = conn
                else:
                    current.pop(event.router, None)
            if kind is MonitoredSession and event.state == DOWN:
                self._flush_views(f"{event.router}|{event.peer}|", event.at, keep_loc=True)
            elif kind is MonitorState and not event.up:
                self._flush_views(f"{event.router}|", event.at, keep_loc=False)
            self.feed_event(event)

    def _flush_views(self, prefix: str, at: float, keep_loc: bool) -> None:
        for key in [k for k in self.bmp_rib.peers if k.startswith(prefix)]:
            if keep_loc and key.endswith("|" + LOC_RIB):
                continue
            self.bmp_rib.flush(key, at)
            del self.bmp_rib.peers[key]

    def _bmp_record(self, line: bytes) -> None:
        """Play back one recorded BMP line (see `bgpwatch.ingest.bmp_lines`)."""
        try:
            record = parse_bmp_line(line)
        except IngestError as exc:
            self.reject(exc.reason, exc.detail, "recording")
            return
        self.applied += 1
        self._bmp_replay(record)

    def _bmp_replay(self, record: BmpLine) -> None:
        if record.message is not None:
            self.feed_bmp(record.conn, record.message, record.at)
        elif record.closed is not None:
            if record.closed == STATION_STOPPING:
                return  # bgpwatch stopped (the end of a recording): the router did not go anywhere
            self.bmp_disconnected(record.conn, record.at, record.closed)
        else:
            self.bmp_connected(record.conn, record.address, record.at)

    # -- RIS Live (the outside view) ----------------------------------------------------------
    def feed_outside(self, frame: bytes, at: float) -> bool:
        """Apply one RIS Live frame received at ``at``; return False when it was rejected (never raises)."""
        outside = self.outside
        try:
            events = outside.parse(frame, at)
        except IngestError as exc:
            self.reject(exc.reason, exc.detail, "rislive")
            return False
        except Exception:
            self._internal_error("rislive")
            return False
        try:
            consumer = self.consumer
            for event in events:
                changes = outside.apply(event)
                if consumer is not None:
                    consumer.process_outside(event, changes, at)
        except Exception:
            self._internal_error("rislive")
        return True

    def outside_feed(self, up: bool, at: float, reason: str) -> None:
        """The RIS Live feed came up (subscribed) or went down (closed, silent, refused)."""
        try:
            if self.outside.feed_changed(up, at, reason) and self.consumer is not None:
                self.consumer.outside_changed(at)
        except Exception:
            self._internal_error("rislive")

    def _ris_record(self, line: bytes) -> None:
        """Play back one recorded RIS Live line (see `bgpwatch.ingest.ris_lines`)."""
        try:
            record = parse_ris_line(line)
        except IngestError as exc:
            self.reject(exc.reason, exc.detail, "recording")
            return
        self.applied += 1
        self._ris_replay(record)

    def _ris_replay(self, record: RisLine) -> None:
        if record.frame is not None:
            self.feed_outside(record.frame, record.at)
        else:
            self.outside_feed(record.feed == FEED_UP, record.at, record.reason)

    # -- RPKI -------------------------------------------------------------------------------
    def rpki_changed(self, at: float) -> None:
        """The VRP table or its usability changed (an RTR End of Data, an expiry): re-judge."""
        try:
            if self.consumer is not None:
                self.consumer.rpki_changed(at)
        except Exception:
            self._internal_error("rtr")

    def _rpki_record(self, line: bytes) -> None:
        """Play back one recorded RPKI line (see `bgpwatch.ingest.rpki_lines`)."""
        try:
            record = parse_rpki_line(line)
        except IngestError as exc:
            self.reject(exc.reason, exc.detail, "recording")
            return
        self.applied += 1
        self._rpki_replay(record)

    def _rpki_replay(self, record: RpkiLine) -> None:
        state = self.rpki
        state.configured = True
        try:
            state.load(record.vrps, record.at, record.origin or "recording")
            state.set_usable(record.usable, record.at, record.reason)
        except ValueError as exc:  # an impossible VRP slipped through: the record is bad, not bgpwatch
            self.reject("bad_rpki_record", str(exc), "recording")
            return
        self.rpki_changed(record.at)

    def _internal_error(self, source: str) -> None:
        """Count an internal error on an input and log it with its traceback (once per minute)."""
        self.errors["internal_error"] += 1
        now = time.monotonic()
        if now - self._last_sample.get("internal_error", -SAMPLE_EVERY) >= SAMPLE_EVERY:
            self._last_sample["internal_error"] = now
            log.exception(
                "internal error on input from %s; skipped [%d so far]", source, self.errors["internal_error"]
            )

    def reject(self, reason: str, detail: str, source: str) -> None:
        """Count a rejected input and log a sample of it."""
        self.errors[reason] += 1
        now = time.monotonic()
        if now - self._last_sample.get(reason, -SAMPLE_EVERY) >= SAMPLE_EVERY:
            self._last_sample[reason] = now
            log.warning(
                "rejected input from %s (%s): %s [%d so far]", source, reason, detail, self.errors[reason]
            )

    def _relay_control(self, line: bytes) -> None:
        try:
            events = parse_control(line)
        except IngestError as exc:
            self.reject(exc.reason, exc.detail, "relay")
            return
        for event in events:
            verdict = self.clock.judge(event.at, time.time())
            if verdict:
                self.reject(OUT_OF_RANGE, self.clock.describe(event.at, verdict, time.time()), "relay")
                return
        self.applied += 1
        for event in events:
            if isinstance(event, FeedGap):
                self.lost_lines = min(MAX_LOST_TOTAL, self.lost_lines + event.lost)
                log.error(
                    "the relay dropped %d lines while bgpwatch could not keep up or was down", event.lost
                )
            self._apply(event)

    def feed_event(self, event: Event, worker: int | None = None) -> None:
        """Apply one normalised event (`worker`: the ExaBGP worker it came through) unless its time is out of range."""
        if type(event) is BmpLine:
            self._bmp_replay(event)  # a recorded BMP message: decoded here, where the BMP state is
            return
        if type(event) is RisLine:
            self._ris_replay(event)  # a recorded RIS Live frame: the outside view's own state
            return
        if type(event) is RpkiLine:
            self._rpki_replay(event)  # a recorded RPKI state: the table the detectors judge against
            return
        try:
            verdict = self.clock.judge(event.at)
            held = self._held
            if verdict == StreamClock.OK:
                if held:
                    held.clear()  # they were out of range: counted so already
                self._apply(event, worker)
            elif verdict == StreamClock.AHEAD:
                self._hold(event, worker)
            else:
                self.reject(OUT_OF_RANGE, self.clock.describe(event.at, verdict), "stream")
        except Exception:
            self._internal_error("stream")

    def _hold(self, event: Event, worker: int | None) -> None:
        """Keep an event far ahead of the stream until further lines tell a jump from a stray time."""
        held = self._held
        first = held[0][0].at if held else None
        if first is not None and abs(event.at - first) > self.clock.skew:
            held.clear()  # another stray time: the earlier held events stay rejected
            first = None
        if not held or event.at != held[-1][0].at:
            self._held_lines = 1 if not held else self._held_lines + 1
        held.append((event, worker))
        self.reject(OUT_OF_RANGE, self.clock.describe(event.at, StreamClock.AHEAD), "stream")
        if self._held_lines < JUMP_LINES and len(held) < HOLD_MAX:
            return  # one line's events share one time: only further lines confirm
        # Confirmed: the stream jumped (a gap in the recording).  Un-count and apply what was held.
        first = held[0][0].at
        log.info(
            "stream time jumped %.0f s ahead (a gap in the input); held events applied",
            first - (self.clock.latest or first),
        )
        self.errors[OUT_OF_RANGE] -= len(held)
        if not self.errors[OUT_OF_RANGE]:
            del self.errors[OUT_OF_RANGE]
        self.clock.jump(first)
        events = list(held)
        held.clear()
        for held_event, held_worker in events:
            self.clock.judge(held_event.at)
            self._apply(held_event, held_worker)

    def _apply(self, event: Event, worker: int | None = None) -> None:
        """Apply one event whose time was accepted."""
        self.events += 1
        self.last_event_at = event.at
        changes = self.rib.apply(event)
        if self.consumer is not None:
            self.consumer.process(event, changes)  # it applies the event to self.sessions
        else:
            self.sessions.apply(event)
        if isinstance(event, CollectorShutdown | CollectorStatus):
            # ExaBGP is gone and will not say that its sessions went with it: say it for it,
            # after the collector event itself, so detectors can blame the collector, not the sites.
            for down in self._sessions_lost_with_collector(event, worker):
                self._apply(down)

    def _sessions_lost_with_collector(
        self, event: CollectorShutdown | CollectorStatus, worker: int | None
    ) -> list[SessionState]:
        if isinstance(event, CollectorStatus):
            if event.up:
                return []
            worker = event.worker
        peers = self.worker_peers.get(worker) if worker is not None else None
        reason = f"ExaBGP stopped: {event.reason}" if event.reason else "ExaBGP stopped"
        return [
            SessionState(event.at, session.address, DOWN, reason, cause=COLLECTOR)
            for session in self.sessions.by_address.values()
            if (peers is None or session.address in peers) and session.state not in (DOWN, IDLE)
        ]

    def tick(self, now: float) -> None:
        """Advance the clock for time-based detectors."""
        self.clock.advance(now)
        if self.consumer is not None:
            self.consumer.tick(now)

    def status(self, now: float) -> dict[str, Any]:
        """Return the pipeline's counters for the status API."""
        return {
            "lines": self.lines,
            "applied": self.applied,
            "events": self.events,
            "rejected": dict(self.errors),
            "lost_lines": self.lost_lines,
            "routes": sum(len(r) for r in self.rib.peers.values()),
            "attribute_sets": len(self.pool),
            "last_event_at": self.last_event_at,
        }
