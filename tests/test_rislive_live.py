"""The outside view live: the RIS Live client against a local server, the detectors on wall-clock time.

In one process, as `bgpwatch run` wires them: a `Pipeline` with a `DetectionEngine`, the RIS Live
source connected to a local aiohttp WebSocket server the test drives frame by frame, and the Paris
sites' own routes fed as the ExaBGP input would (events stamped with the wall clock).  Every
detector's ``for`` is 1 s so the story takes ~20 s:

1. 4 public peers route par2's 203.0.113.64/27 through AS3356; 3 of them withdraw it while our
   sites still route it: external_visibility_loss ("the problem is upstream"); they come back:
   resolved;
2. par2 dies (its session down, the others withdraw its prefixes) while the public peers keep
   routing it: site_down, and external_stale_routes in its incident;
3. a public peer sees par1's 203.0.113.32/27 from AS64511: origin_change naming that peer;
4. a public peer routes par1's prefix through AS64510: upstream_change (new);
5. the server goes silent: the feed is down "silent for 1 s", nothing outside resolves, the
   client reconnects.

Incidents vs root causes: 4 root causes (upstream loss, par2's death, the hijack, the new upstream).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import yaml
from aiohttp import WSMsgType, web

from bgpwatch.config import RisLiveInput, load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.events import DOWN, UP, Announce, EndOfRib, SessionState, Withdraw
from bgpwatch.ingest.sources.rislive import RisLiveSource
from bgpwatch.pipeline import Pipeline
from bgpwatch.rib.prefix import parse_prefix

ROOT = Path(__file__).resolve().parent.parent
ROUTERS = {"192.0.2.2": 65001, "192.0.2.6": 65002, "192.0.2.10": 65003}
PUBLIC = ["198.51.100.11", "198.51.100.12", "198.51.100.13", "198.51.100.14"]


def frame(peer: str, path: list[int] | None, prefixes: list[str]) -> str:
    data = {"timestamp": time.time(), "peer": peer, "peer_asn": "64501", "host": "rrc00", "type": "UPDATE"}
    if path is None:
        data["withdrawals"] = prefixes
    else:
        data.update(path=path, origin="igp", announcements=[{"next_hop": peer, "prefixes": prefixes}])
    return orjson.dumps({"type": "ris_message", "data": data}).decode()


class Server:
    """A RIS Live stand-in: answers pings, sends what the test queues, goes silent when told."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.silent = False
        self.connections = 0

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1

        async def pump() -> None:
            while True:
                await ws.send_str(await self.queue.get())

        task = asyncio.create_task(pump())
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT and '"ping"' in message.data and not self.silent:
                    await ws.send_str('{"type": "pong", "data": null}')
        finally:
            task.cancel()
        return ws


def test_the_outside_view_live(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    doc["storage"] = {"path": str(tmp_path / "db.sqlite")}
    doc["inputs"] = [{"type": "exabgp"}, {"type": "rislive", "url": "ws://127.0.0.1:1/v1/ws/"}]
    doc["outside"] = {"upstreams": [{"site": "par1", "asns": [174]}, {"site": "par2", "asns": [3356]}]}
    fast = {"for": 1, "keep": 1}
    doc["detectors"] = {
        name: dict(fast)
        for name in ("external_visibility", "external_stale_routes", "upstream_change", "outside_feed")
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    server = Server()
    out: list[dict] = []

    async def scenario() -> RisLiveSource:
        app = web.Application()
        app.router.add_get("/v1/ws/", server.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        doc["inputs"][1]["url"] = f"ws://127.0.0.1:{port}/v1/ws/"
        path.write_text(yaml.safe_dump(doc))
        config = load_config(path)
        pipeline = Pipeline(config)
        engine = DetectionEngine(
            config,
            pipeline.rib,
            out.append,
            sessions=pipeline.sessions,
            outside=pipeline.outside,
            rpki=pipeline.rpki,
        )
        pipeline.consumer = engine
        owners = {s.name: ROUTERS[s.peers[0].address] for s in config.sites}
        host = SimpleNamespace(pipeline=pipeline, config=config, record=lambda line: None, recorder=None)
        params = RisLiveInput.model_construct(
            **{
                **dict(config.rislive),
                "silence": 1,
                "ping_every": 0.3,
                "reconnect_min": 1,
                "reconnect_max": 1,
            }
        )
        source = RisLiveSource(host, params)

        async def run_for(seconds: float) -> None:  # the daemon's tick timer
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                engine.tick(time.time())
                await asyncio.sleep(0.1)

        def fired(kind: str) -> list[dict]:
            return [t for t in out if t["kind"] == kind and t["state"] == "firing"]

        now = time.time()
        for peer in ROUTERS:
            for event in (SessionState(now, peer, UP), EndOfRib(now, peer, 4), EndOfRib(now, peer, 6)):
                pipeline.feed_event(event)
        for peer, peer_as in ROUTERS.items():
            for s in config.sites:
                hops = (peer_as,) if owners[s.name] == peer_as else (peer_as, owners[s.name])
                attrs = pipeline.pool.intern(origin="igp", as_path=hops, next_hop=peer)
                for family in (4, 6):
                    keys = tuple(k for f, k in map(parse_prefix, s.prefixes) if f == family)
                    pipeline.feed_event(Announce(time.time(), peer, family, keys, attrs))
        await source.start()
        try:
            for peer in PUBLIC:
                server.queue.put_nowait(frame(peer, [64501, 3356, 65002], ["203.0.113.64/27"]))
                server.queue.put_nowait(frame(peer, [64501, 174, 65001], ["203.0.113.32/27"]))
            await run_for(2)
            assert [t["kind"] for t in out if t["state"] == "firing"] == []
            # 1. the internet loses par2's prefix while our sites still route it, then gets it back.
            for peer in PUBLIC[:3]:
                server.queue.put_nowait(frame(peer, None, ["203.0.113.64/27"]))
            await run_for(2.5)
            [loss] = fired("external_visibility_loss")
            assert "problem is upstream" in loss["summary"] or "our sites" in loss["summary"], loss["summary"]
            for peer in PUBLIC[:3]:
                server.queue.put_nowait(frame(peer, [64501, 3356, 65002], ["203.0.113.64/27"]))
            await run_for(4)
            assert [t["state"] for t in out if t["kind"] == "external_visibility_loss"] == [
                "firing",
                "resolved",
            ]
            # 2. par2 dies; the public peers keep routing its prefix through AS3356.
            dead = "192.0.2.6"
            pipeline.feed_event(SessionState(time.time(), dead, DOWN, "hold timer expired"))
            par2 = next(s for s in config.sites if s.name == "par2")
            for peer in ROUTERS:
                if peer != dead:
                    for family in (4, 6):
                        keys = tuple(k for f, k in map(parse_prefix, par2.prefixes) if f == family)
                        pipeline.feed_event(Withdraw(time.time(), peer, family, keys))
            await run_for(3)
            [site_down] = fired("site_down")
            [stale] = fired("external_stale_routes")
            assert stale["incident"] == site_down["incident"] and stale["labels"] == {"site": "par2"}
            assert "4 of 4 public peers still route 203.0.113.64/27 through AS3356" in stale["summary"]
            # 3. a hijack of par1's prefix seen by one public peer; 4. a new upstream for par1.
            server.queue.put_nowait(frame(PUBLIC[0], [64501, 64511], ["203.0.113.32/27"]))
            server.queue.put_nowait(frame(PUBLIC[1], [64501, 64510, 65001], ["203.0.113.0/27"]))
            await run_for(2.5)
            [hijack] = fired("origin_change")
            assert (
                hijack["labels"]["origin"] == "64511"
                and "rrc00 AS64501 198.51.100.11" in hijack["annotations"]["peers"]
            )
            [new] = fired("upstream_change")
            assert new["labels"] == {"site": "par1", "upstream": "AS64510", "change": "new"}
            # 5. silence: the feed's fault, reported as such; outside alerts frozen; reconnect.
            before = len(out)
            server.silent = True  # stays silent across reconnects until the feed's alert fired
            end = time.monotonic() + 10
            while time.monotonic() < end and not fired("outside_feed_down"):
                await run_for(0.5)
            server.silent = False
            feed = fired("outside_feed_down")
            assert feed and "silent for 1 s" in feed[0]["summary"]
            outside_kinds = {"external_stale_routes", "upstream_change", "external_visibility_loss"}
            assert not [t for t in out[before:] if t["kind"] in outside_kinds]
            await run_for(3)
            assert server.connections >= 2
        finally:
            await source.stop()
            await runner.cleanup()
        return source

    asyncio.run(scenario())
    incidents = {t["incident"] for t in out if t["state"] == "firing" and t["kind"] != "outside_feed_down"}
    # Root causes: upstream loss of par2's prefix, par2's death, the hijack, the new upstream.
    assert len(incidents) == 4, sorted({(t["kind"], t["incident"]) for t in out})
