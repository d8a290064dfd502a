"""Record the raw input stream (ExaBGP JSON lines) so that any incident can be replayed.

Files are gzip streams named ``exabgp-<UTC start>.jsonl.gz`` in the recording directory,
rotated by size and pruned to the newest ``keep``.  Level 1 compression keeps the cost
low on the hot path (~10:1 on ExaBGP JSON).  A crash leaves a truncated last member,
which `bgpwatch replay` reads up to the cut.

The recordings hold everything the routers said: files are created 0600 and a directory the
recorder creates 0700, whatever the umask (an existing directory keeps its mode: it may be shared).
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("bgpwatch.recorder")

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


class Recorder:
    """Append lines to rotating gzip files."""

    def __init__(self, directory: Path | str, rotate_bytes: int = 64 << 20, keep: int = 48) -> None:
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self._file: gzip.GzipFile | None = None
        self._raw: BinaryIO | None = None  # GzipFile does not close a file object it was given
        self._written = 0
        self.path: Path | None = None
        self.failed = False
        # State lines a replay of one file alone needs (e.g. the RPKI data in use): each provider
        # is asked at every new file and its line, if any, opens the file.
        self.headers: list[Callable[[], bytes | None]] = []

    def write(self, line: bytes) -> None:
        """Record one line (without its newline); a failing disk disables recording, never ingest."""
        if self.failed:
            return
        try:
            if self._file is None or self._written >= self.rotate_bytes:
                self._rotate()
            assert self._file is not None
            self._file.write(line)
            self._file.write(b"\n")
            self._written += len(line) + 1
        except OSError as exc:
            self.failed = True
            log.error("recording disabled: cannot write %s: %s", self.path, exc)

    def _rotate(self) -> None:
        self.close()
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
            os.chmod(self.directory, DIRECTORY_MODE)  # mkdir's mode passes through the umask
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.directory / f"exabgp-{stamp}.jsonl.gz"
        serial = 1
        while path.exists():
            serial += 1
            path = self.directory / f"exabgp-{stamp}-{serial}.jsonl.gz"
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        self._raw = os.fdopen(fd, "wb")
        self._file = gzip.GzipFile(str(path), "wb", compresslevel=1, fileobj=self._raw)
        self._written = 0
        self._prune()
        for header in self.headers:
            line = header()
            if line:
                self._file.write(line + b"\n")
                self._written += len(line) + 1

    def _prune(self) -> None:
        files = sorted(self.directory.glob("exabgp-*.jsonl.gz"), key=lambda p: p.stat().st_mtime)
        for old in files[: max(0, len(files) - self.keep)]:
            old.unlink(missing_ok=True)

    def flush(self) -> None:
        if self._file is not None and not self.failed:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.error("cannot close recording %s: %s", self.path, exc)
            self._file = None
        if self._raw is not None:
            try:
                self._raw.close()
            except OSError as exc:
                log.error("cannot close recording %s: %s", self.path, exc)
            self._raw = None
