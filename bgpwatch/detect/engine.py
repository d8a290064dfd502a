"""The detection engine: topology + detectors + alert lifecycle, fed by the pipeline.

For every event the daemon (or `replay`) calls ``rib.apply(event)`` and then
``engine.process(event, changes)``.  Time comes only from events (``event.at``) and from
``tick(now)``: a live daemon ticks from a wall-clock timer, a replay needs nothing more than
the recording (the engine ticks itself once per second of stream time, and conditions fire at
their own deadline even when the clock advanced past it; `bgpwatch.playback` also ticks it at
each ``next_due()`` between two events, so transitions come out when they are due).  At the end of a replay, call
``finish()`` to let pending conditions fire or resolve as they would have.

Order per event: fire what was already due, note the peer's table-load state, let detectors
count the event (collector classification first), update the topology, re-derive conditions
when anything site-relevant changed, fire what is due now.

Restart (`DetectionEngine.restore`): the alerts firing when bgpwatch last stopped are taken back
into the book as restored alerts (see `bgpwatch.alerts.lifecycle`), and what they say about the
network seeds the topology: a site that was down stays ``down`` (not ``unknown``) until another
site re-learns its routes, a session that was down counts as down (not never-established).  The
re-learn is over when every configured session is up and converged (End-of-RIB or the convergence
timeout) and no site is settling, or at the latest max(startup_grace, convergence timeout) stream
seconds after the first event since the restart; then `AlertBook.settle_restored` keeps the
conditions detected again and resolves the others.

Table load ("loaded", `DetectionEngine.peer_loaded`): route-level detectors judge a peer's
routes only once its initial table is in.  A configured session is loaded when it is up with
End-of-RIB for every family the sites use, or when the convergence timeout passed (the
topology's ``active``).  A peer that is not configured (the peers of an MRT file) is loaded at
its first End-of-RIB after ``up``, or ``not_converged.timeout`` seconds after ``up``.  A peer
whose routes arrive without any ``up`` before them joined mid-session (MRT update files carry
no End-of-RIB and start in the middle of every session): it is loaded at once, a configured
one counted as up and converged by the topology (`Topology.join_mid_session`).  Live, ExaBGP
always says ``up`` first, so the live gating is unchanged.

Containment: an exception in one detector (its ``on_event``, ``on_session``, ``on_tick`` or
``evaluate``) is a bug in that detector, not a reason to stop the others: the call is skipped for
that detector only, counted in ``detector_errors`` (``bgpwatch_detector_errors_total{detector}``)
and logged with its traceback at most once per minute per detector; later events go on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bgpwatch.alerts.lifecycle import INFINITY, AlertBook, Finding, iso_ms, parse_iso
from bgpwatch.detect.base import (
    REGISTRY,
    Detector,
    _ensure_loaded,
    resolve_params,
    validate_detector_params,
)
from bgpwatch.detect.context import DetectionContext
from bgpwatch.detect.origins import PrefixIndex, RouteDetector
from bgpwatch.detect.outside import JUDGE_OUTSIDE_ROUTES, OutsideDetector
from bgpwatch.detect.rpki import RpkiDetector
from bgpwatch.events import (
    Announce,
    CollectorShutdown,
    CollectorStatus,
    FeedGap,
    MonitoredSession,
    MonitorState,
    MonitorStats,
    SessionState,
    Tick,
    Withdraw,
)
from bgpwatch.monitors import MonitorChange
from bgpwatch.outside import OutsideView
from bgpwatch.planned import PlannedWork, sites_from_config
from bgpwatch.rib import RouteChanges
from bgpwatch.rpki.state import RpkiState
from bgpwatch.sessions import CHANGE_DOWN, CHANGE_UP, SessionTable
from bgpwatch.topology import DOWN, LIVE, UNKNOWN, SiteModel, Topology

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from bgpwatch.config import Config
    from bgpwatch.events import Event
    from bgpwatch.rib import Rib

log = logging.getLogger("bgpwatch.detect")

_STATE_EVENTS = (SessionState, CollectorShutdown, CollectorStatus, FeedGap)
_ROUTE_EVENTS = frozenset({Announce, Withdraw})
ERROR_LOG_EVERY = 60.0  # seconds between two tracebacks logged for one detector
_MONITOR_EVENTS = (MonitorState, MonitoredSession, MonitorStats)
SELF_TICK = 1.0  # seconds of stream time between the engine's own ticks


class DetectorConfigError(ValueError):
    """The detectors section is invalid; ``problems`` lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class DetectionEngine:
    """Topology, detectors and the alert book; emits alert transitions through ``emit``."""

    @classmethod
    def for_pipeline(
        cls, pipeline: Any, emit: Callable[[dict[str, Any]], None], **kwargs: Any
    ) -> DetectionEngine:
        """Return an engine reading what ``pipeline`` owns (RIB, sessions, outside view, RPKI), attached
        as its consumer: how the daemon, a replay and the benchmarks wire one."""
        engine = cls(
            pipeline.config,
            pipeline.rib,
            emit,
            sessions=pipeline.sessions,
            outside=pipeline.outside,
            rpki=pipeline.rpki,
            **kwargs,
        )
        pipeline.consumer = engine
        return engine

    def __init__(
        self,
        config: Config,
        rib: Rib,
        emit: Callable[[dict[str, Any]], None],
        registry: CollectorRegistry | None = None,
        history_size: int = 1000,
        sessions: SessionTable | None = None,
        outside: OutsideView | None = None,
        rpki: RpkiState | None = None,
    ) -> None:
        self.rib = rib
        # The RPKI state (VRP table, usability): the pipeline's, or the engine's own when fed directly.
        self.rpki: RpkiState = rpki if rpki is not None else RpkiState()
        # The outside view (public peers, RIS Live): the pipeline's, or the engine's own when fed directly.
        self.outside: OutsideView = outside if outside is not None else OutsideView(config, rib.pool)
        self.emit = emit
        self.book = AlertBook(emit, history_size=history_size)
        # The one owner of session state: the pipeline's table (or, fed directly, the engine's own);
        # the engine applies every event to it (see process).
        self.sessions: SessionTable = sessions if sessions is not None else SessionTable(config)
        # Planned work (maintenance windows, GRACEFUL_SHUTDOWN drains); the daemon replaces it with
        # its own, which keeps the operator's windows in the store.
        self.planned: PlannedWork = PlannedWork(sites_from_config(config))
        self.book.planned_for = self._planned_for
        self.now: float | None = None
        self._last_tick: float | None = None
        self.relearning = False  # restored alerts wait for the re-learn (see restore)
        self.detector_errors: Counter[str] = Counter()  # detector name -> calls that raised
        self._error_logged: dict[str, float] = {}
        self._build(config, previous=None)
        if registry is not None:
            self.register_metrics(registry)

    # -- construction ------------------------------------------------------------------------
    def _build(self, config: Config, previous: Topology | None) -> None:
        _ensure_loaded()
        params: dict[str, Any] = dict(getattr(config, "detectors", None) or {})
        source = getattr(config, "source", None)
        problems = validate_detector_params(params, str(source) if source else None)
        if problems:
            raise DetectorConfigError(problems)
        self.config = config
        self.model = SiteModel(config)
        if previous is not None:
            self.outside.reconfigure(config)
        settings = resolve_params(REGISTRY["topology"], params.get("topology") or {})
        convergence = resolve_params(REGISTRY["not_converged"], params.get("not_converged") or {})
        flaps = resolve_params(REGISTRY["session_down"], params.get("session_down") or {})
        self.sessions.reconfigure(config)
        self.sessions.configure(
            quiet=convergence["quiet"], timeout=convergence["timeout"], flap_window=flaps["flap_window"]
        )
        self.topology = Topology(
            self.model,
            self.sessions,
            threshold=settings["visibility_threshold"],
            startup_grace=settings["startup_grace"],
            rejoin_grace=settings["rejoin_grace"],
        )
        if previous is not None:
            self._carry_over(previous)
        self.context = DetectionContext(self)
        detectors = []
        for name, cls in sorted(REGISTRY.items(), key=lambda item: (item[1].order, item[0])):
            if cls.params_only:
                continue
            detector = cls(self.context, params.get(name) or {})
            if detector.enabled:
                detectors.append(detector)
        self.detectors: list[Detector] = detectors
        # Only detectors that count events are called per event (the hot path).
        self._event_detectors = [d for d in detectors if type(d).on_event is not Detector.on_event]
        # Route detectors that judge only the routes inside some prefixes (`RouteDetector.scope`)
        # are passed only those: one shared lookup per route for all of them (`_in_scope`).
        scopes = {d.name: d.scope() for d in detectors if isinstance(d, RouteDetector)}
        self._scoped = {name for name, scope in scopes.items() if scope is not None}
        self._scope = PrefixIndex(
            (family, key, True) for scope in scopes.values() if scope is not None for family, key in scope
        )
        self._scope_exact: dict[int, frozenset[int]] = {
            family: frozenset(
                key
                for d in detectors
                if d.name in self._scoped
                for f, key in d.scope_exact()  # type: ignore[attr-defined]
                if f == family
            )
            for family in (4, 6)
        }
        self._event_calls = [(d, d.name in self._scoped) for d in self._event_detectors]
        self._session_detectors = [d for d in detectors if type(d).on_session is not Detector.on_session]
        self._monitor_detectors = [d for d in detectors if type(d).on_monitor is not Detector.on_monitor]
        self._outside_route_detectors = [d for d in detectors if d.name in JUDGE_OUTSIDE_ROUTES]
        self._outside_detectors = [d for d in detectors if isinstance(d, OutsideDetector)]
        self._rpki_detectors = [d for d in detectors if isinstance(d, RpkiDetector)]

    def _carry_over(self, previous: Topology) -> None:
        """Keep site states across a reload, then count the RIB again (sessions keep theirs: one owner)."""
        topology = self.topology
        for name, view in topology.states.items():
            old_view = previous.states.get(name)
            if old_view is not None:
                view.state, view.since, view.left_live_at = (
                    old_view.state,
                    old_view.since,
                    old_view.left_live_at,
                )
        topology.started_at = previous.started_at
        topology.grace_over = previous.grace_over
        now = self.now if self.now is not None else 0.0
        for address, adj in self.rib.peers.items():
            if len(adj):
                self.sessions.join(address, now)  # routes in the RIB of a session never heard of
        topology.load(self.rib, now)

    def reconfigure(self, config: Config) -> None:
        """Apply a reloaded configuration: sites, services and parameters; alerts carry on."""
        self._build(config, previous=self.topology)
        if self.now is not None:
            self._evaluate(self.now)
            self.book.advance(self.now)

    # -- restart -----------------------------------------------------------------------------
    def restore(
        self, transitions: Iterable[Mapping[str, Any]], incidents: Iterable[Mapping[str, Any]] = ()
    ) -> int:
        """Take back the alerts firing when bgpwatch last stopped (store.active_alerts()); return how many."""
        transitions = list(transitions)
        timings: dict[str, tuple[float, float]] = {}
        for detector in self.detectors:
            timings.setdefault(detector.kind, (float(detector.p["for"]), float(detector.p["keep"])))
        count = self.book.restore(transitions, incidents, timings)
        if not count:
            return 0
        self._seed_topology(transitions)
        self.relearning = True
        return count

    def _seed_topology(self, transitions: list[Mapping[str, Any]]) -> None:
        """Start from what the restored alerts knew: sites down, sessions down."""
        topology = self.topology
        by_name = {vp.info.name: vp for vp in topology.vps.values()}
        for transition in transitions:
            labels = transition.get("labels") or {}
            since = parse_iso(transition.get("started_at")) or parse_iso(transition.get("at"))
            if since is None:
                continue
            if transition.get("kind") == "site_down":
                view = topology.states.get(str(labels.get("site")))
                if view is not None and view.state == UNKNOWN:
                    # Back only when a live site learns its routes again (fresh ones: all are, after a restart).
                    view.state, view.since, view.left_live_at = DOWN, since, since
                    topology.dirty = True
            elif transition.get("kind") == "session_down":
                vp = by_name.get(str(labels.get("peer")))
                if vp is not None:
                    reason = (transition.get("annotations") or {}).get(
                        "reason"
                    ) or "down before bgpwatch restarted"
                    if self.sessions.seed_down(vp.info.address, since, str(reason)):
                        topology.dirty = True

    def _check_relearn(self, now: float) -> None:
        """Settle the restored alerts once the network is re-learned (see the module doc)."""
        topology = self.topology
        if topology.started_at is None:
            return  # no event since the restart: nothing is known yet
        loaded = all(vp.active for vp in topology.vps.values()) and all(
            view.settle_until is None for view in topology.states.values()
        )
        bound = max(topology.startup_grace, self.sessions.timeout)
        if not loaded and now - topology.started_at < bound:
            return
        if topology.dirty:
            self._evaluate(now)  # the detectors speak on the latest picture before anything is decided
        self.relearning = False
        note = {
            "relearned_at": iso_ms(now),
            "relearn": "every session converged" if loaded else f"bound of {bound:g} s reached",
        }
        self.book.settle_restored(now, note)
        self.book.advance(now)

    # -- stream ------------------------------------------------------------------------------
    def process(self, event: Event, changes: list[RouteChanges]) -> None:
        """Take one event after ``rib.apply(event)`` returned ``changes``; apply it to the session table."""
        now = event.at
        if isinstance(event, Tick):
            self.tick(now)
            return
        if self._tick_due(now):
            self.tick(now)  # first what was due before this event, on the state before it
        session = self.sessions.apply(event)
        self.now = now
        if isinstance(session, MonitorChange) or type(event) in _MONITOR_EVENTS:
            self._monitor_change(session, now)
            return
        if changes and self.planned is not None:
            vp = self.topology.vps.get(changes[0].peer)
            if vp is not None:
                self.planned.observe_routes(vp.info.name, vp.info.site, changes, now, vp.info.peer_as)
        if session is not None and session.session.configured:
            if session.kind == CHANGE_DOWN:
                self.planned.session_down(session.session.name, now)
            elif session.kind == CHANGE_UP:
                self.planned.session_up(session.session.name, now)
        self.book.advance(now)
        scoped: list[RouteChanges] | None = None
        for detector, in_scope_only in self._event_calls:
            try:
                if in_scope_only and changes:
                    if scoped is None:
                        scoped = self._in_scope(changes)
                    if scoped or type(event) not in _ROUTE_EVENTS:
                        detector.on_event(event, scoped, now)
                else:
                    detector.on_event(event, changes, now)
            except Exception:
                self._detector_failed(detector, "on_event")
        if session is not None:
            for detector in self._session_detectors:
                try:
                    detector.on_session(session, now)
                except Exception:
                    self._detector_failed(detector, "on_session")
        dirty = self.topology.apply(event, changes, now, session)
        if dirty or session is not None or isinstance(event, _STATE_EVENTS):
            self._evaluate(now)
        self.book.advance(now)
        if self.relearning:
            self._check_relearn(now)

    def _in_scope(self, changes: list[RouteChanges]) -> list[RouteChanges]:
        """Return the changes restricted to the routes some scoped route detector judges."""
        select, exact = self._scope.select, self._scope_exact
        found = []
        for change in changes:
            items = select(change.family, change.items)
            if exact[change.family]:
                chosen = exact[change.family]
                extra = [item for item in change.items if item[0] in chosen]
                if extra:
                    keep = {id(item) for item in items}
                    items = [item for item in change.items if id(item) in keep or item[0] in chosen]
            if items:
                found.append(RouteChanges(change.at, change.peer, change.family, items, change.reason))
        return found

    def _tick_due(self, now: float) -> bool:
        """Tell whether the clock must tick before an event at ``now`` (the self-tick, or a deadline passed)."""
        return (
            self._last_tick is None
            or now - self._last_tick >= SELF_TICK
            or self.topology.next_deadline <= now
        )

    def process_outside(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        """Take one public peer's event (RIS Live) after the outside view applied it, at arrival time ``now``."""
        if self.now is not None and now < self.now:
            now = self.now  # the outside feed never moves the clock back
        if self._tick_due(now):
            self.tick(now)
        self.now = now
        self.book.advance(now)
        if changes or isinstance(event, SessionState):
            # Hijacks seen from the outside: judged by the route detectors, one alert whoever saw it.
            scoped = self._in_scope(changes)
            for detector in self._outside_route_detectors:
                try:
                    detector.on_event(event, scoped if detector.name in self._scoped else changes, now)
                except Exception:
                    self._detector_failed(detector, "on_event")
            self._evaluate_outside(now)
        self.book.advance(now)

    def outside_changed(self, now: float) -> None:
        """The outside feed went up or down: re-derive the outside conditions."""
        if self.now is not None and now < self.now:
            now = self.now
        self.tick(now)
        self._evaluate_outside(now)
        self.book.advance(now)

    def rpki_changed(self, now: float) -> None:
        """The VRP table or its usability changed (RTR End of Data, expiry, a recorded line): re-judge."""
        if self.now is not None and now < self.now:
            now = self.now  # the RTR client never moves the clock back
        if self._tick_due(now):
            self.tick(now)
        self.now = now
        self.book.advance(now)
        for detector in self._rpki_detectors:
            try:
                detector.rpki_changed(now)
            except Exception:
                self._detector_failed(detector, "rpki_changed")
        self.book.advance(now)

    def _evaluate_outside(self, now: float) -> None:
        for detector in self._outside_detectors:
            try:
                detector.evaluate(now)
            except Exception:
                self._detector_failed(detector, "evaluate")

    def _monitor_change(self, change: MonitorChange | None, now: float) -> None:
        """Follow what a BMP router reported (its monitoring session, one of its BGP sessions)."""
        self.book.advance(now)
        if change is None:
            return
        for detector in self._monitor_detectors:
            detector.on_monitor(change, now)
        self.topology.dirty = True
        self._evaluate(now)
        self.book.advance(now)

    def _planned_for(self, finding: Finding, at: float) -> dict[str, Any] | None:
        """Return the planned work an alert is part of (maintenance window, drain), or None."""
        if self.planned is None:
            return None
        labels = finding.labels
        return self.planned.match(labels.get("site"), labels.get("peer"), at)

    @property
    def collector_lost(self) -> dict[str, float]:
        """Return the sessions lost on the collector's side (address -> when)."""
        return self.sessions.collector_lost()

    def peer_loaded(self, address: str) -> bool:
        """Tell whether a peer's initial table is in, so its routes may be judged (see `bgpwatch.sessions`)."""
        return self.sessions.loaded(address)

    def peer_up(self, address: str) -> bool:
        """Tell whether a peer's session is up (peers without a configured session: unless told down)."""
        return self.sessions.is_up(address)

    def peer_identity(self, address: str) -> tuple[str, str | None, int | None]:
        """Return a peer's name (its address when not configured), site and AS, if known."""
        return self.sessions.identity(address)

    def tick(self, now: float) -> None:
        """Advance the clock without an event (timeouts, windows, pending alerts)."""
        if self.now is not None and now < self.now:
            return  # time never goes back; an old tick is meaningless
        # Time-based topology changes (convergence timeout, settling, start-up grace) happen at
        # their own instant, whatever the tick rate: a replay and a live run agree.
        for _ in range(1000):
            deadline = min(self.topology.next_deadline, self.sessions.next_deadline())
            if deadline >= now or (self.now is not None and deadline < self.now):
                break
            self._tick_at(deadline)
        self._tick_at(now)

    def next_due(self) -> float:
        """Return the next stream time the clock alone changes something (a deadline, or the self-tick).

        A replay ticks there between two events (`bgpwatch.playback`), as the live daemon's timer
        does, so a transition due at T is emitted at T, not with the next event.
        """
        now = self.now
        due = [self.topology.next_deadline, self.sessions.next_deadline(), self.book.next_due]
        if self._last_tick is not None:
            due.append(self._last_tick + SELF_TICK)  # windows of the detectors' on_tick
        if now is not None:
            due = [d for d in due if d > now]  # a stale deadline is no reason to tick again
        return min(due, default=INFINITY)

    def _tick_at(self, now: float) -> None:
        self.now = self._last_tick = now
        self.book.advance(now)
        for change in self.sessions.tick(now):
            for detector in self._session_detectors:
                try:
                    detector.on_session(change, now)
                except Exception:
                    self._detector_failed(detector, "on_session")
            self.topology.session_changed(change)
        self.topology.tick(now)
        if self.topology.dirty:
            self.topology.evaluate(now)
        for detector in self.detectors:
            try:
                detector.on_tick(now)
            except Exception:
                self._detector_failed(detector, "on_tick")
        self.book.advance(now)
        if self.relearning:
            self._check_relearn(now)

    def finish(self, now: float | None = None, horizon: float = 120.0) -> None:
        """End of a recording: let the clock run ``horizon`` seconds so pending alerts settle."""
        start = now if now is not None else (self.now or 0.0)
        step = 1.0
        t = start
        while t < start + horizon:
            t += step
            self.tick(t)

    def _evaluate(self, now: float) -> None:
        if self.topology.dirty:
            self.topology.evaluate(now)
        for detector in self.detectors:
            try:
                detector.evaluate(now)
            except Exception:
                self._detector_failed(detector, "evaluate")

    def _detector_failed(self, detector: Detector, call: str) -> None:
        """Count a detector's exception and log its traceback, at most once per minute per detector."""
        name = detector.name or type(detector).__name__
        self.detector_errors[name] += 1
        clock = time.monotonic()
        if clock - self._error_logged.get(name, -ERROR_LOG_EVERY) >= ERROR_LOG_EVERY:
            self._error_logged[name] = clock
            log.exception(
                "detector %s failed in %s; that call skipped, the others go on [%d error(s) so far]",
                name,
                call,
                self.detector_errors[name],
            )

    # -- views ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Return the topology and the active alerts, JSON-ready."""
        data = self.topology.snapshot(self.now)
        data["alerts"] = self.book.active()
        if self.outside.configured or self.outside.peers:
            data["outside"] = {
                "feed": self.outside.feed_status(),
                "prefixes": {
                    item.text: {"public_peers": len(item.seeing), "public_peers_seen": len(item.ever)}
                    for item in self.outside.own.values()
                },
            }
        if self.rpki.configured:
            data["rpki"] = self.rpki.to_dict()
        data["collector"] = {
            "sessions_lost": sorted(self.topology.vps[a].info.name for a in self.collector_lost)
        }
        return data

    def to_dot(self) -> str:
        """Return the site graph in Graphviz syntax."""
        return self.topology.to_dot()

    def active_alerts(self, include_pending: bool = False) -> list[dict[str, Any]]:
        """Return the firing alerts (pending ones too if asked)."""
        return self.book.active(include_pending)

    def incidents(self) -> list[dict[str, Any]]:
        """Return the incidents opened since start, newest first."""
        return self.book.incident_list()

    def history(self) -> list[dict[str, Any]]:
        """Return the last transitions emitted (bounded)."""
        return list(self.book.history)

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Expose the detection layer's gauges in ``registry`` (computed at scrape time)."""
        registry.register(DetectionCollector(self))


class DetectionCollector(Collector):
    """Site, visibility, island, service, stale-route and alert gauges, read at scrape time."""

    def __init__(self, engine: DetectionEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        engine = self.engine
        topology = engine.topology
        model = topology.model
        site_up = GaugeMetricFamily(
            "bgpwatch_site_up", "1 when the site is live, 0 otherwise", labels=["site"]
        )
        for site in model.sites:
            site_up.add_metric([site], 1.0 if topology.states[site].state == LIVE else 0.0)
        yield site_up
        ratio = GaugeMetricFamily(
            "bgpwatch_site_visibility_ratio",
            "Share of to_site's prefixes that from_site has a route to (only measured sites)",
            labels=["from_site", "to_site"],
        )
        for s in model.sites:
            for t in model.sites:
                value = topology.visibility(s, t)
                if value is not None:
                    ratio.add_metric([s, t], value)
        yield ratio
        islands = GaugeMetricFamily(
            "bgpwatch_topology_islands",
            "Connected components of the live sites (1 = whole, more = topology split; absent: unknown yet)",
        )
        if topology.known:
            islands.add_metric([], float(len(topology.islands)))
        yield islands
        reachable = GaugeMetricFamily(
            "bgpwatch_service_reachable",
            "1 when every prefix of the service is reachable from the site, 0 when not (absent: unknown)",
            labels=["service", "site"],
        )
        for (service, site), ok in topology.service_reach.items():
            if ok is not None:
                reachable.add_metric([service, site], 1.0 if ok else 0.0)
        yield reachable
        stale = GaugeMetricFamily(
            "bgpwatch_site_stale_routes",
            "Routes to a down site's prefixes still held by established sessions",
            labels=["site"],
        )
        for site in model.sites:
            stale.add_metric([site], float(sum(topology.stale.get(site, {}).values())))
        yield stale
        firing = GaugeMetricFamily(
            "bgpwatch_alerts_firing", "Alerts currently firing", labels=["kind", "severity"]
        )
        for (kind, severity), count in sorted(engine.book.firing_counts().items()):
            firing.add_metric([kind, severity], float(count))
        yield firing
