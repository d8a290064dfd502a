"""The namespace lab harness: address plans offline, real BIRD routers in namespaces as root."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from lab import (
    BULK_V4_CAPACITY,
    Lab,
    LabError,
    SiteSpec,
    bulk_v4_prefixes,
    bulk_v6_prefixes,
    cleanup_stale,
    lab_available,
    ring,
    sites,
)

UNAVAILABLE = lab_available()
needs_lab = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")

PAR2_V4 = ("203.0.113.64/27", "203.0.113.96/27")
PAR3_V4 = ("203.0.113.128/27", "203.0.113.160/27")


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def _processes_mentioning(text: str) -> list[int]:
    """Return the pids whose command line contains ``text`` (BIRD's carries the lab's directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_bulk_v4_prefixes_stay_in_198_18_and_are_distinct() -> None:
    bench = ipaddress.ip_network("198.18.0.0/15")
    first = list(bulk_v4_prefixes(3))
    assert first == ["198.18.0.0/32", "198.18.0.1/32", "198.18.0.2/32"]
    tail = list(bulk_v4_prefixes(3, offset=131071))
    assert tail == ["198.19.255.255/32", "198.18.0.0/31", "198.18.0.2/31"]
    everything = list(bulk_v4_prefixes(BULK_V4_CAPACITY))
    assert len(set(everything)) == BULK_V4_CAPACITY == 262143
    assert everything[-1] == "198.18.0.0/15"
    assert all(ipaddress.ip_network(prefix).subnet_of(bench) for prefix in everything[::997])
    with pytest.raises(LabError, match="262143"):
        list(bulk_v4_prefixes(1, offset=BULK_V4_CAPACITY))


def test_bulk_v6_prefixes_are_56s_in_the_documentation_range() -> None:
    prefixes = list(bulk_v6_prefixes(3, offset=255))
    assert prefixes == ["2001:db8:4000:ff00::/56", "2001:db8:4001::/56", "2001:db8:4001:100::/56"]
    doc = ipaddress.ip_network("2001:db8::/32")
    assert all(ipaddress.ip_network(prefix).subnet_of(doc) for prefix in prefixes)


def test_bgpwatch_config_follows_the_address_plan(tmp_path: Path) -> None:
    lab = Lab()  # never started: the plan alone writes the config
    path = lab.bgpwatch_config(tmp_path, api={"token": "x"}, detectors={"site_down": {"grace": 1}})
    config = yaml.safe_load(path.read_text())
    assert config["collector"] == {
        "local_as": 65000,
        "router_id": "192.0.2.254",
        "exabgp": "managed",
        "runtime_dir": str(tmp_path / "run"),
    }
    par3 = config["sites"][2]
    assert par3["prefixes"] == ["203.0.113.128/27", "203.0.113.160/27", "2001:db8:1003::/48"]
    assert par3["peers"] == [
        {
            "name": "par3-rr1",
            "address": "192.0.2.10",
            "peer_as": 65003,
            "local_address": "192.0.2.9",
            "hold_time": 9,
        }
    ]
    assert config["api"]["listen"].startswith("127.0.0.1:")
    assert config["api"]["token"] == "x"
    assert config["detectors"] == {"site_down": {"grace": 1}}
    assert config["storage"]["path"] == str(tmp_path / "bgpwatch.db")
    assert lab.router_address("par2") == ("192.0.2.6", "2001:db8:c0:2::2")
    assert lab.collector_addresses["par3"] == ("192.0.2.9", "2001:db8:c0:3::1")
    ibgp = yaml.safe_load(Lab(collector_as="ibgp").bgpwatch_config(tmp_path / "i").read_text())
    assert [peer["local_as"] for site in ibgp["sites"] for peer in site["peers"]] == [65001, 65002, 65003]
    lab.close()


def test_bgpwatch_config_is_accepted_by_bgpwatch(tmp_path: Path) -> None:
    config_module = pytest.importorskip("bgpwatch.config")
    config = config_module.load_config(Lab().bgpwatch_config(tmp_path))
    assert [peer.address for peer in config.peers] == ["192.0.2.2", "192.0.2.6", "192.0.2.10"]


@pytest.mark.lab
@needs_lab
def test_three_sites_split_isolate_power() -> None:
    lab = Lab()
    with lab:
        tmpdir = str(lab.tmpdir)
        lab.wait_established(30)
        for prefix in (*PAR2_V4, "2001:db8:1002::/48"):
            lab.wait_route("par1", prefix, as_path=(65002,), timeout=10)
        for prefix in (*PAR3_V4, "2001:db8:1003::/48"):
            lab.wait_route("par1", prefix, as_path=(65003,), timeout=10)
        assert "203.0.113.64/27" in lab.birdc("par1", "show", "route", "protocol", "peer_par2")

        lab.split("par1", "par2")
        for prefix in (*PAR2_V4, "2001:db8:1002::/48"):
            lab.wait_route("par1", prefix, as_path=(65003, 65002), timeout=10)
        assert lab.protocols("par1")["peer_par2"][1] != "Established"
        lab.heal("par1", "par2")
        lab.wait_established(30)
        # IPv6 must come back direct too: keep_addr_on_down (NOTES gotcha 11).
        lab.wait_route("par1", "2001:db8:1002::/48", as_path=(65002,), timeout=10)

        lab.isolate("par3")
        for prefix in (*PAR3_V4, "2001:db8:1003::/48"):
            lab.wait_route("par1", prefix, present=False, timeout=10)
        assert lab.protocols("par3")["collector"][0] == "start"  # no collector here: passive, link kept
        lab.unisolate("par3")
        lab.wait_established(30)
        lab.wait_route("par1", "203.0.113.128/27", as_path=(65003,), timeout=10)

        old_pid = lab.bird_pid("par2")
        assert old_pid is not None
        lab.power_off("par2")
        assert lab.bird_pid("par2") is None
        assert not _processes_mentioning(str(lab.tmpdir / "par2"))
        for prefix in (*PAR2_V4, "2001:db8:1002::/48"):
            lab.wait_route("par1", prefix, present=False, timeout=10)
        lab.power_on("par2")
        assert lab.bird_pid("par2") not in (None, old_pid)
        lab.wait_established(30)
        lab.wait_route("par1", "203.0.113.64/27", as_path=(65002,), timeout=10)
        assert len(_processes_mentioning(tmpdir)) == 3
    assert not _namespaces(lab.lab_id)
    assert not _processes_mentioning(tmpdir)
    assert not Path(tmpdir).exists()
    lab.close()  # idempotent


@pytest.mark.lab
@needs_lab
def test_bulk_routes_stay_local_unless_shared() -> None:
    with Lab(sites=2, extra_routes={"par1": (50, 0, 0)}) as lab:
        lab.wait_established(30)
        lab.wait_route("par2", "203.0.113.0/27", timeout=10)  # the site's own prefixes do go out
        assert lab.route_count("par1", "bulk4") == 50
        assert lab.birdc("par2", "show", "route", "198.18.0.10/32", check=False).count("198.18.0.10/32") == 0


@pytest.mark.lab
@needs_lab
def test_bulk_routes_reach_the_other_sites() -> None:
    with Lab(sites=2, extra_routes={"par1": (2000, 0, 0)}, share_bulk=True) as lab:
        assert lab.route_count("par1", "bulk4") == 2000
        lab.wait_established(30)
        lab.wait_route("par2", "198.18.7.207/32", as_path=(65001,), timeout=10)
        lab.add_static_routes("par1", 300, 200, group_size=8, offset=10)
        assert lab.route_count("par1", "bulk6") == 200
        lab.wait_route("par2", "2001:db8:4000:d100::/56", as_path=(65001,), timeout=10)  # the 200th /56
        lab.wait_route("par2", "198.18.7.207/32", present=False, timeout=10)
        out = lab.birdc("par2", "show", "route", "198.18.0.10/32", "all")
        assert "(65001, 4, 0)" in out
        lab.withdraw_statics("par1")
        lab.wait_route("par2", "203.0.113.0/27", present=False, timeout=10)
        lab.wait_route("par2", "198.18.0.10/32", present=False, timeout=10)


@pytest.mark.lab
@needs_lab
def test_cleanup_stale_removes_a_dead_owners_lab() -> None:
    prefix = "bwtstal"
    script = (
        "import os, signal\n"
        "from lab import Lab\n"
        f"lab = Lab(sites=1, prefix={prefix!r}).start()\n"
        "print(lab.lab_id, lab.tmpdir, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    lab_id, tmpdir = done.stdout.split()
    assert len(_namespaces(lab_id)) == 2
    assert _processes_mentioning(tmpdir)  # the orphaned BIRD
    removed = cleanup_stale(prefix)
    assert sorted(removed) == [f"{lab_id}-coll", f"{lab_id}-par1"]
    assert not _namespaces(lab_id)
    assert not _processes_mentioning(tmpdir)
    assert not Path(tmpdir).exists()


def test_ring_with_chord_and_separate_family_sessions_plan() -> None:
    lab = Lab(sites(4), links=ring(["par1", "par2", "par3", "par4"], [("par1", "par3")]), split_families=True)
    assert [(link.a, link.b) for link in lab.links] == [
        ("par1", "par2"), ("par2", "par3"), ("par3", "par4"), ("par4", "par1"), ("par1", "par3"),
    ]  # fmt: skip
    par1 = {n.name: n for n in lab.neighbors("par1")}
    assert list(par1) == [
        "collector", "peer_par2", "peer_par2_v6", "peer_par4", "peer_par4_v6", "peer_par3", "peer_par3_v6",
    ]  # fmt: skip
    assert par1["collector"].family is None and par1["collector"].passive
    assert (par1["peer_par2"].local, par1["peer_par2"].remote, par1["peer_par2"].families) == (
        "198.51.100.1", "198.51.100.2", (4,),
    )  # fmt: skip
    # Link 3 is par4-par1: par4 is its first end (.1), par1 the second (.2).
    assert (par1["peer_par4_v6"].local, par1["peer_par4_v6"].remote) == (
        "2001:db8:ff:4::2",
        "2001:db8:ff:4::1",
    )
    assert par1["peer_par3"].ifname == "s-par3" and par1["peer_par3"].remote_as == 65003
    assert lab.family_sessions("par1", 6) == ["peer_par2_v6", "peer_par4_v6", "peer_par3_v6"]
    assert [n.name for n in lab.neighbors("par2")] == [
        "collector",
        "peer_par1",
        "peer_par1_v6",
        "peer_par3",
        "peer_par3_v6",
    ]
    with pytest.raises(LabError, match="no link"):
        lab.link_address("par2", "par4")
    lab.close()


def test_route_reflector_and_collector_session_plan(tmp_path: Path) -> None:
    lab = Lab(
        sites(4, asn=65010, route_reflectors=("par1",)),
        links=[("par1", "par2"), ("par1", "par3"), ("par2", "par3"), ("par1", "par4")],
        collector_split_families=True,
    )
    assert [(n.name, n.rr_client, n.ibgp) for n in lab.neighbors("par1")] == [
        ("collector", False, False), ("collector_v6", False, False),
        ("peer_par2", True, True), ("peer_par3", True, True), ("peer_par4", True, True),
    ]  # fmt: skip
    # Two clients: their link carries no session.
    assert [n.name for n in lab.neighbors("par2")] == ["collector", "collector_v6", "peer_par1"]
    config = yaml.safe_load(lab.bgpwatch_config(tmp_path).read_text())
    assert config["sites"][1]["peers"] == [
        {
            "name": "par2-rr1",
            "address": "192.0.2.6",
            "peer_as": 65010,
            "local_address": "192.0.2.5",
            "hold_time": 9,
        },
        {
            "name": "par2-rr1-v6",
            "address": "2001:db8:c0:2::2",
            "peer_as": 65010,
            "local_address": "2001:db8:c0:2::1",
            "hold_time": 9,
        },
    ]
    lab.close()


def test_plan_errors() -> None:
    with pytest.raises(LabError, match="duplicate"):
        Lab(links=[("par1", "par2"), ("par2", "par1")])
    with pytest.raises(LabError, match="unknown router kind"):
        Lab([SiteSpec("par1", 65001, ("203.0.113.0/27",), router="quagga")])
    with pytest.raises(LabError, match="overlaps the inter-site link addresses"):
        Lab([SiteSpec("par1", 65001, ("198.51.100.0/29",)), SiteSpec("par2", 65002, ("203.0.113.0/27",))])
    with pytest.raises(LabError, match="unknown site"):
        Lab(links=[("par1", "par9")])


@pytest.mark.lab
@needs_lab
def test_bird_ring_with_v6_sessions_silent_power_loss_and_blackhole() -> None:
    """The router-independent operations on BIRD: split families, a ring cut, IPv6 shut, silent death."""
    with Lab(sites(4), links=ring(["par1", "par2", "par3", "par4"]), split_families=True) as lab:
        lab.wait_established(30)
        assert set(lab.session_states("par1")) == {
            "collector", "peer_par2", "peer_par2_v6", "peer_par4", "peer_par4_v6",
        }  # fmt: skip
        lab.wait_route("par1", "203.0.113.128/27", timeout=10)
        assert lab.best_path("par1", "2001:db8:1003::/48") in ((65002, 65003), (65004, 65003))
        lab.cut_link("par1", "par2")
        lab.wait_route("par1", "203.0.113.64/27", as_path=(65004, 65003, 65002), timeout=10)
        lab.heal("par1", "par2")
        lab.wait_established(30)
        lab.wait_route("par1", "203.0.113.64/27", as_path=(65002,), timeout=10)

        assert lab.shutdown_family("par2", 6) == ["peer_par1_v6", "peer_par3_v6"]
        lab.wait_route("par1", "2001:db8:1002::/48", present=False, timeout=10)
        assert lab.best_path("par1", "203.0.113.64/27") == (65002,)
        lab.wait_established(30)  # the shut sessions are not expected up
        lab.enable_family("par2", 6)
        lab.wait_established(30)
        lab.wait_route("par1", "2001:db8:1002::/48", as_path=(65002,), timeout=10)

        # Silent power loss: no carrier loss, so par1 notices only on its hold timer (9 s).
        lab.power_off("par2", carrier=False)
        assert lab.bird_pid("par2") is None
        time.sleep(3)
        assert lab.best_path("par1", "203.0.113.64/27") == (65002,), "no carrier loss: not noticed yet"
        lab.wait_route("par1", "203.0.113.64/27", present=False, timeout=20)
        lab.power_on("par2")
        lab.wait_established(30)
        lab.wait_route("par1", "203.0.113.64/27", as_path=(65002,), timeout=15)

        lab.blackhole("par3")
        tables = subprocess.run(
            ["ip", "netns", "exec", lab.site_ns("par3"), "nft", "list", "tables"],
            capture_output=True,
            text=True,
        ).stdout
        assert "bwlab_blackhole" in tables
        lab.restore()
        tables = subprocess.run(
            ["ip", "netns", "exec", lab.site_ns("par3"), "nft", "list", "tables"],
            capture_output=True,
            text=True,
        ).stdout
        assert "bwlab_blackhole" not in tables
        lab.wait_established(30)


@pytest.mark.lab
@needs_lab
def test_bird_route_reflectors_in_one_as() -> None:
    """AS65010 everywhere, par1 and par2 reflect: reflected routes resolve (next hop self), one RR may die."""
    links = [
        ("par1", "par2"),
        ("par1", "par3"),
        ("par1", "par4"),
        ("par2", "par3"),
        ("par2", "par4"),
        ("par3", "par4"),
    ]
    with Lab(sites(4, asn=65010, route_reflectors=("par1", "par2")), links=links) as lab:
        assert set(lab.session_states("par3")) == {"collector", "peer_par1", "peer_par2"}
        lab.wait_established(30)
        lab.wait_route("par3", "203.0.113.192/27", as_path=(), timeout=15)
        out = lab.birdc("par3", "show", "route", "203.0.113.192/27", "all")
        assert "BGP.originator_id: 192.0.2.14" in out and "BGP.cluster_list" in out
        assert "unreachable" not in out.split("\n", 2)[1]  # the best route resolves on a link
        lab.power_off("par1")
        lab.wait_route("par3", "203.0.113.192/27", as_path=(), timeout=15)
        lab.wait_route("par3", "203.0.113.0/27", present=False, timeout=15)
