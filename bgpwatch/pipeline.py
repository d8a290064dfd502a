"""The hot path: one line in, events out, RIB and sessions updated, detectors fed.

The session table (`bgpwatch.sessions`, the one owner of session state) belongs to the pipeline;
the detection engine, when there is one, applies each event to it after catching its clock up to
the event, so that no timer due before the event sees a session state from its future.

The daemon (live) and `bgpwatch replay` (recorded) drive the same `Pipeline`; only the
clock differs: live time comes from ExaBGP's "time" field and a wall-clock tick, replay
time only from the recording.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from bgpwatch.events import (
    DOWN,
    Announce,
    CollectorShutdown,
    CollectorStatus,
    Event,
    FeedGap,
    SessionState,
    Withdraw,
)
from bgpwatch.ingest.control import RELAY_TAG, parse_control
from bgpwatch.ingest.exabgp_json import ExaBGPJsonParser, IngestError
from bgpwatch.ingest.reasons import COLLECTOR
from bgpwatch.rib import AttributePool, Rib, RouteChanges
from bgpwatch.sessions import IDLE, SessionTable

if TYPE_CHECKING:
    from bgpwatch.config import Config

log = logging.getLogger("bgpwatch.ingest")

SAMPLE_EVERY = 60.0  # log at most one rejected line per reason per minute
_ROUTE_EVENTS = frozenset({Announce, Withdraw})


class Consumer(Protocol):
    """What the detection layer implements to receive the stream."""

    def process(self, event: Event, changes: list[RouteChanges]) -> None: ...

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

    # -- input ------------------------------------------------------------------------
    def feed_line(self, line: bytes, source: str = "exabgp", worker: int | None = None) -> None:
        """Handle one line from ExaBGP (or a relay control line); never raises for bad input."""
        self.lines += 1
        if line.startswith(RELAY_TAG):
            self._relay_control(line)
            return
        try:
            events = self.parser.parse(line)
        except IngestError as exc:
            self.reject(exc.reason, exc.detail, source)
            return
        for event in events:
            if type(event) in _ROUTE_EVENTS:
                # feed_event for an UPDATE, inlined: this runs for every line of a table load.
                self.events += 1
                self.last_event_at = event.at
                changes = self.rib.apply(event)
                if self.consumer is not None:
                    self.consumer.process(event, changes)  # it applies the event to self.sessions
                else:
                    self.sessions.apply(event)
            else:
                self.feed_event(event, worker)

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
            if isinstance(event, FeedGap):
                self.lost_lines += event.lost
                log.error(
                    "the relay dropped %d lines while bgpwatch could not keep up or was down", event.lost
                )
            self.feed_event(event)

    def feed_event(self, event: Event, worker: int | None = None) -> None:
        """Apply one normalised event (`worker`: the ExaBGP worker it came through, if known)."""
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
                self.feed_event(down)

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
        if self.consumer is not None:
            self.consumer.tick(now)

    def status(self, now: float) -> dict[str, Any]:
        """Return the pipeline's counters for the status API."""
        return {
            "lines": self.lines,
            "events": self.events,
            "rejected": dict(self.errors),
            "lost_lines": self.lost_lines,
            "routes": sum(len(r) for r in self.rib.peers.values()),
            "attribute_sets": len(self.pool),
            "last_event_at": self.last_event_at,
        }
