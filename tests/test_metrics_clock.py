"""Process metrics on the daemon's registry, no *_created series, promtool clean, ages on the stream clock.

The served replay is the real Paris recording (bgpwatch/data/paris.jsonl.gz, November 2026) through a
whole Daemon with its HTTP API: its ages must be the recording's, not "now minus November".
"""

from __future__ import annotations

import asyncio
import platform
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bgpwatch import playback
from bgpwatch.config import load_config
from bgpwatch.daemon import Daemon

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "bgpwatch" / "data" / "paris.jsonl.gz"
PARIS_CONFIG = ROOT / "bgpwatch" / "data" / "paris.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def samples(text: str) -> dict[str, list]:
    """Return the exposition's samples by name."""
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Replay Paris through a served Daemon flat out; scrape /metrics and /api/v1/peers once it is done."""
    tmp = tmp_path_factory.mktemp("served")
    config = load_config(PARIS_CONFIG)
    config = config.model_copy(
        update={
            "api": config.api.model_copy(update={"listen": f"127.0.0.1:{free_port()}"}),
            "alerting": config.alerting.model_copy(update={"sinks": []}),
        }
    )
    config = playback.replay_config(config, tmp)
    daemon = Daemon(config)
    base = f"http://{config.api.listen}"

    async def main():
        done = asyncio.Event()
        replay = asyncio.create_task(
            playback.replay_serving(
                daemon, [PARIS], None, settle=10.0, linger=30.0, before_stop=lambda d: done.set()
            )
        )
        await asyncio.wait_for(done.wait(), 60)
        async with aiohttp.ClientSession() as client:
            async with client.get(base + "/metrics") as response:
                metrics = await response.text()
            async with client.get(base + "/api/v1/peers") as response:
                peers = await response.json()
        daemon.stop_event.set()
        stats = await asyncio.wait_for(replay, 30)
        return metrics, peers, stats

    metrics, peers, _stats = asyncio.run(main())
    return metrics, peers, daemon


def test_process_and_python_collectors_are_on_the_registry(served):
    metrics, _peers, _daemon = served
    found = samples(metrics)
    assert found["process_resident_memory_bytes"][0].value > 10 << 20  # a Python daemon: over 10 MiB
    assert found["process_open_fds"][0].value >= 3
    assert found["process_max_fds"][0].value >= found["process_open_fds"][0].value
    assert "process_cpu_seconds_total" in found
    assert found["python_info"][0].labels["implementation"] == platform.python_implementation()
    if sys.implementation.name == "cpython":
        assert "python_gc_collections_total" in found


def test_no_created_series(served):
    metrics, _peers, _daemon = served
    assert not [line for line in metrics.splitlines() if re.match(r"[a-z_]+_created[{ ]", line)]
    assert "bgpwatch_ingest_lag_seconds_bucket" in metrics  # a histogram is there, without its _created


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian prometheus) not installed")
def test_promtool_check_metrics_is_clean(served):
    metrics, _peers, _daemon = served
    check = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_a_served_replay_ages_on_the_recording_clock(served):
    metrics, peers, daemon = served
    found = samples(metrics)
    last = found["bgpwatch_last_message_timestamp_seconds"][0].value
    clock = found["bgpwatch_stream_time_seconds"][0].value
    assert last == daemon.pipeline.last_event_at
    # The clock is the recording's end plus the 10 s settle: November 2026, not today.
    assert 0.0 <= clock - last <= 11.0, (clock, last)
    assert found["bgpwatch_last_message_age_seconds"][0].value == pytest.approx(clock - last)
    ages = {s.labels["peer"]: s.value for s in found["bgpwatch_peer_last_message_age_seconds"]}
    assert set(ages) == {"par1-rr1", "par2-rr1", "par3-rr1"}
    assert all(0.0 <= age < 120.0 for age in ages.values()), ages  # the recording spans ~2 minutes
    # The shipped BgpwatchFeedSilent rule watches this gauge: far below its 3600 s.
    rules = yaml.safe_load((ROOT / "config" / "prometheus" / "bgpwatch.rules.yml").read_text())
    silent = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "BgpwatchFeedSilent")
    assert "bgpwatch_last_message_age_seconds > 3600" in silent["expr"] and "time()" not in silent["expr"]
    # `bgpwatch peers` reads the same clock through the API.
    api_ages = {p["name"]: p["seconds_since_last_message"] for p in peers}
    assert api_ages == pytest.approx(ages, abs=0.01)


def test_replay_prints_resolutions_as_well_as_firings():
    done = subprocess.run(
        [sys.executable, "-m", "bgpwatch", "replay", "--config", str(PARIS_CONFIG), str(PARIS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    states = {}
    for line in done.stdout.splitlines():
        at, state, kind = line.split()[:3]
        states.setdefault(kind, []).append(state)
    assert states["site_down"] == ["firing", "resolved"]
    assert states["topology_split"] == ["firing", "resolved"]


def test_dashboard_shows_ingest_lag_sink_queues_and_process_memory(served):
    import json

    metrics, _peers, _daemon = served
    exported = set(samples(metrics))
    dashboard = json.loads((ROOT / "config" / "grafana" / "bgpwatch-dashboard.json").read_text())
    exprs = {
        panel["title"]: " ".join(t["expr"] for t in panel.get("targets", []))
        for panel in dashboard["panels"]
        if panel.get("type") != "row"
    }
    wanted = {
        "Ingest lag": "bgpwatch_ingest_lag_seconds_bucket",
        "Alert sink queues": "bgpwatch_sink_queue_length",
        "Process memory": "process_resident_memory_bytes",
    }
    for title, metric in wanted.items():
        assert metric in exprs[title], title
    assert "bgpwatch_ingest_lag_seconds_bucket" in exported and "process_resident_memory_bytes" in exported
    # The feed-age stat reads bgpwatch's clock, not Prometheus' time(): quiet during a served replay.
    assert "time()" not in exprs["Last BGP message"]
    assert "bgpwatch_last_message_age_seconds" in exprs["Last BGP message"]
