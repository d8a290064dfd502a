"""An ExaBGP that exits at once is reported with its output, loudly, not restarted silently (issue 12, item 4).

A stand-in for ExaBGP (a shell script given as ``collector.exabgp_python``) prints what a relay
that cannot find its config prints, then exits 0, exactly like ExaBGP giving up on its API process.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpwatch.collector import supervisor
from bgpwatch.collector.exabgp_config import plan_workers
from bgpwatch.collector.supervisor import MAX_BACKOFF, MIN_BACKOFF, QUICK_EXITS_LOUD, Worker
from bgpwatch.config import load_config

ROOT = Path(__file__).resolve().parent.parent
RELAY_ERROR = "etc/bgpwatch.yaml: cannot read the file: No such file or directory"


def _config(tmp_path: Path, python: Path) -> Any:
    data = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    data["collector"].update(
        {"exabgp": "managed", "runtime_dir": str(tmp_path / "run"), "exabgp_python": str(python)}
    )
    data["sites"][0]["peers"][0]["md5_password"] = "Md5Secret42"
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def _worker(tmp_path: Path, statuses: list) -> Worker:
    fake = tmp_path / "fake-exabgp"
    fake.write_text(
        "#!/bin/sh\n"
        f"echo '{RELAY_ERROR}' >&2\n"
        "echo 'md5 in use: Md5Secret42'\n"
        "echo 'Too many death for bgpwatch-relay (5) terminating program'\n"
        "exit 0\n"
    )
    fake.chmod(0o755)
    config = _config(tmp_path, fake)
    redact = supervisor.Redactor(["Md5Secret42"])
    return Worker(config, plan_workers(config)[0], statuses.append, redact)


def test_quick_exits_are_reported_with_the_output_and_said_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervisor, "MIN_BACKOFF", 0.01)
    monkeypatch.setattr(supervisor, "MAX_BACKOFF", 0.05)
    statuses: list = []

    async def scenario() -> Worker:
        worker = _worker(tmp_path, statuses)
        worker.start()
        for _ in range(400):  # bounded: at most 20 s
            if worker.quick_exits >= QUICK_EXITS_LOUD + 1:
                break
            await asyncio.sleep(0.05)
        await worker.stop(timeout=5)
        return worker

    with caplog.at_level(logging.DEBUG, logger="bgpwatch.exabgp"):
        worker = asyncio.run(scenario())
    assert worker.quick_exits >= QUICK_EXITS_LOUD + 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    # The cause is visible at error level, with each exit, not only at debug level.
    assert any(RELAY_ERROR in m and "output before the exit" in m for m in errors), errors
    assert any("Too many death" in m for m in errors)
    loud = [m for m in errors if "times in a row" in m]
    assert len(loud) == 1, loud  # said once, not at every restart
    assert "Md5Secret42" not in "\n".join(r.getMessage() for r in caplog.records)
    assert "quick exits in a row" in worker.last_exit
    assert statuses and statuses[-1].up is False


def test_back_off_stays_at_its_maximum_after_quick_exits_until_a_run_lasts(tmp_path: Path) -> None:
    worker = _worker(tmp_path, [])
    backoff = MIN_BACKOFF
    seen = []
    for _ in range(QUICK_EXITS_LOUD + 2):
        backoff = worker._exited(0, 2.0, backoff)
        seen.append(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)  # as the restart loop doubles it
    assert seen[: QUICK_EXITS_LOUD - 1] == [1.0, 2.0]
    assert seen[QUICK_EXITS_LOUD - 1 :] == [MAX_BACKOFF] * 3
    # A run that lasted resets both the count and the back-off.
    assert worker._exited(1, supervisor.STABLE_AFTER + 1, MAX_BACKOFF) == MIN_BACKOFF
    assert worker.quick_exits == 0
