"""Incident ids: URL-safe, identical on both members of an HA pair, old ones still readable.

The last test: an HA pair of bgpwatch instances, a real two-node Alertmanager cluster, one
notification per incident.

Two Debian prometheus-alertmanager processes gossip on loopback (a cluster, as deployed); two
`bgpwatch replay --serve --pace` processes (the pair) replay the Paris recording, the second one
stamped 7 ms later (its collector heard the same messages a few ms apart), each posting to both
Alertmanagers (one alertmanager sink per member, as the shipped config asks).  The recording is
shifted so that the first incident opens at .997 s on one member and at .004 s of the next second
on the other: ids made of the second it opened in (the old scheme) would differ there, and the
cluster would send that incident twice.  The receiver is a local webhook recorder; the routing
groups by `incident` like the shipped one, every incident is notified once (group_interval 1 h).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpwatch import playback
from bgpwatch.alerts.lifecycle import AlertBook, Finding, incident_id, iso_s, parse_iso
from bgpwatch.config import load_config_text
from tests import alertmanager_server
from tests.restart_feed import ROOT, encode, line_time, recording_lines, retime

needs_alertmanager = pytest.mark.skipif(
    not alertmanager_server.available(), reason=alertmanager_server.MISSING
)

BGPWATCH = [sys.executable, "-m", "bgpwatch"]
SKEW = 0.007  # seconds: the second member stamps every message this much later
PEER_TIMEOUT = 2.0  # Alertmanager's wait per cluster position before it sends what its peer did not
PACE = 10.0
URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

AM_CONFIG = """\
route:
  receiver: pager
  group_by: [incident]
  group_wait: 1s
  group_interval: 1h
  repeat_interval: 1h
receivers:
  - name: pager
    webhook_configs:
      - url: {url}/pager
        send_resolved: false
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready(url: str) -> bool:
    return alertmanager_server.http_ready(url)


def cluster_size(url: str) -> int:
    with urllib.request.urlopen(url + "/api/v2/status", timeout=2) as resp:
        return len(json.loads(resp.read())["cluster"].get("peers") or [])


@contextlib.contextmanager
def alertmanager_cluster(work: Path, receiver_url: str) -> Iterator[list[str]]:
    """Run two clustered Alertmanagers on loopback; yield their base URLs once they see each other."""
    web = [free_port(), free_port()]
    gossip = [free_port(), free_port()]
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for i in range(2):
            home = work / f"am{i}"
            home.mkdir(parents=True)
            (home / "am.yml").write_text(AM_CONFIG.format(url=receiver_url))
            log = (home / "am.log").open("wb")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        alertmanager_server.ALERTMANAGER,
                        f"--config.file={home / 'am.yml'}",
                        f"--web.listen-address=127.0.0.1:{web[i]}",
                        f"--storage.path={home / 'data'}",
                        f"--cluster.listen-address=127.0.0.1:{gossip[i]}",
                        f"--cluster.advertise-address=127.0.0.1:{gossip[i]}",
                        f"--cluster.peer=127.0.0.1:{gossip[1 - i]}",
                        f"--cluster.peer-timeout={PEER_TIMEOUT:g}s",
                        "--cluster.settle-timeout=3s",
                        "--cluster.pushpull-interval=2s",
                        "--cluster.reconnect-interval=1s",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        urls = [f"http://127.0.0.1:{port}" for port in web]
        deadline = time.monotonic() + 30
        while not all(ready(u) for u in urls) or min(cluster_size(u) for u in urls) < 2:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise AssertionError(
                    "the Alertmanager cluster did not form: "
                    + " | ".join((work / f"am{i}" / "am.log").read_text()[-800:] for i in range(2))
                )
            time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for log in logs:
            log.close()


def member_config(tmp_path: Path, name: str, am_urls: list[str]) -> Path:
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    config["api"] = {"listen": f"127.0.0.1:{free_port()}"}
    config["alerting"] = {
        "sinks": [
            {"type": "alertmanager", "name": f"am{i}", "url": url, "resend_seconds": 5}
            for i, url in enumerate(am_urls)
        ]
    }
    config["storage"] = {"path": str(tmp_path / f"{name}-unused.db")}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def first_openings(lines: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    """Replay the lines flat out in-process; return the transitions that opened an incident."""
    recording = tmp_path / "probe.jsonl.gz"
    recording.write_bytes(gzip.compress(b"".join(map(encode, lines))))
    config = load_config_text((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    out: list[dict[str, Any]] = []
    playback.replay(playback.replay_config(config, None), [recording], out.append)
    seen: set[str] = set()
    openings = []
    for transition in out:
        if transition["state"] == "firing" and transition["incident"] not in seen:
            seen.add(transition["incident"])
            openings.append(transition)
    return openings


@needs_alertmanager
def test_ha_pair_with_skew_pages_once_per_incident(tmp_path):
    lines = recording_lines()
    span = max(map(line_time, lines)) - line_time(lines[0])
    start = time.time() - 90 - span  # ended 90 s ago: Alertmanager takes startsAt as it comes
    first = parse_iso(first_openings(retime(lines, start, max_gap=1e9), tmp_path)[0]["at"])
    assert first is not None
    # Move the recording so that member A opens its first incident at .997 s, member B at .004 s.
    start += (int(first) + 0.997) - first
    if int(first) % 3600 == 3599:
        start -= 1.0  # not across an hour boundary: that is the one edge the new ids keep (see incident_id)
    member_a = retime(lines, start, max_gap=1e9)
    member_b = retime(lines, start + SKEW, max_gap=1e9)
    opened_a, opened_b = first_openings(member_a, tmp_path), first_openings(member_b, tmp_path)
    assert iso_s(parse_iso(opened_a[0]["at"])) != iso_s(parse_iso(opened_b[0]["at"])), (
        "the test must straddle a second boundary"
    )

    with (
        alertmanager_server.NotificationRecorder() as receiver,
        alertmanager_cluster(tmp_path / "am", receiver.url) as am_urls,
    ):
        procs = []
        for name, member in (("a", member_a), ("b", member_b)):
            recording = tmp_path / f"{name}.jsonl.gz"
            recording.write_bytes(gzip.compress(b"".join(map(encode, member))))
            config = member_config(tmp_path, name, am_urls)
            procs.append(
                subprocess.Popen(
                    [*BGPWATCH, "replay", "--config", str(config), "--serve", "--pace", f"{PACE:g}"]
                    + ["--json", str(recording)],
                    stdout=subprocess.PIPE,
                    stderr=(tmp_path / f"{name}.log").open("wb"),
                )
            )
        outputs = []
        for name, proc in zip("ab", procs, strict=True):
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, (tmp_path / f"{name}.log").read_text()[-2000:]
            outputs.append([json.loads(line) for line in out.splitlines() if line.strip()])
        ids_a = [t["incident"] for t in outputs[0]]
        ids_b = [t["incident"] for t in outputs[1]]
        incidents = set(ids_a) | set(ids_b)
        # Each incident reaches the receiver (from one Alertmanager of the two); then wait past the
        # second one's turn (peer timeout) to see that it does not send it again.
        deadline = time.monotonic() + 20
        while {n.group for n in receiver.got("pager")} < incidents and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2 * PEER_TIMEOUT + 2)
        per_incident = Counter(n.group for n in receiver.got("pager"))
        print(f"notifications per incident: {dict(per_incident)}")
        assert sum(per_incident.values()) == len(set(ids_a)), per_incident  # one page per real incident
        assert per_incident == dict.fromkeys(incidents, 1), per_incident
        # Both members filed every transition under the same incident, and the ids are URL-safe.
        assert ids_a == ids_b and len(incidents) >= 2, (ids_a, ids_b)
        assert all(set(i) <= URL_SAFE for i in incidents), incidents


# -- the id itself -----------------------------------------------------------------------------
T = 1741010462.997  # 2025-03-03T14:01:02.997Z


def test_id_is_url_safe_for_prefixes_and_ipv6():
    for labels, subject in (
        ({"prefix": "203.0.113.0/24", "site": "par1"}, "203.0.113.0/24"),
        ({"prefix": "2001:db8::/32"}, "2001:db8::/32"),
        ({"peer": "rr 1/ä?#%"}, "rr 1/ä?#%"),
    ):
        ident = incident_id("origin_change", labels, subject, T)
        assert set(ident) <= URL_SAFE and "/" not in ident and ":" not in ident, ident
        assert ident.startswith("2025-03-03T14Z-origin_change-"), ident


def test_id_is_the_same_a_few_ms_or_seconds_apart_and_differs_by_root():
    labels = {"site": "par1"}
    ident = incident_id("site_down", labels, "par1", T)
    # Across a second boundary (the old ids differed here) and even seconds apart: one id.
    assert iso_s(T) != iso_s(T + 0.007)
    assert incident_id("site_down", labels, "par1", T + 0.007) == ident
    assert incident_id("site_down", labels, "par1", T + 9.0) == ident
    # Another root: another id, even with a subject that reads the same.
    assert incident_id("session_down", {"peer": "par1"}, "par1", T) != ident
    assert incident_id("site_down", {"site": "par1", "x": "1"}, "par1", T) != ident
    # The one edge left, by design: an hour boundary between the two stamps (see incident_id).
    edge = 1741014000.0  # 15:00:00Z
    assert incident_id("site_down", labels, "par1", edge - 0.003) != incident_id(
        "site_down", labels, "par1", edge + 0.004
    )


def fire(book: AlertBook, at: float, site: str = "par1") -> None:
    finding = Finding("site_down", {"site": site}, "critical", f"site {site} down", site, for_=0.5, keep=1.0)
    book.upsert(finding, at)
    book.advance(at + 0.5)


def test_the_same_root_again_within_the_hour_opens_a_new_incident():
    out: list[dict[str, Any]] = []
    book = AlertBook(out.append)
    fire(book, T)
    book.clear(("site_down", (("site", "par1"),)), T + 5)
    book.advance(T + 10)
    fire(book, T + 60)
    firing = [t["incident"] for t in out if t["state"] == "firing"]
    resolved = [t["incident"] for t in out if t["state"] == "resolved"]
    assert len(firing) == 2 and firing[1] == firing[0] + "-2" and resolved == firing[:1], out


# -- old ids stay readable -----------------------------------------------------------------------
def test_incidents_show_reads_old_and_new_ids(tmp_path):
    import asyncio
    import threading

    from click.testing import CliRunner

    from bgpwatch.api.server import ApiServer, build_app
    from bgpwatch.cli import main
    from bgpwatch.daemon import Daemon

    config = member_config(tmp_path, "show", [])
    daemon = Daemon(load_config_text(config.read_text()))
    ids = [
        "2025-03-03T14:11:03Z-203.0.113.0/24",  # the old format, with a prefix (404 before)
        "2025-03-03T14:11:04Z-par1",  # the old format
        incident_id("site_down", {"site": "par2"}, "par2", T),  # the new one
    ]
    for n, ident in enumerate(ids):
        daemon.store.record(
            {
                "kind": "site_down",
                "state": "firing",
                "at": f"2025-03-03T14:11:0{n}.000Z",
                "severity": "critical",
                "labels": {"site": f"par{n}"},
                "summary": f"site par{n} down",
                "incident": ident,
                "incident_root": True,
                "annotations": {},
                "started_at": f"2025-03-03T14:11:0{n}.000Z",
            }
        )
    loop = asyncio.new_event_loop()
    server = ApiServer(build_app(daemon), "127.0.0.1", 0, registry=daemon.registry)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        api = f"127.0.0.1:{server.port}"
        listed = CliRunner().invoke(main, ["incidents", "--api", api, "--json"])
        assert listed.exit_code == 0, listed.output
        printed = {i["id"] for i in json.loads(listed.output)}
        assert printed == set(ids)
        for ident in printed:
            shown = CliRunner().invoke(main, ["incidents", "show", ident, "--api", api, "--json"])
            assert shown.exit_code == 0, (ident, shown.output)
            assert json.loads(shown.output)["incident"]["id"] == ident
        # The route takes the id URL-encoded (what the CLI sends) and raw, "/" and all.
        base = f"http://{api}/api/v1/incidents/"
        for path in (urllib.parse.quote(ids[0], safe=""), ids[0]):
            with urllib.request.urlopen(base + path, timeout=5) as resp:
                assert json.loads(resp.read())["incident"]["id"] == ids[0]
        missing = CliRunner().invoke(main, ["incidents", "show", "2025-03-03T14Z-nope", "--api", api])
        assert missing.exit_code != 0 and "no incident" in missing.output
    finally:
        asyncio.run_coroutine_threadsafe(server.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        daemon.store.close()
