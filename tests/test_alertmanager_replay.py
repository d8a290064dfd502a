"""A real Alertmanager receiving bgpwatch's alerts during `bgpwatch replay --serve` (no root).

The replay is the Paris-like incident recording (bgpwatch/data/paris.jsonl.gz), restamped so that
it ended two minutes ago whatever this machine's clock says (Alertmanager judges endsAt against
its own clock), played at 20x through a whole daemon with an alertmanager sink.  Alertmanager's
API v2 shows site_down {site=par2} and topology_split active while the replay runs, and nothing
active once it is over: the resolutions were delivered (the firing alerts' endsAt is 15 s ahead,
so they cannot have merely expired).
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import alertmanager_server
from tests.restart_feed import ROOT, encode, line_time, recording_lines, retime

pytestmark = pytest.mark.skipif(not alertmanager_server.available(), reason=alertmanager_server.MISSING)

BGPWATCH = [sys.executable, "-m", "bgpwatch"]
RESEND = 5.0  # firing alerts are sent with endsAt = now + 3 x RESEND


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def alertmanager(tmp_path):
    with alertmanager_server.running_alertmanager(tmp_path / "am", f"127.0.0.1:{free_port()}") as url:
        yield url


def write_inputs(tmp_path: Path, url: str) -> tuple[Path, Path]:
    """Write the replay's config (alertmanager sink) and the recording ending 120 s ago."""
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    config["api"] = {"listen": f"127.0.0.1:{free_port()}"}
    config["alerting"] = {"sinks": [{"type": "alertmanager", "url": url, "resend_seconds": RESEND}]}
    config["storage"] = {"path": str(tmp_path / "unused.db")}
    config_path = tmp_path / "bgpwatch.yaml"
    config_path.write_text(yaml.safe_dump(config))
    lines = recording_lines()
    span = max(map(line_time, lines)) - line_time(lines[0])
    shifted = retime(lines, time.time() - 120 - span, max_gap=1e9)  # same spacing, only moved
    recording = tmp_path / "paris.jsonl.gz"
    recording.write_bytes(gzip.compress(b"".join(map(encode, shifted))))
    return config_path, recording


def active(url: str) -> set[tuple[str, str]]:
    """Return (alertname, site or islands) of the alerts Alertmanager holds as active."""
    return {
        (a["labels"]["alertname"], a["labels"].get("site") or a["labels"].get("islands", ""))
        for a in alertmanager_server.query(url)
        if a["status"]["state"] == "active" and a["labels"].get("source") == "bgpwatch"
    }


def test_replay_alerts_fire_and_resolve_in_alertmanager(tmp_path, alertmanager):
    config, recording = write_inputs(tmp_path, alertmanager)
    log = (tmp_path / "replay.log").open("wb")
    replay = subprocess.Popen(
        [*BGPWATCH, "replay", "--config", str(config), "--serve", "--pace", "20", "--json", str(recording)],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 30
    while replay.poll() is None:
        assert time.monotonic() < deadline, "the replay did not finish in 30 s"
        seen |= active(alertmanager)
        time.sleep(0.05)
    out, _ = replay.communicate()
    log.close()
    assert replay.returncode == 0, (tmp_path / "replay.log").read_text()[-2000:]
    transitions = [json.loads(line) for line in out.splitlines()]
    assert {("site_down", "par2"), ("topology_split", "par1 | par3")} <= seen, seen
    # Every alert the replay raised reached Alertmanager, and every one was resolved there.
    assert {
        (t["kind"], t["labels"].get("site") or t["labels"].get("islands", "")) for t in transitions
    } >= seen
    assert active(alertmanager) == set()
    if Path(alertmanager_server.AMTOOL).exists():
        listed = subprocess.run(
            [
                alertmanager_server.AMTOOL,
                f"--alertmanager.url={alertmanager}",
                "alert",
                "query",
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout + listed.stderr
