"""Run the real `bgpwatch run` inside a lab's collector namespace and talk to it through the CLI."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .netlab import Lab

BGPWATCH = [sys.executable, "-m", "bgpwatch"]

# One URL per input line, one JSON line out ({"status": code, "body": text}): a CLI call costs a
# Python start-up per query, this costs one per daemon.
_FETCHER = """
import json, sys, urllib.error, urllib.request
for line in sys.stdin:
    try:
        with urllib.request.urlopen(line.strip(), timeout=30) as answer:
            out = {"status": answer.status, "body": answer.read().decode()}
    except urllib.error.HTTPError as exc:
        out = {"status": exc.code, "body": exc.read().decode(errors="replace")}
    except OSError as exc:
        out = {"status": 0, "body": str(exc)}
    print(json.dumps(out), flush=True)
"""


class LabDaemon:
    """A `bgpwatch run` process in the collector namespace of `lab`, with its log in `tmpdir`.

    ``source``: a directory holding another bgpwatch/ package to run instead of the working tree's
    (default: $BGPWATCH_LAB_SOURCE, e.g. a `git archive` of a commit while the tree is mid-edit).
    """

    def __init__(
        self, lab: Lab, tmpdir: Path, *, source: Path | str | None = None, **config_overrides: Any
    ) -> None:
        self.lab = lab
        source = source or os.environ.get("BGPWATCH_LAB_SOURCE") or None
        # `python -m` puts the working directory first on sys.path: run there to pick that package.
        self.cwd = str(Path(source).resolve()) if source else None
        self.tmpdir = Path(tmpdir)
        self.config = lab.bgpwatch_config(self.tmpdir, **config_overrides)
        self.log_path = self.tmpdir / "bgpwatch.log"
        self.process: subprocess.Popen | None = None
        self._fetcher: subprocess.Popen | None = None

    def start(self, log_level: str = "debug") -> LabDaemon:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = self.lab.collector_exec(
            [*BGPWATCH, "run", "--config", str(self.config), "--log-level", log_level],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
        )
        self.wait_for(lambda: self.try_cli("status") is not None, 30, "the daemon's API to answer")
        return self

    def stop(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cli(self, *args: str, json_output: bool = True, check: bool = True) -> Any:
        argv = [*BGPWATCH, *args, "--config", str(self.config)]
        if json_output:
            argv.append("--json")
        proc = self.lab.collector_exec(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.cwd)
        out, err = proc.communicate(timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError(f"bgpwatch {' '.join(args)} exited {proc.returncode}: {err.decode()}")
        if not json_output:
            return proc.returncode, out.decode(), err.decode()
        return json.loads(out) if proc.returncode == 0 else None

    def get(self, path: str, **params: str) -> Any:
        """GET an API path (e.g. /api/v1/peers) from inside the collector namespace; parsed JSON, None on error."""
        import urllib.parse

        if self._fetcher is None or self._fetcher.poll() is not None:
            self._fetcher = self.lab.collector_exec(
                [sys.executable, "-u", "-c", _FETCHER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        assert self._fetcher.stdin is not None and self._fetcher.stdout is not None
        self._fetcher.stdin.write(f"http://{self.api}{path}{query}\n")
        self._fetcher.stdin.flush()
        answer = json.loads(self._fetcher.stdout.readline() or '{"status": 0, "body": ""}')
        return json.loads(answer["body"]) if answer["status"] == 200 else None

    def try_cli(self, *args: str) -> Any:
        return self.cli(*args, check=False)

    def peers(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.cli("peers")}

    def routes(self, **filters: str) -> list[dict]:
        args = ["prefixes", "--limit", "100000"]
        for key, value in filters.items():
            args += [f"--{key}", value]
        return self.cli(*args)

    @property
    def api(self) -> str:
        """Return the API's HOST:PORT (inside the collector namespace)."""
        import yaml

        return yaml.safe_load(self.config.read_text())["api"]["listen"]

    def metrics(self) -> str:
        """Return the text of /metrics, fetched from inside the collector namespace."""
        fetch = f"import urllib.request as u; print(u.urlopen('http://{self.api}/metrics').read().decode())"
        proc = self.lab.collector_exec([sys.executable, "-c", fetch], stdout=subprocess.PIPE)
        return proc.communicate(timeout=30)[0].decode()

    def save_recording(self, name: str, transitions: Any) -> Path | None:
        """With BGPWATCH_SAVE_FIXTURES=DIR: save the input recording, the transitions and the config there."""
        save = os.environ.get("BGPWATCH_SAVE_FIXTURES")
        if not save:
            return None
        out = Path(save)
        out.mkdir(parents=True, exist_ok=True)
        with gzip.open(out / f"{name}.jsonl.gz", "wb") as sink:
            for part in sorted((self.tmpdir / "recording").glob("exabgp-*.jsonl.gz")):
                with gzip.open(part, "rb") as source:
                    shutil.copyfileobj(source, sink)
        (out / f"{name}.transitions.json").write_text(json.dumps(transitions, indent=1))
        shutil.copy(self.config, out / f"{name}.config.yaml")
        return out

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"bgpwatch exited ({self.process.returncode}) waiting for {what}:\n{self.log()[-3000:]}"
                )
            result = predicate()
            if result:
                return result
            time.sleep(0.2)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}\n--- log tail ---\n{self.log()[-3000:]}"
        )
