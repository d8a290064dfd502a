"""The HTTP API under abuse (issue 12): strict parameters, hostile headers, big answers, idle floods, EMFILE.

A real API runs in a child process on loopback (`python tests/test_api_abuse.py serve ...`): a `Daemon`
built from the Paris example config (external ExaBGP mode, state in tmp) whose RIB holds ROUTES routes,
served by `ApiServer` (the server `bgpwatch run` uses) with short idle timeouts so the test needs no long
sleeps. The child also runs the EMFILE cases with a lowered RLIMIT_NOFILE. Figures measured here
(/metrics latency with 1,000 idle connections and during `prefixes?limit=1000000`, the child's RSS) are
printed with `pytest -s`.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "abuse-test-token"
ROUTES = 300_000
HEADER_TIMEOUT = 3.0
KEEPALIVE_TIMEOUT = 2.0  # shorter than the header timeout: the test tells which one closed it
IDLE = 1_000
# Bounds on /metrics latency; the figures seen on the 2-core CI box are far below (see the report).
METRICS_IDLE_BOUND = 0.5
METRICS_BIG_ANSWER_BOUND = 1.0  # the unstreamed answer stalled /metrics for its whole duration
METRICS_BIG_ANSWER_MEDIAN_BOUND = 0.25
RSS_GROWTH_BOUND = 200 << 20


# -- the child process ---------------------------------------------------------------------------
def _serve(config_path: str, routes: int) -> None:
    """Run the real API of a daemon holding `routes` routes; print the port, stop on SIGTERM."""
    from bgpwatch.api.server import ApiServer, build_app
    from bgpwatch.config import load_config
    from bgpwatch.daemon import Daemon

    daemon = Daemon(load_config(config_path))
    rib = daemon.pipeline.rib
    peers = [p.address for p in daemon.config.peers]
    paths = [rib.pool.intern(as_path=(65001, 64500 + i), next_hop="192.0.2.2") for i in range(64)]
    for i in range(routes):
        # /24s from 1.0.0.0 up, spread over the configured peers; keys as bgpwatch.rib.prefix makes them
        table = rib.peer(peers[i % len(peers)]).tables[4]
        table[(((1 << 24) + (i << 8)) << 8) | 24] = paths[i % len(paths)]

    async def main() -> None:
        import signal

        server = ApiServer(
            build_app(daemon),
            "127.0.0.1",
            0,
            registry=daemon.registry,
            header_timeout=HEADER_TIMEOUT,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(server.port, server.max_connections, flush=True)
        await stop.wait()
        await server.cleanup()
        daemon.store.close()

    asyncio.run(main())


def _emfile(limit: int, plain_asyncio: bool) -> None:
    """Serve /stats with RLIMIT_NOFILE lowered to `limit`: ApiServer, or aiohttp's own site as a control."""
    from aiohttp import web

    from bgpwatch.api.server import ApiServer

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    async def main() -> None:
        server: ApiServer | None = None

        async def stats(_request: web.Request) -> web.Response:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            accept_errors = server.accept_errors if server is not None else -1
            return web.json_response({"cpu": usage.ru_utime + usage.ru_stime, "accept_errors": accept_errors})

        app = web.Application()
        app.router.add_get("/stats", stats)
        if plain_asyncio:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        else:
            # A limit above what the descriptors allow, so accept() itself runs out of them.
            server = ApiServer(app, "127.0.0.1", 0, max_connections=10 * limit, header_timeout=60)
            await server.start()
            port = server.port
        print(port, flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())


# -- helpers -------------------------------------------------------------------------------------
class Child:
    """A child process started with one of the modes above; its port comes on the first stdout line."""

    def __init__(self, *args: str, nofile: int | None = None) -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            preexec_fn=None
            if nofile is None
            else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard)),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line:
            raise AssertionError(
                f"child did not start: {self.proc.communicate(timeout=10)[1].decode()[-2000:]}"
            )
        fields = line.split()
        self.port = int(fields[0])
        self.extra = [int(f) for f in fields[1:]]

    def rss(self) -> int:
        """Return the child's resident set size in bytes."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) << 10  # type: ignore[union-attr]

    def cpu(self) -> float:
        """Return the child's user+system CPU seconds."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> str:
        """Stop the child and return its stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate(timeout=5)
        return err.decode(errors="replace")


def request(
    port: int, path: str, token: str | bytes | None = TOKEN, headers: dict[str, bytes] | None = None
) -> tuple[int, bytes]:
    """GET a path (sent byte for byte) and return (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        if token is not None:
            conn.putheader("Authorization", token if isinstance(token, bytes) else f"Bearer {token}")
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def metrics_latency(port: int) -> float:
    start = time.perf_counter()
    status, body = request(port, "/metrics", token=None)
    elapsed = time.perf_counter() - start
    assert status == 200 and b"bgpwatch_api_connections " in body
    return elapsed


def metric(port: int, name: str) -> float:
    _status, body = request(port, "/metrics", token=None)
    match = re.search(rb"^" + re.escape(name.encode()) + rb" ([0-9.e+]+)$", body, re.M)
    assert match, name
    return float(match.group(1))


def raise_nofile(wanted: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE to `wanted` (bounded by the hard limit), or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def write_config(tmp: Path) -> Path:
    """Write the Paris example config in external mode with its state under `tmp`."""
    config = yaml.safe_load((ROOT / "bgpwatch" / "data" / "paris.yaml").read_text())
    config["collector"]["exabgp"] = "external"
    config["collector"]["runtime_dir"] = str(tmp / "run")
    config["api"] = {"listen": "127.0.0.1:9179", "token": TOKEN}  # the child binds port 0 instead
    config["storage"] = {"path": str(tmp / "bgpwatch.db")}
    config["alerting"] = {"sinks": [{"type": "log"}]}
    path = tmp / "bgpwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    # Children inherit the limit: 1,000 idle connections need ~1,000 descriptors on each side.
    raise_nofile(4096)
    child = Child("serve", str(write_config(tmp_path_factory.mktemp("abuse"))), str(ROUTES))
    yield child
    stderr = child.stop()
    assert "Traceback" not in stderr, stderr[-3000:]


# -- strict parameters and headers ---------------------------------------------------------------
BAD_PARAMETERS = [
    ("/api/v1/prefixes?limit=%C2%B2", "limit"),  # '²': str.isdigit() says yes
    ("/api/v1/prefixes?limit=%D9%A1%D9%A2", "limit"),  # Arabic-Indic digits
    ("/api/v1/prefixes?limit=" + "9" * 5000, "limit"),
    ("/api/v1/prefixes?limit=0", "limit"),
    ("/api/v1/prefixes?limit=-5", "limit"),
    ("/api/v1/prefixes?limit=1000001", "limit"),
    ("/api/v1/prefixes?limit=1e3", "limit"),
    ("/api/v1/prefixes?limit=%201", "limit"),
    ("/api/v1/prefixes?limit=", "limit"),
    ("/api/v1/prefixes?limit=5&limit=6", "limit"),
    ("/api/v1/prefixes?prefix=1.2.3.0/%C2%B2", "prefix"),
    ("/api/v1/prefixes?prefix=1.2.3.0/33", "prefix"),
    ("/api/v1/prefixes?prefix=999.2.3.0/24", "prefix"),
    ("/api/v1/prefixes?prefix=%00", "prefix"),
    ("/api/v1/prefixes?prefix=" + "1" * 300, "prefix"),
    ("/api/v1/prefixes?lookup=10.0.0.0/8", "lookup"),
    ("/api/v1/prefixes?lookup=%FF%FE", "lookup"),
    ("/api/v1/prefixes?lookup=not-an-address", "lookup"),
    ("/api/v1/prefixes?lookup=%D9%A1.2.3.4", "lookup"),
    ("/api/v1/prefixes?family=ipv5", "family"),
    ("/api/v1/prefixes?peer=nobody", "peer"),
    ("/api/v1/prefixes?site=%FF", "site"),
    ("/api/v1/prefixes?bogus=1", "bogus"),
    ("/api/v1/transitions?since=%C2%B2", "since"),
    ("/api/v1/transitions?since=1e309", "since"),
    ("/api/v1/transitions?since=nan", "since"),
    ("/api/v1/transitions?since=" + "9" * 5000, "since"),
    ("/api/v1/transitions?since=99999-01-01", "since"),
    ("/api/v1/transitions?limit=10001", "limit"),
    ("/api/v1/alerts?all=maybe", "all"),
    ("/api/v1/alerts?all=true&since=%C2%B2", "since"),
    ("/api/v1/status?verbose=1", "verbose"),
    ("/api/v1/peers?x=1", "x"),
]


@pytest.mark.parametrize(("path", "name"), BAD_PARAMETERS, ids=[p[:60] for p, _ in BAD_PARAMETERS])
def test_bad_parameter_is_a_400_naming_it(api: Child, path: str, name: str) -> None:
    status, body = request(api.port, path)
    assert status == 400, (status, body[:300])
    error = orjson.loads(body)["error"]
    assert error.startswith(f"{name}:"), error
    assert len(error) < 300  # a 5,000-digit value is not echoed back whole


def test_good_parameters_still_work(api: Child) -> None:
    status, body = request(api.port, "/api/v1/prefixes?limit=5&family=ipv4")
    assert status == 200 and len(orjson.loads(body)) == 5
    status, body = request(api.port, "/api/v1/prefixes?prefix=1.0.0.0/24")
    assert status == 200 and [r["peer"] for r in orjson.loads(body)] == ["par1-rr1"]
    status, body = request(api.port, "/api/v1/prefixes?lookup=1.0.1.7&peer=par2-rr1")
    assert status == 200 and [r["prefix"] for r in orjson.loads(body)] == ["1.0.1.0/24"]
    for path in (
        "/api/v1/transitions?since=0&limit=10",
        "/api/v1/transitions?since=1741010000.5",
        "/api/v1/alerts?all=true&since=2025-03-03T14:00:00Z",
        "/api/v1/alerts?all=0",
        "/metrics?name%5B%5D=anything",  # /metrics ignores its query (Prometheus `params`)
    ):
        status, body = request(api.port, path)
        assert status == 200, (path, body[:200])


def post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_bad_bodies_are_refused_never_a_500(api: Child) -> None:
    assert post(api.port, "/api/v1/maintenance", b"{" * 200_000)[0] == 413  # over MAX_BODY
    status, body = post(api.port, "/api/v1/maintenance", b'{"target": "\xff\xfe"}')
    assert status == 400 and orjson.loads(body)["error"].startswith("body:")
    status, body = post(api.port, "/api/v1/maintenance", b"[" * 5000 + b"]" * 5000)
    assert status == 400 and orjson.loads(body)["error"].startswith("body:")
    status, body = post(api.port, "/api/v1/maintenance", orjson.dumps({"target": "x" * 5000}))
    assert status == 400 and orjson.loads(body)["error"].startswith("target:") and len(body) < 300


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xff", b"Bearer " + TOKEN.encode() + b"\xff", "Bearer é".encode(), b"\xff\xfe", b"Bearer", b""],
    ids=["ff", "token-ff", "utf8", "garbage", "no-token", "empty"],
)
def test_bad_authorization_is_a_401(api: Child, authorization: bytes) -> None:
    status, body = request(api.port, "/api/v1/status", token=authorization)
    assert status == 401, body[:200]
    assert TOKEN.encode() not in body


def test_other_undecodable_headers_never_give_a_500(api: Child) -> None:
    for path in ("/metrics", "/api/v1/status", "/api/v1/prefixes?limit=1"):
        status, _body = request(api.port, path, headers={"X-Junk": b"\xff\xfe\x80", "Accept": b"\xc3("})
        assert status == 200
    # The same path with the right token still authenticates: nothing stayed broken.
    assert request(api.port, "/api/v1/status")[0] == 200


def test_bearer_comparison_is_exact() -> None:
    from bgpwatch.api.server import bearer_matches

    assert bearer_matches("Bearer " + TOKEN, TOKEN)
    assert not bearer_matches("Bearer " + TOKEN[:-1], TOKEN)
    assert not bearer_matches("Bearer " + TOKEN + "x", TOKEN)
    assert not bearer_matches("Bearer \udcff", TOKEN)  # how aiohttp hands over a \xff byte
    assert not bearer_matches("Bearer \ud800", TOKEN)


# -- a big answer ---------------------------------------------------------------------------------
def test_big_prefixes_answer_is_streamed_while_metrics_stays_fast(api: Child) -> None:
    rss_before = api.rss()
    result: dict[str, object] = {}

    def fetch() -> None:
        start = time.perf_counter()
        result["status"], result["body"] = request(api.port, "/api/v1/prefixes?limit=1000000")
        result["seconds"] = time.perf_counter() - start

    thread = threading.Thread(target=fetch)
    thread.start()
    latencies: list[float] = []
    peak = rss_before
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        latencies.append(metrics_latency(api.port))
        peak = max(peak, api.rss())
        time.sleep(0.02)
    thread.join(timeout=60)
    assert result["status"] == 200
    routes = orjson.loads(result["body"])  # type: ignore[arg-type]
    assert len(routes) == ROUTES
    assert len({(r["peer"], r["prefix"]) for r in routes}) == ROUTES
    assert len(latencies) >= 3, "the answer came too fast to measure anything"
    print(
        f"\nprefixes?limit=1000000: {ROUTES} routes, {len(result['body']) >> 20} MiB in "  # type: ignore[arg-type]
        f"{result['seconds']:.2f} s; /metrics during it: {len(latencies)} scrapes, "
        f"max {max(latencies) * 1000:.0f} ms, median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms; "
        f"server RSS {rss_before >> 20} MiB before, peak {peak >> 20} MiB"
    )
    assert max(latencies) < METRICS_BIG_ANSWER_BOUND
    assert sorted(latencies)[len(latencies) // 2] < METRICS_BIG_ANSWER_MEDIAN_BOUND
    assert peak - rss_before < RSS_GROWTH_BOUND


def test_limit_is_honoured_across_peers(api: Child) -> None:
    status, body = request(api.port, "/api/v1/prefixes?limit=4500&site=par2")
    routes = orjson.loads(body)
    assert status == 200 and len(routes) == 4500 and {r["site"] for r in routes} == {"par2"}


# -- idle connections ------------------------------------------------------------------------------
def test_a_thousand_idle_connections_leave_metrics_fast_and_time_out(api: Child) -> None:
    assert api.extra[0] > IDLE, f"the connection limit ({api.extra[0]}) should hold {IDLE} idle connections"
    sockets: list[socket.socket] = []
    try:
        for i in range(IDLE):
            sock = socket.create_connection(("127.0.0.1", api.port), timeout=5)
            if i % 2:
                sock.sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            sockets.append(sock)
        deadline = time.monotonic() + 5
        while metric(api.port, "bgpwatch_api_connections") < IDLE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metric(api.port, "bgpwatch_api_connections") >= IDLE
        latencies = [metrics_latency(api.port) for _ in range(20)]
        print(
            f"\n/metrics with {IDLE} idle connections: max {max(latencies) * 1000:.1f} ms, "
            f"median {sorted(latencies)[10] * 1000:.1f} ms; server RSS {api.rss() >> 20} MiB"
        )
        assert max(latencies) < METRICS_IDLE_BOUND
        # Every idle connection is closed by the server after the header timeout.
        closed = 0
        deadline = time.monotonic() + HEADER_TIMEOUT + 5
        for sock in sockets:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                closed += isinstance(sys.exc_info()[1], ConnectionResetError)
        assert closed == IDLE
        assert metric(api.port, 'bgpwatch_api_connections_closed_total{reason="idle"}') >= IDLE
    finally:
        for sock in sockets:
            sock.close()


def test_idle_flood_beyond_the_default_descriptor_limit(tmp_path: Path) -> None:
    # The case: 1,100 idle connections to a daemon under the default soft limit of 1,024
    # descriptors made /metrics time out while asyncio logged accept() failures in a tight loop.
    raise_nofile(4096)
    child = Child("serve", str(write_config(tmp_path)), "1000", nofile=1024)
    sockets: list[socket.socket] = []
    try:
        assert child.extra[0] < 1024  # the limit fits the descriptors
        sockets = [socket.create_connection(("127.0.0.1", child.port), timeout=5) for _ in range(1100)]
        latencies = [metrics_latency(child.port) for _ in range(10)]
        assert max(latencies) < METRICS_IDLE_BOUND
        assert metric(child.port, "bgpwatch_api_connections") <= child.extra[0]

        # Beyond the listen backlog (512) the kernel keeps a connection out of the accept queue and
        # lets it in at a SYN-ACK retransmit (1 s, 3 s, 7 s... later), when the header timeout (3 s)
        # may have made room already: how many are evicted rather than timed out depends on the
        # machine's load, but every one of the 1,100 is closed by the server, one way or the other.
        def closed() -> float:
            _status, body = request(child.port, "/metrics", token=None)
            found = re.findall(
                rb'^bgpwatch_api_connections_closed_total\{reason="[a-z]+"\} ([0-9.e+]+)$', body, re.M
            )
            return sum(float(value) for value in found)  # a reason not seen yet has no series

        deadline = time.monotonic() + HEADER_TIMEOUT + 30
        while closed() < 1100 and time.monotonic() < deadline:
            assert metric(child.port, "bgpwatch_api_connections") <= child.extra[0]
            time.sleep(0.2)
        assert closed() >= 1100
        assert (
            metric(child.port, 'bgpwatch_api_connections_closed_total{reason="evicted"}') >= 1
        )  # the limit held
    finally:
        for sock in sockets:
            sock.close()
        stderr = child.stop()
    assert "out of system resource" not in stderr and "Traceback" not in stderr


def test_keepalive_connection_is_closed_after_its_idle_time(api: Child) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.request("GET", "/healthz")
    conn.getresponse().read()
    conn.sock.settimeout(HEADER_TIMEOUT + 5)  # type: ignore[union-attr]
    start = time.monotonic()
    assert conn.sock.recv(1) == b""  # type: ignore[union-attr]
    # Closed after its keep-alive time (the sweep runs every 0.5 s), not kept for the header timeout.
    assert KEEPALIVE_TIMEOUT - 0.1 < time.monotonic() - start < HEADER_TIMEOUT
    conn.close()


# -- connection limit and EMFILE, in-process and in a child with few descriptors -------------------
def test_connection_limit_evicts_the_longest_idle() -> None:
    from aiohttp import web

    from bgpwatch.api.server import ApiServer

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/ok", ok)
        server = ApiServer(app, "127.0.0.1", 0, max_connections=20, header_timeout=30)
        await server.start()
        try:
            idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(35)]
            await asyncio.sleep(0.2)
            assert server.connections <= 20
            assert server.closed["evicted"] >= 15
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
            # The oldest went first: the last 19 opened are still connected.
            await asyncio.sleep(0.1)
            alive = [not r.at_eof() for r, _w in idle]
            assert alive[:15] == [False] * 15 and all(alive[-15:])
            for _r, w in [*idle, (reader, writer)]:
                w.close()
        finally:
            await server.cleanup()

    asyncio.run(scenario())


def emfile_run(plain_asyncio: bool) -> dict[str, float]:
    """Flood a child limited to 64 descriptors with 150 idle connections; measure its CPU and /stats."""
    child = Child("emfile", "64", "plain" if plain_asyncio else "bgpwatch")
    sockets: list[socket.socket] = []
    try:
        for _ in range(150):
            sockets.append(socket.create_connection(("127.0.0.1", child.port), timeout=5))
        time.sleep(0.3)
        cpu_before = child.cpu()
        time.sleep(1.0)
        spent = child.cpu() - cpu_before
        conn = http.client.HTTPConnection("127.0.0.1", child.port, timeout=1.5)
        try:
            conn.request("GET", "/stats")
            stats = orjson.loads(conn.getresponse().read())
        except (TimeoutError, OSError):
            stats = {"accept_errors": -1}
        finally:
            conn.close()
    finally:
        for sock in sockets:
            sock.close()
        stderr = child.stop()
    return {
        "cpu": spent,
        "accept_errors": stats["accept_errors"],
        "answered": float("cpu" in stats),
        "log_lines": stderr.count("out of system resource"),
    }


def test_emfile_never_makes_the_accept_loop_spin() -> None:
    ours = emfile_run(plain_asyncio=False)
    print(f"\nEMFILE, ApiServer: {ours}")
    assert ours["accept_errors"] > 0, "the child never ran out of descriptors: the test proves nothing"
    assert ours["answered"] == 1.0, "a new client got no answer while descriptors were short"
    assert ours["cpu"] < 0.3  # of 1 s
    assert ours["log_lines"] == 0


def test_emfile_control_plain_asyncio_spins() -> None:
    # The control: the same flood against aiohttp's own site burns CPU and floods the log, so the
    # test above can tell the difference.
    plain = emfile_run(plain_asyncio=True)
    print(f"\nEMFILE, plain aiohttp site: {plain}")
    assert plain["log_lines"] > 100 or plain["cpu"] > 0.3 or not plain["answered"]


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "emfile":
        _emfile(int(sys.argv[2]), sys.argv[3] == "plain")
