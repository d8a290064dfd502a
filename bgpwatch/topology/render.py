"""Render a topology snapshot (`DetectionEngine.snapshot()`) as text a network engineer reads in a second."""

from __future__ import annotations

import time
from typing import Any

from bgpwatch.tables import fit, render_table


def _clock(at: float | None) -> str:
    return "-" if at is None else time.strftime("%H:%M:%S", time.gmtime(at))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{round(value * 100)}%"


def render_text(snapshot: dict[str, Any], width: int | None = None) -> str:
    """Return the sites, sessions, visibility matrix, islands, stale routes and services within `width`."""
    return "\n".join(fit(line, width) for line in _render(snapshot, width).split("\n"))


def _render(snapshot: dict[str, Any], width: int | None) -> str:
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

    rows = []
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
        rows.append([site["name"], state, sessions])
    lines.append(render_table(rows, ["site", "state", "sessions"], width, flexible=("sessions",)))

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
    grid = [[row] + [_percent(matrix.get(row, {}).get(col)) for col in names] for row in names]
    lines.append(_matrix(grid, names, width))

    stale = snapshot.get("stale") or []
    if stale:
        lines += ["", "stale routes (site gone, routes still held):"]
        lines += ["  " + _stale(item) for item in stale]
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
    outside = snapshot.get("outside")
    if outside:
        feed = outside.get("feed") or {}
        seen = ", ".join(
            f"{prefix} {v['public_peers']}/{v['public_peers_seen']}"
            for prefix, v in (outside.get("prefixes") or {}).items()
            if v.get("public_peers_seen")
        )
        lines += [
            "",
            f"outside (RIS Live, feed {'up' if feed.get('up') else 'down'}: {feed.get('reason')}): "
            f"{feed.get('public_peers', 0)} public peers; prefixes seen now/since up: {seen or 'none yet'}",
        ]
    firing = snapshot.get("alerts") or []
    lines += ["", f"alerts firing: {len(firing)}" + (" (bgpwatch alerts)" if firing else "")]
    return "\n".join(lines)


def _matrix(grid: list[list[str]], names: list[str], width: int | None) -> str:
    """Return the visibility matrix right-aligned under its site names (the row names are the first column)."""
    widths = [max([len(r[0]) for r in grid] + [4])] + [max(5, len(n)) for n in names]
    lines = ["  ".join([" " * widths[0]] + [n.rjust(w) for n, w in zip(names, widths[1:], strict=True)])]
    for row in grid:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    return "\n".join(line.rstrip() for line in lines)


def _stale(item: Any) -> str:
    """Return one stale-routes entry: the gone site and who still holds how many of its routes."""
    if not isinstance(item, dict):
        return _describe(item)
    holders = item.get("holders") or {}
    if isinstance(holders, dict):
        held = ", ".join(f"{name} ({count})" for name, count in sorted(holders.items()))
    else:
        held = ", ".join(map(_describe, holders))
    return f"{item.get('site', '?')}: still held by {held or '(nobody)'}"


def _describe(item: Any) -> str:
    """Return a value as words, never a Python repr (lists joined, mappings as key=value)."""
    if isinstance(item, dict):
        return " ".join(f"{k}={_describe(v)}" for k, v in item.items())
    if isinstance(item, list | tuple | set):
        return ",".join(_describe(v) for v in item)
    return str(item)


def _reach(reachable: bool | None, site: str, snapshot: dict) -> str:
    """Say whether a service is reachable from a site; unknown when bgpwatch has no view of the site."""
    if reachable is None:
        state = next((x.get("state") for x in snapshot.get("sites", []) if x.get("name") == site), None)
        return f"unknown (no converged view of {site}{f', site {state}' if state else ''})"
    return "reachable" if reachable else "UNREACHABLE"


# -- Graphviz ------------------------------------------------------------------------------------
# State -> (node shape, border colour, fill colour, extra style): distinct without colour, too.
DOT_STATES = {
    "live": ("box", "darkgreen", "palegreen", ""),
    "suspected": ("diamond", "darkorange", "moccasin", ""),
    "down": ("octagon", "red3", "mistyrose", ""),
    "unknown": ("ellipse", "grey40", "grey90", ",dashed"),
}


def dot_quote(text: Any) -> str:
    """Return text as a quoted Graphviz ID (names come from config and the network)."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _iso(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _dot_node(name: str, text: str, state: str) -> str:
    shape, colour, fill, extra = DOT_STATES.get(state, DOT_STATES["unknown"])
    return (
        f"{dot_quote(name)} [label={dot_quote(text)}, shape={shape}, color={colour},"
        f' fillcolor={fill}, style="filled{extra}"];'
    )


def _site_label(site: dict[str, Any]) -> str:
    """Return a site's node label: name, and for a site not live its state, confirmation and since."""
    if site["state"] == "live":
        return site["name"]
    state = site["state"].upper()
    if site.get("confirmation"):
        state += f" ({site['confirmation']})"
    return f"{site['name']}\n{state}\nsince {_clock(site.get('since'))} UTC"


def render_dot(snapshot: dict[str, Any]) -> str:
    """Return a topology snapshot as Graphviz: islands as clusters, states, visibility, BMP cuts, legend."""
    sites = snapshot.get("sites", [])
    by_name = {site["name"]: site for site in sites}
    islands = [[n for n in island if n in by_name] for island in snapshot.get("islands", [])]
    state = {"split": "SPLIT", "unknown": "unknown"}.get(str(snapshot.get("state")), "whole")
    title = f"bgpwatch topology at {_iso(snapshot.get('at'))}: {state}, {len(islands)} island(s)"
    lines = [
        "graph bgpwatch {",
        f"  graph [label={dot_quote(title)}, labelloc=t, fontname=Helvetica];",
        "  node [shape=box, style=filled, fillcolor=white, fontname=Helvetica];",
        "  edge [fontname=Helvetica, fontsize=10];",
    ]
    clustered = set()
    for number, island in enumerate(islands, 1):
        lines.append(f"  subgraph cluster_{number} {{")
        lines.append(f'    label={dot_quote(f"island {number}")}; style="rounded,dashed"; color=darkgreen;')
        for name in island:
            lines.append("    " + _dot_node(name, _site_label(by_name[name]), by_name[name]["state"]))
        lines.append("  }")
        clustered.update(island)
    for site in sites:
        if site["name"] not in clustered:
            lines.append("  " + _dot_node(site["name"], _site_label(site), site["state"]))

    matrix = snapshot.get("visibility", {})
    linked = {tuple(sorted(edge)) for edge in snapshot.get("edges", [])}
    names = [site["name"] for site in sites]
    for i, s in enumerate(names):
        for t in names[i + 1 :]:
            st, ts = matrix.get(s, {}).get(t), matrix.get(t, {}).get(s)
            if st is None and ts is None:
                continue
            label = f"{s}→{t} {_ratio(st)}\n{t}→{s} {_ratio(ts)}"
            style = "solid, color=darkgreen" if tuple(sorted((s, t))) in linked else "dashed, color=grey50"
            lines.append(f"  {dot_quote(s)} -- {dot_quote(t)} [label={dot_quote(label)}, style={style}];")
    for a, b in snapshot.get("cut_by_sessions") or []:
        lines.append(
            f"  {dot_quote(a)} -- {dot_quote(b)} [label={dot_quote('BMP: no session path')},"
            " style=dashed, color=red, fontcolor=red, penwidth=2];"
        )
    lines += _dot_legend(snapshot.get("threshold"))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "?" if value is None else f"{round(value * 100)}%"


def _dot_legend(threshold: float | None) -> list[str]:
    """Return the legend cluster: one node per site state and the meaning of the edge styles."""
    limit = "the threshold" if threshold is None else f"{round(threshold * 100)}%"
    lines = ["  subgraph cluster_legend {", '    label="legend"; style=solid; color=grey60; fontsize=10;']
    for state in DOT_STATES:
        lines.append("    " + _dot_node(f"legend_{state}", state, state))
    edges = (
        f"solid green: visibility >= {limit} (linked)\\l"
        "dashed grey: below it, not linked\\l"
        "dashed red: BMP, no established session path\\l"
        "edge label: share of the other's prefixes seen\\l"
    )
    lines.append(f'    legend_edges [label="{edges}", shape=plaintext, style=""];')
    lines.append("  }")
    return lines
