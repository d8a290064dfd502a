"""`bgpwatch run` with a RIS Live input against a local WebSocket server on loopback.

The daemon subscribes, the frames of the RIS Live stream made for the Paris recording reach its
outside view, `/api/v1/outside`, `bgpwatch outside` and `/api/v1/status` show them, and the key in the
URL's query never appears in the API or the log.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import yaml
from aiohttp import WSMsgType, web

from tests.test_bmp_station import free_port, get, wait
from tests.test_rislive_source import FRAMES

ROOT = Path(__file__).resolve().parent.parent
BGPWATCH = [sys.executable, "-m", "bgpwatch"]


def serve(port: int, subscriptions: list, stop: threading.Event) -> None:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for frame in FRAMES:
            await ws.send_str(frame.decode())
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                doc = json.loads(message.data)
                if doc.get("type") == "ping":
                    await ws.send_str('{"type": "pong", "data": null}')
                else:
                    subscriptions.append(doc)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/v1/ws/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())


def test_daemon_with_a_rislive_input(tmp_path):
    ws_port, api_port = free_port(), free_port()
    subscriptions: list = []
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(ws_port, subscriptions, stop), daemon=True)
    thread.start()
    doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    doc["collector"]["exabgp"] = "external"
    doc["collector"]["runtime_dir"] = str(tmp_path / "run")
    doc["inputs"] = [{"type": "rislive", "url": f"ws://127.0.0.1:{ws_port}/v1/ws/?key=hunter2-secret"}]
    doc["api"] = {"listen": f"127.0.0.1:{api_port}"}
    doc["storage"] = {"path": str(tmp_path / "state" / "bgpwatch.db")}
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(doc))
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([*BGPWATCH, "run", "--config", str(path)], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{api_port}"
    try:
        view = wait(
            lambda: (
                v
                if (v := _get(base + "/api/v1/outside?prefix=203.0.113.64/27"))
                and v["prefixes"]
                and v["prefixes"][0]["public_peers"] == 2
                else None
            )
        )
        assert view["feed"]["up"] and view["prefixes"][0]["upstreams"] == {"3356": 2}
        assert len(subscriptions) == 10  # 9 prefixes, peer states
        metrics = get(base + "/metrics")
        assert "bgpwatch_outside_feed_up 1.0" in metrics
        assert 'bgpwatch_outside_prefix_public_peers{prefix="203.0.113.64/27"} 2.0' in metrics
        status = json.dumps(get(base + "/api/v1/status"))
        assert "rislive" in status and "hunter2" not in status
        out = subprocess.run(
            [*BGPWATCH, "outside", "--config", str(path)], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0 and "RIS Live feed up" in out.stdout and "203.0.113.64/27" in out.stdout
        bad = subprocess.run(
            [*BGPWATCH, "outside", "--config", str(path), "192.0.2.0/24"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode != 0 and "not one of our prefixes" in (bad.stderr + bad.stdout)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
        stop.set()
        thread.join(5)
    assert "hunter2" not in (tmp_path / "daemon.log").read_text()


def _get(url: str):
    try:
        return get(url)
    except OSError:
        return None
