"""Detection scenarios: "send these events, expect exactly these alert transitions".

Each `fixtures/scenarios/*.yaml` (except lab-config.yaml) is modelled on the sequences observed
in the multi-DC lab (/work/shared/lab/NOTES.md section 3, gotchas 9 and 10): the lab's config,
the events with their times (seconds from T0), and the exact transitions expected, in order.
Event syntax (one mapping per event, `t` in seconds from T0, `peer` a peer name):
  up / connected: true, down: REASON, eor: [4, 6], shutdown: REASON,
  collector: {worker, up, reason}, gap: LOST,
  announce: [site names and/or prefixes] with path: [ASNs], withdraw: [...],
  table: full | own   (a router's whole table as the lab's full mesh gives it),
  generate: {prefix: P/24, count: N} (N consecutive /24s), repeat: {count, step}, paths: [[..], [..]].
`start: converged` runs the lab's start-up 20 s before T0 (sessions up, full tables, EORs).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpwatch.alerts.lifecycle import iso_ms
from bgpwatch.config import load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.events import (
    DOWN,
    UP,
    Announce,
    CollectorShutdown,
    CollectorStatus,
    EndOfRib,
    FeedGap,
    SessionState,
    Withdraw,
)
from bgpwatch.rib import Rib
from bgpwatch.rib.prefix import parse_prefix

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "scenarios"
LAB_CONFIG = FIXTURES / "lab-config.yaml"
T0 = 1795691300.0  # 2026-11-26T11:08:20Z, the day the lab notes were taken
SCENARIOS = sorted(p for p in FIXTURES.glob("*.yaml") if p.name != "lab-config.yaml")


def make_config(tmp_path: Path, extra: dict[str, Any] | None = None):
    """Load the lab config (plus a scenario's overrides) through the real config loader."""
    data = yaml.safe_load(LAB_CONFIG.read_text())
    for key, value in (extra or {}).items():
        data[key] = value
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


class Feeder:
    """Turn scenario items into bgpwatch events, the way the ingest layer would."""

    def __init__(self, config: Any, rib: Rib) -> None:
        self.pool = rib.pool
        self.address = {p.name: p.address for p in config.peers}
        self.site_of = {p.name: site.name for site in config.sites for p in site.peers}
        self.site_prefixes = {s.name: [parse_prefix(p) for p in s.prefixes] for s in config.sites}
        self.site_as = {s.name: s.peers[0].peer_as for s in config.sites}
        self.order = [p.name for p in config.peers]

    def prefixes(self, spec: Any) -> list[tuple[int, int]]:
        result = []
        for item in spec if isinstance(spec, list) else [spec]:
            if isinstance(item, dict):
                network = ipaddress.ip_network(item["prefix"])
                for i in range(item["count"]):
                    base = int(network.network_address) + i * network.num_addresses
                    result.append(parse_prefix(f"{ipaddress.ip_address(base)}/{network.prefixlen}"))
            elif item in self.site_prefixes:
                result.extend(self.site_prefixes[item])
            else:
                result.append(parse_prefix(item))
        return result

    def announce(self, at: float, peer: str, prefixes: list[tuple[int, int]], path: list[int]) -> list:
        attrs = self.pool.intern(origin="igp", as_path=tuple(path), next_hop=self.address[peer])
        events = []
        for family in (4, 6):
            keys = tuple(k for f, k in prefixes if f == family)
            if keys:
                events.append(Announce(at, self.address[peer], family, keys, attrs))
        return events

    def table(self, at: float, peer: str, which: str) -> list:
        own = self.site_of[peer]
        events = self.announce(at, peer, self.site_prefixes[own], [])
        if which == "full":
            for site, prefixes in self.site_prefixes.items():
                if site != own:
                    events += self.announce(at, peer, prefixes, [self.site_as[site]])
        return events

    def events(self, item: dict[str, Any]) -> list:
        repeat = item.get("repeat", {"count": 1, "step": 0})
        result = []
        for n in range(repeat["count"]):
            at = T0 + round(item["t"] + n * repeat["step"], 6)
            result += self._one(item, at, n)
        return result

    def _one(self, item: dict[str, Any], at: float, n: int) -> list:
        peer = item.get("peer")
        address = self.address.get(peer, "")
        if "up" in item:
            return [SessionState(at, address, UP)]
        if "connected" in item:
            return [SessionState(at, address, "connected")]
        if "down" in item:
            return [SessionState(at, address, DOWN, item["down"])]
        if "eor" in item:
            return [EndOfRib(at, address, f) for f in item["eor"]]
        if "table" in item:
            return self.table(at, peer, item["table"])
        if "announce" in item or "generate" in item and "withdraw" not in item:
            paths = item.get("paths") or [item.get("path", [])]
            spec = item.get("announce", item.get("generate"))
            return self.announce(at, peer, self.prefixes(spec), paths[n % len(paths)])
        if "withdraw" in item:
            prefixes = self.prefixes(item["withdraw"])
            return [
                Withdraw(at, address, family, tuple(k for f, k in prefixes if f == family))
                for family in (4, 6)
                if any(f == family for f, _ in prefixes)
            ]
        if "shutdown" in item:
            return [CollectorShutdown(at, item["shutdown"])]
        if "collector" in item:
            c = item["collector"]
            return [CollectorStatus(at, c.get("worker", 0), c["up"], c.get("reason", ""))]
        if "gap" in item:
            return [FeedGap(at, item["gap"])]
        raise ValueError(f"unknown scenario item {item}")

    def converged_start(self, extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items = []
        for i, peer in enumerate(self.order):
            t = -20 + i * 0.01
            items += [
                {"t": t, "peer": peer, "connected": True},
                {"t": t + 0.003, "peer": peer, "up": True},
                {"t": t + 0.005, "peer": peer, "table": "full"},
            ]
            items += [dict(e, t=t + 0.006) for e in extra if e["peer"] == peer]
            items.append({"t": t + 0.008, "peer": peer, "eor": [4, 6]})
        return items


def run_scenario(scenario: dict[str, Any], config: Any, tick_step: float = 0.1):
    """Feed a scenario through RIB + engine; return (transitions, engine)."""
    rib = Rib()
    emitted: list[dict[str, Any]] = []
    engine = DetectionEngine(config, rib, emitted.append)
    feeder = Feeder(config, rib)
    items = list(scenario.get("events", []))
    if scenario.get("start") == "converged":
        items = feeder.converged_start(scenario.get("start_extra", [])) + items
    events = sorted((e for item in items for e in feeder.events(item)), key=lambda e: e.at)
    until = T0 + scenario.get("until", (events[-1].at - T0) + 10)
    k = int((events[0].at - T0) / tick_step) + 1
    for event in events:
        while T0 + round(k * tick_step, 6) < event.at:
            engine.tick(T0 + round(k * tick_step, 6))
            k += 1
        engine.process(event, rib.apply(event))
    while T0 + round(k * tick_step, 6) <= until:
        engine.tick(T0 + round(k * tick_step, 6))
        k += 1
    return emitted, engine


def _show(transitions: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {t['at']} {t['kind']} {t['state']} {t['labels']} {t['incident']}" for t in transitions
    )


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, tmp_path: Path) -> None:
    scenario = yaml.safe_load(path.read_text())
    config = make_config(tmp_path, scenario.get("config"))
    emitted, _engine = run_scenario(scenario, config)
    expected = scenario.get("expect") or []
    got = [(t["at"], t["kind"], t["state"], t["labels"]) for t in emitted]
    want = [(iso_ms(T0 + e["t"]), e["kind"], e["state"], e.get("labels", {})) for e in expected]
    assert got == want, f"{path.name}: transitions differ; got:\n{_show(emitted)}"
    for transition, exp in zip(emitted, expected, strict=True):
        if "incident" in exp:
            assert transition["incident"] == exp["incident"], (exp, transition)
        for key, value in (exp.get("annotations") or {}).items():
            assert transition["annotations"].get(key) == value, (key, exp, transition)
        if "duration_seconds" in exp:
            assert transition["duration_seconds"] == pytest.approx(exp["duration_seconds"], abs=0.002)
        assert transition["at"].endswith("Z") and len(transition["at"]) == 24


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_tick_rate_does_not_matter(path: Path, tmp_path: Path) -> None:
    """A replay ticked once a second (or by the stream only) gives the same firing transitions."""
    scenario = yaml.safe_load(path.read_text())
    config = make_config(tmp_path, scenario.get("config"))
    fine, _ = run_scenario(scenario, config, tick_step=0.1)
    coarse, _ = run_scenario(scenario, config, tick_step=1.0)
    firing = [(t["at"], t["kind"], t["labels"], t["incident"]) for t in fine if t["state"] == "firing"]
    assert firing == [
        (t["at"], t["kind"], t["labels"], t["incident"]) for t in coarse if t["state"] == "firing"
    ]


def test_every_transition_has_the_contract_keys(tmp_path: Path) -> None:
    scenario = yaml.safe_load((FIXTURES / "power_cut_par2.yaml").read_text())
    emitted, engine = run_scenario(scenario, make_config(tmp_path))
    assert emitted
    for t in emitted:
        assert {"kind", "state", "at", "severity", "labels", "summary", "incident"} <= set(t)
        assert t["state"] in ("firing", "resolved")
        assert t["severity"] in ("info", "warning", "critical")
    site_down = next(t for t in emitted if t["kind"] == "site_down")
    assert "suspected" in site_down["summary"]
    assert site_down["annotations"]["confirmation"] == "suspected"
    assert engine.active_alerts() == []
    assert len(engine.incidents()) == 1
