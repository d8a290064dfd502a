"""path_detour's learning: only adjacencies seen carrying routes in a whole network can fire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.test_detect_scenarios import LAB_CONFIG, make_config, run_scenario

DETOUR = [  # par1-par3 cut, par2 still connects them (lab NOTES section 3, scenario 09), then healed
    {"t": 0.017, "peer": "par1-rr1", "announce": ["par3"], "path": [65002, 65003]},
    {"t": 0.017, "peer": "par3-rr1", "announce": ["par1"], "path": [65002, 65001]},
    {"t": 20.0, "peer": "par1-rr1", "announce": ["par3"], "path": [65003]},
    {"t": 20.001, "peer": "par3-rr1", "announce": ["par1"], "path": [65001]},
]
# A line par1 - par2 - par3: par1 and par3 reach each other through par2 from the start.
LINE = [
    {"peer": "par1-rr1", "announce": ["par3"], "path": [65002, 65003]},
    {"peer": "par3-rr1", "announce": ["par1"], "path": [65002, 65001]},
]


def detector(engine: Any) -> Any:
    return next(d for d in engine.detectors if d.name == "path_detour")


def kinds(emitted: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, str]]]:
    return [(t["kind"], t["state"], t["labels"]) for t in emitted]


def test_the_adjacencies_of_a_whole_network_are_learned(tmp_path: Path) -> None:
    emitted, engine = run_scenario({"start": "converged", "events": [], "until": 1}, make_config(tmp_path))
    assert emitted == []
    learned = detector(engine).learned
    assert sorted(learned) == [("par1", "par2"), ("par1", "par3"), ("par2", "par3")]
    assert all(link.carrying and link.routes == 8 for link in learned.values())


def test_an_adjacency_never_seen_carrying_routes_never_fires(tmp_path: Path) -> None:
    # par1-par3 never carried a route: the long path is how the network is built, not a detour.
    scenario = {"start": "converged", "start_extra": LINE, "events": DETOUR[:2], "until": 15}
    emitted, engine = run_scenario(scenario, make_config(tmp_path))
    assert emitted == []
    assert sorted(detector(engine).learned) == [("par1", "par2"), ("par2", "par3")]


def test_an_adjacency_seen_only_briefly_is_not_learned(tmp_path: Path) -> None:
    # Line topology; at +1 s par1-par3 carries routes for 3 s (less than learn_after), then stops.
    events = [
        {"t": 1.0, "peer": "par1-rr1", "announce": ["par3"], "path": [65003]},
        {"t": 4.0, "peer": "par1-rr1", "announce": ["par3"], "path": [65002, 65003]},
    ]
    scenario = {"start": "converged", "start_extra": LINE, "events": events, "until": 20}
    emitted, engine = run_scenario(scenario, make_config(tmp_path))
    assert emitted == []
    assert ("par1", "par3") not in detector(engine).learned


def test_a_backup_link_used_during_a_detour_is_not_learned(tmp_path: Path) -> None:
    # Line par1 - par2 - par3 plus a backup par1-par3: par1-par2 is cut (a detour through the backup,
    # which fires), healed at +30 s: the backup, used only while the network was not whole, going
    # quiet again is no detour.
    events = [
        {"t": 0.0, "peer": "par1-rr1", "announce": ["par2"], "path": [65003, 65002]},
        {"t": 0.0, "peer": "par1-rr1", "announce": ["par3"], "path": [65003]},
        {"t": 0.001, "peer": "par2-rr1", "announce": ["par1"], "path": [65003, 65001]},
        {"t": 0.001, "peer": "par3-rr1", "announce": ["par1"], "path": [65001]},
        {"t": 30.0, "peer": "par1-rr1", "announce": ["par2"], "path": [65002]},
        {"t": 30.0, "peer": "par1-rr1", "announce": ["par3"], "path": [65002, 65003]},
        {"t": 30.001, "peer": "par2-rr1", "announce": ["par1"], "path": [65001]},
        {"t": 30.001, "peer": "par3-rr1", "announce": ["par1"], "path": [65002, 65001]},
    ]
    scenario = {"start": "converged", "start_extra": LINE, "events": events, "until": 60}
    emitted, engine = run_scenario(scenario, make_config(tmp_path))
    link = {"link": "par1-par2"}
    assert kinds(emitted) == [("path_detour", "firing", link), ("path_detour", "resolved", link)]
    assert emitted[0]["summary"] == (
        "link par1-par2 carries no routes: par1 reaches par2 via par3 (65001 65003 65002)"
    )
    assert emitted[0]["severity"] == "warning"
    assert ("par1", "par3") not in detector(engine).learned


def test_ibgp_design_has_no_inter_site_adjacency(tmp_path: Path) -> None:
    # Every site in one AS: paths carry no site AS, so there is nothing to learn and nothing fires.
    data = yaml.safe_load(LAB_CONFIG.read_text())
    for site in data["sites"]:
        for peer in site["peers"]:
            peer["peer_as"] = peer["local_as"] = 65001
    events = [{**e, "path": []} for e in DETOUR]
    scenario = {"start": "converged", "config": {"sites": data["sites"]}, "events": events, "until": 30}
    emitted, engine = run_scenario(scenario, make_config(tmp_path, scenario["config"]))
    assert [t for t in emitted if t["kind"] == "path_detour"] == []
    assert detector(engine).learned == {}


def test_nothing_fires_while_the_collector_is_degraded(tmp_path: Path) -> None:
    # The feed lost lines just before the detour: bgpwatch's view is not trusted for a minute
    # (feed_gap_hold); the detour is judged only once the collector is healthy again.
    events = [{"t": 0.0, "gap": 10}, *DETOUR[:2]]
    scenario = {"start": "converged", "events": events, "until": 90}
    emitted, _engine = run_scenario(scenario, make_config(tmp_path))
    link = {"link": "par1-par3"}
    assert kinds(emitted) == [
        ("collector_degraded", "firing", {}),
        ("collector_degraded", "resolved", {}),
        ("path_detour", "firing", link),
    ]
    assert emitted[2]["at"] > emitted[1]["at"]


def test_the_detour_fires_after_for_and_resolves_after_keep(tmp_path: Path) -> None:
    scenario = {"start": "converged", "events": DETOUR, "until": 30}
    emitted, _engine = run_scenario(scenario, make_config(tmp_path))
    link = {"link": "par1-par3"}
    assert kinds(emitted) == [("path_detour", "firing", link), ("path_detour", "resolved", link)]
    assert emitted[0]["at"].endswith(":22.017Z") and emitted[1]["at"].endswith(":42.000Z")


def test_a_detour_firing_before_a_restart_is_still_judged_after_it(tmp_path: Path) -> None:
    # bgpwatch restarts while par1-par3 is cut: the network it re-learns never shows that link, but
    # the restored alert names it, so it stays firing (not resolved by the re-learn) until the heal.
    from bgpwatch.alerts.lifecycle import iso_ms
    from bgpwatch.detect.engine import DetectionEngine
    from bgpwatch.rib import Rib
    from tests.test_detect_scenarios import T0, Feeder

    config = make_config(tmp_path)
    rib = Rib()
    emitted: list[dict[str, Any]] = []
    engine = DetectionEngine(config, rib, emitted.append)
    before = {
        "kind": "path_detour",
        "state": "firing",
        "labels": {"link": "par1-par3"},
        "severity": "warning",
        "summary": "link par1-par3 carries no routes",
        "at": iso_ms(T0 - 100),
        "started_at": iso_ms(T0 - 102),
        "incident": "2026-11-26T11:06:40Z-par1-par3",
    }
    assert engine.restore([before]) == 1
    feeder = Feeder(config, rib)

    def feed(items: list[dict[str, Any]]) -> None:
        for event in sorted((e for item in items for e in feeder.events(item)), key=lambda e: e.at):
            engine.tick(event.at)
            engine.process(event, rib.apply(event))

    feed(feeder.converged_start(LINE))
    for k in range(1, 101):
        engine.tick(T0 + k / 10)
    assert not engine.relearning  # every session converged: the restored alerts were settled
    assert [a["labels"] for a in engine.active_alerts()] == [{"link": "par1-par3"}]  # kept by the re-learn
    feed(DETOUR[2:])
    for k in range(201, 301):
        engine.tick(T0 + k / 10)
    link = {"link": "par1-par3"}
    assert kinds(emitted) == [("path_detour", "resolved", link)]
    assert emitted[0]["at"] == iso_ms(T0 + 22.0)  # heal at +20 s, keep 2 s
