"""What a detector sees: a narrow, read-only view of the detection engine, plus the alert book's verbs.

A detector reads the topology's derived state, the sessions (their one owner), the site model, the
configuration and the stream clock, and states its findings into the alert book.  It never reaches
into the engine itself, so what a detector may depend on is written down here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bgpwatch.alerts.lifecycle import Alert, AlertBook, AlertKey, Finding
    from bgpwatch.config import Config
    from bgpwatch.detect.engine import DetectionEngine
    from bgpwatch.outside import OutsideView
    from bgpwatch.rpki.state import RpkiState
    from bgpwatch.sessions import SessionTable
    from bgpwatch.topology import SiteModel, Topology


class BookView:
    """The alert book's verbs a detector may use: state, clear, and ask what is active."""

    __slots__ = ("_book",)

    def __init__(self, book: AlertBook) -> None:
        self._book = book

    def upsert(self, finding: Finding, now: float) -> None:
        """Say that a condition holds at ``now``."""
        self._book.upsert(finding, now)

    def clear(self, key: AlertKey, now: float, ended_at: float | None = None) -> None:
        """Say that a condition no longer holds."""
        self._book.clear(key, now, ended_at)

    def sync(
        self, kind: str, findings: Iterable[Finding], now: float, scope: Callable[[Alert], bool] | None = None
    ) -> None:
        """Make the findings of ``kind`` exactly the given ones."""
        self._book.sync(kind, findings, now, scope)

    def is_active(self, key: AlertKey | None) -> bool:
        """Tell whether a condition is pending or firing."""
        return self._book.is_active(key)

    def active_keys(self) -> Iterator[AlertKey]:
        """Return the keys of the pending and firing conditions."""
        return iter(list(self._book.alerts))

    def fired(self, key: AlertKey) -> bool:
        """Tell whether a condition is firing (not only pending)."""
        alert = self._book.alerts.get(key)
        return alert is not None and alert.fired_at is not None


class DetectionContext:
    """The read-only state a detector works from (see the module doc)."""

    __slots__ = ("_engine", "book")

    def __init__(self, engine: DetectionEngine) -> None:
        self._engine = engine
        self.book = BookView(engine.book)

    @property
    def topology(self) -> Topology:
        """Return the topology (site states, views, islands)."""
        return self._engine.topology

    @property
    def model(self) -> SiteModel:
        """Return the site model."""
        return self._engine.topology.model

    @property
    def sessions(self) -> SessionTable:
        """Return the sessions (the one owner of session state)."""
        return self._engine.sessions

    @property
    def config(self) -> Config:
        """Return the configuration in force."""
        return self._engine.config

    @property
    def now(self) -> float | None:
        """Return the stream clock."""
        return self._engine.now

    @property
    def outside(self) -> OutsideView:
        """Return the outside view (public peers' routes, RIS Live), read only."""
        return self._engine.outside

    @property
    def rpki(self) -> RpkiState:
        """Return the RPKI state (the VRP table and whether it is usable), read only."""
        return self._engine.rpki

    @property
    def planned(self) -> Any:
        """Return the planned-work owner (maintenance windows, drains), or None."""
        return self._engine.planned

    @property
    def collector_lost(self) -> dict[str, float]:
        """Return the sessions lost on the collector's side (address -> when)."""
        return self._engine.sessions.collector_lost()

    def joined_mid_session(self, address: str) -> bool:
        """Tell whether a peer's routes came before any 'up' (its earlier table is unknown)."""
        session = self._engine.sessions.find(address)
        return session is not None and session.mid_session

    def route_count(self, address: str) -> int:
        """Return how many routes a peer's Adj-RIB-In holds."""
        adj = self._engine.rib.peers.get(address)
        return len(adj) if adj is not None else 0

    def tables(self) -> Iterator[tuple[str, int, Mapping[int, Any]]]:
        """Yield (peer address, family, prefix key -> attributes) for every non-empty table (read only)."""
        for address, adj in self._engine.rib.peers.items():
            for family, table in adj.tables.items():
                if table:
                    yield address, family, table

    @property
    def load_epoch(self) -> int:
        """Return a number that changes whenever any peer's load state may have (`SessionTable.load_epoch`)."""
        return self._engine.sessions.load_epoch

    def peer_loaded(self, address: str) -> bool:
        """Tell whether a peer's initial table is in (a public peer's: always, RIS Live sends no table)."""
        return self._engine.sessions.loaded(address) or address in self._engine.outside.peers

    def peer_up(self, address: str) -> bool:
        """Tell whether a peer's session is up."""
        return self._engine.sessions.is_up(address)

    def peer_identity(self, address: str) -> tuple[str, str | None, int | None]:
        """Return a peer's name, site and AS (a public peer: "rrc00 AS3356 192.0.2.1", no site)."""
        outside = self._engine.outside
        if address in outside.peers:
            return outside.peer_name(address), None, outside.peer_as(address)
        return self._engine.sessions.identity(address)
