"""The RPKI data the detectors judge against: one VRP table, whether it may be used, and why not.

The pipeline owns one `RpkiState` (as it owns the outside view); live, the RTR client
(`bgpwatch.rpki.rtr`) is its only writer, in a replay the recorded ``bgpwatch-rpki`` lines are
(`bgpwatch.ingest.rpki_lines`).  The detection engine reads it (`bgpwatch.detect.rpki`).

"Usable" follows RFC 8210 6: data from a cache may be used from its first End of Data until
``expire`` seconds after the last one; past that, or before any, origin validation is off and the
RPKI detectors freeze what they stated (an expired table is never "every ROA disappeared").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bgpwatch.rpki.vrps import Vrp, VrpTable


class RpkiState:
    """The VRP table in use, its usability and where it comes from."""

    def __init__(self, configured: bool = False) -> None:
        self.table = VrpTable()
        self.configured = configured  # RTR caches are configured (or a recording carries RPKI lines)
        self.usable = False
        self.since: float | None = None  # when `usable` last changed
        self.reason = "no RTR cache configured" if not configured else "no End of Data from any RTR cache yet"
        self.origin = ""  # the cache the table comes from ("127.0.0.1:8282"), or "recording"
        self.updated_at: float | None = None  # the last End of Data applied
        self._usable_changes = 0

    @property
    def version(self) -> int:
        """Return a number that changes whenever the table or its usability does."""
        return self.table.version * 2 + self._usable_changes

    def set_usable(self, usable: bool, at: float, reason: str) -> bool:
        """Record whether the table may be used (and why not); return True if that changed."""
        self.reason = reason
        if usable == self.usable:
            return False
        self.usable, self.since = usable, at
        self._usable_changes += 1
        return True

    def load(self, vrps: Iterable[Vrp], at: float, origin: str) -> int:
        """Make the table exactly ``vrps`` (a full load, from a cache or a recording); return the changes."""
        changed = self.table.replace(vrps)
        self.updated_at, self.origin = at, origin
        return changed

    def relevant(self, prefixes: Iterable[tuple[int, int]]) -> list[Vrp]:
        """Return the VRPs that can decide the validity of a route inside one of ``prefixes``.

        A route at or inside a prefix P is covered only by VRPs covering P or lying inside P, so
        this subset validates every such route exactly as the whole table does: it is what a
        recording keeps (the whole table is ~500k VRPs; the protected prefixes need a handful).
        """
        table = self.table
        found: dict[Vrp, None] = {}
        for family, key in prefixes:
            for vrp in table.covering(family, key):
                found.setdefault(vrp)
            for vrp in table.within(family, key):
                found.setdefault(vrp)
        return sorted(found)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready view (status, API)."""
        return {
            "configured": self.configured,
            "usable": self.usable,
            "since": self.since,
            "reason": self.reason,
            "origin": self.origin,
            "updated_at": self.updated_at,
            **self.table.stats(),
        }
