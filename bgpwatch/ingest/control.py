"""Control lines between the relay, the daemon and recordings (not from ExaBGP).

``{"bgpwatch-relay": {...}}`` lines travel in the same stream as ExaBGP's JSON:
* ``{"hello": N, "pid": P}``: a relay of ExaBGP worker N connected (no event);
* ``{"lost": N, "worker": W, "time": T}``: the relay dropped N lines (FeedGap);
* ``{"collector": {"time": T, "worker": W, "up": bool, "reason": R}}``: the supervisor saw an
  ExaBGP worker start or die, written into recordings so a replay sees it too (CollectorStatus).
"""

from __future__ import annotations

import time

import orjson

from bgpwatch.events import CollectorStatus, Event, FeedGap
from bgpwatch.ingest.exabgp_json import IngestError, excerpt

RELAY_TAG = b'{"bgpwatch-relay"'


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
    if isinstance(control, dict) and isinstance(control.get("hello"), int):
        return control["hello"]
    return None


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
        try:
            return [
                CollectorStatus(
                    float(collector["time"]),
                    int(collector["worker"]),
                    bool(collector["up"]),
                    str(collector["reason"]),
                )
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise IngestError("bad_relay_control", f"bad collector control line {excerpt(line)}") from exc
    lost = control.get("lost")
    if isinstance(lost, int) and lost > 0:
        at = control.get("time")
        at = float(at) if isinstance(at, int | float) else time.time()
        return [FeedGap(at, lost, f"relay worker {control.get('worker')}")]
    return []
