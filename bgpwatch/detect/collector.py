"""collector_degraded: the fault is on bgpwatch's side, so it must not be reported as sites down.

Collector-side evidence:
- `CollectorShutdown` (ExaBGP printed its shutdown line) or `CollectorStatus(up=False)` (the
  supervisor saw a worker die);
- a session going down with a local reason: "stop, message [shutting down]" (ExaBGP
  SIGTERM), "collector: ..." (the pipeline's synthesised downs when ExaBGP died), "lost the
  helper process";
- every established session going down within ``burst_window`` seconds (at least two): sites
  do not all die within a second, the collector's own link or host does;
- `FeedGap`: lines lost between ExaBGP and bgpwatch, so the RIB may be wrong for a while.

Sessions lost that way are *collector-lost*: no session_down for them, and the topology holds
site states while no vantage point is left.  The fault ends when the collector is back and every
collector-lost session is up and converged again; sessions still missing ``recovery_bound``
seconds after the collector came back are handed over to session_down as ordinary downs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.events import DOWN, UP, CollectorShutdown, CollectorStatus, FeedGap, SessionState

if TYPE_CHECKING:
    from bgpwatch.events import Event
    from bgpwatch.rib import RouteChanges

LOCAL_REASONS = ("stop", "shutting down", "collector:", "lost the helper process")


def is_local_reason(reason: str) -> bool:
    """Tell whether a session-down reason says the collector itself closed the session."""
    text = reason.lower()
    return any(text.startswith(r) if r in ("stop", "collector:") else r in text for r in LOCAL_REASONS)


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

    def __init__(self, engine: Any, params: Any = None) -> None:
        super().__init__(engine, params)
        self.collector_down = False
        self.fault_since: float | None = None
        self.back_since: float | None = None
        self.reasons: list[str] = []
        self.gap_until: float | None = None
        self.lost_lines = 0

    def _fault(self, now: float, reason: str) -> None:
        if self.fault_since is None:
            self.fault_since = now
            self.reasons = []
        if reason not in self.reasons:
            self.reasons.append(reason)
        self.reasons = self.reasons[-5:]

    def on_event(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        lost = self.engine.collector_lost
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
        elif isinstance(event, SessionState):
            self._session(event, now, lost)

    def _session(self, event: SessionState, now: float, lost: dict[str, float]) -> None:
        vps = self.engine.topology.vps
        vp = vps.get(event.peer)
        if vp is None:
            return
        if event.state == UP:
            if self.collector_down or (self.fault_since is not None and self.back_since is None):
                self.collector_down, self.back_since = False, now
            return
        if event.state != DOWN or vp.state != UP:
            return
        if is_local_reason(event.reason) or (self.collector_down and self.back_since is None):
            lost[event.peer] = now
            self._fault(now, f"sessions closed by the collector ({event.reason})")
            return
        # Every established session down within the burst window: the collector's side broke.
        window = self.p["burst_window"]
        burst = [event.peer]
        for address, other in vps.items():
            if address == event.peer or not other.ever_up:
                continue
            if other.state == UP or other.since is None or now - other.since > window:
                return
            burst.append(address)
        if len(burst) < 2:
            return
        for address in burst:
            lost[address] = vps[address].since if address != event.peer else now
        self._fault(now, f"all {len(burst)} sessions went down within {window:g} s")

    def evaluate(self, now: float) -> None:
        lost = self.engine.collector_lost
        vps = self.engine.topology.vps
        for address in [a for a in lost if vps[a].active]:
            del lost[address]
        if (
            lost
            and self.back_since is not None
            and not self.collector_down
            and now - self.back_since >= self.p["recovery_bound"]
        ):
            lost.clear()  # still missing long after the collector came back: ordinary downs now
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
