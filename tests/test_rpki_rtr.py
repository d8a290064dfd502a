"""The RTR client (bgpwatch.rpki.rtr) against Debian's stayrtr on loopback, serving VRP files that change.

- load, then incremental updates (Serial Query after stayrtr's 1 s refresh, Serial Notify), the
  table always equal to the file, and the same validity as librtr's ``rpki-rov`` on the same cache;
- a version 0 cache (``stayrtr -protocol 0``): the client downgrades and loads;
- caches in order of preference: the first refused, the second used; the second killed, the first
  (now up) takes over without the table ever being unusable;
- expiry: the cache gone for longer than its expire interval (shortened for the test), the table is
  emptied, the state unusable with the reason, the engine's rpki_cache_down fires;
- recording: the lines the client records replay to the same relevant VRPs.

Protocol errors that stayrtr never makes (a duplicate announcement, a withdrawal of an unknown VRP,
a prefix with host bits, an impossible length) are unit-tested against a scripted cache on
loopback: each is counted by reason, answered with the Error Report RFC 8210 asks for, and the
table keeps what the last End of Data gave.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bgpwatch.config import load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.pipeline import Pipeline
from bgpwatch.rib.prefix import parse_prefix
from bgpwatch.rpki import rtr
from bgpwatch.rpki.rtr import RtrSource
from bgpwatch.rpki.vrps import INVALID, NOT_FOUND, VALID, make_vrp
from bgpwatch.topology.model import SiteModel
from tests.test_bmp_station import free_port

ROOT = Path(__file__).resolve().parent.parent
STAYRTR = shutil.which("stayrtr")
RPKI_ROV = shutil.which("rpki-rov")
needs_stayrtr = pytest.mark.skipif(STAYRTR is None, reason="stayrtr not installed (Debian package stayrtr)")

VRPS_1 = [
    ("203.0.113.0/26", 27, 65001),
    ("203.0.113.64/27", 27, 65002),
    ("2001:db8:1001::/48", 48, 65001),
    ("198.51.100.0/24", 24, 64500),
]
VRPS_2 = [  # par1's ROA now names AS65009, par2's is gone, one added
    ("203.0.113.0/26", 27, 65009),
    ("2001:db8:1001::/48", 48, 65001),
    ("198.51.100.0/24", 24, 64500),
    ("203.0.113.128/27", 27, 65003),
]


def write_vrps(path: Path, rows: list[tuple[str, int, int]]) -> None:
    roas = [{"prefix": p, "maxLength": m, "asn": f"AS{a}"} for p, m, a in rows]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"roas": roas}))
    tmp.replace(path)  # stayrtr re-reads the file every second: never half a file


class Stayrtr:
    def __init__(
        self, tmp_path: Path, rows: list[tuple[str, int, int]], *extra: str, port: int | None = None
    ):
        self.port = port or free_port()
        self.cache = tmp_path / f"vrps-{self.port}.json"
        write_vrps(self.cache, rows)
        self.log = open(tmp_path / f"stayrtr-{self.port}.log", "wb")  # noqa: SIM115 - handed to the child
        args = [STAYRTR, "-cache", str(self.cache), "-checktime=false", "-bind", f"127.0.0.1:{self.port}"]
        args += ["-metrics.addr", f"127.0.0.1:{free_port()}", "-refresh", "1", "-rtr.refresh", "1", *extra]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("stayrtr did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def make_host(tmp_path: Path, addresses: list[str], **detectors: Any) -> SimpleNamespace:
    doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    doc["storage"] = {"path": str(tmp_path / "db.sqlite")}
    doc["rpki"] = {"rtr": [{"address": a} for a in addresses]}
    doc["detectors"] = detectors
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = load_config(path)
    pipeline = Pipeline(config)
    out: list[dict[str, Any]] = []
    engine = DetectionEngine(config, pipeline.rib, out.append, sessions=pipeline.sessions, rpki=pipeline.rpki)
    pipeline.consumer = engine
    records: list[bytes] = []
    return SimpleNamespace(
        pipeline=pipeline, config=config, record=records.append, recorder=object(), records=records, out=out
    )


def table_rows(host: SimpleNamespace) -> set[tuple[str, int, int]]:
    return {(str(v).split("-")[0], v.max_length, v.asn) for v in host.pipeline.rpki.table}


async def until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def rpki_rov(port: int, routes: list[tuple[str, int]]) -> list[str]:
    """Return librtr's verdict per route (valid / not_found / invalid) against the cache."""
    lines = "".join(f"{p.split('/')[0]} {p.split('/')[1]} {asn}\n" for p, asn in routes)
    out = subprocess.run(
        [RPKI_ROV, "127.0.0.1", str(port)], input=lines, capture_output=True, text=True, timeout=20
    ).stdout
    verdicts = {"0": VALID, "1": NOT_FOUND, "2": INVALID}
    return [verdicts[line.rsplit("|", 1)[1]] for line in out.splitlines() if "|" in line]


ROUTES = [
    ("203.0.113.0/27", 65001),
    ("203.0.113.0/27", 65009),
    ("203.0.113.0/28", 65001),  # longer than max length 27
    ("203.0.113.64/27", 65002),
    ("203.0.113.128/27", 65003),
    ("198.51.100.0/24", 64500),
    ("192.0.2.0/24", 64500),
]


@needs_stayrtr
def test_load_updates_and_the_same_verdicts_as_rpki_rov(tmp_path: Path) -> None:
    cache = Stayrtr(tmp_path, VRPS_1)
    host = make_host(tmp_path, [f"127.0.0.1:{cache.port}"])

    async def scenario() -> RtrSource:
        source = RtrSource(host, host.config.rpki)
        await source.start()
        try:
            await until(lambda: host.pipeline.rpki.usable)
            assert table_rows(host) == set(VRPS_1)
            if RPKI_ROV:
                ours = [host.pipeline.rpki.table.validate(*parse_prefix(p), a) for p, a in ROUTES]
                assert ours == await asyncio.to_thread(rpki_rov, cache.port, ROUTES)
            first_serial = source.servers[0].serial
            write_vrps(cache.cache, VRPS_2)
            await until(lambda: table_rows(host) == set(VRPS_2))
            assert source.servers[0].serial == first_serial + 1  # one incremental update, not a reload
            if RPKI_ROV:
                ours = [host.pipeline.rpki.table.validate(*parse_prefix(p), a) for p, a in ROUTES]
                assert ours == await asyncio.to_thread(rpki_rov, cache.port, ROUTES)
        finally:
            await source.stop()
        return source

    try:
        source = asyncio.run(scenario())
    finally:
        cache.stop()
    status = source.status()
    server = status["servers"][0]
    assert status["usable"] and status["active"] == f"127.0.0.1:{cache.port}" and server["version"] == 1
    assert server["counts"]["end_of_data"] >= 2 and server["timers"]["refresh"] == 1
    # The recording holds what decides the protected prefixes, and replays to it.
    assert len(host.records) == 2
    again = Pipeline(host.config)
    for line in host.records:
        again.feed_line(line)
    relevant = host.pipeline.rpki.relevant(SiteModel(host.config).protected_prefixes())
    assert set(again.rpki.table) == set(relevant) and again.rpki.usable
    assert make_vrp("203.0.113.0/26", 27, 65009) in again.rpki.table
    assert make_vrp("198.51.100.0/24", 24, 64500) not in again.rpki.table  # not ours: not recorded


@needs_stayrtr
def test_a_version_0_cache(tmp_path: Path) -> None:
    cache = Stayrtr(tmp_path, VRPS_1, "-protocol", "0")
    host = make_host(tmp_path, [f"127.0.0.1:{cache.port}"])

    async def scenario() -> RtrSource:
        source = RtrSource(host, host.config.rpki)
        await source.start()
        try:
            await until(lambda: host.pipeline.rpki.usable)
            write_vrps(cache.cache, VRPS_2)
            await until(lambda: table_rows(host) == set(VRPS_2))
        finally:
            await source.stop()
        return source

    try:
        source = asyncio.run(scenario())
    finally:
        cache.stop()
    server = source.servers[0]
    assert server.version == 0 and server.counts["downgraded"] == 1 and server.counts["end_of_data"] >= 2
    assert server.timers["refresh"] == 3600  # version 0 sends no timers: the config's stay


@needs_stayrtr
def test_caches_in_order_of_preference(tmp_path: Path) -> None:
    first_port = free_port()
    second = Stayrtr(tmp_path, VRPS_1)
    host = make_host(tmp_path, [f"127.0.0.1:{first_port}", f"127.0.0.1:{second.port}"])
    unusable: list[float] = []

    async def scenario() -> RtrSource:
        source = RtrSource(host, host.config.rpki)
        await source.start()
        first = None
        try:
            await until(lambda: host.pipeline.rpki.usable)
            assert source.active is source.servers[1]
            assert "connection refused" in source.servers[0].last_error
            first = await asyncio.to_thread(Stayrtr, tmp_path, VRPS_2, port=first_port)
            second.stop()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and table_rows(host) != set(VRPS_2):
                if not host.pipeline.rpki.usable:
                    unusable.append(time.monotonic())
                await asyncio.sleep(0.05)
            assert table_rows(host) == set(VRPS_2)
        finally:
            await source.stop()
            if first is not None:
                first.stop()
        return source

    source = asyncio.run(scenario())
    assert source.active is source.servers[0] and unusable == []
    assert source.servers[1].state == "down" and source.servers[1].counts["connection_lost"] == 1


@needs_stayrtr
def test_expiry_empties_the_table_and_pages(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(rtr.TIMER_RANGES, "expire", (1, 172800))  # RFC 8210's floor is 600 s
    cache = Stayrtr(tmp_path, VRPS_1, "-rtr.expire", "2")
    host = make_host(tmp_path, [f"127.0.0.1:{cache.port}"], rpki_cache={"for": 1})

    async def scenario() -> RtrSource:
        source = RtrSource(host, host.config.rpki)
        await source.start()
        try:
            await until(lambda: host.pipeline.rpki.usable)
            cache.stop()
            await until(lambda: not host.pipeline.rpki.usable)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # the engine's clock is the pipeline's: tick it
                host.pipeline.consumer.tick(time.time())
                if any(x["kind"] == "rpki_cache_down" and x["state"] == "firing" for x in host.out):
                    break
                await asyncio.sleep(0.2)
        finally:
            await source.stop()
        return source

    source = asyncio.run(scenario())
    state = host.pipeline.rpki
    assert len(state.table) == 0 and "expired" in state.reason and source.servers[0].timers["expire"] == 2
    [down] = [x for x in host.out if x["kind"] == "rpki_cache_down" and x["state"] == "firing"]
    assert "RPKI origin validation off" in down["summary"] and "expired" in down["summary"]


# -- protocol errors, against a scripted cache ------------------------------------------------------
def pdu(kind: int, session: int, body: bytes = b"", version: int = 1) -> bytes:
    return struct.pack("!BBHI", version, kind, session, 8 + len(body)) + body


def prefix4(prefix: str, max_length: int, asn: int, announce: bool = True) -> bytes:
    network, length = prefix.split("/")
    addr = bytes(int(x) for x in network.split("."))
    return pdu(
        rtr.IPV4_PREFIX,
        0,
        struct.pack("!BBBB", int(announce), int(length), max_length, 0) + addr + struct.pack("!I", asn),
    )


def end_of_data(session: int, serial: int) -> bytes:
    return pdu(rtr.END_OF_DATA, session, struct.pack("!IIII", serial, 1, 600, 7200))


GOOD = pdu(rtr.CACHE_RESPONSE, 7) + prefix4("203.0.113.0/26", 27, 65001) + end_of_data(7, 1)
BAD_ANSWERS = {
    "duplicate_announcement": (
        pdu(rtr.CACHE_RESPONSE, 7) + prefix4("203.0.113.0/26", 27, 65001) * 2 + end_of_data(7, 2),
        rtr.DUPLICATE_ANNOUNCEMENT,
    ),
    "withdrawal_of_unknown": (
        pdu(rtr.CACHE_RESPONSE, 7) + prefix4("192.0.2.0/24", 24, 1, announce=False) + end_of_data(7, 2),
        rtr.WITHDRAWAL_OF_UNKNOWN,
    ),
    "bad_prefix": (pdu(rtr.CACHE_RESPONSE, 7) + prefix4("203.0.113.1/26", 27, 65001), rtr.CORRUPT_DATA),
    "bad_length": (struct.pack("!BBHI", 1, rtr.IPV4_PREFIX, 0, 4), rtr.CORRUPT_DATA),
    "unsupported_pdu_type": (pdu(99, 0), rtr.UNSUPPORTED_PDU_TYPE),
}


@pytest.mark.parametrize("reason", sorted(BAD_ANSWERS))
def test_a_malformed_answer_is_counted_reported_and_the_table_kept(tmp_path: Path, reason: str) -> None:
    answer, code = BAD_ANSWERS[reason]
    reports: list[bytes] = []
    connections = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readexactly(8)  # the Reset Query
        writer.write(GOOD)
        await writer.drain()
        await reader.readexactly(12)  # the Serial Query after the 1 s refresh
        writer.write(answer)
        await writer.drain()
        try:
            reports.append(await asyncio.wait_for(reader.read(4096), 5))
        finally:
            writer.close()

    async def scenario() -> RtrSource:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        host = make_host(tmp_path, [f"127.0.0.1:{port}"])
        source = RtrSource(host, host.config.rpki)
        await source.start()
        try:
            await until(lambda: source.counts[reason] >= 1)
        finally:
            await source.stop()
            server.close()
        return source

    source = asyncio.run(scenario())
    assert reports and reports[0][1] == rtr.ERROR_REPORT and struct.unpack("!H", reports[0][2:4])[0] == code
    state = source.state
    assert state.usable and {str(v) for v in state.table} == {"203.0.113.0/26-27 AS65001"}
    assert source.servers[0].counts[reason] >= 1 and source.servers[0].last_error


# -- the daemon ----------------------------------------------------------------------------------------
def exabgp_line(kind: str, peer: str, peer_as: int, body: str) -> bytes:
    head = (
        f'{{ "exabgp": "5.0.0", "time": {time.time()}, "host": "t", "pid": 1, "ppid": 1, "counter": 1, '
        f'"type": "{kind}", "neighbor": {{ "address": {{ "local": "192.0.2.1", "peer": "{peer}" }}, '
        f'"asn": {{ "local": 65000, "peer": {peer_as} }}, "router-id": "192.0.2.254", '
    )
    return (head + body + " } }\n").encode()


def update(peer: str, peer_as: int, path: list[int], prefixes: list[str]) -> bytes:
    nlri = ", ".join(f'{{ "nlri": "{p}" }}' for p in prefixes)
    return exabgp_line(
        "update",
        peer,
        peer_as,
        '"direction": "receive", "message": { "update": { "attribute": { "origin": "igp", '
        f'"as-path": {{"0": {{"element": "as-sequence", "value": {path}}}}} }}, '
        f'"announce": {{ "ipv4 unicast": {{ "{peer}": [ {nlri} ] }} }} }} }}',
    )


@needs_stayrtr
def test_daemon_with_rtr_caches(tmp_path: Path) -> None:
    import signal
    import socket
    import sys

    from tests.test_bmp_station import get, wait

    cache = Stayrtr(tmp_path, VRPS_1)
    api_port = free_port()
    doc = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    doc["collector"]["exabgp"] = "external"
    doc["collector"]["runtime_dir"] = str(tmp_path / "run")
    doc["rpki"] = {"rtr": [{"address": f"127.0.0.1:{free_port()}"}, {"address": f"127.0.0.1:{cache.port}"}]}
    doc["api"] = {"listen": f"127.0.0.1:{api_port}"}
    doc["storage"] = {"path": str(tmp_path / "state" / "bgpwatch.db")}
    doc["recording"] = {"path": str(tmp_path / "rec")}
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(doc))
    bgpwatch = [sys.executable, "-m", "bgpwatch"]
    env = {**os.environ, "COLUMNS": "250"}
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([*bgpwatch, "run", "--config", str(path)], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{api_port}"
    try:
        wait(lambda: (tmp_path / "run" / "relay.sock").exists())
        relay = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        relay.connect(str(tmp_path / "run" / "relay.sock"))
        relay.sendall(exabgp_line("state", "192.0.2.2", 65001, '"state": "up"'))
        relay.sendall(update("192.0.2.2", 65001, [65001], ["203.0.113.0/27", "203.0.113.32/27"]))
        status = wait(lambda: (s := _get(base + "/api/v1/rpki")) and s.get("usable") and s)
        assert status["vrps"] == 4 and status["origin"] == f"127.0.0.1:{cache.port}"
        routes = wait(lambda: (r := _get(base + "/api/v1/prefixes?peer=192.0.2.2")) and len(r) == 2 and r)
        assert {r["rpki"] for r in routes} == {VALID}
        # par1's ROA now names AS65009: its routes are INVALID, one page for the origin.
        write_vrps(cache.cache, VRPS_2)
        alert = wait(
            lambda: next(
                (a for a in _get(base + "/api/v1/alerts") or [] if a["kind"] == "rpki_invalid"), None
            )
        )
        assert alert["labels"] == {"origin": "65001"} and alert["severity"] == "critical"
        out = subprocess.run(
            [*bgpwatch, "rpki", "--config", str(path), "203.0.113.0/27"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        assert "RPKI usable" in out.stdout and "203.0.113.0/26-27 AS65009" in out.stdout
        prefixes = subprocess.run(
            [*bgpwatch, "prefixes", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert prefixes.returncode == 0 and "invalid" in prefixes.stdout
        bad = subprocess.run(
            [*bgpwatch, "rpki", "--config", str(path), "192.0.2.0/24"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode != 0 and "not one of our prefixes" in (bad.stderr + bad.stdout)
        metrics = get(base + "/metrics")
        assert "bgpwatch_rpki_usable 1.0" in metrics and 'bgpwatch_rpki_vrps{family="ipv4"} 3.0' in metrics
        inputs = get(base + "/api/v1/status")["inputs"]
        [rtr_status] = [i for i in inputs if i["type"] == "rtr"]
        assert rtr_status["usable"] and rtr_status["servers"][0]["state"] == "down"
        relay.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
        cache.stop()
    text = (tmp_path / "daemon.log").read_text()
    assert "Traceback" not in text and "connection refused" in text
    # The recording replays to the same page.
    replay = subprocess.run(
        [
            *bgpwatch,
            "replay",
            "--settle",
            "30",
            "--config",
            str(path),
            *map(str, sorted((tmp_path / "rec").iterdir())),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    # The same page, at the same time (the peer's table counted loaded 10 s after it came up).
    [line] = [x for x in replay.stdout.splitlines() if "rpki_invalid" in x]
    assert "firing" in line and "origin=65001" in line and alert["fired_at"][:19] in line


def _get(url: str):
    try:
        return get_json(url)
    except OSError:
        return None


def get_json(url: str):
    from tests.test_bmp_station import get

    return get(url)


@needs_stayrtr
def test_a_cache_restart_is_a_cache_reset_then_a_full_load(tmp_path: Path) -> None:
    cache = Stayrtr(tmp_path, VRPS_1)
    host = make_host(tmp_path, [f"127.0.0.1:{cache.port}"])

    async def scenario() -> RtrSource:
        nonlocal cache
        source = RtrSource(host, host.config.rpki)
        await source.start()
        try:
            await until(lambda: host.pipeline.rpki.usable)
            session = source.servers[0].session_id
            cache.stop()
            await until(lambda: source.servers[0].state == "down")
            assert host.pipeline.rpki.usable  # the data stays usable until it expires
            # stayrtr 0.5.1 derives its session id from the clock's second: a restart within the
            # same second would be the same session and serial with other data (a cache bug).
            await asyncio.sleep(1.2)
            cache = await asyncio.to_thread(Stayrtr, tmp_path, VRPS_2, port=cache.port)
            await until(lambda: table_rows(host) == set(VRPS_2), timeout=40)
            assert source.servers[0].session_id != session
        finally:
            await source.stop()
        return source

    try:
        source = asyncio.run(scenario())
    finally:
        cache.stop()
    counts = source.servers[0].counts
    # Reconnected with a Serial Query for the old session, which stayrtr 0.5.1 refuses (an Error
    # Report "Session ID mismatch", or no answer while it starts): then a Reset Query loaded its data.
    assert counts["connection_lost"] >= 1 and source.servers[0].state == "up", counts
    assert counts["cache_error_report"] + counts["connection_lost"] >= 2, counts


def test_a_cache_reset_answer_is_followed_by_a_full_load(tmp_path: Path) -> None:
    """RFC 8210 5.9: a Serial Query answered with Cache Reset; the client sends a Reset Query."""
    queries: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(8)  # Reset Query
        queries.append(rtr.RESET_QUERY)
        writer.write(GOOD)
        await writer.drain()
        header = await reader.readexactly(8)  # the Serial Query after the 1 s refresh
        await reader.readexactly(4)
        queries.append(header[1])
        writer.write(pdu(rtr.CACHE_RESET, 0))
        await writer.drain()
        header = await reader.readexactly(8)
        queries.append(header[1])
        writer.write(pdu(rtr.CACHE_RESPONSE, 8) + prefix4("198.51.100.0/24", 24, 64500) + end_of_data(8, 5))
        await writer.drain()
        await reader.read()  # until the client goes

    async def scenario() -> RtrSource:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        host = make_host(tmp_path, [f"127.0.0.1:{port}"])
        source = RtrSource(host, host.config.rpki)
        await source.start()
        try:
            await until(lambda: source.servers[0].counts["end_of_data"] >= 2)
        finally:
            await source.stop()
            server.close()
        return source

    source = asyncio.run(scenario())
    assert queries == [rtr.RESET_QUERY, rtr.SERIAL_QUERY, rtr.RESET_QUERY]
    assert {str(v) for v in source.state.table} == {"198.51.100.0/24-24 AS64500"}  # replaced, not merged
    server = source.servers[0]
    assert server.counts["cache_reset"] == 1 and server.session_id == 8 and server.serial == 5
