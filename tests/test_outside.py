"""The outside view (RIS Live, `bgpwatch.outside`) and its detectors, on the Paris recording.

The Paris recording (bgpwatch/data/paris.jsonl.gz: par2 dies, 2 root causes) is replayed merged by
time with a RIS Live stream made for it (fixtures/rislive/paris-outside.jsonl, see its generator):
public peers keep routing par2's prefixes through AS3356 while par2 is down (external stale
routes), a new upstream appears for par1, and a public peer sees a par1 prefix with a foreign
origin.  Expected: the stale routes join par2's site_down incident (no extra page), the new
upstream and the hijack are their own incidents, and nothing else is added.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from bgpwatch.config import load_config
from bgpwatch.ingest.ris_lines import feed_line, frame_line
from bgpwatch.outside import OutsideView, upstream_of
from bgpwatch.pipeline import Pipeline
from bgpwatch.rib import AttributePool

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "bgpwatch" / "data" / "paris.jsonl.gz"
STREAM = ROOT / "fixtures" / "rislive" / "paris-outside.jsonl"


def _time(line: bytes) -> float:
    doc = orjson.loads(line)
    if "time" in doc:
        return float(doc["time"])
    for tag in ("bgpwatch-ris", "bgpwatch-relay"):
        if tag in doc:
            body = doc[tag]
            if "t" in body:
                return float(body["t"])
            inner = next(iter(body.values()))
            return float(inner["time"])
    raise AssertionError(line[:80])


def merged(tmp_path: Path, outside: bool = True) -> Path:
    lines = [line for line in gzip.decompress(PARIS.read_bytes()).splitlines() if line.strip()]
    if outside:
        lines += [line for line in STREAM.read_bytes().splitlines() if line.strip()]
    lines.sort(key=_time)
    path = tmp_path / ("merged.jsonl" if outside else "inside.jsonl")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def config(tmp_path: Path) -> Path:
    doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    doc["storage"] = {"path": str(tmp_path / "db.sqlite")}
    doc["inputs"] = [{"type": "exabgp"}, {"type": "rislive", "url": "ws://127.0.0.1:1/ws"}]
    doc["outside"] = {"upstreams": [{"site": "par1", "asns": [174]}, {"site": "par2", "asns": [3356, 1299]}]}
    doc["detectors"] = {"external_stale_routes": {"for": 5}}
    path = tmp_path / "paris-outside.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def replay(cfg: Path, recording: Path) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "bgpwatch", "replay", "--config", str(cfg), "--json", str(recording)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_paris_with_the_outside_view(tmp_path):
    cfg = config(tmp_path)
    inside = replay(cfg, merged(tmp_path, outside=False))
    both = replay(cfg, merged(tmp_path))
    print("\nwith the outside view:")
    for t in both:
        print(" ", t["at"], t["state"], t["severity"], t["kind"], t["labels"], t["incident"])
    inside_incidents = {t["incident"] for t in inside}
    assert len(inside_incidents) == 2  # par2's death and the split, as without RIS Live
    site = next(t["incident"] for t in both if t["kind"] == "site_down")
    stale = [t for t in both if t["kind"] == "external_stale_routes"]
    assert [t["state"] for t in stale] == ["firing", "resolved"]
    assert all(t["incident"] == site for t in stale), "part of the site's incident"
    fired = stale[0]
    assert fired["labels"] == {"site": "par2"}
    assert fired["annotations"]["upstreams"] == {"3356": 5}
    assert "5 of 8 public peers still route" in fired["summary"] and "AS3356" in fired["summary"]
    new = [
        t
        for t in both
        if t["kind"] == "upstream_change" and t["state"] == "firing" and t["labels"]["change"] == "new"
    ]
    assert [t["labels"] for t in new] == [{"site": "par1", "upstream": "AS64510", "change": "new"}]
    hijack = [t for t in both if t["kind"] == "origin_change" and t["state"] == "firing"]
    assert [t["labels"] for t in hijack] == [{"prefix": "203.0.113.32/27", "origin": "64511", "site": "par1"}]
    assert "rrc01 AS64501 198.51.100.6" in hijack[0]["annotations"]["peers"]
    # par2's lost upstream AS1299 (its peers withdrew when par2 died) is part of par2's incident.
    lost = [t for t in both if t["kind"] == "upstream_change" and t["labels"].get("change") == "lost"]
    assert lost and all(t["incident"] == site for t in lost)
    assert not [t for t in both if t["kind"] in ("external_visibility_loss", "outside_feed_down")]
    incidents = {t["incident"] for t in both}
    # Root causes: par2 dies, the split, a new upstream at par1, a hijack of a par1 prefix.
    assert len(incidents) == 4, incidents
    assert inside_incidents <= incidents


def _view(tmp_path: Path, extra: dict | None = None) -> tuple[Pipeline, OutsideView]:
    doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    doc["storage"] = {"path": str(tmp_path / "db.sqlite")}
    doc["inputs"] = [{"type": "rislive", "url": "ws://127.0.0.1:1/ws", **(extra or {})}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    pipeline = Pipeline(load_config(path))
    return pipeline, pipeline.outside


def _frame(peer: str, asn: int, path: list[int] | None, prefixes: list[str], host: str = "rrc00") -> bytes:
    data = {"timestamp": 1.0, "peer": peer, "peer_asn": str(asn), "host": host, "type": "UPDATE"}
    if path is None:
        data["withdrawals"] = prefixes
    else:
        data.update(path=path, announcements=[{"next_hop": peer, "prefixes": prefixes}])
    return orjson.dumps({"type": "ris_message", "data": data})


def test_upstream_skips_the_origins_prepends():
    assert upstream_of((64496, 3356, 65002, 65002, 65002)) == 3356
    assert upstream_of((65002, 65002)) is None
    assert upstream_of(()) is None


def test_sightings_loss_and_peer_down(tmp_path):
    pipeline, outside = _view(tmp_path)
    assert pipeline.feed_outside(
        _frame("198.51.100.1", 64496, [64496, 3356, 65002], ["203.0.113.64/27"]), 10.0
    )
    assert pipeline.feed_outside(
        _frame("198.51.100.2", 64497, [64497, 1299, 65002], ["203.0.113.64/27"]), 11.0
    )
    item = outside.prefix("203.0.113.64/27")
    assert set(item.seeing) == {"rrc00|198.51.100.1", "rrc00|198.51.100.2"}
    assert dict(item.upstreams()) == {3356: 1, 1299: 1}
    assert pipeline.feed_outside(_frame("198.51.100.2", 64497, None, ["203.0.113.64/27"]), 12.0)
    assert set(item.lost) == {"rrc00|198.51.100.2"} and len(item.ever) == 2
    # A public peer's own session going down is its fault: it leaves the baseline, no loss counted.
    down = {
        "type": "ris_message",
        "data": {
            "timestamp": 13.0,
            "peer": "198.51.100.2",
            "host": "rrc00",
            "type": "RIS_PEER_STATE",
            "state": "down",
        },
    }
    assert pipeline.feed_outside(orjson.dumps(down), 13.0)
    assert not item.lost and len(item.ever) == 1
    # Garbage: rejected, counted, nothing changes.
    assert not pipeline.feed_outside(b'{"type": "ris_message", "data": {', 14.0)
    assert pipeline.errors["invalid_json"] == 1 and len(item.seeing) == 1


def test_filters_and_recording_replay(tmp_path):
    pipeline, outside = _view(tmp_path, {"peers_deny": [64497], "hosts": ["rrc00"]})
    frames = [
        _frame("198.51.100.1", 64496, [64496, 3356, 65002], ["203.0.113.64/27"]),
        _frame("198.51.100.2", 64497, [64497, 1299, 65002], ["203.0.113.64/27"]),  # denied by AS
        _frame("198.51.100.3", 64498, [64498, 174, 65002], ["203.0.113.64/27"], host="rrc21"),  # other host
    ]
    lines = [feed_line(9.0, True, "subscribed")]
    for index, raw in enumerate(frames):
        pipeline.feed_outside(raw, 10.0 + index)
        lines.append(frame_line(10.0 + index, raw))
    assert set(outside.prefix("203.0.113.64/27").seeing) == {"rrc00|198.51.100.1"}
    assert outside.filtered == {"deny": 1, "host": 1}
    # The recording plays back through feed_line to the same outside state.
    again, view = _view(tmp_path, {"peers_deny": [64497], "hosts": ["rrc00"]})
    for line in lines:
        again.feed_line(line)
    assert view.feed_up and set(view.prefix("203.0.113.64/27").seeing) == {"rrc00|198.51.100.1"}
    assert view.to_dict("203.0.113.64/27")["prefixes"][0]["upstreams"] == {"3356": 1}


@pytest.mark.parametrize("bad", [b'{"bgpwatch-ris": 5}', b'{"bgpwatch-ris": {"t": "x", "frame": "{}"}}'])
def test_bad_recorded_lines_are_counted(tmp_path, bad):
    pipeline, _ = _view(tmp_path)
    pipeline.feed_line(bad)
    assert pipeline.errors["bad_ris_record"] == 1


def test_pool_is_shared(tmp_path):
    pipeline, outside = _view(tmp_path)
    assert outside.pool is pipeline.pool and isinstance(outside.pool, AttributePool)


def test_a_prefix_withdrawn_inside_but_still_routed_outside_joins_the_visibility_loss(tmp_path):
    """par1 stops announcing 203.0.113.0/27 (every site loses it), public peers keep routing it."""
    from bgpwatch.detect.engine import DetectionEngine
    from bgpwatch.events import UP, Announce, EndOfRib, SessionState, Withdraw
    from bgpwatch.rib.prefix import parse_prefix

    doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    doc["storage"] = {"path": str(tmp_path / "db.sqlite")}
    doc["inputs"] = [{"type": "exabgp"}, {"type": "rislive", "url": "ws://127.0.0.1:1/ws"}]
    doc["detectors"] = {"external_stale_routes": {"for": 5}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    pipeline = Pipeline(cfg)
    out: list[dict] = []
    engine = DetectionEngine(
        cfg,
        pipeline.rib,
        out.append,
        sessions=pipeline.sessions,
        outside=pipeline.outside,
        rpki=pipeline.rpki,
    )
    pipeline.consumer = engine
    t0 = 1795699700.0
    routers = {"192.0.2.2": 65001, "192.0.2.6": 65002, "192.0.2.10": 65003}
    owners = {site.name: routers[site.peers[0].address] for site in cfg.sites}
    for peer in routers:
        for event in (SessionState(t0, peer, UP), EndOfRib(t0, peer, 4), EndOfRib(t0, peer, 6)):
            pipeline.feed_event(event)
    for peer, peer_as in routers.items():
        for site in cfg.sites:
            path_ = (peer_as,) if owners[site.name] == peer_as else (peer_as, owners[site.name])
            attrs = pipeline.pool.intern(origin="igp", as_path=path_, next_hop=peer)
            for family in (4, 6):
                keys = tuple(k for f, k in map(parse_prefix, site.prefixes) if f == family)
                pipeline.feed_event(Announce(t0 + 1, peer, family, keys, attrs))
    pipeline.outside_feed(True, t0 + 1, "subscribed")
    public = ["198.51.100.6", "198.51.100.7", "198.51.100.8"]
    for peer in public:
        pipeline.feed_outside(_frame(peer, 64501, [64501, 3356, 65001], ["203.0.113.0/27"]), t0 + 2)
    for t in range(3, 20):
        engine.tick(t0 + t)
    assert not [x for x in out if x["state"] == "firing"], out
    gone = parse_prefix("203.0.113.0/27")[1]
    for peer in routers:
        pipeline.feed_event(Withdraw(t0 + 20, peer, 4, (gone,)))
    for t in range(21, 40):
        engine.tick(t0 + t)
    fired = [x for x in out if x["state"] == "firing"]
    kinds = {x["kind"]: x for x in fired}
    assert set(kinds) == {"visibility_loss", "external_stale_routes"}, fired
    stale = kinds["external_stale_routes"]
    assert stale["labels"] == {"site": "par1"} and stale["incident"] == kinds["visibility_loss"]["incident"]
    assert (
        "withdrew them (missing at every site), yet 3 of 3 public peers still route 203.0.113.0/27"
        in (stale["summary"])
    )
    # The internet converges: resolved.
    for peer in public:
        pipeline.feed_outside(_frame(peer, 64501, None, ["203.0.113.0/27"]), t0 + 40)
    for t in range(41, 60):
        engine.tick(t0 + t)
    assert [x["state"] for x in out if x["kind"] == "external_stale_routes"] == ["firing", "resolved"]
