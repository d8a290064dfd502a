"""The BMP station's bounds (issue 10 item 2), on loopback with a stand-in pipeline.

- backpressure: a slow daemon slows the router's TCP stream; what the station holds unread per
  connection stays bounded (the stream reader pauses the transport past its limit);
- framing: the configured ``max_message_bytes`` is the limit, whatever the decoder's default.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from types import SimpleNamespace
from typing import Any

from bgpwatch.ingest import bmp as bmp_decoder
from bgpwatch.ingest.sources import bmp as station_module
from bgpwatch.ingest.sources.bmp import BmpStation


def initiation(size: int) -> bytes:
    """Return a BMP Initiation of ``size`` bytes: sysDescr TLVs of padding (at most 60,000 bytes each)."""
    tlvs, left = [], size - 6
    while left:
        value = b"x" * (min(left, 60_004) - 4)
        tlvs.append(struct.pack("!HH", 1, len(value)) + value)
        left -= 4 + len(value)
    return struct.pack("!BIB", 3, size, 4) + b"".join(tlvs)


class StandInPipeline:
    """What the station calls of the pipeline, recording what it was given."""

    def __init__(self) -> None:
        self.sessions = SimpleNamespace(monitors=SimpleNamespace(routers={}, resolve=lambda a, s: a))
        self.fed: list[int] = []
        self.rejected: list[tuple[str, str]] = []
        self.closed: list[str] = []
        self.probe: Any = None

    def bmp_connected(self, conn: str, address: str, at: float) -> None:
        pass

    def feed_bmp(self, conn: str, message: bytes, at: float) -> bool:
        self.fed.append(len(message))
        if self.probe is not None:
            self.probe()
        return True

    def reject(self, reason: str, detail: str, source: str) -> None:
        self.rejected.append((reason, detail))

    def bmp_disconnected(self, conn: str, at: float, reason: str) -> None:
        self.closed.append(reason)


class ProbedStation(BmpStation):
    """The station, keeping each connection's stream reader so the test can look at its buffer."""

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        await super()._connection(reader, writer)


def make_station(pipeline: StandInPipeline, max_message_bytes: int = 1 << 20) -> ProbedStation:
    host = SimpleNamespace(pipeline=pipeline, config=None, recorder=None, record=lambda line: None)
    params = SimpleNamespace(
        listen="127.0.0.1:0", max_message_bytes=max_message_bytes, max_errors=100, accept_unknown=True
    )
    return ProbedStation(host, params)


async def _wait(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_slow_daemon_slows_the_router_instead_of_buffering() -> None:
    # Small messages: each turn of the event loop reads up to 256 KiB from the socket while the station
    # applies 256 messages (64 KiB) before it yields, so only the reader's limit keeps the buffer bounded.
    message = initiation(256)
    chunk = message * 256
    chunks = 384  # 24 MiB: well past the reader's limit and the loopback socket buffers
    total = chunks * 256
    pipeline = StandInPipeline()  # even doing nothing, far slower than loopback TCP
    station = make_station(pipeline)
    unread: list[int] = []
    sent = [0]

    def probe() -> None:
        reader = getattr(station, "reader", None)
        if reader is not None and len(pipeline.fed) % 64 == 0:
            unread.append(len(reader._buffer))  # noqa: SLF001 - what the station holds unread

    pipeline.probe = probe

    def router(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
            for _ in range(chunks):
                sock.sendall(chunk)
                sent[0] += 256
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1)  # until the station closes

    async def scenario() -> int:
        await station.start()
        port = station.server.sockets[0].getsockname()[1]
        thread = threading.Thread(target=router, args=(port,), daemon=True)
        thread.start()
        ahead = 0
        # While the daemon is slow, the router is held back: it cannot get far ahead of what was applied.
        while len(pipeline.fed) < total // 2:
            ahead = max(ahead, sent[0] - len(pipeline.fed))
            await asyncio.sleep(0.005)
        await _wait(lambda: len(pipeline.closed) == 1, timeout=60)
        await station.stop()
        thread.join(10)
        return ahead

    ahead = asyncio.run(scenario())
    assert len(pipeline.fed) == total and pipeline.closed == [station_module.CLOSED_BY_ROUTER]
    limit = station_module.READ_LIMIT
    # asyncio pauses reading once more than twice the limit is buffered; one read adds at most 256 KiB.
    assert unread and max(unread) <= 2 * limit + (256 << 10), max(unread)
    # Sent but not yet applied: the reader's buffer plus the kernel's socket buffers, far from 24 MiB.
    assert ahead * len(message) < 12 << 20, ahead * len(message)


def test_the_configured_message_limit_frames_the_stream() -> None:
    big = initiation(300 << 10)  # above the decoder's default cap (256 KiB), below the configured 1 MiB
    assert len(big) > bmp_decoder.MAX_MESSAGE_BYTES
    pipeline = StandInPipeline()
    station = make_station(pipeline, max_message_bytes=1 << 20)

    async def scenario() -> None:
        await station.start()
        port = station.server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(big)
        await writer.drain()
        await _wait(lambda: pipeline.fed or pipeline.closed)
        assert pipeline.fed == [len(big)] and not pipeline.closed, pipeline.closed
        writer.write(struct.pack("!BIB", 3, (1 << 20) + 1, 4))  # one byte over: framing lost
        await writer.drain()
        await _wait(lambda: pipeline.closed)
        writer.close()
        await station.stop()

    asyncio.run(scenario())
    assert pipeline.fed == [len(big)]
    ((reason, detail),) = pipeline.rejected
    assert reason == "bmp_too_long" and "length 1048577 (more than 1048576)" in detail, detail
    assert station.closed == {"bmp_too_long": 1}
    assert pipeline.closed[0].startswith("framing lost (bmp_too_long)"), pipeline.closed
