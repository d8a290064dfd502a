"""The relay never blocks ExaBGP: bounded buffer, drop-oldest with a count, reconnect, gap report."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import orjson

from bgpwatch.collector.relay import Relay


def lines(n, start=0):
    return [orjson.dumps({"n": i, "pad": "x" * 40}) + b"\n" for i in range(start, start + n)]


def test_buffer_is_bounded_and_drops_oldest_whole_lines():
    relay = Relay("/nonexistent/relay.sock", buffer_bytes=1000)
    for line in lines(100):
        relay._enqueue(line)
    kept = b"".join(relay.pending)
    assert relay.pending_bytes == len(kept) <= 1000
    assert kept.endswith(lines(1, 99)[0])  # the newest survive
    assert relay.lost_lines == relay.lost_total == 100 - kept.count(b"\n")
    assert kept.startswith(b'{"n":')  # whole lines only


def test_partial_lines_are_joined_across_reads():
    read_fd, write_fd = os.pipe()
    relay = Relay("/nonexistent", stdin_fd=read_fd)
    os.write(write_fd, b'{"a":1}\n{"b"')
    relay._read_stdin()
    os.write(write_fd, b":2}\n")
    relay._read_stdin()
    os.close(write_fd)
    relay._read_stdin()
    assert b"".join(relay.pending) == b'{"a":1}\n{"b":2}\n' and relay.eof
    os.close(read_fd)


def _serve(path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(10)
    return server


def _read_lines(conn, count, timeout=10.0):
    conn.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count and time.monotonic() < deadline:
        chunk = conn.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return [orjson.loads(line) for line in data.splitlines()]


def test_relay_process_buffers_until_daemon_appears_then_reports_loss(tmp_path):
    path = str(tmp_path / "relay.sock")
    relay = subprocess.Popen(
        [sys.executable, "-m", "bgpwatch", "relay", "--socket", path],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The daemon is down: ExaBGP's writes must still go through, whatever the volume.
        started = time.monotonic()
        for line in lines(2000):
            relay.stdin.write(line)
        relay.stdin.flush()
        assert time.monotonic() - started < 5
        server = _serve(path)
        conn, _ = server.accept()
        received = _read_lines(conn, 2001)
        assert received[0]["bgpwatch-relay"]["hello"] == 0
        assert [r["n"] for r in received[1:]] == list(range(2000))  # nothing lost within the bound
        # The daemon goes away and comes back: lines in flight are either delivered or counted.
        conn.close()
        server.close()
        os.unlink(path)
        for line in lines(50, 2000):
            relay.stdin.write(line)
        relay.stdin.flush()
        time.sleep(0.3)
        server = _serve(path)
        conn, _ = server.accept()
        relay.stdin.close()
        received = _read_lines(conn, 51)
        numbers = [r["n"] for r in received if "n" in r]
        control = [r["bgpwatch-relay"] for r in received if "bgpwatch-relay" in r]
        lost = sum(c.get("lost", 0) for c in control)
        assert control[0]["hello"] == 0
        assert len(numbers) + lost == 50 and numbers == sorted(numbers)
        conn.close()
        server.close()
        assert relay.wait(timeout=10) == 0
    finally:
        relay.kill()


def test_relay_drops_and_counts_when_daemon_never_comes(tmp_path):
    path = str(tmp_path / "relay.sock")
    relay = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from bgpwatch.collector.relay import Relay; Relay({path!r}, buffer_bytes=4096).run(idle_exit=0.2)",
        ],
        stdin=subprocess.PIPE,
    )
    payload = b"".join(lines(5000))
    started = time.monotonic()
    relay.stdin.write(payload)  # ~330 KB into a 4 KB buffer: must never block the writer
    relay.stdin.close()
    assert relay.wait(timeout=10) == 0
    assert time.monotonic() - started < 5


def test_relay_reports_loss_after_overflow(tmp_path):
    path = str(tmp_path / "relay.sock")
    read_fd, write_fd = os.pipe()
    relay = Relay(path, buffer_bytes=2000, stdin_fd=read_fd)
    os.write(write_fd, b"".join(lines(100)))
    os.close(write_fd)
    relay._read_stdin()
    relay._read_stdin()
    assert relay.eof and relay.lost_lines > 0
    lost = relay.lost_lines
    server = _serve(path)
    relay._connect()
    conn, _ = server.accept()
    for _ in range(200):
        relay._write_socket()
    received = _read_lines(conn, 2 + relay.pending_bytes, timeout=1)
    assert received[0]["bgpwatch-relay"]["hello"] == 0
    assert received[1]["bgpwatch-relay"]["lost"] == lost
    assert [r["n"] for r in received[2:]][-1] == 99
    os.close(read_fd)
    conn.close()
    server.close()


def _pipe_writer(fd, payload):
    """Write `payload` into a pipe from a thread (blocking, as ExaBGP does); return the thread."""
    import threading

    def write():
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view[: 1 << 16]) :]
        os.close(fd)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_slow_daemon_pushes_back_and_nothing_is_lost(tmp_path):
    """A daemon that takes lines slowly makes ExaBGP wait: with a buffer of 1/40 of the output, no loss."""
    import threading

    path = str(tmp_path / "relay.sock")
    server = _serve(path)
    read_fd, write_fd = os.pipe()
    relay = Relay(path, buffer_bytes=64 << 10, stdin_fd=read_fd, stall_seconds=5.0, heartbeat=0)
    payload = b"".join(lines(40_000))  # ~2.6 MB through a 64 KiB buffer
    runner = threading.Thread(target=relay.run, kwargs={"idle_exit": 5.0}, daemon=True)
    runner.start()
    writer = _pipe_writer(write_fd, payload)
    conn, _ = server.accept()
    received = b""
    conn.settimeout(10)
    while True:
        time.sleep(0.002)  # the daemon is slow: a small read every 2 ms
        chunk = conn.recv(1 << 14)
        if not chunk:
            break
        received += chunk
    writer.join(10)
    runner.join(10)
    got = [orjson.loads(line) for line in received.splitlines()]
    assert got[0]["bgpwatch-relay"]["hello"] == 0
    control = [r["bgpwatch-relay"] for r in got if "bgpwatch-relay" in r]
    assert [r["n"] for r in got if "n" in r] == list(range(40_000))  # everything, in order
    assert not any("lost" in c for c in control) and relay.lost_total == 0
    assert control[-1]["bye"] == "ExaBGP closed the API pipe"
    assert relay.holds > 0 and relay.held_seconds > 0  # ExaBGP did wait for the daemon
    conn.close()
    server.close()


def test_a_stuck_daemon_never_holds_exabgp_past_the_stall_bound(tmp_path):
    """A daemon that connects and then takes nothing: after stall_seconds the relay reads (and drops) again."""
    import threading

    path = str(tmp_path / "relay.sock")
    server = _serve(path)
    read_fd, write_fd = os.pipe()
    relay = Relay(path, buffer_bytes=64 << 10, stdin_fd=read_fd, stall_seconds=0.3, heartbeat=0)
    runner = threading.Thread(target=relay.run, kwargs={"idle_exit": 0.5}, daemon=True)
    runner.start()
    conn, _ = server.accept()  # ... and never reads
    payload = b"".join(lines(100_000))  # ~6.5 MB: far more than the socket and the buffer hold
    writer = _pipe_writer(write_fd, payload)
    writer.join(20)
    assert not writer.is_alive()  # ExaBGP's writes all went through
    runner.join(20)
    assert relay.lost_total > 0  # what did not fit was dropped and counted, never waited for
    assert relay.holds >= 1
    conn.close()
    server.close()


def test_the_heartbeat_says_how_long_exabgp_was_made_to_wait(tmp_path):
    """bgpwatch_relay_backpressure_*: the relay's totals, the wait in progress included."""
    path = str(tmp_path / "relay.sock")
    server = _serve(path)
    now = [100.0]
    relay = Relay(path, stdin_fd=os.pipe()[0], clock=lambda: now[0], heartbeat=1.0)
    relay._connect()
    conn, _ = server.accept()
    relay._write_socket()  # the hello
    relay.holds, relay.held_seconds = 3, 2.5  # three waits so far, 2.5 s in all ...
    relay._note_hold(now[0], True)  # ... and a fourth one going on
    now[0] += 1.5
    relay._write_socket()  # quiet for a heartbeat's time: the heartbeat
    hello, alive = (r["bgpwatch-relay"] for r in _read_lines(conn, 2, timeout=2))
    assert hello["hello"] == 0
    assert alive["alive"] == 0 and alive["holds"] == 4 and alive["held"] == 4.0
    conn.close()
    server.close()
