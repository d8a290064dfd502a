"""BMP in recordings: one JSON line per message a router sent, with its arrival time.

``bgpwatch run`` records every BMP message beside ExaBGP's lines, in the same file, so that
``bgpwatch replay`` plays both back through the same pipeline in the order they arrived::

    {"bgpwatch-bmp": {"t": 1764646800.123, "conn": "192.0.2.2:40312#1", "from": "192.0.2.2", "open": true}}
    {"bgpwatch-bmp": {"t": 1764646800.125, "conn": "192.0.2.2:40312#1", "msg": "<base64 of the message>"}}
    {"bgpwatch-bmp": {"t": 1764646830.002, "conn": "192.0.2.2:40312#1", "close": "connection reset"}}

The message is the whole BMP message (common header included), exactly as received.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass

import orjson

from bgpwatch.ingest.exabgp_json import IngestError

BMP_TAG = b'{"bgpwatch-bmp"'
_MAX_TEXT = 256


@dataclass(slots=True)
class BmpLine:
    """One recorded BMP record: a connection opened, a message, or the connection closed."""

    at: float
    conn: str
    address: str = ""  # "open" records
    message: bytes | None = None
    closed: str | None = None  # the reason, for "close" records


def open_line(at: float, conn: str, address: str) -> bytes:
    """Return the record of a router connecting."""
    return orjson.dumps({"bgpwatch-bmp": {"t": at, "conn": conn, "from": address, "open": True}})


def message_line(at: float, conn: str, message: bytes) -> bytes:
    """Return the record of one BMP message."""
    return orjson.dumps({"bgpwatch-bmp": {"t": at, "conn": conn, "msg": base64.b64encode(message).decode()}})


def close_line(at: float, conn: str, reason: str) -> bytes:
    """Return the record of a router's connection closing."""
    return orjson.dumps({"bgpwatch-bmp": {"t": at, "conn": conn, "close": reason[:_MAX_TEXT]}})


def parse_line(line: bytes) -> BmpLine:
    """Return the record a BMP line stands for; raise IngestError naming what is wrong."""
    try:
        body = orjson.loads(line)["bgpwatch-bmp"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise IngestError("bad_bmp_record", "unreadable BMP record line") from exc
    if not isinstance(body, dict):
        raise IngestError("bad_bmp_record", "BMP record is not an object")
    at, conn = body.get("t"), body.get("conn")
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at) or at < 0:
        raise IngestError("bad_bmp_record", "BMP record without a valid time 't'")
    if not isinstance(conn, str) or not conn or len(conn) > _MAX_TEXT:
        raise IngestError("bad_bmp_record", "BMP record without a connection name 'conn'")
    if "msg" in body:
        data = body["msg"]
        if not isinstance(data, str):
            raise IngestError("bad_bmp_record", "BMP record 'msg' is not base64 text")
        try:
            return BmpLine(float(at), conn, message=base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise IngestError("bad_bmp_record", "BMP record 'msg' is not valid base64") from exc
    if body.get("open") is True:
        address = body.get("from")
        if not isinstance(address, str) or len(address) > _MAX_TEXT:
            raise IngestError("bad_bmp_record", "BMP open record without the router's address 'from'")
        return BmpLine(float(at), conn, address=address)
    if "close" in body:
        reason = body["close"]
        return BmpLine(float(at), conn, closed=reason[:_MAX_TEXT] if isinstance(reason, str) else "closed")
    raise IngestError("bad_bmp_record", "BMP record is neither open, msg nor close")
