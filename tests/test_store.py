"""Alert store: recording, reopening, incidents, crash safety, retention, delivery bookkeeping."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bgpwatch.alerts import timeline
from bgpwatch.alerts.store import SCHEMA_VERSION, Store, StoreError, parse_time, transition_key

INCIDENT = "2025-03-03T14:55:03Z-par6"


def tr(kind: str, state: str, at: str, labels: dict, severity: str = "warning", **extra) -> dict:
    """Build a contract transition."""
    body = {
        "kind": kind,
        "state": state,
        "at": at,
        "severity": severity,
        "labels": labels,
        "summary": extra.pop("summary", f"{kind} {labels}"),
        "incident": extra.pop("incident", INCIDENT),
    }
    body.update(extra)
    return body


def par6_incident() -> list[dict]:
    """The 3 March 2025 shape: sessions drop, site down, split, stale routes, recovery."""
    return [
        tr("session_down", "firing", "2025-03-03T14:55:03.100Z", {"site": "par6", "peer": "par6-rr1"}),
        tr("session_down", "firing", "2025-03-03T14:55:03.400Z", {"site": "par6", "peer": "par6-rr2"}),
        tr(
            "topology_split",
            "firing",
            "2025-03-03T14:55:04.000Z",
            {"islands": "par6 | par7,par8"},
            "critical",
            summary="live sites form 2 islands",
        ),
        tr(
            "site_down",
            "firing",
            "2025-03-03T14:55:05.000Z",
            {"site": "par6"},
            "critical",
            summary="site par6 down",
            evidence={"withdrawn_by": ["par7", "par8"], "prefixes": 12},
        ),
        tr(
            "stale_routes",
            "firing",
            "2025-03-03T14:55:05.000Z",
            {"site": "par6"},
            summary="par7, par8 still route to par6 (stale)",
        ),
        tr(
            "stale_routes",
            "resolved",
            "2025-03-03T14:58:12.000Z",
            {"site": "par6"},
            started_at="2025-03-03T14:55:05.000Z",
            duration_seconds=187.0,
        ),
        tr("site_down", "resolved", "2025-03-03T15:10:00.000Z", {"site": "par6"}, "critical"),
        tr("session_down", "resolved", "2025-03-03T15:10:01.000Z", {"site": "par6", "peer": "par6-rr1"}),
        tr("session_down", "resolved", "2025-03-03T15:10:01.500Z", {"site": "par6", "peer": "par6-rr2"}),
        tr(
            "topology_split",
            "resolved",
            "2025-03-03T15:15:02.000Z",
            {"islands": "par6 | par7,par8"},
            "critical",
        ),
    ]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bgpwatch.db"


def test_wal_mode_and_schema_version(db_path: Path) -> None:
    with Store(db_path) as store:
        assert store.journal_mode == "wal"
        assert store.schema_version == SCHEMA_VERSION
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent property of the file
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"transitions", "incidents", "notifications", "alerts"} <= tables
    raw.close()


def test_newer_schema_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer than this bgpwatch"):
        Store(db_path)


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 200)
    with pytest.raises(StoreError, match="cannot use the alert store"):
        Store(path)


def test_record_and_resume_after_reopen(db_path: Path) -> None:
    events = par6_incident()
    store = Store(db_path)
    for t in events[:5]:  # everything fires, nothing resolved yet
        store.record(t)
    store.close()

    store = Store(db_path)  # the daemon restarts
    active = store.active_alerts()
    assert [(a["kind"], a["labels"].get("peer")) for a in active] == [
        ("session_down", "par6-rr1"),
        ("session_down", "par6-rr2"),
        ("topology_split", None),
        ("site_down", None),
        ("stale_routes", None),
    ]
    assert active[3]["evidence"] == {"withdrawn_by": ["par7", "par8"], "prefixes": 12}
    [incident] = store.open_incidents()
    assert incident["id"] == INCIDENT
    assert incident["status"] == "open"
    assert incident["alerts_firing"] == 5
    for t in events[5:]:
        store.record(t)
    assert store.active_alerts() == []
    assert store.open_incidents() == []
    [closed] = store.incidents(limit=10)
    assert closed["status"] == "closed"
    assert closed["closed_at"] == "2025-03-03T15:15:02.000Z"
    assert closed["duration_seconds"] == pytest.approx(
        parse_time("2025-03-03T15:15:02Z") - parse_time("2025-03-03T14:55:03.1Z")
    )
    store.close()


def test_record_is_idempotent(db_path: Path) -> None:
    with Store(db_path) as store:
        t = par6_incident()[0]
        assert store.record(t) == store.record(dict(t)) == transition_key(t)
        assert store.incident(INCIDENT)["incident"]["transitions"] == 1


def test_incident_root_is_its_first_firing_and_severity_its_worst(db_path: Path) -> None:
    with Store(db_path) as store:
        for t in par6_incident()[:5]:
            store.record(t)
        incident = store.incident(INCIDENT)["incident"]
    assert incident["root_kind"] == "session_down"
    assert incident["root_labels"] == {"site": "par6", "peer": "par6-rr1"}
    assert incident["severity"] == "critical"  # topology_split joined it
    assert incident["opened_at"] == "2025-03-03T14:55:03.100Z"


def test_timeline_in_event_order_whatever_the_record_order(db_path: Path) -> None:
    events = par6_incident()
    shuffled = events[5:] + events[:5]
    with Store(db_path) as store:
        for t in shuffled:
            store.record(t)
        data = store.incident(INCIDENT)
    ats = [t["at"] for t in data["timeline"]]
    assert ats == sorted(ats, key=parse_time)
    assert [t["kind"] for t in data["timeline"]] == [t["kind"] for t in events]
    assert data["incident"]["status"] == "closed"


def test_alerts_history_query(db_path: Path) -> None:
    with Store(db_path) as store:
        for t in par6_incident()[:7]:
            store.record(t)
        firing = store.alerts()
        assert {a["kind"] for a in firing} == {"session_down", "topology_split"}
        assert all(a["state"] == "firing" for a in firing)
        everything = store.alerts(include_resolved=True)
        assert len(everything) == 5
        recent = store.alerts(since="2025-03-03T15:00:00Z", include_resolved=True)
        assert {(a["kind"], a["state"]) for a in recent} == {
            ("session_down", "firing"),
            ("topology_split", "firing"),
            ("site_down", "resolved"),
        }


def test_refire_after_resolution_reopens_incident(db_path: Path) -> None:
    labels = {"site": "par1", "peer": "par1-rr1"}
    with Store(db_path) as store:
        store.record(tr("session_down", "firing", "2025-03-03T10:00:00Z", labels, incident="i1"))
        store.record(tr("session_down", "resolved", "2025-03-03T10:01:00Z", labels, incident="i1"))
        assert store.open_incidents() == []
        store.record(tr("session_down", "firing", "2025-03-03T10:02:00Z", labels, incident="i1"))
        [incident] = store.open_incidents()
        assert incident["closed_at"] is None
        assert len(store.alerts(include_resolved=True)) == 2  # two instances of the same alert
        assert store.check() == []


def test_delivery_bookkeeping_survives_reopen(db_path: Path) -> None:
    t = par6_incident()[0]
    store = Store(db_path)
    key = store.record(t)
    assert not store.was_delivered("am", key)
    store.mark_delivered("am", key)
    store.mark_delivered("am", key)  # twice is harmless
    store.close()
    with Store(db_path) as store:
        assert store.was_delivered("am", key)
        assert not store.was_delivered("webhook", key)
        assert store.undelivered("am") == []
        assert store.undelivered("webhook") == [t]


def test_prune_keeps_open_incidents_and_firing_alerts(db_path: Path) -> None:
    day = 86400.0
    now = parse_time("2025-04-01T00:00:00Z")
    old = "2025-03-01T00:00:00Z"
    with Store(db_path) as store:
        closed = [
            tr("site_down", "firing", old, {"site": "par1"}, incident="old-closed"),
            tr("site_down", "resolved", "2025-03-01T00:05:00Z", {"site": "par1"}, incident="old-closed"),
        ]
        still_open = tr("site_down", "firing", old, {"site": "par2"}, incident="old-open")
        recent = [
            tr("site_down", "firing", "2025-03-30T00:00:00Z", {"site": "par3"}, incident="recent"),
            tr("site_down", "resolved", "2025-03-30T00:01:00Z", {"site": "par3"}, incident="recent"),
        ]
        for t in [*closed, still_open, *recent]:
            store.record(t)
        for t in closed:
            store.mark_delivered("am", transition_key(t))
        deleted = store.prune(retention_days=7, now=now)
        assert deleted == 2
        assert {i["id"] for i in store.incidents(limit=10)} == {"old-open", "recent"}
        assert store.incident("old-closed") is None
        assert [a["labels"]["site"] for a in store.active_alerts()] == ["par2"]
        # the notification rows of pruned transitions go too (they are older than the cutoff by wall clock)
        assert store.prune(retention_days=7, now=time.time() + 8 * day) >= 2
        assert not store.was_delivered("am", transition_key(closed[0]))
        assert store.incident("old-open") is not None
        assert store.check() == []


WRITER = textwrap.dedent(
    """
    import sys
    from bgpwatch.alerts.store import Store
    store = Store(sys.argv[1])
    mode = sys.argv[2]
    if mode == "hold":
        # open a transaction, write into it, say so, and wait to be killed before COMMIT
        store._db.execute("BEGIN IMMEDIATE")
        for i in range(500):
            store._db.execute(
                "INSERT INTO transitions (key, alert_key, kind, state, severity, incident, at, at_ts, body,"
                " recorded_ts) VALUES (?, 'x', 'site_down', 'firing', 'critical', 'torn', 'x', 0, '{}', 0)",
                (f"torn-{i}",),
            )
        print("in-transaction", flush=True)
        sys.stdin.read()
    else:
        n = 0
        while True:
            site = f"s{n % 50}"
            at = f"2025-03-03T{10 + n // 3600 % 10:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
            state = "firing" if (n // 50) % 2 == 0 else "resolved"
            store.record({"kind": "site_down", "state": state, "at": at, "severity": "critical",
                          "labels": {"site": site}, "summary": "x", "incident": f"inc-{n // 100}",
                          "evidence": {"blob": "y" * 2000}})
            n += 1
            if n == 200:
                print("writing", flush=True)
    """
)


def _spawn(db: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_crash_mid_transaction_leaves_nothing_half_written(db_path: Path) -> None:
    with Store(db_path) as store:
        for t in par6_incident()[:3]:
            store.record(t)
    proc = _spawn(db_path, "hold")
    try:
        assert proc.stdout.readline().strip() == "in-transaction"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with Store(db_path) as store:
        assert store.check() == []
        assert store.incident("torn") is None
        assert len(store.active_alerts()) == 3
        store.record(par6_incident()[3])  # the write lock was released by the crash
        assert len(store.active_alerts()) == 4


def test_crash_during_continuous_writes_keeps_database_consistent(db_path: Path) -> None:
    Store(db_path).close()
    proc = _spawn(db_path, "loop")
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.2)  # let it be somewhere inside a record(): where exactly does not matter
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with Store(db_path) as store:
        assert store.check() == []
        raw = store._db
        written = raw.execute("SELECT COUNT(*) FROM transitions").fetchone()[0]
        assert written >= 200
        # each committed transition updated its alert in the same transaction
        last = raw.execute("SELECT MAX(id) FROM transitions").fetchone()[0]
        assert raw.execute("SELECT COUNT(*) FROM alerts WHERE last_id = ?", (last,)).fetchone()[0] == 1


def test_record_cost(db_path: Path) -> None:
    """record() is cheap enough to run on the event loop (documented in the store's docstring)."""
    n = 300
    with Store(db_path) as store:
        started = time.perf_counter()
        for i in range(n):
            labels = {"site": f"s{i % 20}", "peer": f"p{i}"}
            store.record(tr("session_down", "firing" if i % 2 == 0 else "resolved", f"2025-03-03T10:00:{i % 60:02d}Z",
                            labels, incident=f"i{i // 10}", evidence={"routes": list(range(50))}))  # fmt: skip
        per_record = (time.perf_counter() - started) / n
    print(f"record(): {per_record * 1e6:.0f} us per transition")
    assert per_record < 0.005


def test_timeline_text_markdown_json(db_path: Path) -> None:
    with Store(db_path) as store:
        for t in par6_incident():
            store.record(t)
        data = store.incident(INCIDENT)
    text = timeline.render_text(data)
    lines = text.splitlines()
    body = lines[lines.index("") + 1 :]
    assert body == [
        "14:55:03  par6: sessions par6-rr1, par6-rr2 down",
        "14:55:04  topology split: {par6} | {par7, par8}",
        "14:55:05  site par6 down",
        "14:55:05  par7, par8 still route to par6 (stale)",
        "14:58:12  stale routes of par6 gone after 187 s",
        "15:10:00  site par6 back after 14 min 55 s",
        "15:10:01  par6: sessions par6-rr1, par6-rr2 up again after 14 min 58 s",
        "15:15:02  topology whole again after 19 min 58 s",
    ]
    assert "lasted: 19 min 59 s" in text
    md = timeline.render_markdown(data)
    assert "| 14:55:04 | topology split: {par6} \\| {par7, par8} | critical |  |" in md
    assert "| 14:58:12 | stale routes of par6 gone after 187 s | warning | 187 s |" in md
    parsed = json.loads(timeline.render_json(data))
    assert parsed["incident"]["id"] == INCIDENT
    assert parsed["entries"][0]["count"] == 2
    assert parsed["entries"][4]["duration_seconds"] == 187.0
    with pytest.raises(ValueError, match="unknown timeline format"):
        timeline.render(data, "html")


def test_timeline_shows_the_date_when_it_changes() -> None:
    data = {
        "incident": {"id": "x", "root_kind": "site_down", "root_labels": {"site": "par1"}, "opened_at": "2025-03-03T23:59:00Z"},
        "timeline": [
            tr("site_down", "firing", "2025-03-03T23:59:00Z", {"site": "par1"}),
            tr("site_down", "resolved", "2025-03-04T00:01:00Z", {"site": "par1"}),
        ],
    }  # fmt: skip
    lines = timeline.render_text(data).splitlines()
    assert lines[-2:] == ["23:59:00  site par1 down", "2025-03-04 00:01:00  site par1 back after 120 s"]


def test_timeline_dates_lines_when_the_network_changed() -> None:
    """Firing lines at started_at, resolutions at ended_at (the lifecycle's de-bounce removed)."""
    data = {
        "incident": {"id": "x", "root_kind": "site_down", "root_labels": {"site": "par6"},
                     "opened_at": "2025-03-03T14:55:03.000Z"},
        "timeline": [
            tr("site_down", "firing", "2025-03-03T14:55:05.500Z", {"site": "par6"},
               started_at="2025-03-03T14:55:03.500Z"),
            tr("session_down", "firing", "2025-03-03T14:55:05.500Z", {"site": "par6", "peer": "par6-rr1"},
               started_at="2025-03-03T14:55:03.000Z"),
            tr("stale_routes", "resolved", "2025-03-03T14:58:12.000Z", {"site": "par6"},
               started_at="2025-03-03T14:55:03.000Z", ended_at="2025-03-03T14:58:10.000Z", duration_seconds=187.0),
        ],
    }  # fmt: skip
    entries = timeline.build_entries(data)
    assert [(e.at, e.kind) for e in entries] == [
        ("2025-03-03T14:55:03.000Z", "session_down"),
        ("2025-03-03T14:55:03.500Z", "site_down"),
        ("2025-03-03T14:58:10.000Z", "stale_routes"),
    ]
    assert entries[0].alerted_at == "2025-03-03T14:55:05.500Z"
    assert timeline.render_text(data).splitlines()[-1] == "14:58:10  stale routes of par6 gone after 187 s"


def test_incident_times_are_the_network_times(db_path: Path) -> None:
    """opened_at: earliest condition start; closed_at: when the last condition ended (not alert times)."""
    site = {"site": "par6"}
    with Store(db_path) as store:
        store.record(
            tr("site_down", "firing", "2025-03-03T14:55:05.500Z", site, started_at="2025-03-03T14:55:03.500Z")
        )
        store.record(tr("session_down", "firing", "2025-03-03T14:55:05.500Z", {**site, "peer": "par6-rr1"},
                        started_at="2025-03-03T14:55:03.000Z"))  # fmt: skip
        assert store.open_incidents()[0]["opened_at"] == "2025-03-03T14:55:03.000Z"
        store.record(tr("session_down", "resolved", "2025-03-03T15:15:05.000Z", {**site, "peer": "par6-rr1"},
                        ended_at="2025-03-03T15:15:02.000Z"))  # fmt: skip
        assert store.open_incidents()[0]["closed_at"] is None
        store.record(
            tr("site_down", "resolved", "2025-03-03T15:15:06.000Z", site, ended_at="2025-03-03T15:15:03.000Z")
        )
        [incident] = store.incidents()
        assert (incident["status"], incident["closed_at"]) == ("closed", "2025-03-03T15:15:03.000Z")
        assert incident["duration_seconds"] == 1200.0
