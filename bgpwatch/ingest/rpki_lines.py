"""RPKI in recordings: one JSON line each time what the detectors judge against changed.

``bgpwatch run`` with RTR caches records, beside ExaBGP's lines, the VRPs that decide the validity
of the protected prefixes (those covering a site, anycast or watched prefix, or inside one: see
`bgpwatch.rpki.state.RpkiState.relevant`) whenever they or their usability change, so that
``bgpwatch replay`` judges RPKI as the live run did without the whole table::

    {"bgpwatch-rpki": {"t": 1764646800.1, "usable": true, "origin": "127.0.0.1:8282",
                       "reason": "End of Data serial 12", "total": 512034,
                       "vrps": [["203.0.113.0/24", 24, 64500], ["2001:db8::/32", 48, 64500]]}}

``t`` is bgpwatch's clock when the change was applied; ``total`` the size of the whole table then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from bgpwatch.ingest.exabgp_json import IngestError
from bgpwatch.rib.prefix import format_prefix
from bgpwatch.rpki.vrps import Vrp, make_vrp

RPKI_TAG = b'{"bgpwatch-rpki"'
MAX_RECORDED_VRPS = 100_000
_MAX_TEXT = 256


@dataclass(slots=True)
class RpkiLine:
    """One recorded RPKI state: the relevant VRPs and whether they may be used."""

    at: float
    usable: bool
    reason: str = ""
    origin: str = ""
    total: int = 0
    vrps: list[Vrp] = field(default_factory=list)


def rpki_line(at: float, usable: bool, reason: str, origin: str, total: int, vrps: Iterable[Vrp]) -> bytes:
    """Return the record of the RPKI state the detectors judge against now."""
    rows = [[format_prefix(v.family, v.key), v.max_length, v.asn] for v in vrps]
    return orjson.dumps(
        {
            "bgpwatch-rpki": {
                "t": at,
                "usable": usable,
                "reason": reason[:_MAX_TEXT],
                "origin": origin[:_MAX_TEXT],
                "total": total,
                "vrps": rows[:MAX_RECORDED_VRPS],
            }
        }
    )


def _text(value: object) -> str:
    return value[:_MAX_TEXT] if isinstance(value, str) else ""


def parse_line(line: bytes) -> RpkiLine:
    """Return the record an RPKI line stands for; raise IngestError naming what is wrong."""
    try:
        body = orjson.loads(line)["bgpwatch-rpki"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise IngestError("bad_rpki_record", "unreadable RPKI record line") from exc
    if not isinstance(body, dict):
        raise IngestError("bad_rpki_record", "RPKI record is not an object")
    at = body.get("t")
    if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at) or at < 0:
        raise IngestError("bad_rpki_record", "RPKI record without a valid time 't'")
    usable = body.get("usable")
    if not isinstance(usable, bool):
        raise IngestError("bad_rpki_record", "RPKI record without a boolean 'usable'")
    rows = body.get("vrps")
    if not isinstance(rows, list) or len(rows) > MAX_RECORDED_VRPS:
        raise IngestError(
            "bad_rpki_record", f"RPKI record 'vrps' is not a list of at most {MAX_RECORDED_VRPS}"
        )
    vrps = []
    for index, row in enumerate(rows):
        try:
            prefix, max_length, asn = row
            if not isinstance(prefix, str) or type(max_length) is not int or type(asn) is not int:
                raise ValueError("expected [prefix, max length, ASN]")
            vrps.append(make_vrp(prefix, max_length, asn))
        except (TypeError, ValueError) as exc:
            raise IngestError("bad_rpki_record", f"RPKI record vrps[{index}]: {exc}") from None
    total = body.get("total")
    return RpkiLine(
        float(at),
        usable,
        _text(body.get("reason")),
        _text(body.get("origin")),
        total if type(total) is int and total >= 0 else len(vrps),
        vrps,
    )
