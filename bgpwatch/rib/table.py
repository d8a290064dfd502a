"""Adj-RIB-In per vantage point; applying an event returns what changed, before and after."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat

from bgpwatch.events import DOWN, Announce, EndOfRib, Event, SessionState, Withdraw
from bgpwatch.rib.attributes import AttributePool, PathAttributes
from bgpwatch.rib.prefix import MAX_LEN, supernet


@dataclass(slots=True)
class RouteChanges:
    """Changes caused by one event on one peer and family: ``(key, before, after)`` triples.

    ``before`` is None for a new route, ``after`` is None for a removed one.  Re-announcing a
    route with the same attributes is not a change and does not appear.
    """

    at: float
    peer: str
    family: int
    items: list[tuple[int, PathAttributes | None, PathAttributes | None]] = field(default_factory=list)
    reason: str = "update"  # "update" | "session_down" (implicit withdraw of the whole table)


class AdjRibIn:
    """The routes one peer (vantage point) currently announces to bgpwatch."""

    __slots__ = ("peer", "tables", "eor", "announcements", "withdrawals")

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.tables: dict[int, dict[int, PathAttributes]] = {4: {}, 6: {}}
        self.eor: set[int] = set()  # families whose End-of-RIB has been received
        self.announcements = 0
        self.withdrawals = 0

    def __len__(self) -> int:
        return len(self.tables[4]) + len(self.tables[6])

    def get(self, family: int, key: int) -> PathAttributes | None:
        """Return the route's attributes for an exact prefix, or None."""
        return self.tables[family].get(key)

    def lookup(self, family: int, address_key: int) -> tuple[int, PathAttributes] | None:
        """Return the longest prefix (key, attributes) covering a host key, or None."""
        table = self.tables[family]
        for length in range(MAX_LEN[family], -1, -1):
            key = supernet(family, address_key, length)
            attrs = table.get(key)
            if attrs is not None:
                return key, attrs
        return None


class Rib:
    """All vantage points' Adj-RIBs-In, sharing one attribute pool."""

    def __init__(self, pool: AttributePool | None = None) -> None:
        self.pool = pool if pool is not None else AttributePool()
        self.peers: dict[str, AdjRibIn] = {}

    def peer(self, address: str) -> AdjRibIn:
        """Return the Adj-RIB-In of a peer, creating it empty."""
        rib = self.peers.get(address)
        if rib is None:
            rib = self.peers[address] = AdjRibIn(address)
        return rib

    def apply(self, event: Event) -> list[RouteChanges]:
        """Apply one event; return the route changes it caused, one entry per family touched."""
        kind = type(event)
        if kind is Announce or (kind is not Withdraw and isinstance(event, Announce)):
            changes = self._announce(event)  # type: ignore[arg-type]
            return [changes] if changes.items else []
        if kind is Withdraw or isinstance(event, Withdraw):
            changes = self._withdraw(event)  # type: ignore[arg-type]
            return [changes] if changes.items else []
        if isinstance(event, SessionState) and event.state == DOWN:
            return self.flush(event.peer, event.at)
        if isinstance(event, EndOfRib):
            self.peer(event.peer).eor.add(event.family)
        return []

    def _announce(self, event: Announce) -> RouteChanges:
        rib = self.peers.get(event.peer)
        if rib is None:
            rib = self.peer(event.peer)
        table = rib.tables[event.family]
        after = event.attributes
        prefixes = event.prefixes
        count = len(prefixes)
        rib.announcements += count
        if count == 1:  # a router that does not pack: one prefix per UPDATE
            key = prefixes[0]
            before = table.get(key)
            if before is after:
                return RouteChanges(event.at, event.peer, event.family, [])
            table[key] = after
            after.refs += 1
            if before is not None:
                before.refs -= 1
                if before.refs == 0:
                    self.pool.release_if_unused(before)
            return RouteChanges(event.at, event.peer, event.family, [(key, before, after)])
        befores = list(map(table.get, prefixes))
        if befores.count(None) == count:
            # Every prefix is new (a table load): done in C, no per-prefix Python work.
            size = len(table)
            table.update(zip(prefixes, repeat(after)))
            added = len(table) - size
            if added != count:  # the same prefix twice in one event: one route, one change
                prefixes = tuple(dict.fromkeys(prefixes))
            items = list(zip(prefixes, repeat(None), repeat(after)))
        else:
            items = []
            added = 0
            append = items.append
            release = self.pool.release_if_unused
            get = table.get
            for key in prefixes:
                before = get(key)  # read again: the same prefix may come twice in one event
                if before is after:
                    continue
                table[key] = after
                added += 1
                if before is not None:
                    before.refs -= 1
                    if before.refs == 0:
                        release(before)
                append((key, before, after))
        after.refs += added
        if after.refs == 0:
            self.pool.release_if_unused(after)
        return RouteChanges(event.at, event.peer, event.family, items)

    def _withdraw(self, event: Withdraw) -> RouteChanges:
        rib = self.peers.get(event.peer)
        if rib is None:
            rib = self.peer(event.peer)
        table = rib.tables[event.family]
        prefixes = event.prefixes
        rib.withdrawals += len(prefixes)
        befores = list(map(table.pop, prefixes, repeat(None)))
        items = []
        release = self.pool.release_if_unused
        for key, before in zip(prefixes, befores, strict=True):
            if before is None:
                continue
            before.refs -= 1
            if before.refs == 0:
                release(before)
            items.append((key, before, None))
        return RouteChanges(event.at, event.peer, event.family, items)

    def flush(self, peer: str, at: float) -> list[RouteChanges]:
        """Drop everything learned from a peer whose session went down (ExaBGP sends no withdraws)."""
        rib = self.peers.get(peer)
        if rib is None:
            return []
        rib.eor.clear()
        result = []
        pool = self.pool
        for family, table in rib.tables.items():
            if not table:
                continue
            for before in table.values():
                before.refs -= 1
                if before.refs == 0:
                    pool.release_if_unused(before)
            items = [(key, before, None) for key, before in table.items()]
            result.append(RouteChanges(at, peer, family, items, reason="session_down"))
            rib.tables[family] = {}
        return result
