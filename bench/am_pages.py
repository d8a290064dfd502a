"""Count the pages and chat messages a real Alertmanager sends per bgpwatch incident for a recording.

Measures, for a lab recording (default: the FRR graceful-restart run, fixtures/lab/frr-scenarios.*,
fixtures/SOURCES.md "FRR with graceful restart") replayed through a whole bgpwatch daemon
(`bgpwatch replay --serve --pace N`, an alertmanager sink) into a real Alertmanager running the
shipped config/alertmanager/alertmanager.yml (routes, timers, templates, inhibition as shipped;
only the receivers' destinations point at a recorder on 127.0.0.1 standing in for PagerDuty,
`oncall`, and Slack, `chat`): per incident of bgpwatch's own list (GET /api/v1/incidents, and the
transitions' `incident`), its root-cause title, the notifications each receiver got (pager
firing / resolved, chat firing / resolved), and the scenario of the recording's timeline it
belongs to (the scenario started last before the incident opened; the timeline is the
recording's `<name>.transitions.json`, the same times as the table in fixtures/SOURCES.md).

The recording is restamped to start now, spacing kept, so Alertmanager judges every startsAt and
endsAt against its own clock: only --pace 1 (the default) keeps its timers (group_wait 10 s,
group_interval 15 s) true to the recording; the FRR run lasts about 4 minutes, plus up to a minute
for the last chat updates.  Any other pace is a quick smoke: alerts look older or newer than they
are.  Prints a table, then one JSON object (the figures, the versions, the machine).

    .venv/bin/python -m bench.am_pages [--pace N] [RECORDING CONFIG]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bgpwatch.alerts.lifecycle import parse_iso
from bgpwatch.alerts.sinks.alertmanager import summary_title
from tests import alertmanager_server
from tests.alertmanager_server import NotificationRecorder
from tests.restart_feed import encode, line_time, retime

ROOT = Path(__file__).resolve().parent.parent
RECORDING = ROOT / "fixtures" / "lab" / "frr-scenarios.jsonl.gz"
CONFIG = ROOT / "fixtures" / "lab" / "frr-scenarios.config.yaml"
SHIPPED = yaml.safe_load(alertmanager_server.SHIPPED.read_text())
RECEIVERS = ("oncall", "chat")


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seconds(text: str) -> float:
    """Return an Alertmanager duration such as "15s", "1m" or "4h" in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]]


def api_incidents(api: str) -> list[dict[str, Any]] | None:
    """Return bgpwatch's incident list (GET /api/v1/incidents), or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{api}/api/v1/incidents", timeout=2) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def timeline_for(recording: Path) -> list[dict[str, Any]]:
    """Return the recording's scenarios (name, started, ended, live incidents), oldest first."""
    name = recording.name.removesuffix(".gz").removesuffix(".jsonl")
    path = recording.with_name(f"{name}.transitions.json")
    if not path.exists():
        return []
    scenarios = json.loads(path.read_text()).get("scenarios", {})
    out = [
        {
            "name": name,
            "started": float(s["started"]),
            "ended": float(s["ended"]),
            "live_incidents": [i["id"] for i in s.get("incidents", [])],
        }
        for name, s in scenarios.items()
    ]
    return sorted(out, key=lambda s: s["started"])


def scenario_of(at: float, timeline: list[dict[str, Any]]) -> str:
    """Return the scenario started last before `at` (recording time), or where `at` falls outside."""
    if not timeline:
        return "?"
    before = [s for s in timeline if s["started"] <= at]
    if not before:
        return "(before the first scenario)"
    scenario = before[-1]
    if scenario is timeline[-1] and at > scenario["ended"]:
        return f"(after {scenario['name']} ended: recording's end)"
    return scenario["name"]


def incident_title(transitions: list[dict[str, Any]]) -> str:
    """Return the incident's root-cause title as its transitions last gave it (as the sink sends it).

    An incident's root can change (a session down adopted by the site down that explains it), and
    its later transitions carry the new title.
    """
    for t in reversed(transitions):
        if t.get("incident_title"):
            return t["incident_title"]
    roots = [t for t in transitions if t.get("incident_root") is True] or transitions
    return summary_title(roots[0]["summary"])


def write_inputs(
    work: Path, lines: list[dict[str, Any]], config: Path, alertmanager: str, api: str, resend: float
) -> tuple[Path, Path, float]:
    """Write the replay's config (alertmanager sink) and the recording restamped to start now.

    Return both paths and the shift (replayed time = recorded time + shift).
    """
    conf = yaml.safe_load(config.read_text())
    conf["api"] = {"listen": api}
    conf["alerting"] = {"sinks": [{"type": "alertmanager", "url": alertmanager, "resend_seconds": resend}]}
    conf["storage"] = {"path": str(work / "bgpwatch.db")}
    conf.setdefault("collector", {})["runtime_dir"] = str(work / "run")
    conf.pop("recording", None)  # the live run's own recording; a replay records nothing
    config_path = work / "bgpwatch.yaml"
    config_path.write_text(yaml.safe_dump(conf))
    start = time.time()
    # Same spacing, moved to now: bgpwatch's start-up (~1 s) keeps every stamp just in the past.
    shifted = retime(lines, start, max_gap=1e9)
    shift = start - line_time(lines[0])
    path = work / "recording.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(map(encode, shifted))))
    return config_path, path, shift


def bgpwatch_source(rev: str | None, work: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Return which bgpwatch the replay runs (and its environment): the working tree, or `rev` archived.

    Others edit the working tree while a run lasts minutes: a commit (`git archive`) pins the code.
    """
    git = ["git", "-C", str(ROOT)]
    if rev is None:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "bgpwatch"], capture_output=True, text=True
        ).stdout.split("\n")
        modified = sorted(line[3:] for line in dirty if line.strip())
        return {"code": "working tree", "head": head.strip(), "modified": modified}, dict(os.environ)
    commit = subprocess.run(
        [*git, "rev-parse", "--short", f"{rev}^{{commit}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = work / "bgpwatch-src"
    tree.mkdir()
    archive = subprocess.run([*git, "archive", commit, "bgpwatch"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    # PYTHONPATH comes before the venv's editable install of the working tree.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return {"code": "git archive", "commit": commit}, env


def alertmanager_version() -> str:
    """Return the Alertmanager binary's version line."""
    out = subprocess.run(
        [alertmanager_server.ALERTMANAGER, "--version"], capture_output=True, text=True, timeout=10
    )
    return (out.stdout or out.stderr).splitlines()[0].strip()


def utc(epoch: float) -> str:
    """Return an epoch as HH:MM:SS.s UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S.%f")[:10]


def run(
    recording: Path, config: Path, pace: float, settle: float, resend: float, tail: float, rev: str | None
) -> dict:
    """Replay `recording` into a real Alertmanager; return the figures per incident."""
    # Read once: the recording and its timeline are one version even if the files change meanwhile.
    raw = recording.read_bytes()
    lines = [json.loads(line) for line in gzip.decompress(raw).splitlines() if line.strip()]
    timeline = timeline_for(recording)
    first, last = line_time(lines[0]), line_time(lines[-1])
    span = last - first
    # The timeline must be this recording's (the same lab run): its scenarios within its span.
    matches = bool(timeline) and all(first <= s["started"] <= last for s in timeline)
    if timeline and not matches:
        print(f"warning: {recording.name}'s timeline is not within the recording's span", file=sys.stderr)
    group_wait = seconds(SHIPPED["route"]["group_wait"])
    with tempfile.TemporaryDirectory(prefix="bgpwatch-am-pages-") as tmp, NotificationRecorder() as recorder:
        work = Path(tmp)
        source, env = bgpwatch_source(rev, work)
        am_config = yaml.safe_dump(alertmanager_server.shipped_config(recorder.url))
        listen = f"127.0.0.1:{free_port()}"
        with alertmanager_server.running_alertmanager(work / "am", listen, config=am_config) as am:
            api = f"127.0.0.1:{free_port()}"
            config_path, replayed, shift = write_inputs(work, lines, config, am, api, resend)
            argv = [sys.executable, "-m", "bgpwatch", "replay", "--config", str(config_path)]
            argv += ["--serve", "--pace", str(pace), "--settle", str(settle), "--json", str(replayed)]
            # Transitions to a file: a pipe nobody reads during the replay could fill and block it.
            with (work / "replay.log").open("wb") as log, (work / "transitions.jsonl").open("wb") as out:
                replay = subprocess.Popen(argv, stdout=out, stderr=log, env=env, cwd=work)
                started = time.monotonic()
                listed: dict[str, dict[str, Any]] = {}
                deadline = started + span / pace + 120
                while replay.poll() is None:
                    if time.monotonic() > deadline:
                        replay.kill()
                        raise SystemExit(f"the replay did not finish in {deadline - started:.0f} s")
                    for incident in api_incidents(api) or []:
                        listed[incident["id"]] = incident
                    time.sleep(1.0)
                replay.wait()
            replay_seconds = time.monotonic() - started
            if replay.returncode != 0:
                raise SystemExit((work / "replay.log").read_text()[-2000:])
            text = (work / "transitions.jsonl").read_text()
            transitions = [json.loads(line) for line in text.splitlines() if line.strip()]
            by_incident: dict[str, list[dict[str, Any]]] = {}
            for t in transitions:
                by_incident.setdefault(t["incident"], []).append(t)
            # The last notifications: an alert fired at the end gets its first message after
            # group_wait; an alert still firing when bgpwatch stops expires at its last endsAt
            # (3 x resend), and chat tells it at the next group_interval tick.
            ended = time.monotonic()
            while time.monotonic() - ended < tail:
                notes = recorder.got()
                told = {n.group for n in notes if n.receiver == "chat" and n.status == "firing"}
                closed = {n.group for n in notes if n.receiver == "chat" and n.status == "resolved"}
                if time.monotonic() - ended > group_wait + 2 and told <= closed:
                    break
                time.sleep(0.5)
            tail_seconds = time.monotonic() - ended
            notes = recorder.got()
        version = alertmanager_version()

    incidents = sorted(set(by_incident) | set(listed) | {n.group for n in notes})
    rows = []
    for incident in incidents:
        raised = by_incident.get(incident, [])
        mine = [n for n in notes if n.group == incident]
        tally = {r: Counter(n.status for n in mine if n.receiver == r) for r in RECEIVERS}
        opened_text = listed.get(incident, {}).get("opened_at") or (raised[0]["at"] if raised else None)
        opened = parse_iso(opened_text) if opened_text else None
        recorded = None if opened is None else opened - shift
        rows.append(
            {
                "scenario": "?" if recorded is None else scenario_of(recorded, timeline),
                "incident": incident,
                "opened_recorded_utc": None if recorded is None else utc(recorded),
                "title": incident_title(raised) if raised else (mine[0].title if mine else ""),
                "root_kind": listed.get(incident, {}).get("root_kind"),
                "severities": sorted({t["severity"] for t in raised}),
                "kinds": sorted({t["kind"] for t in raised}),
                "listed_by_api": incident in listed,
                "oncall": {"firing": tally["oncall"]["firing"], "resolved": tally["oncall"]["resolved"]},
                "chat": {"firing": tally["chat"]["firing"], "resolved": tally["chat"]["resolved"]},
                "notifications": [
                    {"receiver": n.receiver, "status": n.status, "title": n.title} for n in mine
                ],
            }
        )
    rows.sort(key=lambda r: (r["opened_recorded_utc"] or "", r["incident"]))
    scenarios = []
    for s in timeline:
        mine = [r for r in rows if r["scenario"] == s["name"]]
        scenarios.append(
            {
                "scenario": s["name"],
                "started_utc": utc(s["started"]),
                "live_incidents": len(s["live_incidents"]),
                "replay_incidents": len(mine),
                "oncall_pages": sum(r["oncall"]["firing"] for r in mine),
                "chat_messages": sum(r["chat"]["firing"] + r["chat"]["resolved"] for r in mine),
            }
        )
    return {
        "benchmark": "am_pages",
        "recording": str(recording.relative_to(ROOT) if recording.is_relative_to(ROOT) else recording),
        "config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config),
        "recording_sha256": hashlib.sha256(raw).hexdigest(),
        "recording_utc": [utc(first), utc(last)],
        "timeline_matches_recording": matches,
        "bgpwatch": source,
        "pace": pace,
        "settle_seconds": settle,
        "resend_seconds": resend,
        "recording_seconds": round(span, 1),
        "replay_seconds": round(replay_seconds, 1),
        "tail_seconds": round(tail_seconds, 1),
        "alertmanager": version,
        "shipped_timers": {
            k: SHIPPED["route"][k] for k in ("group_wait", "group_interval", "repeat_interval")
        },
        "incidents": rows,
        "scenarios": scenarios,
        "totals": {
            "incidents": len(rows),
            "oncall_firing": sum(r["oncall"]["firing"] for r in rows),
            "oncall_resolved": sum(r["oncall"]["resolved"] for r in rows),
            "chat_firing": sum(r["chat"]["firing"] for r in rows),
            "chat_resolved": sum(r["chat"]["resolved"] for r in rows),
            "notifications": len(notes),
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "when_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def table(result: dict) -> str:
    """Return the per-incident and per-scenario tables (Markdown)."""
    out = [
        "| scenario | opened (recorded) | incident | title | oncall firing / resolved | chat firing / resolved |",
        "| --- | --- | --- | --- | ---: | ---: |",
    ]
    for r in result["incidents"]:
        out.append(
            f"| {r['scenario']} | {r['opened_recorded_utc']} | {r['incident']} | {r['title']} "
            f"| {r['oncall']['firing']} / {r['oncall']['resolved']} "
            f"| {r['chat']['firing']} / {r['chat']['resolved']} |"
        )
    if result["scenarios"]:
        out += [
            "",
            "| scenario | started | incidents live (recording's run) | incidents replayed | pages | chat messages |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for s in result["scenarios"]:
            out.append(
                f"| {s['scenario']} | {s['started_utc']} | {s['live_incidents']} | {s['replay_incidents']} "
                f"| {s['oncall_pages']} | {s['chat_messages']} |"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the replay, print the tables and the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recording", nargs="?", type=Path, default=RECORDING)
    parser.add_argument("config", nargs="?", type=Path, default=CONFIG)
    parser.add_argument(
        "--pace", type=float, default=1.0, help="seconds of recording per second (1: true timers)"
    )
    parser.add_argument("--settle", type=float, default=10.0, help="bgpwatch replay --settle")
    parser.add_argument("--resend", type=float, default=5.0, help="the sink's resend_seconds")
    parser.add_argument(
        "--rev", help="replay with bgpwatch as committed at REV (git archive), not the working tree"
    )
    parser.add_argument("--tail", type=float, default=90.0, help="longest wait for the last notifications, s")
    args = parser.parse_args(argv)
    if not alertmanager_server.available():
        print(alertmanager_server.MISSING, file=sys.stderr)
        return 2
    if args.pace <= 0:
        parser.error("--pace must be positive")
    result = run(
        args.recording.resolve(),
        args.config.resolve(),
        args.pace,
        args.settle,
        args.resend,
        args.tail,
        args.rev,
    )
    print(table(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
