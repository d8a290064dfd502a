"""A real Debian prometheus-alertmanager for tests: started on a loopback port, stopped afterwards.

`running_alertmanager` starts it with a null receiver, no clustering and its storage in a
temporary directory.  ``popen`` lets a caller start it elsewhere (e.g. a lab's collector network
namespace through `Lab.collector_exec`), and ``probe`` how readiness is checked from there.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
AMTOOL = "/usr/bin/amtool"
MISSING = f"{ALERTMANAGER} not installed (Debian package prometheus-alertmanager)"

CONFIG = """\
route:
  receiver: "null"
  group_by: [alertname, incident]
  group_wait: 0s
receivers:
  - name: "null"
"""


def available() -> bool:
    """Tell whether the Alertmanager binary is installed."""
    return Path(ALERTMANAGER).exists()


def http_ready(url: str) -> bool:
    """Return whether Alertmanager at `url` answers /-/ready with 200."""
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_alertmanager(
    work: Path,
    listen: str,
    *,
    popen: Callable[..., subprocess.Popen[Any]] = subprocess.Popen,
    probe: Callable[[str], bool] = http_ready,
    timeout: float = 15.0,
) -> Iterator[str]:
    """Run Alertmanager listening on `listen` (host:port); yield its base URL."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "am.yml").write_text(CONFIG)
    url = f"http://{listen}"
    log_path = work / "am.log"
    with log_path.open("wb") as log:
        proc = popen(
            [
                ALERTMANAGER,
                f"--config.file={work / 'am.yml'}",
                f"--web.listen-address={listen}",
                "--cluster.listen-address=",
                f"--storage.path={work / 'data'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while not probe(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("alertmanager did not start: " + log_path.read_text()[-2000:])
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def query(url: str, path: str = "/api/v2/alerts", **filters: str) -> list[dict]:
    """GET an Alertmanager API v2 list, with label-equality filters."""
    params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=5) as resp:
        return json.loads(resp.read())
