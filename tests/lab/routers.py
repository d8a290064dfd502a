"""The per-site router backend interface of the lab, and what every backend shares.

A :class:`Router` drives one site's BGP daemon(s) inside the site's namespace: it writes their
configuration from the sessions the :class:`~lab.netlab.Lab` plans for the site (:class:`Neighbor`),
starts and kills them, and answers the queries and operations the lab's scenarios need.  The lab
itself owns everything router-independent (namespaces, veths, nftables drops, link states) and
calls the backend named by ``SiteSpec.router``.  tests/lab/README.md describes the contract.

A new backend is a module with a ``Router`` subclass and one line in ``ROUTER_KINDS``.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

if TYPE_CHECKING:
    from .netlab import Lab

# kind -> "module:Class", imported on first use (a lab without FRR sites never imports frr.py).
ROUTER_KINDS: dict[str, str] = {
    "bird": ".bird:BirdRouter",
    "frr": ".frr:FrrRouter",
    "gobgp": ".gobgp:GobgpRouter",
}


class LabError(RuntimeError):
    """A lab step failed (command error, timeout, bad argument)."""


class Addresses(NamedTuple):
    """An IPv4 and an IPv6 address of one end of a link."""

    v4: str
    v6: str


@dataclass(frozen=True)
class Neighbor:
    """One BGP session of a site's router, as the lab plans it (the backend renders it).

    ``family`` None: one session over IPv4 carrying IPv4 and IPv6 unicast (IPv6 next hop
    ``next_hop_v6``); 4 or 6: a session over that family's addresses carrying only that family.
    """

    name: str  # collector, collector_v6, peer_<site>, peer_<site>_v6 (BIRD protocol names)
    peer: str | None  # the other site; None for the collector
    family: int | None
    local: str
    remote: str
    local_as: int
    remote_as: int
    ifname: str
    next_hop_v6: str
    rr_client: bool = False  # this router reflects routes to the neighbor (route reflector side)
    passive: bool = False  # wait for the neighbor to connect (collector sessions by default)

    @property
    def families(self) -> tuple[int, ...]:
        return (4, 6) if self.family is None else (self.family,)

    @property
    def ibgp(self) -> bool:
        return self.local_as == self.remote_as

    @property
    def collector(self) -> bool:
        return self.peer is None


def router_class(kind: str) -> type[Router]:
    """Return the backend class of ``kind`` (bird, frr, gobgp)."""
    try:
        target = ROUTER_KINDS[kind]
    except KeyError:
        raise LabError(f"unknown router kind {kind!r}; known: {sorted(ROUTER_KINDS)}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name, package=__package__)
    except ImportError as exc:
        raise LabError(f"router kind {kind!r} is not available: {exc}") from exc
    return getattr(module, class_name)  # type: ignore[no-any-return]


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, stdin: str | None = None) -> str:
    """Run a command, return its stdout; raise LabError with its stderr when it fails."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False, input=stdin
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def stop_process(proc: subprocess.Popen[Any], sig: int, grace: float) -> None:
    """Send ``sig`` to ``proc``, wait ``grace`` seconds, then SIGKILL it."""
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


def family_of(prefix: str) -> int:
    return ipaddress.ip_network(prefix).version


class Router(ABC):
    """One site's BGP router; the lab builds it with ``Router(lab, site)`` before ``write_config``.

    Processes go into ``lab.processes(site)`` (name -> Popen), so the lab's finalizer can kill them
    without holding the router.  Every operation returns once it is applied in the router; the lab
    waits for network-wide effects itself.
    """

    kind: ClassVar[str]
    # Binaries that must be on PATH (or absolute paths) for this kind to run.
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, lab: Lab, site: str) -> None:
        self.lab = lab
        self.site = site
        self.spec = lab.spec(site)
        self.directory: Path = lab.site_dir(site)

    # -- life cycle (required) ------------------------------------------------------------------------

    @abstractmethod
    def write_config(self) -> None:
        """Write the daemon configuration files from ``lab.neighbors(site)`` and the site's prefixes."""

    @abstractmethod
    def start(self) -> None:
        """Start the daemon(s); a no-op for those that run."""

    @abstractmethod
    def wait_ready(self, timeout: float) -> None:
        """Return once the control interface answers; raise LabError if a daemon died."""

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL every daemon of the site (the kernel closes their sockets)."""

    def kill_bgp(self) -> None:
        """SIGKILL only the BGP daemon (FRR: bgpd, zebra stays); default: everything."""
        self.kill()

    def running(self) -> bool:
        """Return whether the BGP daemon runs."""
        return self.pid() is not None

    @abstractmethod
    def pid(self) -> int | None:
        """Return the BGP daemon's pid while it runs."""

    # -- queries (required) ---------------------------------------------------------------------------

    @abstractmethod
    def session_states(self) -> dict[str, str]:
        """Return ``{neighbor name: state}``; "Established" when up (names of ``lab.neighbors``)."""

    @abstractmethod
    def best_path(self, prefix: str) -> tuple[int, ...] | None:
        """Return the AS path of the best route to exactly ``prefix``: () if local, None if none."""

    @abstractmethod
    def route_count(self) -> int:
        """Return how many prefixes the router has (all families)."""

    # -- operations (optional: the default says the backend cannot) ------------------------------------

    def _unsupported(self, what: str) -> LabError:
        return LabError(f"{self.kind} site {self.site}: {what} is not implemented for this router kind")

    def set_originate(self, enabled: bool) -> None:
        """Stop (False) or resume (True) originating the site's own prefixes."""
        raise self._unsupported("withdrawing the originated prefixes")

    def set_sessions(self, names: Sequence[str], enabled: bool, message: str = "") -> None:
        """Administratively shut (Cease, with ``message``) or re-enable the named sessions."""
        raise self._unsupported("shutting sessions")

    def set_export(self, enabled: bool) -> None:
        """False: deny everything towards every neighbor (sessions stay up); True: undo."""
        raise self._unsupported("an export deny-all")

    def set_graceful_shutdown(self, enabled: bool) -> None:
        """True: tag everything sent with GRACEFUL_SHUTDOWN 65535:0 (RFC 8326); False: undo."""
        raise self._unsupported("graceful shutdown")

    def set_bmp(self, enabled: bool) -> None:
        """False: remove the BMP target at run time (the router closes its BMP session); True: add it back."""
        raise self._unsupported("BMP")

    def communities(self, prefix: str) -> set[str] | None:
        """Return the standard communities ("A:B") of the best route to ``prefix``, None if none."""
        raise self._unsupported("community queries")

    def stale(self, prefix: str) -> bool | None:
        """Return whether the best route to ``prefix`` is a GR-stale one (None: no route, or cannot tell)."""
        return None

    def graceful_restart(self, name: str) -> bool | None:
        """Return whether graceful restart was negotiated on session ``name`` (None: cannot tell)."""
        return None

    def restore(self) -> None:
        """Undo every operation above (sessions enabled, export allowed, no drain, originating)."""
        return None

    # -- BIRD-only extras the lab exposes (bulk routes); others raise ---------------------------------

    def set_bulk(self, count_v4: int, count_v6: int, group_size: int, offset: int) -> None:
        """Replace the bulk routes and reload; return once they are in the table."""
        raise self._unsupported("bulk routes")

    def wait_bulk(self, timeout: float) -> None:
        """Return once the bulk routes asked for are loaded."""
        return None


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate`` until true; raise LabError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
