"""The collector comparison (bench/collectors.py) at a smoke size, so it never rots.

No timing is asserted: the figures are the hand-run benchmark's business (bench/README.md).
"""

from __future__ import annotations

import pytest

from bench import collectors
from tests.lab import lab_available

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        lab_available(("bird", "gobgp")) is not None, reason=str(lab_available(("bird", "gobgp")))
    ),
]


def test_collectors_smoke():
    result = collectors.run(4000, 1000, 4, peers=1, timeout=120)
    assert result["routes_expected"] >= 5000
    assert set(result["collectors"]) == {"bird", "gobgp"}
    for kind, figures in result["collectors"].items():
        assert figures["every_route_held"], (kind, figures["routes_by_peer"])
        assert figures["routes"] == result["routes_expected"], kind
        assert figures["routes_by_peer"]["par1"] >= 5000, kind
        assert figures["cpu_seconds"] >= 0 and figures["rss_bytes"] > 0, kind


def test_collectors_four_peers_smoke():
    result = collectors.run(800, 200, 4, peers=4, timeout=120)
    for kind, figures in result["collectors"].items():
        assert figures["every_route_held"], (kind, figures["routes_by_peer"])
        assert sorted(figures["routes_by_peer"]) == ["par1", "par2", "par3", "par4"], kind
        assert all(count >= 1000 for count in figures["routes_by_peer"].values()), kind
