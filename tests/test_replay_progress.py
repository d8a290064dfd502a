"""The replay progress line: measured on compressed bytes, drawn only on a terminal (checked with a pty)."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgpwatch.ingest.replay import ReplayStats, replay_files
from bgpwatch.playback import ReplayProgress
from bgpwatch.rib.attributes import AttributePool

ROOT = Path(__file__).resolve().parent.parent
MRT = ROOT / "fixtures" / "mrt"
CONFIG = ROOT / "bgpwatch" / "data" / "paris.yaml"
SMALL = MRT / "libbgpstream" / "ris.rrc06.updates.1427846400.gz"
BZIP2 = MRT / "bgpkit-parser" / "examples-local_only" / "updates.bz2"
LARGER = MRT / "dfz_name_and_shame" / "rrc23.updates.20220421.0200.gz"  # 617 KiB, ~10 chunks of 64 KiB
PERCENT = re.compile(rb"(\d+\.\d)%")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("path", [SMALL, BZIP2, MRT / "mrtparse" / "quagga_bgp"])
def test_input_bytes_is_the_stored_size_once_read(path: Path) -> None:
    stats = ReplayStats()
    list(replay_files([path], AttributePool(), stats))
    assert stats.input_bytes == path.stat().st_size
    assert stats.errors == {}


def test_update_is_throttled_and_clear_erases_the_line() -> None:
    out, clock, stats = io.StringIO(), Clock(), ReplayStats()
    progress = ReplayProgress(out, interval=1.0, clock=clock)
    size = SMALL.stat().st_size
    progress.start_file(SMALL, 1, 2, stats)  # drawn at once
    assert out.getvalue().endswith(
        f"[1/2] {SMALL.name} [--------------------]   0.0%  0 B/10.8 KiB  0 events"
    )
    stats.input_bytes = size // 2
    progress.update(stats)  # within the interval: nothing
    assert progress.draws == 1
    clock.now += 1.0
    progress.update(stats)
    assert progress.draws == 2
    assert "  50.0%  5.4 KiB/10.8 KiB" in out.getvalue()
    stats.input_bytes = size
    progress.update(stats, force=True)
    assert (
        out.getvalue()
        .rsplit("\r\x1b[K", 1)[1]
        .startswith(f"[1/2] {SMALL.name} [####################] 100.0%")
    )
    progress.clear()
    assert out.getvalue().endswith("\r\x1b[K")
    written = len(out.getvalue())
    progress.clear()  # nothing shown: nothing written
    assert len(out.getvalue()) == written


def test_wrap_reads_like_replay_files_and_shows_each_file_to_100_percent() -> None:
    out, stats = io.StringIO(), ReplayStats()
    progress = ReplayProgress(out, interval=0.0)
    events = list(progress.wrap([SMALL, LARGER])(AttributePool(), stats))
    plain = ReplayStats()
    assert len(events) == len(list(replay_files([SMALL, LARGER], AttributePool(), plain)))
    assert (stats.announcements, stats.withdrawals, stats.files) == (
        plain.announcements,
        plain.withdrawals,
        2,
    )
    text = out.getvalue()
    assert text.endswith("\r\x1b[K")  # erased at the end
    larger = [float(p) for p in PERCENT.findall(text.split("[2/2]", 1)[1].encode())]
    assert larger[0] == 0.0 and larger[-1] == 100.0
    assert larger == sorted(larger) and len(set(larger)) >= 5  # it moves with the compressed bytes read
    assert f"[1/2] {SMALL.name}" in text and " 100.0%" in text.split("[2/2]", 1)[0]


def _run_on_pty(*args: str, timeout: float = 60.0) -> tuple[bytes, bytes, int]:
    """Run `bgpwatch replay` with stderr on a pseudo-terminal; return (terminal output, stdout, exit code)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bgpwatch", "replay", "--config", str(CONFIG), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=ROOT,
    )
    os.close(slave)
    deadline = time.monotonic() + timeout
    chunks = []
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        stdout, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return b"".join(chunks), stdout, proc.returncode


def test_progress_is_drawn_on_a_terminal() -> None:
    terminal, stdout, code = _run_on_pty(str(SMALL), str(BZIP2), "--stats")
    assert code == 0, terminal[-500:]
    assert f"[1/2] {SMALL.name} ".encode() in terminal
    assert f"[2/2] {BZIP2.name} ".encode() in terminal
    percents = [float(p) for p in PERCENT.findall(terminal)]
    assert 0.0 in percents and percents.count(100.0) >= 2
    # The line is erased before the stats are printed, and nothing of it reaches stdout.
    before, after = terminal.rsplit(b"\r\x1b[K", 1)
    assert after.lstrip().startswith(b'{"files": 2')
    assert b"\x1b[K" not in stdout and b"%" not in stdout


def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bgpwatch", "replay", "--config", str(CONFIG), str(SMALL), "--stats"],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0
    assert b"\r" not in proc.stderr and b"\x1b" not in proc.stderr
    assert proc.stderr.startswith(b'{"files": 1')


def test_no_progress_option_on_a_terminal() -> None:
    terminal, _, code = _run_on_pty(str(SMALL), "--no-progress", "--stats")
    assert code == 0
    assert b"\x1b[K" not in terminal and b"[1/1]" not in terminal
