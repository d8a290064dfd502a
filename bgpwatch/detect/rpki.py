"""RPKI detectors: origin validation (RFC 6811) of the routes to our prefixes, inside and outside.

They read the pipeline's `bgpwatch.rpki.state.RpkiState` (``ctx.rpki``): a VRP table kept by the
RTR client (or a replay's recorded lines).  While that table is not usable (no cache answered
yet, or the data expired) they freeze what they stated: an expired table is not "every ROA
disappeared".  That state is itself reported, once, by ``rpki_cache_down``.

- rpki_invalid (critical): a route to a protected prefix (site, anycast or watched, or a
  more-specific of one), seen by one of our sessions or by a public peer (RIS Live), validates
  INVALID.  Two root causes, two shapes:

  * our own origin is invalid (a ROA names another AS, or its max length is too short): the ROAs
    are wrong, and networks that drop invalids no longer route us; one alert per origin AS, every
    prefix it makes invalid listed (labels ``{origin}``);
  * another origin is invalid: a hijack, the same event as the ``origin_change`` alert of that
    prefix and origin (same labels ``{prefix, origin[, site]}``), which it joins.

- rpki_not_found (warning): an own prefix that a VRP covered since the data became usable is
  covered by none any more (a ROA disappeared, expired, or was not renewed): it is NOT FOUND, and
  a hijack of it would no longer be INVALID.  With ``require_roa``, prefixes never covered too.
- rpki_cache_down (warning): RTR caches are configured but none gave usable data for ``for``
  seconds: origin validation is off, the other RPKI alerts are frozen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.alerts.lifecycle import Finding, iso_ms
from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.detect.origins import SAMPLES, Group, GroupKey, ProtectedPrefixes, RouteDetector, _path_text
from bgpwatch.rib import RouteChanges
from bgpwatch.rib.prefix import format_prefix
from bgpwatch.rpki.vrps import INVALID

if TYPE_CHECKING:
    from bgpwatch.events import Event
    from bgpwatch.rib.attributes import PathAttributes
    from bgpwatch.rpki.state import RpkiState

OWN = "own"  # group of our own origins made invalid (the ROAs are wrong)
HIJACK = "hijack"  # group of another origin made invalid (one hijack)


class RpkiDetector(Detector):
    """Base of the RPKI detectors: ``rpki_changed`` when the table or its usability changed."""

    @property
    def rpki(self) -> RpkiState:
        return self.ctx.rpki

    def rpki_changed(self, now: float) -> None:
        """Re-derive after the VRP table or its usability changed."""


@register
class RpkiInvalidDetector(RouteDetector, RpkiDetector):
    """A route to a protected prefix (inside or outside view) that validates RPKI INVALID."""

    name = "rpki_invalid"
    kind = "rpki_invalid"
    order = 42  # after origin_change and more_specific, whose alerts a hijack's joins
    defaults: ClassVar[dict[str, Any]] = {"severity": "critical", "keep": 60.0}

    def _setup(self) -> None:
        self.protected = ProtectedPrefixes(self.ctx)
        # Every route inside a protected prefix, kept to re-judge it when the VRPs change.
        self.held: dict[tuple[str, int, int], PathAttributes] = {}
        self._judged_version: int | None = None
        self._tracking = False  # self.held follows the routes (only once RPKI is configured)

    def _scan(self) -> None:
        """Take the protected routes of the RIB and of the outside view into self.held."""
        expected = self.protected.expected
        tables = list(self.ctx.tables())
        for address, adj in self.ctx.outside.rib.peers.items():
            tables.extend((address, family, adj.tables[family]) for family in (4, 6))
        for address, family, table in tables:
            for key, attrs in table.items():
                if expected(family, key) is not None:
                    self.held[(address, family, key)] = attrs

    def scope(self) -> Iterable[tuple[int, int]]:
        return self.protected.scope()

    def on_event(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        if not self.rpki.configured:
            return  # no RPKI: nothing per route on the hot path (rpki_changed catches up if it comes)
        self._tracking = True
        expected, held = self.protected.expected, self.held
        for change in changes:
            peer, family = change.peer, change.family
            for key, _before, after in change.items:
                if expected(family, key) is None:
                    continue
                if after is None:
                    held.pop((peer, family, key), None)
                else:
                    held[(peer, family, key)] = after
        if not self.rpki.usable:
            return  # frozen: judged again when the data is back (rpki_changed)
        super().on_event(event, changes, now)

    def rpki_changed(self, now: float) -> None:
        state = self.rpki
        if not state.usable or self._judged_version == state.version:
            return
        self._judged_version = state.version
        if not self._tracking:  # RPKI came with a replay's first record: take the routes held so far
            self._tracking = True
            self._scan()
        by_peer: dict[tuple[str, int], list[tuple[int, Any, Any]]] = {}
        for (peer, family, key), attrs in self.held.items():
            by_peer.setdefault((peer, family), []).append((key, attrs, attrs))
        # Routes judged offending before but no longer held were withdrawn: gone with their events.
        changes = [RouteChanges(now, peer, family, items) for (peer, family), items in by_peer.items()]
        offending = [route for route in self.routes if route not in self.held]
        for route in offending:
            changes.append(RouteChanges(now, route[0], route[1], [(route[2], None, None)]))
        super().on_event(None, changes, now)  # type: ignore[arg-type]

    def evaluate(self, now: float) -> None:
        if self.rpki.usable:
            super().evaluate(now)

    def judge(
        self, peer: str, family: int, key: int, before: PathAttributes | None, after: PathAttributes
    ) -> Iterable[tuple[GroupKey, Any]]:
        rule = self.protected.expected(family, key)
        if rule is None:
            return ()
        if after.as_set:
            origin, text = None, "{" + ",".join(str(a) for a in sorted(after.as_set)) + "}"
        else:
            origin = after.as_path[-1] if after.as_path else self.peer_as(peer)
            text = str(origin)
        if self.rpki.table.validate(family, key, origin) != INVALID:
            return ()
        _, anchor, origins, site = rule
        if origin is not None and origin in origins:
            return (((OWN, text), (family, key, after)),)
        return (((HIJACK, family, anchor, text, site), (family, key, after)),)

    def describe(
        self, group_key: GroupKey, group: Group, peers: list[str]
    ) -> tuple[dict[str, str], str, dict]:
        if group_key[0] == OWN:
            labels = {"origin": group_key[1]}
        else:
            _, family, anchor, origin, site = group_key
            labels = {"prefix": format_prefix(family, anchor), "origin": origin}
            if site is not None:
                labels["site"] = site
        if not peers:
            return labels, "", {}
        prefixes = self.prefixes(group, peers)
        shown = ", ".join(prefixes) + (", ..." if len(prefixes) == SAMPLES else "")
        family, key, sample = next(self.details(group, peers))
        vrps = [str(v) for v in self.rpki.table.covering(family, key)][:SAMPLES]
        seen_by = f"{len(peers)} peer{'s' if len(peers) != 1 else ''}"
        if group_key[0] == OWN:
            summary = (
                f"RPKI INVALID: our own routes from AS{labels['origin']} fail origin validation "
                f"({shown}; VRPs covering {prefixes[0]}: {', '.join(vrps)}): networks that drop "
                f"invalid routes no longer route them; seen by {seen_by}"
            )
        else:
            summary = (
                f"RPKI INVALID: {labels['prefix']} announced by AS{labels['origin']} ({shown}), "
                f"not allowed by the VRPs ({', '.join(vrps)}); seen by {seen_by}"
            )
        annotations = {
            "origin": labels["origin"],
            "prefixes": prefixes,
            "vrps": vrps,
            "routes": self.count(group, peers),
            "peer_count": len(peers),
            "peers": self.names(peers),
            "sample_path": _path_text(sample),
            "rpki_source": self.rpki.origin,
        }
        return labels, summary, annotations

    def cause_of(self, group_key: GroupKey, group: Group) -> Any:
        if group_key[0] == HIJACK:
            _, family, anchor, origin, site = group_key
            labels = {"prefix": format_prefix(family, anchor), "origin": origin}
            if site is not None:
                labels["site"] = site
            return self.cause_if_active("origin_change", labels)
        # Our own more-specific beyond the ROAs' max length: the more_specific alert is the event.
        anchors = {format_prefix(*r) for routes in group.by_peer.values() for r in routes}
        for key in self.ctx.book.active_keys():
            if key[0] == "more_specific" and dict(key[1]).get("more_specific") in anchors:
                return key
        return None


@register
class RpkiNotFoundDetector(RpkiDetector):
    """An own prefix no VRP covers any more (a ROA disappeared)."""

    name = "rpki_not_found"
    kind = "rpki_not_found"
    order = 43
    defaults: ClassVar[dict[str, Any]] = {"severity": "warning", "for": 60.0, "keep": 30.0}
    params: ClassVar[dict[str, Param]] = {
        "require_roa": Param(bool, False, "also warn for own prefixes no VRP ever covered"),
    }

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        self.prefixes = ctx.topology.model.protected_prefixes()
        self.covered_once: set[tuple[int, int]] = set()
        self._seen: int | None = None

    def rpki_changed(self, now: float) -> None:
        state = self.rpki
        if not state.usable or state.version == self._seen:
            return  # frozen while the data is not usable
        self._seen = state.version
        table = state.table
        lost = []
        for family, key in self.prefixes:
            if table.covering(family, key):
                self.covered_once.add((family, key))
            elif (family, key) in self.covered_once or self.p["require_roa"]:
                lost.append(format_prefix(family, key))
        findings: list[Finding] = []
        if lost:
            model = self.ctx.topology.model
            owners = []
            for text in lost[:SAMPLES]:
                family, key = next(p for p in self.prefixes if format_prefix(*p) == text)
                site_key = model.site_prefix(family, key)
                owners.append(
                    f"{text} (site {model.owner_of(family, site_key)})" if site_key == key else text
                )
            summary = (
                f"RPKI NOT FOUND: {len(lost)} own prefix{'es' if len(lost) != 1 else ''} covered by no VRP "
                f"any more: {', '.join(owners)}{', ...' if len(lost) > SAMPLES else ''}; a hijack of them "
                "would not be RPKI INVALID (a ROA disappeared, expired or was not renewed?)"
            )
            annotations = {"prefixes": lost[:100], "count": len(lost), "rpki_source": state.origin}
            findings.append(self.finding({"rpki": "own_prefixes"}, summary, "own prefixes", annotations))
        self.sync(findings, now)


@register
class RpkiCacheDownDetector(RpkiDetector):
    """RTR caches configured, none usable: origin validation is off."""

    name = "rpki_cache"
    kind = "rpki_cache_down"
    order = 44
    defaults: ClassVar[dict[str, Any]] = {"severity": "warning", "for": 60.0, "keep": 5.0}

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        self._first: float | None = None
        self._seen: tuple[Any, ...] | None = None

    def rpki_changed(self, now: float) -> None:
        self._judge(now)

    def on_tick(self, now: float) -> None:
        self._judge(now)

    def _judge(self, now: float) -> None:
        state = self.rpki
        if not state.configured:
            return
        if self._first is None:
            self._first = now
        signature = (state.usable, state.reason)
        if signature == self._seen:
            return
        self._seen = signature
        if state.usable:
            self.sync([], now)
            return
        since = state.since if state.since is not None else self._first
        summary = (
            f"RPKI origin validation off since {iso_ms(since)}: {state.reason}; "
            "RPKI alerts are frozen until a cache answers"
        )
        finding = self.finding({"rpki": "rtr"}, summary, "RPKI caches", {"reason": state.reason}, since=since)
        self.sync([finding], now)
