"""collector_degraded: the fault is on bgpwatch's side, so it must not be reported as sites down.

Collector-side evidence:
- `CollectorShutdown` (ExaBGP printed its shutdown line) or `CollectorStatus(up=False)` (the
  supervisor saw a worker die);
- a session going down with the typed cause ``collector`` (`bgpwatch.sessions.DownCause`: ExaBGP
  was stopped or lost its helper process, or the pipeline's synthesised downs when ExaBGP died);
- every established session going down within ``burst_window`` seconds (at least two): sites
  do not all die within a second, the collector's own link or host does;
- `FeedGap`: lines lost between ExaBGP and bgpwatch, so the RIB may be wrong for a while.

Sessions lost that way are *collector-lost*: no session_down for them, and the topology holds
site states while no vantage point is left.  The fault ends when the collector is back and every
collector-lost session is up and converged again; sessions still missing ``recovery_bound``
seconds after the collector came back are handed over to session_down as ordinary downs.

In external mode the daemon reports a relay that disconnects (its goodbye line, if any, says why)
or stops sending (no heartbeat for a few seconds: stopped, wedged) as ``CollectorStatus(up=False)``
of its worker, and its return as ``CollectorStatus(up=True)``: the same path as ExaBGP dying.

``store_degraded`` (same detector, its own kind, warning): the alert store cannot write (disk
full, I/O error).  The daemon says so through `set_store_fault`; alerts still reach the sinks and
are held in memory until the store takes them again, which resolves it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.events import CollectorShutdown, CollectorStatus, FeedGap
from bgpwatch.sessions import CHANGE_DOWN, CHANGE_UP, DownCause, SessionChange

if TYPE_CHECKING:
    from bgpwatch.events import Event
    from bgpwatch.rib import RouteChanges


@register
class CollectorDegradedDetector(Detector):
    """Tell collector-side faults apart from network faults."""

    name = "collector_degraded"
    kind = "collector_degraded"
    order = 0
    defaults: ClassVar[dict[str, Any]] = {"for": 0.0}
    params: ClassVar[dict[str, Param]] = {
        "burst_window": Param(
            float, 1.0, "all sessions down within this many seconds = collector fault", 0, 60
        ),
        "recovery_bound": Param(
            float, 60.0, "seconds after the collector is back before missing sessions count as down", 0, 3600
        ),
        "feed_gap_hold": Param(float, 60.0, "seconds a feed gap keeps the collector degraded", 0, 86400),
    }

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        self.collector_down = False
        self.fault_since: float | None = None
        self.back_since: float | None = None
        self.reasons: list[str] = []
        self.gap_until: float | None = None
        self.lost_lines = 0
        self.store_reason: str | None = None
        self.store_since: float | None = None
        self._store_alerted = False

    def set_store_fault(self, reason: str | None, since: float | None = None) -> None:
        """Say that the alert store cannot write (why, since when) or, with None, that it can again."""
        self.store_reason = reason
        self.store_since = since if reason is not None else None

    def _evaluate_store(self, now: float) -> None:
        if self.store_reason is None:
            if self._store_alerted:
                self._store_alerted = False
                self.ctx.book.sync("store_degraded", (), now)
            return
        self._store_alerted = True
        summary = (
            f"alert store cannot write: {self.store_reason}; alerts still reach the sinks and are held in"
            " memory until it can"
        )
        finding = self.finding(
            {}, summary, "store", {"error": self.store_reason}, since=self.store_since, severity="warning",
            kind="store_degraded",
        )  # fmt: skip
        self.ctx.book.sync("store_degraded", [finding], now)

    def _fault(self, now: float, reason: str) -> None:
        if self.fault_since is None:
            self.fault_since = now
            self.reasons = []
        if reason not in self.reasons:
            self.reasons.append(reason)
        self.reasons = self.reasons[-5:]

    def on_event(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        if isinstance(event, CollectorShutdown):
            self.collector_down, self.back_since = True, None
            self._fault(now, f"ExaBGP shut down ({event.reason})")
        elif isinstance(event, CollectorStatus):
            if not event.up:
                self.collector_down, self.back_since = True, None
                self._fault(now, f"ExaBGP worker {event.worker} stopped: {event.reason or 'no reason given'}")
            elif self.collector_down:
                self.collector_down, self.back_since = False, now
        elif isinstance(event, FeedGap):
            self.lost_lines += event.lost
            self.gap_until = now + self.p["feed_gap_hold"]
            self._fault(now, f"{event.lost} lines lost ({event.source})")

    def on_session(self, change: SessionChange, now: float) -> None:
        session = change.session
        if not session.configured:
            return
        sessions = self.ctx.sessions
        if change.kind == CHANGE_UP:
            if self.collector_down or (self.fault_since is not None and self.back_since is None):
                self.collector_down, self.back_since = False, now
            return
        if change.kind != CHANGE_DOWN:
            return
        if session.cause == DownCause.COLLECTOR or (self.collector_down and self.back_since is None):
            sessions.mark_collector_lost(session.address, now)
            self._fault(now, f"sessions closed by the collector ({session.reason})")
            return
        # Every established session down within the burst window: the collector's side broke.
        window = self.p["burst_window"]
        burst = [session]
        for other in sessions:
            if other is session or not other.ever_up:
                continue
            if other.up or other.since is None or now - other.since > window:
                return
            burst.append(other)
        if len(burst) < 2:
            return
        for other in burst:
            sessions.mark_collector_lost(other.address, other.since if other is not session else now)
        self._fault(now, f"all {len(burst)} sessions went down within {window:g} s")

    def evaluate(self, now: float) -> None:
        if self.store_reason is not None or self._store_alerted:
            self._evaluate_store(now)
        sessions = self.ctx.sessions
        vps = self.ctx.topology.vps
        for address in [a for a in sessions.collector_lost() if vps[a].active]:
            sessions.forget_collector_lost(address)
        lost = sessions.collector_lost()
        if (
            lost
            and self.back_since is not None
            and not self.collector_down
            and now - self.back_since >= self.p["recovery_bound"]
        ):
            sessions.forget_collector_lost()  # still missing long after the collector came back: ordinary downs
            lost = {}
        gap = self.gap_until is not None and now < self.gap_until
        if not gap:
            self.gap_until = None
        if not (self.collector_down or lost or gap):
            self.fault_since = None
            self.sync((), now)
            return
        if self.fault_since is None:
            self.fault_since = now
        names = sorted(vps[a].info.name for a in lost)
        summary = "collector degraded: " + "; ".join(self.reasons or ["sessions lost"])
        if names:
            summary += f"; sessions lost on bgpwatch's side (not site failures): {', '.join(names)}"
        annotations = {
            "reasons": list(self.reasons),
            "sessions_lost": names,
            "collector_down": self.collector_down,
            "lost_lines": self.lost_lines,
        }
        self.sync([self.finding({}, summary, "collector", annotations, since=self.fault_since)], now)
