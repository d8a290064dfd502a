"""Prometheus metrics of the daemon, computed at scrape time from its live state.

Nothing on the hot path touches a metric object: the pipeline keeps plain integers, and
this collector reads them when Prometheus asks.  The registry is passed in, so every test
gets a fresh one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from bgpwatch import __version__

# Counters and histograms would each add a `*_created` series (the time the object was made): noise
# for every dashboard and rule here, so the whole process goes without (a process-wide switch).
disable_created_metrics()

if TYPE_CHECKING:
    from bgpwatch.collector.supervisor import Supervisor
    from bgpwatch.pipeline import Pipeline


class DaemonCollector(Collector):
    """Expose sessions, RIB sizes, ingest counters and ExaBGP workers."""

    def __init__(
        self,
        pipeline: Pipeline,
        supervisor: Callable[[], Supervisor | None] = lambda: None,
        reload_state: Callable[[], tuple[bool, float]] = lambda: (True, 0.0),
        clock: Callable[[], float] = time.time,
        *,
        faults: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        self.pipeline = pipeline
        self.supervisor = supervisor
        self.reload_state = reload_state
        self.clock = clock
        self.faults = faults  # relay links and store writes (Daemon._fault_metrics)

    def collect(self) -> Iterator:
        now = self.clock()
        pipeline = self.pipeline
        yield InfoMetricFamily("bgpwatch_build", "bgpwatch version", value={"version": __version__})

        up = GaugeMetricFamily(
            "bgpwatch_peer_up", "1 when the BGP session is established", labels=["peer", "site", "address"]
        )
        routes = GaugeMetricFamily(
            "bgpwatch_peer_routes", "Routes in the peer's Adj-RIB-In", labels=["peer", "site", "family"]
        )
        age = GaugeMetricFamily(
            "bgpwatch_peer_last_message_age_seconds",
            "Seconds since the last message about the peer",
            labels=["peer", "site"],
        )
        announced = CounterMetricFamily(
            "bgpwatch_announcements", "Prefix announcements received", labels=["peer", "site"]
        )
        withdrawn = CounterMetricFamily(
            "bgpwatch_withdrawals", "Prefix withdrawals received", labels=["peer", "site"]
        )
        downs = CounterMetricFamily(
            "bgpwatch_peer_session_drops", "Times the established session went down", labels=["peer", "site"]
        )
        for session in pipeline.sessions.by_address.values():
            labels = [session.name, session.site]
            up.add_metric([*labels, session.address], 1.0 if session.up else 0.0)
            rib = pipeline.rib.peers.get(session.address)
            for family in (4, 6):
                routes.add_metric([*labels, f"ipv{family}"], float(len(rib.tables[family])) if rib else 0.0)
            if session.last_message is not None:
                age.add_metric(labels, max(0.0, now - session.last_message))
            announced.add_metric(labels, float(rib.announcements) if rib else 0.0)
            withdrawn.add_metric(labels, float(rib.withdrawals) if rib else 0.0)
            downs.add_metric(labels, float(len(session.downs)))
        yield from (up, routes, age, announced, withdrawn, downs)

        yield CounterMetricFamily("bgpwatch_ingest_lines", "Input lines read", value=float(pipeline.lines))
        errors = CounterMetricFamily(
            "bgpwatch_ingest_errors", "Input lines rejected, by reason", labels=["reason"]
        )
        for reason, count in sorted(pipeline.errors.items()):
            errors.add_metric([reason], float(count))
        yield errors
        # Exceptions each detector raised (contained by the engine: that call skipped, the rest go on).
        detector_errors = CounterMetricFamily(
            "bgpwatch_detector_errors", "Detector calls that raised (skipped, logged)", labels=["detector"]
        )
        for name, count in sorted(getattr(pipeline.consumer, "detector_errors", {}).items()):
            detector_errors.add_metric([name], float(count))
        yield detector_errors
        unknown = CounterMetricFamily(
            "bgpwatch_ingest_unknown_peer_messages", "Messages about peers not in the configuration"
        )
        unknown.add_metric([], float(sum(pipeline.sessions.unknown_peers.values())))
        yield unknown
        yield CounterMetricFamily(
            "bgpwatch_relay_dropped_lines",
            "Lines the relay dropped while the daemon was unreachable",
            value=float(pipeline.lost_lines),
        )
        # Times are the pipeline's: the stream clock (wall time live, the recording's time in a served
        # replay), so ages and the rules built on them mean the same in both.
        yield GaugeMetricFamily(
            "bgpwatch_stream_time_seconds",
            "The pipeline's clock: wall time live, the recording's time in a replay",
            value=now,
        )
        if pipeline.last_event_at is not None:
            yield GaugeMetricFamily(
                "bgpwatch_last_message_timestamp_seconds",
                "Time of the last event received",
                value=pipeline.last_event_at,
            )
            yield GaugeMetricFamily(
                "bgpwatch_last_message_age_seconds",
                "Seconds since the last event received, on the pipeline's clock",
                value=max(0.0, now - pipeline.last_event_at),
            )
        yield GaugeMetricFamily(
            "bgpwatch_attribute_sets", "Distinct interned attribute sets", value=float(len(pipeline.pool))
        )
        yield from self._outside_metrics(pipeline)

        supervisor = self.supervisor()
        if supervisor is not None:
            restarts = CounterMetricFamily(
                "bgpwatch_exabgp_restarts", "ExaBGP child restarts", labels=["worker"]
            )
            running = GaugeMetricFamily(
                "bgpwatch_exabgp_up", "1 when the ExaBGP child runs", labels=["worker"]
            )
            for worker in supervisor.workers:
                restarts.add_metric([str(worker.plan.index)], float(worker.restarts))
                running.add_metric([str(worker.plan.index)], 1.0 if worker.up else 0.0)
            yield restarts
            yield running

        yield from self._fault_metrics(self.faults())

        ok, at = self.reload_state()
        yield GaugeMetricFamily(
            "bgpwatch_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded",
            value=1.0 if ok else 0.0,
        )
        if at:
            yield GaugeMetricFamily(
                "bgpwatch_config_last_reload_success_timestamp_seconds",
                "Time of the last successful configuration load",
                value=at,
            )

    @staticmethod
    def _outside_metrics(pipeline: Pipeline) -> Iterator:
        """The RIS Live feed and the RPKI data, when configured (their alerts say why; these graph it)."""
        outside = pipeline.outside
        if outside.configured:
            yield GaugeMetricFamily(
                "bgpwatch_outside_feed_up",
                "1 when the RIS Live feed is up",
                value=1.0 if outside.feed_up else 0.0,
            )
            yield CounterMetricFamily(
                "bgpwatch_outside_frames", "RIS Live frames received", value=float(outside.frames)
            )
            yield GaugeMetricFamily(
                "bgpwatch_outside_public_peers",
                "Public peers heard on RIS Live",
                value=float(len(outside.peers)),
            )
            seen = GaugeMetricFamily(
                "bgpwatch_outside_prefix_public_peers",
                "Public peers routing an own prefix now (RIS Live)",
                labels=["prefix"],
            )
            for item in outside.own.values():
                seen.add_metric([item.text], float(len(item.seeing)))
            yield seen
        rpki = pipeline.rpki
        if rpki.configured:
            yield GaugeMetricFamily(
                "bgpwatch_rpki_usable",
                "1 when RTR data is usable (loaded, not expired)",
                value=1.0 if rpki.usable else 0.0,
            )
            stats = rpki.table.stats()
            vrps = GaugeMetricFamily("bgpwatch_rpki_vrps", "VRPs in the table in use", labels=["family"])
            vrps.add_metric(["ipv4"], float(stats["ipv4"]))
            vrps.add_metric(["ipv6"], float(stats["ipv6"]))
            yield vrps
            if rpki.updated_at is not None:
                yield GaugeMetricFamily(
                    "bgpwatch_rpki_last_update_timestamp_seconds",
                    "Time of the last RTR End of Data applied",
                    value=rpki.updated_at,
                )

    @staticmethod
    def _fault_metrics(faults: Mapping[str, Any]) -> Iterator:
        """Relay connections (external mode: their death and silence) and alert store writes."""
        if not faults:
            return
        relay_up = GaugeMetricFamily(
            "bgpwatch_relay_up",
            "1 when a relay of the ExaBGP worker is connected and speaking",
            labels=["worker"],
        )
        for worker, up in sorted(faults.get("relay_up", {}).items()):
            relay_up.add_metric([str(worker)], 1.0 if up else 0.0)
        yield relay_up
        relay_faults = CounterMetricFamily(
            "bgpwatch_relay_faults",
            "Relay faults: lost (closed without goodbye), silent (no heartbeat), ended (goodbye)",
            labels=["kind"],
        )
        for kind in ("lost", "silent", "ended"):
            relay_faults.add_metric([kind], float(faults.get("relay_faults", {}).get(kind, 0)))
        yield relay_faults
        held = CounterMetricFamily(
            "bgpwatch_relay_backpressure_seconds",
            "Seconds the relay left ExaBGP's output unread because the daemon was behind (ExaBGP waited; "
            "taken from the relay's heartbeats)",
            labels=["worker"],
        )
        holds = CounterMetricFamily(
            "bgpwatch_relay_backpressure_holds",
            "Times the relay made ExaBGP wait because the daemon was behind (back-pressure)",
            labels=["worker"],
        )
        for worker, (seconds, times) in sorted(faults.get("relay_backpressure", {}).items()):
            held.add_metric([str(worker)], seconds)
            holds.add_metric([str(worker)], float(times))
        yield held
        yield holds
        yield CounterMetricFamily(
            "bgpwatch_relay_refresh_requests",
            "Route refreshes asked of ExaBGP through a relay (external mode, at each relay (re)connection)",
            value=float(faults.get("relay_refresh_requests", 0)),
        )
        yield GaugeMetricFamily(
            "bgpwatch_store_writable",
            "1 when the alert store's last write succeeded and nothing waits to be stored",
            value=1.0 if faults.get("store_writable", True) else 0.0,
        )
        yield CounterMetricFamily(
            "bgpwatch_store_write_errors",
            "Alert store writes that failed (disk full, I/O error)",
            value=float(faults.get("store_write_errors", 0)),
        )
        yield GaugeMetricFamily(
            "bgpwatch_store_held_transitions",
            "Alert transitions held in memory until the store can write them",
            value=float(faults.get("store_held", 0)),
        )
        yield CounterMetricFamily(
            "bgpwatch_store_dropped_transitions",
            "Alert transitions never stored: the in-memory hold overflowed while the store could not write",
            value=float(faults.get("store_dropped", 0)),
        )


def build_registry(collector: DaemonCollector, process: bool = True) -> CollectorRegistry:
    """Return a fresh registry holding the daemon's collector and the process_* and python_* ones."""
    registry = CollectorRegistry()
    registry.register(collector)
    if process:
        # RSS, CPU seconds, open and max fds (Linux /proc; nothing elsewhere), the interpreter's
        # version and its garbage collector: what watching a full-table collector's memory needs.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)  # registers nothing where gc.get_stats is missing (PyPy)
    return registry


# BMP Statistics Report types (RFC 7854 4.8, RFC 8671): the router's own counters, last value reported.
BMP_STAT_NAMES = {
    0: "rejected_prefixes",
    1: "duplicate_prefix_advertisements",
    2: "duplicate_withdraws",
    3: "cluster_list_loop_invalidated",
    4: "as_path_loop_invalidated",
    5: "originator_id_invalidated",
    6: "as_confed_loop_invalidated",
    7: "adj_rib_in_routes",
    8: "loc_rib_routes",
    9: "adj_rib_in_routes_per_afi_safi",
    10: "loc_rib_routes_per_afi_safi",
    11: "updates_treated_as_withdraw",
    12: "prefixes_treated_as_withdraw",
    13: "duplicate_update_messages",
    14: "adj_rib_out_pre_policy_routes",
    15: "adj_rib_out_post_policy_routes",
}


class BmpCollector(Collector):
    """BMP routers, the sessions they report and their Statistics Reports, read at scrape time."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def collect(self) -> Iterator:
        from bgpwatch.events import split_view_key

        monitors = self.pipeline.sessions.monitors
        router_up = GaugeMetricFamily(
            "bgpwatch_bmp_router_up", "1 while bgpwatch hears the BMP router", labels=["router", "site"]
        )
        session_up = GaugeMetricFamily(
            "bgpwatch_bmp_session_up",
            "1 when the router reports its BGP session to the peer established",
            labels=["router", "peer", "kind", "peer_site"],
        )
        stats = GaugeMetricFamily(
            "bgpwatch_bmp_peer_statistic",
            "Last value of a BMP Statistics Report counter (RFC 7854 4.8) for a monitored peer",
            labels=["router", "peer", "type"],
        )
        for router in monitors.routers.values():
            router_up.add_metric([router.name, router.site or ""], 1.0 if router.heard else 0.0)
            for peer in router.peers.values():
                site = monitors.site_of_peer(peer)
                kind = monitors.kind_of(router, peer)
                session_up.add_metric(
                    [router.name, peer.address, kind, site or ""], 1.0 if peer.state == "up" else 0.0
                )
                for stat, value in sorted(peer.stats.items()):
                    stats.add_metric([router.name, peer.address, BMP_STAT_NAMES.get(stat, str(stat))], value)
        yield router_up
        yield session_up
        yield stats
        routes = GaugeMetricFamily(
            "bgpwatch_bmp_routes",
            "Routes in a BMP router's view of a peer (policy: pre, post; loc = its Loc-RIB)",
            labels=["router", "peer", "policy"],
        )
        for key, table in self.pipeline.bmp_rib.peers.items():
            router_name, peer_address, policy = split_view_key(key)
            routes.add_metric([router_name, peer_address, policy], float(len(table)))
        yield routes
        yield CounterMetricFamily(
            "bgpwatch_bmp_messages", "BMP messages received", value=float(self.pipeline.bmp_messages)
        )
