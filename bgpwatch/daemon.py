"""`bgpwatch run`: the long-running daemon, one asyncio loop.

Inputs: ExaBGP's JSON lines arriving from `bgpwatch relay` over a unix socket (one
connection per ExaBGP worker).  The hot path (parse, RIB, sessions, detectors) runs
synchronously per line; sockets, HTTP and alert delivery are async.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import Histogram

from bgpwatch import __version__
from bgpwatch.alerts.sinks import SinkMetrics, SinkSet, build_sinks
from bgpwatch.alerts.store import Store, StoreError
from bgpwatch.api.metrics import BmpCollector, DaemonCollector, build_registry
from bgpwatch.api.server import ApiServer, build_app
from bgpwatch.collector.relay_links import RelayLinks
from bgpwatch.collector.supervisor import Supervisor
from bgpwatch.config import Config, ConfigError, load_config
from bgpwatch.events import CollectorStatus
from bgpwatch.ingest.control import RELAY_TAG, collector_control_line
from bgpwatch.ingest.recorder import Recorder
from bgpwatch.ingest.sources import Source, build_sources
from bgpwatch.logs import apply_config as apply_logging
from bgpwatch.pipeline import Pipeline
from bgpwatch.planned import PlannedWork, sites_from_config

log = logging.getLogger("bgpwatch")

TICK_SECONDS = 0.25
PRUNE_EVERY = 6 * 3600.0
READ_CHUNK = 1 << 18
RELAY_SOCKET = "relay.sock"
STORE_BACKLOG = 10_000  # transitions held in memory while the store cannot write (oldest dropped, counted)


def relay_socket_path(config: Config) -> Path:
    """Return where the daemon listens for relays."""
    return Path(config.collector.runtime_dir) / RELAY_SOCKET


class Notifier:
    """sd_notify when run by systemd (Type=notify); silent otherwise."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = None
        if self.enabled:
            import sdnotify

            self._notifier = sdnotify.SystemdNotifier()

    def __call__(self, message: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(message)

    @property
    def watchdog_interval(self) -> float | None:
        usec = os.environ.get("WATCHDOG_USEC")
        if not self.enabled or not usec or not usec.isdigit():
            return None
        return int(usec) / 1e6 / 2


class Daemon:
    """Everything `bgpwatch run` holds: config, pipeline, ExaBGP workers, API, alerting."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started_at = time.time()
        self.reload_ok = True
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # e.g. `replay --json` printing
        self.reload_at = time.time()
        self.pipeline = Pipeline(config)
        self.planned = PlannedWork(sites_from_config(config))  # maintenance windows and drains
        self.engine = self._build_engine(config)  # the pipeline's consumer (None: detection not installed)
        self._attach_planned()
        self.supervisor: Supervisor | None = None
        if config.collector.exabgp == "managed" and config.exabgp_enabled:
            self.supervisor = Supervisor(config, self._collector_status)
            self.pipeline.worker_peers = self.supervisor.peers_by_worker()
        # relay connections: in external mode their death or silence is the collector's (RelayLinks)
        self.relays = RelayLinks(
            self._collector_status,
            external=config.collector.exabgp == "external",
            families=_refresh_families(config),
        )
        self._unstored: deque[dict[str, Any]] = deque()  # transitions the store could not take yet
        self._unmarked: deque[tuple[str, str]] = deque()  # (sink, transition key) deliveries not yet noted
        self.store_dropped = 0
        self.collector = DaemonCollector(
            self.pipeline,
            lambda: self.supervisor,
            lambda: (self.reload_ok, self.reload_at),
            self.stream_now,  # ages on the pipeline's clock: a served replay shows the recording's time
            faults=self._fault_metrics,
        )
        self.registry = build_registry(self.collector)
        if config.bmp is not None:
            self.registry.register(BmpCollector(self.pipeline))
        self.ingest_lag = Histogram(
            "bgpwatch_ingest_lag_seconds",
            "Seconds from ExaBGP stamping a message to bgpwatch having processed it (sampled per read)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.store = Store(config.storage.path)
        self._load_maintenance()
        self.sink_metrics = SinkMetrics(self.registry)
        self.sinks = self._build_sinks(config)
        # Alerts still firing when bgpwatch last stopped: Alertmanager keeps getting them re-sent,
        # and the detection engine takes them back (same incidents, no new notification) until the
        # re-learn of the network says whether they still hold.
        active = self.store.active_alerts()
        self.sinks.resume(active)
        if active and self.engine is not None and hasattr(self.engine, "restore"):
            restored = self.engine.restore(active, self.store.open_incidents())
            log.info("%d alert(s) firing at the last stop taken back; checked after the re-learn", restored)
        if self.engine is not None and hasattr(self.engine, "register_metrics"):
            self.engine.register_metrics(self.registry)
        self.recorder: Recorder | None = None
        if config.recording.path is not None:
            self.recorder = Recorder(
                config.recording.path, config.recording.rotate_megabytes << 20, config.recording.keep
            )
        self.stop_event: asyncio.Event | None = None
        self.notify = Notifier()
        self._relay_server: asyncio.base_events.Server | None = None
        self._runner: ApiServer | None = None
        self._connections: set[asyncio.Task] = set()
        self._ticker: asyncio.Task | None = None
        self.sources: list[Source] = build_sources(self, config)  # the inputs: plug-ins, config order

    # -- wiring -----------------------------------------------------------------------
    def _build_engine(self, config: Config):  # config: the pipeline's
        try:
            from bgpwatch.detect.engine import DetectionEngine
        except ImportError:
            return None
        return DetectionEngine.for_pipeline(self.pipeline, self.emit)

    def _attach_planned(self) -> None:
        if self.engine is not None:
            self.engine.planned = self.planned  # the engine asks it whether an alert is planned work

    def _load_maintenance(self) -> None:
        """Take back the windows still open at the last stop (one that expired meanwhile stays out)."""
        now = self.stream_now()
        for window in self.store.active_maintenance(now):
            if self.planned.restore(window, now) is None:
                log.warning("maintenance window on %r not restored: no such site or peer", window["target"])

    def _build_sinks(self, config: Config) -> SinkSet:
        sinks = build_sinks(
            config.alerting.sinks,
            self.registry,
            on_delivered=self._mark_delivered,
            source=str(config.source),
            metrics=self.sink_metrics,
        )
        return SinkSet(sinks, was_delivered=self.store.was_delivered)

    async def _swap_sinks(self, config: Config) -> None:
        """Start the new configuration's sinks, then drain and close the old ones."""
        new = self._build_sinks(config)
        new.resume(self.store.active_alerts())
        await new.start()
        # no await from here to the swap: what an old sink still holds (its receiver down) moves on
        moved = new.take_over(self.sinks)
        if moved:
            log.info("reload: %d undelivered transition(s) handed to the new sinks", moved)
        old, self.sinks = self.sinks, new
        await old.close(timeout=5.0)

    def emit(self, transition: dict[str, Any]) -> None:
        """Take one alert transition from the detection layer: store it, then hand it to the sinks."""
        self._store_transition(transition)
        self.sinks.submit(transition)
        for listener in self.listeners:
            listener(transition)

    def _store_transition(self, transition: dict[str, Any]) -> None:
        """Record a transition; while the store cannot write (disk full), hold it in memory, in order."""
        if self._unstored:
            self._hold_unstored(transition)  # behind the older ones: the store applies them in order
            return
        try:
            self.store.record(transition)
        except sqlite3.Error:
            log.exception("cannot store an alert transition; delivering it anyway, held until the store can")
            self._hold_unstored(transition)
            self._store_fault_changed()
        except Exception:  # a malformed transition: not the store's fault, never fatal
            log.exception("cannot store an alert transition; delivering it anyway")

    def _hold_unstored(self, transition: dict[str, Any]) -> None:
        if len(self._unstored) >= STORE_BACKLOG:
            self._unstored.popleft()
            self.store_dropped += 1
        self._unstored.append(transition)

    def _mark_delivered(self, sink: str, key: str) -> None:
        """Note a delivery; while the store cannot write, keep the note (else a restart would re-send)."""
        if not (self._unstored or self._unmarked):
            try:
                self.store.mark_delivered(sink, key)
                return
            except sqlite3.Error:
                self._store_fault_changed()
        if len(self._unmarked) >= STORE_BACKLOG:
            self._unmarked.popleft()  # at worst that transition is notified again after a restart
        self._unmarked.append((sink, key))

    def _flush_unstored(self) -> None:
        """Give the store what it could not take, oldest first (transitions, then deliveries)."""
        flushed = 0
        while self._unstored:
            try:
                self.store.record(self._unstored[0])
            except sqlite3.Error:
                return
            except Exception:
                log.exception("dropping an alert transition the store refuses")
                self.store_dropped += 1
            self._unstored.popleft()
            flushed += 1
        while self._unmarked:
            try:
                self.store.mark_delivered(*self._unmarked[0])
            except sqlite3.Error:
                return
            self._unmarked.popleft()
            flushed += 1
        if flushed:
            log.warning("alert store writable again: %d held write(s) done", flushed)
            self._store_fault_changed()

    def _store_fault_changed(self) -> None:
        """Tell the collector_degraded detector whether the store can write (store_degraded)."""
        failing = bool(self._unstored or self._unmarked) or not self.store.writable
        reason = (self.store.last_write_error or "write failed") if failing else None
        since = self.store.failing_since if failing else None
        for detector in getattr(self.engine, "detectors", ()):
            if hasattr(detector, "set_store_fault"):
                detector.set_store_fault(reason, since)

    def _fault_metrics(self) -> dict[str, Any]:
        return {
            "relay_up": self.relays.workers_up(),
            "relay_faults": dict(self.relays.faults),
            "relay_backpressure": self.relays.backpressure(),
            "relay_refresh_requests": self.relays.refresh_requests,
            "store_writable": self.store.writable and not (self._unstored or self._unmarked),
            "store_write_errors": self.store.write_errors,
            "store_held": len(self._unstored),
            "store_dropped": self.store_dropped,
        }

    def _collector_status(self, event: CollectorStatus) -> None:
        if self.recorder is not None:
            # Recorded as a relay control line, so a replay sees ExaBGP die exactly as the daemon did.
            self.recorder.write(collector_control_line(event))
        try:
            self.pipeline.feed_event(event)
        except Exception:  # the supervisor must keep supervising whatever a detector does
            log.exception("internal error handling %s", event)
            self.pipeline.errors["internal_error"] += 1

    # -- lifecycle --------------------------------------------------------------------
    async def start_services(self, live: bool = True) -> None:
        """Start the API, alert delivery and (live) the relay socket, ExaBGP and the clock."""
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self.stop_event.set)
        loop.add_signal_handler(signal.SIGINT, self.stop_event.set)
        if live:
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self._start_api()
        self.sinks.resubmit_undelivered(self.store, since=time.time() - 3600)
        await self.sinks.start()
        if live:
            for source in self.sources:
                await source.start()
            self._ticker = asyncio.create_task(self._tick_loop(), name="tick")

    async def stop_services(self) -> None:
        """Stop inputs first, then drain and close what delivers and stores."""
        if self._ticker is not None:
            self._ticker.cancel()
        await self._shutdown()

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code."""
        try:
            await self.start_services()
        except OSError as exc:
            log.error("cannot start: %s", exc)
            await self.stop_services()
            return 1
        self.notify("READY=1")
        self.notify(f"STATUS=bgpwatch {__version__}: {len(self.config.peers)} peers configured")
        log.info(
            "bgpwatch %s running: %d sites, %d peers, ExaBGP %s, API http://%s:%d",
            __version__,
            len(self.config.sites),
            len(self.config.peers),
            self.config.collector.exabgp,
            self.config.api.host,
            self.config.api.port,
        )
        assert self.stop_event is not None
        await self.stop_event.wait()
        log.info("stopping")
        self.notify("STOPPING=1")
        await self.stop_services()
        log.info("stopped")
        return 0

    async def _shutdown(self) -> None:
        if self.engine is not None:
            # A clean stop (SIGTERM, systemctl restart) closes the sessions on purpose: no
            # collector_degraded now, nothing to restore or resolve at the next start.
            self.engine.book.mute()
        for source in reversed(self.sources):
            await source.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.recorder is not None:
            self.recorder.close()
        await self.sinks.close(timeout=5.0)
        self.store.close()

    def record(self, line: bytes) -> None:
        """Write one input line into the recording (inputs call this; no-op when not recording)."""
        if self.recorder is not None:
            self.recorder.write(line)

    async def stop_exabgp(self) -> None:
        """Stop the ExaBGP workers, let the relays deliver what they said while stopping, close the socket."""
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self._connections:
            await asyncio.wait(self._connections, timeout=3.0)
        for task in self._connections:
            task.cancel()
        if self._relay_server is not None:
            self._relay_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._relay_server.wait_closed(), 2.0)
            with contextlib.suppress(FileNotFoundError):
                relay_socket_path(self.config).unlink()

    async def start_relay_server(self) -> None:
        """Listen for relays (the ExaBGP input)."""
        await self._start_relay_server()

    async def _start_relay_server(self) -> None:
        path = relay_socket_path(self.config)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._relay_server = await asyncio.start_unix_server(self._relay_connection, path=str(path))
        os.chmod(path, 0o660)

    async def _start_api(self) -> None:
        # ApiServer: connection limit, header/idle timeouts, EMFILE back-off (bgpwatch.api.server).
        self._runner = ApiServer(
            build_app(self), self.config.api.host, self.config.api.port, registry=self.registry
        )
        await self._runner.start()

    async def _relay_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        link = self.relays.open(writer)
        feed = self.pipeline.feed_line
        record = self.recorder.write if self.recorder is not None else None
        buffer = b""
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                self.relays.seen(link)
                buffer += data
                lines = buffer.split(b"\n")
                buffer = lines.pop()
                for line in lines:
                    if not line:
                        continue
                    # hello, heartbeat and goodbye are about the connection, not the network
                    if line.startswith(RELAY_TAG) and self.relays.control(link, line):
                        continue
                    worker = link.worker
                    if record is not None:
                        record(line)
                    try:
                        feed(line, "relay", worker)
                    except Exception:  # one bad line never stops the pipeline (STYLE habit 1)
                        log.exception("internal error on an input line; line skipped")
                        self.pipeline.errors["internal_error"] += 1
                # Once per chunk: how far behind ExaBGP's clock the pipeline is (queueing in
                # ExaBGP, the relay and here). The last line of a chunk waited the longest.
                if self.pipeline.last_event_at is not None:
                    self.ingest_lag.observe(max(0.0, time.time() - self.pipeline.last_event_at))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._connections.discard(task)
            stopping = self.stop_event is not None and self.stop_event.is_set()
            self.relays.closed(link, stopping)

    async def _prune(self) -> None:
        """Drop history older than storage.retention_days (never open incidents or firing alerts)."""
        try:
            removed = await asyncio.to_thread(self.store.prune, self.config.storage.retention_days)
        except Exception:
            log.exception("pruning the store failed")
            return
        if removed:
            log.info("store: pruned %d old records", removed)

    async def _tick_loop(self) -> None:
        interval = self.notify.watchdog_interval
        last_watchdog = 0.0
        last_flush = 0.0
        last_prune = time.time() - PRUNE_EVERY + 60.0  # first pass a minute after start
        last_store_retry = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.time()
            self.relays.check()  # a relay silent for seconds: collector_degraded (external mode)
            if (self._unstored or self._unmarked) and now - last_store_retry >= 1.0:
                last_store_retry = now
                self._flush_unstored()
            try:
                self.pipeline.tick(now)
            except Exception:
                log.exception("internal error in a timer")
            if self.recorder is not None and now - last_flush >= 1.0:
                # A reader (or a crash) then finds at most a second of input missing.
                self.recorder.flush()
                last_flush = now
            if now - last_prune >= PRUNE_EVERY and self.config.storage.retention_days is not None:
                last_prune = now
                asyncio.get_running_loop().create_task(self._prune())
            if interval is not None and now - last_watchdog >= interval:
                self.notify("WATCHDOG=1")
                last_watchdog = now

    # -- reload -----------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the configuration (SIGHUP); keep the running one if the new one is invalid."""
        path = self.config.source
        try:
            new = load_config(path)
        except ConfigError as exc:
            self.reload_ok = False
            for problem in exc.problems:
                log.error("reload refused: %s", problem)
            log.error("reload refused: keeping the configuration loaded at %s", time.ctime(self.reload_at))
            return
        self.reload_ok = True
        self.reload_at = time.time()
        if new == self.config:
            log.info("reload: configuration unchanged")
            return
        peers_changed = [p.model_dump() for p in new.peers] != [p.model_dump() for p in self.config.peers]
        alerting_changed = new.alerting != self.config.alerting
        self.config = new
        if self.engine is not None and hasattr(self.engine, "reconfigure"):
            self.engine.reconfigure(new)
        self.planned.set_sites(sites_from_config(new))
        self._attach_planned()
        if alerting_changed:
            log.info("reload: alert sinks changed; new sinks start, the old ones drain")
            asyncio.get_running_loop().create_task(self._swap_sinks(new))
        if peers_changed:
            log.warning("reload: peers changed; the ExaBGP workers restart with the new configuration")
            asyncio.get_running_loop().create_task(self._restart_collector(new))
        log.info("reload: configuration from %s applied", path)

    async def _restart_collector(self, config: Config) -> None:
        old = self.supervisor
        if old is not None:
            await old.stop()
        self.pipeline.sessions.reconfigure(config)  # sessions still configured keep their state
        self.pipeline.config = config
        if config.collector.exabgp == "managed":
            self.supervisor = Supervisor(config, self._collector_status)
            self.pipeline.worker_peers = self.supervisor.peers_by_worker()
            self.supervisor.start()
        else:
            self.supervisor = None

    # -- planned work -----------------------------------------------------------------
    def stream_now(self) -> float:
        """Return the pipeline's stream time (the engine's clock, the last event), else wall time."""
        now = getattr(self.engine, "now", None)
        if now is None:
            now = self.pipeline.last_event_at
        return time.time() if now is None else now

    def start_maintenance(self, target: str, duration: float | None, reason: str) -> dict[str, Any]:
        """Open a maintenance window and store it; ValueError for an unknown target."""
        window = self.planned.start(target, self.stream_now(), duration, reason)
        self.store.start_maintenance(window)
        log.info("maintenance window on %s opened (until %s): %s", target, window["until"], window["reason"])
        return window

    def end_maintenance(self, target: str) -> dict[str, Any] | None:
        """Close the window on `target` and store that; None when none is open."""
        now = self.stream_now()
        window = self.planned.end(target, now)
        if window is not None:
            self.store.end_maintenance(target, now)
            log.info("maintenance window on %s ended", target)
        return window

    # -- views for the API ------------------------------------------------------------
    def health(self) -> tuple[bool, list[str]]:
        problems = [problem for source in self.sources for problem in source.health()]
        problems += self.relays.problems()  # degraded: a relay died or went silent (external mode)
        if self._unstored or self._unmarked or not self.store.writable:
            since = self.store.failing_since
            ago = f" for {time.time() - since:.0f} s" if since is not None else ""
            problems.append(
                f"degraded: the alert store cannot write{ago} ({self.store.last_write_error or 'write failed'});"
                f" {len(self._unstored)} transition(s) held in memory, {self.store_dropped} dropped"
            )
        return not problems, problems

    def status(self) -> dict[str, Any]:
        now = time.time()
        sessions = list(self.pipeline.sessions.by_address.values())
        return {
            "version": __version__,
            "config": str(self.config.source),
            "started_at": self.started_at,
            "uptime_seconds": now - self.started_at,
            "exabgp_mode": self.config.collector.exabgp,
            "workers": self.supervisor.describe() if self.supervisor else [],
            "inputs": [source.status() for source in self.sources],
            "sites": len(self.config.sites),
            "peers": len(sessions),
            "peers_up": sum(1 for s in sessions if s.up),
            "pipeline": self.pipeline.status(now),
            "config_reload_ok": self.reload_ok,
            "alerts_firing": len(self.alerts()),
            "maintenance": self.planned.windows(self.stream_now()),
            "draining": self.planned.drains(self.stream_now()),
        }

    def topology(self) -> dict[str, Any]:
        if self.engine is None:
            return {"error": "topology not available"}
        return self.engine.snapshot()

    def topology_dot(self) -> str:
        return self.engine.to_dot() if self.engine is not None else "graph bgpwatch {}\n"

    def alerts(self, include_all: bool = False, since: str | None = None) -> list[dict[str, Any]]:
        if include_all:
            return self.store.alerts(since=since, include_resolved=True)
        if self.engine is not None:
            return self.engine.active_alerts()
        return self.store.active_alerts()

    def incidents(self) -> list[dict[str, Any]]:
        return self.store.incidents(limit=200)

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        return self.store.incident(incident_id)


def _refresh_families(config: Config) -> list[str]:
    """Return the families to ask a route refresh for: those of the configured peers and prefixes."""
    versions = {ipaddress.ip_address(str(peer.address)).version for peer in config.peers}
    for site in config.sites:
        versions |= {ipaddress.ip_network(str(prefix), strict=False).version for prefix in site.prefixes}
    return [f"ipv{v} unicast" for v in (4, 6) if v in versions] or ["ipv4 unicast", "ipv6 unicast"]


def run(config_path: str, log_level: str | None = None) -> int:
    """Entry point of `bgpwatch run`; `log_level` (the command line's) wins over logging.level."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        return 2
    apply_logging(config.logging, log_level)
    # What the operator must fix (a directory it cannot write) is a config error: exit 2, one line.
    problem = _unwritable_dir(Path(config.collector.runtime_dir))
    if problem is not None:
        log.error("cannot start: collector.runtime_dir %s", problem)
        return 2
    try:
        daemon = Daemon(config)
    except StoreError as exc:
        log.error("cannot start: storage.path: %s", exc)
        return 2
    return asyncio.run(daemon.run())


def _unwritable_dir(path: Path) -> str | None:
    """Return why bgpwatch cannot create files in ``path`` (made if missing), or None."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".bgpwatch-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{path}: cannot create files there: {exc.strerror or type(exc).__name__}"
    return None
