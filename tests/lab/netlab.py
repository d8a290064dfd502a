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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from .routers import (
    ROUTER_KINDS,
    Addresses,
    LabError,
    Neighbor,
    Router,
    router_class,
    run,
    stop_process,
    wait_until,
)

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


@dataclass(frozen=True)
class SiteSpec:
    """One site: its router kind, AS and the prefixes it originates.

    ``router``: "bird", "frr" or "gobgp" (routers.ROUTER_KINDS); ``route_reflector``: in an AS with
    several sites, this site's router reflects routes to the AS's other (client) sites.
    """

    name: str
    asn: int
    prefixes: tuple[str, ...]
    router: str = "bird"
    route_reflector: bool = False


DEFAULT_SITES: tuple[SiteSpec, ...] = (
    SiteSpec("par1", 65001, ("203.0.113.0/27", "203.0.113.32/27", "2001:db8:1001::/48")),
    SiteSpec("par2", 65002, ("203.0.113.64/27", "203.0.113.96/27", "2001:db8:1002::/48")),
    SiteSpec("par3", 65003, ("203.0.113.128/27", "203.0.113.160/27", "2001:db8:1003::/48")),
    SiteSpec("par4", 65004, ("203.0.113.192/27", "203.0.113.224/27", "2001:db8:1004::/48")),
)


def sites(
    count: int = 3, router: str = "bird", *, asn: int | None = None, route_reflectors: Sequence[str] = ()
) -> list[SiteSpec]:
    """Return the first ``count`` default sites with router ``router`` (``asn``: one AS for all, iBGP)."""
    if not 1 <= count <= len(DEFAULT_SITES):
        raise LabError(f"sites={count}: pass SiteSpec objects for more than {len(DEFAULT_SITES)}")
    return [
        replace(spec, router=router, asn=asn or spec.asn, route_reflector=spec.name in route_reflectors)
        for spec in DEFAULT_SITES[:count]
    ]


def ring(names: Sequence[str], chords: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Return the links of a ring through ``names`` in order, plus ``chords``."""
    links = [(names[i], names[(i + 1) % len(names)]) for i in range(len(names))] if len(names) > 2 else []
    if len(names) == 2:
        links = [(names[0], names[1])]
    return links + list(chords)


@dataclass(frozen=True)
class _Link:
    """One inter-site veth pair (index = position in the lab's link list)."""

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
    procs: dict[str, dict[str, subprocess.Popen[bytes]]] = field(default_factory=dict)  # site -> daemons
    others: list[subprocess.Popen[Any]] = field(default_factory=list)
    tmpdir: Path | None = None
    owner: int = field(default_factory=os.getpid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_pids(namespace: str) -> list[int]:
    out = run(["ip", "netns", "pids", namespace], check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def _kill_namespace(namespace: str, deadline: float) -> None:
    """SIGKILL whatever still runs in one of our namespaces, then delete it."""
    for pid in _netns_pids(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while _netns_pids(namespace) and time.monotonic() < deadline:
        time.sleep(0.05)
    run(["ip", "netns", "del", namespace], check=False)


def _release(res: _Resources) -> None:
    """Kill what the lab started, delete its veths and namespaces, remove its directory."""
    if os.getpid() != res.owner:
        return  # a forked child exiting must not tear down its parent's lab
    # Collector processes first and gently: bgpwatch should get to stop its ExaBGP children.
    for proc in res.others:
        stop_process(proc, signal.SIGTERM, 5.0)
    for daemons in res.procs.values():
        for proc in daemons.values():
            stop_process(proc, signal.SIGKILL, 5.0)
    deadline = time.monotonic() + 10.0
    for namespace, ifname in res.veths:
        run(["ip", "-n", namespace, "link", "del", ifname], check=False)
    for namespace in res.namespaces:
        _kill_namespace(namespace, deadline)
    if res.tmpdir is not None:
        shutil.rmtree(res.tmpdir, ignore_errors=True)
    res.others.clear()
    res.procs.clear()
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
    for namespace in run(["ip", "netns", "list"], check=False).split("\n"):
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


def lab_available(kinds: Sequence[str] = ("bird",)) -> str | None:
    """Return why a lab with routers of ``kinds`` cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "the lab needs 'ip' on PATH (iproute2)"
    for kind in kinds:
        try:
            backend = router_class(kind)
        except LabError as exc:
            return str(exc)
        for tool in backend.requires:
            if shutil.which(tool) is None and not os.access(tool, os.X_OK):
                return f"{kind} sites need {tool!r}"
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


_SILENT_TABLE = "bwlab_power"  # nftables table of a silent power loss (everything dropped)
_BLACKHOLE_TABLE = "bwlab_blackhole"  # nftables table of a blackholed collector link
_BMP_TABLE = "bwlab_bmp"  # nftables table dropping a site's BMP traffic


class Lab:
    """A collector namespace and N router sites in network namespaces; use as a context manager.

    ``sites``: how many of DEFAULT_SITES (1-4, BIRD) or SiteSpec objects (any router kind);
    ``links``: inter-site links as (a, b) pairs (None: full mesh); ``split_families``: separate IPv4
    and IPv6 sessions on every inter-site link (else one IPv4 session carrying both);
    ``collector_split_families``: the same for the collector sessions; ``prefix``: start of every
    namespace and temp dir name (a random 4-hex lab id follows); ``collector_as``: the collector's AS
    ("ibgp": each session uses the site's own AS); ``routers_passive``: the routers wait for the
    collector to connect; timers apply to every BGP session; ``graceful_restart`` and
    ``restart_time``: GR on the routers that support it (FRR); ``extra_routes``:
    ``{site: (count_v4, count_v6, group_size)}`` bulk routes (BIRD) loaded before ``start()`` returns;
    ``bmp``: a TCP port: every FRR and GoBGP router of ``bmp_sites`` (None: all) sends BMP (pre- and
    post-policy, IPv4 and IPv6, statistics every second) to the collector's address on its link;
    ``bmp_soft_reconfiguration``: FRR keeps every session's Adj-RIB-In (``soft-reconfiguration
    inbound``), without which its pre-policy Route Monitoring holds only withdrawals.
    """

    def __init__(
        self,
        sites: int | Sequence[SiteSpec] = 3,
        *,
        links: Sequence[tuple[str, str]] | None = None,
        split_families: bool = False,
        collector_split_families: bool = False,
        prefix: str = "bwt",
        collector_as: int | Literal["ibgp"] = COLLECTOR_AS,
        routers_passive: bool = True,
        hold_time: int = 9,
        keepalive_time: int = 3,
        connect_delay: int = 1,
        connect_retry: int = 5,
        error_wait: tuple[int, int] = (1, 10),
        graceful_restart: bool = True,
        restart_time: int = 20,
        extra_routes: Mapping[str, tuple[int, int, int]] | None = None,
        share_bulk: bool = False,
        md5_password: str | None = None,
        bmp: int | None = None,
        bmp_sites: Sequence[str] | None = None,
        bmp_soft_reconfiguration: bool = True,
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
        for spec in self.sites:
            if spec.router not in ROUTER_KINDS:
                raise LabError(f"site {spec.name}: unknown router kind {spec.router!r}")
        if not _PREFIX_NAME.match(prefix):
            raise LabError(f"prefix {prefix!r}: want [a-z][a-z0-9]{{0,7}}")
        if len(self.sites) > 62:
            raise LabError("at most 62 sites fit 192.0.2.0/24 with one /30 each")
        self.lab_id = prefix + secrets.token_hex(2)
        self.collector_as = collector_as
        self.routers_passive = routers_passive
        self.split_families = split_families
        self.collector_split_families = collector_split_families
        self.hold_time = hold_time
        self.keepalive_time = keepalive_time
        self.connect_delay = connect_delay
        self.connect_retry = connect_retry
        self.error_wait = error_wait
        self.graceful_restart = graceful_restart
        self.restart_time = restart_time
        self._extra_routes = dict(extra_routes or {})
        self.share_bulk = share_bulk
        self.md5_password = md5_password  # TCP MD5 (RFC 2385) on every collector session
        # BMP (RFC 7854): the routers that can (FRR, GoBGP) connect to the collector namespace.
        self.bmp_port = bmp
        self._bmp_sites = None if bmp_sites is None else frozenset(bmp_sites)
        self.bmp_soft_reconfiguration = bmp_soft_reconfiguration  # FRR: keep Adj-RIB-In for pre-policy
        self._spec = {spec.name: spec for spec in self.sites}
        self._index = {spec.name: number for number, spec in enumerate(self.sites)}
        if links is None:
            pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        else:
            pairs = [tuple(pair) for pair in links]  # type: ignore[misc]
        if len(pairs) > 64:
            raise LabError("at most 64 inter-site links fit 198.51.100.0/24 with one /30 each")
        self.links: list[_Link] = []
        link_space = ipaddress.ip_network(f"198.51.100.0/{32 - max(2, (4 * len(pairs) - 1).bit_length())}")
        for spec in self.sites:
            for prefix in spec.prefixes:
                if ipaddress.ip_network(prefix).overlaps(link_space):
                    raise LabError(
                        f"site {spec.name}: {prefix} overlaps the inter-site link addresses {link_space}"
                    )
        for a, b in pairs:
            self._check_site(a)
            self._check_site(b)
            if a == b or any(link.key == frozenset((a, b)) for link in self.links):
                raise LabError(f"link {a}-{b}: a loop or a duplicate")
            self.links.append(_Link(len(self.links), a, b))
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, _release, self._res)
        self._started = False
        self._routers: dict[str, Router] = {}
        # Desired state; links follow it (see _sync_links).
        self._powered: dict[str, bool] = dict.fromkeys(names, True)
        self._silenced: set[str] = set()  # powered off without carrier loss (nftables drop-all)
        self._blackholed: set[str] = set()
        self._split: set[frozenset[str]] = set()
        self._isolated: set[str] = set()
        self._admin_up: dict[tuple[str, str], bool] = {}
        self._sessions_down: set[tuple[str, str]] = set()  # (site, neighbor name) shut by an operation
        self._bmp_blocked: set[str] = set()  # sites whose BMP traffic nftables drops
        if self._bmp_sites is not None:
            for name in self._bmp_sites:
                self._check_site(name)

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

    def spec(self, site: str) -> SiteSpec:
        self._check_site(site)
        return self._spec[site]

    def site_as(self, site: str) -> int:
        return self.spec(site).asn

    def site_prefixes(self, site: str) -> tuple[str, ...]:
        return self.spec(site).prefixes

    def site_dir(self, site: str) -> Path:
        """Return the site's directory (configs, logs, control sockets)."""
        self._check_site(site)
        return self.tmpdir / site

    def processes(self, site: str) -> dict[str, subprocess.Popen[bytes]]:
        """Return the site's daemon processes by name; backends add theirs here."""
        self._check_site(site)
        return self._res.procs.setdefault(site, {})

    def router(self, site: str) -> Router:
        """Return the site's router backend."""
        self._check_site(site)
        if site not in self._routers:
            raise LabError("the lab is not started")
        return self._routers[site]

    def bird_pid(self, site: str) -> int | None:
        """Return the pid of ``site``'s BGP daemon while it runs (any router kind)."""
        return self.router(site).pid()

    router_pid = bird_pid

    def bmp_target(self, site: str) -> tuple[str, int] | None:
        """Return the (collector address on the site's link, port) the site's router sends BMP to, or None."""
        self._check_site(site)
        if self.bmp_port is None or (self._bmp_sites is not None and site not in self._bmp_sites):
            return None
        return self._collector_link(site)[0].v4, self.bmp_port

    def link_address(self, a: str, b: str) -> Addresses:
        """Return ``a``'s addresses on the a-b link."""
        return self._link(a, b).address(a)

    def neighbors(self, site: str) -> list[Neighbor]:
        """Return the BGP sessions of ``site``'s router: the collector's first, then one per link.

        In an AS with route reflectors, a link between two clients carries no session (clients only
        peer with reflectors); an AS without any keeps a session on every link.
        """
        spec = self.spec(site)
        coll, router = self._collector_link(site)
        peer_as = spec.asn if self.collector_as == "ibgp" else int(self.collector_as)
        common = {"local_as": spec.asn, "remote_as": peer_as, "ifname": "coll", "next_hop_v6": router.v6}
        if self.collector_split_families:
            out = [
                Neighbor("collector", None, 4, router.v4, coll.v4, passive=self.routers_passive, **common),  # type: ignore[arg-type]
                Neighbor("collector_v6", None, 6, router.v6, coll.v6, passive=self.routers_passive, **common),  # type: ignore[arg-type]
            ]
        else:
            out = [
                Neighbor("collector", None, None, router.v4, coll.v4, passive=self.routers_passive, **common)
            ]  # type: ignore[arg-type]
        for link in self.links:
            if site not in link.key:
                continue
            other = self._spec[link.other(site)]
            clients = other.asn == spec.asn and not (spec.route_reflector or other.route_reflector)
            if clients and any(s.asn == spec.asn and s.route_reflector for s in self.sites):
                continue  # two route-reflector clients: no session
            mine, theirs = link.address(site), link.address(other.name)
            rr_client = other.asn == spec.asn and spec.route_reflector and not other.route_reflector
            common = {
                "local_as": spec.asn,
                "remote_as": other.asn,
                "ifname": link.ifname(site),
                "next_hop_v6": mine.v6,
                "rr_client": rr_client,
            }
            if self.split_families:
                out.append(Neighbor(f"peer_{other.name}", other.name, 4, mine.v4, theirs.v4, **common))  # type: ignore[arg-type]
                out.append(Neighbor(f"peer_{other.name}_v6", other.name, 6, mine.v6, theirs.v6, **common))  # type: ignore[arg-type]
            else:
                out.append(Neighbor(f"peer_{other.name}", other.name, None, mine.v4, theirs.v4, **common))  # type: ignore[arg-type]
        return out

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

    # -- life cycle -----------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> Lab:
        """Create namespaces, veths and addresses, write the router configs and start every router."""
        if self._started:
            return self
        if not self._finalizer.alive:
            raise LabError("this lab was closed; build a new Lab")
        reason = lab_available(sorted({spec.router for spec in self.sites}))
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
            run(["ip", "netns", "add", namespace])
            self._res.namespaces.append(namespace)
            # keep_addr_on_down: gotcha 11 (IPv6 next hops vanish on link down otherwise); no DAD so
            # addresses are usable at once after a link comes back.
            run(
                [
                    "ip", "netns", "exec", namespace, "sysctl", "-q", "-w",
                    "net.ipv6.conf.all.keep_addr_on_down=1",
                    "net.ipv6.conf.default.keep_addr_on_down=1",
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                ]
            )  # fmt: skip
            run(["ip", "-n", namespace, "link", "set", "lo", "up"])
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
            self.site_dir(spec.name).mkdir()
            router_obj = router_class(spec.router)(self, spec.name)
            self._routers[spec.name] = router_obj
            if spec.name in self._extra_routes:
                count_v4, count_v6, group_size = self._extra_routes[spec.name]
                if not hasattr(router_obj, "write_bulk"):
                    raise LabError(f"site {spec.name}: bulk routes need a BIRD router")
                router_obj.write_bulk(count_v4, count_v6, group_size)
            router_obj.write_config()
        for spec in self.sites:
            self._routers[spec.name].start()
        for spec in self.sites:
            self._routers[spec.name].wait_ready(30.0)

    def _veth(self, one: tuple[str, str, Addresses], two: tuple[str, str, Addresses]) -> None:
        (ns1, if1, addr1), (ns2, if2, addr2) = one, two
        run(["ip", "-n", ns1, "link", "add", if1, "type", "veth", "peer", "name", if2, "netns", ns2])
        self._res.veths.append((ns1, if1))
        for namespace, ifname, addr in ((ns1, if1, addr1), (ns2, if2, addr2)):
            run(["ip", "-n", namespace, "addr", "add", f"{addr.v4}/30", "dev", ifname])
            run(["ip", "-n", namespace, "-6", "addr", "add", f"{addr.v6}/64", "dev", ifname, "nodad"])
            run(["ip", "-n", namespace, "link", "set", ifname, "up"])

    # -- router-specific access ------------------------------------------------------------------------

    def _kind(self, site: str, kind: str) -> Any:
        router_obj = self.router(site)
        if router_obj.kind != kind:
            raise LabError(f"site {site} runs {router_obj.kind}, not {kind}")
        return router_obj

    def bird_config(self, site: str) -> str:
        """Return the text of a BIRD site's bird.conf (README.md explains every line)."""
        return str(self._kind(site, "bird").config_text())

    def birdc(self, site: str, *args: str, timeout: float = 60.0, check: bool = True) -> str:
        """Run ``birdc -s SOCK ARGS`` for a BIRD site; return its output without the banner line.

        birdc exits 1 for answers such as "Network not found": ``check=False`` returns them instead.
        """
        return str(self._kind(site, "bird").birdc(*args, timeout=timeout, check=check))

    def protocols(self, site: str) -> dict[str, tuple[str, str]]:
        """Return ``{protocol: (state, info)}`` from ``birdc show protocols`` (BIRD sites)."""
        return dict(self._kind(site, "bird").protocols())

    def vtysh(self, site: str, *commands: str, timeout: float = 30.0) -> str:
        """Run ``vtysh -c CMD ...`` for an FRR site; return its output."""
        return str(self._kind(site, "frr").vtysh(*commands, timeout=timeout))

    def reconfigure(self, site: str) -> str:
        """Run ``birdc configure`` for a BIRD site; raise LabError when BIRD rejects the configuration."""
        return str(self._kind(site, "bird").reconfigure())

    # -- queries ---------------------------------------------------------------------------------------

    def best_path(self, site: str, prefix: str) -> tuple[int, ...] | None:
        """Return the AS path of ``site``'s best route to exactly ``prefix`` (() if local), None if none."""
        return self.router(site).best_path(prefix)

    def route_count(self, site: str, protocol: str | None = None) -> int:
        """Return how many routes ``site`` has (BIRD: optionally from one protocol)."""
        if protocol is not None:
            return int(self._kind(site, "bird").route_count(protocol))
        return self.router(site).route_count()

    def session_states(self, site: str) -> dict[str, str]:
        """Return ``{neighbor name: state}`` of ``site``'s router ("Established" when up)."""
        return self.router(site).session_states()

    def communities(self, site: str, prefix: str) -> set[str] | None:
        """Return the standard communities of ``site``'s best route to ``prefix`` (None: no route)."""
        return self.router(site).communities(prefix)

    # -- waiting ----------------------------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
    ) -> None:
        """Poll ``predicate`` until true; raise LabError naming ``what`` after ``timeout`` seconds."""
        wait_until(predicate, timeout, what, interval)

    def _alive_site(self, site: str) -> bool:
        return self._powered[site] and site not in self._silenced and self.router(site).running()

    def expected_sessions(self) -> list[tuple[str, str]]:
        """Return the (site, neighbor name) inter-site sessions that should be up in the current state."""
        sessions = []
        for spec in self.sites:
            site = spec.name
            for neighbor in self.neighbors(site):
                if neighbor.peer is None:
                    continue
                other = neighbor.peer
                reverse = f"peer_{site}" + ("_v6" if neighbor.family == 6 else "")
                if not self._link_should_be_up(self._link(site, other)):
                    continue
                if not (self._alive_site(site) and self._alive_site(other)):
                    continue
                if (site, neighbor.name) in self._sessions_down or (other, reverse) in self._sessions_down:
                    continue
                sessions.append((site, neighbor.name))
        return sessions

    def wait_established(self, timeout: float = 60.0) -> None:
        """Wait until every inter-site session that the current state allows is Established."""

        def done() -> bool:
            expected = self.expected_sessions()
            tables = {site: self.session_states(site) for site in {site for site, _ in expected}}
            return all(tables[site].get(name) == "Established" for site, name in expected)

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
                run(["ip", "-n", self.site_ns(site), "link", "set", ifname, "up" if up else "down"])
                self._admin_up[(site, ifname)] = up

    def _require_started(self) -> None:
        if not self._started or not self._finalizer.alive:
            raise LabError("the lab is not running")

    def _nft(self, site: str, table: str, rules: str | None) -> None:
        """Install (``rules``) or delete (None) an inet nftables table inside the site's namespace."""
        namespace = self.site_ns(site)
        run(["ip", "netns", "exec", namespace, "nft", "delete", "table", "inet", table], check=False)
        if rules is not None:
            run(
                ["ip", "netns", "exec", namespace, "nft", "-f", "-"],
                stdin=f"table inet {table} {{\n{rules}\n}}\n",
            )

    def power_off(self, site: str, *, carrier: bool = True) -> None:
        """Power loss: ``carrier`` True: every link down inside the site's namespace, then SIGKILL.

        ``carrier=False`` is a silent death: nftables drops everything in and out of the site
        (so not even the kernel's FIN/RST leaves), then the daemons are SIGKILLed; links stay up,
        so the neighbours only notice on their hold timer.
        """
        self._require_started()
        self._check_site(site)
        if carrier:
            self._powered[site] = False
            self._sync_links()
        else:
            self._nft(
                site,
                _SILENT_TABLE,
                "  chain input { type filter hook input priority -300; policy drop; }\n"
                "  chain output { type filter hook output priority -300; policy drop; }",
            )
            self._silenced.add(site)
        self.kill_router(site)

    def power_on(self, site: str) -> None:
        """Bring the site back (links as split/isolate allow, no drop) and start its router."""
        self._require_started()
        self._check_site(site)
        self._powered[site] = True
        self._sync_links()
        if site in self._silenced:
            self._nft(site, _SILENT_TABLE, None)
            self._silenced.discard(site)
        self.start_router(site)

    def kill_router(self, site: str) -> None:
        """SIGKILL the site's daemons; its links stay up, so the kernel closes its TCP sessions."""
        self._require_started()
        self.router(site).kill()

    def start_router(self, site: str) -> None:
        """Start the site's router (no-op when it runs); return once its control interface answers."""
        self._require_started()
        router_obj = self.router(site)
        router_obj.start()
        router_obj.wait_ready(30.0)

    def restart_bgp(self, site: str, down_seconds: float = 0.0) -> None:
        """SIGKILL only the BGP daemon (FRR: bgpd; zebra stays), wait ``down_seconds``, start it again.

        With graceful restart the neighbours keep the site's routes meanwhile (helper mode).
        """
        self._require_started()
        router_obj = self.router(site)
        router_obj.kill_bgp()
        time.sleep(down_seconds)
        router_obj.start()
        router_obj.wait_ready(30.0)

    def split(self, a: str, b: str) -> None:
        """Take the a-b inter-site link down on both ends."""
        self._require_started()
        self._split.add(self._link(a, b).key)
        self._sync_links()

    cut_link = split

    def heal(self, a: str, b: str) -> None:
        """Bring the a-b inter-site link back up (unless a site is isolated or powered off)."""
        self._require_started()
        self._split.discard(self._link(a, b).key)
        self._sync_links()

    def flap_link(self, a: str, b: str, period: float = 2.0, duration: float = 20.0) -> int:
        """Take the a-b link down and up every ``period`` seconds for ``duration``; return the flaps.

        Down for half a period, up for the other half; the link is up when this returns.
        """
        self._require_started()
        flaps = max(1, int(duration / period))
        for _ in range(flaps):
            self.split(a, b)
            time.sleep(period / 2)
            self.heal(a, b)
            time.sleep(period / 2)
        return flaps

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

    def blackhole(self, site: str) -> None:
        """Drop every packet between the collector and ``site`` (nftables in the site); links stay up."""
        self._require_started()
        self._nft(
            site,
            _BLACKHOLE_TABLE,
            '  chain input { type filter hook input priority -200; iifname "coll" drop; }\n'
            '  chain output { type filter hook output priority -200; oifname "coll" drop; }',
        )
        self._blackholed.add(site)

    def unblackhole(self, site: str) -> None:
        """Undo ``blackhole``."""
        self._require_started()
        self._nft(site, _BLACKHOLE_TABLE, None)
        self._blackholed.discard(site)

    def bmp_block(self, site: str) -> None:
        """Drop the site's BMP traffic (TCP to/from the BMP port, nftables in the site); BGP is untouched.

        The router's BMP session then dies only when its TCP retransmissions give up, or never: the
        collector sees it go silent.
        """
        self._require_started()
        if self.bmp_target(site) is None:
            raise LabError(f"{site} sends no BMP (Lab(bmp=PORT, bmp_sites=...))")
        port = self.bmp_port
        self._nft(
            site,
            _BMP_TABLE,
            f"  chain input {{ type filter hook input priority -200; tcp sport {port} drop; }}\n"
            f"  chain output {{ type filter hook output priority -200; tcp dport {port} drop; }}",
        )
        self._bmp_blocked.add(site)

    def bmp_unblock(self, site: str) -> None:
        """Undo ``bmp_block``."""
        self._require_started()
        self._nft(site, _BMP_TABLE, None)
        self._bmp_blocked.discard(site)

    def set_bmp(self, site: str, enabled: bool) -> None:
        """Remove (False) or re-add (True) the BMP target in the router's configuration, at run time."""
        self._require_started()
        if self.bmp_target(site) is None:
            raise LabError(f"{site} sends no BMP (Lab(bmp=PORT, bmp_sites=...))")
        self.router(site).set_bmp(enabled)

    def family_sessions(self, site: str, family: int, *, include_collector: bool = False) -> list[str]:
        """Return the names of ``site``'s single-family sessions of ``family`` (split_families labs)."""
        return [
            n.name
            for n in self.neighbors(site)
            if n.family == family and (include_collector or not n.collector)
        ]

    def shutdown_sessions(
        self, site: str, names: Sequence[str], message: str = "bgpwatch lab shutdown"
    ) -> None:
        """Administratively shut the named sessions of ``site`` (Cease with ``message``)."""
        self._require_started()
        if not names:
            raise LabError(f"{site}: no session to shut")
        self.router(site).set_sessions(names, False, message)
        self._sessions_down |= {(site, name) for name in names}

    def enable_sessions(self, site: str, names: Sequence[str]) -> None:
        """Undo ``shutdown_sessions``."""
        self._require_started()
        self.router(site).set_sessions(names, True)
        self._sessions_down -= {(site, name) for name in names}

    def shutdown_family(self, site: str, family: int = 6, *, include_collector: bool = False) -> list[str]:
        """Shut every ``family``-only session of ``site`` (e.g. its IPv6 sessions); return their names."""
        names = self.family_sessions(site, family, include_collector=include_collector)
        if not names:
            raise LabError(f"{site} has no IPv{family}-only session: build the lab with split_families=True")
        self.shutdown_sessions(site, names, f"bgpwatch lab: IPv{family} sessions shut")
        return names

    def enable_family(self, site: str, family: int = 6, *, include_collector: bool = False) -> None:
        """Undo ``shutdown_family``."""
        self.enable_sessions(site, self.family_sessions(site, family, include_collector=include_collector))

    def export_deny(self, site: str, *, wait: float = 30.0) -> None:
        """Deny everything the site exports to every neighbour (sessions stay up).

        Waits (``wait`` > 0) until no other running site still has a route to the site's prefixes.
        """
        self._require_started()
        self.router(site).set_export(False)
        if wait > 0:
            self._wait_others(site, present=False, timeout=wait)

    def export_allow(self, site: str, *, wait: float = 30.0) -> None:
        """Undo ``export_deny``; waits until the other running sites see the site's prefixes again."""
        self._require_started()
        self.router(site).set_export(True)
        if wait > 0:
            self._wait_others(site, present=True, timeout=wait)

    def _wait_others(self, site: str, *, present: bool, timeout: float) -> None:
        others = [s for s in self.site_names if s != site and self._alive_site(s)]

        def done() -> bool:
            for other in others:
                for prefix in self.site_prefixes(site):
                    if (self.best_path(other, prefix) is not None) != present:
                        return False
            return True

        self.wait_for(done, timeout, f"{site}'s prefixes {'back' if present else 'gone'} at {others}", 0.2)

    def graceful_shutdown(self, site: str, *, wait: float = 30.0) -> None:
        """Drain the site: everything it sends carries GRACEFUL_SHUTDOWN 65535:0 (RFC 8326).

        Waits until a neighbouring site sees the community on one of the site's prefixes.
        """
        self._require_started()
        self.router(site).set_graceful_shutdown(True)
        if wait > 0:
            self._wait_community(site, "65535:0", True, wait)

    def graceful_shutdown_end(self, site: str, *, wait: float = 30.0) -> None:
        """Undo ``graceful_shutdown``."""
        self._require_started()
        self.router(site).set_graceful_shutdown(False)
        if wait > 0:
            self._wait_community(site, "65535:0", False, wait)

    def _wait_community(self, site: str, community: str, present: bool, timeout: float) -> None:
        peers = [n.peer for n in self.neighbors(site) if n.peer is not None and self._alive_site(n.peer)]
        if not peers:
            return
        prefix = self.site_prefixes(site)[0]

        def done() -> bool:
            found = self.communities(peers[0], prefix)
            return found is not None and (community in found) == present

        self.wait_for(done, timeout, f"{community} {'on' if present else 'off'} {prefix} at {peers[0]}", 0.2)

    def restore(self) -> None:
        """Everything nominal: heal, unisolate, un-blackhole, power on, routers started and undone."""
        self._require_started()
        self._split.clear()
        self._isolated.clear()
        for site in self.site_names:
            self._powered[site] = True
        self._sync_links()
        for site in list(self._silenced):
            self._nft(site, _SILENT_TABLE, None)
        self._silenced.clear()
        for site in list(self._blackholed):
            self.unblackhole(site)
        for site in list(self._bmp_blocked):
            self.bmp_unblock(site)
        for site in self.site_names:
            self.start_router(site)
            self.router(site).restore()
        self._sessions_down.clear()

    def flap(self, site: str, seconds: float, message: str = "bgpwatch lab flap") -> None:
        """Shut the collector session(s) (Cease with a shutdown message), wait ``seconds``, enable them."""
        self._require_started()
        if '"' in message:
            raise LabError("the shutdown message cannot contain a double quote")
        names = [n.name for n in self.neighbors(site) if n.collector]
        self.router(site).set_sessions(names, False, message)
        time.sleep(seconds)
        self.router(site).set_sessions(names, True)

    def withdraw_statics(self, site: str) -> None:
        """Stop originating the site's prefixes (and bulk routes); return once they left its table."""
        self._require_started()
        self.router(site).set_originate(False)

    def restore_statics(self, site: str) -> None:
        """Originate the site's prefixes (and bulk routes) again."""
        self._require_started()
        self.router(site).set_originate(True)

    # -- bulk routes for benchmarks (BIRD) -------------------------------------------------------------

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
        self.router(site).set_bulk(count_v4, count_v6, group_size, offset)

    def remove_static_routes(self, site: str) -> None:
        """Drop ``site``'s bulk routes and reload BIRD."""
        self._require_started()
        self.router(site).set_bulk(0, 0, 1, 0)

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
            peers = []
            for neighbor in self.neighbors(spec.name):
                if not neighbor.collector:
                    continue
                peer: dict[str, Any] = {
                    "name": f"{spec.name}-rr1" + ("-v6" if neighbor.family == 6 else ""),
                    "address": neighbor.local,
                    "peer_as": spec.asn,
                    "local_address": neighbor.remote,
                    "hold_time": self.hold_time,
                }
                if self.collector_as == "ibgp":
                    peer["local_as"] = spec.asn
                if not self.routers_passive:
                    peer["passive"] = True
                if self.md5_password:
                    peer["md5_password"] = self.md5_password
                peers.append(peer)
            sites.append({"name": spec.name, "prefixes": list(spec.prefixes), "peers": peers})
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
