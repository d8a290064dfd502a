"""The BMP station's bounds (issue 10 item 2), on loopback with a stand-in pipeline.

- backpressure: a slow daemon slows the router's TCP stream; what the station holds unread per
  connection stays bounded (the stream reader pauses the transport past its limit);
- framing: the configured ``max_message_bytes`` is the limit, whatever the decoder's default;
- ``max_errors``: a router sending malformed (well framed) messages is closed after that many, another
  router's stream goes on untouched.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bgpwatch.ingest import bmp as bmp_decoder
from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.ingest.sources import bmp as station_module
from bgpwatch.ingest.sources.bmp import BmpStation
from bgpwatch.rib.attributes import AttributePool

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bmp"
CAPTURE = FIXTURES / "frr84" / "frr-par1-1.bmp"
MALFORMED = FIXTURES / "malformed"
BAD = ("bmp_bad_peer_down--reason-code-7", "bmp_bad_stats--count-1000", "bmp_bad_tlv--initiation-tlv-overrun")


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


class DecodingPipeline(StandInPipeline):
    """The stand-in with the real decoder: a message it rejects is reported as the pipeline does."""

    def __init__(self) -> None:
        super().__init__()
        self.parser = bmp_decoder.BmpParser(AttributePool())
        self.fed_by: dict[str, int] = {}

    def bmp_connected(self, conn: str, address: str, at: float) -> None:
        self.parser.connect(conn, address, at)

    def feed_bmp(self, conn: str, message: bytes, at: float) -> bool:
        try:
            self.parser.parse(conn, message, at)
        except IngestError as exc:
            self.reject(exc.reason, exc.detail, conn)
            return False
        self.fed_by[conn] = self.fed_by.get(conn, 0) + 1
        return True


split_messages = bmp_decoder.split_messages


def test_a_router_sending_malformed_messages_is_closed_after_max_errors_and_the_others_go_on() -> None:
    good = split_messages(CAPTURE.read_bytes())  # FRR 8.4's par1, every message well formed
    # Well framed but malformed (fixtures/bmp/malformed): the stream stays in step, each is one error.
    bad = [(MALFORMED / f"{name}.bmp").read_bytes() for name in BAD]
    pipeline = DecodingPipeline()
    station = make_station(pipeline)
    station.params.max_errors = 3

    async def scenario() -> None:
        await station.start()
        port = station.server.sockets[0].getsockname()[1]
        _, router = await asyncio.open_connection("127.0.0.1", port)
        router.write(b"".join(good[: len(good) // 2]))
        await router.drain()
        await _wait(lambda: sum(pipeline.fed_by.values()) == len(good) // 2)
        reader, garbage = await asyncio.open_connection("127.0.0.1", port)
        garbage.write(b"".join(bad[:2]))  # two errors: still heard
        await garbage.drain()
        await _wait(lambda: len(pipeline.rejected) == 2)
        assert len(station.connections) == 2 and not pipeline.closed
        garbage.write(bad[2] + good[0])  # the third: closed, what follows is never read
        await garbage.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by bgpwatch
        await _wait(lambda: pipeline.closed)
        router.write(b"".join(good[len(good) // 2 :]))
        await router.drain()
        await _wait(lambda: sum(pipeline.fed_by.values()) == len(good))
        router.close()
        await _wait(lambda: len(pipeline.closed) == 2)
        await station.stop()

    asyncio.run(scenario())
    assert [reason for reason, _ in pipeline.rejected] == [name.split("--")[0] for name in BAD]
    assert pipeline.closed == ["3 malformed messages", station_module.CLOSED_BY_ROUTER]
    assert station.closed == {"too_many_errors": 1}
    assert sorted(pipeline.fed_by.values()) == [len(good)]  # the other router lost nothing
