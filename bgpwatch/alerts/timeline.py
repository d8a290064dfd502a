"""Render an incident's timeline in the network's terms: text, Markdown (post-mortem) or JSON.

Input is `Store.incident(id)`: {"incident": {...}, "timeline": [transitions in event order]}.
Lines are dated in the network's terms: a firing at its `started_at` (when the condition began,
before de-bouncing), a resolution at its `ended_at` (when it stopped holding), each falling back to
the transition's `at` (when bgpwatch alerted, kept as `alerted_at` in JSON).
Each transition becomes one line such as
    14:55:03  par6: sessions par6-rr1, par6-rr2 down
    14:55:04  topology split: {par6} | {par7, par8}
    14:58:10  stale routes of par6 gone after 3 min 7 s
    15:15:02  topology whole again after 19 min 58 s
Session changes of one site within `merge_window` seconds are merged into one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "Entry",
    "build_entries",
    "format_duration",
    "render",
    "render_json",
    "render_markdown",
    "render_text",
]

KIND_NAMES = {
    "session_down": "session down",
    "site_down": "site down",
    "stale_routes": "stale routes",
    "topology_split": "topology split",
    "visibility_loss": "visibility loss",
    "service_unreachable": "service unreachable",
    "mass_withdrawal": "mass withdrawal",
    "update_storm": "update storm",
    "not_converged": "not converged",
    "origin_change": "origin change",
    "more_specific": "more-specific prefix",
    "collector_degraded": "collector degraded",
}


@dataclass(slots=True)
class Entry:
    """One line of a timeline."""

    at: str
    ts: float
    alerted_at: str
    kind: str
    state: str
    severity: str
    text: str
    labels: dict[str, str] = field(default_factory=dict)
    duration_seconds: float | None = None
    count: int = 1


def format_duration(seconds: float) -> str:
    """Return a duration the way an operator says it: 187 s, 14 min 55 s, 2 h 5 min."""
    seconds = max(0, round(seconds))
    if seconds < 600:  # seconds stay exact where hold timers (90 s, 180 s) are compared
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _ts(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return 0.0


def _islands(text: str) -> str:
    """Turn the islands label "par1 | par2,par3" into "{par1} | {par2, par3}"."""
    parts = [p.strip() for p in text.split("|")]
    return " | ".join("{" + ", ".join(s.strip() for s in p.split(",") if s.strip()) + "}" for p in parts)


def _labels_text(labels: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _after(duration: float | None) -> str:
    return "" if duration is None else f" after {format_duration(duration)}"


def _phrase(t: Mapping[str, Any], duration: float | None) -> str:
    """Return the sentence for one transition."""
    kind = str(t.get("kind", "?"))
    firing = t.get("state") == "firing"
    labels = t.get("labels") or {}
    site, peer = labels.get("site"), labels.get("peer")
    service = labels.get("service")
    where = f"{site}: " if site else ""
    if kind == "session_down" and peer:
        return (
            f"{where}session {peer} down" if firing else f"{where}session {peer} up again{_after(duration)}"
        )
    if kind == "site_down" and site:
        return f"site {site} down" if firing else f"site {site} back{_after(duration)}"
    if kind == "topology_split":
        if firing:
            islands = labels.get("islands")
            return (
                f"topology split: {_islands(islands)}"
                if islands
                else str(t.get("summary") or "topology split")
            )
        return f"topology whole again{_after(duration)}"
    if kind == "stale_routes" and site:
        if firing:
            return str(t.get("summary") or f"routes of {site} still held elsewhere (stale)")
        return f"stale routes of {site} gone{_after(duration)}"
    if kind == "service_unreachable" and service:
        src = f" from {site}" if site else ""
        if firing:
            return f"service {service} unreachable{src}"
        return f"service {service} reachable again{src}{_after(duration)}"
    if kind == "not_converged" and peer:
        if firing:
            return f"{where}{peer} up but not converged (no End-of-RIB yet)"
        return f"{where}{peer} converged{_after(duration)}"
    if firing:
        return str(t.get("summary") or f"{KIND_NAMES.get(kind, kind)} ({_labels_text(labels)})")
    name = KIND_NAMES.get(kind, kind)
    about = f" ({_labels_text(labels)})" if labels else ""
    return f"{name}{about} over{_after(duration)}"


def build_entries(data: Mapping[str, Any], *, merge_window: float = 2.0) -> list[Entry]:
    """Return the timeline entries of an incident, merging simultaneous session changes per site."""
    entries: list[Entry] = []
    fired_at: dict[tuple, float] = {}
    for t in data.get("timeline", []):
        kind, state = str(t.get("kind", "?")), str(t.get("state", "?"))
        labels = {str(k): str(v) for k, v in (t.get("labels") or {}).items()}
        when = t.get("started_at") if state == "firing" else t.get("ended_at")
        at = str(when or t.get("at"))
        ts = _ts(at)
        identity = (kind, tuple(sorted(labels.items())))
        duration = t.get("duration_seconds")
        if state == "firing":
            fired_at.setdefault(identity, ts)
        else:
            start = fired_at.pop(identity, None)
            if duration is None and t.get("started_at") is not None:
                duration = ts - _ts(t["started_at"])
            elif duration is None and start is not None:
                duration = ts - start
        duration = None if duration is None else float(duration)
        entry = Entry(
            at=at,
            ts=ts,
            alerted_at=str(t.get("at")),
            kind=kind,
            state=state,
            severity=str(t.get("severity", "")),
            text=_phrase(t, duration),
            labels=labels,
            duration_seconds=duration,
        )
        entries.append(entry)
    entries.sort(key=lambda e: e.ts)  # stable: simultaneous lines keep the store's order
    merged: list[Entry] = []
    for entry in entries:
        if not _merge(merged, entry, merge_window):
            merged.append(entry)
    return merged


def _merge(entries: list[Entry], entry: Entry, window: float) -> bool:
    """Fold a session change into the previous line for the same site and direction."""
    if entry.kind != "session_down" or not entries or "peer" not in entry.labels:
        return False
    last = entries[-1]
    if (last.kind, last.state, last.labels.get("site")) != (
        entry.kind,
        entry.state,
        entry.labels.get("site"),
    ):
        return False
    if entry.ts - last.ts > window or "peer" not in last.labels:
        return False
    peers = last.labels["peer"].split(", ") + [entry.labels["peer"]]
    last.labels = {**last.labels, "peer": ", ".join(peers)}
    last.count += 1
    site = entry.labels.get("site")
    where = f"{site}: " if site else ""
    verb = "down" if entry.state == "firing" else "up again"
    durations = [d for d in (last.duration_seconds, entry.duration_seconds) if d is not None]
    last.duration_seconds = max(durations) if durations else None
    after = _after(last.duration_seconds) if entry.state != "firing" else ""
    last.text = f"{where}sessions {', '.join(peers)} {verb}{after}"
    return True


def _clock(ts: float, previous: float | None) -> str:
    """Return HH:MM:SS, with the date when it changed since the previous line."""
    moment = datetime.fromtimestamp(ts, UTC)
    if previous is None or datetime.fromtimestamp(previous, UTC).date() == moment.date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _header(incident: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    title = f"Incident {incident.get('id')}: {incident.get('summary') or incident.get('root_kind')}"
    opened = _ts(incident.get("opened_at"))
    rows = [
        ("Root cause", f"{incident.get('root_kind')} ({_labels_text(incident.get('root_labels') or {})})"),
        ("Severity", str(incident.get("severity", ""))),
        ("Status", str(incident.get("status", ""))),
        ("Opened", datetime.fromtimestamp(opened, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
    ]
    if incident.get("closed_at"):
        closed = _ts(incident["closed_at"])
        rows.append(("Closed", datetime.fromtimestamp(closed, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")))
        rows.append(("Lasted", format_duration(closed - opened)))
    return title, rows


def render_text(data: Mapping[str, Any]) -> str:
    """Return the timeline as plain text lines (UTC times)."""
    title, rows = _header(data.get("incident") or {})
    lines = [title, *(f"  {k.lower()}: {v}" for k, v in rows), ""]
    previous: float | None = None
    for entry in build_entries(data):
        lines.append(f"{_clock(entry.ts, previous)}  {entry.text}")
        previous = entry.ts
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(data: Mapping[str, Any]) -> str:
    """Return the timeline as Markdown for a post-mortem: a summary table and an event table."""
    title, rows = _header(data.get("incident") or {})
    out = [f"### {_md(title)}", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_md(v)} |" for k, v in rows]
    out += ["", "| Time (UTC) | Event | Severity | Lasted |", "|---|---|---|---|"]
    previous: float | None = None
    for entry in build_entries(data):
        stamp = _clock(entry.ts, previous)
        lasted = format_duration(entry.duration_seconds) if entry.duration_seconds is not None else ""
        out.append(f"| {stamp} | {_md(entry.text)} | {entry.severity} | {lasted} |")
        previous = entry.ts
    return "\n".join(out) + "\n"


def render_json(data: Mapping[str, Any]) -> str:
    """Return {"incident": ..., "entries": [...]} as JSON (entries carry the rendered text)."""
    entries = []
    for entry in build_entries(data):
        item = asdict(entry)
        item.pop("ts")
        entries.append(item)
    return orjson.dumps({"incident": data.get("incident"), "entries": entries}).decode()


def render(data: Mapping[str, Any], fmt: str = "text") -> str:
    """Render in one of text, markdown, json."""
    renderers = {"text": render_text, "markdown": render_markdown, "json": render_json}
    renderer = renderers.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown timeline format {fmt!r}: expected text, markdown or json")
    return renderer(data)
