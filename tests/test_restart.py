"""bgpwatch restarted in the middle of an incident: resumed, never notified twice, resolved once.

The daemon runs in external mode (no root) with a webhook sink pointing at a local aiohttp server
that records every POST.  Its input is the real recording bgpwatch/data/paris.jsonl.gz written
into `bgpwatch relay` live (each line when its time comes, as ExaBGP writes them), restamped to
the wall clock with idle gaps capped at 1 s (see tests/restart_feed.py for exactly what is fed
and why it models a restart of bgpwatch in managed mode: ExaBGP restarts with it, the sessions
that can come back re-establish and re-send their tables).  The topology's rejoin_grace is 2 s
instead of 10 s, only to keep the test short.

Part 1 (shared): the recording up to and including the line after which site_down par2 has fired
(found by replaying it), plus the time for session_down par2-rr1 to fire and stale_routes to
resolve; then SIGTERM.  Then, on copies of the same storage:
- resumed: after the restart, the sessions up at the cut come back with their tables, then the
  rest of the recording (the split, par2's return);
- ended while down: after the restart the network is as at the end of the recording (par2 back).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from bgpwatch.config import load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.pipeline import Pipeline
from tests.restart_feed import (
    ROOT,
    LiveFeed,
    encode,
    line_time,
    recording_lines,
    respaced,
    retime,
    table_at,
)

BGPWATCH = [sys.executable, "-m", "bgpwatch"]
LINES = recording_lines()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def key(t: dict) -> tuple:
    return t["kind"], tuple(sorted(t["labels"].items())), t["incident"]


class Receiver:
    """An aiohttp server on 127.0.0.1, in its own thread, recording the JSON of every POST."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.posts.append(json.loads(await request.read()))
        return web.Response(text="ok")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> Receiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def has(self, kind: str, state: str, **labels: str) -> bool:
        return any(p["kind"] == kind and p["state"] == state and p["labels"] == labels for p in self.posts)


class Daemon:
    """`bgpwatch run` in external mode on a storage directory, fed through `bgpwatch relay`."""

    def __init__(self, work: Path, storage: Path, hook: str) -> None:
        work.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
        config["collector"]["exabgp"] = "external"
        config["collector"]["runtime_dir"] = str(work / "run")
        config["api"] = {"listen": f"127.0.0.1:{free_port()}"}
        config["storage"] = {"path": str(storage / "bgpwatch.db")}
        config["alerting"] = {"sinks": [{"type": "webhook", "url": hook, "timeout_seconds": 2}]}
        config["detectors"] = {"topology": {"rejoin_grace": 2.0}}
        self.config = work / "bgpwatch.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.base = f"http://{config['api']['listen']}"
        self.log_path = work / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*BGPWATCH, "run", "--config", str(self.config), "--log-level", "info"], stdout=log, stderr=log
        )
        log.close()
        wait(self._healthy, 20, "the daemon's API")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"bgpwatch exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
            )
        try:
            urllib.request.urlopen(self.base + "/healthz", timeout=1).close()
        except (urllib.error.URLError, OSError):
            return False
        return True

    def feed(self, lines: list[dict]) -> None:
        relay = LiveFeed([*BGPWATCH, "relay", "--config", str(self.config)])
        relay.write(lines)
        assert relay.close() == 0

    def cli(self, *args: str) -> Any:
        done = subprocess.run(
            [*BGPWATCH, *args, "--config", str(self.config)], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def find_cut() -> int:
    """Return how many lines of the recording it takes for site_down par2 to fire (replayed)."""
    config = load_config(ROOT / "bgpwatch" / "data" / "paris.yaml")
    fired: list[dict] = []
    pipeline = Pipeline(config)
    pipeline.consumer = DetectionEngine(config, pipeline.rib, fired.append)
    for count, line in enumerate(LINES, 1):
        pipeline.feed_line(encode(line).rstrip(b"\n"), "replay")
        if any(t["kind"] == "site_down" and t["labels"] == {"site": "par2"} for t in fired):
            return count
    raise AssertionError("site_down par2 never fires in the recording")


@pytest.fixture(scope="module")
def receiver():
    hook = Receiver().start()
    yield hook
    hook.stop()


@pytest.fixture(scope="module")
def before_restart(tmp_path_factory, receiver):
    """Run part 1 and stop bgpwatch; return the cut, the storage and what was notified."""
    cut = find_cut()
    tmp = tmp_path_factory.mktemp("part1")
    daemon = Daemon(tmp, tmp / "state", receiver.url).start()
    try:
        daemon.feed(retime(LINES[:cut], time.time() + 0.3))
        wait(lambda: receiver.has("site_down", "firing", site="par2"), 10, "site_down par2 notified")
        # Hold-timer expiry of par2 was the last line: let its consequences play out before the stop.
        wait(lambda: receiver.has("session_down", "firing", peer="par2-rr1", site="par2"), 10, "session_down")
        wait(lambda: receiver.has("stale_routes", "resolved", site="par2"), 10, "stale routes resolved")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    return cut, tmp / "state", list(receiver.posts)


def restart(tmp: Path, before: tuple, receiver: Receiver) -> tuple[Daemon, int]:
    """Start bgpwatch again on a copy of part 1's storage; return it and where its posts begin."""
    _cut, state, _posts = before
    storage = tmp / "state"
    shutil.copytree(state, storage)
    start = len(receiver.posts)
    return Daemon(tmp, storage, receiver.url).start(), start


def test_resumed_incident_is_not_notified_again(tmp_path, before_restart, receiver):
    cut, _state, part1 = before_restart
    daemon, start = restart(tmp_path, before_restart, receiver)
    try:
        [incident] = {t["incident"] for t in part1}
        restored = daemon.cli("alerts", "--json")
        assert {a["kind"] for a in restored} >= {"site_down", "session_down", "service_unreachable"}
        assert all(a.get("restored") and a["incident"] == incident for a in restored)
        # The routers re-establish and re-send their tables, then the network goes on.
        resent = respaced(table_at(LINES, cut), time.time() + 0.3)
        daemon.feed(resent + retime(LINES[cut:], line_time(resent[-1]) + 0.3))

        def all_resolved() -> bool:
            fired = {key(t) for t in receiver.posts if t["state"] == "firing"}
            ended = {key(t) for t in receiver.posts if t["state"] == "resolved"}
            return bool(fired) and fired <= ended and daemon.cli("alerts", "--json") == []

        wait(all_resolved, 25, "every alert resolved")
        shown = daemon.cli("incidents", "show", incident, "--json")
        text = daemon.cli("incidents", "show", incident)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    posts = receiver.posts
    after = posts[start:]
    firings = [key(t) for t in posts if t["state"] == "firing"]
    assert len(firings) == len(set(firings)), "a firing notification was sent twice"
    resolutions = [key(t) for t in posts if t["state"] == "resolved"]
    assert len(resolutions) == len(set(resolutions)) and set(resolutions) == set(firings)
    assert {t["incident"] for t in posts} == {incident}, "the incident was not resumed"
    assert not any(t["state"] == "firing" and t["kind"] == "site_down" for t in after)
    # What happened after the restart joined the resumed incident: the split and its consequences.
    assert {("topology_split", "firing"), ("site_down", "resolved")} <= {
        (t["kind"], t["state"]) for t in after
    }
    site_down = next(t for t in after if t["kind"] == "site_down")
    assert site_down["started_at"] == next(t for t in part1 if t["kind"] == "site_down")["started_at"]
    assert site_down["annotations"]["restart"]["resolved_after_restart"] is True
    # One coherent timeline: each alert fired once then resolved once, in time order; closed.
    assert shown["incident"]["status"] == "closed" and shown["incident"]["alerts_firing"] == 0
    states: dict[tuple, list[str]] = {}
    for t in shown["timeline"]:
        states.setdefault(key(t), []).append(t["state"])
    assert states and all(s == ["firing", "resolved"] for s in states.values()), states
    times = [t["at"] for t in shown["timeline"]]
    assert times == sorted(times)
    assert incident in text and "par2" in text


def test_resolution_while_down_is_noticed_after_the_relearn(tmp_path, before_restart, receiver):
    _cut, _state, part1 = before_restart
    daemon, start = restart(tmp_path, before_restart, receiver)
    try:
        firing = {key(t) for t in part1 if t["state"] == "firing"} - {
            key(t) for t in part1 if t["state"] == "resolved"
        }
        assert len(firing) >= 4
        # par2 came back while bgpwatch was down: every router re-sends the whole network.
        daemon.feed(respaced(table_at(LINES, len(LINES)), time.time() + 0.3))
        wait(lambda: daemon.cli("alerts", "--json") == [], 20, "the restored alerts resolved")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    after = receiver.posts[start:]
    assert [t["state"] for t in after] == ["resolved"] * len(firing)
    assert sorted(key(t) for t in after) == sorted(firing)  # exactly one resolution per restored alert
    for t in after:
        assert t["annotations"]["restart"]["resolved_after_restart"] is True
        assert t["duration_seconds"] > 0 and t["started_at"] < t["ended_at"] <= t["at"]
