"""Restart semantics of the alert book and the detection engine (synthetic, no daemon).

The book: alerts restored from the store are firing without being emitted again; during the
re-learn clears are only noted; `settle_restored` keeps what is asserted again and resolves the
rest once.  The engine: restored alerts seed the topology, the re-learn ends when every session
is converged and no site is settling, or at the bound.
"""

from __future__ import annotations

import time
from typing import Any

import yaml

from bgpwatch.alerts.lifecycle import AlertBook, Finding, iso_ms, parse_iso
from bgpwatch.alerts.store import Store
from bgpwatch.config import load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.pipeline import Pipeline
from tests.restart_feed import ROOT, encode, line_time, recording_lines, respaced, retime, table_at

T0 = 1795699700.0
INCIDENT = "2026-11-26T13:28:20Z-par2"


def firing(kind: str, labels: dict[str, str], at: float, started: float, incident: str = INCIDENT) -> dict:
    """Return a firing transition as the store gives it back."""
    return {
        "kind": kind,
        "state": "firing",
        "at": iso_ms(at),
        "severity": "critical",
        "labels": labels,
        "summary": f"{kind} {labels}",
        "incident": incident,
        "annotations": {"confirmation": "confirmed"},
        "started_at": iso_ms(started),
    }


def finding(kind: str, labels: dict[str, str], cause: Any = None) -> Finding:
    return Finding(kind, labels, "critical", f"{kind} {labels} again", "par2", cause=cause)


def book_with(*transitions: dict) -> tuple[AlertBook, list[dict]]:
    out: list[dict] = []
    book = AlertBook(out.append)
    incidents = [{"id": INCIDENT, "root_kind": "site_down", "root_labels": {"site": "par2"}}]
    assert book.restore(transitions, incidents) == len(transitions)
    return book, out


SITE = {"site": "par2"}


def test_restored_alert_is_firing_and_silent_and_continues_when_found_again():
    book, out = book_with(firing("site_down", SITE, T0 + 0.5, T0))
    [view] = book.active()
    assert view["state"] == "firing" and view["restored"] and view["incident"] == INCIDENT
    assert view["started_at"] == iso_ms(T0)
    book.advance(T0 + 100)
    book.upsert(finding("site_down", SITE), T0 + 101)
    book.advance(T0 + 102)
    assert book.settle_restored(T0 + 103) == []
    book.advance(T0 + 200)
    assert out == []  # nothing notified again
    assert "restored" not in book.active()[0]
    # From now on it is an ordinary alert: it resolves normally, in its incident, with its real start.
    book.clear(("site_down", (("site", "par2"),)), T0 + 300)
    book.advance(T0 + 303)
    [resolved] = out
    assert resolved["state"] == "resolved" and resolved["incident"] == INCIDENT
    assert resolved["started_at"] == iso_ms(T0) and resolved["duration_seconds"] == 300.0
    assert "restart" not in resolved["annotations"]


def test_restored_alert_not_found_again_is_resolved_once_after_the_relearn():
    book, out = book_with(firing("site_down", SITE, T0 + 0.5, T0))
    book.sync("site_down", [], T0 + 100)  # a half-loaded table says nothing: no resolution yet
    book.advance(T0 + 150)
    assert out == [] and book.restoring
    assert book.settle_restored(T0 + 160, {"relearned_at": iso_ms(T0 + 160)}) == [
        ("site_down", (("site", "par2"),))
    ]
    assert not book.restoring
    book.advance(T0 + 161)
    assert out == []  # hold-down, like any resolution
    book.advance(T0 + 170)
    [resolved] = out
    assert resolved["state"] == "resolved" and resolved["at"] == iso_ms(T0 + 162)
    assert resolved["ended_at"] == iso_ms(T0 + 160) and resolved["duration_seconds"] == 160.0
    assert resolved["annotations"]["restart"] == {
        "resolved_after_restart": True,
        "end_seen_after_restart": False,
        "relearned_at": iso_ms(T0 + 160),
    }
    assert resolved["annotations"]["confirmation"] == "confirmed"
    assert "while bgpwatch was down" in resolved["summary"]
    book.advance(T0 + 500)
    assert len(out) == 1 and book.active() == []


def test_end_seen_during_the_relearn_is_the_resolution_time():
    book, out = book_with(firing("site_down", SITE, T0 + 0.5, T0))
    book.upsert(finding("site_down", SITE), T0 + 100)
    book.clear(("site_down", (("site", "par2"),)), T0 + 110)
    book.clear(("site_down", (("site", "par2"),)), T0 + 115)  # still clear: the end stays at 110
    book.settle_restored(T0 + 130)
    book.advance(T0 + 130)
    [resolved] = out
    assert resolved["ended_at"] == iso_ms(T0 + 110) and resolved["at"] == iso_ms(T0 + 130)
    assert resolved["annotations"]["restart"]["end_seen_after_restart"] is True


def test_found_again_within_the_hold_down_after_settling_is_not_resolved():
    book, out = book_with(firing("site_down", SITE, T0 + 0.5, T0))
    book.settle_restored(T0 + 100)
    book.upsert(finding("site_down", SITE), T0 + 101)  # back within keep: a flap absorbed
    book.advance(T0 + 200)
    assert out == [] and book.active()[0]["state"] == "firing"
    book.clear(("site_down", (("site", "par2"),)), T0 + 300)
    book.advance(T0 + 400)
    assert [t["state"] for t in out] == ["resolved"] and "restart" not in out[0]["annotations"]


def test_consequence_after_restart_joins_the_resumed_incident():
    book, out = book_with(firing("site_down", SITE, T0 + 0.5, T0))
    cause = ("site_down", (("site", "par2"),))
    split = {"islands": "par1 | par3"}
    book.upsert(finding("topology_split", split, cause=cause), T0 + 100)
    book.advance(T0 + 101)
    [fired] = out
    assert fired["kind"] == "topology_split" and fired["incident"] == INCIDENT
    [incident] = book.incident_list()
    assert incident["id"] == INCIDENT and {"kind": "topology_split", "labels": split} in incident["alerts"]
    assert incident["root"] == {"kind": "site_down", "labels": SITE}


def test_restore_skips_resolved_duplicate_and_unreadable_transitions():
    out: list[dict] = []
    book = AlertBook(out.append)
    good = firing("site_down", SITE, T0 + 0.5, T0)
    resolved = {**good, "state": "resolved"}
    broken = {**firing("session_down", {"peer": "par2-rr1"}, T0, T0), "at": "yesterday"}
    assert book.restore([good, dict(good), resolved, broken]) == 1
    assert out == []


def test_parse_iso():
    assert parse_iso(iso_ms(T0 + 0.25)) == T0 + 0.25
    assert parse_iso(12.5) == 12.5
    assert parse_iso("not a time") is None and parse_iso(None) is None


# --- the engine, on the real recording's lines (restamped), without a daemon -----------------------


def paris_config(tmp_path):
    data = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    data["detectors"] = {"topology": {"rejoin_grace": 2.0}}
    path = tmp_path / "paris.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


class Run:
    """A pipeline and an engine that store what they emit, like the daemon does."""

    def __init__(self, config: Any, store: Store) -> None:
        self.out: list[dict] = []
        self.store = store
        self.pipeline = Pipeline(config)
        self.engine = DetectionEngine(config, self.pipeline.rib, self._emit)
        self.pipeline.consumer = self.engine

    def _emit(self, transition: dict) -> None:
        self.out.append(transition)
        self.store.record(transition)

    def feed(self, lines: list[dict]) -> float:
        for line in lines:
            self.pipeline.feed_line(encode(line).rstrip(b"\n"), "replay")
        return max(line_time(line) for line in lines)


def part1(tmp_path) -> tuple[Any, Store, list[dict], int, float]:
    """Run the recording until par2's hold timer expired, then 3 s; return what a restart needs."""
    config = paris_config(tmp_path)
    lines = recording_lines()
    cut = 52  # par2's session down (hold timer): site_down par2 fired before it
    store = Store(tmp_path / "bgpwatch.db")
    first = Run(config, store)
    end = first.feed(retime(lines[:cut], time.time()))
    first.engine.finish(end, horizon=3.0)
    assert {t["kind"] for t in first.out} >= {"site_down", "session_down", "service_unreachable"}
    return config, store, lines, cut, end + 3.0


def test_engine_resumes_when_the_site_is_still_down_and_bounds_the_relearn(tmp_path):
    config, store, lines, cut, end = part1(tmp_path)
    second = Run(config, store)
    assert second.engine.restore(store.active_alerts(), store.open_incidents()) == 5
    topology = second.engine.topology
    assert topology.states["par2"].state == "down"  # seeded: known down, not unknown
    assert topology.vps["192.0.2.6"].state == "down" and topology.vps["192.0.2.6"].ever_up
    # par1 and par3 come back with their tables; par2 stays dark, so the re-learn waits for the bound.
    last = second.feed(respaced(table_at(lines, cut), end + 5))
    second.engine.tick(last + 30)
    assert second.engine.relearning and second.out == []
    second.engine.tick(last + 61)
    assert not second.engine.relearning
    second.engine.finish(last + 61, horizon=10)
    assert second.out == []  # site_down, session_down, service_unreachable...: all found again, silent
    assert {a["kind"] for a in second.engine.active_alerts()} == {
        "site_down",
        "session_down",
        "service_unreachable",
        "visibility_loss",
    }
    assert store.check() == []


def test_engine_resolves_once_what_ended_while_down(tmp_path):
    config, store, lines, _cut, end = part1(tmp_path)
    before = {(t["kind"], tuple(sorted(t["labels"].items()))) for t in store.active_alerts()}
    second = Run(config, store)
    second.engine.restore(store.active_alerts(), store.open_incidents())
    last = second.feed(respaced(table_at(lines, len(lines)), end + 5))
    second.engine.finish(last, horizon=30)
    assert {(t["kind"], tuple(sorted(t["labels"].items()))) for t in second.out} == before
    assert all(t["state"] == "resolved" and t["annotations"]["restart"] for t in second.out)
    assert len(second.out) == len(before)
    # Converged and settled well before the bound: resolved within the hold-down after that.
    assert max(parse_iso(t["at"]) for t in second.out) < last + 10
    assert store.active_alerts() == [] and store.open_incidents() == [] and store.check() == []


def test_a_muted_book_emits_nothing_during_a_clean_stop() -> None:
    """SIGTERM: the daemon mutes the book before stopping ExaBGP, so the sessions it closes page nobody."""
    from bgpwatch.alerts.lifecycle import AlertBook, Finding

    sent: list = []
    book = AlertBook(sent.append)
    book.upsert(Finding("site_down", {"site": "par2"}, "critical", "site par2 down", "par2"), 100.0)
    book.advance(101.0)
    assert [t["state"] for t in sent] == ["firing"]
    book.mute()
    book.upsert(
        Finding("collector_degraded", {}, "warning", "ExaBGP shut down", "collector", for_=0.0), 102.0
    )
    book.clear(("site_down", (("site", "par2"),)), 102.0)
    book.advance(110.0)
    assert [t["kind"] for t in sent] == ["site_down"]  # nothing after the mute: no firing, no resolution
