"""One page per incident: the shipped Alertmanager configuration, a real Alertmanager, the Paris replay.

Alertmanager runs config/alertmanager/alertmanager.yml as shipped (routes, timers, templates,
inhibition); only its receivers' destinations point at a recorder on 127.0.0.1 standing in for
PagerDuty (`oncall`) and Slack (`chat`).  The Paris recording (bgpwatch/data/paris.jsonl.gz: par2
loses power, its routes linger, par1 and par3 split for 15 s, par2 comes back) is replayed through
a whole daemon with an alertmanager sink, restamped to start now and played at its own pace:
Alertmanager's timers (group_wait 10 s, group_interval 15 s) run on its clock and it judges an
alert's startsAt and endsAt against that clock, so a replay paced up would be seen as alerts
from the past (sent at once, no group_wait) or resolutions from the future (held until then).
The incident lasts 37 s and its last chat update leaves 15 s later: about 50 s in all.

Asserted, for every incident bgpwatch's own incident list (the API `bgpwatch incidents` reads)
shows: never more than one page and never a resolve to the pager (later critical consequences,
such as the split after the site down, are chat updates); exactly one page, titled
"[CRITICAL] <root cause>", when a critical alert outlasts group_wait; then (when an alert outlasts
group_wait) several chat messages, the last one "[RESOLVED] <root cause>", between them naming
every kind of alert the incident raised.  How many incidents the replay yields is bgpwatch's
incident model's business: the counts per incident are printed (pytest -s).  Beside it, a
planned-maintenance alert posted the way the sink posts it reaches chat only.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from bgpwatch.alerts.lifecycle import parse_iso
from bgpwatch.alerts.sinks import AlertmanagerSink, build_sinks
from bgpwatch.alerts.sinks.alertmanager import rfc3339, summary_title
from tests import alertmanager_server
from tests.alertmanager_server import Notification, NotificationRecorder
from tests.restart_feed import ROOT, encode, recording_lines, retime

pytestmark = pytest.mark.skipif(not alertmanager_server.available(), reason=alertmanager_server.MISSING)

BGPWATCH = [sys.executable, "-m", "bgpwatch"]
RESEND = 5.0  # the sink re-sends firing alerts with endsAt = now + 3 x RESEND
PLANNED_INCIDENT = "2026-01-01T00:00:00Z-par9"
SHIPPED = yaml.safe_load(alertmanager_server.SHIPPED.read_text())
SLACK = 2.0  # s: bgpwatch's start-up lag and Alertmanager's own scheduling, either way


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_inputs(tmp_path: Path, alertmanager: str, api: str) -> tuple[Path, Path]:
    """Write the replay's configuration (alertmanager sink) and the recording, starting now."""
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    config["api"] = {"listen": api}
    config["alerting"] = {"sinks": [{"type": "alertmanager", "url": alertmanager, "resend_seconds": RESEND}]}
    config["storage"] = {"path": str(tmp_path / "bgpwatch.db")}
    config_path = tmp_path / "bgpwatch.yaml"
    config_path.write_text(yaml.safe_dump(config))
    # Same spacing, moved to now: bgpwatch's start-up (~1 s) keeps every stamp just in the past.
    shifted = retime(recording_lines(), time.time(), max_gap=1e9)
    recording = tmp_path / "paris.jsonl.gz"
    recording.write_bytes(gzip.compress(b"".join(map(encode, shifted))))
    return config_path, recording


def api_incidents(api: str) -> list[dict[str, Any]] | None:
    """Return bgpwatch's incident list (GET /api/v1/incidents), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{api}/api/v1/incidents", timeout=2) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def post_planned(alertmanager: str) -> None:
    """Post a maintenance alert built by the Alertmanager sink, as the daemon would."""
    [sink] = build_sinks([{"type": "alertmanager", "url": alertmanager}], CollectorRegistry())
    assert isinstance(sink, AlertmanagerSink)
    now = rfc3339(time.time())
    planned = {
        "kind": "site_down",
        "state": "firing",
        "at": now,
        "started_at": now,
        "severity": "info",
        "labels": {"site": "par9"},
        "summary": "site par9 down: maintenance window",
        "incident": PLANNED_INCIDENT,
        "incident_root": True,
        "incident_title": "site par9 down",
        "planned": {"by": "maintenance", "reason": "line card swap", "until": None},
    }
    sink.on_submit(planned)
    body = json.dumps(sink.payload_for(planned)).encode()
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def root_title(transitions: list[dict[str, Any]]) -> str:
    """Return the incident's root-cause title as the transitions give it (the sink's fallback too)."""
    firing = [t for t in transitions if t["state"] == "firing"]
    for t in firing:
        if t.get("incident_root") is True:
            return t.get("incident_title") or summary_title(t["summary"])
    for t in firing:
        if t.get("incident_title"):
            return t["incident_title"]
    return summary_title(firing[0]["summary"])


def duration(text: str) -> float:
    """Return an Alertmanager duration such as "10s" or "4h" in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)(ms|[smh])", text)
    assert "".join(n + u for n, u in parts) == text, text
    return sum(int(n) * units[u] for n, u in parts)


def outlasts(raised: list[dict[str, Any]], wait: float, severity: str | None = None) -> bool:
    """Tell whether an alert of the incident (of that severity) still fires `wait` s after the first."""
    spans: dict[tuple, list[float]] = {}
    for t in raised:
        if severity is not None and t["severity"] != severity:
            continue
        key = (t["kind"], tuple(sorted(t["labels"].items())))
        at = parse_iso(t["at"])
        assert at is not None
        if t["state"] == "firing":
            spans.setdefault(key, [at, float("inf")])
        elif key in spans:
            spans[key][1] = at
    if not spans:
        return False
    moment = min(start for start, _ in spans.values()) + wait
    return any(start <= moment < end for start, end in spans.values())


def counts(notes: list[Notification]) -> dict[str, dict[str, Counter[str]]]:
    """Return notifications per incident, receiver and status."""
    table: dict[str, dict[str, Counter[str]]] = {}
    for note in notes:
        table.setdefault(note.group, {}).setdefault(note.receiver, Counter())[note.status] += 1
    return table


def test_paris_replay_pages_once_per_incident(tmp_path: Path) -> None:
    with NotificationRecorder() as recorder:
        config = yaml.safe_dump(alertmanager_server.shipped_config(recorder.url))
        listen = f"127.0.0.1:{free_port()}"
        with alertmanager_server.running_alertmanager(tmp_path / "am", listen, config=config) as am:
            api = f"127.0.0.1:{free_port()}"
            config_path, recording = write_inputs(tmp_path, am, api)
            log = (tmp_path / "replay.log").open("wb")
            replay = subprocess.Popen(
                [
                    *BGPWATCH,
                    "replay",
                    "--config",
                    str(config_path),
                    "--serve",
                    "--pace",
                    "1",
                    "--settle",
                    "4",  # the last resolution comes 2.6 s after the recording's last line
                    "--json",
                    str(recording),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
            )
            started = time.monotonic()
            post_planned(am)
            incidents: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while replay.poll() is None:
                assert time.monotonic() < deadline, "the replay did not finish in 60 s"
                incidents = api_incidents(api) or incidents
                time.sleep(0.5)
            out, _ = replay.communicate()
            replayed = time.monotonic()
            log.close()
            assert replay.returncode == 0, (tmp_path / "replay.log").read_text()[-2000:]
            transitions = [json.loads(line) for line in out.splitlines()]
            by_incident: dict[str, list[dict[str, Any]]] = {}
            for t in transitions:
                by_incident.setdefault(t["incident"], []).append(t)
            # The incidents Alertmanager must notify: an alert still firing when group_wait is over.
            wait = duration(SHIPPED["route"]["group_wait"]) + SLACK
            wanted = [*by_incident, PLANNED_INCIDENT]
            paged = {i for i, raised in by_incident.items() if outlasts(raised, wait, "critical")}
            told = {i for i, raised in by_incident.items() if outlasts(raised, wait)}
            # Their last chat update (and the planned alert's first message) is up to one
            # group_interval (15 s) after their last change.
            deadline = time.monotonic() + 20
            while not all(
                any(n.status == "resolved" for n in recorder.got("chat", i)) for i in told
            ) or not recorder.got("chat", PLANNED_INCIDENT):
                assert time.monotonic() < deadline, counts(recorder.got())
                time.sleep(0.2)
            notes = recorder.got()
            print(
                f"\nreplay {replayed - started:.1f} s, last chat update {time.monotonic() - replayed:.1f} s later"
            )

    table = counts(notes)
    print("\nnotifications per incident, receiver and status:")
    for incident in wanted:
        print(
            f"  {incident}: "
            + ", ".join(f"{r} {dict(c)}" for r, c in sorted(table.get(incident, {}).items()))
        )
    print(f"  incidents listed by bgpwatch: {[i['id'] for i in incidents]}")
    for note in notes:
        print(f"--- {note.receiver} {note.group} {note.status}: {note.title}\n{note.text}")

    # bgpwatch's own incident list and the transitions agree.
    assert incidents, "bgpwatch's API never listed an incident"
    assert {i["id"] for i in incidents} == set(by_incident)
    if len(by_incident) != 1:
        print(f"  NOTE: {len(by_incident)} incidents for one root cause (par2's power loss)")
    assert paged, "the Paris incident must page: its site_down fires for 30 s"
    assert {note.group for note in notes} <= set(wanted), table

    for incident, raised in by_incident.items():
        title = root_title(raised)
        pages = recorder_filter(notes, "oncall", incident)
        # Never two pages for one incident, nor a resolve to the pager; exactly one when a
        # critical alert outlasted group_wait (a shorter one may or may not be sent).
        assert len(pages) <= 1, table[incident]
        assert len(pages) == 1 or incident not in paged, table.get(incident)
        for page in pages:
            assert page.status == "firing"
            assert page.title == f"[CRITICAL] {title}", page.title
            assert page.text.startswith(f"Root cause: {title}") or "Root cause (" in page.text, page.text
            assert f"Incident {incident}" in page.text
        chat = recorder_filter(notes, "chat", incident)
        assert all(title in n.title for n in chat), [n.title for n in chat]
        if incident not in told:
            continue
        assert len(chat) >= 2, table[incident]  # the first message, then updates
        assert chat[0].status == "firing" and chat[0].title.startswith("[")
        assert chat[-1].status == "resolved"
        assert chat[-1].title == f"[RESOLVED] {title}", chat[-1].title
        # Between them, the chat's messages name every kind of alert the incident raised.
        mentioned = " ".join(n.text for n in chat)
        roots = {t["kind"] for t in raised if t.get("incident_root") is True}
        # The root alert is named as such (it leaves the group once its resolution is sent).
        assert not roots or "Root cause (firing): " in chat[0].text, chat[0].text
        unmentioned = {t["kind"] for t in raised if f"• {t['kind']} (" not in mentioned} - roots
        assert unmentioned == set(), mentioned

    # Planned work: visible in chat, never paged.
    assert recorder_filter(notes, "oncall", PLANNED_INCIDENT) == []
    [planned, *_] = recorder_filter(notes, "chat", PLANNED_INCIDENT)
    assert planned.title == "[PLANNED maintenance] site par9 down", planned.title
    assert "planned maintenance: line card swap" in planned.text


def recorder_filter(notes: list[Notification], receiver: str, group: str) -> list[Notification]:
    """Return one receiver's notifications for one group, in arrival order."""
    return [n for n in notes if n.receiver == receiver and n.group == group]


def post_alerts(alertmanager: str, alerts: list[dict[str, Any]]) -> None:
    """POST alerts to Alertmanager's API v2."""
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def test_templates_for_groups_without_a_root_and_for_prometheus(tmp_path: Path) -> None:
    """An incident whose alerts name no root, a warning-only incident, a Prometheus page."""
    now = time.time()
    ends = rfc3339(now + 3600)
    daemon = {"source": "bgpwatch"}
    alerts = [
        # No root label (older bgpwatch, or a consequence whose root is not critical): the title
        # comes from the incident_title annotation, every alert is listed.
        {
            "labels": {
                **daemon,
                "alertname": "site_down",
                "severity": "critical",
                "incident": "i-5",
                "site": "par5",
            },
            "annotations": {
                "summary": "site par5 down (confirmed): gone",
                "incident_title": "site par5 down",
            },
        },
        {
            "labels": {
                **daemon,
                "alertname": "service_unreachable",
                "severity": "critical",
                "incident": "i-5",
                "service": "api",
                "site": "par1",
            },
            "annotations": {
                "summary": "service api unreachable from par1",
                "incident_title": "site par5 down",
            },
        },
        # Warnings only: chat, never the pager.
        {
            "labels": {
                **daemon,
                "alertname": "session_down",
                "severity": "warning",
                "incident": "i-6",
                "peer": "p6",
            },
            "annotations": {"summary": "BGP session p6 down: hold timer expired"},
        },
    ]
    for alert in alerts:  # 5 s old: group_wait (10 s) still gathers both alerts of i-5
        alert.update(startsAt=rfc3339(now - 5), endsAt=ends)
    # Prometheus' own page, 2 min old: its route's group_wait (1 min) is over, it is sent at once.
    absent = {
        "labels": {
            "alertname": "BgpwatchAbsent",
            "severity": "critical",
            "source": "prometheus",
            "job": "bgpwatch",
        },
        "annotations": {"summary": "bgpwatch target missing for 2 minutes"},
        "startsAt": rfc3339(now - 120),
        "endsAt": ends,
    }
    with NotificationRecorder() as recorder:
        config = yaml.safe_dump(alertmanager_server.shipped_config(recorder.url))
        listen = f"127.0.0.1:{free_port()}"
        with alertmanager_server.running_alertmanager(tmp_path / "am", listen, config=config) as am:
            post_alerts(am, [*alerts, absent])
            expected = {("oncall", "i-5"), ("chat", "i-5"), ("chat", "i-6")}
            expected |= {("oncall", "BgpwatchAbsent"), ("chat", "BgpwatchAbsent")}
            deadline = time.monotonic() + 20
            while not expected <= {(n.receiver, n.group) for n in recorder.got()}:
                assert time.monotonic() < deadline, counts(recorder.got())
                time.sleep(0.2)
            time.sleep(0.5)  # anything wrongly sent along with them
            notes = recorder.got()
    assert sorted((n.receiver, n.group) for n in notes) == sorted(expected)
    [page] = recorder_filter(notes, "oncall", "i-5")
    assert page.title == "[CRITICAL] site par5 down"
    assert page.text.startswith("Root cause: site par5 down\n\nFiring:\n"), page.text
    assert "• site_down (critical): site par5 down (confirmed): gone" in page.text
    assert "• service_unreachable (critical): service api unreachable from par1" in page.text
    [warning] = recorder_filter(notes, "chat", "i-6")
    assert warning.title == "[WARNING] BGP session p6 down: hold timer expired"
    assert warning.body["attachments"][0]["color"] == "warning"
    [prometheus] = recorder_filter(notes, "oncall", "BgpwatchAbsent")
    assert prometheus.title == "[CRITICAL] bgpwatch target missing for 2 minutes"
    assert "Incident" not in prometheus.text
