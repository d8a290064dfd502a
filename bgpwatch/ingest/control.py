"""Control lines between the relay, the daemon and recordings (not from ExaBGP).

``{"bgpwatch-relay": {...}}`` lines travel in the same stream as ExaBGP's JSON:
* ``{"hello": N, "pid": P}``: a relay of ExaBGP worker N connected (no event);
* ``{"lost": N, "worker": W, "time": T}``: the relay dropped N lines (FeedGap);
* ``{"collector": {"time": T, "worker": W, "up": bool, "reason": R}}``: the supervisor saw an
  ExaBGP worker start or die, written into recordings so a replay sees it too (CollectorStatus).

Every field is checked like ExaBGP's (`bgpwatch.ingest.exabgp_json`): times finite in [0, 2**32)
(``time_out_of_range``), ``lost`` an integer 0 < lost <= 2**40 (a relay drops at most its buffer's
lines between two reports; ``bad_relay_control`` otherwise), ``worker`` an integer 0-1023, ``up`` a
boolean, ``reason`` a string (cut at 1,000 characters).
"""

from __future__ import annotations

import time

import orjson

from bgpwatch.events import CollectorStatus, Event, FeedGap
from bgpwatch.ingest.exabgp_json import IngestError, brief, check_time, excerpt

RELAY_TAG = b'{"bgpwatch-relay"'
MAX_LOST = 1 << 40  # lines one report may say were dropped
MAX_WORKER = 1023
MAX_REASON = 1000  # characters of a collector reason kept


def is_control(line: bytes) -> bool:
    """Tell whether a line is a control line rather than ExaBGP JSON."""
    return line.startswith(RELAY_TAG)


def collector_control_line(event: CollectorStatus) -> bytes:
    """Return the control line that records a supervisor event in an input recording."""
    body = {"time": event.at, "worker": event.worker, "up": event.up, "reason": event.reason}
    return orjson.dumps({"bgpwatch-relay": {"collector": body}})


def hello_worker(line: bytes) -> int | None:
    """Return the worker index of a relay's hello line, None for any other line."""
    try:
        control = orjson.loads(line)["bgpwatch-relay"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    worker = control.get("hello") if type(control) is dict else None
    return worker if type(worker) is int and 0 <= worker <= MAX_WORKER else None


def parse_control(line: bytes) -> list[Event]:
    """Return the events a control line stands for; raise IngestError when it is malformed."""
    try:
        control = orjson.loads(line)["bgpwatch-relay"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise IngestError("bad_relay_control", f"unreadable control line {excerpt(line)}") from exc
    if not isinstance(control, dict):
        raise IngestError("bad_relay_control", f"control line is not an object: {excerpt(line)}")
    collector = control.get("collector")
    if collector is not None:
        if type(collector) is not dict:
            raise _bad("collector", collector, "an object", line)
        at = _time(collector.get("time"), "collector.time", line)
        worker = _worker(collector.get("worker"), "collector.worker", line)
        up = collector.get("up")
        if type(up) is not bool:
            raise _bad("collector.up", up, "true or false", line)
        reason = collector.get("reason")
        if type(reason) is not str:
            raise _bad("collector.reason", reason, "a string", line)
        return [CollectorStatus(at, worker, up, reason[:MAX_REASON])]
    if "lost" not in control:
        return []  # a hello, or a field a newer relay added
    lost = control["lost"]
    if type(lost) is not int or not 0 < lost <= MAX_LOST:
        raise _bad("lost", lost, f"a count of lines 1-{MAX_LOST}", line)
    raw_at = control.get("time")
    at = time.time() if raw_at is None else _time(raw_at, "time", line)
    worker = control.get("worker")
    if worker is not None:
        worker = _worker(worker, "worker", line)
    return [FeedGap(at, lost, f"relay worker {worker}")]


def _bad(field: str, value: object, expected: str, line: bytes) -> IngestError:
    return IngestError(
        "bad_relay_control", f"{field}: {expected} expected, got {brief(value)}; line {excerpt(line)}"
    )


def _time(value: object, field: str, line: bytes) -> float:
    try:
        return check_time(value, field)
    except IngestError as exc:
        reason = exc.reason if exc.reason == "time_out_of_range" else "bad_relay_control"
        raise IngestError(reason, f"{exc.detail}; line {excerpt(line)}") from None


def _worker(value: object, field: str, line: bytes) -> int:
    if type(value) is not int or not 0 <= value <= MAX_WORKER:
        raise _bad(field, value, f"a worker number 0-{MAX_WORKER}", line)
    return value
