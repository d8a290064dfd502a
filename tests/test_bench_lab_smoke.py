"""The lab benchmarks at a smoke size, so they never rot (CI runs ExaBGP under PyPy here).

No timing is asserted: the figures are the hand-run benchmarks' business (bench/README.md).
"""

from __future__ import annotations

import os

import pytest

from bench import e2e, latency
from bgpwatch.collector.supervisor import PYPY_VENV
from tests.lab import lab_available

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_available() is not None, reason=str(lab_available()))]


def test_end_to_end_smoke():
    result = e2e.run(v4=3000, v6=1000, group=4, workers=None, python=None, timeout=120)
    assert result["routes"] >= 4000
    assert result["alerts_firing"] == 0  # the End-of-RIB arrives with nothing fired
    assert result["prefixes_per_second"] > 0 and result["cpu_seconds"]["exabgp"] > 0
    if os.environ.get("CI"):  # .ci/setup builds the PyPy venv: CI must exercise ExaBGP under PyPy
        assert PYPY_VENV in result["exabgp_python"], result["exabgp_python"]


def test_latency_under_load_smoke():
    result = latency.run(v4=20000, v6=0, group=4, timeout=120)
    assert result["alerts_during_first_load"] == []
    assert result["seconds_exabgp_stamp_to_alert_at"] is not None
    assert result["seconds_exabgp_stamp_to_alert_at"] > 0
    assert result["ingest_lag_samples"] > 0
