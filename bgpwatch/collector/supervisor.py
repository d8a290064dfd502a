"""Supervise the ExaBGP children: start, watch, restart with back-off, stop cleanly.

ExaBGP's output (its log and the stderr of its API process, ``bgpwatch relay``) is logged at debug
level, lines that look like errors at warning.  When ExaBGP exits, its last lines are logged at
error level with the exit; when it exits within QUICK_EXIT seconds of starting QUICK_EXITS_LOUD
times in a row (a relay that cannot start makes ExaBGP give up after 5 respawns), that is said once,
loudly, and the back-off stays at its maximum until a run lasts: restarting faster fixes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bgpwatch.collector.exabgp_config import WorkerPlan, plan_workers, worker_environment, write_worker_config
from bgpwatch.events import CollectorStatus

if TYPE_CHECKING:
    from bgpwatch.config import Config

log = logging.getLogger("bgpwatch.exabgp")

MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
STABLE_AFTER = 60.0  # a child that ran this long gets the minimum back-off again
QUICK_EXIT = 30.0  # a child that exits sooner did not really start
QUICK_EXITS_LOUD = 3
TAIL_LINES = 10  # lines of ExaBGP's output kept to explain an exit
_ERROR_LINE = re.compile(r"(?i)\b(error|critical|traceback|cannot|too many death)")


class Redactor:
    """Replace configured secrets in text before it is logged."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text


PYPY_VENV = "exabgp-pypy"  # a PyPy virtualenv inside bgpwatch's own, made by .ci/setup when pypy3 exists


def exabgp_interpreter(config: Config) -> tuple[str, str]:
    """Return the interpreter to run ExaBGP with, and why.

    ExaBGP is pure Python and single-threaded; under PyPy it ran 3.6-4.1x faster in the lab
    (NOTES, "Acceleration levers"), so a PyPy with ExaBGP installed is preferred.
    """
    if config.collector.exabgp_python:
        return config.collector.exabgp_python, "collector.exabgp_python"
    pypy = Path(sys.prefix) / PYPY_VENV / "bin" / "python"
    if pypy.is_file() and os.access(pypy, os.X_OK):
        return str(pypy), f"PyPy found in {pypy.parent.parent}"
    return sys.executable, f"CPython fallback: no PyPy ExaBGP at {pypy.parent.parent}"


def exabgp_argv(config: Config, plan: WorkerPlan) -> list[str]:
    """Return the command line of an ExaBGP child (5.x: ``exabgp server FILE``)."""
    python, _why = exabgp_interpreter(config)
    return [python, "-m", "exabgp", "server", str(plan.config_path)]


class Worker:
    """One ExaBGP child process and its restart loop."""

    def __init__(
        self,
        config: Config,
        plan: WorkerPlan,
        on_status: Callable[[CollectorStatus], None],
        redact: Redactor,
    ) -> None:
        self.config = config
        self.plan = plan
        self.on_status = on_status
        self.redact = redact
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.started_at = 0.0
        self.last_exit: str = ""
        self.quick_exits = 0  # in a row
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.up and self.process else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"exabgp-{self.plan.index}")

    async def _spawn(self) -> asyncio.subprocess.Process:
        write_worker_config(self.config, self.plan)
        argv = exabgp_argv(self.config, self.plan)
        env = worker_environment(self.config, self.plan)
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,  # our SIGTERM handling decides when ExaBGP stops
        )

    async def _run(self) -> None:
        backoff = MIN_BACKOFF
        while not self._stopping.is_set():
            try:
                self.process = await self._spawn()
            except OSError as exc:
                self.last_exit = f"cannot start ExaBGP: {exc}"
                log.error("worker %d: %s", self.plan.index, self.last_exit)
                self.on_status(CollectorStatus(time.time(), self.plan.index, False, self.last_exit))
            else:
                self.started_at = time.monotonic()
                log.info(
                    "worker %d: ExaBGP started (pid %d, peers %s)",
                    self.plan.index,
                    self.process.pid,
                    ", ".join(p.name for p in self.plan.peers),
                )
                self.on_status(CollectorStatus(time.time(), self.plan.index, True, "started"))
                self.tail.clear()
                await self._pump_output(self.process)
                code = await self.process.wait()
                if self._stopping.is_set():
                    break
                backoff = self._exited(code, time.monotonic() - self.started_at, backoff)
            self.restarts += 1
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _exited(self, code: int | None, ran: float, backoff: float) -> float:
        """Report an exit of ExaBGP with its last output; return the back-off before the next start."""
        self.quick_exits = self.quick_exits + 1 if ran < QUICK_EXIT else 0
        if ran > STABLE_AFTER:
            backoff = MIN_BACKOFF
        if self.quick_exits >= QUICK_EXITS_LOUD:
            backoff = MAX_BACKOFF
        self.last_exit = f"ExaBGP exited with code {code} after {ran:.1f} s"
        if self.quick_exits > 1:
            self.last_exit += f" ({self.quick_exits} quick exits in a row)"
        log.error("worker %d: %s; restarting in %.0f s", self.plan.index, self.last_exit, backoff)
        for line in self.tail:
            log.error("worker %d: ExaBGP output before the exit: %s", self.plan.index, line)
        if self.quick_exits == QUICK_EXITS_LOUD:
            log.error(
                "worker %d: ExaBGP exits within %.0f s of starting, %d times in a row: restarting will not "
                "fix it (its output above says why, e.g. a relay that cannot start); retrying every %.0f s",
                self.plan.index,
                QUICK_EXIT,
                self.quick_exits,
                MAX_BACKOFF,
            )
        self.on_status(CollectorStatus(time.time(), self.plan.index, False, self.last_exit))
        return backoff

    async def _pump_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # a line over the stream limit: drop it, keep reading
                continue
            if not line:
                return
            text = self.redact(line.decode("utf-8", "replace").rstrip())
            if not text:
                continue
            self.tail.append(text[:500])
            if _ERROR_LINE.search(text):
                log.warning("worker %d: %s", self.plan.index, text)
            else:
                log.debug("worker %d: %s", self.plan.index, text)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop ExaBGP: SIGTERM (it sends Cease to its peers), SIGKILL after `timeout`."""
        self._stopping.set()
        process = self.process
        if process is not None and process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                log.warning(
                    "worker %d: ExaBGP ignored SIGTERM for %.0f s, killing it", self.plan.index, timeout
                )
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await process.wait()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class Supervisor:
    """All ExaBGP workers of one configuration."""

    def __init__(self, config: Config, on_status: Callable[[CollectorStatus], None]) -> None:
        self.config = config
        self.on_status = on_status
        secrets = [p.md5_password.get_secret_value() for p in config.peers if p.md5_password is not None]
        self.redact = Redactor(secrets)
        self.workers = [Worker(config, plan, on_status, self.redact) for plan in plan_workers(config)]
        self.interpreter, why = exabgp_interpreter(config)
        log.info("ExaBGP runs under %s (%s), %d worker(s)", self.interpreter, why, len(self.workers))

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def peers_by_worker(self) -> dict[int, set[str]]:
        """Return the peer addresses each ExaBGP worker holds."""
        return {w.plan.index: {p.address for p in w.plan.peers} for w in self.workers}

    async def stop(self) -> None:
        await asyncio.gather(*(worker.stop() for worker in self.workers))

    def describe(self) -> list[dict]:
        """Return the workers' state for the status API."""
        return [
            {
                "worker": w.plan.index,
                "up": w.up,
                "pid": w.pid,
                "restarts": w.restarts,
                "peers": [p.name for p in w.plan.peers],
                "last_exit": w.last_exit,
                "python": self.interpreter,
            }
            for w in self.workers
        ]

    @property
    def interpreter_name(self) -> str:
        return "pypy" if "pypy" in self.interpreter.lower() else "cpython"
