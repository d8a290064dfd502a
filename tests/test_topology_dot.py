"""The topology as Graphviz: islands as clusters, site states, visibility both ways, BMP cuts, legend, time."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bgpwatch.config import load_config
from bgpwatch.events import DOWN, UP, Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.rib import Rib
from bgpwatch.sessions import SessionTable
from bgpwatch.topology import SiteModel, Topology
from bgpwatch.topology.render import render_dot

CONFIG = """
collector: {local_as: 65000, router_id: 192.0.2.254}
sites:
  - name: par1
    prefixes: [203.0.113.0/26, 2001:db8:1001::/48]
    peers: [{name: par1-rr1, address: 192.0.2.2, peer_as: 65001}]
  - name: par2
    prefixes: [203.0.113.64/26]
    peers: [{name: par2-rr1, address: 192.0.2.6, peer_as: 65002}]
  - name: par3
    prefixes: [203.0.113.128/25, 2001:db8:1003::/48]
    peers: [{name: par3-rr1, address: 192.0.2.10, peer_as: 65003}]
"""
PATHS = {
    "192.0.2.2": {"par1": (), "par2": (65002,), "par3": (65003,)},
    "192.0.2.6": {"par1": (65001,), "par2": (), "par3": (65003,)},
    "192.0.2.10": {"par1": (65001,), "par2": (65002,), "par3": ()},
}


def feed(topology: Topology, rib: Rib, event) -> None:
    session = topology.sessions.apply(event)
    topology.apply(event, rib.apply(event), event.at, session)
    topology.evaluate(event.at)


def withdraw(topology: Topology, rib: Rib, at: float, peer: str, site: str) -> None:
    for family in (4, 6):
        keys = tuple(k for f, k in topology.model.expected[site] if f == family)
        if keys:
            feed(topology, rib, Withdraw(at, peer, family, keys))


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    """Return the three sites converged, then par2 dead (session down, withdrawn) and par1-par3 cut."""
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    rib = Rib()
    topology = Topology(SiteModel(config), SessionTable(config))
    for peer, by_site in PATHS.items():
        feed(topology, rib, SessionState(10.0, peer, UP))
        for site, as_path in by_site.items():
            attrs = rib.pool.intern(as_path=as_path, next_hop=peer)
            for family in (4, 6):
                keys = tuple(k for f, k in topology.model.expected[site] if f == family)
                if keys:
                    feed(topology, rib, Announce(10.0, peer, family, keys, attrs))
        for family in (4, 6):
            feed(topology, rib, EndOfRib(10.0, peer, family))
    topology.evaluate(40.0)
    assert topology.islands == [["par1", "par2", "par3"]]
    feed(topology, rib, SessionState(50.0, "192.0.2.6", DOWN, "hold timer expired"))
    withdraw(topology, rib, 50.5, "192.0.2.2", "par2")
    withdraw(topology, rib, 50.5, "192.0.2.10", "par2")
    withdraw(topology, rib, 60.0, "192.0.2.2", "par3")
    withdraw(topology, rib, 60.0, "192.0.2.10", "par1")
    topology.evaluate(61.0)
    assert topology.states["par2"].state == "down"
    assert topology.islands == [["par1"], ["par3"]]
    return topology


def clusters(dot: str) -> dict[str, list[str]]:
    """Return each cluster's label and the node ids declared inside it."""
    found = {}
    for body in re.findall(r"subgraph cluster_\w+ \{\n(.*?)\n  \}", dot, re.S):
        label = re.search(r'label="([^"]*)"', body).group(1)
        found[label] = re.findall(r'^    "([^"]+)" \[', body, re.M)
    return found


def node(dot: str, name: str) -> str:
    return re.search(rf'^\s*"{name}" \[(.*)\];$', dot, re.M).group(1)


def test_split_with_a_down_site(topology: Topology) -> None:
    dot = topology.to_dot()
    assert dot.startswith("graph bgpwatch {") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    # Live sites clustered by island; the down site outside every island.
    groups = clusters(dot)
    assert groups["island 1"] == ["par1"] and groups["island 2"] == ["par3"]
    assert not any("par2" in names for names in groups.values())
    down = node(dot, "par2")
    assert "shape=octagon" in down and "color=red3" in down
    assert r"par2\nDOWN (confirmed)\nsince 00:00:50 UTC" in down
    live = node(dot, "par1")
    assert "shape=box" in live and "color=darkgreen" in live and r'label="par1"' in live
    # Visibility both ways on each measured pair; par2 has no active vantage point: "?" from it.
    assert re.search(r'"par1" -- "par3" \[label="par1→par3 0%\\npar3→par1 0%", style=dashed', dot)
    assert re.search(r'"par1" -- "par2" \[label="par1→par2 0%\\npar2→par1 \?"', dot)
    # No BMP here: no red cut edge; legend and time present.
    assert "color=red," not in dot
    assert set(groups["legend"]) == {"legend_live", "legend_suspected", "legend_down", "legend_unknown"}
    assert "bgpwatch topology at 1970-01-01T00:01:01Z: SPLIT, 2 island(s)" in dot


def test_whole_topology_links_solid_and_bmp_cuts_dashed_red(topology: Topology) -> None:
    snapshot = topology.snapshot()
    # The same render with the pair cut by the BMP-reported sessions (as Topology.cut_by_sessions holds it).
    snapshot["cut_by_sessions"] = [["par1", "par3"]]
    dot = render_dot(snapshot)
    cut = re.findall(r'^  "par1" -- "par3" \[(.*)\];$', dot, re.M)
    assert len(cut) == 2  # the visibility edge and the cut
    assert "style=dashed, color=red" in cut[1] and "BMP: no session path" in cut[1]
    # One island, everything linked: solid green edges, one cluster holding all.
    snapshot = dict(snapshot, islands=[["par1", "par2", "par3"]], edges=[["par1", "par3"]], state="whole")
    snapshot["sites"] = [dict(s, state="live", confirmation=None) for s in snapshot["sites"]]
    snapshot["cut_by_sessions"] = []
    dot = render_dot(snapshot)
    assert clusters(dot)["island 1"] == ["par1", "par2", "par3"]
    assert re.search(r'"par1" -- "par3" \[[^\n]*style=solid, color=darkgreen', dot)
    assert re.search(r'"par1" -- "par2" \[[^\n]*style=dashed, color=grey50', dot)
    assert ": whole, 1 island(s)" in dot


def test_names_are_quoted_and_unknown_sites_distinct() -> None:
    snapshot = {
        "at": None,
        "state": "unknown",
        "islands": [],
        "sites": [{"name": 'a"b\\c', "state": "unknown", "since": None, "confirmation": None}],
        "visibility": {},
    }
    dot = render_dot(snapshot)
    line = next(x for x in dot.splitlines() if x.startswith('  "a'))
    assert line.startswith(r'  "a\"b\\c" [label="a\"b\\c\nUNKNOWN\nsince - UTC"')
    assert "shape=ellipse" in line and 'style="filled,dashed"' in line
    assert "at -: unknown, 0 island(s)" in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz (dot) not installed")
def test_graphviz_accepts_it(topology: Topology) -> None:
    proc = subprocess.run(
        ["dot", "-Tsvg"], input=topology.to_dot(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert "island 1" in proc.stdout and "par2" in proc.stdout
