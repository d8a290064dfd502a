"""bench/bmp_e2e.py at its smoke size (5k routes): the table reaches bgpwatch whole over BMP and over ExaBGP.

A lab test (root, BIRD 2, FRR 8.4, namespaces; about 15 s): par1's BIRD sends 4,000 IPv4 + 1,000 IPv6
routes to par2's FRR, which then connects to `bgpwatch run`'s BMP station and reports its Adj-RIB-In
(pre- and post-policy); then par1 sends the same table to bgpwatch's ExaBGP.  No timing is asserted (the machine is shared), only that every route
arrived both ways, nothing was rejected and the figures are there.  The full sizes: bench/README.md.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.lab import lab_available

pytestmark = pytest.mark.lab

REASON = lab_available(("bird", "frr"))
if REASON is None and importlib.util.find_spec("bgpwatch.ingest.bmp") is None:
    REASON = "bgpwatch.ingest.bmp (the BMP decoder) is not in this tree yet"

V4, V6 = 4000, 1000


@pytest.mark.skipif(REASON is not None, reason=str(REASON))
def test_bmp_e2e_smoke() -> None:
    from bench.bmp_e2e import run

    report = run(V4, V6, group=4, python=None, timeout=30)
    own = 3  # par1's site prefixes (two IPv4 /27s, one IPv6 /48) travel with the bulk routes
    total = V4 + V6 + own
    assert report["routes"] == total
    # BMP: FRR's views of its session with par1, pre- and post-policy, each the whole table.
    assert report["bmp"]["routes_pre"] == total
    assert report["bmp"]["routes_post"] == total
    # ExaBGP: the same table from par1 (plus what par1 learnt from par2: par2's own prefixes).
    assert total <= report["exabgp"]["routes"] <= total + own
    # Nothing was malformed on the BMP connection, and it is the only one.
    bmp = next(item for item in report["bgpwatch_status"]["inputs"] if item["type"] == "bmp")
    assert bmp["accepted"] == 1 and bmp["closed_by_bgpwatch"] == {}
    assert [c["errors"] for c in bmp["connections"]] == [0]
    # Every route of both views came in its own Route Monitoring message (FRR does not pack).
    assert bmp["connections"][0]["messages"] >= 2 * total
    assert report["alerts_firing"] == 0
    for path in ("bmp", "exabgp"):
        figures = report[path]
        assert figures["cpu_seconds"]["bgpwatch"] > 0
        assert figures["rss_bytes_per_route"] != 0 or figures["bgpwatch_rss_growth_bytes"] >= 0
        assert figures["prefixes_per_second"] > 0
    assert report["exabgp"]["cpu_seconds"]["exabgp"] > 0
    # FRR's own load, before any BMP station listened.
    assert report["frr_without_bmp"]["peak_rss_bytes"]["frr_bgpd"] > 0
    assert report["bmp"]["mode"] == "dump" and report["bmp"]["bmp_messages"] >= 2 * total
