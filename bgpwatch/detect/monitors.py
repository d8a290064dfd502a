"""monitor_lost: bgpwatch no longer hears a BMP router (its monitoring session closed or went silent).

Losing a router's BMP stream says nothing about the router's sessions or its site: the station's
path may be what broke, or the router restarted its BMP process.  So this is a warning about the
router, never a site down; when the site really is down, its site_down incident takes this alert in
(`SiteDownDetector` adopts it).  Resolved when the router connects again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bgpwatch.detect.base import Detector, register
from bgpwatch.monitors import ROUTER_DOWN, ROUTER_UP, MonitorChange


@register
class MonitorLostDetector(Detector):
    """A BMP router that was heard is heard no more."""

    name = "monitor_lost"
    kind = "monitor_lost"
    order = 12
    defaults: ClassVar[dict[str, Any]] = {"severity": "warning", "for": 2.0}

    def on_monitor(self, change: MonitorChange, now: float) -> None:
        if change.kind in (ROUTER_UP, ROUTER_DOWN):
            self.evaluate(now)

    def evaluate(self, now: float) -> None:
        findings = []
        for router in self.ctx.sessions.monitors.routers.values():
            if router.heard or router.since is None or not router.connects:
                continue
            site = router.site
            where = f" (site {site})" if site else ""
            reason = f": {router.reason}" if router.reason else ""
            summary = (
                f"bgpwatch no longer hears BMP router {router.name}{where}{reason}; "
                "its sessions are unknown until it reconnects (this alone says nothing about the site)"
            )
            labels = {"router": router.name, "site": site} if site else {"router": router.name}
            annotations = {"address": router.address, "sys_name": router.sys_name, "reason": router.reason}
            # A router of a site already known down, or whose session to bgpwatch went down with it
            # (the router restarted), is part of that incident, not news.
            cause = self._cause(site) if site else None
            finding = self.finding(labels, summary, router.name, annotations, cause, since=router.since)
            finding.title = f"BMP router {router.name} not heard"
            findings.append(finding)
        self.sync(findings, now)

    def _cause(self, site: str) -> Any:
        cause = self.cause_if_active("site_down", {"site": site})
        if cause is not None:
            return cause
        for session in self.ctx.sessions.by_address.values():
            if session.site == site:
                cause = self.cause_if_active("session_down", {"peer": session.name, "site": site})
                if cause is not None:
                    return cause
        return None
