"""Alert latency under load: par1 re-sends a big table while par3 stops originating its prefixes.

The daemon first loads par1's table; then par1's session is flapped (as when a site's router
comes back after a power cut and re-sends everything), and while that table streams in, par3
withdraws its prefixes.

Real BIRD routers in a netns lab, ExaBGP managed by `bgpwatch run`.  Reports, in one run:
* from `birdc disable` on par3 (the router sends its withdrawals right after) to the alert;
* from ExaBGP's time stamp of the first withdrawal line to the alert's time;
* the p50/p99 of bgpwatch_ingest_lag_seconds (ExaBGP stamp -> processed) during the load;
* that the big table's load itself raised nothing.

    sudo .venv/bin/python -m bench.latency --v4 262143 --v6 200000 --group 4
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from lab import Lab, lab_available  # noqa: E402
from lab.daemon import LabDaemon  # noqa: E402
from lab.netlab import BULK_V4_NET, BULK_V6_NET  # noqa: E402

# The bulk routes stand in for the Internet's table, but live in benchmarking/documentation space.
BULK_NOT_BOGON = {"bogon_route": {"ignore_prefixes": [str(BULK_V4_NET), str(BULK_V6_NET)]}}


def ts(at: str) -> float:
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Upper bound of the bucket holding the q-quantile of a cumulative histogram."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def lag_buckets(metrics: str) -> list[tuple[float, float]]:
    out = []
    for line in metrics.splitlines():
        if line.startswith("bgpwatch_ingest_lag_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            out.append((float(bound), float(line.rsplit(" ", 1)[1])))
    return out


def first_withdraw_time(recording: Path, prefixes: set[str], since: float) -> float | None:
    for part in sorted(recording.glob("exabgp-*.jsonl.gz")):
        try:
            with gzip.open(part, "rt") as stream:
                for line in stream:
                    if '"withdraw"' not in line:
                        continue
                    doc = json.loads(line)
                    if doc.get("time", 0) < since:
                        continue
                    update = doc["neighbor"]["message"]["update"]
                    for nlris in update["withdraw"].values():
                        if any((n["nlri"] if isinstance(n, dict) else n) in prefixes for n in nlris):
                            return doc["time"]
        except (EOFError, OSError):
            continue
    return None


def run(v4: int, v6: int, group: int, timeout: float) -> dict:
    with Lab(3, extra_routes={"par1": (v4, v6, group)}) as lab, tempfile.TemporaryDirectory() as tmp:
        lab.wait_established(60)
        daemon = LabDaemon(
            lab, Path(tmp), recording={"path": str(Path(tmp) / "recording")}, detectors=BULK_NOT_BOGON
        )
        total = v4 + v6 + len(lab.site_prefixes("par1"))
        daemon.start(log_level="info")
        loaded = lambda: (p := daemon.peers()["par1-rr1"])["routes"] >= total and len(p["end_of_rib"]) == 2  # noqa: E731
        daemon.wait_for(loaded, timeout, "par1's first full table")
        first_load_alerts = daemon.cli("alerts", "--transitions")
        flap_at = time.time()
        lab.flap("par1", 1, message="bgpwatch latency bench")
        daemon.wait_for(
            lambda: (p := daemon.peers()["par1-rr1"])["state"] == "up" and p["routes"] > total * 0.1,
            timeout,
            "par1's reload to be under way",
        )
        routes_at_trigger = daemon.peers()["par1-rr1"]["routes"]
        trigger = time.time()
        lab.withdraw_statics("par3")
        alert = daemon.wait_for(
            lambda: next(
                (t for t in daemon.cli("alerts", "--transitions") if t["kind"] == "visibility_loss"), None
            ),
            60,
            "the visibility_loss alert",
        )
        seen_at = time.time()
        loaded_at_alert = daemon.peers()["par1-rr1"]["routes"]
        daemon.wait_for(loaded, timeout, "par1's full table again")
        metrics = daemon.metrics()
        lab.restore_statics("par3")
        daemon.wait_for(lambda: daemon.cli("alerts") == [], 60, "the alert resolved")
        others = [
            t
            for t in daemon.cli("alerts", "--transitions")
            if t["kind"] != "visibility_loss" and ts(t["at"]) >= flap_at
        ]
        stamped = first_withdraw_time(Path(tmp) / "recording", set(lab.site_prefixes("par3")), trigger)
        buckets = lag_buckets(metrics)
        daemon.stop()
        return {
            "table": {"v4": v4, "v6": v6, "group_size": group},
            "routes_loaded_when_triggered": routes_at_trigger,
            "routes_loaded_when_alert_seen": loaded_at_alert,
            "seconds_birdc_to_alert_at": round(ts(alert["at"]) - trigger, 3),
            "seconds_birdc_to_alert_visible_in_api": round(seen_at - trigger, 3),
            "seconds_exabgp_stamp_to_alert_at": None
            if stamped is None
            else round(ts(alert["at"]) - stamped, 3),
            "debounce_seconds": 0.5,
            "ingest_lag_p50_seconds_upper_bound": quantile(buckets, 0.5),
            "ingest_lag_p99_seconds_upper_bound": quantile(buckets, 0.99),
            "ingest_lag_samples": buckets[-1][1] if buckets else 0,
            "alerts_during_first_load": [
                f"{t['kind']} {t['state']} {t['labels']}" for t in first_load_alerts
            ],
            "other_alerts_after_flap": [f"{t['kind']} {t['state']} {t['labels']}" for t in others],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v4", type=int, default=100_000)
    parser.add_argument("--v6", type=int, default=0)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    reason = lab_available()
    if reason:
        print(f"cannot run the lab: {reason}", file=sys.stderr)
        return 2
    print(json.dumps(run(args.v4, args.v6, args.group, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
