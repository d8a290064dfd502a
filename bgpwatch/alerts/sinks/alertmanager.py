"""Alertmanager sink: POST /api/v2/alerts, with a re-sent firing set so alerts outlive no bgpwatch.

Alertmanager forgets an alert at its endsAt.  Every firing alert is sent with
endsAt = now + 3 * resend_seconds and re-sent every `resend_seconds` while it fires: if bgpwatch
dies, Alertmanager resolves its alerts by itself after three missed re-sends.  A resolution is sent
with endsAt = the resolution's event time.

Labels (the alert's identity for Alertmanager; it de-duplicates identical label sets, which is how
an HA pair of bgpwatch instances yields one notification):
  the static `labels` param (default {source: bgpwatch}; same value on both members of an HA pair),
  the transition's labels, then alertname = kind, severity, incident,
  root = "true" when the transition says it opened its incident (optional key `incident_root`),
  planned = "maintenance" | "graceful_shutdown" for planned work (optional key `planned`:
  {"by", "reason", "until"}); the shipped Alertmanager configuration never pages those.
The sending instance goes into the `instance` annotation, not a label, for that reason.
Annotations: summary, description, the transition's annotations, started_at/duration on resolution,
incident_title (the root cause's title, which config/alertmanager/bgpwatch.tmpl puts in a
notification's title) and planned_reason/planned_until.  incident_title is the transition's optional
key `incident_title`; without it, the title remembered for that incident (from the transition that
opened it, or the first one of it this sink saw), else the head of the alert's own summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import BeforeValidator, Field

from bgpwatch.alerts.sinks.base import (
    DeliveryError,
    HttpSink,
    HttpSinkParams,
    SinkParams,
    Transition,
    json_bytes,
    register_sink,
    transition_key,
)
from bgpwatch.config import Seconds, Url, _check_text

log = logging.getLogger("bgpwatch.alerts.sinks")

_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")
_RESOLVED_PREFIX = re.compile(r"^resolved after [^:]*: ")
_TITLES_KEPT = 1000  # incidents whose title is remembered (oldest forgotten first)
PLANNED_BY = ("maintenance", "graceful_shutdown")


def _label_name(name: str) -> str:
    clean = _LABEL_NAME.sub("_", name)
    return f"_{clean}" if clean[:1].isdigit() else clean


def rfc3339(ts: float) -> str:
    """Return an epoch time as RFC 3339 UTC with milliseconds (the contract's format)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def planned_by(transition: Mapping[str, Any]) -> str | None:
    """Return who planned the work a transition is about ("maintenance", ...), or None."""
    planned = transition.get("planned")
    if not isinstance(planned, Mapping):
        return None
    by = planned.get("by")
    # an unknown value still marks planned work: it must not page because of a typo upstream
    return str(by) if by else "planned"


def summary_title(summary: str) -> str:
    """Return a title from a summary: its head before the first ": ", without "resolved after"."""
    head = _RESOLVED_PREFIX.sub("", summary)
    return head.split(": ", 1)[0].strip()


def alert_identity(transition: Mapping[str, Any]) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """Return what makes two transitions the same alert: kind, incident and labels (not severity)."""
    labels = tuple(sorted((str(k), str(v)) for k, v in (transition.get("labels") or {}).items()))
    return (str(transition.get("kind")), str(transition.get("incident", "")), labels)


class AlertmanagerSinkParams(HttpSinkParams):
    """`{type: alertmanager, url: http://127.0.0.1:9093}`: Alertmanager's API v2."""

    type: Literal["alertmanager"] = "alertmanager"
    url: Url = Field(repr=False)  # the base URL (…/api/v2/alerts is added); may carry credentials
    # Alertmanager resolves an alert that is not re-sent: repeat firing alerts this often.
    resend_seconds: Seconds = 60.0
    # Static labels on every alert (default {source: bgpwatch}); keep them equal on both members of an HA pair.
    labels: dict[str, str] = {}
    # This instance's name in the `instance` annotation; default: the host name.
    instance: Annotated[str, BeforeValidator(_check_text)] | None = None
    generator_url: Url | None = None  # link back to this bgpwatch (the alerts' generatorURL)


@register_sink
class AlertmanagerSink(HttpSink):
    """Send transitions to Alertmanager's API v2 and keep the firing ones alive."""

    type_name: ClassVar[str] = "alertmanager"
    Params: ClassVar[type[SinkParams]] = AlertmanagerSinkParams

    def __init__(self, params: Mapping[str, Any], metrics: Any, **kwargs: Any) -> None:
        super().__init__(params, metrics, **kwargs)
        base = self.url.rstrip("/")
        self.endpoint = base if base.endswith("/api/v2/alerts") else base + "/api/v2/alerts"
        self.resend_seconds: float = params.get("resend_seconds", 60.0)
        self.static_labels: dict[str, str] = {"source": "bgpwatch", **(params.get("labels") or {})}
        self.instance: str = params.get("instance") or socket.gethostname()
        self.generator_url: str | None = params.get("generator_url")
        self.clock = time.time
        # incident -> (title, from its root): the fallback when transitions carry no incident_title
        self._titles: dict[str, tuple[str, bool]] = {}
        # identity -> firing alert (labels, annotations, startsAt), re-sent until resolved
        self.firing: dict[tuple, dict[str, Any]] = {}
        # transition key -> old label set that transition ends (the severity changed): sent with it
        self._retired: dict[str, dict[str, Any]] = {}
        self._post_lock = asyncio.Lock()
        self._resender: asyncio.Task[None] | None = None

    # -- payloads --

    def labels_for(self, transition: Transition) -> dict[str, str]:
        """Return the Alertmanager label set of a transition."""
        labels = {_label_name(k): str(v) for k, v in self.static_labels.items()}
        for name, value in (transition.get("labels") or {}).items():
            labels[_label_name(str(name))] = str(value)
        labels["alertname"] = str(transition.get("kind", "bgpwatch"))
        labels["severity"] = str(transition.get("severity", "warning"))
        if transition.get("incident"):
            labels["incident"] = str(transition["incident"])
        labels.pop("root", None)
        if transition.get("incident_root") is True:
            labels["root"] = "true"
        labels.pop("planned", None)
        by = planned_by(transition)
        if by is not None:
            labels["planned"] = by
        # Alertmanager treats an empty value as an absent label: drop it rather than be rejected
        return {k: v for k, v in labels.items() if v != ""}

    def annotations_for(self, transition: Transition) -> dict[str, str]:
        """Return the annotations of a transition (all strings, as the API requires)."""
        notes: dict[str, str] = {}
        for name, value in (transition.get("annotations") or {}).items():
            notes[str(name)] = value if isinstance(value, str) else json_bytes(value).decode()
        summary = str(transition.get("summary", ""))
        notes.setdefault("summary", summary)
        notes.setdefault("description", summary)
        notes["instance"] = self.instance
        notes["incident_title"] = self.incident_title(transition)
        planned = transition.get("planned")
        if isinstance(planned, Mapping):
            if planned.get("reason"):
                notes["planned_reason"] = str(planned["reason"])
            if planned.get("until"):
                notes["planned_until"] = str(planned["until"])
        if transition.get("state") == "resolved":
            if "started_at" in transition:
                notes["started_at"] = str(transition["started_at"])
            if "duration_seconds" in transition:
                notes["duration_seconds"] = f"{float(transition['duration_seconds']):.3f}"
        return {k: v for k, v in notes.items() if v != ""}

    def incident_title(self, transition: Transition) -> str:
        """Return the title of the transition's incident (its root cause's), as well as known."""
        title = transition.get("incident_title")
        if isinstance(title, str) and title:
            return title
        known = self._titles.get(str(transition.get("incident", "")))
        if known is not None:
            return known[0]
        return summary_title(str(transition.get("summary", "")))

    def _note_incident(self, transition: Transition) -> None:
        # Remember the incident's title so its later alerts carry it too: the transition's own
        # incident_title, else the summary of the alert that opened it (incident_root) or, when
        # transitions do not say, of the first alert of the incident seen (the root fires first).
        incident = transition.get("incident")
        if not incident:
            return
        incident = str(incident)
        root = transition.get("incident_root") is True
        given = transition.get("incident_title")
        known = self._titles.get(incident)
        if isinstance(given, str) and given:
            entry = (given, True)
        elif known is None or (root and not known[1]):
            if transition.get("state") != "firing" and known is not None:
                return
            entry = (summary_title(str(transition.get("summary", ""))), root)
        else:
            return
        if known is None and len(self._titles) >= _TITLES_KEPT:
            self._titles.pop(next(iter(self._titles)))
        self._titles[incident] = entry

    def _alert(self, labels: dict[str, str], annotations: dict[str, str], starts: str, ends: str) -> dict:
        alert = {"labels": labels, "annotations": annotations, "startsAt": starts, "endsAt": ends}
        if self.generator_url:
            alert["generatorURL"] = self.generator_url
        return alert

    def _alive_until(self) -> str:
        return rfc3339(self.clock() + 3 * self.resend_seconds)

    # -- state, updated synchronously at submit time so re-sends always see the latest --

    def on_submit(self, transition: Transition) -> None:
        """Track the firing set: add firing alerts, remove resolved ones."""
        self._note_incident(transition)
        identity = alert_identity(transition)
        labels = self.labels_for(transition)
        if transition.get("state") == "firing":
            previous = self.firing.get(identity)
            if previous is not None and previous["labels"] != labels:
                # e.g. the severity changed: the old label set is another Alertmanager alert, end it
                self._retire(transition, previous)
            self.firing[identity] = {
                "labels": labels,
                "annotations": self.annotations_for(transition),
                "startsAt": str(transition.get("started_at") or transition.get("at")),
            }
            return
        previous = self.firing.pop(identity, None)
        if previous is not None and previous["labels"] != labels:
            self._retire(transition, previous)

    def resume(self, transition: Transition) -> None:
        """Re-adopt an alert still firing at the last shutdown so it keeps being re-sent."""
        if transition.get("state") == "firing":
            self.on_submit(transition)

    def _retire(self, transition: Transition, alert: dict[str, Any]) -> None:
        # sent with (never before) the transition that replaces it, so queue order is kept; if that
        # transition is dropped, Alertmanager expires the old alert at its last endsAt instead
        if len(self._retired) >= 1000:
            self._retired.pop(next(iter(self._retired)))
        self._retired[transition_key(transition)] = {**alert, "endsAt": str(transition.get("at"))}

    def payload_for(self, transition: Transition) -> list[dict]:
        """Return the alerts to POST for one transition (plus any alert to end on the way)."""
        labels = self.labels_for(transition)
        annotations = self.annotations_for(transition)
        starts = str(transition.get("started_at") or transition.get("at"))
        ends = self._alive_until() if transition.get("state") == "firing" else str(transition.get("at"))
        alerts = [self._alert(labels, annotations, starts, ends)]
        old = self._retired.get(transition_key(transition))
        if old is not None:
            alerts.append(self._alert(old["labels"], old["annotations"], old["startsAt"], old["endsAt"]))
        return alerts

    # -- delivery --

    async def _post(self, alerts: list[dict]) -> None:
        await self.post_json(self.endpoint, orjson.dumps(alerts))

    async def deliver(self, transition: Transition) -> None:
        """POST the transition's alert."""
        async with self._post_lock:
            await self._post(self.payload_for(transition))
        self._retired.pop(transition_key(transition), None)

    async def resend(self) -> None:
        """POST every firing alert once with a fresh endsAt (one attempt; the next period retries)."""
        async with self._post_lock:
            # snapshot under the lock: a resolution posted before us is never overtaken by a stale firing
            alerts = [
                self._alert(a["labels"], a["annotations"], a["startsAt"], self._alive_until())
                for a in self.firing.values()
            ]
            if not alerts:
                return
            try:
                async with asyncio.timeout(self.timeout):
                    await self._post(alerts)
            except DeliveryError as exc:
                self._failures.inc()
                log.warning("sink %s: re-send of %d alert(s) failed: %s", self.name, len(alerts), exc.reason)
                return
            except TimeoutError:
                self._failures.inc()
                log.warning("sink %s: re-send got no answer within %g s", self.name, self.timeout)

    async def _resend_loop(self, delay: float) -> None:
        while True:
            await asyncio.sleep(delay)
            delay = self.resend_seconds
            try:
                await self.resend()
            except Exception:  # the loop must survive anything one round does
                log.exception("sink %s: re-send round failed", self.name)

    async def open(self) -> None:
        """Open the session and start re-sending."""
        await super().open()
        # alerts resumed after a restart are refreshed at once: their last endsAt may be near
        first = 0.0 if self.firing else self.resend_seconds
        self._resender = asyncio.create_task(self._resend_loop(first), name=f"sink-{self.name}-resend")

    async def release(self) -> None:
        """Stop re-sending (Alertmanager expires the alerts if no one takes over) and close."""
        if self._resender is not None:
            self._resender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resender
            self._resender = None
        await super().release()
