"""The benchmarks at their smoke size, so they never rot: each runs its CLI and prints sane JSON.

No timing is asserted (the machine is shared): only that every figure is there and positive.
The full sizes are run by hand (bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(module: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_machine(report: dict) -> None:
    machine = report["machine"]
    assert machine["cpus"] >= 1 and machine["cpus_usable"] >= 1
    assert machine["date"] and machine["python"]


@pytest.mark.parametrize("packing", ["real", "single"])
def test_pipeline_bench(packing: str) -> None:
    report = bench("pipeline", "--routes", "4000", "--repeat", "1", "--packing", packing, "--breakdown")
    assert_machine(report)
    assert report["threads"] == 1 and report["packing"] == packing
    for phase in ("load", "after_eor"):
        figures = report[phase]
        assert figures["prefix_events"] > 0 and figures["lines"] > 0
        for name in ("orjson", "parse", "pipeline"):
            assert figures[f"{name}_rate"] > 0
        assert figures["parse_ratio"] > 0 and figures["pipeline_ratio"] > 0
    # The breakdown: the same load through less of the pipeline is faster (not timed: just there).
    assert report["load"]["no_detection_rate"] > 0 and report["load"]["no_route_detectors_rate"] > 0
    if packing == "single":
        assert report["load"]["prefixes_per_line"] == 1.0
    else:
        assert report["load"]["prefixes_per_line"] > 2
    assert report["rib_routes"] > 0 and report["attribute_sets"] > 0
    assert report["alerts"] == []  # a healthy table load fires nothing
    assert set(report["targets"]) == {"rate", "ratio", "rate_met", "ratio_met"}


def test_memory_bench() -> None:
    report = bench("memory", "--peers", "2", "--routes", "3000")
    assert_machine(report)
    assert report["adj_rib_in_routes"] == 6000
    assert report["attribute_sets"] > 0 and 2 < report["routes_per_attribute_set"] < 10
    assert report["tracemalloc_bytes_per_route"] > 0
    assert report["tracemalloc_by_file_bytes_per_route"]
    assert isinstance(report["rss_bytes_per_route"], float | int)
    assert report["load_rate"] > 0
    assert report["target_bytes_per_route"] == 200 and isinstance(report["target_met"], bool)


def test_api_latency_bench() -> None:
    report = bench("api_latency", "--peers", "2", "--routes", "3000", "--repeat", "3")
    assert_machine(report)
    assert report["adj_rib_in_routes"] == 6000
    assert report["metrics_body_bytes"] > 0
    found = list(report["routes_found"].values())
    assert found[0] == 2 and found[1] == 2 and found[2] == 0  # v4 hit, v6 hit, not routed
    for where in ("direct", "http"):
        timings = report[where]
        assert "metrics" in timings and sum("lookup" in key for key in timings) == 3
        assert all(t["median_ms"] > 0 and t["max_ms"] >= t["median_ms"] for t in timings.values())
    assert set(report["targets"]) == {"metrics_ms", "lookup_ms", "metrics_met", "lookup_met"}


def test_mrt_bench() -> None:
    small = "fixtures/mrt/libbgpstream/ris.rrc06.updates.1427846400.gz"
    report = bench("mrt", "--repeat", "1", small)
    assert_machine(report)
    [entry] = report["files"]
    assert entry["elements"] > 0 and entry["parity"] is True  # the same elements as bgpdump -m
    assert entry["bgpdump"]["best_rate"] > 0 and entry["bgpwatch"]["best_rate"] > 0
    assert entry["bgpwatch"]["ratio_median"] > 0


def test_relay_bench() -> None:
    report = bench("relay", "--lines", "2000", "--rate", "0", "--repeat", "1")
    current = report["current"]
    assert current["complete"] and current["lines_received"] == 2000
    assert current["cpu_seconds_per_million_lines"] > 0 and report["target_cpu_seconds_per_million"] == 1.0


def test_pipeline_ab_bench() -> None:
    report = bench("pipeline_ab", "--rev", "HEAD", "--routes", "2000", "--rounds", "1")
    for phase in ("load", "churn"):
        assert report[phase]["before"]["median_s"] > 0 and report[phase]["after"]["median_s"] > 0
        assert report[phase]["median_ratio"] > 0
    assert report["alerts"]["before"] == report["alerts"]["after"]  # the same code: the same transitions
