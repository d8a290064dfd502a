"""Alert sinks against real receivers: Debian's Alertmanager, local aiohttp servers, a dead port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from bgpwatch.alerts.sinks import (
    AlertmanagerSink,
    Sink,
    SinkConfigError,
    SinkSet,
    build_sinks,
    check_sinks,
    transition_key,
)
from bgpwatch.alerts.store import Store
from tests import alertmanager_server

AMTOOL = alertmanager_server.AMTOOL
TOKEN = "s3cret-t0ken-value"


def transition(state: str = "firing", incident: str = "2025-03-03T14:11:03Z-par1", **extra: Any) -> dict:
    """Return a contract transition (topology split by default)."""
    body = {
        "kind": "topology_split",
        "state": state,
        "at": "2025-03-03T14:11:03.120Z",
        "severity": "critical",
        "labels": {"islands": "par1 | par2,par3"},
        "summary": "live sites form 2 islands: {par1} and {par2, par3}",
        "incident": incident,
    }
    if state == "resolved":
        body.update(
            at="2025-03-03T14:31:05.000Z", started_at="2025-03-03T14:11:03.120Z", duration_seconds=1201.88
        )
    body.update(extra)
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample(registry: CollectorRegistry, name: str, sink: str) -> float:
    return registry.get_sample_value(name, {"sink": sink}) or 0.0


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition an external process or a worker task will make true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


# --- a local HTTP receiver -------------------------------------------------------------------------------


class Receiver:
    """An aiohttp server on 127.0.0.1 that records every POST and answers as told."""

    def __init__(self, statuses: list[int] | None = None, gate: asyncio.Event | None = None) -> None:
        self.statuses = list(statuses or [])
        self.gate = gate
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            {"path": request.path, "headers": dict(request.headers), "json": json.loads(body)}
        )
        if self.gate is not None:
            await self.gate.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "try later")

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[Receiver]:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            yield self
        finally:
            if self.gate is not None:
                self.gate.set()
            await runner.cleanup()


# --- a real Alertmanager ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not alertmanager_server.available():
        pytest.skip(alertmanager_server.MISSING)
    work = tmp_path_factory.mktemp("alertmanager")
    with alertmanager_server.running_alertmanager(work, f"127.0.0.1:{free_port()}") as url:
        yield url


def am_get(url: str, path: str, **filters: str) -> list[dict]:
    query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in filters.items()])
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=5) as resp:
        return json.loads(resp.read())


def am_sink(url: str, registry: CollectorRegistry, **params: Any) -> AlertmanagerSink:
    [sink] = build_sinks([{"type": "alertmanager", "url": url, **params}], registry)
    assert isinstance(sink, AlertmanagerSink)
    return sink


def test_alertmanager_firing_then_resolved(alertmanager: str) -> None:
    incident = "2025-03-03T14:11:03Z-par1"
    registry = CollectorRegistry()

    async def scenario() -> None:
        sink = am_sink(alertmanager, registry, instance="bgpwatch-a", labels={"region": "eu-fr-1"})
        await sink.start()
        sink.submit(transition("firing", incident))
        await until(lambda: sample(registry, "bgpwatch_sink_deliveries_total", "alertmanager") == 1)
        [alert] = await asyncio.to_thread(am_get, alertmanager, "/api/v2/alerts", incident=incident)
        assert alert["labels"] == {
            "alertname": "topology_split",
            "severity": "critical",
            "incident": incident,
            "islands": "par1 | par2,par3",
            "source": "bgpwatch",
            "region": "eu-fr-1",
        }
        assert alert["annotations"]["summary"] == transition()["summary"]
        assert alert["annotations"]["instance"] == "bgpwatch-a"
        assert alert["status"]["state"] == "active"
        assert alert["startsAt"].startswith("2025-03-03T14:11:03.12")
        if Path(AMTOOL).exists():
            out = await asyncio.to_thread(
                subprocess.run,
                [
                    AMTOOL,
                    f"--alertmanager.url={alertmanager}",
                    "alert",
                    "query",
                    "-o",
                    "json",
                    f"incident={incident}",
                ],
                capture_output=True,
                text=True,
                timeout=10,
            )
            assert [a["labels"]["alertname"] for a in json.loads(out.stdout)] == ["topology_split"]

        sink.submit(transition("resolved", incident))
        await until(lambda: sample(registry, "bgpwatch_sink_deliveries_total", "alertmanager") == 2)
        assert await asyncio.to_thread(am_get, alertmanager, "/api/v2/alerts", incident=incident) == []
        assert sink.firing == {}
        await sink.close(2)

    run(scenario())
    assert sample(registry, "bgpwatch_sink_failures_total", "alertmanager") == 0


def test_alertmanager_ha_pair_gives_one_alert(alertmanager: str) -> None:
    """Two bgpwatch instances report the same incident: Alertmanager keeps one alert, one group."""
    incident = "2025-03-03T14:55:03Z-par6"
    registry = CollectorRegistry()

    async def scenario() -> None:
        sinks = build_sinks(
            [
                {"type": "alertmanager", "name": "am-a", "url": alertmanager, "instance": "bgpwatch-a"},
                {"type": "alertmanager", "name": "am-b", "url": alertmanager, "instance": "bgpwatch-b"},
            ],
            registry,
        )
        group = SinkSet(sinks)
        await group.start()
        group.submit(transition("firing", incident))
        await until(
            lambda: all(sample(registry, "bgpwatch_sink_deliveries_total", s.name) == 1 for s in sinks)
        )
        alerts = await asyncio.to_thread(am_get, alertmanager, "/api/v2/alerts", incident=incident)
        assert len(alerts) == 1
        assert alerts[0]["annotations"]["instance"] in ("bgpwatch-a", "bgpwatch-b")
        groups = await asyncio.to_thread(am_get, alertmanager, "/api/v2/alerts/groups", incident=incident)
        assert len(groups) == 1
        assert len(groups[0]["alerts"]) == 1
        assert groups[0]["labels"] == {"incident": incident}  # grouped as the shipped config does
        await group.close(2)

    run(scenario())


def test_alertmanager_incident_root_title_and_planned_work(alertmanager: str) -> None:
    """The root alert is labelled root, every alert carries the incident's title, planned work its label."""
    incident = "2025-03-03T15:00:00Z-par4"
    registry = CollectorRegistry()
    root = transition(
        "firing",
        incident,
        kind="site_down",
        labels={"site": "par4"},
        summary="site par4 down (confirmed): par1, par3 withdrew its prefixes",
        incident_root=True,
        incident_title="site par4 down",
    )
    consequence = transition(
        "firing", incident, kind="service_unreachable", labels={"service": "api", "site": "par1"}
    )
    planned = transition(
        "firing",
        "2025-03-03T15:00:00Z-par5",
        kind="site_down",
        severity="info",
        labels={"site": "par5"},
        summary="site par5 down: maintenance",
        planned={"by": "maintenance", "reason": "line card swap", "until": "2025-03-03T17:00:00Z"},
    )

    async def scenario() -> None:
        sink = am_sink(alertmanager, registry)
        await sink.start()
        for t in (root, consequence, planned):
            sink.submit(t)
        await until(lambda: sample(registry, "bgpwatch_sink_deliveries_total", "alertmanager") == 3)
        alerts = await asyncio.to_thread(am_get, alertmanager, "/api/v2/alerts", incident=incident)
        by_name = {a["labels"]["alertname"]: a for a in alerts}
        assert by_name["site_down"]["labels"]["root"] == "true"
        assert "root" not in by_name["service_unreachable"]["labels"]
        assert {a["annotations"]["incident_title"] for a in alerts} == {"site par4 down"}
        [maintenance] = await asyncio.to_thread(
            am_get, alertmanager, "/api/v2/alerts", incident=planned["incident"]
        )
        assert maintenance["labels"]["planned"] == "maintenance"
        assert maintenance["labels"]["severity"] == "info"
        assert maintenance["annotations"]["planned_reason"] == "line card swap"
        assert maintenance["annotations"]["planned_until"] == "2025-03-03T17:00:00Z"
        for t in (root, consequence, planned):
            sink.submit({**t, "state": "resolved", "at": "2025-03-03T15:10:00.000Z", "started_at": t["at"]})
        await until(lambda: sample(registry, "bgpwatch_sink_deliveries_total", "alertmanager") == 6)
        assert sink.firing == {}
        await sink.close(2)

    run(scenario())


def test_alertmanager_incident_title_without_the_optional_keys() -> None:
    """Transitions that do not name their root: the title of the incident's first alert, for all."""
    sink = am_sink("http://127.0.0.1:9", CollectorRegistry())
    incident = "2025-03-03T16:00:00Z-par2"
    first = transition(
        "firing", incident, kind="site_down", labels={"site": "par2"}, summary="site par2 down (suspected): x"
    )
    later = transition("firing", incident, summary="live sites form 2 islands: {par1} and {par3}")
    sink.on_submit(first)
    sink.on_submit(later)
    [first_alert] = sink.payload_for(first)
    [later_alert] = sink.payload_for(later)
    assert first_alert["annotations"]["incident_title"] == "site par2 down (suspected)"
    assert later_alert["annotations"]["incident_title"] == "site par2 down (suspected)"
    assert "root" not in first_alert["labels"] and "planned" not in first_alert["labels"]
    resolved = transition(
        "resolved", incident, summary="resolved after 31.0 s: site par2 down (confirmed): y"
    )
    sink.on_submit(resolved)
    assert sink.payload_for(resolved)[0]["annotations"]["incident_title"] == "site par2 down (suspected)"
    # An incident this sink never saw open (e.g. after a restart): the head of its own summary.
    stray = transition(
        "resolved", "2025-03-03T17:00:00Z-par3", summary="resolved after 2.0 s: stale routes: z"
    )
    assert sink.payload_for(stray)[0]["annotations"]["incident_title"] == "stale routes"
    # A root named later wins over the first alert seen; an explicit title over both.
    sink.on_submit(
        transition("firing", incident, kind="x", summary="site par2 down (confirmed): z", incident_root=True)
    )
    assert sink.incident_title(later) == "site par2 down (confirmed)"
    assert sink.incident_title({**later, "incident_title": "par2 power loss"}) == "par2 power loss"
    # A transition's own labels cannot forge root or planned.
    forged = transition("firing", incident, labels={"root": "true", "planned": "maintenance"})
    assert {"root", "planned"} & set(sink.labels_for(forged)) == set()


def test_alertmanager_resend_keeps_firing_alive_until_resolved() -> None:
    registry = CollectorRegistry()

    async def scenario() -> None:
        async with Receiver().serve() as rx:
            sink = am_sink(rx.url, registry, resend_seconds=0.05)
            started = time.time()
            await sink.start()
            sink.submit(transition("firing"))
            await until(lambda: len(rx.requests) >= 4)
            for req in rx.requests[:4]:
                assert req["path"] == "/api/v2/alerts"
                [alert] = req["json"]
                assert alert["labels"]["alertname"] == "topology_split"
                # endsAt = the send's wall time + 3 x resend_seconds, to the millisecond: between the
                # sink's start and now (a bound on the seconds alone failed on a loaded machine).
                ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
                assert started + 3 * 0.05 - 0.002 <= ends <= time.time() + 3 * 0.05 + 0.002

            sink.submit(transition("resolved"))
            await until(
                lambda: any(r["json"][0]["endsAt"] == "2025-03-03T14:31:05.000Z" for r in rx.requests)
            )
            seen = len(rx.requests)
            await asyncio.sleep(0.2)  # four re-send periods: nothing left to re-send, so nothing is posted
            assert len(rx.requests) == seen
            await sink.close(1)

    run(scenario())


def test_alertmanager_severity_change_ends_the_old_label_set() -> None:
    registry = CollectorRegistry()

    async def scenario() -> None:
        async with Receiver().serve() as rx:
            sink = am_sink(rx.url, registry)
            await sink.start()
            sink.submit(transition("firing", severity="warning"))
            sink.submit(transition("firing", severity="critical", at="2025-03-03T14:12:00.000Z"))
            await until(lambda: len(rx.requests) == 2)
            new, old = rx.requests[1]["json"]
            assert new["labels"]["severity"] == "critical"
            assert old["labels"]["severity"] == "warning"
            assert old["endsAt"] == "2025-03-03T14:12:00.000Z"
            assert len(sink.firing) == 1
            await sink.close(1)

    run(scenario())


def test_alertmanager_resume_re_sends_alerts_firing_before_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    store.record(transition("firing"))
    registry = CollectorRegistry()

    async def scenario() -> None:
        async with Receiver().serve() as rx:
            sink = am_sink(rx.url, registry)  # re-send period 60 s: the first round must not wait for it
            group = SinkSet([sink], was_delivered=store.was_delivered)
            group.resume(store.active_alerts())
            await group.start()
            await until(lambda: len(rx.requests) >= 1, timeout=2)
            assert rx.requests[0]["json"][0]["labels"]["incident"] == transition()["incident"]
            await group.close(1)

    run(scenario())
    store.close()


# --- webhook ------------------------------------------------------------------------------------------------


def test_webhook_posts_contract_json_with_bearer_and_never_logs_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = CollectorRegistry()
    sent = transition("firing", evidence={"islands": [["par1"], ["par2", "par3"]]})

    async def scenario() -> None:
        async with Receiver(statuses=[503]).serve() as rx:
            [sink] = build_sinks(
                [
                    {
                        "type": "webhook",
                        "url": rx.url + "/hooks/noc",
                        "token": TOKEN,
                        "headers": {"X-Team": "noc"},
                        "backoff_initial": 0.01,
                        "backoff_max": 0.02,
                    }
                ],
                registry,
            )
            await sink.start()
            assert sink.submit(sent) is True
            await until(lambda: sample(registry, "bgpwatch_sink_deliveries_total", "webhook") == 1)
            assert len(rx.requests) == 2  # a 503, then the retry
            for req in rx.requests:
                assert req["path"] == "/hooks/noc"
                assert req["json"] == sent
                assert req["headers"]["Authorization"] == f"Bearer {TOKEN}"
                assert req["headers"]["X-Team"] == "noc"
                assert req["headers"]["Content-Type"] == "application/json"
            assert TOKEN not in repr(sink) and TOKEN not in repr(sink.params)
            assert "noc" not in repr(sink.params)  # header values and URL paths may be secrets too
            await sink.close(1)

    run(scenario())
    assert sample(registry, "bgpwatch_sink_failures_total", "webhook") == 1
    assert "HTTP 503" in caplog.text  # the retry was logged...
    assert "/hooks/noc" not in caplog.text  # ...without the URL path (Slack hook URLs are secrets)
    assert TOKEN not in caplog.text


def test_webhook_slack_body() -> None:
    registry = CollectorRegistry()

    async def scenario() -> None:
        async with Receiver().serve() as rx:
            [sink] = build_sinks([{"type": "webhook", "url": rx.url, "slack": True}], registry)
            await sink.start()
            sink.submit(transition("resolved"))
            await until(lambda: len(rx.requests) == 1)
            await sink.close(1)
            return rx.requests[0]["json"]

    body = run(scenario())
    assert body == {
        "text": "[RESOLVED] critical topology_split: live sites form 2 islands: {par1} and {par2, par3}"
        " (after 20 min 2 s) - incident 2025-03-03T14:11:03Z-par1"
    }


def test_permanent_http_error_is_not_retried() -> None:
    registry = CollectorRegistry()

    async def scenario() -> None:
        async with Receiver(statuses=[400]).serve() as rx:
            [sink] = build_sinks([{"type": "webhook", "url": rx.url, "backoff_initial": 0.01}], registry)
            await sink.start()
            sink.submit(transition())
            await until(lambda: sample(registry, "bgpwatch_sink_dropped_total", "webhook") == 1)
            assert len(rx.requests) == 1
            await sink.close(1)

    run(scenario())
    assert sample(registry, "bgpwatch_sink_failures_total", "webhook") == 1


# --- failure isolation ----------------------------------------------------------------------------------


def test_dead_endpoint_retries_counts_and_never_blocks_submit() -> None:
    registry = CollectorRegistry()
    dead = f"http://127.0.0.1:{free_port()}"  # bound then closed: connection refused

    async def scenario() -> None:
        [sink] = build_sinks(
            [
                {
                    "type": "webhook",
                    "url": dead,
                    "max_attempts": 3,
                    "backoff_initial": 0.01,
                    "backoff_max": 0.02,
                    "queue_size": 5,
                }
            ],
            registry,
        )
        await sink.start()
        sink.submit(transition(incident="first"))
        # a receiver that cannot be reached is not given up: reported down after three attempts, retried
        await until(lambda: sample(registry, "bgpwatch_sink_receiver_up", "webhook") == 0)
        assert sample(registry, "bgpwatch_sink_failures_total", "webhook") >= 3
        assert sample(registry, "bgpwatch_sink_dropped_total", "webhook") == 0

        started = time.perf_counter()
        for i in range(100):
            sink.submit(transition(incident=f"burst-{i}"))
        elapsed = time.perf_counter() - started
        assert elapsed < 0.05, f"100 submits took {elapsed:.3f} s"
        assert sink.queue_length <= 5
        assert sample(registry, "bgpwatch_sink_queue_length", "webhook") == sink.queue_length
        assert sample(registry, "bgpwatch_sink_dropped_total", "webhook") == 95  # overflow, oldest firing

        started = time.monotonic()
        await sink.close(timeout=0.2)
        assert time.monotonic() - started < 1.0
        assert sink.submit(transition(incident="late")) is False

    run(scenario())
    assert sample(registry, "bgpwatch_sink_deliveries_total", "webhook") == 0
    # every transition submitted (1 + 100 + 1 refused after close) is accounted for as dropped
    assert sample(registry, "bgpwatch_sink_dropped_total", "webhook") == 102


def test_slow_endpoint_does_not_delay_another_sink() -> None:
    registry = CollectorRegistry()

    async def scenario() -> None:
        gate = asyncio.Event()  # the slow receiver answers only when released
        async with Receiver(gate=gate).serve() as slow, Receiver().serve() as fast:
            sinks = build_sinks(
                [
                    {"type": "webhook", "name": "slow", "url": slow.url, "timeout_seconds": 30},
                    {"type": "alertmanager", "name": "fast", "url": fast.url},
                    {"type": "log"},
                ],
                registry,
            )
            group = SinkSet(sinks)
            await group.start()
            started = time.monotonic()
            for i in range(3):
                group.submit(transition(incident=f"i{i}"))
            await until(lambda: len(fast.requests) == 3, timeout=2)
            assert time.monotonic() - started < 1.0
            assert sample(registry, "bgpwatch_sink_deliveries_total", "log") == 3
            assert len(slow.requests) == 1  # still waiting on its first answer
            assert sample(registry, "bgpwatch_sink_deliveries_total", "slow") == 0
            started = time.monotonic()
            await group.close(timeout=0.2)  # the slow one is cut off within the bound
            assert time.monotonic() - started < 1.0

    run(scenario())
    assert sample(registry, "bgpwatch_sink_dropped_total", "slow") == 3
    assert sample(registry, "bgpwatch_sink_deliveries_total", "fast") == 3


def test_per_request_timeout_counts_a_failure() -> None:
    registry = CollectorRegistry()

    async def scenario() -> None:
        async with Receiver(gate=asyncio.Event()).serve() as rx:
            [sink] = build_sinks([{"type": "webhook", "url": rx.url, "timeout_seconds": 0.1, "max_attempts": 2,
                                   "backoff_initial": 0.01, "backoff_max": 0.01}], registry)  # fmt: skip
            await sink.start()
            sink.submit(transition())
            await until(lambda: sample(registry, "bgpwatch_sink_receiver_up", "webhook") == 0, timeout=3)
            assert len(rx.requests) >= 2  # timeouts are retried, not given up
            assert sample(registry, "bgpwatch_sink_dropped_total", "webhook") == 0
            await sink.close(0.1)

    run(scenario())
    assert sample(registry, "bgpwatch_sink_failures_total", "webhook") >= 2
    assert sample(registry, "bgpwatch_sink_dropped_total", "webhook") == 1  # cut off at close, counted


# --- delivery bookkeeping -------------------------------------------------------------------------------


def test_delivered_transitions_are_not_sent_again_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "bgpwatch.db"
    first, second = transition("firing"), transition("resolved")

    async def instance(store: Store, url: str, submit: list[dict], expect: int) -> None:
        registry = CollectorRegistry()
        sinks = build_sinks([{"type": "webhook", "url": url}], registry, on_delivered=store.mark_delivered)
        group = SinkSet(sinks, was_delivered=store.was_delivered)
        await group.start()
        for t in submit:
            store.record(t)
            group.submit(t)
        await until(lambda: sample(registry, "bgpwatch_sink_deliveries_total", "webhook") == expect)
        await group.close(1)

    async def scenario() -> list[dict]:
        async with Receiver().serve() as rx:
            store = Store(db)
            await instance(store, rx.url, [first], expect=1)
            store.close()
            store = Store(db)  # restarted: the lifecycle replays both transitions
            await instance(store, rx.url, [first, second], expect=1)
            assert store.undelivered("webhook") == []
            store.close()
            return [r["json"] for r in rx.requests]

    assert run(scenario()) == [first, second]
    assert transition_key(first) != transition_key(second)


def test_undelivered_transitions_are_resubmitted_after_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "bgpwatch.db")
    first, second = transition("firing"), transition("resolved")
    store.record(first)
    store.record(second)
    store.mark_delivered("webhook", transition_key(first))  # the crash came before the second one

    async def scenario() -> list[dict]:
        async with Receiver().serve() as rx:
            registry = CollectorRegistry()
            sinks = build_sinks(
                [{"type": "webhook", "url": rx.url}], registry, on_delivered=store.mark_delivered
            )
            group = SinkSet(sinks, was_delivered=store.was_delivered)
            assert group.resubmit_undelivered(store, since="2025-03-03T00:00:00Z") == 1
            await group.start()
            await until(lambda: sample(registry, "bgpwatch_sink_deliveries_total", "webhook") == 1)
            await group.close(1)
            return [r["json"] for r in rx.requests]

    assert run(scenario()) == [second]
    assert store.undelivered("webhook") == []
    store.close()


# --- configuration and the log sink -------------------------------------------------------------------


def test_build_sinks_reports_every_problem_with_its_key() -> None:
    entries = [
        {"type": "pager"},
        {"type": "webhook"},
        {"type": "alertmanager", "url": "ftp://x", "resend_seconds": 0, "colour": "red"},
        {"type": "log", "name": "audit"},
        {"type": "log", "name": "audit", "format": "xml"},
    ]
    with pytest.raises(SinkConfigError) as caught:
        build_sinks(entries, CollectorRegistry(), source="/etc/bgpwatch/bgpwatch.yaml")
    problems = caught.value.problems
    assert all(p.startswith("/etc/bgpwatch/bgpwatch.yaml: alerting.sinks[") for p in problems)
    text = "\n".join(problems)
    # The sinks' own models, with check-config's messages (one schema per sink: bgpwatch.config.sink_entry).
    assert "alerting.sinks[0].type: expected one of: 'log', 'alertmanager', 'webhook', got a string" in text
    assert "alerting.sinks[1].url: required key is missing" in text
    assert "alerting.sinks[2].url: expected an http:// or https:// URL" in text
    assert "alerting.sinks[2].resend_seconds: expected a number of seconds (> 0, at most 86400)" in text
    assert "alerting.sinks[2].colour: unknown key 'colour' (expected one of: type, name," in text
    assert "alerting.sinks[4].format: expected 'logfmt' or 'json'" in text
    assert "alerting.sinks[4].name: sink name 'audit' already used by alerting.sinks[3]" in text
    assert len(problems) == 7


def test_unnamed_sinks_of_one_type_are_named_by_position() -> None:
    sinks = build_sinks(
        [
            {"type": "log"},
            {"type": "webhook", "url": "http://127.0.0.1:1/a"},
            {"type": "webhook", "url": "http://127.0.0.1:1/b"},
            {"type": "webhook", "name": "chat", "url": "http://127.0.0.1:1/c"},
        ],
        CollectorRegistry(),
    )
    assert [s.name for s in sinks] == ["log", "webhook-1", "webhook-2", "chat"]
    assert check_sinks([{"type": "log"}, {"type": "log", "name": "audit", "format": "json"}]) == []


def test_build_sinks_from_the_validated_config() -> None:
    config_module = pytest.importorskip("bgpwatch.config")
    config = config_module.load_config_text(
        textwrap.dedent(
            f"""
            collector: {{local_as: 65000, router_id: 192.0.2.254}}
            sites:
              - name: par1
                prefixes: [203.0.113.0/26]
                peers: [{{name: par1-rr1, address: 192.0.2.2, peer_as: 65001}}]
            alerting:
              sinks:
                - {{type: log, level: warning}}
                - {{type: alertmanager, url: "http://127.0.0.1:9093", resend_seconds: 30, timeout_seconds: 2}}
                - {{type: webhook, url: "https://chat.example.net/hooks/noc", token: {TOKEN}, slack: true}}
            """
        )
    )
    log_sink, am, hook = build_sinks(config.alerting.sinks, CollectorRegistry())
    assert log_sink.level == logging.WARNING
    assert (am.resend_seconds, am.timeout, am.endpoint) == (30.0, 2.0, "http://127.0.0.1:9093/api/v2/alerts")
    assert hook.slack is True
    assert hook._headers()["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(hook) and TOKEN not in repr(hook.params)


def test_secret_token_stays_hidden_in_config_errors() -> None:
    problems = check_sinks([{"type": "webhook", "url": "not a url", "token": TOKEN}])
    assert problems and all(TOKEN not in p for p in problems)


def test_log_sink_writes_one_structured_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bgpwatch.alerts")

    async def scenario() -> None:
        sinks = build_sinks(
            [{"type": "log"}, {"type": "log", "name": "json", "format": "json"}], CollectorRegistry()
        )
        group = SinkSet(sinks)
        await group.start()
        group.submit(transition("firing"))
        group.submit(transition("resolved"))
        await group.close(1)

    run(scenario())
    records = [r for r in caplog.records if r.name == "bgpwatch.alerts"]
    assert len(records) == 4
    logfmt = [r for r in records if r.getMessage().startswith("alert ")]
    assert logfmt[0].levelno == logging.ERROR  # firing critical
    assert logfmt[0].getMessage() == (
        "alert state=firing kind=topology_split severity=critical at=2025-03-03T14:11:03.120Z"
        ' incident=2025-03-03T14:11:03Z-par1 labels.islands="par1 | par2,par3"'
        ' summary="live sites form 2 islands: {par1} and {par2, par3}"'
    )
    assert logfmt[1].levelno == logging.INFO
    assert "duration_seconds=1201.880" in logfmt[1].getMessage()
    as_json = [json.loads(r.getMessage()) for r in records if r.getMessage().startswith("{")]
    assert as_json == [transition("firing"), transition("resolved")]
    assert all("\n" not in r.getMessage() for r in records)


def test_sink_base_requires_deliver() -> None:
    class Bare(Sink):
        type_name = "bare"

    async def scenario() -> None:
        registry = CollectorRegistry()
        from bgpwatch.alerts.sinks import SinkMetrics

        sink = Bare({"max_attempts": 1}, SinkMetrics(registry))
        await sink.start()
        sink.submit(transition())
        await until(lambda: sample(registry, "bgpwatch_sink_dropped_total", "bare") == 1)
        await sink.close(1)

    run(scenario())
