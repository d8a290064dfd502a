"""session_down and not_converged: what happened to bgpwatch's own sessions (its vantage points).

session_down: an established session is down.  If the other sites still see the site's
prefixes this is a lost vantage point, not a site down (the summary says so); when the site
is down the alert joins the site_down incident.  N downs within a window mark it flapping
(annotation, summary).  A configured session never established by the end of the start-up
grace is reported too.  Sessions lost on the collector's side never produce it.

not_converged: a session is up but its table is not known to be in (End-of-RIB for every family
the sites use, or ``quiet`` seconds without a route: see `bgpwatch.sessions`) within ``timeout``
seconds: its view is used anyway.  It resolves as soon as the table is in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.alerts.lifecycle import alert_key
from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.detect.sites import planned_keys
from bgpwatch.events import UP
from bgpwatch.topology import LIVE

if TYPE_CHECKING:
    pass


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

    def flaps(self, address: str, now: float) -> int:
        """Return the downs of a session within the flap window (counted by the session table)."""
        session = self.ctx.sessions.get(address)
        return session.flaps(now, self.p["flap_window"]) if session is not None else 0

    def evaluate(self, now: float) -> None:
        topology = self.ctx.topology
        lost = self.ctx.collector_lost
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
            title = f"session {info.name} to {info.site} down"
            annotations: dict[str, Any] = {
                "address": address,
                "reason": reason,
                "down_cause": vp.session.cause or None,
                "site_state": site.state,
                "flaps": flaps,
                "flapping": flapping,
            }
            blind = site.state == LIVE and not any(v.up for v in topology.vps_of_site[info.site])
            if blind and vp.ever_up:
                # bgpwatch has no session left into the site, the others still announce its routes: a
                # lost vantage point, or a silent death hidden by the others' hold timers and graceful
                # restart.  Say exactly that; site_down adopts this incident if the death is confirmed.
                title = f"{info.site} unreachable from bgpwatch"
                still = ", ".join(site.seen_by) or "the other sites"
                summary = f"{info.site} unreachable from bgpwatch ({info.name}: {reason}); {still} still announce its routes"
                restart = vp.session.restart_time if self.ctx.sessions.gr_negotiated(vp.session) else None
                if restart:
                    summary += f"; with graceful restart they may keep them up to {restart} s"
                    annotations["graceful_restart_time"] = restart
                elif vp.session.cause == "hold_timer":
                    summary += "; if the site died silently, their own hold timers will tell"
                annotations["still_seen_by"] = list(site.seen_by)
            elif site.state == LIVE:
                summary += "; the other sites still see its prefixes: a lost vantage point, not a site down"
            else:
                summary += f"; site {info.site} is {site.state}"
            if flapping:
                summary += f" (flapping: {flaps} downs in {self.p['flap_window']:g} s)"
                title += " (flapping)"
            cause = self.cause_if_active("site_down", {"site": info.site}) or self.cause_if_active(
                "visibility_loss", {"site": info.site}
            )
            finding = self.finding(
                {"peer": info.name, "site": info.site}, summary, info.name, annotations, cause, since
            )
            finding.title = title
            # Planned work on the site or session (maintenance, drain) is the root cause of this down.
            finding.adopts = planned_keys(info.site, [info.name])
            if blind and vp.ever_up:
                # A link to this site that went quiet first (its neighbours' sessions to it dying) is the
                # same root cause: join that incident.
                finding.adopts += tuple(
                    alert_key("path_detour", {"link": "-".join(pair)})
                    for other in self.ctx.model.sites
                    if other != info.site
                    for pair in ((info.site, other), (other, info.site))
                )
            findings.append(finding)
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
        "quiet": Param(
            float,
            10.0,
            "seconds without a route after session up (or after its last route) that count as converged when "
            "the router sends no End-of-RIB (0: wait for End-of-RIB or the timeout)",
            0,
            3600,
        ),
    }

    def evaluate(self, now: float) -> None:
        timeout = self.p["timeout"]
        findings = []
        for address, vp in self.ctx.topology.vps.items():
            session = vp.session
            if not session.up or session.complete or vp.up_since is None or now - vp.up_since < timeout:
                continue
            info = vp.info
            missing = sorted(self.ctx.model.families - session.eor)
            summary = (
                f"session {info.name} ({address}) to {info.site} up for {now - vp.up_since:.0f} s without "
                f"End-of-RIB for IPv{', IPv'.join(map(str, missing))} and still sending routes: its table may be "
                "incomplete"
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
