"""`bgpwatch relay`: ExaBGP's API process, forwarding its JSON lines to the daemon.

ExaBGP writes one JSON line per BGP event to our stdin, with a blocking write: while the pipe is
full its whole reactor waits, keepalives included, and a router drops the session when its hold
timer expires: the monitor would cause the outage it watches for.  So the relay decides how long
ExaBGP may wait, and copes with a daemon that is slow, down or stuck like this:

* the daemon is reached over a unix socket (``<runtime_dir>/relay.sock``), reconnecting with
  capped exponential back-off;
* **a daemon that is behind pushes back**: while it keeps taking lines, the relay queues at most
  ``WINDOW_BYTES`` (1 MiB) and then leaves stdin unread, so ExaBGP waits, stops reading its BGP
  sockets, and TCP slows the routers down: a table arrives at the pace the daemon can apply it, and
  nothing is dropped.  What is in flight (the pipe's 1 MiB, the window, the socket's buffer of
  ``SOCKET_BUFFER`` doubled by the kernel) is what the daemon can be behind ExaBGP: ~2.5 MiB, under a
  second of a table load (an 8 MiB window kept it 2-3.5 s behind a 1M-route load, bench/README).  Each wait is short (the daemon takes a send's worth and the relay reads
  again), and never longer than ``collector.relay_stall_seconds`` (1 s by default, a third of the
  shortest hold time BGP allows): a daemon that took nothing for that long is stuck, and the relay
  goes back to reading whatever happens;
* while it cannot deliver (the daemon is unreachable or stuck), it keeps whole lines in a buffer
  bounded in bytes (``collector.relay_buffer_bytes``, 64 MiB by default, ~100k UPDATE lines);
* when that buffer is full it drops the **oldest** whole lines and counts them; the next
  line the daemon receives is a control line ``{"bgpwatch-relay": {"lost": N, ...}}`` so the
  daemon knows its view is incomplete (it raises ``collector_degraded``);
* each connection starts with a hello control line naming the worker (and saying that this relay
  sends heartbeats and takes route-refresh requests);
* while connected it sends a heartbeat ``{"bgpwatch-relay": {"alive": W, ...}}`` after every
  ``HEARTBEAT_SECONDS`` without other output, so the daemon can tell a quiet network from a relay
  that is stopped or wedged (``collector_degraded``, ``/healthz``); it carries how long and how often
  the relay has made ExaBGP wait so far (``held``, ``holds``: ``bgpwatch_relay_backpressure_*``);
* when it ends (ExaBGP closed the pipe, SIGTERM) it says so in a last ``{"bye": reason}`` line, so the
  daemon can tell an orderly end from a relay killed;
* the daemon may ask, by a line ``{"bgpwatch-daemon": {"refresh": ["ipv4 unicast", ...]}}`` on the
  socket, that ExaBGP re-request the routers' tables: the relay writes ``announce route-refresh
  <afi> <safi>`` on its stdout, ExaBGP's API command, which ExaBGP applies to every established
  peer (route refresh, RFC 2918).  Only those families are accepted, never any other command: the
  socket must not become a way to announce routes.  A ``silence-ack`` comes first so that
  ExaBGP 5 does not answer ``done``/``error`` into the stream.

Lines are forwarded as bytes, without being parsed, and in batches: ExaBGP writes one line per
``write``, so a relay that read whenever its stdin was readable would wake, read and send once per
line (~180 wake-ups per 1,000 lines with the daemon behind, bench/relay.py).  Instead, after a read
the relay leaves stdin alone for ``COALESCE_SECONDS`` (10 ms, far below the alert latency budget)
while the lines gather in the pipe, which it enlarges to ``PIPE_BYTES`` (1 MiB, ~1,500 lines: 37 ms
of ExaBGP's fastest output) so ExaBGP never blocks meanwhile; a read that took half the pipe or
more is followed by another at once.  Each read takes up to a pipe's worth, each send up to
``SEND_BYTES`` of whole lines, and the only per-chunk work is finding its last newline.  The socket
side stays served during the wait (requests from the daemon, heartbeats, writes).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import sys
import time
from collections import deque

import orjson

CHUNK = 1 << 20  # one read takes up to a whole (enlarged) pipe
PIPE_BYTES = 1 << 20  # stdin's pipe is enlarged to this (Linux F_SETPIPE_SZ; 1 MiB = pipe-max-size)
COALESCE_SECONDS = 0.01  # after a read, lines gather this long in the pipe before the next
SEND_BYTES = 1 << 20  # queued runs of lines are joined up to this per send
SOCKET_BUFFER = 1 << 18  # SO_SNDBUF asked for the daemon's socket (the kernel doubles it; part of the window)
WINDOW_BYTES = 1 << 20  # queued while the daemon takes lines; past it ExaBGP waits (back-pressure)
MIN_READ = 4096  # under back-pressure, smaller room than this waits for more
STALL_SECONDS = 1.0  # longest ExaBGP waits for a daemon that takes nothing (collector.relay_stall_seconds)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
HEARTBEAT_SECONDS = 1.0
DAEMON_TAG = b'{"bgpwatch-daemon"'
REFRESH_FAMILIES = frozenset({"ipv4 unicast", "ipv6 unicast"})
MAX_DAEMON_LINE = 4096


def refresh_commands(families: object) -> bytes:
    """Return the ExaBGP API commands asking for a route refresh of these families (known ones only)."""
    if not isinstance(families, list):
        return b""
    wanted = [f for f in families if isinstance(f, str) and f in REFRESH_FAMILIES]
    if not wanted:
        return b""
    commands = ["silence-ack"] + [f"announce route-refresh {family}" for family in dict.fromkeys(wanted)]
    return ("\n".join(commands) + "\n").encode()


class Relay:
    """Copy lines from a file descriptor to a unix socket, never blocking the reader."""

    def __init__(
        self,
        socket_path: str,
        worker: int = 0,
        buffer_bytes: int = 64 << 20,
        stdin_fd: int = 0,
        clock=time.monotonic,
        command_fd: int | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        stall_seconds: float = STALL_SECONDS,
        window_bytes: int = WINDOW_BYTES,
    ) -> None:
        self.socket_path = socket_path
        self.worker = worker
        self.buffer_bytes = buffer_bytes
        self.stdin_fd = stdin_fd
        self.command_fd = command_fd  # ExaBGP's API input (our stdout); None: requests are ignored
        self.heartbeat = heartbeat
        self.clock = clock
        self.stall_seconds = stall_seconds  # 0: never let ExaBGP wait (buffer, then drop)
        self.window_bytes = min(window_bytes, buffer_bytes)
        self.last_sent = 0.0  # when bytes last went to the daemon
        self.last_progress = 0.0  # when the daemon last took bytes (or connected)
        self.held_since: float | None = None  # stdin left unread since then (back-pressure)
        self.held_seconds = 0.0  # total time ExaBGP was made to wait
        self.holds = 0  # times it was
        self.inbox = b""  # a partial line from the daemon
        self.refreshes = 0  # route-refresh requests passed to ExaBGP
        self.pending: deque[bytes] = deque()  # whole lines (or runs of whole lines), oldest first
        self.pending_bytes = 0
        self.partial = b""  # an incomplete line read from stdin
        self.out: bytes | memoryview = b""  # bytes taken from `pending`, partly written to the socket
        self.pipe_bytes = 1 << 16  # stdin's pipe capacity (the Linux default until enlarged)
        self.next_read = 0.0  # stdin is read again from then on (coalescing)
        self.sock: socket.socket | None = None
        self.lost_lines = 0  # dropped since the last report to the daemon
        self.lost_total = 0
        self.backoff = 0.1
        self.next_connect = 0.0
        self.eof = False
        self.stopping = False

    # -- stdin side -------------------------------------------------------------------
    def _grow_pipe(self) -> None:
        """Enlarge stdin's pipe so lines can gather while the relay waits (best effort)."""
        try:
            self.pipe_bytes = fcntl.fcntl(self.stdin_fd, F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:  # not a pipe, or over the user's pipe limits: keep what it is
            try:
                self.pipe_bytes = fcntl.fcntl(self.stdin_fd, F_GETPIPE_SZ)
            except OSError:
                pass

    def _read_stdin(self, size: int = CHUNK) -> int:
        """Read what stdin holds (up to ``size``); return the number of bytes read."""
        try:
            data = os.read(self.stdin_fd, size)
        except BlockingIOError:
            return 0
        if not data:
            self.eof = True
            if self.partial:
                self._enqueue(self.partial + b"\n")
                self.partial = b""
            return 0
        size = len(data)
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial += data
            return size
        if self.partial:
            data = self.partial + data
            cut += len(self.partial)
        self.partial = data[cut + 1 :]
        self._enqueue(data[: cut + 1] if cut + 1 < len(data) else data)
        return size

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
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        except OSError:
            pass
        self.sock = sock
        self.backoff = 0.1
        self.last_progress = now  # a daemon that just connected gets a stall's time to start taking
        hello = {
            "hello": self.worker,
            "pid": os.getpid(),
            "lost_total": self.lost_total,
            "heartbeat": self.heartbeat,
            "refresh": self.command_fd is not None,
        }
        self.out = orjson.dumps({"bgpwatch-relay": hello}) + b"\n" + self.out
        self.last_sent = now

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
                self.out = self._take_pending()
            elif self.heartbeat and self.clock() - self.last_sent >= self.heartbeat:
                alive = {
                    "alive": self.worker,
                    "time": time.time(),
                    # back-pressure so far (bgpwatch_relay_backpressure_*): how long ExaBGP waited
                    "held": round(self.held_total(self.clock()), 3),
                    "holds": self.holds,
                }
                self.out = orjson.dumps({"bgpwatch-relay": alive}) + b"\n"
            else:
                return
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._disconnect()
            return
        if sent:
            self.last_sent = self.last_progress = self.clock()
        # what is left of a partial send, without copying it
        self.out = b"" if sent >= len(self.out) else memoryview(self.out)[sent:]

    def _take_pending(self) -> bytes:
        """Take the oldest queued runs of lines, joined up to SEND_BYTES (at least one run)."""
        run = self.pending.popleft()
        if self.pending and len(run) < SEND_BYTES:
            runs = [run]
            size = len(run)
            while self.pending and size + len(self.pending[0]) <= SEND_BYTES:
                runs.append(self.pending.popleft())
                size += len(runs[-1])
            run = b"".join(runs) if len(runs) > 1 else run
        self.pending_bytes -= len(run)
        return run

    def _room(self, now: float) -> int:
        """Return how many bytes the next read of stdin may take.

        While the daemon takes lines, what fits in the window (back-pressure: 0 leaves ExaBGP waiting);
        when it is unreachable, or took nothing for ``stall_seconds``, a whole read (ExaBGP must go on).
        """
        if self.sock is None or self.stall_seconds <= 0 or now - self.last_progress >= self.stall_seconds:
            return CHUNK
        room = min(CHUNK, self.window_bytes - self.pending_bytes - len(self.partial))
        return room if room >= MIN_READ else 0

    def _note_hold(self, now: float, holding: bool) -> None:
        if holding and self.held_since is None:
            self.held_since = now
            self.holds += 1
        elif not holding and self.held_since is not None:
            self.held_seconds += now - self.held_since
            self.held_since = None

    def held_total(self, now: float) -> float:
        """Return the seconds ExaBGP was made to wait so far, the wait in progress included."""
        return self.held_seconds + (now - self.held_since if self.held_since is not None else 0.0)

    def _heartbeat_due(self) -> bool:
        return bool(self.heartbeat) and self.clock() - self.last_sent >= self.heartbeat

    def _goodbye(self, reason: str) -> None:
        """Tell the daemon this relay ends on purpose (best effort, never blocking for long)."""
        if self.sock is None or self.out:
            return  # never after half a line
        bye = orjson.dumps({"bgpwatch-relay": {"bye": reason, "worker": self.worker}}) + b"\n"
        try:
            self.sock.settimeout(0.5)
            self.sock.sendall(bye)
        except OSError:
            pass

    def _disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        # A line cut in the middle cannot be resent safely: drop the remainder, count it.
        if self.out:
            count = max(1, bytes(self.out).count(b"\n"))
            self.lost_lines += count
            self.lost_total += count
            self.out = b""
        self.next_connect = self.clock() + self.backoff

    # -- loop -------------------------------------------------------------------------
    def run(self, idle_exit: float | None = None) -> int:
        """Relay until stdin closes and the buffer is flushed (or cannot be)."""
        os.set_blocking(self.stdin_fd, False)
        self._grow_pipe()
        eof_since: float | None = None
        while not self.stopping:
            if self.sock is None:
                self._connect()
            now = self.clock()
            room = self._room(now)
            holding = not self.eof and room == 0
            self._note_hold(now, holding)
            reading = not self.eof and now >= self.next_read and not holding
            readers = [self.stdin_fd] if reading else []
            writers = []
            if self.sock is not None:
                readers.append(self.sock.fileno())
                if self.out or self.pending or self.lost_lines or self._heartbeat_due():
                    writers.append(self.sock.fileno())
            timeout = 0.1 if self.sock is None else min(1.0, max(0.05, self.heartbeat / 2 or 1.0))
            if holding:  # wake when the stall bound ends (a send that makes room wakes us anyway)
                timeout = min(timeout, max(0.001, self.last_progress + self.stall_seconds - now))
            elif not self.eof and not reading:
                timeout = min(timeout, self.next_read - now)
            try:
                readable, writable, _ = select.select(readers, writers, [], timeout)
            except InterruptedError:
                continue
            if self.stdin_fd in readable:
                got = self._read_stdin(room)
                # A read of half the pipe or more: ExaBGP writes fast, read again at once so that it
                # never blocks on a full pipe.  Otherwise let the next lines gather for a moment.
                if got < self.pipe_bytes // 2:
                    self.next_read = self.clock() + COALESCE_SECONDS
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
        self._goodbye("stopped (SIGTERM)" if self.stopping else "ExaBGP closed the API pipe")
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
            return
        self.inbox += data
        *lines, self.inbox = self.inbox.split(b"\n")
        if len(self.inbox) > MAX_DAEMON_LINE:
            self.inbox = b""  # not a request of ours: forget it rather than grow
        for line in lines:
            self._daemon_request(line)

    def _daemon_request(self, line: bytes) -> None:
        """Act on one request line from the daemon: only route-refresh requests exist."""
        if not line.startswith(DAEMON_TAG) or self.command_fd is None:
            return
        try:
            request = orjson.loads(line)["bgpwatch-daemon"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        commands = refresh_commands(request.get("refresh")) if isinstance(request, dict) else b""
        if not commands:
            return
        try:
            # Never block on ExaBGP (it may be stuck writing to us): write only into a pipe with room.
            # O_NONBLOCK is not set instead: stdout may be shared with whoever started us.
            _, writable, _ = select.select([], [self.command_fd], [], 0)
            if not writable:
                return  # the daemon asks again at the next connection
            os.write(self.command_fd, commands)
        except OSError:
            self.command_fd = None  # ExaBGP is gone
            return
        self.refreshes += 1


def main(socket_path: str, worker: int, buffer_bytes: int, stall_seconds: float = STALL_SECONDS) -> int:
    """Run the relay as ExaBGP's API process."""
    # stdout is ExaBGP's API input: the daemon's route-refresh requests go there
    relay = Relay(
        socket_path, worker=worker, buffer_bytes=buffer_bytes, command_fd=1, stall_seconds=stall_seconds
    )

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
        relay._note_hold(relay.clock(), False)
        if relay.holds:
            print(
                f"bgpwatch relay: ExaBGP waited {relay.held_seconds:.1f} s in {relay.holds} stretches"
                " for a daemon that was behind",
                file=sys.stderr,
            )
        if relay.lost_total:
            print(
                f"bgpwatch relay: {relay.lost_total} lines dropped while the daemon was unreachable",
                file=sys.stderr,
            )
