"""Planned work: operator maintenance windows and GRACEFUL_SHUTDOWN drains (RFC 8326).

`PlannedWork` is the one owner of "this is planned".  The engine asks it, for an alert about a site or
a session, whether planned work covers it (`match`), and feeds it the route changes (`observe_routes`)
and session losses (`session_down`) it needs to know which sessions are draining.

- A **maintenance window** is opened by an operator on a site or a session, for a duration or until
  ended.  A window on a site covers every session of the site.
- A **drain** starts when a route of a session carries the GRACEFUL_SHUTDOWN community (65535:0): the
  router announces that it is about to take the session down.  It ends when no route of that session
  carries it any more.  Re-announced without the community, the drain is called off at once; when
  the routes are withdrawn, or the session goes down, what follows stays planned for `linger`
  seconds.  A drain of every session of a site covers the site.

Time is a parameter: every method takes the stream time `now` (epoch seconds); nothing here reads the
clock, so a replay and a live run agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bgpwatch.config import Config
    from bgpwatch.rib import RouteChanges

__all__ = [
    "GRACEFUL_SHUTDOWN",
    "LINGER_SECONDS",
    "PlannedWork",
    "format_duration",
    "iso",
    "parse_duration",
    "sites_from_config",
]

GRACEFUL_SHUTDOWN = (65535, 0)  # RFC 8326 well-known community, as PathAttributes.communities holds it
LINGER_SECONDS = 300.0
MAX_REASON = 500
_CACHE_LIMIT = 1 << 14  # distinct community lists remembered before the cache starts over
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def iso(ts: float) -> str:
    """Return epoch seconds as ISO-8601 UTC with milliseconds and Z (the alerts' time format)."""
    millis = round(ts * 1000)
    seconds, ms = divmod(millis, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


def parse_duration(text: str) -> float:
    """Return the seconds in a duration such as `90s`, `30m`, `2h`, `1h30m`, `1d` or `45` (seconds)."""
    value = text.strip().lower()
    if not value:
        raise ValueError("expected a duration such as 90s, 30m, 2h or 1h30m, got ''")
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is None:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ValueError(f"expected a duration such as 90s, 30m, 2h or 1h30m, got {text!r}")
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"expected a positive duration, got {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Return seconds as a short duration (`2h`, `1h30m`, `90s`)."""
    seconds = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


def sites_from_config(config: Config) -> dict[str, set[str]]:
    """Return site name -> the names of its peers, as `PlannedWork` takes them."""
    return {site.name: {peer.name for peer in site.peers} for site in config.sites}


@dataclass(slots=True)
class _Window:
    target: str
    scope: str  # "site" | "peer"
    site: str | None  # the site itself, or the peer's site
    since: float
    until: float | None
    reason: str
    by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "scope": self.scope,
            "site": self.site,
            "reason": self.reason,
            "by": self.by,
            "since": iso(self.since),
            "until": None if self.until is None else iso(self.until),
            "since_ts": self.since,
            "until_ts": self.until,
        }

    def annotation(self) -> dict[str, Any]:
        return {
            "by": "maintenance",
            "reason": self.reason,
            "target": self.target,
            "since": iso(self.since),
            "until": None if self.until is None else iso(self.until),
        }


@dataclass(slots=True)
class _Drain:
    site: str | None
    since: float
    routes: int = 0  # routes of the session carrying GRACEFUL_SHUTDOWN now
    until: float | None = None  # set once the session went down: planned until then
    withdrawn_at: float | None = None  # the last GS route was withdrawn (not re-announced without)


def _drain_state(drain: _Drain) -> str:
    if drain.routes:
        return "draining"
    return "routes withdrawn after drain" if drain.until is None else "session down after drain"


class PlannedWork:
    """Maintenance windows and GRACEFUL_SHUTDOWN drains: the one owner of 'this is planned'."""

    def __init__(self, sites: dict[str, set[str]], linger: float = LINGER_SECONDS) -> None:
        self.linger = linger
        self._windows: dict[str, _Window] = {}
        self._drains: dict[str, _Drain] = {}
        # id(communities tuple) -> carries GRACEFUL_SHUTDOWN.  The pool shares one tuple per distinct
        # list, so this stays small; the tuples are kept referenced so an id is never reused under us.
        self._gs: dict[int, bool] = {}
        self._gs_keep: list[tuple] = []
        self.sites: dict[str, frozenset[str]] = {}
        self.site_of: dict[str, str] = {}
        self.set_sites(sites)

    def set_sites(self, sites: Mapping[str, Iterable[str]]) -> None:
        """Take a new site -> peers map (SIGHUP); windows and drains are kept."""
        self.sites = {site: frozenset(peers) for site, peers in sites.items()}
        self.site_of = {peer: site for site, peers in self.sites.items() for peer in peers}

    def target_scope(self, target: str) -> str | None:
        """Return "site" or "peer" for a known target (a site wins over a peer of the same name)."""
        if target in self.sites:
            return "site"
        if target in self.site_of:
            return "peer"
        return None

    # -- maintenance windows -----------------------------------------------------------

    def start(
        self, target: str, now: float, duration: float | None, reason: str, by: str = "operator"
    ) -> dict:
        """Open (or replace) a maintenance window on a site or a session; return it."""
        scope = self.target_scope(target)
        if scope is None:
            raise ValueError(f"no site or peer named {target!r}")
        if duration is not None and not duration > 0:
            raise ValueError(f"duration must be positive, got {duration!r}")
        window = _Window(
            target=target,
            scope=scope,
            site=target if scope == "site" else self.site_of[target],
            since=now,
            until=None if duration is None else now + duration,
            reason=(reason or "").strip()[:MAX_REASON] or "planned maintenance",
            by=by,
        )
        self._windows[target] = window
        return window.to_dict()

    def end(self, target: str, now: float) -> dict | None:
        """Close the window on `target`; return it (until = now), or None when none is active."""
        window = self._active_window(target, now)
        if window is None:
            return None
        del self._windows[target]
        window.until = now if window.until is None else min(window.until, now)
        return window.to_dict()

    def restore(self, window: Mapping[str, Any], now: float) -> dict | None:
        """Take back a stored window (since_ts, until_ts, reason, by); None when expired or unknown."""
        target = str(window["target"])
        scope = self.target_scope(target)
        until = window.get("until_ts")
        if scope is None or (until is not None and until <= now):
            return None
        restored = _Window(
            target=target,
            scope=scope,
            site=target if scope == "site" else self.site_of[target],
            since=float(window["since_ts"]),
            until=None if until is None else float(until),
            reason=str(window.get("reason") or "planned maintenance"),
            by=str(window.get("by") or "operator"),
        )
        self._windows[target] = restored
        return restored.to_dict()

    def windows(self, now: float) -> list[dict]:
        """Return the active windows, oldest first (expired ones are dropped)."""
        for target in [t for t, w in self._windows.items() if w.until is not None and w.until <= now]:
            del self._windows[target]
        return [w.to_dict() for w in sorted(self._windows.values(), key=lambda w: (w.since, w.target))]

    def _active_window(self, target: str | None, now: float) -> _Window | None:
        if target is None:
            return None
        window = self._windows.get(target)
        if window is None:
            return None
        if window.until is not None and window.until <= now:
            del self._windows[target]
            return None
        return window

    # -- GRACEFUL_SHUTDOWN drains ------------------------------------------------------

    def _carries_gs(self, communities: tuple) -> bool:
        if len(self._gs) >= _CACHE_LIMIT:
            self._gs.clear()
            self._gs_keep.clear()
        answer = GRACEFUL_SHUTDOWN in communities
        self._gs[id(communities)] = answer
        self._gs_keep.append(communities)
        return answer

    def _tagged(self, attrs: Any, own_as: int | None) -> bool:
        """Tell whether a route carries GRACEFUL_SHUTDOWN (and, with ``own_as``, is its site's own)."""
        communities = attrs.communities
        has = self._gs.get(id(communities))
        if has is None:
            has = self._carries_gs(communities)
        return has and (own_as is None or _originated(attrs.as_path, own_as))

    def observe_routes(
        self, peer: str, site: str | None, changes: list[RouteChanges], now: float, own_as: int | None = None
    ) -> None:
        """Count the routes of session `peer` (its name) that carry GRACEFUL_SHUTDOWN after these changes.

        With ``own_as`` (the peer's AS), only the routes its own site originates count (AS path empty or
        only ``own_as``): a draining router tags what it sends, and its neighbours pass its tagged routes
        on, so a tagged route learned from another site says that site drains, not this session.
        """
        gained = lost = withdrawn = 0
        session_lost = False
        # Hot path: most routes carry no community at all (one attribute read, nothing else); those
        # that do share a few interned lists, judged once each (`_tagged`).
        tagged = self._tagged
        last_after, after_tagged = None, False  # the prefixes of one UPDATE share one attribute set
        for change in changes:
            for _key, before, after in change.items:
                if before is not None and before.communities and tagged(before, own_as):
                    lost += 1
                    if after is None:
                        withdrawn += 1
                        if change.reason == "session_down":
                            session_lost = True
                if after is not None and after.communities:
                    if after is not last_after:
                        last_after, after_tagged = after, tagged(after, own_as)
                    if after_tagged:
                        gained += 1
        if not gained and not lost:
            return
        drain = self._drains.get(peer)
        if drain is None or drain.routes == 0 and drain.until is not None:
            if not gained:
                return  # routes we never counted (observed from mid-stream): nothing was draining
            drain = self._drains[peer] = _Drain(site=site, since=now)
        drain.site = site if site is not None else drain.site
        drain.routes = max(0, drain.routes + gained - lost)
        if drain.routes:
            drain.until = None
            drain.withdrawn_at = None
            return
        if session_lost:
            drain.until = now + self.linger  # the session went down drained: what follows is planned
        elif withdrawn:
            drain.withdrawn_at = now  # routes gone: the session may be shut next
        else:
            del self._drains[peer]  # re-announced without the community: the drain was called off

    def session_down(self, peer: str, now: float) -> None:
        """Keep a drained session planned for `linger` seconds after it went down."""
        drain = self._drains.get(peer)
        if drain is None:
            return
        if drain.routes or drain.withdrawn_at is not None and now - drain.withdrawn_at <= self.linger:
            drain.routes = 0
            drain.until = now + self.linger
        elif drain.until is None:
            del self._drains[peer]

    def session_up(self, peer: str, now: float) -> None:
        """End the drain of a session that is established again: the planned work is over.

        (A router still draining tags its routes again on the new session, which starts a new drain.)
        """
        drain = self._drains.get(peer)
        if drain is not None and drain.until is not None:
            del self._drains[peer]

    def _active_drain(self, peer: str | None, now: float) -> _Drain | None:
        if peer is None:
            return None
        drain = self._drains.get(peer)
        if drain is None:
            return None
        if drain.until is not None and drain.until <= now:
            del self._drains[peer]
            return None
        # withdrawn but the session stays up: planned no longer once the linger has passed
        if (
            drain.routes == 0
            and drain.until is None
            and (drain.withdrawn_at is None or now - drain.withdrawn_at > self.linger)
        ):
            del self._drains[peer]
            return None
        return drain

    def drains(self, now: float) -> list[dict]:
        """Return the sessions draining (or down after a drain, within the linger), oldest first."""
        out = []
        for peer in list(self._drains):
            drain = self._active_drain(peer, now)
            if drain is not None:
                out.append(
                    {
                        "peer": peer,
                        "site": drain.site or self.site_of.get(peer),
                        "since": iso(drain.since),
                        "until": None if drain.until is None else iso(drain.until),
                        "routes": drain.routes,
                        "state": _drain_state(drain),
                    }
                )
        return sorted(out, key=lambda d: (d["since"], d["peer"]))

    def _drain_annotation(self, peer: str, drain: _Drain) -> dict[str, Any]:
        state = _drain_state(drain)
        if state == "draining":
            reason = f"{drain.routes} route(s) carry GRACEFUL_SHUTDOWN (65535:0)"
        else:
            reason = state.replace("after drain", "after a GRACEFUL_SHUTDOWN drain")
        return {
            "by": "graceful_shutdown",
            "reason": reason,
            "target": peer,
            "since": iso(drain.since),
            "until": None if drain.until is None else iso(drain.until),
        }

    # -- the question the engine asks --------------------------------------------------

    def match(self, site: str | None, peer: str | None, now: float) -> dict | None:
        """Return the planned-work annotation for an alert about this site and/or peer, or None."""
        if not self._windows and not self._drains:
            return None  # the common case, asked for every alert
        window = self._active_window(peer, now)
        if window is not None:
            return window.annotation()
        peer_site = self.site_of.get(peer) if peer is not None else None
        for candidate in dict.fromkeys(s for s in (peer_site, site) if s is not None):
            window = self._active_window(candidate, now)
            if window is not None:
                return window.annotation()
        if peer is not None:
            drain = self._active_drain(peer, now)
            if drain is not None:
                return self._drain_annotation(peer, drain)
        if site is not None:
            return self._site_covered(site, now)
        return None

    def _site_covered(self, site: str, now: float) -> dict | None:
        """Return an annotation when every session of the site is planned (window or drain)."""
        peers = self.sites.get(site)
        if not peers:
            return None
        parts: list[dict[str, Any]] = []
        for peer in sorted(peers):
            window = self._active_window(peer, now)
            if window is not None:
                parts.append(window.annotation())
                continue
            drain = self._active_drain(peer, now)
            if drain is None:
                return None
            parts.append(self._drain_annotation(peer, drain))
        drained = all(p["by"] == "graceful_shutdown" for p in parts)
        untils = [p["until"] for p in parts if p["until"] is not None]
        if drained:
            reason = f"every session of {site} drained with GRACEFUL_SHUTDOWN"
        else:
            reason = "; ".join(sorted({p["reason"] for p in parts}))
        return {
            "by": "graceful_shutdown" if drained else "maintenance",
            "reason": reason,
            "target": site,
            "since": max(p["since"] for p in parts),  # ISO strings of one format sort as times
            "until": min(untils) if untils else None,
        }


def _originated(path: tuple[int, ...], own_as: int) -> bool:
    """Tell whether a route with this AS path was originated by the site of AS ``own_as``."""
    return all(asn == own_as for asn in path)
