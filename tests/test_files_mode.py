"""Files bgpwatch creates are owner-only whatever the umask (issue 12, item 5).

The alert store holds the alert history and delivery bookkeeping, the recordings everything the
routers said: 0600 files (SQLite's -wal and -shm included) and a 0700 recording directory.
"""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgpwatch.alerts.store import Store
from bgpwatch.ingest.recorder import Recorder


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o000, 0o277], ids=lambda m: f"umask-{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _transition(n: int) -> dict:
    return {
        "kind": "session_down",
        "state": "firing",
        "severity": "warning",
        "at": f"2026-12-02T03:00:{n:02d}.000Z",
        "labels": {"peer": f"p{n}", "site": "par1"},
        "summary": "test",
        "evidence": {},
    }


def test_store_and_its_wal_and_shm_are_0600(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "state" / "bgpwatch.db"
    store = Store(path)
    try:
        assert store.journal_mode == "wal"
        store.record(_transition(1))
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists() and shm.exists()  # the connection is open: WAL mode keeps both
        assert {p.name: mode(p) for p in (path, wal, shm)} == {
            "bgpwatch.db": 0o600,
            "bgpwatch.db-wal": 0o600,
            "bgpwatch.db-shm": 0o600,
        }
    finally:
        store.close()


def test_an_old_world_readable_store_loses_its_world_bits(tmp_path: Path) -> None:
    path = tmp_path / "bgpwatch.db"
    Store(path).close()
    os.chmod(path, 0o644)  # as an older bgpwatch left it under umask 022
    store = Store(path)
    try:
        store.record(_transition(2))
        assert mode(path) == 0o640
        assert mode(Path(f"{path}-wal")) & 0o007 == 0
    finally:
        store.close()


def test_recordings_are_0600_in_a_0700_directory(tmp_path: Path, umask: int) -> None:
    directory = tmp_path / "recording" / "exabgp"
    recorder = Recorder(directory, rotate_bytes=200, keep=10)
    lines = [b'{"type": "state", "n": %d}' % n for n in range(40)]
    for line in lines:
        recorder.write(line)
    recorder.close()
    files = sorted(directory.glob("exabgp-*.jsonl.gz"))
    assert len(files) > 1  # rotation made several files: each one was created 0600
    assert not recorder.failed
    assert mode(directory) == 0o700
    assert {mode(p) for p in files} == {0o600}
    # The files are still the gzip streams replay reads, with every line.
    read = b"".join(
        gzip.decompress(p.read_bytes()) for p in sorted(files, key=lambda p: p.stat().st_mtime_ns)
    )
    assert sorted(read.splitlines()) == sorted(lines)


def test_an_existing_recording_directory_keeps_its_mode(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, 0o755)  # the operator's choice (it may be shared): not changed
    recorder = Recorder(directory)
    recorder.write(b"{}")
    recorder.close()
    assert mode(directory) == 0o755
    assert {mode(p) for p in directory.glob("*.gz")} == {0o600}
