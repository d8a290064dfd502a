r"""Build a multi-site BGP lab in network namespaces: one collector namespace, N BIRD 2 sites.

Layout (3 sites, the defaults; see tests/lab/README.md for the whole address plan)::

                 <id>-coll   (ExaBGP/bgpwatch run here, through Lab.collector_exec)
      192.0.2.1/30 |   192.0.2.5/30 |   192.0.2.9/30 |     (+ 2001:db8:c0:N::1/64)
      192.0.2.2    |   192.0.2.6    |   192.0.2.10   |     (+ 2001:db8:c0:N::2/64)
      <id>-par1 ------ <id>-par2 ------ <id>-par3           198.51.100.4K/30, 2001:db8:ff:K+1::/64
           \______________________________/

Every veth is created directly inside the lab's namespaces (``ip -n A link add ... peer ... netns B``):
nothing is ever added to, or removed from, the namespace the tests run in.  Every BIRD runs in the
foreground (``-f``) as a direct child, so the lab owns its pid; ``close()`` (also run by a
``weakref.finalize`` at interpreter exit) kills by pid, sweeps the lab's namespaces with
``ip netns pids``, deletes veths and namespaces and removes the temporary directory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

COLLECTOR_AS = 65000
COLLECTOR_ROUTER_ID = "192.0.2.254"
MARKER = ".bgpwatch-lab"
OWNER_FILE = "owner.pid"

# Bulk routes stay inside documentation/benchmarking space (RFC 2544 198.18.0.0/15, RFC 3849 2001:db8::/32).
BULK_V4_NET = ipaddress.IPv4Network("198.18.0.0/15")
BULK_V6_NET = ipaddress.IPv6Network("2001:db8:4000::/34")
BULK_V6_LENGTH = 56
BULK_V4_CAPACITY = 2 ** (32 - BULK_V4_NET.prefixlen + 1) - 1  # every length /15../32: 262,143 prefixes
BULK_V6_CAPACITY = 2 ** (BULK_V6_LENGTH - BULK_V6_NET.prefixlen)  # 4,194,304 /56s

_SITE_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_PREFIX_NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")


class LabError(RuntimeError):
    """A lab step failed (command error, timeout, bad argument)."""


class Addresses(NamedTuple):
    """An IPv4 and an IPv6 address of one end of a link."""

    v4: str
    v6: str


@dataclass(frozen=True)
class SiteSpec:
    """One site: a BIRD router with its AS and the prefixes it originates."""

    name: str
    asn: int
    prefixes: tuple[str, ...]


DEFAULT_SITES: tuple[SiteSpec, ...] = (
    SiteSpec("par1", 65001, ("203.0.113.0/27", "203.0.113.32/27", "2001:db8:1001::/48")),
    SiteSpec("par2", 65002, ("203.0.113.64/27", "203.0.113.96/27", "2001:db8:1002::/48")),
    SiteSpec("par3", 65003, ("203.0.113.128/27", "203.0.113.160/27", "2001:db8:1003::/48")),
    SiteSpec("par4", 65004, ("203.0.113.192/27", "203.0.113.224/27", "2001:db8:1004::/48")),
)


@dataclass(frozen=True)
class _Link:
    """One inter-site veth pair; ``a`` sorts before ``b`` in the site order."""

    index: int
    a: str
    b: str

    @property
    def key(self) -> frozenset[str]:
        return frozenset((self.a, self.b))

    def address(self, site: str) -> Addresses:
        """Return the addresses of ``site``'s end."""
        host = 1 if site == self.a else 2
        v4 = ipaddress.IPv4Address("198.51.100.0") + 4 * self.index + host
        return Addresses(str(v4), f"2001:db8:ff:{self.index + 1:x}::{host}")

    def ifname(self, site: str) -> str:
        """Return the interface name of ``site``'s end (it lives in ``site``'s namespace)."""
        return "s-" + (self.b if site == self.a else self.a)

    def other(self, site: str) -> str:
        return self.b if site == self.a else self.a


@dataclass
class _Resources:
    """What the lab owns; the finalizer gets this, never the Lab, so the Lab can be collected."""

    namespaces: list[str] = field(default_factory=list)
    veths: list[tuple[str, str]] = field(default_factory=list)  # (namespace, ifname)
    birds: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    others: list[subprocess.Popen[Any]] = field(default_factory=list)
    tmpdir: Path | None = None
    owner: int = field(default_factory=os.getpid)


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
    """Run a command, return its stdout; raise LabError with its stderr when it fails."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_pids(namespace: str) -> list[int]:
    out = _run(["ip", "netns", "pids", namespace], check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def _kill_namespace(namespace: str, deadline: float) -> None:
    """SIGKILL whatever still runs in one of our namespaces, then delete it."""
    for pid in _netns_pids(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while _netns_pids(namespace) and time.monotonic() < deadline:
        time.sleep(0.05)
    _run(["ip", "netns", "del", namespace], check=False)


def _stop_process(proc: subprocess.Popen[Any], sig: int, grace: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _release(res: _Resources) -> None:
    """Kill what the lab started, delete its veths and namespaces, remove its directory."""
    if os.getpid() != res.owner:
        return  # a forked child exiting must not tear down its parent's lab
    # Collector processes first and gently: bgpwatch should get to stop its ExaBGP children.
    for proc in res.others:
        _stop_process(proc, signal.SIGTERM, 5.0)
    for proc in res.birds.values():
        _stop_process(proc, signal.SIGKILL, 5.0)
    deadline = time.monotonic() + 10.0
    for namespace, ifname in res.veths:
        _run(["ip", "-n", namespace, "link", "del", ifname], check=False)
    for namespace in res.namespaces:
        _kill_namespace(namespace, deadline)
    if res.tmpdir is not None:
        shutil.rmtree(res.tmpdir, ignore_errors=True)
    res.others.clear()
    res.birds.clear()
    res.veths.clear()
    res.namespaces.clear()


def cleanup_stale(prefix: str = "bwt", *, include_live: bool = False) -> list[str]:
    """Remove leftover labs whose names start with ``prefix``; return the namespaces deleted.

    A lab whose owner process is still alive is left alone unless ``include_live`` is set, so
    concurrent test runs never destroy each other's labs.
    """
    tmp = Path(tempfile.gettempdir())
    live: set[str] = set()
    stale_dirs: list[Path] = []
    for directory in tmp.glob(prefix + "*"):
        marker = directory / MARKER
        if not marker.is_file():
            continue
        lab_id = marker.read_text().strip()
        try:
            owner = int((directory / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            owner = 0
        if owner and _alive(owner) and not include_live:
            live.add(lab_id)
            continue
        stale_dirs.append(directory)
    removed = []
    deadline = time.monotonic() + 10.0
    for namespace in _run(["ip", "netns", "list"], check=False).split("\n"):
        name = namespace.split(" ", 1)[0].strip()
        if not name.startswith(prefix) or "-" not in name:
            continue
        if name.rsplit("-", 1)[0] in live:
            continue
        _kill_namespace(name, deadline)
        removed.append(name)
    for directory in stale_dirs:
        shutil.rmtree(directory, ignore_errors=True)
    return removed


def lab_available() -> str | None:
    """Return why the lab cannot run here, or None when it can (root, ip, bird, birdc)."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    for tool in ("ip", "bird", "birdc"):
        if shutil.which(tool) is None:
            return f"the lab needs {tool!r} on PATH (iproute2, bird2)"
    return None


def bulk_v4_prefixes(count: int, offset: int = 0) -> Iterator[str]:
    """Yield ``count`` distinct IPv4 prefixes inside 198.18.0.0/15: the /32s first, then /31s, ... /15."""
    if offset < 0 or count < 0 or offset + count > BULK_V4_CAPACITY:
        raise LabError(f"198.18.0.0/15 holds {BULK_V4_CAPACITY} prefixes; asked for {offset}+{count}")
    return _v4_range(count, offset)


def _v4_range(count: int, offset: int) -> Iterator[str]:
    base = int(BULK_V4_NET.network_address)
    position = 0
    for length in range(32, BULK_V4_NET.prefixlen - 1, -1):
        size = 2 ** (length - BULK_V4_NET.prefixlen)
        if offset + count <= position:
            return
        if offset >= position + size:
            position += size
            continue
        first = max(offset - position, 0)
        last = min(offset + count - position, size)
        step = 2 ** (32 - length)
        for number in range(first, last):
            yield f"{ipaddress.IPv4Address(base + number * step)}/{length}"
        position += size


def bulk_v6_prefixes(count: int, offset: int = 0) -> Iterator[str]:
    """Yield ``count`` distinct IPv6 /56s inside 2001:db8:4000::/34."""
    if offset < 0 or count < 0 or offset + count > BULK_V6_CAPACITY:
        raise LabError(f"2001:db8:4000::/34 holds {BULK_V6_CAPACITY} /56s; asked for {offset}+{count}")
    return _v6_range(count, offset)


def _v6_range(count: int, offset: int) -> Iterator[str]:
    base = int(BULK_V6_NET.network_address)
    step = 2 ** (128 - BULK_V6_LENGTH)
    for number in range(offset, offset + count):
        yield f"{ipaddress.IPv6Address(base + number * step)}/{BULK_V6_LENGTH}"


def _bulk_protocol(
    name: str, family: int, prefixes: Iterator[str], asn: int, group_size: int
) -> Iterator[str]:
    """Yield the lines of one bulk static protocol (streamed: a full table is tens of MB of text)."""
    yield f"protocol static {name} {{\n  ipv{family};\n"
    for number, prefix in enumerate(prefixes):
        group = number // group_size if group_size > 0 else 0
        # Routes of one group share every attribute, so BIRD packs them into one UPDATE.
        yield (
            f"  route {prefix} unreachable {{ bgp_community.add(({asn}, 200)); "
            f"bgp_large_community.add(({asn}, {family}, {group})); }};\n"
        )
    yield "}\n"


class Lab:
    """A collector namespace and N BIRD sites in network namespaces; use as a context manager.

    ``sites``: how many of DEFAULT_SITES (1-4) or SiteSpec objects; ``prefix``: start of every namespace
    and temp dir name (a random 4-hex lab id follows); ``collector_as``: the collector's AS ("ibgp": each
    session uses the site's own AS); ``routers_passive``: BIRD waits for the collector to connect;
    timers apply to every BGP session; ``extra_routes``: ``{site: (count_v4, count_v6, group_size)}``
    bulk routes loaded before ``start()`` returns.
    """

    def __init__(
        self,
        sites: int | Sequence[SiteSpec] = 3,
        *,
        prefix: str = "bwt",
        collector_as: int | Literal["ibgp"] = COLLECTOR_AS,
        routers_passive: bool = True,
        hold_time: int = 9,
        keepalive_time: int = 3,
        connect_delay: int = 1,
        connect_retry: int = 5,
        error_wait: tuple[int, int] = (1, 10),
        extra_routes: Mapping[str, tuple[int, int, int]] | None = None,
        share_bulk: bool = False,
        md5_password: str | None = None,
    ) -> None:
        """Plan the lab; nothing is created before ``start()`` (``with Lab() as lab:`` calls it)."""
        if isinstance(sites, int):
            if not 1 <= sites <= len(DEFAULT_SITES):
                raise LabError(f"sites={sites}: pass SiteSpec objects for more than {len(DEFAULT_SITES)}")
            sites = DEFAULT_SITES[:sites]
        self.sites: tuple[SiteSpec, ...] = tuple(sites)
        names = [spec.name for spec in self.sites]
        if len(set(names)) != len(names):
            raise LabError(f"duplicate site names: {names}")
        for name in names:
            if not _SITE_NAME.match(name):
                raise LabError(f"site name {name!r}: want [a-z][a-z0-9]{{0,9}} (BIRD symbol, interface name)")
        if not _PREFIX_NAME.match(prefix):
            raise LabError(f"prefix {prefix!r}: want [a-z][a-z0-9]{{0,7}}")
        if len(self.sites) > 62:
            raise LabError("at most 62 sites fit 192.0.2.0/24 with one /30 each")
        pairs = len(self.sites) * (len(self.sites) - 1) // 2
        if pairs > 64:
            raise LabError("at most 11 sites: the inter-site /30s must fit 198.51.100.0/24")
        self.lab_id = prefix + secrets.token_hex(2)
        self.collector_as = collector_as
        self.routers_passive = routers_passive
        self.hold_time = hold_time
        self.keepalive_time = keepalive_time
        self.connect_delay = connect_delay
        self.connect_retry = connect_retry
        self.error_wait = error_wait
        self._extra_routes = dict(extra_routes or {})
        self.share_bulk = share_bulk
        self.md5_password = md5_password  # TCP MD5 (RFC 2385) on every collector session
        self._spec = {spec.name: spec for spec in self.sites}
        self._index = {spec.name: number for number, spec in enumerate(self.sites)}
        self.links: list[_Link] = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                self.links.append(_Link(len(self.links), a, b))
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, _release, self._res)
        self._started = False
        # Desired state; links follow it (see _sync_links).
        self._powered: dict[str, bool] = dict.fromkeys(names, True)
        self._split: set[frozenset[str]] = set()
        self._isolated: set[str] = set()
        self._admin_up: dict[tuple[str, str], bool] = {}
        self._bulk: dict[str, dict[int, int]] = {name: {} for name in names}

    # -- naming and addresses -------------------------------------------------------------------------

    @property
    def collector_ns(self) -> str:
        return f"{self.lab_id}-coll"

    def site_ns(self, site: str) -> str:
        """Return the namespace name of ``site``."""
        self._check_site(site)
        return f"{self.lab_id}-{site}"

    @property
    def namespaces(self) -> list[str]:
        return [self.collector_ns] + [self.site_ns(spec.name) for spec in self.sites]

    @property
    def site_names(self) -> list[str]:
        return [spec.name for spec in self.sites]

    @property
    def tmpdir(self) -> Path:
        if self._res.tmpdir is None:
            raise LabError("the lab is not started")
        return self._res.tmpdir

    @property
    def collector_addresses(self) -> dict[str, Addresses]:
        """Return the collector's address on each site's link, by site name."""
        return {name: self._collector_link(name)[0] for name in self.site_names}

    @property
    def collector_as_number(self) -> int | None:
        """Return the collector's AS, or None when every session is iBGP (the collector uses the site's AS)."""
        return None if self.collector_as == "ibgp" else int(self.collector_as)

    def router_address(self, site: str) -> Addresses:
        """Return the router's address on its collector link (its BGP address towards the collector)."""
        return self._collector_link(site)[1]

    def site_as(self, site: str) -> int:
        self._check_site(site)
        return self._spec[site].asn

    def site_prefixes(self, site: str) -> tuple[str, ...]:
        self._check_site(site)
        return self._spec[site].prefixes

    def bird_pid(self, site: str) -> int | None:
        """Return the pid of ``site``'s BIRD while it runs."""
        proc = self._res.birds.get(site)
        return proc.pid if proc is not None and proc.poll() is None else None

    def _collector_link(self, site: str) -> tuple[Addresses, Addresses]:
        self._check_site(site)
        number = self._index[site]
        base = ipaddress.IPv4Address("192.0.2.0") + 4 * number
        v6 = f"2001:db8:c0:{number + 1:x}::"
        return Addresses(str(base + 1), v6 + "1"), Addresses(str(base + 2), v6 + "2")

    def _check_site(self, site: str) -> None:
        if site not in self._spec:
            raise LabError(f"unknown site {site!r}; sites are {[spec.name for spec in self.sites]}")

    def _link(self, a: str, b: str) -> _Link:
        self._check_site(a)
        self._check_site(b)
        for link in self.links:
            if link.key == frozenset((a, b)):
                return link
        raise LabError(f"no link between {a!r} and {b!r}")

    def _site_dir(self, site: str) -> Path:
        return self.tmpdir / site

    def _sock(self, site: str) -> Path:
        return self._site_dir(site) / "bird.ctl"

    # -- life cycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> Lab:
        """Create namespaces, veths and addresses, write the BIRD configs and start every router."""
        if self._started:
            return self
        if not self._finalizer.alive:
            raise LabError("this lab was closed; build a new Lab")
        reason = lab_available()
        if reason:
            raise LabError(reason)
        self._started = True
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill every process the lab started, delete its veths and namespaces, remove its files."""
        self._finalizer()

    def _build(self) -> None:
        tmpdir = Path(tempfile.mkdtemp(prefix=self.lab_id + "-"))
        tmpdir.chmod(0o755)
        self._res.tmpdir = tmpdir
        (tmpdir / MARKER).write_text(self.lab_id + "\n")
        (tmpdir / OWNER_FILE).write_text(f"{os.getpid()}\n")
        for namespace in self.namespaces:
            _run(["ip", "netns", "add", namespace])
            self._res.namespaces.append(namespace)
            # keep_addr_on_down: gotcha 11 (IPv6 next hops vanish on link down otherwise); no DAD so
            # addresses are usable at once after a link comes back.
            _run(
                [
                    "ip", "netns", "exec", namespace, "sysctl", "-q", "-w",
                    "net.ipv6.conf.all.keep_addr_on_down=1",
                    "net.ipv6.conf.default.keep_addr_on_down=1",
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                ]
            )  # fmt: skip
            _run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        for spec in self.sites:
            coll, router = self._collector_link(spec.name)
            self._veth(
                (self.collector_ns, f"c-{spec.name}", coll),
                (self.site_ns(spec.name), "coll", router),
            )
            self._admin_up[(spec.name, "coll")] = True
        for link in self.links:
            self._veth(
                (self.site_ns(link.a), link.ifname(link.a), link.address(link.a)),
                (self.site_ns(link.b), link.ifname(link.b), link.address(link.b)),
            )
            self._admin_up[(link.a, link.ifname(link.a))] = True
            self._admin_up[(link.b, link.ifname(link.b))] = True
        for spec in self.sites:
            directory = self._site_dir(spec.name)
            directory.mkdir()
            (directory / "bulk.conf").write_text("")
            if spec.name in self._extra_routes:
                count_v4, count_v6, group_size = self._extra_routes[spec.name]
                self._write_bulk(spec.name, count_v4, count_v6, group_size)
            (directory / "bird.conf").write_text(self.bird_config(spec.name))
        for spec in self.sites:
            self._start_bird(spec.name)
        for spec in self.sites:
            self._wait_bird(spec.name, 30.0)
            if self._bulk[spec.name]:
                self._wait_bulk_loaded(spec.name, 600.0)

    def _veth(self, one: tuple[str, str, Addresses], two: tuple[str, str, Addresses]) -> None:
        (ns1, if1, addr1), (ns2, if2, addr2) = one, two
        _run(["ip", "-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2])
        self._res.veths.append((ns1, if1))
        for namespace, ifname, addr in ((ns1, if1, addr1), (ns2, if2, addr2)):
            _run(["ip", "-n", namespace, "addr", "add", f"{addr.v4}/30", "dev", ifname])
            _run(["ip", "-n", namespace, "-6", "addr", "add", f"{addr.v6}/64", "dev", ifname, "nodad"])
            _run(["ip", "-n", namespace, "link", "set", ifname, "up"])

    # -- BIRD -------------------------------------------------------------------------------------------

    def bird_config(self, site: str) -> str:
        """Return the text of ``site``'s bird.conf (README.md explains every line)."""
        spec = self._spec[site]
        directory = self._site_dir(site)
        coll, router = self._collector_link(site)
        asn = spec.asn
        peer_as = asn if self.collector_as == "ibgp" else int(self.collector_as)
        timers = (
            f"hold time {self.hold_time}; keepalive time {self.keepalive_time}; "
            f"connect delay time {self.connect_delay}; connect retry time {self.connect_retry}; "
            f"error wait time {self.error_wait[0]}, {self.error_wait[1]};"
        )
        # Bulk routes model a table the site's router holds (e.g. from its transits): by default they
        # go to the collector only, so a benchmark loads one peer, not every site's copy of it.
        inter_site_export = "all" if self.share_bulk else 'where proto !~ "bulk*"'
        lines = [
            f"# {self.lab_id} site {site} AS{asn}; generated by tests/lab/netlab.py",
            f'log "{directory / "bird.log"}" all;',
            f"router id {router.v4};",
            "protocol device { scan time 10; }",
            "",
        ]
        for family in (4, 6):
            routes = []
            for number, prefix in enumerate(spec.prefixes, start=1):
                if ipaddress.ip_network(prefix).version != family:
                    continue
                routes.append(
                    f"  route {prefix} unreachable {{ bgp_community.add(({asn}, 100)); "
                    f"bgp_large_community.add(({asn}, 1, {number})); bgp_med = 10; }};"
                )
            lines += [f"protocol static static{family} {{", f"  ipv{family};", *routes, "}", ""]
        lines += [
            "protocol bgp collector {",
            f"  local {router.v4} as {asn}; neighbor {coll.v4} as {peer_as};",
            "  direct;",
            f"  passive {'on' if self.routers_passive else 'off'};",
            *([f'  password "{self.md5_password}";'] if self.md5_password else []),
            f"  {timers}",
            "  ipv4 { import none; export all; };",
            f"  ipv6 {{ import none; export all; next hop address {router.v6}; }};",
            "}",
        ]
        for link in self.links:
            if site not in link.key:
                continue
            other = link.other(site)
            mine, theirs = link.address(site), link.address(other)
            lines += [
                "",
                f"protocol bgp peer_{other} {{",
                f"  local {mine.v4} as {asn}; neighbor {theirs.v4} as {self._spec[other].asn};",
                "  direct;",
                f"  {timers}",
                f"  ipv4 {{ import all; export {inter_site_export}; }};",
                f"  ipv6 {{ import all; export {inter_site_export}; next hop address {mine.v6}; }};",
                "}",
            ]
        lines += ["", f'include "{directory / "bulk.conf"}";', ""]
        return "\n".join(lines)

    def _start_bird(self, site: str) -> None:
        proc = self._res.birds.get(site)
        if proc is not None and proc.poll() is None:
            return
        directory = self._site_dir(site)
        sock = self._sock(site)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        with open(directory / "bird.out", "ab") as out:
            # `ip netns exec` execs bird in place, so Popen.pid is BIRD's pid; -f keeps it our child.
            self._res.birds[site] = subprocess.Popen(
                [
                    "ip", "netns", "exec", self.site_ns(site),
                    "bird", "-f", "-c", str(directory / "bird.conf"), "-s", str(sock),
                    "-P", str(directory / "bird.pid"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def _wait_bird(self, site: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        proc = self._res.birds[site]
        while True:
            if proc.poll() is not None:
                tail = (self._site_dir(site) / "bird.out").read_text(errors="replace")[-2000:]
                raise LabError(f"bird of {site} exited with {proc.returncode}: {tail.strip()}")
            if self._sock(site).exists():
                done = subprocess.run(
                    ["birdc", "-s", str(self._sock(site)), "show", "status"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                )
                if done.returncode == 0 and "Daemon is up and running" in done.stdout:
                    return
            if time.monotonic() > deadline:
                raise LabError(f"bird of {site} did not answer on {self._sock(site)} within {timeout} s")
            time.sleep(0.05)

    def birdc(self, site: str, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run ``birdc -s SOCK ARGS`` for ``site``; return its output without the banner line.

        birdc exits 1 for answers such as "Network not found": ``check=False`` returns them instead.
        """
        self._check_site(site)
        out = _run(["birdc", "-s", str(self._sock(site)), *args], timeout=timeout, check=check)
        lines = out.splitlines()
        if lines and lines[0].startswith("BIRD ") and lines[0].endswith("ready."):
            lines = lines[1:]
        return "\n".join(lines) + ("\n" if lines else "")

    def protocols(self, site: str) -> dict[str, tuple[str, str]]:
        """Return ``{protocol: (state, info)}`` from ``birdc show protocols``."""
        table: dict[str, tuple[str, str]] = {}
        for line in self.birdc(site, "show", "protocols").splitlines()[1:]:
            words = line.split()
            if len(words) < 4:
                continue
            # Name Proto Table State Since(one word with the default time format) Info...
            table[words[0]] = (words[3], " ".join(words[5:]))
        return table

    def best_path(self, site: str, prefix: str) -> tuple[int, ...] | None:
        """Return the AS path of ``site``'s best route to exactly ``prefix`` (() if local), None if none."""
        out = self.birdc(site, "show", "route", prefix, "primary", "all", check=False)
        if "Network not found" in out or str(ipaddress.ip_network(prefix)) not in out:
            return None
        for line in out.splitlines():
            text = line.strip()
            if text.startswith("BGP.as_path:"):
                return tuple(int(word) for word in text.split(":", 1)[1].split() if word.isdigit())
        return ()

    def route_count(self, site: str, protocol: str | None = None) -> int:
        """Return how many routes ``site`` has (optionally from one protocol), all tables."""
        args = (
            ["show", "route", "count"]
            if protocol is None
            else ["show", "route", "protocol", protocol, "count"]
        )
        total = 0
        for line in self.birdc(site, *args).splitlines():
            match = re.match(r"\s*(\d+) of (\d+) routes", line)
            if match:
                total += int(match.group(1))
        return total

    # -- waiting ----------------------------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
    ) -> None:
        """Poll ``predicate`` until true; raise LabError naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise LabError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(interval)

    def expected_sessions(self) -> list[tuple[str, str]]:
        """Return the (site, protocol) inter-site sessions that should be up in the current state."""
        sessions = []
        for link in self.links:
            if not self._link_should_be_up(link):
                continue
            if not (self._powered[link.a] and self._powered[link.b]):
                continue
            if self.bird_pid(link.a) is None or self.bird_pid(link.b) is None:
                continue
            sessions += [(link.a, f"peer_{link.b}"), (link.b, f"peer_{link.a}")]
        return sessions

    def wait_established(self, timeout: float = 60.0) -> None:
        """Wait until every inter-site session that the current state allows is Established."""

        def done() -> bool:
            expected = self.expected_sessions()
            tables = {site: self.protocols(site) for site in {site for site, _ in expected}}
            return all(tables[site].get(name, ("", ""))[1] == "Established" for site, name in expected)

        self.wait_for(done, timeout, "inter-site sessions Established", interval=0.2)

    def wait_route(
        self,
        site: str,
        prefix: str,
        *,
        present: bool = True,
        as_path: Sequence[int] | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Wait until ``site`` has (or lacks) a best route to ``prefix``, optionally with ``as_path``."""

        def done() -> bool:
            path = self.best_path(site, prefix)
            if not present:
                return path is None
            return path is not None and (as_path is None or path == tuple(as_path))

        wanted = "present" if present else "absent"
        if as_path is not None:
            wanted += f" via {list(as_path)}"
        self.wait_for(done, timeout, f"{prefix} {wanted} in {site}")

    # -- operations ------------------------------------------------------------------------------------

    def _link_should_be_up(self, link: _Link) -> bool:
        return link.key not in self._split and link.a not in self._isolated and link.b not in self._isolated

    def _sync_links(self) -> None:
        """Bring every site-side interface to the state the power/split/isolate flags ask for."""
        for spec in self.sites:
            site = spec.name
            wanted = {"coll": self._powered[site]}
            for link in self.links:
                if site in link.key:
                    wanted[link.ifname(site)] = self._powered[site] and self._link_should_be_up(link)
            for ifname, up in wanted.items():
                if self._admin_up.get((site, ifname)) == up:
                    continue
                _run(["ip", "-n", self.site_ns(site), "link", "set", ifname, "up" if up else "down"])
                self._admin_up[(site, ifname)] = up

    def _require_started(self) -> None:
        if not self._started or not self._finalizer.alive:
            raise LabError("the lab is not running")

    def power_off(self, site: str) -> None:
        """Silent death: every link down inside the site's namespace, then SIGKILL its BIRD."""
        self._require_started()
        self._check_site(site)
        self._powered[site] = False
        self._sync_links()
        self.kill_router(site)

    def power_on(self, site: str) -> None:
        """Bring the site's links back (as split/isolate allow) and start its BIRD."""
        self._require_started()
        self._check_site(site)
        self._powered[site] = True
        self._sync_links()
        self.start_router(site)

    def kill_router(self, site: str) -> None:
        """SIGKILL the site's BIRD; its links stay up, so the kernel closes its TCP sessions."""
        self._require_started()
        self._check_site(site)
        proc = self._res.birds.get(site)
        if proc is not None:
            _stop_process(proc, signal.SIGKILL, 5.0)

    def start_router(self, site: str) -> None:
        """Start the site's BIRD (no-op when it runs); return once its control socket answers."""
        self._require_started()
        self._check_site(site)
        self._start_bird(site)
        self._wait_bird(site, 30.0)

    def split(self, a: str, b: str) -> None:
        """Take the a-b inter-site link down on both ends."""
        self._require_started()
        self._split.add(self._link(a, b).key)
        self._sync_links()

    def heal(self, a: str, b: str) -> None:
        """Bring the a-b inter-site link back up (unless a site is isolated or powered off)."""
        self._require_started()
        self._split.discard(self._link(a, b).key)
        self._sync_links()

    def isolate(self, site: str) -> None:
        """Take every inter-site link of ``site`` down on both ends; its collector link stays up."""
        self._require_started()
        self._check_site(site)
        self._isolated.add(site)
        self._sync_links()

    def unisolate(self, site: str) -> None:
        """Undo ``isolate``."""
        self._require_started()
        self._check_site(site)
        self._isolated.discard(site)
        self._sync_links()

    def restore(self) -> None:
        """Heal, unisolate and power on everything, restart dead routers, re-enable every protocol."""
        self._require_started()
        self._split.clear()
        self._isolated.clear()
        for site in self.site_names:
            self._powered[site] = True
        self._sync_links()
        for site in self.site_names:
            self.start_router(site)
            self.birdc(site, "enable", "all")

    def flap(self, site: str, seconds: float, message: str = "bgpwatch lab flap") -> None:
        """Disable the collector session (Cease with a shutdown message), wait ``seconds``, enable it."""
        self._require_started()
        if '"' in message:
            raise LabError("the shutdown message cannot contain a double quote")
        self.birdc(site, "disable", "collector", f'"{message}"')
        time.sleep(seconds)
        self.birdc(site, "enable", "collector")

    def _static_protocols(self, site: str) -> list[str]:
        names = []
        spec = self._spec[site]
        for family in (4, 6):
            if any(ipaddress.ip_network(prefix).version == family for prefix in spec.prefixes):
                names.append(f"static{family}")
        names += [f"bulk{family}" for family in sorted(self._bulk[site])]
        return names

    def withdraw_statics(self, site: str) -> None:
        """Disable every static protocol of ``site`` (its own prefixes and bulk routes): BGP withdraws."""
        self._require_started()
        for name in self._static_protocols(site):
            self.birdc(site, "disable", name)
        self.wait_for(
            lambda: all(self.route_count(site, name) == 0 for name in self._static_protocols(site)),
            60.0,
            f"{site}'s static routes to go",
        )

    def restore_statics(self, site: str) -> None:
        """Enable every static protocol of ``site`` again."""
        self._require_started()
        for name in self._static_protocols(site):
            self.birdc(site, "enable", name)
        self._wait_bulk_loaded(site, 600.0)

    # -- bulk routes for benchmarks --------------------------------------------------------------------

    def _write_bulk(self, site: str, count_v4: int, count_v6: int, group_size: int, offset: int = 0) -> None:
        asn = self._spec[site].asn
        counts = {family: count for family, count in ((4, count_v4), (6, count_v6)) if count}
        # Both calls check their range at once: a bad count raises before anything is written.
        v4 = bulk_v4_prefixes(count_v4, offset)
        v6 = bulk_v6_prefixes(count_v6, offset)
        path = self._site_dir(site) / "bulk.conf"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            if count_v4:
                handle.writelines(_bulk_protocol("bulk4", 4, v4, asn, group_size))
            if count_v6:
                handle.writelines(_bulk_protocol("bulk6", 6, v6, asn, group_size))
        os.replace(tmp, path)
        self._bulk[site] = counts

    def _wait_bulk_loaded(self, site: str, timeout: float) -> None:
        want = dict(self._bulk[site])
        self.wait_for(
            lambda: all(self.route_count(site, f"bulk{family}") == count for family, count in want.items()),
            timeout,
            f"{site}'s bulk routes {want} loaded",
            interval=0.2,
        )

    def add_static_routes(
        self, site: str, count_v4: int, count_v6: int = 0, group_size: int = 1, offset: int = 0
    ) -> None:
        """Replace ``site``'s bulk routes and reload BIRD; return once they are all in its table.

        IPv4 prefixes come from 198.18.0.0/15 (the /32s, then /31s...: at most 262,143), IPv6 /56s
        from 2001:db8:4000::/34.  ``group_size`` consecutive routes share one attribute set (a large
        community per group) so BIRD packs them into one UPDATE; 0 = one set for all (fully packed),
        1 = one prefix per UPDATE (worst case).  ``offset`` skips that many prefixes in each range,
        so several sites can carry disjoint tables.
        """
        self._require_started()
        self._check_site(site)
        self._write_bulk(site, count_v4, count_v6, group_size, offset)
        self.reconfigure(site)
        self._wait_bulk_loaded(site, 600.0)

    def remove_static_routes(self, site: str) -> None:
        """Drop ``site``'s bulk routes and reload BIRD."""
        self._require_started()
        self._check_site(site)
        self._write_bulk(site, 0, 0, 1)
        self.reconfigure(site)

    def reconfigure(self, site: str) -> str:
        """Run ``birdc configure`` for ``site``; raise LabError when BIRD rejects the configuration."""
        out = self.birdc(site, "configure", timeout=600.0)
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise LabError(f"birdc configure on {site}: {out.strip()}")
        return out

    # -- collector side --------------------------------------------------------------------------------

    def collector_exec(self, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the collector namespace; the lab SIGTERMs (then SIGKILLs) it on close."""
        self._require_started()
        popen_kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(["ip", "netns", "exec", self.collector_ns, *argv], **popen_kwargs)
        self._res.others.append(proc)
        return proc

    def collector_run(self, argv: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion inside the collector namespace (e.g. ``bgpwatch peers --json``)."""
        self._require_started()
        return subprocess.run(
            ["ip", "netns", "exec", self.collector_ns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def bgpwatch_config(self, tmpdir: Path | str, **overrides: Any) -> Path:
        """Write a bgpwatch YAML config for this lab into ``tmpdir``; ``overrides`` merge into the top level.

        The API listens on 127.0.0.1 of the namespace bgpwatch runs in: run ``bgpwatch run`` and the
        CLI (``status``, ``peers``...) both through ``collector_exec``/``collector_run``.
        """
        import yaml

        tmpdir = Path(tmpdir)
        tmpdir.mkdir(parents=True, exist_ok=True)
        local_as = COLLECTOR_AS if self.collector_as == "ibgp" else int(self.collector_as)
        sites = []
        for spec in self.sites:
            coll, router = self._collector_link(spec.name)
            peer: dict[str, Any] = {
                "name": f"{spec.name}-rr1",
                "address": router.v4,
                "peer_as": spec.asn,
                "local_address": coll.v4,
                "hold_time": self.hold_time,
            }
            if self.collector_as == "ibgp":
                peer["local_as"] = spec.asn
            if not self.routers_passive:
                peer["passive"] = True
            if self.md5_password:
                peer["md5_password"] = self.md5_password
            sites.append({"name": spec.name, "prefixes": list(spec.prefixes), "peers": [peer]})
        collector: dict[str, Any] = {
            "local_as": local_as,
            "router_id": COLLECTOR_ROUTER_ID,
            "exabgp": "managed",
            "runtime_dir": str(tmpdir / "run"),
        }
        if not self.routers_passive:
            collector["listen_address"] = "0.0.0.0"
        config: dict[str, Any] = {
            "collector": collector,
            "sites": sites,
            "api": {"listen": f"127.0.0.1:{_free_port()}"},
            "alerting": {"sinks": [{"type": "log"}]},
            "storage": {"path": str(tmpdir / "bgpwatch.db")},
        }
        _merge(config, overrides)
        path = tmpdir / "bgpwatch.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``base``: dicts recursively, everything else replaced."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _free_port() -> int:
    """Return a TCP port free on this host's loopback (the collector namespace's loopback is empty anyway)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
