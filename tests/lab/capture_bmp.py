"""Capture raw BMP streams: a TCP listener writing each router connection's bytes to a file.

Run it inside a lab's collector namespace (``lab.collector_exec([sys.executable, "-m",
"tests.lab.capture_bmp", "--out", DIR])`` from the repository root, or as a script).  Per accepted
connection ``DIR/<n>-<address>.bmp`` gets the raw byte stream, exactly as read, and
``DIR/<n>-<address>.idx`` one line per read: ``<arrival epoch time> <offset> <length>`` (the
offset into the .bmp file), so a replay can give each message its arrival time.  The process
never sends anything; SIGTERM closes the files.  ``count_messages`` and ``messages`` read a
capture back with nothing but the BMP common header (RFC 7854 §4.1).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path

COMMON_HEADER = struct.Struct("!BIB")  # version, length (incl. header), type
MESSAGE_TYPES = {
    0: "route_monitoring",
    1: "statistics",
    2: "peer_down",
    3: "peer_up",
    4: "initiation",
    5: "termination",
    6: "route_mirroring",
}
READ_SIZE = 65536


class Capture:
    """Accept BMP connections and write their bytes (and read times) under ``out``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Write one connection's stream until the router closes it."""
        self.connections += 1
        address = str(writer.get_extra_info("peername")[0]).replace(":", "_")
        stem = self.out / f"{self.connections:03d}-{address}"
        offset = 0
        with open(f"{stem}.bmp", "wb") as data, open(f"{stem}.idx", "w") as index:
            index.write(f"# {time.time():.6f} connect\n")
            index.flush()
            while True:
                try:
                    chunk = await reader.read(READ_SIZE)
                except ConnectionError:
                    chunk = b""
                except asyncio.CancelledError:
                    # The capture stops (SIGTERM): the connection was still open.
                    index.write(f"# {time.time():.6f} stop\n")
                    return
                now = time.time()
                if not chunk:
                    index.write(f"# {now:.6f} close\n")
                    break
                data.write(chunk)
                data.flush()
                index.write(f"{now:.6f} {offset} {len(chunk)}\n")
                index.flush()
                offset += len(chunk)
        writer.close()


async def serve(out: Path, host: str | None, port: int) -> None:
    """Listen on ``host:port`` (None: every IPv4 and IPv6 address) until SIGTERM or SIGINT."""
    out.mkdir(parents=True, exist_ok=True)
    capture = Capture(out)
    server = await asyncio.start_server(capture.handle, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    (out / "listening").write_text(f"{host} {port}\n")
    async with server:
        await stop.wait()


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (type, whole message) from a raw BMP stream; a cut last message is left out."""
    offset = 0
    while offset + COMMON_HEADER.size <= len(data):
        version, length, kind = COMMON_HEADER.unpack_from(data, offset)
        if version != 3 or length < COMMON_HEADER.size:
            raise ValueError(f"not BMP v3 at offset {offset}: version {version}, length {length}")
        if offset + length > len(data):
            return
        yield kind, data[offset : offset + length]
        offset += length


def count_messages(data: bytes) -> collections.Counter[str]:
    """Return how many messages of each type (by name) a raw BMP stream holds."""
    return collections.Counter(MESSAGE_TYPES.get(kind, f"type_{kind}") for kind, _ in messages(data))


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory for the .bmp/.idx files")
    # asyncio binds "::" IPv6-only: the default (None) listens on every IPv4 and IPv6 address.
    parser.add_argument("--listen", default=None, help="address (default: every IPv4 and IPv6 address)")
    parser.add_argument("--port", type=int, default=11019)
    args = parser.parse_args()
    asyncio.run(serve(args.out, args.listen, args.port))


if __name__ == "__main__":
    main()
