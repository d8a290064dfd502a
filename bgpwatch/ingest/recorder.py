"""Record the raw input stream (ExaBGP JSON lines) so that any incident can be replayed.

Files are gzip streams named ``exabgp-<UTC start>.jsonl.gz`` in the recording directory,
rotated by size and pruned to the newest ``keep``.  Level 1 compression keeps the cost
low on the hot path (~10:1 on ExaBGP JSON).  A crash leaves a truncated last member,
which `bgpwatch replay` reads up to the cut.
"""

from __future__ import annotations

import gzip
import logging
import time
from pathlib import Path

log = logging.getLogger("bgpwatch.recorder")


class Recorder:
    """Append lines to rotating gzip files."""

    def __init__(self, directory: Path | str, rotate_bytes: int = 64 << 20, keep: int = 48) -> None:
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self.keep = keep
        self._file: gzip.GzipFile | None = None
        self._written = 0
        self.path: Path | None = None
        self.failed = False

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
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.directory / f"exabgp-{stamp}.jsonl.gz"
        serial = 1
        while path.exists():
            serial += 1
            path = self.directory / f"exabgp-{stamp}-{serial}.jsonl.gz"
        self.path = path
        self._file = gzip.GzipFile(path, "wb", compresslevel=1)
        self._written = 0
        self._prune()

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
