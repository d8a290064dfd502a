"""Faults are visible and recovered: relay killed or stopped, store disk full, alert receivers down.

Each case checks that nothing is lost silently (every input line reached the pipeline, applied or
rejected with a reason, or was counted as dropped; every alert transition is delivered or counted),
that the fault shows in /healthz, in the metrics and as an alert, and that it ends when the fault does.

The daemon cases run `bgpwatch run` in external mode and `bgpwatch relay` processes as an
operator-run ExaBGP would: the test plays ExaBGP, writing the real Paris recording's network
(tests/restart_feed.py) to the relay's stdin and reading the relay's stdout, where ExaBGP reads its
API commands (the route-refresh requests).  No routers, no root except for the tmpfs case.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import pwd
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bgpwatch.alerts.sinks import SinkMetrics, SinkSet, build_sinks
from bgpwatch.alerts.sinks.base import transition_key
from bgpwatch.collector.relay import Relay, refresh_commands
from bgpwatch.collector.relay_links import RelayLinks
from bgpwatch.config import load_config
from bgpwatch.daemon import Daemon
from tests import alertmanager_server
from tests.restart_feed import CONTROL, encode, recording_lines, respaced, table_at
from tests.test_daemon import BGPWATCH, ROOT, free_port, wait

# --- helpers ---------------------------------------------------------------------------------------------


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def alert(kind: str, state: str, at: float, **labels: str) -> dict[str, Any]:
    """Return a contract transition of `kind` about `labels`."""
    body: dict[str, Any] = {
        "kind": kind,
        "state": state,
        "at": stamp(at),
        "severity": "critical",
        "labels": labels,
        "summary": f"{kind} {labels}",
        "incident": f"{stamp(at)[:19]}Z-test",
    }
    if state == "resolved":
        body["started_at"] = stamp(at - 1)
    return body


def sample(registry: CollectorRegistry, name: str, sink: str) -> float:
    return registry.get_sample_value(name, {"sink": sink}) or 0.0


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def network_lines() -> list[dict[str, Any]]:
    """Return the Paris network as it stands at the end of its recording: state lines, tables, EoR."""
    lines = recording_lines()
    return [line for line in table_at(lines, len(lines)) if CONTROL not in line]


def refresh_answer() -> list[dict[str, Any]]:
    """Return what the routers send back on a route refresh: their tables (no state lines)."""
    return [line for line in network_lines() if line.get("type") == "update"]


def http(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""  # not listening (yet)


def api(base: str, path: str) -> Any:
    status, body = http(base + path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def metric(base: str, name: str, **labels: str) -> float | None:
    _, text = http(base + "/metrics")
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def health(base: str) -> tuple[int, list[str]]:
    status, body = http(base + "/healthz")
    return status, json.loads(body)["problems"]


def active_kinds(base: str) -> set[str]:
    return {a["kind"] for a in api(base, "/api/v1/alerts")}


def peers_whole(base: str, routes: int | None = None) -> bool:
    peers = api(base, "/api/v1/peers")
    return all(p["state"] == "up" for p in peers) and (
        routes is None and all(p["routes"] for p in peers) or sum(p["routes"] for p in peers) == routes
    )


class FakeExaBGP:
    """ExaBGP's side of a `bgpwatch relay`: writes JSON lines to its stdin, reads commands from its stdout."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [*BGPWATCH, "relay", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.commands: list[str] = []
        self.sent = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.commands.append(line.decode().strip())

    def send(self, lines: list[dict[str, Any]]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(encode(line) for line in lines))
        self.proc.stdin.flush()
        self.sent += len(lines)

    def refreshes(self) -> int:
        return self.commands.count("announce route-refresh ipv4 unicast")

    def close(self) -> None:
        """End in order, as ExaBGP does (the relay's stdin closes: its goodbye, no collector alert)."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()


class DaemonRun:
    """`bgpwatch run` in external mode on the Paris config (started, killed, started again)."""

    def __init__(self, tmp_path: Path, storage: Path | None = None, config: dict | None = None) -> None:
        if config is None:
            config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
        config["collector"]["exabgp"] = "external"
        config["collector"]["runtime_dir"] = str(tmp_path / "run")
        config["api"] = {"listen": f"127.0.0.1:{free_port()}"}
        config["storage"] = {"path": str(storage or tmp_path / "state" / "bgpwatch.db")}
        config["alerting"] = {"sinks": [{"type": "log", "format": "json"}]}
        self.path = tmp_path / "bgpwatch.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.base = f"http://{config['api']['listen']}"
        self.log_path = tmp_path / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*BGPWATCH, "run", "--config", str(self.path)], stdout=log, stderr=log
            )
        proc = self.proc
        wait(lambda: proc.poll() is not None or http(self.base + "/healthz")[0] == 200)
        assert proc.poll() is None, self.log_path.read_text()[-2000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def daemon(tmp_path: Path, storage: Path | None = None):
    """Run the daemon; yield (config path, API base URL)."""
    run = DaemonRun(tmp_path, storage)
    try:
        run.start()
        yield run.path, run.base
    except BaseException:
        print("daemon log:\n" + run.log_path.read_text()[-4000:])  # shown by pytest with the failure
        raise
    finally:
        run.kill()


def accounted(base: str, sent: int) -> dict[str, Any]:
    """Assert that every line written to a relay reached the pipeline, none lost; return the counters."""
    pipeline = api(base, "/api/v1/status")["pipeline"]
    rejected = sum(pipeline["rejected"].values())
    assert pipeline["lines"] == sent, pipeline
    assert pipeline["lost_lines"] == 0 and rejected == 0, pipeline  # all real lines: none rejected
    return pipeline


# --- sinks: the overflow policy -------------------------------------------------------------------------


def test_full_queue_drops_resolved_and_superseded_first_and_firings_last() -> None:
    now = time.time()
    fa, ra, fa2 = alert("site_down", "firing", now, site="a"), alert("site_down", "resolved", now + 1, site="a"), alert(
        "site_down", "firing", now + 2, site="a"
    )  # fmt: skip
    fb, fc, fd = (alert("site_down", "firing", now, site=s) for s in "bcd")

    def queued(*transitions: dict[str, Any]) -> tuple[list[dict[str, Any]], float, float]:
        registry = CollectorRegistry()
        [sink] = build_sinks([{"type": "webhook", "url": "http://127.0.0.1:9", "queue_size": 3}], registry)
        for t in transitions:
            sink.submit(t)  # not started: everything waits in the queue
        dropped = sample(registry, "bgpwatch_sink_dropped_total", "webhook")
        return list(sink._pending), dropped, sample(registry, "bgpwatch_sink_dropped_firing_total", "webhook")

    # 1. a resolution superseded by a later firing of the same alert goes, with the firing it ended
    assert queued(fa, ra, fa2, fb) == ([fa2, fb], 2, 1)
    # 2. else an alert that began and ended in the queue (both)
    assert queued(fa, ra, fb, fc) == ([fb, fc], 2, 1)
    # 3. else the oldest resolution
    assert queued(ra, fb, fc, fd) == ([fb, fc, fd], 1, 0)
    # 4. only firings: the oldest firing, counted as such
    assert queued(fa, fb, fc, fd) == ([fb, fc, fd], 1, 1)


# --- sinks: receivers down, then back -------------------------------------------------------------------


class Hook:
    """A webhook receiver on a fixed port that can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            self.received.append(json.loads(await request.read()))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def test_webhook_receiver_down_then_back_gets_every_transition_in_order() -> None:
    registry = CollectorRegistry()
    now = time.time()
    sent = [alert("site_down", "firing", now, site="par2"), alert("session_down", "firing", now, peer="p1")]
    sent += [alert("site_down", "resolved", now + 1, site="par2"), alert("topology_split", "firing", now + 2)]

    async def scenario() -> float:
        hook = Hook(free_port())
        params = {"type": "webhook", "url": f"http://127.0.0.1:{hook.port}/hook", "max_attempts": 3}
        [sink] = build_sinks([{**params, "backoff_initial": 0.02, "backoff_max": 0.1}], registry)
        await sink.start()
        for t in sent:
            sink.submit(t)
        down = time.monotonic()
        # far more attempts than max_attempts, which used to be the give-up point
        await until(lambda: sample(registry, "bgpwatch_sink_failures_total", "webhook") >= 12)
        assert sample(registry, "bgpwatch_sink_receiver_up", "webhook") == 0
        assert sample(registry, "bgpwatch_sink_dropped_total", "webhook") == 0
        await hook.start()
        await until(lambda: len(hook.received) == len(sent))
        outage = time.monotonic() - down
        assert sample(registry, "bgpwatch_sink_receiver_up", "webhook") == 1
        await sink.close(1)
        await hook.stop()
        assert hook.received == sent  # every one, in order
        return outage

    outage = asyncio.run(scenario())
    assert sample(registry, "bgpwatch_sink_deliveries_total", "webhook") == len(sent)
    assert sample(registry, "bgpwatch_sink_dropped_total", "webhook") == 0
    print(f"webhook: {len(sent)} of {len(sent)} delivered in order after a {outage:.1f} s outage")


def test_reload_hands_what_a_sink_holds_to_its_successor() -> None:
    """SIGHUP with new sink settings while the receiver is down: the new sink delivers what the old held."""
    registry = CollectorRegistry()
    metrics = SinkMetrics(registry)  # one set per registry, kept across reloads as the daemon does
    now = time.time()
    sent = [alert("site_down", "firing", now, site="par2"), alert("session_down", "firing", now, peer="p1")]

    async def scenario() -> None:
        hook = Hook(free_port())
        url = f"http://127.0.0.1:{hook.port}/hook"
        entry = {"type": "webhook", "name": "noc", "url": url, "backoff_initial": 0.02, "backoff_max": 0.1}
        old = SinkSet(build_sinks([entry], registry, metrics=metrics))
        await old.start()
        for t in sent:
            old.submit(t)
        await until(lambda: sample(registry, "bgpwatch_sink_failures_total", "noc") >= 2)  # one in flight
        new = SinkSet(build_sinks([{**entry, "timeout_seconds": 2}], registry, metrics=metrics))
        await new.start()
        assert new.take_over(old) == len(sent)  # the one in flight and the one queued
        await old.close(1)
        await hook.start()  # the receiver is back
        await until(lambda: len(hook.received) == len(sent))
        await new.close(1)
        await hook.stop()
        assert hook.received == sent

    asyncio.run(scenario())
    assert sample(registry, "bgpwatch_sink_dropped_total", "noc") == 0


@pytest.mark.skipif(not alertmanager_server.available(), reason=alertmanager_server.MISSING)
def test_alertmanager_down_longer_than_the_old_give_up_then_back(tmp_path: Path) -> None:
    """A real Alertmanager stopped for 16 s (the old sinks gave a transition up after ~15 s)."""
    registry = CollectorRegistry()
    listen = f"127.0.0.1:{free_port()}"
    delivered: list[str] = []
    now = time.time()
    before = alert("site_down", "firing", now - 5, site="par2")
    during = [
        alert("session_down", "firing", now, site="par2", peer="par2-rr1"),
        alert("topology_split", "firing", now, islands="par1 | par3"),
        alert("site_down", "resolved", now + 0.5, site="par2"),
        alert("service_unreachable", "firing", now + 1, service="metrics-api", site="par1"),
    ]

    async def scenario() -> float:
        am = contextlib.ExitStack()
        url = am.enter_context(alertmanager_server.running_alertmanager(tmp_path / "am", listen))
        params = {"type": "alertmanager", "url": url, "resend_seconds": 300, "max_attempts": 6}
        [sink] = build_sinks(
            [{**params, "backoff_initial": 0.1, "backoff_max": 1.0}],
            registry,
            on_delivered=lambda _sink, key: delivered.append(key),
        )
        group = SinkSet([sink])
        await group.start()
        group.submit(before)
        await until(lambda: len(delivered) == 1)
        am.close()  # Alertmanager stops
        stopped = time.monotonic()
        for t in during:
            group.submit(t)
        await until(lambda: time.monotonic() - stopped > 16, timeout=20)
        assert sample(registry, "bgpwatch_sink_receiver_up", "alertmanager") == 0
        assert sample(registry, "bgpwatch_sink_dropped_total", "alertmanager") == 0
        with alertmanager_server.running_alertmanager(tmp_path / "am", listen):  # back, same address
            await until(lambda: len(delivered) == 1 + len(during), timeout=10)
            outage = time.monotonic() - stopped
            held = {
                a["labels"]["alertname"]
                for a in alertmanager_server.query(url)
                if a["status"]["state"] == "active"
            }
            await group.close(1)
        assert held == {"session_down", "topology_split", "service_unreachable"}  # site_down was resolved
        return outage

    outage = asyncio.run(scenario())
    assert delivered == [transition_key(t) for t in [before, *during]]  # in order
    assert sample(registry, "bgpwatch_sink_dropped_total", "alertmanager") == 0
    print(f"alertmanager: {len(during)} of {len(during)} delivered in order after a {outage:.1f} s outage")


# --- relay: the route-refresh request and the link bookkeeping -----------------------------------------


def test_relay_passes_route_refresh_requests_and_nothing_else() -> None:
    read_fd, write_fd = os.pipe()
    relay = Relay("/nonexistent", command_fd=write_fd)
    relay._daemon_request(
        b'{"bgpwatch-daemon": {"refresh": ["ipv4 unicast", "announce route 10.0.0.0/8 nh"]}}'
    )
    relay._daemon_request(b'{"bgpwatch-daemon": {"announce": "route 10.0.0.0/8 next-hop self"}}')
    relay._daemon_request(b"announce route 10.0.0.0/8 next-hop self")
    relay._daemon_request(b'{"bgpwatch-daemon": {"refresh": ["ipv6 unicast", "ipv6 unicast"]}}')
    os.close(write_fd)
    written = os.read(read_fd, 4096).decode().splitlines()
    os.close(read_fd)
    assert written == [
        "silence-ack",
        "announce route-refresh ipv4 unicast",
        "silence-ack",
        "announce route-refresh ipv6 unicast",
    ]
    assert relay.refreshes == 2


def test_exabgp_understands_the_commands_the_relay_writes() -> None:
    """The installed ExaBGP (5.x) parses what the relay writes on its stdout."""
    api_module = pytest.importorskip("exabgp.reactor.api")
    from exabgp.reactor.api.command.command import Command

    written = refresh_commands(["ipv4 unicast", "ipv6 unicast"]).decode().splitlines()
    assert written[0] == "silence-ack" and "silence-ack" in Command.functions
    parser = api_module.API.__new__(api_module.API)  # only its parsing helpers are used
    for line, afi in zip(written[1:], ("ipv4", "ipv6"), strict=True):
        assert "announce route-refresh" in Command.functions and line.startswith("announce route-refresh ")
        [refresh] = parser.api_refresh(line)
        assert str(refresh.afi) == afi and str(refresh.safi) == "unicast"


def test_relay_links_report_death_and_silence_in_external_mode() -> None:
    clock = [100.0]
    reports = []

    class Writer:
        def __init__(self) -> None:
            self.data = b""

        def write(self, data: bytes) -> None:
            self.data += data

    links = RelayLinks(reports.append, external=True, families=["ipv4 unicast"], clock=lambda: clock[0])
    links.check()
    hello = b'{"bgpwatch-relay": {"hello": 0, "pid": 7, "heartbeat": 1.0, "refresh": true}}'
    writer = Writer()
    link = links.open(writer)
    assert links.control(link, hello) and link.worker == 0
    assert json.loads(writer.data) == {"bgpwatch-daemon": {"refresh": ["ipv4 unicast"]}}
    assert links.control(link, b'{"bgpwatch-relay": {"alive": 0, "time": 1.0}}')  # heartbeat: consumed
    # Heartbeats carry the relay's back-pressure so far; nonsense never moves the totals.
    assert links.control(link, b'{"bgpwatch-relay": {"alive": 0, "time": 2.0, "held": 2.5, "holds": 3}}')
    for bad in (
        b'"held": -1, "holds": 1',
        b'"held": "x", "holds": true',
        b'"held": 1e300, "holds": -5',
        b'"held": 1.0, "holds": 1',
    ):
        assert links.control(link, b'{"bgpwatch-relay": {"alive": 0, "time": 3.0, ' + bad + b"}}")
    assert links.backpressure() == {0: (2.5, 3)}
    assert not links.control(link, b'{"bgpwatch-relay": {"lost": 3, "worker": 0, "time": 1.0}}')  # a gap: fed
    clock[0] += 10.0
    links.check()  # the daemon's loop was blocked 10 s: unread data may wait in the socket, no verdict
    assert reports == [] and links.problems() == []
    for _ in range(15):  # the stall counts for 1 s at most (the gap beyond a normal check interval)
        clock[0] += 0.25
        links.check()
    assert reports == [] and clock[0] == 113.75
    clock[0] += 0.25
    links.check()
    assert len(reports) == 1  # 5 s without a byte
    assert [(r.worker, r.up) for r in reports] == [(0, False)] and "silent" in reports[0].reason
    assert "silent" in links.problems()[0] and links.workers_up() == {0: False}
    links.seen(link)  # it speaks again: up, and a new refresh
    assert [(r.worker, r.up) for r in reports] == [(0, False), (0, True)] and links.problems() == []
    assert writer.data.count(b"refresh") == 2
    links.closed(link, stopping=False)  # killed: no goodbye
    assert reports[-1].up is False and "without a goodbye" in reports[-1].reason
    again = links.open(Writer())
    links.control(again, hello)
    assert reports[-1].up is True and links.faults == {"silent": 1, "lost": 1}
    links.control(again, b'{"bgpwatch-relay": {"bye": "ExaBGP closed the API pipe", "worker": 0}}')
    links.closed(again, stopping=False)  # an orderly end: reported in /healthz, not as a collector fault
    assert reports[-1].up is True and "ExaBGP closed the API pipe" in links.problems()[0]
    # The first relay's back-pressure stays counted: a new relay of the worker adds to it (a counter).
    last = links.open(Writer())
    assert links.control(last, hello) and links.backpressure() == {0: (2.5, 3)}
    assert links.control(last, b'{"bgpwatch-relay": {"alive": 0, "time": 4.0, "held": 1.0, "holds": 1}}')
    assert links.backpressure() == {0: (3.5, 4)}


def test_relay_links_in_managed_mode_only_ask_a_refresh_after_a_relay_was_killed() -> None:
    reports: list = []
    sent: list[bytes] = []

    class Writer:
        def write(self, data: bytes) -> None:
            sent.append(data)

    links = RelayLinks(reports.append, external=False)
    hello = b'{"bgpwatch-relay": {"hello": 1, "heartbeat": 1.0, "refresh": true}}'
    first = links.open(Writer())
    links.control(first, hello)
    assert sent == []  # ExaBGP (re)started with the daemon: its sessions bring the tables
    links.closed(first, stopping=False)  # killed; ExaBGP respawns its API process, keeps its sessions
    second = links.open(Writer())
    links.control(second, hello)
    assert len(sent) == 1 and b"refresh" in sent[0]
    links.control(second, b'{"bgpwatch-relay": {"bye": "ExaBGP closed the API pipe"}}')
    links.closed(second, stopping=False)  # ExaBGP ended it: the supervisor knows
    links.control(links.open(Writer()), hello)
    assert len(sent) == 1 and reports == [] and links.problems() == []  # the supervisor reports ExaBGP


# --- the daemon: relay killed, relay stopped ------------------------------------------------------------


def refreshed(base: str, fake: FakeExaBGP, routes: int, requests: int = 1) -> None:
    """Play the routers' answer to the route refresh the relay passed on; wait for the RIB to be whole."""
    wait(lambda: fake.refreshes() >= requests, timeout=10)
    fake.send(respaced(refresh_answer(), time.time(), 0.001))
    wait(lambda: peers_whole(base, routes), timeout=10)


def test_relay_killed_then_replaced_degraded_then_whole_again(tmp_path: Path) -> None:
    with daemon(tmp_path) as (config, base):
        first = FakeExaBGP(config, tmp_path / "relay.log")
        try:
            first.send(respaced(network_lines(), time.time(), 0.001))
            wait(lambda: peers_whole(base), timeout=15)
            routes = sum(p["routes"] for p in api(base, "/api/v1/peers"))
            wait(lambda: first.refreshes() == 1)  # asked at its hello (the daemon was there first)
            accounted(base, first.sent)
            assert health(base)[0] == 200
            first.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            wait(lambda: health(base)[0] == 503, timeout=10)
            to_degraded = time.monotonic() - killed
            assert "without a goodbye" in health(base)[1][0]
            assert metric(base, "bgpwatch_relay_up", worker="0") == 0
            assert metric(base, "bgpwatch_relay_faults_total", kind="lost") == 1
            wait(lambda: "collector_degraded" in active_kinds(base), timeout=5)
            assert not any(p["state"] == "up" for p in api(base, "/api/v1/peers"))  # blind: not "up" for 40 s
        finally:
            first.close()
        second = FakeExaBGP(config, tmp_path / "relay.log")
        try:
            refreshed(base, second, routes)  # ExaBGP resent nothing by itself: the refresh made it whole
            back = time.monotonic()
            wait(lambda: health(base)[0] == 200, timeout=5)
            wait(lambda: "collector_degraded" not in active_kinds(base), timeout=10)
            recovered = time.monotonic() - back
            assert metric(base, "bgpwatch_relay_up", worker="0") == 1
            accounted(base, first.sent + second.sent)
            kinds = {(t["kind"], t["state"]) for t in api(base, "/api/v1/transitions")}
            # the fault was the collector's: no site or session alert
            assert kinds == {("collector_degraded", "firing"), ("collector_degraded", "resolved")}
        finally:
            second.close()
    print(
        f"relay kill -9: degraded after {to_degraded:.2f} s; RIB whole and resolved {recovered:.1f} s after refresh"
    )


def test_relay_stopped_is_silent_then_resumes_nothing_lost(tmp_path: Path) -> None:
    with daemon(tmp_path) as (config, base):
        fake = FakeExaBGP(config, tmp_path / "relay.log")
        try:
            fake.send(respaced(network_lines(), time.time(), 0.001))
            wait(lambda: peers_whole(base), timeout=15)
            routes = sum(p["routes"] for p in api(base, "/api/v1/peers"))
            wait(lambda: fake.refreshes() == 1)
            fake.proc.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            wait(lambda: health(base)[0] == 503, timeout=15)
            to_degraded = time.monotonic() - stopped
            assert "silent" in health(base)[1][0]
            assert metric(base, "bgpwatch_relay_faults_total", kind="silent") == 1
            wait(lambda: "collector_degraded" in active_kinds(base), timeout=5)
            # ExaBGP goes on writing meanwhile (into the pipe): none of it may be lost
            fake.send(respaced(refresh_answer()[:5], time.time(), 0.001))
            fake.proc.send_signal(signal.SIGCONT)
            continued = time.monotonic()
            wait(lambda: health(base)[0] == 200, timeout=10)
            resumed = time.monotonic() - continued
            refreshed(base, fake, routes, requests=2)  # asked again when it spoke again
            wait(lambda: "collector_degraded" not in active_kinds(base), timeout=10)
            accounted(base, fake.sent)
            assert metric(base, "bgpwatch_relay_up", worker="0") == 1
        finally:
            with contextlib.suppress(ProcessLookupError):
                fake.proc.send_signal(signal.SIGCONT)
            fake.close()
    print(f"relay SIGSTOP: degraded after {to_degraded:.2f} s; healthy again {resumed:.2f} s after SIGCONT")


def _exabgp(tmp_path: Path, name: str, config: str, bind: str, port: int) -> subprocess.Popen:
    """Start an ExaBGP 5 (the venv's) on loopback with `config`; its log in tmp_path/<name>.log."""
    (tmp_path / f"{name}.conf").write_text(config)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "exabgp.daemon.user": pwd.getpwuid(os.geteuid()).pw_name,
        "exabgp.daemon.drop": "false",
        "exabgp.api.cli": "false",
        "exabgp.log.destination": "stdout",
        "exabgp.tcp.bind": bind,
        "exabgp.tcp.port": str(port),
    }
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "exabgp", "server", str(tmp_path / f"{name}.conf")],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.skipif(importlib.util.find_spec("exabgp") is None, reason="ExaBGP is not installed")
def test_real_exabgp_resends_the_tables_to_a_restarted_daemon(tmp_path: Path) -> None:
    """Two real ExaBGPs on loopback: a "router" and the operator's ExaBGP feeding bgpwatch's relay."""
    port = free_port()
    router = """
neighbor 127.0.0.1 {
  router-id 127.0.0.2; local-address 127.0.0.2; local-as 65001; peer-as 65000; passive true;
  capability { route-refresh; }
  family { ipv4 unicast; }
  static { route 203.0.113.0/27 next-hop 127.0.0.2; route 203.0.113.32/27 next-hop 127.0.0.2; }
}
"""
    config = {
        "collector": {"local_as": 65000, "router_id": "127.0.0.1"},
        "sites": [{"name": "par1", "prefixes": ["203.0.113.0/27", "203.0.113.32/27"],
                   "peers": [{"name": "par1-rr1", "address": "127.0.0.2", "peer_as": 65001}]}],
    }  # fmt: skip
    run = DaemonRun(tmp_path, config=config)
    relay = f"{sys.executable} -m bgpwatch relay --config {run.path}"
    operator = f"""
process bgpwatch {{ run {relay}; encoder json; }}
neighbor 127.0.0.2 {{
  router-id 127.0.0.1; local-address 127.0.0.1; local-as 65000; peer-as 65001; connect {port};
  capability {{ route-refresh; }}
  family {{ ipv4 unicast; }}
  api {{ processes [ bgpwatch ]; neighbor-changes; receive {{ parsed; update; notification; }} }}
}}
"""
    procs = []
    try:
        run.start()
        procs.append(_exabgp(tmp_path, "router", router, "127.0.0.2", port))
        time.sleep(0.5)  # the router listens before the other side connects
        procs.append(_exabgp(tmp_path, "operator", operator, "", free_port()))
        wait(lambda: peers_whole(run.base, 2), timeout=30)
        run.kill()  # kill -9 of bgpwatch; ExaBGP and its session to the router live on
        killed = time.monotonic()
        run.start()
        wait(lambda: peers_whole(run.base, 2), timeout=20)  # the routes came back: the refresh asked for them
        whole = time.monotonic() - killed
        assert metric(run.base, "bgpwatch_relay_refresh_requests_total") == 1
        pipeline = api(run.base, "/api/v1/status")["pipeline"]
        assert pipeline["rejected"] == {} and pipeline["lost_lines"] == 0  # no "done"/"error" acks leaked in
        assert "route refresh ipv4/0/unicast" in (tmp_path / "operator.log").read_text()  # ExaBGP sent it
        assert (tmp_path / "router.log").read_text().count("connected to peer") == 1  # no session reset
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        run.kill()
    print(f"real ExaBGP: after a daemon kill -9 the RIB was whole again {whole:.1f} s later, session kept")


# --- the store: write failures --------------------------------------------------------------------------


def test_failing_store_holds_transitions_raises_store_degraded_and_catches_up(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    config["collector"]["exabgp"] = "external"
    config["collector"]["runtime_dir"] = str(tmp_path / "run")
    config["storage"] = {"path": str(tmp_path / "bgpwatch.db")}
    config["alerting"] = {"sinks": [{"type": "log"}]}
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    d = Daemon(load_config(path))
    record = d.store.record
    failing = True

    def flaky(transition: dict[str, Any]) -> str:
        if failing:
            with d.store._writing():
                raise sqlite3.OperationalError("database or disk is full")
        return record(transition)

    d.store.record = flaky  # type: ignore[method-assign]
    now = time.time()
    first, second = (
        alert("site_down", "firing", now, site="par2"),
        alert("site_down", "resolved", now + 1, site="par2"),
    )
    d.emit(first)
    d.emit(second)
    d._mark_delivered("log", transition_key(first))  # a sink delivered it meanwhile: noted later, not lost
    healthy, problems = d.health()
    assert not healthy and "alert store cannot write" in problems[0] and "disk is full" in problems[0]
    faults = d._fault_metrics()
    assert (
        faults["store_writable"] is False and faults["store_held"] == 2 and faults["store_write_errors"] == 1
    )
    d.pipeline.tick(now + 2)
    assert "store_degraded" in {a["kind"] for a in d.engine.active_alerts()}
    assert len(d._unstored) == 3  # the store_degraded firing itself waits behind the two
    d._flush_unstored()  # still failing: nothing lost, nothing reordered
    assert len(d._unstored) == 3 and d.store_dropped == 0
    failing = False
    d._flush_unstored()
    assert d.health() == (True, []) and d._fault_metrics()["store_writable"] is True
    assert d.store.was_delivered("log", transition_key(first))  # no second notification after a restart
    d.pipeline.tick(now + 3)  # store_degraded clears...
    d.pipeline.tick(now + 6)  # ...and after its hold-down resolves, and is stored
    stored = [(t["kind"], t["state"]) for t in d.store.transitions()]
    assert stored == [
        ("site_down", "firing"),
        ("site_down", "resolved"),
        ("store_degraded", "firing"),
        ("store_degraded", "resolved"),
    ]
    d.store.close()


def _mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs; return None, or why it cannot be done here."""
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs"
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        return f"cannot mount a tmpfs here: {done.stderr.decode().strip()}"
    return None


def _fill(where: Path) -> Path:
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(1 << 20):  # bounded: a 2 MiB tmpfs is full long before
            os.write(fd, b"\0" * 4096)
    except OSError:  # ENOSPC: the disk is full
        pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_store_degraded_visible_then_caught_up(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    why = _mount_tmpfs(fs, "2m")
    if why:
        pytest.skip(why)
    try:
        with daemon(tmp_path, storage=fs / "bgpwatch.db") as (config, base):
            filler = _fill(fs)
            fake = FakeExaBGP(config, tmp_path / "relay.log")
            try:
                # the whole recording, retimed to now: an incident's worth of alert transitions
                lines = [line for line in recording_lines() if CONTROL not in line]
                fake.send(respaced(lines, time.time() - len(lines) * 0.3, 0.3))
                wait(lambda: health(base)[0] == 503, timeout=15)
                assert any("alert store cannot write" in p for p in health(base)[1])
                assert metric(base, "bgpwatch_store_writable") == 0
                assert metric(base, "bgpwatch_store_write_errors_total") >= 1
                assert metric(base, "bgpwatch_store_held_transitions") >= 1
                wait(lambda: "store_degraded" in active_kinds(base), timeout=5)
                time.sleep(1.0)  # let the rest of the incident be emitted while the disk is full
                held = metric(base, "bgpwatch_store_held_transitions")
                filler.unlink()  # space again
                freed = time.monotonic()
                wait(lambda: metric(base, "bgpwatch_store_writable") == 1, timeout=10)
                caught_up = time.monotonic() - freed
                wait(lambda: health(base)[0] == 200, timeout=5)
                wait(lambda: "store_degraded" not in active_kinds(base), timeout=10)
                assert metric(base, "bgpwatch_store_dropped_transitions_total") == 0
                accounted(base, fake.sent)
                # every transition the sinks were given is in the store too
                wait(
                    lambda: (
                        len(api(base, "/api/v1/transitions"))
                        == metric(base, "bgpwatch_sink_deliveries_total", sink="log")
                    ),
                    timeout=10,
                )
                kinds = {t["kind"] for t in api(base, "/api/v1/transitions")}
                assert {"site_down", "store_degraded"} <= kinds
                assert api(base, "/api/v1/incidents")
            finally:
                fake.close()
        with contextlib.closing(sqlite3.connect(fs / "bgpwatch.db")) as db:
            # every delivery made while the disk was full was noted once space came back: a restart
            # would not notify any of them again
            unnoted = db.execute(
                "SELECT kind, state, at FROM transitions t WHERE NOT EXISTS"
                " (SELECT 1 FROM notifications n WHERE n.sink = 'log' AND n.transition_key = t.key)"
            ).fetchall()
        assert unnoted == []
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False)
    print(
        f"disk full: {held:.0f} transitions held in memory, all stored {caught_up:.1f} s after space came back"
    )
