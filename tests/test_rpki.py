"""RPKI detectors (bgpwatch.detect.rpki) on the Paris config, fed routes and VRP tables directly.

The RTR client itself runs against stayrtr in tests/test_rpki_rtr.py; here the engine's RPKI state
is written as the client would (load, set_usable, then ``rpki_changed``) to state, per root cause,
what an operator is paged for:

1. a ROA naming another AS makes both of par1's prefixes INVALID: one rpki_invalid (per origin),
   resolved once the ROA is fixed;
2. a hijack of 203.0.113.32/27 by AS64666 seen by par2's router: origin_change and rpki_invalid in
   one incident;
3. the ROA disappears: rpki_not_found for the prefixes it covered (not for those never covered);
4. the RTR data expires: the RPKI alerts freeze (nothing resolves, nothing new fires) and
   rpki_cache_down says why.

Four root causes, four incidents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bgpwatch.config import load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.events import UP, Announce, EndOfRib, SessionState
from bgpwatch.ingest.rpki_lines import parse_line, rpki_line
from bgpwatch.pipeline import Pipeline
from bgpwatch.rib import Rib
from bgpwatch.rib.prefix import parse_prefix
from bgpwatch.rpki.state import RpkiState
from bgpwatch.rpki.vrps import make_vrp
from bgpwatch.topology.model import SiteModel

ROOT = Path(__file__).resolve().parent.parent
T0 = 1795699700.0
P1, P2, P3 = "192.0.2.2", "192.0.2.6", "192.0.2.10"  # par1-rr1 AS65001, par2-rr1 AS65002, par3-rr1 AS65003
RPKI_KINDS = {"rpki_invalid", "rpki_not_found", "rpki_cache_down", "origin_change"}


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
        doc["storage"] = {"path": str(tmp_path / "db.sqlite")}
        doc["rpki"] = {"rtr": [{"address": "127.0.0.1:8282"}]}
        doc["detectors"] = {"rpki_not_found": {"for": 5}, "rpki_cache": {"for": 10}}
        path = tmp_path / "bgpwatch.yaml"
        path.write_text(yaml.safe_dump(doc))
        self.config = load_config(path)
        self.rib = Rib()
        self.rpki = RpkiState(configured=True)
        self.out: list[dict[str, Any]] = []
        self.engine = DetectionEngine(self.config, self.rib, self.out.append, rpki=self.rpki)

    def feed(self, event: Any) -> None:
        self.engine.process(event, self.rib.apply(event))

    def up(self, t: float) -> None:
        for peer in (P1, P2, P3):
            self.feed(SessionState(T0 + t, peer, UP))
            self.feed(EndOfRib(T0 + t, peer, 4))
            self.feed(EndOfRib(T0 + t, peer, 6))

    def announce(self, t: float, peer: str, prefixes: list[str], path: list[int]) -> None:
        attrs = self.rib.pool.intern(origin="igp", as_path=tuple(path), next_hop=peer)
        keys = tuple(parse_prefix(p)[1] for p in prefixes)
        self.feed(Announce(T0 + t, peer, 4, keys, attrs))

    def vrps(self, t: float, rows: list[tuple[str, int, int]], usable: bool = True) -> None:
        self.rpki.load([make_vrp(*row) for row in rows], T0 + t, "127.0.0.1:8282")
        self.rpki.set_usable(usable, T0 + t, "End of Data" if usable else "RPKI data expired")
        self.engine.rpki_changed(T0 + t)

    def until(self, t: float) -> None:
        for step in range(int((self.engine.now or T0) - T0) + 1, int(t) + 1):
            self.engine.tick(T0 + step)

    def got(self) -> list[tuple[float, str, str, dict[str, str]]]:
        return [
            (round(x["at_epoch"] - T0, 1) if "at_epoch" in x else x["at"], x["kind"], x["state"], x["labels"])
            for x in self.out
            if x["kind"] in RPKI_KINDS
        ]

    def firing(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.engine.active_alerts() if a["kind"] == kind]


def test_own_roa_wrong_hijack_roa_gone_and_expiry_are_four_incidents(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.up(0)
    par1 = ["203.0.113.0/27", "203.0.113.32/27"]
    h.announce(1, P1, par1, [65001])
    h.announce(1, P2, par1, [65002, 65001])
    h.announce(1, P3, ["203.0.113.128/27"], [65003])
    # Valid: a ROA for par1's block with room for its /27s; par3's prefix has none (NOT FOUND, quiet).
    h.vrps(2, [("203.0.113.0/26", 27, 65001)])
    h.until(10)
    assert h.got() == []

    # 1. The ROA names another AS: every route of par1's two prefixes is INVALID, one page.
    h.vrps(20, [("203.0.113.0/26", 27, 65009)])
    h.until(25)
    [own] = h.firing("rpki_invalid")
    assert own["labels"] == {"origin": "65001"}
    assert sorted(own["annotations"]["prefixes"]) == par1 and own["annotations"]["routes"] == 4
    assert own["annotations"]["vrps"] == ["203.0.113.0/26-27 AS65009"]
    assert "our own routes from AS65001" in own["summary"]
    h.vrps(30, [("203.0.113.0/26", 27, 65001)])  # fixed
    h.until(100)
    assert h.firing("rpki_invalid") == []

    # 2. A hijack by AS64666 of par1's 203.0.113.32/27, seen through par2's router.
    h.announce(110, P2, ["203.0.113.32/27"], [65002, 64666])
    h.until(115)
    [hijack] = h.firing("rpki_invalid")
    [origin] = h.firing("origin_change")
    assert hijack["labels"] == {"prefix": "203.0.113.32/27", "origin": "64666", "site": "par1"}
    assert hijack["incident"] == origin["incident"]
    h.announce(120, P2, ["203.0.113.32/27"], [65002, 65001])  # gone
    h.until(200)
    assert h.firing("rpki_invalid") == [] and h.firing("origin_change") == []

    # 3. The ROA disappears (the table is usable, just without it): par1's prefixes NOT FOUND.
    h.vrps(210, [("198.51.100.0/24", 24, 64500)])
    h.until(230)
    [gone] = h.firing("rpki_not_found")
    assert gone["annotations"]["prefixes"] == par1  # par3's prefix was never covered: not listed
    assert "203.0.113.0/27 (site par1)" in gone["summary"]

    # 4. The data expires: frozen (the NOT FOUND stays, no INVALID appears), the cache alert says why.
    h.vrps(240, [], usable=False)
    h.announce(245, P2, ["203.0.113.32/27"], [65002, 64666])  # a hijack while validation is off
    h.until(270)
    assert [a["labels"] for a in h.firing("rpki_not_found")] == [{"rpki": "own_prefixes"}]
    assert h.firing("rpki_invalid") == []
    [down] = h.firing("rpki_cache_down")
    assert "RPKI data expired" in down["summary"]

    incidents = {a["incident"] for a in h.out if a["kind"] in RPKI_KINDS and a["state"] == "firing"}
    assert len(incidents) == 5  # 4 RPKI root causes + the hijack while validation was off (origin_change)
    assert sum(1 for a in h.out if a["kind"] == "origin_change" and a["state"] == "firing") == 2


def test_recorded_rpki_lines_replay_to_the_same_validity(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    state = RpkiState(configured=True)
    rows = [
        ("203.0.113.0/26", 27, 65001),  # covers par1's prefixes
        ("203.0.113.40/29", 29, 64666),  # inside one of them: decides a more-specific
        ("203.0.0.0/16", 16, 64999),  # covers all
        ("198.51.100.0/24", 24, 64500),  # unrelated: not recorded
        ("2001:db8:1002::/48", 48, 65002),
    ]
    state.load([make_vrp(*r) for r in rows], T0, "127.0.0.1:8282")
    state.set_usable(True, T0, "End of Data serial 3")
    relevant = state.relevant(SiteModel(h.config).protected_prefixes())
    assert sorted(map(str, relevant)) == [
        "2001:db8:1002::/48-48 AS65002",
        "203.0.0.0/16-16 AS64999",
        "203.0.113.0/26-27 AS65001",
        "203.0.113.40/29-29 AS64666",
    ]
    line = rpki_line(T0, True, state.reason, state.origin, len(state.table), relevant)
    record = parse_line(line)
    assert record.total == 5 and record.usable and set(record.vrps) == set(relevant)
    pipeline = Pipeline(h.config)
    pipeline.feed_line(line)
    assert pipeline.rpki.usable and len(pipeline.rpki.table) == 4
    for prefix, origin in [
        ("203.0.113.40/29", 64666),
        ("203.0.113.40/29", 65001),
        ("203.0.113.32/27", 65001),
    ]:
        family, key = parse_prefix(prefix)
        assert pipeline.rpki.table.validate(family, key, origin) == state.table.validate(family, key, origin)
    # A bad record is counted and changes nothing.
    pipeline.feed_line(b'{"bgpwatch-rpki": {"t": 1, "usable": true, "vrps": [["203.0.113.0/26", 8, 1]]}}')
    assert pipeline.errors["bad_rpki_record"] == 1 and len(pipeline.rpki.table) == 4


def test_rpki_arriving_later_judges_the_routes_already_held(tmp_path: Path) -> None:
    """Without RPKI the detector does nothing per route; a replay's first RPKI record catches up."""
    h = Harness(tmp_path)
    h.rpki.configured = False  # as a config without rpki.rtr replaying a recording that has RPKI lines
    h.up(0)
    h.announce(1, P1, ["203.0.113.0/27"], [65001])
    assert h.engine.detectors and not next(d for d in h.engine.detectors if d.name == "rpki_invalid").held
    h.rpki.configured = True
    h.vrps(5, [("203.0.113.0/26", 27, 65009)])
    h.until(10)
    [own] = h.firing("rpki_invalid")
    assert own["annotations"]["prefixes"] == ["203.0.113.0/27"]


def test_every_new_recording_file_opens_with_the_rpki_state(tmp_path: Path) -> None:
    """A replay of one rotated file alone judges RPKI as the live run did: the state opens it."""
    import gzip

    from bgpwatch.ingest.recorder import Recorder

    recorder = Recorder(tmp_path / "rec", rotate_bytes=1)  # a new file at every line
    state: dict[str, bytes | None] = {"line": None}
    recorder.headers.append(lambda: state["line"])
    recorder.write(b'{"first": 1}')
    state["line"] = rpki_line(
        T0, True, "End of Data serial 1", "127.0.0.1:8282", 1, [make_vrp("203.0.113.0/26", 27, 65001)]
    )
    recorder.write(b'{"second": 2}')
    recorder.close()
    files = sorted((tmp_path / "rec").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    contents = [gzip.decompress(p.read_bytes()).splitlines() for p in files]
    assert contents[0] == [b'{"first": 1}']
    assert contents[-1] == [state["line"], b'{"second": 2}']
    h = Harness(tmp_path)
    pipeline = Pipeline(h.config)
    for line in contents[-1][:1]:
        pipeline.feed_line(line)
    assert pipeline.rpki.usable and len(pipeline.rpki.table) == 1
