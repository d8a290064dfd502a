"""The daemon in external mode (no ExaBGP child): relay input, API, CLI, reload, shutdown; no root needed.

The input is the real recording of the Paris-like lab incident, fed through `bgpwatch relay`
exactly as an operator-run ExaBGP would.
"""

from __future__ import annotations

import gzip
import json
import shutil
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def setup(tmp_path):
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    config["collector"]["exabgp"] = "external"
    config["collector"]["runtime_dir"] = str(tmp_path / "run")
    config["api"] = {"listen": f"127.0.0.1:{free_port()}"}
    config["storage"] = {"path": str(tmp_path / "state" / "bgpwatch.db")}
    config["recording"] = {"path": str(tmp_path / "recording")}
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [*BGPWATCH, "run", "--config", str(path), "--log-level", "debug"], stdout=log, stderr=log
    )
    base = f"http://{config['api']['listen']}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    yield path, proc, base, tmp_path
    if proc.poll() is None:
        proc.kill()
    log.close()


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BGPWATCH, *args, "--config", str(config)], capture_output=True, text=True, timeout=30
    )


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def feed_recording(config: Path) -> None:
    relay = subprocess.run(
        [*BGPWATCH, "relay", "--config", str(config)], input=gzip.decompress(PARIS.read_bytes()), timeout=60
    )
    assert relay.returncode == 0


def wait(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_external_mode_relay_api_cli_and_clean_stop(setup):
    config, proc, base, tmp = setup
    feed_recording(config)
    peers = wait(
        lambda: (p := json.loads(cli(config, "peers", "--json").stdout)) and all(x["routes"] for x in p) and p
    )
    assert {p["name"]: p["state"] for p in peers} == {"par1-rr1": "up", "par2-rr1": "up", "par3-rr1": "up"}
    assert all({"name", "address", "site", "state", "routes"} <= set(p) for p in peers)
    routes = json.loads(cli(config, "prefixes", "--json", "--site", "par2").stdout)
    assert routes and all(
        isinstance(r["as_path"], list) and r["next_hop"] and r["site"] == "par2" for r in routes
    )
    lookup = json.loads(cli(config, "prefixes", "--json", "--lookup", "203.0.113.70").stdout)
    assert {r["prefix"] for r in lookup} == {"203.0.113.64/27"} and len(lookup) == 3  # one per vantage point
    # The alerts of the recording were raised, stored and can be told as a timeline.
    transitions = json.loads(cli(config, "alerts", "--transitions", "--json").stdout)
    assert {"site_down", "topology_split", "stale_routes"} <= {t["kind"] for t in transitions}
    incidents = json.loads(cli(config, "incidents", "--json").stdout)
    # Two root causes in the Paris recording: par2's power cut, and the par1-par3 link cut (the split).
    assert sorted(i["root_kind"] for i in incidents) == ["site_down", "topology_split"]
    incidents = [i for i in incidents if i["root_kind"] == "site_down"]
    shown = cli(config, "incidents", "show", incidents[0]["id"], "--markdown")
    assert shown.returncode == 0 and "par2" in shown.stdout and "|" in shown.stdout
    human = cli(config, "topology")
    assert human.returncode == 0 and "visibility" in human.stdout
    # Bad API parameters: a clear error, exit 2, and the daemon keeps running.
    bad = cli(config, "prefixes", "--lookup", "203.0.113.300")
    assert bad.returncode == 2 and "lookup" in bad.stderr
    try:
        get(base + "/api/v1/prefixes?limit=abc")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400 and "limit" in json.loads(exc.read())["error"]
    else:
        pytest.fail("a bad limit was accepted")
    metrics = get(base + "/metrics")
    assert 'bgpwatch_peer_up{address="192.0.2.6",peer="par2-rr1",site="par2"} 1.0' in metrics
    assert "bgpwatch_topology_islands 1.0" in metrics
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    recorded = b"".join(gzip.decompress(p.read_bytes()) for p in sorted((tmp / "recording").glob("*.gz")))
    assert recorded.count(b"\n") == gzip.decompress(PARIS.read_bytes()).count(b"\n")  # every line recorded


def test_sighup_reload_keeps_the_old_config_when_the_new_one_is_bad(setup):
    config, proc, base, _ = setup
    good = config.read_text()
    config.write_text(good.replace("peer_as: 65002", "peer_as: not-an-asn"))
    proc.send_signal(signal.SIGHUP)
    wait(lambda: "bgpwatch_config_last_reload_successful 0.0" in get(base + "/metrics"))
    assert proc.poll() is None
    assert "par2-rr1" in cli(config.with_name("unused.yaml"), "peers", "--api", base).stdout
    changed = yaml.safe_load(good)
    changed["services"][0]["required_from"] = ["par1"]
    config.write_text(yaml.safe_dump(changed))
    proc.send_signal(signal.SIGHUP)
    wait(lambda: "bgpwatch_config_last_reload_successful 1.0" in get(base + "/metrics"))
    log = (config.parent / "daemon.log").read_text()
    assert "reload refused" in log and "peer_as" in log and "configuration" in log


def test_cli_says_plainly_when_the_daemon_is_not_running(tmp_path):
    port = free_port()
    result = subprocess.run(
        [*BGPWATCH, "status", "--api", f"http://127.0.0.1:{port}"], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "not running" in result.stderr


def test_check_config_exit_codes(tmp_path):
    ok = subprocess.run(
        [*BGPWATCH, "check-config", str(ROOT / "config" / "bgpwatch.example.yaml")], capture_output=True
    )
    assert ok.returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("collector: {local_as: 0}\nsites: []\n")
    result = subprocess.run([*BGPWATCH, "check-config", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) >= 3 and all(line.startswith(f"{bad}: ") for line in lines)


def test_sighup_with_new_sinks_swaps_them(setup):
    config, proc, base, _ = setup
    changed = yaml.safe_load(config.read_text())
    changed["alerting"] = {"sinks": [{"type": "log", "name": "second-log", "format": "json"}]}
    config.write_text(yaml.safe_dump(changed))
    proc.send_signal(signal.SIGHUP)
    wait(lambda: 'bgpwatch_sink_queue_length{sink="second-log"}' in get(base + "/metrics"))
    assert proc.poll() is None
    feed_recording(config)
    log_path = config.parent / "daemon.log"
    wait(lambda: '"kind":"site_down"' in log_path.read_text().replace(" ", ""), timeout=30)
