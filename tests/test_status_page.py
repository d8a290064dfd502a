"""The status page at /: rendered in headless Chromium during a served replay of the Paris split."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from bgpwatch.api.page import NODE_H, NODE_W, layout, render_page, site_svg

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "bgpwatch" / "data" / "paris.jsonl.gz"
PARIS_CONFIG = ROOT / "bgpwatch" / "data" / "paris.yaml"
CHROMIUM = shutil.which("chromium")
TOKEN = "page-test-token"
# The recording's split lasts 13:28:40-13:28:56 stream time (17-33 s in): 12.8 s of wall time at this pace.
PACE = 1.25


def write_config(tmp: Path, port: int, token: str | None = None) -> Path:
    """Write the Paris config with the API on `port` and its state under `tmp`."""
    config = yaml.safe_load(PARIS_CONFIG.read_text())
    config["collector"]["exabgp"] = "external"
    config["collector"]["runtime_dir"] = str(tmp / "run")
    config["api"] = {"listen": f"127.0.0.1:{port}", **({"token": token} if token else {})}
    config["storage"] = {"path": str(tmp / "bgpwatch.db")}
    config["alerting"] = {"sinks": []}
    path = tmp / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_value_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    topology = {
        "at": 0.0,
        "state": "split",
        "islands": [[evil]],
        "sites": [{"name": evil, "state": "live"}, {"name": "b&b", "state": "down", "since": 0.0}],
        "visibility": {evil: {"b&b": 0.0}},
        "edges": [],
    }
    incident = {"id": '"><img src=x>', "summary": evil, "severity": "critical", "opened_at": "x"}
    timeline = [{"at": "2026-01-01T00:00:00Z", "state": "firing", "kind": "k", "summary": evil}]
    peers = [{"name": evil, "site": "b&b", "state": "down", "last_down_reason": "<b>"}]
    routers = [{"name": evil, "sys_name": "<i>", "sessions": []}]
    page = render_page(topology, [{"incident": incident, "timeline": timeline}], peers, routers, 0.0)
    assert "<script>" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "b&amp;b" in page
    assert page.count('class="site ') == 2 and page.count('class="island"') == 1


def test_site_graph_keeps_islands_apart_and_draws_the_cuts() -> None:
    names = ["a1", "a2", "a3", "b1", "b2", "c"]
    topology = {
        "islands": [["a1", "a2", "a3"], ["b1", "b2"]],
        "sites": [{"name": n, "state": "unknown" if n == "c" else "live"} for n in names],
        "visibility": {"a1": {"a2": 1.0, "b1": 0.0}, "a2": {"a1": 1.0}, "b1": {"a1": 0.25}},
        "edges": [["a1", "a2"]],
        "cut_by_sessions": [["a1", "b1"]],
    }
    svg = site_svg(topology)
    circles = re.findall(r'data-sites="([^"]*)"><circle cx="([-\d.]+)" cy="([-\d.]+)" r="([-\d.]+)"', svg)
    assert [c[0] for c in circles] == ["a1 a2 a3", "b1 b2"]
    positions, _ = layout(topology)
    for members, cx, cy, r in circles:
        for name, (x, y) in positions.items():
            inside = math.dist((x, y), (float(cx), float(cy))) < float(r)
            assert inside == (name in members.split()), (name, members)
    assert re.search(r'<g class="edge linked" data-pair="a1 a2">', svg)
    assert re.search(r'<g class="edge unlinked" data-pair="a1 b1">.*?a1→b1 0%.*?b1→a1 25%', svg)
    assert re.search(r'<g class="edge cut" data-pair="a1 b1">.*?stroke="#c01818"', svg)
    assert 'data-site="c" data-state="unknown"' in svg and 'stroke-dasharray="2 3"' in svg


@pytest.mark.parametrize(
    "sizes, alone", [((1, 1), 1), ((3, 2), 1), ((5, 1, 4, 2, 1), 3), ((20,), 0), ((2,) * 8, 2)]
)
def test_layout_never_overlaps(sizes: tuple[int, ...], alone: int) -> None:
    islands = [[f"i{i}s{j}" for j in range(n)] for i, n in enumerate(sizes)]
    names = [n for island in islands for n in island] + [f"down{k}" for k in range(alone)]
    topology = {"islands": islands, "sites": [{"name": n, "state": "live"} for n in names]}
    svg = site_svg(topology)
    circles = [
        (set(members.split()), (float(cx), float(cy)), float(r))
        for members, cx, cy, r in re.findall(
            r'data-sites="([^"]*)"><circle cx="([-\d.]+)" cy="([-\d.]+)" r="([-\d.]+)"', svg
        )
    ]
    assert len(circles) == len(islands)
    positions, _ = layout(topology)
    for members, centre, r in circles:  # an island's circle holds its sites and no other
        for name, point in positions.items():
            assert (math.dist(point, centre) < r) == (name in members), name
    for i, (_, c1, r1) in enumerate(circles):  # islands apart
        for _, c2, r2 in circles[i + 1 :]:
            assert math.dist(c1, c2) > r1 + r2
    points = list(positions.values())
    for i, (x1, y1) in enumerate(points):  # site boxes apart
        for x2, y2 in points[i + 1 :]:
            assert abs(x1 - x2) >= NODE_W or abs(y1 - y2) >= NODE_H


def test_the_page_needs_the_api_token(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bgpwatch.api.server import build_app
    from bgpwatch.config import load_config
    from bgpwatch.daemon import Daemon

    daemon = Daemon(load_config(write_config(tmp_path, free_port(), TOKEN)))

    async def check() -> None:
        async with TestClient(TestServer(build_app(daemon))) as client:
            assert (await client.get("/")).status == 401
            bad = await client.get("/", headers={"Authorization": "Bearer wrong"})
            assert bad.status == 401
            ok = await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status == 200 and ok.content_type == "text/html"
            text = await ok.text()
            assert '<svg id="site-graph"' in text and 'http-equiv="refresh"' in text
            assert text.count('class="site ') == 3 and TOKEN not in text
            odd = await client.get("/?x=1", headers={"Authorization": f"Bearer {TOKEN}"})
            assert odd.status == 400

    try:
        asyncio.run(check())
    finally:
        daemon.store.close()


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    # --no-sandbox: the tests run as root in CI; a private profile keeps runs apart.
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
def test_status_page_in_chromium_during_the_paris_split(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_config(tmp_path, port)
    log = (tmp_path / "replay.out").open("w")
    replay = subprocess.Popen(
        [sys.executable, "-m", "bgpwatch", "replay", "--config", str(config), "--serve", "--pace", str(PACE)]
        + ["--json", str(PARIS)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its private store, left behind by the kill below
    )
    try:
        deadline = time.monotonic() + 35
        topology: dict = {}
        while time.monotonic() < deadline and replay.poll() is None:
            try:
                topology = get_json(f"{base}/api/v1/topology")
            except OSError:
                topology = {}
            if topology.get("state") == "split":
                break
            time.sleep(0.25)
        assert topology.get("state") == "split", f"no split seen: {topology.get('state')}"
        started = time.monotonic()
        dom = chromium("--dump-dom", f"{base}/", profile=tmp_path / "profile-dom")
        shot = tmp_path / "status.png"
        picture = chromium(
            f"--screenshot={shot}", "--window-size=1200,900", f"{base}/", profile=tmp_path / "profile-shot"
        )
        took = time.monotonic() - started
        print(f"split seen, Chromium DOM + screenshot took {took:.1f} s")
        still = get_json(f"{base}/api/v1/topology").get("state")
    finally:
        # A served replay runs to its end whatever the signal (SIGTERM and ^C wait for it): kill it.
        replay.kill()
        replay.wait(timeout=10)
        log.close()
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert still == "split", f"the split ended while Chromium ran ({took:.1f} s): the DOM may show after it"
    html = dom.stdout
    assert re.search(r'<strong id="overall">SPLIT</strong>', html)
    # The site graph: two islands, par1 and par3 alone in each, par2 drawn down outside them.
    islands = re.findall(r'<g class="island" data-island="(\d)" data-sites="([^"]*)"', html)
    assert sorted(sites for _, sites in islands) == ["par1", "par3"]
    states = dict(re.findall(r'<g class="site [^"]*" data-site="([^"]+)" data-state="([^"]+)"', html))
    assert states == {"par1": "live", "par2": "down", "par3": "live"}
    assert "DOWN (confirmed)" in html
    # The open incidents with their timelines: the split and par2's death.
    articles = re.findall(r'<article class="incident[^"]*" data-id="[^"]+">(.*?)</article>', html, re.S)
    titles = [re.search(r"<h3>(.*?)</h3>", a).group(1) for a in articles]
    assert "live sites form 2 islands: {par1} and {par3}" in titles, titles
    assert any(title.startswith("site par2 down") for title in titles), titles
    split = articles[titles.index("live sites form 2 islands: {par1} and {par3}")]
    assert re.search(r"<td>13:28:4\d</td><td>firing</td><td>critical</td><td>topology_split</td>", split)
    # bgpwatch's sessions: par2's is down.
    peers = {
        name: state
        for state, name in re.findall(r'<tr class="peer state-([^"]+)" data-peer="([^"]+)">', html)
    }
    assert peers == {"par1-rr1": "up", "par2-rr1": "down", "par3-rr1": "up"}
    assert picture.returncode == 0 and shot.exists(), picture.stderr[-2000:]
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", header[16:24]) == (1200, 900)
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
    keep = os.environ.get("BGPWATCH_STATUS_SCREENSHOT")  # e.g. docs/status-page.png, to refresh the README's
    if keep:
        shutil.copyfile(shot, keep)
