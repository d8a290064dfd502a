"""Render a topology snapshot (`DetectionEngine.snapshot()`) as text a network engineer reads in a second."""

from __future__ import annotations

import time
from typing import Any


def _clock(at: float | None) -> str:
    return "-" if at is None else time.strftime("%H:%M:%S", time.gmtime(at))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{round(value * 100)}%"


def render_text(snapshot: dict[str, Any]) -> str:
    """Return the sites, sessions, visibility matrix, islands, stale routes and services as text."""
    if "sites" not in snapshot:
        return snapshot.get("error", "no topology")
    sites = snapshot["sites"]
    names = [site["name"] for site in sites]
    islands = snapshot.get("islands", [])
    whole = {"split": "SPLIT", "unknown": "UNKNOWN (no session converged yet)"}.get(
        str(snapshot.get("state")), "SPLIT" if snapshot.get("split") else "whole"
    )
    described = " | ".join("{" + ", ".join(island) + "}" for island in islands) or "(no live site)"
    lines = [
        f"topology at {_clock(snapshot.get('at'))} UTC: {whole}, {len(islands)} island(s): {described}",
        "",
    ]

    width = max([4] + [len(n) for n in names])
    lines.append(f"{'SITE':{width}}  {'STATE':24}  SESSIONS")
    for site in sites:
        state = site["state"].upper() if site["state"] != "live" else "live"
        if site.get("confirmation"):
            state += f" ({site['confirmation']})"
        if site.get("settling"):
            state += " settling"
        state += f" {_clock(site.get('since'))}" if site["state"] != "live" else ""
        sessions = ", ".join(
            f"{s['name']} {s['state']}"
            + ("" if s.get("converged", True) or s["state"] != "up" else " (no EoR yet)")
            for s in site.get("sessions", [])
        )
        lines.append(f"{site['name']:{width}}  {state:24}  {sessions}")

    evidence = [
        (site["name"], line) for site in sites for line in site.get("evidence", []) if site["state"] != "live"
    ]
    cuts = snapshot.get("cut_by_sessions") or []
    if evidence or cuts:
        lines += ["", "evidence:"]
        lines += [f"  {name}: {line}" for name, line in evidence]
        lines += [f"  {a} - {b}: no established BGP session path (BMP)" for a, b in cuts]
    heard = snapshot.get("bmp_routers_heard")
    if heard:
        lines += ["", f"BMP routers heard: {', '.join(heard)}"]

    matrix = snapshot.get("visibility", {})
    lines += ["", "visibility: share of the column site's prefixes each row site has a route to"]
    lines.append(" " * (width + 2) + "  ".join(f"{n:>{max(5, len(n))}}" for n in names))
    for row in names:
        cells = "  ".join(f"{_percent(matrix.get(row, {}).get(col)):>{max(5, len(col))}}" for col in names)
        lines.append(f"{row:{width}}  {cells}")

    stale = snapshot.get("stale") or []
    if stale:
        lines += ["", "stale routes (site gone, routes still held):"]
        lines += [f"  {item}" if not isinstance(item, dict) else "  " + _describe(item) for item in stale]
    missing = snapshot.get("missing") or []
    if missing:
        lines += ["", "prefixes missing:"]
        lines += [
            f"  {m['prefix']} of {m['site']} missing at {', '.join(m['missing_at'])}" for m in missing[:20]
        ]
        if len(missing) > 20:
            lines.append(f"  ... and {len(missing) - 20} more")
    unconverged = snapshot.get("not_converged") or []
    if unconverged:
        lines += ["", "not converged (up, no End-of-RIB yet): " + ", ".join(map(_describe, unconverged))]
    services = snapshot.get("services") or []
    if services:
        lines += ["", "services:"]
        lines += [
            f"  {s['service']} from {s['site']}: {_reach(s['reachable'], s['site'], snapshot)}"
            for s in services
        ]
    lost = (snapshot.get("collector") or {}).get("sessions_lost") or []
    if lost:
        lines += ["", "sessions lost on bgpwatch's side (collector): " + ", ".join(lost)]
    firing = snapshot.get("alerts") or []
    lines += ["", f"alerts firing: {len(firing)}" + (" (bgpwatch alerts)" if firing else "")]
    return "\n".join(lines)


def _describe(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    return " ".join(f"{k}={v}" for k, v in item.items())


def _reach(reachable: bool | None, site: str, snapshot: dict) -> str:
    """Say whether a service is reachable from a site; unknown when bgpwatch has no view of the site."""
    if reachable is None:
        state = next((x.get("state") for x in snapshot.get("sites", []) if x.get("name") == site), None)
        return f"unknown (no converged view of {site}{f', site {state}' if state else ''})"
    return "reachable" if reachable else "UNREACHABLE"
