"""session_down and not_converged: what happened to bgpwatch's own sessions (its vantage points).

session_down: an established session is down.  If the other sites still see the site's
prefixes this is a lost vantage point, not a site down (the summary says so); when the site
is down the alert joins the site_down incident.  N downs within a window mark it flapping
(annotation, summary).  A configured session never established by the end of the start-up
grace is reported too.  Sessions lost on the collector's side never produce it.

not_converged: a session is up but its End-of-RIB (for every family the sites use) has not
come within ``timeout`` seconds: its table may be incomplete and its view is used anyway.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.events import DOWN, UP, SessionState
from bgpwatch.topology import LIVE

if TYPE_CHECKING:
    from bgpwatch.events import Event
    from bgpwatch.rib import RouteChanges


@register
class SessionDownDetector(Detector):
    """An established BGP session to a vantage point is down."""

    name = "session_down"
    kind = "session_down"
    order = 10
    params: ClassVar[dict[str, Param]] = {
        "flap_window": Param(float, 300.0, "seconds over which downs are counted", 1, 86400),
        "flap_count": Param(int, 3, "downs within flap_window that make a session flapping", 2, 1000),
    }

    def __init__(self, engine: Any, params: Any = None) -> None:
        super().__init__(engine, params)
        self.downs: dict[str, deque[float]] = {}

    def on_event(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        if not isinstance(event, SessionState) or event.state != DOWN:
            return
        vp = self.engine.topology.vps.get(event.peer)
        if vp is not None and vp.state == UP and event.peer not in self.engine.collector_lost:
            self.downs.setdefault(event.peer, deque(maxlen=1000)).append(now)

    def flaps(self, address: str, now: float) -> int:
        """Return the downs of a session within the flap window."""
        window = self.p["flap_window"]
        return sum(1 for at in self.downs.get(address, ()) if now - at <= window)

    def evaluate(self, now: float) -> None:
        topology = self.engine.topology
        lost = self.engine.collector_lost
        findings = []
        for address, vp in topology.vps.items():
            if vp.state == UP or address in lost:
                continue
            info = vp.info
            if vp.ever_up:
                since = vp.since
                reason = vp.reason or "down"
            elif topology.grace_over and topology.started_at is not None:
                since = topology.started_at + topology.startup_grace
                reason = f"never established since bgpwatch started ({vp.state})"
            else:
                continue
            site = topology.states[info.site]
            flaps = self.flaps(address, now)
            flapping = flaps >= self.p["flap_count"]
            summary = f"BGP session {info.name} ({address}) to {info.site} down: {reason}"
            if site.state == LIVE:
                summary += "; the other sites still see its prefixes: a lost vantage point, not a site down"
            else:
                summary += f"; site {info.site} is {site.state}"
            if flapping:
                summary += f" (flapping: {flaps} downs in {self.p['flap_window']:g} s)"
            annotations = {
                "address": address,
                "reason": reason,
                "site_state": site.state,
                "flaps": flaps,
                "flapping": flapping,
            }
            cause = self.cause_if_active("site_down", {"site": info.site})
            findings.append(
                self.finding(
                    {"peer": info.name, "site": info.site}, summary, info.name, annotations, cause, since
                )
            )
        self.sync(findings, now)


@register
class NotConvergedDetector(Detector):
    """A session is up but has not sent its End-of-RIB within the bound."""

    name = "not_converged"
    kind = "not_converged"
    order = 11
    defaults: ClassVar[dict[str, Any]] = {"for": 0.0}
    params: ClassVar[dict[str, Param]] = {
        "timeout": Param(
            float, 60.0, "seconds from session up to End-of-RIB before it is not converged", 1, 86400
        ),
    }

    def evaluate(self, now: float) -> None:
        timeout = self.p["timeout"]
        findings = []
        for address, vp in self.engine.topology.vps.items():
            if vp.state != UP or vp.eor_complete or vp.up_since is None or now - vp.up_since < timeout:
                continue
            info = vp.info
            missing = sorted(self.engine.topology.model.families - vp.eor)
            summary = (
                f"session {info.name} ({address}) to {info.site} up for {now - vp.up_since:.0f} s without "
                f"End-of-RIB for IPv{', IPv'.join(map(str, missing))}: its table may be incomplete"
            )
            annotations = {"address": address, "up_since": vp.up_since, "eor_missing": missing}
            cause = self.cause_if_active("collector_degraded", {})
            findings.append(
                self.finding(
                    {"peer": info.name, "site": info.site},
                    summary,
                    info.name,
                    annotations,
                    cause,
                    vp.up_since + timeout,
                )
            )
        self.sync(findings, now)
