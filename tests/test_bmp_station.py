"""The BMP station of a running daemon, fed over loopback TCP with a real FRR 8.4 BMP stream.

No root and no router needed: the bytes are the capture `fixtures/bmp/frr84/frr-par1-1.bmp` (FRR's
par1 in the lab, sysName par1), sent as the router sent them.  Checks the routers API, the metrics,
that a connection sending garbage is closed while another is unaffected, that a lost router is
`monitor_lost` (never a site down), and that the recording replays to the same transitions.
"""

from __future__ import annotations

import gzip
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from bgpwatch.ingest.bmp import split_messages

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "fixtures" / "bmp" / "frr84" / "frr-par1-1.bmp"
BGPWATCH = [sys.executable, "-m", "bgpwatch"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    return json.loads(body) if body.startswith(("{", "[")) else body


def wait(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


def count_messages(data: bytes) -> int:
    return len(split_messages(data))


@pytest.fixture()
def daemon(tmp_path: Path):
    bmp_port, api_port = free_port(), free_port()
    config = {
        "collector": {
            "local_as": 65000,
            "router_id": "192.0.2.254",
            "exabgp": "external",
            "runtime_dir": str(tmp_path / "run"),
        },
        "sites": [
            {
                "name": f"par{n}",
                "prefixes": [f"203.0.113.{64 * (n - 1)}/26"],
                "peers": [
                    {
                        "name": f"par{n}-rr1",
                        "address": f"192.0.2.{4 * n - 2}",
                        "peer_as": 65000 + n,
                        "router_id": f"192.0.2.{4 * n - 2}",
                    }
                ],
            }
            for n in (1, 2, 3)
        ],
        "inputs": [
            {"type": "exabgp"},
            {
                "type": "bmp",
                "listen": f"127.0.0.1:{bmp_port}",
                "max_errors": 5,
                "routers": [
                    {"name": f"par{n}-r1", "site": f"par{n}", "sys_name": f"par{n}"} for n in (1, 2, 3)
                ],
            },
        ],
        "api": {"listen": f"127.0.0.1:{api_port}"},
        "storage": {"path": str(tmp_path / "state" / "bgpwatch.db")},
        "recording": {"path": str(tmp_path / "recording")},
    }
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([*BGPWATCH, "run", "--config", str(path)], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{api_port}"
    wait(lambda: _healthy(base))
    yield path, base, bmp_port, tmp_path, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    log.close()


def cli(config: Path, *args: str) -> str:
    done = subprocess.run(
        [*BGPWATCH, args[0], "--config", str(config), *args[1:]], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _healthy(base: str) -> bool:
    try:
        get(base + "/healthz")
        return True
    except OSError:
        return False


def test_a_real_frr_stream_through_the_station(daemon) -> None:
    config, base, port, tmp, proc = daemon
    data = CAPTURE.read_bytes()
    messages = count_messages(data)
    router = socket.create_connection(("127.0.0.1", port))
    router.sendall(data)

    def routed():
        routers = get(base + "/api/v1/routers")
        found = next((r for r in routers if r["name"] == "par1-r1"), None)
        metrics = get(base + "/metrics")
        done = f"bgpwatch_bmp_messages_total {float(messages)}" in metrics
        return found if found and done else None

    found = wait(routed)
    assert (
        found["site"] == "par1" and found["state"] == "up" and found["sys_descr"].startswith("FRRouting 8.4")
    )
    assert found["bgp_id"] == "192.0.2.2"  # learnt from its Peer Up (its sent OPEN)
    kinds = {s["address"]: (s["kind"], s["site"]) for s in found["sessions"]}
    assert kinds["198.51.100.2"] == ("inter-site", "par2")
    assert kinds["198.51.100.6"] == ("inter-site", "par3")
    assert kinds["192.0.2.1"][0] == "external"  # bgpwatch's own ExaBGP, as par1 sees it
    assert any("ipv4" in s["end_of_rib"]["pre"] for s in found["sessions"])  # FRR ends its tables
    # Statistics Reports are metrics (FRR sends its 7 counters per monitored peer every second), beside the
    # routers' and sessions' states.  par2 reflects par1's own routes back: FRR counts them as AS-loop drops.
    metrics = get(base + "/metrics").splitlines()
    head = 'bgpwatch_bmp_peer_statistic{peer="198.51.100.2",router="par1-r1",type='
    stats = {m[len(head) :].split('"')[1]: float(m.rsplit(" ", 1)[1]) for m in metrics if m.startswith(head)}
    assert len(stats) == 7 and stats["as_path_loop_invalidated"] > 0, stats
    assert 'bgpwatch_bmp_router_up{router="par1-r1",site="par1"} 1.0' in metrics
    up = (
        'bgpwatch_bmp_session_up{kind="inter-site",peer="198.51.100.2",peer_site="par2",router="par1-r1"} 1.0'
    )
    assert up in metrics
    status = get(base + "/api/v1/status")
    assert not {k: v for k, v in status["pipeline"]["rejected"].items() if k.startswith("bmp_")}
    routes = get(base + "/api/v1/prefixes?router=par1-r1&policy=post")
    assert routes and all(r["router"] == "par1-r1" and r["policy"] == "post" for r in routes)
    # The CLI: `peers` shows the BMP router and its sessions by kind; `prefixes --router --peer --policy`
    # one view of one monitored session.
    text = cli(config, "peers", "--wide")
    assert "BMP router par1-r1 (site par1, 127.0.0.1, par1): up" in text, text
    assert "inter-site (par2)" in text and "inter-site (par3)" in text and "external" in text, text
    views = {}
    for policy in ("pre", "post"):
        args = ("prefixes", "--router", "par1-r1", "--peer", "198.51.100.2", "--policy", policy)
        views[policy] = json.loads(cli(config, *args, "--json"))
        assert views[policy], policy
        assert {(r["router"], r["peer"], r["policy"]) for r in views[policy]} == {
            ("par1-r1", "198.51.100.2", policy)
        }
        assert "par1-r1<-198.51.100.2 " + policy in cli(config, *args)
    # FRR keeps the Adj-RIB-In (soft-reconfiguration): pre-policy holds at least what post-policy kept.
    assert {r["prefix"] for r in views["post"]} <= {r["prefix"] for r in views["pre"]}
    # The capture saw par3 lose power and come back: par1's session to it is up, its last down kept.
    par3 = next(s for s in found["sessions"] if s["address"] == "198.51.100.6")
    assert par3["state"] == "up" and par3["last_down_reason"] == "local system closed, FSM event 0"

    # A second "router" sends garbage: its connection is closed, the first one is unaffected.
    bad = socket.create_connection(("127.0.0.1", port))
    bad.sendall(b"\x07\x00\x00\x00\x10\x04" + b"\x00" * 10)
    bad.settimeout(5)
    assert bad.recv(16) == b""  # closed by bgpwatch: framing lost (bad version)
    bad.close()
    status = wait(
        lambda: (s := get(base + "/api/v1/status"))["pipeline"]["rejected"].get("bmp_bad_version") and s
    )
    inputs = {i["type"]: i for i in status["inputs"]}
    assert inputs["bmp"]["closed_by_bgpwatch"] == {"bmp_bad_version": 1}
    assert [c["address"] for c in inputs["bmp"]["connections"]] == ["127.0.0.1"]  # the router stays
    assert next(r for r in get(base + "/api/v1/routers") if r["name"] == "par1-r1")["state"] == "up"

    # The router goes away: bgpwatch says which router it no longer hears, nothing about the site.
    router.close()
    lost = wait(lambda: [a for a in get(base + "/api/v1/alerts") if a["kind"] == "monitor_lost"])
    assert lost[0]["labels"] == {"router": "par1-r1", "site": "par1"}
    kinds_firing = {a["kind"] for a in get(base + "/api/v1/alerts")}
    assert "site_down" not in kinds_firing
    live = [
        (t["kind"], t["state"], t["labels"])
        for t in get(base + "/api/v1/transitions")
        if t["kind"] == "monitor_lost"
    ]

    # The recording holds the BMP stream; a replay of it gives the same monitor_lost transition.
    proc.send_signal(signal.SIGTERM)  # a clean stop closes the recording
    assert proc.wait(timeout=20) == 0
    recordings = sorted((tmp / "recording").glob("*.jsonl.gz"))
    assert recordings and any(b"bgpwatch-bmp" in gzip.decompress(p.read_bytes()) for p in recordings)
    replay = subprocess.run(
        [*BGPWATCH, "replay", "--config", str(config), "--json", *map(str, recordings)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    replayed = [json.loads(line) for line in replay.stdout.splitlines() if line.startswith("{")]
    assert [
        (t["kind"], t["state"], t["labels"])
        for t in replayed
        if t["kind"] == "monitor_lost" and t["state"] == "firing"
    ] == [x for x in live if x[1] == "firing"]
