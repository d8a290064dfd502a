"""The ExaBGP input: bgpwatch's own BGP sessions, through ExaBGP and `bgpwatch relay`.

Configured by the ``collector:`` section (managed: bgpwatch runs ExaBGP; external: an operator-run
ExaBGP's relay connects).  The relay socket and the supervisor are the daemon's (`bgpwatch.daemon`);
this source starts and stops them like any other input.
"""

from __future__ import annotations

from typing import Any

from bgpwatch.ingest.sources import Source, register


@register
class ExabgpSource(Source):
    """ExaBGP's JSON lines from the relay socket; in managed mode, the supervised ExaBGP workers."""

    type = "exabgp"

    async def start(self) -> None:
        host: Any = self.host
        await host.start_relay_server()
        if host.supervisor is not None:
            host.supervisor.start()

    async def stop(self) -> None:
        host: Any = self.host
        await host.stop_exabgp()

    def health(self) -> list[str]:
        supervisor = getattr(self.host, "supervisor", None)
        if supervisor is None:
            return []
        return [f"ExaBGP worker {w.plan.index} not running" for w in supervisor.workers if not w.up]

    def status(self) -> dict[str, Any]:
        supervisor = getattr(self.host, "supervisor", None)
        return {
            "type": self.type,
            "mode": self.host.config.collector.exabgp,
            "workers": supervisor.describe() if supervisor is not None else [],
        }
