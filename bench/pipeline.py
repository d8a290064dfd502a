"""bgpwatch's own pipeline over ExaBGP JSON, against a bare ``orjson.loads`` loop over the same lines.

    python -m bench.pipeline [--routes N] [--packing real|single|unique] [--peers 4] [--repeat 3]

Workload (`bench.workload`): `--peers` peers each send a table of `--routes` / `--peers`
prefixes (80 % IPv4 /24, 20 % IPv6 /64; `--v6-share`) as ExaBGP 5.0.15 prints them (spaced
JSON), session up first and End-of-RIBs last; then, after End-of-RIB, churn: 10 % of each
IPv4 table re-announced with new paths and half as many withdrawn.

Three loops run over the same lines, interleaved `--repeat` times, best CPU time kept:
- ``orjson``: ``orjson.loads(line)`` only (the floor of any JSON consumer);
- ``parse``: `ExaBGPJsonParser.parse` (events with interned attributes);
- ``pipeline``: `Pipeline.feed_line` with a `DetectionEngine` consumer, as `bgpwatch run` wires
  them: parse, sessions, RIB (before/after changes), topology, detectors, alert book.
Everything runs in one thread, so every rate is a one-core rate.  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench import workload
from bgpwatch.ingest.exabgp_json import ExaBGPJsonParser
from bgpwatch.pipeline import Pipeline
from bgpwatch.rib import AttributePool

RATE_TARGET = 150_000  # prefix-events/s on one core
RATIO_TARGET = 3.0  # pipeline time / orjson time


def _timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def _orjson(lines: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        loads = orjson.loads
        for line in lines:
            loads(line)

    return run


def _parse(lines: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        parse = ExaBGPJsonParser(AttributePool()).parse
        for line in lines:
            parse(line)

    return run


def build_pipeline(config: Any) -> Pipeline:
    """Return a pipeline wired as the daemon wires it (a DetectionEngine consumer)."""
    from bgpwatch.detect.engine import DetectionEngine

    pipeline = Pipeline(config)
    transitions: list[dict[str, Any]] = []
    DetectionEngine.for_pipeline(pipeline, transitions.append)  # wired as the daemon wires it
    pipeline.transitions = transitions  # type: ignore[attr-defined]  # read by the report
    return pipeline


def _pipeline(config: Any, load: list[bytes], churn: list[bytes], times: dict[str, float]) -> Callable:
    def run() -> Pipeline:
        pipeline = build_pipeline(config)
        feed = pipeline.feed_line
        cpu = time.process_time()
        for line in load:
            feed(line, "relay", 0)
        times["load"] = time.process_time() - cpu
        cpu = time.process_time()
        for line in churn:
            feed(line, "relay", 0)
        times["churn"] = time.process_time() - cpu
        return pipeline

    return run


def _variant(pipeline: Pipeline, lines: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        feed = pipeline.feed_line
        for line in lines:
            feed(line, "relay", 0)

    return run


def breakdown_configs(work: workload.Workload) -> dict[str, Any]:
    """Return the configs of the breakdown: without the route-level detectors (origins module)."""
    from bgpwatch.config import load_config_text
    from bgpwatch.detect.base import REGISTRY, _ensure_loaded

    _ensure_loaded()
    try:
        from bgpwatch.detect.origins import RouteDetector
    except ImportError:
        return {}
    names = sorted(name for name, cls in REGISTRY.items() if issubclass(cls, RouteDetector))
    off = ", ".join(f"{name}: {{enabled: false}}" for name in names)
    return {"no_route_detectors": load_config_text(work.config_text(extra=f"detectors: {{{off}}}\n"))}


def _phase(lines: list[bytes], best: dict[str, float]) -> dict[str, Any]:
    events = workload.prefix_events(lines)
    out: dict[str, Any] = {"lines": len(lines), "prefix_events": events}
    for name in ("orjson", "parse", "pipeline"):
        seconds = best[name]
        out[f"{name}_cpu_s"] = round(seconds, 4)
        out[f"{name}_rate"] = round(events / seconds) if seconds > 0 else None
    out["parse_ratio"] = round(best["parse"] / best["orjson"], 2) if best["orjson"] > 0 else None
    out["pipeline_ratio"] = round(best["pipeline"] / best["orjson"], 2) if best["orjson"] > 0 else None
    for name in ("no_detection", "no_route_detectors"):
        if name in best:
            out[f"{name}_rate"] = round(events / best[name]) if best[name] > 0 else None
            out[f"{name}_ratio"] = round(best[name] / best["orjson"], 2) if best["orjson"] > 0 else None
    return out


def run(
    routes: int,
    packing: str,
    peers: int = 4,
    repeat: int = 3,
    v6_share: float = 0.2,
    breakdown: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; return the report (`breakdown`: also the load without parts of detection)."""
    per_peer = max(1, routes // peers)
    v4, v6 = workload.split(per_peer, v6_share)
    work = workload.Workload(peers, v4, v6, packing)
    config = work.config()
    load: list[bytes] = []
    churn: list[bytes] = []
    for index in range(peers):
        load += work.table_lines(index)
    for index in range(peers):
        churn += work.churn_lines(index)
    best: dict[str, dict[str, float]] = {"load": {}, "churn": {}}
    variants = breakdown_configs(work) if breakdown else {}
    last: Pipeline | None = None
    for _ in range(repeat):
        for phase, lines in (("load", load), ("churn", churn)):
            for name, loop in (("orjson", _orjson(lines)), ("parse", _parse(lines))):
                cpu, _wall, _ = _timed(loop)
                best[phase][name] = min(best[phase].get(name, cpu), cpu)
        if breakdown:
            # The table load through less of the pipeline: parse + sessions + RIB only, then
            # everything but the route-level detectors.
            candidates = [("no_detection", Pipeline(config))]
            candidates += [(name, build_pipeline(cfg)) for name, cfg in variants.items()]
            for name, pipeline in candidates:
                cpu, _wall, _ = _timed(_variant(pipeline, load))
                best["load"][name] = min(best["load"].get(name, cpu), cpu)
            del candidates, pipeline
        last = None
        gc.collect()
        times: dict[str, float] = {}
        _cpu, _wall, last = _timed(_pipeline(config, load, churn, times))
        for phase in ("load", "churn"):
            best[phase]["pipeline"] = min(best[phase].get("pipeline", times[phase]), times[phase])
    assert last is not None
    report: dict[str, Any] = {
        "bench": "pipeline",
        "machine": workload.machine(),
        "threads": 1,
        "timing": f"process CPU seconds, best of {repeat} interleaved runs",
        "packing": packing,
        "peers": peers,
        "routes": work.routes * peers,
        "load": _phase(load, best["load"]),
        "after_eor": _phase(churn, best["churn"]),
        "rib_routes": sum(len(adj) for adj in last.rib.peers.values()),
        "attribute_sets": len(last.pool),
        "alerts": sorted({t.get("kind", "?") for t in last.transitions}),  # type: ignore[attr-defined]
    }
    load_report = report["load"]
    report["load"]["prefixes_per_line"] = round(
        load_report["prefix_events"] / max(1, load_report["lines"]), 2
    )
    report["targets"] = {
        "rate": RATE_TARGET,
        "ratio": RATIO_TARGET,
        "rate_met": (load_report["pipeline_rate"] or 0) >= RATE_TARGET,
        "ratio_met": (load_report["pipeline_ratio"] or 99) <= RATIO_TARGET,
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=400_000, help="prefixes over all peers (default 400k)")
    parser.add_argument("--packing", choices=("real", "single", "unique"), default="real")
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--v6-share", type=float, default=0.2)
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the load without detection, and without route detectors",
    )
    args = parser.parse_args(argv)
    report = run(args.routes, args.packing, args.peers, args.repeat, args.v6_share, args.breakdown)
    sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
