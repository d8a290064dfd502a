"""The daemon's read-only status page at ``/``: the site graph as SVG, open incidents, sessions, BMP routers.

Rendered on the server from the same data as the JSON API (no JavaScript, no graphviz binary) and
refreshed by the browser with a meta refresh.  Every value is HTML-escaped: site, peer and router
names come from the config, and summaries, reasons and sysNames from the network.
"""

from __future__ import annotations

import math
import time
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bgpwatch.daemon import Daemon

REFRESH_SECONDS = 5
NODE_W, NODE_H = 150, 54
ISLAND_PAD = NODE_W / 2 + 14  # an island's circle around its members' ring
# State -> (stroke, fill, dash): distinct by colour and by outline (dashed unknown, thick down).
STATE_STYLE = {
    "live": ("#1b7a30", "#d8f5dd", ""),
    "suspected": ("#c46a00", "#ffe8c2", "6 3"),
    "down": ("#c01818", "#ffd9d9", ""),
    "unknown": ("#666666", "#eeeeee", "2 3"),
}
INCIDENT_TIMELINE_MAX = 40
NAME_CLASS = ' class="site-name"'


def _e(value: Any) -> str:
    """Return a value as escaped HTML text (None as a dash)."""
    return "-" if value is None else escape(str(value), quote=True)


def _clock(at: Any) -> str:
    """Return a time (epoch seconds or ISO 8601 text) as HH:MM:SS UTC."""
    if at is None:
        return "-"
    if isinstance(at, int | float):
        return time.strftime("%H:%M:%S", time.gmtime(at))
    text = str(at)
    return text[11:19] if len(text) >= 19 and text[10] in "T " else text


def _iso(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _percent(value: float | None) -> str:
    return "?" if value is None else f"{round(value * 100)}%"


def status_page(daemon: Daemon, routers: list[dict[str, Any]]) -> str:
    """Return the status page of a running daemon (`routers` is the /api/v1/routers answer)."""
    now = daemon.stream_now()
    sessions = daemon.pipeline.sessions
    peers = [sessions.to_dict(session, now) for session in sessions.by_address.values()]
    incidents = []
    for incident in daemon.incidents():
        if incident.get("status") != "open":
            continue
        found = daemon.incident(incident["id"])
        incidents.append({"incident": incident, "timeline": found["timeline"] if found else []})
    return render_page(daemon.topology(), incidents, peers, routers, now)


def render_page(
    topology: dict[str, Any],
    incidents: list[dict[str, Any]],
    peers: list[dict[str, Any]],
    routers: list[dict[str, Any]],
    now: float | None,
) -> str:
    """Return the whole HTML page from the API's views (topology snapshot, open incidents, peers, routers)."""
    state = str(topology.get("state", "unknown"))
    islands = topology.get("islands", [])
    headline = {"split": "SPLIT", "whole": "whole"}.get(state, "unknown")
    described = " | ".join("{" + ", ".join(island) + "}" for island in islands) or "(no live site)"
    body = [
        f'<header><h1>bgpwatch</h1><p id="summary" class="overall-{_e(state)}">topology '
        f'<strong id="overall">{_e(headline)}</strong>: {len(islands)} island(s) {_e(described)}'
        f' &middot; at <span id="at">{_e(_iso(topology.get("at", now)))}</span>'
        f" &middot; refreshed every {REFRESH_SECONDS} s</p></header>",
        '<main><div class="column"><section id="topology"><h2>Sites</h2>',
        site_svg(topology) if "sites" in topology else f"<p>{_e(topology.get('error', 'no topology'))}</p>",
        "</section>",
        _peers(peers),
        _routers(routers),
        '</div><div class="column">',
        _incidents(incidents),
        "</div></main>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>bgpwatch: {_e(headline)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def layout(topology: dict[str, Any]) -> tuple[dict[str, tuple[float, float]], list[tuple[list[str], float]]]:
    """Return site positions and the island groups: islands (then each other site) around a circle."""
    names = [site["name"] for site in topology.get("sites", [])]
    islands = [[n for n in island if n in names] for island in topology.get("islands", [])]
    placed = {n for island in islands for n in island}
    groups = [island for island in islands if island] + [[n] for n in names if n not in placed]
    # Each group on a small circle of its own, the groups on a big one: islands stay apart.
    radii = [
        0.0 if len(g) == 1 else max(NODE_W * 0.75, len(g) * (NODE_W + 20) / (2 * math.pi)) for g in groups
    ]
    # Far enough apart that neighbouring islands' circles (see site_svg) do not overlap: chord >= reaches.
    reach = [r + ISLAND_PAD + 50 for r in radii]  # 50: room for the edge labels between islands
    outer = 0.0
    if len(groups) > 1:
        chord = 2 * math.sin(math.pi / len(groups))
        outer = max(NODE_W * 1.2, max(reach[i] + reach[i - 1] for i in range(len(groups))) / chord)
    positions: dict[str, tuple[float, float]] = {}
    circles = []
    for i, (group, radius) in enumerate(zip(groups, radii, strict=True)):
        angle = -math.pi / 2 + 2 * math.pi * i / len(groups)
        cx, cy = outer * math.cos(angle), outer * math.sin(angle)
        for j, name in enumerate(group):
            inner = -math.pi / 2 + 2 * math.pi * j / len(group)
            positions[name] = (cx + radius * math.cos(inner), cy + radius * math.sin(inner))
        if group in islands:
            circles.append((group, radius))
    return positions, circles


def site_svg(topology: dict[str, Any]) -> str:
    """Return the site graph as an SVG: islands as shaded areas, states, visibility, BMP cuts."""
    sites = {site["name"]: site for site in topology.get("sites", [])}
    positions, circles = layout(topology)
    out: list[str] = []
    for number, (island, radius) in enumerate(circles, 1):
        xs = [positions[n][0] for n in island]
        ys = [positions[n][1] for n in island]
        cx, cy = sum(xs) / len(xs), sum(ys) / len(ys)
        r = radius + ISLAND_PAD
        out.append(
            f'<g class="island" data-island="{number}" data-sites="{_e(" ".join(island))}">'
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="#eef6ff" stroke="#5b8fd6"'
            f' stroke-dasharray="8 4"/><text x="{cx:.1f}" y="{cy - r + 16:.1f}" class="island-label">'
            f"island {number}</text></g>"
        )
    out += _svg_edges(topology, positions)
    for name, (x, y) in positions.items():
        out.append(_svg_site(sites[name], x, y))
    if not positions:
        return "<p>no sites configured</p>"
    pad = 30
    xs = [x for x, _ in positions.values()]
    ys = [y for _, y in positions.values()]
    reach = max((r + ISLAND_PAD for _, r in circles), default=NODE_W / 2)
    left, top = min(xs) - reach - pad, min(ys) - reach - pad
    width, height = max(xs) - min(xs) + 2 * (reach + pad), max(ys) - min(ys) + 2 * (reach + pad)
    return (
        f'<svg id="site-graph" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="site graph"'
        f' viewBox="{left:.0f} {top:.0f} {width:.0f} {height:.0f}" width="{min(width, 900):.0f}">'
        + "".join(out)
        + "</svg>"
        + _svg_legend()
    )


def _svg_edges(topology: dict[str, Any], positions: dict[str, tuple[float, float]]) -> list[str]:
    """Return the site pairs: solid when linked, dashed grey when not, BMP cuts dashed red."""
    matrix = topology.get("visibility", {})
    linked = {tuple(sorted(edge)) for edge in topology.get("edges", [])}
    names = list(positions)
    out = []
    for i, s in enumerate(names):
        for t in names[i + 1 :]:
            st, ts = matrix.get(s, {}).get(t), matrix.get(t, {}).get(s)
            if st is None and ts is None:
                continue
            (x1, y1), (x2, y2) = positions[s], positions[t]
            on = tuple(sorted((s, t))) in linked
            stroke = 'stroke="#1b7a30" stroke-width="2"' if on else 'stroke="#999" stroke-dasharray="5 4"'
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            label = "".join(
                f'<tspan x="{mx:.1f}" dy="{dy}">{_e(line)}</tspan>'
                for dy, line in ((0, f"{s}→{t} {_percent(st)}"), (12, f"{t}→{s} {_percent(ts)}"))
            )
            out.append(
                f'<g class="edge {"linked" if on else "unlinked"}" data-pair="{_e(s)} {_e(t)}">'
                f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {stroke}/>'
                f'<text x="{mx:.1f}" y="{my - 6:.1f}" class="edge-label">{label}</text>'
                "</g>"
            )
    for a, b in topology.get("cut_by_sessions") or []:
        if a in positions and b in positions:
            (x1, y1), (x2, y2) = positions[a], positions[b]
            out.append(
                f'<g class="edge cut" data-pair="{_e(a)} {_e(b)}"><line x1="{x1:.1f}" y1="{y1:.1f}"'
                f' x2="{x2:.1f}" y2="{y2:.1f}" stroke="#c01818" stroke-width="2.5" stroke-dasharray="3 4"/>'
                f'<text x="{(x1 + x2) / 2:.1f}" y="{(y1 + y2) / 2 + 12:.1f}" class="edge-label cut-label">'
                "BMP: no session path</text></g>"
            )
    return out


def _svg_site(site: dict[str, Any], x: float, y: float) -> str:
    """Return one site's box: name, and unless live its state, confirmation and since."""
    state = site.get("state", "unknown")
    stroke, fill, dash = STATE_STYLE.get(state, STATE_STYLE["unknown"])
    width = 4 if state == "down" else 2
    detail = "live" if state == "live" else state.upper()
    if site.get("confirmation"):
        detail += f" ({site['confirmation']})"
    lines = [site["name"], detail]
    if state != "live":
        lines.append(f"since {_clock(site.get('since'))}")
    text = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if i == 0 else 15}"{NAME_CLASS if i == 0 else ""}>{_e(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    top = y - NODE_H / 2
    return (
        f'<g class="site state-{_e(state)}" data-site="{_e(site["name"])}" data-state="{_e(state)}">'
        f'<rect x="{x - NODE_W / 2:.1f}" y="{top:.1f}" width="{NODE_W}" height="{NODE_H}" rx="8"'
        f' fill="{fill}" stroke="{stroke}" stroke-width="{width}"'
        + (f' stroke-dasharray="{dash}"' if dash else "")
        + f'/><text x="{x:.1f}" y="{top + 17:.1f}" text-anchor="middle">{text}</text></g>'
    )


def _svg_legend() -> str:
    items = "".join(
        f'<span class="legend-item"><span class="swatch" style="background:{fill};border-color:{stroke};'
        f'border-style:{"dashed" if dash else "solid"}"></span>{state}</span>'
        for state, (stroke, fill, dash) in STATE_STYLE.items()
    )
    return (
        f'<p class="legend">{items}<span class="legend-item">green line: linked (visibility both ways'
        " at the threshold) &middot; dashed grey: below &middot; dashed red: BMP, no session path"
        " &middot; shaded circles: islands</span></p>"
    )


def _incidents(incidents: list[dict[str, Any]]) -> str:
    """Return the open incidents, each with its timeline."""
    out = [f'<section id="incidents"><h2>Open incidents ({len(incidents)})</h2>']
    if not incidents:
        out.append("<p>none</p>")
    for item in incidents:
        incident = item["incident"]
        out.append(
            f'<article class="incident severity-{_e(incident.get("severity"))}" data-id="{_e(incident["id"])}">'
            f"<h3>{_e(incident.get('summary'))}</h3><p>{_e(incident.get('severity'))} &middot; opened"
            f" {_e(_clock(incident.get('opened_at')))} UTC &middot; {_e(incident.get('alerts_firing'))}"
            f" alert(s) firing &middot; id <code>{_e(incident['id'])}</code></p>"
            '<table class="timeline"><tr><th>at</th><th>state</th><th>severity</th><th>alert</th>'
            "<th>summary</th></tr>"
        )
        timeline = item.get("timeline", [])
        for t in timeline[-INCIDENT_TIMELINE_MAX:]:
            out.append(
                f'<tr class="{_e(t.get("state"))}"><td>{_e(_clock(t.get("at")))}</td><td>{_e(t.get("state"))}'
                f"</td><td>{_e(t.get('severity'))}</td><td>{_e(t.get('kind'))}</td>"
                f"<td>{_e(t.get('summary'))}</td></tr>"
            )
        out.append("</table>")
        if len(timeline) > INCIDENT_TIMELINE_MAX:
            out.append(f"<p>(the last {INCIDENT_TIMELINE_MAX} of {len(timeline)} transitions)</p>")
        out.append("</article>")
    out.append("</section>")
    return "\n".join(out)


def _peers(peers: list[dict[str, Any]]) -> str:
    """Return bgpwatch's own sessions."""
    out = [
        f'<section id="sessions"><h2>Sessions ({len(peers)})</h2><table>'
        "<tr><th>peer</th><th>site</th><th>address</th><th>state</th><th>since</th><th>converged</th>"
        "<th>last down</th></tr>"
    ]
    for p in peers:
        down = p.get("last_down_reason")
        if down and p.get("last_down_at") is not None:
            down = f"{_clock(p['last_down_at'])} {down}"
        out.append(
            f'<tr class="peer state-{_e(p.get("state"))}" data-peer="{_e(p.get("name"))}">'
            f"<td>{_e(p.get('name'))}</td><td>{_e(p.get('site'))}</td><td>{_e(p.get('address'))}</td>"
            f"<td>{_e(p.get('state'))}</td><td>{_e(_clock(p.get('since')))}</td>"
            f"<td>{'yes' if p.get('converged') else 'no'}</td><td>{_e(down)}</td></tr>"
        )
    out.append("</table></section>")
    return "\n".join(out)


def _routers(routers: list[dict[str, Any]]) -> str:
    """Return the BMP routers and how many of their monitored sessions are up."""
    out = [f'<section id="routers"><h2>BMP routers ({len(routers)})</h2>']
    if not routers:
        out.append("<p>none configured or heard</p></section>")
        return "\n".join(out)
    out.append(
        "<table><tr><th>router</th><th>site</th><th>address</th><th>state</th><th>since</th>"
        "<th>sessions up</th><th>sysName</th></tr>"
    )
    for r in routers:
        sessions = r.get("sessions", [])
        up = sum(1 for s in sessions if s.get("state") == "up")
        out.append(
            f'<tr class="router state-{_e(r.get("state"))}" data-router="{_e(r.get("name"))}">'
            f"<td>{_e(r.get('name'))}</td><td>{_e(r.get('site'))}</td><td>{_e(r.get('address'))}</td>"
            f"<td>{_e(r.get('state'))}</td><td>{_e(_clock(r.get('since')))}</td>"
            f"<td>{up} of {len(sessions)}</td><td>{_e(r.get('sys_name'))}</td></tr>"
        )
    out.append("</table></section>")
    return "\n".join(out)


CSS = """
main { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 2em; }
#site-graph { max-width: 100%; height: auto; }
body { font-family: Helvetica, Arial, sans-serif; margin: 1em 2em; color: #222; }
h1 { display: inline; margin-right: .5em; } h2 { margin: 1em 0 .3em; font-size: 1.2em; }
header p { display: inline; } .overall-split strong { color: #c01818; } .overall-whole strong { color: #1b7a30; }
svg text { font-size: 12px; } .site-name { font-weight: bold; } .edge-label { font-size: 10px; fill: #444;
  text-anchor: middle; } .cut-label { fill: #c01818; } .island-label { fill: #5b8fd6; font-size: 11px;
  text-anchor: middle; }
table { border-collapse: collapse; font-size: .9em; } td, th { border: 1px solid #ccc; padding: 2px 6px;
  text-align: left; } td:first-child { white-space: nowrap; } tr.firing td:nth-child(2) { color: #c01818; font-weight: bold; }
tr.state-down td:nth-child(4), tr.state-idle td:nth-child(4) { color: #c01818; font-weight: bold; }
.incident { border-left: 4px solid #c46a00; padding-left: .7em; margin-bottom: 1em; }
.severity-critical { border-color: #c01818; } .incident h3 { margin: .2em 0; font-size: 1em; }
.legend { font-size: .8em; color: #444; } .legend-item { margin-right: 1em; }
.swatch { display: inline-block; width: 1em; height: .8em; border: 2px solid; margin-right: .3em; }
"""
