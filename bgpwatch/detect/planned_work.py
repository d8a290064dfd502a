"""planned_work: planned work in progress, at info severity, so the timeline shows it.

A maintenance window (``bgpwatch maintenance start``) or a GRACEFUL_SHUTDOWN drain (RFC 8326: a
session's routes carry 65535:0) is stated as an info alert for as long as it lasts: it pages nobody
(the shipped Alertmanager routes ``planned`` alerts to chat only) but it stands in the timeline next to
what it explains, and every alert it covers is itself marked planned (`bgpwatch.planned.PlannedWork`,
the one owner of these facts; this detector only reads it).
"""

from __future__ import annotations

from typing import Any, ClassVar

from bgpwatch.detect.base import Detector, register


@register
class PlannedWorkDetector(Detector):
    """State the maintenance windows and drains in progress (info)."""

    name = "planned_work"
    kind = "planned_work"
    order = 5
    defaults: ClassVar[dict[str, Any]] = {"severity": "info", "for": 0.0, "keep": 0.0}

    def evaluate(self, now: float) -> None:
        planned = self.ctx.planned
        if planned is None:
            self.sync((), now)
            return
        findings = []
        for window in planned.windows(now):
            target, scope = window["target"], window.get("scope", "site")
            labels = (
                {"site": target} if scope == "site" else {"peer": target, "site": window.get("site") or ""}
            )
            until = f" until {window['until']}" if window.get("until") else ""
            summary = (
                f"maintenance of {scope} {target}{until}: {window.get('reason') or 'planned maintenance'}"
            )
            finding = self.finding(
                {k: v for k, v in labels.items() if v}, summary, target, {"planned": "maintenance", **window}
            )
            finding.title = f"maintenance of {target}"
            findings.append(finding)
        for drain in planned.drains(now):
            peer, site = drain["peer"], drain.get("site")
            summary = f"session {peer} draining (GRACEFUL_SHUTDOWN, {drain['routes']} route(s) with 65535:0): {drain['state']}"
            labels = {"peer": peer, "site": site} if site else {"peer": peer}
            finding = self.finding(labels, summary, peer, {"planned": "graceful_shutdown", **drain})
            finding.title = f"{peer} draining (GRACEFUL_SHUTDOWN)"
            findings.append(finding)
        self.sync(findings, now)
