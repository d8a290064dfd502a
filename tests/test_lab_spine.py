"""The spine against real routers: BIRD 2 in network namespaces, ExaBGP managed by `bgpwatch run`.

Announcements, withdrawals, a session drop (implicit withdraw), re-establishment, and the
ExaBGP child killed and restarted, all observed through the CLI as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.lab import Lab, lab_available
from tests.lab.daemon import LabDaemon

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None, reason=str(lab_available()))]


@pytest.fixture(scope="module")
def lab():
    with Lab(3) as lab:
        lab.wait_established(60)
        yield lab


@pytest.fixture(scope="module")
def daemon(lab, tmp_path_factory):
    # ExaBGP under CPython here (the other lab tests get PyPy when .ci/setup could build it).
    daemon = LabDaemon(
        lab, tmp_path_factory.mktemp("spine"), collector={"exabgp_python": sys.executable}
    ).start()
    yield daemon
    if daemon.process.poll() is None:
        assert daemon.stop() == 0, daemon.log()[-2000:]


def site_prefixes(routes, site):
    return {r["prefix"] for r in routes if r["site"] == site}


def all_up(daemon):
    peers = daemon.peers()
    return len(peers) == 3 and all(p["state"] == "up" and p["end_of_rib"] for p in peers.values())


def test_sessions_come_up_and_full_tables_arrive(lab, daemon):
    daemon.wait_for(lambda: all_up(daemon), 60, "all sessions up with End-of-RIB")
    expected = {site: set(lab.site_prefixes(site)) for site in lab.site_names}
    every = set().union(*expected.values())

    def complete():
        routes = daemon.routes()
        return (
            all({r["prefix"] for r in routes if r["site"] == s} >= every for s in lab.site_names) and routes
        )

    routes = daemon.wait_for(complete, 30, "every router to send every site's prefixes")
    # par1's router originates its own prefixes (path = its AS) and relays the others (path via them).
    par1_own = [r for r in routes if r["site"] == "par1" and r["prefix"] in expected["par1"]]
    assert par1_own and all(r["as_path"] == [lab.site_as("par1")] for r in par1_own)
    via = [r for r in routes if r["site"] == "par1" and r["prefix"] in expected["par2"]]
    assert via and all(r["as_path"][-1] == lab.site_as("par2") for r in via)
    assert all(isinstance(asn, int) for r in routes for asn in r["as_path"])
    assert {r["family"] for r in routes} == {"ipv4", "ipv6"}
    assert all(r["next_hop"] for r in routes)
    v6 = [r for r in routes if r["family"] == "ipv6" and r["site"] == "par1"]
    # IPv6 listed under a global and a link-local next hop is one route, with the global next hop.
    assert len(v6) == len({r["prefix"] for r in v6}) and not any(r["next_hop"].startswith("fe80") for r in v6)
    # Longest-prefix match of an address inside par3's first prefix.
    first = sorted(expected["par3"])[0]
    address = first.split("/")[0].rsplit(".", 1)[0] + ".5" if "." in first else first.split("/")[0] + "5"
    found = daemon.routes(lookup=address, peer="par1-rr1")
    assert [r["prefix"] for r in found] == [first]


def test_withdrawal_and_reannouncement(lab, daemon):
    daemon.wait_for(lambda: all_up(daemon), 60, "all sessions up")
    lab.withdraw_statics("par2")
    par2 = set(lab.site_prefixes("par2"))
    daemon.wait_for(
        lambda: not (par2 & {r["prefix"] for r in daemon.routes()}),
        20,
        "par2's prefixes withdrawn everywhere",
    )
    lab.restore_statics("par2")
    daemon.wait_for(
        lambda: all(site_prefixes(daemon.routes(prefix=p), "par1") for p in par2),
        20,
        "par2's prefixes back at par1",
    )


def test_session_drop_withdraws_implicitly_and_comes_back(lab, daemon):
    daemon.wait_for(lambda: all_up(daemon), 60, "all sessions up")
    lab.kill_router("par3")  # the kernel closes the TCP session: ExaBGP reports down, sends no withdraws
    daemon.wait_for(lambda: daemon.peers()["par3-rr1"]["state"] == "down", 20, "par3-rr1 down")
    peer = daemon.peers()["par3-rr1"]
    assert peer["routes"] == 0 and daemon.routes(peer="par3-rr1") == []
    assert peer["flaps"] >= 1
    lab.start_router("par3")
    daemon.wait_for(lambda: daemon.peers()["par3-rr1"]["state"] == "up", 60, "par3-rr1 back up")
    daemon.wait_for(
        lambda: daemon.peers()["par3-rr1"]["routes"] >= len(lab.site_prefixes("par3")),
        30,
        "par3's table again",
    )


def test_exabgp_killed_is_restarted(lab, daemon):
    daemon.wait_for(lambda: all_up(daemon), 60, "all sessions up")
    status = daemon.cli("status")
    workers = status["workers"]
    assert workers and all(w["up"] for w in workers)
    victim = workers[0]
    os.kill(victim["pid"], signal.SIGKILL)

    def restarted():
        current = {w["worker"]: w for w in daemon.cli("status")["workers"]}[victim["worker"]]
        return (
            current["up"]
            and current["pid"] != victim["pid"]
            and current["restarts"] == victim["restarts"] + 1
        )

    daemon.wait_for(restarted, 30, "the ExaBGP worker to be restarted")
    daemon.wait_for(lambda: all_up(daemon), 60, "sessions re-established after the restart")
    metrics = daemon.metrics()
    assert f'bgpwatch_exabgp_restarts_total{{worker="{victim["worker"]}"}} 1.0' in metrics
    assert "ExaBGP exited" in daemon.log()
    assert all(w["python"] == sys.executable for w in daemon.cli("status")["workers"])


def test_sigterm_stops_exabgp_and_exits_zero(lab, daemon):
    pids = [w["pid"] for w in daemon.cli("status")["workers"]]
    assert daemon.stop() == 0
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_passive_sessions_with_md5(tmp_path):
    """BIRD connects to ExaBGP listening on port 179, with a TCP MD5 key on the session."""
    secret = "lab md5 secret"
    with Lab(2, routers_passive=False, md5_password=secret) as lab:
        daemon = LabDaemon(lab, tmp_path).start()
        try:
            daemon.wait_for(
                lambda: all(p["state"] == "up" for p in daemon.peers().values()), 60, "passive sessions up"
            )
            assert {r["site"] for r in daemon.routes()} == {"par1", "par2"}
            assert secret not in daemon.log()  # the key is in ExaBGP's file only, never logged
            assert secret not in json.dumps(daemon.cli("status"))
        finally:
            assert daemon.stop() == 0
