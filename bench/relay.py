"""The relay's own cost: CPU seconds per 1M lines forwarded from a pipe to a unix socket.

A feeder process writes ExaBGP-like lines into the relay's stdin the way ExaBGP 5 does (one
``write`` per line, paced at ``--rate`` lines/s); a reader on a real unix socket plays the daemon
(``recv`` of 256 KiB as the daemon's ``READ_CHUNK``; with ``--reader-us`` it also spends that many
microseconds per line received, asleep, so it falls behind the feed as the daemon does during a
table load).  The relay runs as ExaBGP runs it, in its own process; its CPU is taken from the
kernel (``wait4``) minus what it had used when its hello arrived (start-up).  ``--baseline REV``
also runs the relay as committed at REV (``git show REV:bgpwatch/collector/relay.py``),
interleaved with the current one, so before and after are measured in one run.

    .venv/bin/python -m bench.relay --lines 1000000 --rate 40000 --baseline HEAD
    .venv/bin/python -m bench.relay --lines 1000000 --rate 40000 --reader-us 30 --baseline HEAD
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
TARGET_CPU_PER_MILLION = 1.0


def make_line(counter: int, prefixes: int = 4) -> bytes:
    """One ExaBGP 5.0 UPDATE line (spaced JSON) announcing `prefixes` IPv6 /56s, ~200 + 60 B per prefix."""
    nlri = ", ".join(f'{{ "nlri": "2001:db8:{counter & 0xFFFF:x}:{k:x}00::/56" }}' for k in range(prefixes))
    stamp = f"{1.7e9 + counter / 1e4:.4f}"
    return (
        f'{{ "exabgp": "5.0.0", "time": {stamp}, "host" : "collector", "pid" : 4242, "ppid" : 4241, '
        f'"counter": {counter}, "type": "update", "neighbor": {{ "address": {{ "local": "192.0.2.1", '
        '"peer": "192.0.2.2" }, "asn": { "local": 65000, "peer": 65001 }, "direction": "receive", '
        '"message": { "update": { "attribute": { "origin": "igp", "as-path": {"0": {"element": '
        f'"as-sequence", "value": [65001]}}}}, "large-community": [ [ 65001, 1, {counter} ] ] }}, '
        f'"announce": {{ "ipv6 unicast": {{ "2001:db8:ff:1::2": [ {nlri} ] }} }} }} }} }} }}\n'
    ).encode()


def feed(count: int, rate: float, prefixes: int, fd: int = 1) -> None:
    """Write `count` lines to `fd`, one write per line, at `rate` lines/s (0: as fast as possible)."""
    lines = [make_line(i, prefixes) for i in range(min(count, 4096))]
    write = os.write
    started = time.monotonic()
    sent = 0
    while sent < count:
        if rate:
            due = min(count, int((time.monotonic() - started) * rate) + 1)
            if due <= sent:
                time.sleep(0.0005)
                continue
        else:
            due = min(count, sent + 4096)
        for i in range(sent, due):
            write(fd, lines[i % len(lines)])
        sent = due
    os.close(fd)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _proc_counts(pid: int) -> dict[str, int]:
    counts = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, value = line.split(":")
        if key in ("syscr", "syscw"):
            counts[key] = int(value)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
            key, value = line.split(":")
            counts[key] = int(value)
    return counts


class Reader(threading.Thread):
    """The daemon's end: accept one relay, receive until it closes, count lines."""

    def __init__(self, path: str, reader_us: float) -> None:
        super().__init__(daemon=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.server.settimeout(30)
        self.reader_us = reader_us
        self.hello = threading.Event()
        self.lines = 0
        self.control = 0
        self.bytes = 0
        self.recvs = 0
        self.last = b""

    def run(self) -> None:
        conn, _ = self.server.accept()
        buffer = b""
        with conn:
            while True:
                data = conn.recv(1 << 18)
                if not data:
                    break
                self.recvs += 1
                self.bytes += len(data)
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.startswith(b'{"bgpwatch-relay"'):
                        self.control += 1
                        self.hello.set()
                    else:
                        self.lines += 1
                        self.last = line
                if self.reader_us and lines:
                    time.sleep(len(lines) * self.reader_us / 1e6)
        self.server.close()


def _relay_command(socket_path: str, module_dir: str | None, buffer_bytes: int) -> list[str]:
    if module_dir is None:
        code = "import sys; from bgpwatch.collector.relay import main; "
    else:
        code = f"import sys; sys.path.insert(0, {module_dir!r}); from relay_baseline import main; "
    return [sys.executable, "-c", code + f"sys.exit(main({socket_path!r}, 0, {buffer_bytes}))"]


def run_once(
    lines: int, rate: float, prefixes: int, reader_us: float, module_dir: str | None, buffer_bytes: int
) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        path = str(Path(tmp) / "relay.sock")
        reader = Reader(path, reader_us)
        reader.start()
        read_fd, write_fd = os.pipe()
        relay = subprocess.Popen(
            _relay_command(path, module_dir, buffer_bytes),
            stdin=read_fd,
            stdout=subprocess.DEVNULL,
            cwd=str(ROOT),
        )
        os.close(read_fd)
        if not reader.hello.wait(30):
            relay.kill()
            raise RuntimeError("the relay never connected")
        cpu_start = _cpu(relay.pid)
        counts_start = _proc_counts(relay.pid)
        feeder = subprocess.Popen(
            [sys.executable, "-m", "bench.relay", "--feed", str(lines), "--rate", str(rate)]
            + ["--prefixes", str(prefixes)],
            stdout=write_fd,
            cwd=str(ROOT),
        )
        os.close(write_fd)
        started = time.monotonic()
        feeder.wait()
        fed = time.monotonic()
        # the relay's counters, read just before it can exit (it has EOF once the feeder is gone)
        counts_end = counts_start
        # poll without reaping (WNOWAIT), so that wait4 still has the relay's resource usage
        while os.waitid(os.P_PID, relay.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            try:
                counts_end = _proc_counts(relay.pid)
            except OSError:
                break
            time.sleep(0.01)
        _, status, usage = os.wait4(relay.pid, 0)
        relay.returncode = os.waitstatus_to_exitcode(status)
        reader.join(30)
        done = time.monotonic()
    if relay.returncode != 0:
        raise RuntimeError(f"the relay exited with {relay.returncode}")
    cpu_total = usage.ru_utime + usage.ru_stime
    cpu = cpu_total - cpu_start
    per_k = 1000 / max(lines, 1)
    return {
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_million_lines": round(cpu * 1e6 / lines, 3),
        "startup_cpu_seconds": round(cpu_start, 3),
        "user_seconds": round(usage.ru_utime, 3),
        "system_seconds": round(usage.ru_stime, 3),
        "feed_seconds": round(fed - started, 2),
        "drain_seconds_after_feed": round(done - fed, 2),
        "lines_received": reader.lines,
        "control_lines": reader.control,
        "complete": reader.lines == lines and reader.last + b"\n" == make_line((lines - 1) % 4096, prefixes),
        # sampled up to ~10 ms before the relay exits: close to, not exactly, the whole run
        "reads_per_1k_lines": round((counts_end.get("syscr", 0) - counts_start.get("syscr", 0)) * per_k, 1),
        "wakeups_per_1k_lines": round(
            (counts_end.get("voluntary_ctxt_switches", 0) - counts_start.get("voluntary_ctxt_switches", 0))
            * per_k,
            1,
        ),
        "reader_recvs_per_1k_lines": round(reader.recvs * per_k, 1),
    }


def _baseline_dir(rev: str, tmp: str) -> str:
    source = subprocess.run(
        ["git", "show", f"{rev}:bgpwatch/collector/relay.py"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    Path(tmp, "relay_baseline.py").write_bytes(source)
    return tmp


def run(
    lines: int = 1_000_000,
    rate: float = 40_000,
    prefixes: int = 4,
    reader_us: float = 0.0,
    baseline: str | None = None,
    repeat: int = 1,
    buffer_bytes: int = 256 << 20,
) -> dict:
    """Run the current relay (and the baseline), interleaved, `repeat` times; keep the least CPU of each."""
    results: dict[str, list[dict]] = {"current": []}
    with tempfile.TemporaryDirectory(prefix="bench-relay-base-") as tmp:
        base_dir = _baseline_dir(baseline, tmp) if baseline else None
        if base_dir:
            results["baseline"] = []
        for _ in range(repeat):
            for name in results:
                module_dir = base_dir if name == "baseline" else None
                results[name].append(run_once(lines, rate, prefixes, reader_us, module_dir, buffer_bytes))
    best = {name: min(runs, key=lambda r: r["cpu_seconds"]) for name, runs in results.items()}
    out = {
        "benchmark": "relay",
        "lines": lines,
        "line_bytes": len(make_line(lines - 1, prefixes)),
        "rate_lines_per_second": rate,
        "reader_us_per_line": reader_us,
        "repeat": repeat,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "current": best["current"],
        "target_cpu_seconds_per_million": TARGET_CPU_PER_MILLION,
        "target_met": best["current"]["cpu_seconds_per_million_lines"] <= TARGET_CPU_PER_MILLION,
        "all_cpu_seconds": {name: [r["cpu_seconds"] for r in runs] for name, runs in results.items()},
    }
    if "baseline" in best:
        out["baseline_rev"] = baseline
        out["baseline"] = best["baseline"]
        out["baseline_over_current"] = round(
            best["baseline"]["cpu_seconds"] / max(best["current"]["cpu_seconds"], 1e-3), 2
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=40_000, help="lines/s the feeder writes (0: flat out)")
    parser.add_argument("--prefixes", type=int, default=4, help="prefixes per line (sets the line size)")
    parser.add_argument("--reader-us", type=float, default=0.0, help="reader's time per line (a slow daemon)")
    parser.add_argument("--baseline", default=None, help="also run the relay as committed at this git rev")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--feed", type=int, default=None, help=argparse.SUPPRESS)  # the feeder process
    args = parser.parse_args()
    if args.feed is not None:
        feed(args.feed, args.rate, args.prefixes)
        return 0
    print(json.dumps(run(args.lines, args.rate, args.prefixes, args.reader_us, args.baseline, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
