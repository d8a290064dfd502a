"""The RIS Live input: RIPE NCC's WebSocket stream of public route collectors, the outside view.

A WebSocket client (aiohttp) that subscribes to the own prefixes (``prefixes``, default every site
prefix and watched prefix, with their more-specifics), to routes originated by ``origins`` (path
``"<AS>$"``) and to the public peers' session states, on every collector or on ``hosts``; each
text frame goes to `Pipeline.feed_outside` (which never raises) and, when recording, into the
recording (`bgpwatch.ingest.ris_lines`).

This source is the one owner of the feed's liveness: it says ``outside_feed(True)`` once subscribed
and ``outside_feed(False, reason)`` when the connection is refused, closed, errors, or stays silent
for ``silence`` seconds (no frame at all, pongs included: it pings every ``ping_every`` seconds);
then it reconnects with capped exponential back-off (``reconnect_min`` .. ``reconnect_max``, with
jitter, reset by a connection that stayed up).  A frame larger than ``max_frame_bytes`` closes the
connection (counted).  Binary frames are counted and ignored.  The URL's query (it may carry a
key) is never logged or shown.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from bgpwatch.ingest.ris_lines import feed_line, frame_line
from bgpwatch.ingest.sources import Source, register
from bgpwatch.rib.prefix import format_prefix
from bgpwatch.topology.model import SiteModel

log = logging.getLogger("bgpwatch.ingest")

YIELD_EVERY = 256  # frames between two yields to the event loop
STABLE_SECONDS = 30.0  # a connection up this long resets the back-off


def subscriptions(params: Any, config: Any) -> list[dict[str, Any]]:
    """Return the ris_subscribe messages for an input's parameters."""
    prefixes = list(params.prefixes) or [format_prefix(*p) for p in SiteModel(config).protected_prefixes()]
    prefixes = list(dict.fromkeys(prefixes))
    hosts = list(params.hosts) or [None]
    messages = []
    for host in hosts:
        base: dict[str, Any] = {"host": host} if host else {}
        for prefix in prefixes:
            messages.append(dict(base, prefix=prefix, moreSpecific=params.more_specific, type="UPDATE"))
        for asn in params.origins:
            messages.append(dict(base, path=f"{asn}$", type="UPDATE"))
        messages.append(dict(base, type="RIS_PEER_STATE"))
    return [{"type": "ris_subscribe", "data": data} for data in messages]


def shown_url(url: str) -> str:
    """Return the URL without its query or credentials (they may carry a key)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@register
class RisLiveSource(Source):
    """Public peers' routes of our prefixes, from RIS Live (see the module doc)."""

    type = "rislive"

    def __init__(self, host: Any, params: Any) -> None:
        super().__init__(host, params)
        self.state = "idle"
        self.since: float | None = None
        self.reason = "not started"
        self.frames = 0
        self.reconnects = 0
        self.counts: Counter[str] = Counter()  # binary, oversize, errors
        self.last_frame_at: float | None = None
        self.delay = float(params.reconnect_min)
        self._task: asyncio.Task[None] | None = None
        self._up = False

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rislive")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await asyncio.wait_for(task, 2.0)
        except (TimeoutError, asyncio.CancelledError, Exception):
            pass
        self.state = "stopped"

    # -- the connection loop ---------------------------------------------------------------------
    async def _run(self) -> None:
        params = self.params
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                began = time.monotonic()
                reason = await self._connection(session)
                self._down(reason)
                if time.monotonic() - began >= STABLE_SECONDS:
                    self.delay = float(params.reconnect_min)
                wait = min(self.delay, float(params.reconnect_max)) * random.uniform(0.8, 1.2)
                self.delay = min(self.delay * 2, float(params.reconnect_max))
                self.reconnects += 1
                await asyncio.sleep(wait)

    async def _connection(self, session: aiohttp.ClientSession) -> str:
        params = self.params
        self.state = "connecting"
        try:
            async with session.ws_connect(
                params.url, max_msg_size=params.max_frame_bytes, autoping=True, heartbeat=None
            ) as ws:
                messages = subscriptions(params, self.host.config)
                for message in messages:
                    await ws.send_str(orjson.dumps(message).decode())
                self._feed_up(f"subscribed ({len(messages)} subscriptions) at {shown_url(params.url)}")
                return await self._receive(ws)
        except asyncio.CancelledError:
            raise
        except aiohttp.WSServerHandshakeError as exc:
            return f"refused by the server (HTTP {exc.status})"
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            return f"connection failed: {type(exc).__name__}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return f"connection error: {type(exc).__name__}"

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        params = self.params
        pipeline = self.host.pipeline
        recording = getattr(self.host, "recorder", None) is not None
        last_ping = time.monotonic()
        last_frame = time.monotonic()
        count = 0
        while True:
            wait = min(
                params.ping_every - (time.monotonic() - last_ping),
                params.silence - (time.monotonic() - last_frame),
            )
            try:
                message = await ws.receive(timeout=max(0.05, wait))
            except TimeoutError:
                message = None
            now_mono = time.monotonic()
            if message is None:
                if now_mono - last_frame >= params.silence:
                    await ws.close()
                    return f"silent for {params.silence} s"
                if now_mono - last_ping >= params.ping_every:
                    await ws.send_str('{"type": "ping", "data": null}')
                    last_ping = now_mono
                continue
            kind = message.type
            if kind == aiohttp.WSMsgType.TEXT:
                last_frame = now_mono
                at = time.time()
                frame = message.data.encode()
                self.frames += 1
                self.last_frame_at = at
                accepted = pipeline.feed_outside(frame, at)
                if recording:
                    self.host.record(frame_line(at, frame))
                if not accepted and b'"ris_error"' in frame[:64]:
                    # The server says frames were lost or refused (a client too slow, a subscription
                    # it rejected): what the outside view holds may miss withdrawals. Start over.
                    self.counts["ris_errors"] += 1
                    await ws.close()
                    return f"the server reported an error: {_ris_error_text(frame)}"
                count += 1
                if count % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            elif kind == aiohttp.WSMsgType.BINARY:
                last_frame = now_mono
                self.counts["binary_frames"] += 1
            elif kind == aiohttp.WSMsgType.ERROR:
                exc = ws.exception()
                if isinstance(exc, aiohttp.WebSocketError) and "too big" in str(exc).lower():
                    self.counts["oversize_frames"] += 1
                    return f"frame larger than {params.max_frame_bytes} bytes"
                self.counts["errors"] += 1
                return f"connection error: {type(exc).__name__ if exc else 'unknown'}"
            elif kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return f"closed by the server (code {ws.close_code})"

    # -- the feed's state ------------------------------------------------------------------------
    def _feed_up(self, reason: str) -> None:
        at = time.time()
        self.state, self.since, self.reason, self._up = "up", at, reason, True
        self.host.pipeline.outside_feed(True, at, reason)
        if getattr(self.host, "recorder", None) is not None:
            self.host.record(feed_line(at, True, reason))
        log.info("RIS Live feed up: %s", reason)

    def _down(self, reason: str) -> None:
        at = time.time()
        was_up = self._up
        self.state, self.reason, self._up = "down", reason, False
        if was_up or self.since is None:
            self.since = at
        self.host.pipeline.outside_feed(False, at, reason)
        if getattr(self.host, "recorder", None) is not None:
            self.host.record(feed_line(at, False, reason))
        (log.warning if was_up else log.info)("RIS Live feed down: %s", reason)

    # -- views -------------------------------------------------------------------------------------
    def health(self) -> list[str]:
        if self._up or self.since is None:
            return []
        if time.time() - self.since < self.params.silence:
            return []
        return [f"RIS Live feed down for {time.time() - self.since:.0f} s: {self.reason}"]

    def status(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "url": shown_url(self.params.url),
            "state": self.state,
            "since": self.since,
            "reason": self.reason,
            "frames": self.frames,
            "last_frame_at": self.last_frame_at,
            "reconnects": self.reconnects,
            "counts": dict(self.counts),
        }


def _ris_error_text(frame: bytes) -> str:
    """Return the printable message of a ris_error frame (bounded)."""
    try:
        data = orjson.loads(frame).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        data = None
    text = data.get("message") if isinstance(data, dict) else data
    text = str(text) if text is not None else "no message"
    return "".join(c if c.isprintable() else "?" for c in text[:200])
