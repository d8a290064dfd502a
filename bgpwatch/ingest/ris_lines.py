"""RIS Live in recordings: one JSON line per frame received, and per change of the feed's state.

``bgpwatch run`` records what the RIS Live input received beside ExaBGP's lines, in the same file,
so that ``bgpwatch replay`` plays the inside and the outside view back in the order they arrived::

    {"bgpwatch-ris": {"t": 1764646800.1, "feed": "up", "reason": "subscribed to 4 prefixes"}}
    {"bgpwatch-ris": {"t": 1764646800.4, "frame": "{\\"type\\":\\"ris_message\\",\\"data\\":{...}}"}}
    {"bgpwatch-ris": {"t": 1764646900.0, "feed": "down", "reason": "silent for 60 s"}}

``t`` is the arrival time (bgpwatch's clock), not the collector's ``timestamp`` inside the frame.
The frame is kept as text, exactly as received (a garbage frame is recorded too: the replay counts
it rejected as the live run did).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from bgpwatch.ingest.exabgp_json import IngestError

RIS_TAG = b'{"bgpwatch-ris"'
FEED_UP = "up"
FEED_DOWN = "down"
_MAX_TEXT = 256


@dataclass(slots=True)
class RisLine:
    """One recorded RIS Live record: a frame, or the feed going up or down."""

    at: float
    frame: bytes | None = None
    feed: str | None = None  # FEED_UP | FEED_DOWN
    reason: str = ""


def frame_line(at: float, frame: bytes | str) -> bytes:
    """Return the record of one frame received."""
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    return orjson.dumps({"bgpwatch-ris": {"t": at, "frame": text}})


def feed_line(at: float, up: bool, reason: str) -> bytes:
    """Return the record of the feed going up (subscribed) or down (closed, silent, refused)."""
    return orjson.dumps(
        {"bgpwatch-ris": {"t": at, "feed": FEED_UP if up else FEED_DOWN, "reason": reason[:_MAX_TEXT]}}
    )


def parse_line(line: bytes) -> RisLine:
    """Return the record a RIS line stands for; raise IngestError naming what is wrong."""
    try:
        body = orjson.loads(line)["bgpwatch-ris"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise IngestError("bad_ris_record", "unreadable RIS Live record line") from exc
    if not isinstance(body, dict):
        raise IngestError("bad_ris_record", "RIS Live record is not an object")
    at = body.get("t")
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at) or at < 0:
        raise IngestError("bad_ris_record", "RIS Live record without a valid time 't'")
    if "frame" in body:
        frame = body["frame"]
        if not isinstance(frame, str):
            raise IngestError("bad_ris_record", "RIS Live record 'frame' is not text")
        return RisLine(float(at), frame=frame.encode())
    feed = body.get("feed")
    if feed in (FEED_UP, FEED_DOWN):
        reason = body.get("reason")
        return RisLine(float(at), feed=feed, reason=reason[:_MAX_TEXT] if isinstance(reason, str) else "")
    raise IngestError("bad_ris_record", "RIS Live record is neither a frame nor a feed change")
