"""FRR 8.4 sites with graceful restart on a ring plus a chord, separate IPv4/IPv6 sessions, bgpwatch recording.

The lab (module fixture): 4 FRR sites par1..par4 on the ring par1-par2-par3-par4-par1 plus the
chord par1-par3, an IPv4 and an IPv6 session on every link, graceful restart on every FRR session
(restart-time 20 s, hold 9 s: a silently dead site's routes are kept ~29 s), one dual-stack
collector session per site (ExaBGP managed by bgpwatch, advertising graceful restart so FRR sends
End-of-RIB).  198.51.100.240/28 is anycast: originated by par2 and par4.

Each scenario acts on the lab, checks what the routers say (sessions, routes, GR stale routes),
finds the decisive BGP message in bgpwatch's input recording, recovers, and collects bgpwatch's
alert transitions and incidents.  Asserted: ``now`` in EXPECTED (what the routers and bgpwatch
must show) and ``target``, the issue-9 incident model (exactly one incident per root cause, its kind,
labels and severity); BGPWATCH_LAB_STRICT=0 skips the ``target`` checks, for bisecting.  With BGPWATCH_SAVE_FIXTURES=DIR the whole run's recording, config and
transitions/timeline are saved there (that is how fixtures/lab/frr-scenarios.* were made).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.lab import Lab, SiteSpec, lab_available, ring, sites
from tests.lab.daemon import LabDaemon

UNAVAILABLE = lab_available(("frr",))
pytestmark = [pytest.mark.lab, pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))]

STRICT = os.environ.get("BGPWATCH_LAB_STRICT", "1") != "0"
RESTART_TIME = 20  # FRR `bgp graceful-restart restart-time`: short, so the silent-death window is ~29 s
HOLD = 9
ANYCAST = "198.51.100.240/28"
SITES = [
    SiteSpec("par1", 65001, ("203.0.113.0/27", "203.0.113.32/27", "2001:db8:1001::/48"), router="frr"),
    SiteSpec(
        "par2", 65002, ("203.0.113.64/27", "203.0.113.96/27", "2001:db8:1002::/48", ANYCAST), router="frr"
    ),
    SiteSpec("par3", 65003, ("203.0.113.128/27", "203.0.113.160/27", "2001:db8:1003::/48"), router="frr"),
    SiteSpec(
        "par4", 65004, ("203.0.113.192/27", "203.0.113.224/27", "2001:db8:1004::/48", ANYCAST), router="frr"
    ),
]
NAMES = [spec.name for spec in SITES]
LINKS = ring(NAMES, chords=[("par1", "par3")])
SERVICES = [
    {"name": "metrics-api", "prefixes": ["203.0.113.70/32"], "required_from": ["par1", "par3"]},
    {"name": "anycast-dns", "prefixes": ["198.51.100.241/32"], "required_from": ["par1", "par3"]},
]
SEVERITY = {"info": 0, "warning": 1, "critical": 2}

# Per scenario: `now` = checked on every run (holds with today's detection code and is right):
#   alert_due: at least one alert fires; max_severity: no firing transition above it; clean_end:
#   nothing firing once the scenario is undone and the network has re-converged.
# `target` = the issue-9 model, checked by check_expected() (unless BGPWATCH_LAB_STRICT=0):
#   incidents: how many open during the scenario (one per root cause); root: (kind or None = any,
#   labels the root must carry); severity: the highest severity of the firing transitions (None: any);
#   absent: alert kinds that must not appear; quiet_labels: no transition may carry these labels;
#   clean_end: as in `now`, where today's code does not get it right yet.
EXPECTED: dict[str, dict[str, Any]] = {
    "power_loss_silent_par2": {
        "now": {"alert_due": True, "clean_end": True},
        # bgpwatch's session to par2 dies on its hold timer while par1/par3 keep par2's routes (GR);
        # their withdrawals ~20 s later confirm the death: one incident, escalated, not two.  The
        # anycast prefix and its service stay reachable through par4.
        "target": {
            "incidents": 1,
            "root": ("site_down", {"site": "par2"}),
            "severity": "critical",
            "absent": {"topology_split"},
            "quiet_labels": [{"service": "anycast-dns"}, {"prefix": ANYCAST}],
        },
    },
    "bgpd_restart_par3": {
        "now": {"alert_due": True, "clean_end": True},
        # GR helpers keep par3's routes (and forwarding): only bgpwatch's own vantage point is lost.
        "target": {
            "incidents": 1,
            "root": ("session_down", {"site": "par3", "peer": "par3-rr1"}),
            "severity": "warning",
            "absent": {"site_down", "topology_split", "visibility_loss"},
        },
    },
    "link_cut_reroute_par1_par2": {
        "now": {"alert_due": True, "max_severity": "warning", "clean_end": True},
        # Issue 9 §8: an adjacency stopped carrying routes, traffic detours: one warning, no critical.
        "target": {
            "incidents": 1,
            "root": ("path_detour", {"link": "par1-par2"}),
            "severity": "warning",
            "absent": {"site_down", "topology_split"},
        },
    },
    "link_cut_split_par4": {
        "now": {"alert_due": True, "clean_end": True},
        "target": {
            "incidents": 1,
            "root": ("topology_split", {"islands": "par1,par2,par3 | par4"}),
            "severity": "critical",
            "absent": {"site_down", "session_down"},
        },
    },
    "ipv6_sessions_shut_par3": {
        "now": {"alert_due": True, "clean_end": True},
        # par3's IPv6 prefix missing everywhere and the others' IPv6 prefixes missing at par3: one
        # incident about par3.
        "target": {
            "incidents": 1,
            "root": (None, {"site": "par3"}),
            "severity": None,
            "absent": {"site_down", "session_down", "topology_split"},
        },
    },
    "export_deny_par1": {
        "now": {"alert_due": True, "clean_end": True},
        # Every session stays up: one alert about par1 (mass withdrawal / visibility loss), on time,
        # never site_down (nor a split: par1 still receives everything).
        "target": {
            "incidents": 1,
            "root": (None, {"site": "par1"}),
            "severity": None,
            "absent": {"site_down", "session_down", "topology_split"},
        },
    },
    "link_flap_par1_par2": {
        "now": {"alert_due": True, "max_severity": "warning", "clean_end": True},
        # Ten detours and returns in 20 s: one incident (the flapping adjacency), no critical.
        "target": {
            "incidents": 1,
            "root": ("path_detour", {"link": "par1-par2"}),
            "severity": "warning",
            "absent": {"site_down", "topology_split"},
        },
    },
    "blackhole_collector_par4": {
        "now": {"alert_due": True, "clean_end": True},
        # Only bgpwatch's session to par4 dies (hold timer); par1/par3 still announce par4's routes.
        "target": {
            "incidents": 1,
            "root": ("session_down", {"site": "par4", "peer": "par4-rr1"}),
            "severity": "warning",
            "absent": {"site_down", "visibility_loss", "topology_split"},
        },
    },
    "drain_then_power_off_par2": {
        "now": {"alert_due": True, "max_severity": "info", "clean_end": True},
        # RFC 8326: par2 drains (65535:0), then is switched off: planned work, info, not paged; one
        # incident for the maintenance, closed once par2 is back undrained.
        "target": {
            "incidents": 1,
            "root": (None, {"site": "par2"}),
            "severity": "info",
            "absent": set(),
            "clean_end": True,
        },
    },
    "collector_restart": {
        "now": {"alert_due": True, "clean_end": True},
        "target": {
            "incidents": 1,
            "root": ("collector_degraded", {}),
            "severity": None,
            "absent": {"site_down"},
        },
    },
}


@dataclass
class Outcome:
    """What one scenario produced: times (epoch s), bgpwatch's transitions and incidents, the decisive messages."""

    name: str
    started: float
    acted: float = 0.0
    recovered: float = 0.0
    ended: float = 0.0
    transitions: list[dict] = field(default_factory=list)
    incidents: list[dict] = field(default_factory=list)
    decisive: dict[str, float | None] = field(default_factory=dict)
    latency: dict[str, float | None] = field(default_factory=dict)
    open_at_end: list[dict] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "acted": self.acted,
            "recovered": self.recovered,
            "ended": self.ended,
            "decisive": self.decisive,
            "latency": self.latency,
            "incidents": [
                {k: i.get(k) for k in ("id", "status", "root_kind", "root_labels", "summary", "opened_at")}
                for i in self.incidents
            ],
            "transitions": [brief(t) for t in self.transitions],
            "open_at_end": [brief(t) for t in self.open_at_end],
            "notes": self.notes,
        }


OUTCOMES: dict[str, Outcome] = {}


def ts(at: str) -> float:
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def brief(t: dict) -> dict[str, Any]:
    keys = ("kind", "state", "severity", "labels", "incident", "at", "planned", "maintenance")
    return {key: t[key] for key in keys if key in t}


# -- the recording (bgpwatch's own input, ExaBGP JSON lines) ------------------------------------------


def recorded(daemon: LabDaemon, since: float) -> list[dict]:
    """Return the recorded ExaBGP lines stamped at or after ``since`` (parts being written included)."""
    lines = []
    for part in sorted((daemon.tmpdir / "recording").glob("exabgp-*.jsonl.gz")):
        try:
            with gzip.open(part, "rt") as stream:
                for line in stream:
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(doc, dict) and stamp(doc) >= since:
                        lines.append(doc)
        except (EOFError, OSError):
            continue  # the part being written: its gzip stream is not closed yet
    return lines


def stamp(doc: dict) -> float:
    """Return a recorded line's time: ExaBGP's stamp, or that of bgpwatch's control line."""
    if "time" in doc:
        return float(doc["time"])
    control = doc.get("bgpwatch-relay", {}).get("collector", {})
    return float(control.get("time", 0))


def first_line(
    daemon: LabDaemon, since: float, predicate: Callable[[dict], bool], wait: float = 5.0
) -> float | None:
    """Return ExaBGP's stamp of the first recorded line after ``since`` matching ``predicate``.

    The recorder flushes every second: look again for ``wait`` seconds before giving up.
    """
    deadline = time.monotonic() + wait
    while True:
        for doc in recorded(daemon, since):
            if predicate(doc):
                return stamp(doc)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.3)


def _nlri(item: Any) -> str:
    return item["nlri"] if isinstance(item, dict) else str(item)


def _update(doc: dict) -> dict:
    if doc.get("type") != "update":
        return {}
    return doc.get("neighbor", {}).get("message", {}).get("update", {}) or {}


def _peer(doc: dict) -> str:
    return str(doc.get("neighbor", {}).get("address", {}).get("peer", ""))


def withdraws_of(prefixes, *, from_peer: str | None = None, not_from: str | None = None):
    """Match an UPDATE withdrawing one of ``prefixes`` (optionally only from / not from a peer)."""
    wanted = set(prefixes)

    def match(doc: dict) -> bool:
        peer = _peer(doc)
        if (from_peer and peer != from_peer) or (not_from and peer == not_from):
            return False
        return any(_nlri(n) in wanted for nlris in _update(doc).get("withdraw", {}).values() for n in nlris)

    return match


def announces_of(
    prefixes, *, from_peer: str, path_len: int | None = None, community: list[int] | None = None
):
    """Match an UPDATE from ``from_peer`` announcing one of ``prefixes`` (AS path length / community)."""
    wanted = set(prefixes)

    def match(doc: dict) -> bool:
        if _peer(doc) != from_peer:
            return False
        update = _update(doc)
        found = any(
            _nlri(n) in wanted
            for by_hop in update.get("announce", {}).values()
            for nlris in by_hop.values()
            for n in nlris
        )
        if not found:
            return False
        attributes = update.get("attribute", {})
        if path_len is not None:
            segments = attributes.get("as-path", {})
            length = (
                sum(len(s.get("value", [])) for s in segments.values()) if isinstance(segments, dict) else 0
            )
            if length != path_len:
                return False
        return community is None or community in attributes.get("community", [])

    return match


def state_of(address: str, state: str):
    def match(doc: dict) -> bool:
        return doc.get("type") == "state" and _peer(doc) == address and doc["neighbor"].get("state") == state

    return match


# -- bgpwatch side -------------------------------------------------------------------------------------


def gr_advertised(daemon: LabDaemon) -> bool:
    """Return whether the ExaBGP configuration bgpwatch wrote advertises graceful restart."""
    configs = list((daemon.tmpdir / "run").rglob("*.conf"))
    return any("graceful-restart" in path.read_text() for path in configs)


def peers_of(daemon: LabDaemon) -> dict[str, dict]:
    """Return bgpwatch's sessions by name (the API, polled without a CLI start-up per call)."""
    return {p["name"]: p for p in daemon.get("/api/v1/peers") or []}


def firing_now(daemon: LabDaemon) -> list[dict]:
    return list(daemon.get("/api/v1/alerts") or [])


def converged(daemon: LabDaemon, with_eor: bool) -> bool:
    peers = peers_of(daemon)
    if len(peers) != len(SITES):
        return False
    return all(p["state"] == "up" and (not with_eor or len(p["end_of_rib"]) == 2) for p in peers.values())


def transitions_since(daemon: LabDaemon, since: float) -> list[dict]:
    return [t for t in daemon.cli("alerts", "--transitions") if ts(t["at"]) >= since]


def incidents_since(daemon: LabDaemon, since: float) -> list[dict]:
    return [i for i in daemon.cli("incidents") if i.get("opened_at") and ts(i["opened_at"]) >= since]


@pytest.fixture(scope="module")
def lab():
    with Lab(
        SITES,
        links=LINKS,
        split_families=True,
        hold_time=HOLD,
        keepalive_time=3,
        connect_retry=2,
        graceful_restart=True,
        restart_time=RESTART_TIME,
        prefix="bwtfrr",
    ) as lab:
        lab.wait_established(60)
        yield lab


@pytest.fixture(scope="module")
def daemon(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frr")
    daemon = LabDaemon(
        lab,
        tmp,
        services=SERVICES,
        anycast=[ANYCAST],  # originated by par2 and par4, declared as such (issue 9 §5)
        recording={"path": str(tmp / "recording")},
    )
    daemon.start()
    daemon.with_eor = gr_advertised(daemon)  # type: ignore[attr-defined]
    daemon.wait_for(lambda: converged(daemon, daemon.with_eor), 90, "every session up (with End-of-RIB)")
    yield daemon
    if daemon.process.poll() is None:
        daemon.stop()
    daemon.save_recording(
        "frr-scenarios",
        {
            "lab": {
                "sites": {spec.name: {"asn": spec.asn, "prefixes": list(spec.prefixes)} for spec in SITES},
                "links": [list(pair) for pair in LINKS],
                "router_addresses": {name: lab.router_address(name).v4 for name in NAMES},
                "hold_time": HOLD,
                "restart_time": RESTART_TIME,
            },
            "scenarios": {name: outcome.summary() for name, outcome in OUTCOMES.items()},
        },
    )


# Alerts a scenario left firing (reported there): later scenarios neither wait for nor blame them.
LEFTOVER: set[str] = set()


def alert_id(t: dict) -> str:
    return json.dumps([t["kind"], t["labels"]], sort_keys=True)


def whole(daemon: LabDaemon) -> bool:
    topo = daemon.get("/api/v1/topology") or {}
    sites_ = topo.get("sites") or []
    return (
        len(topo.get("islands") or []) == 1
        and bool(sites_)
        and all(site.get("state") == "live" and not site.get("settling") for site in sites_)
    )


def settle(daemon: LabDaemon, lab: Lab, quiet: float = 30.0) -> list[dict]:
    """Wait for the network and bgpwatch to be nominal; return what is still firing after ``quiet`` s."""
    lab.wait_established(60)
    daemon.wait_for(lambda: converged(daemon, daemon.with_eor), 90, "all sessions converged again")
    deadline = time.monotonic() + quiet

    def firing() -> list[dict]:
        return [t for t in firing_now(daemon) if alert_id(t) not in LEFTOVER]

    still = firing()
    while still and time.monotonic() < deadline:
        time.sleep(0.3)
        still = firing()
    return still


def scenario(
    name: str,
    daemon: LabDaemon,
    lab: Lab,
    act: Callable[[], None],
    observe: Callable[[Outcome], None],
    recover: Callable[[], None],
    decisive: dict[str, Callable[[dict], bool]],
    whole_for: float = 0.0,
) -> Outcome:
    """Act, observe (router-level checks), recover, collect bgpwatch's view; check EXPECTED; print it.

    ``whole_for``: wait until bgpwatch sees the network whole (one island, every site live, none
    settling), then that long before acting: path_detour learns the direct adjacencies only while
    the network is whole (for 5 s).
    """
    before = settle(daemon, lab)
    if whole_for:
        daemon.wait_for(lambda: whole(daemon), 60, "network whole, no site settling")
        time.sleep(whole_for)
    outcome = Outcome(name, started=time.time())
    if before:
        outcome.notes["firing_before"] = [brief(t) for t in before]
    try:
        act()
        outcome.acted = time.time()
        observe(outcome)
        time.sleep(2)  # the detectors' de-bounce and the recorder's flush
    except BaseException:
        # Leave the lab nominal for the next scenario, then report this one's failure.
        with contextlib.suppress(Exception):
            recover()
        with contextlib.suppress(Exception):
            lab.restore()
        raise
    recover()
    outcome.recovered = time.time()
    outcome.open_at_end = settle(daemon, lab)
    LEFTOVER.update(alert_id(t) for t in outcome.open_at_end)
    outcome.ended = time.time()
    outcome.transitions = transitions_since(daemon, outcome.started)
    outcome.incidents = incidents_since(daemon, outcome.started)
    firings = sorted(ts(t["at"]) for t in outcome.transitions if t["state"] == "firing")
    for label, predicate in decisive.items():
        at = first_line(daemon, outcome.started, predicate, wait=2.0)
        outcome.decisive[label] = at
        after = [f for f in firings if at is not None and f >= at - 0.05]
        outcome.latency[label] = round(after[0] - at, 3) if after and at is not None else None
    OUTCOMES[name] = outcome
    report(outcome)
    check_expected(name, outcome)
    return outcome


def report(outcome: Outcome) -> None:
    roots = 1
    print(f"\n=== {outcome.name}: {len(outcome.incidents)} incident(s) opened for {roots} root cause")
    for incident in outcome.incidents:
        print(
            f"  incident {incident.get('id')} [{incident.get('root_kind')} {incident.get('root_labels')}]: {incident.get('summary')}"
        )
    for t in outcome.transitions:
        print(
            f"  +{ts(t['at']) - outcome.started:7.2f}s {t['state']:8} {t['kind']} {t['labels']} ({t.get('severity')})"
        )
    print(f"  (times from the start of the action; it returned at +{outcome.acted - outcome.started:.2f}s)")
    for label, at in outcome.decisive.items():
        rel = None if at is None else round(at - outcome.started, 2)
        print(f"  decisive {label}: at +{rel}s, first alert after it: {outcome.latency[label]} s")
    if outcome.open_at_end:
        print(f"  still firing at the end: {[brief(t) for t in outcome.open_at_end]}")


def check_expected(name: str, outcome: Outcome) -> None:
    """Check EXPECTED[name]: `now` always, `target` unless BGPWATCH_LAB_STRICT=0."""
    expected = EXPECTED[name]
    now, dump = expected["now"], json.dumps(outcome.summary(), indent=1)
    firing = [t for t in outcome.transitions if t["state"] == "firing"]
    if now.get("alert_due"):
        assert firing, f"{name}: an alert was due\n{dump}"
    if now.get("max_severity"):
        worst = max((SEVERITY.get(t.get("severity"), 2) for t in firing), default=0)
        assert worst <= SEVERITY[now["max_severity"]], f"{name}: above {now['max_severity']}\n{dump}"
    if now.get("clean_end"):
        assert outcome.open_at_end == [], f"{name}: still firing after recovery\n{dump}"
    if not STRICT:
        return
    target = expected["target"]
    assert len(outcome.incidents) == target["incidents"], f"{name}: incidents\n{dump}"
    if target.get("root") is not None:
        kind, labels = target["root"]
        root = outcome.incidents[0]
        root_labels = root.get("root_labels") or {}
        assert kind is None or root.get("root_kind") == kind, f"{name}: root kind\n{dump}"
        assert all(root_labels.get(k) == v for k, v in labels.items()), f"{name}: root labels\n{dump}"
    if target.get("severity"):
        worst = max((SEVERITY.get(t.get("severity"), 2) for t in firing), default=-1)
        assert worst == SEVERITY[target["severity"]], f"{name}: severity\n{dump}"
    if target.get("clean_end"):
        assert outcome.open_at_end == [], f"{name}: still firing after recovery\n{dump}"
    kinds = {t["kind"] for t in outcome.transitions}
    assert not kinds & set(target.get("absent", ())), f"{name}: unexpected kinds\n{dump}"
    for quiet in target.get("quiet_labels", ()):
        noisy = [t for t in outcome.transitions if all(t["labels"].get(k) == v for k, v in quiet.items())]
        assert not noisy, f"{name}: {quiet} should raise nothing\n{dump}"


# -- tests ---------------------------------------------------------------------------------------------


def test_smoke_sessions_routes_end_of_rib_and_graceful_restart(lab, daemon):
    # The routers: every inter-site session Established on both families, GR negotiated on all of them.
    for site in NAMES:
        states = lab.session_states(site)
        peer_sessions = [name for name in states if name != "collector"]
        assert len(peer_sessions) == 2 * sum(site in pair for pair in LINKS)
        assert all(states[name] == "Established" for name in states), states
        for name in states:
            assert lab.router(site).graceful_restart(name) is True, (site, name)
    text = lab.vtysh("par1", "show bgp neighbors 198.51.100.2")
    assert "Graceful Restart Capability: advertised and received" in text
    assert f"Configured Restart Time(sec): {RESTART_TIME}" in text
    # Every prefix reaches every site (one table dump per site and family); the anycast prefix
    # resolves to its nearest origin.
    every = {p for spec in SITES for p in spec.prefixes}
    for site in NAMES:
        lab.wait_for(lambda site=site: lab.route_count(site) == len(every), 20, f"every prefix at {site}")
    assert lab.best_path("par1", "203.0.113.128/27") == (65003,)  # over the chord
    assert lab.best_path("par1", ANYCAST) in ((65002,), (65004,))
    # bgpwatch: every session up, End-of-RIB for both families (FRR sends it only to a GR-capable peer).
    peers = daemon.peers()
    assert set(peers) == {f"{name}-rr1" for name in NAMES}
    assert all(p["state"] == "up" for p in peers.values())
    if daemon.with_eor:
        assert all(sorted(p["end_of_rib"]) == ["ipv4", "ipv6"] for p in peers.values()), peers
    daemon.wait_for(
        lambda: all(
            {r["prefix"] for r in daemon.get("/api/v1/prefixes", peer=f"{n}-rr1", limit="100000") or []}
            >= every
            for n in NAMES
        ),
        30,
        "every prefix from every site's session",
    )
    assert firing_now(daemon) == []


def test_power_loss_without_carrier(lab, daemon):
    par2 = lab.router_address("par2").v4
    unicast = [p for p in lab.site_prefixes("par2") if p != ANYCAST]

    def observe(outcome: Outcome) -> None:
        # bgpwatch's session dies on its hold timer; par1 keeps par2's routes as GR-stale meanwhile.
        daemon.wait_for(lambda: peers_of(daemon)["par2-rr1"]["state"] != "up", HOLD + 6, "par2-rr1 down")
        # par1's own hold timer runs independently of ExaBGP's: wait for it too.
        lab.wait_for(
            lambda: lab.session_states("par1")["peer_par2"] != "Established", HOLD + 5, "par1 drops par2"
        )
        outcome.notes["par1_noticed_after"] = round(time.time() - outcome.started, 1)
        outcome.notes["par1_stale_at_session_down"] = lab.router("par1").stale("203.0.113.64/27")
        assert lab.best_path("par1", "203.0.113.64/27") is not None, "GR: still there at the hold timer"
        # ... until the restart time is over: then the withdrawals confirm the death.
        lab.wait_route("par1", "203.0.113.64/27", present=False, timeout=HOLD + RESTART_TIME + 10)
        outcome.notes["withdrawn_at_par1_after"] = round(time.time() - outcome.started, 1)
        assert lab.best_path("par1", ANYCAST) == (65004,), "anycast: the other origin serves"
        assert lab.best_path("par3", ANYCAST) == (65004,)

    scenario(
        "power_loss_silent_par2",
        daemon,
        lab,
        lambda: lab.power_off("par2", carrier=False),
        observe,
        lambda: lab.power_on("par2"),
        {
            "collector session down (hold timer)": state_of(par2, "down"),
            "withdrawals by the other sites (GR over)": withdraws_of(unicast, not_from=par2),
        },
    )
    stale = OUTCOMES["power_loss_silent_par2"].notes["par1_stale_at_session_down"]
    assert stale, "par1 marked par2's routes stale (GR helper) while the session was gone"


def test_bgpd_restart_under_graceful_restart(lab, daemon):
    par3 = lab.router_address("par3").v4

    def act() -> None:
        lab.router("par3").kill_bgp()  # zebra keeps running

    def observe(outcome: Outcome) -> None:
        daemon.wait_for(lambda: peers_of(daemon)["par3-rr1"]["state"] != "up", 10, "par3-rr1 down")
        # GR helper mode: par1 keeps par3's routes, marked stale.
        outcome.notes["par1_stale"] = lab.router("par1").stale("203.0.113.128/27")
        assert lab.best_path("par1", "203.0.113.128/27") is not None
        time.sleep(3)
        lab.start_router("par3")
        lab.wait_established(60)
        assert lab.best_path("par1", "203.0.113.128/27") == (65003,)

    scenario(
        "bgpd_restart_par3",
        daemon,
        lab,
        act,
        observe,
        lambda: None,
        {"collector session down (TCP closed)": state_of(par3, "down")},
    )
    assert OUTCOMES["bgpd_restart_par3"].notes["par1_stale"]


def test_link_cut_reroutes(lab, daemon):
    par1 = lab.router_address("par1").v4

    def observe(outcome: Outcome) -> None:
        lab.wait_route("par1", "203.0.113.64/27", as_path=(65003, 65002), timeout=15)
        lab.wait_route("par2", "203.0.113.0/27", as_path=(65003, 65001), timeout=15)
        time.sleep(2)

    scenario(
        "link_cut_reroute_par1_par2",
        daemon,
        lab,
        lambda: lab.cut_link("par1", "par2"),
        observe,
        lambda: lab.heal("par1", "par2"),
        {
            "par1 re-announces par2's prefixes via par3": announces_of(
                ["203.0.113.64/27"], from_peer=par1, path_len=3
            )
        },
        whole_for=6.0,
    )


def test_link_cuts_split(lab, daemon):
    par4 = lab.router_address("par4").v4
    mine = [p for p in lab.site_prefixes("par4") if p != ANYCAST]

    def act() -> None:
        lab.cut_link("par4", "par1")  # reroutes via par3 ...
        lab.cut_link("par3", "par4")  # ... and now par4 is an island

    def observe(outcome: Outcome) -> None:
        lab.wait_route("par1", "203.0.113.192/27", present=False, timeout=15)
        lab.wait_route("par4", "203.0.113.0/27", present=False, timeout=15)
        assert lab.best_path("par1", ANYCAST) == (65002,)
        assert lab.best_path("par4", ANYCAST) == ()
        time.sleep(1)

    def recover() -> None:
        lab.heal("par4", "par1")
        lab.heal("par3", "par4")

    scenario(
        "link_cut_split_par4",
        daemon,
        lab,
        act,
        observe,
        recover,
        {"withdrawals of par4's prefixes": withdraws_of(mine, not_from=par4)},
    )


def test_ipv6_sessions_shut(lab, daemon):
    shut: list[str] = []

    def act() -> None:
        shut.extend(lab.shutdown_family("par3", 6))

    def observe(outcome: Outcome) -> None:
        assert sorted(shut) == ["peer_par1_v6", "peer_par2_v6", "peer_par4_v6"]
        lab.wait_route("par1", "2001:db8:1003::/48", present=False, timeout=15)
        lab.wait_route("par3", "2001:db8:1001::/48", present=False, timeout=15)
        # IPv4 is untouched.
        assert lab.best_path("par1", "203.0.113.128/27") == (65003,)
        states = lab.session_states("par3")
        assert states["peer_par1"] == "Established" and states["peer_par1_v6"] != "Established"
        time.sleep(1)

    scenario(
        "ipv6_sessions_shut_par3",
        daemon,
        lab,
        act,
        observe,
        lambda: lab.enable_family("par3", 6),
        {"withdrawals of par3's IPv6 prefix": withdraws_of(["2001:db8:1003::/48"])},
    )


def test_export_deny_all(lab, daemon):
    par1 = lab.router_address("par1").v4

    def observe(outcome: Outcome) -> None:
        # export_deny returned once no other site had par1's prefixes; every session is still up.
        outcome.notes["applied_after"] = round(time.time() - outcome.started, 1)
        assert all(state == "Established" for state in lab.session_states("par1").values())
        time.sleep(1)
        assert peers_of(daemon)["par1-rr1"]["state"] == "up"

    scenario(
        "export_deny_par1",
        daemon,
        lab,
        lambda: lab.export_deny("par1"),
        observe,
        lambda: lab.export_allow("par1"),
        {"par1 withdraws its own prefixes": withdraws_of(["203.0.113.0/27"], from_peer=par1)},
    )


def test_link_flap(lab, daemon):
    par1 = lab.router_address("par1").v4
    flaps: list[int] = []

    def act() -> None:
        flaps.append(lab.flap_link("par1", "par2", period=2.0, duration=20.0))

    def observe(outcome: Outcome) -> None:
        assert flaps == [10]
        lab.wait_established(30)
        lab.wait_route("par1", "203.0.113.64/27", as_path=(65002,), timeout=30)

    scenario(
        "link_flap_par1_par2",
        daemon,
        lab,
        act,
        observe,
        lambda: None,
        {
            "par1 re-announces par2's prefixes via par3": announces_of(
                ["203.0.113.64/27"], from_peer=par1, path_len=3
            )
        },
        whole_for=6.0,
    )


def test_blackholed_collector_session(lab, daemon):
    par4 = lab.router_address("par4").v4

    def observe(outcome: Outcome) -> None:
        daemon.wait_for(lambda: peers_of(daemon)["par4-rr1"]["state"] != "up", HOLD + 6, "par4-rr1 down")
        # The site is fine: the others still have its routes, its inter-site sessions are up.
        assert lab.best_path("par1", "203.0.113.192/27") == (65004,)
        assert lab.session_states("par4")["peer_par1"] == "Established"
        time.sleep(2)

    scenario(
        "blackhole_collector_par4",
        daemon,
        lab,
        lambda: lab.blackhole("par4"),
        observe,
        lambda: lab.unblackhole("par4"),
        {"collector session down (hold timer)": state_of(par4, "down")},
    )


def test_collector_exabgp_restart(lab, daemon):
    workers: list[dict] = []

    def act() -> None:
        workers.extend(daemon.cli("status")["workers"])
        for worker in workers:
            os.kill(worker["pid"], signal.SIGKILL)

    def observe(outcome: Outcome) -> None:
        assert workers
        daemon.wait_for(
            lambda: converged(daemon, daemon.with_eor), 60, "sessions back after the ExaBGP restart"
        )

    scenario(
        "collector_restart",
        daemon,
        lab,
        act,
        observe,
        lambda: None,
        {
            "a worker's death (bgpwatch's control line)": lambda doc: (
                doc.get("bgpwatch-relay", {}).get("collector", {}).get("up") is False
            ),
            "first session up again": lambda doc: (
                doc.get("type") == "state" and doc["neighbor"].get("state") == "up"
            ),
        },
    )


def test_graceful_shutdown_drain_then_power_off(lab, daemon):
    par2 = lab.router_address("par2").v4
    mine = [p for p in lab.site_prefixes("par2") if p != ANYCAST]

    def act() -> None:
        lab.graceful_shutdown("par2")  # returns once par1 sees 65535:0 on par2's routes

    def observe(outcome: Outcome) -> None:
        # Path hunting after the re-announcements can briefly pick an untagged path: wait for the tag.
        lab.wait_for(
            lambda: "65535:0" in (lab.communities("par1", "203.0.113.64/27") or set()), 10, "65535:0 at par1"
        )
        time.sleep(3)  # drained: the operator now switches the router off
        outcome.notes["powered_off_at"] = round(time.time() - outcome.started, 2)
        lab.power_off("par2")
        lab.wait_route("par1", "203.0.113.64/27", present=False, timeout=15)
        time.sleep(1)

    def recover() -> None:
        lab.power_on("par2")  # bgpd starts from its file: no graceful-shutdown any more
        lab.wait_established(60)
        lab.wait_route("par1", "203.0.113.64/27", as_path=(65002,), timeout=20)
        assert "65535:0" not in (lab.communities("par1", "203.0.113.64/27") or set())

    scenario(
        "drain_then_power_off_par2",
        daemon,
        lab,
        act,
        observe,
        recover,
        {
            "par2 re-announces with 65535:0": announces_of(
                ["203.0.113.64/27"], from_peer=par2, community=[65535, 0]
            ),
            "withdrawals of par2's prefixes after the power-off": withdraws_of(mine, not_from=par2),
        },
    )


def test_route_reflectors_in_one_as():
    """Every site in AS65010, par1 and par2 reflect for par3 and par4; routes resolve (next-hop-self)."""
    specs = sites(4, "frr", asn=65010, route_reflectors=("par1", "par2"))
    links = [
        ("par1", "par2"),
        ("par1", "par3"),
        ("par1", "par4"),
        ("par2", "par3"),
        ("par2", "par4"),
        ("par3", "par4"),
    ]
    with Lab(specs, links=links, connect_retry=2, prefix="bwtrr") as rr:
        # Clients peer only with the reflectors: the par3-par4 link carries no session.
        assert [n.name for n in rr.neighbors("par3")] == ["collector", "peer_par1", "peer_par2"]
        assert [n.rr_client for n in rr.neighbors("par1")] == [False, False, True, True]
        rr.wait_established(60)
        for prefix in rr.site_prefixes("par4"):
            rr.wait_route("par3", prefix, as_path=(), timeout=20)  # iBGP: empty AS path, reflected
        route = rr.router("par3").show_json("show bgp ipv4 unicast 203.0.113.192/27 json")
        best = next(p for p in route["paths"] if p.get("bestpath", {}).get("overall"))
        assert best["valid"] is True
        hops = {hop["ip"] for hop in best["nexthops"]}
        assert hops <= {rr.link_address("par1", "par3").v4, rr.link_address("par2", "par3").v4}, hops
        assert any("originatorId" in p or "clusterList" in p for p in route["paths"]), route
        # One reflector gone: the other still serves.
        rr.power_off("par1")
        rr.wait_route("par3", "203.0.113.192/27", as_path=(), timeout=20)
        rr.wait_route("par3", "203.0.113.0/27", present=False, timeout=20)
        rr.power_on("par1")
        rr.wait_established(60)
        rr.wait_route("par3", "203.0.113.0/27", as_path=(), timeout=20)


@pytest.mark.skipif(lab_available(("bird", "frr")) is not None, reason=str(lab_available(("bird", "frr"))))
def test_mixed_bird_and_frr_with_separate_collector_sessions(tmp_path):
    """A BIRD site beside two FRR sites, an IPv4 and an IPv6 collector session per site."""
    specs = [
        SiteSpec("par1", 65001, ("203.0.113.0/27", "2001:db8:1001::/48"), router="bird"),
        SiteSpec("par2", 65002, ("203.0.113.64/27", "2001:db8:1002::/48"), router="frr"),
        SiteSpec("par3", 65003, ("203.0.113.128/27", "2001:db8:1003::/48"), router="frr"),
    ]
    with Lab(specs, collector_split_families=True, connect_retry=2, prefix="bwtmix") as mixed:
        mixed.wait_established(60)
        mixed.wait_route("par1", "2001:db8:1003::/48", as_path=(65003,), timeout=20)
        mixed.wait_route("par3", "203.0.113.0/27", as_path=(65001,), timeout=20)
        daemon = LabDaemon(mixed, tmp_path).start()
        names = {f"{s.name}-rr1" for s in specs} | {f"{s.name}-rr1-v6" for s in specs}
        daemon.wait_for(
            lambda: (
                set(peers_of(daemon)) == names and all(p["state"] == "up" for p in peers_of(daemon).values())
            ),
            60,
            "six collector sessions up",
        )
        peers = peers_of(daemon)
        assert peers["par2-rr1-v6"]["address"] == mixed.router_address("par2").v6

        def families_split() -> bool:
            peers = peers_of(daemon)
            v4_only = all(peers[f"{s.name}-rr1"]["routes_ipv6"] == 0 for s in specs)
            v6 = all(
                peers[f"{s.name}-rr1-v6"]["routes_ipv6"] == 3
                and peers[f"{s.name}-rr1-v6"]["routes_ipv4"] == 0
                for s in specs
            )
            return v4_only and v6 and all(peers[f"{s.name}-rr1"]["routes_ipv4"] == 3 for s in specs)

        daemon.wait_for(families_split, 30, "IPv4 routes on the v4 sessions, IPv6 on the v6 sessions")
        if gr_advertised(daemon):
            daemon.wait_for(
                lambda: all(p["end_of_rib"] for p in peers_of(daemon).values()),
                30,
                "End-of-RIB on every session",
            )
        daemon.stop()
        # A drain and its undo, as a neighbour sees them.
        mixed.graceful_shutdown("par3")
        assert "65535:0" in (mixed.communities("par1", "203.0.113.128/27") or set())
        mixed.graceful_shutdown_end("par3")
        mixed.wait_for(
            lambda: "65535:0" not in (mixed.communities("par1", "203.0.113.128/27") or {"65535:0"}),
            15,
            "undrained",
        )
        # restore() undoes everything at once, on both kinds.
        mixed.shutdown_sessions("par2", ["peer_par3"])
        mixed.graceful_shutdown("par3")
        mixed.blackhole("par3")
        mixed.power_off("par1", carrier=False)
        mixed.restore()
        mixed.wait_established(60)
        assert mixed.session_states("par2")["peer_par3"] == "Established"
        mixed.wait_route("par2", "203.0.113.0/27", as_path=(65001,), timeout=20)
        mixed.wait_route("par2", "203.0.113.128/27", as_path=(65003,), timeout=20)
        mixed.wait_for(
            lambda: "65535:0" not in (mixed.communities("par2", "203.0.113.128/27") or {"65535:0"}),
            15,
            "drain undone",
        )
        for site in ("par1", "par3"):
            tables = subprocess.run(
                ["ip", "netns", "exec", mixed.site_ns(site), "nft", "list", "tables"],
                capture_output=True,
                text=True,
            )
            assert "bwlab" not in tables.stdout


def test_report(capsys):
    with capsys.disabled():
        print("\nFRR scenarios: incidents opened per root cause, detection latency from the decisive message")
        for name, outcome in OUTCOMES.items():
            print(f"  {name}: {len(outcome.incidents)} incident(s) / 1 root cause; latency {outcome.latency}")
    assert OUTCOMES, "no scenario ran"
