"""The RIS Live input against a local aiohttp WebSocket server on loopback (no traffic elsewhere).

The server records the subscriptions, answers pings (unless told to be silent), sends frames taken
from the RIS Live stream made for the Paris recording plus a garbage frame, then closes.  The source
must subscribe as configured, feed the frames to the pipeline's outside view, count the garbage,
report the close and a silence as the feed's state (with the reason), reconnect with back-off, and
record what it received so that a replay gives the same outside view.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import yaml
from aiohttp import WSMsgType, web

from bgpwatch.config import RisLiveInput, load_config
from bgpwatch.ingest.sources.rislive import RisLiveSource, shown_url, subscriptions
from bgpwatch.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
FRAMES = [
    json.loads(line)["bgpwatch-ris"]["frame"].encode()
    for line in (ROOT / "fixtures" / "rislive" / "paris-outside.jsonl").read_text().splitlines()
    if '"frame"' in line
][:4]


class Server:
    def __init__(self) -> None:
        self.subscriptions: list[list[dict]] = []
        self.connections = 0
        self.connected_at: list[float] = []
        self.app = web.Application()
        self.app.router.add_get("/v1/ws/", self.handle)
        self.runner = web.AppRunner(self.app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.connected_at.append(time.monotonic())
        received: list[dict] = []
        self.subscriptions.append(received)
        first = self.connections == 1
        if first:
            await asyncio.sleep(0.2)
            for frame in FRAMES:
                await ws.send_str(frame.decode())
            await ws.send_str('{"type": "ris_message", "data": {')  # garbage
            await ws.send_bytes(b"\x00\x01")  # binary: ignored
            await asyncio.sleep(0.3)
            await ws.close()
            return ws
        async for message in ws:  # later connections: subscriptions read, never a word back
            if message.type == WSMsgType.TEXT:
                received.append(json.loads(message.data))
        return ws


def _config(tmp_path: Path, url: str):
    doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    doc["storage"] = {"path": str(tmp_path / "db.sqlite")}
    doc["inputs"] = [{"type": "rislive", "url": url, "origins": [65002]}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


def test_subscriptions_follow_the_config(tmp_path):
    config = _config(tmp_path, "ws://127.0.0.1:9/v1/ws/?client=secret-key")
    messages = subscriptions(config.rislive, config)
    prefixes = [m["data"]["prefix"] for m in messages if "prefix" in m["data"]]
    assert len(prefixes) == 9 and "203.0.113.64/27" in prefixes
    assert all(m["data"]["moreSpecific"] is True for m in messages if "prefix" in m["data"])
    assert {"path": "65002$", "type": "UPDATE"} in [m["data"] for m in messages]
    assert {"type": "RIS_PEER_STATE"} in [m["data"] for m in messages]
    hosts = config.rislive.model_copy(update={"hosts": ["rrc00", "rrc21"]})
    assert len(subscriptions(hosts, config)) == 2 * len(messages)
    assert shown_url(config.rislive.url) == "ws://127.0.0.1:9/v1/ws/"  # the key never shown


def test_frames_close_silence_and_reconnect(tmp_path):
    async def scenario() -> tuple[Server, RisLiveSource, SimpleNamespace, list[tuple]]:
        server = Server()
        await server.start()
        config = _config(tmp_path, f"ws://127.0.0.1:{server.port}/v1/ws/?client=secret-key")
        pipeline = Pipeline(config)
        feed: list[tuple] = []
        real = pipeline.outside_feed
        pipeline.outside_feed = lambda up, at, reason: (feed.append((up, reason)), real(up, at, reason))
        records: list[bytes] = []
        host = SimpleNamespace(pipeline=pipeline, config=config, record=records.append, recorder=object())
        # Below the config's bounds (silence >= 5 s) so that the test stays short.
        fast = {"silence": 1, "ping_every": 1, "reconnect_min": 1, "reconnect_max": 2}
        params = RisLiveInput.model_construct(**{**dict(config.rislive), **fast})
        source = RisLiveSource(host, params)
        await source.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and sum(1 for up, r in feed if not up and "silent" in r) < 1:
            await asyncio.sleep(0.05)
        await source.stop()
        await server.runner.cleanup()
        host.records = records
        return server, source, host, feed

    server, source, host, feed = asyncio.run(scenario())
    outside = host.pipeline.outside
    # Subscribed, frames applied, garbage counted, binary ignored.
    assert feed[0][0] is True and "subscribed" in feed[0][1] and "secret-key" not in feed[0][1]
    assert source.frames == len(FRAMES) + 1 and source.counts["binary_frames"] == 1
    assert host.pipeline.errors["invalid_json"] == 1
    assert len(outside.prefix("203.0.113.64/27").seeing) == 2  # 4 frames: 2 peers, par1 and par2 each
    # The close and the silence are the feed's state, with the reason; it reconnected each time.
    downs = [reason for up, reason in feed if not up]
    assert downs[0].startswith("closed by the server") and any("silent for 1 s" in r for r in downs)
    assert server.connections >= 2 and len(server.subscriptions[1]) == 11
    gap = server.connected_at[1] - server.connected_at[0]
    assert 0.8 <= gap <= 3.0, gap  # back-off reconnect_min (1 s, jitter 20 %) after a 0.5 s connection
    assert not source._up and source.status()["url"].endswith("/v1/ws/")
    # The recording replays to the same outside view.
    again = Pipeline(host.config)
    for line in host.records:
        again.feed_line(line)
    assert set(again.outside.prefix("203.0.113.64/27").seeing) == set(
        outside.prefix("203.0.113.64/27").seeing
    )
    assert again.errors["invalid_json"] == 1 and not again.outside.feed_up
    assert orjson.loads(host.records[0])["bgpwatch-ris"]["feed"] == "up"


def test_a_ris_error_frame_is_the_feed_down_reason_and_a_reconnect(tmp_path):
    connections: list[float] = []

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connections.append(time.monotonic())
        await ws.send_str(FRAMES[0].decode())
        if len(connections) == 1:
            await ws.send_str('{"type": "ris_error", "data": {"message": "client too slow: dropped"}}')
        async for _ in ws:
            pass
        return ws

    async def scenario() -> tuple[RisLiveSource, list[tuple]]:
        app = web.Application()
        app.router.add_get("/v1/ws/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        config = _config(tmp_path, f"ws://127.0.0.1:{port}/v1/ws/")
        pipeline = Pipeline(config)
        feed: list[tuple] = []
        real = pipeline.outside_feed
        pipeline.outside_feed = lambda up, at, reason: (feed.append((up, reason)), real(up, at, reason))
        host = SimpleNamespace(pipeline=pipeline, config=config, record=lambda line: None, recorder=None)
        fast = {"reconnect_min": 1, "reconnect_max": 2}
        source = RisLiveSource(host, RisLiveInput.model_construct(**{**dict(config.rislive), **fast}))
        await source.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(connections) < 2:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        await source.stop()
        await runner.cleanup()
        return source, feed

    source, feed = asyncio.run(scenario())
    assert [up for up, _ in feed][:3] == [True, False, True]
    assert feed[1][1] == "the server reported an error: client too slow: dropped"
    assert source.counts["ris_errors"] == 1 and source.host.pipeline.errors["ris_error"] == 1
    assert len(connections) == 2


MRT_FRAMES = (ROOT / "fixtures" / "rislive" / "rrc06-from-mrt.jsonl").read_bytes().splitlines()
MRT_FILE = ROOT / "fixtures" / "mrt" / "libbgpstream" / "ris.rrc06.updates.1427846400.gz"


def test_frames_derived_from_real_mrt_give_the_mrt_readers_rib(tmp_path):
    """770 frames made by bgpdump from a real RIS rrc06 file, sent across a server close and garbage.

    The outside view must end with exactly the routes bgpwatch's own MRT reader gets from the same
    file: same peers, prefixes, AS paths, next hops and communities (two parsers, two inputs).
    """
    from bgpwatch.ingest.mrt import MrtReader
    from bgpwatch.rib import Rib

    half = len(MRT_FRAMES) // 2
    connections: list[int] = []

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connections.append(1)
        if len(connections) == 1:
            for frame in MRT_FRAMES[:half]:
                await ws.send_str(frame.decode())
            await ws.send_str('{"type": "ris_message", "data": {"peer": ')  # cut: garbage
            await asyncio.sleep(0.2)
            await ws.close()  # the server goes; the rest after the reconnect
            return ws
        for frame in MRT_FRAMES[half:]:
            await ws.send_str(frame.decode())
        async for _ in ws:
            pass
        return ws

    async def scenario() -> tuple[RisLiveSource, Pipeline]:
        app = web.Application()
        app.router.add_get("/v1/ws/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        config = _config(tmp_path, f"ws://127.0.0.1:{port}/v1/ws/")
        pipeline = Pipeline(config)
        host = SimpleNamespace(pipeline=pipeline, config=config, record=lambda line: None, recorder=None)
        fast = {"reconnect_min": 1, "reconnect_max": 2}
        source = RisLiveSource(host, RisLiveInput.model_construct(**{**dict(config.rislive), **fast}))
        await source.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and source.frames < len(MRT_FRAMES) + 1:
            await asyncio.sleep(0.05)
        await source.stop()
        await runner.cleanup()
        return source, pipeline

    source, pipeline = asyncio.run(scenario())
    assert len(connections) == 2 and source.frames == len(MRT_FRAMES) + 1
    assert pipeline.errors["invalid_json"] == 1 and sum(pipeline.errors.values()) == 1
    rib = Rib(pipeline.pool)
    for event in MrtReader(pipeline.pool).read(MRT_FILE):
        rib.apply(event)

    def routes(peers, strip: str = "") -> dict:
        return {
            (address.removeprefix(strip), family, key): (a.as_path, a.next_hop, a.communities)
            for address, adj in peers.items()
            for family in (4, 6)
            for key, a in adj.tables[family].items()
        }

    expected = routes(rib.peers)
    assert len(expected) > 400  # 500 prefixes announced, 122 withdrawals, 3 peers
    assert routes(pipeline.outside.rib.peers, "rrc06|") == expected
