"""The BMP input: a monitoring station (RFC 7854) that routers connect to.

Each connection is read one whole message at a time (6-byte common header, then the rest), applied
through `Pipeline.feed_bmp` and recorded (`bgpwatch.ingest.bmp_lines`).  Bounds, so that one router
never hurts the others or the daemon:
- a message longer than ``max_message_bytes`` or with a bad common header is a framing error: the
  stream cannot be resynchronised, the connection is closed (the router reconnects);
- ``max_errors`` malformed messages from one connection close it too (a router sending garbage);
- backpressure: nothing is read ahead of what the pipeline applied (the stream reader's buffer is
  bounded), so a slow daemon slows the router's TCP stream instead of buffering without bound; the
  loop yields every ``YIELD_EVERY`` messages so the API and timers keep running during a table load;
- TCP keepalive finds a router that died without closing the connection (a silent power loss) in
  about ``KEEPALIVE_IDLE + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections import Counter
from typing import Any

from bgpwatch.config import _split_listen
from bgpwatch.ingest.bmp_lines import close_line, message_line, open_line
from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.ingest.sources import Source, register
from bgpwatch.monitors import CLOSED_BY_ROUTER, STATION_STOPPING

log = logging.getLogger("bgpwatch.bmp")

YIELD_EVERY = 256
KEEPALIVE_IDLE = 10
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3
READ_LIMIT = 1 << 20  # stream reader buffer: what may sit unread per connection


def _canonical(address: str) -> str:
    """Return an address as config writes it (IPv4-mapped IPv6 as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@register
class BmpStation(Source):
    """Listen for routers' BMP sessions; several at once, each on its own bounded reader."""

    type = "bmp"

    def __init__(self, host: Any, params: Any) -> None:
        super().__init__(host, params)
        self.server: asyncio.base_events.Server | None = None
        self.connections: dict[str, dict[str, Any]] = {}  # conn -> address, since, messages, errors
        self._tasks: set[asyncio.Task] = set()
        self._serial = 0
        self.closed: Counter[str] = Counter()  # connections closed by bgpwatch, by reason
        self.accepted = 0

    async def start(self) -> None:
        host, port = _split_listen(self.params.listen)
        self.server = await asyncio.start_server(self._connection, host, port, limit=READ_LIMIT)
        log.info("BMP station listening on %s", self.params.listen)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)

    def health(self) -> list[str]:
        return []  # a router not heard is an alert (monitor_lost), not the daemon's health

    def status(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "listen": self.params.listen,
            "connections": [{"conn": conn, **info} for conn, info in sorted(self.connections.items())],
            "accepted": self.accepted,
            "closed_by_bgpwatch": dict(self.closed),
        }

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from bgpwatch.ingest.bmp import COMMON_HEADER_BYTES, message_length

        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername") or ("?", 0)
        address = _canonical(str(peer[0]))
        self._serial += 1
        self.accepted += 1
        conn = f"{address}:{peer[1]}#{self._serial}"
        sock = writer.get_extra_info("socket")
        if sock is not None:
            _keepalive(sock)
        pipeline = self.host.pipeline
        # Recording lines (orjson + base64 of every message) cost ~5 % of a table load: built only when kept.
        record = self.host.record if getattr(self.host, "recorder", None) is not None else None
        monitors = pipeline.sessions.monitors
        info = {"address": address, "since": time.time(), "messages": 0, "errors": 0}
        self.connections[conn] = info
        now = time.time()
        if record is not None:
            record(open_line(now, conn, address))
        pipeline.bmp_connected(conn, address, now)
        log.info("BMP router connected from %s", address)
        reason = CLOSED_BY_ROUTER
        limit = self.params.max_message_bytes
        try:
            count = 0
            while True:
                try:
                    header = await reader.readexactly(COMMON_HEADER_BYTES)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        reason = "closed in the middle of a message header"
                    break
                try:
                    length = message_length(header, limit)  # the configured limit, not the decoder's default
                except IngestError as exc:
                    pipeline.reject(exc.reason, exc.detail, f"bmp {address}")
                    reason = f"framing lost ({exc.reason}): {exc.detail}"
                    self.closed[exc.reason] += 1
                    break
                try:
                    body = await reader.readexactly(length - COMMON_HEADER_BYTES)
                except asyncio.IncompleteReadError:
                    reason = "closed in the middle of a message"
                    break
                message = header + body
                now = time.time()
                if record is not None:
                    record(message_line(now, conn, message))
                info["messages"] += 1
                if not pipeline.feed_bmp(conn, message, now):
                    info["errors"] += 1
                    if info["errors"] >= self.params.max_errors:
                        reason = f"{info['errors']} malformed messages"
                        self.closed["too_many_errors"] += 1
                        break
                if not self.params.accept_unknown and info["messages"] == 1:
                    router = monitors.routers.get(monitors.resolve(address, _sys_name(monitors, address)))
                    if router is None or not router.configured:
                        reason = "not a configured router (accept_unknown is false)"
                        self.closed["unknown_router"] += 1
                        break
                count += 1
                if count >= YIELD_EVERY:
                    count = 0
                    await asyncio.sleep(0)  # let the API and timers run during a table load
        except (ConnectionError, TimeoutError, OSError) as exc:
            reason = f"connection lost: {exc.__class__.__name__}: {exc}"
        except asyncio.CancelledError:
            reason = STATION_STOPPING
        finally:
            now = time.time()
            if record is not None:
                record(close_line(now, conn, reason))
            pipeline.bmp_disconnected(conn, now, reason)
            self.connections.pop(conn, None)
            writer.close()
            if task is not None:
                self._tasks.discard(task)
            log.warning("BMP router %s disconnected: %s", address, reason)


def _sys_name(monitors: Any, address: str) -> str:
    for router in monitors.routers.values():
        if router.address == address and router.sys_name:
            return router.sys_name
    return ""


def _keepalive(sock: socket.socket) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
