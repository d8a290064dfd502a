"""The daemon's side of the relay connections: who is connected, who went silent, who died.

Each `bgpwatch relay` connection (one per ExaBGP worker, or per operator-run ExaBGP in external
mode) starts with a hello line; relays of this version also say that they send a heartbeat every
``heartbeat`` seconds of otherwise quiet output and take route-refresh requests.

In external mode (the daemon does not run ExaBGP, so no supervisor sees it die):
* a relay connection that closes without the relay's goodbye line, other than at the daemon's own
  shutdown, is reported as ``CollectorStatus(up=False)`` of its worker: the relay was killed
  (kill -9, OOM), bgpwatch is blind, and the sessions count as lost on bgpwatch's side;
* a relay that ends in order (its goodbye: ExaBGP closed the API pipe, or sent SIGTERM) is not an
  alert: ExaBGP stopping in order says so itself (its shutdown message raises collector_degraded),
  and a recording fed through a relay ends that way.  It is counted and `/healthz` reports it
  until a relay of that worker connects again;
* a relay that sends nothing, not even its heartbeat, for ``silent_after`` seconds (at least three
  heartbeats) is reported the same way: it is stopped (SIGSTOP) or wedged, and bgpwatch is blind;
* the worker is reported up again when a relay of it connects or speaks again;
* on each hello, and when a silent relay speaks again, the daemon asks the relay to have ExaBGP
  send a route refresh for every established peer (`announce route-refresh <afi> <safi>`): ExaBGP
  does not resend its tables to a new API connection, so without it a restarted daemon would start
  with an empty RIB until the routers happened to re-announce.
In managed mode the supervisor owns ExaBGP's liveness (a restarted ExaBGP re-learns every table
with its sessions); the links are counted, and only a relay that comes back after being killed
(ExaBGP respawned its API process and kept its sessions, the lines in between are gone) is
asked for a route refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from bgpwatch.events import CollectorStatus

log = logging.getLogger("bgpwatch")

SILENT_AFTER = 5.0  # seconds without a byte (heartbeats every second) before a relay counts as silent
STALL_SECONDS = 1.0  # check() is called every 0.25 s: a longer gap is the daemon's loop blocked
_MAX_REASON = 200
_HEARTBEAT_KEYS = frozenset({"alive", "time", "held", "holds"})
_MAX_HELD = 1e9  # seconds: bounds for what a relay reports (edge validation)
_MAX_HOLDS = 1 << 40


@dataclass(slots=True)
class RelayLink:
    """One relay connection."""

    writer: asyncio.StreamWriter | None
    last_seen: float
    worker: int | None = None
    pid: int | None = None
    heartbeat: float | None = None  # None: an older relay, no silence detection
    refresh: bool = False
    silent: bool = False
    bye: str | None = None
    held: float = 0.0  # back-pressure reported by this relay so far: seconds ExaBGP waited ...
    holds: int = 0  # ... and how many times


def refresh_request(families: Iterable[str]) -> bytes:
    """Return the line asking a relay for a route refresh of these families."""
    return orjson.dumps({"bgpwatch-daemon": {"refresh": list(families)}}) + b"\n"


class RelayLinks:
    """Track the relay connections; report relay death and silence as collector status changes."""

    def __init__(
        self,
        report: Callable[[CollectorStatus], None],
        *,
        external: bool,
        families: Iterable[str] = ("ipv4 unicast", "ipv6 unicast"),
        silent_after: float = SILENT_AFTER,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.report = report
        self.external = external
        self.families = list(families)
        self.silent_after = silent_after
        self.clock = clock
        self.wall = wall
        self.links: list[RelayLink] = []
        self.down: dict[int, tuple[float, str]] = {}  # worker -> (wall time, reason), reported down
        self.ended: dict[int, tuple[float, str]] = {}  # worker -> (wall time, goodbye), not reported
        self.faults: Counter[str] = Counter()  # "lost", "silent", "ended"
        self.refresh_requests = 0
        # back-pressure of relays gone (per worker), so the totals never go backwards at a reconnect
        self._held_before: dict[int, tuple[float, int]] = {}
        self._last_check: float | None = None
        self._killed: set[int] = set()  # managed mode: workers whose relay was lost without a goodbye

    # -- connection events ------------------------------------------------------------------------
    def open(self, writer: asyncio.StreamWriter | None) -> RelayLink:
        """Register a new connection (its hello comes later)."""
        link = RelayLink(writer, self.clock())
        self.links.append(link)
        return link

    def seen(self, link: RelayLink) -> None:
        """Note that a connection sent something (once per read); a silent relay is back."""
        link.last_seen = self.clock()
        if link.silent:
            link.silent = False
            log.warning("relay of ExaBGP worker %s speaks again", link.worker)
            self._back(link, "relay speaks again")

    def control(self, link: RelayLink, line: bytes) -> bool:
        """Handle a relay control line that is about the link itself; True when it was consumed."""
        try:
            body = orjson.loads(line)["bgpwatch-relay"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return False
        if not isinstance(body, dict):
            return False
        hello = body.get("hello")
        if link.worker is None and isinstance(hello, int) and not isinstance(hello, bool):
            self._hello(link, hello, body)
            return True
        if "alive" in body and body.keys() <= _HEARTBEAT_KEYS:
            self._backpressure(link, body)  # the heartbeat: `seen` has noted it
            return True
        bye = body.get("bye")
        if isinstance(bye, str):
            link.bye = bye[:_MAX_REASON]
            return True
        return False

    def closed(self, link: RelayLink, stopping: bool) -> None:
        """Forget a closed connection; in external mode, report its worker down (unless we stop)."""
        if link in self.links:
            self.links.remove(link)
        worker = link.worker
        if worker is not None and (link.held or link.holds):
            held, holds = self._held_before.get(worker, (0.0, 0))
            self._held_before[worker] = (held + link.held, holds + link.holds)
        if stopping or worker is None:
            return
        if not self.external:
            if not link.bye:
                self._killed.add(worker)  # its successor will be asked for a route refresh
            return
        if link.silent:
            return  # reported already
        if any(other.worker == worker and not other.silent for other in self.links):
            return  # it reconnected before the old connection was seen to close
        if link.bye:
            self.faults["ended"] += 1
            self.ended[worker] = (
                self.wall(),
                f"relay of ExaBGP worker {worker} ended: {link.bye}; no input since",
            )
            log.warning("relay of ExaBGP worker %d ended: %s", worker, link.bye)
            return
        reason = f"relay of ExaBGP worker {worker} disconnected without a goodbye (killed?)"
        log.error("%s", reason)
        self._down(worker, reason, "lost")

    def check(self) -> None:
        """Report the relays that went silent (call about once a second)."""
        now = self.clock()
        stalled = 0.0 if self._last_check is None else now - self._last_check - STALL_SECONDS
        self._last_check = now
        for link in self.links:
            if stalled > 0:
                # the daemon's own loop was blocked: what a relay sent meanwhile is still unread in the
                # socket, so that time is not the relay's silence
                link.last_seen += stalled
            if link.silent or link.heartbeat is None or link.worker is None:
                continue
            quiet = now - link.last_seen
            if quiet < max(self.silent_after, 3 * link.heartbeat):
                continue
            link.silent = True
            reason = f"relay of ExaBGP worker {link.worker} silent for {quiet:.1f} s (stopped or wedged)"
            log.error("%s", reason)
            if self.external and link.worker not in self.down:
                self._down(link.worker, reason, "silent")

    # -- views --------------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Return what /healthz says about the relays."""
        now = self.wall()
        faults = sorted({**self.ended, **self.down}.items())
        return [f"degraded: {reason} ({now - at:.0f} s ago)" for _, (at, reason) in faults]

    def workers_up(self) -> dict[int, bool]:
        """Return, per worker seen, whether a relay of it is connected and speaking."""
        state: dict[int, bool] = {worker: False for worker in (*self.down, *self.ended)}
        for link in self.links:
            if link.worker is not None:
                state[link.worker] = state.get(link.worker, False) or not link.silent
        return state

    def backpressure(self) -> dict[int, tuple[float, int]]:
        """Return, per worker, (seconds, times) its relays made ExaBGP wait for the daemon (so far)."""
        totals = dict(self._held_before)
        for link in self.links:
            if link.worker is not None:
                held, holds = totals.get(link.worker, (0.0, 0))
                totals[link.worker] = (held + link.held, holds + link.holds)
        return totals

    # -- internals ------------------------------------------------------------------------------------
    def _backpressure(self, link: RelayLink, body: dict) -> None:
        """Take a heartbeat's back-pressure totals (within bounds, never going backwards)."""
        held, holds = body.get("held"), body.get("holds")
        if isinstance(held, int | float) and not isinstance(held, bool) and 0 <= held <= _MAX_HELD:
            link.held = max(link.held, float(held))
        if isinstance(holds, int) and not isinstance(holds, bool) and 0 <= holds <= _MAX_HOLDS:
            link.holds = max(link.holds, holds)

    def _hello(self, link: RelayLink, worker: int, body: dict) -> None:
        link.worker = worker
        link.pid = body.get("pid") if isinstance(body.get("pid"), int) else None
        heartbeat = body.get("heartbeat")
        if isinstance(heartbeat, int | float) and not isinstance(heartbeat, bool) and 0 < heartbeat <= 60:
            link.heartbeat = float(heartbeat)
        link.refresh = body.get("refresh") is True
        log.info("relay of ExaBGP worker %d connected", worker)
        self._back(link, "relay connected")

    def _back(self, link: RelayLink, why: str) -> None:
        if link.worker is None:
            return
        if not self.external:
            if link.worker in self._killed:
                self._killed.discard(link.worker)
                self._ask_refresh(link)
            return
        self.ended.pop(link.worker, None)
        if link.worker in self.down:
            at, _ = self.down.pop(link.worker)
            log.warning("ExaBGP worker %d: %s after %.1f s", link.worker, why, self.wall() - at)
            self.report(CollectorStatus(self.wall(), link.worker, True, why))
        self._ask_refresh(link)

    def _ask_refresh(self, link: RelayLink) -> None:
        if not link.refresh or link.writer is None or not self.families:
            return
        try:
            link.writer.write(refresh_request(self.families))
        except (OSError, RuntimeError):
            return  # the connection is going; its close reports it
        self.refresh_requests += 1
        log.info(
            "asked ExaBGP (worker %d) for a route refresh (%s) from every established peer",
            link.worker,
            ", ".join(self.families),
        )

    def _down(self, worker: int, reason: str, kind: str) -> None:
        self.faults[kind] += 1
        self.down[worker] = (self.wall(), reason)
        self.report(CollectorStatus(self.wall(), worker, False, reason))
