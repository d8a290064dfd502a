"""Edge validation (issue 12, item 1): hostile values in real lines are rejected with a reason, counted,
move no clock, and never raise out of `Pipeline.feed_line`; a detector that raises is contained.

The lines are real: the Paris recording (bgpwatch/data/paris.jsonl.gz) with one field changed, and
the malformed corpus fixtures/malformed/exabgp/ (real lines mutated by bench/fuzz_ingest.py).
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz_ingest import build_pipeline, mutate, real_lines, restamp
from bgpwatch.alerts.lifecycle import iso_ms, iso_s
from bgpwatch.config import load_config
from bgpwatch.detect.engine import DetectionEngine
from bgpwatch.events import Announce
from bgpwatch.ingest.control import parse_control
from bgpwatch.ingest.exabgp_json import ExaBGPJsonParser, IngestError, StreamClock, brief
from bgpwatch.ingest.replay import replay_files
from bgpwatch.ingest.rislive import RisLiveParser
from bgpwatch.pipeline import Pipeline
from bgpwatch.rib import AttributePool

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "bgpwatch" / "data" / "paris.jsonl.gz"
PARIS_CONFIG = ROOT / "bgpwatch" / "data" / "paris.yaml"
CORPUS = ROOT / "fixtures" / "malformed" / "exabgp"
RIS = ROOT / "fixtures" / "rislive" / "ris-live-stream.json"
CUT = 40  # where a poisoned line goes: after the sessions are up, in the middle of the table loads
DAY = 86400.0
OUT = "time_out_of_range"


def paris_lines() -> list[bytes]:
    return gzip.decompress(PARIS.read_bytes()).splitlines()


LINES = paris_lines()
# The last real UPDATE with attributes before the cut (par2's table load).
UPDATE = next(
    doc
    for doc in map(orjson.loads, reversed(LINES[:CUT]))
    if "attribute" in doc.get("neighbor", {}).get("message", {}).get("update", {})
)
CONTROL = orjson.loads(LINES[0])  # a real collector control line
assert UPDATE["type"] == "update" and "bgpwatch-relay" in CONTROL


def with_time(doc: dict[str, Any], at: Any) -> bytes:
    line = orjson.loads(orjson.dumps(doc))
    if "bgpwatch-relay" in line:
        line["bgpwatch-relay"]["collector"]["time"] = at
    else:
        line["time"] = at
    return orjson.dumps(line)


def lost_line(lost: Any, at: Any = None) -> bytes:
    body: dict[str, Any] = {"lost": lost, "worker": 0}
    if at is not None:
        body["time"] = at
    return orjson.dumps({"bgpwatch-relay": body})


def nested_as_path(depth: int) -> bytes:
    """Return the real UPDATE with its AS path's value nested ``depth`` deep (written by hand: no encoder recurses so far)."""
    line = orjson.loads(orjson.dumps(UPDATE))
    line["neighbor"]["message"]["update"]["attribute"]["as-path"] = {
        "0": {"element": "as-sequence", "value": "@@"}
    }
    return orjson.dumps(line).replace(b'"@@"', b"[" * depth + b"65002" + b"]" * depth)


T = float(UPDATE["time"])
# The first bullet, each in a real line: (name, line, reason it is rejected with).
CASES = [
    ("time 1e308", with_time(UPDATE, 1e308), OUT),
    ("time -1e308", with_time(UPDATE, -1e308), OUT),
    ("time 2**64-1", with_time(UPDATE, 2**64 - 1), OUT),
    ("time 10 days ahead", with_time(UPDATE, T + 10 * DAY), OUT),
    ("time 10 days behind", with_time(UPDATE, T - 10 * DAY), OUT),
    ("control time nan (text)", with_time(CONTROL, "nan"), "bad_relay_control"),
    ("control time inf (text)", with_time(CONTROL, "inf"), "bad_relay_control"),
    (
        "control time NaN (literal)",
        orjson.dumps(CONTROL).replace(b"1795699703.7693138", b"NaN"),
        "bad_relay_control",
    ),
    (
        "control time 1e999",
        orjson.dumps(CONTROL).replace(b"1795699703.7693138", b"1e999"),
        "bad_relay_control",
    ),
    ("control time 1e308", with_time(CONTROL, 1e308), OUT),
    ("control time 10 days ahead", with_time(CONTROL, T + 10 * DAY), OUT),
    ("lost 1e21", lost_line(1e21, T), "bad_relay_control"),
    ("lost 2**64-1", lost_line(2**64 - 1, T), "bad_relay_control"),
    ("lost 2**40+1", lost_line(2**40 + 1, T), "bad_relay_control"),
    ("lost -5", lost_line(-5, T), "bad_relay_control"),
    ("lost true", lost_line(True, T), "bad_relay_control"),
    ("lost with time inf", lost_line(5, "inf"), "bad_relay_control"),
    ("lost with time 1e308", lost_line(5, 1e308), OUT),
    ("as-path nested 1000 deep", nested_as_path(1000), "bad_attribute"),
]


def run(lines: list[bytes]) -> tuple[Pipeline, DetectionEngine, list[dict[str, Any]]]:
    """Feed lines through a pipeline and a detection engine as `bgpwatch run` wires them; settle 10 s."""
    config = load_config(PARIS_CONFIG)
    out: list[dict[str, Any]] = []
    pipeline = Pipeline(config)
    engine = DetectionEngine(config, pipeline.rib, out.append, sessions=pipeline.sessions)
    pipeline.consumer = engine
    for line in lines:
        pipeline.feed_line(line, "test")
    assert pipeline.last_event_at is not None
    engine.finish(pipeline.last_event_at, horizon=10.0)
    return pipeline, engine, out


def replayed(tmp_path: Path, lines: list[bytes]) -> tuple[Pipeline, list[dict[str, Any]]]:
    """Replay lines as `bgpwatch replay` does (recording file -> events -> `Pipeline.feed_event`)."""
    path = tmp_path / "recording.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    config = load_config(PARIS_CONFIG)
    out: list[dict[str, Any]] = []
    pipeline = Pipeline(config)
    engine = DetectionEngine(config, pipeline.rib, out.append, sessions=pipeline.sessions)
    pipeline.consumer = engine
    last = None
    for event in replay_files([path], pipeline.pool):
        pipeline.feed_event(event)
        last = event.at
    assert last is not None
    engine.finish(last, horizon=10.0)
    return pipeline, out


def shape(transitions: list[dict[str, Any]]) -> list[tuple]:
    return [
        (t["kind"], t["state"], sorted(t["labels"].items()), t["at"], t.get("severity")) for t in transitions
    ]


@pytest.fixture(scope="module")
def baseline() -> list[tuple]:
    _, _, out = run(LINES)
    assert len(out) >= 10  # the incident: site_down par2, the split, the recovery...
    return shape(out)


@pytest.mark.parametrize(("name", "line", "reason"), CASES, ids=[case[0] for case in CASES])
def test_case_is_rejected_with_its_reason_and_moves_no_clock(name, line, reason, baseline):
    config = load_config(PARIS_CONFIG)
    out: list[dict[str, Any]] = []
    pipeline = Pipeline(config)
    engine = DetectionEngine(config, pipeline.rib, out.append, sessions=pipeline.sessions)
    pipeline.consumer = engine
    for good in LINES[:CUT]:
        pipeline.feed_line(good, "test")
    before = (pipeline.clock.latest, engine.now, pipeline.last_event_at, pipeline.events, pipeline.lost_lines)
    pipeline.feed_line(line, "test")  # never raises
    assert pipeline.errors == {reason: 1}, name
    assert (
        pipeline.clock.latest,
        engine.now,
        pipeline.last_event_at,
        pipeline.events,
        pipeline.lost_lines,
    ) == before
    for good in LINES[CUT:]:
        pipeline.feed_line(good, "test")
    engine.finish(pipeline.last_event_at, horizon=10.0)
    assert pipeline.errors == {reason: 1}
    assert pipeline.lines == pipeline.applied + 1
    assert shape(out) == baseline, f"{name}: the incident's transitions changed"


@pytest.mark.parametrize("name", ["time 1e308", "time 10 days ahead", "control time 10 days ahead"])
def test_replay_with_a_poisoned_line_gives_the_same_transitions(tmp_path, name, baseline):
    line = dict((case[0], case[1]) for case in CASES)[name]
    pipeline, clean = replayed(tmp_path, LINES)
    poisoned_pipeline, poisoned = replayed(tmp_path, [*LINES[:CUT], line, *LINES[CUT:]])
    assert shape(poisoned) == shape(clean) == baseline
    # 1e308 stops at the parser (replay stats); a time 10 days ahead at the stream clock (the pipeline's).
    assert poisoned_pipeline.errors == ({} if name == "time 1e308" else {OUT: 1})
    assert pipeline.errors == {}


def test_a_gap_in_a_recording_is_a_jump_not_a_rejection():
    """A stray time is dropped, but a stream that really jumped (the next file, a quiet hour) goes on."""
    config = load_config(PARIS_CONFIG)
    pipeline = Pipeline(config)
    engine = DetectionEngine(config, pipeline.rib, lambda _: None, sessions=pipeline.sessions)
    pipeline.consumer = engine
    pool = pipeline.pool
    attrs = pool.intern("igp", (65002,), (), "192.0.2.6", None, None, (), ())

    def announce(at: float, key: int) -> Announce:
        return Announce(at, "192.0.2.6", 4, (key,), attrs)

    pipeline.feed_event(announce(T, 1))
    pipeline.feed_event(announce(T + 10 * DAY, 2))  # a stray time: held, counted
    assert pipeline.errors == {OUT: 1} and pipeline.clock.latest == T
    pipeline.feed_event(announce(T + 1, 3))  # back on time: the stray one stays rejected
    assert pipeline.errors == {OUT: 1} and pipeline.clock.latest == T + 1
    assert engine.now == T + 1
    # Two stray lines in a row (close to each other): still not a jump.
    pipeline.feed_event(announce(T + 10 * DAY, 4))
    pipeline.feed_event(announce(T + 10 * DAY, 5))  # the same line's second event
    pipeline.feed_event(announce(T + 10 * DAY + 1, 6))
    assert pipeline.errors == {OUT: 4} and pipeline.clock.latest == T + 1
    pipeline.feed_event(announce(T + 2, 7))
    assert pipeline.errors == {OUT: 4} and pipeline.events == 3
    # A real gap of an hour: the lines after it are held; the third line (another time) confirms it.
    pipeline.feed_event(announce(T + 3600, 8))
    pipeline.feed_event(announce(T + 3600, 9))
    pipeline.feed_event(announce(T + 3600.5, 10))
    assert pipeline.errors == {OUT: 7} and pipeline.events == 3
    pipeline.feed_event(announce(T + 3601, 11))
    assert pipeline.errors == {OUT: 4}  # the held events were applied after all
    assert pipeline.clock.latest == T + 3601 and engine.now == T + 3601
    assert pipeline.events == 7  # 1, 3, 7, 8, 9, 10, 11
    # Far behind the stream: rejected at once.
    pipeline.feed_event(announce(T, 12))
    assert pipeline.errors == {OUT: 5} and pipeline.events == 7


def test_live_lines_are_judged_against_the_wall_clock(monkeypatch):
    """Live (feed_line), a quiet hour is no jump: the reference is the wall clock, not the last line."""
    pipeline = build_pipeline()
    now = [T]
    monkeypatch.setattr("bgpwatch.pipeline.time.time", lambda: now[0])
    for line in LINES[:CUT]:
        pipeline.feed_line(line, "test")
    now[0] = T + 3600
    pipeline.feed_line(with_time(UPDATE, T + 3600), "test")  # after a quiet hour: fine
    assert pipeline.errors == {}
    pipeline.feed_line(with_time(UPDATE, now[0] + 301), "test")  # from the future
    assert pipeline.errors == {OUT: 1}
    pipeline.feed_line(with_time(UPDATE, now[0] - 301), "test")  # behind the stream
    assert pipeline.errors == {OUT: 2}


def test_max_clock_skew_comes_from_the_config(tmp_path, monkeypatch):
    text = PARIS_CONFIG.read_text().replace("collector:\n", "collector:\n  max_clock_skew: 30\n", 1)
    path = tmp_path / "bgpwatch.yaml"
    path.write_text(text)
    config = load_config(path)
    assert config.collector.max_clock_skew == 30
    pipeline = Pipeline(config)
    assert pipeline.clock.skew == 30
    monkeypatch.setattr("bgpwatch.pipeline.time.time", lambda: T)  # live: the wall clock is the reference
    pipeline.feed_line(with_time(UPDATE, T), "test")
    pipeline.feed_line(with_time(UPDATE, T + 31), "test")
    pipeline.feed_line(with_time(UPDATE, T + 29), "test")
    assert pipeline.errors == {OUT: 1} and pipeline.applied == 2


def test_stream_clock_first_time_sets_it():
    clock = StreamClock(300)
    assert clock.judge(1000.0) == StreamClock.OK and clock.latest == 1000.0
    assert clock.judge(1000.0 + 301) == StreamClock.AHEAD
    assert clock.judge(1000.0 - 301) == StreamClock.BEHIND
    assert clock.latest == 1000.0
    clock.advance(5000.0)  # a wall-clock tick: the reference moves on, the stream does not go back
    assert clock.judge(5100.0) == StreamClock.OK


def test_lost_is_bounded_and_the_total_too():
    pipeline = Pipeline(load_config(PARIS_CONFIG))
    pipeline.feed_line(lost_line(2**40, T), "relay")
    pipeline.feed_line(lost_line(1e21, T), "relay")
    assert pipeline.lost_lines == 2**40
    assert pipeline.errors == {"bad_relay_control": 1}
    [gap] = parse_control(lost_line(7))  # no time: the receiving clock's
    assert gap.lost == 7


def test_error_details_never_recurse():
    parser = ExaBGPJsonParser(AttributePool())
    with pytest.raises(IngestError) as caught:
        parser.parse(nested_as_path(1000))
    assert caught.value.reason == "bad_attribute"
    assert len(caught.value.detail) < 400
    deep: Any = [1]
    for _ in range(100_000):
        deep = [deep]
    assert brief(deep).startswith("[[[[") and len(brief(deep)) <= 60
    assert brief({"a": "x" * 10_000, "b": 10**400}).endswith("...")
    assert brief(10**400) == "<integer of 1329 bits>"
    assert brief([1, "two", None, {"k": 3.5}]) == "[1, 'two', None, {'k': 3.5}]"


def test_rislive_time_is_checked():
    frame = orjson.loads(RIS.read_text().splitlines()[0])
    parser = RisLiveParser(AttributePool())
    assert parser.parse(orjson.dumps(frame))
    for bad, reason in ((1e308, OUT), (-1.0, OUT), (2**64 - 1, OUT), ("nan", "bad_field")):
        frame["data"]["timestamp"] = bad
        with pytest.raises(IngestError) as caught:
            parser.parse(orjson.dumps(frame))
        assert caught.value.reason == reason


def test_empty_announce_and_withdraw_are_counted():
    parser = ExaBGPJsonParser(AttributePool())
    for update in ({"announce": {}}, {"withdraw": {}}, {"announce": {"ipv4 unicast": {}}}, {}):
        line = orjson.loads(orjson.dumps(UPDATE))
        line["neighbor"]["message"]["update"] = update
        before = parser.ignored["empty_update"]
        assert parser.parse(orjson.dumps(line)) == []
        assert parser.ignored["empty_update"] == before + 1, update


def test_absurd_times_format_without_raising():
    for value in (1e308, -1e308, float("nan"), float("inf"), float(2**64 - 1)):
        assert iso_ms(value).endswith("Z") and iso_s(value).endswith("Z")
    assert iso_ms(1795699703.7693138) == "2026-11-26T13:28:23.769Z"


def test_a_detector_that_raises_is_contained(caplog, baseline):
    """One detector broken: counted, logged once (with the traceback), its calls skipped; the rest go on."""
    from bgpwatch.detect.churn import UpdateStormDetector

    config = load_config(PARIS_CONFIG)
    out = []
    pipeline = Pipeline(config)
    engine = DetectionEngine(config, pipeline.rib, out.append, sessions=pipeline.sessions)
    pipeline.consumer = engine
    broken = [d for d in engine.detectors if isinstance(d, UpdateStormDetector)]
    assert broken, "the update_storm detector is on by default"

    def boom(*args: Any) -> None:
        raise ZeroDivisionError("a bug in one detector")

    broken[0].on_event = boom  # type: ignore[method-assign]
    broken[0].evaluate = boom  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="bgpwatch.detect"):
        for line in LINES:
            pipeline.feed_line(line, "test")
        engine.finish(pipeline.last_event_at, horizon=10.0)
    name = broken[0].name
    assert engine.detector_errors[name] > 10
    assert set(engine.detector_errors) == {name}
    logged = [r for r in caplog.records if "detector" in r.getMessage() and r.exc_info]
    assert len(logged) == 1  # once per minute per detector, with the traceback
    assert "internal_error" not in pipeline.errors
    assert shape(out) == baseline  # the other detectors saw every event
    from prometheus_client import generate_latest

    from bgpwatch.api.metrics import DaemonCollector, build_registry

    text = generate_latest(build_registry(DaemonCollector(pipeline))).decode()
    assert (
        f'bgpwatch_detector_errors_total{{detector="{name}"}} {float(engine.detector_errors[name])}' in text
    )


def test_malformed_corpus_every_line_applied_or_rejected_with_a_reason():
    files = sorted(CORPUS.glob("*.jsonl"))
    assert files, "fixtures/malformed/exabgp/ is empty"
    pipeline = build_pipeline()
    for good in LINES[:CUT]:
        pipeline.feed_line(good, "test")
    start_lines, start_applied = pipeline.lines, pipeline.applied
    walked = 0
    for path in files:
        for line in path.read_bytes().split(b"\n"):
            if not line:
                continue
            walked += 1
            lines, applied, rejected = pipeline.lines, pipeline.applied, sum(pipeline.errors.values())
            events, ignored = pipeline.events, sum(pipeline.parser.ignored.values())
            pipeline.feed_line(line, "corpus")
            assert pipeline.lines == lines + 1
            now_rejected = sum(pipeline.errors.values())
            if pipeline.applied == applied + 1:
                assert now_rejected == rejected
                # Applied: it made events, or it was counted as ignored (an empty UPDATE, a keepalive...)
                # or it is a control line that makes no event.
                assert (
                    pipeline.events > events
                    or sum(pipeline.parser.ignored.values()) > ignored
                    or line.startswith(b'{"bgpwatch-relay"')
                ), line[:200]
            else:
                assert pipeline.applied == applied and now_rejected == rejected + 1, line[:200]
    assert walked >= 200
    assert "internal_error" not in pipeline.errors
    rejected = sum(pipeline.errors.values())
    assert pipeline.lines == pipeline.applied + rejected
    assert pipeline.lines - start_lines == walked and pipeline.applied - start_applied < walked
    # The cases are in the corpus, each rejected.
    assert pipeline.errors[OUT] >= 5 and pipeline.errors["bad_relay_control"] >= 5


_LINES_FOR_PROPERTY = real_lines()
_PROPERTY_PIPELINE: list[Pipeline] = []
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(autouse=True, scope="module")
def _restore_bgpwatch_log_level():
    """The property test quiets bgpwatch's loggers; later test modules get them back as they were."""
    logger = logging.getLogger("bgpwatch")
    level = logger.level
    yield
    logger.setLevel(level)


@settings(
    derandomize=True,
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    index=st.integers(min_value=0, max_value=len(_LINES_FOR_PROPERTY) - 1),
    seed=st.integers(min_value=0, max_value=2**32),
    value=_JSON,
    where=st.integers(min_value=0, max_value=10_000),
)
def test_feed_line_never_raises_for_mutated_real_lines(index, seed, value, where):
    import random

    if not _PROPERTY_PIPELINE:
        logging.getLogger("bgpwatch").setLevel(logging.CRITICAL)
        _PROPERTY_PIPELINE.append(build_pipeline())
    pipeline = _PROPERTY_PIPELINE[0]
    line = restamp(_LINES_FOR_PROPERTY[index], T + pipeline.lines * 0.001)
    line = mutate(line, random.Random(seed))
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        doc = None
    if type(doc) is dict and doc:  # also put one value hypothesis drew somewhere in it
        places = [(doc, key) for key in doc]
        inner = doc.get("neighbor")
        if type(inner) is dict:
            places += [(inner, key) for key in inner]
        container, key = places[where % len(places)]
        container[key] = value
        try:
            line = orjson.dumps(doc)
        except TypeError:  # an integer past 64 bits: orjson writes none, ExaBGP neither
            pass
    before = pipeline.lines, pipeline.applied, sum(pipeline.errors.values())
    pipeline.feed_line(line, "hypothesis")
    assert pipeline.lines == before[0] + 1
    assert (pipeline.applied - before[1]) + (sum(pipeline.errors.values()) - before[2]) == 1
    assert "internal_error" not in pipeline.errors


def _mrt_with_time(data: bytes, index: int, at: int) -> bytes:
    """Return MRT records with the timestamp of the first UPDATE-sized record from ``index`` on replaced.

    A record header is time (4 bytes), type, subtype (2 each), length (4); a record of 60 bytes or
    more in this BGP4MP file is an UPDATE with NLRI or withdrawals (keepalives and states are shorter).
    """
    out = bytearray(data)
    offset = 0
    count = 0
    while True:
        length = int.from_bytes(out[offset + 8 : offset + 12], "big")
        if count >= index and length >= 60:
            break
        offset += 12 + length
        count += 1
    out[offset : offset + 4] = at.to_bytes(4, "big")
    return bytes(out)


@pytest.mark.parametrize("stamp", [0xFFFFFFFF, 0, 1])
def test_mrt_record_with_an_absurd_timestamp_is_rejected_by_the_stream_clock(tmp_path, stamp):
    """MRT's 32-bit seconds are always finite: the stream clock is what stops 2106 or 1970 in a 2002 file."""
    data = gzip.decompress((ROOT / "fixtures" / "mrt" / "bgpdump" / "updates.20020722.2238.gz").read_bytes())

    def replay(raw: bytes) -> Pipeline:
        path = tmp_path / "updates.mrt"
        path.write_bytes(raw)
        pipeline = build_pipeline()
        for event in replay_files([path], pipeline.pool):
            pipeline.feed_event(event)
        return pipeline

    clean = replay(data)
    assert clean.errors == {} and clean.events > 100
    poisoned = replay(_mrt_with_time(data, 50, stamp))
    lost = clean.events - poisoned.events
    assert lost >= 1 and poisoned.errors == {OUT: lost}  # that record's events only
    assert poisoned.clock.latest == clean.clock.latest
    assert poisoned.consumer.now == clean.consumer.now


def test_replay_of_two_recordings_a_day_apart_loses_nothing(tmp_path):
    """The next file of a replay starts a day later: a jump of the stream, not 56 rejected lines."""
    from bench.fuzz_ingest import line_time

    first = tmp_path / "day1.jsonl"
    second = tmp_path / "day2.jsonl"
    first.write_bytes(b"\n".join(LINES[:CUT]) + b"\n")
    later = [restamp(line, line_time(orjson.loads(line)) + DAY) for line in LINES[CUT:]]
    second.write_bytes(b"\n".join(later) + b"\n")
    clean, _ = replayed(tmp_path, LINES)
    pipeline = build_pipeline()
    for event in replay_files([first, second], pipeline.pool):
        pipeline.feed_event(event)
    assert pipeline.errors == {}
    assert pipeline.events == clean.events
    assert pipeline.clock.latest == clean.clock.latest + DAY


_RIS_FRAMES = RIS.read_bytes().splitlines()
_CONTROL_LINES = [line for line in _LINES_FOR_PROPERTY if line.startswith(b'{"bgpwatch-relay"')]


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(index=st.integers(min_value=0, max_value=len(_RIS_FRAMES) - 1), seed=st.integers(0, 2**32))
def test_rislive_parser_raises_only_ingest_errors(index, seed):
    import random

    parser = RisLiveParser(AttributePool())
    try:
        events = parser.parse(mutate(_RIS_FRAMES[index], random.Random(seed)))
    except IngestError as exc:
        assert exc.reason and len(exc.detail) < 1000
        return
    for event in events:
        assert 0 <= event.at < 2**32


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(
    index=st.integers(min_value=0, max_value=max(0, len(_CONTROL_LINES) - 1)),
    seed=st.integers(0, 2**32),
    field=st.sampled_from(["time", "lost", "worker", "up", "reason", "collector"]),
    value=_JSON,
)
def test_control_lines_give_bounded_events_or_an_ingest_error(index, seed, field, value):
    import math
    import random

    from bgpwatch.events import FeedGap

    assert _CONTROL_LINES, "the real recordings hold control lines"
    try:  # half the time, mutated first (often no longer JSON: then the real line)
        doc = orjson.loads(mutate(_CONTROL_LINES[index], random.Random(seed))) if seed % 2 else None
    except orjson.JSONDecodeError:
        doc = None
    if type(doc) is not dict or type(doc.get("bgpwatch-relay")) is not dict:
        doc = orjson.loads(_CONTROL_LINES[index])
    body = doc["bgpwatch-relay"]
    target = body["collector"] if type(body.get("collector")) is dict and field != "collector" else body
    target[field] = value
    try:
        line = orjson.dumps(doc)
    except TypeError:  # an integer past 64 bits
        return
    try:
        events = parse_control(line)
    except IngestError as exc:
        assert exc.reason in ("bad_relay_control", OUT)
        return
    for event in events:
        assert math.isfinite(event.at) and 0 <= event.at < 2**32
        if isinstance(event, FeedGap):
            assert type(event.lost) is int and 0 < event.lost <= 2**40
