"""`bgpwatch relay`: ExaBGP's API process, forwarding its JSON lines to the daemon.

ExaBGP writes one JSON line per BGP event to our stdin.  If we stopped reading, ExaBGP's
pipe would fill, its reactor would block, and the routers would drop their sessions when the
hold timer expired: the monitor would cause the outage it watches for.  So the relay *always*
reads stdin, and copes with a daemon that is down or slow like this:

* the daemon is reached over a unix socket (``<runtime_dir>/relay.sock``), reconnecting with
  capped exponential back-off;
* while it cannot write, it keeps whole lines in a buffer bounded in bytes
  (``collector.relay_buffer_bytes``, 64 MiB by default, ~100k UPDATE lines);
* when the buffer is full it drops the **oldest** whole lines and counts them; the next
  line the daemon receives is a control line ``{"bgpwatch-relay": {"lost": N, ...}}`` so the
  daemon knows its view is incomplete (it raises ``collector_degraded``);
* each connection starts with a hello control line naming the worker.

Lines are forwarded as bytes, without being parsed: the relay costs one read and one write
per chunk, not per line.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
import time
from collections import deque

import orjson

CHUNK = 1 << 16
COALESCE_SECONDS = 0.002
COALESCE_BYTES = 1 << 15


class Relay:
    """Copy lines from a file descriptor to a unix socket, never blocking the reader."""

    def __init__(
        self,
        socket_path: str,
        worker: int = 0,
        buffer_bytes: int = 64 << 20,
        stdin_fd: int = 0,
        clock=time.monotonic,
    ) -> None:
        self.socket_path = socket_path
        self.worker = worker
        self.buffer_bytes = buffer_bytes
        self.stdin_fd = stdin_fd
        self.clock = clock
        self.pending: deque[bytes] = deque()  # whole lines (or runs of whole lines), oldest first
        self.pending_bytes = 0
        self.partial = b""  # an incomplete line read from stdin
        self.out = b""  # bytes taken from `pending`, partly written to the socket
        self.sock: socket.socket | None = None
        self.lost_lines = 0  # dropped since the last report to the daemon
        self.lost_total = 0
        self.backoff = 0.1
        self.next_connect = 0.0
        self.eof = False
        self.stopping = False

    # -- stdin side -------------------------------------------------------------------
    def _read_stdin(self) -> None:
        try:
            data = os.read(self.stdin_fd, CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.eof = True
            if self.partial:
                self._enqueue(self.partial + b"\n")
                self.partial = b""
            return
        data = self.partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial = data
            return
        self.partial = data[cut + 1 :]
        self._enqueue(data[: cut + 1])

    def _enqueue(self, lines: bytes) -> None:
        self.pending.append(lines)
        self.pending_bytes += len(lines)
        while self.pending_bytes > self.buffer_bytes and self.pending:
            excess = self.pending_bytes - self.buffer_bytes
            oldest = self.pending[0]
            if len(oldest) <= excess:
                dropped = self.pending.popleft()
            else:
                # Drop just enough whole lines from the front of the oldest run.
                cut = oldest.find(b"\n", excess - 1) + 1
                dropped, self.pending[0] = oldest[:cut], oldest[cut:]
                if not self.pending[0]:
                    self.pending.popleft()
            self.pending_bytes -= len(dropped)
            count = dropped.count(b"\n")
            self.lost_lines += count
            self.lost_total += count

    def _coalesce(self) -> None:
        """Wait a moment for more lines before writing, so a busy feed costs one wakeup per batch.

        ExaBGP writes one line per UPDATE; forwarding each alone costs a write here and an
        event-loop wakeup in the daemon per line.  COALESCE_SECONDS (2 ms) is far below the
        alert latency budget and lets batches form at a few thousand lines per second.
        """
        if self.eof or len(self.partial) + self.pending_bytes >= COALESCE_BYTES:
            return
        # Sleep rather than poll per line: the pipe (64 KiB) holds ~30 ms of a busy feed.
        time.sleep(COALESCE_SECONDS)
        before = -1
        while not self.eof and before != self.pending_bytes and self.pending_bytes < COALESCE_BYTES:
            before = self.pending_bytes
            self._read_stdin()

    # -- socket side ------------------------------------------------------------------
    def _connect(self) -> None:
        now = self.clock()
        if now < self.next_connect:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            self.next_connect = now + self.backoff
            self.backoff = min(self.backoff * 2, 5.0)
            return
        sock.setblocking(False)
        self.sock = sock
        self.backoff = 0.1
        hello = {"bgpwatch-relay": {"hello": self.worker, "pid": os.getpid(), "lost_total": self.lost_total}}
        self.out = orjson.dumps(hello) + b"\n" + self.out

    def _control_line(self) -> bytes:
        report = {"bgpwatch-relay": {"lost": self.lost_lines, "worker": self.worker, "time": time.time()}}
        self.lost_lines = 0
        return orjson.dumps(report) + b"\n"

    def _write_socket(self) -> None:
        assert self.sock is not None
        if not self.out:
            if self.lost_lines:
                self.out = self._control_line()
            elif self.pending:
                self.out = self.pending.popleft()
                self.pending_bytes -= len(self.out)
            else:
                return
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._disconnect()
            return
        self.out = self.out[sent:]

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        # A line cut in the middle cannot be resent safely: drop the remainder, count it.
        if self.out:
            count = max(1, self.out.count(b"\n"))
            self.lost_lines += count
            self.lost_total += count
            self.out = b""
        self.next_connect = self.clock() + self.backoff

    # -- loop -------------------------------------------------------------------------
    def run(self, idle_exit: float | None = None) -> int:
        """Relay until stdin closes and the buffer is flushed (or cannot be)."""
        os.set_blocking(self.stdin_fd, False)
        eof_since: float | None = None
        while not self.stopping:
            if self.sock is None:
                self._connect()
            readers = [] if self.eof else [self.stdin_fd]
            writers = []
            if self.sock is not None:
                readers.append(self.sock.fileno())
                if self.out or self.pending or self.lost_lines:
                    writers.append(self.sock.fileno())
            timeout = 0.1 if self.sock is None else 1.0
            try:
                readable, writable, _ = select.select(readers, writers, [], timeout)
            except InterruptedError:
                continue
            if self.stdin_fd in readable:
                self._read_stdin()
                self._coalesce()
            if self.sock is not None and self.sock.fileno() in readable:
                self._drain_socket()
            if self.sock is not None and self.sock.fileno() in writable:
                self._write_socket()
            if self.eof:
                if not (self.out or self.pending):
                    break
                eof_since = eof_since or self.clock()
                if idle_exit is not None and self.clock() - eof_since > idle_exit:
                    break
        if self.sock is not None:
            self.sock.close()
        return 0

    def _drain_socket(self) -> None:
        """Read (and ignore) what the daemon sends; notice it closing the connection."""
        assert self.sock is not None
        try:
            data = self.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                self._disconnect()
            return
        if not data:
            self._disconnect()


def main(socket_path: str, worker: int, buffer_bytes: int) -> int:
    """Run the relay as ExaBGP's API process."""
    relay = Relay(socket_path, worker=worker, buffer_bytes=buffer_bytes)

    def stop(_signum, _frame):
        relay.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        # After stdin closes (ExaBGP gone), give the daemon 5 s to take what is buffered.
        return relay.run(idle_exit=5.0)
    except KeyboardInterrupt:
        return 0
    finally:
        if relay.lost_total:
            print(
                f"bgpwatch relay: {relay.lost_total} lines dropped while the daemon was unreachable",
                file=sys.stderr,
            )
