"""Alert lifecycle: pending -> firing -> resolved, de-bounced, grouped into incidents by root cause.

A detector states what is true now (`AlertBook.sync` or `upsert`/`clear`); the book turns that
into transitions:
- a condition must hold for ``for_`` seconds (pending) before it fires, so transients such as
  BGP path hunting (an announce via a longer path withdrawn ~15 ms later) never page;
- a firing condition that clears must stay clear for ``keep`` seconds (hold-down) before it
  resolves; if it comes back meanwhile nothing is sent (flap absorbed);
- re-asserting a firing condition never sends it again (repeat suppression; Alertmanager
  re-sends on its own schedule).
Firing happens at the deadline itself (``since + for_``), even when the clock only advances
later (a recording without ticks), so a replay and a live run give the same times.

Incidents: one per root cause (what happened: a site died, a link was cut), titled by it.  An alert
may name a ``cause`` (the key of another alert).  When it fires and its cause is firing, it joins the
cause's incident; when its cause is still pending, it waits and fires right after the cause.  An alert
may also *adopt* earlier evidence of the same root cause (``Finding.adopts``: site_down adopts its
site's session_down, seen first when graceful restart hides a silent death from the other sites): it
joins that incident and becomes its root (same id; the escalation is kept in the incident's
``escalations``, its title and severity follow the new root).  Otherwise it opens its own incident
``<UTC hour it fired in>Z-<kind>-<subject>-<hash of kind and labels>`` (subject: a site, a peer or
"collector"; see `incident_id` for why this is identical on both members of an HA pair).  Every
transition carries the incident's current ``incident_title`` and whether it is the root
(``incident_root``).

Planned work: when an alert fires, ``planned_for`` (the engine's PlannedWork) says whether it is part
of a maintenance window or a GRACEFUL_SHUTDOWN drain; then its transitions carry ``planned`` and
severity ``info`` (the unplanned severity in ``annotations.severity_unplanned``).  A clean stop of
bgpwatch mutes the book (`mute`): closing its own sessions is nobody's incident.

Restart (`restore`, then `settle_restored`): the alerts still firing when bgpwatch last stopped are
taken back from the store as firing, *restored* alerts: same started_at, incident and firing time,
and nothing is emitted for them.  While the network is re-learned their detectors' clears are only
noted (a half-loaded table proves nothing); a consequence whose cause is a restored alert joins its
incident.  When the re-learn is over (the engine decides when), `settle_restored` looks at what the
detectors state now: a restored condition asserted again simply continues (no new firing, same
incident); one that is not is resolved once, with its real started_at, ended at the last moment it
was seen to end after the restart (or the end of the re-learn when it was never seen at all), and a
``restart`` annotation saying so.

Transition (the contract, plus extra keys):
``{"kind", "state", "at", "severity", "labels", "summary", "incident", "annotations",
"started_at"}`` and, when resolved, ``"ended_at"`` and ``"duration_seconds"`` (how long the
condition held: for stale_routes, the stale-route window).  Times are ISO-8601 UTC with
milliseconds and "Z", always from the event stream.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
PENDING = "pending"
FIRING = "firing"
RESOLVING = "resolving"  # firing, condition clear, within hold-down
RESOLVED = "resolved"
INFINITY = float("inf")

AlertKey = tuple[str, tuple[tuple[str, str], ...]]


def alert_key(kind: str, labels: Mapping[str, str]) -> AlertKey:
    """Return the identity of a condition: its kind and sorted labels."""
    return kind, tuple(sorted(labels.items()))


# What datetime can show: 0001-01-01 to 9999-12-31 (as epoch seconds).  Inputs are checked at the
# edge (times in [0, 2**32)); this only keeps an absurd value that got past it from raising here.
_MIN_TS = -62135596800.0
_MAX_TS = 253402300799.0


def _shown_ts(ts: float) -> float:
    """Return a time datetime can format: NaN as 0, anything else clamped to years 1-9999."""
    if ts != ts:  # NaN
        return 0.0
    return min(max(ts, _MIN_TS), _MAX_TS)


def iso_ms(ts: float) -> str:
    """Return epoch seconds as ISO-8601 UTC with milliseconds and Z."""
    millis = round(_shown_ts(ts) * 1000)
    seconds, ms = divmod(millis, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def parse_iso(value: Any) -> float | None:
    """Return epoch seconds for an ISO-8601 time ("...Z") or a number; None when unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def iso_s(ts: float) -> str:
    """Return epoch seconds as ISO-8601 UTC to the second, with Z."""
    return datetime.fromtimestamp(round(_shown_ts(ts) * 1000) // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Incident ids: "<hour>Z-<kind>-<subject>-<hash>", e.g. "2025-03-03T14Z-site_down-par1-5d41402a".
INCIDENT_BUCKET = 3600.0  # seconds: the time part of an id is the hour the incident opened in
_ID_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_SLUG_MAX = 40


def _slug(text: str) -> str:
    """Return ``text`` with every character outside [A-Za-z0-9._-] as "_", at most 40 of them."""
    return "".join(c if c in _ID_SAFE else "_" for c in text)[:_SLUG_MAX] or "_"


def incident_id(kind: str, labels: Mapping[str, str], subject: str, at: float) -> str:
    """Return the id of an incident rooted in (kind, labels), opened at stream time ``at``.

    Both members of an HA pair must derive the same id from the same events stamped a few ms (or
    even seconds) apart, without talking to each other.  So the id holds nothing finer than the
    hour: the root's kind and labels (hashed in full: two roots never share an id because their
    readable part looks alike, and the hash does not depend on the order alerts fire in) and the
    UTC hour it opened in.  The two members disagree only when an hour boundary falls between
    their two stamps: with a skew of d seconds, a chance of d/3600 (1 in 720,000 for 5 ms).  No
    function of the time alone does better (any bucketing has edges); a shorter bucket would
    multiply that chance.  The same root opening again within the hour gets "-2", "-3" (see
    _open_incident), which both members agree on when both saw the earlier one.

    URL-safe: only [A-Za-z0-9._-] (no "/" from a prefix, no ":" from a time or an IPv6 address),
    so an id is one path segment as it is.
    """
    hour = datetime.fromtimestamp(math.floor(_shown_ts(at) / INCIDENT_BUCKET) * INCIDENT_BUCKET, UTC)
    root = json.dumps([kind, sorted((str(k), str(v)) for k, v in labels.items())], separators=(",", ":"))
    digest = hashlib.sha256(root.encode()).hexdigest()[:8]
    return f"{hour.strftime('%Y-%m-%dT%H')}Z-{_slug(kind)}-{_slug(subject)}-{digest}"


@dataclass(slots=True)
class Finding:
    """What a detector says is true now about one condition."""

    kind: str
    labels: dict[str, str]
    severity: str
    summary: str
    subject: str  # what an incident opened by this alert is named after
    annotations: dict[str, Any] = field(default_factory=dict)
    cause: AlertKey | None = None
    for_: float = 0.5  # the detectors' defaults (bgpwatch.detect.base.COMMON_PARAMS)
    keep: float = 2.0
    since: float | None = None  # when the condition began, if earlier than now
    title: str = ""  # what an incident rooted here is called ("site par2 down"); default: the summary
    adopts: tuple[AlertKey, ...] = ()  # earlier evidence of the same root cause: join its incident

    @property
    def key(self) -> AlertKey:
        """Return the condition's identity."""
        return alert_key(self.kind, self.labels)


@dataclass(slots=True)
class Alert:
    """One condition's lifecycle."""

    finding: Finding
    state: str
    since: float
    deadline: float
    created: float = 0.0  # when the condition was first stated (it may have begun earlier)
    fired_at: float | None = None
    cleared_at: float | None = None
    incident: str | None = None
    waiting: bool = False
    restored: bool = False  # taken back after a restart, not yet confirmed by the re-learn
    asserted: bool = False  # restored: a detector states the condition now
    end_seen: float | None = None  # restored: when the condition was last seen to end since the restart
    restart_note: dict[str, Any] | None = None  # set when resolved by settle_restored
    planned: dict[str, Any] | None = None  # planned work it is part of (maintenance, drain), set at firing

    @property
    def severity(self) -> str:
        """Return the severity it is reported with: info when it is part of planned work."""
        return "info" if self.planned is not None else self.finding.severity

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view of the alert (state pending, firing or resolving)."""
        f = self.finding
        view = {
            "kind": f.kind,
            "state": self.state,
            "severity": self.severity,
            "labels": dict(f.labels),
            "summary": f.summary,
            "incident": self.incident,
            "annotations": dict(f.annotations),
            "started_at": iso_ms(self.since),
            "fired_at": iso_ms(self.fired_at) if self.fired_at is not None else None,
        }
        if self.planned is not None:
            view["planned"] = dict(self.planned)
        if self.restored:
            view["restored"] = True  # firing before the restart, being checked against the re-learn
        return view


class AlertBook:
    """Conditions keyed by (kind, labels); emits firing/resolved transitions through ``emit``."""

    def __init__(
        self,
        emit: Callable[[dict[str, Any]], None],
        history_size: int = 1000,
    ) -> None:
        self.emit = emit
        self.alerts: dict[AlertKey, Alert] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=history_size)
        self.incidents: dict[str, dict[str, Any]] = {}
        self._incident_order: deque[str] = deque()
        self._history_size = history_size
        self._next = INFINITY
        self.now: float | None = None
        # Whether a finding is about planned work (maintenance window, GRACEFUL_SHUTDOWN drain): the
        # engine sets it from its PlannedWork; answered once, when the alert fires.
        self.planned_for: Callable[[Finding, float], dict[str, Any] | None] = lambda _finding, _at: None
        self.muted = False  # a clean stop of bgpwatch: what follows is its own doing (see mute)

    # -- detector side ----------------------------------------------------------------------
    def upsert(self, finding: Finding, now: float) -> None:
        """Say that a condition holds at ``now`` (creating, refreshing or re-arming it)."""
        key = finding.key
        alert = self.alerts.get(key)
        if alert is None:
            since = finding.since if finding.since is not None and finding.since <= now else now
            alert = Alert(finding, PENDING, since, since + finding.for_, created=now)
            self.alerts[key] = alert
            self._next = min(self._next, alert.deadline)
            return
        alert.finding = finding
        if alert.restored:
            alert.asserted, alert.end_seen = True, None
        if alert.state == RESOLVING:
            alert.state, alert.cleared_at = FIRING, None  # came back within the hold-down
            alert.restart_note = None

    def clear(self, key: AlertKey, now: float, ended_at: float | None = None) -> None:
        """Say that a condition no longer holds (it ended at ``ended_at``, default ``now``)."""
        alert = self.alerts.get(key)
        if alert is None:
            return
        if alert.state == PENDING:
            del self.alerts[key]  # never fired: a transient
            return
        if alert.restored:
            # Re-learning after a restart: only note it; settle_restored decides.
            if alert.asserted:
                alert.asserted, alert.end_seen = False, ended_at if ended_at is not None else now
            return
        if alert.state == FIRING:
            end = ended_at if ended_at is not None else now
            alert.state, alert.cleared_at = RESOLVING, end
            alert.deadline = max(end + alert.finding.keep, now)
            self._next = min(self._next, alert.deadline)

    def sync(
        self, kind: str, findings: Iterable[Finding], now: float, scope: Callable[[Alert], bool] | None = None
    ) -> None:
        """Make the findings of ``kind`` exactly the given ones: assert these, clear the others."""
        present = set()
        for finding in findings:
            present.add(finding.key)
            self.upsert(finding, now)
        for key, alert in list(self.alerts.items()):
            if key[0] == kind and key not in present and (scope is None or scope(alert)):
                self.clear(key, now)

    # -- restart -----------------------------------------------------------------------------
    def restore(
        self,
        transitions: Iterable[Mapping[str, Any]],
        incidents: Iterable[Mapping[str, Any]] = (),
        timings: Mapping[str, tuple[float, float]] | None = None,
    ) -> int:
        """Take back the alerts firing at the last stop (their latest transitions); return how many.

        ``incidents`` are the open incidents as the store lists them (consequences firing after the
        restart join them); ``timings`` gives each kind's (for, keep), default the detectors' defaults.
        Nothing is emitted: these alerts were notified before the restart.
        """
        known: dict[str, Mapping[str, Any]] = {str(i.get("id")): i for i in incidents if i.get("id")}
        count = 0
        for transition in transitions:
            if transition.get("state") != FIRING or not transition.get("kind"):
                continue
            kind = str(transition["kind"])
            labels = {str(k): str(v) for k, v in (transition.get("labels") or {}).items()}
            key = alert_key(kind, labels)
            if key in self.alerts:
                continue
            fired = parse_iso(transition.get("at"))
            if fired is None:
                continue
            started = parse_iso(transition.get("started_at"))
            since = started if started is not None and started <= fired else fired
            for_, keep = (timings or {}).get(kind, (0.5, 2.0))
            finding = Finding(
                kind=kind,
                labels=labels,
                severity=str(transition.get("severity") or "warning"),
                summary=str(transition.get("summary") or kind),
                subject=labels.get("site") or labels.get("peer") or kind,
                annotations=dict(transition.get("annotations") or {}),
                for_=for_,
                keep=keep,
                since=since,
            )
            incident = transition.get("incident") or None
            alert = Alert(
                finding,
                FIRING,
                since,
                INFINITY,
                created=fired,
                fired_at=fired,
                incident=incident,
                restored=True,
            )
            self.alerts[key] = alert
            if incident is not None:
                entry = self._incident_entry(incident, alert, known.get(incident))
                entry["alerts"].append(self._describe_key(alert))
            count += 1
        return count

    def settle_restored(self, now: float, note: Mapping[str, Any] | None = None) -> list[AlertKey]:
        """End the re-learn: keep restored alerts asserted again, resolve the others; return those resolved.

        A resolution ends when the condition was last seen to end since the restart, or at ``now``
        when it was never seen again; it is emitted after the kind's hold-down, like any other.
        """
        resolving = []
        for key, alert in self.alerts.items():
            if not alert.restored:
                continue
            alert.restored = False
            if alert.asserted:
                continue  # found again: it simply goes on, in its incident, without a new notification
            end = alert.end_seen if alert.end_seen is not None else now
            alert.state, alert.cleared_at = RESOLVING, end
            alert.deadline = max(end + alert.finding.keep, now)
            alert.restart_note = {
                "resolved_after_restart": True,
                "end_seen_after_restart": alert.end_seen is not None,
                **dict(note or {}),
            }
            self._next = min(self._next, alert.deadline)
            resolving.append(key)
        return resolving

    @property
    def restoring(self) -> bool:
        """Tell whether restored alerts still wait for the end of the re-learn."""
        return any(a.restored for a in self.alerts.values())

    def get(self, kind: str, labels: Mapping[str, str]) -> Alert | None:
        """Return the alert of a condition, if it is pending or firing."""
        return self.alerts.get(alert_key(kind, labels))

    def is_active(self, key: AlertKey | None) -> bool:
        """Tell whether a condition is pending or firing."""
        return key is not None and key in self.alerts

    # -- clock ---------------------------------------------------------------------------------
    @property
    def next_due(self) -> float:
        """Return the earliest deadline of a pending or resolving alert (infinity if none; may be past)."""
        return self._next

    def advance(self, now: float) -> None:
        """Fire and resolve everything whose deadline is at or before ``now``, in time order."""
        self.now = now
        if now < self._next:
            return
        while True:
            due = [
                a
                for a in self.alerts.values()
                if a.deadline <= now and a.state in (PENDING, RESOLVING) and not a.waiting
            ]
            if not due:
                break
            due.sort(key=lambda a: (a.deadline, a.finding.cause is not None))
            alert = due[0]
            if alert.state == RESOLVING:
                self._resolve(alert)
                continue
            # Never before the condition was stated: transitions stay in stream order.
            self._fire(alert, max(alert.deadline, alert.created))
        # Waiting alerts whose cause went away fire on their own now.
        for alert in list(self.alerts.values()):
            if alert.waiting and not self.is_active(alert.finding.cause):
                alert.waiting = False
                self._fire(alert, max(alert.deadline, now))
        self._next = min(
            (a.deadline for a in self.alerts.values() if a.state in (PENDING, RESOLVING) and not a.waiting),
            default=INFINITY,
        )

    def _fire(self, alert: Alert, at: float) -> None:
        cause = self.alerts.get(alert.finding.cause) if alert.finding.cause is not None else None
        if cause is not None and cause.state == PENDING:
            alert.waiting = True
            return
        alert.waiting = False
        alert.state, alert.fired_at = FIRING, at
        alert.planned = self.planned_for(alert.finding, at)
        if alert.planned is None and cause is not None and cause.planned is not None:
            alert.planned = dict(cause.planned)  # a consequence of planned work is planned too
        adopted = None if cause is not None and cause.incident is not None else self._adoptable(alert)
        if cause is not None and cause.incident is not None:
            alert.incident = cause.incident
            self._incident_entry(cause.incident, cause)["alerts"].append(self._describe_key(alert))
        elif adopted is not None:
            # Evidence of the same root cause came first (bgpwatch's session to a site died before the
            # others confirmed the site is gone): this alert joins that incident and becomes its root.
            alert.incident = adopted.incident
            self._escalate(self._incident_entry(adopted.incident, adopted), alert, at)
        else:
            alert.incident = self._open_incident(alert, at)
        self._transition(alert, FIRING, at)
        # Consequences that were waiting for this alert fire right after it, in its incident.
        key = alert.finding.key
        for other in sorted(self.alerts.values(), key=lambda a: a.deadline):
            if other.waiting and other.finding.cause == key:
                self._fire(other, at)

    def _adoptable(self, alert: Alert) -> Alert | None:
        """Return the firing alert whose incident this one should join (see Finding.adopts), if any."""
        for key in alert.finding.adopts:
            other = self.alerts.get(key)
            if other is not None and other is not alert and other.fired_at is not None and other.incident:
                return other
        return None

    def _escalate(self, entry: dict[str, Any], alert: Alert, at: float) -> None:
        """Make ``alert`` the root of an open incident: what happened is now known better."""
        f = alert.finding
        entry.setdefault("escalations", []).append(
            {"at": iso_ms(at), "from": entry["root"], "to": self._describe_key(alert), "summary": f.summary}
        )
        entry["root"] = self._describe_key(alert)
        entry["title"] = f.title or f.summary
        entry["summary"] = f.summary
        if SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(entry["severity"], 0):
            entry["severity"] = alert.severity
        entry["alerts"].append(self._describe_key(alert))

    def _resolve(self, alert: Alert) -> None:
        del self.alerts[alert.finding.key]
        at = alert.deadline
        self._transition(alert, RESOLVED, at)
        incident = self.incidents.get(alert.incident or "")
        if incident is not None and not any(a.incident == alert.incident for a in self.alerts.values()):
            incident["closed_at"] = iso_ms(at)

    def _open_incident(self, alert: Alert, at: float) -> str:
        base = incident_id(alert.finding.kind, alert.finding.labels, alert.finding.subject, at)
        ident, n = base, 1
        while ident in self.incidents:
            n += 1
            ident = f"{base}-{n}"
        self.incidents[ident] = {
            "id": ident,
            "root": self._describe_key(alert),
            "severity": alert.severity,
            "summary": alert.finding.summary,
            "title": alert.finding.title or alert.finding.summary,
            "opened_at": iso_ms(at),
            "closed_at": None,
            "alerts": [self._describe_key(alert)],
        }
        self._incident_order.append(ident)
        while len(self._incident_order) > self._history_size:
            self.incidents.pop(self._incident_order.popleft(), None)
        return ident

    def _incident_entry(
        self, ident: str, root: Alert, stored: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Return the book's record of an incident, creating it for one opened before a restart."""
        entry = self.incidents.get(ident)
        if entry is not None:
            return entry
        if stored is not None:
            root_desc = {"kind": stored.get("root_kind"), "labels": dict(stored.get("root_labels") or {})}
            severity = str(stored.get("severity") or root.finding.severity)
            summary = str(stored.get("summary") or root.finding.summary)
            opened = stored.get("opened_at") or iso_ms(root.since)
        else:
            root_desc = self._describe_key(root)
            severity, summary, opened = root.finding.severity, root.finding.summary, iso_ms(root.since)
        entry = {
            "id": ident,
            "root": root_desc,
            "severity": severity,
            "summary": summary,
            "title": str((stored or {}).get("title") or summary),
            "opened_at": opened,
            "closed_at": None,
            "alerts": [],
        }
        self.incidents[ident] = entry
        self._incident_order.append(ident)
        return entry

    @staticmethod
    def _describe_key(alert: Alert) -> dict[str, Any]:
        return {"kind": alert.finding.kind, "labels": dict(alert.finding.labels)}

    def mute(self) -> None:
        """Emit nothing more: bgpwatch is stopping cleanly, and closing its own sessions is no incident.

        The alerts firing before the stop stay firing in the store (they are restored at the next start);
        what the stop itself causes (sessions closed by ExaBGP, collector_degraded) is never sent.
        """
        self.muted = True

    def _transition(self, alert: Alert, state: str, at: float) -> None:
        if self.muted:
            return
        f = alert.finding
        transition: dict[str, Any] = {
            "kind": f.kind,
            "state": state,
            "at": iso_ms(at),
            "severity": alert.severity,
            "labels": dict(f.labels),
            "summary": f.summary if state == FIRING else _resolved_summary(f, alert),
            "incident": alert.incident,
            "annotations": dict(f.annotations),
            "started_at": iso_ms(alert.since),
        }
        if state == RESOLVED and alert.cleared_at is not None:
            transition["ended_at"] = iso_ms(alert.cleared_at)
            transition["duration_seconds"] = round(alert.cleared_at - alert.since, 3)
        if state == RESOLVED and alert.restart_note is not None:
            transition["annotations"]["restart"] = dict(alert.restart_note)
        entry = self.incidents.get(alert.incident or "")
        if entry is not None:
            transition["incident_title"] = entry.get("title") or entry.get("summary")
            transition["incident_root"] = entry.get("root") == self._describe_key(alert)
        if alert.planned is not None:
            transition["planned"] = dict(alert.planned)
            transition["annotations"]["severity_unplanned"] = f.severity
        self.history.append(transition)
        self.emit(transition)

    # -- views -------------------------------------------------------------------------------
    def active(self, include_pending: bool = False) -> list[dict[str, Any]]:
        """Return the firing alerts (and pending ones if asked), oldest first."""
        alerts = [a for a in self.alerts.values() if include_pending or a.state in (FIRING, RESOLVING)]
        alerts.sort(key=lambda a: (a.fired_at if a.fired_at is not None else a.deadline, a.finding.kind))
        return [a.to_dict() for a in alerts]

    def firing_counts(self) -> dict[tuple[str, str], int]:
        """Return the number of firing alerts per (kind, severity)."""
        counts: dict[tuple[str, str], int] = {}
        for alert in self.alerts.values():
            if alert.state in (FIRING, RESOLVING):
                key = (alert.finding.kind, alert.severity)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def incident_list(self) -> list[dict[str, Any]]:
        """Return the known incidents, newest first."""
        return [dict(self.incidents[i]) for i in reversed(self._incident_order) if i in self.incidents]


def _resolved_summary(finding: Finding, alert: Alert) -> str:
    restart = ""
    if alert.restart_note is not None:
        restart = (
            " (seen ending after a restart of bgpwatch)"
            if alert.restart_note.get("end_seen_after_restart")
            else " (not found again after a restart of bgpwatch: it ended while bgpwatch was down)"
        )
    if alert.cleared_at is None:
        return f"resolved{restart}: {finding.summary}"
    return f"resolved after {alert.cleared_at - alert.since:.1f} s{restart}: {finding.summary}"
