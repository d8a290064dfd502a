"""Churn detectors, per vantage point, only after its End-of-RIB (the initial load is not churn).

- mass_withdrawal: at least ``share`` of a peer's table withdrawn within ``window`` seconds,
  for tables of at least ``min_routes`` routes (prefixes re-announced within the window do
  not count).  Implicit withdrawals of a session going down are session_down's business.
  Peers without a configured session (MRT replays) are watched too, labelled by address, once
  loaded (see `DetectionEngine.peer_loaded`).  For a peer that joined mid-session (an MRT update
  file) only the routes seen since the input started are known: withdrawals of older routes
  change nothing in the RIB and are not counted, since the share of an unknown table cannot be
  judged (counting them fired on ordinary DFZ churn in rrc01 2010-08-27).
- update_storm: a peer's prefix updates in the current second exceed both ``floor`` and
  ``factor`` times its baseline (an EWMA of its per-second rate, frozen while storming).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar

from bgpwatch.detect.base import Detector, Param, register
from bgpwatch.events import Announce, Withdraw

if TYPE_CHECKING:
    from bgpwatch.alerts.lifecycle import AlertKey
    from bgpwatch.events import Event
    from bgpwatch.rib import RouteChanges


@register
class MassWithdrawalDetector(Detector):
    """A large share of one peer's table withdrawn at once."""

    name = "mass_withdrawal"
    kind = "mass_withdrawal"
    order = 30
    params: ClassVar[dict[str, Param]] = {
        "window": Param(float, 10.0, "seconds over which withdrawals are summed", 0.1, 3600),
        "share": Param(float, 0.5, "share of the table withdrawn that fires", 0.01, 1),
        "min_routes": Param(int, 100, "smallest table (routes) considered", 1, 100_000_000),
    }

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        self.withdrawn: dict[str, OrderedDict[tuple[int, int], float]] = {}
        self.active: dict[str, float] = {}  # peer address -> when the condition began

    def on_event(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        if not isinstance(event, Withdraw | Announce):
            return
        vp = self.ctx.topology.vps.get(event.peer)
        if not (vp.eor_complete if vp is not None else self.ctx.peer_loaded(event.peer)):
            return
        recent = self.withdrawn.get(event.peer)
        if recent is None:
            if isinstance(event, Announce):
                return  # nothing withdrawn lately: an announcement cannot matter
            recent = self.withdrawn[event.peer] = OrderedDict()
        for change in changes:
            if change.reason != "update":
                continue
            family = change.family
            for key, _before, after in change.items:
                item = (family, key)
                if after is None:
                    recent[item] = now
                    recent.move_to_end(item)
                else:
                    recent.pop(item, None)
        self._check(event.peer, now)

    def _check(self, address: str, now: float) -> None:
        recent = self.withdrawn.get(address)
        if recent is None:
            return
        window = self.p["window"]
        ended = None
        while recent:
            item, at = next(iter(recent.items()))
            if now - at < window:
                break
            del recent[item]
            ended = at + window
        size = self.ctx.route_count(address)
        count = len(recent)
        total = count + size
        up = self.ctx.peer_up(address)
        key = self._key(address)
        if not up or total < self.p["min_routes"] or count < self.p["share"] * total:
            if address in self.active:
                del self.active[address]
                self.ctx.book.clear(key, now, ended_at=ended if up else now)
            if not recent:
                self.withdrawn.pop(address, None)
            return
        since = self.active.setdefault(address, now)
        name = self.ctx.peer_identity(address)[0]
        summary = f"mass withdrawal: {name} withdrew {count} of {total} routes ({count / total:.0%}) within {window:g} s"
        if self.ctx.joined_mid_session(address):
            summary += " (of the routes seen since the input started: its earlier table is unknown)"
        annotations = {"withdrawn": count, "table": total, "share": round(count / total, 3)}
        cause = self._cause(recent)
        self.ctx.book.upsert(
            self.finding(self._labels(address), summary, name, annotations, cause, since),
            now,
        )

    def _labels(self, address: str) -> dict[str, str]:
        name, site, _ = self.ctx.peer_identity(address)
        return {"peer": name, "site": site} if site is not None else {"peer": name}

    def _key(self, address: str) -> AlertKey:
        return (self.kind, tuple(sorted(self._labels(address).items())))

    def _cause(self, recent: OrderedDict[tuple[int, int], float]) -> AlertKey | None:
        model = self.ctx.topology.model
        owners: dict[str, int] = {}
        for family, key in list(recent)[-1000:]:
            site_key = model.site_prefix(family, key)
            if site_key is not None:
                owner = model.owner_of(family, site_key)
                owners[owner] = owners.get(owner, 0) + 1
        for owner in sorted(owners, key=owners.get, reverse=True):
            cause = self.cause_if_active("site_down", {"site": owner}) or self.cause_if_active(
                "visibility_loss", {"site": owner}
            )
            if cause is not None:
                return cause
        for key in self.ctx.book.active_keys():
            if key[0] in ("topology_split", "collector_degraded"):
                return key
        return None

    def evaluate(self, now: float) -> None:
        for address in list(self.withdrawn):
            self._check(address, now)
        for address in list(self.active):
            if address not in self.withdrawn:
                self._check(address, now)


@register
class UpdateStormDetector(Detector):
    """A peer sends far more updates than its usual rate."""

    name = "update_storm"
    kind = "update_storm"
    order = 31
    params: ClassVar[dict[str, Param]] = {
        "factor": Param(float, 10.0, "multiple of the baseline rate that is a storm", 1, 10_000),
        "floor": Param(float, 1000.0, "updates per second below which nothing is a storm", 1, 100_000_000),
        "alpha": Param(float, 0.05, "EWMA weight of each second in the baseline", 0.0001, 1),
    }

    def __init__(self, ctx: Any, params: Any = None) -> None:
        super().__init__(ctx, params)
        # peer -> [current second, count in it, count of the previous second, baseline]
        self.rates: dict[str, list[float]] = {}
        self.active: dict[str, float] = {}

    def on_event(self, event: Event, changes: list[RouteChanges], now: float) -> None:
        if not isinstance(event, Withdraw | Announce):
            return
        vp = self.ctx.topology.vps.get(event.peer)
        if vp is None or not vp.eor_complete:
            return
        rate = self._roll(event.peer, now)
        rate[1] += len(event.prefixes)
        self._check(event.peer, now)

    def _roll(self, address: str, now: float) -> list[float]:
        if not math.isfinite(now):  # rejected at the edge; never let one raise here
            now = 0.0
        second = math.floor(now)
        rate = self.rates.get(address)
        if rate is None:
            rate = self.rates[address] = [second, 0, 0, 0.0]
            return rate
        if second == rate[0]:
            return rate
        alpha = self.p["alpha"]
        gap = second - rate[0]
        storming = address in self.active
        if not storming:
            rate[3] += alpha * (rate[1] - rate[3])
            if gap > 1:
                # Bounded: a huge or negative gap (an absurd time) would overflow or blow up.
                rate[3] *= (1 - alpha) ** min(max(gap - 1, 0), 1_000_000)
        rate[2] = rate[1] if gap == 1 else 0
        rate[0], rate[1] = second, 0
        return rate

    def _threshold(self, rate: list[float]) -> float:
        return max(self.p["floor"], self.p["factor"] * rate[3])

    def _check(self, address: str, now: float) -> None:
        rate = self.rates[address]
        threshold = self._threshold(rate)
        current = max(rate[1], rate[2])
        if current <= threshold and address not in self.active:
            return  # the common case, kept cheap: it runs for every UPDATE
        vp = self.ctx.topology.vps[address]
        info = vp.info
        key = (self.kind, tuple(sorted({"peer": info.name, "site": info.site}.items())))
        if current <= threshold or vp.state != "up":
            if self.active.pop(address, None) is not None:
                self.ctx.book.clear(key, now)
            return
        since = self.active.setdefault(address, now)
        summary = (
            f"update storm: {info.name} sent {current:.0f} prefix updates/s "
            f"(baseline {rate[3]:.1f}/s, threshold {threshold:.0f}/s)"
        )
        annotations = {"rate": current, "baseline": round(rate[3], 2), "threshold": threshold}
        self.ctx.book.upsert(
            self.finding(
                {"peer": info.name, "site": info.site}, summary, info.name, annotations, since=since
            ),
            now,
        )

    def evaluate(self, now: float) -> None:
        for address in list(self.rates):
            self._roll(address, now)
            if address in self.active:
                self._check(address, now)
