"""Mutation fuzzing of the ingest edge: real ExaBGP lines, corrupted, through `Pipeline.feed_line`.

    python -m bench.fuzz_ingest [--lines 100000] [--seed 12] [--write-corpus DIR]

The lines are real (`real_lines`): the Paris lab recording shipped with bgpwatch, the FRR lab
scenarios recording, RIS UPDATEs decoded by ExaBGP 4.2.21 and the exabgp_exporter 4.0.1 logs
(fixtures/SOURCES.md), relay control lines included.  Each is first restamped on one clock (a
campaign time that moves 1 ms per line), so that a rejection for the time says the mutation made
it, not the line's age; then one to three mutations (`mutate`) change it, either in its JSON (a
value replaced by a hostile one: 1e308, -1e308, 2**64-1, NaN as text, a list nested 1,000 deep, a
10-days-ahead time, a 5,000-digit string...; a key dropped; a type swapped; a list emptied) or in its
bytes (a byte flipped, a span cut, duplicated or filled with control characters, the line
truncated).  Every mutated line goes through `Pipeline.feed_line` of a pipeline with a full
`DetectionEngine` (the Paris configuration: sites, services, every detector), as `bgpwatch run`
wires them; one real line in ten goes through unmutated, so sessions come up and the detectors
have state to trip over.

Printed (JSON): lines tried, exceptions that escaped ``feed_line`` (must be 0, by type, with one
sample each), lines applied and rejected by reason (``lines == applied + rejected`` is checked),
contained internal errors, detector errors, and whether the daemon's views (status, topology,
alerts, metrics) still answer afterwards.  Exit status 1 when anything escaped or a count is off.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bgpwatch.ingest.exabgp_json import brief

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "bgpwatch" / "data" / "paris.jsonl.gz"
PARIS_CONFIG = ROOT / "bgpwatch" / "data" / "paris.yaml"
SOURCES = (
    PARIS,
    ROOT / "fixtures" / "lab" / "frr-scenarios.jsonl.gz",
    ROOT
    / "fixtures"
    / "exabgp"
    / "derived-4.2.21"
    / "exabgp-4.2.21-decoded.rrc01.updates.20100827.0842.jsonl.gz",
    ROOT
    / "fixtures"
    / "exabgp"
    / "derived-4.2.21"
    / "exabgp-4.2.21-decoded.rrc23.updates.20220421.0200.jsonl.gz",
    ROOT / "fixtures" / "exabgp" / "exabgp_exporter-4.0.1" / "exabgp.log",
    ROOT / "fixtures" / "exabgp" / "exabgp_exporter-4.0.1" / "exabgp.log.1",
    ROOT / "fixtures" / "exabgp" / "lab-shapes-5.0.15.jsonl",
)
RIS_LIVE = ROOT / "fixtures" / "rislive" / "ris-live-stream.json"
CONTROL = "bgpwatch-relay"
DAY = 86400.0


def real_lines(sources: tuple[Path, ...] = SOURCES) -> list[bytes]:
    """Return the real JSON lines of the fixture files (blank and non-JSON-object lines left out)."""
    lines: list[bytes] = []
    for path in sources:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        for line in data.splitlines():
            line = line.strip()
            if line.startswith(b"{"):
                lines.append(line)
    return lines


def line_time(doc: dict[str, Any]) -> float | None:
    """Return the time a decoded line carries (ExaBGP's or a control line's), None if it has none."""
    control = doc.get(CONTROL)
    if type(control) is dict:
        body = control.get("collector") if type(control.get("collector")) is dict else control
        at = body.get("time")
    else:
        at = doc.get("time")
    return float(at) if type(at) in (int, float) else None


def restamp(line: bytes, at: float) -> bytes:
    """Return a real line with its time set to ``at`` (the line unchanged if it is not JSON or has none)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:  # ExaBGP 4.x raw control characters: the pipeline repairs those
        return _TIME.sub(b'"time": %r' % at, line, count=1)
    if type(doc) is not dict:
        return line
    control = doc.get(CONTROL)
    if type(control) is dict:
        body = control.get("collector") if type(control.get("collector")) is dict else control
        if "time" in body:
            body["time"] = at
    elif "time" in doc:
        doc["time"] = at
    return orjson.dumps(doc)


def deep_list(depth: int) -> str:
    """Return the stand-in of a list nested ``depth`` deep (written out by `_dumps`: no JSON writer recurses that far)."""
    return f"@@deep:{depth}@@"


_TIME = re.compile(rb'"time"\s*:\s*[-+0-9.eE]+')
_DEEP = re.compile(rb'"@@deep:(\d+)@@"')


def _dumps(doc: Any) -> bytes:
    """Return ``doc`` as JSON, its deep-list stand-ins written out as the nested lists they stand for."""
    try:
        text = orjson.dumps(doc)
    except TypeError:  # an integer past 64 bits, or a line already nested past orjson's 255 levels
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 5000))
        try:
            text = json.dumps(doc, separators=(",", ":")).encode()
        finally:
            sys.setrecursionlimit(limit)
    return _DEEP.sub(lambda m: b"[" * int(m[1]) + b"65001" + b"]" * int(m[1]), text)


def hostile_values(at: float) -> list[Any]:
    """Return the values a mutation puts in place of a real one (``at``: the line's own time)."""
    return [
        1e308,
        -1e308,
        2**64 - 1,
        2**63,
        -1,
        0,
        0.5,
        at + 10 * DAY,
        at - 10 * DAY,
        at + 1e9,
        "nan",
        "inf",
        "-Infinity",
        "",
        "x" * 5000,
        "9" * 5000,
        "\u00b2",
        "\x00\x01",
        "192.0.2.300",
        "::ffff:999.1.1.1",
        "0.0.0.0/33",
        None,
        True,
        False,
        [],
        {},
        [[]],
        {"": {}},
        deep_list(1000),
        deep_list(200),
        [1] * 2000,
        {"0": {"element": "as-sequence", "value": deep_list(1000)}},
        10**30,
        1e21,
    ]


def _containers(doc: Any) -> list[tuple[Any, Any]]:
    """Return (container, key) for every value in a decoded line, iteratively."""
    found: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack and len(found) < 5000:
        node = stack.pop()
        if type(node) is dict:
            for key, value in node.items():
                found.append((node, key))
                stack.append(value)
        elif type(node) is list:
            for index, value in enumerate(node[:50]):
                found.append((node, index))
                stack.append(value)
    return found


def mutate_json(doc: dict[str, Any], rng: random.Random) -> bytes:
    """Return a line with one JSON-level mutation of ``doc`` (which it changes)."""
    at = line_time(doc) or time.time()
    places = _containers(doc)
    if not places:
        return _dumps(rng.choice(hostile_values(at)))
    container, key = rng.choice(places)
    kind = rng.random()
    # Times are what the probe broke most: a third of the JSON mutations aim at one.
    times = [(c, k) for c, k in places if k in ("time", "timestamp", "lost")]
    if times and kind < 0.33:
        container, key = rng.choice(times)
        container[key] = rng.choice(hostile_values(at)[:14] + [1e21, 2**41, 2**40, float(at)])
    elif kind < 0.75:
        container[key] = rng.choice(hostile_values(at))
    elif kind < 0.85 and type(container) is dict:
        del container[key]
    elif kind < 0.9:
        value = container[key]
        container[key] = brief(value, 200) if type(value) is not str else [value]  # str() would recurse
    elif type(container[key]) in (list, dict):
        container[key] = type(container[key])()  # emptied: an UPDATE with empty announce/withdraw
    else:
        container[key] = [container[key]]
    return _dumps(doc)


def mutate_bytes(line: bytes, rng: random.Random) -> bytes:
    """Return a line with one byte-level mutation."""
    if not line:
        return b"\xff"
    data = bytearray(line)
    pos = rng.randrange(len(data))
    kind = rng.randrange(6)
    if kind == 0:
        data[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del data[pos : pos + rng.randint(1, 40)]
    elif kind == 2:
        span = data[pos : pos + rng.randint(1, 40)]
        data[pos:pos] = span * rng.randint(1, 50)
    elif kind == 3:
        data[pos:pos] = bytes(rng.randrange(32) for _ in range(rng.randint(1, 8)))
    elif kind == 4:
        del data[pos:]
    else:
        data[pos:pos] = rng.choice([b"\xff\xfe", b"\\u0000", b'"', b"[", b"{", b"]]]]", b"1e999", b"NaN"])
    return bytes(data)


def mutate(line: bytes, rng: random.Random) -> bytes:
    """Return ``line`` with one to three mutations (JSON-level mostly, byte-level sometimes)."""
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if rng.random() < 0.75:
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                doc = None
            if type(doc) is dict:
                line = mutate_json(doc, rng)
                continue
        line = mutate_bytes(line, rng)
    return line


def build_pipeline(transitions: list[dict[str, Any]] | None = None) -> Any:
    """Return a `Pipeline` with a full `DetectionEngine` on the Paris configuration, as `bgpwatch run` wires them."""
    from bgpwatch.config import load_config
    from bgpwatch.detect.engine import DetectionEngine
    from bgpwatch.pipeline import Pipeline

    config = load_config(PARIS_CONFIG)
    pipeline = Pipeline(config)
    out = transitions if transitions is not None else []
    DetectionEngine.for_pipeline(pipeline, out.append)
    return pipeline


def views_answer(pipeline: Any) -> bool:
    """Tell whether what the API serves (status, topology, alerts, incidents, metrics) can be computed."""
    from prometheus_client import generate_latest

    from bgpwatch.api.metrics import DaemonCollector, build_registry

    engine = pipeline.consumer
    json.dumps(pipeline.status(time.time()), default=str)
    json.dumps(engine.snapshot(), default=str)
    json.dumps(engine.active_alerts(True), default=str)
    json.dumps(engine.incidents(), default=str)
    json.dumps(engine.history(), default=str)
    engine.to_dot()
    registry = build_registry(DaemonCollector(pipeline))
    engine.register_metrics(registry)
    generate_latest(registry)
    return True


def campaign(count: int, seed: int) -> dict[str, Any]:
    """Feed ``count`` mutated real lines (and one real line in ten) through a full pipeline; return the figures."""
    rng = random.Random(seed)
    sources = real_lines()
    pipeline = build_pipeline()
    escaped: Counter[str] = Counter()
    samples: dict[str, str] = {}
    clock = time.time() - 60.0  # live: ExaBGP stamps lines with the same wall clock bgpwatch reads
    started = time.perf_counter()
    mutated = real_rejected = 0
    for index in range(count + count // 10):
        clock += 0.001
        line = restamp(sources[index % len(sources)], clock)
        real = index % 11 == 10
        if not real:
            line = mutate(line, rng)
            mutated += 1
        rejected_before = sum(pipeline.errors.values())
        try:
            pipeline.feed_line(line, "fuzz")
            if real and sum(pipeline.errors.values()) != rejected_before:
                real_rejected += 1
        except BaseException as exc:  # noqa: BLE001 - the point is to see anything at all escape
            name = type(exc).__name__
            escaped[name] += 1
            samples.setdefault(name, "".join(traceback.format_exception(exc))[-2000:])
    seconds = time.perf_counter() - started
    rejected = sum(pipeline.errors.values())
    engine = pipeline.consumer
    try:
        views = views_answer(pipeline)
    except Exception as exc:  # noqa: BLE001 - reported, it fails the campaign
        views = False
        samples["views"] = "".join(traceback.format_exception(exc))[-2000:]
    return {
        "seed": seed,
        "real_lines": len(sources),
        "lines_tried": pipeline.lines,
        "mutated_lines": mutated,
        "unmutated_lines_rejected": real_rejected,
        "exceptions_escaped": sum(escaped.values()),
        "escaped_by_type": dict(escaped),
        "escaped_samples": samples,
        "applied": pipeline.applied,
        "rejected": rejected,
        "rejected_by_reason": dict(sorted(pipeline.errors.items())),
        "counts_add_up": pipeline.lines == pipeline.applied + rejected,
        "internal_errors": pipeline.errors.get("internal_error", 0),
        "detector_errors": dict(engine.detector_errors),
        "events": pipeline.events,
        "transitions": len(engine.history()),
        "views_answer": views,
        "seconds": round(seconds, 1),
    }


def rislive_campaign(count: int, seed: int) -> dict[str, Any]:
    """Feed ``count`` mutated real RIS Live frames through `RisLiveParser` and a full pipeline (as a replay); return the figures."""
    from bgpwatch.ingest.exabgp_json import IngestError
    from bgpwatch.ingest.rislive import RisLiveParser

    rng = random.Random(seed)
    frames = real_lines((RIS_LIVE,))
    pipeline = build_pipeline()
    parser = RisLiveParser(pipeline.pool)
    escaped: Counter[str] = Counter()
    samples: dict[str, str] = {}
    clock = 1553627987.0  # the frames' own epoch (2019-03-26)
    applied = 0
    for index in range(count):
        clock += 0.001
        line = frames[index % len(frames)]
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:  # the fixture's last frame is cut on purpose
            doc = None
        if type(doc) is dict and type(doc.get("data")) is dict and "timestamp" in doc["data"]:
            doc["data"]["timestamp"] = clock
            line = orjson.dumps(doc)
        line = mutate(line, rng)
        try:
            try:
                events = parser.parse(line)
            except IngestError:
                continue
            applied += 1
            for event in events:
                pipeline.feed_event(event)
        except BaseException as exc:  # noqa: BLE001 - the point is to see anything at all escape
            name = type(exc).__name__
            escaped[name] += 1
            samples.setdefault(name, "".join(traceback.format_exception(exc))[-2000:])
    rejected = sum(parser.errors.values())
    return {
        "real_frames": len(frames),
        "frames_tried": parser.lines,
        "exceptions_escaped": sum(escaped.values()),
        "escaped_by_type": dict(escaped),
        "escaped_samples": samples,
        "parsed": applied,
        "rejected_by_parser": dict(sorted(parser.errors.items())),
        "counts_add_up": parser.lines == applied + rejected,
        "events_rejected_by_stream_clock": dict(pipeline.errors),
        "events_applied": pipeline.events,
        "ignored": dict(parser.ignored),
    }


def write_corpus(directory: Path, seed: int, per_case: int = 8) -> int:
    """Write the regression corpus (fixtures/malformed/exabgp/): hostile values in real lines; return its size."""
    rng = random.Random(seed)
    sources = real_lines((PARIS, SOURCES[1], SOURCES[2]))
    by_type: dict[str, list[bytes]] = {}
    for line in sources:
        doc = orjson.loads(line)
        kind = "control" if CONTROL in doc else str(doc.get("type"))
        by_type.setdefault(kind, []).append(line)
    base = 1795699700.0  # the Paris recording's epoch: the test restamps from there
    out: list[bytes] = []
    for kind in sorted(by_type):
        for _case in range(per_case * 8):
            line = restamp(rng.choice(by_type[kind]), base)
            out.append(mutate(line, rng))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mutated.jsonl").write_bytes(b"\n".join(out) + b"\n")
    return len(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="mutated lines to try")
    parser.add_argument("--rislive", type=int, default=10_000, help="mutated RIS Live frames to try")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--write-corpus", type=Path, help="write the regression corpus into DIR and exit")
    args = parser.parse_args(argv)
    if args.write_corpus is not None:
        print(json.dumps({"corpus_lines": write_corpus(args.write_corpus, args.seed)}))
        return 0
    import logging

    logging.disable(logging.CRITICAL)  # ~100k rejections: the samples are not the point here
    result = campaign(args.lines, args.seed)
    ris = rislive_campaign(args.rislive, args.seed)
    result["rislive"] = ris
    print(json.dumps(result, indent=2))
    ok = result["exceptions_escaped"] == 0 and result["counts_add_up"] and result["views_answer"]
    return 0 if ok and ris["exceptions_escaped"] == 0 and ris["counts_add_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
