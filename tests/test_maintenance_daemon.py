"""Maintenance windows through the running daemon: CLI, API (bearer token), status, persistence; no root.

The daemon runs in external mode and is fed the recorded Paris-like lab incident through `bgpwatch
relay`, as in tests/test_daemon.py.
"""

from __future__ import annotations

import gzip
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "bgpwatch" / "data" / "paris.jsonl.gz"
BGPWATCH = [sys.executable, "-m", "bgpwatch"]
TOKEN = "s3cret-token-for-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Running:
    """One `bgpwatch run` child on a configuration; restartable on the same store."""

    def __init__(self, path: Path, base: str) -> None:
        self.path = path
        self.base = base
        self.proc: subprocess.Popen | None = None
        self.log = path.parent / "daemon.log"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*BGPWATCH, "run", "--config", str(self.path), "--log-level", "debug"], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                return
            except (urllib.error.URLError, OSError):
                assert self.proc.poll() is None, self.log.read_text()
                time.sleep(0.1)
        raise AssertionError("the daemon did not start")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=20) == 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture()
def daemon(tmp_path):
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    config["collector"]["exabgp"] = "external"
    config["collector"]["runtime_dir"] = str(tmp_path / "run")
    config["api"] = {"listen": f"127.0.0.1:{free_port()}", "token": TOKEN}
    config["storage"] = {"path": str(tmp_path / "state" / "bgpwatch.db")}
    config["alerting"] = {"sinks": [{"type": "log"}]}
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    running = Running(path, f"http://{config['api']['listen']}")
    running.start()
    yield running
    running.kill()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BGPWATCH, *args, "--config", str(config)], capture_output=True, text=True, timeout=30
    )


def request(base: str, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN):
    """Return (HTTP status, decoded JSON) of one API call."""
    req = urllib.request.Request(base + path, data=body, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def feed_recording(config: Path) -> float:
    """Feed the Paris recording through a relay; return its last event time."""
    data = gzip.decompress(PARIS.read_bytes())
    relay = subprocess.run([*BGPWATCH, "relay", "--config", str(config)], input=data, timeout=60)
    assert relay.returncode == 0
    return max(json.loads(line).get("time", 0) for line in data.splitlines() if line.startswith(b"{ "))


def wait(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_maintenance_cli_api_status_and_restart(daemon: Running) -> None:
    config = daemon.path
    last_event = feed_recording(config)
    wait(lambda: json.loads(cli(config, "status", "--json").stdout)["pipeline"]["events"] > 50)
    listed = cli(config, "maintenance", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert cli(config, "maintenance", "list").stdout.strip() == "no maintenance window open"

    started = cli(config, "maintenance", "start", "par2", "--for", "30m", "--reason", "power works", "--json")
    assert started.returncode == 0, started.stderr
    window = json.loads(started.stdout)
    assert (window["target"], window["scope"], window["site"], window["reason"]) == (
        "par2",
        "site",
        "par2",
        "power works",
    )
    assert window["until_ts"] - window["since_ts"] == pytest.approx(1800)
    # `now` is the daemon's stream clock: at or after the recording's last event, never before it
    assert last_event <= window["since_ts"] <= time.time() + 1
    human = cli(config, "maintenance", "start", "par3-rr1", "--reason", "line card")
    assert human.returncode == 0 and "par3-rr1 (peer)" in human.stdout and "until ended" in human.stdout

    table = cli(config, "maintenance", "list")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["TARGET", "SCOPE", "SITE"] and len(lines) == 3
    assert "power works" in table.stdout and "(until ended)" in table.stdout
    status = json.loads(cli(config, "status", "--json").stdout)
    assert [w["target"] for w in status["maintenance"]] == ["par2", "par3-rr1"] and status["draining"] == []
    status_text = cli(config, "status").stdout
    assert "maintenance: par2 (site)" in status_text and "maintenance: par3-rr1 (peer)" in status_text

    # Bad input: one clear line on stderr, exit 2; the daemon keeps running.
    bad = cli(config, "maintenance", "start", "par2", "--for", "5x")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "--for" in bad.stderr and "'5x'" in bad.stderr
    unknown = cli(config, "maintenance", "start", "par9")
    assert unknown.returncode == 2 and unknown.stderr.strip().count("\n") == 0 and "par9" in unknown.stderr
    not_open = cli(config, "maintenance", "end", "par1")
    assert not_open.returncode == 2 and "no maintenance window" in not_open.stderr

    ended = cli(config, "maintenance", "end", "par3-rr1", "--json")
    assert ended.returncode == 0 and json.loads(ended.stdout)["target"] == "par3-rr1"
    assert [w["target"] for w in json.loads(cli(config, "maintenance", "list", "--json").stdout)] == ["par2"]

    # A short window that expires while bgpwatch is down is not taken back.
    short = json.loads(cli(config, "maintenance", "start", "par1", "--for", "2s", "--json").stdout)
    daemon.stop()
    while time.time() <= short["until_ts"] + 0.5:
        time.sleep(0.1)
    daemon.start()
    after = json.loads(cli(config, "maintenance", "list", "--json").stdout)
    assert [(w["target"], w["reason"], w["since"], w["until"]) for w in after] == [
        ("par2", "power works", window["since"], window["until"])
    ]


def test_maintenance_api_auth_and_errors(daemon: Running) -> None:
    base = daemon.base
    body = json.dumps({"target": "par1", "duration_seconds": 600, "reason": "x"}).encode()
    assert request(base, "POST", "/api/v1/maintenance", body, token=None)[0] == 401
    assert request(base, "GET", "/api/v1/maintenance", token="wrong")[0] == 401
    assert request(base, "DELETE", "/api/v1/maintenance/par1", token=None)[0] == 401
    cases = [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (json.dumps({"duration_seconds": 60}).encode(), "target"),
        (json.dumps({"target": 5}).encode(), "target"),
        (json.dumps({"target": "par1", "duration_seconds": -1}).encode(), "duration_seconds"),
        (json.dumps({"target": "par1", "duration_seconds": "1h"}).encode(), "duration_seconds"),
        (json.dumps({"target": "par1", "duration_seconds": True}).encode(), "duration_seconds"),
        (json.dumps({"target": "par1", "reason": ["a"]}).encode(), "reason"),
        (json.dumps({"target": "par1", "until": 5}).encode(), "until"),
    ]
    for payload, field in cases:
        status, answer = request(base, "POST", "/api/v1/maintenance", payload)
        assert status == 400 and answer["error"].startswith(field), (payload, answer)
    status, answer = request(base, "POST", "/api/v1/maintenance", json.dumps({"target": "nowhere"}).encode())
    assert status == 404 and "'nowhere'" in answer["error"]
    status, answer = request(base, "DELETE", "/api/v1/maintenance/nowhere")
    assert status == 404 and "'nowhere'" in answer["error"]
    assert request(base, "GET", "/api/v1/maintenance") == (200, [])
    status, window = request(base, "POST", "/api/v1/maintenance", body)
    assert status == 201 and window["target"] == "par1" and window["until_ts"] - window["since_ts"] == 600
    status, listed = request(base, "GET", "/api/v1/maintenance")
    assert status == 200 and [w["target"] for w in listed] == ["par1"]
    status, ended = request(base, "DELETE", "/api/v1/maintenance/par1")
    assert status == 200 and ended["target"] == "par1"
    assert request(base, "DELETE", "/api/v1/maintenance/par1")[0] == 404
    assert request(base, "GET", "/api/v1/maintenance") == (200, [])


def test_daemon_owns_one_planned_work_and_hands_it_to_the_engine(tmp_path: Path) -> None:
    """In-process: `daemon.planned` is the engine's, survives a SIGHUP reload, and is loaded from the store."""
    from bgpwatch.config import load_config
    from bgpwatch.daemon import Daemon

    raw = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    raw["collector"]["exabgp"] = "external"
    raw["collector"]["runtime_dir"] = str(tmp_path / "run")
    raw["storage"] = {"path": str(tmp_path / "bgpwatch.db")}
    raw["alerting"] = {"sinks": []}
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(raw))
    first = Daemon(load_config(path))
    try:
        if first.engine is not None:
            assert first.engine.planned is first.planned
        window = first.start_maintenance("par2-rr1", 3600.0, "card swap")
        assert abs(window["since_ts"] - time.time()) < 5  # no event yet: wall time
        raw["sites"].append({"name": "par4", "prefixes": ["198.51.100.0/24"]})
        path.write_text(yaml.safe_dump(raw))
        first.reload()  # peers unchanged: no event loop needed
        assert first.planned.target_scope("par4") == "site"
        if first.engine is not None:
            assert first.engine.planned is first.planned
        assert first.planned.match("par2", "par2-rr1", first.stream_now())["reason"] == "card swap"
    finally:
        first.store.close()
    second = Daemon(load_config(path))
    try:
        assert [w["target"] for w in second.planned.windows(second.stream_now())] == ["par2-rr1"]
        assert second.end_maintenance("par2-rr1") is not None
        assert second.end_maintenance("par2-rr1") is None
    finally:
        second.store.close()
    third = Daemon(load_config(path))
    try:
        assert third.planned.windows(third.stream_now()) == []  # the end was stored
    finally:
        third.store.close()
