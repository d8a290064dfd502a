"""Write ExaBGP's configuration and environment from bgpwatch's own configuration.

Choices (see the lab NOTES): ``adj-rib-in false`` because bgpwatch keeps its own RIB and
ExaBGP's costs ~3.6 KB per route; ``receive { parsed; update; notification; open; }`` plus
``neighbor-changes`` is everything bgpwatch consumes (``open`` carries the peer's capabilities,
among them its graceful-restart time; ``negotiated`` is not asked for because ExaBGP then adds
a negotiated block to every UPDATE line); the API process is ``bgpwatch relay``.

Graceful restart (``collector.graceful_restart``, default 120 s, 0 = not advertised): the
template advertises ``capability { graceful-restart T; route-refresh; }``.  Why: FRR sends
End-of-RIB only to a peer that advertised the capability, GoBGP only when GR is negotiated (it
must be configured on GoBGP's side too), BIRD always; without End-of-RIB bgpwatch cannot tell
when a table is complete.  Side effects, seen in the lab (``tests/lab/capture_open.py``, FRR 8.4,
BIRD 2.0.12, GoBGP 3.10; fixtures/exabgp/open-router-views.json) or read in ExaBGP 5.0.15's
source where said:

* ExaBGP lists ipv4 and ipv6 unicast with the forwarding-state bit, and sets the Restart State
  bit in the first OPEN of each ExaBGP process (``FORCE_GRACEFUL``, ``reactor/peer.py``); later
  reconnects of the same process clear it (FRR showed ``rBit`` true, then false after its bgpd
  restarted).  R set tells the router not to wait for ExaBGP's End-of-RIB.
* When ExaBGP stops (SIGTERM: a stop or restart of bgpwatch) it closes the TCP connections
  without a Cease NOTIFICATION, GR or not (FRR: "Peer closed the session"; GoBGP: 0
  notifications received; the source skips the Cease on purpose when GR was advertised).  With
  GR negotiated the router takes that for a restart of ExaBGP (FRR: "NSF peer closed the
  session", BIRD, also in its default "aware" mode: "Neighbor graceful restart active", each
  with a 120 s restart timer running) and keeps the routes ExaBGP sent it, which are none,
  until ExaBGP is back or the timer ends: nothing changes in the network.
* ExaBGP sends its End-of-RIB for both families itself (``manual-eor`` is off) right after the
  session is up, since it announces nothing: FRR showed ``endOfRibRecv`` true for both.  A router
  restarting under GR defers its best-path selection until every GR peer's End-of-RIB is in
  (FRR ``select-defer-time``, 360 s by default); ExaBGP does not delay it: after a SIGKILL of
  FRR's bgpd, the table and both End-of-RIBs came 1.1 s after the session was up again.
* ExaBGP does not implement the RFC 8538 N bit (FRR offers it; ``nBit`` false): a NOTIFICATION,
  e.g. a hold-timer expiry, ends the session the ordinary way on both sides.
* ExaBGP keeps no stale routes for a peer whose session drops (no RIB here, and it synthesises
  no withdraws): what the other routers keep announcing for a restarting router, and for how
  long, is bgpwatch's to work out (the ``PeerOpen`` event says whether the peer offered GR and
  its restart time; negotiated = offered by the peer and ``graceful_restart`` > 0 here).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bgpwatch.config import Config, Peer

PROCESS_NAME = "bgpwatch-relay"


@dataclass(frozen=True)
class WorkerPlan:
    """One ExaBGP child and the peers it holds."""

    index: int
    peers: tuple[Peer, ...]
    config_path: Path
    listen_address: str | None
    listen_port: int


def default_worker_count(config: Config) -> int:
    """One worker per core, never more than there are peers."""
    wanted = config.collector.exabgp_workers
    if wanted:
        return max(1, min(wanted, len(config.peers)))
    return max(1, min(os.cpu_count() or 1, len(config.peers)))


def plan_workers(config: Config) -> list[WorkerPlan]:
    """Share the peers over the ExaBGP workers.

    Passive peers all go to worker 0: only one process can listen on the BGP port of an
    address.  Active peers are spread round-robin, so a big table loads on one core while
    the other sessions keep flowing through another.
    """
    count = default_worker_count(config)
    buckets: list[list[Peer]] = [[] for _ in range(count)]
    passive = [peer for peer in config.peers if peer.passive]
    active = [peer for peer in config.peers if not peer.passive]
    buckets[0].extend(passive)
    for position, peer in enumerate(active):
        buckets[(position + (1 if passive and count > 1 else 0)) % count].append(peer)
    runtime = Path(config.collector.runtime_dir)
    plans = []
    for index, peers in enumerate(buckets):
        if not peers:
            continue
        plans.append(
            WorkerPlan(
                index=index,
                peers=tuple(peers),
                config_path=runtime / f"exabgp-{index}.conf",
                listen_address=config.collector.listen_address if any(p.passive for p in peers) else None,
                listen_port=config.collector.listen_port,
            )
        )
    return plans


def config_path_for_exabgp(config: Config) -> str:
    """Return the configuration's path as ExaBGP's API process must see it: absolute.

    ExaBGP runs the relay from its own working directory, so a relative ``--config`` given to
    ``bgpwatch run`` would not be found there (the relay exits at once, ExaBGP with it, for ever).
    Not resolved through symlinks: a reload must follow a symlink the operator switches.
    """
    return os.path.abspath(config.source) if config.source is not None else "None"


def relay_command(config: Config, worker: int) -> str:
    """Return the command line ExaBGP runs as its API process."""
    argv = [
        sys.executable,
        "-m",
        "bgpwatch",
        "relay",
        "--config",
        config_path_for_exabgp(config),
        "--worker",
        str(worker),
    ]
    return " ".join(shlex.quote(arg) for arg in argv)


def _quote(text: str) -> str:
    if '"' in text or "\n" in text or ";" in text:
        raise ValueError("value contains a character ExaBGP's configuration cannot quote")
    return f'"{text}"'


def _local_address(config: Config, peer: Peer) -> str | None:
    address = peer.local_address or config.collector.local_address
    if address is None:
        return None
    if ipaddress.ip_address(address).version != ipaddress.ip_address(peer.address).version:
        return None
    return address


def _capabilities(graceful_restart: int) -> str:
    """Return the body of the template's ``capability`` block."""
    if graceful_restart:
        return f"graceful-restart {graceful_restart}; route-refresh;"
    return "route-refresh;"


def render_worker(config: Config, plan: WorkerPlan) -> str:
    """Return the text of one ExaBGP worker's configuration file."""
    collector = config.collector
    lines = [
        "# Generated by bgpwatch from "
        + config_path_for_exabgp(config)
        + "; do not edit, it is rewritten at start.",
        f"process {PROCESS_NAME} {{",
        f"  run {relay_command(config, plan.index)};",
        "  encoder json;",
        "}",
        "",
        "template {",
        "  neighbor bgpwatch {",
        f"    router-id {collector.router_id};",
        "    adj-rib-in false;",
        "    group-updates true;",
        "    family { ipv4 unicast; ipv6 unicast; }",
        f"    capability {{ {_capabilities(collector.graceful_restart)} }}",
        "    api {",
        f"      processes [ {PROCESS_NAME} ];",
        "      neighbor-changes;",
        # `open`: the peer's OPEN reaches bgpwatch (its GR capability and restart time).  Not
        # `negotiated;`: it adds a whole negotiated block to every UPDATE line.
        "      receive { parsed; update; notification; open; }",
        "    }",
        "  }",
        "}",
    ]
    for peer in plan.peers:
        hold_time = peer.hold_time if peer.hold_time is not None else collector.hold_time
        lines += [
            "",
            f"neighbor {peer.address} {{",
            "  inherit bgpwatch;",
            f"  description {_quote(peer.name)};",
            f"  local-as {peer.local_as or collector.local_as};",
            f"  peer-as {peer.peer_as};",
            f"  hold-time {hold_time};",
            f"  passive {'true' if peer.passive else 'false'};",
        ]
        local = _local_address(config, peer)
        lines.append(f"  local-address {local if local else 'auto'};")
        if not peer.passive:
            # Explicit, or ExaBGP would connect to exabgp.tcp.port (our listen port).
            lines.append(f"  connect {peer.port};")
        if peer.md5_password is not None:
            lines.append(f"  md5-password {_quote(peer.md5_password.get_secret_value())};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def worker_environment(
    config: Config, plan: WorkerPlan, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Return the environment for an ExaBGP child (no privilege drop, no CLI pipes, logs to stdout)."""
    env = dict(os.environ if base is None else base)
    # systemd's notify socket belongs to the daemon alone (NotifyAccess=main).
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    try:
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        user = "root" if os.geteuid() == 0 else "nobody"
    env.update(
        {
            # As root, ExaBGP would setuid() to "nobody" and spawn the relay as nobody (NOTES gotcha 1):
            # stay the user bgpwatch runs as; systemd already gives that user only CAP_NET_BIND_SERVICE.
            "exabgp.daemon.user": user,
            "exabgp.daemon.drop": "false",
            "exabgp.daemon.daemonize": "false",
            "exabgp.api.cli": "false",
            "exabgp.api.ack": "false",
            "exabgp.api.respawn": "true",
            "exabgp.api.encoder": "json",
            "exabgp.log.destination": "stdout",
            "exabgp.log.level": "INFO",
            "exabgp.log.statistics": "false",
            "exabgp.log.short": "true",
            "exabgp.tcp.bind": plan.listen_address or "",
            "exabgp.tcp.port": str(plan.listen_port),
            "exabgp.tcp.attempts": "0",
        }
    )
    return env


def write_worker_config(config: Config, plan: WorkerPlan) -> Path:
    """Write a worker's configuration file, readable by the owner only (it may hold MD5 passwords)."""
    plan.config_path.parent.mkdir(parents=True, exist_ok=True)
    text = render_worker(config, plan)
    tmp = plan.config_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, plan.config_path)
    return plan.config_path
